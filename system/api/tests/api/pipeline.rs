//! The original course's three tests, over HTTP, against the real stack; plus the crash and
//! data-loss cases its final design gets wrong. Every wait polls a condition with a deadline.

use std::{collections::HashSet, time::Duration};

use coupon_domain::history::ResultClass;
use futures::{StreamExt, stream};
use testkit::{eventually, pipeline::TestPipeline};

#[tokio::test]
async fn one_apply_gives_one_coupon() -> anyhow::Result<()> {
    let pipeline = TestPipeline::spawn().await?;
    pipeline.create_campaign("one", 100).await?;
    let (status, body) = pipeline.apply("one", 42).await?;
    assert_eq!(status, 201, "{body:?}");
    assert_eq!(body.result, ResultClass::Issued);
    assert_eq!(body.seq, Some(1));
    let rows = pipeline.drained_rows("one", 1).await?;
    assert_eq!(rows, vec![(42, 1)]);
    pipeline.shutdown().await
}

#[tokio::test]
async fn thousand_distinct_users_through_a_32_wide_pool_get_exactly_100() -> anyhow::Result<()> {
    let pipeline = TestPipeline::spawn().await?;
    pipeline.create_campaign("burst", 100).await?;
    let replies = pipeline.burst("burst", 1..=1000, 32).await?;
    let winners = TestPipeline::users_with(&replies, 201);
    assert_eq!(winners.len(), 100);
    assert_eq!(replies.iter().filter(|(_, s)| *s == 410).count(), 900);

    let rows = pipeline.drained_rows("burst", 100).await?;
    assert_eq!(rows.len(), 100);
    let row_users: HashSet<u64> = rows.iter().map(|(u, _)| *u).collect();
    assert_eq!(
        row_users, winners,
        "every issued reply has its row, and no other row exists"
    );
    let seqs: Vec<u32> = rows.iter().map(|(_, s)| *s).collect();
    assert_eq!(seqs, (1..=100).collect::<Vec<_>>());
    pipeline.shutdown().await
}

