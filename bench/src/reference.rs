//! The bare reference apply: the fastest an apply can be on this machine with the design's gate.
//! axum, one multiplexed Redis connection and the very gate script the api runs
//! (`system/api/src/gate/admit.lua`, with the same arguments, restart check included), and
//! nothing else: no Kafka, no MySQL, no metrics, no logs per request. `scripts/bench` drives it
//! with the same loads as the project's api; the ratios say what the rest of the apply path
//! costs.
//!
//! It speaks enough of the api's surface for loadgen to aim at it: `GET /healthz`,
//! `POST /admin/campaigns` (no token needed), `GET /campaigns/{id}` and
//! `POST /campaigns/{id}/apply`. Nothing is written past the gate, so a campaign's view counts
//! every winner as persisted: there is no pipeline to drain.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, RwLock},
};

use anyhow::Context;
use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use coupon_domain::{
    CampaignId, CampaignState, GateKeys, Strategy,
    history::ResultClass,
    wire::{ApplyReply, CampaignView, GateReadiness, NewCampaign},
};
use redis::{Script, aio::MultiplexedConnection};

/// Serve the bare reference apply (axum + one Redis connection + the design's gate script).
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "reference-apply", version, about)]
pub struct Args {
    /// Where to listen.
    #[arg(long, env = "REFERENCE_ADDR", default_value = "127.0.0.1:18090")]
    pub addr: SocketAddr,
    /// Redis holding the reference's gates.
    #[arg(long, env = "REDIS_URL", default_value = coupon_runtime::stack::DEFAULT_REDIS_URL)]
    pub redis_url: String,
    /// Prefix of the reference's Redis keys (apart from the api's).
    #[arg(long, default_value = "reference")]
    pub prefix: String,
}

#[derive(Clone)]
struct Reference {
    redis: MultiplexedConnection,
    prefix: Arc<str>,
    admit: Arc<Script>,
    limits: Arc<RwLock<HashMap<String, u32>>>,
}

/// Binds, then serves until ctrl-c or SIGTERM.
pub async fn serve(args: Args) -> anyhow::Result<()> {
    let address = coupon_runtime::stack::redact(&args.redis_url);
    let client = redis::Client::open(args.redis_url.as_str())
        .with_context(|| format!("redis at {address}: bad url"))?;
    let redis = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        client.get_multiplexed_async_connection(),
    )
    .await
    .with_context(|| format!("redis at {address} did not answer within 5s"))?
    .with_context(|| format!("redis at {address} is unreachable"))?;
    let state = Reference {
        redis,
        prefix: args.prefix.into(),
        admit: Arc::new(Script::new(coupon_api::gate::ADMIT)),
        limits: Arc::default(),
    };
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ok" }))
        .route("/admin/campaigns", post(create))
        .route("/campaigns/{id}", get(view))
        .route("/campaigns/{id}/apply", post(apply))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("failed to bind {}", args.addr))?;
    eprintln!("reference apply listening on {}", args.addr);
    axum::serve(listener, app)
        .with_graceful_shutdown(coupon_runtime::shutdown_signal())
        .await?;
    Ok(())
}

#[derive(serde::Deserialize)]
struct ApplyBody {
    user_id: u64,
}

fn failed(status: StatusCode, what: impl std::fmt::Display) -> Response {
    (
        status,
        Json(serde_json::json!({ "error": what.to_string() })),
    )
        .into_response()
}

impl Reference {
    fn keys(&self, id: &CampaignId) -> GateKeys {
        GateKeys::new(&self.prefix, id)
    }

    fn limit(&self, id: &str) -> Option<u32> {
        self.limits.read().ok()?.get(id).copied()
    }
}

/// A fresh gate for the campaign (its old keys, if any, dropped), in life 1.
async fn create(State(state): State<Reference>, Json(new): Json<NewCampaign>) -> Response {
    let keys = state.keys(&new.id);
    let mut conn = state.redis.clone();
    let made: redis::RedisResult<i64> = async {
        redis::cmd("DEL")
            .arg(&keys.admit_keys()[..])
            .exec_async(&mut conn)
            .await?;
        Script::new(coupon_api::gate::INITIALISE)
            .key(&keys.marker)
            .key(&keys.redis_run)
            .arg(1)
            .invoke_async(&mut conn)
            .await
    }
    .await;
    if let Err(error) = made {
        return failed(StatusCode::SERVICE_UNAVAILABLE, error);
    }
    if let Ok(mut limits) = state.limits.write() {
        limits.insert(new.id.to_string(), new.limit.get());
    }
    StatusCode::CREATED.into_response()
}

async fn view(State(state): State<Reference>, Path(id): Path<String>) -> Response {
    let (Ok(id), Some(limit)) = (CampaignId::parse(&id), state.limit(&id)) else {
        return failed(StatusCode::NOT_FOUND, format!("no campaign {id}"));
    };
    let mut conn = state.redis.clone();
    let winners: u64 = match redis::cmd("HLEN")
        .arg(&state.keys(&id).winners)
        .query_async(&mut conn)
        .await
    {
        Ok(winners) => winners,
        Err(error) => return failed(StatusCode::SERVICE_UNAVAILABLE, error),
    };
    Json(CampaignView {
        campaign_id: id,
        limit: limit.into(),
        issued: winners,
        persisted: winners,
        failed_events: 0,
        remaining: u64::from(limit).saturating_sub(winners),
        opens_at: None,
        closes_at: None,
        state: CampaignState::Open,
        strategy: Strategy::Reliable,
        gate: Some(GateReadiness::Ready),
    })
    .into_response()
}

/// One apply: the gate script, with the api's arguments (no window, restart check on).
async fn apply(
    State(state): State<Reference>,
    Path(id): Path<String>,
    Json(body): Json<ApplyBody>,
) -> Response {
    let (Ok(id), Some(limit)) = (CampaignId::parse(&id), state.limit(&id)) else {
        return failed(StatusCode::NOT_FOUND, format!("no campaign {id}"));
    };
    let keys = state.keys(&id);
    let mut conn = state.redis.clone();
    let mut admit = state.admit.prepare_invoke();
    for key in keys.admit_keys() {
        admit.key(key);
    }
    let decided: redis::RedisResult<(String, i64, String)> = admit
        .arg(body.user_id)
        .arg(limit)
        .arg("")
        .arg("")
        .arg("1")
        .invoke_async(&mut conn)
        .await;
    let (verdict, seq, _epoch) = match decided {
        Ok(decided) => decided,
        Err(error) => return failed(StatusCode::SERVICE_UNAVAILABLE, error),
    };
    let (status, result) = match verdict.as_str() {
        "issued" => (StatusCode::CREATED, ResultClass::Issued),
        "already" => (StatusCode::CONFLICT, ResultClass::AlreadyApplied),
        "sold_out" => (StatusCode::GONE, ResultClass::SoldOut),
        other => {
            return failed(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the gate answered {other}"),
            );
        }
    };
    let mut reply = ApplyReply::bare(result);
    if result == ResultClass::Issued {
        reply.campaign_id = Some(id);
        reply.user_id = coupon_domain::UserId::parse(body.user_id).ok();
        reply.seq = u32::try_from(seq).ok();
    }
    (status, Json(reply)).into_response()
}
