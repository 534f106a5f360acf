//! Reads every committed event of a topic from the beginning up to the high watermarks seen at
//! the start, without a consumer group. Used to rebuild the gate and by the verifier.

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
    tokio::task::spawn_blocking(move || scan_blocking(&brokers, &topic, partitions, timeout))
        .await?
}

fn scan_blocking(
    brokers: &str,
    topic: &str,
    partitions: i32,
    timeout: Duration,
) -> Result<Vec<RawEvent>, BrokerError> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "coupon-scan-never-commits")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()?;
    let mut assignment = TopicPartitionList::new();
    let mut remaining = 0usize;
    let mut ends = Vec::new();
    for p in 0..partitions {
        let (low, high) = consumer.fetch_watermarks(topic, p, timeout)?;
        ends.push(high);
        if high > low {
            assignment.add_partition_offset(topic, p, Offset::Beginning)?;
            remaining += 1;
        }
    }
    let mut events = Vec::new();
    if remaining == 0 {
        return Ok(events);
    }
    consumer.assign(&assignment)?;
    let deadline = std::time::Instant::now() + timeout;
    let mut done = vec![false; ends.len()];
    for (p, end) in ends.iter().enumerate() {
        done[p] = *end == 0
            || !assignment
                .elements()
                .iter()
                .any(|e| e.partition() as usize == p);
    }
    while done.iter().any(|d| !d) {
        if std::time::Instant::now() >= deadline {
            return Err(BrokerError::Client(
                rdkafka::error::KafkaError::MessageConsumption(
                    rdkafka::types::RDKafkaErrorCode::OperationTimedOut,
                ),
            ));
        }
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let message = message?;
        let p = usize::try_from(message.partition()).unwrap_or_default();
        let end = ends.get(p).copied().unwrap_or_default();
        if message.offset() < end {
            events.push(RawEvent {
                partition: message.partition(),
                offset: message.offset(),
                payload: message.payload().unwrap_or_default().to_vec(),
            });
        }
        if message.offset() + 1 >= end {
            done[p] = true;
        }
    }
    events.sort_by_key(|e| (e.partition, e.offset));
    Ok(events)
}
