//! The write path under load: a devnet started with `emrctl devnet up`
//! (every service a process, PostgreSQL behind the ledger), patients
//! registered, then CGM observation transactions, signed beforehand, posted
//! to ingest open-loop at fixed rates or closed-loop by clients that each
//! wait for their transaction's commit. Commit times are taken from the
//! `BLOCKS` messages as they arrive.

use crate::procstat::{self, ProcSample};
use crate::stats::Summary;
use crate::world::World;
use anyhow::{Context as _, bail};
use futures::StreamExt as _;
use glucochain_crypto::{Hash32, KeyPair, sha256};
use glucochain_types::ChainId;
use glucochain_types::time::Timestamp;
use prost::Message as _;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running devnet, as `devnet.json` describes it.
pub struct Target {
    /// Its directory.
    pub dir: PathBuf,
    /// Ingest base URL.
    pub ingest: String,
    /// Ledger base URL (reads).
    pub ledger: String,
    /// NATS URL.
    pub nats_url: String,
    /// The NATS operator user's NKey seed, when the devnet's NATS requires one.
    pub nats_seed: Option<String>,
    /// Chain id.
    pub chain: ChainId,
    /// Admin key (registers the patients).
    pub admin: KeyPair,
    /// The hospital's key (registers the clinician).
    pub hospital: KeyPair,
    /// The mail sink's Maildir.
    pub maildir: PathBuf,
    /// (name, pid) of every process.
    pub services: Vec<(String, u32)>,
    /// PostgreSQL URL and ledger database, when on PostgreSQL.
    pub ledger_db: Option<(String, String)>,
}

impl Target {
    /// Reads `<dir>/devnet.json`.
    pub fn read(dir: &Path, postgres: Option<&str>) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(dir.join("devnet.json")).context("devnet.json")?;
        let v: serde_json::Value = serde_json::from_str(&text)?;
        let s = |k: &str| v[k].as_str().map(str::to_string).with_context(|| format!("devnet.json: {k}"));
        let services = v["services"]
            .as_array()
            .context("services")?
            .iter()
            .filter_map(|x| Some((x["name"].as_str()?.to_string(), x["pid"].as_u64()? as u32)))
            .collect();
        let ledger_db = match (postgres, v["databases"]["ledger"].as_str()) {
            (Some(url), Some(db)) => Some((url.to_string(), db.to_string())),
            _ => None,
        };
        Ok(Target {
            dir: dir.to_path_buf(),
            ingest: s("ingest")?,
            ledger: s("ledger")?,
            nats_url: s("nats_url")?,
            nats_seed: match v["nats_operator_nkey"].as_str() {
                Some(p) => Some(glucochain_bus::access::read_seed(Path::new(p))?),
                None => None,
            },
            chain: ChainId::parse(&s("chain_id")?)?,
            admin: KeyPair::read_pem_file(Path::new(&s("admin_key")?))?,
            hospital: KeyPair::read_pem_file(Path::new(&s("hospital_key")?))?,
            maildir: PathBuf::from(s("maildir")?),
            services,
            ledger_db,
        })
    }

    /// A NATS connection as the devnet's operator user.
    pub async fn nats(&self) -> anyhow::Result<async_nats::Client> {
        Ok(self.bus().await?.client().clone())
    }

    /// [`Target::nats`] as a [`glucochain_bus::Bus`] (JetStream included).
    pub async fn bus(&self) -> anyhow::Result<glucochain_bus::Bus> {
        Ok(glucochain_bus::Bus::connect_with_seed(&self.nats_url, "bench", self.nats_seed.clone()).await?)
    }

    fn samples(&self) -> BTreeMap<String, ProcSample> {
        self.services.iter().filter_map(|(n, pid)| Some((n.clone(), procstat::sample(*pid)?))).collect()
    }

    /// Size of the ledger's PostgreSQL database, bytes.
    fn ledger_bytes(&self) -> Option<f64> {
        let (url, db) = self.ledger_db.as_ref()?;
        let admin = format!("{}/postgres", url.trim_end_matches('/'));
        let out = std::process::Command::new("psql")
            .args([&admin, "-Atqc", &format!("SELECT pg_database_size('{db}')")])
            .output()
            .ok()?;
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    }
}

