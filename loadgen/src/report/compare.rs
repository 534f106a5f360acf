//! The comparison of strategies: a terminal table, `compare.md`, `compare.json` and a
//! self-contained `compare.html` (inline SVG, nothing loaded from anywhere).

use std::{fmt::Write, path::Path};

use anyhow::Context;
use coupon_domain::Strategy;
use serde::Serialize;
use tabled::{Table, Tabled, settings::Style};
use verifier::{
    drain::Drained,
    reconcile::{CheckId, Verdict},
    verify::Judgement,
};

use super::Summary;
use crate::cli::Cli;

/// One strategy's line of the comparison.
#[derive(Debug, Clone, Serialize)]
pub struct StageRow {
    pub strategy: Strategy,
    /// The faults injected in this stage's run: `none`, or their names.
    pub fault: String,
    pub run_id: String,
    pub limit: u64,
    /// The verifier's verdict: the invariants that failed, empty when every one held.
    pub violated: Vec<CheckId>,
    pub coupons: usize,
    pub over_issue: usize,
    pub duplicates: usize,
    pub lost_winners: usize,
    pub responses_per_second: f64,
    pub p99_ms: Option<f64>,
    /// From the end of the burst until every coupon was written (or the consumer caught up);
    /// `None` when it did not drain in time.
    pub drain_seconds: Option<f64>,
    /// INSERT statements MySQL ran during the stage, per coupon row.
    pub db_writes_per_coupon: Option<f64>,
}

impl StageRow {
    pub fn new(summary: &Summary, verdict: &Verdict, judgement: &Judgement, writes: u64) -> Self {
        let tally = verdict.tally;
        let drain_seconds = match judgement.drained {
            Drained::Yes { after } => {
                Some(summary.run.drain_seconds.unwrap_or_default() + after.as_secs_f64())
            }
            Drained::TimedOut { .. } => None,
        };
        Self {
            strategy: summary.run.strategy,
            fault: summary.run.faults_text(),
            run_id: summary.run.run_id.clone(),
            limit: summary.run.limit,
            violated: verdict.failed(),
            coupons: tally.coupons,
            over_issue: tally.over_issue,
            duplicates: tally.duplicates,
            lost_winners: tally.lost_winners,
            responses_per_second: summary.stats.responses_per_second,
            p99_ms: summary.stats.latency_overall.map(|l| l.p99_ms),
            drain_seconds,
            db_writes_per_coupon: (tally.coupons > 0).then(|| writes as f64 / tally.coupons as f64),
        }
    }

    fn verdict(&self) -> String {
        if self.violated.is_empty() {
            "holds".to_owned()
        } else {
            let ids: Vec<&str> = self.violated.iter().map(|id| id.as_str()).collect();
            format!("violated: {}", ids.join(", "))
        }
    }
}

#[derive(Tabled)]
struct Line {
    strategy: String,
    fault: String,
    verdict: String,
    #[tabled(rename = "coupons issued")]
    coupons: String,
    #[tabled(rename = "over-issue")]
    over_issue: usize,
    duplicates: usize,
    #[tabled(rename = "lost winners")]
    lost_winners: usize,
    #[tabled(rename = "responses/s")]
    throughput: String,
    #[tabled(rename = "p99 ms")]
    p99: String,
    #[tabled(rename = "drain s")]
    drain: String,
    #[tabled(rename = "db writes/coupon")]
    writes: String,
}

fn lines(rows: &[StageRow]) -> Vec<Line> {
    let or_dash =
        |v: Option<f64>, digits: usize| v.map_or("-".to_owned(), |v| format!("{v:.digits$}"));
    rows.iter()
        .map(|r| Line {
            strategy: r.strategy.to_string(),
            fault: r.fault.clone(),
            verdict: r.verdict(),
            coupons: format!("{} / {}", r.coupons, r.limit),
            over_issue: r.over_issue,
            duplicates: r.duplicates,
            lost_winners: r.lost_winners,
            throughput: format!("{:.0}", r.responses_per_second),
            p99: or_dash(r.p99_ms, 1),
            drain: r
                .drain_seconds
                .map_or("timed out".to_owned(), |s| format!("{s:.2}")),
            writes: or_dash(r.db_writes_per_coupon, 2),
        })
        .collect()
}

