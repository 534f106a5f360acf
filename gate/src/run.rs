//! The gate, scenario by scenario: do the scenario's action, judge each of its checks on the
//! files the runs left, print a line per check, and count.

use std::path::{Path, PathBuf};

use anyhow::Context;
use coupon_domain::wire::RunSummary;
use coupon_store::{Store, admin};
use verifier::render::{VERDICT_JSON, VerdictFile};

use crate::{
    children::{self, tail},
    cli::Cli,
    judge::{self, CompareLine, Judgement},
    scenario::{Action, Check, Expect, Load, scenarios},
};

/// How many checks passed and failed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub passed: usize,
    pub failed: usize,
}

impl Tally {
    fn record(&mut self, name: &str, judgement: &Judgement) {
        match judgement {
            Ok(seen) => {
                println!("gate: PASS {name} ({seen})");
                self.passed += 1;
            }
            Err(why) => {
                println!("gate: FAIL {name}: {why}");
                self.failed += 1;
            }
        }
    }
}

/// Builds the children, empties the report directory, and runs every scenario. `Err` only when
/// the gate itself cannot run; a failed check is counted in the tally.
pub async fn run(cli: &Cli) -> anyhow::Result<Tally> {
    if !cli.no_build {
        children::build().await?;
    }
    remove_if_present(&cli.report_dir)?;
    std::fs::create_dir_all(&cli.report_dir)
        .with_context(|| format!("cannot create {}", cli.report_dir.display()))?;
    let mut tally = Tally::default();
    let chosen = scenarios(cli.users).into_iter().filter(|s| {
        cli.only
            .as_deref()
            .is_none_or(|only| s.heading.contains(only))
    });
    for scenario in chosen {
        println!("==> {}", scenario.heading);
        let done = act(cli, &scenario.action).await;
        for check in &scenario.checks {
            let judgement = match &done {
                Ok(()) => judge(cli, check).await,
                Err(error) => Err(format!("not judged: {error:#}")),
            };
            tally.record(&check.name(), &judgement);
        }
    }
    Ok(tally)
}

/// A scenario's action: a loadgen run, or a row planted.
async fn act(cli: &Cli, action: &Action) -> anyhow::Result<()> {
    match action {
        Action::Load(load) => run_loadgen(cli, load).await,
        Action::PlantExtraRow { dir } => plant_extra_row(cli, dir).await,
    }
}

async fn run_loadgen(cli: &Cli, load: &Load) -> anyhow::Result<()> {
    let mut command = children::command(&cli.bin_dir()?, "loadgen", &cli.stack);
    command
        .args(load.args(&cli.report_dir))
        .envs(load.env.iter().copied());
    let finished = children::run(command, true).await?;
    println!("{}", tail(&finished.stdout, load.show));
    let failed_as_a_control_must = load.control.is_some()
        && (finished.code() == Some(LOADGEN_EXIT_VERDICT)
            || (load.fault_may_fail && finished.code() == Some(LOADGEN_EXIT_FAULT_FAILED)));
    let judged_by_files = (load.verifies_itself && finished.code() == Some(LOADGEN_EXIT_VERDICT))
        || failed_as_a_control_must;
    anyhow::ensure!(
        finished.status.success() || judged_by_files,
        "loadgen failed ({}) for {}",
        finished.status,
        load.dir
    );
    Ok(())
}

/// Plants a coupon row beyond the limit into the campaign of the run in `dir`.
async fn plant_extra_row(cli: &Cli, dir: &str) -> anyhow::Result<()> {
    let campaign_id = summary(&cli.report_dir, dir)?.campaign_id;
    let store = Store::open(&cli.stack.database_url, 1)
        .await
        .with_context(|| format!("mysql at {}", cli.stack.database_address()))?;
    let planted = admin::plant_extra_coupon_row(&store, &campaign_id).await;
    store.disconnect().await;
    anyhow::ensure!(
        planted.with_context(|| format!("failed to plant a row into campaign {campaign_id}"))?,
        "campaign {campaign_id} is not in mysql: nothing planted"
    );
    println!("planted a coupon row beyond the limit into campaign {campaign_id}");
    Ok(())
}