/// Commits seen on `BLOCKS`, and who waits for which.
#[derive(Default)]
struct Commits {
    at: HashMap<Hash32, Instant>,
    waiting: HashMap<Hash32, tokio::sync::oneshot::Sender<Instant>>,
    blocks: Vec<(u64, Instant, usize, usize)>,
    last_height: u64,
}

/// Follows committed blocks (every validator publishes each; the first copy counts).
async fn watch(client: async_nats::Client) -> anyhow::Result<Arc<Mutex<Commits>>> {
    let mut sub = client.subscribe(glucochain_bus::subjects::BLOCK_COMMITTED).await?;
    let commits = Arc::new(Mutex::new(Commits::default()));
    let c = commits.clone();
    tokio::spawn(async move {
        let _keep = client;
        while let Some(m) = sub.next().await {
            let now = Instant::now();
            let Ok(cb) = glucochain_wire::v1::CommittedBlock::decode(m.payload.as_ref()) else { continue };
            let Some(block) = cb.block else { continue };
            let height = block.header.map(|h| h.height).unwrap_or(0);
            let mut g = c.lock().expect("commits");
            if height <= g.last_height {
                continue;
            }
            g.last_height = height;
            g.blocks.push((height, now, block.txs.len(), m.payload.len()));
            for tx in &block.txs {
                let h = sha256(tx);
                g.at.insert(h, now);
                if let Some(w) = g.waiting.remove(&h) {
                    let _ = w.send(now);
                }
            }
        }
    });
    Ok(commits)
}

/// What one load run measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunResult {
    /// `open` (fixed offered rate) or `closed` (clients waiting for commits).
    pub mode: String,
    /// Validators.
    pub validators: usize,
    /// Offered transactions per second (open loop).
    pub offered_tps: Option<f64>,
    /// Clients (closed loop).
    pub clients: Option<usize>,
    /// Seconds of load.
    pub duration_secs: f64,
    /// Transactions posted.
    pub sent: usize,
    /// Answered 202.
    pub accepted: usize,
    /// Other answers by status (429, 503, ...) or `error`.
    pub refused: BTreeMap<String, usize>,
    /// Accepted and then seen committed.
    pub committed: usize,
    /// Committed per second over the run (first post to last commit).
    pub committed_tps: f64,
    /// Post → `202`.
    pub accept_latency: Summary,
    /// Post → block seen on `BLOCKS`.
    pub commit_latency: Summary,
    /// Blocks committed during the run.
    pub blocks: usize,
    /// Mean seconds between blocks.
    pub block_interval_secs: f64,
    /// Mean transactions per block.
    pub txs_per_block_mean: f64,
    /// Largest block, transactions.
    pub txs_per_block_max: usize,
    /// Mean block message size, bytes.
    pub block_bytes_mean: f64,
    /// CPU seconds per 1000 committed transactions, by process (and `loadgen`).
    pub cpu_secs_per_1000_tx: BTreeMap<String, f64>,
    /// Peak resident memory, MiB, by process.
    pub peak_rss_mib: BTreeMap<String, f64>,
    /// JetStream bytes stored per committed transaction (TXS + BLOCKS).
    pub jetstream_bytes_per_tx: Option<f64>,
    /// Ledger database growth per committed transaction.
    pub postgres_bytes_per_tx: Option<f64>,
}

/// Reads measured while writes go on.
#[derive(Debug, Clone, Serialize)]
pub struct ReadResult {
    /// `fhir_24h` (one patient's last 24 h of CGM readings as a FHIR bundle) or `proof`.
    pub kind: String,
    /// Validators.
    pub validators: usize,
    /// Concurrent readers of this kind.
    pub readers: usize,
    /// Writes offered meanwhile, tx/s.
    pub write_tps: f64,
    /// Requests made.
    pub requests: usize,
    /// Answered 200.
    pub ok: usize,
    /// Successful requests per second.
    pub per_sec: f64,
    /// Request → full response body.
    pub latency: Summary,
    /// Entries in the bundle (the day's 288 readings) or 0.
    pub entries: usize,
}

impl RunResult {
    /// `open 400/s` or `closed, 64 clients`.
    pub fn label(&self) -> String {
        match (self.offered_tps, self.clients) {
            (Some(rate), _) => format!("open {rate:.0}/s"),
            (_, Some(c)) => format!("closed, {c} clients"),
            _ => self.mode.clone(),
        }
    }
}

