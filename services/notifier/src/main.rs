//! `glucochain-notifier`: alerts and reminders to caregivers and clinicians.

use clap::Parser;

#[derive(Parser)]
#[command(version, about = "GlucoChain notifier: email, SMS and webhook delivery with escalation and acknowledgement")]
struct Cli {
    #[command(flatten)]
    config: glucochain_notifier::NotifierConfig,
}

fn main() -> anyhow::Result<()> {
    glucochain_notifier::main_with(Cli::parse().config)
}
