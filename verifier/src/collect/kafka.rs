//! Kafka: a consumer group's lag (committed offsets read without joining the group, against
//! the high watermarks) and every event on a topic, read from the beginning.

use std::{collections::BTreeMap, time::Duration};

use anyhow::Context;
use coupon_domain::CouponIssued;
use coupon_kafka::course::CourseEvent;
use coupon_kafka::offsets::PartitionOffsets;

use super::TopicFacts;
use crate::reconcile::{EventFact, KafkaSource};

pub async fn offsets(
    brokers: &str,
    topic: &str,
    group: &str,
) -> anyhow::Result<Vec<PartitionOffsets>> {
    coupon_kafka::offsets::read(brokers, topic, group)
        .await
        .with_context(|| {
            format!("kafka at {brokers}: cannot read offsets of topic {topic}, group {group}")
        })
}

/// Which events a topic carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload {
    /// `CouponIssued`, with its slot.
    Pipeline,
    /// The course's `CourseEvent`: a user, no slot.
    Course,
}

pub async fn topic(
    brokers: &str,
    topic: &str,
    group: &str,
    payload: Payload,
) -> anyhow::Result<TopicFacts> {
    let offsets = offsets(brokers, topic, group).await?;
    let raw = coupon_kafka::scan::all_events(brokers, topic, Duration::from_secs(120))
        .await
        .with_context(|| format!("kafka at {brokers}: cannot read topic {topic}"))?;
    let mut events: BTreeMap<String, Vec<EventFact>> = BTreeMap::new();
    for raw in raw {
        // Malformed events belong to no campaign; the consumers logged or captured them.
        let decoded = match payload {
            Payload::Pipeline => CouponIssued::from_json(&raw.payload)
                .ok()
                .map(|e| (e.campaign_id, e.user_id, Some(e.seq.0), Some(e.epoch))),
            Payload::Course => CourseEvent::from_json(&raw.payload)
                .ok()
                .map(|e| (e.campaign_id, e.user_id, None, None)),
        };
        if let Some((campaign_id, user_id, seq, epoch)) = decoded {
            events
                .entry(campaign_id.to_string())
                .or_default()
                .push(EventFact {
                    user_id: user_id.get(),
                    seq,
                    source: KafkaSource {
                        partition: raw.partition,
                        offset: raw.offset,
                    },
                    epoch,
                });
        }
    }
    Ok(TopicFacts {
        lag: coupon_kafka::offsets::total_lag(&offsets),
        events,
    })
}