async fn stream_bytes(js: &async_nats::jetstream::Context) -> Option<f64> {
    let mut total = 0.0;
    for name in [glucochain_bus::subjects::STREAM_TXS, glucochain_bus::subjects::STREAM_BLOCKS] {
        let mut s = js.get_stream(name).await.ok()?;
        total += s.info().await.ok()?.state.bytes as f64;
    }
    Some(total)
}

/// Counters before and after a run.
struct Snapshot {
    services: BTreeMap<String, ProcSample>,
    loadgen: ProcSample,
    /// The PostgreSQL server's CPU seconds (all databases; the bench's devnet is its only user).
    postgres_cpu: Option<f64>,
    jetstream_bytes: Option<f64>,
    ledger_bytes: Option<f64>,
    blocks: usize,
}

/// The harness's view of a devnet under load.
pub struct Load {
    pub(crate) target: Target,
    pub(crate) world: World,
    pub(crate) hospital: crate::world::Signer,
    pub(crate) http: reqwest::Client,
    commits: Arc<Mutex<Commits>>,
    js: async_nats::jetstream::Context,
    pub(crate) validators: usize,
}

#[derive(Default)]
pub(crate) struct Outcome {
    sent: usize,
    pub(crate) accepted: usize,
    pub(crate) refused: BTreeMap<String, usize>,
    accept_ms: Vec<f64>,
    commit_ms: Vec<f64>,
    first: Option<Instant>,
}

