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
