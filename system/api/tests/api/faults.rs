//! Faults between the pipeline and its stores, injected for one test only: a TCP proxy takes
//! MySQL away from the consumer while the shared server keeps running for every other test.

use std::{
    sync::atomic::{AtomicUsize, Ordering},
    time::Duration,
};

use testkit::{eventually, pipeline::TestPipeline, proxy::TcpProxy};

#[tokio::test]
async fn mysql_unreachable_while_consuming_then_rows_arrive_afterwards() -> anyhow::Result<()> {
    let mut pipeline = TestPipeline::spawn().await?;
    pipeline.crash_consumer().await;
    pipeline.create_campaign("outage", 500).await?;

    // The replacement consumer reaches MySQL only through the proxy.
    let stack = &mut pipeline.consumer_settings.stack;
    let proxy = TcpProxy::start(stack.database_socket_addr().await?).await?;
    stack.database_url = stack.database_url_via(proxy.addr)?;
    pipeline.start_consumer().await?;
    let metrics = pipeline
        .consumer_metrics
        .last()
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("no consumer"))?;

    proxy.cut();
    for user in 1..=200 {
        assert_eq!(pipeline.apply("outage", user).await?.0, 201);
    }
    // The consumer has met the outage and is retrying, and nothing was written meanwhile.
    eventually(
        "the consumer to retry a transient error",
        Duration::from_secs(30),
        || async { Ok((metrics.transient_errors.get() >= 2).then_some(())) },
    )
    .await?;
    assert!(pipeline.rows("outage").await?.is_empty());
    assert!(
        pipeline.lag().await? > 0,
        "offsets were committed without rows"
    );

    proxy.restore();
    let rows = pipeline.drained_rows("outage", 200).await?;
    assert_eq!(rows.len(), 200);
    let failed = coupon_store::failed_events::list_all(&pipeline.db.store).await?;
    assert_eq!(
        failed.len(),
        0,
        "a transient outage must not turn events into failed events"
    );
    pipeline.shutdown().await
}

#[tokio::test]
async fn kafka_broker_killed_and_restarted_during_a_burst_loses_no_issued_coupon()
-> anyhow::Result<()> {
    let mut broker = testkit::private_kafka::PrivateKafka::start().await?;
    let stack = testkit::Stack::on_kafka(&broker);
    let pipeline = std::sync::Arc::new(TestPipeline::spawn_on(stack).await?);
    pipeline.create_campaign("broker", 300).await?;

    // A steady stream of distinct users, 8 at a time, while the broker dies and comes back.
    // Two counters tell the test where the stream stands: replies so far, and replies that met
    // the dead broker (202 pending, 503 refused).
    let answered = std::sync::Arc::new(AtomicUsize::new(0));
    let met_the_dead_broker = std::sync::Arc::new(AtomicUsize::new(0));
    let burst = tokio::spawn({
        let (pipeline, answered, met) = (
            pipeline.clone(),
            answered.clone(),
            met_the_dead_broker.clone(),
        );
        async move {
            use futures::StreamExt;
            futures::stream::iter(1..=1500u64)
                .map(|user| {
                    let (pipeline, answered, met) =
                        (pipeline.clone(), answered.clone(), met.clone());
                    async move {
                        let status = pipeline
                            .apply("broker", user)
                            .await
                            .map(|(status, _)| status);
                        answered.fetch_add(1, Ordering::SeqCst);
                        if matches!(status, Ok(202 | 503)) {
                            met.fetch_add(1, Ordering::SeqCst);
                        }
                        (user, status)
                    }
                })
                .buffer_unordered(8)
                .collect::<Vec<_>>()
                .await
        }
    });
    // Kill while admissions are certainly in flight: 100 replies can hold at most 108 of the
    // 300 slots, so the gate is far from sold out.
    eventually(
        "100 replies before the crash",
        Duration::from_secs(30),
        || async { Ok((answered.load(Ordering::SeqCst) >= 100).then_some(())) },
    )
    .await?;
    let met_before_the_kill = met_the_dead_broker.load(Ordering::SeqCst);
    broker.process.kill()?;
    // The proof that the kill hit the stream: an apply answered 202 or 503 after the kill, while
    // the broker is down (a slow publish before the kill does not count).
    eventually(
        "an apply answered 202 or 503 while the broker is down",
        Duration::from_secs(60),
        || async {
            Ok((met_the_dead_broker.load(Ordering::SeqCst) > met_before_the_kill).then_some(()))
        },
    )
    .await?;
    broker.restart().await?;
    let replies = burst.await?;

    let status_of = |wanted: u16| -> std::collections::HashSet<u64> {
        replies
            .iter()
            .filter(|(_, status)| matches!(status, Ok(s) if *s == wanted))
            .map(|(user, _)| *user)
            .collect()
    };
    let (issued, pending, refused) = (status_of(201), status_of(202), status_of(503));
    assert!(!issued.is_empty());
    // Every pending apply resolves to a coupon once the broker is back (events in doubt are
    // republished, never released), so the campaign still ends with exactly its limit.
    let rows = match pipeline.drained_rows("broker", 300).await {
        Ok(rows) => rows,
        Err(error) => {
            let metrics = pipeline.metrics().await?;
            let interesting: Vec<&str> = metrics
                .lines()
                .filter(|l| l.contains("pending_resolved") || l.contains("apply_requests_total"))
                .collect();
            anyhow::bail!(
                "{error}: rows {}, lag {}, issued {}, pending {}, refused {}, api metrics {interesting:?}, consumer rows {}",
                pipeline.rows("broker").await?.len(),
                pipeline.lag().await?,
                issued.len(),
                pending.len(),
                refused.len(),
                pipeline
                    .consumer_metrics
                    .last()
                    .map(|m| m.rows_written.get())
                    .unwrap_or_default(),
            );
        }
    };
    let row_users: std::collections::HashSet<u64> = rows.iter().map(|(u, _)| *u).collect();
    assert_eq!(
        rows.len(),
        300,
        "issued {}, pending {}, refused {}",
        issued.len(),
        pending.len(),
        refused.len()
    );
    assert_eq!(row_users.len(), rows.len(), "a user holds two coupons");
    assert!(issued.is_subset(&row_users), "an issued reply has no row");
    assert!(
        pending.is_subset(&row_users),
        "a pending reply was neither issued nor released"
    );
    assert!(
        refused.is_disjoint(&row_users),
        "a refused (503) user has a coupon"
    );
    let pipeline = std::sync::Arc::into_inner(pipeline)
        .ok_or_else(|| anyhow::anyhow!("pipeline still shared"))?;
    pipeline.shutdown().await
}

