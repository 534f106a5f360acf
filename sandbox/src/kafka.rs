//! A Kafka broker of one run's or one test's own: the real broker from the jars
//! `scripts/stack up` fetched, on free ports with its own data directory, so it can be killed,
//! paused and restarted without touching the shared stack.

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::{Context, bail};
use coupon_runtime::proxy::TcpProxy;
use rdkafka::{
    ClientConfig,
    consumer::{BaseConsumer, Consumer},
};

use crate::{process::Server, unique_name};

#[derive(Debug)]
pub struct PrivateKafka {
    pub brokers: String,
    dir: PathBuf,
    /// The broker's JVM: SIGKILL, SIGSTOP, SIGCONT.
    pub process: Server,
    /// In front of the broker's second listener, for a broker started with
    /// [`PrivateKafka::start_proxied`].
    proxy: Option<TcpProxy>,
}

/// Where `scripts/stack` caches the broker's jars (same env vars and defaults).
fn kafka_libs() -> anyhow::Result<PathBuf> {
    let version = std::env::var("KAFKA_VERSION").unwrap_or_else(|_| "4.1.1".into());
    let cache = match std::env::var_os("FCFS_CACHE_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => match std::env::var_os("XDG_CACHE_HOME") {
            Some(dir) => PathBuf::from(dir).join("fcfs-coupons"),
            None => PathBuf::from(std::env::var_os("HOME").context("HOME is not set")?)
                .join(".cache/fcfs-coupons"),
        },
    };
    let libs = cache.join(format!("kafka-{version}/libs"));
    if !libs.join(format!("kafka_2.13-{version}.jar")).exists() {
        bail!(
            "no kafka jars in {}: run scripts/stack up first",
            libs.display()
        );
    }
    Ok(libs)
}

/// The broker's properties with `{{PLACEHOLDERS}}`: the same file `scripts/stack` renders for
/// the shared broker.
const KRAFT_TEMPLATE: &str = include_str!("../../scripts/kafka/kraft.properties.template");

/// A single-node KRaft broker's properties, rendered from the stack's template.
pub fn kraft_properties(host: &str, port: u16, controller_port: u16, log_dir: &Path) -> String {
    let values = [
        ("{{NODE_ID}}", "1".to_owned()),
        ("{{HOST}}", host.to_owned()),
        ("{{PORT}}", port.to_string()),
        ("{{CONTROLLER_PORT}}", controller_port.to_string()),
        ("{{LOG_DIR}}", log_dir.display().to_string()),
    ];
    values
        .iter()
        .fold(KRAFT_TEMPLATE.to_owned(), |text, (placeholder, value)| {
            text.replace(placeholder, value)
        })
}

/// The properties with a second listener, `PROXIED`, bound at `port` and advertised at
/// `advertised`: a client that bootstraps there is told to open every connection there too.
pub fn with_proxied_listener(properties: &str, host: &str, port: u16, advertised: &str) -> String {
    properties
        .lines()
        .map(|line| {
            if line.starts_with("listeners=") {
                format!("{line},PROXIED://{host}:{port}")
            } else if line.starts_with("advertised.listeners=") {
                format!("{line},PROXIED://{advertised}")
            } else if line.starts_with("listener.security.protocol.map=") {
                format!("{line},PROXIED:PLAINTEXT")
            } else {
                line.to_owned()
            }
        })
        .map(|line| line + "\n")
        .collect()
}

/// Distinct free ports, and the listeners that hold them until dropped (so that nothing else
/// bound meanwhile gets one of them).
fn held_ports<const N: usize>() -> anyhow::Result<(Vec<TcpListener>, [u16; N])> {
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()?;
    let mut ports = [0; N];
    for (port, listener) in ports.iter_mut().zip(&listeners) {
        *port = listener.local_addr()?.port();
    }
    Ok((listeners, ports))
}

impl PrivateKafka {
    /// Formats a fresh data directory and starts the broker; returns once it answers.
    pub async fn start() -> anyhow::Result<Self> {
        let (_, [port, controller_port]) = held_ports()?;
        let dir = std::env::temp_dir().join(unique_name("fcfs-kafka"));
        let config = kraft_properties("127.0.0.1", port, controller_port, &dir.join("data"));
        Self::start_on(dir, port, config, None).await
    }

    /// A broker that clients can also reach through a [`TcpProxy`] of its own: a second
    /// listener advertises the proxy's address, so a client bootstrapped at
    /// [`PrivateKafka::proxied_brokers`] opens every connection through the proxy (and what the
    /// proxy does to them, [`PrivateKafka::proxy`], is a fault of that client's alone), while
    /// clients at `brokers` reach the broker directly.
    pub async fn start_proxied() -> anyhow::Result<Self> {
        let (held, [port, controller_port, proxied_port]) = held_ports()?;
        // Bound while the broker's ports are still held, so it cannot be given one of them.
        let proxy = TcpProxy::start(([127, 0, 0, 1], proxied_port).into())
            .await
            .context("failed to start the proxy in front of the private kafka broker")?;
        drop(held);
        let dir = std::env::temp_dir().join(unique_name("fcfs-kafka"));
        let config = with_proxied_listener(
            &kraft_properties("127.0.0.1", port, controller_port, &dir.join("data")),
            "127.0.0.1",
            proxied_port,
            &proxy.addr.to_string(),
        );
        Self::start_on(dir, port, config, Some(proxy)).await
    }

