//! The consumer binary, killed with SIGKILL mid-stream and started again: every event becomes
//! exactly one row, and redelivered events are recognised as already written, not failures.

use std::{process::Stdio, time::Duration};

use coupon_domain::{CampaignId, CouponIssued, Seq, UserId};
use rdkafka::producer::{FutureProducer, FutureRecord};
use testkit::{Stack, TestDatabase, TestTopic, eventually, unique_group};

const EVENTS: u32 = 3000;

fn start_consumer(
    stack: &Stack,
    db: &TestDatabase,
    topic: &TestTopic,
    group: &str,
) -> anyhow::Result<std::process::Child> {
    Ok(
        std::process::Command::new(env!("CARGO_BIN_EXE_coupon-consumer"))
            .env("DATABASE_URL", &db.url)
            .env("KAFKA_BROKERS", &stack.kafka_brokers)
            .env("KAFKA_TOPIC", &topic.name)
            .env("KAFKA_GROUP", group)
            // Small batches keep the stream going long enough to be killed in the middle of it.
            .env("BATCH_SIZE", "5")
            .env("CONSUMER_METRICS_ADDR", "127.0.0.1:0")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    )
}

async fn row_count(db: &TestDatabase) -> anyhow::Result<i64> {
    let (rows, _, _) = coupon_store::admin::coupon_totals(&db.store).await?;
    Ok(i64::try_from(rows)?)
}

#[tokio::test]
async fn consumer_sigkilled_mid_stream_and_restarted_writes_each_event_once() -> anyhow::Result<()>
{
    let stack = Stack::from_env();
    let db = TestDatabase::create(&stack).await?;
    let store = db.migrated().await?;
    let sigkill = coupon_domain::Campaign::new(
        CampaignId::parse("sigkill")?,
        coupon_domain::CouponLimit::parse(u64::from(EVENTS))?,
        None,
        None,
    )?;
    assert!(coupon_store::campaigns::create(&store, &sigkill).await?);
    let topic = TestTopic::create(&stack, 4).await?;
    let group = unique_group();

    let producer: FutureProducer =
        coupon_kafka::producer_config(&stack.kafka_brokers, Duration::from_secs(10)).create()?;
    let campaign = CampaignId::parse("sigkill")?;
    let events: Vec<CouponIssued> = (1..=EVENTS)
        .map(|seq| {
            Ok(CouponIssued {
                campaign_id: campaign.clone(),
                user_id: UserId::parse(u64::from(seq) + 1000)?,
                seq: Seq(seq),
                issued_at_ms: 1_700_000_000_000,
                epoch: 0,
            })
        })
        .collect::<anyhow::Result<_>>()?;
    let deliveries = events.iter().map(|event| {
        let (key, payload) = (event.key(), event.to_json());
        let producer = &producer;
        let topic = &topic.name;
        async move {
            producer
                .send(
                    FutureRecord::to(topic).key(&key).payload(&payload),
                    Duration::from_secs(10),
                )
                .await
                .map_err(|(e, _)| e)
        }
    });
    futures::future::try_join_all(deliveries).await?;

    let mut first = start_consumer(&stack, &db, &topic, &group)?;
    let written_before_kill = eventually(
        "the first consumer to write some rows",
        Duration::from_secs(60),
        || async {
            let rows = row_count(&db).await?;
            Ok((rows >= 300).then_some(rows))
        },
    )
    .await?;
    first.kill()?; // SIGKILL
    first.wait()?;
    let at_kill = row_count(&db).await?;
    assert!(
        at_kill < i64::from(EVENTS),
        "the consumer finished before it was killed ({written_before_kill} rows); the test proves nothing"
    );

    let mut second = start_consumer(&stack, &db, &topic, &group)?;
    let offsets = eventually(
        "every event written and committed",
        Duration::from_secs(120),
        || async {
            let rows = row_count(&db).await?;
            let offsets =
                coupon_kafka::offsets::read(&stack.kafka_brokers, &topic.name, &group).await?;
            Ok(
                (rows == i64::from(EVENTS) && coupon_kafka::offsets::total_lag(&offsets) == 0)
                    .then_some(offsets),
            )
        },
    )
    .await?;
    second.kill()?;
    second.wait()?;

    let (rows, users, slots) = coupon_store::admin::coupon_totals(&db.store).await?;
    let events = u64::from(EVENTS);
    assert_eq!((rows, users, slots), (events, events, events));
    let failed = coupon_store::failed_events::list_all(&db.store).await?;
    assert_eq!(
        failed.len(),
        0,
        "redelivered events must be 'already written', not failures"
    );
    assert_eq!(
        offsets.iter().map(|p| p.high).sum::<i64>(),
        i64::from(EVENTS)
    );

    store.disconnect().await;
    topic.cleanup().await?;
    db.cleanup().await
}
