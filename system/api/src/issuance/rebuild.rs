//! Gate lifecycle: initialise a new campaign's gate, and rebuild a gate whose Redis state was
//! lost (restart without data, FLUSHALL, a deleted key) from MySQL rows plus Kafka events.
//!
//! A campaign's gate is first recorded as initialised in MySQL, then its Redis marker is set.
//! So a campaign marked initialised whose marker is missing has lost its gate: every admit
//! answers `lost` (503) until the rebuild installs the winners again and sets the marker last.

use std::{collections::BTreeMap, time::Duration};

use coupon_domain::{Campaign, CampaignId, Seq, UserId, wire::GateReadiness};
use coupon_kafka::scan::Range;
use coupon_store::{Store, StoreError, StoredCampaign, campaigns, fences};

use super::{IssuanceError, Reliable};
use crate::gate::{GateError, Installed};

/// Where a new life of a gate gets its epoch, the number that tells it from every earlier life
/// (an in-doubt event is republished only while the epoch that admitted it lives).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EpochSource {
    /// A counter in MySQL (`campaign.gate_epoch`): it never repeats, and Redis losing its data
    /// cannot reset it.
    #[default]
    Counter,
    /// Test only, settable in code alone (no flag): milliseconds since the epoch, which repeat
    /// within a millisecond, as this project once used. Kept so a negative control can show the
    /// epoch test catching a source that repeats.
    Clock,
}

impl EpochSource {
    pub async fn next(self, store: &Store, campaign: &CampaignId) -> Result<u64, StoreError> {
        match self {
            Self::Counter => campaigns::next_gate_epoch(store, campaign).await,
            Self::Clock => Ok(u64::try_from(
                time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000,
            )
            .unwrap_or_default()),
        }
    }
}

/// Makes the gate ready if it can be right away; otherwise starts a rebuild in the background.
pub async fn ensure_gate(
    reliable: &Reliable,
    stored: &StoredCampaign,
) -> Result<GateReadiness, IssuanceError> {
    let parts = &reliable.parts;
    let id = &stored.campaign.id;
    if parts.gate.stats(id).await?.initialised {
        return Ok(GateReadiness::Ready);
    }
    if !stored.gate_initialised {
        // A new campaign: nobody was ever admitted, so an empty gate is the truth. Record it in
        // MySQL first, so a later loss of the marker is recognised as a loss.
        campaigns::mark_gate_initialised(&parts.store, id).await?;
        let epoch = parts.settings.gate_epochs.next(&parts.store, id).await?;
        parts.gate.initialise_empty(id, epoch).await?;
        return Ok(GateReadiness::Ready);
    }
    spawn_rebuild(reliable, stored.campaign.clone());
    Ok(GateReadiness::Rebuilding)
}

/// Starts a rebuild of the campaign's gate unless one already runs in this process. Other
/// processes are kept out by the rebuild lock in Redis.
pub fn spawn_rebuild(reliable: &Reliable, campaign: Campaign) {
    let newly_started = reliable
        .parts
        .rebuilds_running
        .lock()
        .map(|mut running| running.insert(campaign.id.clone()))
        .unwrap_or(false);
    if !newly_started {
        return;
    }
    let reliable = reliable.clone();
    tokio::spawn(async move {
        let id = campaign.id.clone();
        match rebuild(&reliable, &campaign).await {
            Ok(Some(plan)) => tracing::warn!(
                campaign_id = %id,
                winners = plan.winners.len(),
                next_seq = plan.next_seq,
                free_slots = plan.free_slots.len(),
                "gate rebuilt from mysql and kafka"
            ),
            Ok(None) => tracing::info!(campaign_id = %id, "another process is rebuilding the gate"),
            Err(error) => {
                tracing::error!(campaign_id = %id, error = %coupon_runtime::chain(&error), "gate rebuild failed; will retry on the next apply")
            }
        }
        if let Ok(mut running) = reliable.parts.rebuilds_running.lock() {
            running.remove(&id);
        }
    });
}

