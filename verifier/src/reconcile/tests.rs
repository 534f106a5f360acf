//! One healthy case that passes everything, and for each invariant a case that breaks it and
//! must be caught: a check that cannot fail proves nothing.

use super::*;

fn record(user_id: u64, result: ResultClass, seq: Option<u32>) -> HistoryRecord {
    HistoryRecord {
        run_id: "run".into(),
        campaign_id: "c".into(),
        user_id,
        request_id: user_id,
        intended_at_us: 0,
        sent_at_us: 0,
        response_us: Some(100),
        status: Some(201),
        result,
        seq,
    }
}

fn at(partition: i32, offset: i64) -> KafkaSource {
    KafkaSource { partition, offset }
}

fn row(user_id: u64, seq: u32) -> RowFact {
    RowFact {
        user_id,
        seq,
        source: Some(at(0, i64::from(seq) - 1)),
    }
}

fn event(user_id: u64, seq: u32) -> EventFact {
    EventFact {
        user_id,
        seq: Some(seq),
        source: at(0, i64::from(seq) - 1),
        epoch: Some(1),
    }
}

/// Limit 3; users 1..=3 win slots 1..=3; users 4 and 5 are refused (sold out).
fn healthy() -> Facts {
    Facts {
        campaign_id: "c".into(),
        strategy: Strategy::Reliable,
        limit: 3,
        rows: vec![row(1, 1), row(2, 2), row(3, 3)],
        events: vec![event(1, 1), event(2, 2), event(3, 3)],
        failed: vec![],
        gate: Some(GateFact {
            initialised: true,
            winners: [(1, 1), (2, 2), (3, 3)].into_iter().collect(),
            released: vec![],
        }),
        lag: 0,
        history: Some(vec![
            record(1, ResultClass::Issued, Some(1)),
            record(2, ResultClass::Issued, Some(2)),
            record(3, ResultClass::Issued, Some(3)),
            record(4, ResultClass::SoldOut, None),
            record(5, ResultClass::SoldOut, None),
        ]),
        campaign_created_by_run: true,
        begins_at: None,
        // Opened at the epoch: every request above was sent at 0.
        window: SaleWindow {
            opens_at_us: Some(0),
            closes_at_us: None,
        },
    }
}

fn failing(facts: &Facts) -> Vec<CheckId> {
    reconcile(facts).failed()
}

fn offenders_of(facts: &Facts, id: CheckId) -> Vec<u64> {
    reconcile(facts)
        .checks
        .into_iter()
        .find(|c| c.id == id)
        .map(|c| c.offenders.into_iter().map(|o| o.user_id).collect())
        .unwrap_or_default()
}

#[test]
fn a_healthy_campaign_passes_every_check() {
    let verdict = reconcile(&healthy());
    assert!(verdict.holds(), "{verdict:#?}");
    assert!(
        verdict.checks.iter().all(|c| c.status == Status::Pass),
        "{verdict:#?}"
    );
    assert_eq!(verdict.checks.len(), 8);
}

/// The two-round-trip gate's extra winner, user 4 with slot 4 of a limit of 3: in Redis, on the
/// topic, captured as a failed event (the database refused the slot), and told `issued`.
fn two_step_extra_winner() -> Facts {
    let mut facts = healthy();
    if let Some(gate) = facts.gate.as_mut() {
        gate.winners.insert(4, 4);
    }
    facts.events.push(event(4, 4));
    if let Some(history) = facts.history.as_mut() {
        history[3] = record(4, ResultClass::Issued, Some(4));
    }
    facts.failed.push(FailedFact {
        user_id: Some(4),
        reason: "seq_out_of_range".into(),
        open: true,
        source: Some(at(0, 3)),
    });
    facts
}

#[test]
fn i1_catches_a_gate_that_admits_beyond_the_limit() {
    // The two-round-trip gate: user 4 slipped in with slot 4.
    let facts = two_step_extra_winner();
    assert!(failing(&facts).contains(&CheckId::I1));
    assert_eq!(offenders_of(&facts, CheckId::I1), vec![4]);
}

#[test]
fn i1_catches_a_planted_extra_row() {
    // Planted behind the database's back: no event wrote it, so it has no Kafka source.
    let mut facts = healthy();
    facts.rows.push(RowFact {
        user_id: 99,
        seq: 4,
        source: None,
    });
    assert!(failing(&facts).contains(&CheckId::I1));
    assert_eq!(offenders_of(&facts, CheckId::I1), vec![99]);
    let seen = reconcile(&facts).checks[0].offenders[0].seen.clone();
    assert_eq!(seen, "mysql row seq 4 (no kafka offset)");
}

