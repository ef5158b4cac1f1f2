//! The audit repository: a hash-chained log of reads and its checkpoints.

use crate::{Store, StoreError};
use sqlx::Row;

/// One audit entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    /// Position, from 1.
    pub seq: u64,
    /// When, Unix ms.
    pub at_ms: i64,
    /// Who read.
    pub reader: String,
    /// The reader's role.
    pub reader_role: String,
    /// Whose data, if a patient's.
    pub patient: Option<String>,
    /// What kind of access (`read`, `search`, `emergency-read`).
    pub action: String,
    /// What was read (path and query).
    pub resource: String,
    /// Purpose of use (HL7 v3 ActReason, e.g. `TREAT`, `PATRQT`, `ETREAT`).
    pub purpose: String,
    /// `granted` or `denied`.
    pub outcome: String,
    /// Why (the access rule's reason).
    pub reason: String,
    /// Hash of the previous entry (zeros for the first).
    pub prev_hash: Vec<u8>,
    /// Hash of this entry.
    pub entry_hash: Vec<u8>,
}

fn row(r: &sqlx::any::AnyRow) -> Result<AuditRow, StoreError> {
    Ok(AuditRow {
        seq: r.try_get::<i64, _>("seq")? as u64,
        at_ms: r.try_get("at_ms")?,
        reader: r.try_get("reader")?,
        reader_role: r.try_get("reader_role")?,
        patient: r.try_get("patient")?,
        action: r.try_get("action")?,
        resource: r.try_get("resource")?,
        purpose: r.try_get("purpose")?,
        outcome: r.try_get("outcome")?,
        reason: r.try_get("reason")?,
        prev_hash: r.try_get("prev_hash")?,
        entry_hash: r.try_get("entry_hash")?,
    })
}

const COLUMNS: &str =
    "seq, at_ms, reader, reader_role, patient, action, resource, purpose, outcome, reason, prev_hash, entry_hash";

impl Store {
    /// The newest entry, if any.
    pub async fn audit_head(&self) -> Result<Option<AuditRow>, StoreError> {
        let q = format!("SELECT {COLUMNS} FROM audit_log ORDER BY seq DESC LIMIT 1");
        sqlx::query(sqlx::AssertSqlSafe(q)).fetch_optional(&self.pool).await?.as_ref().map(row).transpose()
    }

    /// Appends an entry (its `seq` must be the head's + 1; a clash is an error).
    pub async fn insert_audit(&self, e: &AuditRow) -> Result<(), StoreError> {
        let q = format!("INSERT INTO audit_log ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)");
        sqlx::query(sqlx::AssertSqlSafe(q))
            .bind(e.seq as i64)
            .bind(e.at_ms)
            .bind(e.reader.clone())
            .bind(e.reader_role.clone())
            .bind(e.patient.clone())
            .bind(e.action.clone())
            .bind(e.resource.clone())
            .bind(e.purpose.clone())
            .bind(e.outcome.clone())
            .bind(e.reason.clone())
            .bind(e.prev_hash.clone())
            .bind(e.entry_hash.clone())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Entries about `patient` before sequence number `before` (all when
    /// `None`), newest first, at most `limit`: a page of the access log.
    pub async fn audit_for_patient(
        &self,
        patient: &str,
        limit: u32,
        before: Option<u64>,
    ) -> Result<Vec<AuditRow>, StoreError> {
        let q = format!("SELECT {COLUMNS} FROM audit_log WHERE patient = $1 AND seq < $3 ORDER BY seq DESC LIMIT $2");
        sqlx::query(sqlx::AssertSqlSafe(q))
            .bind(patient.to_string())
            .bind(limit as i64)
            .bind(before.map(|b| b.min(i64::MAX as u64) as i64).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(row)
            .collect()
    }

    /// Entries `from..=to` in order (for verifying the chain of hashes).
    pub async fn audit_range(&self, from: u64, to: u64) -> Result<Vec<AuditRow>, StoreError> {
        let q = format!("SELECT {COLUMNS} FROM audit_log WHERE seq >= $1 AND seq <= $2 ORDER BY seq");
        sqlx::query(sqlx::AssertSqlSafe(q))
            .bind(from as i64)
            .bind(to as i64)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(row)
            .collect()
    }

    /// The checkpoints this ledger submitted, newest first: (seq, head, tx hash).
    pub async fn audit_checkpoints(&self, limit: u32) -> Result<Vec<(u64, Vec<u8>, Vec<u8>)>, StoreError> {
        let rows = sqlx::query("SELECT seq, head, tx_hash FROM audit_checkpoints ORDER BY seq DESC LIMIT $1")
            .bind(limit as i64)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get::<i64, _>("seq")? as u64, r.try_get("head")?, r.try_get("tx_hash")?)))
            .collect()
    }

    /// The newest checkpoint: (seq, head).
    pub async fn last_audit_checkpoint(&self) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        let r = sqlx::query("SELECT seq, head FROM audit_checkpoints ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&self.pool)
            .await?;
        r.map(|r| Ok((r.try_get::<i64, _>("seq")? as u64, r.try_get("head")?))).transpose()
    }

    /// Records that the head at `seq` was submitted as transaction `tx_hash`.
    pub async fn insert_audit_checkpoint(&self, seq: u64, head: &[u8], tx_hash: &[u8]) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO audit_checkpoints (seq, head, tx_hash, at_ms) VALUES ($1, $2, $3, $4)")
            .bind(seq as i64)
            .bind(head.to_vec())
            .bind(tx_hash.to_vec())
            .bind(crate::chain::now_ms())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
