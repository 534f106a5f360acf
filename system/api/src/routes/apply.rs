//! `POST /campaigns/{campaign_id}/apply`: gate, publish, answer.

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
use coupon_domain::{Campaign, CampaignId, CampaignState, CouponIssued, GateOutcome, Seq, UserId};
use rdkafka::producer::DeliveryFuture;
use serde_json::json;

use crate::{
    error::ApiError,
    gate::{Admission, Epoch},
    publisher::{Published, certainly_not_written},
    rebuild::{self, GateReadiness},
    startup::SharedState,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApplyBody {
    pub user_id: UserId,
}

/// The answer to one apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyReply {
    Issued {
        campaign_id: CampaignId,
        user_id: UserId,
        seq: Seq,
    },
    /// The broker has not acknowledged yet; the system resolves it (issued, or slot released).
    Pending {
        campaign_id: CampaignId,
        user_id: UserId,
        seq: Seq,
    },
    AlreadyApplied,
    SoldOut,
    NotOpen,
    Closed,
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

impl ApplyReply {
    pub fn result(&self) -> &'static str {
        match self {
            Self::Issued { .. } => "issued",
            Self::Pending { .. } => "pending",
            Self::AlreadyApplied => "already_applied",
            Self::SoldOut => "sold_out",
            Self::NotOpen => "not_open",
            Self::Closed => "closed",
        }
    }
}

impl IntoResponse for ApplyReply {
    fn into_response(self) -> Response {
        let result = self.result();
        let (status, body) = match &self {
            Self::Issued {
                campaign_id,
                user_id,
                seq,
            } => (
                StatusCode::CREATED,
                json!({ "result": result, "campaign_id": campaign_id, "user_id": user_id, "seq": seq.0 }),
            ),
            Self::Pending {
                campaign_id,
                user_id,
                seq,
            } => (
                StatusCode::ACCEPTED,
                json!({ "result": result, "campaign_id": campaign_id, "user_id": user_id, "seq": seq.0 }),
            ),
            Self::AlreadyApplied => (StatusCode::CONFLICT, json!({ "result": result })),
            Self::SoldOut => (StatusCode::GONE, json!({ "result": result })),
            Self::NotOpen => (StatusCode::FORBIDDEN, json!({ "result": result })),
            Self::Closed => (StatusCode::GONE, json!({ "result": result })),
        };
        (status, Json(body)).into_response()
    }
}

