//! The api a run aims at: one already answering at --host, or the api and the consumer started
//! by loadgen itself against the configured stack (REDIS_URL, DATABASE_URL, KAFKA_BROKERS).
//!
//! loadgen starts them as child processes of its own binary (`loadgen __serve-pipeline api` and
//! `... consumer`), not in its own process: a 10,000-user burst needs 10,000 client sockets and
//! 10,000 server sockets, and one process's descriptor limit (20,000 here, not raisable without
//! privileges) cannot hold both. The consumer has a process of its own so that a fault can kill
//! it alone; a watcher restarts it when it dies. The children stop with loadgen (SIGTERM, and a
//! parent-death signal should loadgen die).

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU32, Ordering},
    },
    time::Duration,
};

use anyhow::{Context, bail};
use clap::Parser;
use coupon_runtime::proxy::TcpProxy;
use coupon_runtime::stack::StackArgs;
use nix::{sys::signal, unistd::Pid};
use serde_json::{Value, json};

/// The hidden first argument that turns loadgen into a pipeline child; `api` or `consumer`
/// follows it.
pub const SERVE_PIPELINE: &str = "__serve-pipeline";

/// Sends SIGTERM (finish requests, flush the producer, commit offsets) and waits.
fn terminate(child: &mut Child) -> anyhow::Result<std::process::ExitStatus> {
    let pid = Pid::from_raw(i32::try_from(child.id()).context("child pid out of range")?);
    let _ = signal::kill(pid, signal::Signal::SIGTERM);
    child.wait().context("failed to wait for a pipeline child")
}

/// How to start a child: which part, its log, and its environment.
#[derive(Debug, Clone)]
struct ChildSpec {
    part: &'static str,
    log: PathBuf,
    env: Vec<(String, String)>,
}

impl ChildSpec {
    fn spawn(&self, extra_env: &[(&str, String)]) -> anyhow::Result<Child> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("failed to open {}", self.log.display()))?;
        let mut command =
            Command::new(std::env::current_exe().context("cannot find the loadgen binary")?);
        command
            .arg(SERVE_PIPELINE)
            .arg(self.part)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        for (key, value) in &self.env {
            command.env(key, value);
        }
        for (key, value) in extra_env {
            command.env(key, value);
        }
        command
            .spawn()
            .with_context(|| format!("failed to start the {} child", self.part))
    }
}

/// The consumer child, restarted by a watcher whenever it dies.
#[derive(Debug)]
struct SupervisedConsumer {
    spec: ChildSpec,
    /// Its `/metrics` address, where it says which partitions its loops hold.
    metrics_addr: SocketAddr,
    child: Mutex<Option<Child>>,
    stopping: AtomicBool,
    restarts: AtomicU32,
}

impl SupervisedConsumer {
    /// Stops the running consumer (gracefully) and starts a new one with `extra_env`. The lock
    /// is held only to swap children, never while waiting for one to exit.
    async fn replace(&self, extra_env: &[(&str, String)]) -> anyhow::Result<()> {
        let old = self
            .child
            .lock()
            .map_err(|_| anyhow::anyhow!("consumer lock poisoned"))?
            .take();
        if let Some(mut old) = old {
            tokio::task::spawn_blocking(move || terminate(&mut old))
                .await
                .context("stopping the consumer panicked")??;
        }
        let new = self.spec.spawn(extra_env)?;
        *self
            .child
            .lock()
            .map_err(|_| anyhow::anyhow!("consumer lock poisoned"))? = Some(new);
        Ok(())
    }

