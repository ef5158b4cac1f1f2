//! The record vault over a service's [`Store`]: bodies go in sealed (a
//! fresh record key each, under the data key of their patient, class and
//! epoch, itself wrapped by the key-encryption key), come out for whoever the
//! caller has already authorized, and are erased by record or by class.
//! Nothing readable is written to the store.

use crate::VaultError;
use crate::keys::{
    DataKeyId, KeyWrap, RecordPlace, SealedRecord, new_data_key, open_record, open_stored_data_key, seal_record,
};
use crate::replica::{Replica, Row};
use crate::seal::Key256;
use glucochain_store::{Store, VaultRecordRow};
use glucochain_types::DataClass;
use glucochain_types::tx::EraseScope;
use std::collections::HashMap;
use std::sync::Arc;

/// What the vault holds for a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The body.
    Body(Vec<u8>),
    /// It was erased, at `at_ms`, by the committed transaction `by_tx`.
    Erased {
        /// The erasure transaction.
        by_tx: String,
        /// When.
        at_ms: i64,
    },
    /// The vault holds nothing for it (no body, or not yet replicated here).
    Missing,
}

/// The data keys a writer remembers, by (patient, class): the epoch and
/// its opened key. Only a hint: every record sealed under one is stored on
/// the condition that the epoch is still current and its key still there
/// ([`Store::vault_put_record_at_current_epoch`]), so an erasure by another
/// writer is never written past.
type KeyCache = Arc<std::sync::Mutex<HashMap<(String, String), (u32, Key256)>>>;

/// How many data keys a writer remembers (forgotten all at once beyond).
const KEYS_REMEMBERED: usize = 4096;

/// A body to store: its transaction, patient, class and bytes.
#[derive(Debug, Clone, Copy)]
pub struct NewRecord<'a> {
    /// The transaction that carries its envelope.
    pub tx_hash: &'a str,
    /// Its patient.
    pub patient: &'a str,
    /// Its data class.
    pub class: &'a str,
    /// What is sealed (for a record: the salt and the canonical body).
    pub body: &'a [u8],
}

/// The record vault.
#[derive(Clone)]
pub struct RecordVault {
    store: Store,
    kek: Arc<dyn KeyWrap>,
    replica: Option<Replica>,
    keys: KeyCache,
}

impl std::fmt::Debug for RecordVault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RecordVault(kek {})", self.kek.id())
    }
}

impl RecordVault {
    /// The vault in `store` (migrated at connect) under `kek`.
    pub fn new(store: Store, kek: Arc<dyn KeyWrap>) -> Self {
        RecordVault { store, kek, replica: None, keys: KeyCache::default() }
    }

    /// The same vault, every write and erasure also made in `replica`
    /// (and failing when the replica cannot take it: a body is accepted
    /// only once it is stored beyond this database).
    pub fn with_replica(mut self, replica: Replica) -> Self {
        self.replica = Some(replica);
        self
    }

    async fn data_key(&self, id: &DataKeyId, now_ms: i64, create: bool) -> Result<Option<Key256>, VaultError> {
        let stored = match self.store.vault_data_key(&id.patient, &id.class, i64::from(id.epoch)).await? {
            Some(s) => Some(s),
            None if create => {
                let (_, wrapped) = new_data_key(self.kek.as_ref(), id);
                // Another writer may have won the race: use the key that is stored.
                Some(
                    self.store
                        .vault_put_data_key(
                            &id.patient,
                            &id.class,
                            i64::from(id.epoch),
                            &wrapped,
                            &self.kek.id(),
                            now_ms,
                        )
                        .await?,
                )
            }
            None => None,
        };
        // A writer (`create`) publishes the key's row every time it takes
        // the long way, not only when it made the key: a key made while the
        // replica could not be reached (a NATS restart) was stored here but
        // not there, and every record under it stayed unreadable to the
        // replica's readers (found by the fault harness). The long way is
        // taken once per class per writer between erasures, so this is cheap.
        if let (true, Some(r), Some((wrapped, kek_id))) = (create, &self.replica, &stored) {
            r.publish(&Row::data_key(&id.patient, &id.class, i64::from(id.epoch), wrapped, kek_id, now_ms)).await?;
        }
        let Some((wrapped, kek_id)) = stored else { return Ok(None) };
        open_stored_data_key(self.kek.as_ref(), id, &wrapped, kek_id).map(Some)
    }

    /// Seals and stores the body of transaction `tx_hash` (a repeat changes
    /// nothing); [`Self::put_many`] of one.
    pub async fn put(
        &self,
        tx_hash: &str,
        patient: &str,
        class: &str,
        body: &[u8],
        now_ms: i64,
    ) -> Result<(), VaultError> {
        self.put_many(&[NewRecord { tx_hash, patient, class, body }], now_ms).await
    }

