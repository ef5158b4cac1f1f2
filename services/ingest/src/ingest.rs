//! Ingest's core: admission of a transaction against the committed state
//! (the same rules the validators apply), publishing to `TXS` with the tx
//! hash as message id, and the status of every transaction, kept from
//! `BLOCKS` (committed) and the validators' rejections.

use actix_web::http::StatusCode;
use futures::StreamExt as _;
use glucochain_api::Problem;
use glucochain_bus::streams::StreamSpec;
use glucochain_bus::{Bus, subjects};
use glucochain_crypto::Hash32;
use glucochain_follow::{Follower, decode_committed, fetch_blocks};
use glucochain_store::{CommittedTxStatus, MAX_ROWS_PER_WRITE, NewTxStatus, Store, TxState};
use glucochain_types::Transaction;
use glucochain_types::genesis::Genesis;
use glucochain_types::sealed::{RecordBody, SealError, Submission};
use glucochain_types::time::Timestamp;
use glucochain_types::tx::{TxBody, TxLimits};
use glucochain_vault::record_vault::RecordVault;
use glucochain_wire::v1 as wire;
use prost::Message as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

use glucochain_api::rate::RateLimiter;

/// Outcome of a submission.
#[derive(Debug)]
pub enum Submitted {
    /// Newly stored in the TXS stream.
    Accepted(Hash32),
    /// Already known: its current status.
    Known(Hash32, TxState),
}

/// A pending status to record, and who waits for it.
struct PendingStatus {
    hash: Hash32,
    tx_type: &'static str,
    signer: String,
    written: oneshot::Sender<()>,
}

/// Records pending statuses in groups: the submissions that arrive while one
/// write is in flight go together in the next (one statement, one commit),
/// so the database commits once per group instead of once per transaction.
async fn write_pending_statuses(store: Store, mut queue: mpsc::Receiver<PendingStatus>) {
    while let Some(first) = queue.recv().await {
        let mut group = vec![first];
        while group.len() < MAX_ROWS_PER_WRITE {
            match queue.try_recv() {
                Ok(p) => group.push(p),
                Err(_) => break,
            }
        }
        let rows: Vec<NewTxStatus> =
            group.iter().map(|p| NewTxStatus { hash: &p.hash.0, tx_type: p.tx_type, signer: &p.signer }).collect();
        metrics::histogram!("glucochain_ingest_status_group_size").record(rows.len() as f64);
        if let Err(e) = store.tx_pending(&rows).await {
            tracing::error!(error = %e, txs = rows.len(), "pending status not recorded (the transactions are in the stream)");
        }
        for p in group {
            let _ = p.written.send(());
        }
    }
}

/// Write quotas, each `(sustained per second, burst)`.
#[derive(Debug, Clone, Copy)]
pub struct Quotas {
    /// Per signer.
    pub per_signer: (f64, f64),
    /// Per signer registered less than [`YOUNG_MS`] ago (besides `per_signer`).
    pub young_signer: (f64, f64),
    /// Self-registrations per client address.
    pub new_ids_per_ip: (f64, f64),
    /// Per patient a transaction concerns, whoever signs it.
    pub per_patient: (f64, f64),
    /// Everything this ingest takes.
    pub global: (f64, f64),
}

/// How long a newly registered signer counts as young.
pub const YOUNG_MS: i64 = 24 * 3_600_000;

/// The token buckets of [`Quotas`].
struct Limiters {
    per_signer: RateLimiter,
    young_signer: RateLimiter,
    new_ids_per_ip: RateLimiter,
    per_patient: RateLimiter,
    global: RateLimiter,
}

/// The ingest service's state.
pub struct Ingest {
    bus: Bus,
    store: Store,
    vault: RecordVault,
    /// Group commit of record bodies into `vault`.
    bodies: glucochain_vault::writer::VaultWriter,
    pending: mpsc::Sender<PendingStatus>,
    follower: RwLock<Follower>,
    limiter: Mutex<Limiters>,
    limits: TxLimits,
    caught_up: AtomicBool,
    /// The highest height whose block this ingest has verified: statuses
    /// may answer `committed` from this height on, so a transaction accepted
    /// afterwards is stamped with it (`TxEnvelope::chain_height`).
    known_height: AtomicU64,
}

