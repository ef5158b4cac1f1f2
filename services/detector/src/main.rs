//! `glucochain-detector`: glucose alerts from CGM readings as ingest accepts them (`--help`).

use clap::Parser;
use glucochain_detector::{DetectorServiceConfig, main_with};

#[derive(Parser)]
#[command(name = "glucochain-detector", version, about = "GlucoChain glucose detector: CGM in, alerts out")]
struct Cli {
    #[command(flatten)]
    config: DetectorServiceConfig,
}

fn main() -> anyhow::Result<()> {
    main_with(Cli::parse().config)
}
