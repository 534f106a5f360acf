//! `--fault all`: the fault matrix. Every fault, with its defaults, in a round of its own
//! against one strategy (the design, unless `--strategy` says otherwise): the burst, the fault
//! struck and healed, the round verified by the verifier on the stores it ran on. Then one
//! table, `matrix.{md,json,html}`, and an exit code that fails when any round did.

use anyhow::Context;
use coupon_domain::Strategy;

use crate::{
    cli::Cli,
    judge,
    nemesis::FaultSpec,
    report::{
        self, Outcome,
        matrix::{self, MatrixRow},
    },
    stage,
    target::Target,
};

pub async fn run(cli: &Cli, target: &mut Target, strategy: Strategy) -> anyhow::Result<Outcome> {
    let matrix_id = report::new_run_id();
    let name = format!("faults-{matrix_id}");
    let dir = cli.report_dir.join(&name);
    std::fs::create_dir_all(&dir).with_context(|| format!("failed to create {}", dir.display()))?;
    // As for a comparison: `latest` names the matrix from its start.
    report::point_latest(&cli.report_dir, &name)?;
    let mut rows = Vec::new();
    let mut failed_thresholds = Vec::new();
    for (index, spec) in cli.fault.iter().enumerate() {
        eprintln!(
            "\n== fault {}/{}: {spec} ({strategy}) ==",
            index + 1,
            cli.fault.len()
        );
        // A fault that acts on the stores themselves gets a pipeline on stores of its own.
        let row = match target.renew(&[*spec]).await {
            Ok(()) => {
                let (row, thresholds) = round(cli, target, strategy, spec, &dir, &matrix_id).await;
                failed_thresholds.extend(
                    thresholds
                        .into_iter()
                        .map(|threshold| format!("{threshold} ({spec})")),
                );
                row
            }
            Err(error) => MatrixRow::failed(
                spec,
                format!("could not start the round's pipeline: {error:#}"),
            ),
        };
        eprintln!("fault {spec}: {}", row.verdict());
        rows.push(row);
    }
    matrix::write_all(&dir, &rows, cli)?;
    let failed_rounds = rows
        .iter()
        .filter(|row| !row.passed())
        .map(|row| format!("{}: {}", row.fault, row.verdict()))
        .collect();
    Ok(Outcome {
        terminal: matrix::terminal(&rows),
        run_dir: dir,
        failed_thresholds,
        failed_rounds,
    })
}

/// One fault's round, verified, with the thresholds it failed; a round that could not run or
/// be verified is a row that says why, and the matrix goes on with the next fault.
async fn round(
    cli: &Cli,
    target: &Target,
    strategy: Strategy,
    spec: &FaultSpec,
    dir: &std::path::Path,
    matrix_id: &str,
) -> (MatrixRow, Vec<String>) {
    let name = spec.kind.as_str();
    let faults = [*spec];
    let stage = match stage::run(
        cli,
        target,
        strategy,
        &faults,
        &dir.join(name),
        &format!("{matrix_id}-{name}"),
    )
    .await
    {
        Ok(stage) => stage,
        Err(error) => return (MatrixRow::failed(spec, format!("{error:#}")), Vec::new()),
    };
    let thresholds = report::failed_thresholds(&stage.summary);
    let row = match judge::verify(&target.stack, dir, name, cli.drain_timeout).await {
        Ok(judgement) => match judgement.verdicts.first() {
            Some(verdict) => MatrixRow::new(spec, &stage.summary, verdict),
            None => MatrixRow::failed(spec, "the verifier returned no verdict".to_owned()),
        },
        Err(error) => MatrixRow::failed(spec, format!("could not verify: {error:#}")),
    };
    (row, thresholds)
}
