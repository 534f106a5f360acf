//! MySQL: the campaign's limit, its coupon rows and its failed events. Read only: the verifier
//! connects without running migrations.

use anyhow::Context;
use coupon_domain::{CampaignId, Strategy};
use coupon_store::{Store, campaigns, coupons, course, failed_events, fences};

use super::CampaignFacts;
use crate::reconcile::{FailedFact, KafkaSource, RowFact, SaleWindow};

pub async fn connect(database_url: &str) -> anyhow::Result<Store> {
    Store::open(database_url, 4).await.with_context(|| {
        format!(
            "mysql at {} is unreachable",
            coupon_store::redact(database_url)
        )
    })
}

pub async fn campaign_ids(store: &Store) -> anyhow::Result<Vec<String>> {
    Ok(campaigns::list_all_valid(store)
        .await
        .context("failed to list campaigns")?
        .into_iter()
        .map(|c| c.campaign.id.to_string())
        .collect())
}

/// The campaign's rows and failed events; the gate is filled in by the Redis collector.
pub async fn campaign(store: &Store, id: &str) -> anyhow::Result<CampaignFacts> {
    let campaign_id =
        CampaignId::parse(id).with_context(|| format!("`{id}` is not a campaign id"))?;
    let stored = campaigns::find(store, &campaign_id)
        .await?
        .with_context(|| format!("campaign `{id}` does not exist in mysql"))?;
    let strategy = stored.campaign.strategy;
    let limit = stored.campaign.limit.get();
    let first_epoch = stored.first_epoch;
    let unix_us = |at: Option<time::OffsetDateTime>| {
        at.map(|at| i64::try_from(at.unix_timestamp_nanos() / 1000).unwrap_or(i64::MAX))
    };
    let window = SaleWindow {
        opens_at_us: unix_us(stored.campaign.opens_at),
        closes_at_us: unix_us(stored.campaign.closes_at),
    };
    if !strategy.has_gate() {
        let mut facts = course_stage(store, &campaign_id, strategy, limit).await?;
        facts.window = window;
        return Ok(facts);
    }
    let rows = coupons::list(store, &campaign_id)
        .await?
        .into_iter()
        .map(|r| RowFact {
            user_id: r.user_id,
            seq: r.seq,
            source: kafka_source(r.kafka_partition, r.kafka_offset),
        })
        .collect();
    let failed = failed_events::list_for(store, id)
        .await?
        .into_iter()
        .map(|f| FailedFact {
            user_id: f.user_id,
            reason: f.reason.as_str().to_owned(),
            open: f.open,
            source: kafka_source(f.kafka_partition, f.kafka_offset),
        })
        .collect();
    let (rebuild_fences, revocations) = fences::of_campaign(store, &campaign_id).await?;
    Ok(CampaignFacts {
        campaign_id: id.to_owned(),
        strategy,
        limit,
        rows,
        failed,
        gate: None,
        rebuild_fences,
        revocations,
        first_epoch,
        window,
    })
}

/// Where a row or failed event came from in Kafka. The columns are `NOT NULL`: a row no event
/// wrote (a negative control's planted row) stores -1 in both, which means none.
fn kafka_source(partition: i32, offset: i64) -> Option<KafkaSource> {
    (partition >= 0 && offset >= 0).then_some(KafkaSource { partition, offset })
}

/// A course stage's rows and failed events, from the course's tables. Rows have no slot: each
/// gets its position in insertion order, so the rows beyond the limit are the last ones.
async fn course_stage(
    store: &Store,
    id: &CampaignId,
    strategy: Strategy,
    limit: u32,
) -> anyhow::Result<CampaignFacts> {
    let rows = course::list_coupons(store, id)
        .await?
        .into_iter()
        .zip(1u32..)
        .map(|(row, position)| RowFact {
            user_id: row.user_id,
            seq: position,
            source: None,
        })
        .collect();
    let failed = course::list_failed_events(store, id)
        .await?
        .into_iter()
        .map(|user_id| FailedFact {
            user_id: Some(user_id),
            reason: "course_failed_event".to_owned(),
            open: false,
            source: None,
        })
        .collect();
    Ok(CampaignFacts {
        campaign_id: id.to_string(),
        strategy,
        limit,
        rows,
        failed,
        gate: None,
        rebuild_fences: Vec::new(),
        revocations: Vec::new(),
        first_epoch: None,
        window: SaleWindow::default(),
    })
}

