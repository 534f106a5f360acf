//! The server's side of a run: while the burst goes, loadgen scrapes the api's and the
//! consumer's `/metrics` (Prometheus text, parsed by `prometheus-parse`) every `--scrape-every`,
//! and turns the readings into timelines for the report: consumer lag, rows written, gate and
//! Kafka-ack latency, applies in doubt, process memory.

use std::{collections::HashMap, time::Duration};

use prometheus_parse::{Scrape, Value};
use serde::{Deserialize, Serialize};
use tokio::{sync::watch, task::JoinHandle};

/// One process whose `/metrics` a run reads.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// `api` or `consumer`.
    pub part: &'static str,
    pub url: String,
}

/// What one scrape of one process read: every plain sample by name (summed over labels), and
/// every histogram's cumulative buckets (upper bound in s, count).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reading {
    values: HashMap<String, f64>,
    histograms: HashMap<String, Vec<(f64, f64)>>,
}

impl Reading {
    /// Reads the Prometheus text format.
    pub fn parse(text: &str) -> Self {
        let lines = text.lines().map(|line| Ok(line.to_owned()));
        let Ok(scrape) = Scrape::parse(lines) else {
            return Self::default();
        };
        let mut reading = Self::default();
        for sample in scrape.samples {
            match sample.value {
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => {
                    *reading.values.entry(sample.metric).or_default() += v;
                }
                Value::Histogram(buckets) => {
                    let summed = reading.histograms.entry(sample.metric).or_default();
                    for (i, bucket) in buckets.iter().enumerate() {
                        match summed.get_mut(i) {
                            Some(slot) => slot.1 += bucket.count,
                            None => summed.push((bucket.less_than, bucket.count)),
                        }
                    }
                }
                Value::Summary(_) => {}
            }
        }
        reading
    }

    fn value(&self, name: &str) -> Option<f64> {
        self.values.get(name).copied()
    }
}

/// The p99 of the observations a histogram gained between two readings, in ms: the upper
/// bound of the bucket that holds it. `None` without an earlier reading (the first one holds
/// the process's whole life), when it gained none, or when it went back (a restart).
fn interval_p99_ms(before: Option<&Reading>, after: &Reading, name: &str) -> Option<f64> {
    let now = after.histograms.get(name)?;
    let then = before?.histograms.get(name)?;
    if then.len() != now.len() {
        return None;
    }
    let gained: Vec<(f64, f64)> = now
        .iter()
        .zip(then)
        .map(|((le, count), (_, earlier))| (*le, count - earlier))
        .collect();
    let total = gained.last()?.1;
    if total <= 0.0 || gained.iter().any(|(_, n)| *n < 0.0) {
        return None;
    }
    let (le, _) = gained.iter().find(|(_, n)| *n >= total * 0.99)?;
    // The +Inf bucket has no bound: name the last finite one.
    let bound = if le.is_finite() {
        *le
    } else {
        gained
            .iter()
            .rev()
            .map(|(le, _)| *le)
            .find(|le| le.is_finite())
            .unwrap_or(0.0)
    };
    Some(bound * 1000.0)
}

/// One tick: when (µs since the epoch), and what each endpoint answered (`None`: it did not).
#[derive(Debug, Clone)]
struct Tick {
    at_us: i64,
    readings: Vec<Option<Reading>>,
}

/// One server-side timeline: a value per scrape, `None` where there was none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Series {
    /// `api` or `consumer`.
    pub part: String,
    /// What it is, e.g. `lag`.
    pub name: String,
    pub unit: String,
    pub values: Vec<Option<f64>>,
}

impl Series {
    /// The largest value, if any.
    pub fn peak(&self) -> Option<f64> {
        self.values.iter().flatten().copied().reduce(f64::max)
    }
}

/// Every server-side timeline of a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerTimelines {
    /// The scrape interval, ms.
    pub every_ms: u64,
    /// Each scrape's time, ms since the run's first request (negative: before it).
    pub at_ms: Vec<f64>,
    pub series: Vec<Series>,
    /// Endpoints that never answered.
    pub unreachable: Vec<String>,
}

impl ServerTimelines {
    /// The series `name` of `part`.
    pub fn get(&self, part: &str, name: &str) -> Option<&Series> {
        self.series
            .iter()
            .find(|s| s.part == part && s.name == name)
    }

