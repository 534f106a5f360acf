//! What a run writes and prints: the terminal table, `summary.json`, `summary.md`, and the
//! self-contained `report.html` (goose writes its own reports beside them).

pub mod compare;
pub mod html;

use std::path::Path;

use anyhow::Context;
use serde::Serialize;
use tabled::{Table, Tabled, settings::Style};

use crate::stats::{Latency, Stats};

/// Everything `summary.json` holds; the verifier reads the campaign fields.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub run_id: String,
    pub campaign_id: String,
    /// Whether this run created the campaign (so every row must come from this run).
    pub campaign_created: bool,
    /// How the campaign issued: a course stage, or this project's design.
    pub strategy: coupon_domain::Strategy,
    /// Faults injected during the run (`--fault`).
    pub faults: Vec<String>,
    /// How many times the consumer loadgen started died and was restarted.
    pub consumer_restarts: Option<u32>,
    pub limit: Option<u64>,
    pub host: String,
    pub users: usize,
    pub repeat: usize,
    pub hot_users: f64,
    pub seed: u64,
    pub launch_rate_per_second: usize,
    pub started_at: String,
    /// Seconds until every issued coupon had its row, when loadgen waited for it.
    pub drain_seconds: Option<f64>,
    /// The campaign as the api reported it after the run.
    pub campaign_after: serde_json::Value,
    pub stats: Stats,
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
        "{table}\n{} requests from {} users in {:.2}s: {:.0} responses/s; drain {}\ncampaign {}: {}",
        stats.requests,
        stats.distinct_users,
        stats.wall_seconds,
        stats.responses_per_second,
        drain_text(summary),
        summary.campaign_id,
        summary.campaign_after,
    )
}

impl Summary {
    /// `none`, or the faults injected, by name.
    pub fn faults_text(&self) -> String {
        if self.faults.is_empty() {
            "none".to_owned()
        } else {
            self.faults.join(", ")
        }
    }
}

pub fn markdown(summary: &Summary) -> String {
    let stats = &summary.stats;
    let table = Table::new(rows(stats)).with(Style::markdown()).to_string();
    format!(
        "# loadgen run {run}\n\n\
         - campaign `{campaign}` (limit {limit}, {created}), strategy `{strategy}`, faults: {faults}\n\
         - {users} users × {repeat} against {host}, launched at {rate}/s, seed {seed}, hot users {hot}\n\
         - {requests} requests in {wall:.2}s: **{rps:.0} responses/s**\n\
         - drain: {drain}\n\n{table}\n\n\
         Latencies are measured by loadgen at µs resolution (HDR histograms). See `report.html` \
         for the charts, `history.jsonl` for every request, `goose-report.*` for goose's view.\n",
        run = summary.run_id,
        campaign = summary.campaign_id,
        limit = summary.limit.map_or("?".to_owned(), |l| l.to_string()),
        created = if summary.campaign_created {
            "created by this run"
        } else {
            "existing"
        },
        strategy = summary.strategy,
        faults = summary.faults_text(),
        users = summary.users,
        repeat = summary.repeat,
        host = summary.host,
        rate = summary.launch_rate_per_second,
        seed = summary.seed,
        hot = summary.hot_users,
        requests = stats.requests,
        wall = stats.wall_seconds,
        rps = stats.responses_per_second,
        drain = drain_text(summary),
    )
}

pub fn write_all(run_dir: &Path, summary: &Summary) -> anyhow::Result<()> {
    let write = |name: &str, contents: String| {
        let path = run_dir.join(name);
        std::fs::write(&path, contents)
            .with_context(|| format!("failed to write {}", path.display()))
    };
    write("summary.json", serde_json::to_string_pretty(summary)?)?;
    write("summary.md", markdown(summary))?;
    write("report.html", html::render(summary))?;
    Ok(())
}
