//! The bench's table: each goal of the performance issue as a figure, its anchor measured in
//! the same run, their ratio and the goal; with several runs, the median and the spread.

use serde::Serialize;

use crate::measure::Figures;

/// Which way a goal points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Bound {
    AtLeast,
    AtMost,
}

/// One row: `value` (over `anchor` when there is one) held to `goal`.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub what: &'static str,
    pub unit: &'static str,
    pub value: f64,
    pub anchor_name: Option<&'static str>,
    pub anchor: Option<f64>,
    pub bound: Bound,
    pub goal: f64,
}

impl Row {
    /// What the goal is held against: the ratio to the anchor, or the value itself.
    pub fn judged(&self) -> f64 {
        match self.anchor {
            Some(anchor) if anchor > 0.0 => self.value / anchor,
            Some(_) => f64::NAN,
            None => self.value,
        }
    }

    pub fn met(&self) -> bool {
        let judged = self.judged();
        match self.bound {
            Bound::AtLeast => judged >= self.goal,
            Bound::AtMost => judged <= self.goal,
        }
    }
}

/// The goals, from one run's figures.
pub fn rows(f: &Figures) -> Vec<Row> {
    let ratio = |what, unit, value, anchor_name, anchor, bound, goal| Row {
        what,
        unit,
        value,
        anchor_name: Some(anchor_name),
        anchor: Some(anchor),
        bound,
        goal,
    };
    let plain = |what, unit, value, bound, goal| Row {
        what,
        unit,
        value,
        anchor_name: None,
        anchor: None,
        bound,
        goal,
    };
    vec![
        ratio(
            "10k burst on a running api: p99",
            "ms",
            f.api_burst_p99_ms,
            "the bare reference's p99, same loadgen",
            f.reference_burst_p99_ms,
            Bound::AtMost,
            3.0,
        ),
        plain(
            "10k burst on a running api: winners' p99",
            "ms",
            f.api_burst_winners_p99_ms,
            Bound::AtMost,
            25.0,
        ),
        plain(
            "10k burst started cold (as scripts/demo): p99",
            "ms",
            f.cold_burst_p99_ms,
            Bound::AtMost,
            50.0,
        ),
        ratio(
            "sold-out apply rate (wrk)",
            "req/s",
            f.api_sold_out_rate,
            "the bare reference's rate",
            f.reference_sold_out_rate,
            Bound::AtLeast,
            0.9,
        ),
        ratio(
            "every-apply-wins rate (wrk, each waits for its Kafka ack)",
            "req/s",
            f.api_every_win_rate,
            "the gate script's rate for winners (redis-benchmark)",
            f.gate_script_winners_rate,
            Bound::AtLeast,
            0.35,
        ),
        ratio(
            "loadgen rate, sold-out endpoint, 256 users",
            "resp/s",
            f.loadgen_rate,
            "wrk, 256 connections",
            f.wrk_rate,
            Bound::AtLeast,
            0.8,
        ),
        plain(
            "consumer, a 100,000-coupon campaign, from its start",
            "rows/s",
            f.consumer_rate_with_start,
            Bound::AtLeast,
            60_000.0,
        ),
        // At most one read per second of the miss window: a flood of `s` seconds touches at
        // most s + 1 windows.
        ratio(
            "api MySQL reads during a flood of applies to an unknown campaign id",
            "reads",
            f.unknown_campaign_reads as f64,
            "seconds of the flood, plus one",
            f64::from(f.unknown_campaign_flood_seconds) + 1.0,
            Bound::AtMost,
            1.0,
        ),
    ]
}

/// min, median, max.
fn spread(values: &mut [f64]) -> (f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    let median = values[values.len() / 2];
    (values[0], median, values[values.len() - 1])
}

