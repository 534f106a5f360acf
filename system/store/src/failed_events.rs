//! Events that could not become a coupon row: captured with their reason and raw payload, so the
//! partition is never blocked, and re-processed by the consumer's retry worker until resolved.

use std::{fmt, str::FromStr};

use mysql_async::{Row, prelude::Queryable};

use crate::{Store, StoreError};

/// Why an event is in `failed_event`. Stored as its [`FailureReason::as_str`] name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FailureReason {
    /// The payload is not a `CouponIssued` event.
    Malformed,
    /// The record is larger than any event can be ([`coupon_domain::event::MAX_EVENT_BYTES`]).
    Oversized,
    /// No campaign of that id (yet): it may be created later.
    UnknownCampaign,
    /// The slot is 0 or beyond the campaign's limit.
    SeqOutOfRange,
    /// Another coupon holds the slot.
    SlotTaken,
    /// The user holds a coupon with another slot.
    UserHasAnotherSlot,
    /// The database refused it for a reason not classified above.
    Refused,
    /// Admitted by an older life of the gate and past what the rebuild that replaced it read:
    /// the slot may be someone else's now. Settled when captured.
    Superseded,
    /// The reconciler took its slot back (no event had come by the delivery deadline). Settled
    /// when captured.
    Revoked,
}

impl FailureReason {
    pub const ALL: [Self; 9] = [
        Self::Malformed,
        Self::Oversized,
        Self::UnknownCampaign,
        Self::SeqOutOfRange,
        Self::SlotTaken,
        Self::UserHasAnotherSlot,
        Self::Refused,
        Self::Superseded,
        Self::Revoked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::Oversized => "oversized",
            Self::UnknownCampaign => "unknown_campaign",
            Self::SeqOutOfRange => "seq_out_of_range",
            Self::SlotTaken => "slot_taken",
            Self::UserHasAnotherSlot => "user_has_another_slot",
            Self::Refused => "refused",
            Self::Superseded => "superseded",
            Self::Revoked => "revoked",
        }
    }

    /// Whether a retry can cure it: the campaign may be created later, and an unclassified
    /// refusal may pass. The others can never be written, since neither an event nor a
    /// campaign's limit ever changes, and no coupon row is ever deleted. Those stay open, for an
    /// operator and for the verifier, and are not retried.
    pub fn is_retryable(self) -> bool {
        matches!(self, Self::UnknownCampaign | Self::Refused)
    }

    /// Whether the system itself decided the event must not become a coupon: captured as
    /// resolved, since nothing is left for an operator to do.
    pub fn is_settled(self) -> bool {
        matches!(self, Self::Superseded | Self::Revoked)
    }
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FailureReason {
    type Err = StoreError;
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|reason| reason.as_str() == raw)
            .ok_or_else(|| StoreError::Decode(format!("unknown failure reason `{raw}`")))
    }
}

/// How many bytes of a failed record's payload are kept: far more than any event, far less than
/// the column's 65,535.
pub const PAYLOAD_KEPT: usize = 16 * 1024;

/// A record's payload as a failed event keeps it: the first bytes, the whole size, the SHA-256
/// of the whole, so a record of any size can be captured and still be identified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapturedPayload {
    /// The first `keep` bytes (all of them when the record is shorter).
    pub kept: Vec<u8>,
    pub bytes: u64,
    /// Lowercase hex.
    pub sha256: String,
}

impl CapturedPayload {
    /// Captures `payload`, keeping at most `keep` bytes ([`PAYLOAD_KEPT`] but in a test that
    /// switches the cap off to show what it prevents).
    pub fn of(payload: &[u8], keep: usize) -> Self {
        use sha2::{Digest, Sha256};
        Self {
            kept: payload[..payload.len().min(keep)].to_vec(),
            bytes: u64::try_from(payload.len()).unwrap_or(u64::MAX),
            sha256: Sha256::digest(payload)
                .iter()
                .map(|byte| format!("{byte:02x}"))
                .collect(),
        }
    }
}

/// A failed event to capture.
#[derive(Debug, Clone)]
pub struct NewFailedEvent {
    pub partition: i32,
    pub offset: i64,
    pub payload: CapturedPayload,
    pub campaign_id: Option<String>,
    pub user_id: Option<u64>,
    pub reason: FailureReason,
    pub detail: String,
}

/// A captured failed event, as the retry worker and the verifier read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedEvent {
    pub id: u64,
    pub kafka_partition: i32,
    pub kafka_offset: i64,
    /// The payload as kept: whole for any real event, the first [`PAYLOAD_KEPT`] bytes of an
    /// oversized record (size 0 and no hash for captures older than migration 4).
    pub payload: CapturedPayload,
    pub campaign_id: Option<String>,
    pub user_id: Option<u64>,
    pub reason: FailureReason,
    pub open: bool,
    pub attempts: u32,
}

const COLUMNS: &str = "id, kafka_partition, kafka_offset, payload, payload_bytes, payload_sha256, \
     campaign_id, user_id, reason, status, attempts";

fn from_row(row: Row) -> Result<FailedEvent, StoreError> {
    type Columns = (
        u64,
        i32,
        i64,
        Vec<u8>,
        u64,
        String,
        Option<String>,
        Option<u64>,
        String,
        String,
        u32,
    );
    let (
        id,
        kafka_partition,
        kafka_offset,
        payload,
        payload_bytes,
        payload_sha256,
        campaign_id,
        user_id,
        reason,
        status,
        attempts,
    ): Columns = mysql_async::from_row_opt(row)
        .map_err(|e| StoreError::Decode(format!("failed_event row: {e}")))?;
    Ok(FailedEvent {
        id,
        kafka_partition,
        kafka_offset,
        payload: CapturedPayload {
            kept: payload,
            bytes: payload_bytes,
            sha256: payload_sha256,
        },
        campaign_id,
        user_id,
        reason: reason.parse()?,
        open: status == "open",
        attempts,
    })
}

