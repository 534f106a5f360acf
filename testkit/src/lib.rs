//! Isolation helpers for tests that run against the real local stack (`scripts/stack up`).
//!
//! Every test gets its own database, Kafka topic, consumer group and Redis key prefix, so tests
//! run in parallel and leave nothing behind for the next run. Nothing here mocks a service.
//!
//! # Layout
//! - [`Stack`]: where the services are (env vars, or the local stack's defaults).
//! - [`TestDatabase`], [`TestTopic`], [`RedisNamespace`]: created per test, dropped by `cleanup`.
//! - [`eventually`]: poll a condition until a deadline, instead of sleeping.
//! - [`private_kafka::PrivateKafka`]: a broker of a test's own, to kill and restart.
//! - [`private_redis::PrivateRedis`]: a Redis of a test's own, to FLUSHALL.
//! - [`proxy::TcpProxy`]: take a real service away from one client, and give it back.

pub mod private_kafka;
pub mod private_redis;
pub use coupon_runtime::proxy;

use std::{future::Future, time::Duration};

use anyhow::{Context, bail};
use coupon_domain::stack;
use rdkafka::{
    ClientConfig,
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
};
use redis::AsyncCommands;
use sqlx::{Connection, MySqlConnection, MySqlPool, mysql::MySqlPoolOptions};

/// Where the services are: the same env vars and defaults as every binary of the project.
#[derive(Debug, Clone)]
pub struct Stack {
    pub redis_url: String,
    pub database_url: String,
    pub kafka_brokers: String,
}

impl Stack {
    pub fn from_env() -> Self {
        let var =
            |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
        Self {
            redis_url: var("REDIS_URL", stack::DEFAULT_REDIS_URL),
            database_url: var("DATABASE_URL", stack::DEFAULT_DATABASE_URL),
            kafka_brokers: var("KAFKA_BROKERS", stack::DEFAULT_KAFKA_BROKERS),
        }
    }
}

/// A name no other test run will pick: `<prefix>_<random hex>`, lowercase, safe everywhere.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}_{:016x}", rand::random::<u64>())
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
    pub pool: MySqlPool,
    server_url: String,
}

impl TestDatabase {
    /// Creates `<project database>_test_<hex>`; the project account may create any database
    /// whose name starts with the project database's name (see `scripts/stack`).
    pub async fn create(stack: &Stack) -> anyhow::Result<Self> {
        let (server, base) = stack
            .database_url
            .rsplit_once('/')
            .context("DATABASE_URL has no database name")?;
        let name = unique_name(&format!("{base}_test"));
        let mut admin = MySqlConnection::connect(&stack.database_url)
            .await
            .with_context(|| format!("failed to connect to mysql at {server}"))?;
        sqlx::query(&format!("CREATE DATABASE `{name}`"))
            .execute(&mut admin)
            .await
            .with_context(|| format!("failed to create test database {name}"))?;
        let url = format!("{server}/{name}");
        let pool = MySqlPoolOptions::new()
            .max_connections(16)
            .connect(&url)
            .await
            .with_context(|| format!("failed to connect to test database {name}"))?;
        Ok(Self {
            name,
            url,
            pool,
            server_url: stack.database_url.clone(),
        })
    }

    pub async fn cleanup(self) -> anyhow::Result<()> {
        self.pool.close().await;
        let mut admin = MySqlConnection::connect(&self.server_url).await?;
        sqlx::query(&format!("DROP DATABASE IF EXISTS `{}`", self.name))
            .execute(&mut admin)
            .await?;
        Ok(())
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
                keys.push(key);
            }
            keys
        };
        if !keys.is_empty() {
            let _: () = conn.del(keys).await?;
        }
        Ok(())
    }
}

/// Polls `check` until it yields `Some`, or fails once `deadline` has passed. The way tests
/// wait for an asynchronous pipeline: on a condition, never on a sleep.
pub async fn eventually<T, F, Fut>(
    what: &str,
    deadline: Duration,
    mut check: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let give_up = tokio::time::Instant::now() + deadline;
    loop {
        if let Some(value) = check().await? {
            return Ok(value);
        }
        if tokio::time::Instant::now() >= give_up {
            bail!("gave up after {deadline:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
