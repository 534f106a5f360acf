//! Kafka: the consumer group's lag (committed offsets read without joining the group, against
//! the high watermarks) and every event on the topic, read from the beginning.

use std::{collections::BTreeMap, time::Duration};

use anyhow::Context;
use coupon_domain::CouponIssued;
use coupon_kafka::offsets::PartitionOffsets;

use super::Shared;
use crate::reconcile::EventFact;

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

pub async fn shared(
    brokers: &str,
    topic: &str,
    group: &str,
) -> anyhow::Result<(Shared, Vec<PartitionOffsets>)> {
    let offsets = offsets(brokers, topic, group).await?;
    let raw = coupon_kafka::scan::all_events(brokers, topic, Duration::from_secs(120))
        .await
        .with_context(|| format!("kafka at {brokers}: cannot read topic {topic}"))?;
    let mut events: BTreeMap<String, Vec<EventFact>> = BTreeMap::new();
    for raw in raw {
        // Malformed events belong to no campaign; the consumer captured them as failed events.
        if let Ok(event) = CouponIssued::from_json(&raw.payload) {
            events
                .entry(event.campaign_id.to_string())
                .or_default()
                .push(EventFact {
                    user_id: event.user_id.get(),
                    seq: event.seq.0,
                    partition: raw.partition,
                    offset: raw.offset,
                });
        }
    }
    let lag = coupon_kafka::offsets::total_lag(&offsets);
    Ok((Shared { lag, events }, offsets))
}
