//! The contracts engine: the verified chain (shared `StoredChain`), an index
//! of each patient's newest record per code (for check-ups), access
//! decisions over NATS, break-glass notifications and clinical reminders.

use crate::reminders::{Reminder, ReminderKind, due_reminders};
use bytes::Bytes;
use futures::StreamExt as _;
use glucochain_bus::streams::StreamSpec;
use glucochain_bus::{Bus, subjects};
use glucochain_consensus::block::Block;
use glucochain_follow::{StoredChain, follow_stored, from_stored};
use glucochain_state::ReadDecision;
use glucochain_store::Store;
use glucochain_types::genesis::Genesis;
use glucochain_types::time::Timestamp;
use glucochain_types::tx::CarePlan;
use glucochain_types::tx::TxBody;
use glucochain_types::{ParticipantId, Transaction};
use glucochain_wire::v1 as wire;
use prost::Message as _;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// A break-glass access committed on the chain, to tell the patient and caregivers.
#[derive(Debug, Clone)]
pub struct BreakGlass {
    /// The `access.emergency` transaction.
    pub tx_hash: String,
    /// The patient.
    pub patient: ParticipantId,
    /// The clinician.
    pub clinician: ParticipantId,
    /// What the patient and caregivers are told (who, and why as the clinician gave it).
    pub notice: String,
    /// Block time.
    pub at: Timestamp,
}

/// The engine's state.
pub struct Engine {
    /// The verified chain.
    pub chain: Arc<StoredChain>,
    /// The database.
    pub store: Store,
    /// Newest record time per (patient, code).
    pub last_record: RwLock<HashMap<(ParticipantId, String), Timestamp>>,
    /// Each patient's committed `medication.taken` as the chain holds them
    /// (when, the transaction, the commitment; what was taken is the sealed
    /// body), oldest first, the last 512.
    pub taken: RwLock<HashMap<ParticipantId, Vec<Taken>>>,
    pending_notices: Mutex<Vec<BreakGlass>>,
}

/// A committed `medication.taken`, as the chain holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Taken {
    /// When it was taken.
    pub at: Timestamp,
    /// The transaction (where the vault keeps what was taken).
    pub tx: glucochain_crypto::Hash32,
    /// The commitment to what was taken.
    pub commitment: glucochain_crypto::Hash32,
}

/// Name of the reminder cursor in the database.
pub const REMINDER_CURSOR: &str = "contracts.reminders";

impl Engine {
    /// Opens the database, re-verifies the stored chain and indexes records.
    pub async fn open(store: Store, genesis: &Genesis) -> anyhow::Result<Arc<Self>> {
        let chain = Arc::new(StoredChain::open(store.clone(), genesis).await?);
        let engine = Arc::new(Engine {
            chain,
            store: store.clone(),
            last_record: RwLock::new(HashMap::new()),
            taken: RwLock::new(HashMap::new()),
            pending_notices: Mutex::new(Vec::new()),
        });
        let top = engine.chain.height();
        for h in 1..=top {
            if let Some(stored) = store.block(h).await? {
                let (block, _) = from_stored(&stored)?;
                engine.index(&block, false);
            }
        }
        Ok(engine)
    }

    /// Indexes a newly committed block; with `notify`, queues break-glass notices.
    pub fn index(&self, block: &Block, notify: bool) {
        let mut last = self.last_record.write().expect("index lock");
        for jws in &block.txs {
            let Ok(tx) = Transaction::parse(std::str::from_utf8(jws).unwrap_or(""), &Default::default()) else {
                continue;
            };
            let Some(patient) = tx.payload.patient.clone() else { continue };
            match &tx.payload.body {
                TxBody::ObservationRecord(r) => {
                    // The envelope's codes and latest time (the values are in the vault).
                    for c in r.codes.iter().flatten() {
                        let e = last.entry((patient.clone(), c.code.clone())).or_insert(r.effective.end);
                        *e = (*e).max(r.effective.end);
                    }
                }
                TxBody::DocumentAdd(d) => {
                    if let Some(code) = &d.code {
                        let e = last.entry((patient.clone(), code.clone())).or_insert(block.header.time);
                        *e = (*e).max(block.header.time);
                    }
                }
                TxBody::MedicationTaken(m) => {
                    let mut taken = self.taken.write().expect("taken lock");
                    let list = taken.entry(patient.clone()).or_default();
                    list.push(Taken { at: m.taken_at, tx: tx.hash, commitment: m.body_commitment });
                    list.sort_by_key(|t| t.at);
                    if list.len() > 512 {
                        list.remove(0);
                    }
                }
                TxBody::AccessEmergency(a) if notify => {
                    self.pending_notices.lock().expect("notices lock").push(BreakGlass {
                        tx_hash: tx.hash.to_string(),
                        patient,
                        clinician: tx.signer.clone(),
                        notice: a.notice(&tx.signer),
                        at: block.header.time,
                    });
                }
                _ => {}
            }
        }
    }

