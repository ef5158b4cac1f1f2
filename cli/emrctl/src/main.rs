//! `emrctl`: the GlucoChain command line. See `emrctl --help`.

mod cli;
mod cmd;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = cli::Cli::parse();
    match cmd::run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("emrctl: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
