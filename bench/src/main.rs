//! `bench`: the binary behind `scripts/bench` (which builds the release binaries and the stack
//! first).

use std::{path::PathBuf, time::Instant};

use anyhow::Context;
use bench::{measure, report};
use clap::Parser;
use coupon_runtime::stack::StackArgs;

/// Measure every performance goal against its anchor, in one run: the gate script alone
/// (redis-benchmark), the bare reference apply and the api (wrk and loadgen), the 10k burst
/// warm and cold, the consumer's rows/s. Prints the table and writes reports/bench.md and
/// reports/bench.json.
#[derive(Debug, Parser)]
#[command(name = "bench", version, about, long_about = None)]
struct Cli {
    /// Repeat the whole measurement this many times; the table gives each figure's median and
    /// range.
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// Connections of the wrk and redis-benchmark runs.
    #[arg(long, default_value_t = 64)]
    connections: u32,
    /// Seconds of each wrk run.
    #[arg(long, default_value_t = 10)]
    seconds: u32,
    /// Users of the burst.
    #[arg(long, default_value_t = 10_000)]
    users: u32,
    /// Coupons of the campaign the consumer's rate is measured on.
    #[arg(long, default_value_t = 100_000)]
    consumer_coupons: u32,
    /// Where the release binaries are.
    #[arg(long, default_value = "target/release")]
    binaries: PathBuf,
    /// Where the table, the figures and the runs' logs go.
    #[arg(long, default_value = "reports")]
    report_dir: PathBuf,
    #[command(flatten)]
    stack: StackArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    anyhow::ensure!(cli.runs > 0, "--runs must be at least 1");
    let plan = measure::Plan {
        binaries: cli.binaries.clone(),
        out: cli.report_dir.join("bench"),
        connections: cli.connections,
        seconds: cli.seconds,
        burst_users: cli.users,
        consumer_coupons: cli.consumer_coupons,
        stack: cli.stack.clone(),
    };
    let started = Instant::now();
    let mut runs = Vec::new();
    for run in 1..=cli.runs {
        let step = |what: &str| {
            eprintln!(
                "[bench {run}/{} {:>4}s] {what}",
                cli.runs,
                started.elapsed().as_secs()
            );
        };
        let figures = measure::run(&plan, run, &step)
            .await
            .with_context(|| format!("bench run {run} failed; logs in {}", plan.out.display()))?;
        runs.push(figures);
    }
    let table = report::markdown(&runs);
    let text = format!(
        "# Benchmarks ({}, {} cores, release builds, every process on this machine)\n\n\
         {} run(s) of `scripts/bench`; each figure is the median, with the range over the runs. \
         Each ratio's anchor is measured in the same run.\n\n{table}\n\
         Raw figures of every run: `bench.json`.\n",
        time::OffsetDateTime::now_utc().date(),
        std::thread::available_parallelism().map_or(0, usize::from),
        runs.len(),
    );
    println!("{text}");
    std::fs::create_dir_all(&cli.report_dir)?;
    let md = cli.report_dir.join("bench.md");
    std::fs::write(&md, &text).with_context(|| format!("failed to write {}", md.display()))?;
    let json = cli.report_dir.join("bench.json");
    std::fs::write(&json, serde_json::to_string_pretty(&runs)?)
        .with_context(|| format!("failed to write {}", json.display()))?;
    eprintln!(
        "wrote {} and {} ({}s)",
        md.display(),
        json.display(),
        started.elapsed().as_secs()
    );
    Ok(())
}
