//! When each user arrives: all within about a second (the burst), at a steady `--rate` (the
//! open model), or along `--stages`, a profile of rates ramping from one to the next (k6's
//! ramping arrival rate). A user's arrival is its first request's intended send time.
//!
//! `--stages 10s:1000/s,30s:5000/s,10s:0/s` ramps from 0 to 1,000 users/s over 10 s, from there
//! to 5,000/s over 30 s, and down to 0 over the last 10 s. A stage ramps linearly from the rate
//! the previous one ended at (0 at the start): to hold a rate, repeat it (`10s:1000/s,
//! 30s:1000/s`); to start at a rate at once, begin with `0s:1000/s`.

use std::{fmt, str::FromStr, time::Duration};

/// One stage: over `duration`, the arrival rate moves linearly to `rate` users/s.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stage {
    pub duration: Duration,
    pub rate: f64,
}

/// A parsed `--stages` profile, with where each stage starts (s, users so far).
#[derive(Debug, Clone, PartialEq)]
pub struct Stages {
    text: String,
    stages: Vec<Stage>,
}

/// The most arrivals a profile may bring: every user is a goose user, planned before the run.
pub const MAX_ARRIVALS: usize = 2_000_000;

impl FromStr for Stages {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let fail =
            |why: String| format!("--stages `{raw}`: {why} (e.g. `10s:1000/s,30s:5000/s,10s:0/s`)");
        let mut stages = Vec::new();
        for part in raw.split(',').map(str::trim) {
            let (duration, rate) = part
                .split_once(':')
                .ok_or_else(|| fail(format!("stage `{part}` is not DURATION:RATE/s")))?;
            let duration = coupon_domain::duration::parse(duration).map_err(&fail)?;
            let rate = rate.trim().strip_suffix("/s").unwrap_or(rate.trim());
            let rate: f64 = rate
                .parse()
                .map_err(|_| fail(format!("`{rate}` is no rate of users per second")))?;
            if !rate.is_finite() || rate < 0.0 {
                return Err(fail(format!(
                    "rate `{rate}` must be finite and not below 0"
                )));
            }
            stages.push(Stage { duration, rate });
        }
        let parsed = Self {
            text: raw.trim().to_owned(),
            stages,
        };
        match parsed.arrivals() {
            0 => Err(fail("no user would arrive".to_owned())),
            n if n > MAX_ARRIVALS => Err(fail(format!(
                "{n} users would arrive, above the {MAX_ARRIVALS} one run holds"
            ))),
            _ => Ok(parsed),
        }
    }
}

impl fmt::Display for Stages {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Stages {
    /// Each stage as (its start rate, its end rate, its length in s).
    fn ramps(&self) -> impl Iterator<Item = (f64, f64, f64)> + '_ {
        let starts = std::iter::once(0.0).chain(self.stages.iter().map(|s| s.rate));
        starts
            .zip(&self.stages)
            .map(|(from, stage)| (from, stage.rate, stage.duration.as_secs_f64()))
    }

    /// Users that arrive over the whole profile.
    pub fn arrivals(&self) -> usize {
        let total: f64 = self
            .ramps()
            .map(|(from, to, seconds)| (from + to) / 2.0 * seconds)
            .sum();
        // A hair of tolerance: 10s at 1000/s is 10,000 users, not 9,999.
        (total + 1e-6).floor() as usize
    }

    /// The highest rate the profile reaches, users/s.
    pub fn peak_rate(&self) -> f64 {
        self.stages.iter().map(|s| s.rate).fold(0.0, f64::max)
    }

    /// When user `index` (from 0) arrives, in s from the start: where the profile's running
    /// count of arrivals reaches `index`.
    pub fn arrival_s(&self, index: usize) -> f64 {
        let mut wanted = index as f64;
        let mut at = 0.0;
        for (from, to, seconds) in self.ramps() {
            let here = (from + to) / 2.0 * seconds;
            if wanted <= here && here > 0.0 {
                return at + time_to_reach(from, to, seconds, wanted);
            }
            wanted -= here;
            at += seconds;
        }
        at
    }
}

/// Within a ramp from `from` to `to` users/s over `seconds`, the time at which `count` users
/// have arrived: the root of `a·t² + from·t = count` with `a = (to − from)/(2·seconds)`, as
/// `2·count / (from + √(from² + 4·a·count))`, which stays exact when `a` is 0 or tiny.
fn time_to_reach(from: f64, to: f64, seconds: f64, count: f64) -> f64 {
    let a = (to - from) / (2.0 * seconds);
    let root = (from * from + 4.0 * a * count).max(0.0).sqrt();
    if count <= 0.0 || from + root <= 0.0 {
        return 0.0;
    }
    (2.0 * count / (from + root)).clamp(0.0, seconds)
}

/// When users arrive.
#[derive(Debug, Clone)]
pub enum Arrivals {
    /// Evenly, `interval_us` apart (the burst, or `--rate`).
    Even { interval_us: f64 },
    /// Along a `--stages` profile.
    Staged(Stages),
}

impl Arrivals {
    /// When user `index` arrives, µs from the start.
    pub fn arrival_us(&self, index: usize) -> i64 {
        match self {
            Self::Even { interval_us } => (index as f64 * interval_us) as i64,
            Self::Staged(stages) => (stages.arrival_s(index) * 1e6) as i64,
        }
    }

    /// Whether goose launches users ahead of their arrival, so that each waits for it: a
    /// profile's users are launched at its peak rate, which is never behind its schedule.
    pub fn launched_early(&self) -> bool {
        matches!(self, Self::Staged(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_profile_parses_counts_its_users_and_places_each() {
        let stages: Stages = "10s:1000/s, 30s:5000/s,10s:0/s".parse().expect("parses");
        // 0→1000 over 10 s, 1000→5000 over 30 s, 5000→0 over 10 s.
        assert_eq!(stages.arrivals(), 5_000 + 90_000 + 25_000);
        assert_eq!(stages.peak_rate(), 5000.0);
        // Halfway through the first ramp a quarter of its 5,000 users have arrived.
        assert!((stages.arrival_s(1_250) - 5.0).abs() < 1e-6);
        assert!((stages.arrival_s(5_000) - 10.0).abs() < 1e-6);
        assert!((stages.arrival_s(95_000) - 40.0).abs() < 1e-6);
        assert!(stages.arrival_s(119_999) < 50.0);
        // Arrivals never go back in time.
        let times: Vec<f64> = (0..120_000)
            .step_by(97)
            .map(|i| stages.arrival_s(i))
            .collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]));

        let held: Stages = "0s:200/s,5s:200/s".parse().expect("parses");
        assert_eq!(held.arrivals(), 1_000);
        assert!((held.arrival_s(100) - 0.5).abs() < 1e-9);
    }

    #[test]
    fn a_profile_that_brings_nobody_or_is_malformed_is_refused() {
        for bad in [
            "",
            "10s",
            "10s:fast",
            "10s:-5/s",
            "5h:10/s",
            "10s:0/s",
            "1000s:10000/s",
        ] {
            let error = bad.parse::<Stages>().expect_err(bad);
            assert!(error.contains("--stages"), "{error}");
        }
    }

    #[test]
    fn even_arrivals_are_spaced_by_the_interval() {
        let even = Arrivals::Even { interval_us: 250.0 };
        assert_eq!(even.arrival_us(4), 1_000);
        assert!(!even.launched_early());
    }
}
