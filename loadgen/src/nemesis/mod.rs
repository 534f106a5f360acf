//! The nemesis: the faults of `--fault`, injected into the pipeline loadgen started while the
//! burst runs, on the schedule each one's `@when` and `:for` give. Every injection and healing
//! is a line of the run's history, beside the requests, so a reader (and the report's shaded
//! bands) sees which replies happened during which fault.
//!
//! - [`spec`]: what `--fault NAME[@when][:for]` says.
//! - [`strike`]: what each fault does to the stack, and how it heals.

mod spec;
mod strike;

use std::{sync::Arc, time::Duration};

use coupon_domain::{
    CampaignId, Strategy,
    history::{FaultLine, FaultPhase},
};
use coupon_runtime::stack::StackArgs;
use serde::{Deserialize, Serialize};
pub use spec::{FaultKind, FaultSpec, When};
use tokio::sync::watch;

use crate::{history::History, pipeline::Pipeline, scenario::now_us};

/// What a stage's faults act on.
#[derive(Debug)]
pub struct Scene<'a> {
    pub pipeline: &'a Pipeline,
    /// For the api's and consumer's HTTP endpoints.
    pub http: &'a reqwest::Client,
    pub stack: &'a StackArgs,
    pub history: Arc<History>,
    pub run_id: &'a str,
    pub campaign_id: &'a CampaignId,
    pub strategy: Strategy,
    /// The campaign's limit (`consumer-crash`'s default is half of it in rows).
    pub limit: u32,
}

impl Scene<'_> {
    fn line(&self, spec: &FaultSpec, phase: FaultPhase, target: &str, action: &str) {
        let line = FaultLine {
            fault: spec.to_string(),
            phase,
            run_id: self.run_id.to_owned(),
            at_us: now_us(),
            target: target.to_owned(),
            action: action.to_owned(),
        };
        let verb = match phase {
            FaultPhase::Inject => "strikes",
            FaultPhase::Heal => "heals",
        };
        eprintln!("fault {}: {verb}: {action} ({target})", line.fault);
        self.history.fault(line);
    }
}

/// Arms what must be in place before the first request (the consumer that crashes itself
/// after N rows). Returns whether the consumer crash is armed.
pub async fn prepare(scene: &Scene<'_>, faults: &[FaultSpec]) -> anyhow::Result<bool> {
    let mut armed = false;
    for spec in faults {
        if spec.kind == FaultKind::ConsumerCrash
            && strike::not_applicable(spec.kind, scene.strategy).is_none()
        {
            let rows = match spec.when {
                When::Issued(rows) => Some(rows),
                When::HalfTheLimit => Some(u64::from(scene.limit / 2).max(1)),
                When::At(_) => None,
            };
            if let Some(rows) = rows {
                eprintln!(
                    "fault {spec}: the consumer will SIGKILL itself after writing {rows} rows"
                );
                scene.pipeline.arm_consumer_crash(scene.http, rows).await?;
                armed = true;
            }
        }
    }
    Ok(armed)
}

/// Runs every fault of the stage alongside the burst, until each has struck and healed.
/// `burst_done` turns true when the burst's last reply is in.
pub async fn run(
    scene: &Scene<'_>,
    faults: &[FaultSpec],
    burst_done: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let started = tokio::time::Instant::now();
    let runs = faults
        .iter()
        .map(|spec| strike::one(scene, spec, started, burst_done.clone()));
    for result in futures::future::join_all(runs).await {
        result?;
    }
    Ok(())
}

/// Waits until `spec` is due: its time since the burst started, or its count of `issued`
/// replies. Returns `false` when the burst ended first: a fault due after it never strikes.
async fn due(
    scene: &Scene<'_>,
    spec: &FaultSpec,
    started: tokio::time::Instant,
    mut burst_done: watch::Receiver<bool>,
) -> bool {
    match spec.when {
        When::At(at) => tokio::select! {
            () = tokio::time::sleep_until(started + at) => true,
            _ = burst_done.wait_for(|done| *done) => false,
        },
        When::Issued(count) => loop {
            if scene.history.issued() >= count {
                return true;
            }
            if *burst_done.borrow_and_update() {
                return false;
            }
            // A poll of an in-memory counter, 10 ms apart: the fault strikes within 10 ms of
            // the reply that reached the count.
            let _ = tokio::time::timeout(Duration::from_millis(10), burst_done.changed()).await;
        },
        When::HalfTheLimit => true,
    }
}

/// One fault's window on the report's timelines, in ms since the first request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultWindow {
    pub fault: String,
    pub target: String,
    pub action: String,
    pub from_ms: f64,
    /// `None`: it never healed (poison never captured; a crash never restarted).
    pub to_ms: Option<f64>,
}

/// Pairs each injection with the healing that follows it, relative to `first_us`.
pub fn windows(lines: &[FaultLine], first_us: i64) -> Vec<FaultWindow> {
    let ms = |at_us: i64| (at_us - first_us) as f64 / 1000.0;
    let mut windows: Vec<FaultWindow> = Vec::new();
    for line in lines {
        match line.phase {
            FaultPhase::Inject => windows.push(FaultWindow {
                fault: line.fault.clone(),
                target: line.target.clone(),
                action: line.action.clone(),
                from_ms: ms(line.at_us),
                to_ms: None,
            }),
            FaultPhase::Heal => {
                if let Some(open) = windows
                    .iter_mut()
                    .rev()
                    .find(|w| w.fault == line.fault && w.to_ms.is_none())
                {
                    open.to_ms = Some(ms(line.at_us));
                }
            }
        }
    }
    windows
}

/// The faults asked for that left no injection in the history: each is named with why it did
/// not strike, for the stage's warning and the round's check.
pub fn not_struck(faults: &[FaultSpec], lines: &[FaultLine]) -> Vec<String> {
    faults
        .iter()
        .filter(|spec| {
            let name = spec.to_string();
            !lines
                .iter()
                .any(|l| l.fault == name && l.phase == FaultPhase::Inject)
        })
        .map(ToString::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(fault: &str, phase: FaultPhase, at_us: i64) -> FaultLine {
        FaultLine {
            fault: fault.into(),
            phase,
            run_id: "r".into(),
            at_us,
            target: "t".into(),
            action: "a".into(),
        }
    }

    #[test]
    fn each_injection_pairs_with_its_own_healing() {
        let lines = [
            line("db-lock", FaultPhase::Inject, 2_000),
            line("poison", FaultPhase::Inject, 3_000),
            line("db-lock", FaultPhase::Heal, 9_000),
        ];
        let windows = windows(&lines, 1_000);
        assert_eq!(windows.len(), 2);
        assert_eq!(
            (
                windows[0].fault.as_str(),
                windows[0].from_ms,
                windows[0].to_ms
            ),
            ("db-lock", 1.0, Some(8.0))
        );
        assert_eq!(
            (windows[1].fault.as_str(), windows[1].to_ms),
            ("poison", None)
        );
    }

    #[test]
    fn a_fault_with_no_injection_is_named_as_not_struck() {
        let faults: Vec<FaultSpec> = ["db-lock@2s", "poison"]
            .iter()
            .map(|f| f.parse().expect("parses"))
            .collect();
        let struck = [line("db-lock@2s", FaultPhase::Inject, 1)];
        assert_eq!(not_struck(&faults, &struck), vec!["poison".to_owned()]);
        assert_eq!(not_struck(&faults, &[]).len(), 2);
        // A healing alone is no injection.
        let healed_only = [line("poison", FaultPhase::Heal, 1)];
        assert_eq!(not_struck(&faults[1..], &healed_only), vec!["poison"]);
    }
}
