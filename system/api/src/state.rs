//! What every request handler shares: the settings, the strategies' implementations, the
//! store, the campaign cache and the metrics. Built by [`crate::startup`], read by the routes.

use std::sync::Arc;

use coupon_domain::wire::Readiness;
use coupon_store::Store;

use crate::{
    campaigns::CampaignCache, configuration::Settings, issuance::Issuers, metrics::Metrics,
};

/// Everything a request handler needs, shared behind an `Arc`.
#[derive(Debug)]
pub struct AppState {
    pub settings: Settings,
    /// Every strategy's implementation; a campaign's is picked once per request.
    pub issuers: Issuers,
    pub store: Store,
    pub campaigns: Arc<CampaignCache>,
    pub metrics: Arc<Metrics>,
    /// The last `/readyz` answer and when it was probed, reused for
    /// [`Settings::readiness_reuse`]: a flood of probes cannot open a client per request.
    pub readiness: tokio::sync::Mutex<Option<(std::time::Instant, Readiness)>>,
}

pub type SharedState = Arc<AppState>;
