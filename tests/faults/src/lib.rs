//! GlucoChain's fault-injection harness.
//!
//! It brings up a devnet (four validators, every service its own process,
//! real NATS, PostgreSQL and an SMTP server), keeps a steady load of CGM
//! readings flowing, and injects one [`Fault`] at a time: it holds the fault,
//! heals it, measures how long the system takes to recover, and while the
//! fault lasts one patient with a care plan uploads a falling trace (retrying
//! like a real uploader) whose alert must reach the caregiver. At the end it
//! checks the invariants over the whole run:
//!
//! * every transaction answered 202 is committed exactly once;
//! * nothing is committed that the harness did not submit;
//! * no two different blocks at one height were published, and all
//!   validators hold identical blocks at every height;
//! * the ledger's chain verifies from genesis and holds the same blocks;
//! * every alert raised was delivered, or is visibly pending at the notifier.
//!
//! [`run`] returns a [`report::Report`]; `glucochain-faults` prints it as the
//! table of `docs/reliability.md`.

pub mod fault;
pub mod follow;
pub mod proxy;
pub mod report;

pub use fault::Fault;

use anyhow::{Context as _, bail};
use fault::Lab;
use glucochain_bench::load::{Load, Target};
use glucochain_crypto::{Hash32, KeyPair, sha256};
use glucochain_types::ParticipantId;
use report::{Report, Row};
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How hard and how long.
#[derive(Debug, Clone, Serialize)]
pub struct Profile {
    /// Name (`short`, `soak`).
    pub name: String,
    /// Offered load, CGM readings per second.
    pub rate: f64,
    /// How long most faults last, seconds.
    pub hold_secs: f64,
    /// How long the SMTP server stays down, seconds.
    pub smtp_hold_secs: f64,
    /// How long PostgreSQL stays down, seconds (longer than the services'
    /// 10 s wait for a database connection, so that they meet real errors).
    pub postgres_hold_secs: f64,
    /// Longest wait for recovery after a fault is healed, seconds.
    pub settle_secs: f64,
    /// Patients sending the steady load.
    pub background_patients: usize,
}

impl Profile {
    /// The CI profile: every fault, briefly.
    pub fn short() -> Self {
        Profile {
            name: "short".into(),
            rate: 10.0,
            hold_secs: 5.0,
            smtp_hold_secs: 10.0,
            postgres_hold_secs: 20.0,
            settle_secs: 120.0,
            background_patients: 20,
        }
    }

