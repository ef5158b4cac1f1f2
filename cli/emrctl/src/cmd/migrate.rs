//! `emrctl chain export` and `emrctl chain import`: carry the records of a
//! chain made before the record vault (issue 21) to a new chain.
//!
//! A chain made by an earlier version holds its bodies in clear inside its
//! signed transactions; removing them would break hashes, signatures and
//! proofs, so it is not upgraded in place (docs/operations.md). Instead:
//!
//! - **export** walks the old chain from its genesis file through a
//!   ledger's store, checks every block (height, hash link, transaction
//!   root, commit certificate of more than 2/3 of the power) and writes an
//!   archive: a header line, then every committed transaction as signed.
//! - **import** re-signs each archived transaction with its author's key,
//!   in chain order, in the new format (bodies split off and sealed beside
//!   the envelope), and submits it to the new chain's ingest. Only the
//!   author can carry a record over: a transaction whose signer's key is
//!   not in the key directory is skipped and listed, and one whose old
//!   signature does not verify under that key stops the import. References
//!   to earlier transactions (a care-plan acceptance's proposal, an
//!   erasure's record) are rewritten to the new hashes.
//!
//! The archive holds personal data in clear (it is the old chain): keep it
//! as the old chain's files were kept and delete it once imported.

use super::http::{check_header, client, post_and_follow, print, runtime};
use anyhow::{Context, bail};
use glucochain_crypto::jose::parse_compact;
use glucochain_crypto::{Domain, Hash32, KeyPair, sha256};
use glucochain_types::Genesis;
use glucochain_types::block::{BlockHeader, CommitCertificate};
use glucochain_types::sealed::{SealedBody, Submission, split};
use glucochain_types::time::Timestamp;
use glucochain_types::tx::{TxLimits, TxPayload, TxType};
use glucochain_types::{ChainId, ParticipantId};
use glucochain_wire::v1 as wire;
use prost::Message as _;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, Write};
use std::path::Path;
use std::process::ExitCode;

/// The archive format's name and version (the header's `format`).
pub const FORMAT: &str = "glucochain-export/1";

/// The first line of an archive: which chain, checked up to where.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ArchiveHeader {
    /// [`FORMAT`].
    pub format: String,
    /// The old chain's id.
    pub chain_id: String,
    /// Its genesis hash.
    pub genesis_hash: String,
    /// The newest height exported.
    pub height: u64,
    /// That block's hash.
    pub tip_hash: String,
    /// Transactions that follow.
    pub transactions: u64,
}

/// One committed transaction of the old chain, as signed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ArchivedTx {
    /// Its block.
    pub height: u64,
    /// Its index in the block.
    pub index: u32,
    /// SHA-256 of `jws` (hex).
    pub tx_hash: String,
    /// The JWS.
    pub jws: String,
}

/// What becomes of an old transaction on the new chain.
#[derive(Debug)]
pub enum Carried {
    /// The new payload (to sign) and its sealed body, if it has one.
    Tx(Box<TxPayload>, Option<SealedBody>),
    /// Not carried, and why (the same words for every such transaction).
    Skip(&'static str),
}

/// Why an old transaction could not be carried.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// The old payload is not JSON of the expected shape.
    #[error("old payload: {0}")]
    Payload(String),
    /// It does not fit the new format.
    #[error("{tx_type}: {detail}")]
    Format {
        /// The type.
        tx_type: &'static str,
        /// What did not fit.
        detail: String,
    },
}

