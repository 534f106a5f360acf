//! What a run writes and prints: the terminal table, `summary.json`, `summary.md`, and the
//! self-contained `report.html` (goose writes its own reports beside them).

pub mod compare;
pub mod html;

use std::path::{Path, PathBuf};

use anyhow::Context;
use coupon_domain::wire::{CampaignView, RunSummary};
use serde::{Deserialize, Serialize};
use tabled::{Table, Tabled, settings::Style};

use crate::stats::{Latency, Stats};

/// Everything `summary.json` holds: what the run was ([`RunSummary`], which the verifier and the
/// gate read) and its statistics beside it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    #[serde(flatten)]
    pub run: RunSummary,
    pub stats: Stats,
}

/// What a whole run (one stage, or a comparison) leaves: its directory and its terminal text.
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

/// One line of the latency table, formatted once for the terminal, markdown and HTML.
#[derive(Tabled)]
struct Row {
    result: String,
    count: u64,
    #[tabled(rename = "p50 ms")]
    p50: String,
    #[tabled(rename = "p90 ms")]
    p90: String,
    #[tabled(rename = "p99 ms")]
    p99: String,
    #[tabled(rename = "p99.9 ms")]
    p999: String,
    #[tabled(rename = "max ms")]
    max: String,
}

fn drain_text(summary: &Summary) -> String {
    summary
        .run
        .drain_seconds
        .map_or("not waited for".to_owned(), |s| format!("{s:.2}s"))
}

fn row(result: &str, count: u64, latency: Option<&Latency>) -> Row {
    let ms = |f: fn(&Latency) -> f64| latency.map_or("-".to_owned(), |l| format!("{:.2}", f(l)));
    Row {
        result: result.to_owned(),
        count,
        p50: ms(|l| l.p50_ms),
        p90: ms(|l| l.p90_ms),
        p99: ms(|l| l.p99_ms),
        p999: ms(|l| l.p999_ms),
        max: ms(|l| l.max_ms),
    }
}

fn rows(stats: &Stats) -> Vec<Row> {
    let mut rows: Vec<Row> = stats
        .by_class
        .iter()
        .map(|(class, count)| row(class, *count, stats.latency_by_class.get(class)))
        .collect();
    rows.push(row("all", stats.requests, stats.latency_overall.as_ref()));
    rows
}

/// The summary as the terminal shows it.
pub fn terminal(summary: &Summary) -> String {
    let stats = &summary.stats;
    let table = Table::new(rows(stats)).with(Style::rounded()).to_string();
    format!(
        "{table}\n{} requests from {} users in {:.2}s: {:.0} responses/s; drain {}\n{}",
        stats.requests,
        stats.distinct_users,
        stats.wall_seconds,
        stats.responses_per_second,
        drain_text(summary),
        campaign_text(&summary.run.campaign_after),
    )
}

/// The campaign's numbers after the run, in one line.
fn campaign_text(campaign: &CampaignView) -> String {
    format!(
        "campaign {}: {} issued of {}, {} written, {} failed events, {} remaining ({})",
        campaign.campaign_id,
        campaign.issued,
        campaign.limit,
        campaign.persisted,
        campaign.failed_events,
        campaign.remaining,
        campaign.state,
    )
}

/// What the run was, in four lines of plain text: the markdown lists them, the HTML report
/// shows them escaped.
fn run_facts(summary: &Summary) -> [String; 4] {
    let (run, stats) = (&summary.run, &summary.stats);
    let created = if run.campaign_created {
        "created by this run"
    } else {
        "existing"
    };
    [
        format!(
            "campaign {} (limit {}, {created}), strategy {}, faults: {}",
            run.campaign_id,
            run.limit,
            run.strategy,
            run.faults_text()
        ),
        format!(
            "{} users × {} against {}, launched at {}/s, seed {}, hot users {}",
            run.users, run.repeat, run.host, run.launch_rate_per_second, run.seed, run.hot_users
        ),
        format!(
            "{} requests in {:.2}s: {:.0} responses/s",
            stats.requests, stats.wall_seconds, stats.responses_per_second
        ),
        format!("drain: {}", drain_text(summary)),
    ]
}

pub fn markdown(summary: &Summary) -> String {
    let table = Table::new(rows(&summary.stats))
        .with(Style::markdown())
        .to_string();
    let facts: String = run_facts(summary)
        .iter()
        .map(|fact| format!("- {fact}\n"))
        .collect();
    format!(
        "# loadgen run {run}\n\n{facts}\n{table}\n\n\
         Latencies are measured by loadgen at µs resolution (HDR histograms). See `report.html` \
         for the charts, `history.jsonl` for every request, `goose-report.*` for goose's view.\n",
        run = summary.run.run_id,
    )
}

/// Reads `summary.json` back from a run directory.
pub fn read_summary(run_dir: &Path) -> anyhow::Result<Summary> {
    let path = run_dir.join("summary.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not a run summary", path.display()))
}

/// Writes the run's reports, `summary.json` last and whole (to a temporary file, then renamed):
/// the verifier takes a run without it as unfinished.
pub fn write_all(run_dir: &Path, summary: &Summary) -> anyhow::Result<()> {
    let write = |name: &str, contents: String| {
        let path = run_dir.join(name);
        std::fs::write(&path, contents)
            .with_context(|| format!("failed to write {}", path.display()))
    };
    write("summary.md", markdown(summary))?;
    write("report.html", html::render(summary))?;
    write(
        "summary.json.partial",
        serde_json::to_string_pretty(summary)?,
    )?;
    let done = run_dir.join("summary.json");
    std::fs::rename(run_dir.join("summary.json.partial"), &done)
        .with_context(|| format!("failed to write {}", done.display()))
}
