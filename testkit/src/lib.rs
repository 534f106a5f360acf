//! Isolation helpers for tests that run against the real local stack (`scripts/stack up`).
//!
//! Every test gets its own database, Kafka topic, consumer group and Redis key prefix, so tests
//! run in parallel and leave nothing behind for the next run. Nothing here mocks a service.
//!
//! # Layout
//! - [`Stack`]: where the services are (env vars, or the local stack's defaults).
//! - [`TestDatabase`], [`TestTopic`], [`RedisNamespace`]: created per test, dropped by `cleanup`.
//! - [`eventually`]: poll a condition until a deadline, instead of sleeping.
//! - [`pipeline::TestPipeline`]: the api and the consumer in-process, on a test's own stores.
//! - [`private_kafka::PrivateKafka`], [`private_redis::PrivateRedis`]: a broker or a Redis of
//!   a test's own, to kill, pause, flush or restart ([`sandbox`], which loadgen's faults use
//!   too), and [`Stack::on_kafka`], [`Stack::on_redis`] to aim at one.
//! - [`proxy::TcpProxy`]: take a real service away from one client, and give it back.

pub mod pipeline;
pub use coupon_runtime::proxy;
pub use sandbox::{kafka as private_kafka, redis as private_redis};

use std::time::Duration;

use anyhow::{Context, bail};
use coupon_runtime::stack::StackArgs;
use coupon_store::Store;
use rdkafka::{
    ClientConfig,
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
};
use redis::AsyncCommands;

/// Logs to the terminal when `TEST_LOG` is set; tests are silent otherwise.
pub fn init_test_log() {
    if std::env::var_os("TEST_LOG").is_some() {
        coupon_runtime::init_telemetry("info");
    }
}

/// Where the services are: the same flags' env vars and defaults as every binary of the
/// project, read through the one [`StackArgs`].
#[derive(Debug, Clone)]
pub struct Stack {
    pub redis_url: String,
    pub database_url: String,
    pub kafka_brokers: String,
}

impl Stack {
    pub fn from_env() -> Self {
        let args = StackArgs::from_env();
        Self {
            redis_url: args.redis_url,
            database_url: args.database_url,
            kafka_brokers: args.kafka_brokers,
        }
    }

    /// The local stack with `broker` in place of the shared Kafka.
    pub fn on_kafka(broker: &private_kafka::PrivateKafka) -> Self {
        Self {
            kafka_brokers: broker.brokers.clone(),
            ..Self::from_env()
        }
    }

    /// The local stack with `redis` in place of the shared Redis.
    pub fn on_redis(redis: &private_redis::PrivateRedis) -> Self {
        Self {
            redis_url: redis.url.clone(),
            ..Self::from_env()
        }
    }

    /// The stack's settings with a test's own names: `--flag value` pairs over the env's.
    pub fn args(&self, overrides: &[(&str, &str)]) -> StackArgs {
        let mut flags: Vec<(&str, &str)> = vec![
            ("redis-url", &self.redis_url),
            ("database-url", &self.database_url),
            ("kafka-brokers", &self.kafka_brokers),
        ];
        for (flag, value) in overrides {
            flags.retain(|(name, _)| name != flag);
            flags.push((flag, value));
        }
        let argv = std::iter::once("test".to_owned()).chain(
            flags
                .into_iter()
                .flat_map(|(flag, value)| [format!("--{flag}"), value.to_owned()]),
        );
        StackArgs::parse_from(argv)
    }
}

/// A name no other test run will pick: `<prefix>_<random hex>`, lowercase, safe everywhere.
pub fn unique_name(prefix: &str) -> String {
    sandbox::unique_name(prefix)
}

/// A fresh consumer group name, so committed offsets never leak between tests.
pub fn unique_group() -> String {
    unique_name("test_group")
}

