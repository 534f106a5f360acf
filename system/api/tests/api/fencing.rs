//! Fencing (issue 11, item 4): an api that stalls between its admission and its publish while a
//! rebuild replaces the gate must not take the slot the new gate handed to someone else. Its
//! event carries the old life's epoch and lands past the rebuild's fence: the api answers
//! `pending`, not `issued`, and the consumer refuses the event as superseded.

use std::{sync::Arc, time::Duration};

use coupon_domain::history::ResultClass;
use coupon_store::{FailureReason, failed_events};
use testkit::pipeline::TestPipeline;

/// Runs the scene on campaign `id`: user 1 is admitted through an api that stalls before its
/// publish, the gate is rebuilt, the stalled api publishes, and then user 2 applies. Returns
/// user 1's and user 2's statuses.
async fn stalled_publish_across_a_rebuild(
    pipeline: &mut TestPipeline,
    id: &str,
    recheck_after_ack: bool,
) -> anyhow::Result<(ApplyAnswer, ApplyAnswer)> {
    pipeline.create_campaign(id, 1).await?;
    let hold = Arc::new(tokio::sync::Notify::new());
    let mut settings = pipeline.api_settings.clone();
    settings.publish_hold = Some(hold.clone());
    settings.recheck_after_ack = recheck_after_ack;
    let stalled = pipeline.start_api_with(settings).await?;
    let first = tokio::spawn({
        let (client, url) = (
            pipeline.client.clone(),
            format!("{stalled}/campaigns/{id}/apply"),
        );
        async move { answer(client.post(url).json(&serde_json::json!({"user_id": 1}))).await }
    });
    testkit::eventually("user 1 to be admitted", Duration::from_secs(30), || async {
        Ok((pipeline.campaign(id).await?.issued == 1).then_some(()))
    })
    .await?;

    // The rebuild sees no event for user 1: its gate starts empty, in a new life.
    let rebuild = pipeline
        .admin_post(&format!("/admin/campaigns/{id}/rebuild-gate"), None::<&()>)
        .await?;
    anyhow::ensure!(
        rebuild.status() == 202,
        "rebuild refused: {}",
        rebuild.status()
    );
    testkit::eventually(
        "the gate to be rebuilt",
        Duration::from_secs(60),
        || async {
            let view = pipeline.campaign(id).await?;
            Ok(
                (view.gate == Some(coupon_domain::wire::GateReadiness::Ready) && view.issued == 0)
                    .then_some(()),
            )
        },
    )
    .await?;

    // The stalled api wakes and publishes user 1's event of the old life; then user 2 takes
    // the slot the new gate hands out.
    hold.notify_one();
    let first = first.await??;
    let second = pipeline.apply(id, 2).await?;
    Ok((first, (second.0, second.1.result)))
}

type ApplyAnswer = (u16, ResultClass);

async fn answer(request: reqwest::RequestBuilder) -> anyhow::Result<ApplyAnswer> {
    let response = request.send().await?;
    let status = response.status().as_u16();
    let reply: coupon_domain::wire::ApplyReply = response.json().await?;
    Ok((status, reply.result))
}

#[tokio::test]
async fn a_publish_stalled_across_a_rebuild_is_pending_and_refused_as_superseded()
-> anyhow::Result<()> {
    let mut pipeline = TestPipeline::spawn().await?;
    let (first, second) = stalled_publish_across_a_rebuild(&mut pipeline, "fenced", true).await?;
    assert_eq!(
        first,
        (202, ResultClass::Pending),
        "the gate moved on: not issued"
    );
    assert_eq!(second, (201, ResultClass::Issued));
    // User 2 holds the one coupon; user 1's event was refused, settled, with its reason.
    let rows = pipeline.drained_rows("fenced", 1).await?;
    assert_eq!(rows, vec![(2, 1)]);
    testkit::eventually(
        "user 1's event to be settled",
        Duration::from_secs(30),
        || async {
            let failed = failed_events::list_for(&pipeline.db.store, "fenced").await?;
            Ok(failed
                .iter()
                .any(|f| f.user_id == Some(1) && f.reason == FailureReason::Superseded && !f.open)
                .then_some(()))
        },
    )
    .await?;
    assert_eq!(pipeline.rows("fenced").await?, vec![(2, 1)]);

    // The control: without the check after the ack, the stalled api tells user 1 "issued"
    // for an event the consumer refuses: a winner told so, with no coupon.
    let (first, _) = stalled_publish_across_a_rebuild(&mut pipeline, "unfenced", false).await?;
    assert_eq!(first, (201, ResultClass::Issued));
    assert!(
        !pipeline
            .drained_rows("unfenced", 1)
            .await?
            .iter()
            .any(|(user, _)| *user == 1),
        "the fenced event must not become user 1's coupon"
    );
    pipeline.shutdown().await
}
