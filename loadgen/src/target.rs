//! The api a run aims at: one already answering at --host, or the [`Pipeline`] loadgen starts
//! on that loopback address, on the configured stack or in a [`Sandbox`] of the run's own.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

use anyhow::{Context, bail};
use coupon_runtime::stack::StackArgs;

use crate::{
    client::ApiClient,
    control::Control,
    nemesis::FaultSpec,
    pipeline::Pipeline,
    sandbox::{self, Sandbox},
    scrape::Endpoint,
};

#[derive(Debug)]
pub struct Target {
    pub api: ApiClient,
    /// The api and consumer loadgen started, if it started them.
    pub pipeline: Option<Pipeline>,
    /// The stores the run uses: the configured stack, or the sandbox's.
    pub stack: StackArgs,
    /// The stores of the run's own, when its faults act on the stores themselves.
    pub sandbox: Option<Sandbox>,
    /// How to start the pipeline again (in a fresh sandbox, or out of one) between rounds.
    restart: Option<Restart>,
}

#[derive(Debug, Clone)]
struct Restart {
    base: StackArgs,
    addr: SocketAddr,
    /// How many apis the pipeline runs.
    apis: u16,
    log_path: PathBuf,
    /// The fix switched off in the pipeline, for a negative control.
    control: Option<Control>,
}

impl Restart {
    /// Whether the pipeline for `faults` runs on stores of its own: for a fault that acts on
    /// the stores themselves, or for a negative control (a pipeline with a fix switched off
    /// never touches the shared stack: what it breaks there, a partition stopped behind a
    /// poison record, would outlast it).
    fn sandboxed(&self, faults: &[FaultSpec]) -> bool {
        sandbox::needed(faults) || self.control.is_some()
    }
}

/// Finds the api at `base_url`, or starts the pipeline (with `apis` apis, the first on that
/// loopback address), logging to `log_path`; in a fresh [`Sandbox`] when any of `faults` needs
/// one, and with `control`'s fix switched off.
pub async fn find_or_start(
    stack: &StackArgs,
    (base_url, apis): (&str, u16),
    admin_token: Option<String>,
    log_path: &Path,
    faults: &[FaultSpec],
    control: Option<Control>,
) -> anyhow::Result<Target> {
    let api = ApiClient::new(base_url, admin_token.clone())?;
    if api.answers().await {
        return Ok(Target {
            api,
            pipeline: None,
            stack: stack.clone(),
            sandbox: None,
            restart: None,
        });
    }
    let Some(addr) = loopback_addr(&api.base_url) else {
        bail!(
            "no api answers at {}, and loadgen only starts one itself on a loopback address like http://127.0.0.1:8080",
            api.base_url
        );
    };
    eprintln!(
        "no api at {}: starting the api and the consumer (log: {})",
        api.base_url,
        log_path.display()
    );
    // One log for the whole run: every pipeline started (one per round that moves into or out
    // of a sandbox) appends to it.
    std::fs::write(log_path, "")
        .with_context(|| format!("failed to create {}", log_path.display()))?;
    let token = admin_token.unwrap_or_else(|| format!("loadgen-{:016x}", rand::random::<u64>()));
    let api = ApiClient::new(base_url, Some(token))?;
    let restart = Restart {
        base: stack.clone(),
        addr,
        apis,
        log_path: log_path.to_owned(),
        control,
    };
    start(api, restart, faults).await
}

/// The pipeline at `restart.addr`, on the configured stack or in a fresh sandbox
/// ([`Restart::sandboxed`]).
async fn start(api: ApiClient, restart: Restart, faults: &[FaultSpec]) -> anyhow::Result<Target> {
    let sandbox = if restart.sandboxed(faults) {
        Some(Sandbox::start(&restart.base, faults).await?)
    } else {
        None
    };
    let stack = sandbox
        .as_ref()
        .map_or_else(|| restart.base.clone(), |s| s.stack.clone());
    let api_kafka = sandbox.as_ref().and_then(|s| s.api_kafka.clone());
    let started = Pipeline::start(
        &stack,
        api_kafka,
        (restart.addr, restart.apis),
        &api,
        &restart.log_path,
        restart.control,
    )
    .await;
    let pipeline = match started {
        Ok(pipeline) => pipeline,
        Err(error) => {
            if let Some(sandbox) = sandbox {
                let _ = sandbox.stop().await;
            }
            return Err(error);
        }
    };
    Ok(Target {
        api,
        pipeline: Some(pipeline),
        stack,
        sandbox,
        restart: Some(restart),
    })
}

impl Target {
    /// Before a round whose faults need a sandbox (or after one that had it): stops the
    /// pipeline loadgen started, and its sandbox, and starts it again at the same address, in
    /// a fresh sandbox when `faults` need one. Nothing to do for an api loadgen did not start,
    /// or when neither round is sandboxed.
    pub async fn renew(&mut self, faults: &[FaultSpec]) -> anyhow::Result<()> {
        let Some(restart) = &self.restart else {
            return Ok(());
        };
        let unchanged =
            !restart.sandboxed(faults) && self.sandbox.is_none() && self.pipeline.is_some();
        if unchanged {
            return Ok(());
        }
        let stopped = self.stop_started().await;
        let restart = self.restart.take().context("no pipeline to restart")?;
        let again = restart.clone();
        match start(self.api.clone(), restart, faults).await {
            Ok(renewed) => *self = renewed,
            // The next round tries again from here (no pipeline, no sandbox).
            Err(error) => {
                self.restart = Some(again);
                return Err(error);
            }
        }
        stopped.context("the pipeline of the round before failed as it stopped")
    }

    /// Where the burst's users apply, spread over them in turn: every api loadgen started, or
    /// the one at --host.
    pub fn apply_bases(&self) -> Vec<String> {
        self.pipeline
            .as_ref()
            .map_or_else(|| vec![self.api.base_url.clone()], Pipeline::api_urls)
    }

    /// Stops what loadgen started: the pipeline, then its sandbox.
    pub async fn stop_started(&mut self) -> anyhow::Result<()> {
        let stopped = match self.pipeline.take() {
            Some(pipeline) => pipeline.stop().await,
            None => Ok(()),
        };
        if let Some(sandbox) = self.sandbox.take() {
            sandbox.stop().await?;
        }
        stopped
    }

    /// The `/metrics` of the api, and of the consumer: the one loadgen started, or the one at
    /// `consumer_metrics`.
    pub fn metrics_endpoints(&self, consumer_metrics: &str) -> Vec<Endpoint> {
        vec![
            Endpoint {
                part: "api",
                url: format!("{}/metrics", self.api.base_url),
            },
            Endpoint {
                part: "consumer",
                url: self.pipeline.as_ref().map_or_else(
                    || consumer_metrics.to_owned(),
                    Pipeline::consumer_metrics_url,
                ),
            },
        ]
    }
}

fn loopback_addr(base_url: &str) -> Option<SocketAddr> {
    let authority = base_url.strip_prefix("http://")?.split('/').next()?;
    let addr: SocketAddr = authority.replace("localhost", "127.0.0.1").parse().ok()?;
    addr.ip().is_loopback().then_some(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loadgen_starts_a_pipeline_only_on_a_loopback_address() {
        assert_eq!(
            loopback_addr("http://localhost:8080/"),
            "127.0.0.1:8080".parse().ok()
        );
        assert!(loopback_addr("http://10.0.0.7:8080").is_none());
        assert!(loopback_addr("https://127.0.0.1:8080").is_none());
        assert!(loopback_addr("http://127.0.0.1").is_none());
    }
}