#[tokio::test]
async fn flushall_mid_campaign_never_over_issues_nor_issues_twice() -> anyhow::Result<()> {
    let redis = testkit::private_redis::PrivateRedis::start(
        testkit::private_redis::Persistence::SnapshotOnly,
    )
    .await?;
    let stack = testkit::Stack::on_redis(&redis);
    let pipeline = TestPipeline::spawn_on(stack).await?;
    pipeline.create_campaign("flushall", 50).await?;
    for user in 1..=30 {
        assert_eq!(pipeline.apply("flushall", user).await?.0, 201);
    }
    let client = redis::Client::open(redis.url.as_str())?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let _: () = redis::cmd("FLUSHALL").query_async(&mut conn).await?;

    let (status, body) = pipeline.apply("flushall", 31).await?;
    assert_eq!(
        status, 503,
        "the api must refuse while the gate is rebuilt: {body:?}"
    );
    let (status, _) = eventually(
        "the gate to be rebuilt",
        Duration::from_secs(30),
        || async {
            let (status, body) = pipeline.apply("flushall", 7).await?;
            Ok((status != 503).then_some((status, body)))
        },
    )
    .await?;
    assert_eq!(
        status, 409,
        "user 7 won before the FLUSHALL and must not win twice"
    );
    let mut issued = 0;
    for user in 31..=120 {
        if pipeline.apply("flushall", user).await?.0 == 201 {
            issued += 1;
        }
    }
    assert_eq!(issued, 20, "exactly the 20 slots left after the first 30");
    let rows = pipeline.drained_rows("flushall", 50).await?;
    let users: std::collections::HashSet<u64> = rows.iter().map(|(u, _)| *u).collect();
    assert_eq!((rows.len(), users.len()), (50, 50));
    pipeline.shutdown().await
}

/// Forces a rebuild of `campaign`'s gate through the api at `base_url`, waits until it is back
/// with `winners`, and returns how many events that api read from the topic meanwhile.
async fn rebuild_through(
    pipeline: &TestPipeline,
    base_url: &str,
    campaign: &str,
    winners: u64,
) -> anyhow::Result<u64> {
    const SCANNED: &str = "coupon_api_events_scanned_total";
    let before = pipeline.counter(base_url, SCANNED).await?;
    let rebuild = pipeline
        .client
        .post(format!(
            "{base_url}/admin/campaigns/{campaign}/rebuild-gate"
        ))
        .bearer_auth(testkit::pipeline::ADMIN_TOKEN)
        .send()
        .await?;
    anyhow::ensure!(
        rebuild.status() == 202,
        "rebuild refused: {}",
        rebuild.status()
    );
    eventually(
        "the gate to be rebuilt",
        Duration::from_secs(60),
        || async {
            let view = pipeline.campaign(campaign).await?;
            Ok(
                (view.gate == Some(coupon_domain::wire::GateReadiness::Ready)
                    && view.issued == winners)
                    .then_some(()),
            )
        },
    )
    .await?;
    Ok(pipeline.counter(base_url, SCANNED).await? - before)
}

