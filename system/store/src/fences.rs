//! Fences in MySQL: where a gate rebuild read Kafka to (`gate_fence`), and the slots the
//! reconciler took back (`revoked_admission`). The rule over them is
//! [`coupon_domain::fence::standing`]; the consumer applies it in the transaction that writes a
//! batch ([`screen`]), with locking reads, so a revocation and a coupon row for the same user
//! can never both commit.

use coupon_domain::{
    CampaignId, Seq, UserId,
    fence::{RebuildFence, Revocation, Standing},
};
use mysql_async::{Transaction, TxOpts, Value, prelude::Queryable};

use crate::{CouponToWrite, Store, StoreError};

/// A rebuild's first step, before it reads the high watermarks: a fence for life `epoch` of
/// the campaign's gate with no ends yet. Events of older lives wait ([`Standing::FencePending`])
/// until [`close_rebuild_fence`] sets them.
pub async fn open_rebuild_fence(
    store: &Store,
    campaign: &CampaignId,
    epoch: u64,
    partitions: i32,
) -> Result<(), StoreError> {
    if partitions <= 0 {
        return Ok(());
    }
    let rows = vec!["(?, ?, ?, NULL)"; usize::try_from(partitions).unwrap_or_default()].join(", ");
    let params: Vec<Value> = (0..partitions)
        .flat_map(|p| [campaign.as_str().into(), epoch.into(), p.into()])
        .collect();
    store
        .run(
            format!(
                "INSERT INTO gate_fence (campaign_id, epoch, kafka_partition, end_offset) VALUES {rows}"
            ),
            params,
        )
        .await
}

/// Drops the fences of `campaign` whose ends were never set: a rebuild that failed or died
/// between [`open_rebuild_fence`] and [`close_rebuild_fence`] installed nothing, so its fence
/// guards nothing, and left as it is it would keep older events waiting for ever. Only the
/// holder of the campaign's rebuild lock may call this (it alone writes fences).
pub async fn drop_unset_fences(store: &Store, campaign: &CampaignId) -> Result<(), StoreError> {
    store
        .run(
            "DELETE FROM gate_fence WHERE campaign_id = ? AND end_offset IS NULL",
            (campaign.as_str(),),
        )
        .await
}

