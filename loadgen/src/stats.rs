//! Latency and throughput from the history: HDR histograms at microsecond resolution per result
//! class and overall (goose rounds latencies above a second to whole seconds), and responses per
//! time bucket for the charts.
//!
//! Latency is measured two ways. **Service time** runs from the moment loadgen sent a request to
//! its reply. **Latency from the intended send time** runs from the moment the run's schedule
//! said the request was due (its user's launch, its `--pace` slot, or its previous reply in a
//! closed loop without a pace) to its reply: a stall that keeps requests from being sent shows
//! there, and nowhere in service time (the coordinated omission that wrk2 corrects). A request
//! that got no reply (a timeout, a reset) counts at the run's `--timeout` in both, never dropped.

use std::collections::BTreeMap;

use coupon_domain::history::{HistoryRecord, ResultClass};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    /// The percentiles' names, in the order of [`Self::values`].
    pub const NAMES: [&'static str; 5] = ["p50", "p90", "p99", "p99.9", "max"];

    /// p50 to max, in ms.
    pub fn values(&self) -> [f64; 5] {
        [
            self.p50_ms,
            self.p90_ms,
            self.p99_ms,
            self.p999_ms,
            self.max_ms,
        ]
    }
}

fn latency(histogram: &Histogram<u64>) -> Latency {
    let ms = |us: u64| us as f64 / 1000.0;
    Latency {
        count: histogram.len(),
        p50_ms: ms(histogram.value_at_quantile(0.50)),
        p90_ms: ms(histogram.value_at_quantile(0.90)),
        p99_ms: ms(histogram.value_at_quantile(0.99)),
        p999_ms: ms(histogram.value_at_quantile(0.999)),
        max_ms: ms(histogram.max()),
    }
}

/// The histograms' range: 1 µs to an hour.
const MAX_US: u64 = 3_600_000_000;

fn new_histogram() -> Histogram<u64> {
    // 1µs to 1h at 3 significant digits; creation cannot fail for these bounds.
    Histogram::new_with_bounds(1, MAX_US, 3).expect("1µs..1h at 3 digits are valid bounds")
}

/// One way of measuring latency: every request's, and each result class's.
struct Histograms {
    overall: Histogram<u64>,
    per_class: BTreeMap<ResultClass, Histogram<u64>>,
}

impl Histograms {
    fn new() -> Self {
        Self {
            overall: new_histogram(),
            per_class: BTreeMap::new(),
        }
    }

    fn record(&mut self, class: ResultClass, us: u64) {
        let us = us.clamp(1, MAX_US);
        let _ = self.overall.record(us);
        let _ = self
            .per_class
            .entry(class)
            .or_insert_with(new_histogram)
            .record(us);
    }

    fn overall(&self) -> Option<Latency> {
        (!self.overall.is_empty()).then(|| latency(&self.overall))
    }

