//! MySQL: the campaign's limit, its coupon rows and its failed events. Read only: the verifier
//! connects without running migrations.

use std::time::Duration;

use anyhow::Context;
use coupon_domain::{CampaignId, Strategy};
use coupon_store::{campaigns, coupons, course, failed_events};
use sqlx::{MySqlPool, mysql::MySqlPoolOptions};

use super::CampaignFacts;
use crate::reconcile::{FailedFact, RowFact};

pub async fn connect(database_url: &str) -> anyhow::Result<MySqlPool> {
    MySqlPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(5))
        .connect(database_url)
        .await
        .with_context(|| {
            format!(
                "mysql at {} is unreachable",
                coupon_store::redact(database_url)
            )
        })
}

pub async fn campaign_ids(pool: &MySqlPool) -> anyhow::Result<Vec<String>> {
    Ok(campaigns::list(pool)
        .await
        .context("failed to list campaigns")?
        .into_iter()
        .map(|c| c.campaign.id.to_string())
        .collect())
}

/// The campaign's rows and failed events; the gate is filled in by the Redis collector.
pub async fn campaign(pool: &MySqlPool, id: &str) -> anyhow::Result<CampaignFacts> {
    let campaign_id =
        CampaignId::parse(id).with_context(|| format!("`{id}` is not a campaign id"))?;
    let stored = campaigns::find(pool, &campaign_id)
        .await?
        .with_context(|| format!("campaign `{id}` does not exist in mysql"))?;
    let strategy = stored.campaign.strategy;
    let limit = stored.campaign.limit.get();
    if strategy.is_course_stage() {
        return course_stage(pool, &campaign_id, strategy, limit).await;
    }
    let rows = coupons::list(pool, &campaign_id)
        .await?
        .into_iter()
        .map(|r| RowFact {
            user_id: r.user_id,
            seq: r.seq,
            partition: r.kafka_partition,
            offset: r.kafka_offset,
        })
        .collect();
    let failed = failed_events::list_for(pool, id)
        .await?
        .into_iter()
        .map(|f| FailedFact {
            user_id: f.user_id,
            reason: f.reason,
            open: f.status == "open",
            partition: f.kafka_partition,
            offset: f.kafka_offset,
        })
        .collect();
    Ok(CampaignFacts {
        campaign_id: id.to_owned(),
        strategy,
        limit,
        rows,
        failed,
        gate: None,
    })
}

/// A course stage's rows and failed events, from the course's tables. Rows have no slot: each
/// gets its position in insertion order, so the rows beyond the limit are the last ones.
async fn course_stage(
    pool: &MySqlPool,
    id: &CampaignId,
    strategy: Strategy,
    limit: u32,
) -> anyhow::Result<CampaignFacts> {
    let rows = course::list_coupons(pool, id)
        .await?
        .into_iter()
        .zip(1u32..)
        .map(|(row, position)| RowFact {
            user_id: row.user_id,
            seq: position,
            partition: -1,
            offset: -1,
        })
        .collect();
    let failed = course::list_failed_events(pool, id)
        .await?
        .into_iter()
        .map(|user_id| FailedFact {
            user_id: Some(user_id),
            reason: "course_failed_event".to_owned(),
            open: false,
            partition: -1,
            offset: -1,
        })
        .collect();
    Ok(CampaignFacts {
        campaign_id: id.to_string(),
        strategy,
        limit,
        rows,
        failed,
        gate: None,
    })
}

/// The strategy each campaign issues with.
pub async fn strategy(pool: &MySqlPool, id: &str) -> anyhow::Result<Strategy> {
    let campaign_id =
        CampaignId::parse(id).with_context(|| format!("`{id}` is not a campaign id"))?;
    Ok(campaigns::find(pool, &campaign_id)
        .await?
        .with_context(|| format!("campaign `{id}` does not exist in mysql"))?
        .campaign
        .strategy)
}

/// Rows and open failed events of a campaign, for the drain wait.
pub async fn written(pool: &MySqlPool, id: &str) -> anyhow::Result<(u64, u64)> {
    let (rows,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM coupon WHERE campaign_id = ?")
        .bind(id)
        .fetch_one(pool)
        .await?;
    let (open,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM failed_event WHERE campaign_id = ? AND status = 'open'",
    )
    .bind(id)
    .fetch_one(pool)
    .await?;
    Ok((
        u64::try_from(rows).unwrap_or_default(),
        u64::try_from(open).unwrap_or_default(),
    ))
}
