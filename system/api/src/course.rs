//! The original course's stages, one function each, flaws included (docs/stages.md). A campaign
//! created with a course strategy is served here instead of by the gate and the publisher.
//!
//! What the stages share (the counter, the fire-and-forget send, the course's tables) is written
//! once below; each stage function is the course's `apply(userId)`, step for step. None of them
//! is safe: that is what they are for. Each answers the way the course's caller would learn it:
//! `issued` once the stage's last step returned, whatever happens afterwards.

use coupon_domain::{Campaign, CampaignId, CourseEvent, CourseKeys, Seq, Strategy, UserId};
use coupon_store::course;
use rdkafka::producer::{FutureProducer, FutureRecord};
use redis::{AsyncCommands, aio::ConnectionManager};
use sqlx::MySqlPool;

use crate::{error::ApiError, routes::apply::ApplyReply};

/// What the stages need: Redis (the gate's connection), MySQL, and a plain Kafka producer.
#[derive(Clone)]
pub struct Course {
    redis: ConnectionManager,
    pool: MySqlPool,
    producer: FutureProducer,
    topic: String,
    prefix: String,
}

impl std::fmt::Debug for Course {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Course")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl Course {
    pub fn new(
        redis: ConnectionManager,
        pool: MySqlPool,
        brokers: &str,
        topic: &str,
        prefix: &str,
    ) -> Result<Self, rdkafka::error::KafkaError> {
        Ok(Self {
            redis,
            pool,
            producer: coupon_kafka::course_producer_config(brokers).create()?,
            topic: topic.to_owned(),
            prefix: prefix.to_owned(),
        })
    }

    /// One apply, by the campaign's stage.
    pub async fn apply(&self, campaign: &Campaign, user: UserId) -> Result<ApplyReply, ApiError> {
        match campaign.strategy {
            Strategy::Naive => self.naive(campaign, user).await,
            Strategy::RedisCounter => self.redis_counter(campaign, user).await,
            Strategy::Kafka => self.kafka(campaign, user).await,
            Strategy::PerUser => self.per_user(campaign, user).await,
            Strategy::Reliable => Err(ApiError::Internal(anyhow::anyhow!(
                "campaign {} uses the reliable pipeline, not a course stage",
                campaign.id
            ))),
        }
    }

    /// Stage 1. Two requests can both count 99 and both insert: a race with no bound. And the
    /// course's check is `count > limit`, so even one request at a time gets limit + 1.
    async fn naive(&self, campaign: &Campaign, user: UserId) -> Result<ApplyReply, ApiError> {
        let count = course::count_coupons(&self.pool, &campaign.id)
            .await
            .map_err(|e| ApiError::unavailable("mysql", e))?;
        if count > u64::from(campaign.limit.get()) {
            return Ok(ApplyReply::SoldOut);
        }
        self.insert(campaign, user).await?;
        Ok(issued(campaign, user, count + 1))
    }

    /// Stage 2. The count is right, but every winner costs a synchronous insert, and one user
    /// can win again and again.
    async fn redis_counter(
        &self,
        campaign: &Campaign,
        user: UserId,
    ) -> Result<ApplyReply, ApiError> {
        let Some(n) = self.take_count(campaign).await? else {
            return Ok(ApplyReply::SoldOut);
        };
        self.insert(campaign, user).await?;
        Ok(issued(campaign, user, n))
    }

    /// Stage 3. The insert moves to a consumer; the send is fire-and-forget, so the user hears
    /// `issued` before the broker has the event, and a failed send is never seen.
    async fn kafka(&self, campaign: &Campaign, user: UserId) -> Result<ApplyReply, ApiError> {
        let Some(n) = self.take_count(campaign).await? else {
            return Ok(ApplyReply::SoldOut);
        };
        self.send(campaign, user)?;
        Ok(issued(campaign, user, n))
    }

    /// Stages 4 and 5, the course's final design: the user is added to a set first, so a second
    /// apply is refused. Three separate steps: a failure between them burns the slot.
    async fn per_user(&self, campaign: &Campaign, user: UserId) -> Result<ApplyReply, ApiError> {
        let keys = self.keys(&campaign.id);
        let mut redis = self.redis.clone();
        let added: u64 = redis
            .sadd(&keys.applied_user, user.get())
            .await
            .map_err(|e| ApiError::unavailable("redis", e))?;
        if added != 1 {
            return Ok(ApplyReply::AlreadyApplied);
        }
        let Some(n) = self.take_count(campaign).await? else {
            return Ok(ApplyReply::SoldOut);
        };
        self.send(campaign, user)?;
        Ok(issued(campaign, user, n))
    }

    fn keys(&self, campaign: &CampaignId) -> CourseKeys {
        CourseKeys::new(&self.prefix, campaign)
    }

    /// `INCR coupon_count`; `None` when the new count is beyond the limit.
    async fn take_count(&self, campaign: &Campaign) -> Result<Option<u64>, ApiError> {
        let mut redis = self.redis.clone();
        let n: u64 = redis
            .incr(&self.keys(&campaign.id).coupon_count, 1)
            .await
            .map_err(|e| ApiError::unavailable("redis", e))?;
        Ok((n <= u64::from(campaign.limit.get())).then_some(n))
    }

    async fn insert(&self, campaign: &Campaign, user: UserId) -> Result<(), ApiError> {
        course::insert_coupon(&self.pool, &campaign.id, user)
            .await
            .map_err(|e| ApiError::unavailable("mysql", e))
    }

    /// `kafkaTemplate.send(topic, userId)`: queued and forgotten. Only a failure to queue it at
    /// all is seen; a delivery that fails later is lost without a trace.
    fn send(&self, campaign: &Campaign, user: UserId) -> Result<(), ApiError> {
        let payload = CourseEvent {
            campaign_id: campaign.id.clone(),
            user_id: user,
        }
        .to_json();
        let record: FutureRecord<'_, (), [u8]> = FutureRecord::to(&self.topic).payload(&payload);
        self.producer
            .send_result(record)
            .map(drop)
            .map_err(|(error, _)| ApiError::unavailable("kafka", error))
    }

    /// Counts for `GET /campaigns/{id}`: (issued, persisted, failed events). "Issued" is what the
    /// stage handed out: the counter (capped at the limit), or for the naive stage its rows.
    pub async fn stats(&self, campaign: &Campaign) -> Result<(u64, u64, u64), ApiError> {
        let unavailable = |e| ApiError::unavailable("mysql", e);
        let persisted = course::count_coupons(&self.pool, &campaign.id)
            .await
            .map_err(unavailable)?;
        let failed = course::count_failed_events(&self.pool, &campaign.id)
            .await
            .map_err(unavailable)?;
        let issued = if campaign.strategy == Strategy::Naive {
            persisted
        } else {
            let mut redis = self.redis.clone();
            let count: Option<u64> = redis
                .get(&self.keys(&campaign.id).coupon_count)
                .await
                .map_err(|e| ApiError::unavailable("redis", e))?;
            count
                .unwrap_or_default()
                .min(u64::from(campaign.limit.get()))
        };
        Ok((issued, persisted, failed))
    }

    pub async fn flush(&self, timeout: std::time::Duration) {
        let producer = self.producer.clone();
        let _ = tokio::task::spawn_blocking(move || {
            rdkafka::producer::Producer::flush(&producer, timeout)
        })
        .await;
    }
}

fn issued(campaign: &Campaign, user: UserId, n: u64) -> ApplyReply {
    ApplyReply::Issued {
        campaign_id: campaign.id.clone(),
        user_id: user,
        seq: Seq(u32::try_from(n).unwrap_or(u32::MAX)),
    }
}
