//! HTTP routes. Each handler reads as named steps; I/O goes through the gate, the publisher
//! and the store.

pub mod admin;
pub mod apply;
pub mod campaigns;
pub mod health;

use axum::{
    Json, Router,
    extract::{DefaultBodyLimit, State},
    http::{StatusCode, header},
    response::IntoResponse,
    routing::{get, post},
};
use coupon_domain::wire::ErrorBody;

use crate::state::SharedState;

/// The api's OpenAPI document, served at `/openapi.json`.
pub const OPENAPI: &str = include_str!("../../openapi.json");

pub fn router(state: SharedState) -> Router {
    let max_body = state.settings.max_body_bytes;
    Router::new()
        .route("/campaigns/{campaign_id}/apply", post(apply::apply))
        .route("/campaigns/{campaign_id}", get(campaigns::show))
        .route("/admin/campaigns", post(admin::create).get(admin::list))
        .route(
            "/admin/campaigns/{campaign_id}/rebuild-gate",
            post(admin::rebuild_gate),
        )
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state)
}

async fn metrics(State(state): State<SharedState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

async fn not_found() -> impl IntoResponse {
    (
        StatusCode::NOT_FOUND,
        Json(ErrorBody {
            result: None,
            error: "no such route; see /openapi.json".to_owned(),
        }),
    )
}
