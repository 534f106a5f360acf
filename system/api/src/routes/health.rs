//! `GET /healthz` (the process is alive) and `GET /readyz` (Redis, MySQL and Kafka answer).

use std::time::Duration;

use axum::{Json, extract::State, http::StatusCode};
use serde_json::{Value, json};

use crate::state::SharedState;

pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

pub async fn readyz(State(state): State<SharedState>) -> (StatusCode, Json<Value>) {
    let timeout = Duration::from_secs(2);
    let stack = &state.settings.stack;
    let (redis, mysql, kafka) = tokio::join!(
        tokio::time::timeout(timeout, state.issuers.reliable.gate().ping()),
        tokio::time::timeout(timeout, state.store.ping()),
        coupon_kafka::check_reachable(&stack.kafka_brokers, timeout),
    );
    let checks = [
        ("redis", stack.redis_url.clone(), matches!(redis, Ok(Ok(_)))),
        (
            "mysql",
            stack.database_address(),
            matches!(mysql, Ok(Ok(_))),
        ),
        ("kafka", stack.kafka_brokers.clone(), kafka.is_ok()),
    ];
    let down: Vec<&str> = checks.iter().filter(|c| !c.2).map(|c| c.0).collect();
    let detail: serde_json::Map<String, Value> = checks
        .iter()
        .map(|(name, address, up)| {
            (
                (*name).to_owned(),
                json!({ "address": address, "status": if *up { "up" } else { "down" } }),
            )
        })
        .collect();
    let status = if down.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let overall = if down.is_empty() {
        "ready"
    } else {
        "unavailable"
    };
    (
        status,
        Json(json!({ "status": overall, "down": down, "checks": detail })),
    )
}
