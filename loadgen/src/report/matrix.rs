//! The fault matrix (`--fault all`): a terminal table, `matrix.md`, `matrix.json` and a
//! self-contained `matrix.html`, one line per fault's round.

use std::{fmt::Write, path::Path};

use anyhow::Context;
use coupon_domain::history::ResultClass;
use serde::Serialize;
use tabled::{Table, Tabled, settings::Style};
use verifier::reconcile::{CheckId, Verdict};

use super::{Summary, html::escape};
use crate::{
    cli::Cli,
    nemesis::{FaultKind, FaultSpec, When},
};

/// One fault's round.
#[derive(Debug, Clone, Serialize)]
pub struct MatrixRow {
    /// The fault as given (`kafka-kill`, `db-lock@2s:3s`).
    pub fault: String,
    /// When it struck, in words.
    pub when: String,
    /// How long before it healed, in words.
    pub lasting: String,
    /// Whether it ran on stores of its own.
    pub sandboxed: bool,
    pub run_id: Option<String>,
    /// Its injection is in the history (a fault that never struck fails the round).
    pub struck: bool,
    /// Its healing is in the history.
    pub healed: bool,
    /// The invariants the verifier found violated.
    pub violated: Vec<CheckId>,
    /// Why the round could not run or be verified, if it could not.
    pub error: Option<String>,
    pub limit: u64,
    /// `issued` replies.
    pub issued: u64,
    /// Coupon rows.
    pub rows: usize,
    pub lost_winners: usize,
    pub duplicates: usize,
    pub over_issue: usize,
    /// Gate winners with no row, or rows with no gate winner (I6's offenders).
    pub leaked_slots: usize,
    /// Replies whose outcome was unknown (202, 504, timeouts, resets, unexpected replies)...
    pub unknown: u64,
    /// ...of which the verifier found a row for...
    pub recovered: usize,
    /// ...and no row for.
    pub not_issued: usize,
    /// From the fault's last healing (or the burst's end, if it came later) until the
    /// pipeline had drained (every winner a row or a failed event), in seconds.
    pub heal_to_clean_s: Option<f64>,
    /// Requests sent while the fault held, and their p99 service time.
    pub requests_during: usize,
    pub p99_during_ms: Option<f64>,
}

fn when(spec: &FaultSpec) -> String {
    if spec.kind == FaultKind::ClockSkew {
        return match spec.when {
            When::At(at) => format!("before the burst; opens {} ms in", at.as_millis()),
            _ => "before the burst; opens mid-burst".to_owned(),
        };
    }
    if spec.kind.strikes_before_burst() {
        return "before the burst".to_owned();
    }
    match spec.when {
        When::At(at) => format!("{} ms in", at.as_millis()),
        When::Issued(n) => format!("after {n} issued"),
        When::HalfTheLimit => "after half the limit in rows".to_owned(),
        When::QuarterTheLimit => "after a quarter of the limit issued".to_owned(),
        When::HalfTheSurplus => "halfway into the users beyond the limit".to_owned(),
    }
}

fn lasting(spec: &FaultSpec) -> String {
    match spec.lasting {
        Some(lasting) if spec.kind == FaultKind::ClockSkew => {
            format!("{} ms past the opening", lasting.as_millis())
        }
        Some(lasting) if spec.lasting_given || spec.kind != FaultKind::DbOutage => {
            format!("{} ms", lasting.as_millis())
        }
        Some(_) => "until 8 s after the burst".to_owned(),
        None => "heals by itself".to_owned(),
    }
}

impl MatrixRow {
    pub fn new(spec: &FaultSpec, summary: &Summary, verdict: &Verdict) -> Self {
        let tally = verdict.tally;
        let windows = &summary.fault_windows;
        // The pipeline can be clean only once the burst is over: from whichever came later.
        let burst_end_ms = summary.stats.wall_seconds * 1000.0;
        let last_heal = windows
            .iter()
            .filter_map(|w| w.to_ms)
            .fold(None, |max, to| Some(max.map_or(to, |m: f64| m.max(to))))
            .map(|healed| healed.max(burst_end_ms));
        let count = |class: ResultClass| {
            summary
                .stats
                .by_class
                .get(class.as_str())
                .copied()
                .unwrap_or(0)
        };
        let unknown = [
            ResultClass::Pending,
            ResultClass::Unknown,
            ResultClass::Timeout,
            ResultClass::TransportError,
            ResultClass::Unexpected,
        ]
        .into_iter()
        .map(count)
        .sum();
        Self {
            fault: spec.to_string(),
            when: when(spec),
            lasting: lasting(spec),
            sandboxed: summary.run.private_stores.is_some(),
            run_id: Some(summary.run.run_id.clone()),
            struck: !windows.is_empty(),
            healed: !windows.is_empty() && windows.iter().all(|w| w.to_ms.is_some()),
            violated: verdict.failed(),
            error: None,
            limit: summary.run.limit,
            issued: count(ResultClass::Issued),
            rows: tally.coupons,
            lost_winners: tally.lost_winners,
            duplicates: tally.duplicates,
            over_issue: tally.over_issue,
            leaked_slots: verdict
                .checks
                .iter()
                .find(|c| c.id == CheckId::I6)
                .map_or(0, |c| c.offenders.len()),
            unknown,
            recovered: verdict.unknown_outcomes.recovered,
            not_issued: verdict.unknown_outcomes.not_issued,
            heal_to_clean_s: match (summary.drained_at_ms, last_heal) {
                (Some(drained), Some(healed)) => Some(((drained - healed) / 1000.0).max(0.0)),
                _ => None,
            },
            requests_during: windows.iter().map(|w| w.requests).sum(),
            p99_during_ms: windows.iter().filter_map(|w| w.p99_ms).reduce(f64::max),
        }
    }

