//! Stores of a run's own, for the faults that act on Redis or Kafka themselves (a kill, a
//! flush, a rollback, a pause), which every other run and test on the shared stack relies on:
//! a `redis-server` and a Kafka broker on free ports, and a database of its own on the project's
//! MySQL server, so that the run's campaign, events and rows are all in one place. The run is
//! verified before the sandbox stops; the stores are gone afterwards.

use coupon_domain::wire::PrivateStores;
use coupon_runtime::stack::{StackArgs, redact};
use sandbox::{
    database::PrivateDatabase,
    kafka::PrivateKafka,
    redis::{Persistence, PrivateRedis},
};
use tokio::sync::Mutex;

use crate::nemesis::{FaultKind, FaultSpec};

/// Whether any of `faults` runs in a sandbox.
pub fn needed(faults: &[FaultSpec]) -> bool {
    faults.iter().any(|f| f.kind.needs_sandbox())
}

#[derive(Debug)]
pub struct Sandbox {
    pub redis: Mutex<PrivateRedis>,
    pub kafka: Mutex<PrivateKafka>,
    database: PrivateDatabase,
    /// The configured stack with these stores in its place.
    pub stack: StackArgs,
    /// Where the api reaches the broker, when not at `stack`'s brokers: through the proxy the
    /// `api-kafka-*` faults act on.
    pub api_kafka: Option<String>,
}

impl Sandbox {
    /// Starts the stores `faults` act on. Redis keeps an append-only file fsynced on every
    /// write, as the shared stack's does, except for `redis-rollback`, which needs a Redis that
    /// loses what came after its last snapshot. For the `api-kafka-*` faults, the broker has a
    /// proxy in front of a listener of the api's own.
    pub async fn start(base: &StackArgs, faults: &[FaultSpec]) -> anyhow::Result<Self> {
        let persistence = if faults.iter().any(|f| f.kind == FaultKind::RedisRollback) {
            Persistence::SnapshotOnly
        } else {
            Persistence::AppendOnly
        };
        eprintln!("starting stores of the run's own (a Redis, a Kafka broker, a database)");
        let proxied = faults.iter().any(|f| f.kind.needs_api_kafka_proxy());
        let kafka = async {
            if proxied {
                PrivateKafka::start_proxied().await
            } else {
                PrivateKafka::start().await
            }
        };
        let (redis, kafka, database) = tokio::join!(
            PrivateRedis::start(persistence),
            kafka,
            PrivateDatabase::create(&base.database_url, "fault"),
        );
        let (redis, kafka, database) = match (redis, kafka, database) {
            (Ok(redis), Ok(kafka), Ok(database)) => (redis, kafka, database),
            (redis, kafka, database) => {
                // Whatever did start stops here (Redis and the broker on drop).
                if let Ok(database) = database {
                    let _ = database.drop().await;
                }
                redis?;
                kafka?;
                anyhow::bail!("unreachable: every store started");
            }
        };
        let stack = StackArgs {
            redis_url: redis.url.clone(),
            kafka_brokers: kafka.brokers.clone(),
            database_url: database.url.clone(),
            ..base.clone()
        };
        let api_kafka = kafka.proxied_brokers();
        eprintln!(
            "  redis {}, kafka {}{}, database {}",
            redis.url,
            kafka.brokers,
            api_kafka
                .as_ref()
                .map(|at| format!(" (the api's through a proxy at {at})"))
                .unwrap_or_default(),
            database.name
        );
        Ok(Self {
            redis: Mutex::new(redis),
            kafka: Mutex::new(kafka),
            database,
            stack,
            api_kafka,
        })
    }

    /// Where the stores are, for the run's summary.
    pub fn stores(&self) -> PrivateStores {
        PrivateStores {
            redis_url: self.stack.redis_url.clone(),
            kafka_brokers: self.stack.kafka_brokers.clone(),
            database_url: redact(&self.stack.database_url),
        }
    }

    /// Stops the broker and Redis and drops the database (the pipeline on them stopped first).
    pub async fn stop(self) -> anyhow::Result<()> {
        drop(self.redis);
        drop(self.kafka);
        self.database.drop().await
    }
}
