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
    history::{FaultLine, FaultPhase, HistoryRecord},
};
use coupon_runtime::stack::StackArgs;
use serde::{Deserialize, Serialize};
pub use spec::{FaultKind, FaultSpec, When};
pub use strike::not_applicable;
use tokio::sync::watch;

use crate::{
    client::ApiClient, history::History, pipeline::Pipeline, sandbox::Sandbox, scenario::now_us,
    users::UserPlan,
};

/// What a stage's faults act on.
#[derive(Debug)]
pub struct Scene<'a> {
    pub pipeline: &'a Pipeline,
    /// The api, and through its client the consumer's HTTP endpoints.
    pub api: &'a ApiClient,
    /// The burst's users (`stale-state` gives some of them a coupon of the earlier incarnation).
    pub users: UserPlan,
    pub stack: &'a StackArgs,
    pub history: Arc<History>,
    pub run_id: &'a str,
    pub campaign_id: &'a CampaignId,
    pub strategy: Strategy,
    /// The campaign's limit (`consumer-crash`'s default is half of it in rows).
    pub limit: u32,
    /// The stores of the run's own, for the faults that act on the stores themselves.
    pub sandbox: Option<&'a Sandbox>,
    /// When the campaign's sale window opens, if a fault gave it one (`clock-skew`).
    pub opening: Option<Opening>,
}

/// A sale window that opens mid-burst, for `clock-skew`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opening {
    /// When it opens, by the true clock.
    pub at: time::OffsetDateTime,
    /// How far into the burst that is: the burst starts this long before it.
    pub into_burst: Duration,
}

/// How long after the campaign is created the burst starts, when its window opens mid-burst:
/// time enough to restart the api whose clock is skewed.
const OPENING_LEAD: Duration = Duration::from_secs(10);

