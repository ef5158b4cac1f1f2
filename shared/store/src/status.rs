//! Transaction status as ingest reports it.

use crate::{Store, StoreError};
use sqlx::Row;

/// Where a submitted transaction stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxState {
    /// In the TXS stream, not yet in a block.
    Pending,
    /// In a block.
    Committed {
        /// Height.
        height: u64,
        /// Position in the block.
        index: u32,
        /// Block hash.
        block_hash: Vec<u8>,
    },
    /// Refused by the validators.
    Rejected {
        /// Stable code.
        code: String,
        /// Explanation.
        reason: String,
    },
}

/// A status row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxStatus {
    /// Tx hash.
    pub hash: Vec<u8>,
    /// Type.
    pub tx_type: String,
    /// Signer.
    pub signer: String,
    /// When ingest accepted it, Unix ms.
    pub submitted_ms: i64,
    /// State.
    pub state: TxState,
}

/// A transaction ingest has just accepted.
#[derive(Debug, Clone, Copy)]
pub struct NewTxStatus<'a> {
    /// Tx hash.
    pub hash: &'a [u8],
    /// Type.
    pub tx_type: &'a str,
    /// Signer.
    pub signer: &'a str,
}

/// A transaction at a position of a committed block.
#[derive(Debug, Clone, Copy)]
pub struct CommittedTxStatus<'a> {
    /// Tx hash.
    pub hash: &'a [u8],
    /// Type.
    pub tx_type: &'a str,
    /// Signer.
    pub signer: &'a str,
    /// Position in the block.
    pub index: u32,
}

impl Store {
    /// Records newly accepted transactions as pending (no-op for known ones)
    /// in multi-row statements: ingest writes the submissions that arrived
    /// together as one group.
    pub async fn tx_pending(&self, rows: &[NewTxStatus<'_>]) -> Result<(), StoreError> {
        let now = crate::chain::now_ms();
        for chunk in rows.chunks(self.rows_per_statement()) {
            let sql = format!(
                "INSERT INTO tx_status (hash, status, tx_type, signer, submitted_ms, updated_ms) VALUES {} \
                 ON CONFLICT (hash) DO NOTHING",
                crate::values_placeholders(chunk.len(), 6)
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for r in chunk {
                q = q
                    .bind(r.hash.to_vec())
                    .bind("pending")
                    .bind(r.tx_type.to_string())
                    .bind(r.signer.to_string())
                    .bind(now)
                    .bind(now);
            }
            q.execute(&self.pool).await?;
        }
        Ok(())
    }

    /// Marks the transactions of one block committed (whatever they were
    /// before), in one database transaction: `rows[i]` is at position
    /// `rows[i].index` of the block. Hashes are distinct within a block.
    pub async fn tx_committed(
        &self,
        height: u64,
        block_hash: &[u8],
        rows: &[CommittedTxStatus<'_>],
    ) -> Result<(), StoreError> {
        let now = crate::chain::now_ms();
        let mut db = self.pool.begin().await?;
        for chunk in rows.chunks(self.rows_per_statement()) {
            let sql = format!(
                "INSERT INTO tx_status (hash, status, tx_type, signer, submitted_ms, updated_ms, height, idx, block_hash) \
                 VALUES {} ON CONFLICT (hash) DO UPDATE SET status = 'committed', height = excluded.height, \
                 idx = excluded.idx, block_hash = excluded.block_hash, code = NULL, reason = NULL, \
                 updated_ms = excluded.updated_ms",
                crate::values_placeholders(chunk.len(), 9)
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for r in chunk {
                q = q
                    .bind(r.hash.to_vec())
                    .bind("committed")
                    .bind(r.tx_type.to_string())
                    .bind(r.signer.to_string())
                    .bind(now)
                    .bind(now)
                    .bind(height as i64)
                    .bind(r.index as i32)
                    .bind(block_hash.to_vec());
            }
            q.execute(&mut *db).await?;
        }
        db.commit().await?;
        Ok(())
    }

    /// Marks a pending transaction rejected (a committed one stays committed).
    pub async fn tx_rejected(&self, hash: &[u8], code: &str, reason: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE tx_status SET status = 'rejected', code = $2, reason = $3, updated_ms = $4 \
             WHERE hash = $1 AND status = 'pending'",
        )
        .bind(hash.to_vec())
        .bind(code.to_string())
        .bind(reason.to_string())
        .bind(crate::chain::now_ms())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The status of a transaction, if ingest knows it.
    pub async fn tx_status(&self, hash: &[u8]) -> Result<Option<TxStatus>, StoreError> {
        let r = sqlx::query(
            "SELECT hash, status, tx_type, signer, submitted_ms, height, idx, block_hash, code, reason \
             FROM tx_status WHERE hash = $1",
        )
        .bind(hash.to_vec())
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = r else { return Ok(None) };
        let status: String = r.try_get("status")?;
        let state = match status.as_str() {
            "committed" => TxState::Committed {
                height: r.try_get::<Option<i64>, _>("height")?.unwrap_or(0) as u64,
                index: r.try_get::<Option<i32>, _>("idx")?.unwrap_or(0) as u32,
                block_hash: r.try_get::<Option<Vec<u8>>, _>("block_hash")?.unwrap_or_default(),
            },
            "rejected" => TxState::Rejected {
                code: r.try_get::<Option<String>, _>("code")?.unwrap_or_default(),
                reason: r.try_get::<Option<String>, _>("reason")?.unwrap_or_default(),
            },
            _ => TxState::Pending,
        };
        Ok(Some(TxStatus {
            hash: r.try_get("hash")?,
            tx_type: r.try_get("tx_type")?,
            signer: r.try_get("signer")?,
            submitted_ms: r.try_get("submitted_ms")?,
            state,
        }))
    }
}
