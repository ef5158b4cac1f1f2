//! `glucochain-faults`: injects faults into a devnet under load and prints
//! the reliability table (docs/reliability.md). Exit status 1 when an
//! invariant did not hold.

use clap::Parser;
use glucochain_faults::{Fault, Options, Profile, run};
use std::path::PathBuf;
use std::process::ExitCode;

/// Fault injection under load: crashes, restarts, outages, clock skew, disk
/// full and partitions, one at a time, with the invariants checked after.
#[derive(Parser)]
#[command(name = "glucochain-faults")]
struct Cli {
    /// A new directory for the devnet.
    #[arg(long)]
    dir: PathBuf,
    /// Directory of emrctl and the service binaries.
    #[arg(long, default_value = "target/release")]
    bin_dir: PathBuf,
    /// PostgreSQL server for the services.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432")]
    postgres: String,
    /// `short` (CI: every fault for seconds) or `soak` (every fault for a minute, higher load).
    #[arg(long, default_value = "short")]
    profile: String,
    /// Only these faults (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Fault>,
    /// Also write the report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    let profile = match cli.profile.as_str() {
        "short" => Profile::short(),
        "soak" => Profile::soak(),
        other => anyhow::bail!("unknown profile {other} (short, soak)"),
    };
    let faults = if cli.only.is_empty() { Fault::ALL.to_vec() } else { cli.only };
    let o = Options {
        dir: cli.dir,
        emrctl: cli.bin_dir.join("emrctl"),
        bin_dir: cli.bin_dir,
        postgres: cli.postgres,
        profile,
        faults,
    };
    let report = run(&o).await?;
    println!("{}", report.markdown());
    if let Some(path) = cli.json {
        std::fs::write(&path, serde_json::to_vec_pretty(&report)?)?;
    }
    Ok(if report.violations.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
