//! `--threshold`: budgets over a run's summary that set loadgen's exit code, as k6's thresholds
//! do. One threshold is `METRIC OP VALUE`:
//!
//! - `METRIC`: a latency percentile, `p50`, `p90`, `p99`, `p99.9` or `max`, of the service
//!   time, or with `intended.` before it (`intended.p99`) of the latency from the intended send
//!   time (see [`crate::stats`]), optionally of one result class (`p99[issued]`); `errors`, the share of requests that got
//!   no definite answer (503 `unavailable`, 504 `unknown`, a timeout, a transport error, an
//!   unexpected reply); `rate`, responses per second; or a result class's name (`issued`,
//!   `sold_out`, `already_applied`, ...), the number of replies of that class.
//! - `OP`: `<`, `<=`, `>`, `>=`, `==` or `!=`.
//! - `VALUE`: a number. Latencies take `us`, `ms` (the default) or `s`; `errors` takes a
//!   fraction or a percentage (`0.1%`); a count takes `limit`, the campaign's coupon limit.
//!
//! For example `p99<50ms`, `p99[issued]<=25ms`, `intended.p99<100ms`, `errors<0.1%`, `issued==limit`, `rate>5000`.

use std::{fmt, str::FromStr};

use coupon_domain::history::ResultClass;
use serde::{Deserialize, Serialize};

use crate::{report::Summary, stats::Latency};

