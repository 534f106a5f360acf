//! loadgen as a user runs it: the binary, against a pipeline it starts itself on a free port,
//! isolated from other tests by its own database, topic, consumer group and Redis prefix.

use std::{
    collections::{BTreeMap, HashMap},
    path::Path,
};

use coupon_domain::history::{HistoryRecord, ResultClass};

use crate::isolated::Isolated;

fn history(run: &Path) -> anyhow::Result<Vec<HistoryRecord>> {
    // `HistoryRecord` denies unknown fields and requires every field: a line that parses has
    // exactly the documented fields.
    Ok(loadgen::history::read_jsonl(&run.join("history.jsonl"))?.requests)
}

#[tokio::test]
async fn a_small_burst_records_every_request_and_issues_exactly_the_limit() -> anyhow::Result<()> {
    let isolated = Isolated::new().await?;
    let run = isolated.loadgen(&[
        "--users",
        "200",
        "--limit",
        "20",
        "--seed",
        "7",
        "--threshold",
        "issued<=limit",
    ])?;
    let records = history(&run)?;
    assert_eq!(records.len(), 200, "one line per request");
    let mut request_ids: Vec<u64> = records.iter().map(|r| r.request_id).collect();
    request_ids.sort_unstable();
    assert_eq!(request_ids, (1..=200).collect::<Vec<_>>());
    let summary = loadgen::report::read_summary(&run)?;
    let [held] = summary.thresholds.as_slice() else {
        anyhow::bail!("one threshold expected: {:?}", summary.thresholds);
    };
    assert!(held.held && held.wanted == 20.0, "{held:?}");
    for record in &records {
        assert_eq!(record.campaign_id, summary.run.campaign_id.as_str());
        assert_eq!(record.run_id, summary.run.run_id);
        assert!(record.sent_at_us >= record.intended_at_us - 1_000_000);
        assert!(
            record.status.is_some() && record.response_us.is_some(),
            "{record:?}"
        );
    }

    let mut counted: BTreeMap<String, u64> = BTreeMap::new();
    for record in &records {
        *counted
            .entry(record.result.as_str().to_owned())
            .or_default() += 1;
    }
    assert_eq!(
        summary.stats.by_class, counted,
        "the summary's counts match the history"
    );
    assert_eq!(counted.get("issued"), Some(&20), "exactly the limit issued");
    assert_eq!(counted.get("sold_out"), Some(&180));
    let seqs: std::collections::BTreeSet<u32> = records.iter().filter_map(|r| r.seq).collect();
    assert_eq!(seqs, (1..=20).collect());
    assert_eq!(
        summary.run.campaign_after.persisted, 20,
        "loadgen waited for the rows"
    );
    for file in ["summary.md", "report.html"] {
        assert!(run.join(file).is_file(), "{file} missing");
    }
    // goose keeps no metrics of its own unless asked (--goose-metrics): no goose reports.
    for file in ["goose-report.json", "goose-report.md", "goose-report.html"] {
        assert!(!run.join(file).exists(), "{file} written");
    }

    // The server's side, read from the api's and the consumer's /metrics during the run.
    let server = summary
        .server
        .as_ref()
        .expect("the server's metrics were read");
    assert!(server.unreachable.is_empty(), "{:?}", server.unreachable);
    let peak = |part: &str, name: &str| server.peak(part, name).unwrap_or_default();
    assert_eq!(
        peak("consumer", "rows written"),
        20.0,
        "read after the drain"
    );
    assert!(peak("api", "applies/s") > 0.0);
    assert!(peak("api", "gate p99") > 0.0);
    assert!(peak("api", "kafka ack p99") > 0.0);
    assert!(peak("api", "memory") > 1.0 && peak("consumer", "memory") > 1.0);
    isolated.cleanup().await
}

