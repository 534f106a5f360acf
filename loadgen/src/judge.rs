//! Verifying a run from inside loadgen: the verifier's own judgement, on the stores the run
//! used (a sandbox's are gone once loadgen stops them, so their runs are verified here).

use std::{path::Path, time::Duration};

use anyhow::Context;
use clap::Parser;
use coupon_runtime::stack::StackArgs;
use verifier::verify::Judgement;

/// Judges the run `run` under `report_dir` against `stack`, as `verifier --report-dir
/// <report_dir> --run <run>` would; the verdict is written into the run's directory.
pub async fn verify(
    stack: &StackArgs,
    report_dir: &Path,
    run: &str,
    drain_timeout: Duration,
) -> anyhow::Result<Judgement> {
    let mut cli = verifier::cli::Cli::try_parse_from([
        "verifier".as_ref(),
        "--report-dir".as_ref(),
        report_dir.as_os_str(),
        "--run".as_ref(),
        run.as_ref(),
    ])
    .context("bad verifier settings")?;
    cli.drain_timeout = drain_timeout;
    cli.stack = stack.clone();
    verifier::verify::judge(&cli).await
}
