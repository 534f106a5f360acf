//! A record no event can be (70 KB, an empty key, a 10 KB key) on every partition: the consumer
//! captures each as a failed event (payload capped, its whole size and SHA-256 kept) and goes on
//! writing the coupons behind it. The control keeps the payload whole, as before the fix: the
//! database refuses it, and the consumer stops with the server's reason in its cause chain.

use std::time::Duration;

use coupon_store::{FailureReason, failed_events::PAYLOAD_KEPT};
use rdkafka::producer::{FutureProducer, FutureRecord};
use sha2::{Digest, Sha256};
use testkit::pipeline::TestPipeline;

/// The size of the record that stopped the consumer when it was reported.
const POISON_BYTES: usize = 70_000;

fn poison() -> Vec<u8> {
    (0..POISON_BYTES).map(|i| b'a' + (i % 26) as u8).collect()
}

/// Produces the poison record to every partition of the pipeline's topic, with an empty key on
/// the first, a 10 KB key on the second, and none on the others.
async fn produce_poison(pipeline: &TestPipeline) -> anyhow::Result<()> {
    let producer: FutureProducer =
        coupon_kafka::producer_config(&pipeline.stack.kafka_brokers, Duration::from_secs(10))
            .set("message.max.bytes", "1000000")
            .create()?;
    let payload = poison();
    let huge_key = vec![b'k'; 10_000];
    for partition in 0..pipeline.topic.partitions {
        let record = FutureRecord::<[u8], [u8]>::to(&pipeline.topic.name)
            .partition(partition)
            .payload(&payload);
        let record = match partition {
            0 => record.key(&b""[..]),
            1 => record.key(&huge_key[..]),
            _ => record,
        };
        producer
            .send(record, Duration::from_secs(10))
            .await
            .map_err(|(error, _)| error)?;
    }
    Ok(())
}

#[tokio::test]
async fn an_oversized_record_is_captured_and_the_partition_moves_on() -> anyhow::Result<()> {
    let pipeline = TestPipeline::spawn().await?;
    pipeline.create_campaign("poison", 20).await?;
    produce_poison(&pipeline).await?;
    // The coupons behind the poison, on every partition (keys spread users over them).
    for user in 1..=20 {
        assert_eq!(pipeline.apply("poison", user).await?.0, 201);
    }
    let rows = pipeline.drained_rows("poison", 20).await?;
    assert_eq!(rows.len(), 20, "the coupons behind the poison were written");
    assert!(pipeline.consumer_running(), "the consumer stopped");

    let captured = coupon_store::failed_events::list_all(&pipeline.db.store).await?;
    let digest: String = Sha256::digest(poison())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    assert_eq!(
        captured.len(),
        usize::try_from(pipeline.topic.partitions)?,
        "one capture per poison record"
    );
    for event in &captured {
        assert_eq!(event.reason, FailureReason::Oversized);
        assert_eq!(event.payload.kept, poison()[..PAYLOAD_KEPT]);
        assert_eq!(event.payload.bytes, u64::try_from(POISON_BYTES)?);
        assert_eq!(event.payload.sha256, digest);
        assert!(
            event.open,
            "an oversized record is never retried into a row"
        );
    }
    pipeline.shutdown().await
}

#[tokio::test]
async fn control_a_consumer_that_keeps_the_whole_payload_stops_on_the_same_record()
-> anyhow::Result<()> {
    let mut pipeline = TestPipeline::spawn().await?;
    pipeline.crash_consumer().await;
    pipeline.consumer_settings.failed_payload_kept = usize::MAX;
    pipeline.start_consumer().await?;
    produce_poison(&pipeline).await?;
    let error = match pipeline
        .consumer_exit_within(Duration::from_secs(60))
        .await?
    {
        Err(error) => error,
        Ok(()) => anyhow::bail!("the control consumer stopped cleanly"),
    };
    eprintln!("the control consumer stopped with: {error}");
    // The whole chain, down to the server's own words: no empty cause.
    assert!(
        error.contains("payload") && !error.contains(": :") && !error.ends_with(": "),
        "{error}"
    );
    pipeline.shutdown().await
}

#[tokio::test]
async fn an_event_whose_campaign_row_is_no_campaign_waits_as_a_failed_event() -> anyhow::Result<()>
{
    let pipeline = TestPipeline::spawn().await?;
    pipeline.create_campaign("mended", 10).await?;
    // A hand-written row the api would refuse, which MySQL's case-insensitive collation matches
    // for events of campaign `spring`.
    coupon_store::admin::plant_campaign_row(&pipeline.db.store, "Spring").await?;
    let producer: FutureProducer =
        coupon_kafka::producer_config(&pipeline.stack.kafka_brokers, Duration::from_secs(10))
            .create()?;
    let event = coupon_domain::CouponIssued {
        campaign_id: coupon_domain::CampaignId::parse("spring")?,
        user_id: coupon_domain::UserId::parse(7)?,
        seq: coupon_domain::Seq(1),
        issued_at_ms: 0,
        epoch: 0,
    };
    let (key, payload) = (event.key(), event.to_json());
    for partition in 0..pipeline.topic.partitions {
        producer
            .send(
                FutureRecord::to(&pipeline.topic.name)
                    .partition(partition)
                    .key(&key)
                    .payload(&payload),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(error, _)| error)?;
    }
    // The coupons behind it, on every partition, are written; the consumer goes on.
    for user in 1..=10 {
        assert_eq!(pipeline.apply("mended", user).await?.0, 201);
    }
    assert_eq!(pipeline.drained_rows("mended", 10).await?.len(), 10);
    assert!(pipeline.consumer_running(), "the consumer stopped");
    let captured = coupon_store::failed_events::list_for(&pipeline.db.store, "spring").await?;
    assert_eq!(captured.len(), usize::try_from(pipeline.topic.partitions)?);
    assert!(
        captured
            .iter()
            .all(|event| event.reason == FailureReason::UnknownCampaign && event.open),
        "{captured:?}"
    );
    pipeline.shutdown().await
}
