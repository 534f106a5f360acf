//! A new campaign over an earlier one's data (issue 11, item 5): a campaign id whose earlier
//! campaign left gate keys in Redis, rows or fences in MySQL, or events the consumer has not
//! read yet is refused, naming what is left. Without the check the new gate starts empty over
//! the old events, which the consumer then writes as the new campaign's coupons.

use std::collections::HashSet;

use coupon_domain::{CampaignId, CouponLimit, GateKeys, Strategy, wire::NewCampaign};
use testkit::pipeline::{ADMIN_TOKEN, TestPipeline};

/// `POST /admin/campaigns` for `id` (limit 5) through the api at `base_url`: status and body.
async fn create_via(
    pipeline: &TestPipeline,
    base_url: &str,
    id: &str,
) -> anyhow::Result<(u16, String)> {
    let campaign = NewCampaign::open_now(
        CampaignId::parse(id)?,
        CouponLimit::try_from(5)?,
        Strategy::Reliable,
    );
    let response = pipeline
        .client
        .post(format!("{base_url}/admin/campaigns"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&campaign)
        .send()
        .await?;
    Ok((response.status().as_u16(), response.text().await?))
}

#[tokio::test]
async fn a_campaign_id_with_data_left_by_an_earlier_campaign_is_refused() -> anyhow::Result<()> {
    let mut pipeline = TestPipeline::spawn().await?;
    pipeline.crash_consumer().await;
    pipeline.create_campaign("again", 5).await?;
    for user in 1..=3 {
        assert_eq!(pipeline.apply("again", user).await?.0, 201);
    }
    // MySQL forgets the campaign (a reset by hand); Redis and the topic keep what they hold.
    coupon_store::admin::forget_campaign(&pipeline.db.store, "again").await?;
    let base_url = pipeline.base_url.clone();
    let (status, body) = create_via(&pipeline, &base_url, "again").await?;
    assert_eq!(status, 409, "{body}");
    assert!(
        body.contains("redis") && body.contains("not read yet"),
        "{body}"
    );

    // Redis cleared as well: the unread events alone still refuse the id.
    let keys = GateKeys::new(
        pipeline.redis.prefix.trim_end_matches(':'),
        &CampaignId::parse("again")?,
    );
    let client = redis::Client::open(pipeline.stack.redis_url.as_str())?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let _: () = redis::cmd("DEL")
        .arg(&keys.marker)
        .arg(&keys.winners)
        .arg(&keys.next_seq)
        .arg(&keys.released)
        .query_async(&mut conn)
        .await?;
    let (status, body) = create_via(&pipeline, &base_url, "again").await?;
    assert_eq!(status, 409, "{body}");
    assert!(
        !body.contains("redis") && body.contains("3 events"),
        "{body}"
    );

    // The control: without the check the campaign is created with an empty gate, which hands
    // slot 1 to a new user while the old events hold slots 1..=3; the consumer then writes the
    // old events as the new campaign's coupons.
    let mut settings = pipeline.api_settings.clone();
    settings.id_reuse_check = false;
    let unchecked = pipeline.start_api_with(settings).await?;
    assert_eq!(create_via(&pipeline, &unchecked, "again").await?.0, 201);
    let (status, reply) = pipeline.apply_via(&unchecked, "again", 10).await?;
    assert_eq!((status, reply.seq), (201, Some(1)));
    pipeline.start_consumer().await?;
    let rows = pipeline.drained_rows("again", 3).await?;
    let users: HashSet<u64> = rows.iter().map(|(user, _)| *user).collect();
    assert!(
        users.iter().any(|user| (1..=3).contains(user)),
        "the earlier campaign's events became the new campaign's coupons: {rows:?}"
    );
    pipeline.shutdown().await
}
