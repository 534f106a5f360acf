//! Waits until the pipeline drained: the consumer group's lag is 0 and every winner the gate
//! admitted is accounted for in MySQL (a row, or a failed event). Reports progress while waiting.

use std::time::Duration;

use sqlx::MySqlPool;

use crate::collect::{kafka, mysql, redis::GateReader};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drained {
    Yes { after: Duration },
    TimedOut { lag: i64 },
}

pub async fn wait(
    brokers: &str,
    topic: &str,
    group: &str,
    pool: &MySqlPool,
    gate: &GateReader,
    campaigns: &[String],
    timeout: Duration,
) -> anyhow::Result<Drained> {
    let started = tokio::time::Instant::now();
    let mut last_report = started;
    loop {
        let lag = coupon_kafka::offsets::total_lag(&kafka::offsets(brokers, topic, group).await?);
        let mut unaccounted = 0u64;
        for campaign in campaigns {
            let winners = gate.winner_count(campaign).await?;
            let (rows, open_failures) = mysql::written(pool, campaign).await?;
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
