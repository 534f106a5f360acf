//! This project's design for one apply: admit in the Redis gate (one atomic step), publish the
//! win and wait for the broker's acknowledgement, then answer. What the broker certainly did not
//! write is undone; what is in doubt is published again until acknowledged, never undone.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex, RwLock},
    time::{Duration, Instant},
};

use coupon_domain::{Campaign, CampaignId, CouponIssued, GateOutcome, UserId, wire::GateReadiness};
use coupon_runtime::Backoff;
use coupon_store::{Store, StoredCampaign, coupons, failed_events};
use futures::{FutureExt, future::BoxFuture};
use rdkafka::producer::DeliveryFuture;
use tokio_util::task::TaskTracker;

use super::{Counts, Issuance, IssuanceError, Outcome, rebuild};
use crate::{
    campaigns::CampaignCache,
    configuration::{Settings, WindowCheck},
    gate::{Admission, Epoch, Gate, Holding, Window},
    metrics::Metrics,
    publisher::{Published, Publisher, certainly_not_written},
};

/// How long an api keeps republishing an event in doubt before it gives up (and says so).
const IN_DOUBT_DEADLINE: Duration = Duration::from_secs(600);

/// The reliable design's parts. Cheap to clone: work that must outlive a request (publishing
/// after the client hung up, republishing, rebuilding) runs in tasks holding a clone.
#[derive(Debug, Clone)]
pub struct Reliable {
    pub(crate) parts: Arc<Parts>,
}

#[derive(Debug)]
pub(crate) struct Parts {
    pub gate: Gate,
    pub publisher: Publisher,
    pub store: Store,
    pub campaigns: Arc<CampaignCache>,
    pub metrics: Arc<Metrics>,
    /// The api's settings: where a rebuild reads the topic (brokers, topic, and the consumer
    /// group whose committed offsets bound the read), the delivery timeout a rebuild waits for,
    /// where each new life of a gate gets its epoch, and the test-only switches of the fixes.
    pub settings: Settings,
    /// Campaigns whose gate rebuild runs in this process.
    pub rebuilds_running: Mutex<HashSet<CampaignId>>,
    /// Campaigns whose gate this process has seen built (MySQL records it and Redis holds it).
    /// Until then it admits nothing for a campaign: a gate Redis holds for an id whose
    /// campaign has no gate on record was left by an earlier campaign of that id.
    pub gates_seen: RwLock<HashSet<CampaignId>>,
    /// One lock per campaign whose gate is not seen yet, held while an apply checks it: a
    /// burst's first applies to a campaign another api created check it once, not once each,
    /// and never wait behind another campaign's check.
    pub first_looks: Mutex<HashMap<CampaignId, Arc<tokio::sync::Mutex<()>>>>,
    /// Every task that publishes, resolves or undoes an admission: a graceful stop waits for
    /// them ([`Reliable::finish_in_doubt`]), since a dropped one leaves its slot held.
    pub in_doubt: TaskTracker,
    /// Users whose apply answered `unknown` is being resolved: one task per user, however many
    /// times the user retried during the stall.
    pub resolving: Mutex<HashSet<(CampaignId, UserId)>>,
}

impl Reliable {
    /// The design on its stores; the rest (the topic a rebuild reads, the delivery timeout,
    /// the epoch source) comes from `settings`.
    pub fn new(
        gate: Gate,
        publisher: Publisher,
        store: Store,
        campaigns: Arc<CampaignCache>,
        metrics: Arc<Metrics>,
        settings: &Settings,
    ) -> Self {
        Self {
            parts: Arc::new(Parts {
                gate,
                publisher,
                store,
                campaigns,
                metrics,
                settings: settings.clone(),
                rebuilds_running: Mutex::default(),
                gates_seen: RwLock::default(),
                first_looks: Mutex::default(),
                in_doubt: TaskTracker::new(),
                resolving: Mutex::default(),
            }),
        }
    }