    /// Waits until both of the consumer's loops hold partitions (its `/metrics` says so): from
    /// then on, a burst's events are consumed as they arrive.
    async fn wait_ready(&self, client: &reqwest::Client, log: &Path) -> anyhow::Result<()> {
        let url = format!("http://{}/metrics", self.metrics_addr);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        loop {
            let metrics = match client
                .get(&url)
                .timeout(Duration::from_secs(2))
                .send()
                .await
            {
                Ok(response) if response.status().is_success() => {
                    response.text().await.unwrap_or_default()
                }
                _ => String::new(),
            };
            if ["pipeline", "course"]
                .iter()
                .all(|name| assigned_partitions(&metrics, name) > 0)
            {
                return Ok(());
            }
            let exited = self
                .child
                .lock()
                .ok()
                .and_then(|mut slot| slot.as_mut().and_then(|c| c.try_wait().ok().flatten()));
            if let Some(status) = exited {
                bail!(
                    "the consumer exited with {status} before it was ready; see {}",
                    log.display()
                );
            }
            if tokio::time::Instant::now() >= deadline {
                bail!(
                    "the consumer was not assigned its partitions within 120s; see {}",
                    log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Restarts the consumer whenever it exits, until loadgen stops it.
    async fn watch(self: Arc<Self>) {
        while !self.stopping.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let Ok(mut slot) = self.child.lock() else {
                return;
            };
            let exited = slot.as_mut().and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited
                && !self.stopping.load(Ordering::SeqCst)
            {
                eprintln!("the consumer exited ({status}); restarting it");
                self.restarts.fetch_add(1, Ordering::SeqCst);
                match self.spec.spawn(&[]) {
                    Ok(child) => *slot = Some(child),
                    Err(error) => {
                        eprintln!("could not restart the consumer: {error:#}");
                        *slot = None;
                    }
                }
            }
        }
    }
}

/// The api and consumer loadgen started, if it started them.
#[derive(Debug)]
pub struct Pipeline {
    api: Child,
    consumer: Arc<SupervisedConsumer>,
    watcher: tokio::task::JoinHandle<()>,
    /// Between the consumer and MySQL, for `--fault db-outage`.
    database_proxy: TcpProxy,
}

impl Pipeline {
    /// Restarts the consumer armed to crash (SIGKILL) after writing `rows` coupon rows; the
    /// watcher then restarts it unarmed.
    pub async fn arm_consumer_crash(
        &self,
        client: &reqwest::Client,
        rows: u64,
    ) -> anyhow::Result<()> {
        self.consumer
            .replace(&[("FAULT_CRASH_AFTER_ROWS", rows.to_string())])
            .await?;
        self.consumer
            .wait_ready(client, &self.consumer.spec.log)
            .await
    }

    /// How many times the consumer died and was restarted.
    pub fn consumer_restarts(&self) -> u32 {
        self.consumer.restarts.load(Ordering::SeqCst)
    }

    /// Takes MySQL away from the consumer (only): open connections drop, new ones are refused.
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
            let api = terminate(&mut self.api)?;
            let consumer = match consumer.child.lock() {
                Ok(mut slot) => slot.as_mut().map(terminate).transpose()?,
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

#[derive(Debug)]
pub struct Target {
    pub base_url: String,
    pub admin_token: Option<String>,
    pub pipeline: Option<Pipeline>,
}

#[derive(Parser)]
struct ApiFromEnv {
    #[command(flatten)]
    settings: coupon_api::Settings,
}

#[derive(Parser)]
struct ConsumerFromEnv {
    #[command(flatten)]
    settings: coupon_consumer::Settings,
}

/// A child's whole life: the api or the consumer from env settings, until SIGTERM.
pub async fn serve_pipeline(part: &str) -> anyhow::Result<()> {
    #[cfg(target_os = "linux")]
    let _ = nix::sys::prctl::set_pdeathsig(signal::Signal::SIGTERM);
    match part {
        "api" => {
            let api = ApiFromEnv::try_parse_from(["coupon-api"])?.settings;
            coupon_api::Application::build(api)
                .await
                .context("failed to start the api")?
                .run_until_stopped(coupon_runtime::shutdown_signal())
                .await
        }
        "consumer" => {
            let consumer = ConsumerFromEnv::try_parse_from(["coupon-consumer"])?.settings;
            coupon_consumer::Consumer::build(consumer)
                .await
                .context("failed to start the consumer")?
                .run_until_stopped(coupon_runtime::shutdown_signal())
                .await
        }
        other => bail!("unknown pipeline part `{other}`, expected api or consumer"),
    }
}

/// The consumer's `coupon_consumer_assigned_partitions{consumer="<name>"}` gauge.
fn assigned_partitions(metrics: &str, name: &str) -> u64 {
    let prefix = format!("coupon_consumer_assigned_partitions{{consumer=\"{name}\"}} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0)
}

/// `mysql://user:secret@host:port/db` with `host:port` replaced by `addr`, and the address it
/// replaced.
fn database_via(database_url: &str, addr: SocketAddr) -> anyhow::Result<(String, String)> {
    let at = database_url
        .rfind('@')
        .map_or_else(|| database_url.find("://").map(|i| i + 3), |i| Some(i + 1))
        .with_context(|| format!("cannot read the address in DATABASE_URL {database_url}"))?;
    let rest = &database_url[at..];
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let original = rest[..end].to_owned();
    Ok((
        format!("{}{addr}{}", &database_url[..at], &rest[end..]),
        original,
    ))
}

/// Whether anything answers `GET /healthz` at `base_url`.
async fn api_answers(client: &reqwest::Client, base_url: &str) -> bool {
    client
        .get(format!("{base_url}/healthz"))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
}

fn loopback_addr(base_url: &str) -> Option<SocketAddr> {
    let authority = base_url.strip_prefix("http://")?.split('/').next()?;
    let addr: SocketAddr = authority.replace("localhost", "127.0.0.1").parse().ok()?;
    addr.ip().is_loopback().then_some(addr)
}

/// Finds the api at `base_url`, or starts the pipeline child on that loopback address. Its
/// log goes to `log_path`.
pub async fn find_or_start(
    client: &reqwest::Client,
    stack: &StackArgs,
    base_url: &str,
    admin_token: Option<String>,
    log_path: &Path,
) -> anyhow::Result<Target> {
    let base_url = base_url.trim_end_matches('/').to_owned();
    if api_answers(client, &base_url).await {
        return Ok(Target {
            base_url,
            admin_token,
            pipeline: None,
        });
    }
    let Some(addr) = loopback_addr(&base_url) else {
        bail!(
            "no api answers at {base_url}, and loadgen only starts one itself on a loopback address like http://127.0.0.1:8080"
        );
    };
    eprintln!(
        "no api at {base_url}: starting the api and the consumer (log: {})",
        log_path.display()
    );
    let token = admin_token.unwrap_or_else(|| format!("loadgen-{:016x}", rand::random::<u64>()));
    std::fs::write(log_path, "")
        .with_context(|| format!("failed to create {}", log_path.display()))?;
    let database_url = stack.database_url.clone();
    let (_, mysql_addr) = database_via(&database_url, addr)?;
    // MySQL's port when the URL names none.
    let mysql_addr = if mysql_addr.contains(':') {
        mysql_addr
    } else {
        format!("{mysql_addr}:3306")
    };
    let mysql: SocketAddr = tokio::net::lookup_host(&mysql_addr)
        .await
        .ok()
        .and_then(|mut found| found.next())
        .with_context(|| format!("mysql address {mysql_addr} in DATABASE_URL does not resolve"))?;
    let database_proxy = TcpProxy::start(mysql)
        .await
        .context("failed to start the consumer's database proxy")?;
    let (consumer_database_url, _) = database_via(&database_url, database_proxy.addr)?;
    let api_spec = ChildSpec {
        part: "api",
        log: log_path.to_owned(),
        env: [
            stack.to_env(),
            vec![
                ("API_ADDR".into(), addr.to_string()),
                ("ADMIN_TOKEN".into(), token.clone()),
            ],
        ]
        .concat(),
    };
    let consumer_metrics = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .context("failed to find a free port for the consumer's /metrics")?;
    let consumer = Arc::new(SupervisedConsumer {
        spec: ChildSpec {
            part: "consumer",
            log: log_path.to_owned(),
            env: [
                stack.to_env(),
                vec![
                    ("CONSUMER_METRICS_ADDR".into(), consumer_metrics.to_string()),
                    ("DATABASE_URL".into(), consumer_database_url),
                ],
            ]
            .concat(),
        },
        metrics_addr: consumer_metrics,
        child: Mutex::new(None),
        stopping: AtomicBool::new(false),
        restarts: AtomicU32::new(0),
    });
    let mut api = api_spec.spawn(&[])?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while !api_answers(client, &base_url).await {
        if let Some(status) = api.try_wait()? {
            bail!(
                "the api child exited with {status} before answering; see {}",
                log_path.display()
            );
        }
        if tokio::time::Instant::now() >= deadline {
            let _ = api.kill();
            let _ = api.wait();
            bail!(
                "the api did not answer at {base_url} within 120s; see {}",
                log_path.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let consumer_started = async {
        consumer.replace(&[]).await?;
        consumer.wait_ready(client, log_path).await
    }
    .await;
    if let Err(error) = consumer_started {
        let _ = api.kill();
        let _ = api.wait();
        if let Ok(mut slot) = consumer.child.lock()
            && let Some(mut child) = slot.take()
        {
            let _ = child.kill();
            let _ = child.wait();
        }
        return Err(error);
    }
    let watcher = tokio::spawn(consumer.clone().watch());
    Ok(Target {
        base_url,
        admin_token: Some(token),
        pipeline: Some(Pipeline {
            api,
            consumer,
            watcher,
            database_proxy,
        }),
    })
}

impl Target {
    /// Creates the campaign the run aims at.
    pub async fn create_campaign(
        &self,
        client: &reqwest::Client,
        id: &str,
        limit: u32,
        strategy: coupon_domain::Strategy,
    ) -> anyhow::Result<()> {
        let Some(token) = &self.admin_token else {
            bail!(
                "creating a campaign needs the api's admin token: set ADMIN_TOKEN (or --admin-token), \
                 or aim at an existing campaign with --campaign ID"
            );
        };
        let response = client
            .post(format!("{}/admin/campaigns", self.base_url))
            .bearer_auth(token)
            .json(&json!({ "id": id, "limit": limit, "strategy": strategy }))
            .send()
            .await
            .with_context(|| format!("the api at {} did not answer", self.base_url))?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            bail!(
                "the api at {} refused to create campaign {id}: {status} {body}",
                self.base_url
            );
        }
        Ok(())
    }

    /// The campaign's numbers from `GET /campaigns/{id}`.
    pub async fn campaign(&self, client: &reqwest::Client, id: &str) -> anyhow::Result<Value> {
        let response = client
            .get(format!("{}/campaigns/{id}", self.base_url))
            .send()
            .await
            .with_context(|| format!("the api at {} did not answer", self.base_url))?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("campaign {id} at {}: {status} {body}", self.base_url);
        }
        Ok(body)
    }

    /// Waits until every coupon the gate issued is accounted for: a row, or an open failed event
    /// (`persisted + failed_events >= issued`), up to `timeout`. Returns how long it took, or
    /// `None` when it did not drain in time.
    pub async fn wait_drained(
        &self,
        client: &reqwest::Client,
        id: &str,
        timeout: Duration,
    ) -> anyhow::Result<Option<Duration>> {
        let started = tokio::time::Instant::now();
        loop {
            let campaign = self.campaign(client, id).await?;
            let number = |field: &str| campaign[field].as_u64();
            if let (Some(issued), Some(persisted), Some(failed)) = (
                number("issued"),
                number("persisted"),
                number("failed_events"),
            ) && persisted + failed >= issued
            {
                return Ok(Some(started.elapsed()));
            }
            if started.elapsed() >= timeout {
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_url_is_rewritten_to_the_proxy_and_nothing_else_changes() {
        let proxy: SocketAddr = "127.0.0.1:4444".parse().expect("valid");
        let (via, original) = database_via(
            "mysql://coupons:secret@db.local:3306/coupons?ssl-mode=disabled",
            proxy,
        )
        .expect("rewrites");
        assert_eq!(
            via,
            "mysql://coupons:secret@127.0.0.1:4444/coupons?ssl-mode=disabled"
        );
        assert_eq!(original, "db.local:3306");
        let (via, original) = database_via("mysql://127.0.0.1:3306/db", proxy).expect("rewrites");
        assert_eq!(
            (via.as_str(), original.as_str()),
            ("mysql://127.0.0.1:4444/db", "127.0.0.1:3306")
        );
        assert!(database_via("not a url", proxy).is_err());
    }
}
