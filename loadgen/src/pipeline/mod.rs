//! The api and the consumer, started by loadgen itself against the configured stack
//! (REDIS_URL, DATABASE_URL, KAFKA_BROKERS), and the faults a run can inject into them.
//!
//! loadgen starts them as child processes of its own binary (`loadgen __serve-pipeline api` and
//! `... consumer`), not in its own process: a 10,000-user burst needs 10,000 client sockets and
//! 10,000 server sockets, and one process's descriptor limit (20,000 here, not raisable without
//! privileges) cannot hold both. The consumer has a process of its own so that a fault can kill
//! it alone; a watcher restarts it when it dies. The consumer reaches MySQL through a TCP proxy
//! that a fault can cut. The children stop with loadgen (SIGTERM, and a parent-death signal
//! should loadgen die).

mod child;

use std::{
    net::SocketAddr,
    path::Path,
    process::Child,
    sync::{Arc, atomic::Ordering},
};

use anyhow::Context;
use coupon_runtime::{proxy::TcpProxy, stack::StackArgs};
use nix::sys::signal;

use child::{ChildSpec, SupervisedConsumer};
pub use child::{SERVE_PIPELINE, serve};

use crate::{
    client::ApiClient,
    control::{self, Control},
};

/// The api and consumer loadgen started.
#[derive(Debug)]
pub struct Pipeline {
    api: Child,
    consumer: Arc<SupervisedConsumer>,
    watcher: tokio::task::JoinHandle<()>,
    /// Between the consumer and MySQL, for `--fault db-outage`.
    database_proxy: TcpProxy,
}

impl Pipeline {
    /// The consumer's `/metrics`, wherever its current process serves it.
    pub fn consumer_metrics_url(&self) -> String {
        format!("http://{}/metrics", self.consumer.metrics_addr)
    }

    /// Starts the api on `addr` (answering as `api`, with its admin token; reaching Kafka at
    /// `api_kafka` when given, else at the stack's brokers) and the consumer, both logging to
    /// `log`, and waits until the api answers and the consumer holds its partitions. With a
    /// `control`, both run with its fix switched off.
    pub async fn start(
        stack: &StackArgs,
        api_kafka: Option<String>,
        addr: SocketAddr,
        api: &ApiClient,
        log: &Path,
        control: Option<Control>,
    ) -> anyhow::Result<Self> {
        let control = control.map(|c| c.to_string()).unwrap_or_default();
        let token = api
            .admin_token
            .clone()
            .context("the api loadgen starts needs an admin token")?;
        let database_proxy = TcpProxy::start(stack.database_socket_addr().await?)
            .await
            .context("failed to start the consumer's database proxy")?;
        let consumer_database_url = stack.database_url_via(database_proxy.addr)?;
        let api_spec = ChildSpec::new(
            "api",
            log,
            stack,
            [
                ("API_ADDR", addr.to_string()),
                ("ADMIN_TOKEN", token),
                (
                    "KAFKA_BROKERS",
                    api_kafka.unwrap_or_else(|| stack.kafka_brokers.clone()),
                ),
                (control::ENV, control.clone()),
            ],
        );
        let consumer_metrics = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .context("failed to find a free port for the consumer's /metrics")?;
        let consumer_spec = ChildSpec::new(
            "consumer",
            log,
            stack,
            [
                ("CONSUMER_METRICS_ADDR", consumer_metrics.to_string()),
                ("DATABASE_URL", consumer_database_url),
                (control::ENV, control),
            ],
        );
        let consumer = Arc::new(SupervisedConsumer::new(consumer_spec, consumer_metrics));
        let mut api_child = api_spec.spawn(&[])?;
        let started = async {
            child::wait_answering(&mut api_child, api)
                .await
                .with_context(|| format!("the api did not start; see {}", log.display()))?;
            consumer.replace(&[]).await?;
            consumer.wait_ready(api.http()).await
        }
        .await;
        if let Err(error) = started {
            child::kill(&mut api_child);
            if let Ok(mut slot) = consumer.child.lock()
                && let Some(mut consumer_child) = slot.take()
            {
                child::kill(&mut consumer_child);
            }
            return Err(error);
        }
        let watcher = tokio::spawn(consumer.clone().watch());
        Ok(Self {
            api: api_child,
            consumer,
            watcher,
            database_proxy,
        })
    }

