//! The hash chain of a ledger's audit log, and how a patient checks their
//! own entries against a checkpoint committed on the chain without seeing
//! anyone else's.
//!
//! Entry `k` has a content hash `c_k = H("glucochain/v2/audit-entry" 0x00,
//! fields)` and a link `h_k = H("glucochain/v2/audit" 0x00, h_{k-1}, c_k)`
//! (`h_0` is 32 zero bytes). An `audit.checkpoint` commits `(k, h_k)`. A
//! segment `from..=k` given as the patient's own entries in full and every
//! other entry as its content hash alone recomputes to `h_k`: an entry of
//! theirs that was changed, dropped or reordered, or one added in their name,
//! breaks the chain.

use glucochain_crypto::{Hash32, sha256_parts};
use serde::{Deserialize, Serialize};

const LINK_TAG: &[u8] = b"glucochain/v2/audit\0";
const ENTRY_TAG: &[u8] = b"glucochain/v2/audit-entry\0";

/// The fields of one audit entry that its hash covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditFields {
    /// Position in the log, from 1.
    pub seq: u64,
    /// When, Unix ms.
    pub at_ms: i64,
    /// Who read.
    pub reader: String,
    /// The reader's role.
    pub reader_role: String,
    /// Whose data.
    pub patient: Option<String>,
    /// What kind of access.
    pub action: String,
    /// What was read.
    pub resource: String,
    /// Purpose of use.
    pub purpose: String,
    /// `granted` or `denied`.
    pub outcome: String,
    /// The rule's reason.
    pub reason: String,
}

impl AuditFields {
    /// The entry's content hash.
    pub fn content_hash(&self) -> Hash32 {
        let fields = serde_json::json!([
            self.seq,
            self.at_ms,
            self.reader,
            self.reader_role,
            self.patient,
            self.action,
            self.resource,
            self.purpose,
            self.outcome,
            self.reason
        ]);
        sha256_parts(&[ENTRY_TAG, fields.to_string().as_bytes()])
    }
}

/// The link hash of an entry with content hash `content` after `prev`.
pub fn link(prev: &[u8], content: &Hash32) -> Hash32 {
    sha256_parts(&[LINK_TAG, prev, &content.0])
}

/// One entry of a segment: the patient's own in full, anyone else's as its content hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SegmentEntry {
    /// An entry of the patient's.
    Own {
        /// Its fields.
        entry: AuditFields,
    },
    /// Someone else's entry.
    Other {
        /// Its position.
        seq: u64,
        /// Its content hash.
        content_hash: Hash32,
    },
}

impl SegmentEntry {
    fn seq(&self) -> u64 {
        match self {
            SegmentEntry::Own { entry } => entry.seq,
            SegmentEntry::Other { seq, .. } => *seq,
        }
    }
}

/// Why a segment does not reach the checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SegmentError {
    /// The entries are not consecutive from the first.
    #[error("entry {found} where {expected} was expected")]
    Gap {
        /// The position expected.
        expected: u64,
        /// The position found.
        found: u64,
    },
    /// An entry in full names another patient.
    #[error("entry {0} is given in full but is not the patient's")]
    NotOwn(u64),
    /// The recomputed head differs from the checkpoint's.
    #[error("the entries recompute to another head than the checkpoint's")]
    HeadMismatch,
    /// The segment does not end at the checkpoint's entry.
    #[error("the segment ends at entry {end}, the checkpoint at {checkpoint}")]
    WrongEnd {
        /// Last entry of the segment.
        end: u64,
        /// The checkpoint's count.
        checkpoint: u64,
    },
}