#[test]
fn i2_catches_a_second_row_for_one_user() {
    let mut facts = healthy();
    facts.rows.push(RowFact {
        user_id: 1,
        seq: 1,
        source: Some(at(1, 7)),
    });
    assert!(failing(&facts).contains(&CheckId::I2));
    assert_eq!(offenders_of(&facts, CheckId::I2), vec![1]);
}

#[test]
fn i2_catches_two_slots_for_one_user_in_kafka() {
    let mut facts = healthy();
    facts.events.push(EventFact {
        user_id: 2,
        seq: Some(3),
        source: at(1, 0),
        epoch: Some(1),
    });
    assert!(failing(&facts).contains(&CheckId::I2));
}

#[test]
fn i3_catches_a_lost_winner() {
    let mut facts = healthy();
    facts.rows.retain(|r| r.user_id != 2);
    assert!(failing(&facts).contains(&CheckId::I3));
    assert_eq!(offenders_of(&facts, CheckId::I3), vec![2]);
}

#[test]
fn i4_catches_a_row_without_its_event_and_a_user_who_never_applied() {
    let mut facts = healthy();
    facts.rows[0] = row(1, 1);
    facts.events.retain(|e| e.user_id != 1);
    assert!(failing(&facts).contains(&CheckId::I4));

    let mut facts = healthy();
    facts.limit = 10;
    facts.rows.push(row(77, 4));
    facts.events.push(event(77, 4));
    if let Some(gate) = facts.gate.as_mut() {
        gate.winners.insert(77, 4);
    }
    assert_eq!(failing(&facts), vec![CheckId::I4]);
    assert_eq!(offenders_of(&facts, CheckId::I4), vec![77]);
}

#[test]
fn i5_catches_a_row_for_a_refused_user() {
    let mut facts = healthy();
    facts.limit = 10;
    facts.rows.push(row(4, 4));
    facts.events.push(event(4, 4));
    if let Some(gate) = facts.gate.as_mut() {
        gate.winners.insert(4, 4);
    }
    assert_eq!(failing(&facts), vec![CheckId::I5]);
    assert_eq!(offenders_of(&facts, CheckId::I5), vec![4]);
}

#[test]
fn i6_catches_lag_a_missing_marker_and_disagreeing_stores() {
    let mut lagging = healthy();
    lagging.lag = 5;
    assert!(failing(&lagging).contains(&CheckId::I6));

    let mut no_marker = healthy();
    if let Some(gate) = no_marker.gate.as_mut() {
        gate.initialised = false;
    }
    assert!(failing(&no_marker).contains(&CheckId::I6));

    let mut orphan_event = healthy();
    orphan_event.limit = 10;
    orphan_event.events.push(event(4, 4));
    assert!(failing(&orphan_event).contains(&CheckId::I6));
    assert_eq!(offenders_of(&orphan_event, CheckId::I6), vec![4]);

    let mut captured = orphan_event.clone();
    captured.failed.push(FailedFact {
        user_id: Some(4),
        reason: "unknown_campaign".into(),
        open: false,
        source: Some(at(0, 3)),
    });
    assert!(
        !failing(&captured).contains(&CheckId::I6),
        "an event captured as failed is accounted for"
    );
}

#[test]
fn i7_catches_fewer_coupons_than_the_limit_without_a_fault() {
    // User 3's reply timed out and the slot was never written: not a violation of I3 (its
    // outcome was unknown), but the campaign ends one short with nothing left to explain it.
    let mut facts = healthy();
    facts.rows.retain(|r| r.user_id != 3);
    facts.events.retain(|e| e.user_id != 3);
    if let Some(history) = facts.history.as_mut() {
        history[2] = record(3, ResultClass::Timeout, None);
    }
    if let Some(gate) = facts.gate.as_mut() {
        gate.winners.insert(3, 3);
    }
    let failed = failing(&facts);
    assert!(failed.contains(&CheckId::I7), "{failed:?}");
    assert!(!failed.contains(&CheckId::I3));
    assert_eq!(offenders_of(&facts, CheckId::I7), vec![3]);
}

#[test]
fn unknown_outcomes_are_reported_not_judged() {
    let mut facts = healthy();
    if let Some(history) = facts.history.as_mut() {
        history[2] = record(3, ResultClass::Pending, Some(3));
        history.push(record(6, ResultClass::Timeout, None));
    }
    let verdict = reconcile(&facts);
    assert!(verdict.holds(), "{verdict:#?}");
    assert_eq!(
        verdict.unknown_outcomes,
        UnknownOutcomes {
            recovered: 1,
            not_issued: 1
        }
    );
}

