//! The faults, and how each is injected into a running devnet and healed.
//! Validator 0 is never touched: it is the harness's reference.

use crate::proxy::Proxy;
use anyhow::{Context as _, bail};
use emrctl::devnet::{self, Restart};
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// One fault a real deployment meets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    /// SIGKILL of one validator of four, started again after the hold.
    KillValidator,
    /// SIGKILL of two validators of four: no quorum, the chain must halt
    /// without forking, and resume when they return.
    KillTwoValidators,
    /// SIGKILL of ingest (the write API).
    KillIngest,
    /// SIGKILL of the ledger (the read API and audit log).
    KillLedger,
    /// SIGKILL of the contracts engine.
    KillContracts,
    /// SIGKILL of the glucose detector.
    KillDetector,
    /// SIGKILL of the notifier.
    KillNotifier,
    /// SIGKILL of nats-server, started again on its JetStream store.
    NatsRestart,
    /// PostgreSQL stopped for the hold, then started (fast shutdown).
    PostgresRestart,
    /// The SMTP server down for the (longer) hold while alerts are raised.
    SmtpDown,
    /// One validator's clock 30 s ahead (libfaketime), beyond the 10 s the
    /// others tolerate in a proposal.
    ClockSkew,
    /// One validator's disk full (its data directory on a small tmpfs, filled).
    DiskFull,
    /// One validator cut off from NATS (a fault-injecting proxy drops its
    /// connections and refuses new ones).
    PartitionOne,
    /// Two validators cut off from the other two: no side has a quorum.
    PartitionHalf,
}

impl Fault {
    /// Every fault, in the order the harness injects them.
    pub const ALL: [Fault; 14] = [
        Fault::KillValidator,
        Fault::KillTwoValidators,
        Fault::KillIngest,
        Fault::KillLedger,
        Fault::KillContracts,
        Fault::KillDetector,
        Fault::KillNotifier,
        Fault::NatsRestart,
        Fault::PostgresRestart,
        Fault::SmtpDown,
        Fault::ClockSkew,
        Fault::DiskFull,
        Fault::PartitionOne,
        Fault::PartitionHalf,
    ];

    /// Its name on the command line and in reports.
    pub fn name(self) -> String {
        clap::ValueEnum::to_possible_value(&self).map(|v| v.get_name().to_string()).unwrap_or_default()
    }

    /// What the fault is, for the report.
    pub fn describe(self) -> &'static str {
        match self {
            Fault::KillValidator => "SIGKILL validator-1 (1 of 4)",
            Fault::KillTwoValidators => "SIGKILL validator-1 and validator-2 (2 of 4)",
            Fault::KillIngest => "SIGKILL ingest",
            Fault::KillLedger => "SIGKILL ledger",
            Fault::KillContracts => "SIGKILL contracts",
            Fault::KillDetector => "SIGKILL detector",
            Fault::KillNotifier => "SIGKILL notifier",
            Fault::NatsRestart => "SIGKILL nats-server, restart",
            Fault::PostgresRestart => "PostgreSQL stopped, started",
            Fault::SmtpDown => "SMTP server down",
            Fault::ClockSkew => "validator-2 clock +30 s",
            Fault::DiskFull => "validator-3 disk full",
            Fault::PartitionOne => "validator-3 partitioned from NATS",
            Fault::PartitionHalf => "validators 2, 3 partitioned from 0, 1",
        }
    }

    /// Whether the chain must stop committing while the fault lasts (no quorum).
    pub fn halts(self) -> bool {
        matches!(self, Fault::KillTwoValidators | Fault::PartitionHalf)
    }

    /// Whether ingest must go on accepting writes while it lasts (all but
    /// ingest's own crash and the outages of what it makes writes durable in:
    /// NATS, and PostgreSQL where its statuses live).
    pub fn keeps_writes(self) -> bool {
        !matches!(self, Fault::KillIngest | Fault::NatsRestart | Fault::PostgresRestart)
    }

    /// The processes it kills and starts again.
    fn killed(self) -> &'static [&'static str] {
        match self {
            Fault::KillValidator => &["validator-1"],
            Fault::KillTwoValidators => &["validator-1", "validator-2"],
            Fault::KillIngest => &["ingest"],
            Fault::KillLedger => &["ledger"],
            Fault::KillContracts => &["contracts"],
            Fault::KillDetector => &["detector"],
            Fault::KillNotifier => &["notifier"],
            Fault::NatsRestart => &["nats"],
            Fault::SmtpDown => &["smtp"],
            _ => &[],
        }
    }

    /// The validators it routes through the partition proxy.
    fn partitioned(self) -> &'static [&'static str] {
        match self {
            Fault::PartitionOne => &["validator-3"],
            Fault::PartitionHalf => &["validator-2", "validator-3"],
            _ => &[],
        }
    }
}

