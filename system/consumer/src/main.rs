use clap::Parser;
use coupon_consumer::{Consumer, Settings};
use coupon_runtime::{init_telemetry, shutdown_signal};

/// The coupon consumer: writes each issued coupon from Kafka to MySQL, idempotently.
/// Run several with the same --group to share the partitions.
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
    let consumer = Consumer::build(cli.settings).await?;
    consumer.run_until_stopped(shutdown_signal()).await
}
