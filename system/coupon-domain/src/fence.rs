//! Fences: what a gate rebuild or the reconciler took back, and whether an event still counts.
//! One rule, used by the consumer (which refuses a fenced event), the rebuild and the reconciler
//! (which leave it out of what they count) and the verifier (which does not count it either).
//!
//! - A **rebuild** that installed life `epoch` of a gate read Kafka up to an end offset on each
//!   partition. An event of an older life at or past that offset was not seen: the new gate may
//!   have handed its slot to someone else, so it is *superseded*.
//! - A **revocation** (the reconciler released a slot its user held with no trace after the
//!   delivery deadline) refuses the events for that user and slot of every epoch below its own.

use crate::{CouponIssued, Seq, UserId};

/// One partition's end of a rebuild's read of Kafka; `end_offset` is `None` while the rebuild
/// is still reading the high watermarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RebuildFence {
    pub epoch: u64,
    pub partition: i32,
    pub end_offset: Option<i64>,
}

/// A slot the reconciler took back from a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revocation {
    pub user: UserId,
    pub seq: Seq,
    pub below_epoch: u64,
}

/// Whether an event still counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    Counts,
    /// Past the read of the rebuild that installed `epoch`.
    Superseded {
        epoch: u64,
    },
    /// Its slot was taken back from its user.
    Revoked {
        below_epoch: u64,
    },
    /// A rebuild newer than the event is still reading where its fence ends: ask again.
    FencePending {
        epoch: u64,
    },
}

/// Where an event sits: its partition and offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct At {
    pub partition: i32,
    pub offset: i64,
}

/// The standing of `event`, found at `partition`/`offset`, under one campaign's fences.
pub fn standing(
    event: &CouponIssued,
    partition: i32,
    offset: i64,
    fences: &[RebuildFence],
    revocations: &[Revocation],
) -> Standing {
    standing_of(
        (event.user_id, event.seq, event.epoch),
        At { partition, offset },
        fences,
        revocations,
    )
}

/// [`standing`] of the admission `(user, seq, epoch)` an event carries, found `at`.
pub fn standing_of(
    (user, seq, epoch): (UserId, Seq, u64),
    At { partition, offset }: At,
    fences: &[RebuildFence],
    revocations: &[Revocation],
) -> Standing {
    if let Some(revocation) = revocations
        .iter()
        .find(|r| r.user == user && r.seq == seq && epoch < r.below_epoch)
    {
        return Standing::Revoked {
            below_epoch: revocation.below_epoch,
        };
    }
    // The first rebuild after the event's life is the one that could have missed it.
    let Some(first) = fences
        .iter()
        .filter(|f| f.epoch > epoch)
        .map(|f| f.epoch)
        .min()
    else {
        return Standing::Counts;
    };
    let mut ends = fences.iter().filter(|f| f.epoch == first);
    if ends.clone().any(|f| f.end_offset.is_none()) {
        return Standing::FencePending { epoch: first };
    }
    match ends
        .find(|f| f.partition == partition)
        .and_then(|f| f.end_offset)
    {
        Some(end) if offset >= end => Standing::Superseded { epoch: first },
        // Below the end the rebuild read it; a partition it did not know of came later.
        _ => Standing::Counts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CampaignId;

    fn event(user: u64, seq: u32, epoch: u64) -> CouponIssued {
        CouponIssued {
            campaign_id: CampaignId::parse("spring").expect("valid id"),
            user_id: UserId::parse(user).expect("valid id"),
            seq: Seq(seq),
            issued_at_ms: 0,
            epoch,
        }
    }

    fn fence(epoch: u64, partition: i32, end_offset: Option<i64>) -> RebuildFence {
        RebuildFence {
            epoch,
            partition,
            end_offset,
        }
    }

    #[test]
    fn an_event_of_an_older_life_counts_only_below_the_first_rebuilds_read() {
        let fences = [
            fence(5, 0, Some(10)),
            fence(5, 1, Some(3)),
            fence(9, 0, Some(40)),
        ];
        assert_eq!(
            standing(&event(1, 1, 4), 0, 9, &fences, &[]),
            Standing::Counts
        );
        assert_eq!(
            standing(&event(1, 1, 4), 0, 10, &fences, &[]),
            Standing::Superseded { epoch: 5 }
        );
        // The rebuild of epoch 9 read past offset 10: an event of epoch 6 there counts.
        assert_eq!(
            standing(&event(1, 1, 6), 0, 20, &fences, &[]),
            Standing::Counts
        );
        assert_eq!(
            standing(&event(1, 1, 6), 0, 40, &fences, &[]),
            Standing::Superseded { epoch: 9 }
        );
        // The live life, and a partition the rebuild did not know of, are never fenced.
        assert_eq!(
            standing(&event(1, 1, 9), 0, 99, &fences, &[]),
            Standing::Counts
        );
        assert_eq!(
            standing(&event(1, 1, 4), 7, 99, &fences, &[]),
            Standing::Counts
        );
    }

    #[test]
    fn a_rebuild_still_reading_its_ends_makes_older_events_wait() {
        let fences = [fence(5, 0, None), fence(5, 1, Some(3))];
        assert_eq!(
            standing(&event(1, 1, 4), 1, 0, &fences, &[]),
            Standing::FencePending { epoch: 5 }
        );
        assert_eq!(
            standing(&event(1, 1, 5), 1, 0, &fences, &[]),
            Standing::Counts
        );
    }

    #[test]
    fn a_revocation_refuses_its_user_and_slot_below_its_epoch_only() {
        let revoked = [Revocation {
            user: UserId::parse(1).expect("valid id"),
            seq: Seq(3),
            below_epoch: 7,
        }];
        assert_eq!(
            standing(&event(1, 3, 6), 0, 0, &[], &revoked),
            Standing::Revoked { below_epoch: 7 }
        );
        assert_eq!(
            standing(&event(1, 3, 7), 0, 0, &[], &revoked),
            Standing::Counts
        );
        assert_eq!(
            standing(&event(1, 4, 6), 0, 0, &[], &revoked),
            Standing::Counts
        );
        assert_eq!(
            standing(&event(2, 3, 6), 0, 0, &[], &revoked),
            Standing::Counts
        );
    }
}