/// Rebuilds the gate; `Ok(None)` when another process holds the rebuild lock.
async fn rebuild(
    reliable: &Reliable,
    campaign: &Campaign,
) -> Result<Option<RebuildPlan>, IssuanceError> {
    let parts = &reliable.parts;
    // Admissions made before the loss may still be on their way to the broker; the producer
    // gives up on them within the delivery timeout, so wait that out before reading Kafka.
    // (Admissions in doubt are republished only while their epoch is live: after the loss
    // they stop, so nothing of the old gate lands after the scan.)
    let grace = parts.settings.delivery_timeout + Duration::from_secs(1);
    let Some(token) = parts
        .gate
        .try_lock_rebuild(&campaign.id, grace + super::traces::LOCKED_READ)
        .await?
    else {
        return Ok(None);
    };
    let rebuilt = rebuild_holding_lock(reliable, campaign, &token, grace).await;
    if !matches!(rebuilt, Ok(Some(_))) {
        // Let the next apply retry at once instead of waiting for the lock to expire.
        let _ = parts.gate.unlock_rebuild(&campaign.id, &token).await;
    }
    rebuilt
}

async fn rebuild_holding_lock(
    reliable: &Reliable,
    campaign: &Campaign,
    token: &str,
    grace: Duration,
) -> Result<Option<RebuildPlan>, IssuanceError> {
    let parts = &reliable.parts;
    // Another process may have rebuilt the gate between our look and our lock.
    if parts.gate.epoch(&campaign.id).await?.is_some() {
        return Ok(None);
    }
    tracing::warn!(campaign_id = %campaign.id, grace = ?grace, "gate state lost in redis; rebuilding");
    tokio::time::sleep(grace).await;
    // A fence an earlier rebuild raised but never finished guards nothing (we hold the lock).
    fences::drop_unset_fences(&parts.store, &campaign.id).await?;
    let epoch = parts
        .settings
        .gate_epochs
        .next(&parts.store, &campaign.id)
        .await?;
    // The fence goes up before the read: an event of an earlier life that lands past where the
    // read ends is refused by the consumer, since this gate never saw it.
    let ranges = fenced_ranges(reliable, &campaign.id, epoch).await?;
    let plan = plan_from_stores(reliable, &campaign.id, ranges).await?;
    match parts
        .gate
        .install(
            &campaign.id,
            token,
            epoch,
            &plan.winners,
            plan.next_seq,
            &plan.free_slots,
        )
        .await?
    {
        Installed::Yes => {
            parts.metrics.gate_rebuilds.inc();
            Ok(Some(plan))
        }
        Installed::LiveGateExists => Ok(None),
        Installed::LockLost => Err(GateError::Protocol(
            "the rebuild lock expired before the gate was installed".to_owned(),
        )
        .into()),
    }
}

/// Raises the fence of life `epoch` and returns what the rebuild must read: each partition from
/// the consumer group's committed offset (earlier events are rows or failed events) to the high
/// watermark, which is where the fence ends.
async fn fenced_ranges(
    reliable: &Reliable,
    id: &CampaignId,
    epoch: u64,
) -> Result<Vec<Range>, IssuanceError> {
    let parts = &reliable.parts;
    let partitions = coupon_kafka::partition_count(
        &parts.settings.stack.kafka_brokers,
        &parts.settings.stack.topic,
    )
    .await
    .map_err(|error| reliable.kafka_error(error))?;
    fences::open_rebuild_fence(&parts.store, id, epoch, partitions).await?;
    let closed = async {
        let ranges = reliable.unconsumed_ranges().await?;
        let ends: Vec<(i32, i64)> = ranges.iter().map(|r| (r.partition, r.end)).collect();
        fences::close_rebuild_fence(&parts.store, id, epoch, &ends).await?;
        Ok::<_, IssuanceError>(ranges)
    }
    .await;
    if closed.is_err() {
        // Nothing will be installed in this life: its unset fence must not hold events back.
        let _ = fences::drop_unset_fences(&parts.store, id).await;
    }
    closed
}