fn setup(cli: &Cli) -> String {
    format!(
        "{} users × {} per strategy, limit {}, faults: {}{}",
        cli.users,
        cli.repeat,
        cli.limit,
        crate::compare::describe(&cli.fault),
        if cli.fault.len() > 1 {
            " (one round of every strategy per fault)"
        } else {
            ""
        }
    )
}

pub fn terminal(rows: &[StageRow]) -> String {
    Table::new(lines(rows)).with(Style::rounded()).to_string()
}

pub fn markdown(rows: &[StageRow], cli: &Cli) -> String {
    format!(
        "# Strategies compared\n\n{setup}. Each strategy got a fresh campaign and the same burst \
         (same seed), then the verifier drained and judged it against MySQL, Redis, Kafka and the \
         burst's history. See docs/stages.md for what each stage does and why it fails.\n\n{table}\n\n\
         - **over-issue**: coupon rows beyond the limit. **duplicates**: rows beyond the first for \
         one user. **lost winners**: users answered `issued` who hold no coupon.\n\
         - **drain**: from the end of the burst until every coupon was written (or the consumer \
         caught up). **db writes/coupon**: INSERT statements MySQL ran during the stage, per \
         coupon row (from the server's counters).\n\
         - Each stage's own report, history and verdict are in its directory here.\n",
        setup = setup(cli),
        table = Table::new(lines(rows)).with(Style::markdown()),
    )
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A chart's bars: label, value, and whether the value broke a guarantee (drawn red).
type Bars = Vec<(String, f64, bool)>;

/// One horizontal bar chart: a bar per strategy.
fn chart(svg: &mut String, title: &str, values: &[(String, f64, bool)]) {
    const BAR: f64 = 22.0;
    const WIDTH: f64 = 420.0;
    // Room for the longest label at about 7 px a character (12 px text).
    let label_width = values
        .iter()
        .map(|(label, _, _)| label.chars().count())
        .max()
        .unwrap_or(0) as f64
        * 7.0
        + 12.0;
    let max = values
        .iter()
        .map(|(_, v, _)| *v)
        .fold(0.0_f64, f64::max)
        .max(f64::EPSILON);
    let height = 30.0 + BAR * values.len() as f64;
    let _ = write!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{height}" role="img"><title>{t}</title><text x="0" y="16" font-size="14" font-weight="bold">{t}</text>"##,
        w = label_width + WIDTH + 80.0,
        t = escape(title),
    );
    for (i, (label, value, bad)) in values.iter().enumerate() {
        let y = 26.0 + BAR * i as f64;
        let width = WIDTH * value / max;
        let fill = if *bad { "#c62828" } else { "#2e7d32" };
        let _ = write!(
            svg,
            r##"<text x="0" y="{ty}" font-size="12">{label}</text><rect x="{label_width}" y="{y}" width="{width:.1}" height="{h}" fill="{fill}"/><text x="{vx:.1}" y="{ty}" font-size="12">{value}</text>"##,
            ty = y + 14.0,
            h = BAR - 6.0,
            label = escape(label),
            vx = label_width + width + 4.0,
            value = if value.fract() == 0.0 {
                format!("{value:.0}")
            } else {
                format!("{value:.2}")
            },
        );
    }
    svg.push_str("</svg>\n");
}

