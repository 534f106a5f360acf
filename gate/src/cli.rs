//! Flags and env vars.

use std::path::PathBuf;

use clap::Parser;
use coupon_runtime::stack::StackArgs;

/// The end-to-end gate: loadgen and the verifier against the real stack, with negative controls.
///
/// Runs, in order: the real design under a burst of `--users` (must hold); the broken two-step
/// gate and a row planted behind the database's back (I1 must fail); the course's stages, each
/// caught (naive I1; redis-counter and kafka I2 with I1 holding; per-user I3 under a database
/// outage and I2 under a consumer crash), and the real design holding under the same faults;
/// then `--strategy all` (naive violated, reliable holding); the fault matrix (every round
/// holding); and the matrix's negative controls, each a fault with its fix switched off (the
/// invariant named). Each check is judged on the verifier's `verdict.json`, loadgen's
/// `summary.json`, `compare.json` and `matrix.json`.
///
/// Exit codes: 0 every check passed; 1 a check failed; 2 the gate itself could not run.
#[derive(Debug, Clone, Parser)]
#[command(name = "gate", version, about, long_about)]
pub struct Cli {
    /// Users in the first burst, against the real design.
    #[arg(long, env = "GATE_USERS", default_value_t = 10_000)]
    pub users: usize,

    /// Where every run's reports go (relative to the working directory): emptied first, one
    /// directory per run.
    #[arg(long, env = "GATE_REPORT_DIR", default_value = "target/gate-reports")]
    pub report_dir: PathBuf,

    /// Where the `loadgen` and `verifier` binaries are. Default: beside the gate's own binary,
    /// where `cargo build` put them too (`CARGO_TARGET_DIR` included).
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,

    /// Do not run `cargo build -p loadgen -p verifier` first.
    #[arg(long)]
    pub no_build: bool,

    /// Run only the scenarios whose heading contains this (e.g. `gate 3f`); a scenario that
    /// judges an earlier one's run (`gate 2b` plants a row in gate 1's) needs that one too.
    #[arg(long, value_name = "TEXT")]
    pub only: Option<String>,

    /// The stores' addresses, topics and groups: the planted row goes there, and loadgen and
    /// the verifier get the same settings.
    #[command(flatten)]
    pub stack: StackArgs,
}

impl Cli {
    /// `--bin-dir`, or the directory of the running gate binary.
    pub fn bin_dir(&self) -> anyhow::Result<PathBuf> {
        if let Some(dir) = &self.bin_dir {
            return Ok(dir.clone());
        }
        let exe = std::env::current_exe()
            .map_err(|error| anyhow::anyhow!("cannot find the gate's own binary: {error}"))?;
        exe.parent()
            .map(std::path::Path::to_path_buf)
            .ok_or_else(|| anyhow::anyhow!("{} has no directory", exe.display()))
    }
}
