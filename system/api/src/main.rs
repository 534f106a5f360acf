use clap::Parser;
use coupon_api::{Application, Settings};
use coupon_runtime::{init_telemetry, shutdown_signal};

/// The coupon apply api: gates each apply in Redis, publishes the win to Kafka.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    settings: Settings,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_telemetry("info");
    let cli = Cli::parse();
    let app = Application::build(cli.settings).await?;
    app.run_until_stopped(shutdown_signal()).await
}
