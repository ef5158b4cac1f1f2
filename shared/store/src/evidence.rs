//! The evidence repository: equivocations seen by validators.

use crate::{Store, StoreError};
use sqlx::Row;

/// One piece of evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvidence {
    /// sha256(first || second): the key, so recording twice is harmless.
    pub hash: Vec<u8>,
    /// The offending validator.
    pub validator: String,
    /// `vote` or `proposal`.
    pub kind: String,
    /// Height of the conflicting messages.
    pub height: u64,
    /// Round.
    pub round: u32,
    /// First message (protobuf `SignedConsensusMessage`).
    pub first: Vec<u8>,
    /// The conflicting one.
    pub second: Vec<u8>,
}

impl Store {
    /// Records evidence; recording the same evidence again is a no-op.
    /// Returns whether it was new.
    pub async fn insert_evidence(&self, e: &StoredEvidence) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO evidence (hash, validator, kind, height, round, first, second, recorded_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (hash) DO NOTHING",
        )
        .bind(e.hash.clone())
        .bind(e.validator.clone())
        .bind(e.kind.clone())
        .bind(e.height as i64)
        .bind(e.round as i32)
        .bind(e.first.clone())
        .bind(e.second.clone())
        .bind(crate::chain::now_ms())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// All evidence, oldest height first.
    pub async fn evidence(&self) -> Result<Vec<StoredEvidence>, StoreError> {
        sqlx::query("SELECT hash, validator, kind, height, round, first, second FROM evidence ORDER BY height, hash")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| {
                Ok(StoredEvidence {
                    hash: r.try_get("hash")?,
                    validator: r.try_get("validator")?,
                    kind: r.try_get("kind")?,
                    height: r.try_get::<i64, _>("height")? as u64,
                    round: r.try_get::<i32, _>("round")? as u32,
                    first: r.try_get("first")?,
                    second: r.try_get("second")?,
                })
            })
            .collect()
    }
}
