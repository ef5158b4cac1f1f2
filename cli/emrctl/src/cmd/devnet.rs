//! `emrctl devnet up|status|down|mail`: the whole system on one machine, as
//! separate processes — NATS with JetStream, N validators, ingest, ledger,
//! contracts, detector, notifier and a local SMTP mail sink — with keys,
//! genesis and `devnet.json` (every endpoint) under one directory.

use super::http::{client, post_and_follow, runtime};
use crate::cli::DevnetShape;
use anyhow::{Context, bail};
use glucochain_bus::access::NatsUser;
use glucochain_crypto::KeyPair;
use glucochain_types::genesis::{ConsensusParams, Genesis, GenesisAdmin, GenesisValidator};
use glucochain_types::time::Timestamp;
use glucochain_types::tx::{TxBody, TxPayload};
use glucochain_types::{ChainId, ParticipantId, Role};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

/// The chain id of every devnet.
pub const DEVNET_CHAIN: &str = "glucochain-devnet";

/// One running process.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Service {
    /// Name (`nats`, `v0`, `ingest`, ...).
    pub name: String,
    /// Process id.
    pub pid: u32,
    /// Its HTTP base URL (health, metrics, API), if any.
    pub url: Option<String>,
    /// Its log file.
    pub log: PathBuf,
    /// The program, arguments and NATS user seed it was started with, so
    /// `devnet start NAME` can start it again after a stop or a crash.
    #[serde(default)]
    pub command: Vec<String>,
    /// Its NATS user's NKey seed file.
    #[serde(default)]
    pub nkey: Option<PathBuf>,
}

/// What `devnet.json` records.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Devnet {
    /// The directory.
    pub dir: PathBuf,
    /// Chain id.
    pub chain_id: String,
    /// NATS URL.
    pub nats_url: String,
    /// Genesis file.
    pub genesis: PathBuf,
    /// Ingest (write API).
    pub ingest: String,
    /// Ledger (read API).
    pub ledger: String,
    /// Contracts engine.
    pub contracts: String,
    /// Notifier.
    pub notifier: String,
    /// SMTP mail sink port.
    pub smtp_port: u16,
    /// Where the mail sink stores messages (a Maildir).
    pub maildir: PathBuf,
    /// Database behind ledger, contracts, detector and notifier (`sqlite` when embedded).
    pub database: String,
    /// PostgreSQL database of each service (`ledger` → name), when on PostgreSQL.
    #[serde(default)]
    pub databases: std::collections::BTreeMap<String, String>,
    /// The admin's key.
    pub admin_key: PathBuf,
    /// The hospital (institution) key.
    pub hospital_key: PathBuf,
    /// The NATS operator user's NKey seed: tools that use NATS directly
    /// (`emrctl submit`, the benchmark) set `GLUCOCHAIN_NATS_NKEY_FILE` to it.
    #[serde(default)]
    pub nats_operator_nkey: Option<PathBuf>,
    /// Every process.
    pub services: Vec<Service>,
}

impl Devnet {
    /// Reads `<dir>/devnet.json`.
    pub fn read(dir: &Path) -> anyhow::Result<Self> {
        let p = dir.join("devnet.json");
        let text = std::fs::read_to_string(&p).with_context(|| format!("{} (is a devnet up there?)", p.display()))?;
        Ok(serde_json::from_str(&text)?)
    }
}

/// How to start a devnet.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// Directory.
    pub dir: PathBuf,
    /// Validators, database, binaries.
    pub shape: DevnetShape,
    /// NATS port (default: a free one).
    pub nats_port: Option<u16>,
    /// Escalation and reminder clocks run this much faster than real time.
    pub clock_speed: f64,
}

