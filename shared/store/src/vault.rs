//! The record vault's rows (ADR 0016): wrapped data keys, the current epoch
//! per patient and class, sealed records, and what was erased. Only bytes
//! the vault sealed come here; the key-encryption key never does.

use crate::{Store, StoreError};
use sqlx::Row;

/// A sealed record as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultRecordRow {
    /// The transaction whose body it is (hex hash).
    pub tx_hash: String,
    /// The patient.
    pub patient: String,
    /// The data class.
    pub class: String,
    /// The data key's epoch.
    pub epoch: i64,
    /// The body's ciphertext.
    pub body: Vec<u8>,
    /// The wrapped record key.
    pub record_key: Vec<u8>,
    /// When it was stored.
    pub created_ms: i64,
}

/// An erased record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErasedRow {
    /// The transaction whose body it was.
    pub tx_hash: String,
    /// Its patient.
    pub patient: String,
    /// Its class.
    pub class: String,
    /// The committed erasure.
    pub by_tx: String,
    /// When.
    pub erased_ms: i64,
}

/// What a class erasure did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassErased {
    /// The records that went (tx hashes).
    pub erased: Vec<String>,
    /// The epoch new records of the class start at.
    pub epoch: i64,
}

impl Store {
    /// The epoch new records of `patient`'s `class` go under (1 at first).
    pub async fn vault_epoch(&self, patient: &str, class: &str) -> Result<i64, StoreError> {
        let r = sqlx::query("SELECT epoch FROM vault_epoch WHERE patient = $1 AND class = $2")
            .bind(patient.to_string())
            .bind(class.to_string())
            .fetch_optional(&self.pool)
            .await?;
        Ok(match r {
            Some(r) => r.try_get::<i64, _>("epoch")?,
            None => 1,
        })
    }

    /// The wrapped data key of (`patient`, `class`, `epoch`), with the id of the KEK that wrapped it.
    pub async fn vault_data_key(
        &self,
        patient: &str,
        class: &str,
        epoch: i64,
    ) -> Result<Option<(Vec<u8>, String)>, StoreError> {
        let r =
            sqlx::query("SELECT wrapped, kek_id FROM vault_data_key WHERE patient = $1 AND class = $2 AND epoch = $3")
                .bind(patient.to_string())
                .bind(class.to_string())
                .bind(epoch)
                .fetch_optional(&self.pool)
                .await?;
        r.map(|r| Ok((r.try_get("wrapped")?, r.try_get("kek_id")?))).transpose()
    }

    /// Stores a wrapped data key unless one is there already; returns the
    /// one that is (so two writers racing agree on one key).
    pub async fn vault_put_data_key(
        &self,
        patient: &str,
        class: &str,
        epoch: i64,
        wrapped: &[u8],
        kek_id: &str,
        now_ms: i64,
    ) -> Result<(Vec<u8>, String), StoreError> {
        sqlx::query(
            "INSERT INTO vault_data_key (patient, class, epoch, wrapped, kek_id, created_ms) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (patient, class, epoch) DO NOTHING",
        )
        .bind(patient.to_string())
        .bind(class.to_string())
        .bind(epoch)
        .bind(wrapped.to_vec())
        .bind(kek_id.to_string())
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        self.vault_data_key(patient, class, epoch)
            .await?
            .ok_or_else(|| StoreError::Corrupt("a vault data key vanished as it was written".into()))
    }

    /// Stores a sealed record (a second copy of the same record changes nothing).
    pub async fn vault_put_record(&self, r: &VaultRecordRow) -> Result<(), StoreError> {
        let q = sqlx::query(
            "INSERT INTO vault_record (tx_hash, patient, class, epoch, body, record_key, created_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (tx_hash) DO NOTHING",
        );
        bind_record(q, r).execute(&self.pool).await?;
        Ok(())
    }

