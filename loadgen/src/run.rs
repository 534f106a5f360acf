//! One loadgen run, step by step: find (or start) the api, create the campaign, fire the burst,
//! write the history, wait for the pipeline to drain, write the reports.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use anyhow::Context;
use clap::Parser;
use coupon_runtime::stack::StackArgs;

use coupon_domain::Strategy;

use crate::{
    cli::{Cli, Fault, Strategies},
    compare,
    history::{self, History},
    progress::Progress,
    report::{self, Summary},
    scenario::{self, RunState, now_us},
    stats,
    target::{self, Target},
    users::UserPlan,
};

#[derive(Debug)]
pub struct Outcome {
    pub run_dir: PathBuf,
    pub terminal: String,
}

impl Outcome {
    pub fn describe(&self) -> String {
        format!(
            "{}\nreports: {} (also {}/latest)",
            self.terminal,
            self.run_dir.display(),
            self.run_dir
                .parent()
                .map_or_else(|| ".".into(), |p| p.display().to_string())
        )
    }
}

/// One burst against one campaign, with what it wrote.
#[derive(Debug)]
pub struct StageRun {
    pub run_dir: PathBuf,
    pub summary: Summary,
}

/// How long the consumer's database stays cut after the burst, under `--fault db-outage`.
pub const OUTAGE_AFTER_BURST: Duration = Duration::from_secs(8);

/// A run id that sorts by time and is safe in paths and campaign ids.
pub fn new_run_id() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{:04}{:02}{:02}-{:02}{:02}{:02}-{:04x}",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second(),
        rand::random::<u16>()
    )
}

/// A burst of 10,000 connections needs more descriptors than the usual soft limit of 1024, and
/// the api it starts lives in a child process with descriptors of its own. Root may raise the
/// hard limit too.
fn raise_fd_limit() {
    const WANTED: u64 = 65_536;
    if rlimit::getrlimit(rlimit::Resource::NOFILE).is_ok_and(|(_, hard)| hard < WANTED) {
        let _ = rlimit::setrlimit(rlimit::Resource::NOFILE, WANTED, WANTED);
    }
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) if limit < 20_000 => {
            eprintln!("warning: open-file limit is {limit}; a large burst may fail to connect")
        }
        Ok(_) => {}
        Err(error) => eprintln!("warning: could not raise the open-file limit: {error}"),
    }
}

