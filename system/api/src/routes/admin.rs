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
use coupon_domain::{
    Campaign,
    wire::{CampaignList, CampaignView, GateReadiness, NewCampaign, RebuildStarted},
};
use coupon_store::campaigns;

use crate::{
    error::ApiError,
    routes::campaigns::{campaign_from_path, describe},
    state::SharedState,
};

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

/// Compares two secrets in time that depends on neither their contents nor their lengths: both
/// are hashed to 32 bytes, and every byte of the digests is compared.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use sha2::{Digest, Sha256};
    let (a, b) = (Sha256::digest(a), Sha256::digest(b));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

pub async fn create(
    State(state): State<SharedState>,
    headers: HeaderMap,
    body: Result<Json<NewCampaign>, JsonRejection>,
) -> Result<(StatusCode, Json<CampaignView>), ApiError> {
    authorize(&state, &headers)?;
    let Json(new) = body?;
    let campaign = Campaign::new(new.id, new.limit, new.opens_at, new.closes_at)
        .map_err(|e| ApiError::Unprocessable(e.to_string()))?
        .with_strategy(new.strategy);
    if !campaigns::create(&state.store, &campaign).await? {
        return Err(ApiError::CampaignExists(campaign.id.to_string()));
    }
    let stored = state
        .campaigns
        .fresh(&campaign.id)
        .await?
        .ok_or_else(|| ApiError::CampaignNotFound(campaign.id.to_string()))?;
    state
        .issuers
        .for_campaign(&campaign)
        .prepare(&stored)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(describe(&state, &campaign).await?),
    ))
}

pub async fn list(
    State(state): State<SharedState>,
    headers: HeaderMap,
) -> Result<Json<CampaignList>, ApiError> {
    authorize(&state, &headers)?;
    let all = campaigns::list(&state.store).await?;
    let mut described = Vec::with_capacity(all.len());
    for stored in &all {
        described.push(describe(&state, &stored.campaign).await?);
    }
    Ok(Json(CampaignList {
        campaigns: described,
    }))
}

pub async fn rebuild_gate(
    State(state): State<SharedState>,
    headers: HeaderMap,
    campaign_id: Result<Path<String>, PathRejection>,
) -> Result<(StatusCode, Json<RebuildStarted>), ApiError> {
    authorize(&state, &headers)?;
    let campaign = campaign_from_path(&state, campaign_id).await?;
    state
        .issuers
        .for_campaign(&campaign)
        .rebuild_gate(&campaign)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(RebuildStarted {
            result: GateReadiness::Rebuilding,
            campaign_id: campaign.id,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn tokens_match_only_when_equal_whatever_their_lengths() {
        assert!(constant_time_eq(b"s3cret-token", b"s3cret-token"));
        assert!(!constant_time_eq(b"s3cret-token", b"s3cret-tokeN"));
        assert!(!constant_time_eq(b"s3cret-token", b"s3cret"));
        assert!(!constant_time_eq(b"", b"s3cret-token"));
        assert!(constant_time_eq(b"", b""));
    }
}
