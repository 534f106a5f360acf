//! The api's Prometheus metrics, served at `GET /metrics` in the text format.

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// A fixed name: no allocation on the apply path.
    pub result: &'static str,
}

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<ResultLabel, Counter>,
    pub apply_seconds: Histogram,
    pub gate_seconds: Histogram,
    pub publish_seconds: Histogram,
    pub releases: Counter,
    pub release_failures: Counter,
    pub republish_failures: Counter,
    pub reconciled_releases: Counter,
    pub events_scanned: Counter,
    pub pending_resolved: Family<ResultLabel, Counter>,
    pub unknown_resolved: Family<ResultLabel, Counter>,
    pub gate_rebuilds: Counter,
    pub readiness_probes: Counter,
    pub campaign_reads: Counter,
    pub reconciler_row_counts: Counter,
    pub reconciler_passes: Counter,
    /// Applies answered `pending` whose event the api is still resolving.
    in_doubt: Gauge,
    /// Refreshed each time the metrics are rendered.
    resident_memory: Gauge,
}

/// Counts one apply in doubt while it lives (see [`Metrics::hold_in_doubt`]).
#[derive(Debug)]
pub struct InDoubt(Gauge);

impl Drop for InDoubt {
    fn drop(&mut self) {
        self.0.dec();
    }
}

fn latency_buckets() -> impl Iterator<Item = f64> {
    // 100µs to ~13s, doubling.
    prometheus_client::metrics::histogram::exponential_buckets(0.0001, 2.0, 18)
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("coupon_api");
        let requests = Family::<ResultLabel, Counter>::default();
        let apply_seconds = Histogram::new(latency_buckets());
        let gate_seconds = Histogram::new(latency_buckets());
        let publish_seconds = Histogram::new(latency_buckets());
        let releases = Counter::default();
        let release_failures = Counter::default();
        let republish_failures = Counter::default();
        let reconciled_releases = Counter::default();
        let events_scanned = Counter::default();
        let pending_resolved = Family::<ResultLabel, Counter>::default();
        let unknown_resolved = Family::<ResultLabel, Counter>::default();
        let gate_rebuilds = Counter::default();
        let readiness_probes = Counter::default();
        let campaign_reads = Counter::default();
        let reconciler_row_counts = Counter::default();
        let reconciler_passes = Counter::default();
        let in_doubt = Gauge::default();
        let resident_memory = Gauge::default();
        registry.register(
            "in_doubt",
            "Applies answered pending whose event is still being resolved (published again or released)",
            in_doubt.clone(),
        );
        registry.register(
            "process_resident_memory_bytes",
            "Resident memory of the api's process",
            resident_memory.clone(),
        );
        registry.register(
            "apply_requests",
            "Apply requests by result",
            requests.clone(),
        );
        registry.register(
            "apply_duration_seconds",
            "Apply latency, end to end",
            apply_seconds.clone(),
        );
        registry.register(
            "gate_duration_seconds",
            "Redis gate script latency",
            gate_seconds.clone(),
        );
        registry.register(
            "publish_duration_seconds",
            "Kafka produce latency until acknowledged",
            publish_seconds.clone(),
        );
        registry.register(
            "admissions_released",
            "Admissions undone after a failed publish",
            releases.clone(),
        );
        registry.register(
            "admission_release_failures",
            "Attempts to undo an admission that failed (retried)",
            release_failures.clone(),
        );
        registry.register(
            "republish_failures",
            "Attempts to republish an event in doubt that failed (retried)",
            republish_failures.clone(),
        );
        registry.register(
            "reconciled_releases",
            "Slots the reconciler released: admissions with no event, row or failed event past the deadline",
            reconciled_releases.clone(),
        );
        registry.register(
            "events_scanned",
            "Events read from the topic by gate rebuilds and the reconciler (only what the consumer group has not committed past)",
            events_scanned.clone(),
        );
        registry.register(
            "pending_resolved",
            "Pending applies resolved later, by final result",
            pending_resolved.clone(),
        );
        registry.register(
            "unknown_resolved",
            "Applies answered unknown (no answer from the gate) resolved once Redis answered again, by result: issued (or superseded_by_rebuild, unresolved) when the user held a slot, not_admitted when not, gate_lost when the gate was gone",
            unknown_resolved.clone(),
        );
        registry.register(
            "gate_rebuilds",
            "Gates rebuilt after Redis lost their state",
            gate_rebuilds.clone(),
        );
        registry.register(
            "readiness_probes",
            "Times /readyz probed Redis, MySQL and Kafka (answers are reused for a second)",
            readiness_probes.clone(),
        );
        registry.register(
            "campaign_reads",
            "Reads of MySQL by the campaign cache: one per new campaign, and for ids it does not know, one read of every campaign a second at most",
            campaign_reads.clone(),
        );
        registry.register(
            "reconciler_row_counts",
            "Times the reconciler counted a campaign's rows in MySQL (campaigns whose gate has not changed since every winner had its row are skipped)",
            reconciler_row_counts.clone(),
        );
        registry.register(
            "reconciler_passes",
            "Passes of the reconciler over every campaign (finished or failed), by this api while it leads",
            reconciler_passes.clone(),
        );
        Self {
            registry,
            requests,
            apply_seconds,
            gate_seconds,
            publish_seconds,
            releases,
            release_failures,
            republish_failures,
            reconciled_releases,
            events_scanned,
            pending_resolved,
            unknown_resolved,
            gate_rebuilds,
            readiness_probes,
            campaign_reads,
            reconciler_row_counts,
            reconciler_passes,
            in_doubt,
            resident_memory,
        }
    }
}

impl Metrics {
    pub fn count_request(&self, result: &'static str) {
        self.requests.get_or_create(&ResultLabel { result }).inc();
    }

    pub fn count_pending_resolved(&self, result: &'static str) {
        self.pending_resolved
            .get_or_create(&ResultLabel { result })
            .inc();
    }

    pub fn count_unknown_resolved(&self, result: &'static str) {
        self.unknown_resolved
            .get_or_create(&ResultLabel { result })
            .inc();
    }

    /// Counts an apply in doubt until the returned guard is dropped.
    pub fn hold_in_doubt(&self) -> InDoubt {
        self.in_doubt.inc();
        InDoubt(self.in_doubt.clone())
    }

    pub fn render(&self) -> String {
        self.resident_memory
            .set(coupon_runtime::resident_memory_bytes());
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}
