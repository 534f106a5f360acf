//! Read-only fetchers, one per store, plus the loadgen history. Each names its service and
//! address when it cannot reach it.

pub mod history;
pub mod kafka;
pub mod mysql;
pub mod redis;

use coupon_domain::Strategy;

use crate::reconcile::{EventFact, Facts, FailedFact, GateFact, RowFact};

/// One topic's facts, shared by every campaign of one verification: read once.
#[derive(Debug, Clone, Default)]
pub struct TopicFacts {
    /// The consumer group's lag over the whole topic.
    pub lag: i64,
    /// Every event on the topic, by campaign id.
    pub events: std::collections::BTreeMap<String, Vec<EventFact>>,
}

/// The pipeline's topic, and the course's (for campaigns run as a course stage).
#[derive(Debug, Clone, Default)]
pub struct Shared {
    pub pipeline: TopicFacts,
    pub course: TopicFacts,
}

impl Shared {
    pub fn for_strategy(&self, strategy: Strategy) -> &TopicFacts {
        if !strategy.has_gate() {
            &self.course
        } else {
            &self.pipeline
        }
    }
}

/// One campaign's own facts from MySQL and Redis.
#[derive(Debug, Clone)]
pub struct CampaignFacts {
    pub campaign_id: String,
    pub strategy: Strategy,
    pub limit: u32,
    pub rows: Vec<RowFact>,
    pub failed: Vec<FailedFact>,
    pub gate: Option<GateFact>,
}

impl CampaignFacts {
    pub fn into_facts(self, shared: &Shared, history: Option<history::RunHistory>) -> Facts {
        let campaign_created_by_run = history.as_ref().is_some_and(|h| h.campaign_created);
        let topic = shared.for_strategy(self.strategy);
        Facts {
            events: topic
                .events
                .get(&self.campaign_id)
                .cloned()
                .unwrap_or_default(),
            campaign_id: self.campaign_id,
            strategy: self.strategy,
            limit: self.limit,
            rows: self.rows,
            failed: self.failed,
            gate: self.gate,
            // The course's first two stages use no Kafka: the course topic's lag is not theirs.
            lag: if self.strategy.uses_kafka() {
                topic.lag
            } else {
                0
            },
            history: history.map(|h| h.records),
            campaign_created_by_run,
        }
    }
}
