//! Admissions whose outcome the api cannot know, and slots nobody holds (issue 11, item 2): a
//! Redis stall past the client's response timeout runs the gate scripts already sent once Redis
//! resumes, so the api must not call such an apply refused; an api that stops with admissions
//! in doubt must publish them first; and what no event followed, the reconciler releases.

use std::time::Duration;

use coupon_domain::history::ResultClass;
use testkit::{pipeline::TestPipeline, private_redis::PrivateRedis};

/// An api of the pipeline's with a short Redis response timeout; `unknown_outcomes` off is the
/// control that answers as this project once did, `resolve_unknown` off the control that
/// leaves what a stalled script took to the reconciler.
async fn impatient_api(
    pipeline: &mut TestPipeline,
    unknown_outcomes: bool,
    resolve_unknown: bool,
) -> anyhow::Result<String> {
    let mut settings = pipeline.api_settings.clone();
    settings.redis_response_timeout = Duration::from_secs(1);
    settings.unknown_outcomes = unknown_outcomes;
    settings.resolve_unknown = resolve_unknown;
    pipeline.start_api_with(settings).await
}

/// Pipeline settings with no reconciler, so that a test sees slots stay held until it starts
/// one ([`start_reconciler`]).
fn without_reconciler(settings: &mut coupon_api::Settings) {
    settings.reconcile = false;
}

/// Starts an api that reconciles quickly; returns its url.
async fn start_reconciler(pipeline: &mut TestPipeline) -> anyhow::Result<String> {
    let mut settings = pipeline.api_settings.clone();
    settings.reconcile = true;
    settings.reconcile_every = Duration::from_millis(500);
    settings.reconcile_after = Duration::from_secs(2);
    pipeline.start_api_with(settings).await
}

/// Waits until the campaign's gate holds exactly `winners`.
async fn gate_holds(pipeline: &TestPipeline, campaign: &str, winners: u64) -> anyhow::Result<()> {
    testkit::eventually(
        &format!("campaign {campaign}'s gate to hold {winners} winners"),
        Duration::from_secs(60),
        || async { Ok((pipeline.campaign(campaign).await?.issued == winners).then_some(())) },
    )
    .await
}

