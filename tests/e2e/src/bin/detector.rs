//! The detector binary, for the end-to-end tests.
use clap::Parser;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    config: glucochain_detector::DetectorServiceConfig,
}

fn main() -> anyhow::Result<()> {
    glucochain_detector::main_with(Cli::parse().config)
}
