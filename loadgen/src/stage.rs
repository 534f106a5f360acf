//! One stage of a run: one burst against one campaign, with its faults, written to one
//! directory: create (or find) the campaign, arm the faults, fire the burst, write the history,
//! wait for the pipeline to drain, write the reports.

use std::{path::Path, sync::Arc, time::Duration};

use anyhow::Context;
use coupon_domain::{CampaignId, CouponLimit, Strategy, wire::RunSummary};
use coupon_runtime::stack::StackArgs;

use crate::{
    cli::Cli,
    history::{self, History},
    nemesis::{self, FaultSpec, Scene},
    pipeline::Pipeline,
    progress::Progress,
    report::{self, Summary},
    scenario::{self, RunState, now_us},
    scrape::Scraper,
    stats,
    target::Target,
    users::UserPlan,
};

/// One burst against one campaign, with what it wrote.
#[derive(Debug)]
pub struct StageRun {
    pub run_dir: std::path::PathBuf,
    pub summary: Summary,
}

/// The campaign a stage aims at, as the api knows it.
struct Aim {
    campaign_id: CampaignId,
    created: bool,
    strategy: Strategy,
    limit: CouponLimit,
}

/// The campaign of --campaign, or a fresh one of `strategy` named after the run, its sale
/// window opening at `opening` if a fault asks for one (else open now).
async fn aim(
    cli: &Cli,
    target: &Target,
    strategy: Strategy,
    run_id: &str,
    opening: Option<&nemesis::Opening>,
) -> anyhow::Result<Aim> {
    if let Some(id) = &cli.campaign {
        let existing = target.api.campaign(id).await?;
        return Ok(Aim {
            campaign_id: id.clone(),
            created: false,
            strategy: existing.strategy,
            limit: CouponLimit::parse(existing.limit).unwrap_or(cli.limit),
        });
    }
    let campaign_id = CampaignId::parse(&format!("run-{run_id}"))
        .with_context(|| format!("run id {run_id} does not make a campaign id"))?;
    target
        .api
        .create_campaign(&campaign_id, cli.limit, strategy, opening.map(|o| o.at))
        .await?;
    Ok(Aim {
        campaign_id,
        created: true,
        strategy,
        limit: cli.limit,
    })
}