    /// The contract rules' decision for a read.
    pub fn decide(
        &self,
        reader: &ParticipantId,
        patient: &ParticipantId,
        purpose: &str,
        at: Timestamp,
    ) -> ReadDecision {
        let view = self.chain.view.read().expect("view lock");
        glucochain_state::decide_read(view.state(), reader, patient, purpose, at)
    }

    /// Reminders due in `(from, to]`. Each active plan's schedule is its
    /// sealed body, opened from the record vault (ADR 0016); a plan whose
    /// body is erased or missing has no reminders (logged and counted), and
    /// a vault that cannot be reached is an error (the window is tried
    /// again from the stored cursor).
    pub async fn reminders(
        &self,
        vault: &glucochain_vault::replica::VaultReader,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<Reminder>, glucochain_vault::VaultError> {
        let plans = self.active_plans(vault, None).await?;
        Ok(self.due(&plans, from, to))
    }

    /// Reminders of the opened `plans` due in `(from, to]`.
    pub fn due(&self, plans: &[(ParticipantId, CarePlan)], from: Timestamp, to: Timestamp) -> Vec<Reminder> {
        let last = self.last_record.read().expect("index lock");
        due_reminders(plans, &last, from, to)
    }

    /// The care plans in force (of `only` that patient, or of everyone),
    /// each opened from the record vault; a plan whose body is erased or
    /// missing is left out (logged and counted).
    pub async fn active_plans(
        &self,
        vault: &glucochain_vault::replica::VaultReader,
        only: Option<&ParticipantId>,
    ) -> Result<Vec<(ParticipantId, CarePlan)>, glucochain_vault::VaultError> {
        let mut active = {
            let view = self.chain.view.read().expect("view lock");
            crate::reminders::active_versions(view.state().contracts())
        };
        if let Some(p) = only {
            active.retain(|(patient, _)| patient == p);
        }
        let mut plans = Vec::with_capacity(active.len());
        for (patient, v) in active {
            match vault.careplan(&patient, &v.proposal_tx, &v.plan).await? {
                Some(plan) => plans.push((patient, plan)),
                None => {
                    metrics::counter!("glucochain_contracts_plan_unreadable_total").increment(1);
                    tracing::warn!(patient = %patient, plan = %v.plan.plan_id, "care plan body erased or not in the vault: no reminders");
                }
            }
        }
        Ok(plans)
    }

    /// When each medication was recorded as taken by or for `patient`
    /// between `from` and `to`, by medication name (lower case): the
    /// sealed bodies opened from the vault, after the caller audited the read.
    pub async fn taken_between(
        &self,
        vault: &glucochain_vault::replica::VaultReader,
        patient: &ParticipantId,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<HashMap<String, Vec<Timestamp>>, glucochain_vault::VaultError> {
        use glucochain_types::sealed::RecordBody;
        use glucochain_vault::replica::{Opened, Wanted};
        let refs: Vec<Taken> = {
            let taken = self.taken.read().expect("taken lock");
            taken.get(patient).map(|l| l.iter().filter(|t| t.at >= from && t.at <= to).cloned().collect())
        }
        .unwrap_or_default();
        let mut by_name: HashMap<String, Vec<Timestamp>> = HashMap::new();
        for t in refs {
            let wanted = Wanted::of(&t.tx, patient, glucochain_types::DataClass::Private);
            if let Opened::Body { body: RecordBody::MedicationTaken(b), .. } =
                vault.open_committed(&wanted, glucochain_types::TxType::MedicationTaken, &t.commitment).await?
            {
                by_name.entry(b.medication.to_lowercase()).or_default().push(t.at);
            }
        }
        Ok(by_name)
    }

    fn take_notices(&self) -> Vec<BreakGlass> {
        std::mem::take(&mut *self.pending_notices.lock().expect("notices lock"))
    }
}

/// Follows `BLOCKS` (durable consumer `contracts`).
pub async fn follow(engine: Arc<Engine>, bus: Bus) -> anyhow::Result<()> {
    let e = engine.clone();
    let on_new = Box::new(move |b: &Block| {
        e.index(b, true);
        metrics::gauge!("glucochain_contracts_height").set(b.header.height as f64);
    });
    follow_stored(engine.chain.clone(), bus, "contracts", on_new).await?;
    Ok(())
}

fn scope_wire(s: &glucochain_types::tx::ConsentScope) -> wire::AccessScope {
    let name = |v: serde_json::Value| v.as_str().unwrap_or_default().to_string();
    wire::AccessScope {
        data_classes: s.data_classes.iter().map(|c| name(serde_json::to_value(c).unwrap_or_default())).collect(),
        record_types: s.record_types.iter().map(|c| name(serde_json::to_value(c).unwrap_or_default())).collect(),
        codes: s.codes.clone(),
    }
}

/// The wire form of a decision.
pub fn decision_wire(d: &ReadDecision, height: u64) -> wire::AuthzDecision {
    match d {
        ReadDecision::All { reason } => {
            wire::AuthzDecision { allow: true, all: true, scopes: vec![], reason: reason.clone(), height }
        }
        ReadDecision::Scoped { scopes, reason } => wire::AuthzDecision {
            allow: true,
            all: false,
            scopes: scopes.iter().map(scope_wire).collect(),
            reason: reason.clone(),
            height,
        },
        ReadDecision::Deny { reason } => {
            wire::AuthzDecision { allow: false, all: false, scopes: vec![], reason: reason.clone(), height }
        }
    }
}

pub(crate) async fn decide_request(engine: &Engine, payload: &[u8]) -> wire::AuthzDecision {
    let Ok(req) = wire::AuthzRequest::decode(payload) else {
        return decision_wire(&ReadDecision::Deny { reason: "malformed request".into() }, 0);
    };
    let (Ok(reader), Ok(patient)) = (ParticipantId::parse(&req.reader), ParticipantId::parse(&req.patient)) else {
        return decision_wire(&ReadDecision::Deny { reason: "malformed participant id".into() }, 0);
    };
    // Catch up with the asker's view first (bounded wait). A decision on an
    // older state could grant what a revocation the asker already holds
    // took away: past the wait, the answer is a refusal that says so, never
    // a grant (the ledger answers 503 for it).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while engine.chain.height() < req.min_height && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let height = engine.chain.height();
    if height < req.min_height {
        metrics::counter!("glucochain_authz_decisions_total", "allow" => "behind").increment(1);
        let reason = format!("the contracts engine is at height {height}, behind the {} asked for", req.min_height);
        return decision_wire(&ReadDecision::Deny { reason }, height);
    }
    let at = if req.at_ms > 0 { Timestamp::from_unix_ms(req.at_ms) } else { Timestamp::now() };
    let d = engine.decide(&reader, &patient, &req.purpose, at);
    metrics::counter!("glucochain_authz_decisions_total", "allow" => d.allows().to_string()).increment(1);
    decision_wire(&d, height)
}

/// Answers `emr.authz.decide` (queue group `contracts`, so replicas share the work).
pub async fn serve_authz(engine: Arc<Engine>, bus: Bus) -> anyhow::Result<()> {
    let mut sub = bus.client().queue_subscribe(subjects::AUTHZ_DECIDE, "contracts".into()).await?;
    while let Some(m) = sub.next().await {
        let Some(reply) = m.reply.clone() else { continue };
        let (engine, bus) = (engine.clone(), bus.clone());
        // One task per request: a request waiting for the engine to catch up does not hold up others.
        tokio::spawn(async move {
            let answer = decide_request(&engine, &m.payload).await;
            let _ = bus.client().publish(reply, Bytes::from(answer.encode_to_vec())).await;
        });
    }
    anyhow::bail!("authz subscription ended")
}

/// Publishes break-glass notices on `emr.alert.break_glass` (ALERTS stream,
/// msg-id = the access transaction), for the notifier to tell the patient
/// and their caregivers.
pub async fn publish_notices(engine: Arc<Engine>, bus: Bus) -> anyhow::Result<()> {
    bus.ensure_stream(&StreamSpec::alerts()).await?;
    let mut pending: Vec<BreakGlass> = Vec::new();
    loop {
        pending.extend(engine.take_notices());
        let mut failed = Vec::new();
        for n in pending.drain(..) {
            let alert = wire::Alert {
                alert_id: format!("break-glass-{}", &n.tx_hash[..16]),
                patient: n.patient.as_str().into(),
                kind: wire::AlertKind::BreakGlass as i32,
                severity: wire::Severity::Urgent as i32,
                episode_id: n.tx_hash.clone(),
                observed_at_ms: n.at.unix_ms(),
                reason: n.notice.clone(),
                // The notifier checks the access on its own view of the chain, once it holds this height.
                chain_height: engine.chain.height(),
                ..Default::default()
            };
            match bus.publish(&subjects::alert("break_glass"), &n.tx_hash, Bytes::from(alert.encode_to_vec())).await {
                Ok(_) => tracing::info!(patient = %n.patient, clinician = %n.clinician, "break-glass notice published"),
                Err(e) => {
                    tracing::warn!(error = %e, "break-glass notice not published; will retry");
                    failed.push(n);
                }
            }
        }
        pending = failed;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Emits reminders as their time comes, every `tick`: the window since the
/// saved cursor, published on `REMINDERS` with the slot id as message id,
/// then the cursor advances — so a restart neither loses nor repeats one.
pub async fn run_reminders(
    engine: Arc<Engine>,
    vault: glucochain_vault::replica::VaultReader,
    bus: Bus,
    tick: Duration,
    clock: Clock,
) -> anyhow::Result<()> {
    bus.ensure_stream(&StreamSpec::reminders()).await?;
    let mut interval = tokio::time::interval(tick);
    loop {
        interval.tick().await;
        let now = clock.now();
        // A database outage skips ticks (the window is retried from the
        // stored cursor); it does not stop the engine.
        let from = match engine.store.cursor(REMINDER_CURSOR).await {
            Ok(Some(ms)) => Timestamp::from_unix_ms(ms),
            Ok(None) => now,
            Err(e) => {
                tracing::warn!(error = %e, "reminder cursor unreadable; retrying at the next tick");
                continue;
            }
        };
        let due = match engine.reminders(&vault, from, now).await {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!(error = %e, "record vault unreadable (care plans); retrying at the next tick");
                continue;
            }
        };
        let mut ok = true;
        for r in &due {
            let msg = wire::Reminder {
                reminder_id: r.id.clone(),
                patient: r.patient.as_str().into(),
                kind: match r.kind {
                    ReminderKind::Medication => wire::ReminderKind::Medication,
                    ReminderKind::Checkup => wire::ReminderKind::Checkup,
                    ReminderKind::CheckupOverdue => wire::ReminderKind::CheckupOverdue,
                } as i32,
                plan_id: r.plan_id.clone(),
                subject: r.subject.clone(),
                text: r.text.clone(),
                due_at_ms: r.due.unix_ms(),
            };
            if let Err(e) =
                bus.publish(&subjects::reminder(r.kind.as_str()), &r.id, Bytes::from(msg.encode_to_vec())).await
            {
                tracing::warn!(error = %e, "reminder not published; the window is retried");
                ok = false;
                break;
            }
            metrics::counter!("glucochain_reminders_total", "kind" => r.kind.as_str()).increment(1);
        }
        if ok && let Err(e) = engine.store.set_cursor(REMINDER_CURSOR, now.unix_ms()).await {
            // Published but not recorded: the window is sent again (same
            // reminder ids, so JetStream drops the duplicates).
            tracing::warn!(error = %e, "reminder cursor not stored; the window is retried");
        }
    }
}

pub use glucochain_types::time::Clock;

#[cfg(test)]
mod tests {
    use super::*;
    use glucochain_crypto::KeyPair;
    use glucochain_types::genesis::{ConsensusParams, GenesisAdmin, GenesisValidator};

    #[tokio::test]
    async fn m3_a_request_for_a_height_the_engine_has_not_reached_is_refused_not_answered_from_older_state() {
        // Issue 19, M3: after 2 s the engine answered from its older state.
        let admin = KeyPair::from_seed([1; 32]);
        let genesis = Genesis {
            chain_id: glucochain_types::ChainId::parse("glucochain-test").unwrap(),
            genesis_time: Timestamp::from_unix_ms(1_790_000_000_000),
            validators: vec![GenesisValidator {
                name: "v0".into(),
                public_key: KeyPair::from_seed([2; 32]).public(),
                power: 10,
            }],
            admins: vec![GenesisAdmin { name: "admin".into(), public_key: admin.public() }],
            params: ConsensusParams::default(),
        };
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&format!("sqlite://{}", dir.path().join("c.db").display())).await.unwrap();
        let engine = Engine::open(store, &genesis).await.unwrap();
        let admin_id = ParticipantId::from_public_key(&admin.public());
        let patient = ParticipantId::from_public_key(&KeyPair::from_seed([3; 32]).public());
        let ask = |min_height| wire::AuthzRequest {
            reader: admin_id.to_string(),
            patient: patient.to_string(),
            purpose: "TREAT".into(),
            at_ms: 0,
            min_height,
        };
        // At its own height an admin's read is granted in full ...
        let now = decide_request(&engine, &ask(0).encode_to_vec()).await;
        assert!(now.allow && now.all, "{now:?}");
        // ... but asked for a height it has not reached, it refuses and says how far it is.
        let ahead = decide_request(&engine, &ask(5).encode_to_vec()).await;
        assert!(!ahead.allow && !ahead.all, "{ahead:?}");
        assert_eq!(ahead.height, 0);
        assert!(ahead.reason.contains("behind"), "{}", ahead.reason);
    }
}
