//! Stores of a run's own, for the faults that act on the stores themselves (a kill, a
//! flush, a rollback, a pause), which every other run and test on the shared stack relies on:
//! a `redis-server` and a Kafka broker on free ports, and a database of its own on the project's
//! MySQL server (or, for the faults on the database server itself, a MariaDB server of its
//! own), so that the run's campaign, events and rows are all in one place. The run is
//! verified before the sandbox stops; the stores are gone afterwards.

use coupon_domain::wire::PrivateStores;
use coupon_runtime::stack::{StackArgs, redact};
use sandbox::{
    database::PrivateDatabase,
    kafka::PrivateKafka,
    mysql::PrivateMysql,
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
    database: Database,
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
        let own_server = faults.iter().any(|f| f.kind.needs_own_mysql_server());
        eprintln!(
            "starting stores of the run's own (a Redis, a Kafka broker, {})",
            if own_server {
                "a MariaDB server"
            } else {
                "a database"
            }
        );
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
            Database::start(&base.database_url, own_server),
        );
        let (redis, kafka, database) = match (redis, kafka, database) {
            (Ok(redis), Ok(kafka), Ok(database)) => (redis, kafka, database),
            (redis, kafka, database) => {
                // Whatever did start stops here (Redis and the broker on drop).
                if let Ok(database) = database {
                    let _ = database.stop().await;
                }
                redis?;
                kafka?;
                anyhow::bail!("unreachable: every store started");
            }
        };
        let stack = StackArgs {
            redis_url: redis.url.clone(),
            kafka_brokers: kafka.brokers.clone(),
            database_url: database.url().to_owned(),
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
            database
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

    /// The run's own MariaDB server, for the faults that act on it.
    pub fn mysql(&self) -> Option<&Mutex<PrivateMysql>> {
        match &self.database {
            Database::Server { server, .. } => Some(server),
            Database::OnShared(_) => None,
        }
    }

    /// Stops the broker and Redis and drops the database (the pipeline on them stopped first).
    pub async fn stop(self) -> anyhow::Result<()> {
        drop(self.redis);
        drop(self.kafka);
        self.database.stop().await
    }
}

/// Where the run's database is.
#[derive(Debug)]
enum Database {
    /// A database of its own on the project's MySQL server.
    OnShared(PrivateDatabase),
    /// The project's database on a MariaDB server of its own.
    Server {
        url: String,
        address: String,
        server: Mutex<PrivateMysql>,
    },
}

impl Database {
    async fn start(database_url: &str, own_server: bool) -> anyhow::Result<Self> {
        Ok(if own_server {
            let server = PrivateMysql::start(database_url).await?;
            Self::Server {
                url: server.url.clone(),
                address: server.address.clone(),
                server: Mutex::new(server),
            }
        } else {
            Self::OnShared(PrivateDatabase::create(database_url, "fault").await?)
        })
    }

    fn url(&self) -> &str {
        match self {
            Self::OnShared(database) => &database.url,
            Self::Server { url, .. } => url,
        }
    }

    async fn stop(self) -> anyhow::Result<()> {
        match self {
            Self::OnShared(database) => database.drop().await,
            Self::Server { server, .. } => {
                drop(server);
                Ok(())
            }
        }
    }
}

impl std::fmt::Display for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::OnShared(database) => write!(f, "database {}", database.name),
            Self::Server { address, .. } => write!(f, "mariadb {address} of its own"),
        }
    }
}
