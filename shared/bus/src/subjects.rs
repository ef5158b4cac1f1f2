//! Subject and stream names (DESIGN §5): `emr.<area>.<detail>`.

/// JetStream stream of submitted transactions.
pub const STREAM_TXS: &str = "TXS";
/// JetStream stream of committed blocks with their certificates.
pub const STREAM_BLOCKS: &str = "BLOCKS";
/// JetStream stream of glucose alerts.
pub const STREAM_ALERTS: &str = "ALERTS";
/// JetStream stream of clinical reminders.
pub const STREAM_REMINDERS: &str = "REMINDERS";
/// Stream of the record vault's sealed rows.
pub const STREAM_VAULT: &str = "VAULT";
/// Every subject of the VAULT stream.
pub const VAULT_ALL: &str = "emr.vault.>";

/// Everything the TXS stream holds: `emr.tx.<tx type>` (tx types contain dots).
pub const TX_ALL: &str = "emr.tx.>";
/// Transactions refused by validators (core NATS, for ingest's status).
pub const TX_REJECTED: &str = "emr.txstatus.rejected";
/// Committed blocks (BLOCKS stream).
pub const BLOCK_COMMITTED: &str = "emr.block.committed";
/// Everything the ALERTS stream holds.
pub const ALERT_ALL: &str = "emr.alert.>";
/// Everything the REMINDERS stream holds.
pub const REMINDER_ALL: &str = "emr.reminder.>";
/// Access decisions (request/reply to the contracts engine).
pub const AUTHZ_DECIDE: &str = "emr.authz.decide";
/// A read at the contracts engine, appended to the ledger's audit log
/// (request/reply: `AuditAppend`, answered with `AuditAppended`).
pub const AUDIT_APPEND: &str = "emr.audit.append";
/// The detector's openings of record bodies, appended to the ledger's
/// audit log (as [`AUDIT_APPEND`]); the ledger takes from it only entries
/// whose reader is a registered detector, so the detector cannot write in
/// another reader's name.
pub const AUDIT_APPEND_DETECTOR: &str = "emr.audit.append.detector";
/// The notifier's openings of record bodies (care plans), appended to the
/// ledger's audit log like [`AUDIT_APPEND_DETECTOR`], only in a registered
/// notifier's own name.
pub const AUDIT_APPEND_NOTIFIER: &str = "emr.audit.append.notifier";
/// Block sync between validators and for the ledger (request/reply).
pub const SYNC_BLOCKS: &str = "emr.sync.blocks";
/// Notification delivery status from the notifier.
pub const NOTIFY_STATUS: &str = "emr.notify.status";
/// Vote-set requests between validators (request/reply).
pub const CONSENSUS_VOTESET: &str = "emr.voteset";
/// All consensus messages.
pub const CONSENSUS_ALL: &str = "emr.consensus.>";

/// `emr.tx.<tx type>`, e.g. `emr.tx.observation.record`.
pub fn tx(tx_type: &str) -> String {
    format!("emr.tx.{tx_type}")
}

/// `emr.alert.<kind>`, e.g. `emr.alert.urgent_low`.
pub fn alert(kind: &str) -> String {
    format!("emr.alert.{kind}")
}

/// `emr.reminder.<kind>`.
pub fn reminder(kind: &str) -> String {
    format!("emr.reminder.{kind}")
}

/// `emr.consensus.<kind>.<validator>`: each validator may publish only on
/// its own subjects (NATS permissions per validator account).
pub fn consensus(kind: &str, validator: &str) -> String {
    format!("emr.consensus.{kind}.{validator}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_shapes() {
        assert_eq!(tx("emergency.profile.set"), "emr.tx.emergency.profile.set");
        assert!(!TX_REJECTED.starts_with("emr.tx."), "rejections must not land in the TXS stream");
        assert_eq!(consensus("vote", "pabc"), "emr.consensus.vote.pabc");
        assert_eq!(alert("urgent_low"), "emr.alert.urgent_low");
    }
}