const SKEWED: &str = "validator-2";
const SKEW: &str = "+30s";
const DISK_FULL: &str = "validator-3";
const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// The devnet and what the harness controls around it.
pub struct Lab {
    /// The devnet's directory.
    pub dir: PathBuf,
    nats: SocketAddr,
    proxies: BTreeMap<String, Proxy>,
    /// The tmpfs mounted as the disk-full validator's data directory, if mounted.
    pub disk: Option<PathBuf>,
    postgres_port: u16,
    http: reqwest::Client,
}

/// Runs a blocking devnet control call off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> anyhow::Result<T> + Send + 'static) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(f).await?
}

impl Lab {
    /// The devnet in `dir`, on PostgreSQL at `postgres_url`.
    pub fn new(dir: &Path, postgres_url: &str, disk: Option<PathBuf>) -> anyhow::Result<Self> {
        let net = devnet::Devnet::read(dir)?;
        let nats = net.nats_url.trim_start_matches("nats://").parse().context("nats url")?;
        let postgres_port =
            postgres_url.rsplit_once(':').and_then(|(_, p)| p.split('/').next()?.parse().ok()).unwrap_or(5432);
        let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build()?;
        Ok(Lab { dir: dir.to_path_buf(), nats, proxies: BTreeMap::new(), disk, postgres_port, http })
    }

    /// The HTTP base URL of process `name`.
    pub fn url(&self, name: &str) -> anyhow::Result<String> {
        let net = devnet::Devnet::read(&self.dir)?;
        net.services.iter().find(|s| s.name == name).and_then(|s| s.url.clone()).with_context(|| format!("{name} url"))
    }

    /// Whether process `name` is running.
    pub fn running(&self, name: &str) -> bool {
        devnet::Devnet::read(&self.dir)
            .ok()
            .and_then(|n| n.services.into_iter().find(|s| s.name == name))
            .is_some_and(|s| devnet::is_running(&s))
    }

    /// The last warnings and errors in process `name`'s log, for a report
    /// on what went wrong (empty when there are none).
    pub fn log_excerpt(&self, name: &str) -> String {
        let text = std::fs::read_to_string(self.dir.join("logs").join(format!("{name}.log"))).unwrap_or_default();
        let mut out = excerpt(&text, 12);
        if text.contains("Address already in use") {
            // Which process holds the port it could not listen on (a CI run
            // once failed so restarting a validator, cause unknown).
            let held = std::process::Command::new("ss")
                .args(["-ltnpH"])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_else(|e| format!("ss: {e}"));
            let port = self.url(name).ok().and_then(|u| u.rsplit(':').next().map(|p| format!(":{p} ")));
            let lines: Vec<&str> = held.lines().filter(|l| port.as_deref().is_some_and(|p| l.contains(p))).collect();
            out.push_str(&format!("\nlistening on its port: {lines:?}"));
        }
        out
    }

    /// A validator's committed height, from its metrics (`None` while unreachable).
    pub async fn validator_height(&self, name: &str) -> Option<u64> {
        let url = self.url(name).ok()?;
        let text = self.http.get(format!("{url}/metrics")).send().await.ok()?.text().await.ok()?;
        text.lines()
            .find(|l| l.starts_with("glucochain_consensus_height"))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .map(|h| h as u64)
    }

    /// Stops process `name` (SIGTERM) and waits until it has exited.
    pub async fn stop(&self, name: &str) -> anyhow::Result<()> {
        self.kill(name, "TERM").await
    }