/// Sets where the rebuild of life `epoch` read each partition to (its high watermarks).
pub async fn close_rebuild_fence(
    store: &Store,
    campaign: &CampaignId,
    epoch: u64,
    ends: &[(i32, i64)],
) -> Result<(), StoreError> {
    let mut conn = store.conn().await?;
    let mut tx = conn.start_transaction(TxOpts::default()).await?;
    for (partition, end) in ends {
        tx.exec_drop(
            "UPDATE gate_fence SET end_offset = ? \
             WHERE campaign_id = ? AND epoch = ? AND kafka_partition = ?",
            (end, campaign.as_str(), epoch, partition),
        )
        .await?;
    }
    // A partition the rebuild found no end for (none such today) must not keep events waiting.
    tx.exec_drop(
        "UPDATE gate_fence SET end_offset = 0 \
         WHERE campaign_id = ? AND epoch = ? AND end_offset IS NULL",
        (campaign.as_str(), epoch),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Takes back each admission that has no coupon row, in one transaction: records its revocation
/// below `below_epoch`. A row already on file (or committed meanwhile: the read locks) keeps its
/// admission. Under REPEATABLE READ the locking read of an absent row locks its gap, as the
/// consumer's read of an absent revocation does: of a revocation and a row for the same user,
/// one transaction waits for the other (or a deadlock aborts one, which is retried), never both
/// commit unseen. Returns the admissions revoked, which the caller then releases in the gate.
pub async fn revoke(
    store: &Store,
    campaign: &CampaignId,
    below_epoch: u64,
    admissions: &[(UserId, Seq)],
) -> Result<Vec<(UserId, Seq)>, StoreError> {
    let mut conn = store.conn().await?;
    let mut tx = conn.start_transaction(crate::serializing_tx()).await?;
    let mut revoked = Vec::with_capacity(admissions.len());
    for (user, seq) in admissions {
        let on_file: Option<u32> = tx
            .exec_first(
                "SELECT seq FROM coupon WHERE campaign_id = ? AND user_id = ? LOCK IN SHARE MODE",
                (campaign.as_str(), user.get()),
            )
            .await?;
        if on_file.is_some() {
            continue;
        }
        tx.exec_drop(
            "INSERT INTO revoked_admission (campaign_id, user_id, seq, below_epoch) \
             VALUES (?, ?, ?, ?) \
             ON DUPLICATE KEY UPDATE below_epoch = GREATEST(below_epoch, ?)",
            (
                campaign.as_str(),
                user.get(),
                seq.0,
                below_epoch,
                below_epoch,
            ),
        )
        .await?;
        revoked.push((*user, *seq));
    }
    tx.commit().await?;
    Ok(revoked)
}

/// A campaign's rebuild fences and revocations, as committed (the rebuild and the verifier).
pub async fn of_campaign(
    store: &Store,
    campaign: &CampaignId,
) -> Result<(Vec<RebuildFence>, Vec<Revocation>), StoreError> {
    let mut conn = store.conn().await?;
    let fences = rebuild_fences(&mut conn, campaign, "").await?;
    let revocations = revocations(&mut conn, campaign, &[], "").await?;
    Ok((fences, revocations))
}

/// The standing of each coupon of a batch, read inside the batch's transaction with locks.
pub(crate) async fn screen(
    tx: &mut Transaction<'_>,
    coupons: &[CouponToWrite],
) -> Result<Vec<Standing>, StoreError> {
    let mut campaigns: Vec<&CampaignId> = coupons.iter().map(|c| &c.event.campaign_id).collect();
    campaigns.sort();
    campaigns.dedup();
    let mut standings = vec![Standing::Counts; coupons.len()];
    for campaign in campaigns {
        let users: Vec<u64> = coupons
            .iter()
            .filter(|c| &c.event.campaign_id == campaign)
            .map(|c| c.event.user_id.get())
            .collect();
        let fences = rebuild_fences(tx, campaign, " LOCK IN SHARE MODE").await?;
        let revoked = revocations(tx, campaign, &users, " LOCK IN SHARE MODE").await?;
        for (coupon, standing) in coupons.iter().zip(standings.iter_mut()) {
            if &coupon.event.campaign_id == campaign {
                *standing = coupon_domain::fence::standing(
                    &coupon.event,
                    coupon.source.partition,
                    coupon.source.offset,
                    &fences,
                    &revoked,
                );
            }
        }
    }
    Ok(standings)
}

async fn rebuild_fences<Q: Queryable>(
    conn: &mut Q,
    campaign: &CampaignId,
    lock: &str,
) -> Result<Vec<RebuildFence>, StoreError> {
    let rows: Vec<(u64, i32, Option<i64>)> = conn
        .exec(
            format!(
                "SELECT epoch, kafka_partition, end_offset FROM gate_fence WHERE campaign_id = ?{lock}"
            ),
            (campaign.as_str(),),
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|(epoch, partition, end_offset)| RebuildFence {
            epoch,
            partition,
            end_offset,
        })
        .collect())
}

/// The campaign's revocations, of `users` only unless that is empty.
async fn revocations<Q: Queryable>(
    conn: &mut Q,
    campaign: &CampaignId,
    users: &[u64],
    lock: &str,
) -> Result<Vec<Revocation>, StoreError> {
    let mut params: Vec<Value> = vec![campaign.as_str().into()];
    let filter = if users.is_empty() {
        String::new()
    } else {
        params.extend(users.iter().map(|u| Value::from(*u)));
        format!(" AND user_id IN ({})", vec!["?"; users.len()].join(", "))
    };
    let rows: Vec<(u64, u32, u64)> = conn
        .exec(
            format!(
                "SELECT user_id, seq, below_epoch FROM revoked_admission WHERE campaign_id = ?{filter}{lock}"
            ),
            params,
        )
        .await?;
    rows.into_iter()
        .map(|(user, seq, below_epoch)| {
            Ok(Revocation {
                user: UserId::parse(user).map_err(|e| {
                    StoreError::Decode(format!("revoked_admission user {user}: {e}"))
                })?,
                seq: Seq(seq),
                below_epoch,
            })
        })
        .collect()
}
