-- The record vault (issue 21, ADR 0016): bodies of records, off the chain,
-- only ever as ciphertext. A record's body is sealed under its own record
-- key; the record key is wrapped by the data key of its patient, class and
-- epoch; data keys are wrapped by the deployment's key-encryption key,
-- which is never stored here. Erasing a record deletes its row; erasing a
-- class deletes its data keys and records and starts a new epoch.
CREATE TABLE vault_data_key (
    patient     TEXT NOT NULL,
    class       TEXT NOT NULL,
    epoch       INTEGER NOT NULL,
    wrapped     BYTEA NOT NULL,
    kek_id      TEXT NOT NULL,           -- which key-encryption key wrapped it
    created_ms  BIGINT NOT NULL,
    PRIMARY KEY (patient, class, epoch)
);
CREATE TABLE vault_epoch (
    patient     TEXT NOT NULL,
    class       TEXT NOT NULL,
    epoch       INTEGER NOT NULL,        -- the epoch new records of this class go under
    PRIMARY KEY (patient, class)
);
CREATE TABLE vault_record (
    tx_hash     TEXT PRIMARY KEY,
    patient     TEXT NOT NULL,
    class       TEXT NOT NULL,
    epoch       INTEGER NOT NULL,
    body        BYTEA NOT NULL,             -- XChaCha20-Poly1305 under the record key
    record_key  BYTEA NOT NULL,             -- the record key under the data key
    created_ms  BIGINT NOT NULL
);
CREATE INDEX vault_record_class ON vault_record (patient, class);
-- What was erased, when and by which committed transaction: reads answer
-- "erased" (410), not "unknown".
CREATE TABLE vault_erased (
    tx_hash     TEXT PRIMARY KEY,
    patient     TEXT NOT NULL,
    class       TEXT NOT NULL,
    by_tx       TEXT NOT NULL,
    erased_ms   BIGINT NOT NULL
);