    /// Seals and stores bodies (a repeat changes nothing), here and in the
    /// replica. A data key used before is remembered: the records it covers
    /// cost one conditional multi-row insert and one commit together; a
    /// record of a class not seen yet, or whose class an erasure moved on,
    /// goes the long way (epoch, data key, insert). The replica's rows are
    /// published together, each publish acknowledged before this returns.
    pub async fn put_many(&self, records: &[NewRecord<'_>], now_ms: i64) -> Result<(), VaultError> {
        let slot = |r: &NewRecord<'_>| (r.patient.to_string(), r.class.to_string());
        let remembered: Vec<Option<(u32, Key256)>> = {
            let keys = self.keys.lock().expect("key cache lock");
            records.iter().map(|r| keys.get(&slot(r)).cloned()).collect()
        };
        let (mut quick, mut rows, mut slow) = (Vec::new(), Vec::new(), Vec::new());
        for (r, k) in records.iter().zip(remembered) {
            match k {
                Some((epoch, dk)) => {
                    quick.push(r);
                    rows.push(self.sealed_row(r, epoch, &dk, now_ms));
                }
                None => slow.push(r),
            }
        }
        let mut done = Vec::with_capacity(records.len());
        if !rows.is_empty() {
            let stored: std::collections::HashSet<String> =
                self.store.vault_put_records_at_current_epoch(&rows).await?.into_iter().collect();
            for (r, row) in quick.into_iter().zip(rows) {
                if stored.contains(&row.tx_hash) {
                    done.push(row);
                } else {
                    // The class moved on (an erasure), or the record is there already.
                    self.keys.lock().expect("key cache lock").remove(&slot(r));
                    slow.push(r);
                }
            }
        }
        // The long way for several records at once (a group of first
        // records of many patients must not wait for each in turn; two of
        // one new class agree on the data key the store keeps).
        done.extend(futures::future::try_join_all(slow.into_iter().map(|r| self.put_the_long_way(r, now_ms))).await?);
        if let Some(replica) = &self.replica {
            futures::future::try_join_all(done.iter().map(|row| replica.publish_record(row))).await?;
        }
        Ok(())
    }

    /// Stores one record after reading its class's epoch and data key
    /// (creating the key on first use), and remembers the key.
    async fn put_the_long_way(&self, r: &NewRecord<'_>, now_ms: i64) -> Result<VaultRecordRow, VaultError> {
        let epoch = self.store.vault_epoch(r.patient, r.class).await?;
        let epoch = u32::try_from(epoch).map_err(|_| VaultError::Malformed(format!("epoch {epoch}")))?;
        let id = DataKeyId { patient: r.patient.into(), class: r.class.into(), epoch };
        let dk = self.data_key(&id, now_ms, true).await?.expect("created");
        let row = self.sealed_row(r, epoch, &dk, now_ms);
        self.store.vault_put_record(&row).await?;
        let mut keys = self.keys.lock().expect("key cache lock");
        if keys.len() >= KEYS_REMEMBERED {
            keys.clear();
        }
        keys.insert((r.patient.to_string(), r.class.to_string()), (epoch, dk));
        Ok(row)
    }

    fn sealed_row(&self, r: &NewRecord<'_>, epoch: u32, dk: &Key256, now_ms: i64) -> VaultRecordRow {
        let id = DataKeyId { patient: r.patient.into(), class: r.class.into(), epoch };
        let place = RecordPlace { tx_hash: r.tx_hash.into(), key: id };
        let sealed = seal_record(dk, &place, r.body);
        VaultRecordRow {
            tx_hash: r.tx_hash.into(),
            patient: r.patient.into(),
            class: r.class.into(),
            epoch: i64::from(epoch),
            body: sealed.body,
            record_key: sealed.record_key,
            created_ms: now_ms,
        }
    }

    /// The body of `tx_hash`, or why there is none. The caller has decided
    /// the reader may have it (and audits the release).
    pub async fn get(&self, tx_hash: &str) -> Result<Lookup, VaultError> {
        if let Some(e) = self.store.vault_erased(tx_hash).await? {
            return Ok(Lookup::Erased { by_tx: e.by_tx, at_ms: e.erased_ms });
        }
        let Some(row) = self.store.vault_record(tx_hash).await? else { return Ok(Lookup::Missing) };
        let id = DataKeyId {
            patient: row.patient.clone(),
            class: row.class.clone(),
            epoch: u32::try_from(row.epoch).map_err(|_| VaultError::Malformed(format!("epoch {}", row.epoch)))?,
        };
        let Some(dk) = self.data_key(&id, 0, false).await? else {
            return Err(VaultError::Store(format!("no data key for {tx_hash}'s class: erased or not replicated")));
        };
        let place = RecordPlace { tx_hash: tx_hash.into(), key: id };
        open_record(&dk, &place, &SealedRecord { body: row.body, record_key: row.record_key }).map(Lookup::Body)
    }

    /// Erases one record by the committed transaction `by_tx`.
    pub async fn erase_record(&self, tx_hash: &str, by_tx: &str, now_ms: i64) -> Result<bool, VaultError> {
        // The replica's subjects name the record's patient and class.
        let place = match &self.replica {
            Some(_) => self.store.vault_record(tx_hash).await?.map(|r| (r.patient, r.class)),
            None => None,
        };
        let erased = self.store.vault_erase_record(tx_hash, by_tx, now_ms).await?;
        if let (Some(r), Some((patient, class))) = (&self.replica, place) {
            r.erase_record(tx_hash, &patient, &class, by_tx, now_ms).await?;
        }
        Ok(erased)
    }

    /// Forgets the remembered data key of `patient`'s `class` (its key is
    /// about to be destroyed; the conditional insert would notice anyway).
    fn forget(&self, patient: &str, class: &str) {
        self.keys.lock().expect("key cache lock").remove(&(patient.to_string(), class.to_string()));
    }

    /// Acts on the committed erasure `by_tx` of `patient`'s records in
    /// `scope` (ADR 0016 §4), here and in the replica. Safe to run again:
    /// an erasure already done changes nothing, one interrupted (this
    /// database erased, the replica not yet) finishes, and a class erasure
    /// never reaches records written after it. A `record` scope naming
    /// another patient's record erases nothing. Returns how many records
    /// went from this database.
    pub async fn apply_erasure(
        &self,
        by_tx: &str,
        patient: &str,
        scope: &EraseScope,
        now_ms: i64,
    ) -> Result<u64, VaultError> {
        match scope {
            EraseScope::Record(h) => self.erase_named(by_tx, patient, &h.to_string(), now_ms).await,
            EraseScope::Class(c) => self.erase_class_once(by_tx, patient, c.as_str(), now_ms).await,
            EraseScope::All => {
                let mut n = 0;
                for c in DataClass::ALL {
                    n += self.erase_class_once(by_tx, patient, c.as_str(), now_ms).await?;
                }
                Ok(n)
            }
        }
    }

    async fn erase_named(&self, by_tx: &str, patient: &str, tx_hash: &str, now_ms: i64) -> Result<u64, VaultError> {
        if matches!(self.store.vault_erasure(by_tx, "record").await?, Some((s, _)) if s == "done") {
            return Ok(0);
        }
        let mut n = 0;
        if let Some(r) = self.store.vault_record(tx_hash).await?
            && r.patient == patient
            && self.store.vault_erase_record(tx_hash, by_tx, now_ms).await?
        {
            n = 1;
        }
        if let Some(r) = &self.replica
            && let Some(t) = self.store.vault_erased(tx_hash).await?
            && t.by_tx == by_tx
        {
            r.erase_record(tx_hash, &t.patient, &t.class, by_tx, t.erased_ms).await?;
        }
        self.store.vault_erasure_done(by_tx, "record", patient, now_ms).await?;
        Ok(n)
    }

    async fn erase_class_once(&self, by_tx: &str, patient: &str, class: &str, now_ms: i64) -> Result<u64, VaultError> {
        self.forget(patient, class);
        let (epoch, n) = match self.store.vault_erasure(by_tx, class).await? {
            Some((state, _)) if state == "done" => return Ok(0),
            Some((_, epoch)) => (epoch, 0),
            None => {
                let done = self.store.vault_erase_class(patient, class, by_tx, now_ms).await?;
                (done.epoch, done.erased.len() as u64)
            }
        };
        if let Some(r) = &self.replica {
            let erased = self.store.vault_erased_by(by_tx, class).await?;
            r.erase_class(patient, class, &erased, epoch, by_tx, now_ms).await?;
        }
        self.store.vault_erasure_done(by_tx, class, patient, now_ms).await?;
        Ok(n)
    }

    /// Erases every record of `patient`'s `class` by `by_tx`: their data keys
    /// are destroyed. Returns how many records went.
    pub async fn erase_class(&self, patient: &str, class: &str, by_tx: &str, now_ms: i64) -> Result<u64, VaultError> {
        self.forget(patient, class);
        let done = self.store.vault_erase_class(patient, class, by_tx, now_ms).await?;
        if let Some(r) = &self.replica {
            r.erase_class(patient, class, &done.erased, done.epoch, by_tx, now_ms).await?;
        }
        Ok(done.erased.len() as u64)
    }
}
