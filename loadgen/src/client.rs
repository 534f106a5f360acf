//! The api as loadgen talks to it outside the burst: is it there, create a campaign, read a
//! campaign, wait until its coupons are written. Replies are the api's own wire types.

use std::time::Duration;

use anyhow::{Context, bail};
use coupon_domain::{
    CampaignId, CouponLimit, Strategy,
    wire::{ApplyReply, ApplyRequest, CampaignView, NewCampaign},
};
use coupon_runtime::backoff::{PollError, poll_until};

/// One api, at `base_url`, with the admin token when loadgen has it.
#[derive(Debug, Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    pub base_url: String,
    pub admin_token: Option<String>,
}

impl ApiClient {
    pub fn new(base_url: &str, admin_token: Option<String>) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .context("failed to build an http client")?;
        Ok(Self {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            admin_token,
        })
    }

    /// The http client, for callers that reach the pipeline's other endpoints.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Whether anything answers `GET /healthz`.
    pub async fn answers(&self) -> bool {
        self.http
            .get(format!("{}/healthz", self.base_url))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    }

    /// Creates the campaign a run aims at.
    pub async fn create_campaign(
        &self,
        id: &CampaignId,
        limit: CouponLimit,
        strategy: Strategy,
        opens_at: Option<time::OffsetDateTime>,
    ) -> anyhow::Result<()> {
        let Some(token) = &self.admin_token else {
            bail!(
                "creating a campaign needs the api's admin token: set ADMIN_TOKEN (or --admin-token), \
                 or aim at an existing campaign with --campaign ID"
            );
        };
        let mut body = NewCampaign::open_now(id.clone(), limit, strategy);
        body.opens_at = opens_at.or(body.opens_at);
        let request = self
            .http
            .post(format!("{}/admin/campaigns", self.base_url))
            .bearer_auth(token)
            .json(&body);
        self.send(request, &format!("create campaign {id}")).await?;
        Ok(())
    }

    /// One apply outside the burst (a fault's own users), answered 2xx.
    pub async fn apply(&self, id: &CampaignId, user: u64) -> anyhow::Result<ApplyReply> {
        let request = self
            .http
            .post(format!("{}/campaigns/{id}/apply", self.base_url))
            .json(&ApplyRequest { user_id: user });
        let response = self
            .send(request, &format!("apply to {id} for user {user}"))
            .await?;
        response.json().await.with_context(|| {
            format!(
                "the api at {} answered an apply with a body that is no reply",
                self.base_url
            )
        })
    }

    /// The campaign's numbers from `GET /campaigns/{id}`.
    pub async fn campaign(&self, id: &CampaignId) -> anyhow::Result<CampaignView> {
        let request = self.http.get(format!("{}/campaigns/{id}", self.base_url));
        let response = self.send(request, &format!("read campaign {id}")).await?;
        response.json().await.with_context(|| {
            format!(
                "the api at {} answered campaign {id} with a body that is not a campaign",
                self.base_url
            )
        })
    }

    /// Sends `request`; an api that does not answer, or answers other than 2xx, is an error
    /// that says what loadgen tried to `do_what`.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        do_what: &str,
    ) -> anyhow::Result<reqwest::Response> {
        let response = request.send().await.with_context(|| {
            format!(
                "the api at {} did not answer (trying to {do_what})",
                self.base_url
            )
        })?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            bail!(
                "the api at {} refused to {do_what}: {status} {body}",
                self.base_url
            );
        }
        Ok(response)
    }

    /// Waits until every coupon the gate issued is accounted for: a row, or an open failed event
    /// (`persisted + failed_events >= issued`), up to `timeout`. Returns how long it took, or
    /// `None` when it did not drain in time.
    pub async fn wait_drained(
        &self,
        id: &CampaignId,
        timeout: Duration,
    ) -> anyhow::Result<Option<Duration>> {
        let started = tokio::time::Instant::now();
        let drained = poll_until(
            "the campaign's coupons to be written",
            timeout,
            Duration::from_millis(100),
            || async {
                let campaign = self.campaign(id).await?;
                anyhow::Ok(
                    (campaign.persisted + campaign.failed_events >= campaign.issued).then_some(()),
                )
            },
        )
        .await;
        match drained {
            Ok(()) => Ok(Some(started.elapsed())),
            Err(PollError::TimedOut { .. }) => Ok(None),
            Err(PollError::Check(error)) => Err(error),
        }
    }
}
