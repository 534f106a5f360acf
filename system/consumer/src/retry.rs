//! The retry worker: re-processes open failed events a retry can cure (an unknown campaign
//! created since, an unclassified refusal), backing off per event, and marks them resolved once
//! their coupon is on file. Events that still cannot be written stay open, with their attempt
//! count and last reason, for an operator and for the verifier; so do those no retry can cure
//! (see `coupon_store::FailureReason::is_retryable`), which are not retried at all.

use std::{sync::Arc, time::Duration};

use coupon_domain::CouponIssued;
use coupon_store::{CouponToWrite, Source, Store, WriteOutcome, campaigns, coupons, failed_events};

use crate::metrics::Metrics;

/// One pass over the open failed events; returns how many were resolved.
pub async fn retry_open_events(store: &Store, metrics: &Metrics) -> anyhow::Result<usize> {
    let mut resolved = 0;
    for failed in failed_events::list_open(store, 100).await? {
        let event = match CouponIssued::from_json(&failed.payload.kept) {
            Ok(event) => event,
            Err(error) => {
                failed_events::record_attempt(
                    store,
                    failed.id,
                    &format!("still malformed: {error}"),
                )
                .await?;
                continue;
            }
        };
        let Some(stored) = campaigns::find(store, &event.campaign_id).await? else {
            failed_events::record_attempt(
                store,
                failed.id,
                &format!("campaign `{}` still does not exist", event.campaign_id),
            )
            .await?;
            continue;
        };
        let coupon = CouponToWrite {
            limit: stored.campaign.limit,
            source: Source {
                partition: failed.kafka_partition,
                offset: failed.kafka_offset,
            },
            payload: failed.payload.kept.clone(),
            event,
        };
        match coupons::write_batch(store, std::slice::from_ref(&coupon), &[])
            .await?
            .first()
        {
            Some(WriteOutcome::Written) | Some(WriteOutcome::AlreadyWritten) => {
                failed_events::mark_resolved(
                    store,
                    failed.id,
                    "coupon written by the retry worker",
                )
                .await?;
                metrics.failed_events_resolved.inc();
                resolved += 1;
            }
            Some(WriteOutcome::Refused { reason }) if reason.is_settled() => {
                failed_events::mark_resolved(
                    store,
                    failed.id,
                    &format!("settled by the retry worker: {reason}"),
                )
                .await?;
            }
            Some(WriteOutcome::Refused { reason }) => {
                failed_events::record_attempt(
                    store,
                    failed.id,
                    &format!("still refused: {reason}"),
                )
                .await?;
            }
            None => {}
        }
    }
    Ok(resolved)
}

/// Runs [`retry_open_events`] every `interval` until `stop` fires.
pub async fn run(
    store: Store,
    metrics: Arc<Metrics>,
    interval: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
        match retry_open_events(&store, &metrics).await {
            Ok(0) => {}
            Ok(resolved) => tracing::info!(resolved, "failed events resolved"),
            Err(error) => tracing::warn!(
                error = %coupon_runtime::chain(&*error),
                "failed-event retry pass failed"
            ),
        }
    }
}
