//! The notifier binary, for the end-to-end tests.
use clap::Parser;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    config: glucochain_notifier::NotifierConfig,
}

fn main() -> anyhow::Result<()> {
    glucochain_notifier::main_with(Cli::parse().config)
}
