//! The goose attack: one scenario, one transaction. Each virtual user applies `--repeat` times;
//! every request is timed here at microsecond resolution and recorded in the history, its
//! outcome classified from the reply (a timeout or a reset is "unknown", never a failure).

use std::{path::Path, sync::Arc, time::Instant};

use anyhow::Context;
use coupon_domain::{
    CampaignId,
    history::{HistoryRecord, ResultClass},
    wire::{ApplyReply, ApplyRequest},
};
use goose::{client::GooseClientBuilder, metrics::GooseMetrics, prelude::*};

use crate::{arrivals::Arrivals, cli::Cli, history::History, users::UserPlan};

/// What every transaction needs, shared by all virtual users.
#[derive(Debug)]
pub struct RunState {
    pub run_id: String,
    pub campaign_id: CampaignId,
    /// `/campaigns/{campaign_id}/apply`, formatted once for every request.
    pub apply_path: String,
    /// The same on each api's base URL (users are spread over them in turn), parsed once:
    /// parsing it again for every request was 8% of loadgen's CPU.
    pub apply_urls: Vec<reqwest::Url>,
    /// Whether requests go through goose's own request path, which keeps goose's metrics
    /// (`--goose-metrics`); otherwise they go through [`RunState::client`].
    pub goose_metrics: bool,
    /// One client and connection pool for every virtual user, with nothing between the request
    /// and the connection that a burst does not use: no redirects, retries, decompression or
    /// proxy lookup (goose's client runs each of those layers on every request).
    pub client: reqwest::Client,
    pub history: Arc<History>,
    pub plan: UserPlan,
    /// When the burst started, µs since the epoch: set by the first transaction, so goose's
    /// own setup (it builds every user before launching the first) is not taken for lateness.
    pub start_us: std::sync::OnceLock<i64>,
    /// When each user arrives (its first request is due).
    pub arrivals: Arrivals,
    /// `--pace`: the gap between two requests of one user, µs.
    pub pace_us: Option<i64>,
}

pub fn now_us() -> i64 {
    i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1000).unwrap_or_default()
}

/// Per-user state kept in goose's session data.
#[derive(Debug, Default, Clone)]
struct UserSession {
    requests_sent: u64,
    last_done_us: Option<i64>,
}

async fn apply_once(state: &RunState, user: &mut GooseUser) -> TransactionResult {
    let index = user.weighted_users_index;
    if user.get_session_data::<UserSession>().is_none() {
        user.set_session_data(UserSession::default());
        state.history.user_started();
    }
    let request_id = state.history.next_request_id();
    let user_id = state.plan.id_for_request(index, request_id);
    // The first request of a user is due when the burst plan launches it; later ones at the
    // user's pace, or else when the previous one completed (a closed loop).
    let start_us = *state.start_us.get_or_init(now_us);
    let launched_at_us = start_us + state.arrivals.arrival_us(index);
    let session = user.get_session_data::<UserSession>().cloned();
    let intended_at_us = match (session, state.pace_us) {
        (Some(session), Some(pace)) => launched_at_us + session.requests_sent as i64 * pace,
        (
            Some(UserSession {
                last_done_us: Some(done),
                ..
            }),
            None,
        ) => done,
        _ => launched_at_us,
    };
    let early_us = intended_at_us - now_us();
    if (state.pace_us.is_some() || state.arrivals.launched_early()) && early_us > 0 {
        // The schedule, not a synchronisation: this request is not due yet.
        tokio::time::sleep(std::time::Duration::from_micros(early_us as u64)).await;
    }
    let sent_at_us = now_us();
    let started = Instant::now();
    let body = ApplyRequest { user_id };
    let (response, mut goose_metric) = if state.goose_metrics {
        let goose = user.post_json(&state.apply_path, &body).await?;
        (goose.response, Some(goose.request))
    } else {
        let url = &state.apply_urls[index % state.apply_urls.len()];
        let request = state.client.post(url.clone()).json(&body);
        (request.send().await, None)
    };
    let (status, reply, timed_out) = match response {
        Ok(response) => (
            Some(response.status().as_u16()),
            response.json::<ApplyReply>().await.ok(),
            false,
        ),
        Err(ref error) => (None, None, error.is_timeout()),
    };
    let response_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    let result = match status {
        Some(status) => ResultClass::from_reply(status, reply.as_ref().map(|r| r.result)),
        None if timed_out => ResultClass::Timeout,
        None => ResultClass::TransportError,
    };
    // 409 and 410 are right answers in a burst; goose would count them as failures.
    if let Some(metric) = &mut goose_metric
        && matches!(result, ResultClass::AlreadyApplied | ResultClass::SoldOut)
    {
        let _ = user.set_success(metric);
    }
    let seq = reply.and_then(|r| r.seq);
    state.history.record(HistoryRecord {
        run_id: state.run_id.clone(),
        campaign_id: state.campaign_id.as_str().to_owned(),
        user_id,
        request_id,
        intended_at_us,
        sent_at_us,
        response_us: status.map(|_| response_us),
        status,
        result,
        seq,
    });
    if let Some(session) = user.get_session_data_mut::<UserSession>() {
        session.requests_sent += 1;
        session.last_done_us = Some(sent_at_us + response_us as i64);
    }
    Ok(())
}

