-- What ingest tells a submitter about a transaction: pending once JetStream
-- has it, then committed (from BLOCKS) or rejected (from the validators).
-- Committed always wins: a late or wrong rejection never hides a commit.
CREATE TABLE tx_status (
    hash          BYTEA PRIMARY KEY,
    status        TEXT NOT NULL,      -- pending | committed | rejected
    tx_type       TEXT NOT NULL,
    signer        TEXT NOT NULL,
    submitted_ms  BIGINT NOT NULL,
    height        BIGINT,
    idx           INTEGER,
    block_hash    BYTEA,
    code          TEXT,
    reason        TEXT,
    updated_ms    BIGINT NOT NULL
);