    /// The largest value of the series `name` of `part`, if it has any.
    pub fn peak(&self, part: &str, name: &str) -> Option<f64> {
        self.get(part, name).and_then(Series::peak)
    }
}

/// How a timeline comes from two successive readings of its metric.
#[derive(Debug, Clone, Copy)]
enum How {
    /// A counter's increase per second.
    Rate,
    /// The p99 of a histogram's observations in the interval, ms.
    IntervalP99,
    /// The value as read.
    Value,
    /// Bytes as read, in MB.
    Megabytes,
}

/// One timeline: which process, what it is called, which metric it reads and how.
struct Derived {
    part: &'static str,
    name: &'static str,
    unit: &'static str,
    metric: &'static str,
    how: How,
}

impl Derived {
    fn value(&self, before: Option<&Reading>, after: &Reading, seconds: f64) -> Option<f64> {
        match self.how {
            How::Rate => {
                let (then, now) = (before?.value(self.metric)?, after.value(self.metric)?);
                (seconds > 0.0).then(|| ((now - then) / seconds).max(0.0))
            }
            How::IntervalP99 => interval_p99_ms(before, after, self.metric),
            How::Value => after.value(self.metric),
            How::Megabytes => Some(after.value(self.metric)? / (1024.0 * 1024.0)),
        }
    }
}

const fn derived(
    part: &'static str,
    name: &'static str,
    unit: &'static str,
    metric: &'static str,
    how: How,
) -> Derived {
    Derived {
        part,
        name,
        unit,
        metric,
        how,
    }
}

/// Every timeline the report draws, from the metrics the api and the consumer export.
const DERIVED: &[Derived] = &[
    derived(
        "api",
        "applies/s",
        "1/s",
        "coupon_api_apply_requests_total",
        How::Rate,
    ),
    derived(
        "api",
        "gate p99",
        "ms",
        "coupon_api_gate_duration_seconds",
        How::IntervalP99,
    ),
    derived(
        "api",
        "kafka ack p99",
        "ms",
        "coupon_api_publish_duration_seconds",
        How::IntervalP99,
    ),
    derived(
        "api",
        "in doubt",
        "applies",
        "coupon_api_in_doubt",
        How::Value,
    ),
    derived(
        "api",
        "memory",
        "MB",
        "coupon_api_process_resident_memory_bytes",
        How::Megabytes,
    ),
    derived(
        "consumer",
        "lag",
        "events",
        "coupon_consumer_lag",
        How::Value,
    ),
    derived(
        "consumer",
        "rows written",
        "rows",
        "coupon_consumer_rows_written_total",
        How::Value,
    ),
    derived(
        "consumer",
        "rows/s",
        "1/s",
        "coupon_consumer_rows_written_total",
        How::Rate,
    ),
    derived(
        "consumer",
        "course rows written",
        "rows",
        "coupon_consumer_course_rows_written_total",
        How::Value,
    ),
    derived(
        "consumer",
        "memory",
        "MB",
        "coupon_consumer_process_resident_memory_bytes",
        How::Megabytes,
    ),
];

/// The timelines of `ticks` over `endpoints`, timed from `origin_us` (the first request).
fn timelines(
    endpoints: &[Endpoint],
    ticks: &[Tick],
    every: Duration,
    origin_us: i64,
) -> ServerTimelines {
    let mut series = Vec::new();
    for (e, endpoint) in endpoints.iter().enumerate() {
        for derived in DERIVED.iter().filter(|d| d.part == endpoint.part) {
            let mut previous: Option<(i64, &Reading)> = None;
            let values = ticks
                .iter()
                .map(|tick| {
                    let reading = tick.readings.get(e)?.as_ref()?;
                    let seconds = previous.map_or(0.0, |(at, _)| (tick.at_us - at) as f64 / 1e6);
                    let value = derived.value(previous.map(|(_, r)| r), reading, seconds);
                    previous = Some((tick.at_us, reading));
                    value
                })
                .collect();
            series.push(Series {
                part: endpoint.part.to_owned(),
                name: derived.name.to_owned(),
                unit: derived.unit.to_owned(),
                values,
            });
        }
    }
    ServerTimelines {
        every_ms: u64::try_from(every.as_millis()).unwrap_or(u64::MAX),
        at_ms: ticks
            .iter()
            .map(|t| (t.at_us - origin_us) as f64 / 1000.0)
            .collect(),
        series,
        unreachable: endpoints
            .iter()
            .enumerate()
            .filter(|(e, _)| ticks.iter().all(|t| t.readings[*e].is_none()))
            .map(|(_, endpoint)| format!("{} at {}", endpoint.part, endpoint.url))
            .collect(),
    }
}

