//! One test per real service of the local stack, each isolated with the testkit helpers.
//! They fail when a service is down: run `scripts/stack up` first (the test command does).

use std::time::Duration;

use rdkafka::{
    ClientConfig, Message, Offset, TopicPartitionList,
    consumer::{CommitMode, Consumer, StreamConsumer},
    producer::{FutureProducer, FutureRecord},
};
use redis::AsyncCommands;
use testkit::{RedisNamespace, Stack, TestDatabase, TestTopic, eventually, unique_group};

#[tokio::test]
async fn redis_keeps_keys_under_a_test_prefix_and_cleanup_removes_them() -> anyhow::Result<()> {
    let stack = Stack::from_env();
    let namespace = RedisNamespace::new(&stack)?;
    let mut conn = namespace.connection().await?;
    let pong: String = redis::cmd("PING").query_async(&mut conn).await?;
    assert_eq!(pong, "PONG");

    let key = namespace.key("counter");
    let _: () = conn.set(&key, 41).await?;
    let value: i64 = conn.incr(&key, 1).await?;
    assert_eq!(value, 42);

    namespace.clone().cleanup().await?;
    let exists: bool = conn.exists(&key).await?;
    assert!(!exists, "cleanup left {key} behind");
    Ok(())
}

#[tokio::test]
async fn migrations_apply_once_on_a_fresh_database_and_refuse_an_edited_file() -> anyhow::Result<()>
{
    use coupon_store::{
        Store, StoreError, admin, campaigns,
        migrate::{self, MIGRATIONS, Migration},
    };
    let stack = Stack::from_env();
    let db = TestDatabase::create(&stack).await?;

    let applied = migrate::run(&db.store).await?;
    let every: Vec<u64> = MIGRATIONS.iter().map(|m| m.version).collect();
    assert_eq!(applied, every, "a fresh database gets every migration");
    assert!(
        migrate::run(&db.store).await?.is_empty(),
        "and each only once"
    );

    // The schema is there, and enforces its keys: a second campaign of the same id is refused.
    let campaign = coupon_domain::Campaign::new(
        coupon_domain::CampaignId::parse("dup")?,
        coupon_domain::CouponLimit::DEFAULT,
        None,
        None,
    )?;
    assert!(campaigns::create(&db.store, &campaign).await?);
    assert!(!campaigns::create(&db.store, &campaign).await?);

    // An applied file that changed is refused, naming it; the unchanged list still passes.
    let mut edited: Vec<Migration> = MIGRATIONS.to_vec();
    edited[0].sql = "-- edited after it was applied\nSELECT 1;";
    let refused = migrate::run_with(&db.store, &edited).await;
    assert!(
        matches!(&refused, Err(StoreError::MigrationEdited { version, .. }) if *version == MIGRATIONS[0].version),
        "expected the edited migration to be refused, got {refused:?}"
    );
    assert!(migrate::run_with(&db.store, MIGRATIONS).await?.is_empty());

    let name = db.name.clone();
    db.cleanup().await?;
    let server = Store::open(&stack.database_url, 1).await?;
    assert!(
        !admin::database_exists(&server, &name).await?,
        "cleanup left database {name} behind"
    );
    server.disconnect().await;
    Ok(())
}

#[tokio::test]
async fn kafka_reports_exact_watermarks_and_committed_offsets() -> anyhow::Result<()> {
    let stack = Stack::from_env();
    let topic = TestTopic::create(&stack, 3).await?;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &stack.kafka_brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .create()?;
    const MESSAGES: i64 = 30;
    for i in 0..MESSAGES {
        let key = format!("user-{i}");
        producer
            .send(
                FutureRecord::to(&topic.name).key(&key).payload("hello"),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)?;
    }

    let group = unique_group();
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &stack.kafka_brokers)
        .set("group.id", &group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()?;
    consumer.subscribe(&[&topic.name])?;
    let mut seen = 0;
    while seen < MESSAGES {
        let message = tokio::time::timeout(Duration::from_secs(30), consumer.recv()).await??;
        assert_eq!(message.payload(), Some(&b"hello"[..]));
        consumer.commit_message(&message, CommitMode::Sync)?;
        seen += 1;
    }

    // Read as the verifier will: watermarks per partition, and the group's committed offsets
    // from a client that never joins the group.
    let observer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &stack.kafka_brokers)
        .set("group.id", &group)
        .create()?;
    let mut partitions = TopicPartitionList::new();
    let mut high_total = 0;
    for p in 0..topic.partitions {
        let (low, high) = observer.fetch_watermarks(&topic.name, p, Duration::from_secs(10))?;
        assert_eq!(low, 0);
        high_total += high;
        partitions.add_partition(&topic.name, p);
    }
    assert_eq!(
        high_total, MESSAGES,
        "high watermarks must add up to what was produced"
    );
    let committed = eventually(
        "committed offsets to reach the watermarks",
        Duration::from_secs(10),
        || {
            let observer = &observer;
            let partitions = &partitions;
            async move {
                let committed =
                    observer.committed_offsets(partitions.clone(), Duration::from_secs(5))?;
                let total: i64 = committed
                    .elements()
                    .iter()
                    .map(|e| match e.offset() {
                        Offset::Offset(o) => o,
                        _ => 0,
                    })
                    .sum();
                Ok((total == MESSAGES).then_some(total))
            }
        },
    )
    .await?;
    assert_eq!(committed, MESSAGES);

    topic.cleanup().await?;
    Ok(())
}
