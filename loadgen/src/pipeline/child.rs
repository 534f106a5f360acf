//! One pipeline child: how it is started (loadgen's own binary, `__serve-pipeline api` or
//! `... consumer`), how it is stopped, what it runs, and the consumer's supervisor that restarts
//! it whenever it dies.

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
use coupon_runtime::{backoff::poll_until, stack::StackArgs};
use nix::{sys::signal, unistd::Pid};

use crate::{client::ApiClient, control::Control};

/// The hidden first argument that turns loadgen into a pipeline child; `api` or `consumer`
/// follows it.
pub const SERVE_PIPELINE: &str = "__serve-pipeline";

/// The env var that tells a child which loadgen started it.
const PARENT_PID: &str = "LOADGEN_PARENT_PID";

/// Fault `clock-skew`: how many ms the api child's clock runs off the true one (its
/// `clock_offset`, which the api takes from no flag or env var of its own).
pub(super) const CLOCK_OFFSET_MS: &str = "LOADGEN_API_CLOCK_OFFSET_MS";

/// How long a child may take to start answering.
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// Sends SIGTERM (finish requests, flush the producer, commit offsets) and waits.
pub(super) fn terminate(child: &mut Child) -> anyhow::Result<std::process::ExitStatus> {
    signal_stop(child);
    child.wait().context("failed to wait for a pipeline child")
}

/// Sends SIGTERM, without waiting.
pub(super) fn signal_stop(child: &Child) {
    if let Ok(raw) = i32::try_from(child.id()) {
        let _ = signal::kill(Pid::from_raw(raw), signal::Signal::SIGTERM);
    }
}

/// Kills a child that failed to start, and reaps it.
pub(super) fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// How to start a child: which part, its log, and its environment.
#[derive(Debug, Clone)]
pub(super) struct ChildSpec {
    pub part: &'static str,
    pub log: PathBuf,
    pub env: Vec<(String, String)>,
}

impl ChildSpec {
    /// A child on `stack`, with `env` on top (a later setting wins), logging to `log`.
    pub fn new<const N: usize>(
        part: &'static str,
        log: &Path,
        stack: &StackArgs,
        env: [(&str, String); N],
    ) -> Self {
        let mut all = stack.to_env();
        all.extend(env.map(|(key, value)| (key.to_owned(), value)));
        Self {
            part,
            log: log.to_owned(),
            env: all,
        }
    }