#[test]
fn checks_without_history_are_skipped_not_passed() {
    let mut facts = healthy();
    facts.history = None;
    let verdict = reconcile(&facts);
    let skipped: Vec<CheckId> = verdict
        .checks
        .iter()
        .filter(|c| c.status == Status::Skip)
        .map(|c| c.id)
        .collect();
    assert_eq!(
        skipped,
        vec![CheckId::I3, CheckId::I5, CheckId::I7, CheckId::I8]
    );
    assert!(verdict.holds());
}

#[test]
fn i7_counts_only_demand_that_reached_the_gate() {
    // Limit 3, two winners, and three more users who only ever met a closed campaign: the
    // campaign closed before it sold out, which is no violation.
    let mut facts = healthy();
    facts.rows.retain(|r| r.user_id != 3);
    facts.events.retain(|e| e.user_id != 3);
    if let Some(gate) = facts.gate.as_mut() {
        gate.winners.remove(&3);
    }
    facts.history = Some(vec![
        record(1, ResultClass::Issued, Some(1)),
        record(2, ResultClass::Issued, Some(2)),
        record(3, ResultClass::Closed, None),
        record(4, ResultClass::Closed, None),
        record(5, ResultClass::Closed, None),
    ]);
    let verdict = reconcile(&facts);
    assert!(verdict.holds(), "{verdict:#?}");
    assert_eq!(verdict.status_of(CheckId::I7), Some(Status::Skip));
}

/// A course stage's facts: rows in insertion order with no source, events with no slot.
fn course_stage(strategy: Strategy, row_users: &[u64], event_users: &[u64]) -> Facts {
    let rows = row_users
        .iter()
        .zip(1u32..)
        .map(|(user_id, position)| RowFact {
            user_id: *user_id,
            seq: position,
            source: None,
        })
        .collect();
    let events = event_users
        .iter()
        .zip(0i64..)
        .map(|(user_id, offset)| EventFact {
            user_id: *user_id,
            seq: None,
            source: at(0, offset),
            epoch: None,
        })
        .collect();
    Facts {
        strategy,
        rows,
        events,
        gate: None,
        history: Some(
            row_users
                .iter()
                .chain(event_users)
                .map(|u| record(*u, ResultClass::Issued, None))
                .chain([record(9, ResultClass::SoldOut, None)])
                .collect(),
        ),
        ..healthy()
    }
}

#[test]
fn a_course_stage_that_happened_to_behave_passes() {
    let kafka = course_stage(Strategy::Kafka, &[1, 2, 3], &[1, 2, 3]);
    assert_eq!(failing(&kafka), Vec::<CheckId>::new());
    let counter = course_stage(Strategy::RedisCounter, &[1, 2, 3], &[]);
    assert_eq!(
        failing(&counter),
        Vec::<CheckId>::new(),
        "direct inserts need no event"
    );
}

#[test]
fn course_stage_over_issue_is_caught_at_the_rows_beyond_the_limit() {
    let naive = course_stage(Strategy::Naive, &[1, 2, 3, 4], &[]);
    assert!(failing(&naive).contains(&CheckId::I1));
    assert_eq!(offenders_of(&naive, CheckId::I1), vec![4]);
    assert_eq!(reconcile(&naive).tally.over_issue, 1);
}

#[test]
fn course_stage_duplicates_are_caught_from_rows_alone() {
    let counter = course_stage(Strategy::RedisCounter, &[1, 1, 2], &[]);
    let verdict = reconcile(&counter);
    assert_eq!(verdict.failed(), vec![CheckId::I2]);
    assert_eq!(offenders_of(&counter, CheckId::I2), vec![1]);
    assert_eq!(verdict.tally.duplicates, 1);
}

#[test]
fn course_stage_lost_winner_is_caught_even_with_its_failed_event() {
    let mut per_user = course_stage(Strategy::PerUser, &[1, 2], &[1, 2, 3]);
    per_user.failed.push(FailedFact {
        user_id: Some(3),
        reason: "course_failed_event".into(),
        open: false,
        source: None,
    });
    let verdict = reconcile(&per_user);
    assert!(verdict.failed().contains(&CheckId::I3), "{verdict:?}");
    assert!(verdict.failed().contains(&CheckId::I7), "{verdict:?}");
    assert!(
        !verdict.failed().contains(&CheckId::I6),
        "the event is accounted for by its failed event"
    );
    assert_eq!(verdict.tally.lost_winners, 1);
    per_user.failed.clear();
    assert!(
        failing(&per_user).contains(&CheckId::I6),
        "an event with neither row nor failed event is caught"
    );
}

