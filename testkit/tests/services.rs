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
async fn mysql_test_database_is_private_and_enforces_unique_keys() -> anyhow::Result<()> {
    let stack = Stack::from_env();
    let db = TestDatabase::create(&stack).await?;
    sqlx::query("CREATE TABLE t (id BIGINT PRIMARY KEY, v VARCHAR(16) NOT NULL, UNIQUE(v))")
        .execute(&db.pool)
        .await?;
    sqlx::query("INSERT INTO t VALUES (1, 'a'), (2, 'b')")
        .execute(&db.pool)
        .await?;
    let duplicate = sqlx::query("INSERT INTO t VALUES (3, 'a')")
        .execute(&db.pool)
        .await;
    let is_unique_violation = matches!(
        &duplicate, Err(sqlx::Error::Database(e)) if e.is_unique_violation()
    );
    assert!(
        is_unique_violation,
        "expected a duplicate-key error, got {duplicate:?}"
    );
    let (rows,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM t")
        .fetch_one(&db.pool)
        .await?;
    assert_eq!(rows, 2);

    let name = db.name.clone();
    db.cleanup().await?;
    let server = sqlx::MySqlPool::connect(&stack.database_url).await?;
    let (left,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = ?")
            .bind(&name)
            .fetch_one(&server)
            .await?;
    assert_eq!(left, 0, "cleanup left database {name} behind");
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
