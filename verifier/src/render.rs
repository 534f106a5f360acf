//! How a verdict is shown: one table per campaign (check, expected, observed, verdict), the
//! offending users with where each was seen, `verdict.json`, `verdict.md`, and a final line.

use std::path::Path;

use anyhow::Context;
use serde::Serialize;
use tabled::{Table, Tabled, settings::Style};

use crate::reconcile::{Status, Verdict};

#[derive(Tabled)]
struct Line {
    check: String,
    expected: String,
    observed: String,
    verdict: &'static str,
}

fn verdict_word(status: Status) -> &'static str {
    match status {
        Status::Pass => "PASS",
        Status::Fail => "FAIL",
        Status::Skip => "skip",
    }
}

fn lines(verdict: &Verdict) -> Vec<Line> {
    verdict
        .checks
        .iter()
        .map(|c| Line {
            check: format!("{} {}", c.id, c.title),
            expected: c.expected.clone(),
            observed: c.observed.clone(),
            verdict: verdict_word(c.status),
        })
        .collect()
}

fn offenders(verdict: &Verdict, show: usize, bullet: &str) -> String {
    let mut out = String::new();
    for check in verdict
        .checks
        .iter()
        .filter(|c| c.status == Status::Fail && !c.offenders.is_empty())
    {
        out.push_str(&format!(
            "{} offenders ({} users{}):\n",
            check.id,
            check.offenders.len(),
            if check.offenders.len() > show {
                format!(", first {show}")
            } else {
                String::new()
            }
        ));
        for offender in check.offenders.iter().take(show) {
            out.push_str(&format!(
                "{bullet}user {}: {}\n",
                offender.user_id, offender.seen
            ));
        }
    }
    out
}

/// Which design the campaign ran: the course's stages are named as such (docs/stages.md).
fn strategy_text(verdict: &Verdict) -> String {
    if !verdict.strategy.has_gate() {
        format!(
            "the course's `{}` stage, see docs/stages.md",
            verdict.strategy
        )
    } else {
        format!("strategy `{}`", verdict.strategy)
    }
}

pub fn terminal(verdict: &Verdict, show: usize) -> String {
    let table = Table::new(lines(verdict))
        .with(Style::rounded())
        .to_string();
    let unknown = verdict.unknown_outcomes;
    format!(
        "campaign {} ({})\n{table}\nunknown outcomes (timeout, pending, reset): {} recovered, {} not issued\n{}",
        verdict.campaign_id,
        strategy_text(verdict),
        unknown.recovered,
        unknown.not_issued,
        offenders(verdict, show, "  ")
    )
}

pub fn markdown(verdicts: &[Verdict], show: usize, final_line: &str) -> String {
    let mut out = format!("# Verdict\n\n**{final_line}**\n");
    for verdict in verdicts {
        let table = Table::new(lines(verdict))
            .with(Style::markdown())
            .to_string();
        out.push_str(&format!(
            "\n## Campaign `{}` ({})\n\n{table}\n\nUnknown outcomes: {} recovered, {} not issued.\n\n{}",
            verdict.campaign_id,
            strategy_text(verdict),
            verdict.unknown_outcomes.recovered,
            verdict.unknown_outcomes.not_issued,
            offenders(verdict, show, "- ")
        ));
    }
    out
}

#[derive(Serialize)]
struct VerdictFile<'a> {
    verdict: &'static str,
    exit_code: u8,
    summary: &'a str,
    drained: bool,
    campaigns: &'a [Verdict],
}

pub fn write(
    dir: &Path,
    verdicts: &[Verdict],
    exit_code: u8,
    drained: bool,
    final_line: &str,
    show: usize,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("failed to create {}", dir.display()))?;
    let file = VerdictFile {
        verdict: if exit_code == 0 { "pass" } else { "fail" },
        exit_code,
        summary: final_line,
        drained,
        campaigns: verdicts,
    };
    std::fs::write(
        dir.join("verdict.json"),
        serde_json::to_string_pretty(&file)?,
    )?;
    std::fs::write(dir.join("verdict.md"), markdown(verdicts, show, final_line))?;
    Ok(())
}

/// One line that says it all, e.g. `VERDICT: FAIL I1 over-issuance in campaign x (...)`.
pub fn final_line(verdicts: &[Verdict]) -> String {
    let failures: Vec<String> = verdicts
        .iter()
        .flat_map(|v| {
            v.checks
                .iter()
                .filter(|c| c.status == Status::Fail)
                .map(move |c| {
                    format!(
                        "{} ({}) in campaign {}: {}",
                        c.id, c.title, v.campaign_id, c.observed
                    )
                })
        })
        .collect();
    if failures.is_empty() {
        let campaigns: Vec<&str> = verdicts.iter().map(|v| v.campaign_id.as_str()).collect();
        format!(
            "VERDICT: PASS, every invariant holds ({})",
            campaigns.join(", ")
        )
    } else {
        format!("VERDICT: FAIL, {}", failures.join("; "))
    }
}
