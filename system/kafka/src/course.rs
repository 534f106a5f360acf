//! The course's stages on Kafka (docs/stages.md): their event and their client settings, flaws
//! included. Only the course's campaigns use them; the pipeline's settings are in the crate root.

use coupon_domain::{CampaignId, UserId};
use std::time::Duration;

use rdkafka::ClientConfig;
use serde::{Deserialize, Serialize};

/// The course's Kafka message: which user won (the course sends the bare user id; the campaign
/// is added so that several campaigns can share the topic). No slot, no timestamp.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CourseEvent {
    pub campaign_id: CampaignId,
    pub user_id: UserId,
}

impl CourseEvent {
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn from_json(payload: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(payload)
    }
}

/// The course's producer: the client library's defaults, no idempotence, and a caller that
/// never looks at the delivery report (docs/stages.md).
pub fn producer_config(brokers: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("socket.connection.setup.timeout.ms", "5000");
    config
}

/// The course's consumer, committing the way Spring Kafka's listener container does by
/// default: a message counts as consumed once the listener returned, whatever it did, and the
/// offsets are committed in the background (every 5 s here), so a crash redelivers everything
/// handled since the last commit.
pub fn consumer_config(brokers: &str, group: &str) -> ClientConfig {
    crate::group_member_config(brokers, group, Duration::from_secs(5))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn course_event_round_trips_and_refuses_extra_fields() {
        let event = CourseEvent {
            campaign_id: CampaignId::parse("c").expect("valid"),
            user_id: UserId::parse(7).expect("valid"),
        };
        assert_eq!(CourseEvent::from_json(&event.to_json()).ok(), Some(event));
        assert!(CourseEvent::from_json(br#"{"campaign_id":"c","user_id":7,"seq":1}"#).is_err());
    }
}
