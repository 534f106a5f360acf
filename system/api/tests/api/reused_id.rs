//! A new gate over old data (issue 11, item 5): a campaign deleted by hand and created again
//! under the same id. What the earlier campaign left (its gate in Redis, its events on the
//! topic, an event of it still to be written) must not pass for the new campaign's state: the
//! new campaign's first gate is built from what the stores hold, over the gate Redis kept, and
//! the verifier names the leftovers instead of blaming them on the new campaign.

use std::time::Duration;

use coupon_api::{configuration::GateMode, gate::Gate, issuance::FirstGate};
use coupon_domain::{CampaignId, CouponIssued, Seq, UserId, history::ResultClass};
use rdkafka::producer::{FutureProducer, FutureRecord};
use testkit::pipeline::TestPipeline;

const ID: &str = "again";

/// What users 1 to 4 were told by the campaign created the second time, in order.
type Answers = Vec<(u64, ResultClass, Option<u32>)>;

/// The earlier campaign (limit 4) issues to users 1 and 2; an event its gate admitted for user
/// 9 (slot 3) is still on its way when an operator deletes the campaign and its rows by hand,
/// so the consumer keeps it as a failed event (unknown campaign). The campaign is created again
/// with the same limit, and users 1 to 4 apply.
async fn create_again(pipeline: &TestPipeline) -> anyhow::Result<Answers> {
    pipeline.create_campaign(ID, 4).await?;
    for user in [1, 2] {
        let (status, reply) = pipeline.apply(ID, user).await?;
        anyhow::ensure!(status == 201, "user {user}: {status} {reply:?}");
    }
    pipeline.drained_rows(ID, 2).await?;
    let id = CampaignId::parse(ID)?;
    let gate = Gate::connect(
        &pipeline.stack.redis_url,
        pipeline.redis.prefix.trim_end_matches(':'),
        Duration::from_secs(5),
        GateMode::Atomic,
    )
    .await?;
    let earlier_epoch = gate
        .epoch(&id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the earlier campaign has no gate"))?;

    coupon_store::admin::delete_campaign_by_hand(&pipeline.db.store, &id).await?;
    let in_flight = CouponIssued {
        campaign_id: id.clone(),
        user_id: UserId::parse(9)?,
        seq: Seq(3),
        issued_at_ms: 0,
        epoch: earlier_epoch.0,
    };
    let producer: FutureProducer =
        coupon_kafka::producer_config(&pipeline.stack.kafka_brokers, Duration::from_secs(10))
            .create()?;
    producer
        .send(
            FutureRecord::to(&pipeline.topic.name)
                .key(&in_flight.key())
                .payload(&in_flight.to_json()),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(error, _)| error)?;
    testkit::eventually(
        "the consumer to keep user 9's event as a failed event",
        Duration::from_secs(30),
        || async {
            let failed = coupon_store::failed_events::list_for(&pipeline.db.store, ID).await?;
            Ok(failed
                .iter()
                .any(|f| f.user_id == Some(9) && f.open)
                .then_some(()))
        },
    )
    .await?;

    pipeline.create_campaign(ID, 4).await?;
    let mut answers = Vec::new();
    for user in 1..=4 {
        let (_, reply) = pipeline.apply(ID, user).await?;
        answers.push((user, reply.result, reply.seq));
    }
    Ok(answers)
}

#[tokio::test]
async fn a_campaign_created_again_builds_its_gate_from_what_its_id_left() -> anyhow::Result<()> {
    let pipeline = TestPipeline::spawn().await?;
    let answers = create_again(&pipeline).await?;
    // The first gate took user 9's event in (slot 3) and freed slots 1 and 2, which the
    // earlier campaign's winners had held: they win again, user 3 takes the last slot.
    assert_eq!(
        answers,
        vec![
            (1, ResultClass::Issued, Some(1)),
            (2, ResultClass::Issued, Some(2)),
            (3, ResultClass::Issued, Some(4)),
            (4, ResultClass::SoldOut, None),
        ]
    );
    let mut rows = pipeline.drained_rows(ID, 4).await?;
    rows.sort_unstable();
    assert_eq!(rows, vec![(1, 1), (2, 2), (3, 4), (9, 3)]);

    // The verifier: the limit held, the stores agree, and what predates the campaign's first
    // gate (the earlier campaign's events, user 9's among them) is named as leftovers.
    let mut cli = <verifier::cli::Cli as clap::Parser>::try_parse_from([
        "verifier",
        "--campaign",
        ID,
        "--drain-timeout",
        "30s",
        "--report-dir",
        &std::env::temp_dir()
            .join(format!("reused-id-{}", pipeline.group))
            .to_string_lossy(),
    ])?;
    cli.stack = pipeline.api_settings.stack.clone();
    let judgement = verifier::verify::judge(&cli).await?;
    let [verdict] = judgement.verdicts.as_slice() else {
        anyhow::bail!("one verdict expected: {:?}", judgement.final_line);
    };
    assert!(verdict.holds(), "{verdict:#?}");
    let leftover_users: Vec<u64> = verdict.leftovers.users.iter().map(|u| u.user_id).collect();
    assert_eq!(leftover_users, vec![1, 2, 9], "{verdict:#?}");
    assert_eq!(verdict.tally.coupons, 4);
    let _ = std::fs::remove_dir_all(&cli.report_dir);
    pipeline.shutdown().await
}

/// The control: a first gate started empty, as this project once did, finds the earlier
/// campaign's gate in Redis and takes it for its own. Users 1 and 2 are told they already
/// applied, though the new campaign owes them nothing and they hold no coupon of it.
#[tokio::test]
async fn the_control_an_empty_first_gate_trusts_the_gate_the_earlier_campaign_left()
-> anyhow::Result<()> {
    let pipeline = TestPipeline::spawn_configured(testkit::Stack::from_env(), |settings| {
        settings.first_gate = FirstGate::Empty;
    })
    .await?;
    let answers = create_again(&pipeline).await?;
    let told_already: Vec<u64> = answers
        .iter()
        .filter(|(_, result, _)| *result == ResultClass::AlreadyApplied)
        .map(|(user, _, _)| *user)
        .collect();
    assert_eq!(told_already, vec![1, 2], "{answers:?}");
    pipeline.shutdown().await
}
