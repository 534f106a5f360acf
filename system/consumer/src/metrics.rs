//! The consumer's Prometheus metrics: rows written, failures by reason, lag. Served at
//! `GET /metrics` on the consumer's metrics address.

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LoopLabel {
    /// `pipeline` or `course`.
    pub consumer: &'static str,
}

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub rows_written: Counter,
    pub already_written: Counter,
    failed_events: Family<ReasonLabel, Counter>,
    pub transient_errors: Counter,
    pub consume_errors: Counter,
    pub batches: Counter,
    pub failed_events_resolved: Counter,
    pub lag: Gauge,
    /// Refreshed each time the metrics are rendered.
    resident_memory: Gauge,
    pub course_rows_written: Counter,
    pub course_failed_events: Counter,
    pub course_dropped: Counter,
    assigned_partitions: Family<LoopLabel, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("coupon_consumer");
        let metrics = Self {
            rows_written: Counter::default(),
            already_written: Counter::default(),
            failed_events: Family::default(),
            transient_errors: Counter::default(),
            consume_errors: Counter::default(),
            batches: Counter::default(),
            failed_events_resolved: Counter::default(),
            lag: Gauge::default(),
            resident_memory: Gauge::default(),
            course_rows_written: Counter::default(),
            course_failed_events: Counter::default(),
            course_dropped: Counter::default(),
            assigned_partitions: Family::default(),
            registry: Registry::default(),
        };
        let counters = [
            (
                "course_rows_written",
                "Rows the course's consumer inserted (course stages)",
                &metrics.course_rows_written,
            ),
            (
                "course_failed_events",
                "Failed inserts the course's consumer recorded, never retried",
                &metrics.course_failed_events,
            ),
            (
                "course_dropped",
                "Failed inserts lost for good: the kafka stage skips them, per-user when its failed event could not be saved either",
                &metrics.course_dropped,
            ),
            ("rows_written", "Coupon rows written", &metrics.rows_written),
            (
                "already_written",
                "Redelivered events whose coupon was already on file",
                &metrics.already_written,
            ),
            (
                "transient_errors",
                "Batches retried after a transient database error",
                &metrics.transient_errors,
            ),
            (
                "consume_errors",
                "Errors reading from kafka (the consumer reconnects and goes on)",
                &metrics.consume_errors,
            ),
            ("batches", "Batches committed", &metrics.batches),
            (
                "failed_events_resolved",
                "Failed events the retry worker resolved",
                &metrics.failed_events_resolved,
            ),
        ];
        for (name, help, counter) in counters {
            registry.register(name, help, counter.clone());
        }
        registry.register(
            "assigned_partitions",
            "Partitions assigned to each consume loop (0 until the group has assigned them)",
            metrics.assigned_partitions.clone(),
        );
        registry.register(
            "failed_events",
            "Events captured in failed_event, by reason",
            metrics.failed_events.clone(),
        );
        registry.register(
            "lag",
            "Events on the broker the group has not committed (refreshed every second)",
            metrics.lag.clone(),
        );
        registry.register(
            "process_resident_memory_bytes",
            "Resident memory of the consumer's process",
            metrics.resident_memory.clone(),
        );
        Self {
            registry,
            ..metrics
        }
    }
}

impl Metrics {
    pub fn count_failed_event(&self, reason: coupon_store::FailureReason) {
        self.failed_events
            .get_or_create(&ReasonLabel {
                reason: reason.as_str().to_owned(),
            })
            .inc();
    }

    /// Records how many partitions `consumer` holds right now.
    pub fn set_assigned(
        &self,
        loop_name: &'static str,
        consumer: &impl rdkafka::consumer::Consumer,
    ) {
        let count = consumer.assignment().map_or(0, |list| list.count());
        self.assigned_partitions
            .get_or_create(&LoopLabel {
                consumer: loop_name,
            })
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// How many partitions the `loop_name` loop (`pipeline` or `course`) holds.
    pub fn assigned(&self, loop_name: &'static str) -> i64 {
        self.assigned_partitions
            .get_or_create(&LoopLabel {
                consumer: loop_name,
            })
            .get()
    }

    pub fn render(&self) -> String {
        self.resident_memory
            .set(coupon_runtime::resident_memory_bytes());
        let mut out = String::new();
        let _ = encode(&mut out, &self.registry);
        out
    }
}
