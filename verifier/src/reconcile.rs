//! The verifier's core: a pure function from the facts collected in MySQL, Redis, Kafka and the
//! loadgen history to a verdict on each invariant. No I/O here, so every check is tested with
//! a case that breaks it.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
};

use coupon_domain::{
    Strategy,
    history::{HistoryRecord, ResultClass},
};
use serde::{Deserialize, Serialize};

/// Where a message sits in Kafka: the event a row was written from, or a failed event captured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KafkaSource {
    pub partition: i32,
    pub offset: i64,
}

impl fmt::Display for KafkaSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "p{}@{}", self.partition, self.offset)
    }
}

/// `p3@42`, or `no kafka offset` for a row or failed event no event wrote.
fn source_text(source: Option<KafkaSource>) -> String {
    source.map_or_else(|| "no kafka offset".to_owned(), |s| s.to_string())
}

/// A coupon row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowFact {
    pub user_id: u64,
    /// The row's slot. A course stage's rows carry none: theirs is the row's position in
    /// insertion order, so the rows beyond the limit are the last ones.
    pub seq: u32,
    /// The event the row was written from. `None` for a course stage's rows, and for a row no
    /// event wrote (one planted behind the database's back).
    pub source: Option<KafkaSource>,
}

/// An event on the topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventFact {
    pub user_id: u64,
    /// The slot the gate gave. `None` for a course stage's events, which carry no slot.
    pub seq: Option<u32>,
    pub source: KafkaSource,
    /// The gate's life that admitted it (`None` for a course stage's events).
    pub epoch: Option<u64>,
}

/// A captured failure. A course stage's failed events are never retried (`open` is false: nothing
/// will resolve them) and have no Kafka source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedFact {
    pub user_id: Option<u64>,
    pub reason: String,
    pub open: bool,
    /// The event that failed; `None` for a course stage's failed events.
    pub source: Option<KafkaSource>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GateFact {
    pub initialised: bool,
    /// user -> slot
    pub winners: BTreeMap<u64, u32>,
    pub released: Vec<u32>,
}

/// Everything known about one campaign after the pipeline drained.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Facts {
    pub campaign_id: String,
    /// How the campaign issues: this project's design, or one of the course's stages.
    pub strategy: Strategy,
    pub limit: u32,
    pub rows: Vec<RowFact>,
    pub events: Vec<EventFact>,
    pub failed: Vec<FailedFact>,
    pub gate: Option<GateFact>,
    /// The consumer group's lag over the whole topic.
    pub lag: i64,
    /// The run's requests for this campaign, when a run is verified.
    pub history: Option<Vec<HistoryRecord>>,
    /// Whether the run created the campaign (then every row must come from this history).
    pub campaign_created_by_run: bool,
    /// Where the campaign's own events begin on the topic, per partition: the fence its first
    /// gate raised (`campaign.first_epoch`). What lies below was on the topic before the
    /// campaign's gate existed: left by an earlier campaign of the same id, or produced before
    /// the campaign was created. `None` when not recorded (a course stage, an older campaign).
    pub begins_at: Option<BTreeMap<i32, i64>>,
    /// The campaign's sale window, as MySQL holds it.
    pub window: SaleWindow,
}

/// A campaign's sale window, half-open, in microseconds since the Unix epoch; either edge may
/// be absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SaleWindow {
    pub opens_at_us: Option<i64>,
    pub closes_at_us: Option<i64>,
}

impl SaleWindow {
    /// How far loadgen's clock and Redis's may differ before a request is judged outside the
    /// window: both read one host's clock in every setup this project starts.
    pub const CLOCK_SLACK_US: i64 = 20_000;

    fn is_set(self) -> bool {
        self.opens_at_us.is_some() || self.closes_at_us.is_some()
    }