    pub fn gate(&self) -> &Gate {
        &self.parts.gate
    }

    /// Records that the campaign's gate is built (see [`Parts::gates_seen`]).
    pub(crate) fn remember_gate(&self, id: &CampaignId) {
        if let Ok(mut seen) = self.parts.gates_seen.write() {
            seen.insert(id.clone());
        }
        // Applies from now on skip the check, so its lock is no longer needed.
        if let Ok(mut looks) = self.parts.first_looks.lock() {
            looks.remove(id);
        }
    }

    /// The lock an apply holds while it checks a gate not seen yet (see `Parts::first_looks`).
    fn first_look(&self, id: &CampaignId) -> Arc<tokio::sync::Mutex<()>> {
        let mut looks = self
            .parts
            .first_looks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        looks.entry(id.clone()).or_default().clone()
    }

    fn gate_seen(&self, id: &CampaignId) -> bool {
        self.parts
            .gates_seen
            .read()
            .is_ok_and(|seen| seen.contains(id))
    }

    pub async fn flush(&self, timeout: Duration) {
        self.parts.publisher.flush(timeout).await;
    }

    /// A graceful stop: waits up to `grace` for every admission still being published,
    /// resolved or undone. Returns how many were left unfinished (their slots stay held until
    /// the reconciler releases them).
    pub async fn finish_in_doubt(&self, grace: Duration) -> usize {
        let tasks = &self.parts.in_doubt;
        tasks.close();
        if !tasks.is_empty() {
            tracing::info!(tasks = tasks.len(), grace = ?grace, "waiting for admissions in doubt before stopping");
        }
        let _ = tokio::time::timeout(grace, tasks.wait()).await;
        tasks.len()
    }

    async fn apply_steps(
        &self,
        campaign: &Campaign,
        user: UserId,
        now: time::OffsetDateTime,
    ) -> Result<Outcome, IssuanceError> {
        let window = match self.parts.settings.window_check {
            WindowCheck::Gate => Window::of(campaign),
            WindowCheck::ApiClock => {
                if let Some(outside) = Outcome::outside_window(campaign, now) {
                    return Ok(outside);
                }
                Window::ALWAYS
            }
        };
        let decision = match self.admit(campaign, user, window).await {
            Err(IssuanceError::AdmitInDoubt(error)) => {
                let key = (campaign.id.clone(), user);
                // Checked first: with the control (no resolution) the set is never filled.
                let first = self.parts.settings.resolve_unknown
                    && self
                        .parts
                        .resolving
                        .lock()
                        .is_ok_and(|mut resolving| resolving.insert(key.clone()));
                if first {
                    let resolve = self.clone().resolve_unknown(key, now);
                    self.parts.in_doubt.spawn(resolve);
                }
                return Err(IssuanceError::AdmitInDoubt(error));
            }
            decision => decision?,
        };
        match decision {
            Decision::Outside(outcome) => Ok(outcome),
            Decision::Gate(GateOutcome::Issued(seq), epoch) => {
                // From here the admission must be published or undone even if the client hangs
                // up (hyper drops the handler's future): the work runs in a task of its own.
                let event = CouponIssued {
                    campaign_id: campaign.id.clone(),
                    user_id: user,
                    seq,
                    issued_at_ms: unix_ms(now),
                    epoch: epoch.0,
                };
                let win = self
                    .parts
                    .in_doubt
                    .spawn(self.clone().publish_win(event, epoch));
                win.await?
            }
            Decision::Gate(GateOutcome::AlreadyApplied, _) => Ok(Outcome::AlreadyApplied),
            Decision::Gate(GateOutcome::SoldOut, _) => Ok(Outcome::SoldOut),
        }
    }

