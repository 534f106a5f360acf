//! The coupon issuance domain, shared by every crate of the project. No I/O lives here.
//!
//! # Layout
//! - [`ids`]: `UserId` and `CampaignId`, parsed once at the edge and trusted after.
//! - [`campaign`]: a campaign, its coupon limit and its optional window.
//! - [`event`]: `CouponIssued`, the one Kafka event the api produces and the consumer reads.
//! - [`fence`]: what a gate rebuild or the reconciler took back, and whether an event counts.
//! - [`gate`]: what the Redis gate decides for one apply, and its Redis keys.
//! - [`history`]: the loadgen's per-request record, which the verifier reads.
//! - [`duration`]: durations as typed on a command line (`250ms`, `5s`, `2m`).
//! - [`strategy`]: how a campaign issues coupons: the course's stages or this project's design.
//! - [`wire`]: the JSON the project's programs read back from each other: the api's bodies,
//!   and loadgen's run summary. Shared by the api, loadgen, the verifier, the gate and tests.

pub mod campaign;
pub mod duration;
pub mod event;
pub mod fence;
pub mod gate;
pub mod history;
pub mod ids;
pub mod strategy;
pub mod wire;

pub use campaign::{Campaign, CampaignState, CouponLimit};
pub use event::CouponIssued;
pub use gate::{GateKeys, GateOutcome, Seq};
pub use ids::{CampaignId, UserId};
pub use strategy::Strategy;