fn title(code: &str) -> (StatusCode, &'static str) {
    match code {
        "too-large" => (StatusCode::PAYLOAD_TOO_LARGE, "Transaction too large"),
        "malformed" | "malformed-jws" | "wrong-type" => (StatusCode::BAD_REQUEST, "Malformed transaction"),
        "invalid-payload" => (StatusCode::BAD_REQUEST, "Invalid transaction payload"),
        "wrong-chain" => (StatusCode::BAD_REQUEST, "Transaction for another chain"),
        "unknown-signer" => (StatusCode::UNAUTHORIZED, "Unknown signer"),
        "bad-signature" => (StatusCode::UNAUTHORIZED, "Bad signature"),
        "revoked-signer" => (StatusCode::FORBIDDEN, "Signer revoked"),
        "forbidden" => (StatusCode::FORBIDDEN, "Not allowed for this signer"),
        "replay" => (StatusCode::CONFLICT, "Replayed nonce"),
        "conflict" => (StatusCode::CONFLICT, "Conflicts with committed state"),
        "expired" => (StatusCode::UNPROCESSABLE_ENTITY, "Transaction too old"),
        "sealed-body-missing" | "sealed-body-unexpected" | "invalid-sealed-body" => {
            (StatusCode::BAD_REQUEST, "Invalid sealed body")
        }
        "commitment-mismatch" => (StatusCode::UNPROCESSABLE_ENTITY, "Sealed body does not match the transaction"),
        "not-yet-valid" => (StatusCode::UNPROCESSABLE_ENTITY, "Transaction from the future"),
        _ => (StatusCode::UNPROCESSABLE_ENTITY, "Transaction not admissible"),
    }
}

/// The stable code as a `'static` str (problem types are a closed set).
fn static_code(code: &str) -> &'static str {
    const CODES: &[&str] = &[
        "too-large",
        "malformed",
        "malformed-jws",
        "wrong-type",
        "invalid-payload",
        "wrong-chain",
        "unknown-signer",
        "bad-signature",
        "revoked-signer",
        "forbidden",
        "replay",
        "conflict",
        "expired",
        "not-yet-valid",
        "unknown-patient",
        "unknown-institution",
        "unknown-participant",
        "sealed-body-missing",
        "sealed-body-unexpected",
        "invalid-sealed-body",
        "commitment-mismatch",
    ];
    CODES.iter().find(|c| **c == code).copied().unwrap_or("not-admissible")
}

/// The key a client address is counted under: the address itself for IPv4,
/// its /64 for IPv6 (one host gets a whole /64).
fn address_key(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return v4.to_string();
            }
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

impl Ingest {
    /// Ingest over `bus` and `store`, with the registry at genesis (caught up
    /// by [`Ingest::follow_blocks`]). Starts the pending-status writer and
    /// the record bodies' group writer on the current Tokio runtime.
    pub fn new(bus: Bus, store: Store, vault: RecordVault, genesis: &Genesis, q: Quotas) -> Self {
        let bucket = |(rate, burst): (f64, f64)| RateLimiter::new(rate, burst);
        let (pending, queue) = mpsc::channel(4 * MAX_ROWS_PER_WRITE);
        tokio::spawn(write_pending_statuses(store.clone(), queue));
        Ingest {
            bus,
            store,
            bodies: glucochain_vault::writer::VaultWriter::start(vault.clone()),
            vault,
            pending,
            follower: RwLock::new(Follower::new(genesis)),
            limiter: Mutex::new(Limiters {
                per_signer: bucket(q.per_signer),
                young_signer: bucket(q.young_signer),
                new_ids_per_ip: bucket(q.new_ids_per_ip),
                per_patient: bucket(q.per_patient),
                global: bucket(q.global),
            }),
            limits: TxLimits::default(),
            caught_up: AtomicBool::new(false),
            known_height: AtomicU64::new(0),
        }
    }

    /// Largest accepted request body.
    pub fn max_body(&self) -> usize {
        // The largest JWS, a sealed body as large (what the JWS held before
        // records moved off the chain), and the JSON around them.
        2 * self.limits.max_jws_bytes + 1024
    }

    /// Whether the registry has caught up with the chain.
    pub fn is_caught_up(&self) -> bool {
        self.caught_up.load(Ordering::Relaxed)
    }

    /// The status of a transaction.
    pub async fn status(&self, hash: &Hash32) -> Result<Option<TxState>, Problem> {
        let row = self.store.tx_status(&hash.0).await.map_err(|e| {
            tracing::error!(error = %e, "status lookup");
            Problem::unavailable("status store unavailable")
        })?;
        Ok(row.map(|r| r.state))
    }

