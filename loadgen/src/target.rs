//! The api a run aims at: one already answering at --host, or the api and the consumer started
//! by loadgen itself against the configured stack (REDIS_URL, DATABASE_URL, KAFKA_BROKERS).
//!
//! loadgen starts them in a child process of its own binary (`loadgen __serve-pipeline`), not in
//! its own process: a 10,000-user burst needs 10,000 client sockets and 10,000 server sockets,
//! and one process's descriptor limit (20,000 here, not raisable without privileges) cannot hold
//! both. The child stops with loadgen (SIGTERM, and a parent-death signal should loadgen die).

use std::{
    net::SocketAddr,
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

use anyhow::{Context, bail};
use clap::Parser;
use nix::{sys::signal, unistd::Pid};
use serde_json::{Value, json};

/// The hidden first argument that turns loadgen into the pipeline child.
pub const SERVE_PIPELINE: &str = "__serve-pipeline";

/// The api and consumer loadgen started, if it started them.
#[derive(Debug)]
pub struct Pipeline {
    child: Child,
}

impl Pipeline {
    /// Stops the child gracefully (SIGTERM: finish requests, flush the producer, commit
    /// offsets) and waits for it.
    pub fn stop(mut self) -> anyhow::Result<()> {
        let pid = Pid::from_raw(i32::try_from(self.child.id()).context("child pid out of range")?);
        let _ = signal::kill(pid, signal::Signal::SIGTERM);
        let status = self
            .child
            .wait()
            .context("failed to wait for the pipeline child")?;
        anyhow::ensure!(
            status.success(),
            "the api/consumer child exited with {status}"
        );
        Ok(())
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

/// The child's whole life: the api and the consumer from env settings, until SIGTERM.
pub async fn serve_pipeline() -> anyhow::Result<()> {
    #[cfg(target_os = "linux")]
    let _ = nix::sys::prctl::set_pdeathsig(signal::Signal::SIGTERM);
    let api = ApiFromEnv::try_parse_from(["coupon-api"])?.settings;
    let consumer = ConsumerFromEnv::try_parse_from(["coupon-consumer"])?.settings;
    let app = coupon_api::Application::build(api)
        .await
        .context("failed to start the api")?;
    let consumer = coupon_consumer::Consumer::build(consumer)
        .await
        .context("failed to start the consumer")?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let wait_stop = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stopped| *stopped).await;
    };
    let api_task = tokio::spawn(app.run_until_stopped(wait_stop(stop_rx.clone())));
    let consumer_task = tokio::spawn(consumer.run_until_stopped(wait_stop(stop_rx)));
    coupon_runtime::shutdown_signal().await;
    let _ = stop_tx.send(true);
    api_task.await??;
    consumer_task.await??;
    Ok(())
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
    let log = std::fs::File::create(log_path)
        .with_context(|| format!("failed to create {}", log_path.display()))?;
    let mut child =
        Command::new(std::env::current_exe().context("cannot find the loadgen binary")?)
            .arg(SERVE_PIPELINE)
            .env("API_ADDR", addr.to_string())
            .env("ADMIN_TOKEN", &token)
            .env("CONSUMER_METRICS_ADDR", "127.0.0.1:0")
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("failed to start the api/consumer child")?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while !api_answers(client, &base_url).await {
        if let Some(status) = child.try_wait()? {
            bail!(
                "the api/consumer child exited with {status} before answering; see {}",
                log_path.display()
            );
        }
        if tokio::time::Instant::now() >= deadline {
            let _ = child.kill();
            bail!(
                "the api did not answer at {base_url} within 120s; see {}",
                log_path.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(Target {
        base_url,
        admin_token: Some(token),
        pipeline: Some(Pipeline { child }),
    })
}

impl Target {
    /// Creates the campaign the run aims at.
    pub async fn create_campaign(
        &self,
        client: &reqwest::Client,
        id: &str,
        limit: u32,
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
            .json(&json!({ "id": id, "limit": limit }))
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
