//! The processes a bench run starts (the release api, consumer and reference apply), each
//! logging to a file, waited for until it answers, and stopped with SIGTERM.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use anyhow::{Context, bail};
use coupon_runtime::backoff::poll_until;
use tokio::process::{Child, Command};

/// One started process.
#[derive(Debug)]
pub struct Service {
    pub name: &'static str,
    child: Child,
    pub log: PathBuf,
}

impl Service {
    /// Starts `binary` with `env`, its output going to `<logs>/<name>.log`.
    pub fn start(
        name: &'static str,
        binary: &Path,
        env: &[(&str, String)],
        logs: &Path,
    ) -> anyhow::Result<Self> {
        let log = logs.join(format!("{name}.log"));
        let file = std::fs::File::create(&log)
            .with_context(|| format!("failed to create {}", log.display()))?;
        let child = Command::new(binary)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("failed to start {} ({})", name, binary.display()))?;
        Ok(Self { name, child, log })
    }

    /// Waits until `url` answers 2xx, up to `timeout`; a process that exits or never answers
    /// is an error naming its address and log.
    pub async fn ready(&mut self, url: &str, timeout: Duration) -> anyhow::Result<()> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        let waited = poll_until(
            &format!("{} to answer at {url}", self.name),
            timeout,
            Duration::from_millis(100),
            || {
                let http = &http;
                let exited = self.child.try_wait().ok().flatten();
                async move {
                    if let Some(status) = exited {
                        return Err(anyhow::anyhow!("it exited ({status})"));
                    }
                    Ok(http
                        .get(url)
                        .send()
                        .await
                        .is_ok_and(|r| r.status().is_success())
                        .then_some(()))
                }
            },
        )
        .await;
        waited.map_err(|error| {
            error.into_anyhow().context(format!(
                "{} is not ready; see {}",
                self.name,
                self.log.display()
            ))
        })
    }

    /// SIGTERM, then up to 30 s for a graceful stop; killed after that.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(pid) = self.child.id() {
            let pid = nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap_or(i32::MAX));
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        }
        match tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(error).context(format!("waiting for {} to stop", self.name)),
            Err(_) => {
                self.child.kill().await.ok();
                bail!("{} did not stop within 30s of SIGTERM; killed", self.name)
            }
        }
    }
}