    /// One atomic gate step. A campaign whose gate this process has not seen built has it
    /// checked (and a new campaign's first gate built) first. If the gate's state is gone, a
    /// lost one is rebuilt in the background and the apply refused.
    async fn admit(
        &self,
        campaign: &Campaign,
        user: UserId,
        window: Window,
    ) -> Result<Decision, IssuanceError> {
        let parts = &self.parts;
        if !self.gate_seen(&campaign.id) {
            let look = self.first_look(&campaign.id);
            let _one_look = look.lock().await;
            if !self.gate_seen(&campaign.id)
                && rebuild::check_gate(self, &campaign.id).await? == GateReadiness::Rebuilding
            {
                return Err(IssuanceError::GateRebuilding(campaign.id.clone()));
            }
        }
        for _ in 0..2 {
            let started = Instant::now();
            let admission = parts
                .gate
                .admit(&campaign.id, user, campaign.limit.get(), window)
                .await
                .map_err(|error| {
                    if parts.settings.unknown_outcomes && error.outcome_unknown() {
                        IssuanceError::AdmitInDoubt(error)
                    } else {
                        IssuanceError::Gate(error)
                    }
                })?;
            parts
                .metrics
                .gate_seconds
                .observe(started.elapsed().as_secs_f64());
            match admission {
                Admission::Decided(outcome, epoch) => {
                    return Ok(Decision::Gate(outcome, epoch));
                }
                // The gate answers only `not_open` or `closed` here.
                Admission::Outside(state) => {
                    return Ok(Decision::Outside(
                        Outcome::outside(state).unwrap_or(Outcome::Closed),
                    ));
                }
                Admission::Lost => {
                    if rebuild::check_gate(self, &campaign.id).await? == GateReadiness::Rebuilding {
                        break;
                    }
                }
            }
        }
        Err(IssuanceError::GateRebuilding(campaign.id.clone()))
    }

    /// An apply answered 504 `unknown`: its gate script was sent, and no answer came (a Redis
    /// stall past the response timeout runs the scripts already sent once it resumes). Once
    /// Redis answers again, the gate says whether the user holds a slot: if so, its win is
    /// published like an event in doubt (the user was told the outcome is unknown, so a coupon
    /// is a valid end), again until acknowledged while the user holds that slot, and never
    /// undone, since the slot may be an earlier apply's whose coupon is on its way (its event
    /// written twice is one coupon). No slot, nothing was taken. The read follows the script on
    /// the same connection, so it sees what the script did, and is taken only while no rebuild
    /// or reconciler pass is moving the gate to its next life (the event carries the live
    /// epoch). Without this, the slot a stalled script took would stay held with no event until
    /// the reconciler released it, 30 s and more later, when the sale may be over.
    async fn resolve_unknown(self, key: (CampaignId, UserId), now: time::OffsetDateTime) {
        let parts = &self.parts;
        let (campaign_id, user) = &key;
        let give_up = tokio::time::Instant::now() + IN_DOUBT_DEADLINE;
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
        let result = loop {
            match parts.gate.admission_of(campaign_id, *user).await {
                Ok(Holding::Slot(seq, epoch)) => {
                    let event = CouponIssued {
                        campaign_id: campaign_id.clone(),
                        user_id: *user,
                        seq,
                        issued_at_ms: unix_ms(now),
                        epoch: epoch.0,
                    };
                    tracing::info!(%campaign_id, user_id = %user, seq = seq.0, "an apply answered unknown holds a slot; publishing its win");
                    break self.republish_while_held(&event, &epoch).await;
                }
                Ok(Holding::None) => break "not_admitted",
                Ok(Holding::Lost) => break "gate_lost",
                Ok(Holding::Locked) => {}
                Err(error) => {
                    tracing::warn!(%campaign_id, user_id = %user, error = %coupon_runtime::chain(&error), retry_in = ?backoff.peek(), "cannot read the gate to resolve an apply answered unknown");
                }
            }
            if tokio::time::Instant::now() + backoff.peek() >= give_up {
                break "unresolved";
            }
            backoff.wait().await;
        };
        parts.metrics.count_unknown_resolved(result);
        if let Ok(mut resolving) = parts.resolving.lock() {
            resolving.remove(&key);
        }
    }

