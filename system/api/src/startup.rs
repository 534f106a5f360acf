//! Build the application (connect, migrate, create the topic, initialise gates, bind) and run it
//! until a shutdown future resolves.

use std::{
    collections::HashSet,
    future::Future,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::Context;
use coupon_domain::CampaignId;
use sqlx::MySqlPool;
use tokio::net::TcpListener;

use coupon_runtime::retry_startup;

use crate::{
    campaigns::CampaignCache, configuration::Settings, course::Course, gate::Gate,
    metrics::Metrics, publisher::Publisher, rebuild, routes,
};

/// Everything a request handler needs, shared behind an `Arc`.
#[derive(Debug)]
pub struct AppState {
    pub settings: Settings,
    pub gate: Gate,
    pub publisher: Publisher,
    /// The course's stages, for campaigns created with one.
    pub course: Course,
    pub pool: MySqlPool,
    pub campaigns: CampaignCache,
    pub metrics: Metrics,
    /// Campaigns whose gate rebuild runs in this process.
    pub rebuilds_running: Mutex<HashSet<CampaignId>>,
}

pub type SharedState = Arc<AppState>;

#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    state: SharedState,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let deadline = settings.startup_timeout;
        let redis_url = settings.redis_url.clone();
        let gate = retry_startup("redis", &settings.redis_url, deadline, || {
            Gate::connect(
                &redis_url,
                &settings.redis_key_prefix,
                settings.redis_response_timeout,
                settings.gate_mode,
            )
        })
        .await?;
        let database_url = settings.database_url.clone();
        let pool = retry_startup(
            "mysql",
            &coupon_store::redact(&settings.database_url),
            deadline,
            || coupon_store::connect(&database_url, 32),
        )
        .await?;
        let topics = [settings.topic.as_str(), settings.course_topic.as_str()];
        retry_startup("kafka", &settings.kafka_brokers, deadline, || {
            coupon_kafka::ensure_topics(&settings.kafka_brokers, &topics, settings.topic_partitions)
        })
        .await?;
        let course = Course::new(
            gate.connection(),
            pool.clone(),
            &settings.kafka_brokers,
            &settings.course_topic,
            &settings.redis_key_prefix,
        )
        .with_context(|| {
            format!(
                "failed to create the course's kafka producer for {}",
                settings.kafka_brokers
            )
        })?;
        let publisher = Publisher::new(
            &settings.kafka_brokers,
            &settings.topic,
            settings.publish_wait,
            settings.delivery_timeout,
        )
        .with_context(|| {
            format!(
                "failed to create a kafka producer for {}",
                settings.kafka_brokers
            )
        })?;
        let listener = bind(settings.addr, settings.listen_backlog)
            .with_context(|| format!("failed to listen on {}", settings.addr))?;
        let state = Arc::new(AppState {
            campaigns: CampaignCache::new(pool.clone()),
            settings,
            gate,
            publisher,
            course,
            pool,
            metrics: Metrics::default(),
            rebuilds_running: Mutex::default(),
        });
        rebuild::prepare_all_gates(&state).await?;
        Ok(Self { listener, state })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| self.state.settings.addr)
    }

    pub fn state(&self) -> SharedState {
        self.state.clone()
    }

    /// Serves until `shutdown` resolves, then stops accepting, finishes in-flight requests and
    /// flushes the producer.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let app = routes::router(self.state.clone());
        tracing::info!(addr = %self.local_addr(), "api listening");
        axum::serve(self.listener, app)
            .with_graceful_shutdown(shutdown)
            .await
            .context("api server failed")?;
        self.state.publisher.flush(Duration::from_secs(10)).await;
        self.state.course.flush(Duration::from_secs(10)).await;
        tracing::info!("api stopped");
        Ok(())
    }
}

/// A listener with a backlog sized for a burst: tokio's default of 128 turns a 10,000-user burst
/// into SYN retransmits that stall clients for a second or more.
fn bind(addr: SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    TcpListener::from_std(socket.into())
}
