//! The vault replicated beyond one database (ADR 0016 §5): every row the
//! vault writes — a wrapped data key, a sealed record, an erasure tombstone,
//! a class's new epoch — is also published on the `VAULT` JetStream stream
//! (one message per subject, replicated across the deployment's NATS
//! servers). What it carries is what the vault's tables hold: ciphertexts
//! and keys wrapped by the key-encryption key, so a holder without the KEK
//! reads nothing. An erasure purges the erased rows' subjects and leaves
//! tombstones; [`Replica::restore`] rebuilds a lost vault from the stream.
//!
//! Subjects: `emr.vault.key.<patient>.<class>.<epoch>`,
//! `emr.vault.rec.<patient>.<class>.<tx>`, `emr.vault.gone.<patient>.<class>.<tx>`,
//! `emr.vault.epoch.<patient>.<class>`.

use crate::VaultError;
use crate::keys::{DataKeyId, KeyWrap, RecordPlace, SealedRecord, open_record, open_stored_data_key};
use crate::record_vault::Lookup;
use crate::seal::Key256;
use base64::Engine as _;
use glucochain_bus::Bus;
use glucochain_bus::streams::StreamSpec;
use glucochain_store::{Store, VaultRecordRow};
use glucochain_types::tx::{CarePlan, CareplanPropose};
use serde::{Deserialize, Serialize};

/// One replicated row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "row", rename_all = "snake_case", deny_unknown_fields)]
pub enum Row {
    /// A data key wrapped by the KEK `kek_id`.
    DataKey {
        /// Patient.
        patient: String,
        /// Class.
        class: String,
        /// Epoch.
        epoch: i64,
        /// The wrapped key (base64url).
        wrapped: String,
        /// The KEK that wrapped it.
        kek_id: String,
        /// When it was made.
        created_ms: i64,
    },
    /// A sealed record.
    Record {
        /// Its transaction.
        tx_hash: String,
        /// Patient.
        patient: String,
        /// Class.
        class: String,
        /// The data key's epoch.
        epoch: i64,
        /// Ciphertext (base64url).
        body: String,
        /// Wrapped record key (base64url).
        record_key: String,
        /// When it was stored.
        created_ms: i64,
    },
    /// A record erased.
    Gone {
        /// Its transaction.
        tx_hash: String,
        /// Patient.
        patient: String,
        /// Class.
        class: String,
        /// The committed erasure.
        by_tx: String,
        /// When.
        erased_ms: i64,
    },
    /// A class moved to a new epoch (its earlier data keys destroyed).
    Epoch {
        /// Patient.
        patient: String,
        /// Class.
        class: String,
        /// The new epoch.
        epoch: i64,
    },
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

fn unb64(s: &str) -> Result<Vec<u8>, VaultError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|e| VaultError::Malformed(format!("base64: {e}")))
}

/// A subject token from an id: only what NATS subjects carry safely.
fn token(s: &str) -> Result<&str, VaultError> {
    let ok = !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok { Ok(s) } else { Err(VaultError::Malformed(format!("{s:?} cannot name a replica subject"))) }
}

impl Row {
    /// The subject it is kept under.
    pub fn subject(&self) -> Result<String, VaultError> {
        Ok(match self {
            Row::DataKey { patient, class, epoch, .. } => {
                format!("emr.vault.key.{}.{}.{epoch}", token(patient)?, token(class)?)
            }
            Row::Record { tx_hash, patient, class, .. } => {
                format!("emr.vault.rec.{}.{}.{}", token(patient)?, token(class)?, token(tx_hash)?)
            }
            Row::Gone { tx_hash, patient, class, .. } => {
                format!("emr.vault.gone.{}.{}.{}", token(patient)?, token(class)?, token(tx_hash)?)
            }
            Row::Epoch { patient, class, .. } => format!("emr.vault.epoch.{}.{}", token(patient)?, token(class)?),
        })
    }

    /// The row of a sealed record as stored.
    pub fn record(r: &VaultRecordRow) -> Self {
        Row::Record {
            tx_hash: r.tx_hash.clone(),
            patient: r.patient.clone(),
            class: r.class.clone(),
            epoch: r.epoch,
            body: b64(&r.body),
            record_key: b64(&r.record_key),
            created_ms: r.created_ms,
        }
    }

