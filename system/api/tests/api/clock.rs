//! The sale window is judged by one clock, Redis's, inside the gate script: an api whose own
//! clock is off issues nothing outside the window (issue 11, item 6).

use coupon_api::configuration::WindowCheck;
use coupon_domain::{CampaignId, CouponLimit, Strategy, wire::NewCampaign};
use testkit::pipeline::TestPipeline;
use time::{Duration, OffsetDateTime};

/// Creates a campaign open over `[now + opens, now + closes)` by the real clock.
async fn windowed(
    pipeline: &TestPipeline,
    id: &str,
    opens: Duration,
    closes: Duration,
) -> anyhow::Result<()> {
    let now = OffsetDateTime::now_utc();
    let mut campaign = NewCampaign::open_now(
        CampaignId::parse(id)?,
        CouponLimit::try_from(10)?,
        Strategy::Reliable,
    );
    campaign.opens_at = Some(now + opens);
    campaign.closes_at = Some(now + closes);
    let response = pipeline
        .admin_post("/admin/campaigns", Some(&campaign))
        .await?;
    anyhow::ensure!(response.status() == 201, "{}", response.text().await?);
    Ok(())
}

/// Applies as user 1 through an api whose clock runs `skew` off, checking the window where
/// `check` says; returns the status.
async fn apply_skewed(
    pipeline: &mut TestPipeline,
    campaign: &str,
    skew: Duration,
    check: WindowCheck,
) -> anyhow::Result<u16> {
    let mut settings = pipeline.api_settings.clone();
    settings.clock_offset = skew;
    settings.window_check = check;
    let api = pipeline.start_api_with(settings).await?;
    Ok(pipeline.apply_via(&api, campaign, 1).await?.0)
}

#[tokio::test]
async fn an_api_with_a_skewed_clock_issues_nothing_outside_the_window() -> anyhow::Result<()> {
    let mut pipeline = TestPipeline::spawn().await?;
    windowed(
        &pipeline,
        "opens-later",
        Duration::hours(1),
        Duration::hours(2),
    )
    .await?;
    windowed(
        &pipeline,
        "closed-before",
        Duration::hours(-2),
        Duration::hours(-1),
    )
    .await?;
    windowed(
        &pipeline,
        "open-now",
        Duration::hours(-1),
        Duration::hours(1),
    )
    .await?;

    // Each skew puts the api's clock inside the window, while Redis's is outside it.
    let ahead = Duration::minutes(90);
    let behind = Duration::minutes(-90);
    let gate = WindowCheck::Gate;
    assert_eq!(
        apply_skewed(&mut pipeline, "opens-later", ahead, gate).await?,
        403
    );
    assert_eq!(
        apply_skewed(&mut pipeline, "closed-before", behind, gate).await?,
        410
    );
    // Inside the window by both clocks, the skewed api issues as any other.
    let within = Duration::minutes(30);
    assert_eq!(
        apply_skewed(&mut pipeline, "open-now", within, gate).await?,
        201
    );
    assert!(pipeline.rows("opens-later").await?.is_empty());
    assert!(pipeline.rows("closed-before").await?.is_empty());

    // The control: the same skewed apis trusting their own clocks issue outside the window.
    let own = WindowCheck::ApiClock;
    assert_eq!(
        apply_skewed(&mut pipeline, "opens-later", ahead, own).await?,
        201
    );
    assert_eq!(
        apply_skewed(&mut pipeline, "closed-before", behind, own).await?,
        201
    );
    pipeline.shutdown().await
}
