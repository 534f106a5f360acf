//! Settings from flags and env vars; defaults match the local stack.

use std::{fmt, net::SocketAddr, time::Duration};

use clap::Args;
use coupon_domain::stack;

#[derive(Clone, Args)]
pub struct Settings {
    /// MySQL or MariaDB holding campaigns and coupons.
    #[arg(long, env = "DATABASE_URL", default_value = stack::DEFAULT_DATABASE_URL)]
    pub database_url: String,

    /// Kafka bootstrap servers.
    #[arg(long, env = "KAFKA_BROKERS", default_value = stack::DEFAULT_KAFKA_BROKERS)]
    pub kafka_brokers: String,

    /// Topic of `CouponIssued` events.
    #[arg(long, env = "KAFKA_TOPIC", default_value = stack::DEFAULT_TOPIC)]
    pub topic: String,

    /// Partitions to create the topic with, when it is missing.
    #[arg(long, env = "KAFKA_TOPIC_PARTITIONS", default_value_t = stack::DEFAULT_TOPIC_PARTITIONS)]
    pub topic_partitions: i32,

    /// Consumer group; run several consumers with the same group to share the partitions.
    #[arg(long, env = "KAFKA_GROUP", default_value = stack::DEFAULT_CONSUMER_GROUP)]
    pub group: String,

    /// Topic the course's Kafka stages send to (docs/stages.md).
    #[arg(long, env = "COURSE_TOPIC", default_value = stack::DEFAULT_COURSE_TOPIC)]
    pub course_topic: String,

    /// The course's consumer group.
    #[arg(long, env = "COURSE_GROUP", default_value = stack::DEFAULT_COURSE_GROUP)]
    pub course_group: String,

    /// Fault injection for the stage comparison: SIGKILL this process after writing this many
    /// coupon rows (either design). Never set it outside a demonstration.
    #[arg(long, env = "FAULT_CRASH_AFTER_ROWS", hide = true)]
    pub crash_after_rows: Option<u64>,

    /// Most events written in one transaction.
    #[arg(long, env = "BATCH_SIZE", default_value_t = 500)]
    pub batch_size: usize,

    /// How often the retry worker re-processes open failed events.
    #[arg(long, env = "RETRY_INTERVAL", default_value = "5s", value_parser = coupon_domain::duration::parse)]
    pub retry_interval: Duration,

    /// Where `/metrics` is served (port 0 picks a free port).
    #[arg(long, env = "CONSUMER_METRICS_ADDR", default_value = "127.0.0.1:9101")]
    pub metrics_addr: SocketAddr,

    /// Give up connecting to a dependency at startup after this long (retrying with backoff).
    #[arg(long, env = "STARTUP_TIMEOUT", default_value = "60s", value_parser = coupon_domain::duration::parse)]
    pub startup_timeout: Duration,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("database_url", &coupon_store::redact(&self.database_url))
            .field("kafka_brokers", &self.kafka_brokers)
            .field("topic", &self.topic)
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}
