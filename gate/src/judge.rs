//! Each check's judgement on the typed files a run left: the verifier's `verdict.json`,
//! loadgen's `summary.json` and `compare.json`. Pure: the caller reads the files, so each
//! judgement is tested with the case it must refuse.

use coupon_domain::Strategy;
use serde::Deserialize;
use verifier::{
    cli::{EXIT_HOLDS, EXIT_VIOLATED},
    reconcile::{CheckId, Status},
    render::{Outcome, VerdictFile},
};

use crate::scenario::Expect;

/// `Ok` with what was seen, or `Err` with why the check failed.
pub type Judgement = Result<String, String>;

/// One line of loadgen's `compare.json`: the fields the gate reads (loadgen writes more).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CompareLine {
    pub strategy: Strategy,
    /// The invariants the verifier found violated; empty when every one held.
    pub violated: Vec<CheckId>,
}

/// One line of loadgen's `matrix.json` (`--fault all`): the fields the gate reads.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MatrixLine {
    pub fault: String,
    pub struck: bool,
    pub healed: bool,
    pub violated: Vec<CheckId>,
    pub error: Option<String>,
}

/// Every fault of `expected` has its round, and each round was verified clean with its fault
/// struck and healed.
pub fn matrix_holds(lines: &[MatrixLine], expected: &[&str]) -> Judgement {
    let missing: Vec<&str> = expected
        .iter()
        .filter(|name| !lines.iter().any(|line| line.fault == **name))
        .copied()
        .collect();
    if !missing.is_empty() {
        return Err(format!("no round for {}", missing.join(", ")));
    }
    let failed: Vec<String> = lines
        .iter()
        .filter_map(|line| {
            let why = if let Some(error) = &line.error {
                format!("error: {error}")
            } else if !line.violated.is_empty() {
                format!("violated {}", ids_text(&line.violated))
            } else if !line.struck {
                "never struck".to_owned()
            } else if !line.healed {
                "never healed".to_owned()
            } else {
                return None;
            };
            Some(format!("{}: {why}", line.fault))
        })
        .collect();
    if failed.is_empty() {
        Ok(format!("{} rounds, each holding", lines.len()))
    } else {
        Err(failed.join("; "))
    }
}

/// The verifier's exit code and its `verdict.json`, for the run's campaign.
pub fn verdict(expect: Expect, exit: Option<i32>, file: &VerdictFile, campaign: &str) -> Judgement {
    let failed = file.failed();
    let seen = format!("exit {}, failed: {}", exit_text(exit), ids_text(&failed));
    if !file.campaigns.iter().any(|c| c.campaign_id == campaign) {
        return Err(format!(
            "{seen}; the verdict is not about campaign {campaign}"
        ));
    }
    let expected_exit = match expect {
        Expect::Holds => EXIT_HOLDS,
        Expect::Violates { .. } => EXIT_VIOLATED,
    };
    if exit != Some(i32::from(expected_exit)) || file.exit_code != expected_exit {
        return Err(format!("{seen}; expected exit {expected_exit}"));
    }
    match expect {
        Expect::Holds if file.verdict == Outcome::Pass && failed.is_empty() => Ok(seen),
        Expect::Holds => Err(format!("{seen}; expected every invariant to hold")),
        Expect::Violates { failed: id, held } => {
            if file.verdict != Outcome::Fail || !failed.contains(&id) {
                return Err(format!("{seen}; expected {id} to fail"));
            }
            match held
                .iter()
                .find(|h| file.status_of(**h) != Some(Status::Pass))
            {
                Some(not_held) => Err(format!("{seen}; expected {not_held} to hold")),
                None => Ok(seen),
            }
        }
    }
}

/// The run's consumer was really killed and restarted (`summary.json`'s `consumer_restarts`).
pub fn crash_fired(consumer_restarts: Option<u32>) -> Judgement {
    match consumer_restarts {
        Some(restarts) if restarts >= 1 => Ok(format!("{restarts} consumer restarts")),
        Some(_) => Err("the consumer was never restarted: the crash never fired".to_owned()),
        None => Err("loadgen did not start the consumer, so nothing could crash".to_owned()),
    }
}

