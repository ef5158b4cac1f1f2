//! The outbox in PostgreSQL or SQLite: every source (alert, reminder,
//! notice) and every delivery is written before anything is sent; sends are
//! claimed with a lease, so a notifier that dies mid-send resends once after
//! the lease, and nothing is lost.

use glucochain_crypto::sha256_parts;
use glucochain_store::{Store, StoreError};
use sqlx::Row as _;
use sqlx::any::AnyRow;

/// A source the notifier took on.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceRow {
    /// Alert or reminder id.
    pub id: String,
    /// `alert`, `reminder` or `notice`.
    pub source_kind: String,
    /// Patient id.
    pub patient: String,
    /// Kind (`urgent_low`, `medication`, ...).
    pub kind: String,
    /// Level as stored (1 info, 2 warning, 3 urgent).
    pub severity: i32,
    /// Group id (an ack acknowledges the whole group).
    pub group_id: String,
    /// The detector's episode id (the source's own id for reminders and notices).
    pub episode_id: String,
    /// The event as received (protobuf).
    pub payload: Vec<u8>,
    /// When it was taken on.
    pub received_ms: i64,
    /// Escalation step reached.
    pub step: i32,
    /// When the next step is due.
    pub next_escalation_ms: Option<i64>,
    /// When acknowledged.
    pub acked_ms: Option<i64>,
    /// By whom.
    pub acked_by: Option<String>,
    /// How (`link`, `sms`, `api`, `chain`).
    pub ack_via: Option<String>,
    /// When resolved (the episode ended without an ack).
    pub resolved_ms: Option<i64>,
    /// The trace the event arrived in (W3C `traceparent`), continued by each send.
    pub traceparent: Option<String>,
}

impl SourceRow {
    /// A newly received source: its own group and episode, step 0, nothing acknowledged.
    pub fn received(
        id: &str,
        source_kind: &str,
        patient: &str,
        kind: &str,
        severity: i32,
        payload: Vec<u8>,
        now_ms: i64,
    ) -> Self {
        SourceRow {
            id: id.into(),
            source_kind: source_kind.into(),
            patient: patient.into(),
            kind: kind.into(),
            severity,
            group_id: id.into(),
            episode_id: id.into(),
            payload,
            received_ms: now_ms,
            step: 0,
            next_escalation_ms: None,
            acked_ms: None,
            acked_by: None,
            ack_via: None,
            resolved_ms: None,
            traceparent: None,
        }
    }
}

/// One message to one contact on one channel.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryRow {
    /// Id.
    pub id: String,
    /// Source.
    pub source_id: String,
    /// Contact participant id.
    pub contact: String,
    /// `email`, `sms` or `webhook`.
    pub channel: String,
    /// Address.
    pub address: String,
    /// Escalation step it belongs to.
    pub step: i32,
    /// `pending`, `sending`, `sent`, `failed` or `suppressed`.
    pub state: String,
    /// Attempts so far.
    pub attempts: i32,
    /// When (next) due.
    pub due_ms: i64,
    /// Lease while sending.
    pub lease_until_ms: Option<i64>,
    /// When sent.
    pub sent_ms: Option<i64>,
    /// Last error (no PHI).
    pub last_error: Option<String>,
    /// SMS reply code.
    pub ack_code: String,
    /// When its link was used to acknowledge.
    pub link_used_ms: Option<i64>,
    /// When written.
    pub created_ms: i64,
}

/// A delivery to write.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDelivery {
    /// Contact.
    pub contact: String,
    /// Channel name.
    pub channel: &'static str,
    /// Address.
    pub address: String,
    /// Step.
    pub step: u32,
    /// Due.
    pub due_ms: i64,
}

impl NewDelivery {
    /// Its id: the same (source, step, contact, channel, address) is the same delivery.
    pub fn id(&self, source_id: &str) -> String {
        let h = sha256_parts(&[
            source_id.as_bytes(),
            &self.step.to_be_bytes(),
            self.contact.as_bytes(),
            self.channel.as_bytes(),
            self.address.as_bytes(),
        ]);
        format!("d-{}", &h.to_string()[..32])
    }
}

