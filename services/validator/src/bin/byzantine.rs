//! Test-only: a validator that misbehaves on purpose — double votes and
//! forged signatures, proposals that break the block rules, replayed old
//! messages, floods — so the fault tests can check that the others neither
//! fork nor stall, and record the evidence. Not part of any deployment.

use clap::{Parser, ValueEnum};
use glucochain_validator::{Misbehavior, ValidatorConfig, main_with};

/// One kind of misbehaviour.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Kind {
    /// Conflicting second votes, and copies with forged signatures.
    Equivocate,
    /// Blocks with a wrong prev_hash, tx_root or state_root, or an invalid transaction.
    BadProposals,
    /// Old consensus messages of the others sent again.
    Replay,
    /// Undecodable messages and proposal streams for many rounds ahead.
    Flood,
    /// Votes for the next height while the chain is idle.
    Nudge,
}

/// TEST ONLY: a byzantine validator.
#[derive(Parser)]
#[command(name = "glucochain-validator-byzantine")]
struct Cli {
    #[command(flatten)]
    config: ValidatorConfig,
    /// What to do wrong (default: everything).
    #[arg(long, env = "GLUCOCHAIN_MISBEHAVE", value_enum, value_delimiter = ',')]
    misbehave: Vec<Kind>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut m = if cli.misbehave.is_empty() { Misbehavior::ALL } else { Misbehavior::NONE };
    for k in cli.misbehave {
        match k {
            Kind::Equivocate => m.equivocate = true,
            Kind::BadProposals => m.bad_proposals = true,
            Kind::Replay => m.replay = true,
            Kind::Flood => m.flood = true,
            Kind::Nudge => m.nudge = true,
        }
    }
    main_with(cli.config, m)
}
