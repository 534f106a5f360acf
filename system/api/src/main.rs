use clap::Parser;
use coupon_api::{Application, Settings};
use coupon_runtime::{init_telemetry, shutdown_signal};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_telemetry("info");
    let app = Application::build(Settings::parse()).await?;
    app.run_until_stopped(shutdown_signal()).await
}