/// The old payload of a transaction (`type`, `chain_id`, `nonce`,
/// `created_at`, `patient`, `body`) in the new format for `chain`, created
/// at `now`, with references to earlier transactions rewritten by `moved`
/// (old hash to new). Pure: no keys, no I/O.
pub fn convert(
    old: &Value,
    chain: &ChainId,
    now: Timestamp,
    moved: &HashMap<Hash32, Hash32>,
) -> Result<Carried, MigrateError> {
    let bad = |d: &str| MigrateError::Payload(d.to_string());
    let name = old["type"].as_str().ok_or_else(|| bad("no type"))?;
    let t = TxType::parse(name).ok_or_else(|| bad("an unknown type"))?;
    let nonce = old["nonce"].as_str().ok_or_else(|| bad("no nonce"))?.to_string();
    let patient = match old.get("patient").and_then(Value::as_str) {
        Some(p) => Some(ParticipantId::parse(p).map_err(|e| bad(&e.to_string()))?),
        None => None,
    };
    let mut body = old.get("body").cloned().ok_or_else(|| bad("no body"))?;
    let format = |detail: String| MigrateError::Format { tx_type: t.as_str(), detail };
    let remap = |v: &mut Value, what: &str| -> Result<bool, MigrateError> {
        let h = Hash32::from_hex(v.as_str().unwrap_or_default()).map_err(|_| format(format!("{what}: not a hash")))?;
        match moved.get(&h) {
            Some(new) => {
                *v = json!(new.to_string());
                Ok(true)
            }
            None => Ok(false),
        }
    };
    match t {
        TxType::AccessEmergency => {
            return Ok(Carried::Skip(
                "a break-glass access: its card proof is bound to the old transaction, and the access ended with its hour",
            ));
        }
        TxType::AuditCheckpoint => {
            return Ok(Carried::Skip("an audit checkpoint: the new ledger's access log starts afresh"));
        }
        TxType::ValidatorUpdate => {
            return Ok(Carried::Skip("a validator-set change: the new genesis names the validators"));
        }
        // Words no longer collected (ADR 0016, "Words in access metadata").
        TxType::ConsentRevoke => drop_fields(&mut body, &["reason"]),
        TxType::AlertAck => drop_fields(&mut body, &["note"]),
        // The values of an alert are its reading's; the old alert did not
        // name the reading.
        TxType::AlertRaise => drop_fields(
            &mut body,
            &["glucose_mg_dl", "slope_mg_dl_per_min", "predicted_mg_dl", "model_score", "reason"],
        ),
        // A plan names the kinds of channel of each contact; the addresses
        // are the contacts' own declarations.
        TxType::CareplanPropose => {
            for c in body["contacts"].as_array_mut().into_iter().flatten() {
                let mut kinds: Vec<Value> = Vec::new();
                for ch in c["channels"].as_array().into_iter().flatten() {
                    let kind = ch.get("kind").cloned().unwrap_or_else(|| ch.clone());
                    if !kinds.contains(&kind) {
                        kinds.push(kind);
                    }
                }
                c["channels"] = Value::Array(kinds);
            }
        }
        // References to earlier transactions follow them to their new hashes.
        TxType::CareplanAccept if !remap(&mut body["proposal_tx"], "proposal_tx")? => {
            return Ok(Carried::Skip("an acceptance of a proposal that was not carried"));
        }
        TxType::RecordErase
            if body["scope"].get("record").is_some() && !remap(&mut body["scope"]["record"], "scope.record")? =>
        {
            return Ok(Carried::Skip("an erasure of a record that was not carried"));
        }
        _ => {}
    }
    if t.sealed() {
        let (envelope, sealed) = split(t, body).map_err(|e| format(e.to_string()))?;
        let payload = TxPayload::new(chain.clone(), nonce, now, patient, envelope);
        payload.validate(&TxLimits::default()).map_err(|e| format(e.to_string()))?;
        return Ok(Carried::Tx(Box::new(payload), sealed));
    }
    let mut whole =
        json!({ "type": name, "chain_id": chain.as_str(), "nonce": nonce, "created_at": now, "body": body });
    if let Some(p) = &patient {
        whole["patient"] = json!(p.as_str());
    }
    let bytes = serde_json::to_vec(&whole).expect("JSON");
    TxPayload::from_json(&bytes, &TxLimits::default())
        .map(|p| Carried::Tx(Box::new(p), None))
        .map_err(|e| format(e.to_string()))
}

fn drop_fields(body: &mut Value, fields: &[&str]) {
    if let Some(o) = body.as_object_mut() {
        for f in fields {
            o.remove(*f);
        }
    }
}

