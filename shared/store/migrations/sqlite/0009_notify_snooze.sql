-- Snoozes (issue 20): a care-plan contact holds one alert kind of one
-- patient for a stated time, from the alert page. The notifier tells the
-- others as usual (escalation passes the snoozer by) and shows every active
-- snooze to every contact on the alert page and in the alert's status.
CREATE TABLE notify_snooze (
    id          TEXT PRIMARY KEY,      -- (patient, contact, kind, created) hashed
    patient     TEXT NOT NULL,
    contact     TEXT NOT NULL,         -- who snoozed (participant id)
    kind        TEXT NOT NULL,         -- alert kind, e.g. low
    until_ms    INTEGER NOT NULL,
    created_ms  INTEGER NOT NULL,
    via         TEXT NOT NULL          -- link
);
CREATE INDEX notify_snooze_patient ON notify_snooze (patient, until_ms);