/// The kernel caps every listen backlog at `net.core.somaxconn`; below the burst size, the
/// overflow waits for SYN retransmits (1 s, then 3 s...), which is the harness, not the system.
fn check_listen_backlog(users: usize) {
    let read = |path: &str| {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
    };
    if let Some(somaxconn) = read("/proc/sys/net/core/somaxconn")
        && somaxconn < users.min(16_384)
    {
        eprintln!(
            "warning: net.core.somaxconn is {somaxconn}, below the burst of {users}: expect SYN-retransmit \
             stalls of 1 s or more; `scripts/stack up` raises it when run as root"
        );
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<Outcome> {
    cli.validate()?;
    raise_fd_limit();
    check_listen_backlog(cli.users);
    let control = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .context("failed to build an http client")?;
    std::fs::create_dir_all(&cli.report_dir)
        .with_context(|| format!("failed to create {}", cli.report_dir.display()))?;
    let pipeline_log = cli.report_dir.join("pipeline.log");
    let mut target = target::find_or_start(
        &control,
        &cli.stack,
        &cli.host,
        cli.admin_token.clone(),
        &pipeline_log,
    )
    .await?;
    let outcome = if !cli.fault.is_empty() && target.pipeline.is_none() {
        Err(anyhow::anyhow!(
            "--fault needs the api and consumer that loadgen starts itself, but an api already answers at {}: stop it, or leave out --fault",
            target.base_url
        ))
    } else {
        match &cli.strategy {
            Strategies::One(strategy) => {
                let run_id = new_run_id();
                let run_dir = cli.report_dir.join(&run_id);
                run_stage(
                    &cli, &control, &target, *strategy, &cli.fault, &run_dir, &run_id,
                )
                .await
                .and_then(|stage| {
                    point_latest(&cli.report_dir, &run_id)?;
                    Ok(Outcome {
                        terminal: report::terminal(&stage.summary),
                        run_dir: stage.run_dir,
                    })
                })
            }
            Strategies::All => compare::run(&cli, &control, &target).await,
        }
    };
    if let Some(pipeline) = target.pipeline.take() {
        let stopped = pipeline.stop().await.with_context(|| {
            format!(
                "the api/consumer children failed; see {}",
                pipeline_log.display()
            )
        });
        match (&outcome, stopped) {
            (_, Ok(())) => {}
            (Ok(_), Err(error)) => return Err(error),
            // The run's own error says more; the children's is reported beside it.
            (Err(_), Err(error)) => eprintln!("also: {error:#}"),
        }
    }
    outcome
}

/// One burst against a fresh campaign of `strategy` (or the campaign of --campaign), with
/// `faults` injected, written to `run_dir`.
pub async fn run_stage(
    cli: &Cli,
    control: &reqwest::Client,
    target: &Target,
    strategy: Strategy,
    faults: &[Fault],
    run_dir: &Path,
    run_id: &str,
) -> anyhow::Result<StageRun> {
    std::fs::create_dir_all(run_dir)
        .with_context(|| format!("failed to create {}", run_dir.display()))?;
    let (campaign_id, campaign_created, strategy, limit) = match &cli.campaign {
        Some(id) => {
            let existing = target.campaign(control, id).await?;
            let strategy = existing["strategy"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .unwrap_or(strategy);
            let limit = existing["limit"]
                .as_u64()
                .and_then(|l| u32::try_from(l).ok())
                .unwrap_or(cli.limit);
            (id.clone(), false, strategy, limit)
        }
        None => {
            let id = format!("run-{run_id}");
            target
                .create_campaign(control, &id, cli.limit, strategy)
                .await?;
            (id, true, strategy, cli.limit)
        }
    };
    let pipeline = target.pipeline.as_ref();
    let restarts_before = pipeline.map_or(0, target::Pipeline::consumer_restarts);
    let crash_armed =
        pipeline.is_some() && faults.contains(&Fault::ConsumerCrash) && strategy.uses_kafka();
    if let Some(pipeline) = pipeline {
        if crash_armed {
            let rows = u64::from(limit / 2).max(1);
            eprintln!("fault: the consumer will be killed (SIGKILL) after writing {rows} rows");
            pipeline.arm_consumer_crash(control, rows).await?;
        }
        if faults.contains(&Fault::DbOutage) {
            eprintln!(
                "fault: the consumer loses mysql now, until {}s after the burst",
                OUTAGE_AFTER_BURST.as_secs()
            );
            pipeline.cut_consumer_database();
        }
    }

    let history = Arc::new(History::default());
    let state = Arc::new(RunState {
        run_id: run_id.to_owned(),
        campaign_id: campaign_id.clone(),
        history: history.clone(),
        plan: UserPlan::new(cli.seed, cli.hot_users),
        start_us: now_us(),
        launch_interval_us: 1e6 / cli.launch_rate() as f64,
    });
    let started_at = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    eprintln!(
        "run {run_id}: {} users × {} at {} (campaign {campaign_id}, strategy {strategy})",
        cli.users, cli.repeat, target.base_url
    );
    let progress = Progress::start(history.clone(), (cli.users * cli.repeat) as u64);
    let attacked = scenario::attack(cli, &target.base_url, state, run_dir).await;
    progress.finish();
    if let Some(pipeline) = pipeline
        && faults.contains(&Fault::DbOutage)
    {
        // The fault's length, not a wait for anything: the outage lasts this long.
        tokio::time::sleep(OUTAGE_AFTER_BURST).await;
        pipeline.restore_consumer_database();
        eprintln!("fault: the consumer has mysql again");
    }
    attacked?;

    let records = history.take();
    history::write_jsonl(&run_dir.join("history.jsonl"), &records)?;
    // With its own pipeline, loadgen waits as the verifier does (the consumer caught up and
    // every admitted winner accounted for) before it stops the consumer. Against an api it did
    // not start, it waits for the design's rows through the api; the course's stages are left
    // to the verifier, whose counts never settle where a stage lost coupons.
    let drain = if pipeline.is_some() {
        drain_like_the_verifier(&cli.stack, &campaign_id, strategy, cli.drain_timeout).await?
    } else if !strategy.has_gate() {
        None
    } else {
        let drain = target
            .wait_drained(control, &campaign_id, cli.drain_timeout)
            .await?;
        if drain.is_none() {
            eprintln!(
                "warning: the pipeline did not write every issued coupon within {:?}",
                cli.drain_timeout
            );
        }
        drain
    };
    let campaign_after = target.campaign(control, &campaign_id).await?;
    let wall_ms = records
        .last()
        .map_or(0, |last| (last.sent_at_us - records[0].sent_at_us) / 1000);
    let summary = Summary {
        run_id: run_id.to_owned(),
        campaign_id,
        campaign_created,
        strategy: campaign_after["strategy"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or(strategy),
        faults: faults.iter().map(|f| f.as_str().to_owned()).collect(),
        consumer_restarts: pipeline.map(|p| p.consumer_restarts() - restarts_before),
        limit: campaign_after["limit"].as_u64(),
        host: target.base_url.clone(),
        users: cli.users,
        repeat: cli.repeat,
        hot_users: cli.hot_users,
        seed: cli.seed,
        launch_rate_per_second: cli.launch_rate(),
        started_at,
        drain_seconds: drain.map(|d| d.as_secs_f64()),
        campaign_after,
        stats: stats::compute(&records, if wall_ms > 60_000 { 1000 } else { 100 }),
    };
    if crash_armed && summary.consumer_restarts == Some(0) {
        eprintln!(
            "warning: the armed consumer crash never fired: the consumer wrote fewer rows than it was armed for"
        );
    }
    report::write_all(run_dir, &summary)?;
    Ok(StageRun {
        run_dir: run_dir.to_owned(),
        summary,
    })
}

/// The verifier's drain wait, for one campaign: the consumer group its strategy uses has caught
/// up, and (for the design) every admitted winner is a row or a failed event. The stores'
/// addresses come from the same env vars, and defaults, as the pipeline's.
async fn drain_like_the_verifier(
    stack: &StackArgs,
    campaign: &str,
    strategy: Strategy,
    timeout: Duration,
) -> anyhow::Result<Option<Duration>> {
    let mut stores =
        verifier::cli::Cli::try_parse_from(["verifier"]).context("bad verifier settings")?;
    stores.stack = stack.clone();
    let store = verifier::collect::mysql::connect(&stack.database_url).await?;
    let gate =
        verifier::collect::redis::GateReader::connect(&stack.redis_url, &stack.redis_key_prefix)
            .await?;
    let drained = verifier::drain::wait(
        &stores,
        &store,
        &gate,
        &[(campaign.to_owned(), strategy)],
        timeout,
    )
    .await?;
    store.disconnect().await;
    Ok(match drained {
        verifier::drain::Drained::Yes { after } => Some(after),
        verifier::drain::Drained::TimedOut { lag } => {
            eprintln!(
                "warning: the pipeline did not drain within {timeout:?} (consumer lag {lag})"
            );
            None
        }
    })
}

/// `<report-dir>/latest` -> `<name>`.
pub fn point_latest(report_dir: &Path, name: &str) -> anyhow::Result<()> {
    let latest = report_dir.join("latest");
    if latest.symlink_metadata().is_ok() {
        std::fs::remove_file(&latest)
            .with_context(|| format!("failed to replace {}", latest.display()))?;
    }
    std::os::unix::fs::symlink(name, &latest)
        .with_context(|| format!("failed to create {}", latest.display()))
}
