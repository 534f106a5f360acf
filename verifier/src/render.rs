//! How a verdict is shown: one table per campaign (check, expected, observed, verdict), the
//! offending users with where each was seen, `verdict.json` (a [`VerdictFile`], which other
//! programs read back), `verdict.md`, and a final line.

use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use tabled::{Table, Tabled, settings::Style};

use crate::reconcile::{CheckId, Status, Verdict};

/// The file name of the machine-readable verdict, in the verified run's directory.
pub const VERDICT_JSON: &str = "verdict.json";

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

/// What predated the campaign's first gate, when anything did; empty otherwise.
fn leftovers(verdict: &Verdict, show: usize, bullet: &str) -> String {
    let left = &verdict.leftovers;
    if left.is_empty() {
        return String::new();
    }
    let mut out = format!(
        "leftovers from before the campaign's first gate (an earlier campaign of this id, or \
         events produced before it): {} rows, {} events, {} failed events (one coupon may be all \
         three) of {} users; counted against the limit, left out of the run's checks\n",
        left.rows,
        left.events,
        left.failed_events,
        left.users.len()
    );
    for user in left.users.iter().take(show) {
        out.push_str(&format!("{bullet}user {}: {}\n", user.user_id, user.seen));
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
        "campaign {} ({})\n{table}\nunknown outcomes (timeout, pending, reset): {} recovered, {} not issued\n{}{}",
        verdict.campaign_id,
        strategy_text(verdict),
        unknown.recovered,
        unknown.not_issued,
        leftovers(verdict, show, "  "),
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
            "\n## Campaign `{}` ({})\n\n{table}\n\nUnknown outcomes: {} recovered, {} not issued.\n\n{}{}",
            verdict.campaign_id,
            strategy_text(verdict),
            verdict.unknown_outcomes.recovered,
            verdict.unknown_outcomes.not_issued,
            leftovers(verdict, show, "- "),
            offenders(verdict, show, "- ")
        ));
    }
    out
}

/// Whether every invariant held, in a word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Pass,
    Fail,
}

/// What `verdict.json` holds: written by the verifier, read back by the end-to-end gate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerdictFile {
    pub verdict: Outcome,
    /// The verifier's exit code (`cli::EXIT_HOLDS` or `cli::EXIT_VIOLATED`).
    pub exit_code: u8,
    /// The final line, `VERDICT: ...`.
    pub summary: String,
    /// Whether the pipeline drained before the verifier judged.
    pub drained: bool,
    pub campaigns: Vec<Verdict>,
}

impl VerdictFile {
    /// Reads `verdict.json` back.
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        serde_json::from_str(&text)
            .with_context(|| format!("{} is not a verifier verdict", path.display()))
    }

    /// The invariants that failed in any campaign, in order, each once.
    pub fn failed(&self) -> Vec<CheckId> {
        let failed: std::collections::BTreeSet<CheckId> =
            self.campaigns.iter().flat_map(Verdict::failed).collect();
        failed.into_iter().collect()
    }

    /// How one invariant fared in every campaign: `Pass` only if it passed in each.
    pub fn status_of(&self, id: CheckId) -> Option<Status> {
        let statuses: Vec<Status> = self
            .campaigns
            .iter()
            .filter_map(|verdict| verdict.status_of(id))
            .collect();
        if statuses.is_empty() {
            None
        } else if statuses.contains(&Status::Fail) {
            Some(Status::Fail)
        } else if statuses.contains(&Status::Skip) {
            Some(Status::Skip)
        } else {
            Some(Status::Pass)
        }
    }
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
        verdict: if exit_code == 0 {
            Outcome::Pass
        } else {
            Outcome::Fail
        },
        exit_code,
        summary: final_line.to_owned(),
        drained,
        campaigns: verdicts.to_vec(),
    };
    let json_path = dir.join(VERDICT_JSON);
    std::fs::write(&json_path, serde_json::to_string_pretty(&file)?)
        .with_context(|| format!("failed to write {}", json_path.display()))?;
    let md_path = dir.join("verdict.md");
    std::fs::write(&md_path, markdown(verdicts, show, final_line))
        .with_context(|| format!("failed to write {}", md_path.display()))?;
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

#[cfg(test)]
mod tests {
    use coupon_domain::Strategy;

    use super::*;
    use crate::reconcile::{Facts, RowFact, reconcile};

    /// Limit 1 and two rows, one of them planted: I1 fails with an offender, I4 fails too.
    fn violated() -> Verdict {
        let row = |user_id, seq| RowFact {
            user_id,
            seq,
            source: None,
        };
        reconcile(&Facts {
            campaign_id: "c".into(),
            strategy: Strategy::Reliable,
            limit: 1,
            rows: vec![row(1, 1), row(2, 2)],
            ..Facts::default()
        })
    }

    #[test]
    fn verdict_json_reads_back_into_the_verdict_that_was_written() -> anyhow::Result<()> {
        let dir = std::env::temp_dir().join(testkit::unique_name("verifier_render"));
        let verdicts = vec![violated()];
        let line = final_line(&verdicts);
        write(&dir, &verdicts, 1, true, &line, 20)?;
        let read = VerdictFile::read(&dir.join(VERDICT_JSON));
        std::fs::remove_dir_all(&dir)?;
        let read = read?;

        assert_eq!(
            read,
            VerdictFile {
                verdict: Outcome::Fail,
                exit_code: 1,
                summary: line,
                drained: true,
                campaigns: verdicts,
            }
        );
        assert!(read.failed().contains(&CheckId::I1), "{read:#?}");
        assert_eq!(read.status_of(CheckId::I1), Some(Status::Fail));
        assert_eq!(read.status_of(CheckId::I3), Some(Status::Skip));
        assert_eq!(
            read.campaigns[0].checks[0].offenders[0].seen,
            "mysql row seq 2 (no kafka offset)"
        );
        Ok(())
    }

    #[test]
    fn verdict_json_keeps_its_field_names_and_words() -> anyhow::Result<()> {
        let verdicts = vec![violated()];
        let file = VerdictFile {
            verdict: Outcome::Fail,
            exit_code: 1,
            summary: final_line(&verdicts),
            drained: false,
            campaigns: verdicts,
        };
        let json: serde_json::Value = serde_json::to_value(&file)?;
        assert_eq!(json["verdict"], "fail");
        assert_eq!(json["campaigns"][0]["strategy"], "reliable");
        assert_eq!(json["campaigns"][0]["checks"][0]["id"], "I1");
        assert_eq!(json["campaigns"][0]["checks"][0]["status"], "fail");
        assert_eq!(json["campaigns"][0]["tally"]["over_issue"], 1);
        Ok(())
    }

    #[test]
    fn a_file_that_is_not_a_verdict_is_refused() -> anyhow::Result<()> {
        let dir = std::env::temp_dir().join(testkit::unique_name("verifier_render"));
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(VERDICT_JSON);
        std::fs::write(&path, r#"{"verdict": "maybe", "exit_code": 1}"#)?;
        let read = VerdictFile::read(&path);
        std::fs::remove_dir_all(&dir)?;
        assert!(read.is_err(), "{read:?}");
        Ok(())
    }
}
