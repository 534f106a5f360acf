use clap::Parser;
use verifier::cli::{Cli, EXIT_CANNOT_VERIFY};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    coupon_runtime::init_telemetry("error");
    let cli = Cli::parse();
    match verifier::verify::run(&cli).await {
        Ok(code) => std::process::ExitCode::from(code),
        Err(error) => {
            eprintln!("verifier could not verify: {error:#}");
            println!("VERDICT: CANNOT VERIFY, {error:#}");
            std::process::ExitCode::from(EXIT_CANNOT_VERIFY)
        }
    }
}