    /// The row of a wrapped data key.
    pub fn data_key(patient: &str, class: &str, epoch: i64, wrapped: &[u8], kek_id: &str, created_ms: i64) -> Self {
        Row::DataKey {
            patient: patient.into(),
            class: class.into(),
            epoch,
            wrapped: b64(wrapped),
            kek_id: kek_id.into(),
            created_ms,
        }
    }

    /// The tombstone of `tx_hash`, erased by `by_tx`.
    pub fn gone(tx_hash: &str, patient: &str, class: &str, by_tx: &str, erased_ms: i64) -> Self {
        Row::Gone {
            tx_hash: tx_hash.into(),
            patient: patient.into(),
            class: class.into(),
            by_tx: by_tx.into(),
            erased_ms,
        }
    }

    /// Writes the row into `store` (each is idempotent).
    pub async fn apply(&self, store: &Store) -> Result<(), VaultError> {
        match self {
            Row::DataKey { patient, class, epoch, wrapped, kek_id, created_ms } => {
                store.vault_put_data_key(patient, class, *epoch, &unb64(wrapped)?, kek_id, *created_ms).await?;
            }
            Row::Record { tx_hash, patient, class, epoch, body, record_key, created_ms } => {
                if store.vault_erased(tx_hash).await?.is_none() {
                    store
                        .vault_put_record(&VaultRecordRow {
                            tx_hash: tx_hash.clone(),
                            patient: patient.clone(),
                            class: class.clone(),
                            epoch: *epoch,
                            body: unb64(body)?,
                            record_key: unb64(record_key)?,
                            created_ms: *created_ms,
                        })
                        .await?;
                }
            }
            Row::Gone { tx_hash, patient, class, by_tx, erased_ms } => {
                store.vault_put_tombstone(tx_hash, patient, class, by_tx, *erased_ms).await?;
            }
            Row::Epoch { patient, class, epoch } => store.vault_raise_epoch(patient, class, *epoch).await?,
        }
        Ok(())
    }
}

/// The `VAULT` stream, as a vault's replica.
#[derive(Clone)]
pub struct Replica {
    bus: Bus,
}

impl std::fmt::Debug for Replica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Replica(VAULT)")
    }
}

fn bus_err(e: impl std::fmt::Display) -> VaultError {
    VaultError::Store(format!("vault replica: {e}"))
}

impl Replica {
    /// The replica on `bus` (declares the stream).
    pub async fn new(bus: Bus) -> Result<Self, VaultError> {
        bus.ensure_stream(&StreamSpec::vault()).await.map_err(bus_err)?;
        Ok(Replica { bus })
    }

    /// Publishes a sealed record's row, waiting until the stream has stored it.
    pub async fn publish_record(&self, row: &VaultRecordRow) -> Result<(), VaultError> {
        self.publish(&Row::record(row)).await
    }

    /// Publishes `row`, waiting until the stream has stored it.
    pub async fn publish(&self, row: &Row) -> Result<(), VaultError> {
        let subject = row.subject()?;
        let payload = serde_json::to_vec(row).map_err(|e| VaultError::Malformed(e.to_string()))?;
        let id = format!("{subject}:{}", glucochain_crypto::sha256(&payload));
        self.bus.publish(&subject, &id, payload.into()).await.map_err(bus_err)?;
        Ok(())
    }

    /// Purges the replicated rows under `filter` (an erasure).
    pub async fn purge(&self, filter: &str) -> Result<u64, VaultError> {
        let stream = self.bus.jetstream().get_stream(glucochain_bus::subjects::STREAM_VAULT).await.map_err(bus_err)?;
        Ok(stream.purge().filter(filter).await.map_err(bus_err)?.purged)
    }

    /// Erases one record in the replica: a tombstone, and its sealed row purged.
    pub async fn erase_record(
        &self,
        tx_hash: &str,
        patient: &str,
        class: &str,
        by_tx: &str,
        erased_ms: i64,
    ) -> Result<(), VaultError> {
        self.publish(&Row::gone(tx_hash, patient, class, by_tx, erased_ms)).await?;
        self.purge(&format!("emr.vault.rec.{}.{}.{}", token(patient)?, token(class)?, token(tx_hash)?)).await?;
        Ok(())
    }