    /// Whether an admission made somewhere in `[from_us, to_us]` (`to_us` `None`: no upper
    /// bound known) may have fallen inside the window, allowing for the clocks' slack.
    fn may_hold(self, from_us: i64, to_us: Option<i64>) -> bool {
        let after_opening = match (self.opens_at_us, to_us) {
            (Some(opens), Some(to)) => to >= opens - Self::CLOCK_SLACK_US,
            _ => true,
        };
        let before_closing = self
            .closes_at_us
            .is_none_or(|closes| from_us < closes + Self::CLOCK_SLACK_US);
        after_opening && before_closing
    }
}

impl fmt::Display for SaleWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let edge = |us: Option<i64>| {
            us.and_then(|us| {
                time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000).ok()
            })
            .map_or_else(
                || "-".to_owned(),
                |t| {
                    t.format(&time::format_description::well_known::Rfc3339)
                        .unwrap_or_default()
                },
            )
        };
        write!(
            f,
            "[{}, {})",
            edge(self.opens_at_us),
            edge(self.closes_at_us)
        )
    }
}

impl Facts {
    /// Whether rows and events carry gate slots and Kafka sources (this project's design).
    fn has_slots(&self) -> bool {
        self.strategy.has_gate()
    }

    /// Whether a row, event or failed event from `source` predates the campaign's first gate.
    fn is_leftover(&self, source: Option<KafkaSource>) -> bool {
        match (&self.begins_at, source) {
            (Some(begins), Some(source)) => {
                source.offset < begins.get(&source.partition).copied().unwrap_or(0)
            }
            _ => false,
        }
    }

    /// The campaign's own events: every event but the leftovers.
    fn own_events(&self) -> impl Iterator<Item = &EventFact> {
        self.events
            .iter()
            .filter(|e| !self.is_leftover(Some(e.source)))
    }

    /// Whether an event accounts for a row of the same user: same slot, or for a course stage
    /// (no slots) any event of that user (I4; I6 counts them per user).
    fn event_matches_row(&self, event: &EventFact, row: &RowFact) -> bool {
        if self.has_slots() {
            event.seq == Some(row.seq)
        } else {
            true
        }
    }
}

/// The numbers a comparison of strategies shows, read off the same facts as the checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Tally {
    /// Coupon rows in MySQL.
    pub coupons: usize,
    /// Rows beyond the limit.
    pub over_issue: usize,
    /// Rows beyond the first for the same user.
    pub duplicates: usize,
    /// Users answered `issued` who hold no row (0 without a history).
    pub lost_winners: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pass,
    Fail,
    /// Not applicable to these facts (e.g. no history to check replies against).
    Skip,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offender {
    pub user_id: u64,
    /// Where the user was seen: Redis, Kafka partition and offset, MySQL row, the reply.
    pub seen: String,
}

/// The invariants, in the order they are checked and listed (README, docs/architecture).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum CheckId {
    /// Never more coupons than the limit.
    I1,
    /// At most one coupon per user.
    I2,
    /// Every issued reply has a row.
    I3,
    /// No phantom rows.
    I4,
    /// A definite refusal left no row.
    I5,
    /// Drained, and Kafka, Redis and MySQL agree.
    I6,
    /// Exactly the limit when demand suffices.
    I7,
    /// No admission outside the campaign's sale window.
    I8,
}

impl CheckId {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::I1 => "I1",
            Self::I2 => "I2",
            Self::I3 => "I3",
            Self::I4 => "I4",
            Self::I5 => "I5",
            Self::I6 => "I6",
            Self::I7 => "I7",
            Self::I8 => "I8",
        }
    }
}

impl fmt::Display for CheckId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    pub id: CheckId,
    pub title: String,
    pub expected: String,
    pub observed: String,
    pub status: Status,
    pub offenders: Vec<Offender>,
}

