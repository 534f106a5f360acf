//! A whole pipeline per test (zero2prod's `spawn_app`): the api and the consumer in-process,
//! against the real stack, with their own database, topic, consumer group and Redis key prefix.

use std::{net::SocketAddr, time::Duration};

use coupon_api::{Application, Settings as ApiSettings};
use coupon_consumer::{Consumer, Settings as ConsumerSettings};
use coupon_domain::{
    CampaignId, CouponLimit, Strategy,
    wire::{ApplyReply, ApplyRequest, CampaignView, ErrorBody, NewCampaign},
};
use tokio::{sync::oneshot, task::JoinHandle};

use crate::{
    RedisNamespace, Stack, TestDatabase, TestTopic, eventually, init_test_log, unique_group,
};

pub const ADMIN_TOKEN: &str = "test-admin-token";

#[derive(Debug)]
pub struct TestPipeline {
    pub stack: Stack,
    pub base_url: String,
    pub client: reqwest::Client,
    pub db: TestDatabase,
    pub topic: TestTopic,
    /// The course stages' topic, this test's own.
    pub course_topic: TestTopic,
    pub redis: RedisNamespace,
    pub group: String,
    pub api_settings: ApiSettings,
    pub consumer_settings: ConsumerSettings,
    /// Every api started, by base url (the first is `base_url`).
    pub api_urls: Vec<String>,
    apis: Vec<Running>,
    consumers: Vec<Running>,
    /// The metrics of every consumer started, newest last.
    pub consumer_metrics: Vec<std::sync::Arc<coupon_consumer::metrics::Metrics>>,
}

type Running = (oneshot::Sender<()>, JoinHandle<anyhow::Result<()>>);

fn parse_duration(raw: &str) -> Duration {
    coupon_domain::duration::parse(raw).unwrap_or(Duration::from_secs(5))
}

impl TestPipeline {
    pub async fn spawn() -> anyhow::Result<Self> {
        Self::spawn_on(Stack::from_env()).await
    }

    /// A pipeline on `stack`, e.g. with a private Kafka broker the test may kill.
    pub async fn spawn_on(stack: Stack) -> anyhow::Result<Self> {
        Self::spawn_configured(stack, |_| {}).await
    }

    /// A pipeline on `stack` whose apis start with the settings `configure` leaves.
    pub async fn spawn_configured(
        stack: Stack,
        configure: impl FnOnce(&mut ApiSettings),
    ) -> anyhow::Result<Self> {
        init_test_log();
        let db = TestDatabase::create(&stack).await?;
        let topic = TestTopic::create(&stack, 4).await?;
        let course_topic = TestTopic::create(&stack, 2).await?;
        let course_group = unique_group();
        let redis = RedisNamespace::new(&stack)?;
        let group = unique_group();
        let partitions = topic.partitions.to_string();
        let stack_args = stack.args(&[
            ("database-url", &db.url),
            ("topic", &topic.name),
            ("topic-partitions", &partitions),
            ("course-topic", &course_topic.name),
            ("group", &group),
            ("course-group", &course_group),
            ("redis-key-prefix", redis.prefix.trim_end_matches(':')),
        ]);
        // The api's own defaults (every fix on), but for what a test pipeline needs.
        let mut api_settings = <ApiSettings as clap::Parser>::try_parse_from([
            "coupon-api",
            "--addr=127.0.0.1:0",
            &format!("--admin-token={ADMIN_TOKEN}"),
            "--delivery-timeout=3s",
            "--listen-backlog=1024",
            "--startup-timeout=10s",
        ])?;
        api_settings.stack = stack_args.clone();
        configure(&mut api_settings);
        let consumer_settings = ConsumerSettings {
            stack: stack_args,
            crash_after_rows: None,
            failed_payload_kept: coupon_store::failed_events::PAYLOAD_KEPT,
            batch_size: 200,
            retry_interval: parse_duration("200ms"),
            metrics_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            startup_timeout: parse_duration("10s"),
        };
        let mut pipeline = Self {
            stack,
            base_url: String::new(),
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(64)
                .timeout(Duration::from_secs(30))
                .build()?,
            db,
            topic,
            course_topic,
            redis,
            group,
            api_settings,
            consumer_settings,
            api_urls: Vec::new(),
            apis: Vec::new(),
            consumers: Vec::new(),
            consumer_metrics: Vec::new(),
        };
        pipeline.start_api().await?;
        pipeline.start_consumer().await?;
        Ok(pipeline)
    }

