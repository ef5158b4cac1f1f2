//! The ledger's core: the verified chain (following `BLOCKS`, filling gaps
//! from the validators), the validator set of every height (for proofs),
//! and the hash-chained audit log with its on-chain checkpoints.

use glucochain_bus::{Bus, subjects};
use glucochain_crypto::{Hash32, KeyPair, sha256_parts};
use glucochain_follow::{StoredChain, follow_stored};
use glucochain_store::{AuditRow, Store};
use glucochain_types::ParticipantId;
use glucochain_types::genesis::Genesis;
use glucochain_types::ids::LocalId;
use glucochain_types::time::Timestamp;
use glucochain_types::tx::{AuditCheckpoint, TxBody, TxPayload};
use glucochain_wire::v1 as wire;
use prost::Message as _;
use std::sync::Arc;
use std::time::Duration;

/// One read, as the audit log records it.
#[derive(Debug, Clone)]
pub struct Access<'a> {
    /// Who.
    pub reader: &'a ParticipantId,
    /// Their role.
    pub role: &'a str,
    /// Whose data.
    pub patient: Option<&'a ParticipantId>,
    /// `read`, `search`.
    pub action: &'a str,
    /// Path and query.
    pub resource: &'a str,
    /// Purpose of use.
    pub purpose: &'a str,
    /// Granted or denied.
    pub granted: bool,
    /// The rule's reason.
    pub reason: &'a str,
}

/// Everything the ledger holds.
pub struct Ledger {
    /// The verified chain in the database.
    pub chain: Arc<StoredChain>,
    /// The database.
    pub store: Store,
    /// The genesis file.
    pub genesis: Genesis,
    /// The audit log's head (sequence number, entry hash), held while appending:
    /// this process is the log's only writer.
    audit_head: tokio::sync::Mutex<(u64, Vec<u8>)>,
}

const AUDIT_TAG: &[u8] = b"glucochain/v1/audit\0";

/// The hash of an audit entry: over the previous hash and the entry's fields.
pub fn audit_hash(prev: &[u8], row: &AuditRow) -> Hash32 {
    let fields = serde_json::json!([
        row.seq,
        row.at_ms,
        row.reader,
        row.reader_role,
        row.patient,
        row.action,
        row.resource,
        row.purpose,
        row.outcome
    ]);
    sha256_parts(&[AUDIT_TAG, prev, fields.to_string().as_bytes()])
}

impl Ledger {
    /// Opens the database and rebuilds the verified view from it.
    pub async fn open(store: Store, genesis: Genesis) -> anyhow::Result<Arc<Self>> {
        let chain = Arc::new(StoredChain::open(store.clone(), &genesis).await?);
        let head = match store.audit_head().await? {
            Some(h) => (h.seq, h.entry_hash),
            None => (0, vec![0u8; 32]),
        };
        Ok(Arc::new(Ledger { chain, store, genesis, audit_head: tokio::sync::Mutex::new(head) }))
    }

    /// The committed height.
    pub fn height(&self) -> u64 {
        self.chain.height()
    }

    /// Appends an audit entry (hash-chained) and returns its sequence number.
    pub async fn audit(&self, a: Access<'_>) -> anyhow::Result<u64> {
        let mut head = self.audit_head.lock().await;
        let (seq, prev) = (head.0 + 1, head.1.clone());
        let mut row = AuditRow {
            seq,
            at_ms: Timestamp::now().unix_ms(),
            reader: a.reader.as_str().into(),
            reader_role: a.role.into(),
            patient: a.patient.map(|p| p.as_str().to_string()),
            action: a.action.into(),
            resource: a.resource.into(),
            purpose: a.purpose.into(),
            outcome: if a.granted { "granted" } else { "denied" }.into(),
            reason: a.reason.into(),
            prev_hash: prev.clone(),
            entry_hash: Vec::new(),
        };
        row.entry_hash = audit_hash(&prev, &row).0.to_vec();
        self.store.insert_audit(&row).await?;
        *head = (seq, row.entry_hash.clone());
        metrics::counter!("glucochain_ledger_reads_total", "outcome" => row.outcome.clone()).increment(1);
        Ok(seq)
    }
}

/// Follows `BLOCKS` with the durable consumer `ledger`: each block is
/// verified and stored before it is acknowledged; a gap is filled first.
pub async fn follow_blocks(ledger: Arc<Ledger>, bus: Bus) -> anyhow::Result<()> {
    let on_new = Box::new(|b: &glucochain_consensus::block::Block| {
        metrics::gauge!("glucochain_ledger_height").set(b.header.height as f64);
    });
    follow_stored(ledger.chain.clone(), bus, "ledger", on_new).await?;
    Ok(())
}