    /// Erases a class in the replica: tombstones for `erased`, the new
    /// epoch, their sealed rows and the class's data keys of earlier epochs
    /// purged. Only what the erasure named goes, so running it again (an
    /// erasure resumed after a crash) leaves records written since alone.
    pub async fn erase_class(
        &self,
        patient: &str,
        class: &str,
        erased: &[String],
        epoch: i64,
        by_tx: &str,
        erased_ms: i64,
    ) -> Result<(), VaultError> {
        for tx in erased {
            self.publish(&Row::gone(tx, patient, class, by_tx, erased_ms)).await?;
        }
        self.publish(&Row::Epoch { patient: patient.into(), class: class.into(), epoch }).await?;
        let (p, c) = (token(patient)?, token(class)?);
        for tx in erased {
            self.purge(&format!("emr.vault.rec.{p}.{c}.{}", token(tx)?)).await?;
        }
        for old in 1..epoch {
            self.purge(&format!("emr.vault.key.{p}.{c}.{old}")).await?;
        }
        Ok(())
    }

    /// Rebuilds `store`'s vault from the replica: every row the stream holds,
    /// in order. Returns how many rows were applied.
    pub async fn restore(&self, store: &Store) -> Result<u64, VaultError> {
        let mut stream =
            self.bus.jetstream().get_stream(glucochain_bus::subjects::STREAM_VAULT).await.map_err(bus_err)?;
        let state = stream.info().await.map_err(bus_err)?.state.clone();
        if state.messages == 0 {
            return Ok(0);
        }
        let mut messages = self.bus.ordered_messages(StreamSpec::vault());
        let mut applied = 0;
        loop {
            let m = messages.next().await;
            let seq = m.info().map_err(bus_err)?.stream_sequence;
            let row: Row = serde_json::from_slice(&m.payload)
                .map_err(|e| VaultError::Malformed(format!("replica row {seq}: {e}")))?;
            row.apply(store).await?;
            applied += 1;
            if seq >= state.last_sequence {
                return Ok(applied);
            }
        }
    }
}

/// Reads sealed bodies from the replicated vault (the `VAULT` stream), by
/// subject, for a service that holds the key-encryption key but keeps no
/// copy of the vault (the ledger's read API, the detector). An erased
/// record answers [`Lookup::Erased`] from its tombstone; a destroyed data
/// key, or a record purged, opens nothing. An unwrapped data key is
/// remembered for at most [`KEY_KEPT`]: an erasure publishes its tombstones
/// before it purges rows and destroys keys, and every record is looked up
/// with its tombstone, so a remembered key of an erased class opens
/// nothing; it only saves a request and an unwrap per record.
#[derive(Clone)]
pub struct VaultReader {
    stream: async_nats::jetstream::stream::Stream<()>,
    kek: std::sync::Arc<dyn KeyWrap>,
    keys: KeyMemory,
    plans: PlanMemory,
}

/// Care plans a reader opened, by proposal, with when (kept as long as a
/// data key: an erasure reaches a reader's memory within [`KEY_KEPT`]).
type PlanMemory = std::sync::Arc<
    std::sync::Mutex<std::collections::HashMap<glucochain_crypto::Hash32, (std::time::Instant, CarePlan)>>,
>;

/// Data keys a reader remembers, with when it unwrapped them.
type KeyMemory = std::sync::Arc<std::sync::Mutex<std::collections::HashMap<DataKeyId, (std::time::Instant, Key256)>>>;

/// How long a reader remembers an unwrapped data key.
pub const KEY_KEPT: std::time::Duration = std::time::Duration::from_secs(60);

impl std::fmt::Debug for VaultReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VaultReader(VAULT, kek {})", self.kek.id())
    }
}

/// One record a reader asks for: its transaction, patient and class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    /// The transaction that carried it.
    pub tx_hash: String,
    /// Its patient.
    pub patient: String,
    /// Its data class.
    pub class: String,
}

