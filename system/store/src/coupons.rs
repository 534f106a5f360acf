//! Coupon rows: written idempotently by the consumer, counted by the api, read by the verifier.
//!
//! A duplicate-key error means "already written" only when the row on file is the same coupon
//! (same user, same slot). Anything else the database refuses is captured as a failed event
//! with its reason. Nothing is ignored: there is no `INSERT IGNORE` here.

use coupon_domain::{CampaignId, CouponIssued, CouponLimit};
use sqlx::{MySql, MySqlPool, QueryBuilder, Transaction};

use crate::{
    StoreError,
    failed_events::{self, NewFailedEvent},
    to_utc_datetime,
};

/// Where an event came from in Kafka.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source {
    pub partition: i32,
    pub offset: i64,
}

/// An event to turn into a coupon row, with its campaign's limit (which the row must carry).
#[derive(Debug, Clone)]
pub struct CouponToWrite {
    pub event: CouponIssued,
    pub limit: CouponLimit,
    pub source: Source,
    pub payload: Vec<u8>,
}

/// What became of one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOutcome {
    Written,
    /// Redelivered: the same coupon is already on file.
    AlreadyWritten,
    /// The database refused it for good; it went to `failed_event` with this reason.
    Refused {
        reason: &'static str,
    },
}

/// One coupon row, as the verifier and the api read it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CouponRow {
    pub campaign_id: String,
    pub user_id: u64,
    pub seq: u32,
    pub kafka_partition: i32,
    pub kafka_offset: i64,
}

/// Writes a batch of coupons, and captures the events in `failures`, in one transaction.
/// The caller stores the Kafka offsets only after this returns `Ok`: the transaction committed.
#[tracing::instrument(skip_all, fields(coupons = coupons.len(), failures = failures.len()))]
pub async fn write_batch(
    pool: &MySqlPool,
    coupons: &[CouponToWrite],
    failures: &[NewFailedEvent],
) -> Result<Vec<WriteOutcome>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let outcomes = if coupons.is_empty() {
        Vec::new()
    } else {
        match insert_all(&mut tx, coupons).await {
            Ok(()) => vec![WriteOutcome::Written; coupons.len()],
            // The failed statement was rolled back alone; the transaction goes on row by row to
            // tell redeliveries from real conflicts.
            Err(e) if is_refusal(&e) => {
                let mut outcomes = Vec::with_capacity(coupons.len());
                for coupon in coupons {
                    outcomes.push(write_one(&mut tx, coupon).await?);
                }
                outcomes
            }
            Err(e) => return Err(e),
        }
    };
    for failure in failures {
        failed_events::insert(&mut tx, failure).await?;
    }
    tx.commit().await?;
    Ok(outcomes)
}

async fn insert_all(
    tx: &mut Transaction<'_, MySql>,
    coupons: &[CouponToWrite],
) -> Result<(), sqlx::Error> {
    let mut query = QueryBuilder::<MySql>::new(
        "INSERT INTO coupon (campaign_id, user_id, seq, campaign_limit, issued_at, kafka_partition, kafka_offset) ",
    );
    query.push_values(coupons, |mut row, coupon| {
        row.push_bind(coupon.event.campaign_id.as_str())
            .push_bind(coupon.event.user_id.get())
            .push_bind(coupon.event.seq.0)
            .push_bind(coupon.limit.get())
            .push_bind(to_utc_datetime(issued_at(&coupon.event)))
            .push_bind(coupon.source.partition)
            .push_bind(coupon.source.offset);
    });
    query.build().execute(&mut **tx).await?;
    Ok(())
}

async fn write_one(
    tx: &mut Transaction<'_, MySql>,
    coupon: &CouponToWrite,
) -> Result<WriteOutcome, sqlx::Error> {
    match insert_all(tx, std::slice::from_ref(coupon)).await {
        Ok(()) => Ok(WriteOutcome::Written),
        Err(e) if is_refusal(&e) => {
            let event = &coupon.event;
            let on_file: Option<(u32,)> =
                sqlx::query_as("SELECT seq FROM coupon WHERE campaign_id = ? AND user_id = ?")
                    .bind(event.campaign_id.as_str())
                    .bind(event.user_id.get())
                    .fetch_optional(&mut **tx)
                    .await?;
            let reason = match on_file {
                Some((seq,)) if seq == event.seq.0 => return Ok(WriteOutcome::AlreadyWritten),
                Some(_) => "user_has_another_slot",
                None => refusal_reason(&e),
            };
            let failure = NewFailedEvent {
                partition: coupon.source.partition,
                offset: coupon.source.offset,
                payload: coupon.payload.clone(),
                campaign_id: Some(event.campaign_id.to_string()),
                user_id: Some(event.user_id.get()),
                reason,
                detail: e.to_string(),
            };
            failed_events::insert(tx, &failure).await?;
            Ok(WriteOutcome::Refused { reason })
        }
        Err(e) => Err(e),
    }
}

fn issued_at(event: &CouponIssued) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(event.issued_at_ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

/// The database refused the data itself (a constraint), as opposed to failing to run.
fn is_refusal(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(e)
        if e.is_unique_violation() || e.is_foreign_key_violation() || e.is_check_violation())
}

fn refusal_reason(error: &sqlx::Error) -> &'static str {
    match error {
        sqlx::Error::Database(e) if e.is_unique_violation() => "slot_taken",
        sqlx::Error::Database(e) if e.is_foreign_key_violation() => "unknown_campaign",
        sqlx::Error::Database(e) if e.is_check_violation() => "seq_out_of_range",
        _ => "refused",
    }
}

pub async fn count(pool: &MySqlPool, campaign: &CampaignId) -> Result<u64, StoreError> {
    let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM coupon WHERE campaign_id = ?")
        .bind(campaign.as_str())
        .fetch_one(pool)
        .await?;
    Ok(u64::try_from(count).unwrap_or_default())
}

pub async fn list(pool: &MySqlPool, campaign: &CampaignId) -> Result<Vec<CouponRow>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT campaign_id, user_id, seq, kafka_partition, kafka_offset \
         FROM coupon WHERE campaign_id = ? ORDER BY seq",
    )
    .bind(campaign.as_str())
    .fetch_all(pool)
    .await?)
}