    async fn publish_win(
        self,
        event: CouponIssued,
        epoch: Epoch,
    ) -> Result<Outcome, IssuanceError> {
        let parts = &self.parts;
        if let Some(hold) = &parts.settings.publish_hold {
            // Test only: an api that stalls between its admission and its publish.
            hold.notified().await;
        }
        let started = Instant::now();
        let published = parts.publisher.publish(&event).await;
        parts
            .metrics
            .publish_seconds
            .observe(started.elapsed().as_secs_f64());
        match published {
            Published::Acked { .. } => Ok(self.confirm_acked(&event, epoch).await),
            Published::Refused(error) => {
                self.undo_admission(&event, epoch).await;
                Err(IssuanceError::Kafka(error))
            }
            Published::InDoubt(delivery) => {
                let seq = event.seq;
                let counted = self.parts.metrics.hold_in_doubt();
                let resolve = self.clone().resolve_in_doubt(event, epoch, delivery);
                self.parts.in_doubt.spawn(async move {
                    resolve.await;
                    drop(counted);
                });
                Ok(Outcome::Pending(seq))
            }
        }
    }

    /// An acknowledged event is `issued` only while the gate is still in the life that admitted
    /// it. If a rebuild or the reconciler moved it on meanwhile, the event may be past their
    /// fence and refused by the consumer: the apply is `pending`, and the consumer decides.
    async fn confirm_acked(&self, event: &CouponIssued, epoch: Epoch) -> Outcome {
        let parts = &self.parts;
        if !parts.settings.recheck_after_ack {
            return Outcome::Issued(event.seq);
        }
        match parts.gate.epoch(&event.campaign_id).await {
            Ok(Some(live)) if live == epoch => Outcome::Issued(event.seq),
            live => {
                tracing::warn!(campaign_id = %event.campaign_id, user_id = %event.user_id, seq = event.seq.0, admitted_in = epoch.0, live = ?live.as_ref().ok(), "acknowledged after the gate moved to another life; answering pending");
                parts
                    .metrics
                    .count_pending_resolved("acked_after_epoch_moved");
                Outcome::Pending(event.seq)
            }
        }
    }

    /// Resolves an apply answered `pending`. If the broker reports the event certainly not
    /// written, the admission is undone; otherwise the event is published again until
    /// acknowledged, so the coupon is issued. Never both.
    async fn resolve_in_doubt(
        self,
        event: CouponIssued,
        epoch: Epoch,
        delivery: Option<DeliveryFuture>,
    ) {
        let metrics = &self.parts.metrics;
        if let Some(delivery) = delivery {
            match delivery.await {
                Ok(Ok(_)) => return metrics.count_pending_resolved("issued"),
                Ok(Err((error, _))) if certainly_not_written(&error) => {
                    tracing::warn!(campaign_id = %event.campaign_id, user_id = %event.user_id, error = %coupon_runtime::chain(&error), "pending event refused; releasing its slot");
                    self.undo_admission(&event, epoch).await;
                    return metrics.count_pending_resolved("released");
                }
                Ok(Err(_)) | Err(_) => {}
            }
        }
        let result = self.republish_while_held(&event, &epoch).await;
        metrics.count_pending_resolved(result);
    }