pub async fn apply(
    State(state): State<SharedState>,
    campaign_id: Result<Path<String>, PathRejection>,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<ApplyReply, ApiError> {
    let started = Instant::now();
    let reply = apply_steps(&state, campaign_id, body).await;
    let result = match &reply {
        Ok(reply) => reply.result(),
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
) -> Result<ApplyReply, ApiError> {
    let Path(raw_id) = campaign_id?;
    let campaign_id =
        CampaignId::parse(&raw_id).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let ApplyBody { user_id } = ApplyBody::parse(body?.0)?;
    let campaign = find_campaign(state, &campaign_id).await?;
    match campaign.state_at(time::OffsetDateTime::now_utc()) {
        CampaignState::NotOpen => return Ok(ApplyReply::NotOpen),
        CampaignState::Closed => return Ok(ApplyReply::Closed),
        CampaignState::Open => {}
    }
    if campaign.strategy.is_course_stage() {
        return state.course.apply(&campaign, user_id).await;
    }
    match admit(state, &campaign, user_id).await? {
        (GateOutcome::Issued(seq), epoch) => {
            // From here the admission must be published or undone even if the client hangs up
            // (hyper drops the handler's future): the work runs in a task of its own.
            let win = tokio::spawn(publish_win(state.clone(), campaign, user_id, seq, epoch));
            win.await.map_err(|e| ApiError::Internal(e.into()))?
        }
        (GateOutcome::AlreadyApplied, _) => Ok(ApplyReply::AlreadyApplied),
        (GateOutcome::SoldOut, _) => Ok(ApplyReply::SoldOut),
    }
}

async fn find_campaign(state: &SharedState, id: &CampaignId) -> Result<Campaign, ApiError> {
    state
        .campaigns
        .get(id)
        .await
        .map_err(|e| ApiError::unavailable("mysql", e))?
        .ok_or_else(|| ApiError::CampaignNotFound(id.to_string()))
}

/// One atomic gate step. If the gate's state is gone, a new campaign's gate is initialised and
/// the step retried once; a lost one is rebuilt in the background and the apply refused (503).
async fn admit(
    state: &SharedState,
    campaign: &Campaign,
    user_id: UserId,
) -> Result<(GateOutcome, Epoch), ApiError> {
    for _ in 0..2 {
        let started = Instant::now();
        let admission = state
            .gate
            .admit(&campaign.id, user_id, campaign.limit.get())
            .await
            .map_err(|e| ApiError::unavailable("redis", e))?;
        state
            .metrics
            .gate_seconds
            .observe(started.elapsed().as_secs_f64());
        match admission {
            Admission::Decided(outcome, epoch) => return Ok((outcome, epoch)),
            Admission::Lost => {
                let readiness = rebuild::readiness_after_loss(state, &campaign.id)
                    .await
                    .map_err(|e| ApiError::unavailable("redis", e))?;
                if readiness == GateReadiness::Rebuilding {
                    break;
                }
            }
        }
    }
    Err(ApiError::unavailable(
        "redis",
        anyhow::anyhow!(
            "the gate of campaign {} is being rebuilt after redis lost its state",
            campaign.id
        ),
    ))
}

async fn publish_win(
    state: SharedState,
    campaign: Campaign,
    user_id: UserId,
    seq: Seq,
    epoch: Epoch,
) -> Result<ApplyReply, ApiError> {
    let state = &state;
    let event = CouponIssued {
        campaign_id: campaign.id.clone(),
        user_id,
        seq,
        issued_at_ms: i64::try_from(
            time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000,
        )
        .unwrap_or_default(),
    };
    let started = Instant::now();
    let published = state.publisher.publish(&event).await;
    state
        .metrics
        .publish_seconds
        .observe(started.elapsed().as_secs_f64());
    match published {
        Published::Acked { .. } => Ok(ApplyReply::Issued {
            campaign_id: event.campaign_id,
            user_id,
            seq,
        }),
        Published::Refused(error) => {
            undo_admission(state, &event).await;
            Err(ApiError::unavailable("kafka", error))
        }
        Published::InDoubt(delivery) => {
            tokio::spawn(resolve_in_doubt(
                state.clone(),
                event.clone(),
                epoch,
                delivery,
            ));
            Ok(ApplyReply::Pending {
                campaign_id: event.campaign_id,
                user_id,
                seq,
            })
        }
    }
}

/// Resolves an apply answered `pending`. If the broker reports the event certainly not written,
/// the admission is undone; otherwise the event is published again until acknowledged, so the
/// coupon is issued. Never both.
async fn resolve_in_doubt(
    state: SharedState,
    event: CouponIssued,
    epoch: Epoch,
    delivery: Option<DeliveryFuture>,
) {
    if let Some(delivery) = delivery {
        match delivery.await {
            Ok(Ok(_)) => return state.metrics.count_pending_resolved("issued"),
            Ok(Err((error, _))) if certainly_not_written(&error) => {
                tracing::warn!(campaign_id = %event.campaign_id, user_id = %event.user_id, error = %error, "pending event refused; releasing its slot");
                undo_admission(&state, &event).await;
                return state.metrics.count_pending_resolved("released");
            }
            Ok(Err(_)) | Err(_) => {}
        }
    }
    let result = republish_while_epoch_lives(&state, &event, &epoch).await;
    state.metrics.count_pending_resolved(result);
}

/// Publishes an event in doubt again until the broker acknowledges it. Only while the gate
/// that admitted it is still live: once a rebuild replaced it, the rebuild decided from what
/// Kafka held, and a late event could collide with a slot it handed out again.
async fn republish_while_epoch_lives(
    state: &SharedState,
    event: &CouponIssued,
    epoch: &Epoch,
) -> &'static str {
    let give_up = tokio::time::Instant::now() + IN_DOUBT_DEADLINE;
    let mut backoff = std::time::Duration::from_millis(200);
    loop {
        match state.gate.epoch(&event.campaign_id).await {
            Ok(Some(live)) if &live == epoch => match state.publisher.send_and_wait(event).await {
                Ok(()) => return "issued",
                Err(error) => {
                    tracing::warn!(campaign_id = %event.campaign_id, user_id = %event.user_id, error = %error, retry_in = ?backoff, "republishing an event in doubt");
                }
            },
            Ok(_) => {
                tracing::warn!(campaign_id = %event.campaign_id, user_id = %event.user_id, seq = event.seq.0, "the gate was rebuilt; its rebuild decided this admission from kafka");
                return "superseded_by_rebuild";
            }
            Err(error) => tracing::warn!(error = %error, "cannot read the gate's epoch; retrying"),
        }
        if tokio::time::Instant::now() + backoff >= give_up {
            tracing::error!(campaign_id = %event.campaign_id, user_id = %event.user_id, seq = event.seq.0, "gave up republishing an event in doubt; its slot stays held");
            return "unresolved";
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(std::time::Duration::from_secs(5));
    }
}

/// How long an api keeps republishing an event in doubt before it gives up (and says so).
const IN_DOUBT_DEADLINE: std::time::Duration = std::time::Duration::from_secs(600);

/// Takes the user back out of the gate and frees the slot. Retried with backoff while Redis is
/// unreachable, so a failed publish never leaves a burnt slot behind for long.
async fn undo_admission(state: &SharedState, event: &CouponIssued) {
    let mut backoff = std::time::Duration::from_millis(100);
    for _ in 0..20 {
        match state
            .gate
            .release(&event.campaign_id, event.user_id, event.seq)
            .await
        {
            Ok(_) => {
                state.metrics.releases.inc();
                return;
            }
            Err(error) => {
                state.metrics.release_failures.inc();
                tracing::warn!(campaign_id = %event.campaign_id, user_id = %event.user_id, error = %error, "failed to release an admission; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(std::time::Duration::from_secs(5));
            }
        }
    }
    tracing::error!(campaign_id = %event.campaign_id, user_id = %event.user_id, seq = event.seq.0, "gave up releasing an admission; the slot stays held");
}
