//! Issuance: what one apply does once the route has parsed it and found its campaign open.
//! Each strategy is one implementation of [`Issuance`], picked once per campaign by
//! [`Issuers::for_campaign`] (the only place that tells the strategies apart). The routes
//! translate an [`Outcome`] or an [`IssuanceError`] to HTTP and do nothing else.
//!
//! # Layout
//! - [`reliable`]: this project's design: admit in the Redis gate, publish and wait for the
//!   broker's ack, resolve what is in doubt, undo what certainly failed.
//! - [`rebuild`]: the reliable design's gate lifecycle: build a campaign's first gate, and
//!   rebuild one after a loss, both from what the stores hold.
//! - [`reconcile`]: releases admissions no event followed (the api died, Redis stalled).
//! - [`traces`]: what the stores hold of a campaign's admissions, for the two above.
//! - [`course`]: the original course's stages, flaws included.

pub mod course;
pub mod rebuild;
pub mod reconcile;
pub mod reliable;
pub mod traces;

use coupon_domain::{Campaign, CampaignId, CampaignState, Seq, Strategy, UserId};
use coupon_store::{StoreError, StoredCampaign};
use futures::future::BoxFuture;

use crate::gate::GateError;

pub use rebuild::{EpochSource, FirstGate};
pub use reliable::Reliable;

/// What an apply came to, for an open campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The win is durable (the broker acknowledged it, or the stage's last step returned).
    Issued(Seq),
    /// Admitted, but the broker has not acknowledged yet: resolved later, never both ways.
    Pending(Seq),
    AlreadyApplied,
    SoldOut,
    /// Before the campaign's window opens.
    NotOpen,
    /// After the campaign's window closed.
    Closed,
}

impl Outcome {
    /// The answer for a campaign outside its window at `now`, `None` inside it.
    pub fn outside_window(campaign: &Campaign, now: time::OffsetDateTime) -> Option<Self> {
        Self::outside(campaign.state_at(now))
    }

    /// The answer for a campaign in `state`, `None` while it is open.
    pub fn outside(state: CampaignState) -> Option<Self> {
        match state {
            CampaignState::NotOpen => Some(Self::NotOpen),
            CampaignState::Closed => Some(Self::Closed),
            CampaignState::Open => None,
        }
    }
}

/// A campaign's live numbers, for `GET /campaigns/{id}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Winners so far: the gate's, or a course stage's counter (its rows, for the naive stage).
    pub issued: u64,
    /// Coupon rows written.
    pub persisted: u64,
    /// Failed events (open ones for the design; every one for a course stage, never retried).
    pub failed_events: u64,
    /// Whether the gate admits (`None` for a strategy without one).
    pub gate_ready: Option<bool>,
}

/// Why an apply (or an admin action) could not be carried out. Each names the dependency that
/// failed; nothing was issued.
#[derive(Debug, thiserror::Error)]
pub enum IssuanceError {
    #[error("redis is unavailable")]
    Gate(#[from] GateError),
    /// The gate script was sent but no answer came: it may have taken a slot. Never a refusal.
    #[error("redis did not answer the gate in time")]
    AdmitInDoubt(#[source] GateError),
    #[error("redis is unavailable")]
    Redis(#[from] redis::RedisError),
    #[error("mysql is unavailable")]
    Store(#[from] StoreError),
    #[error("kafka is unavailable")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error(
        "redis is unavailable: the gate of campaign {0} is being rebuilt after redis lost its state"
    )]
    GateRebuilding(CampaignId),
    #[error(
        "campaign `{campaign}` runs the course's `{strategy}` stage, which has no gate to rebuild"
    )]
    NoGate {
        campaign: CampaignId,
        strategy: Strategy,
    },
    #[error("kafka is unavailable")]
    Scan(#[source] anyhow::Error),
    #[error("internal error")]
    Internal(#[from] tokio::task::JoinError),
}

impl IssuanceError {
    /// The dependency to name in a 503, when one failed.
    pub fn dependency(&self) -> Option<&'static str> {
        match self {
            Self::Gate(_) | Self::AdmitInDoubt(_) | Self::Redis(_) | Self::GateRebuilding(_) => {
                Some("redis")
            }
            Self::Store(_) => Some("mysql"),
            Self::Kafka(_) | Self::Scan(_) => Some("kafka"),
            Self::NoGate { .. } | Self::Internal(_) => None,
        }
    }
}

/// One way of issuing coupons.
pub trait Issuance: Send + Sync + std::fmt::Debug {
    /// One apply by `user` to `campaign`, at `now` by this api's clock. The window is checked
    /// here, by the strategy: the design asks the gate's clock, the course's stages this one.
    fn apply<'a>(
        &'a self,
        campaign: &'a Campaign,
        user: UserId,
        now: time::OffsetDateTime,
    ) -> BoxFuture<'a, Result<Outcome, IssuanceError>>;

    /// The campaign's live numbers.
    fn counts<'a>(&'a self, campaign: &'a Campaign)
    -> BoxFuture<'a, Result<Counts, IssuanceError>>;

    /// Makes a new (or, at startup, every) campaign ready to admit.
    fn prepare<'a>(
        &'a self,
        stored: &'a StoredCampaign,
    ) -> BoxFuture<'a, Result<(), IssuanceError>>;

    /// Rebuilds the campaign's gate from MySQL and Kafka (the admin endpoint).
    fn rebuild_gate<'a>(
        &'a self,
        campaign: &'a Campaign,
    ) -> BoxFuture<'a, Result<(), IssuanceError>>;
}

/// Every strategy's implementation, built once at startup.
#[derive(Debug, Clone)]
pub struct Issuers {
    pub reliable: Reliable,
    course: course::Stages,
}

impl Issuers {
    pub fn new(reliable: Reliable, course: course::Stages) -> Self {
        Self { reliable, course }
    }

    /// The implementation of the campaign's strategy.
    pub fn for_campaign(&self, campaign: &Campaign) -> &dyn Issuance {
        self.for_strategy(campaign.strategy)
    }

    pub fn for_strategy(&self, strategy: Strategy) -> &dyn Issuance {
        match strategy {
            Strategy::Reliable => &self.reliable,
            Strategy::Naive => &self.course.naive,
            Strategy::RedisCounter => &self.course.redis_counter,
            Strategy::Kafka => &self.course.kafka,
            Strategy::PerUser => &self.course.per_user,
        }
    }

    /// A graceful stop's last steps: waits up to `grace` for the admissions in doubt, then for
    /// every queued event of every producer.
    pub async fn finish(&self, grace: std::time::Duration) {
        let left = self.reliable.finish_in_doubt(grace).await;
        if left > 0 {
            tracing::error!(left, grace = ?grace, "stopping with admissions still in doubt; their slots stay held until the reconciler releases them");
        }
        self.flush(std::time::Duration::from_secs(10)).await;
    }

    /// Waits for every queued event of every producer.
    pub async fn flush(&self, timeout: std::time::Duration) {
        self.reliable.flush(timeout).await;
        self.course.flush(timeout).await;
    }
}