#[test]
fn course_stage_event_lost_beside_a_row_of_the_same_user_is_caught() {
    // User 1 won twice (two events) but only one insert happened: one coupon is lost.
    let kafka = course_stage(Strategy::Kafka, &[1, 2], &[1, 1, 2]);
    assert!(
        failing(&kafka).contains(&CheckId::I6),
        "{:?}",
        reconcile(&kafka)
    );
    assert_eq!(offenders_of(&kafka, CheckId::I6), vec![1]);
    let whole = course_stage(Strategy::Kafka, &[1, 1, 2], &[1, 1, 2]);
    assert!(!failing(&whole).contains(&CheckId::I6));
}

#[test]
fn offender_listings_name_each_place_a_user_was_seen_and_what_it_lacks() {
    // The two-step gate's extra winner: in Redis, on the topic, captured as failed, replied to.
    let facts = two_step_extra_winner();
    let i1 = &reconcile(&facts).checks[0];
    assert_eq!(
        i1.offenders[0].seen,
        "kafka p0@3 seq 4; redis winner seq 4; failed_event seq_out_of_range (open) p0@3; \
         replies: issued seq 4"
    );

    // A course stage's rows have no slot and no source, its events no slot.
    let kafka = course_stage(Strategy::Kafka, &[1, 2, 3, 4], &[1, 2, 3, 4]);
    let i1 = &reconcile(&kafka).checks[0];
    assert_eq!(
        i1.offenders[0].seen,
        "mysql course_coupon row #4; kafka p0@3; replies: issued, issued"
    );
}

#[test]
fn i6_does_not_count_a_failed_event_without_a_source_for_an_event() {
    let mut orphan_event = healthy();
    orphan_event.limit = 10;
    orphan_event.events.push(event(4, 4));
    orphan_event.failed.push(FailedFact {
        user_id: Some(4),
        reason: "unknown_campaign".into(),
        open: false,
        source: None,
    });
    assert!(failing(&orphan_event).contains(&CheckId::I6));
    assert_eq!(offenders_of(&orphan_event, CheckId::I6), vec![4]);
}

#[test]
fn i3_catches_an_issued_reply_whose_row_holds_another_slot() {
    // User 2 was told slot 2, but the row (and everything behind it) says slot 3, and user 3
    // was told slot 3 and holds slot 2: every user has a row, and yet two replies were wrong.
    let mut facts = healthy();
    if let Some(history) = facts.history.as_mut() {
        history[1] = record(2, ResultClass::Issued, Some(3));
        history[2] = record(3, ResultClass::Issued, Some(2));
    }
    assert!(
        failing(&facts).contains(&CheckId::I3),
        "{:?}",
        reconcile(&facts)
    );
    assert_eq!(offenders_of(&facts, CheckId::I3), vec![2, 3]);
    // A course stage's rows have no slot of their own: the same replies are not held against it.
    let mut stage = course_stage(Strategy::PerUser, &[1, 2, 3], &[]);
    if let Some(history) = stage.history.as_mut() {
        history[0] = record(1, ResultClass::Issued, Some(3));
    }
    assert!(
        !failing(&stage).contains(&CheckId::I3),
        "{:?}",
        reconcile(&stage)
    );
}

/// A campaign created again over its id's old data: user 7's row (slot 1, at offset 0) was
/// written from an event on the topic before the campaign's first gate was built, which took it
/// in; so was an event of the earlier campaign's user 1 (slot 3 on partition 1), whose row was
/// deleted with that campaign. This run's users 1 and 2 won slots 2 and 3, user 3 found it
/// sold out.
fn over_an_earlier_campaign(begins_at: Option<BTreeMap<i32, i64>>) -> Facts {
    let mut facts = healthy();
    facts.rows = vec![row(7, 1), row(1, 2), row(2, 3)];
    let earlier = EventFact {
        source: at(1, 0),
        ..event(1, 3)
    };
    facts.events = vec![event(7, 1), earlier, event(1, 2), event(2, 3)];
    facts.gate = Some(GateFact {
        initialised: true,
        winners: [(7, 1), (1, 2), (2, 3)].into_iter().collect(),
        released: vec![],
    });
    facts.history = Some(vec![
        record(1, ResultClass::Issued, Some(2)),
        record(2, ResultClass::Issued, Some(3)),
        record(3, ResultClass::SoldOut, None),
    ]);
    facts.begins_at = begins_at;
    facts
}

