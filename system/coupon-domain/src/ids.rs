//! Identifiers, parsed once at the edge (HTTP, Kafka, MySQL) and trusted everywhere after.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A user who applies for a coupon: a positive integer that fits in a `u64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u64", into = "u64")]
pub struct UserId(u64);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserIdError {
    #[error("user_id must be a positive integer, got 0")]
    Zero,
}

impl UserId {
    pub fn parse(raw: u64) -> Result<Self, UserIdError> {
        if raw == 0 {
            return Err(UserIdError::Zero);
        }
        Ok(Self(raw))
    }

    pub fn get(self) -> u64 {
        self.0
    }
}

impl TryFrom<u64> for UserId {
    type Error = UserIdError;
    fn try_from(raw: u64) -> Result<Self, Self::Error> {
        Self::parse(raw)
    }
}

impl From<UserId> for u64 {
    fn from(id: UserId) -> u64 {
        id.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A campaign id: 1 to 64 characters of `a-z`, `0-9`, `-` and `_`.
///
/// The alphabet keeps ids safe inside Redis keys, Kafka keys, URLs and SQL values alike.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CampaignId(String);

pub const CAMPAIGN_ID_MAX_LEN: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CampaignIdError {
    #[error("campaign id must not be empty")]
    Empty,
    #[error("campaign id must be at most {CAMPAIGN_ID_MAX_LEN} characters, got {0}")]
    TooLong(usize),
    #[error("campaign id may only contain a-z, 0-9, '-' and '_', got {0:?}")]
    BadCharacter(char),
}

impl CampaignId {
    pub fn parse(raw: &str) -> Result<Self, CampaignIdError> {
        if raw.is_empty() {
            return Err(CampaignIdError::Empty);
        }
        if raw.len() > CAMPAIGN_ID_MAX_LEN {
            return Err(CampaignIdError::TooLong(raw.len()));
        }
        if let Some(bad) = raw
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '_'))
        {
            return Err(CampaignIdError::BadCharacter(bad));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for CampaignId {
    type Err = CampaignIdError;
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        Self::parse(raw)
    }
}

impl TryFrom<String> for CampaignId {
    type Error = CampaignIdError;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl From<CampaignId> for String {
    fn from(id: CampaignId) -> String {
        id.0
    }
}

impl fmt::Display for CampaignId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_id_zero_is_refused() {
        assert_eq!(UserId::parse(0), Err(UserIdError::Zero));
        assert_eq!(UserId::parse(u64::MAX).map(UserId::get), Ok(u64::MAX));
    }

    #[test]
    fn user_id_deserialises_only_positive_integers() {
        for bad in ["0", "-1", "1.5", "\"7\"", "18446744073709551616", "null"] {
            assert!(
                serde_json::from_str::<UserId>(bad).is_err(),
                "{bad} was accepted"
            );
        }
        assert_eq!(
            serde_json::from_str::<UserId>("42").map(UserId::get).ok(),
            Some(42)
        );
    }

    #[test]
    fn campaign_id_accepts_the_safe_alphabet_only() {
        assert!(CampaignId::parse("default").is_ok());
        assert!(CampaignId::parse("run-2026_11").is_ok());
        assert_eq!(CampaignId::parse(""), Err(CampaignIdError::Empty));
        assert_eq!(
            CampaignId::parse("A"),
            Err(CampaignIdError::BadCharacter('A'))
        );
        assert_eq!(
            CampaignId::parse("a{b}"),
            Err(CampaignIdError::BadCharacter('{'))
        );
        assert_eq!(
            CampaignId::parse(&"a".repeat(65)),
            Err(CampaignIdError::TooLong(65))
        );
    }
}