/// What the stores held for the campaign id before its first gate was built: counted against
/// the limit (the first gate took them in, and they are coupons of this id), but no run's
/// doing, so the checks against a run's history leave them out.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Leftovers {
    pub rows: usize,
    pub events: usize,
    pub failed_events: usize,
    /// Every user with a leftover row, event or failed event.
    pub users: Vec<Offender>,
}

impl Leftovers {
    pub fn is_empty(&self) -> bool {
        self.rows == 0 && self.events == 0 && self.failed_events == 0
    }
}

/// Requests whose outcome was unknown (pending, timeout, reset), as they turned out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct UnknownOutcomes {
    pub recovered: usize,
    pub not_issued: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub campaign_id: String,
    pub strategy: Strategy,
    pub tally: Tally,
    pub checks: Vec<Check>,
    pub unknown_outcomes: UnknownOutcomes,
    #[serde(default)]
    pub leftovers: Leftovers,
}

impl Verdict {
    pub fn holds(&self) -> bool {
        self.checks.iter().all(|c| c.status != Status::Fail)
    }

    /// The invariants that failed, in order.
    pub fn failed(&self) -> Vec<CheckId> {
        self.checks
            .iter()
            .filter(|c| c.status == Status::Fail)
            .map(|c| c.id)
            .collect()
    }

    /// How one invariant fared.
    pub fn status_of(&self, id: CheckId) -> Option<Status> {
        self.checks.iter().find(|c| c.id == id).map(|c| c.status)
    }
}

/// Where each user appears, for offender listings.
struct Index<'a> {
    facts: &'a Facts,
    rows: BTreeMap<u64, Vec<&'a RowFact>>,
    /// The campaign's own events (leftovers are no run's: they neither over-issue nor
    /// disagree), by user.
    events: BTreeMap<u64, Vec<&'a EventFact>>,
    /// Every event, leftovers too, by user: what a row may have been written from.
    all_events: BTreeMap<u64, Vec<&'a EventFact>>,
    /// Users whose every row predates the campaign's first gate: no run's doing.
    leftover_rows_only: BTreeSet<u64>,
    replies: BTreeMap<u64, Vec<&'a HistoryRecord>>,
}

impl<'a> Index<'a> {
    fn new(facts: &'a Facts) -> Self {
        let mut rows: BTreeMap<u64, Vec<&RowFact>> = BTreeMap::new();
        for row in &facts.rows {
            rows.entry(row.user_id).or_default().push(row);
        }
        let mut events: BTreeMap<u64, Vec<&EventFact>> = BTreeMap::new();
        let mut all_events: BTreeMap<u64, Vec<&EventFact>> = BTreeMap::new();
        for event in &facts.events {
            if !facts.is_leftover(Some(event.source)) {
                events.entry(event.user_id).or_default().push(event);
            }
            all_events.entry(event.user_id).or_default().push(event);
        }
        // The users whose every row predates the campaign's first gate.
        let leftover_rows_only = rows
            .iter()
            .filter(|(_, rows)| rows.iter().all(|r| facts.is_leftover(r.source)))
            .map(|(user, _)| *user)
            .collect();
        let mut replies: BTreeMap<u64, Vec<&HistoryRecord>> = BTreeMap::new();
        for record in facts.history.iter().flatten() {
            replies.entry(record.user_id).or_default().push(record);
        }
        Self {
            facts,
            rows,
            events,
            all_events,
            leftover_rows_only,
            replies,
        }
    }

