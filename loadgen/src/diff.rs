//! `loadgen diff BASELINE RUN` (and `--baseline` after a run): two runs side by side, each
//! figure with its change, marked `worse` or `better` where it moved more than
//! [`NOTABLE`] in a direction that matters, so a regression shows at a glance. The figures
//! come from each run's `summary.json`, the verdicts from its `verdict.json` when the verifier
//! has judged it.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use tabled::{Table, Tabled, settings::Style};
use verifier::render::{VERDICT_JSON, VerdictFile};

use crate::{
    cli::DiffArgs,
    report::{self, Summary},
    stats::Latency,
};

/// A relative change past which a figure is marked `worse` or `better`.
pub const NOTABLE: f64 = 0.10;

/// One run as a diff reads it.
#[derive(Debug)]
pub struct RunFiles {
    pub dir: PathBuf,
    pub summary: Summary,
    pub verdict: Option<VerdictFile>,
}

/// `run` as a run directory, or as a run id (or `latest`) under `report_dir`.
pub fn locate(report_dir: &Path, run: &str) -> anyhow::Result<PathBuf> {
    let direct = PathBuf::from(run);
    let dir = if direct.join("summary.json").is_file() {
        direct
    } else {
        report_dir.join(run)
    };
    anyhow::ensure!(
        dir.join("summary.json").is_file(),
        "no run `{run}`: neither it nor {} holds a summary.json",
        report_dir.join(run).display()
    );
    // Resolved now: `latest` moves when a run with `--baseline latest` starts.
    dir.canonicalize()
        .with_context(|| format!("cannot resolve run `{run}` at {}", dir.display()))
}

impl RunFiles {
    pub fn read(dir: &Path) -> anyhow::Result<Self> {
        let verdict_path = dir.join(VERDICT_JSON);
        Ok(Self {
            dir: dir.to_owned(),
            summary: report::read_summary(dir)?,
            verdict: if verdict_path.is_file() {
                Some(VerdictFile::read(&verdict_path)?)
            } else {
                None
            },
        })
    }

    /// The verdict in a few words.
    fn verdict_text(&self) -> String {
        match &self.verdict {
            None => "not verified".to_owned(),
            Some(verdict) => match verdict.failed().as_slice() {
                [] => "pass".to_owned(),
                failed => format!(
                    "FAIL {}",
                    failed
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(" ")
                ),
            },
        }
    }
}

/// Which way a figure is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Better {
    Higher,
    Lower,
    /// A count that describes the run rather than grades it.
    Neither,
}

/// One figure of both runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delta {
    pub figure: String,
    pub baseline: Option<f64>,
    pub run: Option<f64>,
    /// (run − baseline) / baseline.
    pub change: Option<f64>,
    pub better: Better,
    /// `worse` or `better` when the change is notable; empty otherwise.
    pub judgement: String,
}

impl Delta {
    fn new(
        figure: impl Into<String>,
        baseline: Option<f64>,
        run: Option<f64>,
        better: Better,
    ) -> Self {
        let change = match (baseline, run) {
            (Some(a), Some(b)) if a != 0.0 => Some((b - a) / a.abs()),
            (Some(a), Some(b)) if a == b => Some(0.0),
            _ => None,
        };
        // From 0, any rise is notable: no share of 0 measures it.
        let rose_from_zero = matches!((baseline, run), (Some(a), Some(b)) if a == 0.0 && b > 0.0);
        let judgement = match (change, better) {
            (_, Better::Higher) if rose_from_zero => "better",
            (_, Better::Lower) if rose_from_zero => "worse",
            (Some(c), Better::Higher) if c <= -NOTABLE => "worse",
            (Some(c), Better::Higher) if c >= NOTABLE => "better",
            (Some(c), Better::Lower) if c >= NOTABLE => "worse",
            (Some(c), Better::Lower) if c <= -NOTABLE => "better",
            _ => "",
        };
        Self {
            figure: figure.into(),
            baseline,
            run,
            change,
            better,
            judgement: judgement.to_owned(),
        }
    }
}

