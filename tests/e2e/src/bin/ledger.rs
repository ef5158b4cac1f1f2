//! The ledger binary, for the end-to-end tests.
use clap::Parser;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    config: glucochain_ledger::LedgerConfig,
}

fn main() -> anyhow::Result<()> {
    glucochain_ledger::main_with(Cli::parse().config)
}