/// Every winner MySQL and Kafka know of, for one campaign: its rows, its open failed events
/// that a retry may still write, and its events in `ranges` that still count under the
/// campaign's fences.
async fn plan_from_stores(
    reliable: &Reliable,
    id: &CampaignId,
    ranges: Vec<Range>,
) -> Result<RebuildPlan, IssuanceError> {
    let traces = reliable.traces(id, ranges).await?;
    Ok(plan_rebuild(
        traces.rows,
        traces.failed.into_iter().chain(traces.events),
    ))
}

/// Forces a rebuild of a live gate (the admin endpoint): admissions stop at once, then the
/// gate is rebuilt as after a loss.
pub async fn force_rebuild(reliable: &Reliable, campaign: &Campaign) -> Result<(), IssuanceError> {
    reliable.parts.gate.forget_marker(&campaign.id).await?;
    campaigns::mark_gate_initialised(&reliable.parts.store, &campaign.id).await?;
    spawn_rebuild(reliable, campaign.clone());
    Ok(())
}

/// The gate to install: every known winner, the highest slot handed out, and the free slots
/// below it (slots released before the loss), which are handed out again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebuildPlan {
    pub winners: Vec<(UserId, Seq)>,
    pub next_seq: u32,
    pub free_slots: Vec<u32>,
}

/// Rows are the truth for a user they hold; events add the winners not yet written.
pub fn plan_rebuild(
    rows: impl IntoIterator<Item = (UserId, Seq)>,
    events: impl IntoIterator<Item = (UserId, Seq)>,
) -> RebuildPlan {
    let mut winners: BTreeMap<UserId, Seq> = BTreeMap::new();
    for (user, seq) in rows {
        winners.insert(user, seq);
    }
    for (user, seq) in events {
        winners.entry(user).or_insert(seq);
    }
    let next_seq = winners.values().map(|s| s.0).max().unwrap_or(0);
    let taken: std::collections::HashSet<u32> = winners.values().map(|s| s.0).collect();
    let free_slots = (1..=next_seq).filter(|s| !taken.contains(s)).collect();
    RebuildPlan {
        winners: winners.into_iter().collect(),
        next_seq,
        free_slots,
    }
}

/// Whether the gate of `id` is usable, starting a rebuild when it was lost.
pub async fn readiness_after_loss(
    reliable: &Reliable,
    id: &CampaignId,
) -> Result<GateReadiness, IssuanceError> {
    let stored = reliable
        .parts
        .campaigns
        .fresh(id)
        .await?
        .ok_or_else(|| StoreError::Decode(format!("campaign {id} vanished from mysql")))?;
    ensure_gate(reliable, &stored).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: u64) -> UserId {
        UserId::parse(id).expect("positive")
    }

    #[test]
    fn rebuild_unites_rows_and_unwritten_events() {
        let plan = plan_rebuild(
            [(user(1), Seq(1)), (user(2), Seq(2))],
            [(user(2), Seq(2)), (user(5), Seq(5))],
        );
        assert_eq!(
            plan.winners,
            vec![(user(1), Seq(1)), (user(2), Seq(2)), (user(5), Seq(5))]
        );
        assert_eq!(plan.next_seq, 5);
        assert_eq!(plan.free_slots, vec![3, 4]);
    }

    #[test]
    fn a_row_wins_over_an_event_for_the_same_user() {
        let plan = plan_rebuild([(user(1), Seq(1))], [(user(1), Seq(9))]);
        assert_eq!(plan.winners, vec![(user(1), Seq(1))]);
        assert_eq!(plan.next_seq, 1);
        assert!(plan.free_slots.is_empty());
    }

    #[test]
    fn empty_history_rebuilds_an_empty_gate() {
        let plan = plan_rebuild([], []);
        assert_eq!(
            plan,
            RebuildPlan {
                winners: vec![],
                next_seq: 0,
                free_slots: vec![]
            }
        );
    }
}