/// `emrctl chain export`: checks the old chain from `genesis` through the
/// ledger store at `store` and writes the archive to `out`.
pub fn export(genesis: &Path, store: &str, out: &Path) -> anyhow::Result<ExitCode> {
    let genesis = Genesis::read_file(genesis)?;
    let set = genesis.validator_set();
    runtime()?.block_on(async move {
        let store = glucochain_store::Store::connect(store).await.context("the old chain's ledger store")?;
        let tip = store.latest_height().await?.unwrap_or(0);
        let mut lines = Vec::new();
        let mut prev = genesis.hash();
        for h in 1..=tip {
            let stored = store.block(h).await?.with_context(|| format!("block {h} is missing from the store"))?;
            let header = wire::BlockHeader::decode(stored.header.as_slice()).context("stored header")?;
            let header = BlockHeader::from_wire(&header).context("stored header")?;
            let cert = wire::CommitCertificate::decode(stored.certificate.as_slice()).context("stored certificate")?;
            let cert = CommitCertificate::from_wire(&cert).context("stored certificate")?;
            let hashes: Vec<Hash32> = stored.txs.iter().map(|t| sha256(t.jws.as_bytes())).collect();
            let (hash, _) = check_header(&header, &cert, &hashes, h, &prev, &set, &genesis)?;
            for (i, (t, tx_hash)) in stored.txs.iter().zip(&hashes).enumerate() {
                let tx = ArchivedTx { height: h, index: i as u32, tx_hash: tx_hash.to_string(), jws: t.jws.clone() };
                lines.push(serde_json::to_string(&tx)?);
            }
            prev = hash;
        }
        let header = ArchiveHeader {
            format: FORMAT.into(),
            chain_id: genesis.chain_id.as_str().into(),
            genesis_hash: genesis.hash().to_string(),
            height: tip,
            tip_hash: prev.to_string(),
            transactions: lines.len() as u64,
        };
        let mut f = std::fs::File::create(out).with_context(|| format!("create {}", out.display()))?;
        writeln!(f, "{}", serde_json::to_string(&header)?)?;
        for l in &lines {
            writeln!(f, "{l}")?;
        }
        f.sync_all()?;
        print(&serde_json::to_value(&header)?)?;
        Ok(ExitCode::SUCCESS)
    })
}

/// Reads an archive: its header and transactions, checked for shape and
/// for each transaction's hash.
pub fn read_archive(path: &Path) -> anyhow::Result<(ArchiveHeader, Vec<ArchivedTx>)> {
    let f = std::fs::File::open(path).with_context(|| format!("open {}", path.display()))?;
    let mut lines = std::io::BufReader::new(f).lines();
    let first = lines.next().context("an empty archive")??;
    let header: ArchiveHeader = serde_json::from_str(&first).context("the archive's header line")?;
    if header.format != FORMAT {
        bail!("archive format {:?}, this emrctl reads {FORMAT:?}", header.format);
    }
    let mut txs = Vec::new();
    for (n, line) in lines.enumerate() {
        let tx: ArchivedTx = serde_json::from_str(&line?).with_context(|| format!("archive line {}", n + 2))?;
        if sha256(tx.jws.as_bytes()).to_string() != tx.tx_hash {
            bail!("archive line {}: the transaction does not hash to {}", n + 2, tx.tx_hash);
        }
        txs.push(tx);
    }
    if txs.len() as u64 != header.transactions {
        bail!("the archive holds {} transactions, its header says {}", txs.len(), header.transactions);
    }
    Ok((header, txs))
}

/// Every `*.pem` key under `dir`, by the participant id it signs as.
fn keys_in(dir: &Path) -> anyhow::Result<HashMap<String, KeyPair>> {
    let mut keys = HashMap::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("read {}", dir.display()))? {
        let p = entry?.path();
        if p.extension().and_then(|e| e.to_str()) != Some("pem") {
            continue;
        }
        if let Ok(k) = KeyPair::read_pem_file(&p) {
            keys.insert(ParticipantId::from_public_key(&k.public()).to_string(), k);
        }
    }
    Ok(keys)
}