    fn seen(&self, user: u64) -> String {
        let mut places = Vec::new();
        for row in self.rows.get(&user).into_iter().flatten() {
            places.push(match (self.facts.has_slots(), row.source) {
                (false, _) => format!("mysql course_coupon row #{}", row.seq),
                (true, Some(source)) => format!("mysql row seq {} (from kafka {source})", row.seq),
                (true, None) => format!("mysql row seq {} (no kafka offset)", row.seq),
            });
        }
        for event in self.all_events.get(&user).into_iter().flatten() {
            let before = if self.facts.is_leftover(Some(event.source)) {
                " (before the campaign's first gate)"
            } else {
                ""
            };
            places.push(match event.seq {
                Some(seq) => format!("kafka {} seq {seq}{before}", event.source),
                None => format!("kafka {}{before}", event.source),
            });
        }
        if let Some(seq) = self.facts.gate.as_ref().and_then(|g| g.winners.get(&user)) {
            places.push(format!("redis winner seq {seq}"));
        }
        for failed in self.facts.failed.iter().filter(|f| f.user_id == Some(user)) {
            if !self.facts.has_slots() {
                places.push("course failed_event (never retried)".to_owned());
                continue;
            }
            places.push(format!(
                "failed_event {} ({}) {}",
                failed.reason,
                if failed.open { "open" } else { "resolved" },
                source_text(failed.source)
            ));
        }
        let replies: Vec<String> = self
            .replies
            .get(&user)
            .into_iter()
            .flatten()
            .map(|r| match r.seq {
                Some(seq) => format!("{} seq {seq}", r.result.as_str()),
                None => r.result.as_str().to_owned(),
            })
            .collect();
        if !replies.is_empty() {
            places.push(format!("replies: {}", replies.join(", ")));
        }
        if places.is_empty() {
            "nowhere".to_owned()
        } else {
            places.join("; ")
        }
    }

    fn offenders(&self, users: impl IntoIterator<Item = u64>) -> Vec<Offender> {
        users
            .into_iter()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .map(|user_id| Offender {
                user_id,
                seen: self.seen(user_id),
            })
            .collect()
    }

    fn has_class(&self, user: u64, class: ResultClass) -> bool {
        self.replies
            .get(&user)
            .is_some_and(|rs| rs.iter().any(|r| r.result == class))
    }
}

fn status(ok: bool) -> Status {
    if ok { Status::Pass } else { Status::Fail }
}

pub fn reconcile(facts: &Facts) -> Verdict {
    let index = Index::new(facts);
    let checks = vec![
        over_issue(&index),
        one_per_user(&index),
        issued_have_rows(&index),
        no_phantoms(&index),
        refusals_left_nothing(&index),
        stores_agree(&index),
        exactly_limit(&index),
        inside_window(&index),
    ];
    Verdict {
        campaign_id: facts.campaign_id.clone(),
        strategy: facts.strategy,
        tally: tally(&index),
        checks,
        unknown_outcomes: unknown_outcomes(&index),
        leftovers: leftovers(&index),
    }
}

fn leftovers(index: &Index) -> Leftovers {
    let facts = index.facts;
    let rows: Vec<u64> = facts
        .rows
        .iter()
        .filter(|r| facts.is_leftover(r.source))
        .map(|r| r.user_id)
        .collect();
    let events: Vec<u64> = facts
        .events
        .iter()
        .filter(|e| facts.is_leftover(Some(e.source)))
        .map(|e| e.user_id)
        .collect();
    let failed: Vec<Option<u64>> = facts
        .failed
        .iter()
        .filter(|f| facts.is_leftover(f.source))
        .map(|f| f.user_id)
        .collect();
    Leftovers {
        rows: rows.len(),
        events: events.len(),
        failed_events: failed.len(),
        users: index.offenders(
            rows.iter()
                .chain(&events)
                .copied()
                .chain(failed.into_iter().flatten()),
        ),
    }
}

