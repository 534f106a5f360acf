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