/// The comparison has a line for every strategy.
pub fn comparison_ran(lines: &[CompareLine]) -> Judgement {
    let missing: Vec<&str> = Strategy::ALL
        .iter()
        .filter(|s| !lines.iter().any(|line| line.strategy == **s))
        .map(|s| s.as_str())
        .collect();
    if missing.is_empty() {
        Ok(format!("{} lines", lines.len()))
    } else {
        Err(format!("no line for {}", missing.join(", ")))
    }
}

/// Naive violated I1, reliable held, and the HTML page is not empty.
pub fn comparison_verdicts(lines: &[CompareLine], html_bytes: u64) -> Judgement {
    let violated = |strategy: Strategy| {
        lines
            .iter()
            .find(|line| line.strategy == strategy)
            .map(|line| line.violated.clone())
    };
    let (naive, reliable) = (violated(Strategy::Naive), violated(Strategy::Reliable));
    let seen = format!(
        "naive violated: {}, reliable violated: {}, compare.html {html_bytes} bytes",
        naive.as_deref().map_or("no line".to_owned(), ids_text),
        reliable.as_deref().map_or("no line".to_owned(), ids_text),
    );
    let naive_caught = naive.is_some_and(|ids| ids.contains(&CheckId::I1));
    let reliable_held = reliable.is_some_and(|ids| ids.is_empty());
    if naive_caught && reliable_held && html_bytes > 0 {
        Ok(seen)
    } else {
        Err(format!(
            "{seen}; expected naive to violate I1, reliable to hold, and a compare.html"
        ))
    }
}

fn exit_text(exit: Option<i32>) -> String {
    exit.map_or("by a signal".to_owned(), |code| code.to_string())
}

