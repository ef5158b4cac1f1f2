//! The ledger's core: the verified chain (following `BLOCKS`, filling gaps
//! from the validators), the validator set of every height (for proofs),
//! and the hash-chained audit log with its on-chain checkpoints.

use anyhow::Context as _;
use futures::StreamExt as _;
use glucochain_bus::streams::{ConsumerSpec, StreamSpec};
use glucochain_bus::{Bus, subjects};
use glucochain_crypto::{Hash32, KeyPair, sha256_parts};
use glucochain_follow::{Follower, decode_committed, fetch_blocks, from_stored, to_stored};
use glucochain_state::LedgerState;
use glucochain_store::{AuditRow, InsertOutcome, Store};
use glucochain_types::ParticipantId;
use glucochain_types::block::ValidatorSet;
use glucochain_types::genesis::Genesis;
use glucochain_types::ids::LocalId;
use glucochain_types::time::Timestamp;
use glucochain_types::tx::{AuditCheckpoint, TxBody, TxPayload};
use glucochain_wire::v1 as wire;
use prost::Message as _;
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// The verified chain view shared by the API and the follower.
pub struct View {
    follower: Follower,
    sets: BTreeMap<u64, ValidatorSet>,
}

impl View {
    fn new(genesis: &Genesis) -> Self {
        let follower = Follower::new(genesis);
        let mut sets = BTreeMap::new();
        sets.insert(1, follower.state().validators().clone());
        View { follower, sets }
    }

    /// The committed state.
    pub fn state(&self) -> &LedgerState {
        self.follower.state()
    }

    /// The validator set that certified `height`.
    pub fn validators_at(&self, height: u64) -> Option<&ValidatorSet> {
        self.sets.range(..=height).next_back().map(|(_, s)| s)
    }

    fn note_set(&mut self) {
        let next = self.follower.next_height();
        let current = self.follower.state().validators();
        if self.sets.values().next_back() != Some(current) {
            self.sets.insert(next, current.clone());
        }
    }
}

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
    /// The database.
    pub store: Store,
    /// The genesis file.
    pub genesis: Genesis,
    /// The verified chain.
    pub view: RwLock<View>,
    audit_lock: tokio::sync::Mutex<()>,
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
        let mut view = View::new(&genesis);
        let latest = store.latest_height().await?.unwrap_or(0);
        for h in 1..=latest {
            let stored = store.block(h).await?.with_context(|| format!("block {h} missing from the database"))?;
            let (block, cert) = from_stored(&stored)?;
            let v = view.follower.verify(block, cert).with_context(|| format!("stored block {h} does not verify"))?;
            view.follower.apply(v);
            view.note_set();
        }
        Ok(Arc::new(Ledger { store, genesis, view: RwLock::new(view), audit_lock: tokio::sync::Mutex::new(()) }))
    }

    /// The committed height.
    pub fn height(&self) -> u64 {
        self.view.read().expect("view lock").state().height()
    }

    /// Verifies, stores (one database transaction) and applies a committed
    /// block. Blocks at or below the height must be the stored ones.
    pub async fn ingest(&self, c: &wire::CommittedBlock) -> anyhow::Result<()> {
        let (block, cert) = decode_committed(c)?;
        let height = block.header.height;
        let next = self.view.read().expect("view lock").follower.next_height();
        if height < next {
            let stored = self.store.block(height).await?.context("stored block missing")?;
            anyhow::ensure!(stored.hash == block.hash().0.to_vec(), "a different block at stored height {height}");
            return Ok(());
        }
        let verified = self.view.read().expect("view lock").follower.verify(block, cert)?;
        let stored = to_stored(&verified.block, &verified.certificate)?;
        match self.store.insert_block(&stored).await? {
            InsertOutcome::Inserted | InsertOutcome::AlreadyPresent => {}
        }
        let mut view = self.view.write().expect("view lock");
        view.follower.apply(verified);
        view.note_set();
        metrics::gauge!("glucochain_ledger_height").set(height as f64);
        Ok(())
    }

    /// Brings the ledger up to `height - 1` from the validators (gap fill).
    pub async fn fill_gap(&self, bus: &Bus, height: u64) -> anyhow::Result<()> {
        while self.height() + 1 < height {
            let from = self.height() + 1;
            let blocks = fetch_blocks(bus, from).await?;
            anyhow::ensure!(!blocks.is_empty(), "validators returned no block from {from}");
            for b in &blocks {
                self.ingest(b).await?;
            }
        }
        Ok(())
    }

    /// Appends an audit entry (hash-chained) and returns its sequence number.
    pub async fn audit(&self, a: Access<'_>) -> anyhow::Result<u64> {
        let _guard = self.audit_lock.lock().await;
        let head = self.store.audit_head().await?;
        let (seq, prev) = match head {
            Some(h) => (h.seq + 1, h.entry_hash),
            None => (1, vec![0u8; 32]),
        };
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
        metrics::counter!("glucochain_ledger_reads_total", "outcome" => row.outcome.clone()).increment(1);
        Ok(seq)
    }
}