/// The strategy each campaign issues with.
pub async fn strategy(store: &Store, id: &str) -> anyhow::Result<Strategy> {
    let campaign_id =
        CampaignId::parse(id).with_context(|| format!("`{id}` is not a campaign id"))?;
    Ok(campaigns::find(store, &campaign_id)
        .await?
        .with_context(|| format!("campaign `{id}` does not exist in mysql"))?
        .campaign
        .strategy)
}

/// Rows and open failed events of a campaign, for the drain wait.
pub async fn written(store: &Store, id: &str) -> anyhow::Result<(u64, u64)> {
    let campaign_id =
        CampaignId::parse(id).with_context(|| format!("`{id}` is not a campaign id"))?;
    let rows = coupons::count(store, &campaign_id).await?;
    let open = failed_events::count_open_for(store, id).await?;
    Ok((rows, open))
}

#[cfg(test)]
mod tests {
    use coupon_domain::{Campaign, CouponIssued, CouponLimit, Seq, UserId};
    use coupon_store::{
        CouponToWrite, FailureReason, Source, WriteOutcome,
        admin::{self, PLANTED_USER_ID},
    };
    use testkit::{Stack, TestDatabase};

    use super::*;

    /// An event for slot `seq`, as the consumer would write it.
    fn coupon(campaign: &CampaignId, user: u64, seq: u32, limit: CouponLimit) -> CouponToWrite {
        let event = CouponIssued {
            campaign_id: campaign.clone(),
            user_id: UserId::parse(user).expect("a valid user id"),
            seq: Seq(seq),
            issued_at_ms: 0,
            epoch: 0,
        };
        CouponToWrite {
            payload: event.to_json(),
            event,
            limit,
            source: Source {
                partition: 0,
                offset: i64::from(seq),
            },
        }
    }

    #[tokio::test]
    async fn a_planted_row_is_collected_beyond_the_limit_without_a_kafka_source()
    -> anyhow::Result<()> {
        let db = TestDatabase::create(&Stack::from_env()).await?;
        // One connection, so the planting's session is the one the next write uses.
        db.migrated().await?.disconnect().await;
        let store = Store::open(&db.url, 1).await?;
        let id = CampaignId::parse("planted")?;
        let limit = CouponLimit::parse(2)?;
        campaigns::create(&store, &Campaign::new(id.clone(), limit, None, None)?).await?;
        coupons::write_batch(&store, &[coupon(&id, 1, 1, limit)], &[]).await?;

        assert!(admin::plant_extra_coupon_row(&store, &id).await?);
        let facts = campaign(&store, "planted").await?;
        assert_eq!(
            facts.rows,
            vec![
                RowFact {
                    user_id: 1,
                    seq: 1,
                    source: Some(KafkaSource {
                        partition: 0,
                        offset: 1
                    }),
                },
                RowFact {
                    user_id: PLANTED_USER_ID,
                    seq: 3,
                    source: None,
                },
            ]
        );

        let beyond = coupons::write_batch(&store, &[coupon(&id, 2, 4, limit)], &[]).await?;
        assert_eq!(
            beyond,
            vec![WriteOutcome::Refused {
                reason: FailureReason::SeqOutOfRange
            }],
            "the planting switched the constraint checks back on"
        );
        let missing = CampaignId::parse("missing")?;
        assert!(!admin::plant_extra_coupon_row(&store, &missing).await?);
        store.disconnect().await;
        db.cleanup().await
    }
}
