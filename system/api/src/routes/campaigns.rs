//! `GET /campaigns/{campaign_id}`: the campaign, its gate and its rows.

use axum::{
    Json,
    extract::{Path, State, rejection::PathRejection},
};
use coupon_domain::{Campaign, CampaignId};
use serde_json::{Value, json};

use crate::{error::ApiError, startup::SharedState};

pub async fn show(
    State(state): State<SharedState>,
    campaign_id: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let campaign = campaign_from_path(&state, campaign_id).await?;
    Ok(Json(describe(&state, &campaign).await?))
}

/// The campaign a `{campaign_id}` path segment names: 400 when malformed, 404 when unknown.
pub async fn campaign_from_path(
    state: &SharedState,
    campaign_id: Result<Path<String>, PathRejection>,
) -> Result<Campaign, ApiError> {
    let Path(raw_id) = campaign_id?;
    let id = CampaignId::parse(&raw_id).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    state
        .campaigns
        .get(&id)
        .await
        .map_err(|e| ApiError::unavailable("mysql", e))?
        .ok_or_else(|| ApiError::CampaignNotFound(id.to_string()))
}

/// The campaign with its live numbers: issued (the gate's winners, or a course stage's counter),
/// persisted (coupon rows), failed_events (open ones: winners the consumer could not write; a
/// course stage's are never retried), and for this project's design the gate's readiness.
pub async fn describe(state: &SharedState, campaign: &Campaign) -> Result<Value, ApiError> {
    let (issued, persisted, failed, gate) = if campaign.strategy.is_course_stage() {
        let (issued, persisted, failed) = state.course.stats(campaign).await?;
        (issued, persisted, failed, None)
    } else {
        let gate = state
            .gate
            .stats(&campaign.id)
            .await
            .map_err(|e| ApiError::unavailable("redis", e))?;
        let persisted = coupon_store::coupons::count(&state.pool, &campaign.id)
            .await
            .map_err(|e| ApiError::unavailable("mysql", e))?;
        let failed = coupon_store::failed_events::count_open_for(&state.pool, campaign.id.as_str())
            .await
            .map_err(|e| ApiError::unavailable("mysql", e))?;
        let readiness = if gate.initialised {
            "ready"
        } else {
            "rebuilding"
        };
        (gate.winners, persisted, failed, Some(readiness))
    };
    let limit = u64::from(campaign.limit.get());
    let rfc3339 = |t: Option<time::OffsetDateTime>| {
        t.and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
    };
    let mut body = json!({
        "campaign_id": campaign.id,
        "limit": limit,
        "issued": issued,
        "persisted": persisted,
        "failed_events": failed,
        "remaining": limit.saturating_sub(issued),
        "opens_at": rfc3339(campaign.opens_at),
        "closes_at": rfc3339(campaign.closes_at),
        "state": campaign.state_at(time::OffsetDateTime::now_utc()),
        "strategy": campaign.strategy,
    });
    if let Some(gate) = gate {
        body["gate"] = json!(gate);
    }
    Ok(body)
}
