//! The chain repository: blocks, their transactions, and follower cursors.

use crate::{Store, StoreError};
use sqlx::Row;

/// A committed block as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBlock {
    /// Height.
    pub height: u64,
    /// Block hash (32 bytes).
    pub hash: Vec<u8>,
    /// Previous block hash (32 bytes).
    pub prev_hash: Vec<u8>,
    /// Canonical protobuf header.
    pub header: Vec<u8>,
    /// Protobuf commit certificate.
    pub certificate: Vec<u8>,
    /// Block time, Unix ms.
    pub time_ms: i64,
    /// The transactions, in block order.
    pub txs: Vec<StoredTx>,
}

/// A committed transaction as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredTx {
    /// Tx hash (32 bytes).
    pub hash: Vec<u8>,
    /// Height of its block.
    pub height: u64,
    /// Index in the block.
    pub index: u32,
    /// Type, e.g. `observation.record`.
    pub tx_type: String,
    /// Signer's participant id.
    pub signer: String,
    /// Patient concerned, if any.
    pub patient: Option<String>,
    /// The JWS.
    pub jws: String,
    /// Whether the state machine applied it.
    pub ok: bool,
    /// Refusal code when not applied.
    pub code: String,
}

/// Result of [`Store::insert_block`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertOutcome {
    /// Newly stored.
    Inserted,
    /// The same block was already stored (redelivery): nothing changed.
    AlreadyPresent,
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

fn height_of(v: i64) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("negative height {v}")))
}

fn tx_from_row(r: &sqlx::any::AnyRow) -> Result<StoredTx, StoreError> {
    Ok(StoredTx {
        hash: r.try_get("hash")?,
        height: height_of(r.try_get("height")?)?,
        index: r.try_get::<i32, _>("idx")? as u32,
        tx_type: r.try_get("tx_type")?,
        signer: r.try_get("signer")?,
        patient: r.try_get("patient")?,
        jws: r.try_get("jws")?,
        ok: r.try_get::<i32, _>("ok")? != 0,
        code: r.try_get("code")?,
    })
}

impl Store {
    /// Stores a block and its transactions in one database transaction.
    /// Storing the same block again is a no-op ([`InsertOutcome::AlreadyPresent`]);
    /// another block at a stored height is refused ([`StoreError::Conflict`]).
    pub async fn insert_block(&self, b: &StoredBlock) -> Result<InsertOutcome, StoreError> {
        let mut dbtx = self.pool.begin().await?;
        let existing: Option<Vec<u8>> = sqlx::query_scalar("SELECT hash FROM blocks WHERE height = $1")
            .bind(b.height as i64)
            .fetch_optional(&mut *dbtx)
            .await?;
        match existing {
            Some(h) if h == b.hash => return Ok(InsertOutcome::AlreadyPresent),
            Some(_) => return Err(StoreError::Conflict { height: b.height }),
            None => {}
        }
        sqlx::query(
            "INSERT INTO blocks (height, hash, prev_hash, header, certificate, time_ms, tx_count, stored_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(b.height as i64)
        .bind(b.hash.clone())
        .bind(b.prev_hash.clone())
        .bind(b.header.clone())
        .bind(b.certificate.clone())
        .bind(b.time_ms)
        .bind(b.txs.len() as i32)
        .bind(now_ms())
        .execute(&mut *dbtx)
        .await?;
        // Many rows a statement: a round trip per chunk of transactions, not per transaction.
        for chunk in b.txs.chunks(self.rows_per_statement()) {
            let sql = format!(
                "INSERT INTO transactions (hash, height, idx, tx_type, signer, patient, jws, ok, code) VALUES {}",
                crate::values_placeholders(chunk.len(), 9)
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for t in chunk {
                q = q
                    .bind(t.hash.clone())
                    .bind(b.height as i64)
                    .bind(t.index as i32)
                    .bind(t.tx_type.clone())
                    .bind(t.signer.clone())
                    .bind(t.patient.clone())
                    .bind(t.jws.clone())
                    .bind(t.ok as i32)
                    .bind(t.code.clone());
            }
            q.execute(&mut *dbtx).await?;
        }
        dbtx.commit().await?;
        Ok(InsertOutcome::Inserted)
    }

    /// The highest stored height, if any block is stored.
    pub async fn latest_height(&self) -> Result<Option<u64>, StoreError> {
        let h: Option<i64> = sqlx::query_scalar("SELECT MAX(height) FROM blocks").fetch_one(&self.pool).await?;
        h.map(height_of).transpose()
    }

    /// A block with its transactions.
    pub async fn block(&self, height: u64) -> Result<Option<StoredBlock>, StoreError> {
        let row =
            sqlx::query("SELECT height, hash, prev_hash, header, certificate, time_ms FROM blocks WHERE height = $1")
                .bind(height as i64)
                .fetch_optional(&self.pool)
                .await?;
        let Some(r) = row else { return Ok(None) };
        let txs = sqlx::query(
            "SELECT hash, height, idx, tx_type, signer, patient, jws, ok, code FROM transactions \
             WHERE height = $1 ORDER BY idx",
        )
        .bind(height as i64)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(tx_from_row)
        .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(StoredBlock {
            height: height_of(r.try_get("height")?)?,
            hash: r.try_get("hash")?,
            prev_hash: r.try_get("prev_hash")?,
            header: r.try_get("header")?,
            certificate: r.try_get("certificate")?,
            time_ms: r.try_get("time_ms")?,
            txs,
        }))
    }

    /// A committed transaction by hash.
    pub async fn transaction(&self, hash: &[u8]) -> Result<Option<StoredTx>, StoreError> {
        let row = sqlx::query(
            "SELECT hash, height, idx, tx_type, signer, patient, jws, ok, code FROM transactions WHERE hash = $1",
        )
        .bind(hash.to_vec())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(tx_from_row).transpose()
    }

    /// A patient's transactions in chain order, after position
    /// `(after_height, after_index)` (exclusive), at most `limit`.
    pub async fn patient_transactions(
        &self,
        patient: &str,
        after: Option<(u64, u32)>,
        limit: u32,
    ) -> Result<Vec<StoredTx>, StoreError> {
        let (h, i) = after.map(|(h, i)| (h as i64, i as i64)).unwrap_or((-1, -1));
        sqlx::query(
            "SELECT hash, height, idx, tx_type, signer, patient, jws, ok, code FROM transactions \
             WHERE patient = $1 AND (height > $2 OR (height = $2 AND idx > $3)) \
             ORDER BY height, idx LIMIT $4",
        )
        .bind(patient.to_string())
        .bind(h)
        .bind(i)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(tx_from_row)
        .collect()
    }

    /// A follower's saved position (e.g. the last height it applied).
    pub async fn cursor(&self, name: &str) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar("SELECT position FROM cursors WHERE name = $1")
            .bind(name.to_string())
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Saves a follower's position.
    pub async fn set_cursor(&self, name: &str, position: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO cursors (name, position) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET position = excluded.position",
        )
        .bind(name.to_string())
        .bind(position)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

impl Store {
    /// The newest committed transaction of a type, if any.
    pub async fn latest_of_type(&self, tx_type: &str) -> Result<Option<StoredTx>, StoreError> {
        let row = sqlx::query(
            "SELECT hash, height, idx, tx_type, signer, patient, jws, ok, code FROM transactions \
             WHERE tx_type = $1 ORDER BY height DESC, idx DESC LIMIT 1",
        )
        .bind(tx_type.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(tx_from_row).transpose()
    }
}
