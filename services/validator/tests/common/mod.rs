//! A local validator cluster for multi-process tests: a real nats-server,
//! N validator processes with their own keys, stores and WALs, a genesis
//! file, and a client that submits signed transactions to the `TXS` stream
//! and follows the `BLOCKS` stream.

#![allow(dead_code)]

use futures::StreamExt as _;
use glucochain_bus::streams::StreamSpec;
use glucochain_bus::{Bus, subjects};
use glucochain_crypto::{Hash32, KeyPair, sha256};
use glucochain_store::Store;
use glucochain_testkit::{NatsServer, free_port};
use glucochain_types::genesis::{ConsensusParams, Genesis, GenesisAdmin, GenesisValidator};
use glucochain_types::time::Timestamp;
use glucochain_types::tx::{ParticipantRegister, TxBody, TxPayload};
use glucochain_types::{ChainId, ParticipantId, Role, Transaction};
use glucochain_wire::v1 as wire;
use prost::Message as _;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const CHAIN: &str = "glucochain-cluster";

pub struct Cluster {
    pub nats: NatsServer,
    pub dir: tempfile::TempDir,
    pub admin: KeyPair,
    pub validators: Vec<ValidatorProc>,
    pub genesis: PathBuf,
    nonce: u64,
    /// Environment of every validator process (options as `GLUCOCHAIN_*`).
    env: Vec<(String, String)>,
}

pub struct ValidatorProc {
    pub key: PathBuf,
    pub id: ParticipantId,
    pub data: PathBuf,
    pub http_port: u16,
    pub child: Option<Child>,
    pub byzantine: bool,
    pub log: PathBuf,
}

impl Cluster {
    /// `n` validators; those in `byzantine` run the test-only equivocating binary.
    pub fn start(n: usize, byzantine: &[usize]) -> Self {
        Self::start_with_followers(n, 0, byzantine)
    }

    /// `n` genesis validators plus `followers` validator processes whose keys
    /// are not (yet) in the validator set: they follow the chain without voting.
    pub fn start_with_followers(n: usize, followers: usize, byzantine: &[usize]) -> Self {
        Self::start_configured(n, followers, byzantine, &[])
    }

    /// As [`Cluster::start_with_followers`], every validator with `env` set.
    pub fn start_configured(n: usize, followers: usize, byzantine: &[usize], env: &[(&str, &str)]) -> Self {
        Self::start_on(NatsServer::start().expect("nats-server"), n, followers, byzantine, env)
    }

    /// As [`Cluster::start_configured`], on a given NATS server.
    pub fn start_on(nats: NatsServer, n: usize, followers: usize, byzantine: &[usize], env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let admin = KeyPair::generate();
        let mut validators = Vec::new();
        let mut gvals = Vec::new();
        for i in 0..n + followers {
            let key = KeyPair::generate();
            let path = dir.path().join(format!("validator-{i}.pem"));
            key.write_pem_file(&path, false).unwrap();
            if i < n {
                gvals.push(GenesisValidator { name: format!("validator-{i}"), public_key: key.public(), power: 10 });
            }
            validators.push(ValidatorProc {
                key: path,
                id: ParticipantId::from_public_key(&key.public()),
                data: dir.path().join(format!("data-{i}")),
                http_port: free_port(),
                child: None,
                byzantine: byzantine.contains(&i),
                log: dir.path().join(format!("validator-{i}.log")),
            });
        }
        let genesis = Genesis {
            chain_id: ChainId::parse(CHAIN).unwrap(),
            genesis_time: Timestamp::from_unix_ms(Timestamp::now().unix_ms() - 60_000),
            validators: gvals,
            admins: vec![GenesisAdmin { name: "admin".into(), public_key: admin.public() }],
            params: ConsensusParams {
                timeout_propose_ms: 1500,
                timeout_prevote_ms: 500,
                timeout_precommit_ms: 500,
                ..ConsensusParams::default()
            },
        };
        genesis.validate().unwrap();
        let gpath = dir.path().join("genesis.json");
        std::fs::write(&gpath, serde_json::to_vec_pretty(&genesis).unwrap()).unwrap();
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let mut c = Cluster { nats, dir, admin, validators, genesis: gpath, nonce: 0, env };
        for i in 0..n + followers {
            c.start_validator(i);
        }
        c
    }