    /// Publishes an event in doubt again until the broker acknowledges it, as long as its user
    /// still holds its slot in the gate. Once a rebuild that did not see the event, or the
    /// reconciler, took the slot back, the event is not published again (and if an earlier copy
    /// lands, the consumer refuses it as past their fence).
    async fn republish_while_held(&self, event: &CouponIssued, epoch: &Epoch) -> &'static str {
        let parts = &self.parts;
        let give_up = tokio::time::Instant::now() + IN_DOUBT_DEADLINE;
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
        loop {
            match parts
                .gate
                .holds(&event.campaign_id, event.user_id, event.seq)
                .await
            {
                Ok(true) => match parts.publisher.send_and_wait(event).await {
                    Ok(()) => return "issued",
                    Err(error) => {
                        parts.metrics.republish_failures.inc();
                        tracing::warn!(campaign_id = %event.campaign_id, user_id = %event.user_id, error = %coupon_runtime::chain(&error), retry_in = ?backoff.peek(), "republishing an event in doubt");
                    }
                },
                Ok(false) => {
                    tracing::warn!(campaign_id = %event.campaign_id, user_id = %event.user_id, seq = event.seq.0, admitted_in = epoch.0, "the slot was taken back (a rebuild or the reconciler); not republishing");
                    return "superseded_by_rebuild";
                }
                Err(error) => {
                    tracing::warn!(error = %coupon_runtime::chain(&error), "cannot read the gate; retrying")
                }
            }
            if tokio::time::Instant::now() + backoff.peek() >= give_up {
                tracing::error!(campaign_id = %event.campaign_id, user_id = %event.user_id, seq = event.seq.0, "gave up republishing an event in doubt; the reconciler releases its slot");
                return "unresolved";
            }
            backoff.wait().await;
        }
    }

    /// Takes the user back out of the gate and frees the slot. Retried with backoff while Redis
    /// is unreachable, so a failed publish never leaves a burnt slot behind for long.
    async fn undo_admission(&self, event: &CouponIssued, epoch: Epoch) {
        let parts = &self.parts;
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        for _ in 0..20 {
            match parts
                .gate
                .release(&event.campaign_id, event.user_id, event.seq, epoch)
                .await
            {
                Ok(released) => {
                    if released {
                        parts.metrics.releases.inc();
                    }
                    return;
                }
                Err(error) => {
                    parts.metrics.release_failures.inc();
                    tracing::warn!(campaign_id = %event.campaign_id, user_id = %event.user_id, error = %coupon_runtime::chain(&error), "failed to release an admission; retrying");
                    backoff.wait().await;
                }
            }
        }
        tracing::error!(campaign_id = %event.campaign_id, user_id = %event.user_id, seq = event.seq.0, "gave up releasing an admission; the slot stays held");
    }

    async fn counts_of(&self, campaign: &Campaign) -> Result<Counts, IssuanceError> {
        let parts = &self.parts;
        let gate = parts.gate.stats(&campaign.id).await?;
        let persisted = coupons::count(&parts.store, &campaign.id).await?;
        let failed_events =
            failed_events::count_open_for(&parts.store, campaign.id.as_str()).await?;
        Ok(Counts {
            issued: gate.winners,
            persisted,
            failed_events,
            gate_ready: Some(gate.initialised),
        })
    }
}

impl Issuance for Reliable {
    fn apply<'a>(
        &'a self,
        campaign: &'a Campaign,
        user: UserId,
        now: time::OffsetDateTime,
    ) -> BoxFuture<'a, Result<Outcome, IssuanceError>> {
        self.apply_steps(campaign, user, now).boxed()
    }

    fn counts<'a>(
        &'a self,
        campaign: &'a Campaign,
    ) -> BoxFuture<'a, Result<Counts, IssuanceError>> {
        self.counts_of(campaign).boxed()
    }

    fn prepare<'a>(
        &'a self,
        stored: &'a StoredCampaign,
    ) -> BoxFuture<'a, Result<(), IssuanceError>> {
        async move { rebuild::ensure_gate(self, stored).await.map(drop) }.boxed()
    }

    fn rebuild_gate<'a>(
        &'a self,
        campaign: &'a Campaign,
    ) -> BoxFuture<'a, Result<(), IssuanceError>> {
        rebuild::force_rebuild(self, campaign).boxed()
    }
}

/// What the gate step came to.
enum Decision {
    Gate(GateOutcome, Epoch),
    /// Outside the window: the gate touched nothing.
    Outside(Outcome),
}

fn unix_ms(at: time::OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or_default()
}
