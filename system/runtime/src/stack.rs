//! Where the services are: one clap [`StackArgs`] flattened into every binary (the api, the
//! consumer, the verifier, loadgen) and built by testkit with `parse_from`, so an address, a
//! topic or a group is declared once. Every default matches the local stack (`scripts/stack`)
//! and `docker-compose.yml`, so nothing needs configuring on a machine that runs either.

use std::{fmt, net::SocketAddr};

use anyhow::Context;
use clap::Args;

/// Redis, as `scripts/stack up` starts it. Env: `REDIS_URL`.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";
/// MariaDB or MySQL, with the project's database and account. Env: `DATABASE_URL`.
pub const DEFAULT_DATABASE_URL: &str = "mysql://coupons:coupons@127.0.0.1:3306/coupons";
/// The Kafka bootstrap servers. Env: `KAFKA_BROKERS`.
pub const DEFAULT_KAFKA_BROKERS: &str = "127.0.0.1:9092";
/// Where the api listens. Env: `API_ADDR`.
pub const DEFAULT_API_ADDR: &str = "127.0.0.1:8080";
/// The topic of `CouponIssued` events (the original course's name). Env: `KAFKA_TOPIC`.
pub const DEFAULT_TOPIC: &str = "coupon_create";
/// Partitions the api and the consumer create the topic with, when it is missing.
pub const DEFAULT_TOPIC_PARTITIONS: i32 = 6;
/// The consumer group that writes coupons. Env: `KAFKA_GROUP`.
pub const DEFAULT_CONSUMER_GROUP: &str = "coupon-writer";
/// The campaign that exists out of the box.
pub const DEFAULT_CAMPAIGN: &str = "default";
/// The topic the course's Kafka stages send to (the course calls it `coupon_create`; ours has
/// that name). Env: `COURSE_TOPIC`.
pub const DEFAULT_COURSE_TOPIC: &str = "course_coupon_create";
/// The course's consumer group. Env: `COURSE_GROUP`.
pub const DEFAULT_COURSE_GROUP: &str = "group_1";
/// The prefix of every Redis key. Env: `REDIS_KEY_PREFIX`.
pub const DEFAULT_REDIS_KEY_PREFIX: &str = "coupon";

/// The stores' addresses, topics and groups.
#[derive(Clone, Args, PartialEq, Eq)]
pub struct StackArgs {
    /// Redis holding the gate.
    #[arg(long, env = "REDIS_URL", default_value = DEFAULT_REDIS_URL)]
    pub redis_url: String,

    /// Prefix of every Redis key the gate and the course's stages use.
    #[arg(long, env = "REDIS_KEY_PREFIX", default_value = DEFAULT_REDIS_KEY_PREFIX)]
    pub redis_key_prefix: String,

    /// MySQL or MariaDB holding campaigns, coupons and failed events.
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    pub database_url: String,

    /// Kafka bootstrap servers.
    #[arg(long, env = "KAFKA_BROKERS", default_value = DEFAULT_KAFKA_BROKERS)]
    pub kafka_brokers: String,

    /// Topic of `CouponIssued` events.
    #[arg(long, env = "KAFKA_TOPIC", default_value = DEFAULT_TOPIC)]
    pub topic: String,

    /// Partitions to create the topics with, when they are missing.
    #[arg(long, env = "KAFKA_TOPIC_PARTITIONS", default_value_t = DEFAULT_TOPIC_PARTITIONS)]
    pub topic_partitions: i32,

    /// The consumer group that writes coupons (the verifier reads its offsets without joining).
    #[arg(long, env = "KAFKA_GROUP", default_value = DEFAULT_CONSUMER_GROUP)]
    pub group: String,

    /// Topic the course's Kafka stages send to (docs/stages.md).
    #[arg(long, env = "COURSE_TOPIC", default_value = DEFAULT_COURSE_TOPIC)]
    pub course_topic: String,

    /// The course's consumer group.
    #[arg(long, env = "COURSE_GROUP", default_value = DEFAULT_COURSE_GROUP)]
    pub course_group: String,
}

impl StackArgs {
    /// The local stack's settings, overridden by the environment like any binary's.
    pub fn from_env() -> Self {
        Self::parse_from(["stack"])
    }

    /// The settings from command-line flags (`argv[0]` first) over the environment.
    pub fn parse_from<I, T>(argv: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        #[derive(clap::Parser)]
        struct Only {
            #[command(flatten)]
            stack: StackArgs,
        }
        <Only as clap::Parser>::parse_from(argv).stack
    }