/// I1: never more coupons than the limit, in any store and in the replies.
fn over_issue(index: &Index) -> Check {
    let facts = index.facts;
    let limit = facts.limit;
    let issued_replies: BTreeSet<u64> = index
        .replies
        .iter()
        .filter(|(_, rs)| rs.iter().any(|r| r.result == ResultClass::Issued))
        .map(|(u, _)| *u)
        .collect();
    let gate_winners = facts.gate.as_ref().map_or(0, |g| g.winners.len());
    let event_users = index.events.len();
    let counts = [
        facts.rows.len(),
        issued_replies.len(),
        gate_winners,
        event_users,
    ];
    let beyond_limit = facts
        .rows
        .iter()
        .map(|r| (r.user_id, r.seq))
        .chain(
            facts
                .own_events()
                .filter_map(|e| e.seq.map(|seq| (e.user_id, seq))),
        )
        .chain(
            facts
                .gate
                .iter()
                .flat_map(|g| g.winners.iter().map(|(u, s)| (*u, *s))),
        )
        .chain(
            facts
                .history
                .iter()
                .flatten()
                .filter_map(|r| r.seq.map(|s| (r.user_id, s))),
        )
        .filter(|(_, seq)| *seq == 0 || *seq > limit)
        .map(|(user, _)| user);
    let mut offenders: BTreeSet<u64> = beyond_limit.collect();
    if facts.rows.len() > limit as usize {
        let mut rows: Vec<&RowFact> = facts.rows.iter().collect();
        rows.sort_by_key(|r| (r.seq, r.user_id));
        offenders.extend(rows.iter().skip(limit as usize).map(|r| r.user_id));
    }
    let ok = counts.iter().all(|c| *c <= limit as usize) && offenders.is_empty();
    Check {
        id: CheckId::I1,
        title: "never more coupons than the limit".to_owned(),
        expected: format!(
            "≤ {limit} rows, issued replies, gate winners, event users; every seq in 1..={limit}"
        ),
        observed: format!(
            "rows {}, issued replies {}, gate winners {gate_winners}, event users {event_users}",
            facts.rows.len(),
            issued_replies.len()
        ),
        status: status(ok),
        offenders: index.offenders(offenders),
    }
}

/// I2: at most one coupon per user: one row, and one slot across the events.
fn one_per_user(index: &Index) -> Check {
    let twice_in_rows: Vec<u64> = index
        .rows
        .iter()
        .filter(|(_, rs)| rs.len() > 1)
        .map(|(u, _)| *u)
        .collect();
    let two_slots_in_events: Vec<u64> = index
        .events
        .iter()
        .filter(|(_, es)| {
            es.iter()
                .filter_map(|e| e.seq)
                .collect::<BTreeSet<_>>()
                .len()
                > 1
        })
        .map(|(u, _)| *u)
        .collect();
    let ok = twice_in_rows.is_empty() && two_slots_in_events.is_empty();
    Check {
        id: CheckId::I2,
        title: "at most one coupon per user".to_owned(),
        expected: "1 row and 1 slot per user".to_owned(),
        observed: format!(
            "{} users with several rows, {} users with several slots in kafka",
            twice_in_rows.len(),
            two_slots_in_events.len()
        ),
        status: status(ok),
        offenders: index.offenders(twice_in_rows.into_iter().chain(two_slots_in_events)),
    }
}

/// I3: every user answered `issued` has a row, with the slot the reply named. (A course stage's
/// rows carry no slot of their own, so there only the row is looked for.)
fn issued_have_rows(index: &Index) -> Check {
    let Some(history) = &index.facts.history else {
        return skipped(
            CheckId::I3,
            "every issued reply has a row",
            "no loadgen history for this campaign",
        );
    };
    let issued: BTreeMap<u64, Option<u32>> = history
        .iter()
        .filter(|r| r.result == ResultClass::Issued)
        .map(|r| (r.user_id, r.seq))
        .collect();
    let slots_are_real = index.facts.strategy.has_gate();
    let lost: Vec<u64> = issued
        .keys()
        .copied()
        .filter(|u| !index.rows.contains_key(u))
        .collect();
    let other_slot: Vec<u64> = issued
        .iter()
        .filter(|(user, seq)| {
            let (Some(rows), Some(seq)) = (index.rows.get(user), seq) else {
                return false;
            };
            slots_are_real && !rows.iter().any(|row| row.seq == *seq)
        })
        .map(|(user, _)| *user)
        .collect();
    Check {
        id: CheckId::I3,
        title: "every issued reply has a row with its slot (no lost winner)".to_owned(),
        expected: format!("{} issued users with rows", issued.len()),
        observed: format!(
            "{} with rows, {} lost, {} with another slot than the reply's",
            issued.len() - lost.len(),
            lost.len(),
            other_slot.len()
        ),
        status: status(lost.is_empty() && other_slot.is_empty()),
        offenders: index.offenders(lost.into_iter().chain(other_slot)),
    }
}

