//! Test-only: a validator that double-votes and sends forged signatures, so
//! the fault tests can check that the others neither fork nor stall, and
//! record the evidence. Not part of any deployment.

use clap::Parser;
use glucochain_validator::{Misbehavior, ValidatorConfig, main_with};

/// TEST ONLY: an equivocating validator.
#[derive(Parser)]
#[command(name = "glucochain-validator-byzantine")]
struct Cli {
    #[command(flatten)]
    config: ValidatorConfig,
}

fn main() -> anyhow::Result<()> {
    main_with(Cli::parse().config, Misbehavior::Equivocate)
}
