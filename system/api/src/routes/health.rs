//! `GET /healthz` (the process is alive) and `GET /readyz` (Redis, MySQL and Kafka answer;
//! every address with its credentials redacted).

use std::time::{Duration, Instant};

use axum::{Json, extract::State, http::StatusCode};
use coupon_domain::wire::{DependencyCheck, DependencyStatus, Readiness, ReadinessStatus};
use serde_json::{Value, json};

use crate::state::SharedState;

pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /readyz`: probes each store, or reuses an answer younger than
/// [`Settings::readiness_reuse`](crate::configuration::Settings::readiness_reuse). Callers that
/// arrive during a probe wait for it and share its answer.
pub async fn readyz(State(state): State<SharedState>) -> (StatusCode, Json<Readiness>) {
    let mut last = state.readiness.lock().await;
    let readiness = match last.as_ref() {
        Some((probed, readiness)) if probed.elapsed() < state.settings.readiness_reuse => {
            readiness.clone()
        }
        _ => {
            let readiness = probe(&state).await;
            *last = Some((Instant::now(), readiness.clone()));
            readiness
        }
    };
    drop(last);
    let status = match readiness.status {
        ReadinessStatus::Ready => StatusCode::OK,
        ReadinessStatus::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
    };
    (status, Json(readiness))
}

/// Redis, MySQL and Kafka, each within two seconds, at once.
async fn probe(state: &SharedState) -> Readiness {
    state.metrics.readiness_probes.inc();
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
    let status = if down.is_empty() {
        ReadinessStatus::Ready
    } else {
        ReadinessStatus::Unavailable
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
    Readiness {
        status,
        down,
        checks,
    }
}