async fn judge(cli: &Cli, check: &Check) -> Judgement {
    let outcome = match check {
        Check::Verifier { dir, expect, .. } => judge_verifier(cli, dir, *expect).await,
        Check::CrashFired { dir } => summary(&cli.report_dir, dir)
            .map(|summary| judge::crash_fired(summary.consumer_restarts)),
        Check::ComparisonRan { dir, .. } => {
            comparison(&cli.report_dir, dir).map(|(lines, _)| judge::comparison_ran(&lines))
        }
        Check::ComparisonVerdicts { dir, .. } => comparison(&cli.report_dir, dir)
            .map(|(lines, html_bytes)| judge::comparison_verdicts(&lines, html_bytes)),
        Check::MatrixHolds { dir, faults, .. } => {
            matrix(&cli.report_dir, dir).map(|lines| judge::matrix_holds(&lines, faults))
        }
    };
    outcome.unwrap_or_else(|error| Err(format!("{error:#}")))
}

/// Runs the verifier on the run in `dir`, then judges its exit code and `verdict.json`. A run
/// on stores of its own was verified by loadgen before it stopped them: its `verdict.json` is
/// judged as it stands.
async fn judge_verifier(cli: &Cli, dir: &str, expect: Expect) -> anyhow::Result<Judgement> {
    let verdict_path = latest(&cli.report_dir, dir).join(VERDICT_JSON);
    let summary = summary(&cli.report_dir, dir)?;
    if summary.private_stores.is_some() {
        let file = VerdictFile::read(&verdict_path)
            .context("loadgen verifies a run on stores of its own, and left no verdict")?;
        let exit = Some(i32::from(file.exit_code));
        return Ok(judge::verdict(
            expect,
            exit,
            &file,
            summary.campaign_id.as_str(),
        ));
    }
    // A verdict left by an earlier check of the same run must not stand in for this one.
    remove_if_present(&verdict_path)?;
    let mut command = children::command(&cli.bin_dir()?, "verifier", &cli.stack);
    command.arg("--report-dir").arg(cli.report_dir.join(dir));
    let finished = children::run(command, false).await?;
    println!("{}", tail(&finished.stdout, 12));
    let file = match VerdictFile::read(&verdict_path) {
        Ok(file) => file,
        Err(error) => {
            return Ok(Err(format!(
                "exit {:?}, {error:#}; the verifier said:\n{}",
                finished.code(),
                tail(&format!("{}{}", finished.stderr, finished.stdout), 12)
            )));
        }
    };
    Ok(judge::verdict(
        expect,
        finished.code(),
        &file,
        summary.campaign_id.as_str(),
    ))
}

/// `<report dir>/<dir>/latest`: the run loadgen last wrote there.
fn latest(report_dir: &Path, dir: &str) -> PathBuf {
    report_dir.join(dir).join("latest")
}

fn summary(report_dir: &Path, dir: &str) -> anyhow::Result<RunSummary> {
    verifier::collect::history::read_summary(&latest(report_dir, dir))
}

/// Removes `path` (a directory with everything in it, or a file); absent is fine.
fn remove_if_present(path: &Path) -> anyhow::Result<()> {
    let removed = if path.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
    match removed {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            Err(error).with_context(|| format!("cannot remove {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// The comparison's lines (`compare.json`) and the size of its `compare.html`.
fn comparison(report_dir: &Path, dir: &str) -> anyhow::Result<(Vec<CompareLine>, u64)> {
    let latest = latest(report_dir, dir);
    let json_path = latest.join("compare.json");
    let text = std::fs::read_to_string(&json_path)
        .with_context(|| format!("cannot read {}", json_path.display()))?;
    let lines: Vec<CompareLine> = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a loadgen comparison", json_path.display()))?;
    let html_bytes = std::fs::metadata(latest.join("compare.html")).map_or(0, |m| m.len());
    Ok((lines, html_bytes))
}

/// loadgen's exit code when it verified a run itself and a verdict failed (`--fault all`).
const LOADGEN_EXIT_VERDICT: i32 = 1;

/// loadgen's exit when the run could not finish, as when a fault never healed (its history and
/// reports are written first).
const LOADGEN_EXIT_FAULT_FAILED: i32 = 2;

/// The fault matrix's lines (`matrix.json`).
fn matrix(report_dir: &Path, dir: &str) -> anyhow::Result<Vec<judge::MatrixLine>> {
    let json_path = latest(report_dir, dir).join("matrix.json");
    let text = std::fs::read_to_string(&json_path)
        .with_context(|| format!("cannot read {}", json_path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{} is not a loadgen fault matrix", json_path.display()))
}