    async fn start_on(
        dir: PathBuf,
        port: u16,
        config: String,
        proxy: Option<TcpProxy>,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir.join("data"))?;
        std::fs::write(dir.join("server.properties"), config)?;
        let mut broker = Self {
            brokers: format!("127.0.0.1:{port}"),
            dir,
            process: Server::new("the private kafka broker"),
            proxy,
        };
        let mut format = broker.java()?;
        format
            .args([
                "kafka.tools.StorageTool",
                "format",
                "--cluster-id",
                "MkU3OEVBNTcwNTJENDM2Qk",
            ])
            .arg("--config")
            .arg(broker.dir.join("server.properties"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // A JVM's start: off the async runtime, so the other stores start meanwhile.
        let status = tokio::task::spawn_blocking(move || format.status())
            .await
            .context("kafka StorageTool's wait panicked")?
            .context("failed to run kafka StorageTool")?;
        anyhow::ensure!(status.success(), "kafka StorageTool format failed");
        broker.restart().await?;
        Ok(broker)
    }

    fn java(&self) -> anyhow::Result<Command> {
        let mut command = Command::new("java");
        command
            .args(["-Xms128m", "-Xmx384m", "-XX:+UseSerialGC", "-cp"])
            .arg(format!("{}/*", kafka_libs()?.display()));
        Ok(command)
    }

    /// The proxy in front of the broker's second listener (see [`PrivateKafka::start_proxied`]).
    pub fn proxy(&self) -> Option<&TcpProxy> {
        self.proxy.as_ref()
    }

    /// Where a client bootstraps to reach the broker through its proxy.
    pub fn proxied_brokers(&self) -> Option<String> {
        self.proxy.as_ref().map(|proxy| proxy.addr.to_string())
    }

    /// Starts the broker again on the same ports and data (after [`Server::kill`]), and waits
    /// until it answers.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        let mut broker = self.java()?;
        let log_path = self.dir.join("broker.log");
        let properties = self.dir.join("server.properties");
        self.process.start(|| {
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log_path)?;
            broker
                .arg("kafka.Kafka")
                .arg(&properties)
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()
                .context("failed to start a private kafka broker")
        })?;
        let brokers = self.brokers.clone();
        crate::eventually(
            &format!("the private kafka broker at {brokers} to answer"),
            Duration::from_secs(90),
            || {
                let brokers = brokers.clone();
                async move {
                    let answered = tokio::task::spawn_blocking(move || {
                        let consumer: BaseConsumer = ClientConfig::new()
                            .set("bootstrap.servers", &brokers)
                            .create()?;
                        let metadata = consumer.fetch_metadata(None, Duration::from_secs(1))?;
                        Ok::<_, rdkafka::error::KafkaError>(!metadata.brokers().is_empty())
                    })
                    .await?;
                    Ok(answered.unwrap_or(false).then_some(()))
                }
            },
        )
        .await
        .with_context(|| format!("see {}", self.dir.join("broker.log").display()))?;
        Ok(())
    }
}

crate::process::private_server!(PrivateKafka, "kafka", brokers);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_properties_fill_every_placeholder() {
        let text = kraft_properties("127.0.0.1", 19092, 19093, Path::new("/tmp/k&1"));
        assert!(!text.contains("{{"), "{text}");
        assert!(text.contains("\ncontroller.quorum.voters=1@127.0.0.1:19093\n"));
        assert!(
            text.contains("\nlisteners=PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093\n")
        );
        assert!(text.contains("\nlog.dirs=/tmp/k&1\n"));
    }

    #[test]
    fn a_proxied_listener_is_bound_at_its_port_and_advertised_at_the_proxy() {
        let base = kraft_properties("127.0.0.1", 19092, 19093, Path::new("/tmp/k"));
        let text = with_proxied_listener(&base, "127.0.0.1", 19094, "127.0.0.1:29094");
        assert!(text.contains(
            "\nlisteners=PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093,PROXIED://127.0.0.1:19094\n"
        ));
        assert!(text.contains(
            "\nadvertised.listeners=PLAINTEXT://127.0.0.1:19092,PROXIED://127.0.0.1:29094\n"
        ));
        assert!(text.contains(
            "\nlistener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,PROXIED:PLAINTEXT\n"
        ));
        assert_eq!(text.lines().count(), base.lines().count());
    }

    #[test]
    fn the_properties_are_the_ones_scripts_stack_writes() -> anyhow::Result<()> {
        let state_dir = std::env::temp_dir().join(unique_name("fcfs-stack"));
        let stack = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/stack");
        let output = Command::new(&stack)
            .arg("kafka-properties")
            .env("FCFS_STATE_DIR", &state_dir)
            .env("KAFKA_HOST", "127.0.0.1")
            .env("KAFKA_PORT", "19092")
            .env("KAFKA_CONTROLLER_PORT", "19093")
            .output()
            .with_context(|| format!("failed to run {}", stack.display()))?;
        anyhow::ensure!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(
            String::from_utf8(output.stdout)?,
            kraft_properties("127.0.0.1", 19092, 19093, &state_dir.join("data/kafka"))
        );
        assert!(
            !state_dir.exists(),
            "printing the properties writes nothing"
        );
        Ok(())
    }
}
