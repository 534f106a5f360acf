//! `/admin/campaigns`: create and inspect campaigns, rebuild a gate. Bearer token required;
//! without a configured token the endpoints are disabled, never open.

use axum::{
    Json,
    extract::{
        Path, State,
        rejection::{JsonRejection, PathRejection},
    },
    http::{HeaderMap, StatusCode, header},
};
use coupon_domain::{Campaign, CampaignId, CouponLimit, Strategy};
use coupon_store::campaigns;
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::{
    error::ApiError,
    rebuild,
    routes::campaigns::{campaign_from_path, describe},
    startup::SharedState,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCampaign {
    pub id: CampaignId,
    #[serde(default = "default_limit")]
    pub limit: CouponLimit,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub opens_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub closes_at: Option<OffsetDateTime>,
    /// One of the course's stages, to watch it fail (docs/stages.md); `reliable` by default.
    #[serde(default)]
    pub strategy: Strategy,
}

fn default_limit() -> CouponLimit {
    CouponLimit::DEFAULT
}

fn authorize(state: &SharedState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(expected) = state
        .settings
        .admin_token
        .as_deref()
        .filter(|t| !t.is_empty())
    else {
        return Err(ApiError::AdminDisabled);
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if constant_time_eq(presented.as_bytes(), expected.as_bytes()) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub async fn create(
    State(state): State<SharedState>,
    headers: HeaderMap,
    body: Result<Json<NewCampaign>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    authorize(&state, &headers)?;
    let Json(new) = body?;
    let campaign = Campaign::new(new.id, new.limit, new.opens_at, new.closes_at)
        .map_err(|e| ApiError::Unprocessable(e.to_string()))?
        .with_strategy(new.strategy);
    let created = campaigns::create(&state.pool, &campaign)
        .await
        .map_err(|e| ApiError::unavailable("mysql", e))?;
    if !created {
        return Err(ApiError::CampaignExists(campaign.id.to_string()));
    }
    let stored = state
        .campaigns
        .fresh(&campaign.id)
        .await
        .map_err(|e| ApiError::unavailable("mysql", e))?
        .ok_or_else(|| ApiError::CampaignNotFound(campaign.id.to_string()))?;
    rebuild::ensure_gate(&state, &stored)
        .await
        .map_err(|e| ApiError::unavailable("redis", e))?;
    Ok((
        StatusCode::CREATED,
        Json(describe(&state, &campaign).await?),
    ))
}

pub async fn list(
    State(state): State<SharedState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers)?;
    let all = campaigns::list(&state.pool)
        .await
        .map_err(|e| ApiError::unavailable("mysql", e))?;
    let mut described = Vec::with_capacity(all.len());
    for stored in &all {
        described.push(describe(&state, &stored.campaign).await?);
    }
    Ok(Json(json!({ "campaigns": described })))
}

pub async fn rebuild_gate(
    State(state): State<SharedState>,
    headers: HeaderMap,
    campaign_id: Result<Path<String>, PathRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    authorize(&state, &headers)?;
    let campaign = campaign_from_path(&state, campaign_id).await?;
    if campaign.strategy.is_course_stage() {
        return Err(ApiError::Unprocessable(format!(
            "campaign `{}` runs the course's `{}` stage, which has no gate to rebuild",
            campaign.id, campaign.strategy
        )));
    }
    rebuild::force_rebuild(&state, &campaign)
        .await
        .map_err(|e| ApiError::unavailable("redis", e))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "result": "rebuilding", "campaign_id": campaign.id })),
    ))
}