    /// Stores sealed records, each only if its epoch is still its class's
    /// current one and that epoch's data key is still there (checked in the
    /// insert itself), for a writer that remembers data keys from earlier
    /// records; one statement per chunk of rows, one commit for all.
    /// Returns the hashes stored: one missing from it was either there
    /// already or sealed under an epoch an erasure ended, and its writer
    /// goes the long way.
    pub async fn vault_put_records_at_current_epoch(&self, rows: &[VaultRecordRow]) -> Result<Vec<String>, StoreError> {
        let mut stored = Vec::with_capacity(rows.len());
        let mut db = self.pool.begin().await?;
        for chunk in rows.chunks(self.rows_per_statement().min(64)) {
            let sql = format!(
                "WITH v (tx_hash, patient, class, epoch, body, record_key, created_ms) AS (VALUES {}) \
                 INSERT INTO vault_record (tx_hash, patient, class, epoch, body, record_key, created_ms) \
                 SELECT v.tx_hash, v.patient, v.class, v.epoch, v.body, v.record_key, v.created_ms FROM v \
                 WHERE COALESCE((SELECT e.epoch FROM vault_epoch e WHERE e.patient = v.patient AND e.class = v.class), 1) = v.epoch \
                   AND EXISTS (SELECT 1 FROM vault_data_key k \
                               WHERE k.patient = v.patient AND k.class = v.class AND k.epoch = v.epoch) \
                 ON CONFLICT (tx_hash) DO NOTHING RETURNING tx_hash",
                crate::values_placeholders(chunk.len(), 7)
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for r in chunk {
                q = bind_record(q, r);
            }
            for r in q.fetch_all(&mut *db).await? {
                stored.push(r.try_get::<String, _>("tx_hash")?);
            }
        }
        db.commit().await?;
        Ok(stored)
    }

    /// A sealed record.
    pub async fn vault_record(&self, tx_hash: &str) -> Result<Option<VaultRecordRow>, StoreError> {
        let r = sqlx::query(
            "SELECT tx_hash, patient, class, epoch, body, record_key, created_ms FROM vault_record WHERE tx_hash = $1",
        )
        .bind(tx_hash.to_string())
        .fetch_optional(&self.pool)
        .await?;
        r.map(|r| {
            Ok(VaultRecordRow {
                tx_hash: r.try_get("tx_hash")?,
                patient: r.try_get("patient")?,
                class: r.try_get("class")?,
                epoch: r.try_get("epoch")?,
                body: r.try_get("body")?,
                record_key: r.try_get("record_key")?,
                created_ms: r.try_get("created_ms")?,
            })
        })
        .transpose()
    }

    /// Whether (and when, by what) a record was erased.
    pub async fn vault_erased(&self, tx_hash: &str) -> Result<Option<ErasedRow>, StoreError> {
        let r = sqlx::query("SELECT tx_hash, patient, class, by_tx, erased_ms FROM vault_erased WHERE tx_hash = $1")
            .bind(tx_hash.to_string())
            .fetch_optional(&self.pool)
            .await?;
        r.map(|r| {
            Ok(ErasedRow {
                tx_hash: r.try_get("tx_hash")?,
                patient: r.try_get("patient")?,
                class: r.try_get("class")?,
                by_tx: r.try_get("by_tx")?,
                erased_ms: r.try_get("erased_ms")?,
            })
        })
        .transpose()
    }

    /// Erases one record: its row goes, a tombstone stays. Returns whether it was there.
    pub async fn vault_erase_record(&self, tx_hash: &str, by_tx: &str, now_ms: i64) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let r = sqlx::query("SELECT patient, class FROM vault_record WHERE tx_hash = $1")
            .bind(tx_hash.to_string())
            .fetch_optional(&mut *tx)
            .await?;
        let Some(r) = r else { return Ok(false) };
        let (patient, class): (String, String) = (r.try_get("patient")?, r.try_get("class")?);
        tombstone(&mut tx, tx_hash, &patient, &class, by_tx, now_ms).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Records that `tx_hash` was erased by `by_tx` (a replica's tombstone):
    /// its sealed row, if this vault holds one, goes with it.
    pub async fn vault_put_tombstone(
        &self,
        tx_hash: &str,
        patient: &str,
        class: &str,
        by_tx: &str,
        erased_ms: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        tombstone(&mut tx, tx_hash, patient, class, by_tx, erased_ms).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Moves `patient`'s `class` on to `epoch` at least (a replica's class
    /// erasure): data keys of earlier epochs go.
    pub async fn vault_raise_epoch(&self, patient: &str, class: &str, epoch: i64) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let current = stored_epoch(&mut tx, patient, class).await?;
        if epoch > current {
            set_epoch(&mut tx, patient, class, epoch).await?;
        }
        sqlx::query("DELETE FROM vault_data_key WHERE patient = $1 AND class = $2 AND epoch < $3")
            .bind(patient.to_string())
            .bind(class.to_string())
            .bind(epoch.max(current))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Erases every record of `patient`'s `class`: their rows and every data
    /// key of the class go (so no copy of their ciphertexts opens anywhere),
    /// tombstones stay, and new records start a new epoch. One transaction:
    /// a crash leaves it done or not begun. Returns the records that went
    /// and the new epoch.
    pub async fn vault_erase_class(
        &self,
        patient: &str,
        class: &str,
        by_tx: &str,
        now_ms: i64,
    ) -> Result<ClassErased, StoreError> {
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query("SELECT tx_hash FROM vault_record WHERE patient = $1 AND class = $2")
            .bind(patient.to_string())
            .bind(class.to_string())
            .fetch_all(&mut *tx)
            .await?;
        let mut erased = Vec::with_capacity(rows.len());
        for r in &rows {
            let h: String = r.try_get("tx_hash")?;
            tombstone(&mut tx, &h, patient, class, by_tx, now_ms).await?;
            erased.push(h);
        }
        sqlx::query("DELETE FROM vault_record WHERE patient = $1 AND class = $2")
            .bind(patient.to_string())
            .bind(class.to_string())
            .execute(&mut *tx)
            .await?;
        let epoch =
            sqlx::query("SELECT COALESCE(MAX(epoch), 0) AS e FROM vault_data_key WHERE patient = $1 AND class = $2")
                .bind(patient.to_string())
                .bind(class.to_string())
                .fetch_one(&mut *tx)
                .await?
                .try_get::<i64, _>("e")?;
        sqlx::query("DELETE FROM vault_data_key WHERE patient = $1 AND class = $2")
            .bind(patient.to_string())
            .bind(class.to_string())
            .execute(&mut *tx)
            .await?;
        let current = stored_epoch(&mut tx, patient, class).await?;
        let next = current.max(epoch) + 1;
        set_epoch(&mut tx, patient, class, next).await?;
        sqlx::query(
            "INSERT INTO vault_erasure (by_tx, part, patient, state, epoch, updated_ms) VALUES ($1, $2, $3, 'local', $4, $5)",
        )
        .bind(by_tx.to_string())
        .bind(class.to_string())
        .bind(patient.to_string())
        .bind(next)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(ClassErased { erased, epoch: next })
    }

    /// How far the erasure `by_tx` of `part` (`record` or a class) has got
    /// here: `None` (not begun), `Some(("local", epoch))` (this database
    /// erased, the replica not yet), `Some(("done", epoch))`.
    pub async fn vault_erasure(&self, by_tx: &str, part: &str) -> Result<Option<(String, i64)>, StoreError> {
        let r = sqlx::query("SELECT state, epoch FROM vault_erasure WHERE by_tx = $1 AND part = $2")
            .bind(by_tx.to_string())
            .bind(part.to_string())
            .fetch_optional(&self.pool)
            .await?;
        r.map(|r| Ok((r.try_get("state")?, r.try_get::<i64, _>("epoch")?))).transpose()
    }

    /// Marks the erasure `by_tx` of `part` done (recorded when not yet).
    pub async fn vault_erasure_done(
        &self,
        by_tx: &str,
        part: &str,
        patient: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO vault_erasure (by_tx, part, patient, state, epoch, updated_ms) VALUES ($1, $2, $3, 'done', 0, $4) \
             ON CONFLICT (by_tx, part) DO UPDATE SET state = 'done', updated_ms = excluded.updated_ms",
        )
        .bind(by_tx.to_string())
        .bind(part.to_string())
        .bind(patient.to_string())
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The records of `class` the erasure `by_tx` erased here (tx hashes).
    pub async fn vault_erased_by(&self, by_tx: &str, class: &str) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT tx_hash FROM vault_erased WHERE by_tx = $1 AND class = $2 ORDER BY tx_hash")
            .bind(by_tx.to_string())
            .bind(class.to_string())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok(r.try_get("tx_hash")?)).collect()
    }
}

/// The epoch stored for `patient`'s `class` (1 when none is).
/// Binds a sealed record's seven columns, in table order.
fn bind_record<'q>(
    q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    r: &VaultRecordRow,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    q.bind(r.tx_hash.clone())
        .bind(r.patient.clone())
        .bind(r.class.clone())
        .bind(r.epoch)
        .bind(r.body.clone())
        .bind(r.record_key.clone())
        .bind(r.created_ms)
}

