//! The contracts engine binary, for the end-to-end tests.
use clap::Parser;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    config: glucochain_contracts::ContractsConfig,
}

fn main() -> anyhow::Result<()> {
    glucochain_contracts::main_with(Cli::parse().config)
}
