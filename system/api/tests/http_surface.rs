//! The rest of the HTTP surface: the OpenAPI document matches the routes, admin endpoints are
//! disabled without a token, readiness names dependencies, metrics count applies.

mod helpers;

use coupon_api::Application;
use helpers::{ADMIN_TOKEN, TestPipeline};

#[tokio::test]
async fn every_path_in_the_openapi_document_is_served() -> anyhow::Result<()> {
    let pipeline = TestPipeline::spawn().await?;
    let document: serde_json::Value = pipeline
        .client
        .get(format!("{}/openapi.json", pipeline.base_url))
        .send()
        .await?
        .json()
        .await?;
    let paths = document["paths"].as_object().cloned().unwrap_or_default();
    assert!(
        paths.len() >= 8,
        "the document lists too few paths: {}",
        paths.len()
    );
    for (path, operations) in paths {
        let url = format!(
            "{}{}",
            pipeline.base_url,
            path.replace("{campaign_id}", "default")
        );
        for method in operations
            .as_object()
            .map(|o| o.keys().cloned().collect::<Vec<_>>())
            .unwrap_or_default()
        {
            let request = match method.as_str() {
                "get" => pipeline.client.get(&url),
                "post" => pipeline.client.post(&url).json(&serde_json::json!({})),
                other => anyhow::bail!("unexpected method {other} for {path}"),
            };
            let response = request.bearer_auth("wrong-token").send().await?;
            let body = response.text().await?;
            assert!(
                !body.contains("no such route"),
                "{method} {path} is documented but not served"
            );
        }
    }
    // The control: an undocumented path does hit the fallback.
    let body = pipeline
        .client
        .get(format!("{}/nope", pipeline.base_url))
        .send()
        .await?
        .text()
        .await?;
    assert!(body.contains("no such route"));
    pipeline.shutdown().await
}

#[tokio::test]
async fn admin_endpoints_are_disabled_without_a_token_and_refuse_a_wrong_one() -> anyhow::Result<()>
{
    let pipeline = TestPipeline::spawn().await?;
    let url = format!("{}/admin/campaigns", pipeline.base_url);
    let wrong = pipeline
        .client
        .get(&url)
        .bearer_auth("not-the-token")
        .send()
        .await?;
    assert_eq!(wrong.status(), 401);
    let right = pipeline
        .client
        .get(&url)
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await?;
    assert_eq!(right.status(), 200);

    let mut settings = pipeline.api_settings.clone();
    settings.admin_token = None;
    let app = Application::build(settings).await?;
    let url = format!("http://{}/admin/campaigns", app.local_addr());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async move {
        let _ = stop_rx.await;
    }));
    let disabled = pipeline
        .client
        .get(&url)
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await?;
    assert_eq!(disabled.status(), 403);
    let body: serde_json::Value = disabled.json().await?;
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("disabled"),
        "{body}"
    );
    let _ = stop_tx.send(());
    server.await??;
    pipeline.shutdown().await
}

#[tokio::test]
async fn readiness_reports_each_dependency_and_metrics_count_applies() -> anyhow::Result<()> {
    let pipeline = TestPipeline::spawn().await?;
    let ready = pipeline
        .client
        .get(format!("{}/readyz", pipeline.base_url))
        .send()
        .await?;
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().await?;
    for dependency in ["redis", "mysql", "kafka"] {
        assert_eq!(body["checks"][dependency]["status"], "up", "{body}");
    }
    pipeline.create_campaign("metered", 1).await?;
    assert_eq!(pipeline.apply("metered", 1).await?.0, 201);
    assert_eq!(pipeline.apply("metered", 2).await?.0, 410);
    let metrics = pipeline
        .client
        .get(format!("{}/metrics", pipeline.base_url))
        .send()
        .await?
        .text()
        .await?;
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
