//! Campaigns: created by the admin endpoint (or the migration, for `default`), read by all.

use coupon_domain::{Campaign, CampaignId, CouponLimit, Strategy};
use sqlx::{MySqlPool, Row, mysql::MySqlRow};
use time::PrimitiveDateTime;

use crate::{StoreError, to_utc_datetime};

/// A campaign as stored, with whether its Redis gate was ever initialised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCampaign {
    pub campaign: Campaign,
    pub gate_initialised: bool,
}

const COLUMNS: &str = "id, coupon_limit, opens_at, closes_at, gate_initialised_at, strategy";

fn from_row(row: &MySqlRow) -> Result<StoredCampaign, sqlx::Error> {
    let decode = |e: Box<dyn std::error::Error + Send + Sync>| sqlx::Error::Decode(e);
    let id: String = row.try_get("id")?;
    let limit: u32 = row.try_get("coupon_limit")?;
    let opens_at: Option<PrimitiveDateTime> = row.try_get("opens_at")?;
    let closes_at: Option<PrimitiveDateTime> = row.try_get("closes_at")?;
    let gate_initialised_at: Option<PrimitiveDateTime> = row.try_get("gate_initialised_at")?;
    let strategy: String = row.try_get("strategy")?;
    let strategy: Strategy = strategy
        .parse()
        .map_err(|e: coupon_domain::strategy::StrategyError| decode(e.into()))?;
    let campaign = Campaign::new(
        CampaignId::parse(&id).map_err(|e| decode(e.into()))?,
        CouponLimit::parse(u64::from(limit)).map_err(|e| decode(e.into()))?,
        opens_at.map(PrimitiveDateTime::assume_utc),
        closes_at.map(PrimitiveDateTime::assume_utc),
    )
    .map_err(|e| decode(e.into()))?
    .with_strategy(strategy);
    Ok(StoredCampaign {
        campaign,
        gate_initialised: gate_initialised_at.is_some(),
    })
}

#[tracing::instrument(skip_all, fields(campaign_id = %id))]
pub async fn find(pool: &MySqlPool, id: &CampaignId) -> Result<Option<StoredCampaign>, StoreError> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM campaign WHERE id = ?"))
        .bind(id.as_str())
        .fetch_optional(pool)
        .await?;
    Ok(row.as_ref().map(from_row).transpose()?)
}

pub async fn list(pool: &MySqlPool) -> Result<Vec<StoredCampaign>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM campaign ORDER BY created_at, id"
    ))
    .fetch_all(pool)
    .await?;
    Ok(rows.iter().map(from_row).collect::<Result<_, _>>()?)
}

/// Inserts the campaign; `Ok(false)` when one with that id already exists.
#[tracing::instrument(skip_all, fields(campaign_id = %campaign.id))]
pub async fn create(pool: &MySqlPool, campaign: &Campaign) -> Result<bool, StoreError> {
    let result = sqlx::query(
        "INSERT INTO campaign (id, coupon_limit, opens_at, closes_at, strategy) VALUES (?, ?, ?, ?, ?)",
    )
    .bind(campaign.id.as_str())
    .bind(campaign.limit.get())
    .bind(campaign.opens_at.map(to_utc_datetime))
    .bind(campaign.closes_at.map(to_utc_datetime))
    .bind(campaign.strategy.as_str())
    .execute(pool)
    .await;
    match result {
        Ok(_) => Ok(true),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Records that the campaign's Redis gate has been initialised at least once. From then on, a
/// missing gate means Redis lost its data, not that the campaign is new.
pub async fn mark_gate_initialised(pool: &MySqlPool, id: &CampaignId) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE campaign SET gate_initialised_at = CURRENT_TIMESTAMP(3) \
         WHERE id = ? AND gate_initialised_at IS NULL",
    )
    .bind(id.as_str())
    .execute(pool)
    .await?;
    Ok(())
}