    pub fn start_validator(&mut self, i: usize) {
        let v = &mut self.validators[i];
        assert!(v.child.is_none(), "validator {i} already runs");
        let bin = if v.byzantine {
            env!("CARGO_BIN_EXE_glucochain-validator-byzantine")
        } else {
            env!("CARGO_BIN_EXE_glucochain-validator")
        };
        // A restarted validator listens on a fresh port: while it was down,
        // another test of the suite running in parallel may have been given
        // its old one (only this test reads it; the validators meet over NATS).
        if std::fs::metadata(&v.log).is_ok_and(|m| m.len() > 0) {
            v.http_port = free_port();
        }
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&v.log).unwrap();
        let child = Command::new(bin)
            .arg("--genesis")
            .arg(&self.genesis)
            .arg("--key")
            .arg(&v.key)
            .arg("--data-dir")
            .arg(&v.data)
            .arg("--nats-url")
            .arg(self.nats.url())
            .arg("--http-addr")
            .arg(format!("127.0.0.1:{}", v.http_port))
            .env("GLUCOCHAIN_LOG_FORMAT", "text")
            .env("RUST_LOG", "info")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn validator");
        v.child = Some(child);
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.validators[i].child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// Waits until every running validator answers /readyz.
    pub async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        for (i, v) in self.validators.iter().enumerate() {
            if v.child.is_none() {
                continue;
            }
            loop {
                if http_get(v.http_port, "/readyz").await.map(|(code, _)| code == 200).unwrap_or(false) {
                    break;
                }
                assert!(Instant::now() < deadline, "validator {i} not ready:\n{}", self.log_tail(i));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    /// The last 40 lines of validator `i`'s log, without backtrace frames
    /// (a process that exited with an error prints its frames last, and
    /// they would push the error itself out of the tail).
    pub fn log_tail(&self, i: usize) -> String {
        let text = std::fs::read_to_string(&self.validators[i].log).unwrap_or_default();
        let frame = |l: &&str| {
            let t = l.trim_start();
            t.starts_with("at ") || t.split_once(": ").is_some_and(|(n, _)| n.chars().all(|c| c.is_ascii_digit()))
        };
        let lines: Vec<&str> = text.lines().filter(|l| !frame(l)).collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    pub fn logs(&self) -> String {
        (0..self.validators.len()).map(|i| format!("--- validator {i}\n{}", self.log_tail(i))).collect()
    }

    pub async fn bus(&self) -> Bus {
        let bus = Bus::connect(&self.nats.url(), "cluster-test").await.unwrap();
        bus.ensure_stream(&StreamSpec::txs()).await.unwrap();
        bus.ensure_stream(&StreamSpec::blocks()).await.unwrap();
        bus
    }

    /// A fresh admin-signed registration (a valid transaction).
    pub fn registration(&mut self) -> Vec<u8> {
        self.nonce += 1;
        let who = KeyPair::generate();
        let payload = TxPayload::new(
            ChainId::parse(CHAIN).unwrap(),
            format!("cluster-{:06}", self.nonce),
            Timestamp::now(),
            None,
            TxBody::ParticipantRegister(ParticipantRegister {
                id: ParticipantId::from_public_key(&who.public()),
                role: Role::Institution,
                public_key: who.public(),
                // Validators see envelopes only: the name's commitment, never the name.
                body_commitment: Some(glucochain_crypto::sha256(format!("Clinic {}", self.nonce).as_bytes())),
                institution: None,
            }),
        );
        let id = ParticipantId::from_public_key(&self.admin.public());
        payload.sign(&self.admin, &id).into_bytes()
    }

    /// An admin-signed `validator.update` giving validator `i` `power`.
    pub fn validator_update(&mut self, i: usize, power: u64) -> Vec<u8> {
        self.nonce += 1;
        let key = KeyPair::read_pem_file(&self.validators[i].key).unwrap();
        let payload = TxPayload::new(
            ChainId::parse(CHAIN).unwrap(),
            format!("cluster-{:06}", self.nonce),
            Timestamp::now(),
            None,
            TxBody::ValidatorUpdate(glucochain_types::tx::ValidatorUpdate {
                validator: self.validators[i].id.clone(),
                public_key: key.public(),
                power,
            }),
        );
        let id = ParticipantId::from_public_key(&self.admin.public());
        payload.sign(&self.admin, &id).into_bytes()
    }

    /// Submits transactions to `TXS` as ingest does (msg-id = tx hash).
    pub async fn submit(&self, bus: &Bus, txs: &[Vec<u8>]) -> Vec<Hash32> {
        let mut hashes = Vec::new();
        for jws in txs {
            let tx = Transaction::parse(std::str::from_utf8(jws).unwrap(), &Default::default()).unwrap();
            let env = wire::TxEnvelope::received_now(jws.clone(), tx.hash.0.to_vec(), tx.payload.tx_type.as_str(), 0);
            bus.publish(&subjects::tx(tx.payload.tx_type.as_str()), &tx.hash.to_string(), env.encode_to_vec().into())
                .await
                .unwrap();
            hashes.push(sha256(jws));
        }
        hashes
    }

    /// Committed blocks read from the BLOCKS stream, by height (checked: one block per height).
    pub async fn blocks_from_stream(&self, bus: &Bus) -> BTreeMap<u64, wire::CommittedBlock> {
        let stream = bus.jetstream().get_stream(subjects::STREAM_BLOCKS).await.unwrap();
        let consumer =
            stream.create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig::default()).await.unwrap();
        let pending = stream.clone().info().await.unwrap().state.messages;
        let mut out = BTreeMap::new();
        if pending == 0 {
            return out;
        }
        let mut msgs = consumer.messages().await.unwrap();
        let mut seen = 0;
        while seen < pending {
            let m = tokio::time::timeout(Duration::from_secs(10), msgs.next()).await.unwrap().unwrap().unwrap();
            seen += 1;
            let c = wire::CommittedBlock::decode(m.payload.as_ref()).unwrap();
            let h = c.block.as_ref().unwrap().header.as_ref().unwrap().height;
            if let Some(prev) = out.insert(h, c.clone()) {
                assert_eq!(prev, c, "two different blocks published at height {h}");
            }
        }
        out
    }

    /// Waits until every tx in `hashes` is committed (as seen on BLOCKS).
    pub async fn wait_committed(
        &self,
        bus: &Bus,
        hashes: &[Hash32],
        within: Duration,
    ) -> BTreeMap<u64, wire::CommittedBlock> {
        let deadline = Instant::now() + within;
        loop {
            let blocks = self.blocks_from_stream(bus).await;
            let committed: std::collections::HashSet<Vec<u8>> = blocks
                .values()
                .flat_map(|c| c.block.as_ref().unwrap().txs.iter().map(|t| sha256(t).0.to_vec()))
                .collect();
            if hashes.iter().all(|h| committed.contains(h.0.as_slice())) {
                return blocks;
            }
            assert!(Instant::now() < deadline, "transactions not committed in time\n{}", self.logs());
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Opens validator `i`'s block store (read while it runs: SQLite WAL mode).
    /// Opening can fail for a moment while the validator itself opens or
    /// checkpoints the file (SQLite's "unable to open database file" was seen
    /// once in CI), so it is tried for a few seconds before the test fails.
    pub async fn store(&self, i: usize) -> Store {
        let path = self.validators[i].data.join("blocks.db");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match Store::connect(&format!("sqlite://{}", path.display())).await {
                Ok(store) => return store,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("opening validator {i}'s store {}: {e}; trying again", path.display());
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!(
                    "validator {i}'s store {} (exists: {}) does not open: {e}\n{}",
                    path.display(),
                    path.exists(),
                    self.logs()
                ),
            }
        }
    }

    /// Block hashes by height in validator `i`'s store.
    pub async fn chain_of(&self, i: usize) -> Vec<Vec<u8>> {
        let store = self.store(i).await;
        let top = store.latest_height().await.unwrap().unwrap_or(0);
        let mut out = Vec::new();
        for h in 1..=top {
            out.push(store.block(h).await.unwrap().unwrap().hash);
        }
        store.close().await;
        out
    }

    /// Metric value (sum over label sets matching `filter`) from validator `i`.
    pub async fn metric(&self, i: usize, name: &str, filter: &str) -> f64 {
        let (_, text) = http_get(self.validators[i].http_port, "/metrics").await.unwrap_or_default();
        text.lines()
            .filter(|l| l.starts_with(name) && l.contains(filter))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.validators.len() {
            self.kill(i);
        }
    }
}

/// A minimal HTTP/1.1 GET (no client crate needed for two endpoints).
pub async fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let code = text.split(' ').nth(1)?.parse().ok()?;
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    Some((code, body))
}