/// Two runs compared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Diff {
    pub baseline: String,
    pub run: String,
    pub figures: Vec<Delta>,
    /// Each run's verdict in a few words (`pass`, `FAIL I1 I3`, `not verified`).
    pub verdicts: [String; 2],
    /// Each run's failed thresholds.
    pub failed_thresholds: [Vec<String>; 2],
    /// What the reader should know about the comparison itself.
    pub notes: Vec<String>,
}

impl Diff {
    /// Whether the verdict got worse: the run failed, and not just as the baseline did.
    /// The run fails an invariant the baseline did not fail.
    fn verdict_worse(&self) -> bool {
        let failed = |verdict: &str| -> std::collections::BTreeSet<String> {
            verdict
                .strip_prefix("FAIL")
                .map(|ids| ids.split_whitespace().map(str::to_owned).collect())
                .unwrap_or_default()
        };
        !failed(&self.verdicts[1]).is_subset(&failed(&self.verdicts[0]))
    }

    /// The figures that got notably worse, and the verdict when it did.
    pub fn regressions(&self) -> Vec<String> {
        let mut worse: Vec<String> = self
            .figures
            .iter()
            .filter(|d| d.judgement == "worse")
            .map(|d| d.figure.clone())
            .collect();
        if self.verdict_worse() {
            worse.push(format!("verdict ({})", self.verdicts[1]));
        }
        worse
    }
}

fn latency_figures(
    figures: &mut Vec<Delta>,
    label: &str,
    a: Option<&Latency>,
    b: Option<&Latency>,
    better: Better,
) {
    let (a, b) = (a.map(Latency::values), b.map(Latency::values));
    for (i, name) in Latency::NAMES.iter().enumerate() {
        figures.push(Delta::new(
            format!("{label} {name} ms"),
            a.map(|values| values[i]),
            b.map(|values| values[i]),
            better,
        ));
    }
}

/// `baseline` and `run`, figure by figure.
pub fn compare(baseline: &RunFiles, run: &RunFiles) -> Diff {
    let (a, b) = (&baseline.summary, &run.summary);
    let mut figures = vec![
        Delta::new(
            "requests",
            Some(a.stats.requests as f64),
            Some(b.stats.requests as f64),
            Better::Neither,
        ),
        Delta::new(
            "responses/s",
            Some(a.stats.responses_per_second),
            Some(b.stats.responses_per_second),
            Better::Higher,
        ),
        Delta::new(
            "errors (share)",
            a.stats.error_share(),
            b.stats.error_share(),
            Better::Lower,
        ),
    ];
    // A summary written before latencies counted a request with no reply (at the timeout)
    // measured another thing: its latencies are shown, not graded.
    let measured_alike = a.stats.no_reply_counted_ms > 0.0 && b.stats.no_reply_counted_ms > 0.0;
    let latency_better = if measured_alike {
        Better::Lower
    } else {
        Better::Neither
    };
    let mut notes = Vec::new();
    if !measured_alike {
        notes.push(
            "latencies not graded: one run was measured by an older loadgen, which left out \
             requests that got no reply"
                .to_owned(),
        );
    }
    latency_figures(
        &mut figures,
        "service",
        a.stats.latency_overall.as_ref(),
        b.stats.latency_overall.as_ref(),
        latency_better,
    );
    latency_figures(
        &mut figures,
        "from due",
        a.stats.intended_overall.as_ref(),
        b.stats.intended_overall.as_ref(),
        latency_better,
    );
    let classes: std::collections::BTreeSet<&String> = a
        .stats
        .by_class
        .keys()
        .chain(b.stats.by_class.keys())
        .collect();
    for class in classes {
        let count = |s: &Summary| Some(s.stats.by_class.get(class).copied().unwrap_or(0) as f64);
        figures.push(Delta::new(
            class.as_str(),
            count(a),
            count(b),
            Better::Neither,
        ));
        let p99 = |s: &Summary| s.stats.latency_by_class.get(class).map(|l| l.p99_ms);
        figures.push(Delta::new(
            format!("{class} p99 ms"),
            p99(a),
            p99(b),
            latency_better,
        ));
    }
    figures.push(Delta::new(
        "drain s",
        a.run.drain_seconds,
        b.run.drain_seconds,
        Better::Lower,
    ));
    for (part, name, label) in [
        ("consumer", "lag", "consumer lag peak"),
        ("api", "in doubt", "in doubt peak"),
        ("api", "gate p99", "gate p99 peak ms"),
        ("api", "kafka ack p99", "kafka ack p99 peak ms"),
        ("api", "memory", "api memory peak MB"),
        ("consumer", "memory", "consumer memory peak MB"),
    ] {
        let peak = |s: &Summary| s.server.as_ref().and_then(|server| server.peak(part, name));
        figures.push(Delta::new(label, peak(a), peak(b), Better::Lower));
    }
    Diff {
        baseline: a.run.run_id.clone(),
        run: b.run.run_id.clone(),
        figures,
        verdicts: [baseline.verdict_text(), run.verdict_text()],
        failed_thresholds: [report::failed_thresholds(a), report::failed_thresholds(b)],
        notes,
    }
}

