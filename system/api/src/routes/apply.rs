//! `POST /campaigns/{campaign_id}/apply`: parse, find the campaign, hand the apply to the
//! campaign's strategy (which checks the window), and translate what it came to into HTTP.

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
use coupon_domain::{Campaign, CampaignId, UserId, history::ResultClass, wire::ApplyReply};

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
            Outcome::NotOpen => Self::bare(StatusCode::FORBIDDEN, ResultClass::NotOpen),
            Outcome::Closed => Self::bare(StatusCode::GONE, ResultClass::Closed),
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

/// A JSON value in which no object names a key twice, at any depth. serde_json's `Value` keeps
/// the last of two `user_id`s without a word; a body that says two things is refused instead
/// (400, as malformed JSON).
#[derive(Debug)]
pub struct UniqueKeys(pub serde_json::Value);

/// The start of the message a duplicate key is refused with; [`ApiError`]'s conversion of a
/// JSON rejection looks for it to answer 400.
pub const DUPLICATE_KEY: &str = "duplicate key";

impl<'de> serde::Deserialize<'de> for UniqueKeys {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(UniqueKeysVisitor).map(Self)
    }
}

struct UniqueKeysVisitor;

impl<'de> serde::de::Visitor<'de> for UniqueKeysVisitor {
    type Value = serde_json::Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let UniqueKeys(value) = map.next_value()?;
            if object.contains_key(&key) {
                return Err(serde::de::Error::custom(format!(
                    "{DUPLICATE_KEY} `{key}`: a body must say each thing once"
                )));
            }
            object.insert(key, value);
        }
        Ok(serde_json::Value::Object(object))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(UniqueKeys(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(serde_json::Value::Array(items))
    }

    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, Into::into))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }

    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }
}

impl ApplyBody {
    /// Exactly `{"user_id": <positive integer that fits u64>}`, with a message naming what is
    /// wrong otherwise. (Plain serde would also take `[1]`, and its messages omit the field.)
    pub fn parse(body: serde_json::Value) -> Result<Self, ApiError> {
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
    body: Result<Json<UniqueKeys>, JsonRejection>,
) -> Result<Answer, ApiError> {
    let started = Instant::now();
    let reply = apply_steps(&state, campaign_id, body).await;
    let result = match &reply {
        Ok(answer) => answer.1.result.as_str(),
        Err(ApiError::Unavailable { .. }) => "unavailable",
        Err(ApiError::OutcomeUnknown { .. }) => "unknown",
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
    body: Result<Json<UniqueKeys>, JsonRejection>,
) -> Result<Answer, ApiError> {
    let Path(raw_id) = campaign_id?;
    let campaign_id =
        CampaignId::parse(&raw_id).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let ApplyBody { user_id } = ApplyBody::parse(body?.0.0)?;
    let campaign = state
        .campaigns
        .get(&campaign_id)
        .await?
        .ok_or_else(|| ApiError::CampaignNotFound(campaign_id.to_string()))?;
    let outcome = state
        .issuers
        .for_campaign(&campaign)
        .apply(&campaign, user_id, state.settings.now())
        .await?;
    Ok(Answer::new(&campaign, user_id, outcome))
}
