//! The Kafka event: one per admitted winner, produced by the api, consumed by the consumer.

use serde::{Deserialize, Serialize};

use crate::{gate::Seq, ids::CampaignId, ids::UserId};

/// No event is larger: a 64-character campaign id, a 20-digit user id and the rest come to
/// about 170 bytes. A larger record is not an event, whatever it holds.
pub const MAX_EVENT_BYTES: usize = 4096;

/// A coupon the gate issued and the broker acknowledged: the consumer turns it into a row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CouponIssued {
    pub campaign_id: CampaignId,
    pub user_id: UserId,
    pub seq: Seq,
    /// Milliseconds since the Unix epoch, when the gate admitted the user.
    pub issued_at_ms: i64,
    /// The life of the gate that admitted the user (its epoch). A rebuild or a reconcile that
    /// took the slot back fences the older epochs, and the consumer refuses a fenced event.
    /// 0 for events written before epochs were carried: older than every fence.
    #[serde(default)]
    pub epoch: u64,
}

#[derive(Debug, thiserror::Error)]
#[error("malformed coupon event: {0}")]
pub struct EventError(#[from] serde_json::Error);

impl CouponIssued {
    /// The Kafka key: a user's events in one campaign always land on the same partition, in
    /// order, while a campaign's users spread over every partition.
    pub fn key(&self) -> String {
        format!("{}:{}", self.campaign_id, self.user_id)
    }

    pub fn to_json(&self) -> Vec<u8> {
        // A struct of strings and integers always serialises.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn from_json(payload: &[u8]) -> Result<Self, EventError> {
        Ok(serde_json::from_slice(payload)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_round_trips_and_rejects_bad_payloads() {
        let event = CouponIssued {
            campaign_id: CampaignId::parse("spring").expect("valid id"),
            user_id: UserId::parse(7).expect("valid id"),
            seq: Seq(3),
            issued_at_ms: 1_700_000_000_000,
            epoch: 2,
        };
        assert_eq!(
            CouponIssued::from_json(&event.to_json()).ok(),
            Some(event.clone())
        );
        assert_eq!(event.key(), "spring:7");
        assert!(CouponIssued::from_json(b"not json").is_err());
        let before_epochs =
            br#"{"campaign_id":"spring","user_id":7,"seq":3,"issued_at_ms":1700000000000}"#;
        assert_eq!(
            CouponIssued::from_json(before_epochs).map(|e| e.epoch).ok(),
            Some(0)
        );
        assert!(
            CouponIssued::from_json(
                br#"{"campaign_id":"spring","user_id":0,"seq":1,"issued_at_ms":0}"#
            )
            .is_err()
        );
    }
}
