//! A campaign: how many coupons it gives and when it accepts applications.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::{ids::CampaignId, strategy::Strategy};

/// How many coupons a campaign gives: 1 to [`CouponLimit::MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct CouponLimit(u32);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("limit must be between 1 and {max}, got {got}", max = CouponLimit::MAX)]
pub struct CouponLimitError {
    pub got: u64,
}

impl CouponLimit {
    /// Large enough for any real first-come campaign, small enough for one Redis set.
    pub const MAX: u32 = 10_000_000;
    /// The original course's hard-coded limit.
    pub const DEFAULT: CouponLimit = CouponLimit(100);

    pub fn parse(raw: u64) -> Result<Self, CouponLimitError> {
        match u32::try_from(raw) {
            Ok(limit) if (1..=Self::MAX).contains(&limit) => Ok(Self(limit)),
            _ => Err(CouponLimitError { got: raw }),
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

impl std::fmt::Display for CouponLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl TryFrom<u32> for CouponLimit {
    type Error = CouponLimitError;
    fn try_from(raw: u32) -> Result<Self, Self::Error> {
        Self::parse(u64::from(raw))
    }
}

impl From<CouponLimit> for u32 {
    fn from(limit: CouponLimit) -> u32 {
        limit.0
    }
}

/// Where a campaign stands at a given moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CampaignState {
    NotOpen,
    Open,
    Closed,
}

impl CampaignState {
    /// The state's name, as the api's JSON writes it (a test keeps the two the same).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotOpen => "not_open",
            Self::Open => "open",
            Self::Closed => "closed",
        }
    }
}

impl std::fmt::Display for CampaignState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Campaign {
    pub id: CampaignId,
    pub limit: CouponLimit,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub opens_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub closes_at: Option<OffsetDateTime>,
    /// How it issues; [`Strategy::Reliable`] unless created as one of the course's stages.
    #[serde(default)]
    pub strategy: Strategy,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("closes_at must be after opens_at")]
pub struct WindowError;

impl Campaign {
    pub fn new(
        id: CampaignId,
        limit: CouponLimit,
        opens_at: Option<OffsetDateTime>,
        closes_at: Option<OffsetDateTime>,
    ) -> Result<Self, WindowError> {
        if let (Some(opens), Some(closes)) = (opens_at, closes_at)
            && closes <= opens
        {
            return Err(WindowError);
        }
        Ok(Self {
            id,
            limit,
            opens_at,
            closes_at,
            strategy: Strategy::Reliable,
        })
    }

    pub fn with_strategy(self, strategy: Strategy) -> Self {
        Self { strategy, ..self }
    }

    /// The window's ends in milliseconds since the Unix epoch, as the gate script compares
    /// them with Redis `TIME`.
    pub fn window_ms(&self) -> (Option<i64>, Option<i64>) {
        let ms = |at: OffsetDateTime| {
            i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
        };
        (self.opens_at.map(ms), self.closes_at.map(ms))
    }

    /// The window is half-open: `[opens_at, closes_at)`.
    pub fn state_at(&self, now: OffsetDateTime) -> CampaignState {
        match (self.opens_at, self.closes_at) {
            (Some(opens), _) if now < opens => CampaignState::NotOpen,
            (_, Some(closes)) if now >= closes => CampaignState::Closed,
            _ => CampaignState::Open,
        }
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn a_state_displays_as_its_json_name() {
        for state in [
            CampaignState::NotOpen,
            CampaignState::Open,
            CampaignState::Closed,
        ] {
            let json = serde_json::to_string(&state).expect("serialises");
            assert_eq!(json, format!("\"{state}\""));
        }
    }

    fn campaign(opens: Option<OffsetDateTime>, closes: Option<OffsetDateTime>) -> Campaign {
        let id = CampaignId::parse("c").expect("valid id");
        Campaign::new(id, CouponLimit::DEFAULT, opens, closes).expect("valid window")
    }

    #[test]
    fn limit_bounds_are_enforced() {
        assert!(CouponLimit::parse(0).is_err());
        assert!(CouponLimit::parse(u64::from(CouponLimit::MAX) + 1).is_err());
        assert!(CouponLimit::parse(u64::MAX).is_err());
        assert_eq!(CouponLimit::parse(1).map(CouponLimit::get), Ok(1));
    }

    #[test]
    fn window_is_half_open() {
        let opens = datetime!(2026-01-01 10:00 UTC);
        let closes = datetime!(2026-01-01 11:00 UTC);
        let c = campaign(Some(opens), Some(closes));
        assert_eq!(
            c.state_at(datetime!(2026-01-01 09:59:59 UTC)),
            CampaignState::NotOpen
        );
        assert_eq!(c.state_at(opens), CampaignState::Open);
        assert_eq!(c.state_at(closes), CampaignState::Closed);
        assert_eq!(campaign(None, None).state_at(closes), CampaignState::Open);
    }

    #[test]
    fn window_must_not_be_empty() {
        let t = datetime!(2026-01-01 10:00 UTC);
        let id = CampaignId::parse("c").expect("valid id");
        assert_eq!(
            Campaign::new(id, CouponLimit::DEFAULT, Some(t), Some(t)),
            Err(WindowError)
        );
    }
}
