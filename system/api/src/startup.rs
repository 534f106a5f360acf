//! Build the application (connect, migrate, create the topic, initialise gates, bind) and run it
//! until a shutdown future resolves.

use std::{future::Future, net::SocketAddr, sync::Arc};

use anyhow::Context;
use coupon_store::{Store, campaigns};
use tokio::net::TcpListener;

use coupon_runtime::retry_startup;

use crate::{
    campaigns::CampaignCache,
    configuration::Settings,
    gate::Gate,
    issuance::{Issuers, Reliable, course, reconcile},
    metrics::Metrics,
    publisher::Publisher,
    routes,
    state::{AppState, SharedState},
};

#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    state: SharedState,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let deadline = settings.startup_timeout;
        let stack = settings.stack.clone();
        let mut gate = retry_startup("redis", &stack.redis_address(), deadline, || {
            Gate::connect(
                &stack.redis_url,
                &stack.redis_key_prefix,
                settings.redis_response_timeout,
                settings.gate_mode,
            )
        })
        .await?;
        gate.check_restarts = settings.restart_check;
        let store = retry_startup("mysql", &stack.database_address(), deadline, || {
            Store::connect(&stack.database_url, 32)
        })
        .await?;
        let topics = [stack.topic.as_str(), stack.course_topic.as_str()];
        retry_startup("kafka", &stack.kafka_brokers, deadline, || {
            coupon_kafka::ensure_topics(&stack.kafka_brokers, &topics, stack.topic_partitions)
        })
        .await?;
        let course = course::Stages::new(
            gate.connection(),
            store.clone(),
            &stack.kafka_brokers,
            &stack.course_topic,
            &stack.redis_key_prefix,
        )
        .with_context(|| {
            format!(
                "failed to create the course's kafka producer for {}",
                stack.kafka_brokers
            )
        })?;
        let publisher = Publisher::new(
            &stack.kafka_brokers,
            &stack.topic,
            settings.publish_wait,
            settings.delivery_timeout,
        )
        .with_context(|| {
            format!(
                "failed to create a kafka producer for {}",
                stack.kafka_brokers
            )
        })?;
        retry_startup("kafka", &stack.kafka_brokers, deadline, || {
            publisher.warm_up(std::time::Duration::from_secs(5))
        })
        .await?;
        let listener = bind(settings.addr, settings.listen_backlog)
            .with_context(|| format!("failed to listen on {}", settings.addr))?;
        let metrics = Arc::new(Metrics::default());
        let campaigns = Arc::new(CampaignCache::new(
            store.clone(),
            settings.campaign_miss_window,
            metrics.campaign_reads.clone(),
        ));
        let reliable = Reliable::new(
            gate,
            publisher,
            store.clone(),
            campaigns.clone(),
            metrics.clone(),
            &settings,
        );
        let state = Arc::new(AppState {
            issuers: Issuers::new(reliable, course),
            settings,
            store,
            campaigns,
            metrics,
            readiness: tokio::sync::Mutex::new(None),
        });
        prepare_all_campaigns(&state).await?;
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

    /// Serves until `shutdown` resolves, then stops accepting, finishes in-flight requests,
    /// waits up to `SHUTDOWN_GRACE` for the admissions still in doubt, and flushes the producers.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let app = routes::router(self.state.clone());
        tracing::info!(addr = %self.local_addr(), "api listening");
        let settings = &self.state.settings;
        let stop_reconciling = tokio_util::sync::CancellationToken::new();
        let reconciler = settings.reconcile.then(|| {
            let schedule = reconcile::Schedule {
                every: settings.reconcile_every,
                after: settings.reconcile_after,
            };
            tokio::spawn(reconcile::run(
                self.state.issuers.reliable.clone(),
                schedule,
                stop_reconciling.clone(),
            ))
        });
        let served = axum::serve(self.listener, app)
            .with_graceful_shutdown(shutdown)
            .await
            .context("api server failed");
        stop_reconciling.cancel();
        if let Some(reconciler) = reconciler {
            let _ = reconciler.await;
        }
        served?;
        self.state
            .issuers
            .finish(self.state.settings.shutdown_grace)
            .await;
        tracing::info!("api stopped");
        Ok(())
    }
}

/// At startup: every campaign made ready by its strategy (new gates initialised, lost ones
/// rebuilt in the background).
async fn prepare_all_campaigns(state: &AppState) -> anyhow::Result<()> {
    let all = campaigns::list(&state.store)
        .await
        .context("failed to list campaigns")?;
    for stored in &all {
        state
            .issuers
            .for_campaign(&stored.campaign)
            .prepare(stored)
            .await
            .with_context(|| format!("failed to prepare campaign {}", stored.campaign.id))?;
    }
    Ok(())
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
