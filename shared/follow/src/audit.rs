//! Writing to the ledger's hash-chained audit log from another service
//! (`emr.audit.append`, request and reply): the contracts engine's reads and
//! the detector's and notifier's openings of record bodies appear in the
//! patient's access log like the ledger's own.
//!
//! A service that opens a patient's bodies as it works (the detector every
//! five minutes, the notifier with every alert) writes one entry per
//! patient per window ([`OpeningLog`]): one entry per opening would bury the
//! entries a patient looks for ("who read my data") under 288 a day of the
//! same service. The first body opened for a patient writes one ("the
//! detector opened your readings under care plan P from now"), and the
//! bodies opened in the next [`WINDOW_MS`] are covered by it. The entry is
//! written beside the work, never in its way: a ledger that is slow or down
//! must not delay a low's alert. A window whose entry could not be written
//! stays unaudited and the next opening tries again (one attempt in flight
//! per patient); the failure is counted and logged.

use glucochain_bus::{Bus, subjects};
use glucochain_types::ParticipantId;
use glucochain_wire::v1 as wire;
use prost::Message as _;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
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

/// [`append`] on `subject` ([`subjects::AUDIT_APPEND_DETECTOR`] for the
/// detector, [`subjects::AUDIT_APPEND_NOTIFIER`] for the notifier).
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

/// How long one access-log entry covers a patient's openings.
pub const WINDOW_MS: i64 = 15 * 60 * 1000;

/// Where a patient's current window is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Window {
    /// Its entry is being written.
    Writing,
    /// Its entry was written; the window began then.
    Since(i64),
}

/// Each patient's current window (pure: no clock, no I/O).
#[derive(Debug, Default)]
pub struct AuditWindows {
    open: HashMap<ParticipantId, Window>,
}

impl AuditWindows {
    /// Whether opening a body of `patient` at `now_ms` needs a new entry;
    /// when it does, the entry counts as being written from now (so one
    /// attempt at a time is made).
    pub fn begin(&mut self, patient: &ParticipantId, now_ms: i64) -> bool {
        let due = match self.open.get(patient) {
            None => true,
            Some(Window::Writing) => false,
            Some(Window::Since(start)) => now_ms - start >= WINDOW_MS || now_ms < *start,
        };
        if due {
            if self.open.len() >= 100_000 {
                self.open.retain(|_, w| matches!(w, Window::Since(s) if now_ms - *s < WINDOW_MS));
            }
            self.open.insert(patient.clone(), Window::Writing);
        }
        due
    }

    /// The entry begun at `now_ms` was written: its window runs from then.
    pub fn written(&mut self, patient: &ParticipantId, now_ms: i64) {
        self.open.insert(patient.clone(), Window::Since(now_ms));
    }

    /// The entry was not written: the next opening tries again.
    pub fn failed(&mut self, patient: &ParticipantId) {
        self.open.remove(patient);
    }
}

/// A service's openings of patients' bodies, in their access logs: one
/// entry per patient per [`WINDOW_MS`], written in the background.
#[derive(Clone)]
pub struct OpeningLog {
    bus: Bus,
    subject: &'static str,
    windows: Arc<Mutex<AuditWindows>>,
    unaudited_metric: &'static str,
}

impl OpeningLog {
    /// Entries go to the ledger on `subject`; one that is not written is
    /// counted in `unaudited_metric`.
    pub fn new(bus: Bus, subject: &'static str, unaudited_metric: &'static str) -> Self {
        OpeningLog { bus, subject, windows: Arc::default(), unaudited_metric }
    }

    /// Writes `entry` (an opening of `patient`'s bodies at `now_ms`) unless
    /// the patient's current window covers it; never waits for the ledger.
    pub fn opened(&self, patient: &ParticipantId, now_ms: i64, entry: wire::AuditAppend) {
        if !self.windows.lock().expect("audit lock").begin(patient, now_ms) {
            return;
        }
        let (log, patient) = (self.clone(), patient.clone());
        tokio::spawn(async move {
            match append_on(&log.bus, log.subject, &entry).await {
                Ok(_) => log.windows.lock().expect("audit lock").written(&patient, now_ms),
                Err(e) => {
                    log.windows.lock().expect("audit lock").failed(&patient);
                    metrics::counter!(log.unaudited_metric).increment(1);
                    tracing::warn!(error = %e, action = %entry.action, "an opening of a patient's bodies is not in their access log yet");
                }
            }
        });
    }
}

#[cfg(test)]
mod window_tests {
    use super::*;
    use glucochain_crypto::KeyPair;

    #[test]
    fn one_entry_covers_a_window_and_an_unwritten_one_is_tried_again() {
        let p = ParticipantId::from_public_key(&KeyPair::from_seed([1; 32]).public());
        let q = ParticipantId::from_public_key(&KeyPair::from_seed([2; 32]).public());
        let mut w = AuditWindows::default();
        assert!(w.begin(&p, 1_000));
        assert!(!w.begin(&p, 1_500), "one attempt in flight at a time");
        // Not written (the ledger did not answer): due again.
        w.failed(&p);
        assert!(w.begin(&p, 2_000));
        w.written(&p, 2_000);
        assert!(!w.begin(&p, 2_000 + WINDOW_MS - 1), "covered by the entry");
        assert!(w.begin(&q, 3_000), "each patient has their own entry");
        assert!(w.begin(&p, 2_000 + WINDOW_MS), "a new window, a new entry");
        w.written(&p, 2_000 + WINDOW_MS);
        assert!(w.begin(&p, 1_000), "a clock that went back starts a new window");
    }
}
