//! Stores of one run or one test, for the faults that would disturb everyone else on the
//! shared stack: the real Kafka broker from the jars `scripts/stack up` fetched, and the real
//! `redis-server` it installed, each on free ports with a data directory of its own, and a
//! database of its own on the project's MySQL server, or Debian's MariaDB server of its own.
//! Nothing here is a stand-in.
//!
//! # Layout
//! - [`kafka::PrivateKafka`]: a single-node KRaft broker to SIGKILL, SIGSTOP and restart.
//! - [`redis::PrivateRedis`]: a Redis to SIGKILL, SIGSTOP, FLUSHALL, or restart from an older
//!   snapshot.
//! - [`database::PrivateDatabase`]: `<project database>_<purpose>_<hex>`, dropped afterwards.
//! - [`mysql::PrivateMysql`]: a MariaDB server of its own, to SIGKILL and restart or turn
//!   read-only, for the faults on the database server itself.
//! - [`process::Server`]: the process of each server, to SIGKILL, SIGSTOP and SIGCONT.

pub mod database;
pub mod kafka;
pub mod mysql;
pub mod process;
pub mod redis;

use std::{future::Future, time::Duration};

/// A name no other run will pick: `<prefix>_<random hex>`, lowercase, safe everywhere.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}_{:016x}", rand::random::<u64>())
}

/// Polls `check` every 50 ms until it yields `Some`, or fails once `deadline` has passed,
/// naming what it waited for: the way tests and faults wait for something asynchronous, on a
/// condition, never on a sleep (testkit re-exports it).
pub async fn eventually<T, F, Fut>(
    what: &str,
    deadline: Duration,
    mut check: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    coupon_runtime::poll_until(what, deadline, Duration::from_millis(50), &mut check)
        .await
        .map_err(coupon_runtime::PollError::into_anyhow)
}
