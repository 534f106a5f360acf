//! Gate lifecycle: build a campaign's first gate, and rebuild a gate whose Redis state was lost
//! (restart without data, FLUSHALL, a deleted key), both from MySQL rows plus Kafka events.
//!
//! A campaign's first gate is built like a rebuild, not assumed empty: the campaign id may
//! already have rows, open failed events or unread events (an earlier campaign of that id,
//! deleted by hand; a database reset over an old topic; events produced before the campaign),
//! and Redis may hold a gate that earlier campaign left. The build raises a fence at the topic's
//! high watermarks, installs the plan over whatever Redis holds, and only then records in MySQL
//! that the campaign's gate exists (with the life it began in, `first_epoch`). Until MySQL says
//! so, no api admits for the campaign. From then on a missing marker means the gate was lost:
//! every admit answers `lost` (503) until the rebuild installs the winners again and sets the
//! marker last.

use std::{collections::BTreeMap, time::Duration};

use coupon_domain::{Campaign, CampaignId, Seq, UserId, wire::GateReadiness};
use coupon_kafka::scan::Range;
use coupon_store::{Store, StoreError, StoredCampaign, campaigns, fences};

use super::{IssuanceError, Reliable};
use crate::gate::{GateError, GatePlan, Installed, Over};

/// Where a new life of a gate gets its epoch, the number that tells it from every earlier life
/// (an in-doubt event is republished only while the epoch that admitted it lives).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EpochSource {
    /// A counter in MySQL (`campaign.gate_epoch`): it never repeats, and Redis losing its data
    /// cannot reset it.
    #[default]
    Counter,
    /// Test only, settable in code alone (no flag): milliseconds since the epoch, which repeat
    /// within a millisecond, as this project once used (and which ignore `at_least`). Kept so
    /// a negative control can show the epoch test catching a source that repeats.
    Clock,
}

impl EpochSource {
    /// The next epoch, above `at_least` (a life known to exist, such as a gate found in Redis).
    pub async fn next(
        self,
        store: &Store,
        campaign: &CampaignId,
        at_least: u64,
    ) -> Result<u64, StoreError> {
        match self {
            Self::Counter => campaigns::next_gate_epoch(store, campaign, at_least).await,
            Self::Clock => Ok(u64::try_from(
                time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000,
            )
            .unwrap_or_default()),
        }
    }
}

/// How a campaign's first gate is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FirstGate {
    /// From the rebuild plan, over whatever Redis holds for the id.
    #[default]
    FromPlan,
    /// Test only, settable in code alone: empty, and a gate Redis already holds for the id is
    /// taken as the campaign's, as this project once did. The control that shows a campaign
    /// created again over its id's old data handing out slots its rows and events still hold.
    Empty,
}

/// Makes the gate ready if it can be right away; otherwise starts a rebuild in the background.
/// A gate found ready is remembered: this process then admits without asking again.
pub async fn ensure_gate(
    reliable: &Reliable,
    stored: &StoredCampaign,
) -> Result<GateReadiness, IssuanceError> {
    let readiness = readiness_of(reliable, stored).await?;
    if readiness == GateReadiness::Ready {
        reliable.remember_gate(&stored.campaign.id);
    }
    Ok(readiness)
}

async fn readiness_of(
    reliable: &Reliable,
    stored: &StoredCampaign,
) -> Result<GateReadiness, IssuanceError> {
    let parts = &reliable.parts;
    let id = &stored.campaign.id;
    let first_gate = parts.settings.first_gate;
    if !stored.gate_initialised && first_gate == FirstGate::FromPlan {
        return build_first_gate(reliable, &stored.campaign).await;
    }
    if parts.gate.is_live(id).await? {
        return Ok(GateReadiness::Ready);
    }
    if !stored.gate_initialised || !parts.settings.rebuild_lost {
        // The controls: FirstGate::Empty (nobody was ever admitted, so an empty gate is taken
        // for the truth; recorded in MySQL first, so a later loss of the marker is recognised),
        // and a lost gate started again empty rather than rebuilt.
        if !stored.gate_initialised {
            campaigns::mark_gate_initialised(&parts.store, id, None).await?;
        }
        let epoch = parts.settings.gate_epochs.next(&parts.store, id, 0).await?;
        parts.gate.initialise_empty(id, epoch).await?;
        return Ok(GateReadiness::Ready);
    }
    spawn_rebuild(reliable, stored.campaign.clone());
    Ok(GateReadiness::Rebuilding)
}

