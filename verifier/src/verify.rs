//! One verification, step by step: pick what to verify, connect, drain, collect, reconcile,
//! render. Returns the exit code.

use std::path::PathBuf;

use anyhow::Context;
use coupon_domain::Strategy;
use coupon_runtime::stack::StackArgs;

use crate::{
    cli::{Cli, EXIT_HOLDS, EXIT_VIOLATED},
    collect::{
        self, Shared,
        history::RunHistory,
        kafka::{self, Payload},
        redis::GateReader,
    },
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
    on_its_stores(&history, &cli.stack)?;
    let campaign = history.campaign_id.clone();
    Ok((Some(history), Some(vec![campaign])))
}

/// A run loadgen gave stores of its own (a sandbox for a Redis or Kafka fault) is judged only
/// on those: loadgen verified it before it stopped them; any other stack lacks its campaign.
fn on_its_stores(history: &RunHistory, stack: &StackArgs) -> anyhow::Result<()> {
    match &history.private_stores {
        Some(stores)
            if stores.redis_url != stack.redis_url
                || stores.kafka_brokers != stack.kafka_brokers =>
        {
            let verdict = history.dir.join("verdict.md");
            let where_verdict = if verdict.is_file() {
                format!("its verdict is in {}", verdict.display())
            } else {
                "loadgen could not verify it (see its output and pipeline.log)".to_owned()
            };
            anyhow::bail!(
                "run {} ran on stores of its own (redis {}, kafka {}, database {}), which \
                 loadgen stopped when it finished; {where_verdict}",
                history.run_id,
                stores.redis_url,
                stores.kafka_brokers,
                stores.database_url,
            )
        }
        _ => Ok(()),
    }
}

/// What a verification found: one verdict per campaign, and where it was written.
#[derive(Debug, Clone)]
pub struct Judgement {
    pub verdicts: Vec<Verdict>,
    pub drained: Drained,
    pub exit_code: u8,
    pub final_line: String,
    pub out_dir: PathBuf,
}

/// Runs the verification and prints it; `Err` means it could not verify (exit 2).
pub async fn run(cli: &Cli) -> anyhow::Result<u8> {
    let judgement = judge(cli).await?;
    for verdict in &judgement.verdicts {
        println!("{}", render::terminal(verdict, cli.show));
    }
    println!(
        "verdict written to {}/verdict.{{json,md}}",
        judgement.out_dir.display()
    );
    println!("{}", judgement.final_line);
    Ok(judgement.exit_code)
}

/// Drains, collects, reconciles and writes `verdict.{json,md}`, without printing the verdicts.
pub async fn judge(cli: &Cli) -> anyhow::Result<Judgement> {
    let (history, campaigns) = scope(cli)?;
    let pool = collect::mysql::connect(&cli.stack.database_url).await?;
    let gate = GateReader::connect(&cli.stack.redis_url, &cli.stack.redis_key_prefix).await?;
    let campaigns = match campaigns {
        Some(campaigns) => campaigns,
        None => collect::mysql::campaign_ids(&pool).await?,
    };
    let mut strategies: Vec<(String, Strategy)> = Vec::with_capacity(campaigns.len());
    for campaign in &campaigns {
        strategies.push((
            campaign.clone(),
            collect::mysql::strategy(&pool, campaign).await?,
        ));
    }
    eprintln!(
        "verifying {} (waiting up to {:?} for the pipeline to drain)",
        campaigns.join(", "),
        cli.drain_timeout
    );
    let drained = drain::wait(&cli.stack, &pool, &gate, &strategies, cli.drain_timeout).await?;
    match drained {
        Drained::Yes { after } => eprintln!("drained after {:.1}s", after.as_secs_f64()),
        Drained::TimedOut { lag } => eprintln!(
            "the pipeline did not drain within {:?} (lag {lag}); judging as it stands",
            cli.drain_timeout
        ),
    }
    let shared = read_topics(cli, &strategies).await?;
    let mut verdicts: Vec<Verdict> = Vec::new();
    for (campaign, strategy) in &strategies {
        let mut facts = collect::mysql::campaign(&pool, campaign).await?;
        if strategy.has_gate() {
            facts.gate = Some(
                gate.gate(campaign)
                    .await
                    .with_context(|| format!("redis at {}", cli.stack.redis_address()))?,
            );
        }
        let run_history = history.clone().filter(|h| &h.campaign_id == campaign);
        verdicts.push(reconcile::reconcile(
            &facts.into_facts(&shared, run_history),
        ));
    }
    let holds = verdicts.iter().all(Verdict::holds);
    let exit_code = if holds { EXIT_HOLDS } else { EXIT_VIOLATED };
    let final_line = render::final_line(&verdicts);
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
    Ok(Judgement {
        verdicts,
        drained,
        exit_code,
        final_line,
        out_dir,
    })
}

/// The topics the campaigns' strategies use, each read once.
async fn read_topics(cli: &Cli, strategies: &[(String, Strategy)]) -> anyhow::Result<Shared> {
    let uses = |course: bool| {
        strategies
            .iter()
            .any(|(_, s)| s.has_gate() != course && s.uses_kafka())
    };
    let mut shared = Shared::default();
    if uses(false) {
        shared.pipeline = kafka::topic(
            &cli.stack.kafka_brokers,
            &cli.stack.topic,
            &cli.stack.group,
            Payload::Pipeline,
        )
        .await?;
    }
    if uses(true) {
        shared.course = kafka::topic(
            &cli.stack.kafka_brokers,
            &cli.stack.course_topic,
            &cli.stack.course_group,
            Payload::Course,
        )
        .await?;
    }
    Ok(shared)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_on_stores_of_its_own_is_judged_only_on_those() {
        let stack = StackArgs::from_env();
        let mut history = RunHistory {
            run_id: "r".into(),
            dir: "reports/r".into(),
            campaign_id: "c".into(),
            campaign_created: true,
            records: Vec::new(),
            private_stores: None,
        };
        assert!(
            on_its_stores(&history, &stack).is_ok(),
            "the configured stack"
        );
        history.private_stores = Some(coupon_domain::wire::PrivateStores {
            redis_url: "redis://127.0.0.1:1".into(),
            kafka_brokers: stack.kafka_brokers.clone(),
            database_url: "mysql://x@127.0.0.1:3306/coupons_fault_1".into(),
        });
        let refused = on_its_stores(&history, &stack)
            .expect_err("another redis")
            .to_string();
        assert!(refused.contains("redis://127.0.0.1:1"), "{refused}");
        assert!(refused.contains("could not verify it"), "{refused}");
        let on_them = StackArgs {
            redis_url: "redis://127.0.0.1:1".into(),
            ..stack
        };
        assert!(
            on_its_stores(&history, &on_them).is_ok(),
            "loadgen's own check"
        );
    }
}
