-- The notifier's outbox. A source is an alert, reminder or notice the
-- notifier took on (written before the JetStream message is acked); a
-- delivery is one message to one contact on one channel (written before it
-- is sent, claimed with a lease while sending, so a crash between send and
-- record costs at most one duplicate, never a loss).
CREATE TABLE notify_source (
    id                  TEXT PRIMARY KEY,      -- alert id / reminder id
    source_kind         TEXT NOT NULL,         -- alert | reminder | notice
    patient             TEXT NOT NULL,
    kind                TEXT NOT NULL,         -- urgent_low, medication, break_glass, ...
    severity            INTEGER NOT NULL,      -- 1 info, 2 warning, 3 urgent
    group_id            TEXT NOT NULL,         -- sources folded together share it; an ack acks the group
    episode_id          TEXT NOT NULL,         -- the detector's episode (resolution ends it)
    payload             BYTEA NOT NULL,          -- the protobuf event as received
    received_ms         BIGINT NOT NULL,
    step                INTEGER NOT NULL DEFAULT 0,
    next_escalation_ms  BIGINT,                    -- NULL: nothing more to escalate
    acked_ms            BIGINT,
    acked_by            TEXT,
    ack_via             TEXT,
    resolved_ms         BIGINT
);
CREATE INDEX notify_source_escalation ON notify_source (next_escalation_ms);
CREATE INDEX notify_source_patient ON notify_source (patient, received_ms);
CREATE INDEX notify_source_group ON notify_source (group_id);
CREATE INDEX notify_source_episode ON notify_source (patient, episode_id);

CREATE TABLE notify_delivery (
    id              TEXT PRIMARY KEY,          -- hash of (source, step, round, contact, channel)
    source_id       TEXT NOT NULL REFERENCES notify_source (id),
    contact         TEXT NOT NULL,             -- participant id
    channel         TEXT NOT NULL,             -- email | sms | webhook
    address         TEXT NOT NULL,
    step            INTEGER NOT NULL,
    state           TEXT NOT NULL,             -- pending | sending | sent | failed | suppressed
    attempts        INTEGER NOT NULL DEFAULT 0,
    due_ms          BIGINT NOT NULL,
    lease_until_ms  BIGINT,
    sent_ms         BIGINT,
    last_error      TEXT,
    ack_code        TEXT NOT NULL,
    link_used_ms    BIGINT,
    created_ms      BIGINT NOT NULL
);
CREATE INDEX notify_delivery_due ON notify_delivery (state, due_ms);
CREATE INDEX notify_delivery_source ON notify_delivery (source_id);
CREATE INDEX notify_delivery_code ON notify_delivery (address, ack_code);