/// A free local port for a devnet process to listen on, from below the
/// kernel's ephemeral range. A port found by binding port 0 comes from that
/// range, and while its process is down (a restart) an outgoing connection
/// may be given it as its local port, so the process cannot listen on it
/// again (the fault harness met "Address already in use" restarting a
/// validator). Ports are handed out in turn from a start that differs per
/// process, so one devnet gets distinct ports and two rarely meet.
fn free_port() -> anyhow::Result<u16> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let (low, high) = listening_ports();
    let span = u32::from(high - low);
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos())
        ^ std::process::id().wrapping_mul(2_654_435_761);
    let _ = NEXT.compare_exchange(u32::MAX, seed % span, Ordering::Relaxed, Ordering::Relaxed);
    for _ in 0..span {
        let port = low + (NEXT.fetch_add(1, Ordering::Relaxed) % span) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no free local port in {low}..{high}")
}

/// The ports devnet processes listen on: from 20000 up to the start of the
/// kernel's ephemeral range (Linux: `ip_local_port_range`, 32768 by default).
fn listening_ports() -> (u16, u16) {
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let low = 20000;
    (low, ephemeral_start.max(low + 1000))
}

fn bin(dir: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let p = dir.join(name);
    if p.is_file() {
        return Ok(p);
    }
    bail!(
        "{} not found: build the services first (cargo build --release --workspace --bins) or pass --bin-dir",
        p.display()
    )
}

/// Starts `program` detached from this process (its own process group), output to `log`.
fn start(program: &Path, args: &[String], log: &Path, nkey: Option<&Path>) -> anyhow::Result<u32> {
    let out = std::fs::File::create(log).with_context(|| log.display().to_string())?;
    spawn(program, args, out, nkey, &[])
}

fn spawn(
    program: &Path,
    args: &[String],
    out: std::fs::File,
    nkey: Option<&Path>,
    env: &[(String, String)],
) -> anyhow::Result<u32> {
    use std::os::unix::process::CommandExt as _;
    let mut cmd = Command::new(program);
    if let Some(path) = nkey {
        cmd.env(glucochain_bus::access::NKEY_FILE_ENV, path);
    }
    let child = cmd
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("GLUCOCHAIN_LOG_FORMAT", "text")
        .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()))
        .stdin(Stdio::null())
        .stdout(Stdio::from(out.try_clone()?))
        .stderr(Stdio::from(out))
        .process_group(0)
        .spawn()
        .with_context(|| format!("start {}", program.display()))?;
    Ok(child.id())
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z "))
}

