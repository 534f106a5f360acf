//! The Redis gate's scripts against the real Redis: the rebuild's install never overwrites a
//! live gate, and only the lock's holder may install.

use std::{collections::BTreeMap, time::Duration};

use coupon_api::{
    configuration::GateMode,
    gate::{Admission, Gate, GatePlan, Installed, Over, Window},
    issuance::EpochSource,
};
use coupon_domain::{CampaignId, GateOutcome, Seq, UserId};
use testkit::{RedisNamespace, Stack};

async fn gate(namespace: &RedisNamespace) -> anyhow::Result<Gate> {
    let stack = Stack::from_env();
    Ok(Gate::connect(
        &stack.redis_url,
        namespace.prefix.trim_end_matches(':'),
        Duration::from_secs(5),
        GateMode::Atomic,
    )
    .await?)
}

fn user(id: u64) -> anyhow::Result<UserId> {
    Ok(UserId::parse(id)?)
}

fn plan(winners: &[(UserId, Seq)], next_seq: u32, free_slots: &[u32]) -> GatePlan {
    GatePlan {
        winners: winners.to_vec(),
        next_seq,
        free_slots: free_slots.to_vec(),
    }
}

#[tokio::test]
async fn a_rebuild_never_overwrites_a_live_gate_and_needs_its_own_lock() -> anyhow::Result<()> {
    let namespace = RedisNamespace::new(&Stack::from_env())?;
    let gate = gate(&namespace).await?;
    let campaign = CampaignId::parse("install")?;

    // A gate that admits: user 1 holds slot 1.
    gate.initialise_empty(&campaign, 1).await?;
    assert!(matches!(
        gate.admit(&campaign, user(1)?, 10, Window::ALWAYS).await?,
        Admission::Decided(GateOutcome::Issued(Seq(1)), _)
    ));
    let token = gate
        .try_lock_rebuild(&campaign, Duration::from_secs(30))
        .await?
        .ok_or_else(|| anyhow::anyhow!("lock not taken"))?;
    assert!(
        gate.try_lock_rebuild(&campaign, Duration::from_secs(30))
            .await?
            .is_none(),
        "the lock is exclusive"
    );

    // A stale rebuild (planned before the gate came back) must not touch it.
    let stale = gate
        .install(
            &campaign,
            &token,
            2,
            &plan(&[(user(9)?, Seq(1))], 1, &[]),
            Over::LostGate,
        )
        .await?;
    assert_eq!(stale, Installed::LiveGateExists);
    assert!(matches!(
        gate.admit(&campaign, user(1)?, 10, Window::ALWAYS).await?,
        Admission::Decided(GateOutcome::AlreadyApplied, _)
    ));

    // Once the gate is lost, only the lock's holder installs, and the new gate has a new epoch.
    let old_epoch = gate.epoch(&campaign).await?;
    gate.forget_marker(&campaign).await?;
    assert_eq!(
        gate.install(
            &campaign,
            "not-the-token",
            2,
            &GatePlan::default(),
            Over::LostGate
        )
        .await?,
        Installed::LockLost
    );
    let installed = gate
        .install(
            &campaign,
            &token,
            2,
            &plan(&[(user(1)?, Seq(1)), (user(3)?, Seq(3))], 3, &[2]),
            Over::LostGate,
        )
        .await?;
    assert_eq!(installed, Installed::Yes);
    assert_ne!(gate.epoch(&campaign).await?, old_epoch);
    assert_eq!(gate.epoch(&campaign).await?.map(|e| e.0), Some(2));
    let stats = gate.stats(&campaign).await?;
    assert_eq!((stats.winners, stats.next_seq, stats.released), (2, 3, 1));
    // The freed slot 2 goes out first.
    assert!(matches!(
        gate.admit(&campaign, user(4)?, 10, Window::ALWAYS).await?,
        Admission::Decided(GateOutcome::Issued(Seq(2)), _)
    ));
    let token = gate
        .try_lock_rebuild(&campaign, Duration::from_secs(30))
        .await?
        .ok_or_else(|| anyhow::anyhow!("install did not release the lock"))?;

    // A campaign's first gate replaces the live gate an earlier campaign of the id left.
    let first = gate
        .install(
            &campaign,
            &token,
            7,
            &plan(&[(user(9)?, Seq(1))], 1, &[]),
            Over::EarlierCampaign,
        )
        .await?;
    assert_eq!(first, Installed::Yes);
    assert_eq!(gate.epoch(&campaign).await?.map(|e| e.0), Some(7));
    assert_eq!(gate.winners(&campaign).await?, vec![(user(9)?, Seq(1))]);
    namespace.cleanup().await
}

/// How many of `epochs` repeat an earlier one.
fn repeats(epochs: &[u64]) -> usize {
    let distinct: std::collections::HashSet<&u64> = epochs.iter().collect();
    epochs.len() - distinct.len()
}

/// The epoch tells two lives of a gate apart, so it must never repeat: a counter in MySQL, where
/// Redis losing its data cannot reset it. The control: the wall clock in milliseconds, which
/// this project once used, repeats when asked as fast as the api can ask.
#[tokio::test]
async fn gate_epochs_never_repeat_and_the_check_catches_a_clock_that_does() -> anyhow::Result<()> {
    let stack = Stack::from_env();
    let db = testkit::TestDatabase::create(&stack).await?;
    let store = db.migrated().await?;
    let campaign = coupon_domain::Campaign::new(
        CampaignId::parse("epochs")?,
        coupon_domain::CouponLimit::DEFAULT,
        None,
        None,
    )?;
    assert!(coupon_store::campaigns::create(&store, &campaign).await?);
    let mut epochs = BTreeMap::new();
    for source in [EpochSource::Counter, EpochSource::Clock] {
        let mut taken = Vec::new();
        for _ in 0..50 {
            taken.push(source.next(&store, &campaign.id, 0).await?);
        }
        epochs.insert(format!("{source:?}"), taken);
    }
    assert_eq!(epochs["Counter"], (1..=50).collect::<Vec<u64>>());
    assert_eq!(repeats(&epochs["Counter"]), 0);
    assert!(
        repeats(&epochs["Clock"]) > 0,
        "the clock control never repeated: {:?}",
        epochs["Clock"]
    );
    store.disconnect().await;
    db.cleanup().await
}