/// I4: every row belongs to a user who applied and was not refused, and came from an event.
fn no_phantoms(index: &Index) -> Check {
    // The course's first two stages insert directly: their rows have no event to come from.
    let rows_come_from_events = index.facts.strategy.uses_kafka();
    let without_event: Vec<u64> = index
        .facts
        .rows
        .iter()
        .filter(|_| rows_come_from_events)
        .filter(|row| {
            !index
                .all_events
                .get(&row.user_id)
                .is_some_and(|es| es.iter().any(|e| index.facts.event_matches_row(e, row)))
        })
        .map(|row| row.user_id)
        .collect();
    // A row that predates the campaign's first gate is no run's doing (see `leftovers`).
    let leftover = &index.leftover_rows_only;
    let never_applied: Vec<u64> = match (&index.facts.history, index.facts.campaign_created_by_run)
    {
        (Some(_), true) => index
            .rows
            .keys()
            .copied()
            .filter(|u| !index.replies.contains_key(u) && !leftover.contains(u))
            .collect(),
        _ => Vec::new(),
    };
    let ok = without_event.is_empty() && never_applied.is_empty();
    Check {
        id: CheckId::I4,
        title: "no phantom rows".to_owned(),
        expected: "every row has its kafka event and an applying user".to_owned(),
        observed: format!(
            "{} rows without an event, {} rows of users who never applied",
            without_event.len(),
            never_applied.len()
        ),
        status: status(ok),
        offenders: index.offenders(without_event.into_iter().chain(never_applied)),
    }
}

/// I5: a user whose every reply was a definite refusal holds no row.
fn refusals_left_nothing(index: &Index) -> Check {
    if index.facts.history.is_none() {
        return skipped(
            CheckId::I5,
            "a definite refusal left no row",
            "no loadgen history for this campaign",
        );
    }
    let refused: Vec<u64> = index
        .replies
        .iter()
        .filter(|(_, rs)| rs.iter().all(|r| r.result.is_definite_refusal()))
        .map(|(u, _)| *u)
        .collect();
    let leftover = &index.leftover_rows_only;
    let with_rows: Vec<u64> = refused
        .iter()
        .copied()
        .filter(|u| index.rows.contains_key(u) && !leftover.contains(u))
        .collect();
    Check {
        id: CheckId::I5,
        title: "a definite refusal left no row".to_owned(),
        expected: format!("0 rows among {} refused users", refused.len()),
        observed: format!("{} refused users hold a row", with_rows.len()),
        status: status(with_rows.is_empty()),
        offenders: index.offenders(with_rows),
    }
}