/// Builds the campaign's first gate from the rebuild plan. `Rebuilding` while another process
/// holds the campaign's rebuild lock (it is building the gate). The build runs in a task of its
/// own: a caller that goes away (a client hanging up on the create) must not leave the lock
/// held or a fence unset behind it.
async fn build_first_gate(
    reliable: &Reliable,
    campaign: &Campaign,
) -> Result<GateReadiness, IssuanceError> {
    let (owned, campaign) = (reliable.clone(), campaign.clone());
    tokio::spawn(async move { first_gate(&owned, &campaign).await })
        .await
        .map_err(|error| {
            IssuanceError::from(GateError::Protocol(format!(
                "the first gate's build stopped: {error}"
            )))
        })?
}

async fn first_gate(
    reliable: &Reliable,
    campaign: &Campaign,
) -> Result<GateReadiness, IssuanceError> {
    let parts = &reliable.parts;
    let Some(token) = parts
        .gate
        .try_lock_rebuild(&campaign.id, super::traces::LOCKED_READ)
        .await?
    else {
        return Ok(GateReadiness::Rebuilding);
    };
    let built = first_gate_holding_lock(reliable, campaign, &token).await;
    // The install kept the lock until MySQL recorded the gate: released here, whatever happened.
    let _ = parts.gate.unlock_rebuild(&campaign.id, &token).await;
    match built? {
        Some(plan) if plan.winners.is_empty() => {
            tracing::info!(campaign_id = %campaign.id, "first gate built: nothing held for this id");
            Ok(GateReadiness::Ready)
        }
        Some(plan) => {
            tracing::warn!(
                campaign_id = %campaign.id,
                winners = plan.winners.len(),
                next_seq = plan.next_seq,
                "first gate built over what the stores already held for this id (an earlier campaign of the id, or events produced before it)"
            );
            Ok(GateReadiness::Ready)
        }
        // Another process built it between our read and our lock: an ordinary gate from here.
        None if parts.gate.is_live(&campaign.id).await? => Ok(GateReadiness::Ready),
        None => {
            spawn_rebuild(reliable, campaign.clone());
            Ok(GateReadiness::Rebuilding)
        }
    }
}

