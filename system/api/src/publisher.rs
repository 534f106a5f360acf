//! Publishes `CouponIssued` events with an idempotent, acks=all producer, and tells apart what
//! the broker acknowledged, what was certainly not written, and what is in doubt.
//!
//! In doubt means the event may be on the broker: a delivery timeout or a lost connection after
//! the send. Such an admission must never be undone (the event could still become a coupon
//! while its slot went to someone else). Instead the same event is published again until the
//! broker acknowledges it: a duplicate is harmless, because the consumer's write is idempotent.

use std::time::Duration;

use coupon_domain::CouponIssued;
use rdkafka::{
    error::KafkaError,
    producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer},
    types::RDKafkaErrorCode,
};

/// What became of one publish, as far as the api can tell within its wait.
pub enum Published {
    Acked {
        partition: i32,
        offset: i64,
    },
    /// Certainly not written: the admission must be undone.
    Refused(KafkaError),
    /// May or may not be written: still waiting for the broker (`Some`), or failed in a way
    /// that does not rule out that it was written (`None`).
    InDoubt(Option<DeliveryFuture>),
}

impl std::fmt::Debug for Published {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Acked { partition, offset } => write!(f, "Acked({partition}@{offset})"),
            Self::Refused(error) => write!(f, "Refused({error})"),
            Self::InDoubt(_) => f.write_str("InDoubt"),
        }
    }
}

/// Errors for which the broker (or librdkafka, before sending) certainly did not append the
/// event. Everything else, timeouts and transport errors above all, is in doubt.
pub fn certainly_not_written(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::InvalidMessageSize
                | RDKafkaErrorCode::InvalidMessage
                | RDKafkaErrorCode::InvalidRecord
                | RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::ClusterAuthorizationFailed
                | RDKafkaErrorCode::InvalidRequiredAcks
                | RDKafkaErrorCode::PolicyViolation
                | RDKafkaErrorCode::QueueFull
                | RDKafkaErrorCode::UnknownTopic
        )
    )
}

#[derive(Clone)]
pub struct Publisher {
    producer: FutureProducer,
    topic: String,
    wait: Duration,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl Publisher {
    pub fn new(
        brokers: &str,
        topic: &str,
        wait: Duration,
        delivery_timeout: Duration,
    ) -> Result<Self, KafkaError> {
        let producer = coupon_kafka::producer_config(brokers, delivery_timeout).create()?;
        Ok(Self {
            producer,
            topic: topic.to_owned(),
            wait,
        })
    }

    /// Connects to the brokers and learns the topic's partition leaders before the first
    /// publish, so a burst's first winners do not wait for both (what a cold start cost them).
    pub async fn warm_up(&self, timeout: Duration) -> Result<(), KafkaError> {
        let producer = self.producer.clone();
        let topic = self.topic.clone();
        tokio::task::spawn_blocking(move || {
            producer
                .client()
                .fetch_metadata(Some(&topic), timeout)
                .map(drop)
        })
        .await
        .unwrap_or(Err(KafkaError::Canceled))
    }

    fn send(&self, event: &CouponIssued) -> Result<DeliveryFuture, KafkaError> {
        let key = event.key();
        let payload = event.to_json();
        let record = FutureRecord::to(&self.topic).key(&key).payload(&payload);
        // An error here means the event never left the process.
        self.producer
            .send_result(record)
            .map_err(|(error, _)| error)
    }

    #[tracing::instrument(skip_all, fields(campaign_id = %event.campaign_id, user_id = %event.user_id, seq = event.seq.0))]
    pub async fn publish(&self, event: &CouponIssued) -> Published {
        let mut delivery = match self.send(event) {
            Ok(delivery) => delivery,
            Err(error) => return Published::Refused(error),
        };
        match tokio::time::timeout(self.wait, &mut delivery).await {
            Ok(Ok(Ok(delivery))) => Published::Acked {
                partition: delivery.partition,
                offset: delivery.offset,
            },
            Ok(Ok(Err((error, _)))) if certainly_not_written(&error) => Published::Refused(error),
            Ok(Ok(Err((error, _)))) => {
                tracing::warn!(error = %coupon_runtime::chain(&error), "publish in doubt");
                Published::InDoubt(None)
            }
            Ok(Err(_canceled)) => Published::InDoubt(None),
            Err(_elapsed) => Published::InDoubt(Some(delivery)),
        }
    }

    /// Publishes the event and waits for the broker's answer, however long librdkafka takes
    /// (bounded by the delivery timeout). For republishing an admission in doubt.
    pub async fn send_and_wait(&self, event: &CouponIssued) -> Result<(), KafkaError> {
        match self.send(event)?.await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err((error, _))) => Err(error),
            Err(_canceled) => Err(KafkaError::Canceled),
        }
    }

    /// Waits for every queued event to be acknowledged or failed (graceful shutdown).
    pub async fn flush(&self, timeout: Duration) {
        let producer = self.producer.clone();
        match tokio::task::spawn_blocking(move || producer.flush(timeout)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::warn!(error = %coupon_runtime::chain(&error), "failed to flush the producer")
            }
            Err(error) => {
                tracing::warn!(error = %coupon_runtime::chain(&error), "producer flush task failed")
            }
        }
    }
}
