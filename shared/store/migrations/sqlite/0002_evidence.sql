-- Misbehaviour seen by consensus: two conflicting messages signed by one
-- validator. Both messages are kept as sent, so anyone can verify them.
CREATE TABLE evidence (
    hash        BLOB PRIMARY KEY,    -- sha256(first || second)
    validator   TEXT NOT NULL,
    kind        TEXT NOT NULL,        -- vote | proposal
    height      INTEGER NOT NULL,
    round       INTEGER NOT NULL,
    first       BLOB NOT NULL,       -- protobuf SignedConsensusMessage
    second      BLOB NOT NULL,
    recorded_at_ms INTEGER NOT NULL
);
CREATE INDEX evidence_validator ON evidence (validator, height);
