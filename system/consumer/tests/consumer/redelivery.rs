//! Two consumers write the same coupon during a rebalance: this one's batch is refused a row
//! that the other committed while this batch ran. The row on file is read with a lock, so the
//! batch sees it and counts the coupon as already written. The control reads from the
//! transaction's snapshot, which predates the other's commit: it misses the row and captures a
//! correct coupon as a failed event ("slot taken").

use std::time::Duration;

use coupon_domain::{Campaign, CampaignId, CouponIssued, CouponLimit, Seq, UserId};
use coupon_store::{
    CouponToWrite, FailureReason, Fences, OnFileRead, Source, WriteOutcome, admin::PendingRow,
    campaigns, coupons,
};
use testkit::{Stack, TestDatabase, eventually};

fn coupon(campaign: &CampaignId, user: u64, seq: u32) -> anyhow::Result<CouponToWrite> {
    let event = CouponIssued {
        campaign_id: campaign.clone(),
        user_id: UserId::parse(user)?,
        seq: Seq(seq),
        issued_at_ms: 0,
        epoch: 0,
    };
    Ok(CouponToWrite {
        payload: event.to_json(),
        event,
        limit: CouponLimit::try_from(10)?,
        source: Source {
            partition: 0,
            offset: i64::from(seq),
        },
    })
}

/// User 1's coupon is on file already (a redelivery); user 2's is being written by another
/// consumer that has not committed yet. This consumer's batch holds both, and reads a refused
/// row's coupon on file with `read`. Returns what the batch made of each.
async fn rebalance_race(read: OnFileRead) -> anyhow::Result<Vec<WriteOutcome>> {
    let stack = Stack::from_env();
    let db = TestDatabase::create(&stack).await?;
    let store = db.migrated().await?;
    let campaign = CampaignId::parse("race")?;
    campaigns::create(
        &store,
        &Campaign::new(campaign.clone(), CouponLimit::try_from(10)?, None, None)?,
    )
    .await?;
    let (first, second) = (coupon(&campaign, 1, 1)?, coupon(&campaign, 2, 2)?);
    coupons::write_batch(&store, std::slice::from_ref(&first), &[]).await?;
    let other_consumer = PendingRow::insert(&store, &campaign, 2, 2, 10).await?;
    let batch = tokio::spawn({
        let store = store.clone();
        async move {
            coupons::write_batch_reading(&store, &[first, second], &[], read, Fences::Enforced)
                .await
        }
    });
    eventually(
        "the batch to wait for the other consumer's row",
        Duration::from_secs(30),
        || async { Ok((other_consumer.waiters(&store).await? >= 1).then_some(())) },
    )
    .await?;
    other_consumer.commit().await?;
    let outcomes = batch.await??;
    store.disconnect().await;
    db.cleanup().await?;
    Ok(outcomes)
}

#[tokio::test]
async fn a_coupon_another_consumer_committed_meanwhile_counts_as_already_written()
-> anyhow::Result<()> {
    assert_eq!(
        rebalance_race(OnFileRead::Locking).await?,
        vec![WriteOutcome::AlreadyWritten, WriteOutcome::AlreadyWritten]
    );
    Ok(())
}

#[tokio::test]
async fn control_a_snapshot_read_mistakes_it_for_a_taken_slot() -> anyhow::Result<()> {
    assert_eq!(
        rebalance_race(OnFileRead::Snapshot).await?,
        vec![
            WriteOutcome::AlreadyWritten,
            WriteOutcome::Refused {
                reason: FailureReason::SlotTaken
            }
        ]
    );
    Ok(())
}
