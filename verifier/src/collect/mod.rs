//! Read-only fetchers, one per store, plus the loadgen history. Each names its service and
//! address when it cannot reach it.

pub mod history;
pub mod kafka;
pub mod mysql;
pub mod redis;

use crate::reconcile::{EventFact, Facts, FailedFact, GateFact, RowFact};

/// Facts shared by every campaign of one verification: read once.
#[derive(Debug, Clone, Default)]
pub struct Shared {
    pub lag: i64,
    /// Every event on the topic, by campaign id.
    pub events: std::collections::BTreeMap<String, Vec<EventFact>>,
}

/// One campaign's own facts from MySQL and Redis.
#[derive(Debug, Clone)]
pub struct CampaignFacts {
    pub campaign_id: String,
    pub limit: u32,
    pub rows: Vec<RowFact>,
    pub failed: Vec<FailedFact>,
    pub gate: Option<GateFact>,
}

impl CampaignFacts {
    pub fn into_facts(self, shared: &Shared, history: Option<history::RunHistory>) -> Facts {
        let campaign_created_by_run = history.as_ref().is_some_and(|h| h.campaign_created);
        Facts {
            events: shared
                .events
                .get(&self.campaign_id)
                .cloned()
                .unwrap_or_default(),
            campaign_id: self.campaign_id,
            limit: self.limit,
            rows: self.rows,
            failed: self.failed,
            gate: self.gate,
            lag: shared.lag,
            history: history.map(|h| h.records),
            campaign_created_by_run,
        }
    }
}
