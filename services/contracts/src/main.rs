//! `glucochain-contracts`: the contracts engine (`--help`).

use clap::Parser;
use glucochain_contracts::{ContractsConfig, main_with};

#[derive(Parser)]
#[command(
    name = "glucochain-contracts",
    version,
    about = "GlucoChain contracts engine: access decisions, reminders, break-glass"
)]
struct Cli {
    #[command(flatten)]
    config: ContractsConfig,
}

fn main() -> anyhow::Result<()> {
    main_with(Cli::parse().config)
}