fn number(value: f64) -> String {
    if value.is_nan() {
        "n/a".to_owned()
    } else if value.abs() >= 100.0 {
        format!("{value:.0}")
    } else if value.abs() >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

fn with_spread(values: &mut [f64]) -> String {
    let (min, median, max) = spread(values);
    if values.len() == 1 {
        number(median)
    } else {
        format!("{} ({}–{})", number(median), number(min), number(max))
    }
}

/// The markdown table over every run: each figure's median with its range, and how many runs
/// met the goal (each run judged on its own ratio).
pub fn markdown(runs: &[Figures]) -> String {
    let per_run: Vec<Vec<Row>> = runs.iter().map(rows).collect();
    let mut out = String::from(
        "| goal | value | anchor (same run) | ratio | goal | met |\n|---|---|---|---|---|---|\n",
    );
    for (index, first) in per_run[0].iter().enumerate() {
        let column = |pick: &dyn Fn(&Row) -> f64| {
            let mut values: Vec<f64> = per_run.iter().map(|rows| pick(&rows[index])).collect();
            with_spread(&mut values)
        };
        let met = per_run.iter().filter(|rows| rows[index].met()).count();
        let bound = match first.bound {
            Bound::AtLeast => "≥",
            Bound::AtMost => "≤",
        };
        let (anchor, ratio, goal) = match first.anchor_name {
            Some(name) => (
                format!(
                    "{name}: {} {}",
                    column(&|r| r.anchor.unwrap_or_default()),
                    first.unit
                ),
                column(&Row::judged),
                format!("{bound} {}×", number(first.goal)),
            ),
            None => (
                "".to_owned(),
                "".to_owned(),
                format!("{bound} {} {}", number(first.goal), first.unit),
            ),
        };
        out.push_str(&format!(
            "| {} | {} {} | {anchor} | {ratio} | {goal} | {} |\n",
            first.what,
            column(&|r| r.value),
            first.unit,
            if met == runs.len() {
                format!("yes ({met}/{})", runs.len())
            } else {
                format!("**no** ({met}/{} runs)", runs.len())
            },
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures() -> Figures {
        Figures {
            reference_burst_p99_ms: 10.0,
            api_burst_p99_ms: 29.0,
            api_burst_winners_p99_ms: 20.0,
            cold_burst_p99_ms: 40.0,
            reference_sold_out_rate: 100.0,
            api_sold_out_rate: 95.0,
            gate_script_winners_rate: 100.0,
            api_every_win_rate: 40.0,
            wrk_rate: 100.0,
            loadgen_rate: 85.0,
            consumer_rate_with_start: 70_000.0,
            unknown_campaign_reads: 4,
            unknown_campaign_flood_seconds: 3,
            ..Figures::default()
        }
    }

    #[test]
    fn every_goal_is_met_by_figures_that_meet_it() {
        for row in rows(&figures()) {
            assert!(row.met(), "{} judged {}", row.what, row.judged());
        }
    }

    #[test]
    fn a_figure_past_its_goal_is_not_met() {
        // The control: each figure moved past its bound in turn fails its row and no other.
        let breaks: [fn(&mut Figures); 8] = [
            |f| f.api_burst_p99_ms = 31.0,
            |f| f.api_burst_winners_p99_ms = 26.0,
            |f| f.cold_burst_p99_ms = 51.0,
            |f| f.api_sold_out_rate = 89.0,
            |f| f.api_every_win_rate = 34.0,
            |f| f.loadgen_rate = 79.0,
            |f| f.consumer_rate_with_start = 59_000.0,
            |f| f.unknown_campaign_reads = 5,
        ];
        for (index, brk) in breaks.iter().enumerate() {
            let mut broken = figures();
            brk(&mut broken);
            let unmet: Vec<usize> = rows(&broken)
                .iter()
                .enumerate()
                .filter(|(_, row)| !row.met())
                .map(|(i, _)| i)
                .collect();
            assert_eq!(unmet, vec![index]);
        }
    }

    #[test]
    fn a_zero_anchor_meets_nothing() {
        let mut broken = figures();
        broken.reference_sold_out_rate = 0.0;
        assert!(!rows(&broken)[3].met());
    }

    #[test]
    fn the_table_gives_median_and_range_over_runs() {
        let mut runs = vec![figures(), figures(), figures()];
        runs[0].api_burst_p99_ms = 20.0;
        runs[2].api_burst_p99_ms = 40.0;
        let table = markdown(&runs);
        let line = table
            .lines()
            .find(|l| l.contains("p99 |") || l.contains("running api: p99"))
            .expect("row");
        assert!(line.contains("29.0 (20.0–40.0) ms"), "{line}");
        assert!(line.contains("**no** (2/3 runs)"), "{line}");
    }
}