impl Wanted {
    /// The record of transaction `tx_hash`, for `patient`, under `class`.
    pub fn of(
        tx_hash: &glucochain_crypto::Hash32,
        patient: &glucochain_types::ParticipantId,
        class: glucochain_types::DataClass,
    ) -> Self {
        Wanted {
            tx_hash: tx_hash.to_string(),
            patient: patient.as_str().to_string(),
            class: class.as_str().to_string(),
        }
    }
}

/// How many bodies a reader fetches at once.
const READ_CONCURRENCY: usize = 64;

impl VaultReader {
    /// A reader of the `VAULT` stream on `bus` under `kek` (declares the stream).
    pub async fn new(bus: &Bus, kek: std::sync::Arc<dyn KeyWrap>) -> Result<Self, VaultError> {
        bus.ensure_stream(&StreamSpec::vault()).await.map_err(bus_err)?;
        let stream =
            bus.jetstream().get_stream_no_info(glucochain_bus::subjects::STREAM_VAULT).await.map_err(bus_err)?;
        Ok(VaultReader { stream, kek, keys: KeyMemory::default(), plans: PlanMemory::default() })
    }

    /// The last row on `subject`: by a direct get (the stream's
    /// `allow_direct`), or, where that is refused (a `VAULT` created before
    /// direct gets, which only an operator may update), by the JetStream
    /// API's `STREAM.MSG.GET`.
    async fn last(&self, subject: &str) -> Result<Option<Row>, VaultError> {
        self.last_confirmed(subject, false).await
    }

    /// [`Self::last`]; with `confirm_absent`, a direct get's "not found" is
    /// asked again of the stream's leader (`STREAM.MSG.GET`) before it is
    /// believed. A direct get may be answered by any server holding the
    /// stream, and one that lags (a follower of a replicated `VAULT`, or a
    /// server just restarted: a fault-harness run once saw every row written
    /// after a NATS restart reported missing to the detector) would make a
    /// stored body look absent. Used for record rows, which are there in
    /// the normal case, so the second request is paid only when one is not.
    async fn last_confirmed(&self, subject: &str, confirm_absent: bool) -> Result<Option<Row>, VaultError> {
        use async_nats::jetstream::stream::{DirectGetErrorKind, LastRawMessageErrorKind};
        let parse = |payload: &[u8]| {
            serde_json::from_slice(payload)
                .map(Some)
                .map_err(|e| VaultError::Malformed(format!("replica row {subject}: {e}")))
        };
        match self.stream.direct_get_last_for_subject(subject).await {
            Ok(m) => return parse(&m.payload),
            Err(e) if e.kind() == DirectGetErrorKind::NotFound && !confirm_absent => return Ok(None),
            Err(e) if e.kind() == DirectGetErrorKind::NotFound => {}
            Err(e) => tracing::debug!(error = %e, "direct get refused; asking the JetStream API"),
        }
        match self.stream.get_last_raw_message_by_subject(subject).await {
            Ok(m) if confirm_absent => {
                metrics::counter!("glucochain_vault_direct_get_stale_total").increment(1);
                tracing::warn!(subject, "a direct get did not find a row the stream's leader holds");
                parse(&m.payload)
            }
            Ok(m) => parse(&m.payload),
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
            Err(e) => Err(bus_err(e)),
        }
    }

    async fn data_key(&self, id: &DataKeyId) -> Result<Option<Key256>, VaultError> {
        let now = std::time::Instant::now();
        {
            let mut keys = self.keys.lock().expect("key memory lock");
            match keys.get(id) {
                Some((at, k)) if now.duration_since(*at) < KEY_KEPT => return Ok(Some(k.clone())),
                Some(_) => {
                    keys.remove(id);
                }
                None => {}
            }
            if keys.len() >= 1024 {
                keys.retain(|_, (at, _)| now.duration_since(*at) < KEY_KEPT);
            }
        }
        let k = self.fetch_data_key(id).await?;
        if let Some(k) = &k {
            self.keys.lock().expect("key memory lock").insert(id.clone(), (now, k.clone()));
        }
        Ok(k)
    }

