//! `glucochain-validator`: one BFT validator. Configuration from flags or
//! the environment (`--help`).

use clap::Parser;
use glucochain_validator::{Misbehavior, ValidatorConfig, main_with};

#[derive(Parser)]
#[command(name = "glucochain-validator", version, about = "GlucoChain BFT validator (Malachite over NATS)")]
struct Cli {
    #[command(flatten)]
    config: ValidatorConfig,
}

fn main() -> anyhow::Result<()> {
    main_with(Cli::parse().config, Misbehavior::NONE)
}
