//! `GET /healthz` (the process is alive) and `GET /readyz` (Redis, MySQL and Kafka answer;
//! every address with its credentials redacted).

use std::time::Duration;

use axum::{Json, extract::State, http::StatusCode};
use coupon_domain::wire::{DependencyCheck, DependencyStatus, Readiness, ReadinessStatus};
use serde_json::{Value, json};

use crate::state::SharedState;

pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

pub async fn readyz(State(state): State<SharedState>) -> (StatusCode, Json<Readiness>) {
    let timeout = Duration::from_secs(2);
    let stack = &state.settings.stack;
    let (redis, mysql, kafka) = tokio::join!(
        tokio::time::timeout(timeout, state.issuers.reliable.gate().ping()),
        tokio::time::timeout(timeout, state.store.ping()),
        coupon_kafka::check_reachable(&stack.kafka_brokers, timeout),
    );
    let checks = [
        ("redis", stack.redis_address(), matches!(redis, Ok(Ok(_)))),
        (
            "mysql",
            stack.database_address(),
            matches!(mysql, Ok(Ok(_))),
        ),
        ("kafka", stack.kafka_brokers.clone(), kafka.is_ok()),
    ];
    let down: Vec<String> = checks
        .iter()
        .filter(|check| !check.2)
        .map(|check| check.0.to_owned())
        .collect();
    let (status, overall) = if down.is_empty() {
        (StatusCode::OK, ReadinessStatus::Ready)
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            ReadinessStatus::Unavailable,
        )
    };
    let checks = checks
        .into_iter()
        .map(|(name, address, up)| {
            let status = if up {
                DependencyStatus::Up
            } else {
                DependencyStatus::Down
            };
            (name.to_owned(), DependencyCheck { address, status })
        })
        .collect();
    (
        status,
        Json(Readiness {
            status: overall,
            down,
            checks,
        }),
    )
}
