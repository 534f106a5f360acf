//! Coupon rows: written idempotently by the consumer, counted by the api, read by the verifier.
//!
//! A duplicate-key error means "already written" only when the row on file is the same coupon
//! (same user, same slot). Anything else the database refuses is captured as a failed event
//! with its reason. Nothing is ignored: there is no `INSERT IGNORE` here.

use coupon_domain::{CampaignId, CouponIssued, CouponLimit, fence::Standing};
use mysql_async::{Transaction, Value, prelude::Queryable};

use crate::{
    Store, StoreError,
    failed_events::{self, CapturedPayload, FailureReason, NewFailedEvent},
    fences, to_utc_datetime,
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
        reason: FailureReason,
    },
}

/// One coupon row, as the verifier and the api read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CouponRow {
    pub campaign_id: String,
    pub user_id: u64,
    pub seq: u32,
    pub kafka_partition: i32,
    pub kafka_offset: i64,
}

/// How a refused insert looks for the coupon on file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFileRead {
    /// `LOCK IN SHARE MODE`: reads the latest committed row, so a row another consumer
    /// committed during a rebalance is recognised as this same coupon.
    Locking,
    /// A plain read from the transaction's snapshot, which can predate that row and miss it:
    /// a redelivered coupon is then captured as a failed event. For the control test only.
    Snapshot,
}

/// Writes a batch of coupons, and captures the events in `failures`, in one transaction.
/// The caller stores the Kafka offsets only after this returns `Ok`: the transaction committed.
pub async fn write_batch(
    store: &Store,
    coupons: &[CouponToWrite],
    failures: &[NewFailedEvent],
) -> Result<Vec<WriteOutcome>, StoreError> {
    write_batch_reading(
        store,
        coupons,
        failures,
        OnFileRead::Locking,
        Fences::Enforced,
    )
    .await
}

/// Whether a batch applies the gate's fences.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fences {
    /// Events a rebuild superseded or the reconciler revoked are settled as failed events.
    Enforced,
    /// Every event is written if the database takes it. For the control test only.
    Ignored,
}

/// [`write_batch`], with the read of a refused coupon's row on file and the fences chosen: the
/// control tests alone pass [`OnFileRead::Snapshot`] or [`Fences::Ignored`].
#[tracing::instrument(skip_all, fields(coupons = coupons.len(), failures = failures.len()))]
pub async fn write_batch_reading(
    store: &Store,
    coupons: &[CouponToWrite],
    failures: &[NewFailedEvent],
    read: OnFileRead,
    check: Fences,
) -> Result<Vec<WriteOutcome>, StoreError> {
    let mut conn = store.conn().await?;
    let mut tx = conn.start_transaction(crate::serializing_tx()).await?;
    // Events the gate took back are settled as failed events; the rest are written.
    let standings = match check {
        Fences::Enforced => fences::screen(&mut tx, coupons).await?,
        Fences::Ignored => vec![Standing::Counts; coupons.len()],
    };
    let mut outcomes: Vec<Option<WriteOutcome>> = vec![None; coupons.len()];
    let mut writable = Vec::with_capacity(coupons.len());
    for ((coupon, standing), outcome) in coupons.iter().zip(&standings).zip(&mut outcomes) {
        let (reason, detail) = match *standing {
            Standing::Counts => {
                writable.push(coupon);
                continue;
            }
            Standing::FencePending { epoch } => {
                return Err(StoreError::fence_pending(&coupon.event.campaign_id, epoch));
            }
            Standing::Superseded { epoch } => (
                FailureReason::Superseded,
                format!(
                    "admitted in epoch {}, past what the gate rebuild of epoch {epoch} read",
                    coupon.event.epoch
                ),
            ),
            Standing::Revoked { below_epoch } => (
                FailureReason::Revoked,
                format!(
                    "admitted in epoch {}; the reconciler took slot {} back below epoch {below_epoch}",
                    coupon.event.epoch, coupon.event.seq.0
                ),
            ),
        };
        failed_events::insert(&mut tx, &captured(coupon, reason, detail)).await?;
        *outcome = Some(WriteOutcome::Refused { reason });
    }
    if !writable.is_empty() {
        let written = match insert_all(&mut tx, &writable).await {
            Ok(()) => vec![WriteOutcome::Written; writable.len()],
            // The failed statement was rolled back alone; the transaction goes on row by row to
            // tell redeliveries from real conflicts.
            Err(e) if refusal_reason(&e).is_some() => {
                let mut written = Vec::with_capacity(writable.len());
                for coupon in &writable {
                    written.push(write_one(&mut tx, coupon, read).await?);
                }
                written
            }
            Err(e) => return Err(e),
        };
        let mut written = written.into_iter();
        for outcome in outcomes.iter_mut().filter(|o| o.is_none()) {
            *outcome = written.next();
        }
    }
    for failure in failures {
        failed_events::insert(&mut tx, failure).await?;
    }
    tx.commit().await?;
    Ok(outcomes.into_iter().flatten().collect())
}

