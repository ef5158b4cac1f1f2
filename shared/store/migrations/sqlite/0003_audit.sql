-- Who read what, when and why: one row per read, hash-chained
-- (entry_hash = H(prev_hash, entry)); the head is committed to the chain
-- periodically by an audit.checkpoint transaction.
CREATE TABLE audit_log (
    seq        INTEGER PRIMARY KEY,
    at_ms      INTEGER NOT NULL,
    reader     TEXT NOT NULL,
    reader_role TEXT NOT NULL,
    patient    TEXT,
    action     TEXT NOT NULL,
    resource   TEXT NOT NULL,
    purpose    TEXT NOT NULL,
    outcome    TEXT NOT NULL,
    prev_hash  BLOB NOT NULL,
    entry_hash BLOB NOT NULL
);
CREATE INDEX audit_log_patient ON audit_log (patient, seq);

CREATE TABLE audit_checkpoints (
    seq        INTEGER PRIMARY KEY,
    head       BLOB NOT NULL,
    tx_hash    BLOB NOT NULL,
    at_ms      INTEGER NOT NULL
);
