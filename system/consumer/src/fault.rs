//! An injected crash, for the stage comparison's `--fault consumer-crash` (docs/stages.md):
//! after a given number of coupon rows, the process kills itself with SIGKILL, the way the OOM
//! killer or a lost host would: no shutdown, no flush, no offset commit.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct CrashAfter {
    /// Rows still to write before the crash; `None` when no crash is armed.
    armed: Option<AtomicU64>,
}

impl CrashAfter {
    pub fn new(rows: Option<u64>) -> Self {
        Self {
            armed: rows.map(AtomicU64::new),
        }
    }

    /// Counts rows just written (their transaction committed); crashes once the count is
    /// reached, before anything else happens (such as storing offsets).
    pub fn wrote(&self, rows: u64) {
        let Some(remaining) = &self.armed else {
            return;
        };
        let before = remaining
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                Some(left.saturating_sub(rows))
            })
            .unwrap_or_default();
        if before > 0 && before <= rows {
            tracing::error!("injected fault: crashing with SIGKILL after the armed number of rows");
            let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
        }
    }
}