/// Users 1-3 apply through the design's api, 4-6 through the control that answers 503, 7-9
/// through the control that answers 504 but never resolves it. Each script runs once Redis
/// resumes, so all nine take a slot: the design publishes its three wins (the users were told
/// "unknown", and a coupon is a valid end), while the controls' six slots stay held with no
/// event until the reconciler releases them.
#[tokio::test]
async fn a_redis_stall_past_the_timeout_answers_unknown_resolves_it_and_the_reconciler_frees_the_rest()
-> anyhow::Result<()> {
    let redis = PrivateRedis::start(testkit::private_redis::Persistence::SnapshotOnly).await?;
    let stack = testkit::Stack::on_redis(&redis);
    let mut pipeline = TestPipeline::spawn_configured(stack, without_reconciler).await?;
    pipeline.create_campaign("stall", 10).await?;
    let api = impatient_api(&mut pipeline, true, true).await?;
    let control = impatient_api(&mut pipeline, false, false).await?;
    let unresolving = impatient_api(&mut pipeline, true, false).await?;
    // One apply first, so Redis knows the gate script: a stalled EVALSHA of a script it does
    // not know would come back NOSCRIPT and take nothing.
    assert_eq!(pipeline.apply("stall", 100).await?.0, 201);

    redis.process.pause()?;
    let (answers, control_answers, unresolved_answers) = tokio::join!(
        futures::future::join_all((1..=3).map(|user| pipeline.apply_via(&api, "stall", user))),
        futures::future::join_all((4..=6).map(|user| pipeline.apply_via(&control, "stall", user))),
        futures::future::join_all((7..=9).map(|user| pipeline.apply_via(
            &unresolving,
            "stall",
            user
        ))),
    );
    redis.process.resume()?;

    for answer in answers.into_iter().chain(unresolved_answers) {
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
    for user in 1..=9 {
        let (status, reply) = pipeline.apply("stall", user).await?;
        assert_eq!(status, 409, "user {user} holds a slot: {reply:?}");
    }
    // The design resolved its three: their wins were published, and they have rows. The
    // controls' six slots stay held with no event, even once the consumer has read everything
    // (no reconciler runs yet).
    let rows = pipeline.drained_rows("stall", 4).await?;
    let mut users: Vec<u64> = rows.iter().map(|(user, _)| *user).collect();
    users.sort_unstable();
    assert_eq!(users, [1, 2, 3, 100], "rows {rows:?}");
    assert_eq!(pipeline.campaign("stall").await?.issued, 10);

    // The reconciler releases those six (it never publishes), and the campaign sells its ten.
    start_reconciler(&mut pipeline).await?;
    gate_holds(&pipeline, "stall", 4).await?;
    for user in 1..=12 {
        pipeline.apply("stall", user).await?;
    }
    let rows = pipeline.drained_rows("stall", 10).await?;
    assert_eq!(rows.len(), 10);
    let revoked = coupon_store::failed_events::list_for(&pipeline.db.store, "stall").await?;
    assert!(
        revoked.is_empty(),
        "no event was ever published for them: {revoked:?}"
    );
    pipeline.shutdown().await
}

/// The reconciler counts a campaign's rows in MySQL only while its gate may hold a winner with
/// no row: once a pass found a row for every winner, later passes skip the campaign until its
/// gate changes. The control counts every campaign on every pass, as the reconciler once did
/// (with a million rows on file, 0.65 s of MariaDB's CPU every 5 s, which a burst's tail met).
#[tokio::test]
async fn the_reconciler_leaves_a_campaign_whose_winners_all_have_rows_alone() -> anyhow::Result<()>
{
    for skips_settled in [true, false] {
        let pipeline = TestPipeline::spawn_configured(testkit::Stack::from_env(), |s| {
            s.reconcile_every = Duration::from_millis(100);
            s.reconcile_skips_settled = skips_settled;
        })
        .await?;
        pipeline.create_campaign("settled", 5).await?;
        for user in 1..=5 {
            assert_eq!(pipeline.apply("settled", user).await?.0, 201);
        }
        pipeline.drained_rows("settled", 5).await?;
        let api = pipeline.base_url.clone();
        let passes = || pipeline.counter(&api, "coupon_api_reconciler_passes_total");
        let counts = || pipeline.counter(&api, "coupon_api_reconciler_row_counts_total");
        // A pass that began before the last row was written may still count: start after it.
        let settled_from = passes().await? + 2;
        testkit::eventually("two reconciler passes", Duration::from_secs(30), || async {
            Ok((passes().await? >= settled_from).then_some(()))
        })
        .await?;
        let (counts_before, passes_before) = (counts().await?, passes().await?);
        testkit::eventually("five more passes", Duration::from_secs(30), || async {
            Ok((passes().await? >= passes_before + 5).then_some(()))
        })
        .await?;
        let counted = counts().await? - counts_before;
        if skips_settled {
            assert_eq!(counted, 0, "a settled campaign's rows were counted again");
        } else {
            assert!(counted >= 5, "the control counts on every pass: {counted}");
        }
        // An admission changes the gate: the next pass counts that campaign's rows again.
        if skips_settled {
            pipeline.create_campaign("moved", 5).await?;
            assert_eq!(pipeline.apply("settled", 6).await?.0, 410);
            assert_eq!(pipeline.apply("moved", 1).await?.0, 201);
            testkit::eventually(
                "the changed gate counted",
                Duration::from_secs(30),
                || async { Ok((counts().await? > counts_before).then_some(())) },
            )
            .await?;
        }
        pipeline.shutdown().await?;
    }
    Ok(())
}

/// The api binary, run as its own process on the pipeline's stores, so that a SIGTERM ends it
/// (and with it every task it has not finished) as in production. Killed when dropped.
struct ApiProcess {
    child: std::process::Child,
    url: String,
}

impl ApiProcess {
    async fn start(pipeline: &TestPipeline, env: &[(&str, &str)]) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_coupon-api"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(pipeline.api_settings.stack.to_env())
            .env("API_ADDR", format!("127.0.0.1:{port}"))
            // No reconciling here: the test starts its own reconciler when it wants one.
            .env("RECONCILE_AFTER", "3600s")
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        let api = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        testkit::eventually(
            "the api process to answer",
            Duration::from_secs(60),
            || async {
                let answer = pipeline
                    .client
                    .get(format!("{}/healthz", api.url))
                    .send()
                    .await;
                Ok(answer.ok().filter(|r| r.status() == 200).map(drop))
            },
        )
        .await?;
        Ok(api)
    }

    fn terminate(&self) -> anyhow::Result<()> {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id())?);
        Ok(nix::sys::signal::kill(
            pid,
            nix::sys::signal::Signal::SIGTERM,
        )?)
    }

    async fn exited_within(&mut self, limit: Duration) -> anyhow::Result<()> {
        let child = &mut self.child;
        testkit::eventually("the api process to exit", limit, || {
            let exited = child.try_wait().map(|status| status.map(drop));
            std::future::ready(exited.map_err(anyhow::Error::from))
        })
        .await
    }
}