    /// A round that could not run or be verified.
    pub fn failed(spec: &FaultSpec, error: String) -> Self {
        Self {
            fault: spec.to_string(),
            when: when(spec),
            lasting: lasting(spec),
            sandboxed: spec.kind.needs_sandbox(),
            run_id: None,
            struck: false,
            healed: false,
            violated: Vec::new(),
            error: Some(error),
            limit: 0,
            issued: 0,
            rows: 0,
            lost_winners: 0,
            duplicates: 0,
            over_issue: 0,
            leaked_slots: 0,
            unknown: 0,
            recovered: 0,
            not_issued: 0,
            heal_to_clean_s: None,
            requests_during: 0,
            p99_during_ms: None,
        }
    }

    /// Verified, every invariant held, and the fault really struck and healed.
    pub fn passed(&self) -> bool {
        self.error.is_none() && self.violated.is_empty() && self.struck && self.healed
    }

    pub fn verdict(&self) -> String {
        if let Some(error) = &self.error {
            return format!("error: {error}");
        }
        if !self.violated.is_empty() {
            let ids: Vec<&str> = self.violated.iter().map(|id| id.as_str()).collect();
            return format!("violated: {}", ids.join(", "));
        }
        if !self.struck {
            return "never struck".to_owned();
        }
        if !self.healed {
            return "never healed".to_owned();
        }
        "holds".to_owned()
    }
}

#[derive(Tabled)]
struct Line {
    fault: String,
    when: String,
    #[tabled(rename = "for")]
    lasting: String,
    verdict: String,
    #[tabled(rename = "issued / rows")]
    issued_rows: String,
    #[tabled(rename = "lost winners")]
    lost_winners: usize,
    #[tabled(rename = "leaked slots")]
    leaked_slots: usize,
    duplicates: usize,
    #[tabled(rename = "unknown (recovered / not issued)")]
    unknown: String,
    #[tabled(rename = "heal → clean s")]
    heal_to_clean: String,
    #[tabled(rename = "p99 during ms")]
    p99_during: String,
}

fn lines(rows: &[MatrixRow]) -> Vec<Line> {
    let or_dash =
        |v: Option<f64>, digits: usize| v.map_or("-".to_owned(), |v| format!("{v:.digits$}"));
    rows.iter()
        .map(|r| Line {
            fault: format!("{}{}", r.fault, if r.sandboxed { " *" } else { "" }),
            when: r.when.clone(),
            lasting: r.lasting.clone(),
            verdict: if r.error.is_some() {
                "error (see matrix.md)".to_owned()
            } else {
                r.verdict()
            },
            issued_rows: format!("{} / {} (limit {})", r.issued, r.rows, r.limit),
            lost_winners: r.lost_winners,
            leaked_slots: r.leaked_slots,
            duplicates: r.duplicates,
            unknown: format!("{} ({} / {})", r.unknown, r.recovered, r.not_issued),
            heal_to_clean: or_dash(r.heal_to_clean_s, 2),
            p99_during: or_dash(r.p99_during_ms, 1),
        })
        .collect()
}

pub fn terminal(rows: &[MatrixRow]) -> String {
    format!(
        "{}\n* on stores of the round's own (a Redis, a Kafka broker and a database, or a MariaDB server, loadgen started)",
        Table::new(lines(rows)).with(Style::rounded())
    )
}

fn setup(cli: &Cli) -> String {
    format!(
        "{} users × {} per fault, limit {}, strategy {}",
        cli.users,
        cli.repeat,
        cli.limit,
        cli.strategy.list().first().map_or("-", |s| s.as_str()),
    )
}

