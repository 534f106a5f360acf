//! The rest of the HTTP surface: the OpenAPI document matches the routes, admin endpoints are
//! disabled without a token, readiness names dependencies, metrics count applies.

use std::time::Duration;

use coupon_domain::wire::{DependencyStatus, Readiness, ReadinessStatus};
use coupon_runtime::stack::url_via;
use serde_json::json;
use testkit::pipeline::{ADMIN_TOKEN, TestPipeline};
use testkit::{eventually, proxy::TcpProxy};

/// `method` on `url` as an admin would call it: with the token and a valid body.
fn documented_call(
    pipeline: &TestPipeline,
    method: &str,
    path: &str,
    url: &str,
) -> anyhow::Result<reqwest::RequestBuilder> {
    let request = match method {
        "get" => pipeline.client.get(url),
        "post" if path.ends_with("/apply") => {
            pipeline.client.post(url).json(&json!({ "user_id": 1 }))
        }
        "post" if path == "/admin/campaigns" => pipeline
            .client
            .post(url)
            .json(&json!({ "id": "documented-new", "limit": 1 })),
        "post" => pipeline.client.post(url),
        other => anyhow::bail!("unexpected method {other} for {path}"),
    };
    Ok(request.bearer_auth(ADMIN_TOKEN))
}

/// Whether a documented call was served: on a campaign that exists, with the token and a
/// valid body, neither 404 nor 405 is a right answer.
fn served(status: reqwest::StatusCode) -> bool {
    status != 404 && status != 405
}

#[tokio::test]
async fn every_method_in_the_openapi_document_is_served() -> anyhow::Result<()> {
    let pipeline = TestPipeline::spawn().await?;
    pipeline.create_campaign("documented", 10).await?;
    let document: serde_json::Value = pipeline.get("/openapi.json").await?.json().await?;
    let paths = document["paths"].as_object().cloned().unwrap_or_default();
    assert!(
        paths.len() >= 8,
        "the document lists too few paths: {}",
        paths.len()
    );
    let mut calls = 0;
    for (path, operations) in paths {
        let url = format!(
            "{}{}",
            pipeline.base_url,
            path.replace("{campaign_id}", "documented")
        );
        let methods = operations
            .as_object()
            .map(|o| o.keys().cloned().collect::<Vec<_>>())
            .unwrap_or_default();
        for method in methods {
            let response = documented_call(&pipeline, &method, &path, &url)?
                .send()
                .await?;
            let status = response.status();
            let body = response.text().await?;
            assert!(
                served(status),
                "{method} {path} is documented but answers {status}: {body}"
            );
            calls += 1;
        }
    }
    assert!(calls >= 9, "only {calls} documented calls were made");
    // The controls: the check catches an unserved path (404) and an unserved method (405).
    let unserved_path = pipeline.get("/nope").await?;
    assert!(!served(unserved_path.status()), "{unserved_path:?}");
    let unserved_method = pipeline
        .client
        .delete(format!("{}/campaigns/documented/apply", pipeline.base_url))
        .send()
        .await?;
    assert!(!served(unserved_method.status()), "{unserved_method:?}");
    pipeline.shutdown().await
}

#[tokio::test]
async fn admin_endpoints_are_disabled_without_a_token_and_refuse_a_wrong_one() -> anyhow::Result<()>
{
    let mut pipeline = TestPipeline::spawn().await?;
    let client = pipeline.client.clone();
    let list = |base_url: String, token: &'static str| {
        client
            .get(format!("{base_url}/admin/campaigns"))
            .bearer_auth(token)
            .send()
    };
    let base_url = pipeline.base_url.clone();
    assert_eq!(list(base_url.clone(), "not-the-token").await?.status(), 401);
    assert_eq!(list(base_url, ADMIN_TOKEN).await?.status(), 200);

    let mut settings = pipeline.api_settings.clone();
    settings.admin_token = None;
    let without_token = pipeline.start_api_with(settings).await?;
    let disabled = list(without_token, ADMIN_TOKEN).await?;
    let (status, body) = TestPipeline::error_of(disabled).await?;
    assert_eq!(status, 403);
    assert!(body.error.contains("disabled"), "{body:?}");
    pipeline.shutdown().await
}

