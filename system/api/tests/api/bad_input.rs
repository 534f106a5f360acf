//! Every kind of bad input gets its 4xx and a JSON error saying what was wrong, and leaves
//! Redis, Kafka and MySQL exactly as they were.

use redis::AsyncCommands;
use testkit::pipeline::TestPipeline;

struct Case {
    name: &'static str,
    path: &'static str,
    content_type: Option<&'static str>,
    body: String,
    status: u16,
    says: &'static str,
}

fn case(name: &'static str, body: &str, status: u16, says: &'static str) -> Case {
    Case {
        name,
        path: "/campaigns/bad/apply",
        content_type: Some("application/json"),
        body: body.to_owned(),
        status,
        says,
    }
}

fn cases() -> Vec<Case> {
    vec![
        case("malformed json", "{\"user_id\": ", 400, "EOF"),
        case("not an object", "[1]", 422, "user_id"),
        case("missing user_id", "{}", 422, "missing field `user_id`"),
        case("zero user_id", "{\"user_id\": 0}", 422, "positive"),
        case("negative user_id", "{\"user_id\": -5}", 422, "user_id"),
        case("fractional user_id", "{\"user_id\": 1.5}", 422, "user_id"),
        case("string user_id", "{\"user_id\": \"7\"}", 422, "user_id"),
        case(
            "overflowing user_id",
            "{\"user_id\": 18446744073709551616}",
            422,
            "user_id",
        ),
        case(
            "duplicate user_id",
            "{\"user_id\": 1, \"user_id\": 2}",
            400,
            "duplicate key `user_id`",
        ),
        case(
            "duplicate key deeper down",
            "{\"user_id\": 1, \"x\": {\"a\": 1, \"a\": 2}}",
            400,
            "duplicate key `a`",
        ),
        case(
            "unknown field",
            "{\"user_id\": 1, \"admin\": true}",
            422,
            "unknown field `admin`",
        ),
        Case {
            content_type: Some("text/plain"),
            ..case(
                "wrong content type",
                "{\"user_id\": 1}",
                415,
                "Content-Type",
            )
        },
        Case {
            content_type: None,
            ..case("no content type", "{\"user_id\": 1}", 415, "Content-Type")
        },
        case(
            "body over the limit",
            &format!("{{\"user_id\": 1, \"pad\": \"{}\"}}", "x".repeat(4096)),
            413,
            "length limit",
        ),
        Case {
            path: "/campaigns/Bad!/apply",
            ..case(
                "malformed campaign id",
                "{\"user_id\": 1}",
                400,
                "campaign id",
            )
        },
        Case {
            path: "/campaigns/nope/apply",
            ..case("unknown campaign", "{\"user_id\": 1}", 404, "not found")
        },
    ]
}

#[tokio::test]
async fn each_bad_input_gets_its_4xx_and_changes_nothing() -> anyhow::Result<()> {
    let pipeline = TestPipeline::spawn().await?;
    pipeline.create_campaign("bad", 10).await?;
    let mut redis = pipeline.redis.connection().await?;
    let winners_key = format!(
        "{}:{{bad}}:winners",
        pipeline.redis.prefix.trim_end_matches(':')
    );
    let marks_before = pipeline.high_watermark_total().await?;

    for case in cases() {
        let mut request = pipeline
            .client
            .post(format!("{}{}", pipeline.base_url, case.path))
            .body(case.body.clone());
        if let Some(content_type) = case.content_type {
            request = request.header("content-type", content_type);
        }
        let (status, body) = TestPipeline::error_of(request.send().await?).await?;
        assert_eq!(status, case.status, "{}: {body:?}", case.name);
        assert!(
            body.error.contains(case.says),
            "{}: error {:?} should mention {:?}",
            case.name,
            body.error,
            case.says
        );
    }

    let winners: u64 = redis.hlen(&winners_key).await?;
    assert_eq!(winners, 0, "bad input reached the gate");
    assert_eq!(
        pipeline.high_watermark_total().await?,
        marks_before,
        "bad input reached kafka"
    );
    assert!(
        pipeline.rows("bad").await?.is_empty(),
        "bad input reached mysql"
    );

    // The control: one good apply does change all three, so the checks above can fail.
    assert_eq!(pipeline.apply("bad", 1).await?.0, 201);
    let winners: u64 = redis.hlen(&winners_key).await?;
    assert_eq!(winners, 1);
    assert_eq!(pipeline.high_watermark_total().await?, marks_before + 1);
    assert_eq!(pipeline.drained_rows("bad", 1).await?, vec![(1, 1)]);
    pipeline.shutdown().await
}