pub fn markdown(rows: &[MatrixRow], cli: &Cli) -> String {
    let mut text = format!(
        "# Fault matrix\n\n{setup}. Each fault ran in a round of its own: a fresh campaign, the \
         same burst (same seed), the fault struck and healed on its schedule (recorded in the \
         round's history.jsonl), then the verifier drained and judged the round against MySQL, \
         Redis, Kafka and the history. A round passes when every invariant held and its fault \
         really struck and healed. See docs/faults.md for each fault.\n\n{table}\n\n\
         - **\\***: on stores of the round's own (a Redis, a Kafka broker and a database, or a \
         MariaDB server, loadgen started, verified before it stopped them).\n\
         - **leaked slots**: I6's offenders (gate winners with no row, or rows with no winner).\n\
         - **unknown**: replies whose outcome the client could not know (202, 504, timeouts, \
         resets); the verifier found a row for the recovered ones and none for the rest.\n\
         - **heal → clean**: from the fault's healing (or the burst's end, if later) until the \
         pipeline had drained.\n\
         - **p99 during**: the service time of the requests sent while the fault held.\n",
        setup = setup(cli),
        table = Table::new(lines(rows)).with(Style::markdown()),
    );
    for row in rows {
        if let Some(error) = &row.error {
            let _ = write!(
                text,
                "\n**{}** could not run or be verified: {error}\n",
                row.fault
            );
        }
    }
    text
}

/// A self-contained page: the table, each round's verdict coloured, and a link to each
/// round's own report.
pub fn html(rows: &[MatrixRow], cli: &Cli) -> String {
    let mut body = String::new();
    for (row, line) in rows.iter().zip(lines(rows)) {
        let colour = if row.passed() { "#2e7d32" } else { "#c62828" };
        let name = row.fault.split(['@', ':']).next().unwrap_or_default();
        let _ = writeln!(
            body,
            "<tr><td><a href=\"{name}/report.html\">{fault}</a></td><td>{when}</td><td>{lasting}</td>\
             <td style=\"color:{colour};font-weight:bold\">{verdict}</td><td>{issued}</td><td>{lost}</td>\
             <td>{leaked}</td><td>{dup}</td><td>{unknown}</td><td>{heal}</td><td>{p99}</td></tr>",
            name = escape(name),
            fault = escape(&line.fault),
            when = escape(&line.when),
            lasting = escape(&line.lasting),
            verdict = escape(&row.verdict()),
            issued = escape(&line.issued_rows),
            lost = line.lost_winners,
            leaked = line.leaked_slots,
            dup = line.duplicates,
            unknown = escape(&line.unknown),
            heal = line.heal_to_clean,
            p99 = line.p99_during,
        );
    }
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Fault matrix</title>\
         <style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}\
         td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}</style></head><body>\
         <h1>Fault matrix</h1><p>{setup}. * on stores of the round's own.</p><table><tr>\
         <th>fault</th><th>when</th><th>for</th><th>verdict</th><th>issued / rows</th>\
         <th>lost winners</th><th>leaked slots</th><th>duplicates</th>\
         <th>unknown (recovered / not issued)</th><th>heal → clean s</th><th>p99 during ms</th>\
         </tr>\n{body}</table></body></html>\n",
        setup = escape(&setup(cli)),
    )
}

/// Writes `matrix.json`, `matrix.md` and `matrix.html` into `dir` (`matrix.json` last: the
/// matrix is complete once it is there).
pub fn write_all(dir: &Path, rows: &[MatrixRow], cli: &Cli) -> anyhow::Result<()> {
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("failed to write {}", path.display()))
    };
    write("matrix.md", markdown(rows, cli))?;
    write("matrix.html", html(rows, cli))?;
    write("matrix.json", serde_json::to_string_pretty(rows)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_round_passes_only_verified_clean_with_its_fault_struck_and_healed() {
        let spec = FaultSpec::new(FaultKind::KafkaKill);
        let mut row = MatrixRow::failed(&spec, "broker never answered".to_owned());
        assert!(!row.passed());
        assert!(row.verdict().starts_with("error: broker"));
        row.error = None;
        assert_eq!(row.verdict(), "never struck");
        row.struck = true;
        assert_eq!(row.verdict(), "never healed");
        row.healed = true;
        assert!(row.passed());
        row.violated = vec![CheckId::I3];
        assert!(!row.passed());
        assert_eq!(row.verdict(), "violated: I3");
        let table = terminal(std::slice::from_ref(&row));
        assert!(table.contains("kafka-kill *"), "{table}");
        assert!(
            table.contains("after a quarter of the limit issued"),
            "{table}"
        );
        let cli = <Cli as clap::Parser>::try_parse_from(["loadgen"]).expect("parses");
        let page = html(&[row], &cli);
        assert!(page.contains("href=\"kafka-kill/report.html\""));
        assert!(page.contains("#c62828"), "a failed round is red");
    }
}
