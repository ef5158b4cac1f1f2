//! The ledger's core: the verified chain (following `BLOCKS`, filling gaps
//! from the validators), the validator set of every height (for proofs),
//! and the hash-chained audit log with its on-chain checkpoints.

use glucochain_bus::{Bus, subjects};
use glucochain_crypto::{Hash32, KeyPair};
use glucochain_follow::{StoredChain, follow_stored};
use glucochain_store::{AuditRow, Store};
use glucochain_types::genesis::Genesis;
use glucochain_types::ids::LocalId;
use glucochain_types::time::Timestamp;
use glucochain_types::tx::{AuditCheckpoint, TxBody, TxPayload};
use glucochain_types::{ParticipantId, Role};
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
    /// Refused reads written per (reader, patient) and per patient: beyond
    /// them a refusal is answered 429 and counted, not written, so nobody
    /// can bury a patient's access log under refusals.
    refusals: std::sync::Mutex<Refusals>,
}

/// The rates at which refused reads of one patient are written to the log.
struct Refusals {
    per_reader: glucochain_api::rate::RateLimiter,
    per_patient: glucochain_api::rate::RateLimiter,
}

/// Why an access was not written to the audit log.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// Too many refused reads of this patient lately (per reader, or in all):
    /// retry after this long.
    #[error("too many refused reads of this patient; retry in {0:?}")]
    Throttled(Duration),
    /// The database.
    #[error(transparent)]
    Store(#[from] glucochain_store::StoreError),
}

/// The audited fields of a row (what its hash covers).
pub fn audit_fields(row: &AuditRow) -> glucochain_types::audit::AuditFields {
    glucochain_types::audit::AuditFields {
        seq: row.seq,
        at_ms: row.at_ms,
        reader: row.reader.clone(),
        reader_role: row.reader_role.clone(),
        patient: row.patient.clone(),
        action: row.action.clone(),
        resource: row.resource.clone(),
        purpose: row.purpose.clone(),
        outcome: row.outcome.clone(),
        reason: row.reason.clone(),
    }
}

/// The hash of an audit entry after `prev` (see [`glucochain_types::audit`]).
pub fn audit_hash(prev: &[u8], row: &AuditRow) -> Hash32 {
    glucochain_types::audit::link(prev, &audit_fields(row).content_hash())
}

impl Ledger {
    /// Opens the database and rebuilds the verified view from it.
    pub async fn open(store: Store, genesis: Genesis) -> anyhow::Result<Arc<Self>> {
        let chain = Arc::new(StoredChain::open(store.clone(), &genesis).await?);
        let head = match store.audit_head().await? {
            Some(h) => (h.seq, h.entry_hash),
            None => (0, vec![0u8; 32]),
        };
        let refusals = Refusals {
            // A reader's refusals of one patient: 20, then one a minute.
            per_reader: glucochain_api::rate::RateLimiter::new(1.0 / 60.0, 20.0),
            // All refusals of one patient (many readers, e.g. fresh identities): 200, then one every 10 s.
            per_patient: glucochain_api::rate::RateLimiter::new(0.1, 200.0),
        };
        Ok(Arc::new(Ledger {
            chain,
            store,
            genesis,
            audit_head: tokio::sync::Mutex::new(head),
            refusals: std::sync::Mutex::new(refusals),
        }))
    }

    /// The committed height.
    pub fn height(&self) -> u64 {
        self.chain.height()
    }

    /// Appends an audit entry (hash-chained) and returns its sequence number.
    /// A refusal beyond the refusal rates of its patient is not written
    /// ([`AuditError::Throttled`]).
    pub async fn audit(&self, a: Access<'_>) -> Result<u64, AuditError> {
        if !a.granted
            && let Some(p) = a.patient
        {
            let mut r = self.refusals.lock().expect("refusals lock");
            let now = std::time::Instant::now();
            let pair = format!("{}/{p}", a.reader);
            if let Err(wait) = r.per_reader.take(&pair, now).and_then(|_| r.per_patient.take(p.as_str(), now)) {
                metrics::counter!("glucochain_ledger_refusals_unlogged_total").increment(1);
                return Err(AuditError::Throttled(wait));
            }
        }
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
    let services = bus.client().queue_subscribe(glucochain_bus::subjects::AUDIT_APPEND, "ledger".into()).await?;
    let detector =
        bus.client().queue_subscribe(glucochain_bus::subjects::AUDIT_APPEND_DETECTOR, "ledger".into()).await?;
    let notifier =
        bus.client().queue_subscribe(glucochain_bus::subjects::AUDIT_APPEND_NOTIFIER, "ledger".into()).await?;
    let mut all = futures::stream::select_all([
        services.map(|m| (m, AppendFrom::Service)).boxed(),
        detector.map(|m| (m, AppendFrom::Own(Role::Detector))).boxed(),
        notifier.map(|m| (m, AppendFrom::Own(Role::Notifier))).boxed(),
    ]);
    while let Some((m, from)) = all.next().await {
        let Some(reply) = m.reply.clone() else { continue };
        let answer = match append_requested(&ledger, &m.payload, from).await {
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

/// Who asked for an append: the contracts engine (any reader it decided
/// for) or a service recording its own openings (the detector, the
/// notifier: only in a registered participant of that role's own name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AppendFrom {
    Service,
    Own(Role),
}

async fn append_requested(ledger: &Ledger, payload: &[u8], from: AppendFrom) -> anyhow::Result<u64> {
    append_requested_inner(ledger, payload, from).await.map_err(|e| match e.downcast::<AuditError>() {
        // The contracts engine answers 429 for this one (the prefix is the convention).
        Ok(AuditError::Throttled(wait)) => anyhow::anyhow!("rate-limited: {}", wait.as_secs().max(1)),
        Ok(other) => anyhow::Error::from(other),
        Err(e) => e,
    })
}

async fn append_requested_inner(ledger: &Ledger, payload: &[u8], from: AppendFrom) -> anyhow::Result<u64> {
    use anyhow::Context as _;
    use prost::Message as _;
    let a = glucochain_wire::v1::AuditAppend::decode(payload).context("undecodable AuditAppend")?;
    let reader = ParticipantId::parse(&a.reader).context("reader")?;
    if let AppendFrom::Own(service) = from {
        let view = ledger.chain.view.read().expect("view lock");
        anyhow::ensure!(
            glucochain_state::service_may_append(view.state(), service, &reader, &a.reader_role),
            "the {service} appends entries in a registered {service}'s own name only",
            service = service.as_str()
        );
    }
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
        .map_err(anyhow::Error::from)
}