/// Follows `BLOCKS` with the durable consumer `ledger`: each block is
/// verified and stored before it is acknowledged; a gap is filled first.
pub async fn follow_blocks(ledger: Arc<Ledger>, bus: Bus) -> anyhow::Result<()> {
    let stream = bus.ensure_stream(&StreamSpec::blocks()).await?;
    let consumer = bus.ensure_consumer(&stream, &ConsumerSpec::durable("ledger")).await?;
    let mut messages = consumer.messages().await.context("BLOCKS consumer")?;
    while let Some(m) = messages.next().await {
        let m = match m {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "BLOCKS consumer");
                continue;
            }
        };
        let Ok(c) = wire::CommittedBlock::decode(m.payload.as_ref()) else {
            tracing::error!("undecodable message on BLOCKS; acknowledged and skipped");
            let _ = m.ack().await;
            continue;
        };
        let height = c.block.as_ref().and_then(|b| b.header.as_ref()).map(|h| h.height).unwrap_or(0);
        let result = async {
            ledger.fill_gap(&bus, height).await?;
            ledger.ingest(&c).await
        }
        .await;
        match result {
            Ok(()) => {
                let _ = m.ack().await;
            }
            Err(e) => {
                tracing::warn!(height, error = format!("{e:#}"), "block not stored yet; will retry");
                let _ = m.ack_with(async_nats::jetstream::AckKind::Nak(Some(Duration::from_secs(1)))).await;
            }
        }
    }
    anyhow::bail!("BLOCKS consumer ended")
}

/// Commits the audit log's head to the chain every `every` when it grew.
pub async fn checkpoint_audit(ledger: Arc<Ledger>, bus: Bus, key: KeyPair, every: Duration) -> anyhow::Result<()> {
    let me = ParticipantId::from_public_key(&key.public());
    let mut interval = tokio::time::interval(every);
    loop {
        interval.tick().await;
        let Some(head) = ledger.store.audit_head().await? else { continue };
        let last = ledger.store.last_audit_checkpoint().await?.map(|(s, _)| s).unwrap_or(0);
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
        let env = wire::TxEnvelope {
            jws: jws.clone().into_bytes(),
            tx_hash: hash.0.to_vec(),
            received_at_ms: Timestamp::now().unix_ms(),
            tx_type: "audit.checkpoint".into(),
        };
        match bus.publish(&subjects::tx("audit.checkpoint"), &hash.to_string(), env.encode_to_vec().into()).await {
            Ok(_) => {
                ledger.store.insert_audit_checkpoint(head.seq, &head.entry_hash, &hash.0).await?;
                tracing::info!(entries = head.seq, tx = %hash, "audit checkpoint submitted");
            }
            Err(e) => tracing::warn!(error = %e, "audit checkpoint not submitted; will retry"),
        }
    }
}