#[test]
fn leftovers_of_an_earlier_campaign_are_named_not_blamed_on_the_run() {
    let begins = [(0, 1), (1, 5)].into_iter().collect();
    let verdict = reconcile(&over_an_earlier_campaign(Some(begins)));
    assert!(verdict.holds(), "{verdict:#?}");
    assert_eq!(
        (verdict.leftovers.rows, verdict.leftovers.events),
        (1, 2),
        "{verdict:#?}"
    );
    let users: Vec<u64> = verdict.leftovers.users.iter().map(|o| o.user_id).collect();
    assert_eq!(users, vec![1, 7]);
    // They still count against the limit.
    assert_eq!(verdict.tally.coupons, 3);

    // The control: without knowing where the campaign began, user 7's row is a phantom of the
    // run, and the earlier user 1's event a second slot that nothing accounts for.
    let blind = reconcile(&over_an_earlier_campaign(None));
    assert_eq!(
        blind.failed(),
        vec![CheckId::I2, CheckId::I4, CheckId::I6],
        "{blind:#?}"
    );
    assert!(blind.leftovers.is_empty());
}

/// `record` for a request sent at `sent_at_us` and answered `response_us` later (`None`: no
/// reply came).
fn sent(
    user_id: u64,
    result: ResultClass,
    sent_at_us: i64,
    response_us: Option<u64>,
) -> HistoryRecord {
    HistoryRecord {
        sent_at_us,
        response_us,
        seq: (result == ResultClass::Issued).then_some(u32::try_from(user_id).unwrap_or(0)),
        ..record(user_id, result, None)
    }
}

/// The healthy campaign with a window of [10 s, 20 s) and user `user`'s request replaced.
fn windowed(user: u64, request: HistoryRecord) -> Facts {
    let mut facts = healthy();
    facts.window = SaleWindow {
        opens_at_us: Some(10_000_000),
        closes_at_us: Some(20_000_000),
    };
    for record in facts.history.iter_mut().flatten() {
        record.sent_at_us = 15_000_000;
        if record.user_id == user {
            *record = request.clone();
        }
    }
    facts
}

#[test]
fn i8_catches_a_coupon_admitted_before_the_window_opened() {
    // An api whose clock ran ahead answered `issued` 2 s before the opening.
    let early = windowed(1, sent(1, ResultClass::Issued, 8_000_000, Some(5_000)));
    assert_eq!(failing(&early), vec![CheckId::I8]);
    assert_eq!(offenders_of(&early, CheckId::I8), vec![1]);
    // A request sent after the close that left a row, though its reply was lost.
    let late = windowed(2, sent(2, ResultClass::Timeout, 20_500_000, None));
    assert_eq!(failing(&late), vec![CheckId::I8]);
    assert_eq!(offenders_of(&late, CheckId::I8), vec![2]);
    // A 202: the gate admitted the user before it answered, before the opening.
    let pending = windowed(3, sent(3, ResultClass::Pending, 4_000_000, Some(5_000_000)));
    assert!(failing(&pending).contains(&CheckId::I8));
    assert_eq!(offenders_of(&pending, CheckId::I8), vec![3]);
    // On a campaign the run did not create, a row may be an earlier run's: only the replies
    // are held to the window.
    let mut earlier_run = late.clone();
    earlier_run.campaign_created_by_run = false;
    assert_eq!(
        reconcile(&earlier_run).status_of(CheckId::I8),
        Some(Status::Pass)
    );
}

#[test]
fn i8_passes_what_may_have_been_admitted_inside_the_window() {
    // Answered just before the opening by loadgen's clock: within the clocks' slack.
    let slack = windowed(1, sent(1, ResultClass::Issued, 9_985_000, Some(1_000)));
    assert_eq!(failing(&slack), Vec::<CheckId>::new());
    // Sent before the opening, answered after it.
    let across = windowed(1, sent(1, ResultClass::Issued, 9_000_000, Some(2_000_000)));
    assert_eq!(failing(&across), Vec::<CheckId>::new());
    // An apply whose outcome was unknown may have been admitted when its script ran, later.
    let unknown = windowed(3, sent(3, ResultClass::Unknown, 5_000_000, Some(10_000)));
    assert_eq!(failing(&unknown), Vec::<CheckId>::new());
}

#[test]
fn i8_is_skipped_without_a_window_or_a_history() {
    let mut no_window = windowed(1, sent(1, ResultClass::Issued, 8_000_000, Some(5_000)));
    no_window.window = SaleWindow::default();
    assert_eq!(
        reconcile(&no_window).status_of(CheckId::I8),
        Some(Status::Skip)
    );
    let mut no_history = windowed(1, sent(1, ResultClass::Issued, 8_000_000, Some(5_000)));
    no_history.history = None;
    assert_eq!(
        reconcile(&no_history).status_of(CheckId::I8),
        Some(Status::Skip)
    );
}
