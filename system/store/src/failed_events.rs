//! Events that could not become a coupon row: captured with their reason and raw payload, so the
//! partition is never blocked, and re-processed by the consumer's retry worker until resolved.

use sqlx::{MySql, MySqlPool, Transaction};

use crate::StoreError;

/// A failed event to capture.
#[derive(Debug, Clone)]
pub struct NewFailedEvent {
    pub partition: i32,
    pub offset: i64,
    pub payload: Vec<u8>,
    pub campaign_id: Option<String>,
    pub user_id: Option<u64>,
    pub reason: &'static str,
    pub detail: String,
}

/// A captured failed event, as the retry worker and the verifier read it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct FailedEvent {
    pub id: u64,
    pub kafka_partition: i32,
    pub kafka_offset: i64,
    pub payload: Vec<u8>,
    pub campaign_id: Option<String>,
    pub user_id: Option<u64>,
    pub reason: String,
    pub status: String,
    pub attempts: u32,
}

/// Captures the event once: a redelivered message finds its capture already on file.
pub async fn insert(
    tx: &mut Transaction<'_, MySql>,
    event: &NewFailedEvent,
) -> Result<(), sqlx::Error> {
    let result = sqlx::query(
        "INSERT INTO failed_event (kafka_partition, kafka_offset, payload, campaign_id, user_id, reason, detail) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(event.partition)
    .bind(event.offset)
    .bind(&event.payload)
    .bind(&event.campaign_id)
    .bind(event.user_id)
    .bind(event.reason)
    .bind(&event.detail)
    .execute(&mut **tx)
    .await;
    match result {
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(()),
        other => other.map(drop),
    }
}

const COLUMNS: &str =
    "id, kafka_partition, kafka_offset, payload, campaign_id, user_id, reason, status, attempts";

/// The reasons a retry can cure: the campaign may be created later, and an unclassified
/// refusal may pass. The others can never be written, since neither an event nor a campaign's
/// limit ever changes, and no coupon row is ever deleted: a malformed payload, a slot beyond
/// the limit (`seq_out_of_range`), a slot or a user already taken by another coupon. Those
/// stay open, for an operator and for the verifier, and are not retried.
pub const RETRYABLE_REASONS: [&str; 2] = ["unknown_campaign", "refused"];

/// Open failed events a retry can cure and that are due, least recently attempted first. Each
/// attempt bumps `updated_at` and `attempts`, and an event is due again 2^attempts seconds
/// after its last attempt (at most 5 minutes): events that keep failing rotate to the back and
/// are tried less and less often, so they cannot starve newer ones nor load the database.
pub async fn list_open(pool: &MySqlPool, limit: u32) -> Result<Vec<FailedEvent>, StoreError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM failed_event WHERE status = 'open' AND reason IN (?, ?) \
         AND updated_at <= NOW(3) - INTERVAL LEAST(POW(2, attempts), 300) SECOND \
         ORDER BY updated_at, id LIMIT ?"
    ))
    .bind(RETRYABLE_REASONS[0])
    .bind(RETRYABLE_REASONS[1])
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// Every failed event of one campaign, open or resolved (the verifier's view).
pub async fn list_for(pool: &MySqlPool, campaign_id: &str) -> Result<Vec<FailedEvent>, StoreError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM failed_event WHERE campaign_id = ? ORDER BY id"
    ))
    .bind(campaign_id)
    .fetch_all(pool)
    .await?)
}

pub async fn count_open(pool: &MySqlPool) -> Result<u64, StoreError> {
    let (count,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM failed_event WHERE status = 'open'")
            .fetch_one(pool)
            .await?;
    Ok(u64::try_from(count).unwrap_or_default())
}

/// Open failed events of one campaign: admitted winners that will not become rows by themselves.
pub async fn count_open_for(pool: &MySqlPool, campaign_id: &str) -> Result<u64, StoreError> {
    let (count,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM failed_event WHERE status = 'open' AND campaign_id = ?",
    )
    .bind(campaign_id)
    .fetch_one(pool)
    .await?;
    Ok(u64::try_from(count).unwrap_or_default())
}

pub async fn mark_resolved(pool: &MySqlPool, id: u64, detail: &str) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE failed_event SET status = 'resolved', detail = ?, attempts = attempts + 1, \
         updated_at = CURRENT_TIMESTAMP(3) WHERE id = ?",
    )
    .bind(detail)
    .bind(id)
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn record_attempt(pool: &MySqlPool, id: u64, detail: &str) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE failed_event SET detail = ?, attempts = attempts + 1, \
         updated_at = CURRENT_TIMESTAMP(3) WHERE id = ?",
    )
    .bind(detail)
    .bind(id)
    .execute(pool)
    .await?;
    Ok(())
}