#[tokio::test]
async fn readiness_reports_each_dependency_and_metrics_count_applies() -> anyhow::Result<()> {
    let pipeline = TestPipeline::spawn().await?;
    let ready = pipeline.get("/readyz").await?;
    assert_eq!(ready.status(), 200);
    let body: Readiness = ready.json().await?;
    assert_eq!(body.status, ReadinessStatus::Ready);
    for dependency in ["redis", "mysql", "kafka"] {
        assert_eq!(
            body.checks.get(dependency).map(|check| check.status),
            Some(DependencyStatus::Up),
            "{body:?}"
        );
    }
    // Every address is shown without its password.
    let database_url = &pipeline.api_settings.stack.database_url;
    let password = database_url
        .split_once("://")
        .and_then(|(_, rest)| rest.rsplit_once('@'))
        .and_then(|(credentials, _)| credentials.split_once(':'))
        .map(|(_, password)| format!(":{password}@"));
    if let Some(password) = password {
        assert!(
            body.checks
                .values()
                .all(|check| !check.address.contains(&password)),
            "{body:?}"
        );
    }
    pipeline.create_campaign("metered", 1).await?;
    assert_eq!(pipeline.apply("metered", 1).await?.0, 201);
    assert_eq!(pipeline.apply("metered", 2).await?.0, 410);
    let metrics = pipeline.metrics().await?;
    assert!(
        metrics.contains("coupon_api_apply_requests_total{result=\"issued\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("coupon_api_apply_requests_total{result=\"sold_out\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("coupon_api_apply_duration_seconds_count 2"),
        "{metrics}"
    );
    pipeline.shutdown().await
}

/// `GET /readyz`: its status and body.
async fn readiness(client: &reqwest::Client, base_url: &str) -> anyhow::Result<(u16, Readiness)> {
    let response = client.get(format!("{base_url}/readyz")).send().await?;
    Ok((response.status().as_u16(), response.json().await?))
}

#[tokio::test]
async fn readiness_names_each_store_cut_off_and_recovers_when_it_returns() -> anyhow::Result<()> {
    let mut pipeline = TestPipeline::spawn().await?;
    // An api of its own that reaches every store through a proxy this test can cut.
    let mut settings = pipeline.api_settings.clone();
    let stack = &mut settings.stack;
    let redis = TcpProxy::start(stack.redis_socket_addr().await?).await?;
    let mysql = TcpProxy::start(stack.database_socket_addr().await?).await?;
    let kafka = TcpProxy::start(stack.kafka_socket_addr().await?).await?;
    stack.redis_url = url_via(&stack.redis_url, redis.addr)?;
    stack.database_url = stack.database_url_via(mysql.addr)?;
    stack.kafka_brokers = kafka.addr.to_string();
    let base_url = pipeline.start_api_with(settings).await?;

    for (name, proxy) in [("redis", &redis), ("mysql", &mysql), ("kafka", &kafka)] {
        let (status, body) = readiness(&pipeline.client, &base_url).await?;
        assert_eq!(status, 200, "ready before {name} is cut: {body:?}");
        proxy.cut();
        eventually(
            &format!("/readyz to answer 503 naming {name}, and only {name}"),
            Duration::from_secs(30),
            || async {
                let (status, body) = readiness(&pipeline.client, &base_url).await?;
                Ok((status == 503
                    && body.down == [name]
                    && body.checks.get(name).map(|check| check.status)
                        == Some(DependencyStatus::Down))
                .then_some(()))
            },
        )
        .await?;
        proxy.restore();
        eventually(
            &format!("/readyz to answer 200 once {name} is back"),
            Duration::from_secs(30),
            || async { Ok((readiness(&pipeline.client, &base_url).await?.0 == 200).then_some(())) },
        )
        .await?;
    }
    pipeline.shutdown().await
}

/// Sends `n` `GET /readyz` at once; returns how many probes the api made meanwhile, and how
/// long the flood took.
async fn readiness_flood(
    pipeline: &TestPipeline,
    base_url: &str,
    n: usize,
) -> anyhow::Result<(u64, Duration)> {
    const PROBES: &str = "coupon_api_readiness_probes_total";
    let client = &pipeline.client;
    let before = pipeline.counter(base_url, PROBES).await?;
    let started = std::time::Instant::now();
    let statuses = futures::future::try_join_all(
        (0..n).map(|_| async move { readiness(client, base_url).await.map(|(status, _)| status) }),
    )
    .await?;
    let took = started.elapsed();
    assert!(statuses.iter().all(|status| *status == 200), "{statuses:?}");
    Ok((pipeline.counter(base_url, PROBES).await? - before, took))
}

#[tokio::test]
async fn a_flood_of_readiness_checks_probes_the_stores_about_once_a_second() -> anyhow::Result<()> {
    let mut pipeline = TestPipeline::spawn().await?;
    let (probes, took) = readiness_flood(&pipeline, &pipeline.base_url, 50).await?;
    // One probe per second the flood lasted, and one for the second it started in.
    assert!(
        probes <= took.as_secs() + 2,
        "{probes} probes for 50 requests in {took:?}"
    );
    // The control: an api that reuses no answer probes once per request.
    let mut settings = pipeline.api_settings.clone();
    settings.readiness_reuse = Duration::ZERO;
    let unshared = pipeline.start_api_with(settings).await?;
    let (probes, _) = readiness_flood(&pipeline, &unshared, 50).await?;
    assert_eq!(probes, 50);
    pipeline.shutdown().await
}