pub fn html(rows: &[StageRow], cli: &Cli) -> String {
    let mut body = String::new();
    let rounds = rows
        .iter()
        .map(|r| r.fault.as_str())
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let metric = |f: &dyn Fn(&StageRow) -> (f64, bool)| -> Bars {
        rows.iter()
            .map(|r| {
                let (v, bad) = f(r);
                let label = if rounds > 1 {
                    format!("{} · {}", r.strategy, r.fault)
                } else {
                    r.strategy.to_string()
                };
                (label, v, bad)
            })
            .collect()
    };
    let charts: [(&str, Bars); 8] = [
        (
            "coupons issued (rows)",
            metric(&|r| (r.coupons as f64, r.coupons as u64 != r.limit)),
        ),
        (
            "over-issue",
            metric(&|r| (r.over_issue as f64, r.over_issue > 0)),
        ),
        (
            "duplicates",
            metric(&|r| (r.duplicates as f64, r.duplicates > 0)),
        ),
        (
            "lost winners",
            metric(&|r| (r.lost_winners as f64, r.lost_winners > 0)),
        ),
        (
            "throughput (responses/s)",
            metric(&|r| (r.responses_per_second, false)),
        ),
        (
            "p99 latency (ms)",
            metric(&|r| (r.p99_ms.unwrap_or_default(), false)),
        ),
        (
            "drain (s)",
            metric(&|r| {
                (
                    r.drain_seconds.unwrap_or_default(),
                    r.drain_seconds.is_none(),
                )
            }),
        ),
        (
            "db writes per coupon",
            metric(&|r| (r.db_writes_per_coupon.unwrap_or_default(), false)),
        ),
    ];
    for (title, values) in &charts {
        body.push_str("<div class=\"chart\">");
        chart(&mut body, title, values);
        body.push_str("</div>");
    }
    let mut table = String::from(
        "<table><tr><th>strategy</th><th>fault</th><th>verdict</th><th>coupons</th><th>over-issue</th><th>duplicates</th><th>lost winners</th><th>responses/s</th><th>p99 ms</th><th>drain s</th><th>db writes/coupon</th></tr>",
    );
    for line in lines(rows) {
        let class = if line.verdict == "holds" { "ok" } else { "bad" };
        let _ = write!(
            table,
            "<tr><td>{}</td><td>{}</td><td class=\"{class}\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&line.strategy),
            escape(&line.fault),
            escape(&line.verdict),
            escape(&line.coupons),
            line.over_issue,
            line.duplicates,
            line.lost_winners,
            line.throughput,
            line.p99,
            line.drain,
            line.writes
        );
    }
    table.push_str("</table>");
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Strategies compared</title>\
         <style>body{{font-family:sans-serif;margin:2em;max-width:1100px}}table{{border-collapse:collapse}}\
         td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}td:nth-child(-n+3){{text-align:left}}\
         .ok{{color:#2e7d32}}.bad{{color:#c62828;font-weight:bold}}.chart{{display:inline-block;margin:1em 1em 0 0}}</style></head>\
         <body><h1>Strategies compared</h1><p>{setup}. Red marks what broke a guarantee. \
         See docs/stages.md for each stage.</p>{table}{body}</body></html>\n",
        setup = escape(&setup(cli)),
    )
}

pub fn write_all(dir: &Path, rows: &[StageRow], cli: &Cli) -> anyhow::Result<()> {
    let write = |name: &str, contents: String| {
        let path = dir.join(name);
        std::fs::write(&path, contents)
            .with_context(|| format!("failed to write {}", path.display()))
    };
    write("compare.md", markdown(rows, cli))?;
    write("compare.html", html(rows, cli))?;
    write(
        "compare.json",
        serde_json::to_string_pretty(rows).context("failed to serialise the comparison")?,
    )
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn row(strategy: Strategy, violated: Vec<CheckId>, coupons: usize) -> StageRow {
        StageRow {
            strategy,
            fault: "none".to_owned(),
            run_id: format!("r-{strategy}"),
            limit: 100,
            violated,
            coupons,
            over_issue: coupons.saturating_sub(100),
            duplicates: 0,
            lost_winners: 0,
            responses_per_second: 500.0,
            p99_ms: Some(12.5),
            drain_seconds: None,
            db_writes_per_coupon: Some(1.0),
        }
    }

    fn rows() -> Vec<StageRow> {
        vec![
            row(Strategy::Naive, vec![CheckId::I1, CheckId::I7], 140),
            row(Strategy::Reliable, vec![], 100),
        ]
    }

    #[test]
    fn the_table_names_each_verdict_and_what_did_not_drain() {
        let cli = Cli::try_parse_from(["loadgen", "--strategy", "all"]).expect("parses");
        let md = markdown(&rows(), &cli);
        assert!(md.contains("| naive "), "{md}");
        assert!(md.contains("violated: I1, I7"), "{md}");
        assert!(md.contains("| holds "), "{md}");
        assert!(md.contains("140 / 100"), "{md}");
        assert!(md.contains("timed out"), "{md}");
    }

    #[test]
    fn the_chart_page_is_self_contained_and_marks_broken_guarantees() {
        let cli = Cli::try_parse_from(["loadgen", "--strategy", "all"]).expect("parses");
        let html = html(&rows(), &cli);
        assert_eq!(
            super::super::html::external_references(&html),
            Vec::<&str>::new()
        );
        assert_eq!(html.matches("<svg").count(), 8, "one chart per metric");
        assert!(html.contains("class=\"bad\">violated: I1, I7"));
        assert!(html.contains("#c62828"), "the over-issue bar is red");
    }
}