/// A patient's open group.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupRow {
    /// Group id.
    pub group_id: String,
    /// Highest level.
    pub severity: i32,
    /// Highest step.
    pub step: i32,
    /// Newest alert.
    pub last_ms: i64,
}

/// Characters of an SMS reply code.
pub const ACK_CODE_LEN: usize = 8;

/// A fresh SMS reply code: eight characters of 32 (40 bits), no look-alike
/// characters. A reply must also come from the number the code was sent to,
/// within a day, and the gateway must sign it.
pub fn new_ack_code() -> String {
    use rand_core::RngCore as _;
    // 32 symbols: `% 32` of a uniform u32 is uniform.
    const ALPHABET: &[u8; 32] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    (0..ACK_CODE_LEN).map(|_| ALPHABET[(rand_core::OsRng.next_u32() % 32) as usize] as char).collect()
}

fn source_row(r: &AnyRow) -> Result<SourceRow, sqlx::Error> {
    Ok(SourceRow {
        id: r.try_get("id")?,
        source_kind: r.try_get("source_kind")?,
        patient: r.try_get("patient")?,
        kind: r.try_get("kind")?,
        severity: r.try_get("severity")?,
        group_id: r.try_get("group_id")?,
        episode_id: r.try_get("episode_id")?,
        payload: r.try_get("payload")?,
        received_ms: r.try_get("received_ms")?,
        step: r.try_get("step")?,
        next_escalation_ms: r.try_get("next_escalation_ms")?,
        acked_ms: r.try_get("acked_ms")?,
        acked_by: r.try_get("acked_by")?,
        ack_via: r.try_get("ack_via")?,
        resolved_ms: r.try_get("resolved_ms")?,
        traceparent: r.try_get("traceparent")?,
    })
}

fn delivery_row(r: &AnyRow) -> Result<DeliveryRow, sqlx::Error> {
    Ok(DeliveryRow {
        id: r.try_get("id")?,
        source_id: r.try_get("source_id")?,
        contact: r.try_get("contact")?,
        channel: r.try_get("channel")?,
        address: r.try_get("address")?,
        step: r.try_get("step")?,
        state: r.try_get("state")?,
        attempts: r.try_get("attempts")?,
        due_ms: r.try_get("due_ms")?,
        lease_until_ms: r.try_get("lease_until_ms")?,
        sent_ms: r.try_get("sent_ms")?,
        last_error: r.try_get("last_error")?,
        ack_code: r.try_get("ack_code")?,
        link_used_ms: r.try_get("link_used_ms")?,
        created_ms: r.try_get("created_ms")?,
    })
}

const SOURCE_COLS: &str = "id, source_kind, patient, kind, severity, group_id, episode_id, payload, received_ms, step, \
     next_escalation_ms, acked_ms, acked_by, ack_via, resolved_ms, traceparent";
const DELIVERY_COLS: &str = "id, source_id, contact, channel, address, step, state, attempts, due_ms, \
     lease_until_ms, sent_ms, last_error, ack_code, link_used_ms, created_ms";

