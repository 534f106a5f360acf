use clap::Parser;

/// Skeleton: filled in by its issue.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
    eprintln!("not built yet");
    std::process::exit(2);
}