#[tokio::test]
async fn a_rebuild_reads_only_what_the_consumer_has_not_committed_past() -> anyhow::Result<()> {
    let mut pipeline = TestPipeline::spawn().await?;
    pipeline.create_campaign("bounded", 300).await?;
    for user in 1..=200 {
        assert_eq!(pipeline.apply("bounded", user).await?.0, 201);
    }
    // Drained: 200 rows, and the group committed past every event (lag 0).
    pipeline.drained_rows("bounded", 200).await?;
    // Every event is a row already: the rebuild reads none of them, and still knows all 200.
    let base_url = pipeline.base_url.clone();
    assert_eq!(
        rebuild_through(&pipeline, &base_url, "bounded", 200).await?,
        0
    );
    assert_eq!(pipeline.apply("bounded", 7).await?.0, 409);

    // The control reads the topic from its beginning, as the rebuild once did.
    let mut settings = pipeline.api_settings.clone();
    settings.read_from = coupon_api::configuration::ReadFrom::Beginning;
    let everything = pipeline.start_api_with(settings).await?;
    assert!(rebuild_through(&pipeline, &everything, "bounded", 200).await? >= 200);
    pipeline.shutdown().await
}

/// Users 1..=5 win, Redis snapshots, users 6..=8 win, then Redis is SIGKILLed and restarts from
/// the snapshot: its gate has forgotten users 6..=8, whose events are in Kafka. Returns user 9's
/// first decided answer after the restart, and then user 6's (with the pipeline and its Redis,
/// which must outlive it).
async fn restart_from_an_older_snapshot(
    restart_check: bool,
) -> anyhow::Result<(
    (u16, Option<u32>),
    u16,
    TestPipeline,
    testkit::private_redis::PrivateRedis,
)> {
    let mut redis = testkit::private_redis::PrivateRedis::start(
        testkit::private_redis::Persistence::SnapshotOnly,
    )
    .await?;
    let stack = testkit::Stack::on_redis(&redis);
    let pipeline = TestPipeline::spawn_configured(stack, |settings| {
        settings.restart_check = restart_check;
    })
    .await?;
    pipeline.create_campaign("rollback", 20).await?;
    for user in 1..=5 {
        assert_eq!(pipeline.apply("rollback", user).await?.0, 201);
    }
    let client = redis::Client::open(redis.url.as_str())?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let _: () = redis::cmd("SAVE").query_async(&mut conn).await?;
    for user in 6..=8 {
        assert_eq!(pipeline.apply("rollback", user).await?.0, 201);
    }
    redis.kill_and_restart().await?;
    // The first applies meet the dropped connection (504 unknown) or the rebuild (503).
    let (status, reply) = eventually(
        "user 9's apply to be decided",
        Duration::from_secs(60),
        || async {
            let (status, reply) = pipeline.apply("rollback", 9).await?;
            Ok((!matches!(status, 503 | 504)).then_some((status, reply)))
        },
    )
    .await?;
    let again = pipeline.apply("rollback", 6).await?.0;
    Ok(((status, reply.seq), again, pipeline, redis))
}

#[tokio::test]
async fn redis_restarted_from_an_older_snapshot_is_rebuilt_not_trusted() -> anyhow::Result<()> {
    let ((status, seq), again, pipeline, _redis) = restart_from_an_older_snapshot(true).await?;
    // The restart was noticed, the gate rebuilt from MySQL and Kafka: it knows users 6..=8.
    assert_eq!((status, seq), (201, Some(9)));
    assert_eq!(again, 409, "user 6 won before the restart");
    let rows = pipeline.drained_rows("rollback", 9).await?;
    let users: std::collections::HashSet<u64> = rows.iter().map(|(u, _)| *u).collect();
    let slots: std::collections::HashSet<u32> = rows.iter().map(|(_, s)| *s).collect();
    assert_eq!((rows.len(), users.len(), slots.len()), (9, 9, 9));
    pipeline.shutdown().await?;

    // The control trusts the restarted gate: it hands user 6's slot to user 9, and user 6 wins
    // a second slot.
    let ((status, seq), again, pipeline, _redis) = restart_from_an_older_snapshot(false).await?;
    assert_eq!((status, seq, again), (201, Some(6), 201));
    pipeline.shutdown().await
}
