//! The api's JSON bodies, as serde types shared by the api (which writes them), loadgen and the
//! verifier (which read them). A field or a result name is written here once.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::{CampaignId, CampaignState, CouponLimit, Strategy, UserId, history::ResultClass};

/// The body of every reply to `POST /campaigns/{id}/apply`. `result` is always present; the
/// campaign, the user and the slot come with `issued` and `pending`; `error` with a refusal of
/// the request itself (4xx, 503).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyReply {
    pub result: ResultClass,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign_id: Option<CampaignId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<UserId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ApplyReply {
    /// A reply with only its result.
    pub fn bare(result: ResultClass) -> Self {
        Self {
            result,
            campaign_id: None,
            user_id: None,
            seq: None,
            error: None,
        }
    }
}

/// The body of `POST /admin/campaigns`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCampaign {
    pub id: CampaignId,
    #[serde(default = "default_limit")]
    pub limit: CouponLimit,
    #[serde(
        with = "time::serde::rfc3339::option",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub opens_at: Option<OffsetDateTime>,
    #[serde(
        with = "time::serde::rfc3339::option",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub closes_at: Option<OffsetDateTime>,
    /// One of the course's stages, to watch it fail (docs/stages.md); `reliable` by default.
    #[serde(default)]
    pub strategy: Strategy,
}

fn default_limit() -> CouponLimit {
    CouponLimit::DEFAULT
}

/// A campaign with its live numbers: `GET /campaigns/{id}` and the admin endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignView {
    pub campaign_id: CampaignId,
    pub limit: u64,
    /// Winners so far: the gate's, or a course stage's counter.
    pub issued: u64,
    /// Coupon rows written.
    pub persisted: u64,
    /// Failed events: open ones for the reliable design, every one for a course stage.
    pub failed_events: u64,
    pub remaining: u64,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub opens_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub closes_at: Option<OffsetDateTime>,
    pub state: CampaignState,
    pub strategy: Strategy,
    /// `ready` or `rebuilding`, for a strategy with a gate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<GateReadiness>,
}

/// Whether a campaign's gate admits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GateReadiness {
    Ready,
    Rebuilding,
}

/// `GET /admin/campaigns`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignList {
    pub campaigns: Vec<CampaignView>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_issued_reply_round_trips_and_a_refusal_carries_only_its_result() {
        let issued = ApplyReply {
            result: ResultClass::Issued,
            campaign_id: CampaignId::parse("c").ok(),
            user_id: UserId::parse(7).ok(),
            seq: Some(3),
            error: None,
        };
        let json = serde_json::to_string(&issued).expect("serialises");
        assert_eq!(
            json,
            r#"{"result":"issued","campaign_id":"c","user_id":7,"seq":3}"#
        );
        assert_eq!(serde_json::from_str::<ApplyReply>(&json).ok(), Some(issued));
        let sold_out =
            serde_json::to_string(&ApplyReply::bare(ResultClass::SoldOut)).expect("serialises");
        assert_eq!(sold_out, r#"{"result":"sold_out"}"#);
    }

    #[test]
    fn a_new_campaign_defaults_to_the_reliable_design_and_refuses_unknown_fields() {
        let new: NewCampaign = serde_json::from_str(r#"{"id":"c"}"#).expect("parses");
        assert_eq!(new.strategy, Strategy::Reliable);
        assert_eq!(new.limit, CouponLimit::DEFAULT);
        assert!(serde_json::from_str::<NewCampaign>(r#"{"id":"c","x":1}"#).is_err());
    }
}
