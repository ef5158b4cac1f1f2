//! Commands that talk to the HTTPS APIs: submit through ingest, status,
//! records, proofs, and verifying the whole chain from the ledger's headers.

use super::{random_nonce, read_input, unix_now};
use crate::cli::ReaderArgs;
use anyhow::{Context, bail};
use glucochain_crypto::jose::{LEDGER_AUDIENCE, issue_token};
use glucochain_crypto::{Hash32, KeyPair};
use glucochain_types::block::{BlockHeader, CommitCertificate, ValidatorSet, tx_root};
use glucochain_types::{Genesis, ParticipantId};
use serde_json::Value;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
}

/// An HTTP(S) client. HTTPS uses rustls (ring) with the system's roots or,
/// when `GLUCOCHAIN_CA_CERT` names a PEM file, only that certificate (a
/// private CA, or a self-signed development certificate), like `curl --cacert`.
pub(crate) fn client() -> anyhow::Result<reqwest::Client> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut b = reqwest::Client::builder().timeout(Duration::from_secs(30));
    if let Ok(path) = std::env::var("GLUCOCHAIN_CA_CERT") {
        let pem = std::fs::read(&path).with_context(|| format!("GLUCOCHAIN_CA_CERT {path}"))?;
        b = b.tls_certs_only([
            reqwest::Certificate::from_pem(&pem).context("GLUCOCHAIN_CA_CERT is not a PEM certificate")?
        ]);
    }
    Ok(b.build()?)
}

/// A 2-minute read token of `reader` for the service `audience`.
pub(crate) fn read_token(reader: &ReaderArgs, audience: &str) -> anyhow::Result<String> {
    read_token_for(&reader.key, audience, &reader.chain_id)
}

/// A 2-minute read token signed by the key in `key`, for `audience` on `chain_id`.
pub(crate) fn read_token_for(key: &Path, audience: &str, chain_id: &str) -> anyhow::Result<String> {
    let kp = KeyPair::read_pem_file(key)?;
    let id = ParticipantId::from_public_key(&kp.public());
    Ok(issue_token(&kp, id.as_str(), audience, chain_id, unix_now(), 120, &random_nonce()))
}

/// Prints a JSON answer; a problem document makes the exit status 1.
pub(crate) async fn answer(r: reqwest::Response) -> anyhow::Result<(u16, Value)> {
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    Ok((status, body))
}

