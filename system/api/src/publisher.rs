//! Publishes `CouponIssued` events with an idempotent, acks=all producer and reports whether the
//! broker acknowledged them, definitively refused them, or has not answered yet.

use std::time::Duration;

use coupon_domain::CouponIssued;
use rdkafka::{
    error::KafkaError,
    producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer},
};

/// What became of one publish, as far as the api can tell within its wait.
pub enum Published {
    Acked {
        partition: i32,
        offset: i64,
    },
    /// Definitively not written: the admission must be undone.
    Failed(KafkaError),
    /// No answer within the wait; the delivery future resolves it later, within the producer's
    /// delivery timeout.
    Pending(DeliveryFuture),
}

impl std::fmt::Debug for Published {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Acked { partition, offset } => write!(f, "Acked({partition}@{offset})"),
            Self::Failed(error) => write!(f, "Failed({error})"),
            Self::Pending(_) => f.write_str("Pending"),
        }
    }
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

    #[tracing::instrument(skip_all, fields(campaign_id = %event.campaign_id, user_id = %event.user_id, seq = event.seq.0))]
    pub async fn publish(&self, event: &CouponIssued) -> Published {
        let key = event.key();
        let payload = event.to_json();
        let record = FutureRecord::to(&self.topic).key(&key).payload(&payload);
        let mut delivery = match self.producer.send_result(record) {
            Ok(delivery) => delivery,
            // Not even queued (queue full, unknown topic): certainly not written.
            Err((error, _)) => return Published::Failed(error),
        };
        match tokio::time::timeout(self.wait, &mut delivery).await {
            Ok(Ok(Ok(delivery))) => Published::Acked {
                partition: delivery.partition,
                offset: delivery.offset,
            },
            Ok(Ok(Err((error, _)))) => Published::Failed(error),
            // The producer went away with the message in flight: nobody knows. Leaving the
            // slot held can under-issue, never over-issue, and the verifier reports it.
            Ok(Err(_canceled)) => Published::Pending(delivery),
            Err(_elapsed) => Published::Pending(delivery),
        }
    }

    /// Waits for every queued event to be acknowledged or failed (graceful shutdown).
    pub async fn flush(&self, timeout: Duration) {
        let producer = self.producer.clone();
        match tokio::task::spawn_blocking(move || producer.flush(timeout)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(error = %error, "failed to flush the producer"),
            Err(error) => tracing::warn!(error = %error, "producer flush task failed"),
        }
    }
}