    /// Starts one more api with the pipeline's settings; bursts spread over every api started.
    pub async fn start_api(&mut self) -> anyhow::Result<()> {
        let url = self.start_api_with(self.api_settings.clone()).await?;
        if self.base_url.is_empty() {
            self.base_url = url.clone();
        }
        self.api_urls.push(url);
        Ok(())
    }

    /// Starts an api with `settings` of the test's own (no admin token, stores behind a proxy);
    /// it stops with the pipeline. Returns its base url.
    pub async fn start_api_with(&mut self, settings: ApiSettings) -> anyhow::Result<String> {
        let app = Application::build(settings).await?;
        let url = format!("http://{}", app.local_addr());
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(app.run_until_stopped(async move {
            let _ = stop_rx.await;
        }));
        self.apis.push((stop_tx, handle));
        Ok(url)
    }

    pub async fn start_consumer(&mut self) -> anyhow::Result<()> {
        let consumer = Consumer::build(self.consumer_settings.clone()).await?;
        self.consumer_metrics.push(consumer.metrics());
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(consumer.run_until_stopped(async move {
            let _ = stop_rx.await;
        }));
        self.consumers.push((stop_tx, handle));
        Ok(())
    }

    /// Kills the newest consumer task where it stands: no graceful shutdown, no final commit.
    pub async fn crash_consumer(&mut self) {
        if let Some((_stop, handle)) = self.consumers.pop() {
            handle.abort();
            let _ = handle.await;
        }
    }

    /// Whether the newest consumer task still runs.
    pub fn consumer_running(&self) -> bool {
        self.consumers
            .last()
            .is_some_and(|(_, handle)| !handle.is_finished())
    }

    /// Waits up to `within` for the newest consumer task to end and says how it ended: `Err`
    /// holds its whole cause chain. A consumer still running then is an error (and keeps
    /// running).
    pub async fn consumer_exit_within(
        &mut self,
        within: Duration,
    ) -> anyhow::Result<Result<(), String>> {
        let (stop, mut handle) = self
            .consumers
            .pop()
            .ok_or_else(|| anyhow::anyhow!("no consumer was started"))?;
        match tokio::time::timeout(within, &mut handle).await {
            Ok(Ok(Ok(()))) => Ok(Ok(())),
            Ok(Ok(Err(error))) => Ok(Err(format!("{error:#}"))),
            Ok(Err(join)) => Ok(Err(join.to_string())),
            Err(_elapsed) => {
                self.consumers.push((stop, handle));
                anyhow::bail!("the consumer still runs after {within:?}")
            }
        }
    }

    pub async fn create_campaign(&self, id: &str, limit: u32) -> anyhow::Result<()> {
        self.create_campaign_with(id, limit, Strategy::Reliable)
            .await
    }

    /// A campaign run as `strategy`: the design or one of the course's stages.
    pub async fn create_campaign_with(
        &self,
        id: &str,
        limit: u32,
        strategy: Strategy,
    ) -> anyhow::Result<()> {
        let campaign = NewCampaign::open_now(
            CampaignId::parse(id)?,
            CouponLimit::try_from(limit)?,
            strategy,
        );
        let response = self.admin_post("/admin/campaigns", Some(&campaign)).await?;
        anyhow::ensure!(
            response.status() == 201,
            "campaign creation failed: {} {}",
            response.status(),
            response.text().await?
        );
        Ok(())
    }

    /// `GET {path}` on the first api.
    pub async fn get(&self, path: &str) -> anyhow::Result<reqwest::Response> {
        Ok(self
            .client
            .get(format!("{}{path}", self.base_url))
            .send()
            .await?)
    }

    /// The value of counter `name` (`coupon_api_..._total`) on the api at `base_url`.
    pub async fn counter(&self, base_url: &str, name: &str) -> anyhow::Result<u64> {
        let metrics = self
            .client
            .get(format!("{base_url}/metrics"))
            .send()
            .await?
            .text()
            .await?;
        let prefix = format!("{name} ");
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .map(|value| value.trim().parse::<u64>())
            .transpose()?
            .ok_or_else(|| anyhow::anyhow!("no metric {name} at {base_url}"))
    }

    /// The first api's `/metrics` text.
    pub async fn metrics(&self) -> anyhow::Result<String> {
        Ok(self.get("/metrics").await?.text().await?)
    }

    /// `GET /campaigns/{id}`.
    pub async fn campaign(&self, id: &str) -> anyhow::Result<CampaignView> {
        let response = self.get(&format!("/campaigns/{id}")).await?;
        anyhow::ensure!(
            response.status() == 200,
            "campaign {id}: {}",
            response.status()
        );
        Ok(response.json().await?)
    }

