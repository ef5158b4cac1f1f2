//! The validator binary, for the end-to-end tests.
use clap::Parser;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    config: glucochain_validator::ValidatorConfig,
}

fn main() -> anyhow::Result<()> {
    glucochain_validator::main_with(Cli::parse().config, glucochain_validator::Misbehavior::NONE)
}
