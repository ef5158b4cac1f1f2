//! `glucochain-ledger`: the verified chain and its audited read API (`--help`).

use clap::Parser;
use glucochain_ledger::{LedgerConfig, main_with};

#[derive(Parser)]
#[command(name = "glucochain-ledger", version, about = "GlucoChain ledger store and read API")]
struct Cli {
    #[command(flatten)]
    config: LedgerConfig,
}

fn main() -> anyhow::Result<()> {
    main_with(Cli::parse().config)
}