    /// A reply's status and its JSON error body; a reply that is not one is an error.
    pub async fn error_of(response: reqwest::Response) -> anyhow::Result<(u16, ErrorBody)> {
        let status = response.status().as_u16();
        let text = response.text().await?;
        let body = serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("a {status} reply without a JSON error ({e}): {text}"))?;
        Ok((status, body))
    }

    /// `POST {path}` on the first api with the admin token, and `body` as JSON when given.
    pub async fn admin_post(
        &self,
        path: &str,
        body: Option<&impl serde::Serialize>,
    ) -> anyhow::Result<reqwest::Response> {
        let request = self
            .client
            .post(format!("{}{path}", self.base_url))
            .bearer_auth(ADMIN_TOKEN);
        let request = match body {
            Some(body) => request.json(body),
            None => request,
        };
        Ok(request.send().await?)
    }

    pub async fn apply(&self, campaign: &str, user_id: u64) -> anyhow::Result<(u16, ApplyReply)> {
        self.apply_via(&self.base_url, campaign, user_id).await
    }

    pub async fn apply_via(
        &self,
        base_url: &str,
        campaign: &str,
        user_id: u64,
    ) -> anyhow::Result<(u16, ApplyReply)> {
        let response = self
            .client
            .post(format!("{base_url}/campaigns/{campaign}/apply"))
            .json(&ApplyRequest { user_id })
            .send()
            .await?;
        let status = response.status().as_u16();
        let text = response.text().await?;
        let reply = serde_json::from_str(&text).map_err(|error| {
            anyhow::anyhow!(
                "apply answered {status} with a body that is no apply reply ({error}): {text}"
            )
        })?;
        Ok((status, reply))
    }

    /// Every user in `users` applies once, `width` at a time, spread over every api started
    /// (round robin by user id). Returns (user, status) per apply.
    pub async fn burst(
        &self,
        campaign: &str,
        users: impl IntoIterator<Item = u64>,
        width: usize,
    ) -> anyhow::Result<Vec<(u64, u16)>> {
        use futures::StreamExt;
        futures::stream::iter(users)
            .map(|user| async move {
                let url = &self.api_urls[usize::try_from(user).unwrap_or(0) % self.api_urls.len()];
                self.apply_via(url, campaign, user)
                    .await
                    .map(|(status, _)| (user, status))
            })
            .buffer_unordered(width)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect()
    }

    /// The users answered `status`.
    pub fn users_with(replies: &[(u64, u16)], status: u16) -> std::collections::HashSet<u64> {
        replies
            .iter()
            .filter(|(_, s)| *s == status)
            .map(|(u, _)| *u)
            .collect()
    }

    pub async fn rows(&self, campaign: &str) -> anyhow::Result<Vec<(u64, u32)>> {
        let campaign = coupon_domain::CampaignId::parse(campaign)?;
        Ok(coupon_store::coupons::list(&self.db.store, &campaign)
            .await?
            .into_iter()
            .map(|row| (row.user_id, row.seq))
            .collect())
    }

    pub async fn lag(&self) -> anyhow::Result<i64> {
        let offsets =
            coupon_kafka::offsets::read(&self.stack.kafka_brokers, &self.topic.name, &self.group)
                .await?;
        Ok(coupon_kafka::offsets::total_lag(&offsets))
    }

    pub async fn high_watermark_total(&self) -> anyhow::Result<i64> {
        let offsets =
            coupon_kafka::offsets::read(&self.stack.kafka_brokers, &self.topic.name, &self.group)
                .await?;
        Ok(offsets.iter().map(|p| p.high).sum())
    }

    /// Waits until the consumer group has committed everything on the broker and the campaign
    /// has `expected` rows, then returns the rows.
    pub async fn drained_rows(
        &self,
        campaign: &str,
        expected: usize,
    ) -> anyhow::Result<Vec<(u64, u32)>> {
        eventually(
            &format!("{expected} rows in {campaign} and consumer lag 0"),
            Duration::from_secs(60),
            || async {
                let rows = self.rows(campaign).await?;
                let lag = self.lag().await?;
                Ok((rows.len() >= expected && lag == 0).then_some(rows))
            },
        )
        .await
    }

    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        let running: Vec<Running> = self
            .apis
            .drain(..)
            .chain(self.consumers.drain(..))
            .collect();
        for (stop, handle) in running {
            let _ = stop.send(());
            handle.await??;
        }
        self.redis.cleanup().await?;
        self.topic.cleanup().await?;
        self.db.cleanup().await?;
        Ok(())
    }
}