    /// The same settings as the environment of a child process (whose own `StackArgs` reads
    /// them back): flags given to a parent reach the processes it starts.
    pub fn to_env(&self) -> Vec<(String, String)> {
        [
            ("REDIS_URL", self.redis_url.clone()),
            ("REDIS_KEY_PREFIX", self.redis_key_prefix.clone()),
            ("DATABASE_URL", self.database_url.clone()),
            ("KAFKA_BROKERS", self.kafka_brokers.clone()),
            ("KAFKA_TOPIC", self.topic.clone()),
            ("KAFKA_TOPIC_PARTITIONS", self.topic_partitions.to_string()),
            ("KAFKA_GROUP", self.group.clone()),
            ("COURSE_TOPIC", self.course_topic.clone()),
            ("COURSE_GROUP", self.course_group.clone()),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect()
    }

    /// The database url without its password.
    pub fn database_address(&self) -> String {
        redact(&self.database_url)
    }

    /// REDIS_URL without its password, for messages and logs.
    pub fn redis_address(&self) -> String {
        redact(&self.redis_url)
    }

    /// Where MySQL listens, resolved from DATABASE_URL (port 3306 when it names none): what a
    /// TCP proxy in front of it connects to.
    pub async fn database_socket_addr(&self) -> anyhow::Result<SocketAddr> {
        url_socket_addr(&self.database_url, 3306).await
    }

    /// Where Redis listens, resolved from REDIS_URL (port 6379 when it names none).
    pub async fn redis_socket_addr(&self) -> anyhow::Result<SocketAddr> {
        url_socket_addr(&self.redis_url, 6379).await
    }

    /// Where the first of KAFKA_BROKERS listens, resolved (port 9092 when it names none).
    pub async fn kafka_socket_addr(&self) -> anyhow::Result<SocketAddr> {
        let first = self
            .kafka_brokers
            .split(',')
            .next()
            .unwrap_or_default()
            .trim();
        url_socket_addr(&format!("kafka://{first}"), 9092).await
    }

    /// DATABASE_URL with its `host:port` replaced by `addr` (a proxy's), and nothing else changed.
    pub fn database_url_via(&self, addr: SocketAddr) -> anyhow::Result<String> {
        url_via(&self.database_url, addr)
    }
}

impl fmt::Debug for StackArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StackArgs")
            .field("redis_url", &self.redis_address())
            .field("redis_key_prefix", &self.redis_key_prefix)
            .field("database_url", &self.database_address())
            .field("kafka_brokers", &self.kafka_brokers)
            .field("topic", &self.topic)
            .field("group", &self.group)
            .field("course_topic", &self.course_topic)
            .field("course_group", &self.course_group)
            .finish_non_exhaustive()
    }
}

/// A URL such as `mysql://user:secret@host:port/db` or `redis://:secret@host` without the
/// password, for messages, logs and replies.
pub fn redact(database_url: &str) -> String {
    match (database_url.find("://"), database_url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &database_url[scheme_end + 3..at];
            let user = credentials.split(':').next().unwrap_or_default();
            format!(
                "{}{user}@{}",
                &database_url[..scheme_end + 3],
                &database_url[at + 1..]
            )
        }
        _ => database_url.to_owned(),
    }
}

/// Where the service of a URL such as `mysql://user:secret@host:port/db` or `redis://host:port`
/// listens, resolved (`default_port` when the URL names none).
pub async fn url_socket_addr(url: &str, default_port: u16) -> anyhow::Result<SocketAddr> {
    let (_, host_port) = split_address(url)?;
    let host_port = if host_port.contains(':') {
        host_port.to_owned()
    } else {
        format!("{host_port}:{default_port}")
    };
    tokio::net::lookup_host(&host_port)
        .await
        .ok()
        .and_then(|mut found| found.next())
        .with_context(|| {
            format!(
                "the address {host_port} in {} does not resolve",
                redact(url)
            )
        })
}

/// `url` with its `host:port` replaced by `addr` (a proxy's), and nothing else changed.
pub fn url_via(url: &str, addr: SocketAddr) -> anyhow::Result<String> {
    let (at, host_port) = split_address(url)?;
    let rest = &url[at + host_port.len()..];
    Ok(format!("{}{addr}{rest}", &url[..at]))
}

/// Where the `host:port` of a URL starts, and the `host:port` itself.
fn split_address(url: &str) -> anyhow::Result<(usize, &str)> {
    let at = url
        .rfind('@')
        .map_or_else(|| url.find("://").map(|i| i + 3), |i| Some(i + 1))
        .with_context(|| format!("cannot read the address in {}", redact(url)))?;
    let rest = &url[at..];
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    Ok((at, &rest[..end]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_the_password_only() {
        assert_eq!(
            redact("mysql://coupons:secret@127.0.0.1:3306/coupons"),
            "mysql://coupons@127.0.0.1:3306/coupons"
        );
        assert_eq!(redact("mysql://127.0.0.1/db"), "mysql://127.0.0.1/db");
    }

    #[test]
    fn the_database_url_is_rewritten_to_a_proxy_and_nothing_else_changes() {
        let proxy: SocketAddr = "127.0.0.1:4444".parse().expect("valid");
        let via = |url: &str| {
            StackArgs::parse_from(["x", "--database-url", url])
                .database_url_via(proxy)
                .ok()
        };
        assert_eq!(
            via("mysql://coupons:secret@db.local:3306/coupons?ssl-mode=disabled").as_deref(),
            Some("mysql://coupons:secret@127.0.0.1:4444/coupons?ssl-mode=disabled")
        );
        assert_eq!(
            via("mysql://127.0.0.1:3306/db").as_deref(),
            Some("mysql://127.0.0.1:4444/db")
        );
        assert_eq!(via("not a url"), None);
    }

    #[test]
    fn defaults_are_the_local_stack_and_debug_hides_the_password() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            stack: StackArgs,
        }
        let cli = <Cli as clap::Parser>::parse_from([
            "x",
            "--database-url",
            "mysql://u:hunter2@db:3306/x",
            "--redis-url",
            "redis://:swordfish@cache:6379",
            "--topic",
            "t",
        ]);
        assert_eq!(cli.stack.topic, "t");
        assert_eq!(cli.stack.course_group, DEFAULT_COURSE_GROUP);
        let shown = format!("{:?}", cli.stack);
        assert!(
            !shown.contains("hunter2") && !shown.contains("swordfish"),
            "{shown}"
        );
        assert_eq!(cli.stack.redis_address(), "redis://@cache:6379");
    }
}