async fn wait_http(c: &reqwest::Client, name: &str, url: &str, path: &str, pid: u32, log: &Path) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(r) = c.get(format!("{url}{path}")).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        if !alive(pid) {
            bail!("{name} exited; see {}", log.display());
        }
        if Instant::now() > deadline {
            bail!("{name} not ready after 120 s; see {}", log.display());
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

/// A devnet transaction signed by `key` (fresh nonce, now).
pub fn sign(key: &KeyPair, patient: Option<&ParticipantId>, body: TxBody) -> String {
    let me = ParticipantId::from_public_key(&key.public());
    TxPayload::new(
        ChainId::parse(DEVNET_CHAIN).expect("valid"),
        super::random_nonce(),
        Timestamp::now(),
        patient.cloned(),
        body,
    )
    .sign(key, &me)
}

/// A registration signed by `by`: the JWS, or with a name the submission
/// with the name sealed beside it (what [`commit`] takes either way).
pub fn register(by: &KeyPair, who: &KeyPair, role: Role, name: Option<&str>, institution: Option<&KeyPair>) -> String {
    let institution = institution.map(|k| ParticipantId::from_public_key(&k.public()));
    let (body, sealed) = glucochain_types::sealed::registration(&who.public(), role, name, institution);
    let jws = sign(by, None, body);
    match sealed {
        Some(s) => String::from_utf8(glucochain_types::sealed::Submission::sealed(jws, s).to_json()).expect("JSON"),
        None => jws,
    }
}

/// Submits and waits for the commit; errors on a rejection.
pub async fn commit(c: &reqwest::Client, ingest: &str, jws: &str) -> anyhow::Result<serde_json::Value> {
    let (status, body) = post_and_follow(c, ingest, jws, 60).await?;
    if status >= 300 || body["status"] != "committed" {
        bail!("not committed ({status}): {body}");
    }
    Ok(body)
}

/// Loads `<dir>/keys/<name>.pem`, creating it (0600) when missing.
pub fn key(dir: &Path, name: &str) -> anyhow::Result<KeyPair> {
    let p = dir.join("keys").join(format!("{name}.pem"));
    if p.exists() {
        return Ok(KeyPair::read_pem_file(&p)?);
    }
    let k = KeyPair::generate();
    k.write_pem_file(&p, false)?;
    Ok(k)
}

/// Starts a devnet and waits until every service is ready.
pub fn up(o: &UpOptions) -> anyhow::Result<Devnet> {
    let dir = std::fs::canonicalize(&o.dir).or_else(|_| {
        std::fs::create_dir_all(&o.dir)?;
        std::fs::canonicalize(&o.dir)
    })?;
    if let Ok(d) = Devnet::read(&dir)
        && d.services.iter().any(|s| alive(s.pid))
    {
        bail!("a devnet is already running in {} (emrctl devnet down --dir {0})", dir.display());
    }
    for sub in ["keys", "logs", "data", "mail/tmp", "mail/new", "mail/cur"] {
        std::fs::create_dir_all(dir.join(sub))?;
    }
    let bins = match &o.shape.bin_dir {
        Some(b) => b.clone(),
        None => std::env::current_exe()?.parent().context("emrctl's directory")?.to_path_buf(),
    };
    let admin = key(&dir, "admin")?;
    let hospital = key(&dir, "hospital")?;
    let services_keys: Vec<(&str, Role, KeyPair)> = vec![
        ("detector", Role::Detector, key(&dir, "detector")?),
        ("notifier", Role::Notifier, key(&dir, "notifier")?),
        ("ledger", Role::Ledger, key(&dir, "ledger")?),
    ];
    let validators: Vec<KeyPair> =
        (0..o.shape.validators.max(1)).map(|i| key(&dir, &format!("validator-{i}"))).collect::<anyhow::Result<_>>()?;
    let gpath = dir.join("genesis.json");
    let fresh = !gpath.exists();
    if fresh {
        let genesis = Genesis {
            chain_id: ChainId::parse(DEVNET_CHAIN)?,
            genesis_time: Timestamp::from_unix_ms(Timestamp::now().unix_ms() - 60_000),
            validators: validators
                .iter()
                .enumerate()
                .map(|(i, k)| GenesisValidator { name: format!("v{i}"), public_key: k.public(), power: 10 })
                .collect(),
            admins: vec![GenesisAdmin { name: "admin".into(), public_key: admin.public() }],
            params: ConsensusParams {
                timeout_propose_ms: 1500,
                timeout_prevote_ms: 500,
                timeout_precommit_ms: 500,
                ..Default::default()
            },
        };
        std::fs::write(&gpath, serde_json::to_vec_pretty(&genesis)?)?;
    }
    let directory = dir.join("directory.json");
    if !directory.exists() {
        std::fs::write(&directory, "{}")?;
    }
    let g = gpath.display().to_string();
    let logs = dir.join("logs");
    let mut services: Vec<Service> = Vec::new();

    // NATS with JetStream.
    let nats_port = match o.nats_port {
        Some(p) => p,
        None => free_port()?,
    };
    let nats_bin =
        glucochain_testkit::nats::nats_server_bin().context("nats-server (scripts/setup.sh installs one)")?;
    let nats_log = logs.join("nats.log");
    // One NATS user per service kind, each with an NKey and only the
    // subjects it needs (glucochain_bus::access); the seeds stay in keys/.
    let nkey = |user: NatsUser| dir.join(format!("keys/nats-{}.nk", user.name()));
    let mut nats_users = Vec::new();
    for user in NatsUser::ALL {
        let seed = glucochain_bus::access::seed_file(&nkey(user))?;
        let public = glucochain_bus::access::public_key_of(&seed).context("NKey")?;
        nats_users.push((user, public));
    }
    // JetStream's files are encrypted at rest under the devnet's own key
    // (keys/jetstream.key, 0600); the configuration holding it is 0600 too.
    let js_key = glucochain_bus::at_rest::key_file(&dir.join("keys/jetstream.key"))?;
    let nats_conf = dir.join("data/nats.conf");
    let conf = glucochain_bus::at_rest::encryption_config(&js_key)?
        + &glucochain_bus::access::authorization_config(&nats_users);
    glucochain_crypto::write_secret_file(&nats_conf, conf.as_bytes(), true)?;
    let args: Vec<String> = ["-js", "-a", "127.0.0.1", "-p", &nats_port.to_string(), "-sd"]
        .iter()
        .map(|s| s.to_string())
        .chain([dir.join("data/nats").display().to_string(), "-c".into(), nats_conf.display().to_string()])
        .collect();
    let pid = start(&nats_bin, &args, &nats_log, None)?;
    services.push(Service {
        name: "nats".into(),
        pid,
        url: None,
        log: nats_log,
        command: command_line(&nats_bin, &args),
        nkey: None,
    });
    let nats_url = format!("nats://127.0.0.1:{nats_port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", nats_port)).is_err() {
        if Instant::now() > deadline || !alive(pid) {
            bail!("nats-server did not start; see {}", dir.join("logs/nats.log").display());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // The mail sink: a real SMTP server storing every message in a Maildir.
    let smtp_port = free_port()?;
    let maildir = dir.join("mail");
    let smtp_log = logs.join("smtp.log");
    let smtp_args: Vec<String> =
        ["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{smtp_port}"), "-c", "aiosmtpd.handlers.Mailbox"]
            .iter()
            .map(|s| s.to_string())
            .chain([maildir.display().to_string()])
            .collect();
    let pid = start(Path::new("python3"), &smtp_args, &smtp_log, None)
        .context("the mail sink needs python3 with aiosmtpd (scripts/setup.sh)")?;
    services.push(Service {
        name: "smtp".into(),
        pid,
        url: None,
        log: smtp_log,
        command: command_line(Path::new("python3"), &smtp_args),
        nkey: None,
    });
    let base = |port: u16| -> Vec<String> {
        vec![
            "--genesis".into(),
            g.clone(),
            "--nats-url".into(),
            nats_url.clone(),
            "--http-addr".into(),
            format!("127.0.0.1:{port}"),
        ]
    };
    let mut launch = |name: &str, program: &str, mut args: Vec<String>, port: Option<u16>| -> anyhow::Result<()> {
        let log = logs.join(format!("{name}.log"));
        if let Some(p) = port {
            args.extend(base(p));
        }
        // `validator-3` runs as the validator user.
        let kind = name.split('-').next().unwrap_or(name);
        let user = NatsUser::from_name(kind).with_context(|| format!("no NATS user for {name}"))?;
        let program = bin(&bins, program)?;
        let seed = nkey(user);
        let pid = start(&program, &args, &log, Some(&seed))?;
        services.push(Service {
            name: name.into(),
            pid,
            url: port.map(|p| format!("http://127.0.0.1:{p}")),
            log,
            command: command_line(&program, &args),
            nkey: Some(seed),
        });
        Ok(())
    };
    for i in 0..validators.len() {
        let args = vec![
            "--key".into(),
            dir.join(format!("keys/validator-{i}.pem")).display().to_string(),
            "--data-dir".into(),
            dir.join(format!("data/validator-{i}")).display().to_string(),
        ];
        launch(&format!("validator-{i}"), "glucochain-validator", args, Some(free_port()?))?;
    }

    // PostgreSQL databases are named after the devnet's directory, so two
    // devnets on one server never share one; a new genesis starts them empty.
    let prefix = format!(
        "glucochain_devnet_{}",
        &glucochain_crypto::sha256(dir.display().to_string().as_bytes()).to_string()[..8]
    );
    let db = |name: &str| -> Vec<String> {
        match &o.shape.postgres {
            Some(url) => vec!["--database-url".into(), format!("{}/{prefix}_{name}", url.trim_end_matches('/'))],
            None => vec!["--data-dir".into(), dir.join(format!("data/{name}")).display().to_string()],
        }
    };
    if let Some(url) = &o.shape.postgres {
        let names: Vec<String> =
            ["ingest", "ledger", "contracts", "detector", "notifier"].iter().map(|n| format!("{prefix}_{n}")).collect();
        create_databases(url, &names, fresh)?;
    }
    let ports: Vec<u16> = (0..5).map(|_| free_port()).collect::<Result<_, _>>()?;
    let (ingest_p, ledger_p, contracts_p, detector_p, notifier_p) = (ports[0], ports[1], ports[2], ports[3], ports[4]);
    let speed = o.clock_speed.to_string();
    let mut a = db("ingest");
    // A devnet's per-signer write rate, unless the environment sets one (the
    // bench opens it wide); reads keep the ledger's defaults or the environment's.
    if std::env::var_os("GLUCOCHAIN_RATE_PER_SEC").is_none() {
        a.extend(["--rate-per-sec", "200", "--rate-burst", "400"].map(String::from));
    }
    // The record vault's key-encryption key (keys/vault.kek, 0600): ingest
    // seals records' bodies under it, the ledger and the detector open them,
    // the contracts engine opens emergency profiles for break-glass and the
    // notifier contacts' addresses.
    let kek = dir.join("keys/vault.kek");
    glucochain_vault::keys::FileKek::create_file_if_missing(&kek)?;
    let kek_arg = || ["--kek-file".to_string(), kek.display().to_string()];
    a.extend(kek_arg());
    launch("ingest", "glucochain-ingest", a, Some(ingest_p))?;
    let mut a = db("ledger");
    a.extend(["--key".into(), dir.join("keys/ledger.pem").display().to_string()]);
    // The web pages forward the transactions people sign in the browser to ingest.
    a.extend(["--ingest-url".into(), format!("http://127.0.0.1:{ingest_p}")]);
    a.extend(kek_arg());
    launch("ledger", "glucochain-ledger", a, Some(ledger_p))?;
    let mut a = db("contracts");
    a.extend(["--reminder-tick-secs".into(), "1".into(), "--clock-speed".into(), speed.clone()]);
    a.extend(kek_arg());
    launch("contracts", "glucochain-contracts", a, Some(contracts_p))?;
    let mut a = db("detector");
    a.extend(["--key".into(), dir.join("keys/detector.pem").display().to_string()]);
    a.extend(kek_arg());
    launch("detector", "glucochain-detector", a, Some(detector_p))?;
    let notifier_url = format!("http://127.0.0.1:{notifier_p}");
    let mut a = db("notifier");
    a.extend([
        "--key".into(),
        dir.join("keys/notifier.pem").display().to_string(),
        "--directory".into(),
        directory.display().to_string(),
        "--public-url".into(),
        notifier_url.clone(),
        "--smtp-host".into(),
        "127.0.0.1".into(),
        "--smtp-port".into(),
        smtp_port.to_string(),
        "--smtp-tls".into(),
        "none".into(),
        "--mail-from".into(),
        "GlucoChain devnet <alerts@glucochain.invalid>".into(),
        "--clock-speed".into(),
        speed,
        "--tick-ms".into(),
        "250".into(),
    ]);
    a.extend(kek_arg());
    launch("notifier", "glucochain-notifier", a, Some(notifier_p))?;

    let net = Devnet {
        dir: dir.clone(),
        chain_id: DEVNET_CHAIN.into(),
        nats_url,
        genesis: gpath,
        ingest: format!("http://127.0.0.1:{ingest_p}"),
        ledger: format!("http://127.0.0.1:{ledger_p}"),
        contracts: format!("http://127.0.0.1:{contracts_p}"),
        notifier: notifier_url,
        smtp_port,
        maildir,
        database: o.shape.postgres.clone().map(|u| redact(&u)).unwrap_or_else(|| "sqlite".into()),
        databases: match &o.shape.postgres {
            Some(_) => ["ingest", "ledger", "contracts", "detector", "notifier"]
                .iter()
                .map(|n| (n.to_string(), format!("{prefix}_{n}")))
                .collect(),
            None => Default::default(),
        },
        admin_key: dir.join("keys/admin.pem"),
        hospital_key: dir.join("keys/hospital.pem"),
        nats_operator_nkey: Some(nkey(NatsUser::Operator)),
        services,
    };
    std::fs::write(dir.join("devnet.json"), serde_json::to_vec_pretty(&net)?)?;

    runtime()?.block_on(async {
        let c = client()?;
        for s in &net.services {
            if let Some(url) = &s.url {
                let path = if s.name.starts_with("validator-") { "/healthz" } else { "/readyz" };
                wait_http(&c, &s.name, url, path, s.pid, &s.log).await?;
            }
        }
        // The hospital and the services' own keys, registered by the admin
        // (on a devnet brought up again they already are).
        let mut pending = vec![register(&admin, &hospital, Role::Institution, Some("Devnet General Hospital"), None)];
        for (name, role, k) in &services_keys {
            pending.push(register(&admin, k, *role, Some(name), None));
        }
        for jws in pending {
            let (status, body) = post_and_follow(&c, &net.ingest, &jws, 60).await?;
            let known = body["code"] == "conflict" || body["type"].as_str().is_some_and(|t| t.ends_with(":conflict"));
            if !(body["status"] == "committed" || known) {
                bail!("registration not committed ({status}): {body}");
            }
        }
        anyhow::Ok(())
    })?;
    Ok(net)
}

fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***@{}", &url[..s], &url[at + 1..]),
        _ => url.to_string(),
    }
}

