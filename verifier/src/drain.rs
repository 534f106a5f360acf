//! Waits until the pipeline drained: each consumer group involved has lag 0, and every winner
//! the gate admitted is accounted for in MySQL (a row, or a failed event). A course stage is
//! drained once its consumer caught up (its first two stages write synchronously). Reports
//! progress while waiting.

use std::time::Duration;

use coupon_domain::Strategy;
use coupon_store::Store;

use crate::{
    cli::Cli,
    collect::{kafka, mysql, redis::GateReader},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drained {
    Yes { after: Duration },
    TimedOut { lag: i64 },
}

pub async fn wait(
    cli: &Cli,
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
    let mut last_report = started;
    loop {
        let mut lag = 0;
        if !pipeline.is_empty() {
            lag += coupon_kafka::offsets::total_lag(
                &kafka::offsets(&cli.stack.kafka_brokers, &cli.stack.topic, &cli.stack.group)
                    .await?,
            );
        }
        if course_kafka {
            lag += coupon_kafka::offsets::total_lag(
                &kafka::offsets(
                    &cli.stack.kafka_brokers,
                    &cli.stack.course_topic,
                    &cli.stack.course_group,
                )
                .await?,
            );
        }
        let mut unaccounted = 0u64;
        for campaign in &pipeline {
            let winners = gate.winner_count(campaign).await?;
            let (rows, open_failures) = mysql::written(store, campaign).await?;
            unaccounted += winners.saturating_sub(rows + open_failures);
        }
        if lag == 0 && unaccounted == 0 {
            return Ok(Drained::Yes {
                after: started.elapsed(),
            });
        }
        if started.elapsed() >= timeout {
            return Ok(Drained::TimedOut { lag });
        }
        if last_report.elapsed() >= Duration::from_secs(2) {
            eprintln!(
                "draining: consumer lag {lag}, {unaccounted} admitted winners not yet written ({:.0}s)",
                started.elapsed().as_secs_f64()
            );
            last_report = tokio::time::Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
