//! The bare reference apply (see `bench::reference`).

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    bench::reference::serve(bench::reference::Args::parse()).await
}