    /// Waits until every validator answers with the same committed height,
    /// unchanged over half a second; returns the heights last seen (equal
    /// when they came to rest within `patience`).
    pub async fn validators_at_rest(&self, patience: Duration) -> Vec<Option<u64>> {
        let deadline = Instant::now() + patience;
        let mut last = Vec::new();
        loop {
            let mut now = Vec::new();
            for i in 0..4 {
                now.push(self.validator_height(&format!("validator-{i}")).await);
            }
            let equal = now.iter().all(|h| h.is_some() && *h == now[0]);
            if (equal && now == last) || Instant::now() > deadline {
                return now;
            }
            last = now;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    async fn kill(&self, name: &str, signal: &'static str) -> anyhow::Result<()> {
        let (dir, name) = (self.dir.clone(), name.to_string());
        blocking(move || devnet::signal_service(&dir, &name, signal)).await
    }

    async fn start(&self, name: &str, how: Restart) -> anyhow::Result<()> {
        let (dir, name) = (self.dir.clone(), name.to_string());
        blocking(move || devnet::start_service(&dir, &name, &how).map(|_| ())).await
    }

    /// How `name` is started: through its partition proxy if it has one.
    fn restart_of(&self, name: &str) -> Restart {
        Restart {
            nats_url: self.proxies.get(name).map(|p| format!("nats://127.0.0.1:{}", p.port)),
            ..Default::default()
        }
    }

    /// Waits until validator `name` answers and has caught up with validator 0.
    pub async fn caught_up(&self, name: &str, patience: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + patience;
        loop {
            if let (Some(me), Some(reference)) =
                (self.validator_height(name).await, self.validator_height("validator-0").await)
                && me >= reference
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{name} has not caught up with validator-0 in {patience:?} ({}; heights {:?} and {:?}){}",
                    if self.running(name) { "running" } else { "not running" },
                    self.validator_height(name).await,
                    self.validator_height("validator-0").await,
                    self.log_excerpt(name)
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Makes the fault possible; `Some(reason)` when it cannot be injected here.
    pub async fn prepare(&mut self, f: Fault) -> anyhow::Result<Option<String>> {
        match f {
            Fault::PostgresRestart if self.postgres_cluster().is_none() => {
                return Ok(Some(format!(
                    "no local PostgreSQL cluster on port {} to restart (pg_lsclusters)",
                    self.postgres_port
                )));
            }
            Fault::ClockSkew if !Path::new(LIBFAKETIME).exists() => {
                return Ok(Some(format!("{LIBFAKETIME} missing (Debian package faketime)")));
            }
            Fault::DiskFull if self.disk.is_none() => {
                return Ok(Some("no small filesystem could be mounted for the validator's data".into()));
            }
            _ => {}
        }
        for name in f.partitioned() {
            if self.proxies.contains_key(*name) {
                continue;
            }
            self.proxies.insert(name.to_string(), Proxy::start(self.nats).await?);
            self.kill(name, "TERM").await?;
            self.start(name, self.restart_of(name)).await?;
            self.caught_up(name, Duration::from_secs(90)).await?;
        }
        Ok(None)
    }

    /// Injects `f`; returns what was observed doing so.
    pub async fn inject(&mut self, f: Fault) -> anyhow::Result<String> {
        for name in f.killed() {
            self.kill(name, "KILL").await?;
        }
        match f {
            Fault::PostgresRestart => {
                let (version, cluster) = self.postgres_cluster().context("cluster")?;
                pg_ctlcluster(&version, &cluster, "stop")?;
            }
            Fault::ClockSkew => {
                self.kill(SKEWED, "TERM").await?;
                let how = Restart {
                    env: vec![
                        ("LD_PRELOAD".into(), LIBFAKETIME.into()),
                        ("FAKETIME".into(), SKEW.into()),
                        ("FAKETIME_DONT_FAKE_MONOTONIC".into(), "1".into()),
                    ],
                    ..self.restart_of(SKEWED)
                };
                self.start(SKEWED, how).await?;
                let ahead = self.clock_ahead(SKEWED, Duration::from_secs(60)).await?;
                if ahead < 20 {
                    bail!("{SKEWED}'s clock is only {ahead} s ahead: libfaketime did not take");
                }
                return Ok(format!("{SKEWED}'s HTTP Date {ahead} s ahead"));
            }
            Fault::DiskFull => {
                let disk = self.disk.clone().context("disk")?;
                let filled = blocking(move || fill(&disk.join("filler"))).await?;
                return Ok(format!("filled {} MiB", filled >> 20));
            }
            Fault::PartitionOne | Fault::PartitionHalf => {
                for name in f.partitioned() {
                    self.proxies[*name].cut();
                }
            }
            _ => {}
        }
        Ok(String::new())
    }

    /// Ends `f`; returns what was observed doing so.
    pub async fn heal(&mut self, f: Fault) -> anyhow::Result<String> {
        let mut note = String::new();
        for name in f.killed() {
            self.start(name, self.restart_of(name)).await?;
        }
        match f {
            Fault::PostgresRestart => {
                let (version, cluster) = self.postgres_cluster().context("cluster")?;
                pg_ctlcluster(&version, &cluster, "start")?;
            }
            Fault::ClockSkew => {
                self.kill(SKEWED, "TERM").await?;
                self.start(SKEWED, self.restart_of(SKEWED)).await?;
            }
            Fault::DiskFull => {
                let disk = self.disk.clone().context("disk")?;
                std::fs::remove_file(disk.join("filler"))?;
                if self.running(DISK_FULL) {
                    note = format!("{DISK_FULL} kept running");
                } else {
                    note = format!("{DISK_FULL} stopped on the full disk; started again");
                    self.start(DISK_FULL, self.restart_of(DISK_FULL)).await?;
                }
            }
            Fault::PartitionOne | Fault::PartitionHalf => {
                for name in f.partitioned() {
                    self.proxies[*name].heal();
                }
            }
            _ => {}
        }
        Ok(note)
    }

    /// How many seconds ahead of ours the HTTP `Date` of process `name` is.
    async fn clock_ahead(&self, name: &str, patience: Duration) -> anyhow::Result<i64> {
        let url = self.url(name)?;
        let deadline = Instant::now() + patience;
        loop {
            if let Ok(r) = self.http.get(format!("{url}/healthz")).send().await
                && let Some(date) = r.headers().get("date").and_then(|d| d.to_str().ok())
            {
                let theirs = httpdate::parse_http_date(date)?;
                let ours = std::time::SystemTime::now();
                return Ok(match theirs.duration_since(ours) {
                    Ok(d) => d.as_secs() as i64,
                    Err(e) => -(e.duration().as_secs() as i64),
                });
            }
            if Instant::now() > deadline {
                bail!("{name} did not answer within {patience:?}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The Debian PostgreSQL cluster (version, name) listening on the devnet's port.
    fn postgres_cluster(&self) -> Option<(String, String)> {
        let out = std::process::Command::new("pg_lsclusters").arg("-h").output().ok()?;
        String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 3 && f[2] == self.postgres_port.to_string()).then(|| (f[0].to_string(), f[1].to_string()))
        })
    }
}

fn pg_ctlcluster(version: &str, cluster: &str, action: &str) -> anyhow::Result<()> {
    let mut cmd = std::process::Command::new("pg_ctlcluster");
    cmd.args(["--skip-systemctl-redirect", version, cluster, action]);
    if action == "stop" {
        cmd.args(["-m", "fast"]);
    }
    let out = cmd.output().context("pg_ctlcluster")?;
    if !out.status.success() {
        bail!("pg_ctlcluster {version} {cluster} {action}: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// Writes zeros to `path` until the filesystem is full; returns the bytes written.
fn fill(path: &Path) -> anyhow::Result<u64> {
    use std::io::Write as _;
    let mut f = std::fs::File::create(path)?;
    let chunk = vec![0u8; 1 << 20];
    let mut written = 0u64;
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(e) if e.raw_os_error() == Some(28) => break,
            Err(e) => return Err(e.into()),
        }
    }
    // What is left below a chunk.
    while let Ok(n) = f.write(&chunk[..4096]) {
        if n == 0 {
            break;
        }
        written += n as u64;
    }
    let _ = f.sync_all();
    Ok(written)
}

/// The last `n` warning and error lines of a service log, without colour
/// codes, each on its own indented line; a run of lines with the same message
/// is shown once with its count.
fn excerpt(log: &str, n: usize) -> String {
    let plain = |l: &str| {
        let mut out = String::with_capacity(l.len());
        let mut chars = l.chars();
        while let Some(c) = chars.next() {
            if c == '\u{1b}' {
                // An SGR sequence: ESC [ ... m
                for d in chars.by_ref() {
                    if d == 'm' {
                        break;
                    }
                }
            } else {
                out.push(c);
            }
        }
        out
    };
    // (first line of the run, its message without the timestamp, how many)
    let mut runs: Vec<(String, String, usize)> = Vec::new();
    for line in log.lines().map(plain).filter(|l| l.contains(" WARN ") || l.contains(" ERROR ")) {
        let message = line.split_once(' ').map_or(line.as_str(), |(_, m)| m).to_string();
        match runs.last_mut() {
            Some(run) if run.1 == message => run.2 += 1,
            _ => runs.push((line, message, 1)),
        }
    }
    runs[runs.len().saturating_sub(n)..]
        .iter()
        .map(|(line, _, count)| if *count > 1 { format!("\n    {line} (×{count})") } else { format!("\n    {line}") })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::excerpt;

    #[test]
    fn a_log_excerpt_keeps_the_last_warnings_and_errors_without_colour() {
        let log = "\u{1b}[2m2026-11-30T13:16:04Z\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m started\n\
                   \u{1b}[2m2026-11-30T13:16:05Z\u{1b}[0m \u{1b}[33m WARN\u{1b}[0m first\n\
                   2026-11-30T13:16:06Z ERROR second\n\
                   2026-11-30T13:16:07Z  WARN third\n";
        assert_eq!(excerpt(log, 2), "\n    2026-11-30T13:16:06Z ERROR second\n    2026-11-30T13:16:07Z  WARN third");
        assert_eq!(excerpt(log, 5).matches('\n').count(), 3);
        assert_eq!(excerpt("2026 INFO nothing to see\n", 5), "");
        let repeated = "t1 ERROR expected INFO\nt2 ERROR expected INFO\nt3  WARN other\nt4 ERROR expected INFO\n";
        assert_eq!(
            excerpt(repeated, 5),
            "\n    t1 ERROR expected INFO (×2)\n    t3  WARN other\n    t4 ERROR expected INFO"
        );
    }
}
