//! Build the consumer (connect, migrate, create the topic, bind the metrics endpoint) and run
//! the consume loop, the retry worker and the lag gauge until shutdown.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use axum::{Router, extract::State, http::header, response::IntoResponse, routing::get};
use coupon_runtime::retry_startup;
use coupon_store::Store;
use tokio::net::TcpListener;

use crate::{configuration::Settings, consume, course, fault::CrashAfter, metrics::Metrics, retry};

#[derive(Debug)]
pub struct Consumer {
    settings: Settings,
    store: Store,
    metrics: Arc<Metrics>,
    metrics_listener: TcpListener,
}

impl Consumer {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let deadline = settings.startup_timeout;
        let stack = &settings.stack;
        let store = retry_startup("mysql", &stack.database_address(), deadline, || {
            Store::connect(&stack.database_url, 8)
        })
        .await?;
        let topics = [
            settings.stack.topic.as_str(),
            settings.stack.course_topic.as_str(),
        ];
        retry_startup("kafka", &settings.stack.kafka_brokers, deadline, || {
            coupon_kafka::ensure_topics(
                &settings.stack.kafka_brokers,
                &topics,
                settings.stack.topic_partitions,
            )
        })
        .await?;
        let metrics_listener = TcpListener::bind(settings.metrics_addr)
            .await
            .with_context(|| {
                format!("failed to listen on {} for /metrics", settings.metrics_addr)
            })?;
        Ok(Self {
            settings,
            store,
            metrics: Arc::new(Metrics::default()),
            metrics_listener,
        })
    }

    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics_listener
            .local_addr()
            .unwrap_or(self.settings.metrics_addr)
    }

    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// Runs until `shutdown` resolves: the batch in hand is written and its offsets committed.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> anyhow::Result<()> {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let retry_worker = tokio::spawn(retry::run(
            self.store.clone(),
            self.metrics.clone(),
            self.settings.retry_interval,
            stop_rx.clone(),
        ));
        let lag_gauge = tokio::spawn(track_lag(
            self.settings.clone(),
            self.metrics.clone(),
            stop_rx.clone(),
        ));
        let metrics_app = Router::new()
            .route("/metrics", get(render_metrics))
            .with_state(self.metrics.clone());
        let mut metrics_stop = stop_rx.clone();
        let metrics_server = tokio::spawn(
            axum::serve(self.metrics_listener, metrics_app)
                .with_graceful_shutdown(async move {
                    let _ = metrics_stop.wait_for(|stopped| *stopped).await;
                })
                .into_future(),
        );
        let crash = Arc::new(CrashAfter::new(self.settings.crash_after_rows));
        let mut course_stop = stop_rx.clone();
        let course_consumer = course::run(
            &self.settings,
            self.store.clone(),
            self.metrics.clone(),
            crash.clone(),
            async move {
                let _ = course_stop.wait_for(|stopped| *stopped).await;
            },
        );
        // The course's consumer stops when the pipeline's does, whether at shutdown or on an
        // error, so the join below always ends.
        let consumed = async {
            let consumed = consume::run(
                &self.settings,
                self.store.clone(),
                self.metrics.clone(),
                crash,
                shutdown,
            )
            .await;
            let _ = stop_tx.send(true);
            consumed
        };
        let (consumed, course_consumed) = tokio::join!(consumed, course_consumer);
        let _ = stop_tx.send(true);
        let _ = tokio::join!(retry_worker, lag_gauge, metrics_server);
        consumed.and(course_consumed)
    }
}

async fn render_metrics(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        metrics.render(),
    )
}

/// Refreshes the lag gauge from the broker's watermarks and the group's committed offsets.
async fn track_lag(
    settings: Settings,
    metrics: Arc<Metrics>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        match coupon_kafka::offsets::read(
            &settings.stack.kafka_brokers,
            &settings.stack.topic,
            &settings.stack.group,
        )
        .await
        {
            Ok(offsets) => {
                metrics.lag.set(coupon_kafka::offsets::total_lag(&offsets));
            }
            Err(error) => {
                tracing::debug!(error = %coupon_runtime::chain(&error), "could not read consumer lag")
            }
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
    }
}
