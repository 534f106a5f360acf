//! The course's consumer (docs/stages.md), for campaigns run as the course's Kafka stages:
//! one message at a time, one plain insert. A message counts as consumed once the listener
//! returned, whatever happened, and offsets are committed every 5 s (as Spring Kafka's
//! listener container commits after the listener), so a crash redelivers, and re-inserts,
//! everything since the last commit.
//!
//! What a failed insert leads to is the stage's own difference:
//! - `kafka` (stage 3, a listener with no `catch`): logged, and the message is skipped.
//! - `per-user` (stage 5): a `course_failed_event` row that nothing ever retries; if saving
//!   that fails too, it is only logged.

use std::{future::Future, sync::Arc, time::Duration};

use coupon_domain::Strategy;
use coupon_kafka::course::CourseEvent;
use coupon_store::{Store, course};
use rdkafka::{Message, consumer::Consumer as _};

use crate::{
    configuration::Settings,
    consume::{self, CampaignCache},
    fault::CrashAfter,
    metrics::Metrics,
};

pub async fn run(
    settings: &Settings,
    store: Store,
    metrics: Arc<Metrics>,
    crash: Arc<CrashAfter>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let consumer = consume::subscribe(
        coupon_kafka::course::consumer_config(
            &settings.stack.kafka_brokers,
            &settings.stack.course_group,
        ),
        &settings.stack.kafka_brokers,
        &settings.stack.course_topic,
    )?;
    let mut campaigns = CampaignCache::default();
    let mut refresh = tokio::time::interval(Duration::from_millis(200));
    tokio::pin!(shutdown);
    tracing::info!(topic = %settings.stack.course_topic, group = %settings.stack.course_group, "course consumer running");
    loop {
        let received = tokio::select! {
            () = &mut shutdown => break,
            _ = refresh.tick() => {
                metrics.set_assigned("course", &consumer);
                continue;
            }
            received = consumer.recv() => received,
        };
        match received {
            Ok(message) => {
                let payload = message.payload().unwrap_or_default();
                listener(&store, &metrics, &crash, &mut campaigns, payload).await;
                if let Err(error) = consumer.store_offset_from_message(&message) {
                    tracing::warn!(error = %coupon_runtime::chain(&error), "course consumer: failed to store an offset");
                }
            }
            Err(error) => {
                tracing::warn!(error = %coupon_runtime::chain(&error), "course consumer: kafka error; continuing");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    tracing::info!("course consumer stopped");
    Ok(())
}

/// The course's `@KafkaListener`: save the coupon; what a failure leads to depends on the stage.
async fn listener(
    store: &Store,
    metrics: &Metrics,
    crash: &CrashAfter,
    campaigns: &mut CampaignCache,
    payload: &[u8],
) {
    let event = match CourseEvent::from_json(payload) {
        Ok(event) => event,
        Err(error) => {
            tracing::error!(error = %coupon_runtime::chain(&error), "course consumer: malformed message skipped");
            return;
        }
    };
    let error = match course::insert_coupon(store, &event.campaign_id, event.user_id).await {
        Ok(()) => {
            metrics.course_rows_written.inc();
            crash.wrote(1);
            return;
        }
        Err(error) => error,
    };
    tracing::error!(user_id = %event.user_id, error = %coupon_runtime::chain(&error), "failed to create coupon");
    // An unknown or unreadable campaign is treated as the course's final stage.
    let strategy = match campaigns.get(store, &event.campaign_id).await {
        Ok(Some(campaign)) => campaign.strategy,
        Ok(None) | Err(_) => Strategy::PerUser,
    };
    if strategy != Strategy::PerUser {
        metrics.course_dropped.inc();
        return;
    }
    match course::insert_failed_event(store, &event.campaign_id, event.user_id).await {
        Ok(()) => {
            metrics.course_failed_events.inc();
        }
        Err(error) => {
            metrics.course_dropped.inc();
            tracing::error!(user_id = %event.user_id, error = %coupon_runtime::chain(&error), "failed to save the failed event; the coupon is gone");
        }
    }
}
