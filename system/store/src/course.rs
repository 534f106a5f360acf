//! The course's tables, written the course's way: one plain `INSERT` per coupon, no unique key,
//! no slot, no transaction around anything. Only the course's stages use them (docs/stages.md);
//! what they let through is what the verifier shows.

use coupon_domain::{CampaignId, UserId};
use sqlx::MySqlPool;

use crate::StoreError;

/// One `course_coupon` row, in insertion order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct CourseRow {
    pub id: u64,
    pub user_id: u64,
}

/// `couponRepository.save(new Coupon(userId))`.
pub async fn insert_coupon(
    pool: &MySqlPool,
    campaign: &CampaignId,
    user: UserId,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO course_coupon (campaign_id, user_id) VALUES (?, ?)")
        .bind(campaign.as_str())
        .bind(user.get())
        .execute(pool)
        .await?;
    Ok(())
}

/// `failedEventRepository.save(new FailedEvent(userId))`: recorded, and never read again by
/// anything but the verifier.
pub async fn insert_failed_event(
    pool: &MySqlPool,
    campaign: &CampaignId,
    user: UserId,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO course_failed_event (campaign_id, user_id) VALUES (?, ?)")
        .bind(campaign.as_str())
        .bind(user.get())
        .execute(pool)
        .await?;
    Ok(())
}

/// `couponRepository.count()`, per campaign: the naive stage's gate.
pub async fn count_coupons(pool: &MySqlPool, campaign: &CampaignId) -> Result<u64, StoreError> {
    let (count,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM course_coupon WHERE campaign_id = ?")
            .bind(campaign.as_str())
            .fetch_one(pool)
            .await?;
    Ok(u64::try_from(count).unwrap_or_default())
}

pub async fn count_failed_events(
    pool: &MySqlPool,
    campaign: &CampaignId,
) -> Result<u64, StoreError> {
    let (count,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM course_failed_event WHERE campaign_id = ?")
            .bind(campaign.as_str())
            .fetch_one(pool)
            .await?;
    Ok(u64::try_from(count).unwrap_or_default())
}

/// Every row of the campaign, in insertion order.
pub async fn list_coupons(
    pool: &MySqlPool,
    campaign: &CampaignId,
) -> Result<Vec<CourseRow>, StoreError> {
    Ok(sqlx::query_as::<_, CourseRow>(
        "SELECT id, user_id FROM course_coupon WHERE campaign_id = ? ORDER BY id",
    )
    .bind(campaign.as_str())
    .fetch_all(pool)
    .await?)
}

/// The users of the campaign's failed events, in insertion order.
pub async fn list_failed_events(
    pool: &MySqlPool,
    campaign: &CampaignId,
) -> Result<Vec<u64>, StoreError> {
    let users: Vec<(u64,)> =
        sqlx::query_as("SELECT user_id FROM course_failed_event WHERE campaign_id = ? ORDER BY id")
            .bind(campaign.as_str())
            .fetch_all(pool)
            .await?;
    Ok(users.into_iter().map(|(user,)| user).collect())
}
