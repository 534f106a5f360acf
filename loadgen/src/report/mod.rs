//! What a run writes and prints: the terminal table, `summary.json`, `summary.md`, and the
//! self-contained `report.html` (goose writes its own reports beside them).

pub mod compare;
pub mod html;
pub mod matrix;

use std::path::{Path, PathBuf};

use anyhow::Context;
use coupon_domain::wire::{CampaignView, RunSummary};
use serde::{Deserialize, Serialize};
use tabled::{Table, Tabled, settings::Style};

use crate::{
    scrape::ServerTimelines,
    stats::{Latency, Stats},
};

/// Everything `summary.json` holds: what the run was ([`RunSummary`], which the verifier and the
/// gate read) and its statistics beside it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    #[serde(flatten)]
    pub run: RunSummary,
    pub stats: Stats,
    /// Each `--threshold`, as the run met it.
    #[serde(default)]
    pub thresholds: Vec<crate::threshold::Judged>,
    /// `--stages`, as given.
    #[serde(default)]
    pub stages: Option<String>,
    /// `--pace`, ms.
    #[serde(default)]
    pub pace_ms: Option<f64>,
    /// The api's and consumer's `/metrics` during the run, when loadgen read them.
    #[serde(default)]
    pub server: Option<ServerTimelines>,
    /// Each fault's window, from the history's fault lines (the report's shaded bands).
    #[serde(default)]
    pub fault_windows: Vec<crate::nemesis::FaultWindow>,
    /// Faults asked for that never struck (nothing to act on, or the burst ended first).
    #[serde(default)]
    pub faults_not_struck: Vec<String>,
    /// When the pipeline had drained (every winner a row or a failed event), in ms since the
    /// first request; `None` when it did not, or loadgen did not wait for it.
    #[serde(default)]
    pub drained_at_ms: Option<f64>,
}

/// What a whole run (one stage, or a comparison) leaves: its directory, its terminal text, and
/// the thresholds it failed (loadgen then exits 3).
#[derive(Debug)]
pub struct Outcome {
    pub run_dir: PathBuf,
    pub terminal: String,
    pub failed_thresholds: Vec<String>,
    /// `--fault all`, and a run on stores of its own (verified by loadgen): each round or run
    /// whose verdict failed, or whose fault never struck or healed.
    pub failed_rounds: Vec<String>,
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
    let [p50, p90, p99, p999, max] = latency.map_or_else(
        || std::array::from_fn(|_| "-".to_owned()),
        |l| l.values().map(|ms| format!("{ms:.2}")),
    );
    Row {
        result: result.to_owned(),
        count,
        p50,
        p90,
        p99,
        p999,
        max,
    }
}

/// One row per result class and one for all, of one way of measuring latency.
fn rows_of(
    stats: &Stats,
    by_class: &std::collections::BTreeMap<String, Latency>,
    overall: Option<&Latency>,
) -> Vec<Row> {
    let mut rows: Vec<Row> = stats
        .by_class
        .iter()
        .map(|(class, count)| row(class, *count, by_class.get(class)))
        .collect();
    rows.push(row("all", stats.requests, overall));
    rows
}

/// The service times by result, and the latency of all from the intended send time.
fn rows(stats: &Stats) -> Vec<Row> {
    let mut rows = rows_of(
        stats,
        &stats.latency_by_class,
        stats.latency_overall.as_ref(),
    );
    rows.push(row(
        INTENDED_ROW,
        stats.requests,
        stats.intended_overall.as_ref(),
    ));
    rows
}

/// The latencies from the intended send time, by result.
fn intended_rows(stats: &Stats) -> Vec<Row> {
    rows_of(
        stats,
        &stats.intended_by_class,
        stats.intended_overall.as_ref(),
    )
}

const INTENDED_ROW: &str = "all, from due";

