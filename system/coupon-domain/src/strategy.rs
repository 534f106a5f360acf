//! How a campaign issues coupons: the course's stages, kept runnable to show their flaws, or
//! this project's design. Chosen per campaign when it is created.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

/// One issuance strategy. The first four are the original course's stages, flaws included;
/// [`Strategy::Reliable`] is this project's pipeline and the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Strategy {
    /// Stage 1: `SELECT COUNT(*)`, then `INSERT` when `count > limit` is false.
    Naive,
    /// Stage 2: `INCR` a Redis counter, then a direct `INSERT`.
    RedisCounter,
    /// Stage 3: `INCR`, then a fire-and-forget Kafka send; a consumer inserts.
    Kafka,
    /// Stages 4 and 5: `SADD` the user first, then `INCR` and send; the consumer captures a
    /// failed insert as a `FailedEvent` that nothing retries. The course's final design.
    PerUser,
    /// This project: one atomic Redis gate, an acknowledged idempotent publish, constrained
    /// idempotent writes, captured failures that are retried.
    #[default]
    Reliable,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown strategy `{0}`, expected one of: naive, redis-counter, kafka, per-user, reliable")]
pub struct StrategyError(pub String);

impl Strategy {
    /// Every strategy, in the course's order, this project's last.
    pub const ALL: [Strategy; 5] = [
        Self::Naive,
        Self::RedisCounter,
        Self::Kafka,
        Self::PerUser,
        Self::Reliable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Naive => "naive",
            Self::RedisCounter => "redis-counter",
            Self::Kafka => "kafka",
            Self::PerUser => "per-user",
            Self::Reliable => "reliable",
        }
    }

    /// True for this project's design: a Redis gate hands out slots, and every row carries its
    /// slot and its Kafka source. The course's stages write slotless rows to their own tables.
    pub fn has_gate(self) -> bool {
        self == Self::Reliable
    }

    /// True when winners travel through Kafka to a consumer (and the verifier must drain it).
    pub fn uses_kafka(self) -> bool {
        matches!(self, Self::Kafka | Self::PerUser | Self::Reliable)
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Strategy {
    type Err = StrategyError;
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == raw)
            .ok_or_else(|| StrategyError(raw.to_owned()))
    }
}

impl Serialize for Strategy {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Strategy {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        raw.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        for strategy in Strategy::ALL {
            assert_eq!(strategy.as_str().parse(), Ok(strategy));
            let json = serde_json::to_string(&strategy).expect("serialises");
            assert_eq!(serde_json::from_str::<Strategy>(&json).ok(), Some(strategy));
        }
        assert_eq!(
            "Naive".parse::<Strategy>(),
            Err(StrategyError("Naive".into()))
        );
        assert_eq!(Strategy::default(), Strategy::Reliable);
    }

    #[test]
    fn only_the_first_two_stages_skip_kafka() {
        let without: Vec<_> = Strategy::ALL
            .into_iter()
            .filter(|s| !s.uses_kafka())
            .collect();
        assert_eq!(without, [Strategy::Naive, Strategy::RedisCounter]);
    }
}
