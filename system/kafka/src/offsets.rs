//! Per-partition high watermarks and a consumer group's committed offsets. The group is read
//! from outside (an explicit partition list), never joined, so reading it cannot rebalance it.

use std::time::Duration;

use rdkafka::{
    ClientConfig, Offset, TopicPartitionList,
    consumer::{BaseConsumer, Consumer},
};

use crate::{BrokerError, partition_count};

/// One partition's position: `committed` is `None` when the group never committed there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionOffsets {
    pub partition: i32,
    pub low: i64,
    pub high: i64,
    pub committed: Option<i64>,
}

impl PartitionOffsets {
    /// Events on the broker the group has not committed past.
    pub fn lag(&self) -> i64 {
        (self.high - self.committed.unwrap_or(self.low).max(self.low)).max(0)
    }
}

/// Watermarks and the group's committed offsets for every partition of `topic`.
pub async fn read(
    brokers: &str,
    topic: &str,
    group: &str,
) -> Result<Vec<PartitionOffsets>, BrokerError> {
    let partitions = partition_count(brokers, topic).await?;
    let (brokers, topic, group) = (brokers.to_owned(), topic.to_owned(), group.to_owned());
    tokio::task::spawn_blocking(move || {
        let timeout = Duration::from_secs(10);
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("group.id", &group)
            .set("enable.auto.commit", "false")
            .create()?;
        let mut list = TopicPartitionList::new();
        for p in 0..partitions {
            list.add_partition(&topic, p);
        }
        let committed = committed_with_retry(&consumer, &list, timeout)?;
        let mut offsets = Vec::with_capacity(usize::try_from(partitions).unwrap_or_default());
        for p in 0..partitions {
            let (low, high) = consumer.fetch_watermarks(&topic, p, timeout)?;
            let committed = committed
                .find_partition(&topic, p)
                .and_then(|e| match e.offset() {
                    Offset::Offset(o) => Some(o),
                    _ => None,
                });
            offsets.push(PartitionOffsets {
                partition: p,
                low,
                high,
                committed,
            });
        }
        Ok(offsets)
    })
    .await?
}

/// A fresh cluster answers NotCoordinator (or "load in progress") while the group coordinator
/// and `__consumer_offsets` come up; those pass within seconds, so ask again until `deadline`.
fn committed_with_retry(
    consumer: &BaseConsumer,
    list: &TopicPartitionList,
    deadline: Duration,
) -> Result<TopicPartitionList, rdkafka::error::KafkaError> {
    let give_up = std::time::Instant::now() + deadline;
    loop {
        match consumer.committed_offsets(list.clone(), Duration::from_secs(5)) {
            Ok(committed) => return Ok(committed),
            Err(error) if std::time::Instant::now() < give_up => {
                tracing::debug!(error = %coupon_runtime::chain(&error), "committed offsets not available yet; retrying");
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(error) => return Err(error),
        }
    }
}

/// Total lag of the group over every partition.
pub fn total_lag(offsets: &[PartitionOffsets]) -> i64 {
    offsets.iter().map(PartitionOffsets::lag).sum()
}
