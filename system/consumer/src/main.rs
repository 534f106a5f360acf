use clap::Parser;
use coupon_consumer::{Consumer, Settings};
use coupon_runtime::{init_telemetry, shutdown_signal};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_telemetry("info");
    let consumer = Consumer::build(Settings::parse()).await?;
    consumer.run_until_stopped(shutdown_signal()).await
}
