//! The course's consumer (docs/stages.md), for campaigns run as the course's Kafka stages:
//! one message at a time, one plain insert, offsets left to the client library's defaults
//! (stored when a message is handed over, committed every 5 s). An insert that fails is
//! recorded in `course_failed_event` and never retried; if that fails too, it is only logged.

use std::{future::Future, sync::Arc, time::Duration};

use anyhow::Context;
use coupon_domain::CourseEvent;
use coupon_store::course;
use rdkafka::{Message, consumer::Consumer as _, consumer::StreamConsumer};
use sqlx::MySqlPool;

use crate::{configuration::Settings, fault::CrashAfter, metrics::Metrics};

pub async fn run(
    settings: &Settings,
    pool: MySqlPool,
    metrics: Arc<Metrics>,
    crash: Arc<CrashAfter>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let consumer: StreamConsumer =
        coupon_kafka::course_consumer_config(&settings.kafka_brokers, &settings.course_group)
            .create()
            .with_context(|| {
                format!(
                    "failed to create the course's kafka consumer for {}",
                    settings.kafka_brokers
                )
            })?;
    consumer
        .subscribe(&[&settings.course_topic])
        .with_context(|| format!("failed to subscribe to topic {}", settings.course_topic))?;
    tokio::pin!(shutdown);
    tracing::info!(topic = %settings.course_topic, group = %settings.course_group, "course consumer running");
    loop {
        let received = tokio::select! {
            () = &mut shutdown => break,
            received = consumer.recv() => received,
        };
        match received {
            Ok(message) => {
                listener(
                    &pool,
                    &metrics,
                    &crash,
                    message.payload().unwrap_or_default(),
                )
                .await;
            }
            Err(error) => {
                tracing::warn!(error = %error, "course consumer: kafka error; continuing");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    tracing::info!("course consumer stopped");
    Ok(())
}

/// The course's `@KafkaListener`: save the coupon; on any error save a `FailedEvent` instead.
async fn listener(pool: &MySqlPool, metrics: &Metrics, crash: &CrashAfter, payload: &[u8]) {
    let event = match CourseEvent::from_json(payload) {
        Ok(event) => event,
        Err(error) => {
            tracing::error!(error = %error, "course consumer: malformed message skipped");
            return;
        }
    };
    match course::insert_coupon(pool, &event.campaign_id, event.user_id).await {
        Ok(()) => {
            metrics.course_rows_written.inc();
            crash.wrote(1);
        }
        Err(error) => {
            tracing::error!(user_id = %event.user_id, error = %error, "failed to create coupon");
            match course::insert_failed_event(pool, &event.campaign_id, event.user_id).await {
                Ok(()) => {
                    metrics.course_failed_events.inc();
                }
                Err(error) => {
                    metrics.course_dropped.inc();
                    tracing::error!(user_id = %event.user_id, error = %error, "failed to save the failed event; the coupon is gone");
                }
            }
        }
    }
}
