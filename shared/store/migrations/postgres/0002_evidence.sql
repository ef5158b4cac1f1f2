-- Misbehaviour seen by consensus: two conflicting messages signed by one
-- validator. Both messages are kept as sent, so anyone can verify them.
CREATE TABLE evidence (
    hash        BYTEA PRIMARY KEY,    -- sha256(first || second)
    validator   TEXT NOT NULL,
    kind        TEXT NOT NULL,        -- vote | proposal
    height      BIGINT NOT NULL,
    round       INTEGER NOT NULL,
    first       BYTEA NOT NULL,       -- protobuf SignedConsensusMessage
    second      BYTEA NOT NULL,
    recorded_at_ms BIGINT NOT NULL
);
CREATE INDEX evidence_validator ON evidence (validator, height);
