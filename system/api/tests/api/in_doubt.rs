//! Admissions whose outcome the api cannot know (issue 11, item 2): a Redis stall past the
//! client's response timeout runs the gate scripts already sent once Redis resumes, so the api
//! must not call such an apply refused.

use std::time::Duration;

use coupon_domain::history::ResultClass;
use testkit::{pipeline::TestPipeline, private_redis::PrivateRedis};

/// An api of the pipeline's with a short Redis response timeout; `unknown_outcomes` off is the
/// control that answers as this project once did.
async fn impatient_api(
    pipeline: &mut TestPipeline,
    unknown_outcomes: bool,
) -> anyhow::Result<String> {
    let mut settings = pipeline.api_settings.clone();
    settings.redis_response_timeout = Duration::from_secs(1);
    settings.unknown_outcomes = unknown_outcomes;
    pipeline.start_api_with(settings).await
}

#[tokio::test]
async fn a_redis_stall_past_the_timeout_answers_unknown_never_refused() -> anyhow::Result<()> {
    let redis = PrivateRedis::start().await?;
    let stack = testkit::Stack {
        redis_url: redis.url.clone(),
        ..testkit::Stack::from_env()
    };
    let mut pipeline = TestPipeline::spawn_on(stack).await?;
    pipeline.create_campaign("stall", 10).await?;
    let api = impatient_api(&mut pipeline, true).await?;
    let control = impatient_api(&mut pipeline, false).await?;
    // One apply first, so Redis knows the gate script: a stalled EVALSHA of a script it does
    // not know would come back NOSCRIPT and take nothing.
    assert_eq!(pipeline.apply("stall", 100).await?.0, 201);

    redis.pause()?;
    let (answers, control_answers) = tokio::join!(
        futures::future::join_all((1..=3).map(|user| pipeline.apply_via(&api, "stall", user))),
        futures::future::join_all((4..=6).map(|user| pipeline.apply_via(&control, "stall", user))),
    );
    redis.resume()?;

    for answer in answers {
        let (status, reply) = answer?;
        assert_eq!(
            (status, reply.result),
            (504, ResultClass::Unknown),
            "a stalled gate's apply is of unknown outcome: {reply:?}"
        );
    }
    // The control answered "refused" (503)...
    for answer in control_answers {
        assert_eq!(answer?.0, 503);
    }
    // ...yet, like the unknown ones, each of those applies took a slot once Redis resumed: a
    // user told "refused" holds a coupon's slot.
    for user in 1..=6 {
        let (status, reply) = pipeline.apply("stall", user).await?;
        assert_eq!(status, 409, "user {user} holds a slot: {reply:?}");
    }
    pipeline.shutdown().await
}