/// Checks that `entries` (consecutive, after `prev`) recompute to the
/// checkpointed `head` at `count` entries, every entry in full being
/// `patient`'s. Returns how many of the patient's entries it covered.
pub fn verify_segment(
    patient: &str,
    prev: &Hash32,
    entries: &[SegmentEntry],
    count: u64,
    head: &Hash32,
) -> Result<usize, SegmentError> {
    let mut h = *prev;
    let mut own = 0;
    let mut expected = entries.first().map(SegmentEntry::seq).unwrap_or(count + 1);
    for e in entries {
        if e.seq() != expected {
            return Err(SegmentError::Gap { expected, found: e.seq() });
        }
        let c = match e {
            SegmentEntry::Own { entry } => {
                if entry.patient.as_deref() != Some(patient) {
                    return Err(SegmentError::NotOwn(entry.seq));
                }
                own += 1;
                entry.content_hash()
            }
            SegmentEntry::Other { content_hash, .. } => *content_hash,
        };
        h = link(&h.0, &c);
        expected += 1;
    }
    if expected - 1 != count {
        return Err(SegmentError::WrongEnd { end: expected - 1, checkpoint: count });
    }
    if &h != head {
        return Err(SegmentError::HeadMismatch);
    }
    Ok(own)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(seq: u64, patient: &str, reader: &str) -> AuditFields {
        AuditFields {
            seq,
            at_ms: 1_790_000_000_000 + seq as i64,
            reader: reader.into(),
            reader_role: "clinician".into(),
            patient: Some(patient.into()),
            action: "read".into(),
            resource: "/v1/patients/x/records".into(),
            purpose: "TREAT".into(),
            outcome: "granted".into(),
            reason: "consent c1".into(),
        }
    }

    /// A log of 6 entries, alternating patients "pa" and "pb"; its head.
    fn log() -> (Vec<AuditFields>, Vec<Hash32>) {
        let entries: Vec<AuditFields> =
            (1..=6).map(|i| fields(i, if i % 2 == 1 { "pa" } else { "pb" }, "pdr")).collect();
        let mut heads = Vec::new();
        let mut h = Hash32::default();
        for e in &entries {
            h = link(&h.0, &e.content_hash());
            heads.push(h);
        }
        (entries, heads)
    }

    fn segment_for(patient: &str, entries: &[AuditFields]) -> Vec<SegmentEntry> {
        entries
            .iter()
            .map(|e| {
                if e.patient.as_deref() == Some(patient) {
                    SegmentEntry::Own { entry: e.clone() }
                } else {
                    SegmentEntry::Other { seq: e.seq, content_hash: e.content_hash() }
                }
            })
            .collect()
    }

    #[test]
    fn m7_a_patient_verifies_their_entries_against_the_checkpoint_without_seeing_others() {
        let (entries, heads) = log();
        let seg = segment_for("pa", &entries[1..]);
        assert_eq!(verify_segment("pa", &heads[0], &seg, 6, &heads[5]), Ok(2));
        // Nothing of "pb" is in the segment but hashes.
        assert!(!serde_json::to_string(&seg).unwrap().contains("\"pb\""));
        // A changed entry, a dropped one, a reordering, a wrong end, another's entry passed off as own.
        let mut changed = seg.clone();
        if let SegmentEntry::Own { entry } = &mut changed[1] {
            entry.outcome = "denied".into();
        }
        assert_eq!(verify_segment("pa", &heads[0], &changed, 6, &heads[5]), Err(SegmentError::HeadMismatch));
        let mut dropped = seg.clone();
        dropped.remove(1);
        assert!(matches!(verify_segment("pa", &heads[0], &dropped, 6, &heads[5]), Err(SegmentError::Gap { .. })));
        let mut swapped = seg.clone();
        swapped.swap(0, 1);
        assert!(verify_segment("pa", &heads[0], &swapped, 6, &heads[5]).is_err());
        assert!(matches!(verify_segment("pa", &heads[0], &seg[..4], 6, &heads[5]), Err(SegmentError::WrongEnd { .. })));
        let theirs = segment_for("pb", &entries[1..]);
        assert_eq!(verify_segment("pa", &heads[0], &theirs, 6, &heads[5]), Err(SegmentError::NotOwn(2)));
        assert_eq!(verify_segment("pa", &heads[1], &seg, 6, &heads[5]), Err(SegmentError::HeadMismatch), "wrong start");
        // The reason is covered too.
        let mut reason = seg;
        if let SegmentEntry::Own { entry } = &mut reason[1] {
            entry.reason = "admin".into();
        }
        assert_eq!(verify_segment("pa", &heads[0], &reason, 6, &heads[5]), Err(SegmentError::HeadMismatch));
    }
}
