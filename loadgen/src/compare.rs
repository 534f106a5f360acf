//! `--strategy all`: the same burst against each strategy in turn (the course's stages, then
//! this project's design), each drained and verified by the verifier, then one comparison. With
//! several faults, one round of every strategy per fault.

use anyhow::Context;
use coupon_domain::Strategy;
use coupon_store::Store;

use crate::{
    cli::Cli,
    judge,
    nemesis::FaultSpec,
    report::{
        self, Outcome,
        compare::{self, StageRow},
    },
    stage,
    target::Target,
};

pub async fn run(cli: &Cli, target: &mut Target) -> anyhow::Result<Outcome> {
    let compare_id = report::new_run_id();
    let name = format!("compare-{compare_id}");
    let dir = cli.report_dir.join(&name);
    std::fs::create_dir_all(&dir).with_context(|| format!("failed to create {}", dir.display()))?;
    // As for one stage: `latest` names the comparison from its start, unfinished until
    // compare.json is written.
    report::point_latest(&cli.report_dir, &name)?;
    let rounds = rounds(&cli.fault);
    let mut rows = Vec::new();
    let mut failed_thresholds = Vec::new();
    let mut failed_rounds = Vec::new();
    for (index, faults) in rounds.iter().enumerate() {
        // One round: its own directory when there are several.
        let (round_dir, round_id) = match round_name(&rounds, index) {
            Some(name) => (dir.join(&name), format!("{compare_id}-{name}")),
            None => (dir.clone(), compare_id.clone()),
        };
        // A round whose fault acts on the stores themselves gets a pipeline on stores of its own.
        target.renew(faults).await?;
        let store = verifier::collect::mysql::connect(&target.stack.database_url).await?;
        for strategy in Strategy::ALL {
            let label = format!("{strategy} (fault: {})", describe(faults));
            eprintln!("\n== {label} ==");
            let writes_before = database_writes(&store).await?;
            let stage = stage::run(
                cli,
                target,
                strategy,
                faults,
                &round_dir.join(strategy.as_str()),
                &format!("{round_id}-{strategy}"),
            )
            .await
            .with_context(|| format!("the {label} run failed"))?;
            let judgement = judge::verify(
                &target.stack,
                &round_dir,
                strategy.as_str(),
                cli.drain_timeout,
            )
            .await
            .with_context(|| format!("the verifier could not verify the {label} run"))?;
            let writes = database_writes(&store).await? - writes_before;
            let verdict = judgement
                .verdicts
                .first()
                .context("the verifier returned no verdict")?;
            eprintln!("{label}: {}", judgement.final_line);
            // On stores of the round's own, nobody can verify the round after loadgen: the
            // design failing there fails the run (the course's stages are meant to fail).
            if target.sandbox.is_some() && strategy == Strategy::Reliable && !verdict.holds() {
                failed_rounds.push(format!("{label}: {}", judgement.final_line));
            }
            failed_thresholds.extend(
                crate::report::failed_thresholds(&stage.summary)
                    .into_iter()
                    .map(|threshold| format!("{threshold} ({label})")),
            );
            rows.push(StageRow::new(&stage.summary, verdict, &judgement, writes));
        }
        store.disconnect().await;
    }
    compare::write_all(&dir, &rows, cli)?;
    Ok(Outcome {
        terminal: compare::terminal(&rows),
        run_dir: dir,
        failed_thresholds,
        failed_rounds,
    })
}

/// The rounds a comparison runs: one with the faults given, or, when several are given, one
/// per fault (together, one fault can hide another: an outage keeps a consumer from ever
/// reaching its crash point).
fn rounds(faults: &[FaultSpec]) -> Vec<Vec<FaultSpec>> {
    if faults.len() > 1 {
        faults.iter().map(|fault| vec![*fault]).collect()
    } else {
        vec![faults.to_vec()]
    }
}

/// The directory (and run-id suffix) of round `index` when there are several: its fault's
/// name, numbered when another round has a fault of the same kind (`db-lock@1s`, `db-lock@5s`).
fn round_name(rounds: &[Vec<FaultSpec>], index: usize) -> Option<String> {
    let [fault] = rounds.get(index)?.as_slice() else {
        return None;
    };
    if rounds.len() < 2 {
        return None;
    }
    let kind = fault.kind.as_str();
    let same_kind = rounds
        .iter()
        .filter(|round| round.first().is_some_and(|f| f.kind == fault.kind))
        .count();
    Some(if same_kind > 1 {
        format!("{kind}-{}", index + 1)
    } else {
        kind.to_owned()
    })
}

/// `none`, or the faults as given, joined by commas.
pub(crate) fn describe(faults: &[FaultSpec]) -> String {
    if faults.is_empty() {
        return "none".to_owned();
    }
    let named: Vec<String> = faults.iter().map(ToString::to_string).collect();
    named.join(",")
}

/// INSERT statements the server ran since it started (every client's: the comparison takes
/// the difference across one stage). Coupons and failed events are only ever inserted; the
/// updates left out are the retry worker's bookkeeping on older campaigns' failed events,
/// which would otherwise count against whichever stage was running.
async fn database_writes(store: &Store) -> anyhow::Result<u64> {
    coupon_store::admin::server_insert_count(store)
        .await
        .context("cannot read mysql's statement counters")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nemesis::FaultKind;

    #[test]
    fn several_faults_get_a_round_each_and_one_fault_or_none_a_single_round() {
        let crash = FaultSpec::new(FaultKind::ConsumerCrash);
        let outage = FaultSpec::new(FaultKind::DbOutage);
        assert_eq!(rounds(&[]), vec![Vec::<FaultSpec>::new()]);
        assert_eq!(rounds(&[outage]), vec![vec![outage]]);
        assert_eq!(rounds(&[crash, outage]), vec![vec![crash], vec![outage]]);
        assert_eq!(describe(&[crash, outage]), "consumer-crash,db-outage");
        assert_eq!(describe(&[]), "none");
        let rounds_of = |faults: &[&str]| -> Vec<Vec<FaultSpec>> {
            rounds(
                &faults
                    .iter()
                    .map(|f| f.parse().expect("parses"))
                    .collect::<Vec<_>>(),
            )
        };
        let two = rounds_of(&["db-lock@1s", "poison"]);
        assert_eq!(round_name(&two, 0).as_deref(), Some("db-lock"));
        assert_eq!(round_name(&two, 1).as_deref(), Some("poison"));
        let same = rounds_of(&["db-lock@1s", "db-lock@5s", "poison"]);
        assert_eq!(round_name(&same, 0).as_deref(), Some("db-lock-1"));
        assert_eq!(round_name(&same, 1).as_deref(), Some("db-lock-2"));
        assert_eq!(round_name(&same, 2).as_deref(), Some("poison"));
        assert_eq!(round_name(&rounds_of(&["poison"]), 0), None);
    }
}
