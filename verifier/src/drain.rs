//! Waits until the pipeline drained: each consumer group involved has lag 0, and every winner
//! the gate admitted is accounted for in MySQL (a row, or a failed event). A course stage is
//! drained once its consumer caught up (its first two stages write synchronously). Reports
//! progress while waiting.

use std::time::Duration;

use coupon_domain::Strategy;
use coupon_store::Store;

use coupon_runtime::{
    backoff::{PollError, poll_until},
    stack::StackArgs,
};

use crate::collect::{kafka, mysql, redis::GateReader};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drained {
    Yes { after: Duration },
    TimedOut { lag: i64 },
}

pub async fn wait(
    stack: &StackArgs,
    store: &Store,
    gate: &GateReader,
    campaigns: &[(String, Strategy)],
    timeout: Duration,
) -> anyhow::Result<Drained> {
    let pipeline: Vec<&String> = campaigns
        .iter()
        .filter(|(_, s)| s.has_gate())
        .map(|(c, _)| c)
        .collect();
    let course_kafka = campaigns
        .iter()
        .any(|(_, s)| !s.has_gate() && s.uses_kafka());
    let started = tokio::time::Instant::now();
    // The last lag seen, for a time-out's report, and when progress was last printed.
    let progress = std::sync::Mutex::new((0i64, started));
    let drained = poll_until(
        "the pipeline to drain",
        timeout,
        Duration::from_millis(200),
        || async {
            let (lag, unaccounted) = backlog(stack, store, gate, &pipeline, course_kafka).await?;
            let mut progress = progress
                .lock()
                .map_err(|_| anyhow::anyhow!("drain progress lock poisoned"))?;
            progress.0 = lag;
            if lag == 0 && unaccounted == 0 {
                return Ok(Some(()));
            }
            if progress.1.elapsed() >= Duration::from_secs(2) {
                eprintln!(
                    "draining: consumer lag {lag}, {unaccounted} admitted winners not yet written ({:.0}s)",
                    started.elapsed().as_secs_f64()
                );
                progress.1 = tokio::time::Instant::now();
            }
            Ok(None)
        },
    )
    .await;
    match drained {
        Ok(()) => Ok(Drained::Yes {
            after: started.elapsed(),
        }),
        Err(PollError::TimedOut { .. }) => Ok(Drained::TimedOut {
            lag: progress.lock().map_or(0, |progress| progress.0),
        }),
        Err(PollError::Check(error)) => Err(error),
    }
}

/// What is still in flight: the consumer groups' lag, and the admitted winners of `pipeline`'s
/// campaigns that are neither a row nor an open failed event.
async fn backlog(
    stack: &StackArgs,
    store: &Store,
    gate: &GateReader,
    pipeline: &[&String],
    course_kafka: bool,
) -> anyhow::Result<(i64, u64)> {
    let mut lag = 0;
    if !pipeline.is_empty() {
        lag += coupon_kafka::offsets::total_lag(
            &kafka::offsets(&stack.kafka_brokers, &stack.topic, &stack.group).await?,
        );
    }
    if course_kafka {
        lag += coupon_kafka::offsets::total_lag(
            &kafka::offsets(
                &stack.kafka_brokers,
                &stack.course_topic,
                &stack.course_group,
            )
            .await?,
        );
    }
    let mut unaccounted = 0u64;
    for campaign in pipeline {
        let winners = gate.winner_count(campaign).await?;
        let (rows, open_failures) = mysql::written(store, campaign).await?;
        unaccounted += winners.saturating_sub(rows + open_failures);
    }
    Ok((lag, unaccounted))
}
