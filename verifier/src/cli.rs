//! Flags, env vars and exit codes.

use std::{path::PathBuf, time::Duration};

use clap::Parser;
use coupon_runtime::stack::StackArgs;

/// Every invariant holds.
pub const EXIT_HOLDS: u8 = 0;
/// An invariant is violated: over-issuance, a duplicate, a lost winner, a phantom row, or lag
/// that never drained.
pub const EXIT_VIOLATED: u8 = 1;
/// Could not verify: a service unreachable, no run found, a run that did not complete,
/// unreadable history.
pub const EXIT_CANNOT_VERIFY: u8 = 2;

/// Drain the pipeline, reconcile MySQL rows, the Redis gate, Kafka offsets and events and the
/// loadgen history, and prove the invariants I1 to I8.
///
/// Exit codes: 0 every invariant holds; 1 an invariant is violated; 2 could not verify.
#[derive(Debug, Clone, Parser)]
#[command(name = "verifier", version, about, long_about = None)]
pub struct Cli {
    /// The loadgen run to verify (a directory under --report-dir). Default: `latest`, the newest
    /// run; one that did not complete (no summary.json) is refused with exit 2.
    #[arg(long, conflicts_with_all = ["campaign", "all_campaigns"])]
    pub run: Option<String>,

    /// Verify one campaign from the stores alone, without a run's history.
    #[arg(long, conflicts_with = "all_campaigns")]
    pub campaign: Option<String>,

    /// Verify every campaign from the stores alone.
    #[arg(long)]
    pub all_campaigns: bool,

    /// Where loadgen wrote its runs; verdicts go into the run's directory.
    #[arg(long, default_value = "reports")]
    pub report_dir: PathBuf,

    /// How long to wait for the pipeline to drain before judging.
    #[arg(long, default_value = "60s", value_parser = coupon_domain::duration::parse)]
    pub drain_timeout: Duration,

    /// How many offending users to list per violated invariant.
    #[arg(long, default_value_t = 20)]
    pub show: usize,

    /// The stores' addresses, topics and groups.
    #[command(flatten)]
    pub stack: StackArgs,
}