/// One burst against a fresh campaign of `strategy` (or the campaign of --campaign), with
/// `faults` injected, written to `run_dir`.
pub async fn run(
    cli: &Cli,
    target: &Target,
    strategy: Strategy,
    faults: &[FaultSpec],
    run_dir: &Path,
    run_id: &str,
) -> anyhow::Result<StageRun> {
    std::fs::create_dir_all(run_dir)
        .with_context(|| format!("failed to create {}", run_dir.display()))?;
    let opening = nemesis::opening(faults, &cli.arrivals(), cli.users, cli.limit.get());
    let aim = aim(cli, target, strategy, run_id, opening.as_ref()).await?;
    let pipeline = target.pipeline.as_ref();
    let restarts_before = pipeline.map_or(0, Pipeline::consumer_restarts);
    let history = Arc::new(History::default());
    let users = UserPlan::new(cli.seed, cli.hot_users);
    let scene = pipeline.map(|pipeline| Scene {
        pipeline,
        api: &target.api,
        users,
        stack: &target.stack,
        history: history.clone(),
        run_id,
        campaign_id: &aim.campaign_id,
        strategy: aim.strategy,
        limit: aim.limit.get(),
        sandbox: target.sandbox.as_ref(),
        opening,
    });
    let crash_armed = match &scene {
        Some(scene) => nemesis::prepare(scene, faults).await?,
        None => false,
    };

    let state = Arc::new(RunState {
        run_id: run_id.to_owned(),
        campaign_id: aim.campaign_id.clone(),
        apply_path: format!("/campaigns/{}/apply", aim.campaign_id),
        apply_urls: target
            .apply_bases()
            .iter()
            .map(|base| {
                reqwest::Url::parse(&format!("{base}/campaigns/{}/apply", aim.campaign_id))
                    .with_context(|| format!("{base} is no URL"))
            })
            .collect::<anyhow::Result<_>>()?,
        goose_metrics: cli.goose_metrics(),
        client: scenario::bare_client(cli.timeout)?,
        history: history.clone(),
        plan: users,
        start_us: std::sync::OnceLock::new(),
        arrivals: cli.arrivals(),
        pace_us: cli
            .pace
            .map(|pace| i64::try_from(pace.as_micros()).unwrap_or(i64::MAX)),
    });
    let started_at = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    eprintln!(
        "run {run_id}: {} users × {} at {} (campaign {}, strategy {})",
        cli.users, cli.repeat, target.api.base_url, aim.campaign_id, aim.strategy
    );
    let scraper = if cli.scrape_every.is_zero() {
        None
    } else {
        let endpoints = target.metrics_endpoints(&cli.consumer_metrics);
        Some(Scraper::start(endpoints, cli.scrape_every)?)
    };
    let progress = Progress::start(history.clone(), (cli.users * cli.repeat) as u64);
    let (burst_done, burst_over) = tokio::sync::watch::channel(false);
    let attack = async {
        let attacked = scenario::attack(cli, &target.api.base_url, state, run_dir).await;
        let _ = burst_done.send(true);
        attacked
    };
    let faults_run = async {
        match &scene {
            Some(scene) => nemesis::run(scene, faults, burst_over).await,
            None => Ok(()),
        }
    };
    let (attacked, faults_run) = tokio::join!(attack, faults_run);
    progress.finish();
    attacked?;
    // A fault that failed (a poison record never captured, a crash never restarted) is the
    // run's error, but only once its history and reports are written: they show what happened.
    let fault_failure = faults_run.err();

    let records = history.take();
    let fault_lines = history.faults();
    history::write_jsonl(&run_dir.join("history.jsonl"), &records, &fault_lines)?;
    let not_struck = nemesis::not_struck(faults, &fault_lines);
    if !not_struck.is_empty() {
        eprintln!(
            "warning: these faults never struck: {}",
            not_struck.join(", ")
        );
    }
    let drain = wait_drained(cli, target, &aim).await?;
    let first_sent = records.first().map_or_else(now_us, |r| r.sent_at_us);
    let drained_at_ms = drain.map(|_| (now_us() - first_sent) as f64 / 1000.0);
    let server = match scraper {
        Some(scraper) => Some(scraper.finish(first_sent).await),
        None => None,
    };
    let campaign_after = target.api.campaign(&aim.campaign_id).await?;
    let wall_ms = records
        .last()
        .map_or(0, |last| (last.sent_at_us - records[0].sent_at_us) / 1000);
    let mut summary = Summary {
        run: RunSummary {
            run_id: run_id.to_owned(),
            campaign_id: aim.campaign_id,
            campaign_created: aim.created,
            strategy: campaign_after.strategy,
            faults: faults.iter().map(ToString::to_string).collect(),
            consumer_restarts: pipeline.map(|p| p.consumer_restarts() - restarts_before),
            limit: campaign_after.limit,
            host: target.api.base_url.clone(),
            users: cli.users,
            repeat: cli.repeat,
            hot_users: cli.hot_users,
            seed: cli.seed,
            launch_rate_per_second: cli.launch_rate(),
            started_at,
            drain_seconds: drain.map(|d| d.as_secs_f64()),
            campaign_after,
            private_stores: target.sandbox.as_ref().map(crate::sandbox::Sandbox::stores),
        },
        stats: stats::compute(
            &records,
            if wall_ms > 60_000 { 1000 } else { 100 },
            u64::try_from(cli.timeout.as_micros()).unwrap_or(u64::MAX),
        ),
        thresholds: Vec::new(),
        stages: cli.stages.as_ref().map(ToString::to_string),
        pace_ms: cli.pace.map(|pace| pace.as_secs_f64() * 1000.0),
        server,
        fault_windows: nemesis::windows(&fault_lines, &records, first_sent),
        faults_not_struck: not_struck,
        drained_at_ms,
    };
    summary.thresholds = crate::threshold::judge_all(&cli.thresholds, &summary);
    if crash_armed && summary.run.consumer_restarts == Some(0) {
        eprintln!(
            "warning: the armed consumer crash never fired: the consumer wrote fewer rows than it was armed for"
        );
    }
    report::write_all(run_dir, &summary)?;
    if let Some(error) = fault_failure {
        return Err(error.context(format!(
            "a fault failed; the run's history and reports are in {}",
            run_dir.display()
        )));
    }
    Ok(StageRun {
        run_dir: run_dir.to_owned(),
        summary,
    })
}

/// With its own pipeline, loadgen waits as the verifier does (the consumer caught up and every
/// admitted winner accounted for) before it stops the consumer. Against an api it did not
/// start, it waits for the design's rows through the api; the course's stages are left to the
/// verifier, whose counts never settle where a stage lost coupons.
async fn wait_drained(cli: &Cli, target: &Target, aim: &Aim) -> anyhow::Result<Option<Duration>> {
    if target.pipeline.is_some() {
        return drain_like_the_verifier(&target.stack, aim, cli.drain_timeout).await;
    }
    if !aim.strategy.has_gate() {
        return Ok(None);
    }
    let drain = target
        .api
        .wait_drained(&aim.campaign_id, cli.drain_timeout)
        .await?;
    if drain.is_none() {
        eprintln!(
            "warning: the pipeline did not write every issued coupon within {:?}",
            cli.drain_timeout
        );
    }
    Ok(drain)
}

/// The verifier's drain wait, for one campaign: the consumer group its strategy uses has caught
/// up, and (for the design) every admitted winner is a row or a failed event.
async fn drain_like_the_verifier(
    stack: &StackArgs,
    aim: &Aim,
    timeout: Duration,
) -> anyhow::Result<Option<Duration>> {
    let store = verifier::collect::mysql::connect(&stack.database_url).await?;
    let gate =
        verifier::collect::redis::GateReader::connect(&stack.redis_url, &stack.redis_key_prefix)
            .await?;
    let drained = verifier::drain::wait(
        stack,
        &store,
        &gate,
        &[(aim.campaign_id.to_string(), aim.strategy)],
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