async fn stored_epoch(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    patient: &str,
    class: &str,
) -> Result<i64, StoreError> {
    Ok(sqlx::query("SELECT epoch FROM vault_epoch WHERE patient = $1 AND class = $2")
        .bind(patient.to_string())
        .bind(class.to_string())
        .fetch_optional(&mut **tx)
        .await?
        .map(|r| r.try_get::<i64, _>("epoch"))
        .transpose()?
        .unwrap_or(1))
}

async fn set_epoch(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    patient: &str,
    class: &str,
    epoch: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO vault_epoch (patient, class, epoch) VALUES ($1, $2, $3) \
         ON CONFLICT (patient, class) DO UPDATE SET epoch = excluded.epoch",
    )
    .bind(patient.to_string())
    .bind(class.to_string())
    .bind(epoch)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A tombstone for `tx_hash`; its sealed row, if any, goes.
async fn tombstone(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    tx_hash: &str,
    patient: &str,
    class: &str,
    by_tx: &str,
    now_ms: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO vault_erased (tx_hash, patient, class, by_tx, erased_ms) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (tx_hash) DO NOTHING",
    )
    .bind(tx_hash.to_string())
    .bind(patient.to_string())
    .bind(class.to_string())
    .bind(by_tx.to_string())
    .bind(now_ms)
    .execute(&mut **tx)
    .await?;
    sqlx::query("DELETE FROM vault_record WHERE tx_hash = $1").bind(tx_hash.to_string()).execute(&mut **tx).await?;
    Ok(())
}