#[tokio::test]
async fn a_campaign_row_written_by_hand_that_is_no_campaign_does_not_stop_an_api()
-> anyhow::Result<()> {
    let mut pipeline = TestPipeline::spawn().await?;
    pipeline.create_campaign("good", 10).await?;
    coupon_store::admin::plant_campaign_row(&pipeline.db.store, "Bad Id!").await?;
    // A second api starts over the same database, the bad row included.
    let second = pipeline
        .start_api_with(pipeline.api_settings.clone())
        .await?;
    let listed: coupon_domain::wire::CampaignList = pipeline
        .client
        .get(format!("{second}/admin/campaigns"))
        .bearer_auth(testkit::pipeline::ADMIN_TOKEN)
        .send()
        .await?
        .json()
        .await?;
    let ids: Vec<String> = listed
        .campaigns
        .iter()
        .map(|c| c.campaign_id.to_string())
        .collect();
    assert!(ids.contains(&"good".to_owned()), "{ids:?}");
    assert!(!ids.iter().any(|id| id.contains("Bad")), "{ids:?}");
    let (status, _) = pipeline.apply_via(&second, "good", 1).await?;
    assert_eq!(status, 201);
    pipeline.shutdown().await
}

/// 300 applies to random campaign ids that do not exist, 30 at a time, on the api at
/// `base_url`: every one 404; returns how many times the api's campaign cache read MySQL meanwhile,
/// and how long the flood took.
async fn unknown_campaign_flood(
    pipeline: &TestPipeline,
    base_url: &str,
) -> anyhow::Result<(u64, std::time::Duration)> {
    use futures::StreamExt;
    let before = pipeline
        .counter(base_url, "coupon_api_campaign_reads_total")
        .await?;
    let started = std::time::Instant::now();
    let statuses: Vec<u16> = futures::stream::iter(0..300u64)
        .map(|i| async move {
            let id = testkit::unique_name(&format!("nobody-{i}")).replace('_', "-");
            let response = pipeline
                .client
                .post(format!("{base_url}/campaigns/{id}/apply"))
                .json(&serde_json::json!({ "user_id": 1 }))
                .send()
                .await?;
            anyhow::Ok(response.status().as_u16())
        })
        .buffer_unordered(30)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    let took = started.elapsed();
    assert!(statuses.iter().all(|status| *status == 404), "{statuses:?}");
    Ok((
        pipeline
            .counter(base_url, "coupon_api_campaign_reads_total")
            .await?
            - before,
        took,
    ))
}

#[tokio::test]
async fn a_flood_of_unknown_campaign_ids_reads_mysql_about_once_a_second() -> anyhow::Result<()> {
    let mut pipeline = TestPipeline::spawn().await?;
    let base_url = pipeline.base_url.clone();
    let (reads, took) = unknown_campaign_flood(&pipeline, &base_url).await?;
    assert!(
        reads <= took.as_secs() + 2,
        "{reads} mysql reads for 300 unknown ids in {took:?}"
    );
    // The control: an api that answers no miss from its last read asks MySQL every time.
    let mut settings = pipeline.api_settings.clone();
    settings.campaign_miss_window = std::time::Duration::ZERO;
    let uncached = pipeline.start_api_with(settings).await?;
    let (reads, _) = unknown_campaign_flood(&pipeline, &uncached).await?;
    assert_eq!(reads, 300);
    pipeline.shutdown().await
}