/// Scrapes in the background until [`Scraper::finish`].
#[derive(Debug)]
pub struct Scraper {
    endpoints: Vec<Endpoint>,
    every: Duration,
    stop: watch::Sender<bool>,
    task: JoinHandle<Vec<Tick>>,
}

impl Scraper {
    /// Starts scraping `endpoints` every `every`; each read waits at most that long, and never
    /// more than 2 s.
    pub fn start(endpoints: Vec<Endpoint>, every: Duration) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(every.clamp(Duration::from_millis(100), Duration::from_secs(2)))
            .build()?;
        let (stop, mut stopped) = watch::channel(false);
        let urls: Vec<String> = endpoints.iter().map(|e| e.url.clone()).collect();
        let task = tokio::spawn(async move {
            let mut interval = tokio::time::interval(every);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut ticks = Vec::new();
            loop {
                // One last read once told to stop, so the timelines end where the run ended.
                let last = tokio::select! {
                    _ = interval.tick() => false,
                    _ = stopped.wait_for(|s| *s) => true,
                };
                let at_us = crate::scenario::now_us();
                let readings = futures::future::join_all(urls.iter().map(|url| {
                    let http = http.clone();
                    async move {
                        let response = http.get(url).send().await.ok()?;
                        let text = response.error_for_status().ok()?.text().await.ok()?;
                        Some(Reading::parse(&text))
                    }
                }))
                .await;
                ticks.push(Tick { at_us, readings });
                if last {
                    break;
                }
            }
            ticks
        });
        Ok(Self {
            endpoints,
            every,
            stop,
            task,
        })
    }

    /// Reads once more, stops, and returns the timelines, timed from `origin_us` (the run's
    /// first request, µs since the epoch).
    pub async fn finish(self, origin_us: i64) -> ServerTimelines {
        let _ = self.stop.send(true);
        let ticks = self.task.await.unwrap_or_default();
        timelines(&self.endpoints, &ticks, self.every, origin_us)
    }
}