/// I6: drained, and Kafka, the Redis gate and MySQL tell the same story.
fn stores_agree(index: &Index) -> Check {
    let facts = index.facts;
    let rows: BTreeMap<u64, u32> = facts.rows.iter().map(|r| (r.user_id, r.seq)).collect();
    let mut disagreeing: BTreeSet<u64> = BTreeSet::new();
    let mut notes = vec![format!("lag {}", facts.lag)];
    if let Some(gate) = &facts.gate {
        if !gate.initialised {
            notes.push("gate marker missing".to_owned());
        }
        let differing: Vec<u64> = gate
            .winners
            .iter()
            .filter(|(u, s)| rows.get(u) != Some(s))
            .map(|(u, _)| *u)
            .chain(
                rows.iter()
                    .filter(|(u, s)| gate.winners.get(u) != Some(s))
                    .map(|(u, _)| *u),
            )
            .collect();
        notes.push(format!("{} gate/row mismatches", differing.len()));
        disagreeing.extend(differing);
    } else {
        notes.push("no gate state".to_owned());
    }
    let unaccounted: Vec<u64> = if facts.has_slots() {
        facts
            .own_events()
            .filter(|e| {
                let written = e.seq.is_some() && rows.get(&e.user_id).copied() == e.seq;
                let captured = facts.failed.iter().any(|f| f.source == Some(e.source));
                !written && !captured
            })
            .map(|e| e.user_id)
            .collect()
    } else {
        // No slots and no sources: per user, every event must have become a row or a failed
        // event (a redelivery may add rows, never events).
        index
            .events
            .iter()
            .flat_map(|(user, events)| {
                let rows = index.rows.get(user).map_or(0, Vec::len);
                let failed = facts
                    .failed
                    .iter()
                    .filter(|f| f.user_id == Some(*user))
                    .count();
                std::iter::repeat_n(*user, events.len().saturating_sub(rows + failed))
            })
            .collect()
    };
    notes.push(format!(
        "{} events with neither row nor failed event",
        unaccounted.len()
    ));
    disagreeing.extend(unaccounted);
    let gate_ok = facts.gate.as_ref().is_none_or(|g| g.initialised);
    let ok = facts.lag == 0 && gate_ok && disagreeing.is_empty();
    Check {
        id: CheckId::I6,
        title: "drained, and kafka, redis and mysql agree".to_owned(),
        expected: "lag 0; gate winners = rows; every event has a row or a failed event".to_owned(),
        observed: notes.join(", "),
        status: status(ok),
        offenders: index.offenders(disagreeing),
    }
}

/// I7: when at least `limit` distinct users applied and no fault persists, exactly `limit`.
fn exactly_limit(index: &Index) -> Check {
    let facts = index.facts;
    let limit = facts.limit as usize;
    let Some(_) = &facts.history else {
        return skipped(
            CheckId::I7,
            "exactly the limit when demand suffices",
            "no loadgen history for this campaign",
        );
    };
    // Demand: users whose apply reached the gate (not refused as invalid, unknown, or outside
    // the campaign's window).
    let demand = index
        .replies
        .values()
        .filter(|rs| {
            rs.iter().any(|r| {
                !matches!(
                    r.result,
                    ResultClass::Invalid
                        | ResultClass::NotFound
                        | ResultClass::NotOpen
                        | ResultClass::Closed
                )
            })
        })
        .count();
    let open_failures = facts.failed.iter().filter(|f| f.open).count();
    if demand < limit {
        return skipped(
            CheckId::I7,
            "exactly the limit when demand suffices",
            &format!("demand {demand} < limit {limit}"),
        );
    }
    if open_failures > 0 || facts.lag > 0 {
        return skipped(
            CheckId::I7,
            "exactly the limit when demand suffices",
            &format!(
                "a fault persists: {open_failures} open failed events, lag {}",
                facts.lag
            ),
        );
    }
    let missing: Vec<u64> = facts
        .gate
        .iter()
        .flat_map(|g| g.winners.keys().copied())
        .filter(|u| !index.rows.contains_key(u))
        .collect();
    Check {
        id: CheckId::I7,
        title: "exactly the limit when demand suffices".to_owned(),
        expected: format!("{limit} rows (demand {demand})"),
        observed: format!("{} rows", facts.rows.len()),
        status: status(facts.rows.len() == limit),
        offenders: index.offenders(missing),
    }
}