    async fn fetch_data_key(&self, id: &DataKeyId) -> Result<Option<Key256>, VaultError> {
        let subject = format!("emr.vault.key.{}.{}.{}", token(&id.patient)?, token(&id.class)?, id.epoch);
        let Some(Row::DataKey { wrapped, kek_id, .. }) = self.last(&subject).await? else { return Ok(None) };
        open_stored_data_key(self.kek.as_ref(), id, &unb64(&wrapped)?, kek_id).map(Some)
    }

    async fn sealed(&self, w: &Wanted) -> Result<Result<(DataKeyId, SealedRecord), Lookup>, VaultError> {
        let (p, c, t) = (token(&w.patient)?, token(&w.class)?, token(&w.tx_hash)?);
        // An erasure publishes its tombstone before it purges the record's
        // row, so a row still there may already be erased: the tombstone is
        // looked up in both cases (both asked at once).
        let (rec, gone) = (format!("emr.vault.rec.{p}.{c}.{t}"), format!("emr.vault.gone.{p}.{c}.{t}"));
        let (rec, gone) = futures::join!(self.last_confirmed(&rec, true), self.last(&gone));
        if let Some(Row::Gone { by_tx, erased_ms, .. }) = gone? {
            return Ok(Err(Lookup::Erased { by_tx, at_ms: erased_ms }));
        }
        match rec? {
            Some(Row::Record { epoch, body, record_key, .. }) => {
                let epoch = u32::try_from(epoch).map_err(|_| VaultError::Malformed(format!("epoch {epoch}")))?;
                let id = DataKeyId { patient: w.patient.clone(), class: w.class.clone(), epoch };
                Ok(Ok((id, SealedRecord { body: unb64(&body)?, record_key: unb64(&record_key)? })))
            }
            _ => Ok(Err(Lookup::Missing)),
        }
    }

    /// Whether `w` has a tombstone (erased).
    async fn erased(&self, w: &Wanted) -> Result<bool, VaultError> {
        let (p, c, t) = (token(&w.patient)?, token(&w.class)?, token(&w.tx_hash)?);
        Ok(matches!(self.last(&format!("emr.vault.gone.{p}.{c}.{t}")).await?, Some(Row::Gone { .. })))
    }

    /// The bodies of `wanted`, in order (each a body, erased, or missing).
    pub async fn get_many(&self, wanted: &[Wanted]) -> Result<Vec<Lookup>, VaultError> {
        use futures::StreamExt as _;
        // Owned futures: a borrowed stream is not `Send` for every lifetime
        // the spawning service's task needs.
        let me = self.clone();
        let found: Vec<_> = futures::stream::iter(wanted.iter().cloned().map(move |w| {
            let me = me.clone();
            async move { me.sealed(&w).await }
        }))
        .buffered(READ_CONCURRENCY)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
        let mut keys: std::collections::HashMap<DataKeyId, Option<Key256>> = std::collections::HashMap::new();
        let mut out = Vec::with_capacity(wanted.len());
        for (w, f) in wanted.iter().zip(found) {
            let (id, sealed) = match f {
                Ok(s) => s,
                Err(lookup) => {
                    out.push(lookup);
                    continue;
                }
            };
            if !keys.contains_key(&id) {
                let k = self.data_key(&id).await?;
                keys.insert(id.clone(), k);
            }
            match keys.get(&id).and_then(Option::as_ref) {
                // The class's keys were destroyed (an erasure under way): nothing opens.
                None => {
                    // Told apart from a missing record row in the log: the row is
                    // there, its data key's row is not (a fault-harness run after a
                    // NATS restart reported every body missing, cause not yet known).
                    tracing::warn!(tx = %w.tx_hash, class = %w.class, epoch = id.epoch, "a record's data key is not in the replica");
                    out.push(Lookup::Missing)
                }
                Some(dk) => {
                    let place = RecordPlace { tx_hash: w.tx_hash.clone(), key: id };
                    out.push(open_record(dk, &place, &sealed).map(Lookup::Body)?);
                }
            }
        }
        Ok(out)
    }

    /// The body of one record.
    pub async fn get(&self, w: &Wanted) -> Result<Lookup, VaultError> {
        Ok(self.get_many(std::slice::from_ref(w)).await?.pop().unwrap_or(Lookup::Missing))
    }

