//! The results file (`bench/results/*.json`) and its Markdown tables.

use crate::clinical::ClinicalResult;
use crate::crypto::CryptoLimits;
use crate::load::{ReadResult, RunResult};
use serde::Serialize;
use std::fmt::Write as _;

/// Where and with what the figures were taken.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// CPU model.
    pub cpu: String,
    /// Cores the process may use.
    pub cores: usize,
    /// Memory, GiB.
    pub memory_gib: f64,
    /// `rustc --version`, `nats-server --version`, `psql --version`, `git rev-parse HEAD`.
    pub versions: Vec<String>,
}

/// Everything one run of the harness measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// When (RFC 3339).
    pub taken_at: String,
    /// The command line.
    pub command: String,
    /// Machine and versions.
    pub machine: Machine,
    /// Crypto limits per core.
    pub crypto: CryptoLimits,
    /// Load runs.
    pub runs: Vec<RunResult>,
    /// Reads under write load.
    pub reads: Vec<ReadResult>,
    /// Reading → alert → email.
    pub clinical: Vec<ClinicalResult>,
}

fn first_line(cmd: &str, args: &[&str]) -> String {
    std::process::Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .map(|o| {
            let text = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
            text.lines().next().unwrap_or("").trim().to_string()
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| format!("{cmd}: not found"))
}

impl Machine {
    /// Reads this machine (`/proc/cpuinfo`, `/proc/meminfo`, tool versions).
    pub fn this(nats_server: &str) -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name").map(|v| v.trim_start_matches([' ', '\t', ':']).to_string()))
            .unwrap_or_else(|| "unknown".into());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let mem_kib: f64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0.0);
        Machine {
            cpu,
            cores: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            memory_gib: mem_kib / 1024.0 / 1024.0,
            versions: vec![
                first_line("rustc", &["--version"]),
                first_line(nats_server, &["--version"]),
                first_line("psql", &["--version"]),
                format!("commit {}", first_line("git", &["rev-parse", "--short", "HEAD"])),
            ],
        }
    }
}

impl Report {
    /// The tables, as Markdown.
    pub fn markdown(&self) -> String {
        let c = &self.crypto;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "Machine: {}, {} cores, {:.0} GiB; {}",
            self.machine.cpu,
            self.machine.cores,
            self.machine.memory_gib,
            self.machine.versions.join("; ")
        );
        let _ = writeln!(s, "\nCommand: `{}` ({})\n", self.command, self.taken_at);
        let _ = writeln!(s, "| Crypto, one core | per second |\n|---|---:|");
        let _ = writeln!(s, "| Ed25519 sign | {:.0} |", c.sign_per_sec);
        let _ = writeln!(s, "| Ed25519 verify (strict) | {:.0} |", c.verify_per_sec);
        let _ = writeln!(s, "| Ed25519 batch verify, 64 | {:.0} |", c.batch64_verify_per_sec);
        let _ = writeln!(s, "| Ed25519 batch verify, 256 | {:.0} |", c.batch256_verify_per_sec);
        let _ = writeln!(s, "| SHA-256 of 1 KiB | {:.0} |", c.sha256_1k_per_sec);
        let _ = writeln!(s, "| SHA-256, MiB | {:.0} |", c.sha256_mib_per_sec);
        let _ = writeln!(
            s,
            "\n| Run | V | Offered | Accepted | Committed | Committed tx/s | of ceiling | submit→commit p50 / p95 / p99 / max (ms) | 202 p99 (ms) | Blocks | interval (s) | tx/block mean / max | Refused |"
        );
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---|---|");
        for r in &self.runs {
            let run = r.label();
            let ceiling = c.tx_ceiling(r.validators, self.machine.cores);
            let l = &r.commit_latency;
            let _ = writeln!(
                s,
                "| {run} | {} | {} | {} | {} | {:.0} | {:.0}% | {:.0} / {:.0} / {:.0} / {:.0} | {:.0} | {} | {:.2} | {:.0} / {} | {:?} |",
                r.validators,
                r.sent,
                r.accepted,
                r.committed,
                r.committed_tps,
                100.0 * r.committed_tps / ceiling,
                l.p50_ms,
                l.p95_ms,
                l.p99_ms,
                l.max_ms,
                r.accept_latency.p99_ms,
                r.blocks,
                r.block_interval_secs,
                r.txs_per_block_mean,
                r.txs_per_block_max,
                r.refused
            );
        }
        let _ = writeln!(
            s,
            "\n| Run | CPU s per 1000 tx by process | peak RSS MiB | JetStream B/tx | PostgreSQL B/tx |\n|---|---|---|---:|---:|"
        );
        for r in &self.runs {
            let run = format!("V={} {}", r.validators, r.label());
            let cpu: Vec<String> = r.cpu_secs_per_1000_tx.iter().map(|(k, v)| format!("{k} {v:.2}")).collect();
            let rss: Vec<String> = r
                .peak_rss_mib
                .iter()
                .filter(|(k, _)| k.starts_with("validator-0") || !k.starts_with("validator"))
                .map(|(k, v)| format!("{k} {v:.0}"))
                .collect();
            let _ = writeln!(
                s,
                "| {run} | {} | {} | {} | {} |",
                cpu.join(", "),
                rss.join(", "),
                r.jetstream_bytes_per_tx.map(|b| format!("{b:.0}")).unwrap_or_else(|| "–".into()),
                r.postgres_bytes_per_tx.map(|b| format!("{b:.0}")).unwrap_or_else(|| "–".into()),
            );
        }
        if !self.reads.is_empty() {
            let _ = writeln!(
                s,
                "\n| Read, under writes | V | readers | writes offered | ok / requests | per second | p50 / p95 / p99 / max (ms) | entries |\n|---|---:|---:|---:|---:|---:|---|---:|"
            );
            for r in &self.reads {
                let l = &r.latency;
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {:.0} tx/s | {} / {} | {:.0} | {:.1} / {:.1} / {:.1} / {:.1} | {} |",
                    r.kind,
                    r.validators,
                    r.readers,
                    r.write_tps,
                    r.ok,
                    r.requests,
                    r.per_sec,
                    l.p50_ms,
                    l.p95_ms,
                    l.p99_ms,
                    l.max_ms,
                    r.entries
                );
            }
        }
        if !self.clinical.is_empty() {
            let _ = writeln!(
                s,
                "\n| Clinical latency | V | patients | emailed | reading → alert event p50 / p99 / max (ms) | reading → email in the SMTP mailbox p50 / p99 / max (ms) |\n|---|---:|---:|---:|---|---|"
            );
            for c in &self.clinical {
                let (a, e) = (&c.reading_to_alert, &c.reading_to_email);
                let _ = writeln!(
                    s,
                    "| falling trace per patient | {} | {} | {} | {:.0} / {:.0} / {:.0} | {:.0} / {:.0} / {:.0} |",
                    c.validators, c.patients, c.emailed, a.p50_ms, a.p99_ms, a.max_ms, e.p50_ms, e.p99_ms, e.max_ms
                );
            }
        }
        let _ = writeln!(
            s,
            "\nCeiling: {} cores × {:.0} verifications/s ÷ (1 at ingest + V validators) = {:.0} tx/s at V=4, {:.0} at V=7 (with validators batch-verifying 64 at a time: {:.0} and {:.0}).",
            self.machine.cores,
            c.verify_per_sec,
            c.tx_ceiling(4, self.machine.cores),
            c.tx_ceiling(7, self.machine.cores),
            c.tx_ceiling_batched(4, self.machine.cores),
            c.tx_ceiling_batched(7, self.machine.cores)
        );
        s
    }
}