fn ids_text(ids: &[CheckId]) -> String {
    if ids.is_empty() {
        "none".to_owned()
    } else {
        ids.iter()
            .map(|id| id.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use verifier::reconcile::{Check, Tally, UnknownOutcomes, Verdict};

    use super::*;

    /// A verdict on campaign `c` where the listed invariants failed and the others passed.
    fn file(failed: &[CheckId]) -> VerdictFile {
        let ids = [
            CheckId::I1,
            CheckId::I2,
            CheckId::I3,
            CheckId::I4,
            CheckId::I5,
            CheckId::I6,
            CheckId::I7,
        ];
        let checks = ids
            .into_iter()
            .map(|id| Check {
                id,
                title: "t".to_owned(),
                expected: "-".to_owned(),
                observed: "-".to_owned(),
                status: if failed.contains(&id) {
                    Status::Fail
                } else {
                    Status::Pass
                },
                offenders: Vec::new(),
            })
            .collect();
        let holds = failed.is_empty();
        VerdictFile {
            verdict: if holds { Outcome::Pass } else { Outcome::Fail },
            exit_code: if holds { EXIT_HOLDS } else { EXIT_VIOLATED },
            summary: "VERDICT: ...".to_owned(),
            drained: true,
            campaigns: vec![Verdict {
                campaign_id: "c".to_owned(),
                strategy: Strategy::Reliable,
                tally: Tally::default(),
                checks,
                unknown_outcomes: UnknownOutcomes::default(),
                leftovers: Default::default(),
            }],
        }
    }

    const I2_AFTER_I1_HELD: Expect = Expect::Violates {
        failed: CheckId::I2,
        held: &[CheckId::I1],
    };

    #[test]
    fn a_holding_verdict_passes_only_with_exit_0_and_nothing_failed() {
        assert!(verdict(Expect::Holds, Some(0), &file(&[]), "c").is_ok());
        assert!(verdict(Expect::Holds, Some(1), &file(&[CheckId::I6]), "c").is_err());
        assert!(
            verdict(Expect::Holds, Some(1), &file(&[]), "c").is_err(),
            "the exit code must agree with the file"
        );
        assert!(verdict(Expect::Holds, None, &file(&[]), "c").is_err());
    }

    #[test]
    fn a_violation_must_name_the_invariant_and_exit_1() {
        let i1 = Expect::Violates {
            failed: CheckId::I1,
            held: &[],
        };
        assert!(verdict(i1, Some(1), &file(&[CheckId::I1, CheckId::I4]), "c").is_ok());
        assert!(verdict(i1, Some(1), &file(&[CheckId::I2]), "c").is_err());
        assert!(verdict(i1, Some(0), &file(&[]), "c").is_err());
        assert!(
            verdict(i1, Some(2), &file(&[CheckId::I1]), "c").is_err(),
            "could not verify is no catch"
        );
    }

    #[test]
    fn a_violation_after_an_invariant_that_must_hold_fails_when_that_one_failed_too() {
        assert!(verdict(I2_AFTER_I1_HELD, Some(1), &file(&[CheckId::I2]), "c").is_ok());
        let err = verdict(
            I2_AFTER_I1_HELD,
            Some(1),
            &file(&[CheckId::I1, CheckId::I2]),
            "c",
        );
        assert_eq!(
            err,
            Err("exit 1, failed: I1, I2; expected I1 to hold".to_owned())
        );
    }

    #[test]
    fn a_verdict_about_another_campaign_is_refused() {
        assert!(verdict(Expect::Holds, Some(0), &file(&[]), "other").is_err());
    }

    fn line(strategy: Strategy, violated: &[CheckId]) -> CompareLine {
        CompareLine {
            strategy,
            violated: violated.to_vec(),
        }
    }

    fn comparison() -> Vec<CompareLine> {
        vec![
            line(Strategy::Naive, &[CheckId::I1]),
            line(Strategy::RedisCounter, &[]),
            line(Strategy::Kafka, &[]),
            line(Strategy::PerUser, &[]),
            line(Strategy::Reliable, &[]),
        ]
    }

    #[test]
    fn a_matrix_holds_only_with_every_round_verified_clean_and_its_fault_struck() {
        let line = |fault: &str| MatrixLine {
            fault: fault.to_owned(),
            struck: true,
            healed: true,
            violated: Vec::new(),
            error: None,
        };
        let clean = vec![line("poison"), line("kafka-kill")];
        assert!(matrix_holds(&clean, &["poison", "kafka-kill"]).is_ok());
        assert_eq!(
            matrix_holds(&clean, &["poison", "redis-kill"]),
            Err("no round for redis-kill".to_owned())
        );
        let mut violated = clean.clone();
        violated[1].violated = vec![CheckId::I3];
        assert_eq!(
            matrix_holds(&violated, &["poison"]),
            Err("kafka-kill: violated I3".to_owned())
        );
        let mut silent = clean.clone();
        silent[0].struck = false;
        assert_eq!(
            matrix_holds(&silent, &["poison"]),
            Err("poison: never struck".to_owned())
        );
        let mut unhealed = clean;
        unhealed[0].healed = false;
        unhealed[1].error = Some("the broker never answered".to_owned());
        assert_eq!(
            matrix_holds(&unhealed, &[]),
            Err("poison: never healed; kafka-kill: error: the broker never answered".to_owned())
        );
    }

    #[test]
    fn a_comparison_needs_every_strategy() {
        assert!(comparison_ran(&comparison()).is_ok());
        let mut short = comparison();
        short.remove(2);
        assert_eq!(comparison_ran(&short), Err("no line for kafka".to_owned()));
    }

    #[test]
    fn a_comparison_must_catch_naive_and_let_reliable_hold() {
        assert!(comparison_verdicts(&comparison(), 10).is_ok());
        assert!(comparison_verdicts(&comparison(), 0).is_err(), "no html");
        let mut naive_held = comparison();
        naive_held[0].violated.clear();
        assert!(comparison_verdicts(&naive_held, 10).is_err());
        let mut reliable_broke = comparison();
        reliable_broke[4].violated.push(CheckId::I3);
        assert!(comparison_verdicts(&reliable_broke, 10).is_err());
        assert!(comparison_verdicts(&comparison()[..4], 10).is_err());
    }

    #[test]
    fn compare_json_lines_are_read_past_the_fields_the_gate_ignores() -> serde_json::Result<()> {
        let json = r#"[{"strategy": "naive", "fault": "none", "run_id": "r", "limit": 100,
            "violated": ["I1", "I4"], "coupons": 140, "p99_ms": null}]"#;
        let lines: Vec<CompareLine> = serde_json::from_str(json)?;
        assert_eq!(lines, [line(Strategy::Naive, &[CheckId::I1, CheckId::I4])]);
        Ok(())
    }

    #[test]
    fn a_crash_counts_only_when_the_consumer_restarted() {
        assert!(crash_fired(Some(1)).is_ok());
        assert!(crash_fired(Some(0)).is_err());
        assert!(crash_fired(None).is_err());
    }
}