    /// The documented soak: every fault held for a minute (SMTP down for
    /// three), at a higher load.
    pub fn soak() -> Self {
        Profile {
            name: "soak".into(),
            rate: 50.0,
            hold_secs: 60.0,
            smtp_hold_secs: 180.0,
            postgres_hold_secs: 60.0,
            settle_secs: 420.0,
            background_patients: 100,
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Directory of the devnet (created; must not hold a running devnet).
    pub dir: PathBuf,
    /// Directory holding `emrctl` and the `glucochain-*` service binaries.
    pub bin_dir: PathBuf,
    /// The `emrctl` program.
    pub emrctl: PathBuf,
    /// PostgreSQL server URL for the services (`postgres://postgres@127.0.0.1:5432`).
    pub postgres: String,
    /// Load and durations.
    pub profile: Profile,
    /// The faults, in order.
    pub faults: Vec<Fault>,
}

/// One answer to a posted transaction.
struct Sent {
    hash: Hash32,
    at: Instant,
    /// HTTP status, 0 when no answer came.
    status: u16,
}

fn accepted(status: u16) -> bool {
    matches!(status, 200 | 202)
}

type Log = Arc<Mutex<Vec<Sent>>>;

async fn post(http: &reqwest::Client, ingest: &str, jws: String, log: &Log) -> u16 {
    let hash = sha256(glucochain_bench::world::jws_of(&jws).as_bytes());
    let at = Instant::now();
    let status = match http
        .post(format!("{ingest}/v1/transactions"))
        .header("content-type", glucochain_bench::world::media_type(&jws))
        .body(jws)
        .send()
        .await
    {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    };
    log.lock().expect("log").push(Sent { hash, at, status });
    status
}

/// The caregiver address of fault patient `k`.
fn address(k: usize) -> String {
    format!("fault{k}@faults.invalid")
}

/// Cleans up what the run set up, whatever happened.
struct Teardown {
    emrctl: PathBuf,
    dir: PathBuf,
    postgres: String,
    mount: Option<PathBuf>,
}

impl Teardown {
    fn down(&self) {
        let _ = Command::new(&self.emrctl).args(["devnet", "down", "--dir"]).arg(&self.dir).output();
    }
}

impl Drop for Teardown {
    fn drop(&mut self) {
        self.down();
        if let Ok(net) = emrctl::devnet::Devnet::read(&self.dir) {
            let admin = format!("{}/postgres", self.postgres.trim_end_matches('/'));
            for db in net.databases.values() {
                let _ = Command::new("psql")
                    .args([&admin, "-qc", &format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)")])
                    .output();
            }
        }
        if let Some(m) = &self.mount {
            let _ = Command::new("umount").arg("-l").arg(m).output();
        }
    }
}

/// A small tmpfs as the disk-full validator's data directory, when this
/// machine lets us mount one.
fn mount_small_disk(dir: &Path) -> Option<PathBuf> {
    let at = dir.join("data/validator-3");
    std::fs::create_dir_all(&at).ok()?;
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256m", "glucochain-faults"])
        .arg(&at)
        .output()
        .ok()?
        .status
        .success();
    ok.then_some(at)
}

/// A read token of `key` for the devnet's service `audience`.
fn read_token(key: &KeyPair, audience: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let id = ParticipantId::from_public_key(&key.public());
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let chain = emrctl::devnet::DEVNET_CHAIN;
    glucochain_crypto::jose::issue_token(
        key,
        id.as_str(),
        audience,
        chain,
        now as i64,
        120,
        &format!("faults-{now}-{n}"),
    )
}

/// Everything the run watches.
struct Run {
    lab: Lab,
    load: Arc<tokio::sync::Mutex<Load>>,
    http: reqwest::Client,
    ingest: String,
    ledger: String,
    notifier: String,
    maildir: PathBuf,
    admin: KeyPair,
    log: Log,
    blocks: Arc<Mutex<follow::Blocks>>,
    alerts: Arc<Mutex<follow::Alerts>>,
    profile: Profile,
    /// First fault patient's index among the load's patients.
    first_fault_patient: usize,
}

impl Run {
    async fn ledger_height(&self) -> Option<u64> {
        let r = self
            .http
            .get(format!("{}/v1/blocks/latest", self.ledger))
            .bearer_auth(read_token(&self.admin, glucochain_crypto::jose::LEDGER_AUDIENCE))
            .send()
            .await
            .ok()?;
        let v: serde_json::Value = r.json().await.ok()?;
        v["height"].as_u64()
    }

    /// Accepted transactions not yet seen committed.
    fn outstanding(&self) -> usize {
        let log = self.log.lock().expect("log");
        let blocks = self.blocks.lock().expect("blocks");
        log.iter().filter(|s| accepted(s.status) && !blocks.committed.contains_key(&s.hash)).count()
    }

    /// Waits until every accepted transaction is committed, the chain moved
    /// past `tip_at_heal`, and every validator and the ledger hold the tip.
    async fn recovered(&self, tip_at_heal: u64, deadline: Instant) -> bool {
        loop {
            let tip = self.blocks.lock().expect("blocks").tip();
            if self.outstanding() == 0 && tip > tip_at_heal {
                // Every process up again (none stopped on the fault) …
                let mut all = emrctl::devnet::Devnet::read(&self.lab.dir)
                    .is_ok_and(|n| n.services.iter().all(emrctl::devnet::is_running));
                // … and every validator and the ledger holding the tip.
                all &= self.ledger_height().await.is_some_and(|h| h >= tip);
                for i in 0..4 {
                    all &= self.lab.validator_height(&format!("validator-{i}")).await.is_some_and(|h| h >= tip);
                }
                if all {
                    return true;
                }
            }
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Which validators are behind the tip, whether they run, and their last
    /// warnings (for a fault that did not recover).
    async fn laggards(&self) -> String {
        let tip = self.blocks.lock().expect("blocks").tip();
        let mut out = Vec::new();
        for i in 0..4 {
            let name = format!("validator-{i}");
            let height = self.lab.validator_height(&name).await;
            if height.is_none_or(|h| h < tip) {
                let state = if self.lab.running(&name) { "running" } else { "not running" };
                // One table cell: the log lines run on, separated by " … ".
                let log = self.lab.log_excerpt(&name).replace("\n    ", " … ");
                out.push(format!("{name} at {height:?} of {tip}, {state}{log}"));
            }
        }
        out.join("; ")
    }

    /// Uploads fault patient `k`'s falling trace, each reading retried until
    /// accepted (as a CGM uploader does); returns how many were accepted.
    async fn upload_trace(
        load: Arc<tokio::sync::Mutex<Load>>,
        http: reqwest::Client,
        ingest: String,
        log: Log,
        patient: usize,
        deadline: Instant,
    ) -> usize {
        let start = glucochain_types::time::Timestamp::now().unix_ms() - 70 * 60_000;
        let mut ok = 0;
        for step in 0..15 {
            let jws = load.lock().await.falling_reading(patient, step, start);
            loop {
                if accepted(post(&http, &ingest, jws.clone(), &log).await) {
                    ok += 1;
                    break;
                }
                if Instant::now() > deadline {
                    return ok;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        ok
    }

    /// Whether an email to `to` is in the mail sink.
    fn emailed(&self, to: &str) -> bool {
        emrctl::devnet::mailbox(&self.maildir).iter().any(|m| m.header("To").is_some_and(|t| t.contains(to)))
    }

    /// Alert ids raised (not resolutions) for `patient`.
    fn alerts_of(&self, patient: &str) -> Vec<String> {
        let a = self.alerts.lock().expect("alerts");
        a.events.iter().filter(|e| e.patient == patient && !e.resolved).map(|e| e.id.clone()).collect()
    }

    /// The notifier's view of alert `id`: (known, any delivery sent, any pending).
    async fn alert_state(&self, id: &str) -> (bool, bool, bool) {
        let Ok(r) = self
            .http
            .get(format!("{}/v1/alerts/{id}", self.notifier))
            .bearer_auth(read_token(&self.admin, glucochain_crypto::jose::NOTIFIER_AUDIENCE))
            .send()
            .await
        else {
            return (false, false, false);
        };
        if r.status().as_u16() != 200 {
            return (false, false, false);
        }
        let v: serde_json::Value = r.json().await.unwrap_or_default();
        let states: Vec<String> = v["deliveries"]
            .as_array()
            .map(|d| d.iter().filter_map(|x| x["state"].as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        (true, states.iter().any(|s| s == "sent"), states.iter().any(|s| s == "pending" || s == "sending"))
    }

    async fn fault(&mut self, k: usize, f: Fault) -> anyhow::Result<Row> {
        let mut row = Row::new(f);
        if let Some(reason) = self.lab.prepare(f).await? {
            row.skipped = Some(reason);
            return Ok(row);
        }
        let hold = Duration::from_secs_f64(match f {
            Fault::SmtpDown => self.profile.smtp_hold_secs,
            Fault::PostgresRestart => self.profile.postgres_hold_secs,
            _ => self.profile.hold_secs,
        });
        let settle = Duration::from_secs_f64(self.profile.settle_secs);
        let tip_before = self.blocks.lock().expect("blocks").tip();
        let injected = Instant::now();
        row.notes.push(self.lab.inject(f).await?);
        let patient = self.first_fault_patient + k;
        let uploader = tokio::spawn(Run::upload_trace(
            self.load.clone(),
            self.http.clone(),
            self.ingest.clone(),
            self.log.clone(),
            patient,
            injected + hold + settle,
        ));
        tokio::time::sleep(hold.saturating_sub(injected.elapsed())).await;
        let tip_at_heal = self.blocks.lock().expect("blocks").tip();
        let healed = Instant::now();
        row.notes.push(self.lab.heal(f).await?);
        row.hold_secs = healed.duration_since(injected).as_secs_f64();
        row.blocks_during = tip_at_heal.saturating_sub(tip_before);
        row.window = Some((injected, healed));
        let deadline = healed + settle;
        if self.recovered(tip_at_heal, deadline).await {
            row.recover_secs = Some(healed.elapsed().as_secs_f64());
        } else {
            row.notes.push(self.laggards().await);
        }
        let uploaded = uploader.await.unwrap_or(0);
        if uploaded < 15 {
            row.notes.push(format!("only {uploaded} of 15 trace readings accepted"));
        }
        // The caregiver's email, or the alert visibly pending.
        let to = address(k);
        while !self.emailed(&to) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        if self.emailed(&to) {
            row.alert_email_secs = Some(healed.elapsed().as_secs_f64());
        }
        row.patient = Some(self.load.lock().await.patient_id(patient).to_string());
        row.address = Some(to);
        Ok(row)
    }
}

/// Runs the faults of `o` against a devnet brought up for the purpose and
/// checks the invariants; the devnet is stopped and its databases dropped
/// afterwards, whatever happens.
pub async fn run(o: &Options) -> anyhow::Result<Report> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    std::fs::create_dir_all(&o.dir)?;
    let dir = std::fs::canonicalize(&o.dir)?;
    if dir.join("genesis.json").exists() {
        bail!("{} already holds a devnet: give the harness a new directory", dir.display());
    }
    let mount = if o.faults.contains(&Fault::DiskFull) { mount_small_disk(&dir) } else { None };
    let teardown = Teardown { emrctl: o.emrctl.clone(), dir: dir.clone(), postgres: o.postgres.clone(), mount };
    let up = Command::new(&o.emrctl)
        .args(["devnet", "up", "--validators", "4", "--postgres", &o.postgres, "--dir"])
        .arg(&dir)
        .arg("--bin-dir")
        .arg(&o.bin_dir)
        .output()
        .context("emrctl devnet up")?;
    if !up.status.success() {
        bail!("devnet up failed: {}", String::from_utf8_lossy(&up.stderr));
    }
    let net = emrctl::devnet::Devnet::read(&dir)?;
    let target = Target::read(&dir, Some(&o.postgres))?;
    let bus = target.bus().await?;
    let blocks = follow::blocks(&bus).await?;
    let alerts = follow::alerts(&bus).await?;
    let admin = KeyPair::from_pkcs8_pem(&target.admin.to_pkcs8_pem())?;
    let (ingest, ledger, maildir) = (target.ingest.clone(), target.ledger.clone(), target.maildir.clone());
    let background = o.profile.background_patients;
    let mut load = Load::prepare(target, background + o.faults.len(), 4).await?;
    let fault_patients: Vec<usize> = (background..background + o.faults.len()).collect();
    load.care_for(&fault_patients, address).await?;
    // The detector and notifier follow the chain: let them hold the plans.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let start_height = blocks.lock().expect("blocks").tip();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
    let mut run = Run {
        lab: Lab::new(&dir, &o.postgres, teardown.mount.clone())?,
        load: Arc::new(tokio::sync::Mutex::new(load)),
        http: http.clone(),
        ingest: ingest.clone(),
        ledger,
        notifier: net.notifier.clone(),
        maildir,
        admin,
        log: Arc::default(),
        blocks,
        alerts,
        profile: o.profile.clone(),
        first_fault_patient: background,
    };

    // The steady load: readings from the background patients at the offered
    // rate, open loop (whatever the answers).
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let writer = {
        let (load, log, rate) = (run.load.clone(), run.log.clone(), o.profile.rate);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            let mut owed = 0.0;
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stopped.changed() => return,
                }
                owed += rate / 10.0;
                let n = owed.floor() as usize;
                owed -= n as f64;
                let txs = load.lock().await.observations_of(0..background, n);
                for jws in txs {
                    let (http, ingest, log) = (http.clone(), ingest.clone(), log.clone());
                    tokio::spawn(async move { post(&http, &ingest, jws, &log).await });
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(3)).await;

    let mut rows = Vec::new();
    let mut failure = None;
    for (k, f) in o.faults.iter().enumerate() {
        eprintln!("faults: {} ({})", f.name(), f.describe());
        match run.fault(k, *f).await {
            Ok(row) => {
                eprintln!("faults: {}", row.summary());
                rows.push(row);
            }
            Err(e) => {
                failure = Some(format!("{}: {e:#}", f.name()));
                break;
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let _ = stop.send(true);
    let _ = writer.await;
    // Answers still in flight.
    tokio::time::sleep(Duration::from_secs(11)).await;
    let tip = run.blocks.lock().expect("blocks").tip();
    let settled = run.recovered(tip.saturating_sub(1), Instant::now() + Duration::from_secs(120)).await;

    let mut report = Report::new(o.profile.clone());
    if let Some(f) = failure {
        report.violations.push(format!("the harness could not complete a fault: {f}"));
    }
    if !settled {
        report.violations.push(format!(
            "{} accepted transactions not committed, or a validator or the ledger behind, 120 s after the load stopped",
            run.outstanding()
        ));
    }
    check(&run, &net, start_height, &mut rows, &mut report).await?;
    report.rows = rows;

    // The services that sign transactions stop first; the validators then
    // commit what is left and come to rest, so that their stores are compared
    // at rest rather than with one of them stopped halfway through a commit.
    for name in ["ingest", "notifier", "detector", "contracts", "ledger"] {
        if run.lab.running(name) {
            run.lab.stop(name).await?;
        }
    }
    let heights = run.lab.validators_at_rest(Duration::from_secs(30)).await;
    if heights.iter().any(|h| *h != heights[0]) {
        report.violations.push(format!("the validators did not come to one height within 30 s: {heights:?}"));
    }

    // Identical blocks in every validator's own store, read once they are stopped.
    teardown.down();
    let mut chains = Vec::new();
    for i in 0..4 {
        chains.push(stored_chain(&dir.join(format!("data/validator-{i}/blocks.db"))).await?);
    }
    for (i, c) in chains.iter().enumerate().skip(1) {
        let common = c.len().min(chains[0].len());
        if c[..common] != chains[0][..common] {
            report.violations.push(format!("validator-{i} holds different blocks from validator-0"));
        }
        if c.len() != chains[0].len() {
            report.violations.push(format!(
                "validator-{i} stopped at {} of {} blocks{}",
                c.len(),
                chains[0].len(),
                run.lab.log_excerpt(&format!("validator-{i}"))
            ));
        }
    }
    report.validator_heights = chains.iter().map(Vec::len).collect();
    drop(teardown);
    Ok(report)
}

/// Block hashes by height of a stopped validator's store.
async fn stored_chain(path: &Path) -> anyhow::Result<Vec<Vec<u8>>> {
    let store = glucochain_store::Store::connect(&format!("sqlite://{}", path.display())).await?;
    let top = store.latest_height().await?.unwrap_or(0);
    let mut out = Vec::new();
    for h in 1..=top {
        out.push(store.block(h).await?.context("a height missing")?.hash);
    }
    store.close().await;
    Ok(out)
}

/// The invariants over the whole run, while the devnet still runs.
async fn check(
    run: &Run,
    net: &emrctl::devnet::Devnet,
    start_height: u64,
    rows: &mut [Row],
    report: &mut Report,
) -> anyhow::Result<()> {
    let genesis = glucochain_types::Genesis::read_file(&net.genesis)?;
    let verdict = emrctl::verify_ledger_chain(
        &run.http,
        &genesis,
        &read_token(&run.admin, glucochain_crypto::jose::LEDGER_AUDIENCE),
        &net.ledger,
    )
    .await?;
    let chain = match verdict {
        Ok(c) => c,
        Err(e) => {
            report.violations.push(format!("the ledger's chain does not verify from genesis: {e}"));
            return Ok(());
        }
    };
    report.ledger_height = chain.height;
    ledger_against_submissions(run, net, &chain, start_height, rows, report);
    // Alerts: each fault patient's alert delivered or visibly pending, and
    // every alert event known to the notifier.
    for row in rows.iter_mut().filter(|r| r.skipped.is_none()) {
        let (Some(patient), Some(to)) = (row.patient.clone(), row.address.clone()) else { continue };
        let ids = run.alerts_of(&patient);
        row.alerts_raised = ids.len();
        let emailed = run.emailed(&to);
        let mut pending = false;
        for id in &ids {
            let (_, _, p) = run.alert_state(id).await;
            pending |= p;
        }
        row.alert_delivered = emailed;
        row.alert_pending = !emailed && pending;
        if ids.is_empty() || !(emailed || pending) {
            row.alerts_lost = 1;
            // What the detector and the notifier said, for whoever reads the report.
            let logs: String =
                ["detector", "notifier"].iter().map(|n| format!("\n  {n}:{}", run.lab.log_excerpt(n))).collect();
            report.violations.push(format!(
                "{}: the falling trace's alert was {} (patient {patient}){logs}",
                row.fault,
                if ids.is_empty() { "never raised" } else { "neither delivered nor pending" }
            ));
        }
    }
    let all: Vec<String> = {
        let a = run.alerts.lock().expect("alerts");
        a.events.iter().filter(|e| !e.resolved).map(|e| e.id.clone()).collect()
    };
    report.alerts = all.len();
    for id in &all {
        if !run.alert_state(id).await.0 {
            report.alerts_unknown += 1;
        }
    }
    if report.alerts_unknown > 0 {
        report.violations.push(format!("{} alert events the notifier does not know", report.alerts_unknown));
    }
    Ok(())
}

/// The ledger's verified chain against what the harness submitted and what
/// the validators published: forks, exactly-once commits, nothing unrequested.
fn ledger_against_submissions(
    run: &Run,
    net: &emrctl::devnet::Devnet,
    chain: &emrctl::VerifiedChain,
    start_height: u64,
    rows: &mut [Row],
    report: &mut Report,
) {
    let blocks = run.blocks.lock().expect("blocks");
    report.forks = blocks.forks.clone();
    if !blocks.forks.is_empty() {
        report.violations.push(format!("two different blocks published at heights {:?}", blocks.forks));
    }
    for (i, txs) in chain.tx_hashes.iter().enumerate() {
        let h = i as u64 + 1;
        if blocks.txs.get(&h).is_some_and(|seen| seen != txs) {
            report.violations.push(format!("the ledger's block {h} differs from the one the validators published"));
        }
    }
    let mut times: HashMap<Hash32, u32> = HashMap::new();
    for t in chain.tx_hashes.iter().flatten() {
        *times.entry(*t).or_default() += 1;
    }
    let log = run.log.lock().expect("log");
    let submitted: HashSet<Hash32> = log.iter().map(|s| s.hash).collect();
    let accepted_set: HashSet<Hash32> = log.iter().filter(|s| accepted(s.status)).map(|s| s.hash).collect();
    report.submitted = submitted.len();
    report.accepted = accepted_set.len();
    let lost: HashSet<Hash32> = accepted_set.iter().filter(|h| !times.contains_key(h)).copied().collect();
    let duplicated: HashSet<Hash32> = times.iter().filter(|(_, n)| **n > 1).map(|(h, _)| *h).collect();
    report.lost = lost.len();
    report.duplicated = duplicated.len();
    report.committed_unanswered =
        submitted.iter().filter(|h| times.contains_key(h) && !accepted_set.contains(h)).count();
    // The services sign transactions of their own (alerts recorded on the
    // chain): those are not the harness's, and they are counted apart.
    let services: HashSet<String> = ["detector", "notifier", "ledger"]
        .iter()
        .filter_map(|k| KeyPair::read_pem_file(&net.dir.join(format!("keys/{k}.pem"))).ok())
        .map(|k| ParticipantId::from_public_key(&k.public()).to_string())
        .collect();
    let after_start = chain.tx_hashes.get(start_height as usize..).unwrap_or_default();
    for h in after_start.iter().flatten().filter(|h| !submitted.contains(h)) {
        if blocks.signers.get(h).is_some_and(|s| services.contains(s)) {
            report.service_txs += 1;
        } else {
            report.unrequested += 1;
        }
    }
    if report.lost > 0 {
        report.violations.push(format!("{} transactions answered 202 were never committed", report.lost));
    }
    if report.duplicated > 0 {
        report.violations.push(format!("{} transactions committed more than once", report.duplicated));
    }
    if report.unrequested > 0 {
        report.violations.push(format!("{} transactions committed that nobody submitted", report.unrequested));
    }
    for row in rows.iter_mut() {
        if let Some((from, to)) = row.window {
            // Counted now, not at the heal: answers may come long after the posts.
            let window: Vec<&Sent> = log.iter().filter(|s| s.at >= from && s.at < to).collect();
            row.offered = window.len();
            let mine: Vec<&Sent> = window.into_iter().filter(|s| accepted(s.status)).collect();
            row.accepted = mine.len();
            row.txs_lost = mine.iter().filter(|s| lost.contains(&s.hash)).count();
            row.txs_duplicated = mine.iter().filter(|s| duplicated.contains(&s.hash)).count();
        }
    }
}