pub(crate) fn print(v: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

pub(crate) fn outcome(status: u16, body: &Value) -> anyhow::Result<ExitCode> {
    print(body)?;
    Ok(if status < 300 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// `emrctl submit --ingest URL`: POST the JWS, optionally wait for the outcome.
/// POSTs `jws` to ingest and, with `wait` > 0, follows its status until it
/// is committed or rejected. Returns the last HTTP status and answer.
pub(crate) async fn post_and_follow(
    c: &reqwest::Client,
    ingest: &str,
    jws: &str,
    wait: u64,
) -> anyhow::Result<(u16, Value)> {
    // A bare JWS, or a submission with a record's sealed body (`emrctl sign-tx` prints one for records).
    let text = jws.trim().to_string();
    let media = if text.starts_with('{') { "application/json" } else { "application/jose" };
    let r = c
        .post(format!("{ingest}/v1/transactions"))
        .header("content-type", media)
        .body(text)
        .send()
        .await
        .with_context(|| format!("POST {ingest}/v1/transactions"))?;
    let (status, body) = answer(r).await?;
    if status >= 300 || wait == 0 {
        return Ok((status, body));
    }
    let hash = body["tx_hash"].as_str().unwrap_or_default().to_string();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(wait);
    loop {
        let (s, b) = answer(c.get(format!("{ingest}/v1/transactions/{hash}")).send().await?).await?;
        match b["status"].as_str() {
            Some("committed" | "rejected") => return Ok((s, b)),
            _ if tokio::time::Instant::now() >= deadline => {
                print(&b)?;
                bail!("still pending after {wait} s");
            }
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

pub fn submit(jws: &Path, ingest: &str, wait: u64) -> anyhow::Result<ExitCode> {
    let text = String::from_utf8(read_input(jws)?).context("the JWS is not UTF-8")?;
    let base = ingest.trim_end_matches('/').to_string();
    runtime()?.block_on(async move {
        let (status, body) = post_and_follow(&client()?, &base, &text, wait).await?;
        if body["status"] == "rejected" {
            print(&body)?;
            return Ok(ExitCode::from(1));
        }
        outcome(status, &body)
    })
}

/// `emrctl tx HASH`.
pub fn tx(hash: &str, ingest: &str) -> anyhow::Result<ExitCode> {
    let url = format!("{}/v1/transactions/{hash}", ingest.trim_end_matches('/'));
    runtime()?.block_on(async move {
        let (status, body) = answer(client()?.get(&url).send().await.with_context(|| format!("GET {url}"))?).await?;
        outcome(status, &body)
    })
}

/// `emrctl records PATIENT`.
pub fn records(
    patient: &str,
    reader: &ReaderArgs,
    ledger: &str,
    code: Option<&str>,
    dates: &[String],
    count: u32,
    purpose: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let token = read_token(reader, LEDGER_AUDIENCE)?;
    let mut query: Vec<(&str, String)> = vec![("_count", count.to_string())];
    if let Some(c) = code {
        query.push(("code", c.to_string()));
    }
    for d in dates {
        query.push(("date", d.clone()));
    }
    let url = format!("{}/v1/patients/{patient}/records", ledger.trim_end_matches('/'));
    runtime()?.block_on(async move {
        let mut req = client()?.get(&url).query(&query).bearer_auth(token);
        if let Some(p) = purpose {
            req = req.header("x-purpose-of-use", p);
        }
        let (status, body) = answer(req.send().await.with_context(|| format!("GET {url}"))?).await?;
        outcome(status, &body)
    })
}

/// `emrctl proof HASH`.
pub fn proof(hash: &str, reader: &ReaderArgs, ledger: &str, out: &Path) -> anyhow::Result<ExitCode> {
    let token = read_token(reader, LEDGER_AUDIENCE)?;
    let url = format!("{}/v1/transactions/{hash}/proof", ledger.trim_end_matches('/'));
    runtime()?.block_on(async move {
        let (status, body) =
            answer(client()?.get(&url).bearer_auth(token).send().await.with_context(|| format!("GET {url}"))?).await?;
        if status >= 300 || out == Path::new("-") {
            return outcome(status, &body);
        }
        std::fs::write(out, serde_json::to_string_pretty(&body)? + "\n")?;
        eprintln!("wrote {}", out.display());
        Ok(ExitCode::SUCCESS)
    })
}

/// The checks of one block against its parent, from the ledger's block JSON.
fn check_block(
    b: &Value,
    expect_height: u64,
    prev: &Hash32,
    set: &ValidatorSet,
    genesis: &Genesis,
) -> anyhow::Result<(Hash32, u64, Vec<Hash32>)> {
    let header: BlockHeader = serde_json::from_value(b["header"].clone()).context("header")?;
    let cert: CommitCertificate = serde_json::from_value(b["certificate"].clone()).context("certificate")?;
    let hashes: Vec<Hash32> = b["tx_hashes"]
        .as_array()
        .context("tx_hashes")?
        .iter()
        .map(|h| Hash32::from_hex(h.as_str().unwrap_or_default()))
        .collect::<Result<_, _>>()
        .context("tx hash")?;
    let (hash, power) = check_header(&header, &cert, &hashes, expect_height, prev, set, genesis)?;
    Ok((hash, power, hashes))
}

/// Checks one block of the chain of `genesis` (kept by its genesis
/// validator set): its chain, height, link to `prev`, transaction root
/// over `hashes` and commit certificate. Returns its hash and the power
/// that signed it (`emrctl verify-chain`, `emrctl chain export`).
pub(crate) fn check_header(
    header: &BlockHeader,
    cert: &CommitCertificate,
    hashes: &[Hash32],
    expect_height: u64,
    prev: &Hash32,
    set: &ValidatorSet,
    genesis: &Genesis,
) -> anyhow::Result<(Hash32, u64)> {
    if header.chain_id != genesis.chain_id {
        bail!("block {expect_height} is for chain {}", header.chain_id);
    }
    if header.height != expect_height {
        bail!("expected height {expect_height}, got {}", header.height);
    }
    if &header.prev_hash != prev {
        bail!("block {expect_height}: prev_hash does not link to block {}", expect_height - 1);
    }
    if header.tx_count as usize != hashes.len() || header.tx_root != tx_root(hashes) {
        bail!("block {expect_height}: tx_root does not match its transactions");
    }
    if header.validators_hash != set.hash() {
        bail!(
            "block {expect_height}: validator set changed (a set change is checked with the transactions that made it; not supported offline yet)"
        );
    }
    let hash = header.hash();
    let power = cert.verify(expect_height, &hash, set).with_context(|| format!("block {expect_height} certificate"))?;
    Ok((hash, power))
}

/// A ledger's chain, checked block by block from genesis.
#[derive(Debug, Clone)]
pub struct VerifiedChain {
    /// The newest height checked.
    pub height: u64,
    /// Hash of the newest block (the genesis hash for an empty chain).
    pub tip_hash: Hash32,
    /// The smallest voting power that signed a certificate (0 when empty).
    pub weakest_certificate_power: u64,
    /// The transactions of every block, `tx_hashes[h - 1]` for height `h`.
    pub tx_hashes: Vec<Vec<Hash32>>,
}

/// Why a ledger's chain did not verify.
#[derive(Debug, thiserror::Error)]
pub enum ChainBroken {
    /// A block failed a check.
    #[error("block {height}: {reason}")]
    Block {
        /// Its height.
        height: u64,
        /// What failed.
        reason: String,
    },
    /// The ledger answered with a problem.
    #[error("the ledger answered {status}: {body}")]
    Ledger {
        /// HTTP status.
        status: u16,
        /// Its body.
        body: Value,
    },
}

/// GET `url`, waiting out the ledger's per-reader rate limit (429 and
/// `Retry-After`) instead of failing a long walk over the chain.
async fn get_patiently(c: &reqwest::Client, url: &str, token: &str) -> anyhow::Result<(u16, Value)> {
    loop {
        let r = c.get(url).bearer_auth(token).send().await.with_context(|| format!("GET {url}"))?;
        if r.status().as_u16() == 429 {
            let secs = r
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                .unwrap_or(1)
                .clamp(1, 30);
            tokio::time::sleep(Duration::from_secs(secs)).await;
            continue;
        }
        return answer(r).await;
    }
}

/// Walks the ledger's chain from genesis: every block's height, link,
/// transaction root and commit certificate (`emrctl verify-chain`, and the
/// fault harness's check after every fault). `token` is a read token of an
/// admin or auditor.
pub async fn verify_ledger_chain(
    c: &reqwest::Client,
    genesis: &Genesis,
    token: &str,
    ledger: &str,
) -> anyhow::Result<Result<VerifiedChain, ChainBroken>> {
    let base = ledger.trim_end_matches('/');
    let (status, latest) = get_patiently(c, &format!("{base}/v1/blocks/latest"), token).await?;
    let set = genesis.validator_set();
    let mut chain =
        VerifiedChain { height: 0, tip_hash: genesis.hash(), weakest_certificate_power: 0, tx_hashes: Vec::new() };
    if status == 404 {
        return Ok(Ok(chain));
    }
    if status >= 300 {
        return Ok(Err(ChainBroken::Ledger { status, body: latest }));
    }
    let tip = latest["height"].as_u64().context("height")?;
    let mut min_power = u64::MAX;
    for h in 1..=tip {
        let (s, b) = get_patiently(c, &format!("{base}/v1/blocks/{h}"), token).await?;
        if s >= 300 {
            return Ok(Err(ChainBroken::Ledger { status: s, body: b }));
        }
        match check_block(&b, h, &chain.tip_hash, &set, genesis) {
            Ok((hash, power, txs)) => {
                chain.tip_hash = hash;
                chain.height = h;
                chain.tx_hashes.push(txs);
                min_power = min_power.min(power);
            }
            Err(e) => return Ok(Err(ChainBroken::Block { height: h, reason: format!("{e:#}") })),
        }
    }
    chain.weakest_certificate_power = if tip > 0 { min_power } else { 0 };
    Ok(Ok(chain))
}

/// `emrctl verify-chain`.
pub fn verify_chain(genesis: &Path, key: &Path, ledger: &str) -> anyhow::Result<ExitCode> {
    let genesis = Genesis::read_file(genesis)?;
    let token = read_token_for(key, LEDGER_AUDIENCE, genesis.chain_id.as_str())?;
    runtime()?.block_on(async move {
        let c = client()?;
        match verify_ledger_chain(&c, &genesis, &token, ledger).await? {
            Ok(chain) => {
                print(&serde_json::json!({
                    "verified": true,
                    "height": chain.height,
                    "tip_hash": chain.tip_hash.to_string(),
                    "weakest_certificate_power": chain.weakest_certificate_power,
                    "total_power": genesis.validator_set().total_power(),
                }))?;
                Ok(ExitCode::SUCCESS)
            }
            Err(ChainBroken::Ledger { status, body }) => outcome(status, &body),
            Err(ChainBroken::Block { height, reason }) => {
                print(&serde_json::json!({ "verified": false, "height": height, "error": reason }))?;
                Ok(ExitCode::from(1))
            }
        }
    })
}

/// Why an access log did not verify against its checkpoint.
#[derive(Debug, thiserror::Error)]
pub enum AuditBroken {
    /// The segment does not recompute to the checkpoint's head.
    #[error("the access log does not match the checkpoint: {0}")]
    Segment(#[from] glucochain_types::audit::SegmentError),
    /// The checkpoint transaction's proof does not verify.
    #[error("the checkpoint transaction is not proven on the chain: {0}")]
    Proof(String),
    /// The checkpoint transaction says something else than the ledger's answer.
    #[error("the checkpoint transaction does not hold the head and count the ledger gave")]
    CheckpointMismatch,
    /// The ledger answered with a problem.
    #[error("the ledger answered {status}: {body}")]
    Ledger {
        /// HTTP status.
        status: u16,
        /// Its body.
        body: Value,
    },
}

/// A patient's access log, checked against the chain.
#[derive(Debug, Clone)]
pub struct VerifiedAudit {
    /// Entries of the patient covered.
    pub own_entries: usize,
    /// Entries of the segment in all.
    pub segment_entries: usize,
    /// The checkpoint's entry count.
    pub checkpoint_entries: u64,
    /// The block that holds the checkpoint.
    pub checkpoint_height: u64,
}

/// Fetches the access-log proof and the checkpoint's inclusion proof from
/// the ledger and checks both offline (`emrctl verify-audit`).
pub async fn verify_patient_audit(
    c: &reqwest::Client,
    genesis: &Genesis,
    token: &str,
    ledger: &str,
    patient: &str,
    from: Option<u64>,
) -> anyhow::Result<Result<VerifiedAudit, AuditBroken>> {
    use glucochain_types::audit::{SegmentEntry, verify_segment};
    use glucochain_types::tx::TxBody;
    let base = ledger.trim_end_matches('/');
    let mut url = format!("{base}/v1/patients/{patient}/access-log/proof");
    if let Some(f) = from {
        url.push_str(&format!("?from={f}"));
    }
    let (status, p) = get_patiently(c, &url, token).await?;
    if status >= 300 {
        return Ok(Err(AuditBroken::Ledger { status, body: p }));
    }
    let cp = &p["checkpoint"];
    let head = Hash32::from_hex(cp["head"].as_str().unwrap_or_default()).context("checkpoint head")?;
    let count = cp["entries"].as_u64().context("checkpoint entries")?;
    let prev = match p["prev_hash"].as_str().unwrap_or_default() {
        "" => head,
        h => Hash32::from_hex(h).context("prev_hash")?,
    };
    let entries: Vec<SegmentEntry> = serde_json::from_value(p["entries"].clone()).context("entries")?;
    let own = match verify_segment(patient, &prev, &entries, count, &head) {
        Ok(n) => n,
        Err(e) => return Ok(Err(e.into())),
    };
    // The checkpoint itself, proven on the chain.
    let tx = cp["tx_hash"].as_str().unwrap_or_default();
    let (status, proof) = get_patiently(c, &format!("{base}/v1/transactions/{tx}/proof"), token).await?;
    if status >= 300 {
        return Ok(Err(AuditBroken::Ledger { status, body: proof }));
    }
    let proof: glucochain_types::proof::InclusionProof = serde_json::from_value(proof).context("inclusion proof")?;
    let verified = match proof.verify(genesis) {
        Ok(v) => v,
        Err(e) => return Ok(Err(AuditBroken::Proof(e.to_string()))),
    };
    let jws = proof.jws.as_deref().context("the proof carries no transaction")?;
    let t = glucochain_types::Transaction::parse(jws, &Default::default())?;
    match &t.payload.body {
        TxBody::AuditCheckpoint(a) if a.head == head && a.entries == count => {}
        _ => return Ok(Err(AuditBroken::CheckpointMismatch)),
    }
    Ok(Ok(VerifiedAudit {
        own_entries: own,
        segment_entries: entries.len(),
        checkpoint_entries: count,
        checkpoint_height: verified.height,
    }))
}

/// `emrctl verify-audit`.
pub fn verify_audit(
    patient: &str,
    key: &Path,
    genesis: &Path,
    ledger: &str,
    from: Option<u64>,
) -> anyhow::Result<ExitCode> {
    let genesis = Genesis::read_file(genesis)?;
    let token = read_token_for(key, LEDGER_AUDIENCE, genesis.chain_id.as_str())?;
    runtime()?.block_on(async move {
        let c = client()?;
        match verify_patient_audit(&c, &genesis, &token, ledger, patient, from).await? {
            Ok(v) => {
                print(&serde_json::json!({
                    "verified": true,
                    "patient": patient,
                    "own_entries": v.own_entries,
                    "segment_entries": v.segment_entries,
                    "checkpoint_entries": v.checkpoint_entries,
                    "checkpoint_height": v.checkpoint_height,
                }))?;
                Ok(ExitCode::SUCCESS)
            }
            Err(AuditBroken::Ledger { status, body }) => outcome(status, &body),
            Err(e) => {
                print(&serde_json::json!({ "verified": false, "error": e.to_string() }))?;
                Ok(ExitCode::from(1))
            }
        }
    })
}
