//! The original course's stages, one [`Issuance`] each, flaws included (docs/stages.md).
//!
//! What the stages share (the counter, the fire-and-forget send, the course's tables) is written
//! once in [`Parts`]; each stage's `apply` is the course's `apply(userId)`, step for step. None
//! of them is safe: that is what they are for. Each answers the way the course's caller would
//! learn it: `issued` once the stage's last step returned, whatever happens afterwards.

use std::sync::Arc;

use coupon_domain::{Campaign, CampaignId, Seq, UserId};
use coupon_kafka::course::CourseEvent;
use coupon_store::{Store, StoredCampaign, course};
use futures::{FutureExt, future::BoxFuture};
use rdkafka::producer::{FutureProducer, FutureRecord};
use redis::{AsyncCommands, aio::ConnectionManager};

use super::{Counts, Issuance, IssuanceError, Outcome};

/// The Redis keys of a course stage, per campaign: the course's `coupon_count` and
/// `applied_user`, under the deployment's prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CourseKeys {
    pub coupon_count: String,
    pub applied_user: String,
}

impl CourseKeys {
    pub fn new(prefix: &str, campaign: &CampaignId) -> Self {
        let base = format!("{prefix}:{{{campaign}}}:course");
        Self {
            coupon_count: format!("{base}:coupon_count"),
            applied_user: format!("{base}:applied_user"),
        }
    }
}

/// What the stages need: Redis (the gate's connection), MySQL, and a plain Kafka producer.
pub struct Parts {
    redis: ConnectionManager,
    store: Store,
    producer: FutureProducer,
    topic: String,
    prefix: String,
}

impl std::fmt::Debug for Parts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parts")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

/// Stage 1. Two requests can both count 99 and both insert: a race with no bound. And the
/// course's check is `count > limit`, so even one request at a time gets limit + 1.
#[derive(Debug, Clone)]
pub struct Naive(Arc<Parts>);

/// Stage 2. The count is right, but every winner costs a synchronous insert, and one user can
/// win again and again.
#[derive(Debug, Clone)]
pub struct RedisCounter(Arc<Parts>);

/// Stage 3. The insert moves to a consumer; the send is fire-and-forget, so the user hears
/// `issued` before the broker has the event, and a failed send is never seen.
#[derive(Debug, Clone)]
pub struct KafkaSend(Arc<Parts>);

/// Stages 4 and 5, the course's final design: the user is added to a set first, so a second
/// apply is refused. Three separate steps: a failure between them burns the slot.
#[derive(Debug, Clone)]
pub struct PerUser(Arc<Parts>);

/// Every stage, sharing one set of parts.
#[derive(Debug, Clone)]
pub struct Stages {
    pub naive: Naive,
    pub redis_counter: RedisCounter,
    pub kafka: KafkaSend,
    pub per_user: PerUser,
}

impl Stages {
    pub fn new(
        redis: ConnectionManager,
        store: Store,
        brokers: &str,
        topic: &str,
        prefix: &str,
    ) -> Result<Self, rdkafka::error::KafkaError> {
        let parts = Arc::new(Parts {
            redis,
            store,
            producer: coupon_kafka::course::producer_config(brokers).create()?,
            topic: topic.to_owned(),
            prefix: prefix.to_owned(),
        });
        Ok(Self {
            naive: Naive(parts.clone()),
            redis_counter: RedisCounter(parts.clone()),
            kafka: KafkaSend(parts.clone()),
            per_user: PerUser(parts),
        })
    }

    pub async fn flush(&self, timeout: std::time::Duration) {
        let producer = self.naive.0.producer.clone();
        let _ = tokio::task::spawn_blocking(move || {
            rdkafka::producer::Producer::flush(&producer, timeout)
        })
        .await;
    }
}

impl Parts {
    fn keys(&self, campaign: &CampaignId) -> CourseKeys {
        CourseKeys::new(&self.prefix, campaign)
    }

    /// `INCR coupon_count`; `None` when the new count is beyond the limit.
    async fn take_count(&self, campaign: &Campaign) -> Result<Option<u64>, IssuanceError> {
        let mut redis = self.redis.clone();
        let n: u64 = redis.incr(&self.keys(&campaign.id).coupon_count, 1).await?;
        Ok((n <= u64::from(campaign.limit.get())).then_some(n))
    }

    async fn insert(&self, campaign: &Campaign, user: UserId) -> Result<(), IssuanceError> {
        Ok(course::insert_coupon(&self.store, &campaign.id, user).await?)
    }