    /// Checks and publishes a transaction from `client` (its address, when
    /// known). Checks, in order: size, syntax and schema, chain id, signer
    /// and signature with the registered key, role, time window, duplicate
    /// (an identical resubmission answers its status), replay, the type's
    /// rules, then the quotas: this ingest's, the client address's for new
    /// identities, the signer's (stricter for a young one), the patient's.
    pub async fn submit(
        &self,
        submission: &Submission,
        client: Option<std::net::IpAddr>,
    ) -> Result<Submitted, Problem> {
        let jws = submission.jws.as_str();
        if !self.is_caught_up() {
            return Err(Problem::unavailable("catching up with the chain; retry shortly"));
        }
        if jws.len() > self.limits.max_jws_bytes {
            let (status, title) = title("too-large");
            return Err(Problem::new(
                status,
                "too-large",
                title,
                format!("at most {} bytes", self.limits.max_jws_bytes),
            ));
        }
        let (admitted, signer_since) = {
            let follower = self.follower.read().expect("registry lock");
            let mut exec = follower.state().execute(Timestamp::now());
            let admitted = exec.admit(jws.as_bytes());
            let since = admitted
                .as_ref()
                .ok()
                .and_then(|a| follower.state().participant(&a.tx.signer))
                .map(|p| p.registered_ms);
            (admitted, since)
        };
        let tx = match admitted {
            Ok(a) => a.tx,
            Err(r) if r.code == "duplicate" => {
                let hash = glucochain_crypto::sha256(jws.as_bytes());
                let state = self.status(&hash).await?.unwrap_or(TxState::Pending);
                return Ok(Submitted::Known(hash, state));
            }
            Err(r) => {
                let (status, title) = title(r.code);
                metrics::counter!("glucochain_ingest_refused_total", "code" => r.code).increment(1);
                return Err(Problem::new(status, static_code(r.code), title, r.reason));
            }
        };
        let kept = self.check_sealed(&tx, submission)?;
        self.within_quotas(&tx, signer_since, client)?;
        if let Some(kept) = kept {
            self.seal_into_vault(&tx, &kept).await?;
        }
        self.publish(&tx).await
    }

    /// A record's body: present exactly when the type has one, valid,
    /// agreeing with the envelope and the committed one. Returns what the
    /// vault keeps of it.
    fn check_sealed(&self, tx: &Transaction, submission: &Submission) -> Result<Option<Vec<u8>>, Problem> {
        let refuse = |e: SealError| {
            let code = e.code();
            let (status, title) = title(code);
            metrics::counter!("glucochain_ingest_refused_total", "code" => code).increment(1);
            Problem::new(status, static_code(code), title, e.to_string())
        };
        // A body is required exactly when the envelope commits to one.
        match (&submission.sealed, tx.payload.body.body_commitment().is_some()) {
            (None, false) => Ok(None),
            (None, true) => Err(refuse(SealError::Missing(tx.payload.tx_type.as_str()))),
            (Some(sealed), _) => {
                RecordBody::accept(&tx.payload, sealed, &self.limits).map(|(_, kept)| Some(kept)).map_err(refuse)
            }
        }
    }