/// I8: every coupon was admitted inside the campaign's sale window by the gate's clock. The
/// admission happened while one of the user's requests was under way: not before it was sent,
/// and for an `issued` or `pending` reply (the gate admitted the user before answering), not
/// after it came back; an apply whose outcome was unknown may have been admitted later, when
/// its script ran. A coupon whose every such request lies wholly outside the window was
/// admitted outside it, whatever clock an api read. Rows are held to this run's requests only
/// when the run created the campaign (an earlier run's rows are none of its doing).
fn inside_window(index: &Index) -> Check {
    const TITLE: &str = "no coupon admitted outside the sale window";
    let facts = index.facts;
    let window = facts.window;
    if !window.is_set() {
        return skipped(CheckId::I8, TITLE, "the campaign has no sale window");
    }
    if facts.history.is_none() {
        return skipped(
            CheckId::I8,
            TITLE,
            "no loadgen history: when each coupon was admitted is not known",
        );
    }
    let admitted_before_reply =
        |r: &HistoryRecord| matches!(r.result, ResultClass::Issued | ResultClass::Pending);
    let span = |r: &HistoryRecord| {
        let to = admitted_before_reply(r)
            .then(|| r.response_us.map(|us| r.sent_at_us + us as i64))
            .flatten();
        (r.sent_at_us, to)
    };
    // Users told they were admitted by a request that lies wholly outside the window.
    let issued_outside = index.replies.iter().filter(|(_, rs)| {
        rs.iter().any(|r| {
            let (from, to) = span(r);
            admitted_before_reply(r) && !window.may_hold(from, to)
        })
    });
    // Users holding a row whose every request that may have admitted them lies outside it.
    let rows_outside = index.rows.keys().filter(|user| {
        facts.campaign_created_by_run
            && !index.leftover_rows_only.contains(user)
            && index.replies.get(user).is_some_and(|rs| {
                let admitting: Vec<&&HistoryRecord> = rs
                    .iter()
                    .filter(|r| r.result == ResultClass::Issued || r.result.is_unknown())
                    .collect();
                !admitting.is_empty()
                    && admitting.iter().all(|r| {
                        let (from, to) = span(r);
                        !window.may_hold(from, to)
                    })
            })
    });
    let offenders: BTreeSet<u64> = issued_outside
        .map(|(user, _)| *user)
        .chain(rows_outside.copied())
        .collect();
    Check {
        id: CheckId::I8,
        title: TITLE.to_owned(),
        expected: format!("every coupon admitted within {window}"),
        observed: format!(
            "{} users admitted outside it (by loadgen's clock, {} ms slack)",
            offenders.len(),
            SaleWindow::CLOCK_SLACK_US / 1000
        ),
        status: status(offenders.is_empty()),
        offenders: index.offenders(offenders),
    }
}

fn tally(index: &Index) -> Tally {
    let facts = index.facts;
    let lost_winners = index
        .replies
        .iter()
        .filter(|(user, rs)| {
            rs.iter().any(|r| r.result == ResultClass::Issued) && !index.rows.contains_key(user)
        })
        .count();
    Tally {
        coupons: facts.rows.len(),
        over_issue: facts.rows.len().saturating_sub(facts.limit as usize),
        duplicates: facts.rows.len() - index.rows.len(),
        lost_winners,
    }
}

fn unknown_outcomes(index: &Index) -> UnknownOutcomes {
    let mut outcome = UnknownOutcomes::default();
    for (user, replies) in &index.replies {
        let unknown = replies.iter().any(|r| r.result.is_unknown());
        if unknown && !index.has_class(*user, ResultClass::Issued) {
            if index.rows.contains_key(user) {
                outcome.recovered += 1;
            } else {
                outcome.not_issued += 1;
            }
        }
    }
    outcome
}

fn skipped(id: CheckId, title: &str, why: &str) -> Check {
    Check {
        id,
        title: title.to_owned(),
        expected: "-".to_owned(),
        observed: format!("skipped: {why}"),
        status: Status::Skip,
        offenders: Vec::new(),
    }
}

#[cfg(test)]
mod tests;