/// Captures the event once: a redelivered message finds its capture already on file.
pub(crate) async fn insert<Q: Queryable>(
    conn: &mut Q,
    event: &NewFailedEvent,
) -> Result<(), StoreError> {
    let result = conn
        .exec_drop(
            "INSERT INTO failed_event (kafka_partition, kafka_offset, payload, payload_bytes, \
             payload_sha256, campaign_id, user_id, reason, detail, status) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                event.partition,
                event.offset,
                &event.payload.kept,
                event.payload.bytes,
                &event.payload.sha256,
                &event.campaign_id,
                event.user_id,
                event.reason.as_str(),
                &event.detail,
                if event.reason.is_settled() {
                    "resolved"
                } else {
                    "open"
                },
            ),
        )
        .await
        .map_err(StoreError::from);
    match result {
        Err(e) if e.is_unique_violation() => Ok(()),
        other => other,
    }
}

/// Open failed events a retry can cure and that are due, least recently attempted first. Each
/// attempt bumps `updated_at` and `attempts`, and an event is due again 2^attempts seconds
/// after its last attempt (at most 5 minutes): events that keep failing rotate to the back and
/// are tried less and less often, so they cannot starve newer ones nor load the database.
pub async fn list_open(store: &Store, limit: u32) -> Result<Vec<FailedEvent>, StoreError> {
    let retryable: Vec<&str> = FailureReason::ALL
        .into_iter()
        .filter(|reason| reason.is_retryable())
        .map(FailureReason::as_str)
        .collect();
    let placeholders = vec!["?"; retryable.len()].join(", ");
    let mut params: Vec<mysql_async::Value> = retryable.into_iter().map(Into::into).collect();
    params.push(limit.into());
    let rows: Vec<Row> = store.all(
            format!(
                "SELECT {COLUMNS} FROM failed_event WHERE status = 'open' AND reason IN ({placeholders}) \
                 AND updated_at <= NOW(3) - INTERVAL LEAST(POW(2, attempts), 300) SECOND \
                 ORDER BY updated_at, id LIMIT ?"
            ),
            params,
        )
        .await?;
    rows.into_iter().map(from_row).collect()
}

/// Every failed event of one campaign, open or resolved (the verifier's view).
pub async fn list_for(store: &Store, campaign_id: &str) -> Result<Vec<FailedEvent>, StoreError> {
    select(store, "WHERE campaign_id = ?", vec![campaign_id.into()]).await
}

/// The failed event captured from one record of the topic, if any.
pub async fn at(
    store: &Store,
    partition: i32,
    offset: i64,
) -> Result<Option<FailedEvent>, StoreError> {
    let found = select(
        store,
        "WHERE kafka_partition = ? AND kafka_offset = ?",
        vec![partition.into(), offset.into()],
    )
    .await?;
    Ok(found.into_iter().next())
}

/// Every failed event, open or resolved, in capture order.
pub async fn list_all(store: &Store) -> Result<Vec<FailedEvent>, StoreError> {
    select(store, "", Vec::new()).await
}

async fn select(
    store: &Store,
    filter: &str,
    params: Vec<mysql_async::Value>,
) -> Result<Vec<FailedEvent>, StoreError> {
    let rows: Vec<Row> = store
        .all(
            format!("SELECT {COLUMNS} FROM failed_event {filter} ORDER BY id"),
            params,
        )
        .await?;
    rows.into_iter().map(from_row).collect()
}

pub async fn count_open(store: &Store) -> Result<u64, StoreError> {
    store
        .count(
            "SELECT COUNT(*) FROM failed_event WHERE status = 'open'",
            (),
        )
        .await
}

/// Open failed events of one campaign: admitted winners that will not become rows by themselves.
pub async fn count_open_for(store: &Store, campaign_id: &str) -> Result<u64, StoreError> {
    store
        .count(
            "SELECT COUNT(*) FROM failed_event WHERE status = 'open' AND campaign_id = ?",
            (campaign_id,),
        )
        .await
}

pub async fn mark_resolved(store: &Store, id: u64, detail: &str) -> Result<(), StoreError> {
    store
        .run(
            "UPDATE failed_event SET status = 'resolved', detail = ?, attempts = attempts + 1, \
             updated_at = CURRENT_TIMESTAMP(3) WHERE id = ?",
            (detail, id),
        )
        .await?;
    Ok(())
}

pub async fn record_attempt(store: &Store, id: u64, detail: &str) -> Result<(), StoreError> {
    store
        .run(
            "UPDATE failed_event SET detail = ?, attempts = attempts + 1, \
             updated_at = CURRENT_TIMESTAMP(3) WHERE id = ?",
            (detail, id),
        )
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_round_trip_and_only_two_are_retried() {
        for reason in FailureReason::ALL {
            assert_eq!(reason.as_str().parse::<FailureReason>().ok(), Some(reason));
        }
        assert!("nope".parse::<FailureReason>().is_err());
        let retried: Vec<_> = FailureReason::ALL
            .into_iter()
            .filter(|r| r.is_retryable())
            .collect();
        assert_eq!(
            retried,
            [FailureReason::UnknownCampaign, FailureReason::Refused]
        );
    }
}