/// The opening `faults` ask the campaign's window for, if any (`clock-skew`): `@when` into the
/// burst, or by default once half the users beyond the limit have arrived, so that those come
/// early and enough come after it to sell out. Counted from now: the campaign is
/// created next, and the burst starts [`OPENING_LEAD`] later.
pub fn opening(
    faults: &[FaultSpec],
    arrivals: &crate::arrivals::Arrivals,
    users: usize,
    limit: u32,
) -> Option<Opening> {
    let spec = faults.iter().find(|f| f.kind == FaultKind::ClockSkew)?;
    let into_burst = match spec.when {
        When::At(at) => at,
        _ => {
            let surplus = users.saturating_sub(limit as usize);
            Duration::from_micros(u64::try_from(arrivals.arrival_us(surplus / 2)).unwrap_or(0))
        }
    };
    Some(Opening {
        at: time::OffsetDateTime::now_utc() + OPENING_LEAD + into_burst,
        into_burst,
    })
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
/// after N rows), strikes the faults that strike before the burst (`stale-state`,
/// `clock-skew`), and for `clock-skew` waits until the burst is due.
/// Returns whether the consumer crash is armed.
pub async fn prepare(scene: &Scene<'_>, faults: &[FaultSpec]) -> anyhow::Result<bool> {
    // First what strikes before the burst: a consumer armed before them would count their rows.
    for spec in faults.iter().filter(|f| f.kind.strikes_before_burst()) {
        strike::before_burst(scene, spec).await?;
    }
    let mut armed = false;
    for spec in faults {
        if spec.kind == FaultKind::ConsumerCrash
            && strike::not_applicable(spec.kind, scene.strategy).is_none()
        {
            if let Some(rows) = spec.when.count(scene.limit) {
                eprintln!(
                    "fault {spec}: the consumer will SIGKILL itself after writing {rows} rows"
                );
                scene
                    .pipeline
                    .arm_consumer_crash(scene.api.http(), rows)
                    .await?;
                armed = true;
            }
        }
    }
    // Last, since arming a crash restarts the consumer: the burst starts when its window says.
    for spec in faults.iter().filter(|f| f.kind == FaultKind::ClockSkew) {
        strike::until_burst_due(scene, spec).await?;
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
    let count = match (spec.when, spec.when.count(scene.limit)) {
        (When::At(at), _) => {
            return tokio::select! {
                () = tokio::time::sleep_until(started + at) => true,
                _ = burst_done.wait_for(|done| *done) => false,
            };
        }
        // The armed crash: the consumer counts its own rows.
        (When::HalfTheLimit, _) | (_, None) => return true,
        (_, Some(count)) => count,
    };
    loop {
        if scene.history.issued() >= count {
            return true;
        }
        if *burst_done.borrow_and_update() {
            return false;
        }
        // A poll of an in-memory counter, 10 ms apart: the fault strikes within 10 ms of
        // the reply that reached the count.
        let _ = tokio::time::timeout(Duration::from_millis(10), burst_done.changed()).await;
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
    /// Requests sent inside the window (until the run's last one, if it never healed).
    #[serde(default)]
    pub requests: usize,
    /// Their 99th-percentile service time (those that got a reply).
    #[serde(default)]
    pub p99_ms: Option<f64>,
}

/// Pairs each injection with the healing that follows it, relative to `first_us`, with the
/// requests sent in between.
pub fn windows(lines: &[FaultLine], records: &[HistoryRecord], first_us: i64) -> Vec<FaultWindow> {
    let mut windows = pair(lines, first_us);
    for window in &mut windows {
        let from_us = first_us + (window.from_ms * 1000.0) as i64;
        let to_us = window
            .to_ms
            .map_or(i64::MAX, |to| first_us + (to * 1000.0) as i64);
        let inside: Vec<&HistoryRecord> = records
            .iter()
            .filter(|r| (from_us..=to_us).contains(&r.sent_at_us))
            .collect();
        let mut service: Vec<u64> = inside.iter().filter_map(|r| r.response_us).collect();
        service.sort_unstable();
        window.requests = inside.len();
        window.p99_ms = (!service.is_empty()).then(|| {
            let rank = (service.len() * 99).div_ceil(100).max(1) - 1;
            service[rank] as f64 / 1000.0
        });
    }
    windows
}

fn pair(lines: &[FaultLine], first_us: i64) -> Vec<FaultWindow> {
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
                requests: 0,
                p99_ms: None,
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

/// A fault line for tests: `fault` in `phase` at `at_us`.
#[cfg(test)]
pub(crate) fn test_line(fault: &str, phase: FaultPhase, at_us: i64) -> FaultLine {
    FaultLine {
        fault: fault.into(),
        phase,
        run_id: "r".into(),
        at_us,
        target: "t".into(),
        action: "a".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::{test_line as line, *};

    #[test]
    fn each_injection_pairs_with_its_own_healing() {
        let lines = [
            line("db-lock", FaultPhase::Inject, 2_000),
            line("poison", FaultPhase::Inject, 3_000),
            line("db-lock", FaultPhase::Heal, 9_000),
        ];
        let windows = windows(&lines, &[], 1_000);
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
    fn a_window_counts_the_requests_sent_inside_it_and_their_p99() {
        let lines = [
            line("kafka-pause", FaultPhase::Inject, 10_000),
            line("kafka-pause", FaultPhase::Heal, 20_000),
        ];
        let record = |sent_at_us: i64, response_us: Option<u64>| HistoryRecord {
            run_id: "r".into(),
            campaign_id: "c".into(),
            user_id: 1,
            request_id: 1,
            intended_at_us: sent_at_us,
            sent_at_us,
            response_us,
            status: None,
            result: coupon_domain::history::ResultClass::Pending,
            seq: None,
        };
        let mut records = vec![record(5_000, Some(1_000)), record(25_000, Some(1_000))];
        records.extend((0..100).map(|i| record(10_000 + i * 10, Some(2_000 + i as u64 * 1_000))));
        records.push(record(20_000, None));
        let inside = windows(&lines, &records, 0);
        assert_eq!(inside[0].requests, 101, "the 100 inside, and the timeout");
        assert_eq!(
            inside[0].p99_ms,
            Some(100.0),
            "the 99th of 100 replies: 2 + 98 ms"
        );
        let outside = windows(&lines, &records[..2], 0);
        assert_eq!((outside[0].requests, outside[0].p99_ms), (0, None));
    }

    #[test]
    fn clock_skew_opens_the_window_halfway_into_the_users_beyond_the_limit() {
        let skew: Vec<FaultSpec> = vec!["clock-skew".parse().expect("parses")];
        // 300 users at 10 a second, limit 100: user 100 arrives 10 s in.
        let arrivals = crate::arrivals::Arrivals::Even {
            interval_us: 100_000.0,
        };
        let before = time::OffsetDateTime::now_utc();
        let opening = opening(&skew, &arrivals, 300, 100).expect("a window");
        assert_eq!(opening.into_burst, Duration::from_secs(10));
        let lead = opening.at - before - opening.into_burst;
        assert!(
            lead >= OPENING_LEAD && lead < OPENING_LEAD + Duration::from_secs(1),
            "{lead}"
        );
        let at: Vec<FaultSpec> = vec!["clock-skew@2s".parse().expect("parses")];
        let given = super::opening(&at, &arrivals, 300, 100).expect("a window");
        assert_eq!(given.into_burst, Duration::from_secs(2));
        // No surplus: the window opens at the first arrival.
        assert_eq!(
            super::opening(&skew, &arrivals, 50, 100).map(|o| o.into_burst),
            Some(Duration::ZERO)
        );
        let other: Vec<FaultSpec> = vec!["db-lock".parse().expect("parses")];
        assert_eq!(super::opening(&other, &arrivals, 300, 100), None);
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
