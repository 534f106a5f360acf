//! MySQL: the campaign's limit, its coupon rows and its failed events. Read only: the verifier
//! connects without running migrations.

use anyhow::Context;
use coupon_domain::{CampaignId, Strategy};
use coupon_store::{Store, campaigns, coupons, course, failed_events};

use super::CampaignFacts;
use crate::reconcile::{FailedFact, RowFact};

pub async fn connect(database_url: &str) -> anyhow::Result<Store> {
    Store::open(database_url, 4).await.with_context(|| {
        format!(
            "mysql at {} is unreachable",
            coupon_store::redact(database_url)
        )
    })
}

pub async fn campaign_ids(store: &Store) -> anyhow::Result<Vec<String>> {
    Ok(campaigns::list(store)
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
    if !strategy.has_gate() {
        return course_stage(store, &campaign_id, strategy, limit).await;
    }
    let rows = coupons::list(store, &campaign_id)
        .await?
        .into_iter()
        .map(|r| RowFact {
            user_id: r.user_id,
            seq: r.seq,
            partition: r.kafka_partition,
            offset: r.kafka_offset,
        })
        .collect();
    let failed = failed_events::list_for(store, id)
        .await?
        .into_iter()
        .map(|f| FailedFact {
            user_id: f.user_id,
            reason: f.reason.as_str().to_owned(),
            open: f.open,
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
            partition: -1,
            offset: -1,
        })
        .collect();
    let failed = course::list_failed_events(store, id)
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