#[derive(Tabled)]
struct Row {
    figure: String,
    baseline: String,
    run: String,
    change: String,
    #[tabled(rename = "")]
    judgement: String,
}

fn rows(diff: &Diff) -> Vec<Row> {
    let number = |v: Option<f64>| {
        v.map_or("-".to_owned(), |v| {
            if v.fract() == 0.0 && v.abs() < 1e12 {
                format!("{v:.0}")
            } else {
                format!("{v:.3}")
            }
        })
    };
    let mut rows: Vec<Row> = diff
        .figures
        .iter()
        .filter(|d| d.baseline.is_some() || d.run.is_some())
        .map(|d| Row {
            figure: d.figure.clone(),
            baseline: number(d.baseline),
            run: number(d.run),
            change: d
                .change
                .map_or("-".to_owned(), |c| format!("{:+.1}%", c * 100.0)),
            judgement: d.judgement.clone(),
        })
        .collect();
    let thresholds = |failed: &[String]| {
        if failed.is_empty() {
            "all held".to_owned()
        } else {
            format!("failed: {}", failed.join("; "))
        }
    };
    rows.push(Row {
        figure: "thresholds".into(),
        baseline: thresholds(&diff.failed_thresholds[0]),
        run: thresholds(&diff.failed_thresholds[1]),
        change: String::new(),
        judgement: String::new(),
    });
    rows.push(Row {
        figure: "verdict".into(),
        baseline: diff.verdicts[0].clone(),
        run: diff.verdicts[1].clone(),
        change: String::new(),
        judgement: if diff.verdict_worse() {
            "worse".into()
        } else {
            String::new()
        },
    });
    rows
}

fn headline(diff: &Diff) -> String {
    match diff.regressions().as_slice() {
        [] => format!(
            "run {} against baseline {}: nothing notably worse (more than {:.0}%)",
            diff.run,
            diff.baseline,
            NOTABLE * 100.0
        ),
        worse => format!(
            "run {} against baseline {}: worse in {}",
            diff.run,
            diff.baseline,
            worse.join(", ")
        ),
    }
}

pub fn terminal(diff: &Diff) -> String {
    let table = Table::new(rows(diff)).with(Style::rounded()).to_string();
    let notes: String = diff.notes.iter().map(|n| format!("\nnote: {n}")).collect();
    format!("{table}\n{}{notes}", headline(diff))
}

pub fn markdown(diff: &Diff) -> String {
    let table = Table::new(rows(diff)).with(Style::markdown()).to_string();
    let notes: String = diff
        .notes
        .iter()
        .map(|n| format!("\nNote: {n}.\n"))
        .collect();
    format!(
        "# loadgen diff: {} against {}\n\n{}\n\n{table}\n\n`worse` and `better` mark changes of more \
         than {:.0}% in the direction that matters (any rise from 0); counts of results describe \
         the runs and are not graded.\n{notes}",
        diff.run,
        diff.baseline,
        headline(diff),
        NOTABLE * 100.0
    )
}

/// Compares `baseline` with `run`, writes `diff-<baseline id>.{md,json}` into the run's
/// directory, and returns the terminal text.
pub fn write(baseline: &RunFiles, run: &RunFiles) -> anyhow::Result<String> {
    let diff = compare(baseline, run);
    let stem = run.dir.join(format!("diff-{}", diff.baseline));
    let md = stem.with_extension("md");
    std::fs::write(&md, markdown(&diff))
        .with_context(|| format!("failed to write {}", md.display()))?;
    let json = stem.with_extension("json");
    std::fs::write(&json, serde_json::to_string_pretty(&diff)?)
        .with_context(|| format!("failed to write {}", json.display()))?;
    Ok(format!(
        "{}\nwritten: {} and .json",
        terminal(&diff),
        md.display()
    ))
}

