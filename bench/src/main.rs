//! `glucochain-bench`: measures the crypto ceiling and the write path of a
//! devnet under load, prints Markdown tables and writes the figures as JSON.
//! See `docs/benchmarks.md`.

use anyhow::{Context as _, bail};
use clap::Parser;
use glucochain_bench::clinical::ClinicalResult;
use glucochain_bench::crypto;
use glucochain_bench::load::{Load, Target};
use glucochain_bench::load::{ReadResult, RunResult};
use glucochain_bench::report::{Machine, Report};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(name = "glucochain-bench", about = "GlucoChain benchmarks: crypto limits and the write path of a devnet")]
struct Args {
    /// Validator counts, one devnet each.
    #[arg(long, value_delimiter = ',', default_value = "4,7")]
    validators: Vec<usize>,
    /// Open-loop base rate, transactions per second.
    #[arg(long, default_value_t = 250.0)]
    base_rate: f64,
    /// Multiples of the base rate to offer.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4")]
    multipliers: Vec<f64>,
    /// Closed-loop client counts.
    #[arg(long, value_delimiter = ',', default_value = "64,256")]
    clients: Vec<usize>,
    /// Seconds per load run.
    #[arg(long, default_value_t = 20.0)]
    secs: f64,
    /// Patients (signers) in the workload.
    #[arg(long, default_value_t = 300)]
    patients: usize,
    /// PostgreSQL server for the devnet's services.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432")]
    postgres: String,
    /// Where emrctl and the service binaries are.
    #[arg(long, default_value = "target/release")]
    bin_dir: PathBuf,
    /// Where to write the JSON results.
    #[arg(long, default_value = "bench/results")]
    out: PathBuf,
    /// Where to write the SVG plots.
    #[arg(long, default_value = "docs/bench")]
    plots: PathBuf,
    /// Seconds spent on each crypto figure.
    #[arg(long, default_value_t = 1.0)]
    crypto_secs: f64,
    /// Concurrent readers of each kind (FHIR day bundle, inclusion proof) under writes.
    #[arg(long, default_value_t = 4)]
    readers: usize,
    /// Writes offered while reading, tx/s.
    #[arg(long, default_value_t = 100.0)]
    read_write_rate: f64,
    /// Patients with a care plan and a falling trace (clinical latency).
    #[arg(long, default_value_t = 20)]
    clinical_patients: usize,
    /// Only the crypto limits.
    #[arg(long)]
    crypto_only: bool,
}

fn emrctl(bin_dir: &Path, args: &[&str]) -> anyhow::Result<()> {
    let program = bin_dir.join("emrctl");
    let status = Command::new(&program)
        .args(args)
        // Measure the pipeline, not the rate limiters (writes and reads):
        // every quota ingest and the ledger keep is opened wide (the
        // harness registers hundreds of new identities from one address).
        .envs(
            ["RATE", "READ_RATE", "YOUNG_RATE", "PATIENT_RATE", "GLOBAL_RATE"]
                .iter()
                .flat_map(|q| [format!("GLUCOCHAIN_{q}_PER_SEC"), format!("GLUCOCHAIN_{q}_BURST")])
                .chain(["GLUCOCHAIN_NEW_IDS_PER_IP_PER_MIN".into(), "GLUCOCHAIN_NEW_IDS_PER_IP_BURST".into()])
                .map(|k| (k, "1000000")),
        )
        .env("RUST_LOG", "warn")
        .status()
        .with_context(|| format!("{} (cargo build --release --workspace --bins)", program.display()))?;
    if !status.success() {
        bail!("emrctl {} failed", args.join(" "));
    }
    Ok(())
}

type Measured = (Vec<RunResult>, Vec<ReadResult>, ClinicalResult);