#[tokio::test]
async fn thousand_applies_by_one_user_give_exactly_one() -> anyhow::Result<()> {
    let pipeline = TestPipeline::spawn().await?;
    pipeline.create_campaign("same-user", 100).await?;
    let statuses: Vec<u16> = stream::iter(0..1000)
        .map(|_| async {
            pipeline
                .apply("same-user", 7)
                .await
                .map(|(status, _)| status)
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 1);
    assert_eq!(statuses.iter().filter(|s| **s == 409).count(), 999);
    assert_eq!(pipeline.drained_rows("same-user", 1).await?, vec![(7, 1)]);
    pipeline.shutdown().await
}

#[tokio::test]
async fn consumer_killed_mid_stream_and_restarted_loses_and_duplicates_nothing()
-> anyhow::Result<()> {
    let mut pipeline = TestPipeline::spawn().await?;
    pipeline.create_campaign("crash", 300).await?;
    for user in 1..=150 {
        assert_eq!(pipeline.apply("crash", user).await?.0, 201);
    }
    pipeline.crash_consumer().await;
    for user in 151..=300 {
        assert_eq!(pipeline.apply("crash", user).await?.0, 201);
    }
    pipeline.start_consumer().await?;
    let rows = pipeline.drained_rows("crash", 300).await?;
    let users: HashSet<u64> = rows.iter().map(|(u, _)| *u).collect();
    assert_eq!(rows.len(), 300);
    assert_eq!(users, (1..=300).collect::<HashSet<_>>());
    pipeline.shutdown().await
}

#[tokio::test]
async fn gate_state_lost_mid_campaign_never_over_issues_nor_issues_twice() -> anyhow::Result<()> {
    let pipeline = TestPipeline::spawn().await?;
    pipeline.create_campaign("flush", 50).await?;
    for user in 1..=30 {
        assert_eq!(pipeline.apply("flush", user).await?.0, 201);
    }
    // What FLUSHALL does to this campaign: every gate key is gone (scoped to this test's prefix,
    // so tests running beside it keep their state).
    pipeline.redis.clone().cleanup().await?;

    let (status, body) = pipeline.apply("flush", 31).await?;
    assert_eq!(
        status, 503,
        "the api must refuse while the gate is rebuilt: {body:?}"
    );
    assert_eq!(body.result, ResultClass::Unavailable);

    // Once rebuilt, earlier winners are still winners, and only 20 slots remain.
    let (status, _) = testkit::eventually(
        "the gate to be rebuilt",
        std::time::Duration::from_secs(30),
        || async {
            let (status, body) = pipeline.apply("flush", 5).await?;
            Ok((status != 503).then_some((status, body)))
        },
    )
    .await?;
    assert_eq!(status, 409, "user 5 already won before the loss");
    let mut issued = 0;
    for user in 31..=100 {
        if pipeline.apply("flush", user).await?.0 == 201 {
            issued += 1;
        }
    }
    assert_eq!(issued, 20);
    let rows = pipeline.drained_rows("flush", 50).await?;
    assert_eq!(rows.len(), 50);
    let users: HashSet<u64> = rows.iter().map(|(u, _)| *u).collect();
    assert_eq!(users.len(), 50);
    pipeline.shutdown().await
}

#[tokio::test]
async fn two_apis_and_two_consumers_together_still_issue_exactly_the_limit() -> anyhow::Result<()> {
    let mut pipeline = TestPipeline::spawn().await?;
    pipeline.start_api().await?;
    pipeline.start_consumer().await?;
    pipeline.create_campaign("scale", 100).await?;
    let urls = pipeline.api_urls.clone();
    assert_eq!(urls.len(), 2);
    let consumers = pipeline.consumer_metrics.clone();
    assert_eq!(consumers.len(), 2);
    // The group has rebalanced: each consumer holds some of the topic's partitions.
    eventually(
        "both consumers to hold partitions",
        Duration::from_secs(60),
        || async {
            Ok(consumers
                .iter()
                .all(|metrics| metrics.assigned("pipeline") > 0)
                .then_some(()))
        },
    )
    .await?;
    let replies = pipeline.burst("scale", 1..=1000, 32).await?;
    let winners = TestPipeline::users_with(&replies, 201);
    assert_eq!(winners.len(), 100);
    assert!(
        winners.iter().any(|u| u % 2 == 0) && winners.iter().any(|u| u % 2 == 1),
        "both apis issued"
    );
    let rows = pipeline.drained_rows("scale", 100).await?;
    let row_users: HashSet<u64> = rows.iter().map(|(u, _)| *u).collect();
    assert_eq!(rows.len(), 100);
    assert_eq!(row_users, winners);
    let written: Vec<u64> = consumers.iter().map(|m| m.rows_written.get()).collect();
    assert!(
        written.iter().all(|rows| *rows > 0),
        "each consumer wrote rows: {written:?}"
    );
    assert_eq!(written.iter().sum::<u64>(), 100);
    pipeline.shutdown().await
}

/// A failed event is retried until it can be written: an event for a campaign that does not
/// exist yet is captured (`unknown_campaign`), and once the campaign is created, the retry
/// worker writes its coupon and resolves it. Nothing is dropped. An event no retry can cure (a
/// slot beyond its campaign's limit) stays open, untouched by the worker.
#[tokio::test]
async fn a_failed_event_is_retried_until_its_coupon_is_written() -> anyhow::Result<()> {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let pipeline = TestPipeline::spawn().await?;
    pipeline.create_campaign("small", 1).await?;
    let producer: FutureProducer = coupon_kafka::producer_config(
        &pipeline.stack.kafka_brokers,
        std::time::Duration::from_secs(10),
    )
    .create()?;
    for (campaign, user, seq) in [("late", 77, 1), ("small", 78, 2)] {
        let event = coupon_domain::CouponIssued {
            campaign_id: coupon_domain::CampaignId::parse(campaign)?,
            user_id: coupon_domain::UserId::parse(user)?,
            seq: coupon_domain::Seq(seq),
            issued_at_ms: 0,
            epoch: 0,
        };
        let (key, payload) = (event.key(), event.to_json());
        producer
            .send(
                FutureRecord::to(&pipeline.topic.name)
                    .key(&key)
                    .payload(&payload),
                std::time::Duration::from_secs(10),
            )
            .await
            .map_err(|(error, _)| error)?;
    }
    let reason_of = |open: bool| {
        let store = pipeline.db.store.clone();
        move || {
            let store = store.clone();
            async move {
                let found = coupon_store::failed_events::list_for(&store, "late").await?;
                Ok(found
                    .into_iter()
                    .find(|event| event.open == open)
                    .map(|event| event.reason.as_str()))
            }
        }
    };
    let reason = testkit::eventually(
        "the consumer captures the event of an unknown campaign",
        std::time::Duration::from_secs(30),
        reason_of(true),
    )
    .await?;
    assert_eq!(reason, "unknown_campaign");
    assert!(pipeline.rows("late").await?.is_empty());

    pipeline.create_campaign("late", 10).await?;
    testkit::eventually(
        "the retry worker resolves the failed event",
        std::time::Duration::from_secs(60),
        reason_of(false),
    )
    .await?;
    assert_eq!(pipeline.rows("late").await?, vec![(77, 1)]);
    let small = coupon_store::failed_events::list_for(&pipeline.db.store, "small").await?;
    let [event] = small.as_slice() else {
        anyhow::bail!(
            "expected one failed event for `small`, found {}",
            small.len()
        );
    };
    assert_eq!(
        (event.reason.as_str(), event.open, event.attempts),
        ("seq_out_of_range", true, 0),
        "a slot beyond the limit can never be written: kept open, never retried"
    );
    pipeline.shutdown().await
}
