//! The consumer's side of fencing (issue 11, items 2 and 4): an event a rebuild did not read,
//! or whose slot the reconciler took back, is settled as a failed event with its reason, never
//! written; an event of a rebuild still setting its fence waits. The control writes both.

use coupon_domain::{Campaign, CampaignId, CouponIssued, CouponLimit, Seq, UserId};
use coupon_store::{
    CouponToWrite, FailureReason, Fences, OnFileRead, Source, Store, StoreError, WriteOutcome,
    campaigns, coupons, failed_events, fences,
};
use testkit::{Stack, TestDatabase};

/// User `user`'s event for slot `seq`, admitted in `epoch`, found at `offset` of partition 0.
fn event(campaign: &CampaignId, user: u64, seq: u32, epoch: u64, offset: i64) -> CouponToWrite {
    let event = CouponIssued {
        campaign_id: campaign.clone(),
        user_id: UserId::parse(user).expect("a valid user id"),
        seq: Seq(seq),
        issued_at_ms: 0,
        epoch,
    };
    CouponToWrite {
        payload: event.to_json(),
        event,
        limit: CouponLimit::try_from(10).expect("a valid limit"),
        source: Source {
            partition: 0,
            offset,
        },
    }
}

async fn write(
    store: &Store,
    coupon: CouponToWrite,
    check: Fences,
) -> anyhow::Result<WriteOutcome> {
    let outcomes =
        coupons::write_batch_reading(store, &[coupon], &[], OnFileRead::Locking, check).await?;
    outcomes
        .first()
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("no outcome"))
}

#[tokio::test]
async fn superseded_and_revoked_events_are_settled_not_written() -> anyhow::Result<()> {
    let stack = Stack::from_env();
    let db = TestDatabase::create(&stack).await?;
    let store = db.migrated().await?;
    let id = CampaignId::parse("fences")?;
    campaigns::create(
        &store,
        &Campaign::new(id.clone(), CouponLimit::try_from(10)?, None, None)?,
    )
    .await?;
    // A rebuild into life 5 read partition 0 up to offset 10; the reconciler took slot 3 back
    // from user 3 below life 7.
    fences::open_rebuild_fence(&store, &id, 5, 1).await?;
    // While the rebuild reads its ends, an event of an older life waits (a transient error).
    let waiting = coupons::write_batch(&store, &[event(&id, 9, 9, 4, 2)], &[]).await;
    assert!(
        matches!(&waiting, Err(error @ StoreError::FencePending { .. }) if error.is_transient()),
        "{waiting:?}"
    );
    fences::close_rebuild_fence(&store, &id, 5, &[(0, 10)]).await?;
    let user3 = UserId::parse(3)?;
    let revoked = fences::revoke(&store, &id, 7, &[(user3, Seq(3))]).await?;
    assert_eq!(revoked, vec![(user3, Seq(3))]);

    let enforced = Fences::Enforced;
    // Below the rebuild's read, an old life's event counts; past it, it is superseded.
    assert_eq!(
        write(&store, event(&id, 1, 1, 4, 9), enforced).await?,
        WriteOutcome::Written
    );
    assert_eq!(
        write(&store, event(&id, 2, 2, 4, 10), enforced).await?,
        WriteOutcome::Refused {
            reason: FailureReason::Superseded
        }
    );
    assert_eq!(
        write(&store, event(&id, 3, 3, 6, 20), enforced).await?,
        WriteOutcome::Refused {
            reason: FailureReason::Revoked
        }
    );
    // A later admission of the same user and slot, in the gate's new life, is written.
    assert_eq!(
        write(&store, event(&id, 3, 3, 7, 21), enforced).await?,
        WriteOutcome::Written
    );
    let failed = failed_events::list_for(&store, "fences").await?;
    assert_eq!(failed.len(), 2);
    assert!(
        failed.iter().all(|f| !f.open),
        "settled events are resolved: {failed:?}"
    );

    // The reconciler never revokes an admission whose row is on file.
    let user1 = UserId::parse(1)?;
    assert!(
        fences::revoke(&store, &id, 8, &[(user1, Seq(1))])
            .await?
            .is_empty()
    );

    // The control: without the fences, the superseded event becomes a coupon.
    assert_eq!(
        write(&store, event(&id, 2, 2, 4, 10), Fences::Ignored).await?,
        WriteOutcome::Written
    );
    Ok(())
}
