//! `POST /campaigns/{campaign_id}/apply`: parse, find the campaign, check its window, hand the
//! apply to the campaign's strategy, and translate what it came to into HTTP.

use std::time::Instant;

use axum::{
    Json,
    extract::{
        Path, State,
        rejection::{JsonRejection, PathRejection},
    },
    http::StatusCode,
    response::{IntoResponse, Response},
};
use coupon_domain::{
    Campaign, CampaignId, CampaignState, UserId, history::ResultClass, wire::ApplyReply,
};

use crate::{error::ApiError, issuance::Outcome, state::SharedState};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApplyBody {
    pub user_id: UserId,
}

/// The answer to one apply that was carried out: its status and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer(pub StatusCode, pub ApplyReply);

impl Answer {
    fn new(campaign: &Campaign, user: UserId, outcome: Outcome) -> Self {
        let won = |status, result, seq: coupon_domain::Seq| {
            Self(
                status,
                ApplyReply {
                    result,
                    campaign_id: Some(campaign.id.clone()),
                    user_id: Some(user),
                    seq: Some(seq.0),
                    error: None,
                },
            )
        };
        match outcome {
            Outcome::Issued(seq) => won(StatusCode::CREATED, ResultClass::Issued, seq),
            Outcome::Pending(seq) => won(StatusCode::ACCEPTED, ResultClass::Pending, seq),
            Outcome::AlreadyApplied => {
                Self::bare(StatusCode::CONFLICT, ResultClass::AlreadyApplied)
            }
            Outcome::SoldOut => Self::bare(StatusCode::GONE, ResultClass::SoldOut),
        }
    }

    fn bare(status: StatusCode, result: ResultClass) -> Self {
        Self(status, ApplyReply::bare(result))
    }
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        (self.0, Json(self.1)).into_response()
    }
}

impl ApplyBody {
    /// Exactly `{"user_id": <positive integer that fits u64>}`, with a message naming what is
    /// wrong otherwise. (Plain serde would also take `[1]`, and its messages omit the field.)
    fn parse(body: serde_json::Value) -> Result<Self, ApiError> {
        let invalid = |message: String| ApiError::Unprocessable(message);
        let serde_json::Value::Object(fields) = body else {
            return Err(invalid(format!(
                "the body must be a JSON object like {{\"user_id\": 1}}, got {body}"
            )));
        };
        if let Some(unknown) = fields.keys().find(|key| *key != "user_id") {
            return Err(invalid(format!(
                "unknown field `{unknown}`, expected only `user_id`"
            )));
        }
        let raw = fields
            .get("user_id")
            .ok_or_else(|| invalid("missing field `user_id`".to_owned()))?;
        let user_id = raw
            .as_u64()
            .and_then(|id| UserId::parse(id).ok())
            .ok_or_else(|| {
                invalid(format!(
                    "user_id must be a positive integer that fits in u64, got {raw}"
                ))
            })?;
        Ok(Self { user_id })
    }
}

pub async fn apply(
    State(state): State<SharedState>,
    campaign_id: Result<Path<String>, PathRejection>,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Answer, ApiError> {
    let started = Instant::now();
    let reply = apply_steps(&state, campaign_id, body).await;
    let result = match &reply {
        Ok(answer) => answer.1.result.as_str(),
        Err(ApiError::Unavailable { .. }) => "unavailable",
        Err(ApiError::CampaignNotFound(_)) => "not_found",
        Err(ApiError::Internal(_)) => "error",
        Err(_) => "invalid",
    };
    state.metrics.count_request(result);
    state
        .metrics
        .apply_seconds
        .observe(started.elapsed().as_secs_f64());
    reply
}

async fn apply_steps(
    state: &SharedState,
    campaign_id: Result<Path<String>, PathRejection>,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Answer, ApiError> {
    let Path(raw_id) = campaign_id?;
    let campaign_id =
        CampaignId::parse(&raw_id).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let ApplyBody { user_id } = ApplyBody::parse(body?.0)?;
    let campaign = state
        .campaigns
        .get(&campaign_id)
        .await?
        .ok_or_else(|| ApiError::CampaignNotFound(campaign_id.to_string()))?;
    match campaign.state_at(time::OffsetDateTime::now_utc()) {
        CampaignState::NotOpen => {
            return Ok(Answer::bare(StatusCode::FORBIDDEN, ResultClass::NotOpen));
        }
        CampaignState::Closed => return Ok(Answer::bare(StatusCode::GONE, ResultClass::Closed)),
        CampaignState::Open => {}
    }
    let outcome = state
        .issuers
        .for_campaign(&campaign)
        .apply(&campaign, user_id)
        .await?;
    Ok(Answer::new(&campaign, user_id, outcome))
}