impl Drop for ApiProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn a_graceful_stop_publishes_the_admissions_in_doubt_before_exiting() -> anyhow::Result<()> {
    let mut broker = testkit::private_kafka::PrivateKafka::start().await?;
    let stack = testkit::Stack::on_kafka(&broker);
    let mut pipeline = TestPipeline::spawn_configured(stack, without_reconciler).await?;
    pipeline.create_campaign("waits", 10).await?;
    pipeline.create_campaign("drops", 10).await?;
    // Short delivery timeouts, so the first delivery of each event fails while the broker is
    // down and only the republishing task can still publish it. The control stops at once.
    let quick = [("PUBLISH_WAIT", "1s"), ("DELIVERY_TIMEOUT", "2s")];
    let patient =
        ApiProcess::start(&pipeline, &[quick[0], quick[1], ("SHUTDOWN_GRACE", "60s")]).await?;
    let mut control =
        ApiProcess::start(&pipeline, &[quick[0], quick[1], ("SHUTDOWN_GRACE", "0s")]).await?;
    let mut patient = patient;

    broker.process.kill()?;
    for user in 1..=3 {
        assert_eq!(
            pipeline.apply_via(&patient.url, "waits", user).await?.0,
            202
        );
        assert_eq!(
            pipeline.apply_via(&control.url, "drops", user).await?.0,
            202
        );
    }
    // The first deliveries have failed once republishes have (each apply waited 1 s and each
    // delivery times out after 2 s, so all three have expired by the third failure).
    for api in [&patient, &control] {
        testkit::eventually(
            "the first deliveries to fail",
            Duration::from_secs(60),
            || async {
                let failures = pipeline
                    .counter(&api.url, "coupon_api_republish_failures_total")
                    .await?;
                Ok((failures >= 3).then_some(()))
            },
        )
        .await?;
    }
    patient.terminate()?;
    control.terminate()?;
    control.exited_within(Duration::from_secs(30)).await?;
    broker.restart().await?;
    patient.exited_within(Duration::from_secs(60)).await?;

    // The patient api published its three before exiting: each becomes a coupon.
    let rows = pipeline.drained_rows("waits", 3).await?;
    assert_eq!(rows.len(), 3);
    // The control dropped them: the consumer has read everything (the drain above waited for
    // lag 0), and its three winners hold slots with no event and no row, with nobody left to
    // publish them.
    let dropped = pipeline.campaign("drops").await?;
    assert_eq!((dropped.issued, dropped.persisted), (3, 0), "{dropped:?}");
    // An api gone with its admissions in doubt: the reconciler releases their slots.
    start_reconciler(&mut pipeline).await?;
    gate_holds(&pipeline, "drops", 0).await?;
    pipeline.shutdown().await
}
