//! One verification, step by step: pick what to verify, connect, drain, collect, reconcile,
//! render. Returns the exit code.

use std::path::PathBuf;

use anyhow::Context;

use crate::{
    cli::{Cli, EXIT_HOLDS, EXIT_VIOLATED},
    collect::{self, history::RunHistory, redis::GateReader},
    drain::{self, Drained},
    reconcile::{self, Verdict},
    render,
};

/// What was asked: a run (with its history), one campaign, or all of them.
fn scope(cli: &Cli) -> anyhow::Result<(Option<RunHistory>, Option<Vec<String>>)> {
    if let Some(campaign) = &cli.campaign {
        return Ok((None, Some(vec![campaign.clone()])));
    }
    if cli.all_campaigns {
        return Ok((None, None));
    }
    let run = cli.run.clone().unwrap_or_else(|| "latest".to_owned());
    let history = collect::history::read(&cli.report_dir.join(&run))?;
    let campaign = history.campaign_id.clone();
    Ok((Some(history), Some(vec![campaign])))
}

/// Runs the verification; `Err` means it could not verify (exit 2).
pub async fn run(cli: &Cli) -> anyhow::Result<u8> {
    let (history, campaigns) = scope(cli)?;
    let pool = collect::mysql::connect(&cli.database_url).await?;
    let gate = GateReader::connect(&cli.redis_url, &cli.redis_key_prefix).await?;
    let campaigns = match campaigns {
        Some(campaigns) => campaigns,
        None => collect::mysql::campaign_ids(&pool).await?,
    };
    eprintln!(
        "verifying {} (waiting up to {:?} for the pipeline to drain)",
        campaigns.join(", "),
        cli.drain_timeout
    );
    let drained = drain::wait(
        &cli.kafka_brokers,
        &cli.topic,
        &cli.group,
        &pool,
        &gate,
        &campaigns,
        cli.drain_timeout,
    )
    .await?;
    match drained {
        Drained::Yes { after } => eprintln!("drained after {:.1}s", after.as_secs_f64()),
        Drained::TimedOut { lag } => eprintln!(
            "the pipeline did not drain within {:?} (lag {lag}); judging as it stands",
            cli.drain_timeout
        ),
    }
    let (shared, _offsets) =
        collect::kafka::shared(&cli.kafka_brokers, &cli.topic, &cli.group).await?;
    let mut verdicts: Vec<Verdict> = Vec::new();
    for campaign in &campaigns {
        let mut facts = collect::mysql::campaign(&pool, campaign).await?;
        facts.gate = Some(
            gate.gate(campaign)
                .await
                .with_context(|| format!("redis at {}", cli.redis_url))?,
        );
        let run_history = history.clone().filter(|h| &h.campaign_id == campaign);
        verdicts.push(reconcile::reconcile(
            &facts.into_facts(&shared, run_history),
        ));
    }
    let holds = verdicts.iter().all(Verdict::holds);
    let exit_code = if holds { EXIT_HOLDS } else { EXIT_VIOLATED };
    let final_line = render::final_line(&verdicts);
    for verdict in &verdicts {
        println!("{}", render::terminal(verdict, cli.show));
    }
    let out_dir: PathBuf = match &history {
        Some(run) => run.dir.clone(),
        None => cli.report_dir.join(format!(
            "verdict-{}",
            if cli.all_campaigns {
                "all".to_owned()
            } else {
                campaigns.join("_")
            }
        )),
    };
    render::write(
        &out_dir,
        &verdicts,
        exit_code,
        matches!(drained, Drained::Yes { .. }),
        &final_line,
        cli.show,
    )?;
    println!(
        "verdict written to {}/verdict.{{json,md}}",
        out_dir.display()
    );
    println!("{final_line}");
    Ok(exit_code)
}