/// Creates the per-service databases on a PostgreSQL server (psql).
fn create_databases(url: &str, names: &[String], fresh: bool) -> anyhow::Result<()> {
    let admin = format!("{}/postgres", url.trim_end_matches('/'));
    for n in names {
        if fresh {
            let ok =
                Command::new("psql").args([&admin, "-qc", &format!("DROP DATABASE IF EXISTS \"{n}\"")]).status()?;
            if !ok.success() {
                bail!("could not drop the old database {n} on {}", redact(url));
            }
        }
        let exists = Command::new("psql")
            .args([&admin, "-Atqc", &format!("SELECT 1 FROM pg_database WHERE datname = '{n}'")])
            .output()
            .context("psql")?;
        if String::from_utf8_lossy(&exists.stdout).trim() != "1" {
            let ok = Command::new("psql").args([&admin, "-qc", &format!("CREATE DATABASE \"{n}\"")]).status()?;
            if !ok.success() {
                bail!("could not create database {n} on {}", redact(url));
            }
        }
    }
    Ok(())
}

fn command_line(program: &Path, args: &[String]) -> Vec<String> {
    std::iter::once(program.display().to_string()).chain(args.iter().cloned()).collect()
}

/// Whether one of the devnet's processes is running.
pub fn is_running(service: &Service) -> bool {
    alive(service.pid)
}

