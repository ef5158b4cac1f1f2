//! Web sessions held by the service: created once per signed sign-in token
//! (its `jti` is remembered until the token would expire), ended by signing
//! out, expired by time. Only the SHA-256 of a session's cookie is stored.

use crate::{Store, StoreError};
use sqlx::Row;

/// Why a session was not created.
#[derive(Debug, PartialEq, Eq)]
pub enum SessionRefused {
    /// This sign-in token was used before.
    TokenReused,
}

impl Store {
    /// Creates a session `id_hash` for `participant` until `expires_ms`,
    /// spending the sign-in token `jti` (valid until `jti_expires_ms`).
    /// A token already spent opens nothing. One transaction.
    pub async fn create_web_session(
        &self,
        participant: &str,
        jti: &str,
        jti_expires_ms: i64,
        id_hash: &[u8],
        now_ms: i64,
        expires_ms: i64,
    ) -> Result<Result<(), SessionRefused>, StoreError> {
        let mut tx = self.pool.begin().await?;
        // Forget spent tokens that could no longer be presented anyway.
        sqlx::query("DELETE FROM web_signin_jti WHERE expires_ms < $1").bind(now_ms).execute(&mut *tx).await?;
        let spent = sqlx::query(
            "INSERT INTO web_signin_jti (participant, jti, expires_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (participant, jti) DO NOTHING",
        )
        .bind(participant.to_string())
        .bind(jti.to_string())
        .bind(jti_expires_ms)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if spent == 0 {
            return Ok(Err(SessionRefused::TokenReused));
        }
        sqlx::query("DELETE FROM web_session WHERE expires_ms < $1").bind(now_ms).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO web_session (id_hash, participant, created_ms, expires_ms) VALUES ($1, $2, $3, $4)")
            .bind(id_hash.to_vec())
            .bind(participant.to_string())
            .bind(now_ms)
            .bind(expires_ms)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Ok(()))
    }

    /// The participant of a live session (not ended, not expired at `now_ms`),
    /// with its expiry.
    pub async fn web_session(&self, id_hash: &[u8], now_ms: i64) -> Result<Option<(String, i64)>, StoreError> {
        let r = sqlx::query(
            "SELECT participant, expires_ms FROM web_session WHERE id_hash = $1 AND ended_ms IS NULL AND expires_ms > $2",
        )
        .bind(id_hash.to_vec())
        .bind(now_ms)
        .fetch_optional(&self.pool)
        .await?;
        r.map(|r| Ok((r.try_get("participant")?, r.try_get("expires_ms")?))).transpose()
    }

    /// Ends a session (sign-out); returns whether it was live.
    pub async fn end_web_session(&self, id_hash: &[u8], now_ms: i64) -> Result<bool, StoreError> {
        let n = sqlx::query("UPDATE web_session SET ended_ms = $1 WHERE id_hash = $2 AND ended_ms IS NULL")
            .bind(now_ms)
            .bind(id_hash.to_vec())
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n > 0)
    }
}
