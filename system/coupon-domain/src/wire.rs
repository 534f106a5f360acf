//! The JSON the project's programs read back from each other, as serde types: the api's bodies
//! (written by the api, read by loadgen, the verifier and the tests) and loadgen's run summary
//! (read by the verifier and the gate). A field or a result name is written here once.

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

/// Every error reply's body: what was wrong, and for the apply route's refusals the result
/// name loadgen and the verifier classify it by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<ResultClass>,
    pub error: String,
}

/// The body of `POST /campaigns/{id}/apply`, as a client sends it. The api parses `user_id`
/// into a [`UserId`] and refuses anything else with a 4xx.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyRequest {
    pub user_id: u64,
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

impl NewCampaign {
    /// A campaign open from now on, with no closing time.
    pub fn open_now(id: CampaignId, limit: CouponLimit, strategy: Strategy) -> Self {
        Self {
            id,
            limit,
            opens_at: None,
            closes_at: None,
            strategy,
        }
    }
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

/// `GET /readyz`: whether the api can serve, and each dependency's check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Readiness {
    pub status: ReadinessStatus,
    /// The dependencies that are down, by name (`redis`, `mysql`, `kafka`).
    pub down: Vec<String>,
    pub checks: std::collections::BTreeMap<String, DependencyCheck>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadinessStatus {
    Ready,
    Unavailable,
}

/// One dependency's readiness check: where it is (credentials redacted) and whether it answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DependencyCheck {
    pub address: String,
    pub status: DependencyStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DependencyStatus {
    Up,
    Down,
}

/// The reply to `POST /admin/campaigns/{id}/rebuild-gate`: the rebuild runs in the background.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RebuildStarted {
    pub result: GateReadiness,
    pub campaign_id: CampaignId,
}

/// What a loadgen run was: the part of `summary.json` the verifier and the gate read (loadgen
/// writes its statistics beside these fields, and readers ignore them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub run_id: String,
    pub campaign_id: CampaignId,
    /// Whether this run created the campaign (so every row must come from this run).
    pub campaign_created: bool,
    /// How the campaign issued: a course stage, or this project's design.
    pub strategy: Strategy,
    /// Faults injected during the run (`--fault`).
    pub faults: Vec<String>,
    /// How many times the consumer loadgen started died and was restarted; `None` when loadgen
    /// did not start the consumer.
    pub consumer_restarts: Option<u32>,
    pub limit: u64,
    pub host: String,
    pub users: usize,
    pub repeat: usize,
    pub hot_users: f64,
    pub seed: u64,
    pub launch_rate_per_second: usize,
    pub started_at: String,
    /// Seconds until every issued coupon had its row, when loadgen waited for it.
    pub drain_seconds: Option<f64>,
    /// The campaign as the api reported it after the run.
    pub campaign_after: CampaignView,
    /// Stores of the run's own (the sandbox a Redis or Kafka fault runs in), which loadgen
    /// verified the run against and then stopped; `None` on the configured stack.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_stores: Option<PrivateStores>,
}

/// Where a sandboxed run's stores were while they ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrivateStores {
    pub redis_url: String,
    pub kafka_brokers: String,
    /// Without its password.
    pub database_url: String,
}

impl RunSummary {
    /// The faults as one phrase: `none`, or their names joined by commas.
    pub fn faults_text(&self) -> String {
        if self.faults.is_empty() {
            "none".to_owned()
        } else {
            self.faults.join(", ")
        }
    }
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