/// `emrctl chain import`: re-signs the archive's transactions with their
/// authors' keys from `keys` for `chain` and submits them to `ingest`.
pub fn import(archive: &Path, keys: &Path, chain: &str, ingest: &str) -> anyhow::Result<ExitCode> {
    let (header, txs) = read_archive(archive)?;
    let keys = keys_in(keys)?;
    let chain = ChainId::parse(chain)?;
    let ingest = ingest.trim_end_matches('/').to_string();
    runtime()?.block_on(async move {
        let c = client()?;
        let mut moved: HashMap<Hash32, Hash32> = HashMap::new();
        let mut carried = 0u64;
        let mut already = 0u64;
        let mut skipped: BTreeMap<String, u64> = BTreeMap::new();
        let mut refused = Vec::new();
        // Every signature is checked before anything is sent: an archive
        // changed by anyone but the authors carries nothing.
        let mut checked = Vec::with_capacity(txs.len());
        for tx in &txs {
            let parsed = parse_compact(&tx.jws, 1 << 22).with_context(|| format!("archived tx {}", tx.tx_hash))?;
            let Some(key) = keys.get(parsed.kid()) else {
                *skipped.entry("no key for its signer in the key directory".into()).or_default() += 1;
                continue;
            };
            parsed
                .verify(&key.public(), Domain::Tx)
                .with_context(|| format!("archived tx {}: the old signature does not verify", tx.tx_hash))?;
            let old: Value = serde_json::from_slice(&parsed.payload).context("old payload")?;
            if old["chain_id"].as_str() != Some(header.chain_id.as_str()) {
                bail!("archived tx {} is for chain {}, not the archive's", tx.tx_hash, old["chain_id"]);
            }
            checked.push((tx, key, old));
        }
        for (tx, key, old) in checked {
            let (payload, sealed) = match convert(&old, &chain, Timestamp::now(), &moved) {
                Ok(Carried::Tx(p, s)) => (*p, s),
                Ok(Carried::Skip(why)) => {
                    *skipped.entry(why.into()).or_default() += 1;
                    continue;
                }
                Err(e) => {
                    refused.push(json!({ "old_tx": tx.tx_hash, "error": e.to_string() }));
                    continue;
                }
            };
            let me = ParticipantId::from_public_key(&key.public());
            let jws = payload.sign(key, &me);
            let new_hash = sha256(jws.as_bytes());
            let text = match sealed {
                Some(s) => String::from_utf8(Submission::sealed(jws, s).to_json())?,
                None => jws,
            };
            let (status, answer) = post_and_follow(&c, &ingest, &text, 60).await?;
            // A refusal's code: the problem type's last part, or a rejection's `code`.
            let code = answer["type"]
                .as_str()
                .and_then(|t| t.strip_prefix("urn:glucochain:problem:"))
                .or(answer["code"].as_str())
                .unwrap_or_default();
            if status < 300 && answer["status"] == "committed" {
                moved.insert(Hash32::from_hex(&tx.tx_hash)?, new_hash);
                carried += 1;
            } else if matches!(code, "replay" | "conflict" | "duplicate") {
                // Already on the new chain: carried by an earlier import (the
                // author's nonce is the old one), or a registration the new
                // chain's own setup made.
                already += 1;
            } else {
                refused.push(json!({ "old_tx": tx.tx_hash, "type": payload.tx_type.as_str(), "status": status, "answer": answer }));
            }
        }
        let ok = refused.is_empty();
        print(&json!({
            "from_chain": header.chain_id,
            "to_chain": chain.as_str(),
            "archived": txs.len(),
            "carried": carried,
            "already_there": already,
            "skipped": skipped,
            "refused": refused,
        }))?;
        Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use glucochain_types::sealed::RecordBody;

    /// Every example of the transactions reference as it was before the
    /// record vault (`tests/fixtures/migration/transactions-before-vault.md`).
    fn old_examples() -> Vec<Value> {
        let text = include_str!("../../../../tests/fixtures/migration/transactions-before-vault.md");
        let mut out = Vec::new();
        let mut lines = text.lines();
        while let Some(line) = lines.next() {
            if line.trim() == "```json" {
                let block: String = lines.by_ref().take_while(|l| l.trim() != "```").collect::<Vec<_>>().join("\n");
                out.push(serde_json::from_str(&block).unwrap());
            }
        }
        out
    }

    /// JSON equality with numbers compared as numbers (70 and 70.0).
    fn same(a: &Value, b: &Value) -> bool {
        match (a, b) {
            (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
            (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y)),
            (Value::Object(x), Value::Object(y)) => {
                x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
            }
            _ => a == b,
        }
    }

    #[test]
    fn every_old_type_is_carried_in_the_new_format_or_skipped_for_a_stated_reason() {
        let chain = ChainId::parse("glucochain-new").unwrap();
        let old = old_examples();
        // One example per type of that version: every type but the erasure, which came with the vault.
        let types: Vec<&str> = old.iter().map(|o| o["type"].as_str().unwrap()).collect();
        let then: Vec<&str> = TxType::ALL.iter().map(|t| t.as_str()).filter(|t| *t != "record.erase").collect();
        assert_eq!(types, then);
        // The proposal the acceptance names was carried first.
        let mut moved = HashMap::new();
        let accept = old.iter().find(|o| o["type"] == "careplan.accept").unwrap();
        let proposal = Hash32::from_hex(accept["body"]["proposal_tx"].as_str().unwrap()).unwrap();
        moved.insert(proposal, sha256(b"the new proposal"));
        let mut skipped = Vec::new();
        for o in &old {
            let name = o["type"].as_str().unwrap();
            match convert(o, &chain, Timestamp::now(), &moved).unwrap_or_else(|e| panic!("{name}: {e}")) {
                Carried::Skip(_) => skipped.push(name),
                Carried::Tx(p, sealed) => {
                    assert_eq!(p.tx_type.as_str(), name);
                    assert_eq!(p.chain_id, chain);
                    p.validate(&TxLimits::default()).unwrap();
                    assert_eq!(sealed.is_some(), p.body.body_commitment().is_some(), "{name}");
                    if let Some(s) = &sealed {
                        // The body is the old record's, under the new envelope's commitment.
                        RecordBody::accept(&p, s, &TxLimits::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
                        for (k, v) in s.body.as_object().unwrap() {
                            if name != "contact.channels.set" && name != "observation.record" {
                                assert!(same(&o["body"][k], v), "{name}.{k} carried as it was: {} / {v}", o["body"][k]);
                            }
                        }
                    }
                    // No field of the old body is in clear in the new
                    // envelope unless the envelope keeps it.
                    let envelope = serde_json::to_value(&p.body).unwrap();
                    if name == "observation.record" {
                        assert!(!envelope.to_string().contains("valueQuantity"), "{envelope}");
                    }
                }
            }
        }
        skipped.sort();
        assert_eq!(skipped, ["access.emergency", "audit.checkpoint", "validator.update"]);
    }

    #[test]
    fn references_follow_the_new_hashes_or_the_reference_is_skipped() {
        let chain = ChainId::parse("glucochain-new").unwrap();
        let old = old_examples();
        let accept = old.iter().find(|o| o["type"] == "careplan.accept").unwrap();
        let carried = convert(accept, &chain, Timestamp::now(), &HashMap::new()).unwrap();
        assert!(matches!(carried, Carried::Skip(w) if w.contains("not carried")));
        let old_hash = Hash32::from_hex(accept["body"]["proposal_tx"].as_str().unwrap()).unwrap();
        let new_hash = sha256(b"new");
        let moved = HashMap::from([(old_hash, new_hash)]);
        let Carried::Tx(p, _) = convert(accept, &chain, Timestamp::now(), &moved).unwrap() else { panic!() };
        let glucochain_types::tx::TxBody::CareplanAccept(a) = &p.body else { panic!() };
        assert_eq!(a.proposal_tx, new_hash);
        // Old words no longer collected are dropped, not refused.
        let revoke = old.iter().find(|o| o["type"] == "consent.revoke").unwrap();
        assert!(revoke["body"]["reason"].is_string(), "the old example has a reason");
        let Carried::Tx(p, None) = convert(revoke, &chain, Timestamp::now(), &moved).unwrap() else { panic!() };
        assert!(!serde_json::to_string(&p.body).unwrap().contains("reason"));
        // A plan's contacts keep their kinds of channel, not their addresses.
        let plan = old.iter().find(|o| o["type"] == "careplan.propose").unwrap();
        assert!(plan.to_string().contains('@'), "the old plan names an address");
        let Carried::Tx(p, Some(_)) = convert(plan, &chain, Timestamp::now(), &moved).unwrap() else { panic!() };
        assert!(!serde_json::to_string(&p.body).unwrap().contains('@'));
    }
}
