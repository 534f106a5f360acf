//! Read-only fetchers, one per store, plus the loadgen history. Each names its service and
//! address when it cannot reach it.

pub mod history;
pub mod kafka;
pub mod mysql;
pub mod redis;

use coupon_domain::Strategy;

use coupon_domain::{
    Seq, UserId,
    fence::{self, At, RebuildFence, Revocation},
};

use crate::reconcile::{EventFact, Facts, FailedFact, GateFact, RowFact, SaleWindow};

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
    /// The gate's fences: an event they cover does not count (the consumer settled it).
    pub rebuild_fences: Vec<RebuildFence>,
    pub revocations: Vec<Revocation>,
    /// The life of the campaign's first gate (`campaign.first_epoch`).
    pub first_epoch: Option<u64>,
    pub window: SaleWindow,
}

impl CampaignFacts {
    pub fn into_facts(self, shared: &Shared, history: Option<history::RunHistory>) -> Facts {
        let campaign_created_by_run = history.as_ref().is_some_and(|h| h.campaign_created);
        let topic = shared.for_strategy(self.strategy);
        let events = topic
            .events
            .get(&self.campaign_id)
            .map(|events| counting(events, &self.rebuild_fences, &self.revocations))
            .unwrap_or_default();
        Facts {
            events,
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
            window: self.window,
            campaign_created_by_run,
            begins_at: self.first_epoch.map(|first| {
                self.rebuild_fences
                    .iter()
                    .filter(|f| f.epoch == first)
                    .map(|f| (f.partition, f.end_offset.unwrap_or(0)))
                    .collect()
            }),
        }
    }
}

/// The events that count: those no rebuild's fence and no revocation covers. A covered event
/// was settled by the consumer as a failed event (`superseded`, `revoked`) and holds no slot.
fn counting(
    events: &[EventFact],
    fences: &[RebuildFence],
    revocations: &[Revocation],
) -> Vec<EventFact> {
    events
        .iter()
        .filter(|event| {
            let (Some(seq), Some(epoch)) = (event.seq, event.epoch) else {
                return true; // a course stage's event: no gate, no fence
            };
            let Ok(user) = UserId::parse(event.user_id) else {
                return true;
            };
            let at = At {
                partition: event.source.partition,
                offset: event.source.offset,
            };
            fence::standing_of((user, Seq(seq), epoch), at, fences, revocations)
                == fence::Standing::Counts
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::KafkaSource;

    #[test]
    fn events_a_fence_covers_do_not_count() {
        let event = |user_id, seq, epoch, offset| EventFact {
            user_id,
            seq: Some(seq),
            source: KafkaSource {
                partition: 0,
                offset,
            },
            epoch: Some(epoch),
        };
        let events = [
            event(1, 1, 1, 0),
            event(2, 1, 1, 5),
            event(3, 2, 1, 6),
            event(4, 1, 2, 7),
        ];
        let fences = [RebuildFence {
            epoch: 2,
            partition: 0,
            end_offset: Some(5),
        }];
        let revocations = [Revocation {
            user: UserId::parse(3).expect("valid id"),
            seq: Seq(2),
            below_epoch: 2,
        }];
        let users: Vec<u64> = counting(&events, &fences, &revocations)
            .iter()
            .map(|e| e.user_id)
            .collect();
        assert_eq!(users, vec![1, 4]);
        assert_eq!(counting(&events, &[], &[]).len(), 4);
    }
}