/// One parsed `--threshold`.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// As the user wrote it, for the report.
    text: String,
    metric: Metric,
    op: Op,
    value: Value,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Metric {
    Latency {
        quantile: Quantile,
        class: Option<ResultClass>,
        /// From the intended send time, not the actual one.
        intended: bool,
    },
    Errors,
    Rate,
    Count(ResultClass),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Quantile {
    P50,
    P90,
    P99,
    P999,
    Max,
}

impl Quantile {
    fn of(self, latency: &Latency) -> f64 {
        match self {
            Self::P50 => latency.p50_ms,
            Self::P90 => latency.p90_ms,
            Self::P99 => latency.p99_ms,
            Self::P999 => latency.p999_ms,
            Self::Max => latency.max_ms,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl Op {
    fn holds(self, observed: f64, wanted: f64) -> bool {
        match self {
            Self::Lt => observed < wanted,
            Self::Le => observed <= wanted,
            Self::Gt => observed > wanted,
            Self::Ge => observed >= wanted,
            Self::Eq => observed == wanted,
            Self::Ne => observed != wanted,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Value {
    /// In the metric's own unit: milliseconds, a fraction, responses per second, a count.
    Number(f64),
    /// The campaign's coupon limit.
    Limit,
}

/// Why a `--threshold` could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "threshold `{text}`: {why} (e.g. `p99<50ms`, `p99[issued]<25ms`, `errors<0.1%`, `issued==limit`, `rate>5000`)"
)]
pub struct ThresholdError {
    text: String,
    why: String,
}

impl FromStr for Threshold {
    type Err = ThresholdError;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let fail = |why: String| ThresholdError {
            text: raw.to_owned(),
            why,
        };
        let compact: String = raw.chars().filter(|c| !c.is_whitespace()).collect();
        let at = compact
            .find(['<', '>', '=', '!'])
            .ok_or_else(|| fail("no comparison (<, <=, >, >=, ==, !=)".to_owned()))?;
        let (metric, rest) = compact.split_at(at);
        let (op, value) = [
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("==", Op::Eq),
            ("!=", Op::Ne),
            ("<", Op::Lt),
            (">", Op::Gt),
        ]
        .into_iter()
        .find_map(|(token, op)| rest.strip_prefix(token).map(|value| (op, value)))
        .ok_or_else(|| fail(format!("`{rest}` starts with no known comparison")))?;
        let metric = parse_metric(metric).map_err(fail)?;
        let value = parse_value(metric, value).map_err(fail)?;
        Ok(Self {
            text: raw.trim().to_owned(),
            metric,
            op,
            value,
        })
    }
}

fn parse_metric(raw: &str) -> Result<Metric, String> {
    let (intended, raw) = match raw.strip_prefix("intended.") {
        Some(rest) => (true, rest),
        None => (false, raw),
    };
    let (name, class) = match raw.split_once('[') {
        Some((name, class)) => {
            let class = class
                .strip_suffix(']')
                .ok_or_else(|| format!("`{raw}` opens `[` without closing it"))?;
            (name, Some(parse_class(class)?))
        }
        None => (raw, None),
    };
    let quantile = match name {
        "p50" => Some(Quantile::P50),
        "p90" => Some(Quantile::P90),
        "p99" => Some(Quantile::P99),
        "p99.9" | "p999" => Some(Quantile::P999),
        "max" => Some(Quantile::Max),
        _ => None,
    };
    match (quantile, class) {
        (Some(quantile), class) => Ok(Metric::Latency {
            quantile,
            class,
            intended,
        }),
        (None, _) if intended => Err(format!(
            "only a latency (p50, p90, p99, p99.9, max) follows `intended.`, not `{name}`"
        )),
        (None, Some(_)) => Err(format!(
            "only a latency (p50, p90, p99, p99.9, max) takes a result class, not `{name}`"
        )),
        (None, None) => match name {
            "errors" => Ok(Metric::Errors),
            "rate" => Ok(Metric::Rate),
            "" => Err("no metric before the comparison".to_owned()),
            other => parse_class(other).map(Metric::Count),
        },
    }
}

fn parse_class(raw: &str) -> Result<ResultClass, String> {
    ResultClass::ALL
        .into_iter()
        .find(|class| class.as_str() == raw)
        .ok_or_else(|| {
            let known: Vec<&str> = ResultClass::ALL.iter().map(|c| c.as_str()).collect();
            format!(
                "`{raw}` is no metric: a latency, errors, rate, or one of {}",
                known.join(", ")
            )
        })
}

fn parse_value(metric: Metric, raw: &str) -> Result<Value, String> {
    if raw == "limit" {
        return match metric {
            Metric::Count(_) => Ok(Value::Limit),
            _ => Err("only a count compares with `limit`".to_owned()),
        };
    }
    let (number, scale) = match metric {
        Metric::Latency { .. } => {
            if let Some(n) = raw.strip_suffix("us") {
                (n, 0.001)
            } else if let Some(n) = raw.strip_suffix("ms") {
                (n, 1.0)
            } else if let Some(n) = raw.strip_suffix('s') {
                (n, 1000.0)
            } else {
                (raw, 1.0)
            }
        }
        Metric::Errors => match raw.strip_suffix('%') {
            Some(n) => (n, 0.01),
            None => (raw, 1.0),
        },
        Metric::Rate | Metric::Count(_) => (raw, 1.0),
    };
    let parsed: f64 = number
        .parse()
        .map_err(|_| format!("`{raw}` is no number this metric takes"))?;
    if !parsed.is_finite() || parsed < 0.0 {
        return Err(format!("`{raw}` must be a finite number, not below 0"));
    }
    Ok(Value::Number(parsed * scale))
}

/// One threshold as the run met it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Judged {
    pub threshold: String,
    /// What the run showed, in the metric's unit; `None` when it has no sample (a latency of a
    /// class no reply had), which fails the threshold.
    pub observed: Option<f64>,
    pub wanted: f64,
    pub held: bool,
}

impl fmt::Display for Judged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let observed = self
            .observed
            .map_or_else(|| "no sample".to_owned(), |v| format!("{v:.3}"));
        write!(
            f,
            "{} {}: observed {observed}",
            if self.held { "PASS" } else { "FAIL" },
            self.threshold
        )
    }
}

impl Threshold {
    /// How the run in `summary` met this threshold.
    pub fn judge(&self, summary: &Summary) -> Judged {
        let stats = &summary.stats;
        let count = |class: ResultClass| {
            stats
                .by_class
                .get(class.as_str())
                .copied()
                .unwrap_or_default() as f64
        };
        let observed = match self.metric {
            Metric::Latency {
                quantile,
                class,
                intended,
            } => {
                let (overall, by_class) = if intended {
                    (&stats.intended_overall, &stats.intended_by_class)
                } else {
                    (&stats.latency_overall, &stats.latency_by_class)
                };
                match class {
                    Some(class) => by_class.get(class.as_str()),
                    None => overall.as_ref(),
                }
                .map(|latency| quantile.of(latency))
            }
            Metric::Errors => stats.error_share(),
            Metric::Rate => Some(stats.responses_per_second),
            Metric::Count(class) => Some(count(class)),
        };
        let wanted = match self.value {
            Value::Number(n) => n,
            Value::Limit => summary.run.limit as f64,
        };
        Judged {
            threshold: self.text.clone(),
            observed,
            wanted,
            held: observed.is_some_and(|o| self.op.holds(o, wanted)),
        }
    }
}

/// Every threshold, judged in order.
pub fn judge_all(thresholds: &[Threshold], summary: &Summary) -> Vec<Judged> {
    thresholds.iter().map(|t| t.judge(summary)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Threshold {
        raw.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_documented_examples_parse() {
        for raw in [
            "p99<50ms",
            "p99[issued]<=25ms",
            "errors<0.1%",
            "issued==limit",
            "rate>5000",
            "p99.9 < 1s",
            "max<=900us",
            "sold_out>=0",
            "intended.p99<100ms",
            "intended.p99.9[issued]<1s",
        ] {
            parse(raw);
        }
    }

    #[test]
    fn units_scale_to_the_metric_unit() {
        assert_eq!(parse("p99<1s").value, Value::Number(1000.0));
        assert_eq!(parse("p99<250us").value, Value::Number(0.25));
        assert_eq!(parse("p99<7").value, Value::Number(7.0));
        assert_eq!(parse("errors<0.1%").value, Value::Number(0.001));
        assert_eq!(parse("errors<0.001").value, Value::Number(0.001));
    }

    #[test]
    fn bad_thresholds_say_what_is_wrong() {
        for (raw, says) in [
            ("p99 50ms", "no comparison"),
            ("p98<50ms", "is no metric"),
            ("p99[winner]<5ms", "`winner` is no metric"),
            ("rate[issued]>5", "only a latency"),
            ("p99<limit", "only a count"),
            ("p99<fast", "no number"),
            ("errors<-1", "not below 0"),
            ("<5", "no metric"),
            ("p99=<5", "no known comparison"),
            ("intended.rate>5", "only a latency"),
        ] {
            let error = raw.parse::<Threshold>().expect_err(raw).to_string();
            assert!(error.contains(says), "{raw}: {error}");
        }
    }

    /// The sample run: 300 replies, 10 issued (limit 10), 290 sold out; latencies from 0.5 ms
    /// up to about 11.6 ms; no errors.
    #[test]
    fn a_run_is_judged_against_its_summary() {
        let summary = crate::report::sample_summary();
        let judged = |raw: &str| parse(raw).judge(&summary);
        for raw in [
            "issued==limit",
            "sold_out==290",
            "errors<0.1%",
            "p50<10ms",
            "max<12ms",
            "p99[issued]<1ms",
        ] {
            assert!(judged(raw).held, "{}", judged(raw));
        }
        for raw in [
            "issued!=limit",
            "p99<1ms",
            "max<11ms",
            "rate<1",
            "p99[issued]<0.5ms",
        ] {
            assert!(!judged(raw).held, "{}", judged(raw));
        }
        // Every request of the sample was due at 0 and sent i ms later: the intended-time
        // figures carry that wait, the service times do not.
        assert!(judged("p99<12ms").held);
        let intended = judged("intended.p99>290ms");
        assert!(intended.held, "{intended}");
        assert!(!judged("intended.p99[issued]<9ms").held);
        // A latency of a class with no reply has no sample, and fails.
        let none = judged("p99[timeout]<1s");
        assert_eq!((none.observed, none.held), (None, false));
        assert_eq!(judged("issued==limit").wanted, 10.0);
    }

    #[test]
    fn comparisons_hold_and_fail_on_the_edges() {
        assert!(Op::Lt.holds(1.0, 2.0) && !Op::Lt.holds(2.0, 2.0));
        assert!(Op::Le.holds(2.0, 2.0) && !Op::Le.holds(2.1, 2.0));
        assert!(Op::Gt.holds(3.0, 2.0) && !Op::Gt.holds(2.0, 2.0));
        assert!(Op::Ge.holds(2.0, 2.0) && !Op::Ge.holds(1.9, 2.0));
        assert!(Op::Eq.holds(2.0, 2.0) && !Op::Eq.holds(1.0, 2.0));
        assert!(Op::Ne.holds(1.0, 2.0) && !Op::Ne.holds(2.0, 2.0));
    }
}
