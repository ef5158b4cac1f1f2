-- The verified chain: blocks with their commit certificates, and the
-- transactions they hold, indexed for reads by hash and by patient.
CREATE TABLE blocks (
    height       INTEGER PRIMARY KEY,
    hash         BLOB NOT NULL UNIQUE,
    prev_hash    BLOB NOT NULL,
    header       BLOB NOT NULL,
    certificate  BLOB NOT NULL,
    time_ms      INTEGER NOT NULL,
    tx_count     INTEGER NOT NULL,
    stored_at_ms INTEGER NOT NULL
);

CREATE TABLE transactions (
    hash     BLOB PRIMARY KEY,
    height   INTEGER NOT NULL REFERENCES blocks(height),
    idx      INTEGER NOT NULL,
    tx_type  TEXT NOT NULL,
    signer   TEXT NOT NULL,
    patient  TEXT,
    jws      TEXT NOT NULL,
    ok       INTEGER NOT NULL,
    code     TEXT NOT NULL DEFAULT '',
    UNIQUE (height, idx)
);
CREATE INDEX transactions_patient ON transactions (patient, height, idx) WHERE patient IS NOT NULL;
CREATE INDEX transactions_signer ON transactions (signer, height);

CREATE TABLE cursors (
    name     TEXT PRIMARY KEY,
    position INTEGER NOT NULL
);