    /// `kafkaTemplate.send(topic, userId)`: queued and forgotten. Only a failure to queue it at
    /// all is seen; a delivery that fails later is lost without a trace.
    fn send(&self, campaign: &Campaign, user: UserId) -> Result<(), IssuanceError> {
        let payload = CourseEvent {
            campaign_id: campaign.id.clone(),
            user_id: user,
        }
        .to_json();
        let record: FutureRecord<'_, (), [u8]> = FutureRecord::to(&self.topic).payload(&payload);
        self.producer
            .send_result(record)
            .map(drop)
            .map_err(|(error, _)| IssuanceError::Kafka(error))
    }

    /// "Issued" is what the stage handed out: the counter (capped at the limit), or for the
    /// naive stage (`rows_are_issued`) its rows. Failed events are never retried.
    async fn counts(
        &self,
        campaign: &Campaign,
        rows_are_issued: bool,
    ) -> Result<Counts, IssuanceError> {
        let persisted = course::count_coupons(&self.store, &campaign.id).await?;
        let failed_events = course::count_failed_events(&self.store, &campaign.id).await?;
        let issued = if rows_are_issued {
            persisted
        } else {
            let mut redis = self.redis.clone();
            let count: Option<u64> = redis.get(&self.keys(&campaign.id).coupon_count).await?;
            count
                .unwrap_or_default()
                .min(u64::from(campaign.limit.get()))
        };
        Ok(Counts {
            issued,
            persisted,
            failed_events,
            gate_ready: None,
        })
    }
}

fn issued(n: u64) -> Outcome {
    Outcome::Issued(Seq(u32::try_from(n).unwrap_or(u32::MAX)))
}

impl Naive {
    async fn apply(&self, campaign: &Campaign, user: UserId) -> Result<Outcome, IssuanceError> {
        let count = course::count_coupons(&self.0.store, &campaign.id).await?;
        if count > u64::from(campaign.limit.get()) {
            return Ok(Outcome::SoldOut);
        }
        self.0.insert(campaign, user).await?;
        Ok(issued(count + 1))
    }
}

impl RedisCounter {
    async fn apply(&self, campaign: &Campaign, user: UserId) -> Result<Outcome, IssuanceError> {
        let Some(n) = self.0.take_count(campaign).await? else {
            return Ok(Outcome::SoldOut);
        };
        self.0.insert(campaign, user).await?;
        Ok(issued(n))
    }
}

impl KafkaSend {
    async fn apply(&self, campaign: &Campaign, user: UserId) -> Result<Outcome, IssuanceError> {
        let Some(n) = self.0.take_count(campaign).await? else {
            return Ok(Outcome::SoldOut);
        };
        self.0.send(campaign, user)?;
        Ok(issued(n))
    }
}

impl PerUser {
    async fn apply(&self, campaign: &Campaign, user: UserId) -> Result<Outcome, IssuanceError> {
        let keys = self.0.keys(&campaign.id);
        let mut redis = self.0.redis.clone();
        let added: u64 = redis.sadd(&keys.applied_user, user.get()).await?;
        if added != 1 {
            return Ok(Outcome::AlreadyApplied);
        }
        let Some(n) = self.0.take_count(campaign).await? else {
            return Ok(Outcome::SoldOut);
        };
        self.0.send(campaign, user)?;
        Ok(issued(n))
    }
}

/// The stages share everything but `apply`: they keep their own counters, have no gate to
/// prepare, lose or rebuild.
macro_rules! course_stage {
    ($stage:ty, rows_are_issued = $rows:expr) => {
        impl Issuance for $stage {
            fn apply<'a>(
                &'a self,
                campaign: &'a Campaign,
                user: UserId,
                now: time::OffsetDateTime,
            ) -> BoxFuture<'a, Result<Outcome, IssuanceError>> {
                // The course checked its window against the server's own clock.
                if let Some(outside) = Outcome::outside_window(campaign, now) {
                    return async move { Ok(outside) }.boxed();
                }
                <$stage>::apply(self, campaign, user).boxed()
            }

            fn counts<'a>(
                &'a self,
                campaign: &'a Campaign,
            ) -> BoxFuture<'a, Result<Counts, IssuanceError>> {
                self.0.counts(campaign, $rows).boxed()
            }

            fn prepare<'a>(
                &'a self,
                _stored: &'a StoredCampaign,
            ) -> BoxFuture<'a, Result<(), IssuanceError>> {
                async { Ok(()) }.boxed()
            }

            fn rebuild_gate<'a>(
                &'a self,
                campaign: &'a Campaign,
            ) -> BoxFuture<'a, Result<(), IssuanceError>> {
                let refused = IssuanceError::NoGate {
                    campaign: campaign.id.clone(),
                    strategy: campaign.strategy,
                };
                async move { Err(refused) }.boxed()
            }
        }
    };
}

course_stage!(Naive, rows_are_issued = true);
course_stage!(RedisCounter, rows_are_issued = false);
course_stage!(KafkaSend, rows_are_issued = false);
course_stage!(PerUser, rows_are_issued = false);
