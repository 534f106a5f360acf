//! Latency and throughput from the history: HDR histograms at microsecond resolution per result
//! class and overall (goose rounds latencies above a second to whole seconds), and responses per
//! time bucket for the charts.

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

fn new_histogram() -> Histogram<u64> {
    // 1µs to 1h at 3 significant digits; creation cannot fail for these bounds.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("1µs..1h at 3 digits are valid bounds")
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stats {
    pub requests: u64,
    pub by_class: BTreeMap<String, u64>,
    pub latency_overall: Option<Latency>,
    pub latency_by_class: BTreeMap<String, Latency>,
    /// From the first send to the last reply.
    pub wall_seconds: f64,
    pub responses_per_second: f64,
    pub distinct_users: u64,
    /// Bucket width of the timelines, in milliseconds.
    pub bucket_ms: u64,
    /// Per bucket since the first send: responses by class.
    pub timeline: Vec<BTreeMap<String, u64>>,
    /// All recorded latencies in µs, bucketed logarithmically, for the latency chart:
    /// (upper bound µs, count).
    pub latency_distribution: Vec<(u64, u64)>,
}

pub fn compute(records: &[HistoryRecord], bucket_ms: u64) -> Stats {
    let mut overall = new_histogram();
    let mut per_class: BTreeMap<ResultClass, Histogram<u64>> = BTreeMap::new();
    let mut by_class: BTreeMap<String, u64> = BTreeMap::new();
    for record in records {
        *by_class
            .entry(record.result.as_str().to_owned())
            .or_default() += 1;
        if let Some(us) = record.response_us {
            let us = us.max(1);
            let _ = overall.record(us);
            let _ = per_class
                .entry(record.result)
                .or_insert_with(new_histogram)
                .record(us);
        }
    }
    let start = records.iter().map(|r| r.sent_at_us).min().unwrap_or(0);
    let end = records
        .iter()
        .map(|r| r.sent_at_us + r.response_us.map_or(0, |us| us as i64))
        .max()
        .unwrap_or(start);
    let wall_seconds = ((end - start) as f64 / 1e6).max(1e-6);
    let bucket_us = (bucket_ms * 1000) as i64;
    let buckets = usize::try_from((end - start) / bucket_us.max(1) + 1).unwrap_or(1);
    let mut timeline = vec![BTreeMap::new(); buckets.min(100_000)];
    for record in records {
        let done = record.sent_at_us + record.response_us.map_or(0, |us| us as i64);
        let index = usize::try_from((done - start) / bucket_us.max(1))
            .unwrap_or(0)
            .min(timeline.len() - 1);
        *timeline[index]
            .entry(record.result.as_str().to_owned())
            .or_default() += 1;
    }
    let mut latency_distribution = Vec::new();
    let mut bound = 100u64;
    let mut below = 0u64;
    while bound < 3_600_000_000 && below < overall.len() {
        let upto = overall.count_between(0, bound);
        latency_distribution.push((bound, upto - below));
        below = upto;
        bound = bound * 5 / 4 + 1;
    }
    Stats {
        requests: records.len() as u64,
        by_class,
        latency_overall: (!overall.is_empty()).then(|| latency(&overall)),
        latency_by_class: per_class
            .iter()
            .map(|(c, h)| (c.as_str().to_owned(), latency(h)))
            .collect(),
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
        let stats = compute(&records, 100);
        assert_eq!(stats.requests, 101);
        assert_eq!(stats.by_class.get("sold_out"), Some(&100));
        assert_eq!(stats.by_class.get("timeout"), Some(&1));
        let overall = stats.latency_overall.expect("latencies recorded");
        assert_eq!(overall.count, 100);
        assert!((overall.p50_ms - 50.0).abs() < 0.1, "{overall:?}");
        assert!((overall.max_ms - 100.0).abs() < 0.1, "{overall:?}");
        // 100 replies between t=0 and t=1.09 s.
        assert!(
            (stats.responses_per_second - 100.0 / 1.09).abs() < 0.5,
            "{}",
            stats.responses_per_second
        );
        let bucketed: u64 = stats.timeline.iter().flat_map(|b| b.values()).sum();
        assert_eq!(bucketed, 101);
        let distributed: u64 = stats.latency_distribution.iter().map(|(_, n)| n).sum();
        assert_eq!(distributed, 100);
    }
}