async fn runs_for(args: &Args, validators: usize) -> anyhow::Result<Measured> {
    let dir = tempfile_dir(validators)?;
    let d = dir.display().to_string();
    let v = validators.to_string();
    let bins = args.bin_dir.display().to_string();
    emrctl(
        &args.bin_dir,
        &["devnet", "up", "--dir", &d, "--validators", &v, "--postgres", &args.postgres, "--bin-dir", &bins],
    )?;
    let result = async {
        let target = Target::read(&dir, Some(&args.postgres))?;
        let mut load = Load::prepare(target, args.patients, validators).await?;
        let mut runs = Vec::new();
        for m in &args.multipliers {
            let rate = args.base_rate * m;
            eprintln!("bench: {validators} validators, open loop {rate:.0} tx/s for {} s", args.secs);
            let r = load.open_loop(rate, args.secs).await?;
            eprintln!("bench:   committed {:.0} tx/s, p99 {:.0} ms", r.committed_tps, r.commit_latency.p99_ms);
            runs.push(r);
        }
        for c in &args.clients {
            eprintln!("bench: {validators} validators, closed loop {c} clients for {} s", args.secs);
            let r = load.closed_loop(*c, args.secs).await?;
            eprintln!("bench:   committed {:.0} tx/s, p99 {:.0} ms", r.committed_tps, r.commit_latency.p99_ms);
            runs.push(r);
        }
        eprintln!(
            "bench: {validators} validators, {} readers of each kind under {:.0} tx/s of writes for {} s",
            args.readers, args.read_write_rate, args.secs
        );
        let reads = load.reads(args.readers, args.read_write_rate, args.secs).await?;
        for r in &reads {
            eprintln!("bench:   {} {:.0}/s, p99 {:.1} ms", r.kind, r.per_sec, r.latency.p99_ms);
        }
        eprintln!("bench: {validators} validators, clinical latency over {} patients", args.clinical_patients);
        let clinical = load.clinical(args.clinical_patients, Duration::from_millis(500)).await?;
        eprintln!(
            "bench:   reading → email p50 {:.0} ms, p99 {:.0} ms ({} of {} emailed)",
            clinical.reading_to_email.p50_ms, clinical.reading_to_email.p99_ms, clinical.emailed, clinical.patients
        );
        anyhow::Ok((runs, reads, clinical))
    }
    .await;
    let _ = emrctl(&args.bin_dir, &["devnet", "down", "--dir", &d]);
    drop_databases(&dir, &args.postgres);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// Drops the devnet's databases (`devnet down` keeps them, as it keeps the directory).
fn drop_databases(dir: &Path, postgres: &str) {
    let Ok(text) = std::fs::read_to_string(dir.join("devnet.json")) else { return };
    let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else { return };
    let admin = format!("{}/postgres", postgres.trim_end_matches('/'));
    for name in v["databases"].as_object().into_iter().flat_map(|m| m.values()).filter_map(|n| n.as_str()) {
        let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
        if !Command::new("psql").args([&admin, "-qc", &sql]).status().is_ok_and(|s| s.success()) {
            eprintln!("bench: could not drop database {name}");
        }
    }
}

fn tempfile_dir(validators: usize) -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("glucochain-bench-{}-v{validators}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn nats_server() -> String {
    // The same search the devnet makes (PATH, then Python's scripts directory).
    let scripts = Command::new("python3")
        .args(["-c", "import sysconfig; print(sysconfig.get_path('scripts'))"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let pip = Path::new(&scripts).join("nats-server");
    if pip.is_file() { pip.display().to_string() } else { "nats-server".into() }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    eprintln!("bench: crypto limits ({} s each)", args.crypto_secs);
    let crypto = crypto::measure(Duration::from_secs_f64(args.crypto_secs));
    let (mut runs, mut reads, mut clinical) = (Vec::new(), Vec::new(), Vec::new());
    if !args.crypto_only {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        for v in &args.validators {
            let (r, rd, c) = rt.block_on(runs_for(&args, *v))?;
            runs.extend(r);
            reads.extend(rd);
            clinical.push(c);
        }
    }
    let now = glucochain_types::time::Timestamp::now();
    let report = Report {
        taken_at: now.to_rfc3339(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        machine: Machine::this(&nats_server()),
        crypto,
        runs,
        reads,
        clinical,
    };
    std::fs::create_dir_all(&args.out)?;
    let path = args.out.join(format!("{}.json", now.to_rfc3339().replace(':', "")));
    std::fs::write(&path, serde_json::to_vec_pretty(&report)?)?;
    std::fs::write(args.out.join("latest.md"), report.markdown())?;
    if !report.runs.is_empty() {
        for f in glucochain_bench::plot::all(&report.runs, &args.plots)? {
            eprintln!("bench: plot {}", f.display());
        }
    }
    println!("{}", report.markdown());
    eprintln!("bench: results in {} and {}", path.display(), args.out.join("latest.md").display());
    Ok(())
}