/// Sends `signal` (`KILL`, `TERM`, `STOP`, `CONT`, ...) to the devnet's
/// process `name` and, for `KILL` and `TERM`, waits until it is gone.
pub fn signal_service(dir: &Path, name: &str, signal: &str) -> anyhow::Result<()> {
    let net = Devnet::read(dir)?;
    let s = net.services.iter().find(|s| s.name == name).with_context(|| format!("no process {name} in the devnet"))?;
    if !alive(s.pid) {
        bail!("{name} is not running");
    }
    let ok = Command::new("kill").args([&format!("-{signal}"), &s.pid.to_string()]).status()?;
    if !ok.success() {
        bail!("kill -{signal} {} ({name}) failed", s.pid);
    }
    if matches!(signal, "KILL" | "TERM") {
        let deadline = Instant::now() + Duration::from_secs(15);
        while alive(s.pid) {
            if Instant::now() > deadline {
                bail!("{name} still running 15 s after SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Ok(())
}

/// How to start a devnet process again.
#[derive(Debug, Clone, Default)]
pub struct Restart {
    /// Extra environment (e.g. a fault-injection library and its settings).
    pub env: Vec<(String, String)>,
    /// Another NATS URL (e.g. through a fault-injecting proxy).
    pub nats_url: Option<String>,
}

/// Starts the devnet's process `name` again with the command it was first
/// started with (log appended, new pid recorded in `devnet.json`).
pub fn start_service(dir: &Path, name: &str, how: &Restart) -> anyhow::Result<u32> {
    let mut net = Devnet::read(dir)?;
    let s =
        net.services.iter_mut().find(|s| s.name == name).with_context(|| format!("no process {name} in the devnet"))?;
    if alive(s.pid) {
        bail!("{name} is running (pid {})", s.pid);
    }
    let (program, args) = s.command.split_first().with_context(|| format!("devnet.json has no command for {name}"))?;
    let mut args = args.to_vec();
    if let Some(url) = &how.nats_url {
        let i = args.iter().position(|a| a == "--nats-url").with_context(|| format!("{name} takes no --nats-url"))?;
        args[i + 1] = url.clone();
    }
    let out = std::fs::OpenOptions::new().append(true).create(true).open(&s.log)?;
    s.pid = spawn(Path::new(program), &args, out, s.nkey.as_deref(), &how.env)?;
    let pid = s.pid;
    std::fs::write(dir.join("devnet.json"), serde_json::to_vec_pretty(&net)?)?;
    Ok(pid)
}

/// Stops every process of the devnet (SIGTERM, then SIGKILL after 10 s).
pub fn down(dir: &Path) -> anyhow::Result<ExitCode> {
    let net = Devnet::read(dir)?;
    let signal = |sig: &str, pid: u32| {
        let _ = Command::new("kill").args([sig, &pid.to_string()]).stderr(Stdio::null()).status();
    };
    for s in net.services.iter().rev() {
        if alive(s.pid) {
            signal("-TERM", s.pid);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while net.services.iter().any(|s| alive(s.pid)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    for s in &net.services {
        if alive(s.pid) {
            signal("-KILL", s.pid);
        }
    }
    println!("devnet in {} stopped ({} processes)", net.dir.display(), net.services.len());
    Ok(ExitCode::SUCCESS)
}

fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines().find(|l| l.starts_with(name)).and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

/// Height, validators, services and lag.
pub fn status(dir: &Path) -> anyhow::Result<ExitCode> {
    let net = Devnet::read(dir)?;
    runtime()?.block_on(async {
        let c = client()?;
        let mut rows = Vec::new();
        let mut top = 0.0f64;
        let mut heights = Vec::new();
        for s in &net.services {
            let up = alive(s.pid);
            let (mut ready, mut height) = (None, None);
            if let (true, Some(url)) = (up, &s.url) {
                let path = if s.name.starts_with("validator-") { "/healthz" } else { "/readyz" };
                ready = Some(c.get(format!("{url}{path}")).send().await.is_ok_and(|r| r.status().is_success()));
                if let Ok(r) = c.get(format!("{url}/metrics")).send().await {
                    let text = r.text().await.unwrap_or_default();
                    height = metric(&text, "glucochain_consensus_height")
                        .or_else(|| metric(&text, "glucochain_ledger_height"))
                        .or_else(|| metric(&text, "glucochain_detector_height"))
                        .or_else(|| metric(&text, "glucochain_notifier_height"));
                }
            }
            if let Some(h) = height {
                top = top.max(h);
            }
            heights.push(height);
            rows.push((s, up, ready));
        }
        println!(
            "devnet {} (chain {}, NATS {}, database {})",
            net.dir.display(),
            net.chain_id,
            net.nats_url,
            net.database
        );
        println!("{:<14} {:>8} {:>6} {:>7} {:>8} {:>5}  url", "service", "pid", "alive", "ready", "height", "lag");
        for ((s, up, ready), h) in rows.iter().zip(heights) {
            println!(
                "{:<14} {:>8} {:>6} {:>7} {:>8} {:>5}  {}",
                s.name,
                s.pid,
                if *up { "yes" } else { "NO" },
                ready.map(|r| if r { "yes" } else { "no" }).unwrap_or("-"),
                h.map(|h| format!("{h:.0}")).unwrap_or_else(|| "-".into()),
                h.map(|h| format!("{:.0}", top - h)).unwrap_or_else(|| "-".into()),
                s.url.as_deref().unwrap_or("")
            );
        }
        println!(
            "mail sink: smtp://127.0.0.1:{}  inbox: emrctl devnet mail --dir {}",
            net.smtp_port,
            net.dir.display()
        );
        let all_up = rows.iter().all(|(_, up, ready)| *up && ready.unwrap_or(true));
        Ok(if all_up { ExitCode::SUCCESS } else { ExitCode::from(1) })
    })
}

/// One message of the mail sink.
#[derive(Debug, Clone)]
pub struct Mail {
    /// When stored.
    pub modified: std::time::SystemTime,
    /// Raw RFC 5322 text.
    pub raw: String,
}

impl Mail {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        let head = self.raw.split("\n\n").next().unwrap_or("");
        head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    /// The plain-text part, quoted-printable soft breaks undone.
    pub fn text(&self) -> String {
        let t = self.raw.replace("=\r\n", "").replace("=\n", "").replace("=3D", "=");
        let start = t.find("Content-Type: text/plain").unwrap_or(0);
        let body = t[start..].split_once("\n\n").map(|(_, b)| b).unwrap_or("");
        body.split("\n--").next().unwrap_or("").trim().to_string()
    }
}

/// Every message in a Maildir, oldest first.
pub fn mailbox(maildir: &Path) -> Vec<Mail> {
    let mut out = Vec::new();
    for sub in ["new", "cur"] {
        if let Ok(rd) = std::fs::read_dir(maildir.join(sub)) {
            for e in rd.flatten() {
                let modified = e.metadata().and_then(|m| m.modified()).unwrap_or(std::time::UNIX_EPOCH);
                out.push(Mail { modified, raw: std::fs::read_to_string(e.path()).unwrap_or_default() });
            }
        }
    }
    out.sort_by_key(|m| m.modified);
    out
}

/// Lists the mail sink's messages, or shows one.
pub fn mail(dir: &Path, show: Option<usize>) -> anyhow::Result<ExitCode> {
    let net = Devnet::read(dir)?;
    let mails = mailbox(&net.maildir);
    match show {
        Some(n) => {
            let m =
                mails.get(n.saturating_sub(1)).with_context(|| format!("no message {n} ({} in all)", mails.len()))?;
            for h in ["Date", "From", "To", "Subject"] {
                println!("{h}: {}", m.header(h).unwrap_or(""));
            }
            println!("\n{}", m.text());
        }
        None => {
            println!("  #  {:<30} subject", "to");
            for (i, m) in mails.iter().enumerate() {
                println!("{:>3}  {:<30} {}", i + 1, m.header("To").unwrap_or(""), m.header("Subject").unwrap_or(""));
            }
            println!("{} message(s) in {}", mails.len(), net.maildir.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod port_tests {
    use super::{free_port, listening_ports};

    #[test]
    fn devnet_ports_are_distinct_free_and_below_the_ephemeral_range() {
        let (low, high) = listening_ports();
        let ports: Vec<u16> = (0..20).map(|_| free_port().unwrap()).collect();
        for p in &ports {
            assert!((low..high).contains(p), "{p} outside {low}..{high}");
            assert!(std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok(), "{p} is free");
        }
        let distinct: std::collections::HashSet<_> = ports.iter().collect();
        assert_eq!(distinct.len(), ports.len());
    }
}