#[tokio::test]
async fn repeated_applies_issue_exactly_one_coupon_per_user() -> anyhow::Result<()> {
    let isolated = Isolated::new().await?;
    // Through goose's own request path this time, which keeps goose's metrics and reports.
    let run = isolated.loadgen(&[
        "--users",
        "50",
        "--repeat",
        "4",
        "--limit",
        "100",
        "--goose-metrics",
    ])?;
    for file in ["goose-report.json", "goose-report.md"] {
        assert!(run.join(file).is_file(), "{file} missing");
    }
    assert!(
        !run.join("goose-report.html").exists(),
        "goose's HTML report needs a CDN; ours replaces it"
    );
    let goose: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("goose-report.json"))?)?;
    let counted: u64 = goose["raw_metrics"]["requests"]
        .as_object()
        .map(|requests| {
            requests
                .values()
                .filter_map(|r| r["raw_data"]["counter"].as_u64())
                .sum()
        })
        .unwrap_or_default();
    assert_eq!(counted, 200, "goose counted every request");
    let records = history(&run)?;
    assert_eq!(records.len(), 200);
    let mut per_user: HashMap<u64, Vec<ResultClass>> = HashMap::new();
    for record in &records {
        per_user
            .entry(record.user_id)
            .or_default()
            .push(record.result);
    }
    assert_eq!(per_user.len(), 50);
    for (user, results) in &per_user {
        assert_eq!(results.len(), 4, "user {user}");
        assert_eq!(
            results
                .iter()
                .filter(|r| **r == ResultClass::Issued)
                .count(),
            1,
            "user {user}: {results:?}"
        );
        assert_eq!(
            results
                .iter()
                .filter(|r| **r == ResultClass::AlreadyApplied)
                .count(),
            3,
            "user {user}: {results:?}"
        );
    }
    isolated.cleanup().await
}

/// A threshold no run can meet gives exit 3 and names it; the one it met is not named. A second
/// run with a generous threshold exits 0 and compares itself with the first (`--baseline`), and
/// `loadgen diff` compares the two again.
#[tokio::test]
async fn a_failed_threshold_sets_the_exit_code_and_is_named() -> anyhow::Result<()> {
    let isolated = Isolated::new().await?;
    let (mut command, _port) = isolated.command(&[
        "--users",
        "100",
        "--limit",
        "10",
        "--threshold",
        "p99<0.001ms",
        "--threshold",
        "issued<=limit",
    ])?;
    let output = command.stdin(std::process::Stdio::null()).output()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(i32::from(loadgen::cli::EXIT_THRESHOLD)),
        "{stderr}"
    );
    let named = stderr
        .lines()
        .find(|line| line.contains("thresholds failed"))
        .unwrap_or_default();
    assert!(
        named.contains("p99<0.001ms") && !named.contains("issued<=limit"),
        "{stderr}"
    );
    let summary = loadgen::report::read_summary(&isolated.reports.join("latest"))?;
    let held: Vec<bool> = summary.thresholds.iter().map(|t| t.held).collect();
    assert_eq!(held, vec![false, true]);
    let first = isolated.reports.join("latest").canonicalize()?;

    let (mut command, _port) = isolated.command(&[
        "--users",
        "100",
        "--limit",
        "10",
        "--threshold",
        "p99<60s",
        "--baseline",
        "latest",
    ])?;
    let output = command.stdin(std::process::Stdio::null()).output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let second = isolated.reports.join("latest").canonicalize()?;
    assert_ne!(first, second);
    let first_id = first
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    assert!(
        stdout.contains(&format!("against baseline {first_id}")),
        "{stdout}"
    );
    assert!(stdout.contains("failed: p99<0.001ms"), "{stdout}");

    let diff = std::process::Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["diff", first_id, "latest", "--report-dir"])
        .arg(&isolated.reports)
        .output()?;
    assert!(
        diff.status.success(),
        "{}",
        String::from_utf8_lossy(&diff.stderr)
    );
    let written: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(
        second.join(format!("diff-{first_id}.json")),
    )?)?;
    assert_eq!(written["baseline"], first_id);
    let issued = written["figures"]
        .as_array()
        .and_then(|figures| figures.iter().find(|f| f["figure"] == "issued"))
        .expect("the issued count is compared");
    assert_eq!(
        (issued["baseline"].as_f64(), issued["run"].as_f64()),
        (Some(10.0), Some(10.0))
    );

    let missing = std::process::Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["diff", "no-such-run", "--report-dir"])
        .arg(&isolated.reports)
        .output()?;
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no run `no-such-run`"));
    isolated.cleanup().await
}
