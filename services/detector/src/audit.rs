//! The detector's openings of record bodies in the patients' access logs
//! (ADR 0016 §3). A CGM uploads a reading every five minutes; one entry per
//! reading would bury the entries a patient looks for ("who read my data")
//! under 288 a day of the same service. So an entry covers a window: the
//! first body opened for a patient writes one ("the detector opened your
//! readings under care plan P from now"), and the bodies opened in the next
//! [`WINDOW_MS`] are covered by it. The entry is written beside the reading,
//! never in its way: a ledger that is slow or down must not delay a low's
//! alert. A window whose entry could not be written stays unaudited and the
//! next opening tries again (one attempt in flight per patient); the
//! reading is still judged (a missed low is the worse harm, and the failure
//! is counted and logged).

use glucochain_types::ParticipantId;
use std::collections::HashMap;

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

#[cfg(test)]
mod tests {
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
