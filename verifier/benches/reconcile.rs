//! The verifier's pure core on a large run: 1,000,000 history lines (a 10,000-coupon campaign,
//! every user applying once) reconciled against rows, events and the gate:
//! `cargo bench -p verifier --bench reconcile`.

use coupon_domain::{
    Strategy,
    history::{HistoryRecord, ResultClass},
};
use verifier::reconcile::{
    EventFact, Facts, GateFact, KafkaSource, RowFact, SaleWindow, reconcile,
};

fn main() {
    divan::main();
}

const LIMIT: u32 = 10_000;
const REQUESTS: u64 = 1_000_000;

fn facts() -> Facts {
    let source = |seq: u32| KafkaSource {
        partition: i32::try_from(seq % 6).unwrap_or_default(),
        offset: i64::from(seq),
    };
    let winners = 1..=u64::from(LIMIT);
    let seq = |user: u64| u32::try_from(user).unwrap_or(u32::MAX);
    Facts {
        campaign_id: "bench".into(),
        strategy: Strategy::Reliable,
        limit: LIMIT,
        rows: winners
            .clone()
            .map(|user| RowFact {
                user_id: user,
                seq: seq(user),
                source: Some(source(seq(user))),
            })
            .collect(),
        events: winners
            .clone()
            .map(|user| EventFact {
                user_id: user,
                seq: Some(seq(user)),
                source: source(seq(user)),
                epoch: Some(1),
            })
            .collect(),
        failed: Vec::new(),
        gate: Some(GateFact {
            initialised: true,
            winners: winners.clone().map(|user| (user, seq(user))).collect(),
            released: Vec::new(),
        }),
        lag: 0,
        history: Some(
            (1..=REQUESTS)
                .map(|user| {
                    let won = user <= u64::from(LIMIT);
                    HistoryRecord {
                        run_id: "run".into(),
                        campaign_id: "bench".into(),
                        user_id: user,
                        request_id: user,
                        intended_at_us: 0,
                        sent_at_us: i64::try_from(user).unwrap_or_default(),
                        response_us: Some(1_000),
                        status: Some(if won { 201 } else { 410 }),
                        result: if won {
                            ResultClass::Issued
                        } else {
                            ResultClass::SoldOut
                        },
                        seq: won.then(|| seq(user)),
                    }
                })
                .collect(),
        ),
        campaign_created_by_run: true,
        begins_at: None,
        window: SaleWindow::default(),
    }
}

#[divan::bench(sample_count = 10)]
fn a_million_history_lines(bencher: divan::Bencher) {
    let facts = facts();
    bencher.bench(|| {
        let verdict = reconcile(divan::black_box(&facts));
        assert!(verdict.holds(), "the bench's run is a healthy one");
        verdict
    });
}