    /// Seals a record's body into the vault (and its replica) before the
    /// transaction is published: a committed envelope always has its body.
    async fn seal_into_vault(&self, tx: &Transaction, kept: &[u8]) -> Result<(), Problem> {
        let (Some(patient), Some(class)) = (tx.payload.sealed_subject(&tx.signer), tx.payload.body.sealed_class())
        else {
            return Err(Problem::internal());
        };
        let hash = tx.hash.to_string();
        let record = glucochain_vault::record_vault::NewRecord {
            tx_hash: &hash,
            patient: patient.as_str(),
            class: class.as_str(),
            body: kept,
        };
        let put = self.bodies.put(record, Timestamp::now().unix_ms());
        match tokio::time::timeout(Duration::from_secs(5), put).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, tx = %tx.hash, "record vault write failed");
                Err(Problem::unavailable("the record vault is unavailable; nothing was stored"))
            }
            Err(_) => Err(Problem::unavailable("the record vault did not answer; nothing was stored")),
        }
    }

    /// Takes a token from every quota the transaction counts against.
    fn within_quotas(
        &self,
        tx: &Transaction,
        signer_since: Option<i64>,
        client: Option<std::net::IpAddr>,
    ) -> Result<(), Problem> {
        let now = Instant::now();
        let mut l = self.limiter.lock().expect("limiter lock");
        let refuse = |which: &'static str, detail: String, wait| {
            metrics::counter!("glucochain_ingest_refused_total", "code" => "rate-limited", "quota" => which)
                .increment(1);
            Err(Problem::rate_limited("Too many transactions", detail, wait))
        };
        if let Err(wait) = l.global.take("*", now) {
            return refuse("global", "this service is taking all it can; retry later".into(), wait);
        }
        match signer_since {
            // Not registered yet: a self-registration, counted per client address.
            None => {
                let key = client.map(address_key).unwrap_or_else(|| "unknown".into());
                if let Err(wait) = l.new_ids_per_ip.take(&key, now) {
                    return refuse("new-ids", "too many new identities from this address; retry later".into(), wait);
                }
            }
            Some(since) if Timestamp::now().unix_ms() - since < YOUNG_MS => {
                if let Err(wait) = l.young_signer.take(tx.signer.as_str(), now) {
                    let detail = format!("{} is newly registered and over its rate; retry later", tx.signer);
                    return refuse("young", detail, wait);
                }
            }
            Some(_) => {}
        }
        if let Err(wait) = l.per_signer.take(tx.signer.as_str(), now) {
            return refuse("signer", format!("{} is over its rate; retry later", tx.signer), wait);
        }
        if let Some(p) = &tx.payload.patient
            && let Err(wait) = l.per_patient.take(p.as_str(), now)
        {
            return refuse("patient", "too many transactions for this patient; retry later".into(), wait);
        }
        Ok(())
    }

    async fn publish(&self, tx: &Transaction) -> Result<Submitted, Problem> {
        // Consumers judging the transaction against chain state (the
        // detector) first wait until they hold every block this ingest
        // could have answered `committed` for.
        let height = self.known_height.load(Ordering::Acquire);
        let env = wire::TxEnvelope::received_now(
            tx.jws.as_bytes().to_vec(),
            tx.hash.0.to_vec(),
            tx.payload.tx_type.as_str(),
            height,
        );
        let payload = bytes::Bytes::from(env.encode_to_vec());
        let subject = subjects::tx(tx.payload.tx_type.as_str());
        let published = match tokio::time::timeout(
            std::time::Duration::from_secs(5),
            self.bus.publish(&subject, &tx.hash.to_string(), payload),
        )
        .await
        {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "TXS publish failed");
                return Err(Problem::unavailable("the transaction stream is unavailable; nothing was stored"));
            }
            Err(_) => return Err(Problem::unavailable("the transaction stream did not answer; nothing was stored")),
        };
        // The status is readable once the client hears 202 (written in a group with others).
        let (written, done) = oneshot::channel();
        let status = PendingStatus {
            hash: tx.hash,
            tx_type: tx.payload.tx_type.as_str(),
            signer: tx.signer.as_str().to_string(),
            written,
        };
        if self.pending.send(status).await.is_ok() {
            let _ = done.await;
        }
        metrics::counter!("glucochain_ingest_accepted_total", "type" => tx.payload.tx_type.as_str()).increment(1);
        if published.duplicate {
            let state = self.status(&tx.hash).await?.unwrap_or(TxState::Pending);
            return Ok(Submitted::Known(tx.hash, state));
        }
        Ok(Submitted::Accepted(tx.hash))
    }

    /// [`Self::apply_block`], waiting out database outages: a block is not
    /// skipped, nor the service stopped, because PostgreSQL was away (found
    /// by the fault harness's soak: a minute without PostgreSQL stopped
    /// ingest). Other errors (a block that does not verify) are returned.
    async fn apply_durably(&self, c: &wire::CommittedBlock) -> anyhow::Result<()> {
        let mut wait = Duration::from_millis(250);
        loop {
            match self.apply_block(c).await {
                Err(e)
                    if e.downcast_ref::<glucochain_store::StoreError>().is_some()
                        || e.downcast_ref::<glucochain_vault::VaultError>().is_some() =>
                {
                    tracing::warn!(error = %e, "block not recorded (database or record vault); retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
                other => return other,
            }
        }
    }

    async fn apply_block(&self, c: &wire::CommittedBlock) -> anyhow::Result<()> {
        let (block, cert) = decode_committed(c)?;
        let height = block.header.height;
        let verified = {
            let f = self.follower.read().expect("registry lock");
            if height < f.next_height() {
                return Ok(());
            }
            f.verify(block, cert)?
        };
        let hash = verified.block.hash();
        let txs: Vec<(u32, Transaction)> = verified
            .block
            .txs
            .iter()
            .enumerate()
            .filter_map(|(i, jws)| {
                Some((i as u32, Transaction::parse(std::str::from_utf8(jws).ok()?, &self.limits).ok()?))
            })
            .collect();
        let rows: Vec<CommittedTxStatus> = txs
            .iter()
            .map(|(index, tx)| CommittedTxStatus {
                hash: &tx.hash.0,
                tx_type: tx.payload.tx_type.as_str(),
                signer: tx.signer.as_str(),
                index: *index,
            })
            .collect();
        // Committed erasures are carried out before the block counts as
        // applied: the chain is replayed from its start at every restart, and
        // an erasure a crash interrupted finishes then (each is idempotent).
        for (_, tx) in &txs {
            if let (TxBody::RecordErase(e), Some(patient)) = (&tx.payload.body, &tx.payload.patient) {
                let n = self
                    .vault
                    .apply_erasure(&tx.hash.to_string(), patient.as_str(), &e.scope, Timestamp::now().unix_ms())
                    .await?;
                if n > 0 {
                    tracing::info!(erasure = %tx.hash, records = n, "records erased from the vault");
                }
                metrics::counter!("glucochain_vault_erasures_total").increment(1);
            }
        }
        self.known_height.fetch_max(height, Ordering::AcqRel);
        self.store.tx_committed(height, &hash.0, &rows).await?;
        self.follower.write().expect("registry lock").apply(verified);
        Ok(())
    }

    /// Follows `BLOCKS` from the first block: the registry for admission and
    /// the committed status of every transaction. Gaps are fetched from the
    /// validators. Marks the service caught up once it reached the stream's
    /// end as of start.
    pub async fn follow_blocks(&self) -> anyhow::Result<()> {
        let stream = self.bus.ensure_stream(&StreamSpec::blocks()).await?;
        let end = stream.clone().info().await?.state.last_sequence;
        if end == 0 {
            self.caught_up.store(true, Ordering::Relaxed);
        }
        let mut messages = self.bus.ordered_messages(StreamSpec::blocks());
        loop {
            let m = messages.next().await;
            let seq = m.info().map(|i| i.stream_sequence).unwrap_or(0);
            let Ok(c) = wire::CommittedBlock::decode(m.payload.as_ref()) else { continue };
            let height = c.block.as_ref().and_then(|b| b.header.as_ref()).map(|h| h.height).unwrap_or(0);
            loop {
                let next = self.follower.read().expect("registry lock").next_height();
                if height <= next {
                    break;
                }
                match fetch_blocks(&self.bus, next).await {
                    Ok(blocks) if !blocks.is_empty() => {
                        for b in &blocks {
                            self.apply_durably(b).await?;
                        }
                    }
                    Ok(_) => {
                        tracing::warn!(next, "gap in BLOCKS and no validator answered with it; asking again");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    Err(e) => {
                        tracing::warn!(next, error = %e, "gap in BLOCKS not filled yet; asking again");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
            if let Err(e) = self.apply_durably(&c).await {
                tracing::error!(height, error = format!("{e:#}"), "a block on BLOCKS does not verify; ignored");
            }
            if seq >= end {
                self.caught_up.store(true, Ordering::Relaxed);
            }
        }
    }

    /// Records the validators' rejections: signed ones from validators of
    /// the current set, once they hold more than a third of the power (see
    /// [`crate::rejections`]).
    pub async fn follow_rejections(&self) -> anyhow::Result<()> {
        let mut sub = self.bus.client().subscribe(subjects::TX_REJECTED).await?;
        let mut tally = crate::rejections::RejectionTally::default();
        while let Some(m) = sub.next().await {
            let Ok(r) = wire::TxRejected::decode(m.payload.as_ref()) else { continue };
            let counted = {
                let f = self.follower.read().expect("registry lock");
                tally.add(&r, f.state().validators())
            };
            match counted {
                Ok(true) => {
                    if let Err(e) = self.store.tx_rejected(&r.tx_hash, &r.code, &r.reason).await {
                        tracing::warn!(error = %e, "rejection not recorded");
                    }
                }
                Ok(false) => {}
                Err(e) => {
                    metrics::counter!("glucochain_ingest_rejections_refused_total").increment(1);
                    tracing::warn!(validator = %r.validator, error = %e, "rejection report not counted");
                }
            }
        }
        anyhow::bail!("rejection subscription ended")
    }
}
