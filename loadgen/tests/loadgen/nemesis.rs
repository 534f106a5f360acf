//! `--fault NAME[@when][:for]` on the pipeline loadgen starts: each fault really strikes and
//! heals (its lines in history.jsonl, its window in the summary), and the verifier still finds
//! every invariant holding afterwards, against the run's own stores.

use clap::Parser;
use coupon_domain::history::{FaultLine, FaultPhase};

use crate::isolated::Isolated;

/// The fault's injection and healing lines, in that order; fails when either is missing.
fn struck_and_healed<'a>(
    lines: &'a [FaultLine],
    fault: &str,
) -> anyhow::Result<[&'a FaultLine; 2]> {
    let of = |phase| {
        lines
            .iter()
            .find(|l| l.fault == fault && l.phase == phase)
            .ok_or_else(|| anyhow::anyhow!("no {phase:?} line for {fault} in {lines:#?}"))
    };
    let (inject, heal) = (of(FaultPhase::Inject)?, of(FaultPhase::Heal)?);
    anyhow::ensure!(
        inject.at_us <= heal.at_us,
        "{fault} healed before it struck"
    );
    Ok([inject, heal])
}

#[tokio::test]
async fn each_fault_strikes_heals_and_is_recorded_and_the_guarantee_holds() -> anyhow::Result<()> {
    let isolated = Isolated::new().await?;
    let run = isolated.loadgen(&[
        "--users",
        "300",
        "--limit",
        "60",
        "--rate",
        "100",
        "--fault",
        "poison@500ms",
        "--fault",
        "rebalance-storm@1s:3s",
        "--fault",
        "consumer-crash@20issued",
    ])?;
    let history = loadgen::history::read_jsonl(&run.join("history.jsonl"))?;
    assert_eq!(history.requests.len(), 300);
    let lines = &history.faults;
    let [poisoned, captured] = struck_and_healed(lines, "poison@500ms")?;
    assert!(poisoned.action.contains("malformed") && poisoned.action.contains("oversized"));
    assert!(
        captured.action.contains("malformed") && captured.action.contains("oversized"),
        "{}",
        captured.action
    );
    let [_, storm] = struck_and_healed(lines, "rebalance-storm@1s:3s")?;
    assert!(!storm.action.starts_with("over: 0 "), "{}", storm.action);
    let [crash, restart] = struck_and_healed(lines, "consumer-crash@20issued")?;
    assert!(crash.action.contains("SIGKILL") && restart.action.contains("restarted"));

    let summary = loadgen::report::read_summary(&run)?;
    assert_eq!(
        summary.fault_windows.len(),
        3,
        "{:?}",
        summary.fault_windows
    );
    assert!(summary.fault_windows.iter().all(|w| w.to_ms.is_some()));
    assert!(summary.faults_not_struck.is_empty());
    assert!(summary.run.consumer_restarts >= Some(1));
    let html = std::fs::read_to_string(run.join("report.html"))?;
    assert!(html.contains("<h2>Faults</h2>"));

    // Exactly the limit, through every fault.
    verified(&isolated, 60).await?;
    isolated.cleanup().await
}

/// The verifier's verdict on the run in `isolated`'s reports: exit 0 and exactly `limit` rows.
async fn verified(isolated: &Isolated, limit: usize) -> anyhow::Result<()> {
    let mut verifier = verifier::cli::Cli::try_parse_from([
        "verifier".as_ref(),
        "--report-dir".as_ref(),
        isolated.reports.as_os_str(),
    ])?;
    verifier.stack = isolated.stack_args();
    let judgement = verifier::verify::judge(&verifier).await?;
    assert_eq!(judgement.exit_code, 0, "{}", judgement.final_line);
    let rows = judgement.verdicts.first().map(|v| v.tally.coupons);
    assert_eq!(rows, Some(limit), "exactly the limit");
    Ok(())
}

#[tokio::test]
async fn db_lock_holds_every_coupon_insert_until_it_heals() -> anyhow::Result<()> {
    let isolated = Isolated::new().await?;
    let run = isolated.loadgen(&[
        "--users",
        "200",
        "--limit",
        "60",
        // 60 winners over the first 1.2 s: most of them arrive while the row is locked.
        "--rate",
        "50",
        "--fault",
        "db-lock@200ms:2s",
    ])?;
    let history = loadgen::history::read_jsonl(&run.join("history.jsonl"))?;
    let [lock, unlock] = struck_and_healed(&history.faults, "db-lock@200ms:2s")?;
    assert!(lock.action.contains("FOR UPDATE") && unlock.action.contains("ROLLBACK"));
    let held_ms = (unlock.at_us - lock.at_us) / 1000;
    assert!(held_ms >= 2000, "the lock was held {held_ms} ms, not 2 s");
    let summary = loadgen::report::read_summary(&run)?;
    // While the campaign's row was locked, no coupon row was written: the consumer's own count,
    // read every 250 ms, never rose inside the window.
    let window = summary
        .fault_windows
        .iter()
        .find(|w| w.fault.starts_with("db-lock"))
        .ok_or_else(|| anyhow::anyhow!("no db-lock window"))?;
    let server = summary
        .server
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("no server timelines"))?;
    let rows = server
        .get("consumer", "rows written")
        .ok_or_else(|| anyhow::anyhow!("no rows-written timeline"))?;
    let locked_to = window.to_ms.unwrap_or_default();
    let during: Vec<f64> = server
        .at_ms
        .iter()
        .zip(&rows.values)
        .filter(|(at, _)| **at > window.from_ms + 300.0 && **at < locked_to - 100.0)
        .filter_map(|(_, value)| *value)
        .collect();
    assert!(
        during.len() >= 4,
        "too few reads inside the lock: {during:?}"
    );
    assert!(
        during.windows(2).all(|pair| pair[1] <= pair[0]),
        "rows were written while the campaign's row was locked: {during:?}"
    );
    verified(&isolated, 60).await?;
    isolated.cleanup().await
}

#[tokio::test]
async fn a_fault_due_after_the_burst_never_strikes_and_is_named() -> anyhow::Result<()> {
    let isolated = Isolated::new().await?;
    // 20 users can never bring 500 issued replies.
    let run = isolated.loadgen(&[
        "--users",
        "20",
        "--limit",
        "10",
        "--fault",
        "db-lock@500issued:1s",
        // Due a minute in, long after 20 users are answered: the stage does not wait for it.
        "--fault",
        "db-outage@60s:1s",
    ])?;
    let history = loadgen::history::read_jsonl(&run.join("history.jsonl"))?;
    assert!(history.faults.is_empty(), "{:?}", history.faults);
    let summary = loadgen::report::read_summary(&run)?;
    assert_eq!(
        summary.faults_not_struck,
        vec!["db-lock@500issued:1s", "db-outage@60s:1s"]
    );
    isolated.cleanup().await
}