async fn insert_deliveries(
    conn: &mut sqlx::AnyConnection,
    source_id: &str,
    deliveries: &[NewDelivery],
    now_ms: i64,
) -> Result<(), StoreError> {
    for d in deliveries {
        sqlx::query(
            "INSERT INTO notify_delivery (id, source_id, contact, channel, address, step, state, attempts, due_ms, \
             ack_code, created_ms) VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $8, $9) ON CONFLICT (id) DO NOTHING",
        )
        .bind(d.id(source_id))
        .bind(source_id.to_string())
        .bind(d.contact.clone())
        .bind(d.channel.to_string())
        .bind(d.address.clone())
        .bind(d.step as i32)
        .bind(d.due_ms)
        .bind(new_ack_code())
        .bind(now_ms)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// A contact's snooze of one alert kind of one patient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnoozeRow {
    /// The patient.
    pub patient: String,
    /// Who snoozed.
    pub contact: String,
    /// The alert kind held.
    pub kind: String,
    /// Until when.
    pub until_ms: i64,
    /// When.
    pub created_ms: i64,
    /// How (`link`).
    pub via: String,
}

/// The outbox over a service's [`Store`].
#[derive(Clone, Debug)]
pub struct Outbox {
    store: Store,
}

impl Outbox {
    /// The outbox in `store` (its migrations are applied at connect).
    pub fn new(store: Store) -> Self {
        Outbox { store }
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> bool {
        self.store.ping().await
    }

    /// Whether a source with this id was already taken on (a redelivered event).
    pub async fn has_source(&self, id: &str) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT 1 AS one FROM notify_source WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(self.store.pool())
            .await?;
        Ok(row.is_some())
    }

    /// The patient's newest open alert group.
    pub async fn open_group(&self, patient: &str) -> Result<Option<GroupRow>, StoreError> {
        let row = sqlx::query(
            "SELECT group_id, MAX(severity) AS severity, MAX(step) AS step, MAX(received_ms) AS last_ms \
             FROM notify_source WHERE patient = $1 AND source_kind = 'alert' AND acked_ms IS NULL \
             AND resolved_ms IS NULL GROUP BY group_id ORDER BY MAX(received_ms) DESC LIMIT 1",
        )
        .bind(patient.to_string())
        .fetch_optional(self.store.pool())
        .await?;
        row.map(|r| -> Result<GroupRow, sqlx::Error> {
            Ok(GroupRow {
                group_id: r.try_get("group_id")?,
                severity: r.try_get("severity")?,
                step: r.try_get("step")?,
                last_ms: r.try_get("last_ms")?,
            })
        })
        .transpose()
        .map_err(StoreError::from)
    }

    /// Takes on a source with its first deliveries, in one transaction.
    /// `carries_escalation`: this source now carries its group's escalation
    /// (the group's other sources stop escalating). Returns false (and writes
    /// nothing) when the source was already taken on.
    pub async fn take(
        &self,
        source: &SourceRow,
        deliveries: &[NewDelivery],
        carries_escalation: bool,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.store.pool().begin().await?;
        let inserted = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO notify_source ({SOURCE_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, NULL, NULL, NULL, NULL, $12) \
             ON CONFLICT (id) DO NOTHING"
        )))
        .bind(source.id.clone())
        .bind(source.source_kind.clone())
        .bind(source.patient.clone())
        .bind(source.kind.clone())
        .bind(source.severity)
        .bind(source.group_id.clone())
        .bind(source.episode_id.clone())
        .bind(source.payload.clone())
        .bind(source.received_ms)
        .bind(source.step)
        .bind(source.next_escalation_ms)
        .bind(source.traceparent.clone())
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !inserted {
            return Ok(false);
        }
        if carries_escalation {
            sqlx::query("UPDATE notify_source SET next_escalation_ms = NULL WHERE group_id = $1 AND id <> $2")
                .bind(source.group_id.clone())
                .bind(source.id.clone())
                .execute(&mut *tx)
                .await?;
        }
        insert_deliveries(&mut tx, &source.id, deliveries, now_ms).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Sources whose next escalation step is due.
    pub async fn due_escalations(&self, now_ms: i64) -> Result<Vec<SourceRow>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SOURCE_COLS} FROM notify_source WHERE next_escalation_ms IS NOT NULL AND next_escalation_ms <= $1 \
             AND acked_ms IS NULL AND resolved_ms IS NULL ORDER BY next_escalation_ms LIMIT 100"
        )))
        .bind(now_ms)
        .fetch_all(self.store.pool())
        .await?;
        rows.iter().map(source_row).collect::<Result<_, _>>().map_err(StoreError::from)
    }

    /// Moves a source to `step` with its deliveries, if it is still at
    /// `from_step` and unacknowledged (one transaction). Returns whether it moved.
    pub async fn advance(
        &self,
        source_id: &str,
        from_step: i32,
        step: u32,
        next_ms: Option<i64>,
        deliveries: &[NewDelivery],
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.store.pool().begin().await?;
        let moved = sqlx::query(
            "UPDATE notify_source SET step = $1, next_escalation_ms = $2 WHERE id = $3 AND step = $4 \
             AND acked_ms IS NULL AND resolved_ms IS NULL",
        )
        .bind(step as i32)
        .bind(next_ms)
        .bind(source_id.to_string())
        .bind(from_step)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !moved {
            return Ok(false);
        }
        insert_deliveries(&mut tx, source_id, deliveries, now_ms).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Deliveries due now, and sends whose lease ran out (the notifier died mid-send).
    pub async fn due_deliveries(&self, now_ms: i64, limit: i64) -> Result<Vec<DeliveryRow>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {DELIVERY_COLS} FROM notify_delivery WHERE (state = 'pending' AND due_ms <= $1) \
             OR (state = 'sending' AND lease_until_ms < $1) ORDER BY due_ms LIMIT $2"
        )))
        .bind(now_ms)
        .bind(limit)
        .fetch_all(self.store.pool())
        .await?;
        rows.iter().map(delivery_row).collect::<Result<_, _>>().map_err(StoreError::from)
    }

    /// Claims a delivery for sending until `lease_until_ms`; false if another
    /// sender has it or it is no longer due.
    pub async fn claim(&self, id: &str, now_ms: i64, lease_until_ms: i64) -> Result<bool, StoreError> {
        let n = sqlx::query(
            "UPDATE notify_delivery SET state = 'sending', lease_until_ms = $1, attempts = attempts + 1 \
             WHERE id = $2 AND ((state = 'pending' AND due_ms <= $3) OR (state = 'sending' AND lease_until_ms < $3))",
        )
        .bind(lease_until_ms)
        .bind(id.to_string())
        .bind(now_ms)
        .execute(self.store.pool())
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// Records a send.
    pub async fn sent(&self, id: &str, now_ms: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE notify_delivery SET state = 'sent', sent_ms = $1, lease_until_ms = NULL, last_error = NULL WHERE id = $2")
            .bind(now_ms)
            .bind(id.to_string())
            .execute(self.store.pool())
            .await?;
        Ok(())
    }

    /// Records a failed attempt: retry at `retry_at_ms`, or give up (`None`).
    pub async fn failed(&self, id: &str, error: &str, retry_at_ms: Option<i64>) -> Result<(), StoreError> {
        let (state, due) = match retry_at_ms {
            Some(t) => ("pending", Some(t)),
            None => ("failed", None),
        };
        sqlx::query(
            "UPDATE notify_delivery SET state = $1, due_ms = COALESCE($2, due_ms), lease_until_ms = NULL, \
             last_error = $3 WHERE id = $4",
        )
        .bind(state)
        .bind(due)
        .bind(error.chars().take(300).collect::<String>())
        .bind(id.to_string())
        .execute(self.store.pool())
        .await?;
        Ok(())
    }

    /// Makes the deliveries on `channel` waiting to be retried after a
    /// failure due now: the channel just worked again, so an urgent alert
    /// waits for no backoff left over from the outage. Returns how many.
    pub async fn retry_channel_now(&self, channel: &str, now_ms: i64) -> Result<u64, StoreError> {
        let r = sqlx::query(
            "UPDATE notify_delivery SET due_ms = $1 \
             WHERE state = 'pending' AND channel = $2 AND attempts > 0 AND due_ms > $1",
        )
        .bind(now_ms)
        .bind(channel.to_string())
        .execute(self.store.pool())
        .await?;
        Ok(r.rows_affected())
    }

    /// A delivery that is no longer needed (acknowledged meanwhile).
    pub async fn suppress(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE notify_delivery SET state = 'suppressed', lease_until_ms = NULL WHERE id = $1")
            .bind(id.to_string())
            .execute(self.store.pool())
            .await?;
        Ok(())
    }

    /// Acknowledges a whole group: escalation stops and unsent deliveries
    /// are suppressed. Returns whether this was the first acknowledgement.
    pub async fn ack_group(&self, group_id: &str, by: &str, via: &str, now_ms: i64) -> Result<bool, StoreError> {
        let mut tx = self.store.pool().begin().await?;
        let n = sqlx::query(
            "UPDATE notify_source SET acked_ms = $1, acked_by = $2, ack_via = $3, next_escalation_ms = NULL \
             WHERE group_id = $4 AND acked_ms IS NULL",
        )
        .bind(now_ms)
        .bind(by.to_string())
        .bind(via.to_string())
        .bind(group_id.to_string())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query(
            "UPDATE notify_delivery SET state = 'suppressed' WHERE state = 'pending' \
             AND source_id IN (SELECT id FROM notify_source WHERE group_id = $1)",
        )
        .bind(group_id.to_string())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(n > 0)
    }

    /// Ends a detector episode: its sources are resolved, stop escalating,
    /// and their unsent deliveries are suppressed. Returns how many sources
    /// it ended (0 when they were acknowledged or resolved already).
    pub async fn resolve_episode(&self, patient: &str, episode_id: &str, now_ms: i64) -> Result<u64, StoreError> {
        let mut tx = self.store.pool().begin().await?;
        let n = sqlx::query(
            "UPDATE notify_source SET resolved_ms = $1, next_escalation_ms = NULL \
             WHERE patient = $2 AND episode_id = $3 AND acked_ms IS NULL AND resolved_ms IS NULL",
        )
        .bind(now_ms)
        .bind(patient.to_string())
        .bind(episode_id.to_string())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query(
            "UPDATE notify_delivery SET state = 'suppressed' WHERE state = 'pending' AND source_id IN \
             (SELECT id FROM notify_source WHERE patient = $1 AND episode_id = $2 AND resolved_ms IS NOT NULL)",
        )
        .bind(patient.to_string())
        .bind(episode_id.to_string())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(n)
    }

    /// A source by id.
    pub async fn source(&self, id: &str) -> Result<Option<SourceRow>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {SOURCE_COLS} FROM notify_source WHERE id = $1")))
            .bind(id.to_string())
            .fetch_optional(self.store.pool())
            .await?;
        row.as_ref().map(source_row).transpose().map_err(StoreError::from)
    }

    /// The sources of a group, oldest first.
    pub async fn group(&self, group_id: &str) -> Result<Vec<SourceRow>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SOURCE_COLS} FROM notify_source WHERE group_id = $1 ORDER BY received_ms, id"
        )))
        .bind(group_id.to_string())
        .fetch_all(self.store.pool())
        .await?;
        rows.iter().map(source_row).collect::<Result<_, _>>().map_err(StoreError::from)
    }

    /// A delivery by id.
    pub async fn delivery(&self, id: &str) -> Result<Option<DeliveryRow>, StoreError> {
        let row =
            sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {DELIVERY_COLS} FROM notify_delivery WHERE id = $1")))
                .bind(id.to_string())
                .fetch_optional(self.store.pool())
                .await?;
        row.as_ref().map(delivery_row).transpose().map_err(StoreError::from)
    }

    /// The deliveries of a group's sources, in order.
    pub async fn group_deliveries(&self, group_id: &str) -> Result<Vec<DeliveryRow>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {DELIVERY_COLS} FROM notify_delivery WHERE source_id IN \
             (SELECT id FROM notify_source WHERE group_id = $1) ORDER BY step, created_ms, id"
        )))
        .bind(group_id.to_string())
        .fetch_all(self.store.pool())
        .await?;
        rows.iter().map(delivery_row).collect::<Result<_, _>>().map_err(StoreError::from)
    }

    /// The newest SMS delivery to `address` with reply code `code`, sent at
    /// or after `sent_since_ms` (a code acknowledges only for a while).
    pub async fn by_sms_code(
        &self,
        address: &str,
        code: &str,
        sent_since_ms: i64,
    ) -> Result<Option<DeliveryRow>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM notify_delivery d WHERE d.channel = 'sms' AND d.address = $1 AND d.ack_code = $2 \
             AND d.sent_ms IS NOT NULL AND d.sent_ms >= $3 ORDER BY d.created_ms DESC LIMIT 1",
            DELIVERY_COLS.split(", ").map(|c| format!("d.{c}")).collect::<Vec<_>>().join(", ")
        )))
        .bind(address.to_string())
        .bind(code.to_string())
        .bind(sent_since_ms)
        .fetch_optional(self.store.pool())
        .await?;
        row.as_ref().map(delivery_row).transpose().map_err(StoreError::from)
    }

    /// Marks a delivery's link used; false if it already was (single use).
    pub async fn use_link(&self, delivery_id: &str, now_ms: i64) -> Result<bool, StoreError> {
        let n = sqlx::query("UPDATE notify_delivery SET link_used_ms = $1 WHERE id = $2 AND link_used_ms IS NULL")
            .bind(now_ms)
            .bind(delivery_id.to_string())
            .execute(self.store.pool())
            .await?
            .rows_affected();
        Ok(n == 1)
    }

    /// Deliveries not yet sent or given up (pending or sending).
    pub async fn depth(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM notify_delivery WHERE state IN ('pending', 'sending')")
            .fetch_one(self.store.pool())
            .await?;
        Ok(row.try_get::<i64, _>("n")?)
    }

    /// Records that `contact` snoozed `kind` alerts of `patient` until
    /// `until_ms`, and lets the escalation of `group_id` move on now (the
    /// snoozer is passed by; the others are told without waiting for them).
    pub async fn snooze(&self, s: &SnoozeRow, group_id: &str) -> Result<(), StoreError> {
        use sha2::Digest;
        let id = hex::encode(sha2::Sha256::digest(
            format!("{}\n{}\n{}\n{}", s.patient, s.contact, s.kind, s.created_ms).as_bytes(),
        ));
        let mut tx = self.store.pool().begin().await?;
        sqlx::query(
            "INSERT INTO notify_snooze (id, patient, contact, kind, until_ms, created_ms, via) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING",
        )
        .bind(id)
        .bind(s.patient.clone())
        .bind(s.contact.clone())
        .bind(s.kind.clone())
        .bind(s.until_ms)
        .bind(s.created_ms)
        .bind(s.via.clone())
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE notify_source SET next_escalation_ms = $1 WHERE group_id = $2 \
             AND next_escalation_ms IS NOT NULL AND next_escalation_ms > $1",
        )
        .bind(s.created_ms)
        .bind(group_id.to_string())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The snoozes of `patient` still in force at `now_ms`, the latest end first.
    pub async fn active_snoozes(&self, patient: &str, now_ms: i64) -> Result<Vec<SnoozeRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT patient, contact, kind, until_ms, created_ms, via FROM notify_snooze \
             WHERE patient = $1 AND until_ms > $2 ORDER BY until_ms DESC, contact",
        )
        .bind(patient.to_string())
        .bind(now_ms)
        .fetch_all(self.store.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(SnoozeRow {
                    patient: r.try_get("patient")?,
                    contact: r.try_get("contact")?,
                    kind: r.try_get("kind")?,
                    until_ms: r.try_get("until_ms")?,
                    created_ms: r.try_get("created_ms")?,
                    via: r.try_get("via")?,
                })
            })
            .collect()
    }

    /// Sources of `patient` whose group this alert id belongs to (by alert id).
    pub async fn group_of(&self, source_id: &str) -> Result<Option<String>, StoreError> {
        Ok(self.source(source_id).await?.map(|s| s.group_id))
    }
}
