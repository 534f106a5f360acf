//! The course's tables, written the course's way: one plain `INSERT` per coupon, no unique key,
//! no slot, no transaction around anything. Only the course's stages use them (docs/stages.md);
//! what they let through is what the verifier shows.

use coupon_domain::{CampaignId, UserId};

use crate::{Store, StoreError};

/// One `course_coupon` row, in insertion order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CourseRow {
    pub id: u64,
    pub user_id: u64,
}

/// `couponRepository.save(new Coupon(userId))`.
pub async fn insert_coupon(
    store: &Store,
    campaign: &CampaignId,
    user: UserId,
) -> Result<(), StoreError> {
    insert_user(store, "course_coupon", campaign, user).await
}

/// `failedEventRepository.save(new FailedEvent(userId))`: recorded, and never read again by
/// anything but the verifier.
pub async fn insert_failed_event(
    store: &Store,
    campaign: &CampaignId,
    user: UserId,
) -> Result<(), StoreError> {
    insert_user(store, "course_failed_event", campaign, user).await
}

/// The course's tables hold a user per row, nothing else (besides the campaign).
async fn insert_user(
    store: &Store,
    table: &'static str,
    campaign: &CampaignId,
    user: UserId,
) -> Result<(), StoreError> {
    store
        .run(
            format!("INSERT INTO {table} (campaign_id, user_id) VALUES (?, ?)"),
            (campaign.as_str(), user.get()),
        )
        .await?;
    Ok(())
}

/// `couponRepository.count()`, per campaign: the naive stage's gate.
pub async fn count_coupons(store: &Store, campaign: &CampaignId) -> Result<u64, StoreError> {
    count_where(store, "course_coupon", campaign).await
}

pub async fn count_failed_events(store: &Store, campaign: &CampaignId) -> Result<u64, StoreError> {
    count_where(store, "course_failed_event", campaign).await
}

async fn count_where(
    store: &Store,
    table: &'static str,
    campaign: &CampaignId,
) -> Result<u64, StoreError> {
    store
        .count(
            format!("SELECT COUNT(*) FROM {table} WHERE campaign_id = ?"),
            (campaign.as_str(),),
        )
        .await
}

/// Every row of the campaign, in insertion order.
pub async fn list_coupons(
    store: &Store,
    campaign: &CampaignId,
) -> Result<Vec<CourseRow>, StoreError> {
    let rows: Vec<(u64, u64)> = store
        .all(
            "SELECT id, user_id FROM course_coupon WHERE campaign_id = ? ORDER BY id",
            (campaign.as_str(),),
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|(id, user_id)| CourseRow { id, user_id })
        .collect())
}

/// The users of the campaign's failed events, in insertion order.
pub async fn list_failed_events(
    store: &Store,
    campaign: &CampaignId,
) -> Result<Vec<u64>, StoreError> {
    store
        .all(
            "SELECT user_id FROM course_failed_event WHERE campaign_id = ? ORDER BY id",
            (campaign.as_str(),),
        )
        .await
}
