-- The verified chain: blocks with their commit certificates, and the
-- transactions they hold, indexed for reads by hash and by patient.
CREATE TABLE blocks (
    height       BIGINT PRIMARY KEY,
    hash         BYTEA NOT NULL UNIQUE,
    prev_hash    BYTEA NOT NULL,
    header       BYTEA NOT NULL,      -- canonical protobuf BlockHeader
    certificate  BYTEA NOT NULL,      -- protobuf CommitCertificate
    time_ms      BIGINT NOT NULL,
    tx_count     INTEGER NOT NULL,
    stored_at_ms BIGINT NOT NULL
);

CREATE TABLE transactions (
    hash     BYTEA PRIMARY KEY,
    height   BIGINT NOT NULL REFERENCES blocks(height),
    idx      INTEGER NOT NULL,
    tx_type  TEXT NOT NULL,
    signer   TEXT NOT NULL,
    patient  TEXT,
    jws      TEXT NOT NULL,
    ok       INTEGER NOT NULL,        -- 1 applied, 0 refused by the state machine
    code     TEXT NOT NULL DEFAULT '',
    UNIQUE (height, idx)
);
CREATE INDEX transactions_patient ON transactions (patient, height, idx) WHERE patient IS NOT NULL;
CREATE INDEX transactions_signer ON transactions (signer, height);

-- Positions of consumers that follow the chain (e.g. contracts at height N).
CREATE TABLE cursors (
    name     TEXT PRIMARY KEY,
    position BIGINT NOT NULL
);
