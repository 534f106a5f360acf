//! What the Redis gate decides for one (campaign, user) apply.

use serde::{Deserialize, Serialize};

/// The slot a winner took: 1 to the campaign's limit. Slot numbers are unique per campaign,
/// which lets MySQL refuse over-issue by itself (`UNIQUE(campaign_id, seq)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Seq(pub u32);

/// The gate's answer, decided in one atomic Redis step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateOutcome {
    /// The user won slot `Seq`.
    Issued(Seq),
    /// The user already holds a slot in this campaign.
    AlreadyApplied,
    /// Every slot is taken.
    SoldOut,
}

/// The Redis keys of one campaign's gate. They share the hash tag `{campaign}`, so the gate's
/// one script touches a single slot and runs unchanged on Redis Cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateKeys {
    /// Written when the gate is initialised; gone means Redis lost the gate's state.
    pub marker: String,
    /// Hash: user id -> slot (seq). The set of winners.
    pub winners: String,
    /// The highest slot handed out so far.
    pub next_seq: String,
    /// Slots released by undone admissions, handed out again before new ones.
    pub released: String,
    /// Held while one process rebuilds the gate.
    pub rebuild_lock: String,
    /// The `run_id` of the Redis server the gate was last built on. A server that restarted
    /// (from an older snapshot, a truncated AOF, or as a promoted replica) has another run_id,
    /// and may have lost the last admissions: the gate must be rebuilt before it admits again.
    pub redis_run: String,
}

impl GateKeys {
    /// `prefix` isolates deployments and tests; the default deployment uses `coupon`.
    pub fn new(prefix: &str, campaign: &crate::CampaignId) -> Self {
        let base = format!("{prefix}:{{{campaign}}}");
        Self {
            marker: format!("{base}:marker"),
            winners: format!("{base}:winners"),
            next_seq: format!("{base}:next_seq"),
            released: format!("{base}:released"),
            rebuild_lock: format!("{base}:rebuild_lock"),
            redis_run: format!("{base}:redis_run"),
        }
    }

    /// The keys `admit.lua` takes, in its order (also every key an admission touches).
    pub fn admit_keys(&self) -> [&str; 5] {
        [
            &self.marker,
            &self.winners,
            &self.next_seq,
            &self.released,
            &self.redis_run,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_share_one_hash_tag_per_campaign() {
        let campaign = crate::CampaignId::parse("spring").expect("valid id");
        let keys = GateKeys::new("coupon", &campaign);
        for key in [
            &keys.marker,
            &keys.winners,
            &keys.next_seq,
            &keys.released,
            &keys.rebuild_lock,
            &keys.redis_run,
        ] {
            assert!(key.starts_with("coupon:{spring}:"), "{key}");
        }
        let other = GateKeys::new(
            "coupon",
            &crate::CampaignId::parse("autumn").expect("valid id"),
        );
        assert_ne!(keys.winners, other.winners);
    }
}