/// What the two latencies are, in one sentence.
fn latency_note(stats: &Stats) -> String {
    format!(
        "Latency is service time (from the send to the reply) except in the row `{INTENDED_ROW}`, \
         which runs from when the run's schedule made each request due, so it also holds the \
         time a stalled run kept requests from being sent; a request with no reply counts at \
         the timeout ({:.0} ms).",
        stats.no_reply_counted_ms
    )
}

/// The summary as the terminal shows it.
pub fn terminal(summary: &Summary) -> String {
    let stats = &summary.stats;
    let table = Table::new(rows(stats)).with(Style::rounded()).to_string();
    let server = summary
        .server
        .as_ref()
        .map_or_else(String::new, |server| format!("{}\n", server_text(server)));
    format!(
        "{table}\n{}\n{} requests from {} users in {:.2}s: {:.0} responses/s; drain {}\n{server}{}{}",
        latency_note(stats),
        stats.requests,
        stats.distinct_users,
        stats.wall_seconds,
        stats.responses_per_second,
        drain_text(summary),
        campaign_text(&summary.run.campaign_after),
        thresholds_text(summary, "\n"),
    )
}

/// The server's side of the run in one line: the peaks of its timelines.
fn server_text(server: &ServerTimelines) -> String {
    let peak = |part: &str, name: &str, unit: &str| {
        server
            .peak(part, name)
            .map_or_else(|| "-".to_owned(), |v| format!("{v:.0}{unit}"))
    };
    let mut text = format!(
        "server side ({} reads of /metrics, every {} ms): consumer lag peak {}, in doubt peak {}, \
         gate p99 up to {}, kafka ack p99 up to {}, rows written {}, memory peak api {} consumer {}",
        server.at_ms.len(),
        server.every_ms,
        peak("consumer", "lag", ""),
        peak("api", "in doubt", ""),
        peak("api", "gate p99", " ms"),
        peak("api", "kafka ack p99", " ms"),
        peak("consumer", "rows written", ""),
        peak("api", "memory", " MB"),
        peak("consumer", "memory", " MB"),
    );
    if !server.unreachable.is_empty() {
        text.push_str(&format!(
            "; never answered: {}",
            server.unreachable.join(", ")
        ));
    }
    text
}

/// The thresholds the run failed, as written.
pub fn failed_thresholds(summary: &Summary) -> Vec<String> {
    summary
        .thresholds
        .iter()
        .filter(|judged| !judged.held)
        .map(|judged| judged.threshold.clone())
        .collect()
}

/// One line per `--threshold` (`PASS p99<50ms: observed 12.345`), each after `before`.
fn thresholds_text(summary: &Summary, before: &str) -> String {
    summary
        .thresholds
        .iter()
        .map(|judged| format!("{before}threshold {judged}"))
        .collect()
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

/// How users arrived: the burst, `--rate`, or `--stages`, and `--pace`.
fn arrival_text(summary: &Summary) -> String {
    let arrivals = match &summary.stages {
        Some(stages) => format!("arriving along --stages {stages}"),
        None => format!("launched at {}/s", summary.run.launch_rate_per_second),
    };
    match summary.pace_ms {
        Some(pace) => format!("{arrivals}, each request due {pace:.0} ms after the one before"),
        None => arrivals,
    }
}

/// What the run was, in five lines of plain text: the markdown lists them, the HTML report
/// shows them escaped.
fn run_facts(summary: &Summary) -> [String; 5] {
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
            "{} users × {} against {}, {}, seed {}, hot users {}",
            run.users,
            run.repeat,
            run.host,
            arrival_text(summary),
            run.seed,
            run.hot_users
        ),
        format!(
            "{} requests in {:.2}s: {:.0} responses/s",
            stats.requests, stats.wall_seconds, stats.responses_per_second
        ),
        format!("drain: {}", drain_text(summary)),
        summary
            .server
            .as_ref()
            .map_or_else(|| "server side: not read".to_owned(), server_text),
    ]
}