/// `loadgen diff`.
pub fn run(args: &DiffArgs) -> anyhow::Result<String> {
    let baseline = RunFiles::read(&locate(&args.report_dir, &args.baseline)?)?;
    let run = RunFiles::read(&locate(&args.report_dir, &args.run)?)?;
    write(&baseline, &run)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(summary: Summary) -> RunFiles {
        RunFiles {
            dir: PathBuf::from("/nonexistent"),
            summary,
            verdict: None,
        }
    }

    #[test]
    fn a_slower_run_is_marked_worse_and_named() {
        let baseline = report::sample_summary();
        let mut slower = report::sample_summary();
        slower.run.run_id = "run-2".into();
        let latency = slower.stats.latency_overall.as_mut().expect("latencies");
        latency.p99_ms *= 2.0;
        slower.stats.responses_per_second *= 1.5;
        let diff = compare(&files(baseline.clone()), &files(slower));
        let figure = |name: &str| {
            diff.figures
                .iter()
                .find(|d| d.figure == name)
                .unwrap_or_else(|| panic!("no figure {name}"))
        };
        assert_eq!(figure("service p99 ms").judgement, "worse");
        assert!((figure("service p99 ms").change.expect("a change") - 1.0).abs() < 1e-9);
        assert_eq!(figure("responses/s").judgement, "better");
        assert_eq!(figure("service p50 ms").judgement, "");
        assert_eq!(figure("issued").judgement, "", "counts are not graded");
        assert_eq!(diff.regressions(), vec!["service p99 ms".to_owned()]);
        let text = terminal(&diff);
        assert!(text.contains("worse in service p99 ms"), "{text}");

        // Control: a run against itself shows nothing worse.
        let same = compare(&files(baseline.clone()), &files(baseline));
        assert!(same.regressions().is_empty(), "{:?}", same.regressions());
        assert!(terminal(&same).contains("nothing notably worse"));
    }

    #[test]
    fn a_rise_from_zero_is_notable_and_old_summaries_are_not_graded() {
        let rose = Delta::new("in doubt peak", Some(0.0), Some(40.0), Better::Lower);
        assert_eq!((rose.change, rose.judgement.as_str()), (None, "worse"));
        let still = Delta::new("in doubt peak", Some(0.0), Some(0.0), Better::Lower);
        assert_eq!(still.judgement, "");

        let mut old = report::sample_summary();
        old.stats.no_reply_counted_ms = 0.0;
        let mut slower = report::sample_summary();
        if let Some(latency) = slower.stats.latency_overall.as_mut() {
            latency.p99_ms *= 3.0;
        }
        let diff = compare(&files(old), &files(slower));
        assert!(diff.regressions().is_empty(), "{:?}", diff.regressions());
        assert_eq!(diff.notes.len(), 1);
        assert!(terminal(&diff).contains("note: latencies not graded"));
    }

    #[test]
    fn a_verdict_that_turns_to_fail_is_a_regression() {
        let mut diff = compare(
            &files(report::sample_summary()),
            &files(report::sample_summary()),
        );
        diff.verdicts = ["pass".into(), "FAIL I1".into()];
        assert_eq!(diff.regressions(), vec!["verdict (FAIL I1)".to_owned()]);
        assert!(markdown(&diff).contains("| verdict"));
        diff.verdicts = ["FAIL I1".into(), "FAIL I1".into()];
        assert!(
            diff.regressions().is_empty(),
            "failing as before is no regression"
        );
        diff.verdicts = ["FAIL I1".into(), "FAIL I1 I3".into()];
        assert_eq!(diff.regressions(), vec!["verdict (FAIL I1 I3)".to_owned()]);
        diff.verdicts = ["FAIL I1 I3".into(), "FAIL I1".into()];
        assert!(diff.regressions().is_empty(), "fixing I3 is no regression");
        diff.verdicts = ["not verified".into(), "FAIL I2".into()];
        assert_eq!(diff.regressions(), vec!["verdict (FAIL I2)".to_owned()]);
    }
}
