//! Negative controls for the fault matrix: one fix of the design switched off on purpose in the
//! api or the consumer loadgen starts (always on stores of the run's own), so that the round of
//! the fault that fix answers must fail, naming the invariant. Only a loadgen built with the `controls` feature (the CI gate's build)
//! takes `--control`; an ordinary build refuses it, and its pipeline never reads the switch.

use std::fmt;

use anyhow::Context;
use clap::ValueEnum;

use crate::nemesis::FaultKind;

/// How loadgen tells the api and the consumer it starts which control they run.
pub const ENV: &str = "LOADGEN_CONTROL";

/// Whether this build takes `--control` (built with `--features controls`).
pub const BUILT_IN: bool = cfg!(feature = "controls");

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Control {
    /// `redis-pause` with no resolution of an apply answered 504 `unknown`: a slot its stalled
    /// script took stays held with no event until the reconciler, after the sale.
    NoUnknownResolution,
    /// `redis-rollback` with no restart check: the gate trusts a Redis that came back from an
    /// older snapshot and hands out again the slots it forgot.
    NoRestartCheck,
    /// `redis-flush` with no rebuild: the lost gate starts again empty and sells its slots again.
    NoRebuild,
    /// `stale-state` with the campaign's first gate started empty, as this project once did:
    /// the gate the earlier incarnation left in Redis is taken for the new campaign's.
    EmptyFirstGate,
    /// `clock-skew` with the window checked on each api's own clock before the gate, as this
    /// project once did: the api whose clock runs fast admits users before the sale opens.
    ApiClockWindow,
    /// `poison` with no cap on what the consumer keeps of a failed record: the 70 KB record
    /// cannot be captured, and its partition stops behind it.
    NoPoisonGuard,
}

impl Control {
    /// The fault whose round this control breaks.
    pub fn fault(self) -> FaultKind {
        match self {
            Self::NoUnknownResolution => FaultKind::RedisPause,
            Self::NoRestartCheck => FaultKind::RedisRollback,
            Self::NoRebuild => FaultKind::RedisFlush,
            Self::EmptyFirstGate => FaultKind::StaleState,
            Self::ApiClockWindow => FaultKind::ClockSkew,
            Self::NoPoisonGuard => FaultKind::Poison,
        }
    }

    /// Switches the fix off in the api's settings, if the api holds it.
    pub fn break_api(self, settings: &mut coupon_api::Settings) {
        match self {
            Self::NoUnknownResolution => settings.resolve_unknown = false,
            Self::NoRestartCheck => settings.restart_check = false,
            Self::NoRebuild => settings.rebuild_lost = false,
            Self::EmptyFirstGate => settings.first_gate = coupon_api::issuance::FirstGate::Empty,
            Self::ApiClockWindow => {
                settings.window_check = coupon_api::configuration::WindowCheck::ApiClock;
            }
            Self::NoPoisonGuard => {}
        }
    }

    /// Switches the fix off in the consumer's settings, if the consumer holds it.
    pub fn break_consumer(self, settings: &mut coupon_consumer::Settings) {
        if self == Self::NoPoisonGuard {
            settings.failed_payload_kept = usize::MAX;
        }
    }

    /// The control a pipeline process was started with: never one in a build without the
    /// feature, whatever its environment says.
    pub fn of_this_process() -> anyhow::Result<Option<Self>> {
        if !BUILT_IN {
            return Ok(None);
        }
        match std::env::var(ENV) {
            Ok(name) if !name.is_empty() => Self::from_str(&name, false)
                .map(Some)
                .map_err(|error| anyhow::anyhow!(error))
                .with_context(|| format!("{ENV}={name}")),
            _ => Ok(None),
        }
    }
}

impl fmt::Display for Control {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = self
            .to_possible_value()
            .map(|v| v.get_name().to_owned())
            .unwrap_or_default();
        f.write_str(&value)
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn each_control_breaks_a_fix_of_its_fault() {
        for control in Control::value_variants() {
            let mut api = coupon_api::Settings::try_parse_from(["coupon-api"]).expect("parses");
            let mut consumer =
                coupon_consumer::Settings::try_parse_from(["coupon-consumer"]).expect("parses");
            let consumer_kept = consumer.failed_payload_kept;
            let fixes = |api: &coupon_api::Settings| {
                (
                    api.resolve_unknown,
                    api.restart_check,
                    api.rebuild_lost,
                    api.first_gate,
                    api.window_check,
                )
            };
            let fixed = fixes(&api);
            control.break_api(&mut api);
            control.break_consumer(&mut consumer);
            let changed = fixes(&api) != fixed || consumer.failed_payload_kept != consumer_kept;
            assert!(changed, "{control} switched nothing off");
            assert_eq!(
                Control::from_str(&control.to_string(), false),
                Ok(*control),
                "{control} reads back"
            );
        }
    }
}
