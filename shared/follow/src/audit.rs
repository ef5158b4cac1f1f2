//! Writing to the ledger's hash-chained audit log from another service
//! (`emr.audit.append`, request and reply): the contracts engine's reads and
//! the detector's openings of record bodies appear in the patient's access
//! log like the ledger's own.

use glucochain_bus::{Bus, subjects};
use glucochain_wire::v1 as wire;
use prost::Message as _;
use std::time::Duration;

/// How long an append waits for the ledger.
pub const APPEND_TIMEOUT: Duration = Duration::from_secs(5);

/// Why an entry was not appended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppendError {
    /// The ledger throttles refused reads of this patient: retry after this long.
    #[error("rate-limited for {0:?}")]
    RateLimited(Duration),
    /// The ledger refused the entry.
    #[error("the ledger refused the entry: {0}")]
    Refused(String),
    /// No answer (the ledger unreachable, or slower than [`APPEND_TIMEOUT`]).
    #[error("no answer from the ledger: {0}")]
    Unreachable(String),
}

/// Appends `entry` to the audit log; returns its sequence number.
pub async fn append(bus: &Bus, entry: &wire::AuditAppend) -> Result<u64, AppendError> {
    append_on(bus, subjects::AUDIT_APPEND, entry).await
}

/// [`append`] on `subject` ([`subjects::AUDIT_APPEND_DETECTOR`] for the detector).
pub async fn append_on(bus: &Bus, subject: &'static str, entry: &wire::AuditAppend) -> Result<u64, AppendError> {
    let ask = bus.client().request(subject, entry.encode_to_vec().into());
    let m = match tokio::time::timeout(APPEND_TIMEOUT, ask).await {
        Ok(Ok(m)) => m,
        Ok(Err(e)) => return Err(AppendError::Unreachable(e.to_string())),
        Err(_) => return Err(AppendError::Unreachable(format!("none within {} s", APPEND_TIMEOUT.as_secs()))),
    };
    let a = wire::AuditAppended::decode(m.payload.as_ref()).map_err(|e| AppendError::Unreachable(e.to_string()))?;
    match a.error.strip_prefix("rate-limited:") {
        _ if a.error.is_empty() => Ok(a.seq),
        Some(secs) => Err(AppendError::RateLimited(Duration::from_secs(secs.trim().parse().unwrap_or(60)))),
        None => Err(AppendError::Refused(a.error)),
    }
}
