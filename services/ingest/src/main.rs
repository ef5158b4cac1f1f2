//! `glucochain-ingest`: the HTTPS write API (`--help`).

use clap::Parser;
use glucochain_ingest::{IngestConfig, main_with};

#[derive(Parser)]
#[command(name = "glucochain-ingest", version, about = "GlucoChain ingest: signed transactions in, status out")]
struct Cli {
    #[command(flatten)]
    config: IngestConfig,
}

fn main() -> anyhow::Result<()> {
    main_with(Cli::parse().config)
}