impl Load {
    /// Connects to the devnet in `target` and registers `patients` patients.
    pub async fn prepare(target: Target, patients: usize, validators: usize) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder().pool_max_idle_per_host(256).build()?;
        let nats = target.nats().await?;
        let commits = watch(nats.clone()).await?;
        let js = async_nats::jetstream::new(nats);
        let run = format!("{:x}", Timestamp::now().unix_ms());
        let world =
            World::new(target.chain.clone(), KeyPair::from_pkcs8_pem(&target.admin.to_pkcs8_pem())?, patients, &run);
        let hospital = crate::world::Signer::new(KeyPair::from_pkcs8_pem(&target.hospital.to_pkcs8_pem())?, &run);
        let mut load = Load { target, world, hospital, http, commits, js, validators };
        let regs = load.world.registrations(Timestamp::now());
        let out = load.post_all(regs, 32).await;
        if out.accepted != out.sent {
            bail!("registrations refused: {:?}", out.refused);
        }
        Ok(load)
    }

    /// The devnet under load.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// How many patients are registered.
    pub fn patients(&self) -> usize {
        self.world.patients.len()
    }

    /// Patient `i`'s participant id.
    pub fn patient_id(&self, i: usize) -> &glucochain_types::ParticipantId {
        &self.world.patients[i].id
    }

    /// `n` CGM observation transactions from the patients in `patients`, signed now.
    pub fn observations_of(&mut self, patients: std::ops::Range<usize>, n: usize) -> Vec<String> {
        self.world.observations_of(patients, n, Timestamp::now())
    }

    /// Posts every transaction with `concurrency` in flight and waits for all commits.
    pub(crate) async fn post_all(&mut self, txs: Vec<String>, concurrency: usize) -> Outcome {
        let hashes: Vec<Hash32> = txs.iter().map(|t| sha256(crate::world::jws_of(t).as_bytes())).collect();
        let out = Arc::new(Mutex::new(Outcome::default()));
        futures::stream::iter(txs)
            .for_each_concurrent(concurrency, |jws| {
                let (http, url, out) = (self.http.clone(), self.target.ingest.clone(), out.clone());
                async move {
                    post(&http, &url, jws, &out).await;
                }
            })
            .await;
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            if hashes.iter().all(|h| self.commits.lock().expect("commits").at.contains_key(h)) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        std::mem::take(&mut *out.lock().expect("outcome"))
    }

    /// Waits until ingest reports every one of `hashes` committed (its view
    /// of the chain, which admission of dependent transactions uses).
    pub(crate) async fn settle(&self, hashes: &[Hash32]) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        for h in hashes {
            loop {
                let url = format!("{}/v1/transactions/{h}", self.target.ingest);
                let v: serde_json::Value = self.http.get(&url).send().await?.json().await.unwrap_or_default();
                if v["status"] == "committed" {
                    break;
                }
                if Instant::now() > deadline {
                    bail!("{h} not committed at ingest: {v}");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(())
    }

    /// Offers `rate` transactions per second for `secs` seconds, then waits
    /// (up to 60 s) for the accepted ones to commit.
    pub async fn open_loop(&mut self, rate: f64, secs: f64) -> anyhow::Result<RunResult> {
        let n = (rate * secs).round() as usize;
        let txs = self.world.observations(n, Timestamp::now());
        let before = self.snapshot().await;
        let out = Arc::new(Mutex::new(Outcome::default()));
        let posted: Arc<Mutex<Vec<(Hash32, Instant)>>> = Arc::new(Mutex::new(Vec::with_capacity(n)));
        let start = Instant::now();
        let mut tasks = Vec::with_capacity(n);
        for (i, jws) in txs.into_iter().enumerate() {
            // Open loop: the i-th transaction leaves at i / rate, whatever the answers.
            let due = start + Duration::from_secs_f64(i as f64 / rate);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                tokio::time::sleep(wait).await;
            }
            let (http, url, out, posted) = (self.http.clone(), self.target.ingest.clone(), out.clone(), posted.clone());
            tasks.push(tokio::spawn(async move {
                let h = sha256(crate::world::jws_of(&jws).as_bytes());
                let at = Instant::now();
                if post(&http, &url, jws, &out).await {
                    posted.lock().expect("posted").push((h, at));
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
        let posted = std::mem::take(&mut *posted.lock().expect("posted"));
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let done = {
                let g = self.commits.lock().expect("commits");
                posted.iter().all(|(h, _)| g.at.contains_key(h))
            };
            if done {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut out = std::mem::take(&mut *out.lock().expect("outcome"));
        out.first = Some(start);
        {
            let g = self.commits.lock().expect("commits");
            out.commit_ms = posted
                .iter()
                .filter_map(|(h, at)| g.at.get(h).map(|c| c.duration_since(*at).as_secs_f64() * 1000.0))
                .collect();
        }
        let mut r = self.result("open", before, out, start, secs).await;
        r.offered_tps = Some(rate);
        Ok(r)
    }

    /// `clients` clients, each posting a transaction and waiting for its
    /// commit before the next, for `secs` seconds.
    pub async fn closed_loop(&mut self, clients: usize, secs: f64) -> anyhow::Result<RunResult> {
        // Enough transactions for the fastest plausible run.
        let per_client = ((secs * 40.0) as usize).max(4);
        let mut batches: Vec<Vec<String>> = vec![Vec::new(); clients];
        for (i, t) in self.world.observations(clients * per_client, Timestamp::now()).into_iter().enumerate() {
            batches[i % clients].push(t);
        }
        let before = self.snapshot().await;
        let out = Arc::new(Mutex::new(Outcome::default()));
        let start = Instant::now();
        let stop = start + Duration::from_secs_f64(secs);
        let mut tasks = Vec::new();
        for batch in batches {
            let (http, url, out, commits) =
                (self.http.clone(), self.target.ingest.clone(), out.clone(), self.commits.clone());
            tasks.push(tokio::spawn(async move {
                for jws in batch {
                    if Instant::now() >= stop {
                        return;
                    }
                    let h = sha256(crate::world::jws_of(&jws).as_bytes());
                    let (tx, rx) = tokio::sync::oneshot::channel();
                    commits.lock().expect("commits").waiting.insert(h, tx);
                    let at = Instant::now();
                    if !post(&http, &url, jws, &out).await {
                        commits.lock().expect("commits").waiting.remove(&h);
                        continue;
                    }
                    match tokio::time::timeout(Duration::from_secs(60), rx).await {
                        Ok(Ok(c)) => {
                            out.lock().expect("outcome").commit_ms.push(c.duration_since(at).as_secs_f64() * 1000.0)
                        }
                        _ => return,
                    }
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
        let mut out = std::mem::take(&mut *out.lock().expect("outcome"));
        out.first = Some(start);
        let mut r = self.result("closed", before, out, start, secs).await;
        r.clients = Some(clients);
        Ok(r)
    }

    /// One patient's day of readings committed, then `readers` clients
    /// reading it as a FHIR bundle and as many reading inclusion proofs,
    /// for `secs` seconds while writes are offered at `write_tps`.
    pub async fn reads(&mut self, readers: usize, write_tps: f64, secs: f64) -> anyhow::Result<Vec<ReadResult>> {
        let now = Timestamp::now();
        let day = self.world.day_of_readings(0, now);
        let hashes: Vec<Hash32> = day.iter().map(|t| sha256(crate::world::jws_of(t).as_bytes())).collect();
        let out = self.post_all(day, 32).await;
        if out.accepted != 288 {
            bail!("the day's readings were refused: {:?}", out.refused);
        }
        let patient = self.world.patients[0].id.clone();
        let key = KeyPair::from_pkcs8_pem(&self.world.patients[0].key.to_pkcs8_pem())?;
        let since = Timestamp::from_unix_ms(now.unix_ms() - 24 * 3600 * 1000 - 60_000).to_rfc3339();
        let records = format!(
            "{}/v1/patients/{patient}/records?code=http://loinc.org%7C99504-3&date=ge{}&_count=288",
            self.target.ledger,
            since.replace('+', "%2B")
        );
        // Read tokens are signed before the clock starts (one per request, as clients would cache none).
        let n_tokens = (readers * 2 * (secs as usize + 5) * 200).min(200_000);
        let tokens: Vec<String> = (0..n_tokens)
            .map(|i| {
                glucochain_crypto::jose::issue_token(
                    &key,
                    patient.as_str(),
                    glucochain_crypto::jose::LEDGER_AUDIENCE,
                    self.target.chain.as_str(),
                    Timestamp::now().unix_ms() / 1000,
                    300,
                    &format!("bench-{i}"),
                )
            })
            .collect();
        let tokens = Arc::new(tokens);
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        // Wait until the ledger serves the whole day.
        let deadline = Instant::now() + Duration::from_secs(60);
        let entries = loop {
            let t = &tokens[next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % tokens.len()];
            let v: serde_json::Value =
                self.http.get(&records).bearer_auth(t).send().await?.json().await.unwrap_or_default();
            let n = v["entry"].as_array().map(|e| e.len()).unwrap_or(0);
            if n >= 288 || Instant::now() > deadline {
                break n;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let stop = Instant::now() + Duration::from_secs_f64(secs);
        let reader = |kind: &'static str, i: usize| {
            let (http, tokens, next) = (self.http.clone(), tokens.clone(), next.clone());
            let url = match kind {
                "fhir_24h" => records.clone(),
                _ => format!("{}/v1/transactions/{}/proof", self.target.ledger, hashes[(i * 37) % hashes.len()]),
            };
            tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut requests = 0usize;
                while Instant::now() < stop {
                    let t = &tokens[next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % tokens.len()];
                    let at = Instant::now();
                    requests += 1;
                    if let Ok(r) = http.get(&url).bearer_auth(t).send().await
                        && r.status().as_u16() == 200
                        && r.bytes().await.is_ok()
                    {
                        lat.push(at.elapsed().as_secs_f64() * 1000.0);
                    }
                }
                (kind, requests, lat)
            })
        };
        let tasks: Vec<_> = (0..readers).flat_map(|i| [reader("fhir_24h", i), reader("proof", i)]).collect::<Vec<_>>();
        let writes = self.open_loop(write_tps, secs).await?;
        let mut by_kind: BTreeMap<&str, (usize, Vec<f64>)> = BTreeMap::new();
        for t in tasks {
            let (kind, requests, lat) = t.await?;
            let e = by_kind.entry(kind).or_default();
            e.0 += requests;
            e.1.extend(lat);
        }
        eprintln!("bench:   writes meanwhile: committed {:.0} tx/s", writes.committed_tps);
        Ok(by_kind
            .into_iter()
            .map(|(kind, (requests, lat))| ReadResult {
                kind: kind.into(),
                validators: self.validators,
                readers,
                write_tps,
                requests,
                ok: lat.len(),
                per_sec: lat.len() as f64 / secs,
                latency: Summary::of(&lat),
                entries: if kind == "fhir_24h" { entries } else { 0 },
            })
            .collect())
    }

    async fn snapshot(&self) -> Snapshot {
        let blocks = self.commits.lock().expect("commits").blocks.len();
        Snapshot {
            services: self.target.samples(),
            loadgen: procstat::sample(std::process::id()).unwrap_or_default(),
            postgres_cpu: procstat::postgres_cpu_secs(),
            jetstream_bytes: stream_bytes(&self.js).await,
            ledger_bytes: self.target.ledger_bytes(),
            blocks,
        }
    }

    async fn result(&self, mode: &str, before: Snapshot, out: Outcome, start: Instant, secs: f64) -> RunResult {
        let after = self.snapshot().await;
        let committed = out.commit_ms.len();
        let g = self.commits.lock().expect("commits");
        let blocks: Vec<&(u64, Instant, usize, usize)> = g.blocks[before.blocks..].iter().collect();
        let last = blocks.iter().map(|b| b.1).max().unwrap_or(start);
        let span = last.duration_since(out.first.unwrap_or(start)).as_secs_f64().max(secs.min(1.0));
        let per_1000 = |cpu: f64| if committed > 0 { cpu / committed as f64 * 1000.0 } else { f64::NAN };
        let mut cpu: BTreeMap<String, f64> = after
            .services
            .iter()
            .filter_map(|(n, a)| Some((n.clone(), per_1000(a.cpu_secs - before.services.get(n)?.cpu_secs))))
            .collect();
        cpu.insert("loadgen".into(), per_1000(after.loadgen.cpu_secs - before.loadgen.cpu_secs));
        if let (Some(a), Some(b)) = (after.postgres_cpu, before.postgres_cpu) {
            cpu.insert("postgres".into(), per_1000(a - b));
        }
        let intervals: Vec<f64> = blocks.windows(2).map(|w| w[1].1.duration_since(w[0].1).as_secs_f64()).collect();
        let diff = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if committed > 0 => Some((a - b) / committed as f64),
            _ => None,
        };
        RunResult {
            mode: mode.into(),
            validators: self.validators,
            offered_tps: None,
            clients: None,
            duration_secs: secs,
            sent: out.sent,
            accepted: out.accepted,
            refused: out.refused,
            committed,
            committed_tps: committed as f64 / span,
            accept_latency: Summary::of(&out.accept_ms),
            commit_latency: Summary::of(&out.commit_ms),
            blocks: blocks.len(),
            block_interval_secs: if intervals.is_empty() {
                f64::NAN
            } else {
                intervals.iter().sum::<f64>() / intervals.len() as f64
            },
            txs_per_block_mean: if blocks.is_empty() {
                0.0
            } else {
                blocks.iter().map(|b| b.2 as f64).sum::<f64>() / blocks.len() as f64
            },
            txs_per_block_max: blocks.iter().map(|b| b.2).max().unwrap_or(0),
            block_bytes_mean: if blocks.is_empty() {
                0.0
            } else {
                blocks.iter().map(|b| b.3 as f64).sum::<f64>() / blocks.len() as f64
            },
            cpu_secs_per_1000_tx: cpu,
            peak_rss_mib: after.services.iter().map(|(n, s)| (n.clone(), s.peak_rss_mib)).collect(),
            jetstream_bytes_per_tx: diff(after.jetstream_bytes, before.jetstream_bytes),
            postgres_bytes_per_tx: diff(after.ledger_bytes, before.ledger_bytes),
        }
    }
}

/// Posts one transaction; true when accepted (202).
async fn post(http: &reqwest::Client, ingest: &str, jws: String, out: &Mutex<Outcome>) -> bool {
    let at = Instant::now();
    let r = http
        .post(format!("{ingest}/v1/transactions"))
        .header("content-type", crate::world::media_type(&jws))
        .body(jws)
        .timeout(Duration::from_secs(30))
        .send()
        .await;
    let ms = at.elapsed().as_secs_f64() * 1000.0;
    let mut o = out.lock().expect("outcome");
    o.sent += 1;
    match r.map(|r| r.status().as_u16()) {
        Ok(202) => {
            o.accepted += 1;
            o.accept_ms.push(ms);
            true
        }
        Ok(code) => {
            *o.refused.entry(code.to_string()).or_default() += 1;
            false
        }
        Err(_) => {
            *o.refused.entry("error".into()).or_default() += 1;
            false
        }
    }
}
