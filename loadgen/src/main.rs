use clap::Parser;
use loadgen::{Cli, pipeline};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    if std::env::args().nth(1).as_deref() == Some(pipeline::SERVE_PIPELINE) {
        coupon_runtime::init_telemetry("info");
        let part = std::env::args().nth(2).unwrap_or_default();
        return match pipeline::serve(&part).await {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("the {part} child failed: {error:#}");
                std::process::ExitCode::from(2)
            }
        };
    }
    coupon_runtime::init_telemetry("warn");
    let cli = Cli::parse();
    if let Some(loadgen::cli::Command::Diff(args)) = &cli.command {
        return match loadgen::diff::run(args) {
            Ok(text) => {
                println!("{text}");
                std::process::ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("loadgen diff could not compare: {error:#}");
                std::process::ExitCode::from(2)
            }
        };
    }
    match loadgen::run(cli).await {
        Ok(outcome) => {
            println!("{}", outcome.describe());
            if !outcome.failed_rounds.is_empty() {
                eprintln!(
                    "loadgen: the verdict failed: {}",
                    outcome.failed_rounds.join("; ")
                );
                std::process::ExitCode::from(loadgen::cli::EXIT_VERDICT)
            } else if outcome.failed_thresholds.is_empty() {
                std::process::ExitCode::SUCCESS
            } else {
                eprintln!(
                    "loadgen: thresholds failed: {}",
                    outcome.failed_thresholds.join("; ")
                );
                std::process::ExitCode::from(loadgen::cli::EXIT_THRESHOLD)
            }
        }
        Err(error) => {
            eprintln!("loadgen could not run: {error:#}");
            std::process::ExitCode::from(2)
        }
    }
}