    pub fn spawn(&self, extra_env: &[(&str, String)]) -> anyhow::Result<Child> {
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
            .env(PARENT_PID, std::process::id().to_string())
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
pub(super) struct SupervisedConsumer {
    pub spec: ChildSpec,
    /// Its `/metrics` address, where it says which partitions its loops hold.
    pub metrics_addr: SocketAddr,
    pub child: Mutex<Option<Child>>,
    pub stopping: AtomicBool,
    pub restarts: AtomicU32,
}

impl SupervisedConsumer {
    pub fn new(spec: ChildSpec, metrics_addr: SocketAddr) -> Self {
        Self {
            spec,
            metrics_addr,
            child: Mutex::new(None),
            stopping: AtomicBool::new(false),
            restarts: AtomicU32::new(0),
        }
    }

    /// Stops the running consumer (gracefully) and starts a new one with `extra_env`. The lock
    /// is held only to swap children, never while waiting for one to exit.
    pub async fn replace(&self, extra_env: &[(&str, String)]) -> anyhow::Result<()> {
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

    /// How the consumer exited, if it has.
    fn exited(&self) -> Option<std::process::ExitStatus> {
        self.child
            .lock()
            .ok()
            .and_then(|mut slot| slot.as_mut().and_then(|c| c.try_wait().ok().flatten()))
    }

    /// Waits until both of the consumer's loops hold partitions (its `/metrics` says so): from
    /// then on, a burst's events are consumed as they arrive. A failure names the consumer's log.
    pub async fn wait_ready(&self, client: &reqwest::Client) -> anyhow::Result<()> {
        let url = format!("http://{}/metrics", self.metrics_addr);
        poll_until(
            "the consumer to be assigned its partitions",
            START_TIMEOUT,
            Duration::from_millis(200),
            || async {
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
                    return Ok(Some(()));
                }
                if let Some(status) = self.exited() {
                    bail!("the consumer exited with {status} before it was ready");
                }
                Ok(None)
            },
        )
        .await
        .map_err(|error| {
            let log = self.spec.log.display();
            error
                .into_anyhow()
                .context(format!("the consumer did not start; see {log}"))
        })
    }

    /// Restarts the consumer whenever it exits, until loadgen stops it.
    pub async fn watch(self: Arc<Self>) {
        while !self.stopping.load(Ordering::SeqCst) {
            // A supervisor's tick: how soon a crash is noticed, not a wait for anything.
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

/// Waits until the api child answers at `api`, or fails when it exits or takes too long.
pub(super) async fn wait_answering(child: &mut Child, api: &ApiClient) -> anyhow::Result<()> {
    let child = Mutex::new(child);
    poll_until(
        "the api to answer",
        START_TIMEOUT,
        Duration::from_millis(200),
        || async {
            if api.answers().await {
                return Ok(Some(()));
            }
            let exited = child
                .lock()
                .map_err(|_| anyhow::anyhow!("api child lock poisoned"))?
                .try_wait()?;
            if let Some(status) = exited {
                bail!("the api child exited with {status} before answering");
            }
            Ok(None)
        },
    )
    .await
    .map_err(|error| {
        error
            .into_anyhow()
            .context(format!("no api at {}", api.base_url))
    })
}

/// A child's whole life: the api or the consumer from env settings, until SIGTERM, which the
/// kernel sends when loadgen dies, however it dies.
pub async fn serve(part: &str) -> anyhow::Result<()> {
    #[cfg(target_os = "linux")]
    let _ = nix::sys::prctl::set_pdeathsig(signal::Signal::SIGTERM);
    // A loadgen that died between starting this process and the line above sends no signal:
    // then this process already has another parent, and stops at once.
    if let Some(parent) = std::env::var(PARENT_PID)
        .ok()
        .and_then(|pid| pid.parse::<i32>().ok())
        && nix::unistd::getppid().as_raw() != parent
    {
        bail!("loadgen (pid {parent}) that started this {part} is gone");
    }
    let control = Control::of_this_process()?;
    if let Some(control) = control {
        eprintln!(
            "NEGATIVE CONTROL {control}: this {part} runs with a fix switched off on purpose"
        );
    }
    match part {
        "api" => {
            let mut api = coupon_api::Settings::try_parse_from(["coupon-api"])?;
            if let Some(control) = control {
                control.break_api(&mut api);
            }
            if let Ok(offset) = std::env::var(CLOCK_OFFSET_MS) {
                let offset_ms: i64 = offset
                    .parse()
                    .with_context(|| format!("{CLOCK_OFFSET_MS}={offset} is no count of ms"))?;
                api.clock_offset = time::Duration::milliseconds(offset_ms);
                if offset_ms != 0 {
                    eprintln!("fault clock-skew: this api's clock runs {offset_ms} ms off");
                }
            }
            coupon_api::Application::build(api)
                .await
                .context("failed to start the api")?
                .run_until_stopped(coupon_runtime::shutdown_signal())
                .await
        }
        "consumer" => {
            let mut consumer = coupon_consumer::Settings::try_parse_from(["coupon-consumer"])?;
            if let Some(control) = control {
                control.break_consumer(&mut consumer);
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_assigned_partitions_gauge_is_read_by_consumer_name() {
        let metrics = "# TYPE coupon_consumer_assigned_partitions gauge\n\
            coupon_consumer_assigned_partitions{consumer=\"pipeline\"} 3\n\
            coupon_consumer_assigned_partitions{consumer=\"course\"} 0\n";
        assert_eq!(assigned_partitions(metrics, "pipeline"), 3);
        assert_eq!(assigned_partitions(metrics, "course"), 0);
        assert_eq!(assigned_partitions("", "pipeline"), 0);
    }
}
