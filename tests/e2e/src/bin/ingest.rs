//! The ingest binary, for the end-to-end tests.
use clap::Parser;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    config: glucochain_ingest::IngestConfig,
}

fn main() -> anyhow::Result<()> {
    glucochain_ingest::main_with(Cli::parse().config)
}
