//! What the stores hold of a campaign's admissions: coupon rows, failed events a retry may
//! still write, and the events the consumer group has not committed past. The gate's rebuild
//! installs their union; the reconciler releases the admissions that have none of them.

use std::{collections::HashSet, time::Duration};

use coupon_domain::{CampaignId, CouponIssued, Seq, UserId, fence};
use coupon_kafka::{BrokerError, scan::Range};
use coupon_store::{StoreError, coupons, failed_events, fences};

use super::{IssuanceError, Reliable};
use crate::configuration::ReadFrom;

/// How long one bounded read of the topic may take before it is abandoned and retried.
const SCAN_TIMEOUT: Duration = Duration::from_secs(120);

/// How long a lock must last that covers reading the traces: two reads of the topic (the
/// reconciler reads twice), with room for the stores' own round trips.
pub const LOCKED_READ: Duration = Duration::from_secs(2 * 120 + 60);

/// A campaign's admissions as the stores show them, each as (user, slot).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Traces {
    pub rows: Vec<(UserId, Seq)>,
    /// Open failed events of a kind a retry may still write.
    pub failed: Vec<(UserId, Seq)>,
    /// Events past the group's committed offsets that still count under the fences.
    pub events: Vec<(UserId, Seq)>,
    /// Users with any failed event the system did not settle itself (open or resolved, any
    /// reason): something happened to their admission that an operator may need to see.
    pub failed_users: Vec<UserId>,
}

impl Traces {
    /// Every user with any trace at all: the reconciler leaves them alone.
    pub fn users(&self) -> HashSet<UserId> {
        [&self.rows, &self.failed, &self.events]
            .into_iter()
            .flatten()
            .map(|(user, _)| *user)
            .chain(self.failed_users.iter().copied())
            .collect()
    }
}

impl Reliable {
    pub(crate) fn kafka_error(&self, error: BrokerError) -> IssuanceError {
        let parts = &self.parts;
        IssuanceError::Scan(anyhow::Error::new(error).context(format!(
            "failed to read topic {} from kafka at {}",
            parts.settings.stack.topic, parts.settings.stack.kafka_brokers
        )))
    }

    /// Each partition from the consumer group's committed offset to its high watermark.
    pub(crate) async fn unconsumed_ranges(&self) -> Result<Vec<Range>, IssuanceError> {
        let parts = &self.parts;
        let offsets = coupon_kafka::offsets::read(
            &parts.settings.stack.kafka_brokers,
            &parts.settings.stack.topic,
            &parts.settings.stack.group,
        )
        .await
        .map_err(|error| self.kafka_error(error))?;
        Ok(offsets
            .iter()
            .map(|o| Range {
                partition: o.partition,
                start: match parts.settings.read_from {
                    ReadFrom::Committed => o.committed.unwrap_or(o.low).max(o.low),
                    ReadFrom::Beginning => o.low,
                },
                end: o.high,
            })
            .collect())
    }

    /// The campaign's traces, reading the topic in `ranges`.
    pub(crate) async fn traces(
        &self,
        id: &CampaignId,
        ranges: Vec<Range>,
    ) -> Result<Traces, IssuanceError> {
        let parts = &self.parts;
        let unread: u64 = ranges.iter().map(Range::len).sum();
        if unread > 10_000 {
            tracing::info!(campaign_id = %id, events = unread, "reading the events the consumer has not committed past");
        }
        let raw = coupon_kafka::scan::between(
            &parts.settings.stack.kafka_brokers,
            &parts.settings.stack.topic,
            ranges,
            SCAN_TIMEOUT,
        )
        .await
        .map_err(|error| self.kafka_error(error))?;
        parts
            .metrics
            .events_scanned
            .inc_by(u64::try_from(raw.len()).unwrap_or(u64::MAX));
        let (rebuilds, revocations) = fences::of_campaign(&parts.store, id).await?;
        let mut events = Vec::new();
        for (raw, event) in raw
            .iter()
            .filter_map(|raw| Some((raw, CouponIssued::from_json(&raw.payload).ok()?)))
            .filter(|(_, event)| &event.campaign_id == id)
        {
            if counts(
                id,
                &event,
                raw.partition,
                raw.offset,
                &rebuilds,
                &revocations,
            )? {
                events.push((event.user_id, event.seq));
            }
        }
        let rows = coupons::list(&parts.store, id)
            .await?
            .into_iter()
            .filter_map(|row| Some((UserId::parse(row.user_id).ok()?, Seq(row.seq))))
            .collect();
        let captured = failed_events::list_for(&parts.store, id.as_str()).await?;
        let mut failed = Vec::new();
        for (captured, event) in captured
            .iter()
            .filter(|failed| failed.open && failed.reason.is_retryable())
            .filter_map(|failed| {
                Some((failed, CouponIssued::from_json(&failed.payload.kept).ok()?))
            })
        {
            // A retry screens it as the consumer does: one the fences cover is settled, never
            // written, so it holds no slot.
            let (partition, offset) = (captured.kafka_partition, captured.kafka_offset);
            if counts(id, &event, partition, offset, &rebuilds, &revocations)? {
                failed.push((event.user_id, event.seq));
            }
        }
        let failed_users = captured
            .iter()
            .filter(|failed| !failed.reason.is_settled())
            .filter_map(|failed| UserId::parse(failed.user_id?).ok())
            .collect();
        Ok(Traces {
            rows,
            failed,
            events,
            failed_users,
        })
    }
}

/// Whether an event at `partition`/`offset` still counts under the campaign's fences.
fn counts(
    id: &CampaignId,
    event: &CouponIssued,
    partition: i32,
    offset: i64,
    rebuilds: &[fence::RebuildFence],
    revocations: &[fence::Revocation],
) -> Result<bool, IssuanceError> {
    match fence::standing(event, partition, offset, rebuilds, revocations) {
        fence::Standing::Counts => Ok(true),
        // Another rebuild is setting its fence: whether this event counts is not known yet,
        // and guessing "no" would hand its slot out again.
        fence::Standing::FencePending { epoch } => Err(StoreError::fence_pending(id, epoch).into()),
        fence::Standing::Superseded { .. } | fence::Standing::Revoked { .. } => Ok(false),
    }
}
