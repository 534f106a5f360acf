//! The course's stages behave the course's way, flaws included, one request at a time: the
//! naive stage's `count > limit` lets limit + 1 through, the counter stages give one user
//! several coupons, and the per-user stage refuses a second apply. The burst-scale failures
//! (over-issue under a race, losses under a fault) are the CI gate's (scripts/gate).

use std::time::Duration;

use coupon_domain::Strategy;
use serde_json::json;
use testkit::pipeline::TestPipeline;

async fn course_rows(pipeline: &TestPipeline, campaign: &str) -> anyhow::Result<Vec<u64>> {
    let campaign = coupon_domain::CampaignId::parse(campaign)?;
    let rows = coupon_store::course::list_coupons(&pipeline.db.store, &campaign).await?;
    Ok(rows.into_iter().map(|row| row.user_id).collect())
}

async fn statuses(
    pipeline: &TestPipeline,
    campaign: &str,
    users: &[u64],
) -> anyhow::Result<Vec<u16>> {
    let mut statuses = Vec::new();
    for user in users {
        statuses.push(pipeline.apply(campaign, *user).await?.0);
    }
    Ok(statuses)
}

#[tokio::test]
async fn naive_lets_one_more_through_even_one_request_at_a_time() -> anyhow::Result<()> {
    let pipeline = TestPipeline::spawn().await?;
    pipeline
        .create_campaign_with("naive", 3, Strategy::Naive)
        .await?;
    let replies = statuses(&pipeline, "naive", &[1, 2, 3, 4, 5]).await?;
    assert_eq!(
        replies,
        vec![201, 201, 201, 201, 410],
        "count > limit, as the course wrote it"
    );
    assert_eq!(course_rows(&pipeline, "naive").await?, vec![1, 2, 3, 4]);
    assert!(
        pipeline.rows("naive").await?.is_empty(),
        "the constrained table is untouched"
    );
    pipeline.shutdown().await
}

#[tokio::test]
async fn counter_stages_give_one_user_several_coupons_and_per_user_does_not() -> anyhow::Result<()>
{
    let pipeline = TestPipeline::spawn().await?;
    pipeline
        .create_campaign_with("counter", 5, Strategy::RedisCounter)
        .await?;
    pipeline
        .create_campaign_with("kafka", 5, Strategy::Kafka)
        .await?;
    pipeline
        .create_campaign_with("per-user", 5, Strategy::PerUser)
        .await?;
    assert_eq!(
        statuses(&pipeline, "counter", &[7, 7, 7]).await?,
        vec![201, 201, 201]
    );
    assert_eq!(course_rows(&pipeline, "counter").await?, vec![7, 7, 7]);
    assert_eq!(
        statuses(&pipeline, "kafka", &[7, 7, 7]).await?,
        vec![201, 201, 201]
    );
    assert_eq!(
        statuses(&pipeline, "per-user", &[7, 7, 8]).await?,
        vec![201, 409, 201]
    );
    // The course's consumer writes asynchronously: poll until its rows are there.
    for (campaign, expected) in [("kafka", vec![7, 7, 7]), ("per-user", vec![7, 8])] {
        let rows = testkit::eventually(
            &format!("the course consumer writes {campaign}'s rows"),
            Duration::from_secs(30),
            || async {
                let mut rows = course_rows(&pipeline, campaign).await?;
                // Events without a key spread over partitions: their order is not kept.
                rows.sort_unstable();
                Ok((rows.len() >= expected.len()).then_some(rows))
            },
        )
        .await?;
        assert_eq!(rows, expected, "{campaign}");
    }
    pipeline.shutdown().await
}

#[tokio::test]
async fn an_unknown_strategy_is_refused_and_creates_nothing() -> anyhow::Result<()> {
    let pipeline = TestPipeline::spawn().await?;
    let response = pipeline
        .admin_post(
            "/admin/campaigns",
            Some(&json!({ "id": "bogus", "strategy": "optimistic" })),
        )
        .await?;
    let (status, body) = TestPipeline::error_of(response).await?;
    assert_eq!(status, 422);
    assert!(
        body.error.contains("unknown strategy `optimistic`"),
        "{body:?}"
    );
    assert_eq!(pipeline.get("/campaigns/bogus").await?.status(), 404);
    // A course stage has no gate: rebuilding one is refused, and the campaign says which stage.
    pipeline
        .create_campaign_with("stage", 10, Strategy::PerUser)
        .await?;
    let rebuild = pipeline
        .admin_post("/admin/campaigns/stage/rebuild-gate", None::<&()>)
        .await?;
    assert_eq!(rebuild.status(), 422);
    assert_eq!(
        pipeline.campaign("stage").await?.strategy,
        Strategy::PerUser
    );
    pipeline.shutdown().await
}