/// A coupon captured as a failed event, with its whole identity.
fn captured(coupon: &CouponToWrite, reason: FailureReason, detail: String) -> NewFailedEvent {
    let event = &coupon.event;
    NewFailedEvent {
        partition: coupon.source.partition,
        offset: coupon.source.offset,
        payload: CapturedPayload::of(&coupon.payload, failed_events::PAYLOAD_KEPT),
        campaign_id: Some(event.campaign_id.to_string()),
        user_id: Some(event.user_id.get()),
        reason,
        detail,
    }
}

async fn insert_all(
    tx: &mut Transaction<'_>,
    coupons: &[&CouponToWrite],
) -> Result<(), StoreError> {
    let rows = vec!["(?, ?, ?, ?, ?, ?, ?)"; coupons.len()].join(", ");
    let mut params: Vec<Value> = Vec::with_capacity(coupons.len() * 7);
    for coupon in coupons {
        params.extend([
            coupon.event.campaign_id.as_str().into(),
            coupon.event.user_id.get().into(),
            coupon.event.seq.0.into(),
            coupon.limit.get().into(),
            to_utc_datetime(issued_at(&coupon.event)).into(),
            coupon.source.partition.into(),
            coupon.source.offset.into(),
        ]);
    }
    tx.exec_drop(
        format!(
            "INSERT INTO coupon (campaign_id, user_id, seq, campaign_limit, issued_at, kafka_partition, kafka_offset) \
             VALUES {rows}"
        ),
        params,
    )
    .await?;
    Ok(())
}

async fn write_one(
    tx: &mut Transaction<'_>,
    coupon: &CouponToWrite,
    read: OnFileRead,
) -> Result<WriteOutcome, StoreError> {
    let error = match insert_all(tx, &[coupon]).await {
        Ok(()) => return Ok(WriteOutcome::Written),
        Err(error) => error,
    };
    let Some(refusal) = refusal_reason(&error) else {
        return Err(error);
    };
    let event = &coupon.event;
    let statement = match read {
        OnFileRead::Locking => {
            "SELECT seq FROM coupon WHERE campaign_id = ? AND user_id = ? LOCK IN SHARE MODE"
        }
        OnFileRead::Snapshot => "SELECT seq FROM coupon WHERE campaign_id = ? AND user_id = ?",
    };
    let on_file: Option<u32> = tx
        .exec_first(statement, (event.campaign_id.as_str(), event.user_id.get()))
        .await?;
    let reason = match on_file {
        Some(seq) if seq == event.seq.0 => return Ok(WriteOutcome::AlreadyWritten),
        Some(_) => FailureReason::UserHasAnotherSlot,
        None => refusal,
    };
    failed_events::insert(tx, &captured(coupon, reason, server_message(&error))).await?;
    Ok(WriteOutcome::Refused { reason })
}

/// The server's own words for a refusal (e.g. which key was duplicated).
fn server_message(error: &StoreError) -> String {
    match error {
        StoreError::Query(mysql_async::Error::Server(e)) => e.message.clone(),
        other => other.to_string(),
    }
}

fn issued_at(event: &CouponIssued) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(event.issued_at_ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

/// The database refused the data itself (a constraint), as opposed to failing to run: why.
fn refusal_reason(error: &StoreError) -> Option<FailureReason> {
    if error.is_unique_violation() {
        Some(FailureReason::SlotTaken)
    } else if error.is_foreign_key_violation() {
        Some(FailureReason::UnknownCampaign)
    } else if error.is_check_violation() {
        Some(FailureReason::SeqOutOfRange)
    } else {
        None
    }
}

pub async fn count(store: &Store, campaign: &CampaignId) -> Result<u64, StoreError> {
    store
        .count(
            "SELECT COUNT(*) FROM coupon WHERE campaign_id = ?",
            (campaign.as_str(),),
        )
        .await
}

/// Every row of the campaign, by slot.
pub async fn list(store: &Store, campaign: &CampaignId) -> Result<Vec<CouponRow>, StoreError> {
    let rows: Vec<(String, u64, u32, i32, i64)> = store
        .all(
            "SELECT campaign_id, user_id, seq, kafka_partition, kafka_offset \
             FROM coupon WHERE campaign_id = ? ORDER BY seq",
            (campaign.as_str(),),
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(
            |(campaign_id, user_id, seq, kafka_partition, kafka_offset)| CouponRow {
                campaign_id,
                user_id,
                seq,
                kafka_partition,
                kafka_offset,
            },
        )
        .collect())
}
