//! `GET /campaigns/{campaign_id}`: the campaign, its gate and its rows.

use axum::{
    Json,
    extract::{Path, State, rejection::PathRejection},
};
use coupon_domain::{
    Campaign, CampaignId,
    wire::{CampaignView, GateReadiness},
};

use crate::{error::ApiError, state::SharedState};

pub async fn show(
    State(state): State<SharedState>,
    campaign_id: Result<Path<String>, PathRejection>,
) -> Result<Json<CampaignView>, ApiError> {
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
        .await?
        .ok_or_else(|| ApiError::CampaignNotFound(id.to_string()))
}

/// The campaign with its live numbers, as its strategy counts them.
pub async fn describe(state: &SharedState, campaign: &Campaign) -> Result<CampaignView, ApiError> {
    let counts = state
        .issuers
        .for_campaign(campaign)
        .counts(campaign)
        .await?;
    let limit = u64::from(campaign.limit.get());
    Ok(CampaignView {
        campaign_id: campaign.id.clone(),
        limit,
        issued: counts.issued,
        persisted: counts.persisted,
        failed_events: counts.failed_events,
        remaining: limit.saturating_sub(counts.issued),
        opens_at: campaign.opens_at,
        closes_at: campaign.closes_at,
        state: campaign.state_at(state.settings.now()),
        strategy: campaign.strategy,
        gate: counts.gate_ready.map(|ready| {
            if ready {
                GateReadiness::Ready
            } else {
                GateReadiness::Rebuilding
            }
        }),
    })
}