/// The metric families a text exposition declares (`# TYPE name ...`).
pub fn declared_families(text: &str) -> std::collections::BTreeSet<String> {
    text.lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// The metric names in `expr` (`coupon_...`) whose family `known` does not declare, with the
/// sample suffixes (`_total`, `_bucket`, `_sum`, `_count`) taken off.
pub fn unknown_metrics(expr: &str, known: &std::collections::BTreeSet<String>) -> Vec<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| word.starts_with("coupon_"))
        .filter(|word| {
            let family = ["_total", "_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| word.strip_suffix(suffix))
                .unwrap_or(word);
            !known.contains(family) && !known.contains(*word)
        })
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every family the api and the consumer declare.
    fn exported() -> std::collections::BTreeSet<String> {
        let mut known = declared_families(&coupon_api::metrics::Metrics::default().render());
        known.extend(declared_families(
            &coupon_consumer::metrics::Metrics::default().render(),
        ));
        known
    }

    #[test]
    fn every_timeline_reads_a_metric_the_processes_export() {
        let known = exported();
        for derived in DERIVED {
            assert_eq!(
                unknown_metrics(derived.metric, &known),
                Vec::<String>::new(),
                "timeline {} {}",
                derived.part,
                derived.name
            );
        }
        // Control: a renamed metric is caught.
        assert_eq!(
            unknown_metrics("rate(coupon_api_gate_seconds_bucket[5s])", &known),
            vec!["coupon_api_gate_seconds_bucket"]
        );
    }

    #[test]
    fn every_grafana_panel_queries_metrics_the_processes_export() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../docker/grafana/dashboards/fcfs-coupons.json"
        );
        let dashboard: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).expect("the dashboard is kept"))
                .expect("the dashboard is JSON");
        let known = exported();
        let exprs: Vec<&str> = dashboard["panels"]
            .as_array()
            .expect("panels")
            .iter()
            .flat_map(|panel| panel["targets"].as_array().into_iter().flatten())
            .filter_map(|target| target["expr"].as_str())
            .collect();
        assert!(
            exprs.len() >= DERIVED.len(),
            "a panel for each report timeline"
        );
        for expr in exprs {
            assert_eq!(
                unknown_metrics(expr, &known),
                Vec::<String>::new(),
                "{expr}"
            );
        }
    }

    /// What prometheus-client writes for the api, trimmed, at two moments.
    fn api_text(applies: u64, fast: u64, slow: u64, in_doubt: u64) -> String {
        format!(
            "# HELP coupon_api_apply_requests Apply requests by result.\n\
             # TYPE coupon_api_apply_requests counter\n\
             coupon_api_apply_requests_total{{result=\"issued\"}} 10\n\
             coupon_api_apply_requests_total{{result=\"sold_out\"}} {}\n\
             # TYPE coupon_api_gate_duration_seconds histogram\n\
             coupon_api_gate_duration_seconds_sum 1.0\n\
             coupon_api_gate_duration_seconds_count {all}\n\
             coupon_api_gate_duration_seconds_bucket{{le=\"0.001\"}} {fast}\n\
             coupon_api_gate_duration_seconds_bucket{{le=\"0.064\"}} {all}\n\
             coupon_api_gate_duration_seconds_bucket{{le=\"+Inf\"}} {all}\n\
             # TYPE coupon_api_in_doubt gauge\n\
             coupon_api_in_doubt {in_doubt}\n\
             # TYPE coupon_api_process_resident_memory_bytes gauge\n\
             coupon_api_process_resident_memory_bytes 20971520\n\
             # EOF\n",
            applies - 10,
            all = fast + slow,
        )
    }

    #[test]
    fn readings_become_rates_interval_percentiles_and_gauges() {
        let endpoints = [Endpoint {
            part: "api",
            url: "http://127.0.0.1:1/metrics".into(),
        }];
        let ticks = [
            Tick {
                at_us: 1_000_000,
                readings: vec![Some(Reading::parse(&api_text(100, 100, 0, 0)))],
            },
            Tick {
                at_us: 1_500_000,
                readings: vec![None],
            },
            Tick {
                // 400 more applies in 1 s, 200 more gate calls of which 50 slow.
                at_us: 2_000_000,
                readings: vec![Some(Reading::parse(&api_text(500, 250, 50, 3)))],
            },
            Tick {
                // The api restarted: its counters began again.
                at_us: 2_500_000,
                readings: vec![Some(Reading::parse(&api_text(20, 20, 0, 0)))],
            },
        ];
        // The run's first request went out 0.25 s after the first read.
        let timelines = timelines(&endpoints, &ticks, Duration::from_millis(500), 1_250_000);
        let values = |name: &str| timelines.get("api", name).expect(name).values.clone();
        assert_eq!(
            values("applies/s"),
            vec![None, None, Some(400.0), Some(0.0)]
        );
        // The first reading holds the api's whole life, not an interval; of the 200 calls
        // after it, a quarter was slow; a counter that went back gives no interval.
        assert_eq!(values("gate p99"), vec![None, None, Some(64.0), None]);
        assert_eq!(
            values("in doubt"),
            vec![Some(0.0), None, Some(3.0), Some(0.0)]
        );
        assert_eq!(
            values("memory"),
            vec![Some(20.0), None, Some(20.0), Some(20.0)]
        );
        assert_eq!(values("kafka ack p99"), vec![None; 4]);
        assert!(timelines.unreachable.is_empty());
        assert_eq!(timelines.at_ms, vec![-250.0, 250.0, 750.0, 1250.0]);
    }

    #[test]
    fn an_endpoint_that_never_answers_is_named() {
        let endpoints = [Endpoint {
            part: "consumer",
            url: "http://127.0.0.1:1/metrics".into(),
        }];
        let ticks = [Tick {
            at_us: 0,
            readings: vec![None],
        }];
        let timelines = timelines(&endpoints, &ticks, Duration::from_millis(250), 0);
        assert_eq!(
            timelines.unreachable,
            vec!["consumer at http://127.0.0.1:1/metrics"]
        );
        assert_eq!(timelines.peak("consumer", "lag"), None);
    }
}
