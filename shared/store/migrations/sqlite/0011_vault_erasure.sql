-- Erasures a vault has acted on (issue 21, ADR 0016 §4), so that one
-- replayed from the chain at a restart neither runs twice (a class erasure
-- run again would destroy records written after it) nor stays half done:
-- 'local' once this database is erased, 'done' once the replica is too.
CREATE TABLE vault_erasure (
    by_tx       TEXT NOT NULL,           -- the committed record.erase
    part        TEXT NOT NULL,           -- 'record' or the class erased
    patient     TEXT NOT NULL,
    state       TEXT NOT NULL,           -- 'local' or 'done'
    epoch       INTEGER NOT NULL,           -- a class's new epoch (0 for a record)
    updated_ms  INTEGER NOT NULL,
    PRIMARY KEY (by_tx, part)
);