/// `Ok(None)` when MySQL already records a first gate for the campaign.
async fn first_gate_holding_lock(
    reliable: &Reliable,
    campaign: &Campaign,
    token: &str,
) -> Result<Option<GatePlan>, IssuanceError> {
    let parts = &reliable.parts;
    let stored = campaigns::find(&parts.store, &campaign.id)
        .await?
        .ok_or_else(|| {
            StoreError::Decode(format!("campaign {} vanished from mysql", campaign.id))
        })?;
    if stored.gate_initialised {
        return Ok(None);
    }
    // A gate Redis holds for the id belongs to an earlier campaign: the new life's epoch goes
    // past it, so nothing that gate admitted can pass for this one's.
    let left_behind = parts.gate.epoch(&campaign.id).await?.map_or(0, |e| e.0);
    let (epoch, plan) = plan_new_life(reliable, &stored.campaign, left_behind).await?;
    match parts
        .gate
        .install(&campaign.id, token, epoch, &plan, Over::EarlierCampaign)
        .await?
    {
        Installed::Yes => {}
        Installed::LiveGateExists | Installed::LockLost => {
            return Err(GateError::Protocol(
                "the rebuild lock expired before the first gate was installed".to_owned(),
            )
            .into());
        }
    }
    // Still under the lock, so nobody else can have recorded a first gate meanwhile.
    if !campaigns::mark_gate_initialised(&parts.store, &campaign.id, Some(epoch)).await? {
        return Err(GateError::Protocol(
            "another process recorded a first gate while this one held the lock".to_owned(),
        )
        .into());
    }
    Ok(Some(plan))
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
) -> Result<Option<GatePlan>, IssuanceError> {
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
) -> Result<Option<GatePlan>, IssuanceError> {
    let parts = &reliable.parts;
    // Another process may have rebuilt the gate between our look and our lock.
    if parts.gate.epoch(&campaign.id).await?.is_some() {
        return Ok(None);
    }
    tracing::warn!(campaign_id = %campaign.id, grace = ?grace, "gate state lost in redis; rebuilding");
    tokio::time::sleep(grace).await;
    let (epoch, plan) = plan_new_life(reliable, campaign, 0).await?;
    match parts
        .gate
        .install(&campaign.id, token, epoch, &plan, Over::LostGate)
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

/// A new life of the campaign's gate, planned (the caller holds the rebuild lock): takes its
/// epoch (above `at_least`), raises its fence, and plans the gate from what lies before it.
async fn plan_new_life(
    reliable: &Reliable,
    campaign: &Campaign,
    at_least: u64,
) -> Result<(u64, GatePlan), IssuanceError> {
    let parts = &reliable.parts;
    let id = &campaign.id;
    // A fence an earlier build raised but never finished guards nothing (we hold the lock).
    fences::drop_unset_fences(&parts.store, id).await?;
    let epoch = parts
        .settings
        .gate_epochs
        .next(&parts.store, id, at_least)
        .await?;
    // The fence goes up before the read: an event of an earlier life that lands past where the
    // read ends is refused by the consumer, since this gate never saw it.
    let ranges = fenced_ranges(reliable, id, epoch).await?;
    let plan = plan_from_stores(reliable, campaign, ranges).await?;
    Ok((epoch, plan))
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
    campaign: &Campaign,
    ranges: Vec<Range>,
) -> Result<GatePlan, IssuanceError> {
    let traces = reliable.traces(&campaign.id, ranges).await?;
    Ok(plan_rebuild(
        campaign.limit.get(),
        traces.rows,
        traces.failed.into_iter().chain(traces.events),
    ))
}

/// Forces a rebuild of a live gate (the admin endpoint): admissions stop at once, then the
/// gate is rebuilt as after a loss.
pub async fn force_rebuild(reliable: &Reliable, campaign: &Campaign) -> Result<(), IssuanceError> {
    reliable.parts.gate.forget_marker(&campaign.id).await?;
    campaigns::mark_gate_initialised(&reliable.parts.store, &campaign.id, None).await?;
    spawn_rebuild(reliable, campaign.clone());
    Ok(())
}

/// Rows are the truth for a user they hold; events add the winners not yet written. An event
/// with a slot outside `1..=limit` is left out: the consumer never writes it (it keeps it as
/// `seq_out_of_range`), and an earlier campaign of the same id may have had a larger limit.
pub fn plan_rebuild(
    limit: u32,
    rows: impl IntoIterator<Item = (UserId, Seq)>,
    events: impl IntoIterator<Item = (UserId, Seq)>,
) -> GatePlan {
    let mut winners: BTreeMap<UserId, Seq> = BTreeMap::new();
    for (user, seq) in rows {
        winners.insert(user, seq);
    }
    for (user, seq) in events
        .into_iter()
        .filter(|(_, s)| (1..=limit).contains(&s.0))
    {
        winners.entry(user).or_insert(seq);
    }
    let next_seq = winners.values().map(|s| s.0).max().unwrap_or(0);
    let taken: std::collections::HashSet<u32> = winners.values().map(|s| s.0).collect();
    let free_slots = (1..=next_seq).filter(|s| !taken.contains(s)).collect();
    GatePlan {
        winners: winners.into_iter().collect(),
        next_seq,
        free_slots,
    }
}

/// Whether the gate of `id` is usable, as MySQL and Redis say now: building a new campaign's
/// first gate, or starting a rebuild when the gate was lost.
pub async fn check_gate(
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
            10,
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
        let plan = plan_rebuild(10, [(user(1), Seq(1))], [(user(1), Seq(9))]);
        assert_eq!(plan.winners, vec![(user(1), Seq(1))]);
        assert_eq!(plan.next_seq, 1);
        assert!(plan.free_slots.is_empty());
    }

    #[test]
    fn an_event_outside_the_limit_holds_no_slot() {
        // An earlier campaign of the id had a limit of 10: its event for slot 10 would never
        // be written under a limit of 4, and must not make slots 1 to 9 look free.
        let plan = plan_rebuild(4, [], [(user(1), Seq(10)), (user(2), Seq(2))]);
        assert_eq!(plan.winners, vec![(user(2), Seq(2))]);
        assert_eq!(plan.next_seq, 2);
        assert_eq!(plan.free_slots, vec![1]);
    }

    #[test]
    fn empty_history_rebuilds_an_empty_gate() {
        let plan = plan_rebuild(10, [], []);
        assert_eq!(
            plan,
            GatePlan {
                winners: vec![],
                next_seq: 0,
                free_slots: vec![]
            }
        );
    }
}