/// The client of [`RunState::client`]: `timeout` per request.
pub fn bare_client(timeout: std::time::Duration) -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .retry(reqwest::retry::never())
        .no_proxy()
        .tcp_nodelay(true)
        .build()
        .context("failed to build the http client")
}

/// Runs the goose attack to completion and returns goose's metrics.
pub async fn attack(
    cli: &Cli,
    base_url: &str,
    state: Arc<RunState>,
    run_dir: &Path,
) -> anyhow::Result<GooseMetrics> {
    let mut config = cli.goose_configuration()?;
    config.host = Some(base_url.to_owned());
    config.users = Some(cli.users);
    config.increase_rate = Some(cli.launch_rate().to_string());
    config.iterations = Some(cli.repeat);
    config.quiet = 1;
    config.no_print_metrics = true;
    config.no_telnet = true;
    if cli.goose_metrics() {
        // Not goose's HTML report: it draws its charts with a script from a CDN and shows none
        // offline. Ours, `report.html`, is self-contained.
        config.report_file = ["goose-report.json", "goose-report.md"]
            .iter()
            .map(|name| run_dir.join(name).display().to_string())
            .collect();
        if cli.goose_request_log {
            config.request_log = Some(run_dir.join("goose-requests.log").display().to_string());
        }
    } else {
        // goose's own aggregation of every request cost 8% of loadgen's CPU in a sold-out run,
        // for figures the history already holds.
        config.no_metrics = true;
    }
    let transaction_state = state.clone();
    let apply = Transaction::new(Arc::new(move |user: &mut GooseUser| {
        let state = transaction_state.clone();
        Box::pin(async move { apply_once(&state, user).await })
    }))
    .set_name("apply");
    // One client, one connection pool, shared by every virtual user (goose's default is one
    // client per user: 10,000 pools for a 10,000-user burst). Set even when requests go through
    // `RunState::client`, so goose does not build one per user for nothing.
    let client = GooseClientBuilder::new()
        .without_cookies()
        .timeout(cli.timeout)
        .gzip(false);
    let metrics = GooseAttack::initialize_with_config(config)
        .context("goose refused the configuration")?
        .set_client_builder_without_cookies(client)
        .context("goose refused the shared client")?
        .register_scenario(scenario!("Apply").register_transaction(apply))
        .execute()
        .await
        // goose's Display says only "invalid option"; its Debug names the option.
        .map_err(|e| anyhow::anyhow!("the goose attack failed: {e:?}"))?;
    Ok(metrics)
}
