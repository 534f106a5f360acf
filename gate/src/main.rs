use std::process::ExitCode;

use clap::Parser;
use gate::cli::Cli;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match gate::run::run(&cli).await {
        Ok(tally) => {
            println!("gate: {} passed, {} failed", tally.passed, tally.failed);
            if tally.failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(error) => {
            eprintln!("gate could not run: {error:#}");
            ExitCode::from(2)
        }
    }
}
