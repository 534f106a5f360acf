//! Kafka for the issuance pipeline, shared by the api, the consumer and the verifier.
//!
//! # Layout
//! - [`producer_config`], [`consumer_config`]: the settings the guarantees depend on.
//! - [`course`]: the course's stages' event and client settings, flaws included.
//! - [`ensure_topics`]: create the topics with an explicit partition count when missing.
//! - [`offsets`]: high watermarks and a group's committed offsets, read without joining it.
//! - [`scan`]: every committed event of a topic, from the beginning (gate rebuild, verifier).

pub mod course;
pub mod offsets;
pub mod scan;

use std::time::Duration;

use rdkafka::{
    ClientConfig,
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    consumer::{BaseConsumer, Consumer},
    types::RDKafkaErrorCode,
};

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("kafka at {brokers} is unreachable")]
    Unreachable {
        brokers: String,
        #[source]
        source: rdkafka::error::KafkaError,
    },
    #[error("kafka at {brokers} refused to create topic `{topic}`: {code}")]
    CreateTopic {
        brokers: String,
        topic: String,
        code: RDKafkaErrorCode,
    },
    #[error("topic `{topic}` does not exist on kafka at {brokers}")]
    NoSuchTopic { brokers: String, topic: String },
    #[error("kafka client error: {0}")]
    Client(#[from] rdkafka::error::KafkaError),
    #[error("kafka worker thread failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// An idempotent producer that waits for every in-sync replica: an acknowledged event is on
/// the broker exactly once, in order per key. `delivery_timeout` bounds how long an event may
/// stay unacknowledged before librdkafka reports it failed.
pub fn producer_config(brokers: &str, delivery_timeout: Duration) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "2")
        .set(
            "message.timeout.ms",
            delivery_timeout.as_millis().to_string(),
        )
        .set("socket.connection.setup.timeout.ms", "5000");
    config
}

/// A group member that stores offsets only when told to, after the database committed. The
/// stored offsets are committed every second by librdkafka, which also retries a failed commit
/// on the next interval (rust-rdkafka's at-least-once pattern).
pub fn consumer_config(brokers: &str, group: &str) -> ClientConfig {
    let mut config = group_member_config(brokers, group, Duration::from_secs(1));
    config
        .set("isolation.level", "read_committed")
        .set("heartbeat.interval.ms", "1000");
    config
}

/// A member of `group` that reads from the beginning, stores offsets only when told to, and
/// lets librdkafka commit the stored offsets every `commit_interval`.
pub(crate) fn group_member_config(
    brokers: &str,
    group: &str,
    commit_interval: Duration,
) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "true")
        .set(
            "auto.commit.interval.ms",
            commit_interval.as_millis().to_string(),
        )
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "10000")
        .set("socket.connection.setup.timeout.ms", "5000");
    config
}

/// Fails with [`BrokerError::Unreachable`] unless a broker answers a metadata request in time.
pub async fn check_reachable(brokers: &str, timeout: Duration) -> Result<(), BrokerError> {
    let brokers = brokers.to_owned();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .create()?;
        consumer
            .fetch_metadata(None, timeout)
            .map(drop)
            .map_err(|source| BrokerError::Unreachable { brokers, source })
    })
    .await?
}

/// Creates each of `topics` with `partitions` partitions unless it exists. Topic auto-creation
/// is off on the broker, so the pipeline owns its partition count.
pub async fn ensure_topics(
    brokers: &str,
    topics: &[&str],
    partitions: i32,
) -> Result<(), BrokerError> {
    check_reachable(brokers, Duration::from_secs(5)).await?;
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let new_topics: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|topic| NewTopic::new(topic, partitions, TopicReplication::Fixed(1)))
        .collect();
    let results = admin.create_topics(&new_topics, &options).await?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(BrokerError::CreateTopic {
                    brokers: brokers.to_owned(),
                    topic,
                    code,
                });
            }
        }
    }
    Ok(())
}

/// The partition count of `topic`, from the broker's metadata.
pub async fn partition_count(brokers: &str, topic: &str) -> Result<i32, BrokerError> {
    let (brokers, topic) = (brokers.to_owned(), topic.to_owned());
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .create()?;
        let metadata = consumer
            .fetch_metadata(Some(&topic), Duration::from_secs(10))
            .map_err(|source| BrokerError::Unreachable {
                brokers: brokers.clone(),
                source,
            })?;
        match metadata.topics().first() {
            Some(t) if t.error().is_none() && !t.partitions().is_empty() => {
                Ok(i32::try_from(t.partitions().len()).unwrap_or(i32::MAX))
            }
            _ => Err(BrokerError::NoSuchTopic { brokers, topic }),
        }
    })
    .await?
}
