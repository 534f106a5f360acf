//! Reads committed events of a topic up to the high watermarks seen at the start, without a
//! consumer group: every event (the verifier), or a bounded range of each partition (the gate's
//! rebuild and the reconciler read only what the consumer group has not committed past).

use std::time::Duration;

use rdkafka::{
    ClientConfig, Message, Offset, TopicPartitionList,
    consumer::{BaseConsumer, Consumer},
};

use crate::{BrokerError, partition_count};

/// One event as it sits on the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEvent {
    pub partition: i32,
    pub offset: i64,
    pub payload: Vec<u8>,
}

/// Every event of `topic`, partition by partition, in offset order.
pub async fn all_events(
    brokers: &str,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<RawEvent>, BrokerError> {
    let partitions = partition_count(brokers, topic).await?;
    let (brokers, topic) = (brokers.to_owned(), topic.to_owned());
    tokio::task::spawn_blocking(move || {
        let consumer = scanner(&brokers)?;
        let mut ranges = Vec::new();
        for partition in 0..partitions {
            let (start, end) = consumer.fetch_watermarks(&topic, partition, timeout)?;
            ranges.push(Range {
                partition,
                start,
                end,
            });
        }
        scan_blocking(&consumer, &topic, &ranges, timeout)
    })
    .await?
}

/// Offsets `start..end` of one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub partition: i32,
    pub start: i64,
    pub end: i64,
}

impl Range {
    pub fn len(&self) -> u64 {
        u64::try_from(self.end - self.start).unwrap_or_default()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The events of `topic` in `ranges`, partition by partition, in offset order: a bounded read,
/// e.g. from a consumer group's committed offsets (earlier events are rows or failed events
/// already) to the high watermarks. Logs its progress every few seconds.
pub async fn between(
    brokers: &str,
    topic: &str,
    ranges: Vec<Range>,
    timeout: Duration,
) -> Result<Vec<RawEvent>, BrokerError> {
    let (brokers, topic) = (brokers.to_owned(), topic.to_owned());
    tokio::task::spawn_blocking(move || {
        scan_blocking(&scanner(&brokers)?, &topic, &ranges, timeout)
    })
    .await?
}

fn scanner(brokers: &str) -> Result<BaseConsumer, BrokerError> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "coupon-scan-never-commits")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()?)
}

/// How often a long read logs how far it is.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

fn scan_blocking(
    consumer: &BaseConsumer,
    topic: &str,
    ranges: &[Range],
    timeout: Duration,
) -> Result<Vec<RawEvent>, BrokerError> {
    let wanted: Vec<&Range> = ranges.iter().filter(|r| !r.is_empty()).collect();
    let total: u64 = wanted.iter().map(|r| r.len()).sum();
    let mut events = Vec::with_capacity(usize::try_from(total).unwrap_or_default());
    if wanted.is_empty() {
        return Ok(events);
    }
    let mut assignment = TopicPartitionList::new();
    for range in &wanted {
        assignment.add_partition_offset(topic, range.partition, Offset::Offset(range.start))?;
    }
    consumer.assign(&assignment)?;
    let started = std::time::Instant::now();
    let deadline = started + timeout;
    let mut next_progress = started + PROGRESS_EVERY;
    let mut open: std::collections::HashMap<i32, i64> =
        wanted.iter().map(|r| (r.partition, r.end)).collect();
    while !open.is_empty() {
        let now = std::time::Instant::now();
        if now >= deadline {
            return Err(BrokerError::Client(
                rdkafka::error::KafkaError::MessageConsumption(
                    rdkafka::types::RDKafkaErrorCode::OperationTimedOut,
                ),
            ));
        }
        if now >= next_progress {
            tracing::info!(topic, read = events.len(), of = total, elapsed = ?started.elapsed(), "reading kafka");
            next_progress = now + PROGRESS_EVERY;
        }
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let message = message?;
        let Some(&end) = open.get(&message.partition()) else {
            continue;
        };
        if message.offset() < end {
            events.push(RawEvent {
                partition: message.partition(),
                offset: message.offset(),
                payload: message.payload().unwrap_or_default().to_vec(),
            });
        }
        if message.offset() + 1 >= end {
            open.remove(&message.partition());
        }
    }
    events.sort_by_key(|e| (e.partition, e.offset));
    Ok(events)
}