pub fn markdown(summary: &Summary) -> String {
    let table = Table::new(rows(&summary.stats))
        .with(Style::markdown())
        .to_string();
    let intended = Table::new(intended_rows(&summary.stats))
        .with(Style::markdown())
        .to_string();
    let facts: String = run_facts(summary)
        .iter()
        .map(|fact| format!("- {fact}\n"))
        .collect();
    let thresholds = thresholds_text(summary, "\n- ");
    let thresholds = if thresholds.is_empty() {
        String::new()
    } else {
        format!("\n\nThresholds (`--threshold`):\n{thresholds}")
    };
    format!(
        "# loadgen run {run}\n\n{facts}\n{table}\n\n{note}\n\n\
         From the intended send time, by result:\n\n{intended}{thresholds}\n\n\
         Latencies are measured by loadgen at µs resolution (HDR histograms). See `report.html` \
         for the charts, `history.jsonl` for every request (with `--goose-metrics`, \
         `goose-report.md` and `goose-report.json` hold goose's own view).\n",
        run = summary.run.run_id,
        note = latency_note(&summary.stats),
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

/// A run of 300 users against a campaign of 10: 10 issued, 290 sold out, latencies from
/// 0.5 ms rising by 37 µs a request (the reports' and thresholds' tests).
#[cfg(test)]
pub(crate) fn sample_summary() -> Summary {
    use coupon_domain::history::{HistoryRecord, ResultClass};

    let records: Vec<HistoryRecord> = (0..300)
        .map(|i| HistoryRecord {
            run_id: "r".into(),
            campaign_id: "c<script>".into(),
            user_id: i,
            request_id: i,
            intended_at_us: 0,
            sent_at_us: i as i64 * 1000,
            response_us: Some(500 + i * 37),
            status: Some(if i < 10 { 201 } else { 410 }),
            result: if i < 10 {
                ResultClass::Issued
            } else {
                ResultClass::SoldOut
            },
            seq: (i < 10).then_some(i as u32 + 1),
        })
        .collect();
    let campaign = coupon_domain::CampaignId::parse("c-1").expect("a valid id");
    Summary {
        run: coupon_domain::wire::RunSummary {
            run_id: "run-1".into(),
            campaign_id: campaign.clone(),
            campaign_created: true,
            strategy: coupon_domain::Strategy::Reliable,
            faults: Vec::new(),
            consumer_restarts: None,
            limit: 10,
            host: "http://127.0.0.1:8080/<script>".into(),
            users: 300,
            repeat: 1,
            hot_users: 0.0,
            seed: 1,
            launch_rate_per_second: 300,
            started_at: "now".into(),
            drain_seconds: Some(0.5),
            campaign_after: coupon_domain::wire::CampaignView {
                campaign_id: campaign,
                limit: 10,
                issued: 10,
                persisted: 10,
                failed_events: 0,
                remaining: 0,
                opens_at: None,
                closes_at: None,
                state: coupon_domain::CampaignState::Open,
                strategy: coupon_domain::Strategy::Reliable,
                gate: None,
            },
            private_stores: None,
        },
        stats: crate::stats::compute(&records, 100, 30_000_000),
        thresholds: Vec::new(),
        stages: None,
        pace_ms: None,
        server: Some(ServerTimelines {
            every_ms: 250,
            // A read before the first request, then three during the run.
            at_ms: vec![-100.0, 0.0, 250.0, 500.0],
            series: vec![crate::scrape::Series {
                part: "consumer".into(),
                name: "lag".into(),
                unit: "events".into(),
                values: vec![Some(7.0), Some(7.0), None, Some(0.0)],
            }],
            unreachable: Vec::new(),
        }),
        fault_windows: vec![crate::nemesis::FaultWindow {
            fault: "db-lock@2ms:1s".into(),
            target: "mysql <row>".into(),
            action: "SELECT ... FOR UPDATE".into(),
            from_ms: 2.0,
            to_ms: Some(5.0),
            requests: 3,
            p99_ms: Some(1.5),
        }],
        faults_not_struck: Vec::new(),
        drained_at_ms: Some(900.0),
    }
}
