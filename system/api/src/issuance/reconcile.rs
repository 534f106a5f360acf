//! The reconciler: releases admissions that no event followed. An api that died between its
//! admission and the broker's ack, a graceful stop that ran out of time, or a Redis stall that
//! ran gate scripts after their callers had given up each leave a winner in the gate with no
//! event, no row and no failed event: a slot held by nobody, for good.
//!
//! Every api runs the loop; one at a time leads, by a lease in Redis. Each pass looks at every
//! campaign of the design whose gate holds more winners than MySQL has rows, and reads its
//! [`Traces`](super::traces::Traces). A winner without a trace is a suspect; one that is still a
//! suspect a full `after` later (well past the delivery deadline) is released, fenced:
//!
//! 1. under the campaign's rebuild lock, the gate moves to its next life (winners kept), so an
//!    api that gets the broker's ack for an older life from now on answers `pending`;
//! 2. the traces are read again (an event acknowledged before step 1 is on the broker now);
//! 3. MySQL records the revocation of each admission still without a trace, unless its row
//!    exists (one transaction, locking reads against the consumer's);
//! 4. the gate releases those slots, if each user still holds its slot in that life.
//!
//! A revoked admission's event, should it land later, is refused by the consumer; the reconciler
//! never publishes anything, so nobody told "refused" ever gets a coupon through it.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use coupon_domain::{CampaignId, Seq, Strategy, UserId};
use coupon_store::{campaigns, coupons, fences};
use tokio_util::sync::CancellationToken;

use super::{IssuanceError, Reliable};
use crate::gate::{Epoch, GateStats};

/// The shortest pause between two passes.
const MIN_EVERY: Duration = Duration::from_millis(100);

/// When and how the reconciler runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// Between two passes.
    pub every: Duration,
    /// How long a winner must have had no trace before it is released.
    pub after: Duration,
}

type Suspect = (CampaignId, UserId, Seq);

/// Campaigns a pass found with a row for every winner, with their gate as it was then. Rows are
/// never deleted and every row is a winner of the live gate; a release or a rebuild moves the
/// gate to a new epoch, which never repeats. So while the epoch and the gate's counts are
/// unchanged, the winners still have their rows, and the pass skips the campaign without
/// counting them in MySQL. (Rows lost by hand, a restored backup, are noticed once the gate
/// changes, the api restarts or another api leads.) Counting every campaign's rows on every
/// pass cost MariaDB 0.65 s of CPU every 5 s with a million rows on file, and the burst that
/// met it a tail of hundreds of milliseconds.
type Settled = HashMap<CampaignId, (Epoch, GateStats)>;

/// Runs passes every `schedule.every` until `stop` is cancelled.
pub async fn run(reliable: Reliable, schedule: Schedule, stop: CancellationToken) {
    let lease = format!("{:016x}", crate::gate::rand_token());
    let mut suspects: HashMap<Suspect, Instant> = HashMap::new();
    let mut settled = Settled::new();
    let every = schedule.every.max(MIN_EVERY);
    // The first pass waits one period too: at startup, when a burst may follow at once, it
    // would count every campaign's rows in MySQL (none is known settled yet).
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        match reliable.parts.gate.lead_reconciler(&lease, every * 3).await {
            Ok(true) => {}
            Ok(false) => {
                suspects.clear();
                settled.clear();
                continue;
            }
            Err(error) => {
                tracing::warn!(error = %coupon_runtime::chain(&error), "reconciler: cannot reach redis; next pass later");
                continue;
            }
        }
        // A stop does not wait for a pass: each of its steps is fenced and safe to cut short.
        let passed = tokio::select! {
            () = stop.cancelled() => return,
            passed = pass(&reliable, schedule.after, &mut suspects, &mut settled) => passed,
        };
        reliable.parts.metrics.reconciler_passes.inc();
        if let Err(error) = passed {
            tracing::warn!(error = %coupon_runtime::chain(&error), "reconciler pass failed; next pass later");
        }
    }
}

/// One pass over every campaign of the design.
async fn pass(
    reliable: &Reliable,
    after: Duration,
    suspects: &mut HashMap<Suspect, Instant>,
    settled: &mut Settled,
) -> Result<(), IssuanceError> {
    let parts = &reliable.parts;
    let now = Instant::now();
    let mut seen: HashMap<Suspect, Instant> = HashMap::new();
    let mut ranges = None;
    for stored in campaigns::list(&parts.store).await? {
        let id = &stored.campaign.id;
        // A campaign with no first gate on record: any gate Redis holds for the id is an
        // earlier campaign's, which the first gate's build replaces.
        if stored.campaign.strategy != Strategy::Reliable || !stored.gate_initialised {
            continue;
        }
        let Some(epoch) = parts.gate.epoch(id).await? else {
            continue; // lost: the rebuild decides
        };
        let gate = parts.gate.stats(id).await?;
        if settled.get(id) == Some(&(epoch, gate)) && parts.settings.reconcile_skips_settled {
            continue; // nothing admitted or released since every winner had its row
        }
        parts.metrics.reconciler_row_counts.inc();
        if gate.winners <= coupons::count(&parts.store, id).await? {
            settled.insert(id.clone(), (epoch, gate));
            continue; // every winner has its row
        }
        settled.remove(id);
        let ranges = match &ranges {
            Some(ranges) => Vec::clone(ranges),
            None => ranges.insert(reliable.unconsumed_ranges().await?).clone(),
        };
        let traced = reliable.traces(id, ranges).await?.users();
        let mut due = Vec::new();
        for (user, seq) in parts.gate.winners(id).await? {
            if traced.contains(&user) {
                continue;
            }
            let suspect = (id.clone(), user, seq);
            let since = suspects.get(&suspect).copied().unwrap_or(now);
            if now.duration_since(since) >= after {
                // Released now, or a suspect afresh: a later admission of the same user and
                // slot must wait its own full `after`.
                due.push((user, seq));
            } else {
                seen.insert(suspect, since);
            }
        }
        if !due.is_empty() {
            release(reliable, id, epoch, &due).await?;
        }
    }
    *suspects = seen;
    Ok(())
}

/// Releases `due`, fenced (steps 1-4 of the module's description).
async fn release(
    reliable: &Reliable,
    id: &CampaignId,
    live: Epoch,
    due: &[(UserId, Seq)],
) -> Result<(), IssuanceError> {
    let parts = &reliable.parts;
    let Some(token) = parts
        .gate
        .try_lock_rebuild(id, super::traces::LOCKED_READ)
        .await?
    else {
        return Ok(()); // a rebuild runs: it decides from the stores itself
    };
    let released = async {
        let next = Epoch(
            parts
                .settings
                .gate_epochs
                .next(&parts.store, id, live.0)
                .await?,
        );
        if !parts.gate.advance_epoch(id, live, next).await? {
            return Ok(0);
        }
        let traced = reliable
            .traces(id, reliable.unconsumed_ranges().await?)
            .await?
            .users();
        let still: Vec<(UserId, Seq)> = due
            .iter()
            .copied()
            .filter(|(user, _)| !traced.contains(user))
            .collect();
        let revoked = fences::revoke(&parts.store, id, next.0, &still).await?;
        let released = parts.gate.release_slots(id, next, &revoked).await?;
        for (user, seq) in &revoked {
            tracing::warn!(campaign_id = %id, user_id = %user, seq = seq.0, epoch = next.0, "reconciler: released a slot no event followed");
        }
        Ok::<_, IssuanceError>(released)
    }
    .await;
    let _ = parts.gate.unlock_rebuild(id, &token).await;
    parts.metrics.reconciled_releases.inc_by(released?);
    Ok(())
}
