//! `emrctl`, the GlucoChain command line, as a library so that other test
//! harnesses can run exactly the same program. See `emrctl --help`.

mod cli;
mod cmd;

/// The devnet's processes: start, signal and restart them (`emrctl devnet`).
pub use cmd::devnet;
/// Checking a ledger's chain from genesis (`emrctl verify-chain`).
pub use cmd::http::{
    AuditBroken, ChainBroken, VerifiedAudit, VerifiedChain, verify_ledger_chain, verify_patient_audit,
};

use clap::Parser;

/// Runs the command line with the process arguments.
pub fn run_from_args() -> std::process::ExitCode {
    let args = cli::Cli::parse();
    match cmd::run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("emrctl: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
