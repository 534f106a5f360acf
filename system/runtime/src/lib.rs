//! Process plumbing shared by every binary of the project.
//!
//! # Layout
//! - [`init_telemetry`]: structured logs to stderr, filtered by `RUST_LOG`.
//! - [`shutdown_signal`]: resolves on ctrl-c or SIGTERM.
//! - [`retry_startup`]: connect to a dependency with backoff, naming it when it never answers.
//! - [`proxy::TcpProxy`]: take a real service away from one client, and give it back.
//! - [`stack`]: the stores' addresses, topics and groups, as one clap `Args` for every binary.
//! - [`backoff`]: one [`Backoff`] for retries, one [`poll_until`] for waiting on a condition.
//! - [`resident_memory_bytes`]: the process's resident memory, for its `/metrics`.

pub mod backoff;
pub mod proxy;
pub mod stack;

pub use backoff::{Backoff, PollError, poll_until};

use std::{future::Future, time::Duration};

use anyhow::Context;
use tracing_subscriber::EnvFilter;

/// The process's resident set size in bytes (`VmRSS` in `/proc/self/status`), or 0 where the
/// kernel does not say.
pub fn resident_memory_bytes() -> i64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
            let kb: i64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kb * 1024)
        })
        .unwrap_or(0)
}

/// Logs to stderr at `default_level` unless `RUST_LOG` says otherwise.
pub fn init_telemetry(default_level: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Resolves on ctrl-c or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown requested");
}

/// Retries `connect` with backoff until it succeeds or `deadline` passes. Each failure is
/// logged with the service and its address, and the final error names both: a missing service
/// is reported, never waited on silently.
pub async fn retry_startup<T, E, F, Fut>(
    service: &str,
    address: &str,
    deadline: Duration,
    mut connect: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: std::error::Error + Send + Sync + 'static,
{
    let give_up = tokio::time::Instant::now() + deadline;
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    loop {
        match connect().await {
            Ok(value) => return Ok(value),
            Err(error) if tokio::time::Instant::now() + backoff.peek() < give_up => {
                tracing::warn!(service, address, error = %chain(&error), retry_in = ?backoff.peek(), "dependency not reachable yet");
                backoff.wait().await;
            }
            Err(error) => {
                return Err(anyhow::Error::new(error)).with_context(|| {
                    format!("{service} at {address} is unreachable (gave up after {deadline:?})")
                });
            }
        }
    }
}

/// An error with its causes, `outer: inner: innermost`, for one log field: the one way every
/// process logs an error (`error = %chain(&error)`; an `anyhow::Error` as `chain(&*error)`).
/// It reads like anyhow's `{:#}`, which the binaries print on exit.
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn chain_names_every_cause_once() {
        let error = Outer(std::io::Error::other("connection refused"));
        assert_eq!(chain(&error), "outer: connection refused");
    }
}