/// Commits the audit log's head to the chain every `every` when it grew.
pub async fn checkpoint_audit(ledger: Arc<Ledger>, bus: Bus, key: Arc<KeyPair>, every: Duration) -> anyhow::Result<()> {
    let me = ParticipantId::from_public_key(&key.public());
    let mut interval = tokio::time::interval(every);
    loop {
        interval.tick().await;
        // A database outage skips checkpoints until it is over; it does not stop the ledger.
        let (head, last) = match (ledger.store.audit_head().await, ledger.store.last_audit_checkpoint().await) {
            (Ok(Some(head)), Ok(last)) => (head, last.map(|(s, _)| s).unwrap_or(0)),
            (Ok(None), Ok(_)) => continue,
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(error = %e, "audit head unreadable; checkpoint retried later");
                continue;
            }
        };
        if head.seq <= last {
            continue;
        }
        let body = TxBody::AuditCheckpoint(AuditCheckpoint {
            log_id: LocalId::parse("ledger", "log_id").expect("valid id"),
            head: Hash32::from_slice(&head.entry_hash).unwrap_or_default(),
            entries: head.seq,
        });
        let nonce = format!("audit-{}-{}", head.seq, Timestamp::now().unix_ms());
        let payload = TxPayload::new(ledger.genesis.chain_id.clone(), nonce, Timestamp::now(), None, body);
        let jws = payload.sign(&key, &me);
        let hash = glucochain_crypto::sha256(jws.as_bytes());
        let env = wire::TxEnvelope::received_now(jws.clone().into_bytes(), hash.0.to_vec(), "audit.checkpoint", 0);
        match bus.publish(&subjects::tx("audit.checkpoint"), &hash.to_string(), env.encode_to_vec().into()).await {
            Ok(_) => match ledger.store.insert_audit_checkpoint(head.seq, &head.entry_hash, &hash.0).await {
                Ok(()) => tracing::info!(entries = head.seq, tx = %hash, "audit checkpoint submitted"),
                // Submitted but not noted: the next tick submits the same head again, harmlessly.
                Err(e) => tracing::warn!(error = %e, "audit checkpoint submitted but not recorded"),
            },
            Err(e) => tracing::warn!(error = %e, "audit checkpoint not submitted; will retry"),
        }
    }
}

/// Appends the reads other services served (the contracts engine's
/// `emr.audit.append` requests) to the audit log, and answers each with the
/// entry's sequence number or why it was not written. Only the contracts
/// engine may publish there (NATS permissions), and it authenticated the
/// reader.
pub async fn serve_audit_appends(ledger: Arc<Ledger>, bus: Bus) -> anyhow::Result<()> {
    use futures::StreamExt as _;
    use prost::Message as _;
    let mut sub = bus.client().queue_subscribe(glucochain_bus::subjects::AUDIT_APPEND, "ledger".into()).await?;
    while let Some(m) = sub.next().await {
        let Some(reply) = m.reply.clone() else { continue };
        let answer = match append_requested(&ledger, &m.payload).await {
            Ok(seq) => glucochain_wire::v1::AuditAppended { seq, error: String::new() },
            Err(e) => {
                tracing::warn!(error = format!("{e:#}"), "audit append refused");
                glucochain_wire::v1::AuditAppended { seq: 0, error: format!("{e:#}") }
            }
        };
        if let Err(e) = bus.client().publish(reply, answer.encode_to_vec().into()).await {
            tracing::warn!(error = %e, "audit append answer not sent");
        }
    }
    anyhow::bail!("audit append subscription ended")
}

async fn append_requested(ledger: &Ledger, payload: &[u8]) -> anyhow::Result<u64> {
    use anyhow::Context as _;
    use prost::Message as _;
    let a = glucochain_wire::v1::AuditAppend::decode(payload).context("undecodable AuditAppend")?;
    let reader = ParticipantId::parse(&a.reader).context("reader")?;
    let patient = if a.patient.is_empty() { None } else { Some(ParticipantId::parse(&a.patient).context("patient")?) };
    anyhow::ensure!(!a.action.is_empty() && a.action.len() <= 64, "action must be 1..=64 characters");
    anyhow::ensure!(a.resource.len() <= 2048 && a.reason.len() <= 1024, "resource or reason too long");
    ledger
        .audit(Access {
            reader: &reader,
            role: &a.reader_role,
            patient: patient.as_ref(),
            action: &a.action,
            resource: &a.resource,
            purpose: &a.purpose,
            granted: a.granted,
            reason: &a.reason,
        })
        .await
}