/// A database of its own, created empty on the project's MySQL server.
#[derive(Debug)]
pub struct TestDatabase {
    pub name: String,
    pub url: String,
    /// A pool on the test database (not migrated: the code under test migrates it).
    pub store: Store,
    database: sandbox::database::PrivateDatabase,
}

impl TestDatabase {
    /// Creates `<project database>_test_<hex>`; the project account may create any database
    /// whose name starts with the project database's name (see `scripts/stack`).
    pub async fn create(stack: &Stack) -> anyhow::Result<Self> {
        let database = sandbox::database::PrivateDatabase::create(&stack.database_url, "test")
            .await
            .context("failed to create a test database")?;
        let store = Store::open(&database.url, 16)
            .await
            .with_context(|| format!("failed to connect to test database {}", database.name))?;
        Ok(Self {
            name: database.name.clone(),
            url: database.url.clone(),
            store,
            database,
        })
    }

    /// The same database, migrated: for tests that write rows without the api or consumer.
    pub async fn migrated(&self) -> anyhow::Result<Store> {
        Ok(Store::connect(&self.url, 8).await?)
    }

    pub async fn cleanup(self) -> anyhow::Result<()> {
        self.store.disconnect().await;
        self.database.drop().await
    }
}

/// A Kafka topic of its own, with an explicit partition count (auto-creation is off).
#[derive(Debug, Clone)]
pub struct TestTopic {
    pub name: String,
    pub partitions: i32,
    brokers: String,
}

fn admin_client(brokers: &str) -> anyhow::Result<AdminClient<DefaultClientContext>> {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .with_context(|| format!("failed to create a kafka admin client for {brokers}"))
}

impl TestTopic {
    pub async fn create(stack: &Stack, partitions: i32) -> anyhow::Result<Self> {
        let name = unique_name("test_topic");
        let admin = admin_client(&stack.kafka_brokers)?;
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        let results = admin
            .create_topics(
                &[NewTopic::new(&name, partitions, TopicReplication::Fixed(1))],
                &options,
            )
            .await
            .with_context(|| format!("kafka at {} did not create a topic", stack.kafka_brokers))?;
        for result in results {
            if let Err((topic, code)) = result {
                bail!("kafka refused to create topic {topic}: {code}");
            }
        }
        Ok(Self {
            name,
            partitions,
            brokers: stack.kafka_brokers.clone(),
        })
    }

    pub async fn cleanup(self) -> anyhow::Result<()> {
        let admin = admin_client(&self.brokers)?;
        admin
            .delete_topics(&[&self.name], &AdminOptions::new())
            .await
            .context("failed to delete test topic")?;
        Ok(())
    }
}

/// A Redis key prefix of its own; `cleanup` deletes every key under it.
#[derive(Debug, Clone)]
pub struct RedisNamespace {
    pub prefix: String,
    client: redis::Client,
}

impl RedisNamespace {
    pub fn new(stack: &Stack) -> anyhow::Result<Self> {
        let client = redis::Client::open(stack.redis_url.as_str())
            .with_context(|| format!("bad REDIS_URL {}", stack.redis_url))?;
        Ok(Self {
            prefix: format!("{}:", unique_name("test")),
            client,
        })
    }

    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    pub async fn connection(&self) -> anyhow::Result<redis::aio::MultiplexedConnection> {
        self.client
            .get_multiplexed_async_connection()
            .await
            .context("failed to connect to redis")
    }

    pub async fn cleanup(self) -> anyhow::Result<()> {
        let mut conn = self.connection().await?;
        let keys: Vec<String> = {
            let mut iter = conn
                .scan_match::<_, String>(format!("{}*", self.prefix))
                .await?;
            let mut keys = Vec::new();
            while let Some(key) = iter.next_item().await {
                keys.push(key?);
            }
            keys
        };
        if !keys.is_empty() {
            let _: () = conn.del(keys).await?;
        }
        Ok(())
    }
}

pub use sandbox::eventually;