    /// The body of one `tx_type` record whose envelope committed to
    /// `commitment`, opened and checked against it (a body that does not
    /// match is [`VaultError::Commitment`], never returned).
    pub async fn open_committed(
        &self,
        w: &Wanted,
        tx_type: glucochain_types::TxType,
        commitment: &glucochain_crypto::Hash32,
    ) -> Result<Opened, VaultError> {
        use glucochain_types::sealed::RecordBody;
        Ok(match self.get(w).await? {
            Lookup::Body(kept) => {
                let body = RecordBody::open_as(tx_type, commitment, &kept).map_err(|_| VaultError::Commitment)?;
                Opened::Body { body, kept }
            }
            Lookup::Erased { by_tx, at_ms } => Opened::Erased { by_tx, at_ms },
            Lookup::Missing => Opened::Missing,
        })
    }
}

impl VaultReader {
    /// The whole care plan of the committed proposal `proposal_tx` of
    /// `patient` (`envelope` as the chain holds it), its clinical content
    /// opened from the vault and checked against the commitment; kept in
    /// memory for [`KEY_KEPT`] (a detector reads the plan for every
    /// reading), and while kept its tombstone is still asked for at every
    /// call, so an erasure reaches the plan at once (one direct get, not
    /// the three of an opening). `Ok(None)`: erased, or not in the vault
    /// (callers log and fall back).
    pub async fn careplan(
        &self,
        patient: &glucochain_types::ParticipantId,
        proposal_tx: &glucochain_crypto::Hash32,
        envelope: &CareplanPropose,
    ) -> Result<Option<CarePlan>, VaultError> {
        use glucochain_types::sealed::RecordBody;
        let now = std::time::Instant::now();
        let wanted = Wanted::of(proposal_tx, patient, glucochain_types::DataClass::Private);
        let kept = self.plans.lock().expect("plans lock").get(proposal_tx).cloned();
        if let Some((at, plan)) = kept
            && now.duration_since(at) < KEY_KEPT
        {
            if self.erased(&wanted).await? {
                self.plans.lock().expect("plans lock").remove(proposal_tx);
                return Ok(None);
            }
            return Ok(Some(plan));
        }
        let opened =
            self.open_committed(&wanted, glucochain_types::TxType::CareplanPropose, &envelope.body_commitment).await?;
        let body = match opened {
            Opened::Body { body: RecordBody::Careplan(b), .. } => b,
            Opened::Body { .. } => return Err(VaultError::Commitment),
            Opened::Erased { .. } | Opened::Missing => return Ok(None),
        };
        let plan = CarePlan::join(envelope, body);
        let mut kept = self.plans.lock().expect("plans lock");
        kept.retain(|_, (at, _)| now.duration_since(*at) < KEY_KEPT);
        kept.insert(*proposal_tx, (now, plan.clone()));
        Ok(Some(plan))
    }
}

/// A committed record's body as [`VaultReader::open_committed`] found it.
#[derive(Debug, Clone, PartialEq)]
pub enum Opened {
    /// Its body, checked against the commitment, and what the vault kept
    /// (salt and canonical bytes, to send the same body again).
    Body {
        /// The body.
        body: glucochain_types::sealed::RecordBody,
        /// The salt followed by the canonical bytes.
        kept: Vec<u8>,
    },
    /// Erased at `at_ms` by the committed `by_tx`.
    Erased {
        /// The erasure transaction.
        by_tx: String,
        /// When.
        at_ms: i64,
    },
    /// Not in the vault (not replicated yet, or never stored).
    Missing,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_name_each_row_and_refuse_what_is_not_a_token() {
        let r = Row::data_key("pabc", "private", 2, b"k", "kek1", 0);
        assert_eq!(r.subject().unwrap(), "emr.vault.key.pabc.private.2");
        let g = Row::gone("ab12", "pabc", "private", "ff", 1);
        assert_eq!(g.subject().unwrap(), "emr.vault.gone.pabc.private.ab12");
        let bad = Row::Epoch { patient: "p.>".into(), class: "private".into(), epoch: 2 };
        assert!(bad.subject().is_err(), "no wildcard or separator from an id");
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<Row>(&json).unwrap(), r);
    }
}