    /// Fault `consumer-crash`: restarts the consumer armed to crash (SIGKILL) after writing
    /// `rows` coupon rows; the watcher then restarts it unarmed.
    pub async fn arm_consumer_crash(
        &self,
        client: &reqwest::Client,
        rows: u64,
    ) -> anyhow::Result<()> {
        self.consumer
            .replace(&[("FAULT_CRASH_AFTER_ROWS", rows.to_string())])
            .await?;
        self.consumer.wait_ready(client).await
    }

    /// Fault `consumer-crash` at a time: SIGKILL the consumer now (the watcher restarts it);
    /// returns the killed process's pid.
    pub fn kill_consumer(&self) -> anyhow::Result<u32> {
        let slot = self
            .consumer
            .child
            .lock()
            .map_err(|_| anyhow::anyhow!("consumer lock poisoned"))?;
        let child = slot.as_ref().context("no consumer is running")?;
        let pid = child.id();
        signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(pid).context("consumer pid out of range")?),
            signal::Signal::SIGKILL,
        )
        .context("failed to SIGKILL the consumer")?;
        Ok(pid)
    }

    /// Fault `rebalance-storm`: one more consumer of the same group (its `/metrics` on a free
    /// port), logging beside the others. Stop it with [`stop_child`].
    pub fn spawn_extra_consumer(&self) -> anyhow::Result<Child> {
        self.consumer
            .spec
            .spawn(&[("CONSUMER_METRICS_ADDR", "127.0.0.1:0".to_owned())])
    }

    /// Where the consumer's database proxy forwards to, and where it listens.
    pub fn database_proxy(&self) -> String {
        format!("consumer → proxy {} → mysql", self.database_proxy.addr)
    }

    /// How many times the consumer died and was restarted.
    pub fn consumer_restarts(&self) -> u32 {
        self.consumer.restarts.load(Ordering::SeqCst)
    }

    /// Fault `db-outage`: takes MySQL away from the consumer (only): open connections drop,
    /// new ones are refused.
    pub fn cut_consumer_database(&self) {
        self.database_proxy.cut();
    }

    pub fn restore_consumer_database(&self) {
        self.database_proxy.restore();
    }

    /// Stops both children gracefully and waits for them.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.consumer.stopping.store(true, Ordering::SeqCst);
        let _ = (&mut self.watcher).await;
        let consumer = self.consumer.clone();
        tokio::task::spawn_blocking(move || {
            let api = child::terminate(&mut self.api)?;
            let consumer = match consumer.child.lock() {
                Ok(mut slot) => slot.as_mut().map(child::terminate).transpose()?,
                Err(_) => None,
            };
            anyhow::ensure!(api.success(), "the api child exited with {api}");
            // A consumer restarted after a crash may still be connecting, where SIGTERM ends it
            // at once: that is the stop asked for, not a failure.
            if let Some(status) = consumer {
                use std::os::unix::process::ExitStatusExt;
                anyhow::ensure!(
                    status.success() || status.signal() == Some(signal::Signal::SIGTERM as i32),
                    "the consumer child exited with {status}"
                );
            }
            Ok(())
        })
        .await
        .context("stopping the pipeline children panicked")?
    }
}

/// Stops a child [`Pipeline::spawn_extra_consumer`] started (SIGTERM, then waits).
pub async fn stop_child(mut child: Child) -> anyhow::Result<std::process::ExitStatus> {
    tokio::task::spawn_blocking(move || child::terminate(&mut child))
        .await
        .context("stopping a consumer panicked")?
}
