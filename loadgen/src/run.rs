//! One loadgen run, from the top: raise the process's limits, find (or start) the api, run one
//! stage or the comparison of every strategy, stop what loadgen started.

use anyhow::Context;

use crate::{
    cli::{Cli, Strategies},
    compare, diff, judge, matrix,
    report::{self, Outcome},
    stage,
    target::{self, Target},
};

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
    let cli = cli.resolved();
    // A baseline that is not there is found out before the run, not after it.
    let baseline = match &cli.baseline {
        Some(run) => Some(diff::locate(&cli.report_dir, run)?),
        None => None,
    };
    raise_fd_limit();
    check_listen_backlog(cli.users);
    std::fs::create_dir_all(&cli.report_dir)
        .with_context(|| format!("failed to create {}", cli.report_dir.display()))?;
    let pipeline_log = cli.report_dir.join("pipeline.log");
    // One stage runs where its faults need; the matrix and the comparison move the pipeline
    // into a sandbox and out again round by round.
    let several_rounds = cli.fault_matrix || cli.strategy == Strategies::All;
    let first_faults = if several_rounds { &[][..] } else { &cli.fault };
    let mut target = target::find_or_start(
        &cli.stack,
        (&cli.host, cli.apis),
        cli.admin_token.clone(),
        &pipeline_log,
        first_faults,
        cli.control,
    )
    .await?;
    if let Some(control) = cli.control {
        eprintln!(
            "negative control {control}: the pipeline runs with a fix for {} switched off on purpose; this run must fail",
            control.fault()
        );
    }
    let outcome = if !cli.fault.is_empty() && target.pipeline.is_none() {
        Err(anyhow::anyhow!(
            "--fault needs the api and consumer that loadgen starts itself, but an api already answers at {}: stop it, or leave out --fault",
            target.api.base_url
        ))
    } else {
        match &cli.strategy {
            Strategies::One(strategy) if cli.fault_matrix => {
                matrix::run(&cli, &mut target, *strategy).await
            }
            Strategies::One(strategy) => {
                one_stage(&cli, &target, *strategy, baseline.as_deref()).await
            }
            Strategies::All => compare::run(&cli, &mut target).await,
        }
    };
    if target.pipeline.is_some() {
        let stopped = target.stop_started().await.with_context(|| {
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

/// A run of one strategy: one stage, in a directory of its own, pointed at by `latest`; with a
/// baseline, compared with it.
async fn one_stage(
    cli: &Cli,
    target: &Target,
    strategy: coupon_domain::Strategy,
    baseline: Option<&std::path::Path>,
) -> anyhow::Result<Outcome> {
    let run_id = report::new_run_id();
    let run_dir = cli.report_dir.join(&run_id);
    std::fs::create_dir_all(&run_dir)
        .with_context(|| format!("failed to create {}", run_dir.display()))?;
    // `latest` moves before the burst: should the run not finish, the verifier finds it
    // unfinished (no summary.json) and refuses it, rather than judging the run before.
    report::point_latest(&cli.report_dir, &run_id)?;
    let staged = stage::run(cli, target, strategy, &cli.fault, &run_dir, &run_id).await;
    if staged.is_err() && target.sandbox.is_some() {
        // A fault failed, but the run's history and summary are written: verify it while its
        // stores still run, so its verdict is there to read.
        if let Ok(judgement) =
            judge::verify(&target.stack, &cli.report_dir, &run_id, cli.drain_timeout).await
        {
            eprintln!("{}", judgement.final_line);
        }
    }
    let stage = staged?;
    let mut terminal = report::terminal(&stage.summary);
    // Stores of the run's own stop with loadgen: the run is verified here, before they do.
    let mut failed_rounds = Vec::new();
    if target.sandbox.is_some() {
        let judgement =
            judge::verify(&target.stack, &cli.report_dir, &run_id, cli.drain_timeout).await?;
        terminal = format!(
            "{terminal}\nverified on the run's own stores, before loadgen stopped them:\n{}",
            judgement.final_line
        );
        if judgement.verdicts.iter().any(|v| !v.holds()) {
            failed_rounds.push(judgement.final_line.clone());
        }
        if !stage.summary.faults_not_struck.is_empty() {
            failed_rounds.push(format!(
                "never struck: {}",
                stage.summary.faults_not_struck.join(", ")
            ));
        }
    }
    if let Some(baseline) = baseline {
        let baseline = diff::RunFiles::read(baseline)?;
        let this = diff::RunFiles::read(&stage.run_dir)?;
        terminal = format!("{terminal}\n{}", diff::write(&baseline, &this)?);
    }
    Ok(Outcome {
        terminal,
        failed_thresholds: report::failed_thresholds(&stage.summary),
        failed_rounds,
        run_dir: stage.run_dir,
    })
}