    fn by_class(&self) -> BTreeMap<String, Latency> {
        self.per_class
            .iter()
            .map(|(c, h)| (c.as_str().to_owned(), latency(h)))
            .collect()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stats {
    pub requests: u64,
    pub by_class: BTreeMap<String, u64>,
    /// Service time: from the send to the reply.
    pub latency_overall: Option<Latency>,
    pub latency_by_class: BTreeMap<String, Latency>,
    /// From the intended send time to the reply: the wait as the user saw it.
    #[serde(default)]
    pub intended_overall: Option<Latency>,
    #[serde(default)]
    pub intended_by_class: BTreeMap<String, Latency>,
    /// What a request without a reply counts as, in ms (the run's `--timeout`).
    #[serde(default)]
    pub no_reply_counted_ms: f64,
    /// From the first send to the last reply.
    pub wall_seconds: f64,
    pub responses_per_second: f64,
    pub distinct_users: u64,
    /// Bucket width of the timelines, in milliseconds.
    pub bucket_ms: u64,
    /// Per bucket since the first send: responses by class.
    pub timeline: Vec<BTreeMap<String, u64>>,
    /// Per bucket: requests the schedule made due (the target rate) and requests sent (the
    /// achieved rate).
    #[serde(default)]
    pub due_timeline: Vec<u64>,
    #[serde(default)]
    pub sent_timeline: Vec<u64>,
    /// All recorded latencies in µs, bucketed logarithmically, for the latency chart:
    /// (upper bound µs, count).
    pub latency_distribution: Vec<(u64, u64)>,
}

/// The classes that count as errors: the request got no definite answer.
pub fn is_error(class: ResultClass) -> bool {
    matches!(
        class,
        ResultClass::Unavailable
            | ResultClass::Unknown
            | ResultClass::Timeout
            | ResultClass::TransportError
            | ResultClass::Unexpected
    )
}

impl Stats {
    /// The share of requests that got no definite answer (503, 504, a timeout, a transport
    /// error, an unexpected reply), or `None` without requests.
    pub fn error_share(&self) -> Option<f64> {
        let errors: u64 = ResultClass::ALL
            .into_iter()
            .filter(|c| is_error(*c))
            .filter_map(|c| self.by_class.get(c.as_str()))
            .sum();
        (self.requests > 0).then(|| errors as f64 / self.requests as f64)
    }
}

/// The statistics of `records`, with timelines in buckets of `bucket_ms` and a request that got
/// no reply counted at `no_reply_us` (the run's `--timeout`).
pub fn compute(records: &[HistoryRecord], bucket_ms: u64, no_reply_us: u64) -> Stats {
    let mut service = Histograms::new();
    let mut intended = Histograms::new();
    let mut by_class: BTreeMap<String, u64> = BTreeMap::new();
    for record in records {
        *by_class
            .entry(record.result.as_str().to_owned())
            .or_default() += 1;
        let service_us = record.response_us.unwrap_or(no_reply_us);
        let late_us = u64::try_from(record.sent_at_us - record.intended_at_us).unwrap_or(0);
        service.record(record.result, service_us);
        intended.record(record.result, service_us.saturating_add(late_us));
    }
    let overall = &service.overall;
    let start = records.iter().map(|r| r.sent_at_us).min().unwrap_or(0);
    let end = records
        .iter()
        .map(|r| r.sent_at_us + r.response_us.map_or(0, |us| us as i64))
        .max()
        .unwrap_or(start);
    let wall_seconds = ((end - start) as f64 / 1e6).max(1e-6);
    let bucket_us = (bucket_ms * 1000) as i64;
    let buckets = usize::try_from((end - start) / bucket_us.max(1) + 1).unwrap_or(1);
    let buckets = buckets.min(100_000);
    let bucket_of = |at_us: i64| {
        usize::try_from((at_us - start) / bucket_us.max(1))
            .unwrap_or(0)
            .min(buckets - 1)
    };
    let mut timeline = vec![BTreeMap::new(); buckets];
    let mut due_timeline = vec![0; buckets];
    let mut sent_timeline = vec![0; buckets];
    for record in records {
        let done = record.sent_at_us + record.response_us.map_or(0, |us| us as i64);
        *timeline[bucket_of(done)]
            .entry(record.result.as_str().to_owned())
            .or_default() += 1;
        due_timeline[bucket_of(record.intended_at_us)] += 1;
        sent_timeline[bucket_of(record.sent_at_us)] += 1;
    }
    let mut latency_distribution = Vec::new();
    let mut bound = 100u64;
    let mut below = 0u64;
    while bound < MAX_US && below < overall.len() {
        let upto = overall.count_between(0, bound);
        latency_distribution.push((bound, upto - below));
        below = upto;
        bound = bound * 5 / 4 + 1;
    }
    Stats {
        requests: records.len() as u64,
        by_class,
        latency_overall: service.overall(),
        latency_by_class: service.by_class(),
        intended_overall: intended.overall(),
        intended_by_class: intended.by_class(),
        no_reply_counted_ms: no_reply_us as f64 / 1000.0,
        wall_seconds,
        responses_per_second: records.iter().filter(|r| r.status.is_some()).count() as f64
            / wall_seconds,
        distinct_users: records
            .iter()
            .map(|r| r.user_id)
            .collect::<std::collections::HashSet<_>>()
            .len() as u64,
        bucket_ms,
        timeline,
        due_timeline,
        sent_timeline,
        latency_distribution,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(sent_at_us: i64, response_us: Option<u64>, result: ResultClass) -> HistoryRecord {
        HistoryRecord {
            run_id: "r".into(),
            campaign_id: "c".into(),
            user_id: sent_at_us as u64,
            request_id: sent_at_us as u64,
            intended_at_us: sent_at_us,
            sent_at_us,
            response_us,
            status: response_us.map(|_| 201),
            result,
            seq: None,
        }
    }

    #[test]
    fn percentiles_counts_and_rate_come_from_the_records() {
        let mut records: Vec<HistoryRecord> = (0..100)
            .map(|i| {
                record(
                    i * 10_000,
                    Some((i as u64 + 1) * 1000),
                    ResultClass::SoldOut,
                )
            })
            .collect();
        records.push(record(0, None, ResultClass::Timeout));
        let stats = compute(&records, 100, 30_000_000);
        assert_eq!(stats.requests, 101);
        assert_eq!(stats.by_class.get("sold_out"), Some(&100));
        assert_eq!(stats.by_class.get("timeout"), Some(&1));
        let sold_out = stats.latency_by_class["sold_out"];
        assert_eq!(sold_out.count, 100);
        assert!((sold_out.p50_ms - 50.0).abs() < 0.1, "{sold_out:?}");
        assert!((sold_out.max_ms - 100.0).abs() < 0.1, "{sold_out:?}");
        // The timeout is counted at the timeout, not dropped.
        let overall = stats.latency_overall.expect("latencies recorded");
        assert_eq!(overall.count, 101);
        assert!((overall.max_ms - 30_000.0).abs() < 30.0, "{overall:?}");
        assert!((stats.latency_by_class["timeout"].p50_ms - 30_000.0).abs() < 30.0);
        // 100 replies between t=0 and t=1.09 s.
        assert!(
            (stats.responses_per_second - 100.0 / 1.09).abs() < 0.5,
            "{}",
            stats.responses_per_second
        );
        let bucketed: u64 = stats.timeline.iter().flat_map(|b| b.values()).sum();
        assert_eq!(bucketed, 101);
        assert_eq!(stats.sent_timeline.iter().sum::<u64>(), 101);
        assert_eq!(
            stats.due_timeline, stats.sent_timeline,
            "each sent when due"
        );
        let distributed: u64 = stats.latency_distribution.iter().map(|(_, n)| n).sum();
        assert_eq!(distributed, 101);
    }

    /// One user in a closed loop, 1,000 requests of 1 ms, one of which stalls for 2 s. With a
    /// pace (a request due every 10 ms), the requests due during the stall go late; without
    /// one, each is due when the previous reply arrives.
    fn stalled_loop(pace_us: Option<i64>) -> Vec<HistoryRecord> {
        let mut records = Vec::new();
        let mut free_at = 0i64;
        for k in 0..1000i64 {
            let intended = pace_us.map_or(free_at, |pace| k * pace);
            let sent = intended.max(free_at);
            let service = if k == 200 { 2_000_000 } else { 1000 };
            let mut r = record(sent, Some(service), ResultClass::SoldOut);
            r.intended_at_us = intended;
            records.push(r);
            free_at = sent + service as i64;
        }
        records
    }

    #[test]
    fn latency_from_the_intended_send_time_shows_the_requests_a_stall_held_back() {
        let stats = compute(&stalled_loop(Some(10_000)), 100, 30_000_000);
        let service = stats.latency_overall.expect("replies");
        let intended = stats.intended_overall.expect("replies");
        // One request in a thousand waited: service time hides the stall below p99.9.
        assert!(service.p99_ms < 1.1, "{service:?}");
        // Some 220 requests were due while the loop waited: a fifth of the run went late.
        assert!(intended.p90_ms > 500.0, "{intended:?}");
        assert!(intended.p99_ms > 1_800.0, "{intended:?}");
        // The target rate holds at 100/s through the stall; the achieved rate drops to 0.
        let stalled = 2_100 / stats.bucket_ms as usize;
        assert_eq!(stats.due_timeline[stalled], 10);
        assert_eq!(stats.sent_timeline[stalled], 0);

        // Control: without a schedule, each request is due when the loop is free, and the two
        // measures agree: the figure above comes from the schedule, not from the stall alone.
        let unpaced = compute(&stalled_loop(None), 100, 30_000_000);
        let service = unpaced.latency_overall.expect("replies");
        let intended = unpaced.intended_overall.expect("replies");
        assert!(intended.p99_ms < 1.1, "{intended:?}");
        assert_eq!(intended, service);
    }
}
