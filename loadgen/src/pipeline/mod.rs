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

/// The apis and consumer loadgen started.
#[derive(Debug)]
pub struct Pipeline {
    /// The first at the address loadgen was given, the others on free ports.
    apis: Vec<ApiChild>,
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

    /// Starts `apis` apis, the first on `addr` (answering as `api`, with its admin token) and
    /// the others on free ports, each reaching Kafka at `api_kafka` when given, else at the
    /// stack's brokers; and the consumer, all logging to `log`. Waits until every api answers
    /// and the consumer holds its partitions. With a `control`, all run with its fix switched
    /// off.
    pub async fn start(
        stack: &StackArgs,
        api_kafka: Option<String>,
        (addr, apis): (SocketAddr, u16),
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
        let api_kafka = api_kafka.unwrap_or_else(|| stack.kafka_brokers.clone());
        let mut api_children = Vec::new();
        for index in 0..apis {
            let addr = if index == 0 { addr } else { free_addr()? };
            let spec = ChildSpec::new(
                "api",
                log,
                stack,
                [
                    ("API_ADDR", addr.to_string()),
                    ("ADMIN_TOKEN", token.clone()),
                    ("KAFKA_BROKERS", api_kafka.clone()),
                    (control::ENV, control.clone()),
                ],
            );
            let client = ApiClient::new(&format!("http://{addr}"), Some(token.clone()))?;
            api_children.push(ApiChild {
                spec,
                client,
                child: std::sync::Mutex::new(None),
            });
        }
        let consumer_metrics = free_addr()?;
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
        let started = async {
            for api_child in &api_children {
                api_child.start().await?;
            }
            consumer.replace(&[]).await?;
            consumer.wait_ready(api.http()).await
        }
        .await;
        if let Err(error) = started {
            for api_child in &api_children {
                if let Some(mut running) = api_child.take() {
                    child::kill(&mut running);
                }
            }
            if let Ok(mut slot) = consumer.child.lock()
                && let Some(mut consumer_child) = slot.take()
            {
                child::kill(&mut consumer_child);
            }
            return Err(error);
        }
        let watcher = tokio::spawn(consumer.clone().watch());
        Ok(Self {
            apis: api_children,
            consumer,
            watcher,
            database_proxy,
        })
    }

    /// Where each api answers, the first at the address loadgen was given.
    pub fn api_urls(&self) -> Vec<String> {
        self.apis
            .iter()
            .map(|a| a.client.base_url.clone())
            .collect()
    }

    /// Fault `api-crash`: SIGKILL api `index` (no graceful stop: its requests in flight, and
    /// its admissions whose events were not yet published, die with it). Returns what it was,
    /// for the history: `api http://… (pid N)`.
    pub fn kill_api(&self, index: usize) -> anyhow::Result<String> {
        let api = self.apis.get(index).context("no such api")?;
        let mut running = api.take().context("that api is not running")?;
        let what = format!("api {} (pid {})", api.client.base_url, running.id());
        if let Err(error) = running.kill() {
            // Still ours to stop.
            if let Ok(mut slot) = api.child.lock() {
                *slot = Some(running);
            }
            return Err(error).context("failed to SIGKILL the api");
        }
        running.wait()?;
        Ok(what)
    }

    /// Starts api `index` again, on the same address, and waits until it answers. Returns
    /// what it is now, for the history.
    pub async fn restart_api(&self, index: usize) -> anyhow::Result<String> {
        let api = self.apis.get(index).context("no such api")?;
        api.start().await?;
        Ok(api.describe())
    }

    /// Fault `clock-skew`: stops api `index` (SIGTERM: it finishes what it is answering) and
    /// starts it again on the same address with its clock `offset` off (zero: the true clock),
    /// waiting until it answers. Returns what it is now, for the history.
    pub async fn restart_api_with_clock(
        &self,
        index: usize,
        offset: time::Duration,
    ) -> anyhow::Result<String> {
        let api = self.apis.get(index).context("no such api")?;
        if let Some(mut running) = api.take() {
            tokio::task::spawn_blocking(move || child::terminate(&mut running))
                .await
                .context("stopping an api panicked")??;
        }
        let offset_ms = offset.whole_milliseconds().to_string();
        api.start_with(&[(child::CLOCK_OFFSET_MS, offset_ms)])
            .await?;
        Ok(api.describe())
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

    /// Stops every child gracefully and waits for them.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.consumer.stopping.store(true, Ordering::SeqCst);
        let _ = (&mut self.watcher).await;
        let consumer = self.consumer.clone();
        let apis: Vec<(String, Child)> = self
            .apis
            .iter()
            .filter_map(|api| api.take().map(|c| (api.client.base_url.clone(), c)))
            .collect();
        tokio::task::spawn_blocking(move || {
            // Every api is asked to stop before any is waited for: they drain at once.
            for (_, api) in &apis {
                child::signal_stop(api);
            }
            let mut failures = Vec::new();
            for (url, mut api) in apis {
                match api.wait() {
                    Ok(status) if status.success() => {}
                    Ok(status) => failures.push(format!("the api at {url} exited with {status}")),
                    Err(error) => failures.push(format!("the api at {url}: {error}")),
                }
            }
            let consumer = match consumer.child.lock() {
                Ok(mut slot) => slot.as_mut().map(child::terminate).transpose()?,
                Err(_) => None,
            };
            anyhow::ensure!(failures.is_empty(), "{}", failures.join("; "));
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

/// One api child: how to start it, where it answers, and its process while it runs.
#[derive(Debug)]
struct ApiChild {
    spec: ChildSpec,
    client: ApiClient,
    child: std::sync::Mutex<Option<Child>>,
}

impl ApiChild {
    /// Spawns the api and waits until it answers; refused while it runs.
    async fn start(&self) -> anyhow::Result<()> {
        self.start_with(&[]).await
    }

    /// [`Self::start`], with `extra_env` on top of its settings.
    async fn start_with(&self, extra_env: &[(&str, String)]) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.child.lock().map_or(true, |c| c.is_none()),
            "the api at {} is already running",
            self.client.base_url
        );
        let mut running = self.spec.spawn(extra_env)?;
        if let Err(error) = child::wait_answering(&mut running, &self.client).await {
            child::kill(&mut running);
            let log = self.spec.log.display();
            return Err(error.context(format!("the api did not start; see {log}")));
        }
        if let Ok(mut slot) = self.child.lock() {
            *slot = Some(running);
        }
        Ok(())
    }

    /// What it is, for the history: `api http://… (pid N)`.
    fn describe(&self) -> String {
        let pid = self
            .child
            .lock()
            .ok()
            .and_then(|c| c.as_ref().map(Child::id));
        format!(
            "api {} (pid {})",
            self.client.base_url,
            pid.unwrap_or_default()
        )
    }

    /// The running process, taken out (to kill or stop it).
    fn take(&self) -> Option<Child> {
        self.child.lock().ok().and_then(|mut c| c.take())
    }
}

/// A free loopback port.
fn free_addr() -> anyhow::Result<SocketAddr> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .context("failed to find a free port on 127.0.0.1")
}

/// Stops a child [`Pipeline::spawn_extra_consumer`] started (SIGTERM, then waits).
pub async fn stop_child(mut child: Child) -> anyhow::Result<std::process::ExitStatus> {
    tokio::task::spawn_blocking(move || child::terminate(&mut child))
        .await
        .context("stopping a consumer panicked")?
}
