//! The GlucoChain detector service: CGM observations are taken from the
//! `TXS` stream as soon as ingest accepts them (a durable consumer, so an
//! alert waits neither for a block nor is lost while the detector
//! restarts), on a chain view at least as recent as ingest's; each patient's
//! readings go through the shared detector (`glucochain-detect`) configured
//! from the patient's active care plan; every alert is published at once on
//! `emr.alert.<kind>` (ALERTS stream) for the notifier, and recorded on the
//! chain as an `alert.raise` transaction signed by the detector's own key.

pub mod config;

pub use config::DetectorServiceConfig;

use anyhow::Context as _;
use bytes::Bytes;

use glucochain_api::service::{ended, http_server};
use glucochain_bus::streams::{ConsumerSpec, StreamSpec};
use glucochain_bus::{Bus, subjects};
use glucochain_crypto::{Hash32, KeyPair, sha256, sha256_parts};
use glucochain_detect::treatments::{InsulinProfile, Treatment};
use glucochain_detect::{Alert, DetectorConfig, MIN, PatientDetector, Reading, Resolved, kind_name};
use glucochain_follow::service_event::sign_alert;
use glucochain_follow::{StoredChain, follow_stored};
use glucochain_telemetry::http::Readiness;
use glucochain_types::genesis::Genesis;
use glucochain_types::ids::LocalId;
use glucochain_types::sealed::RecordBody;
use glucochain_types::time::Timestamp;
use glucochain_types::tx::{AlertKind, AlertRaise, Severity, TxBody, TxPayload};
use glucochain_types::{ChainId, ParticipantId, Transaction};
use glucochain_vault::VaultError;
use glucochain_vault::record_vault::Lookup;
use glucochain_vault::replica::{VaultReader, Wanted};
use glucochain_wire::v1 as wire;
use prost::Message as _;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::Instrument as _;

/// How long a reading waits for the chain view to reach the height ingest
/// accepted it at (normally milliseconds: the block is on its way).
const VIEW_PATIENCE: Duration = Duration::from_secs(5);

/// How long a reading waits for a body the record vault does not hold.
/// Short: the readings of every patient wait behind it, and ingest stores
/// a body before it publishes its transaction, so only a replica that lags
/// by moments (a direct get from a stream follower) or a damaged vault
/// answers "no body".
const MISSING_PATIENCE: Duration = Duration::from_secs(5);

/// The first and the longest wait between two tries of what failed on the
/// way to an alert (a vault read, a publish).
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// Why a reading's body could not be had (yet).
#[derive(Debug, thiserror::Error)]
enum NotYet {
    /// The vault holds no body for it (not yet, or damaged).
    #[error("the record vault holds no body for it")]
    Missing,
    /// The vault did not answer.
    #[error("the record vault did not answer: {0}")]
    Vault(String),
}

impl NotYet {
    fn label(&self) -> &'static str {
        match self {
            NotYet::Missing => "missing",
            NotYet::Vault(_) => "vault",
        }
    }
}

/// Runs `publish` until it succeeds, waiting longer after each failure and
/// keeping `m` in progress meanwhile.
async fn until_published<F, Fut>(m: &async_nats::jetstream::Message, what: &str, mut publish: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let mut wait = RETRY_FIRST;
    while let Err(e) = publish().await {
        tracing::warn!(error = format!("{e:#}"), what, "not published; trying again");
        metrics::counter!("glucochain_detector_publish_retries_total").increment(1);
        in_progress(m).await;
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(RETRY_MAX);
    }
}

/// Tells JetStream a message is still being worked on (its ack wait starts again).
async fn in_progress(m: &async_nats::jetstream::Message) {
    if let Err(e) = m.ack_with(async_nats::jetstream::AckKind::Progress).await {
        tracing::debug!(error = %e, "progress ack failed");
    }
}

struct PatientState {
    detector: PatientDetector,
    /// The care plan version the detector was configured from.
    plan: Option<(String, u32)>,
    /// Whether that plan's clinical content was opened (else defaults).
    plan_opened: bool,
    last_at: i64,
    /// The last treatment (by [`Treatments`] sequence) fed to the detector.
    treated: u64,
}

/// Insulin and carbohydrates from committed `medication.taken`
/// transactions, per patient, for the last hours they may still act. A
/// block brings only envelopes (when, and the commitment): what was taken
/// is the sealed body, opened from the vault when the detector next judges
/// a reading of that patient (so it opens only watched patients' records).
#[derive(Default)]
struct Treatments {
    seq: u64,
    by_patient: HashMap<ParticipantId, Vec<(u64, Treatment)>>,
    /// Committed `medication.taken` not opened yet: (tx, commitment, taken at).
    unopened: HashMap<ParticipantId, Vec<(glucochain_crypto::Hash32, glucochain_crypto::Hash32, i64)>>,
}

/// How long a recorded treatment is kept: longer than insulin acts.
const TREATMENT_KEEP_MS: i64 = 8 * 60 * MIN;

impl Treatments {
    /// Notes a committed block's `medication.taken` transactions.
    fn take_block(&mut self, block: &glucochain_consensus::block::Block) {
        let now = Timestamp::now().unix_ms();
        for raw in &block.txs {
            let Some(tx) = std::str::from_utf8(raw).ok().and_then(|j| Transaction::parse(j, &Default::default()).ok())
            else {
                continue;
            };
            let (TxBody::MedicationTaken(m), Some(patient)) = (&tx.payload.body, tx.payload.patient.clone()) else {
                continue;
            };
            let at_ms = m.taken_at.unix_ms();
            if at_ms >= now - TREATMENT_KEEP_MS {
                self.unopened.entry(patient).or_default().push((tx.hash, m.body_commitment, at_ms));
            }
        }
    }

    /// Takes the patient's unopened treatments (to open them).
    fn unopened_of(
        &mut self,
        patient: &ParticipantId,
    ) -> Vec<(glucochain_crypto::Hash32, glucochain_crypto::Hash32, i64)> {
        self.unopened.remove(patient).unwrap_or_default()
    }

    /// Records what an opened `medication.taken` gave.
    fn record(&mut self, patient: &ParticipantId, at_ms: i64, b: &glucochain_types::tx::MedicationTakenBody) {
        let list = self.by_patient.entry(patient.clone()).or_default();
        for t in [
            b.insulin_units.map(|units| Treatment::Insulin { at_ms, units }),
            b.carbs_g.map(|grams| Treatment::Carbs { at_ms, grams }),
        ]
        .into_iter()
        .flatten()
        {
            self.seq += 1;
            list.push((self.seq, t));
        }
        let now = Timestamp::now().unix_ms();
        list.retain(|(_, t)| t.at_ms() >= now - TREATMENT_KEEP_MS);
    }

    /// The patient's treatments recorded after sequence `after`.
    fn since(&self, patient: &ParticipantId, after: u64) -> Vec<(u64, Treatment)> {
        self.by_patient
            .get(patient)
            .map(|l| l.iter().filter(|(s, _)| *s > after).copied().collect())
            .unwrap_or_default()
    }
}

/// The service's state.
pub struct DetectorService {
    chain: Arc<StoredChain>,
    bus: Bus,
    vault: VaultReader,
    key: KeyPair,
    chain_id: ChainId,
    patients: Mutex<HashMap<ParticipantId, PatientState>>,
    treatments: Arc<Mutex<Treatments>>,
    /// Which patients' access logs already hold an entry for this window.
    audited: glucochain_follow::audit::OpeningLog,
}

fn severity(kind: AlertKind) -> Severity {
    match kind {
        AlertKind::UrgentLow => Severity::Urgent,
        AlertKind::Low
        | AlertKind::PredictedLow
        | AlertKind::RapidFall
        | AlertKind::VeryHigh
        | AlertKind::PredictedHigh => Severity::Warning,
        _ => Severity::Info,
    }
}

fn wire_kind(kind: AlertKind) -> wire::AlertKind {
    match kind {
        AlertKind::UrgentLow => wire::AlertKind::UrgentLow,
        AlertKind::Low => wire::AlertKind::Low,
        AlertKind::High => wire::AlertKind::High,
        AlertKind::VeryHigh => wire::AlertKind::VeryHigh,
        AlertKind::RapidFall => wire::AlertKind::RapidFall,
        AlertKind::RapidRise => wire::AlertKind::RapidRise,
        AlertKind::PredictedLow => wire::AlertKind::PredictedLow,
        AlertKind::Anomaly => wire::AlertKind::Anomaly,
        AlertKind::SignalLoss => wire::AlertKind::SignalLoss,
        AlertKind::PredictedHigh => wire::AlertKind::PredictedHigh,
    }
}

fn wire_severity(s: Severity) -> wire::Severity {
    match s {
        Severity::Urgent => wire::Severity::Urgent,
        Severity::Warning => wire::Severity::Warning,
        Severity::Info => wire::Severity::Info,
    }
}

/// Deterministic ids: the same alert (patient, kind, time) always has the same id.
fn ids(patient: &ParticipantId, kind: AlertKind, at_ms: i64, episode: u64) -> (LocalId, LocalId) {
    let h = sha256_parts(&[patient.as_str().as_bytes(), kind_name(kind).as_bytes(), &at_ms.to_be_bytes()]);
    let e = sha256_parts(&[patient.as_str().as_bytes(), &episode.to_be_bytes(), kind_name(kind).as_bytes()]);
    let alert_id = LocalId::parse(&format!("a-{}", &h.to_string()[..24]), "alert_id").expect("valid id");
    let episode_id = LocalId::parse(&format!("e-{}", &e.to_string()[..24]), "episode_id").expect("valid id");
    (alert_id, episode_id)
}

impl DetectorService {
    /// The detector configuration for `patient` now (care plan or
    /// defaults), the plan version it came from, and whether the plan's
    /// clinical content (thresholds, insulin factors: its sealed body) was
    /// opened. A body that cannot be opened leaves the consensus defaults
    /// in force with the plan's alert kinds (a missed low is the worse
    /// harm than a default threshold), logged and counted; it is tried
    /// again with the next reading.
    async fn config_for(&self, patient: &ParticipantId) -> (DetectorConfig, Option<(String, u32)>, bool) {
        let active = {
            let view = self.chain.view.read().expect("view lock");
            view.state().contracts().active_careplan(patient, Timestamp::now()).cloned()
        };
        let mut cfg = DetectorConfig::default();
        let Some(v) = active else { return (cfg, None, false) };
        if !v.plan.alert_kinds.is_empty() {
            cfg.enabled = v.plan.alert_kinds.iter().copied().collect();
        }
        let tag = Some((v.plan.plan_id.to_string(), v.plan.version));
        let unread = |why: &'static str| {
            metrics::counter!("glucochain_detector_plan_unreadable_total", "reason" => why).increment(1);
            tracing::warn!(patient = %patient, plan = %v.plan.plan_id, reason = why, "care plan body not opened; default thresholds apply");
        };
        match self.vault.careplan(patient, &v.proposal_tx, &v.plan).await {
            Ok(Some(plan)) => {
                cfg.thresholds = plan.thresholds;
                cfg.insulin = plan.insulin.as_ref().map(InsulinProfile::from_factors);
                (cfg, tag, true)
            }
            Ok(None) => {
                unread("erased-or-missing");
                (cfg, tag, false)
            }
            Err(e) => {
                tracing::warn!(error = %e, "record vault read failed (care plan)");
                unread("vault");
                (cfg, tag, false)
            }
        }
    }

    /// Opens the patient's committed `medication.taken` bodies not opened
    /// yet (insulin, carbohydrates) from the vault. One the vault cannot
    /// give now is kept for the next reading; an erased or missing one is
    /// dropped, counted.
    async fn open_treatments(&self, patient: &ParticipantId) {
        use glucochain_types::sealed::RecordBody;
        use glucochain_vault::replica::Opened;
        let unopened = self.treatments.lock().expect("treatments lock").unopened_of(patient);
        let mut again = Vec::new();
        for (tx, commitment, at_ms) in unopened {
            let wanted = Wanted::of(&tx, patient, glucochain_types::DataClass::Private);
            match self.vault.open_committed(&wanted, glucochain_types::TxType::MedicationTaken, &commitment).await {
                Ok(Opened::Body { body: RecordBody::MedicationTaken(b), .. }) => {
                    self.treatments.lock().expect("treatments lock").record(patient, at_ms, &b);
                }
                Ok(_) => {
                    metrics::counter!("glucochain_detector_treatments_unreadable_total").increment(1);
                    tracing::warn!(tx = %tx, "a medication.taken body is erased or not in the vault: not counted");
                }
                Err(e) => {
                    tracing::warn!(error = %e, tx = %tx, "record vault read failed (medication.taken); tried again");
                    again.push((tx, commitment, at_ms));
                }
            }
        }
        if !again.is_empty() {
            self.treatments.lock().expect("treatments lock").unopened.entry(patient.clone()).or_default().extend(again);
        }
    }

    /// Glucose readings of a fast-path observation transaction whose
    /// signature verifies with the signer's registered key, its body opened
    /// from the record vault and checked against the envelope's commitment
    /// (ingest stored it before publishing the transaction). `Ok(None)` is a
    /// transaction that is not to be judged (not a reading, not verified, its
    /// body erased or not opening against its commitment); `Err` is a body
    /// not to be had yet, worth asking again.
    async fn readings(&self, jws: &[u8]) -> Result<Option<(ParticipantId, Vec<Reading>)>, NotYet> {
        let Some(tx) = std::str::from_utf8(jws).ok().and_then(|j| Transaction::parse(j, &Default::default()).ok())
        else {
            return Ok(None);
        };
        let key = {
            let view = self.chain.view.read().expect("view lock");
            view.state().participant(&tx.signer).filter(|p| p.is_active()).map(|p| p.public_key)
        };
        // The view holds every block ingest knew when it accepted the reading
        // (see `consume`), so the signer's registration is in it.
        let verified = key.is_some_and(|k| tx.verify_signature(&k).is_ok());
        let (true, TxBody::ObservationRecord(env), Some(patient)) =
            (verified, &tx.payload.body, tx.payload.patient.clone())
        else {
            return Ok(None);
        };
        // Only for a patient whose active care plan asks for alerts (ADR
        // 0016 §3): without one, the body is not opened at all.
        let plan = {
            let view = self.chain.view.read().expect("view lock");
            view.state()
                .contracts()
                .active_careplan(&patient, Timestamp::now())
                .map(|v| (v.plan.plan_id.to_string(), v.plan.version))
        };
        let Some(plan) = plan else {
            metrics::counter!("glucochain_detector_unwatched_total").increment(1);
            return Ok(None);
        };
        self.audit_opening(&patient, &tx.hash, &plan);
        let wanted = Wanted {
            tx_hash: tx.hash.to_string(),
            patient: patient.to_string(),
            class: env.data_class.as_str().into(),
        };
        let kept = match self.vault.get(&wanted).await {
            Ok(Lookup::Body(kept)) => kept,
            Ok(Lookup::Erased { .. }) => return Ok(None),
            Ok(Lookup::Missing) => return Err(NotYet::Missing),
            // The vault unreachable, or this service holding another
            // key-encryption key than the vault's (a deployment fault an
            // operator fixes): the readings wait rather than go unjudged.
            Err(e @ (VaultError::Store(_) | VaultError::Kek { .. } | VaultError::OtherKek { .. })) => {
                return Err(NotYet::Vault(e.to_string()));
            }
            // This one record's row is damaged: it can never be opened, and
            // must not hold up the readings behind it.
            Err(e) => {
                metrics::counter!("glucochain_detector_unreadable_total").increment(1);
                tracing::error!(tx = %tx.hash, error = %e, "a reading's body in the vault cannot be opened; it is not judged");
                return Ok(None);
            }
        };
        let Ok(RecordBody::Observations(body)) = RecordBody::open(&tx.payload, &kept).map_err(|e| {
            metrics::counter!("glucochain_detector_unreadable_total").increment(1);
            tracing::error!(tx = %tx.hash, error = %e, "a vault body does not open against its commitment");
        }) else {
            return Ok(None);
        };
        let mut readings: Vec<Reading> = body
            .observations
            .iter()
            .filter_map(|o| Some(Reading { at_ms: o.effective_date_time.unix_ms(), mg_dl: o.glucose_mg_dl()? }))
            .collect();
        readings.sort_by_key(|r| r.at_ms);
        Ok(Some((patient, readings)))
    }

    /// Writes the patient's access-log entry for the detector's openings of
    /// their bodies, once per window ([`glucochain_follow::audit`]), beside
    /// the reading: the reading is judged without waiting for the ledger.
    fn audit_opening(&self, patient: &ParticipantId, tx: &glucochain_crypto::Hash32, plan: &(String, u32)) {
        let entry = wire::AuditAppend {
            reader: ParticipantId::from_public_key(&self.key.public()).to_string(),
            reader_role: glucochain_types::Role::Detector.as_str().to_string(),
            patient: patient.to_string(),
            action: "detector.read".into(),
            resource: format!("urn:glucochain:vault:observation.record:{tx}"),
            purpose: "TREAT".into(),
            granted: true,
            reason: format!(
                "the detector opened CGM readings to watch for lows and highs under care plan {} v{}; this entry \
                 covers the readings it opens in the {} minutes from now",
                plan.0,
                plan.1,
                glucochain_follow::audit::WINDOW_MS / 60_000
            ),
        };
        self.audited.opened(patient, Timestamp::now().unix_ms(), entry);
    }

    /// [`Self::readings`], asked again until the body is had: a vault that
    /// does not answer is waited for as long as it takes (the readings
    /// behind this one wait in the stream, as while the detector is down,
    /// and are judged in order when it is back), a body the vault does not
    /// hold for [`MISSING_PATIENCE`] (ingest stores it before it publishes
    /// the transaction, so only a damaged vault leaves one out). The message
    /// is kept in progress meanwhile, so JetStream does not hand it out again.
    async fn readings_persistently(
        &self,
        m: &async_nats::jetstream::Message,
        jws: &[u8],
    ) -> Option<(ParticipantId, Vec<Reading>)> {
        let started = std::time::Instant::now();
        let mut wait = RETRY_FIRST;
        loop {
            match self.readings(jws).await {
                Ok(judged) => return judged,
                Err(NotYet::Missing) if started.elapsed() >= MISSING_PATIENCE => {
                    metrics::counter!("glucochain_detector_unreadable_total").increment(1);
                    tracing::error!(
                        tx = %sha256(jws),
                        waited_s = started.elapsed().as_secs(),
                        "a reading's body never turned up in the record vault; it is not judged"
                    );
                    return None;
                }
                Err(e) => {
                    metrics::counter!("glucochain_detector_vault_retries_total", "why" => e.label()).increment(1);
                    tracing::warn!(
                        tx = %sha256(jws),
                        error = %e,
                        retry_in_ms = wait.as_millis() as u64,
                        "a reading's body is not to be had yet"
                    );
                }
            }
            in_progress(m).await;
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(RETRY_MAX);
        }
    }

    /// Runs readings through the patient's detector; returns the alerts and
    /// the last three hours of readings (for the notification's chart).
    #[allow(clippy::type_complexity)]
    fn detect(
        &self,
        patient: &ParticipantId,
        readings: &[Reading],
        (cfg, plan, opened): (DetectorConfig, Option<(String, u32)>, bool),
    ) -> (Vec<Alert>, Vec<Reading>, Vec<Resolved>) {
        let mut patients = self.patients.lock().expect("patients lock");
        let first_episode = Timestamp::now().unix_ms() as u64;
        let st = patients.entry(patient.clone()).or_insert_with(|| PatientState {
            detector: PatientDetector::new(cfg.clone()).starting_episodes_at(first_episode),
            plan: plan.clone(),
            plan_opened: opened,
            last_at: 0,
            treated: 0,
        });
        if st.plan != plan || (opened && !st.plan_opened) {
            // A new care plan (or version), or its thresholds now opened:
            // they apply from now on.
            st.detector = PatientDetector::new(cfg).starting_episodes_at(first_episode);
            st.plan = plan;
            st.plan_opened = opened;
            st.treated = 0;
        }
        for (seq, t) in self.treatments.lock().expect("treatments lock").since(patient, st.treated) {
            st.detector.treat(t);
            st.treated = seq;
        }
        let mut out = Vec::new();
        for r in readings {
            if r.at_ms > st.last_at {
                out.extend(st.detector.push(*r));
                st.last_at = r.at_ms;
            }
        }
        let recent = if out.is_empty() { Vec::new() } else { st.detector.recent(180) };
        let resolved = st.detector.take_resolved();
        (out, recent, resolved)
    }

    /// Tells the notifier an episode ended (`emr.alert.resolved`, one event
    /// per kind the episode raised, msg-id derived from its episode id).
    async fn resolve(&self, patient: &ParticipantId, r: &Resolved) -> anyhow::Result<()> {
        for kind in &r.kinds {
            let (_, episode_id) = ids(patient, *kind, r.at_ms, r.episode);
            let mut event = wire::Alert {
                patient: patient.as_str().into(),
                kind: wire_kind(*kind) as i32,
                episode_id: episode_id.to_string(),
                observed_at_ms: r.at_ms,
                reason: "back in range".into(),
                resolved: true,
                chain_height: self.chain.height(),
                ..Default::default()
            };
            sign_alert(&mut event, &self.key);
            self.bus
                .publish(
                    &subjects::alert("resolved"),
                    &format!("resolved-{episode_id}"),
                    Bytes::from(event.encode_to_vec()),
                )
                .await?;
        }
        Ok(())
    }

    /// Publishes an alert on `emr.alert.<kind>` (with the values and the
    /// detector's words, for the notifier) and records it on the chain (what,
    /// when, and the reading transaction `reading_tx` that raised it: the
    /// values stay in that reading's sealed body).
    async fn raise(
        &self,
        patient: &ParticipantId,
        a: &Alert,
        recent: &[Reading],
        reading_tx: Option<Hash32>,
    ) -> anyhow::Result<()> {
        let (alert_id, episode_id) = ids(patient, a.kind, a.at_ms, a.episode);
        let sev = severity(a.kind);
        let mut event = wire::Alert {
            alert_id: alert_id.to_string(),
            patient: patient.as_str().into(),
            kind: wire_kind(a.kind) as i32,
            severity: wire_severity(sev) as i32,
            episode_id: episode_id.to_string(),
            observed_at_ms: a.at_ms,
            glucose_mg_dl: a.glucose.unwrap_or_default(),
            slope_mg_dl_per_min: a.slope.unwrap_or_default(),
            predicted_mg_dl: a.predicted.unwrap_or_default(),
            predicted_at_ms: a.predicted_at_ms.unwrap_or_default(),
            model_score: a.model_score.unwrap_or_default(),
            reason: a.reason.clone(),
            recent: recent.iter().map(|r| wire::GlucosePoint { at_ms: r.at_ms, mg_dl: r.mg_dl }).collect(),
            resolved: false,
            chain_height: self.chain.height(),
            ..Default::default()
        };
        sign_alert(&mut event, &self.key);
        self.bus
            .publish(&subjects::alert(kind_name(a.kind)), alert_id.as_str(), Bytes::from(event.encode_to_vec()))
            .await?;
        metrics::counter!("glucochain_alerts_total", "kind" => kind_name(a.kind)).increment(1);
        tracing::info!(patient = %patient, kind = kind_name(a.kind), alert = %alert_id, "alert raised");
        let me = ParticipantId::from_public_key(&self.key.public());
        let body = TxBody::AlertRaise(AlertRaise {
            alert_id: alert_id.clone(),
            kind: a.kind,
            severity: sev,
            episode_id,
            observed_at: Timestamp::from_unix_ms(a.at_ms),
            reading_tx,
        });
        let nonce = format!("alert-{}", &alert_id.as_str()[2..]);
        let jws = TxPayload::new(self.chain_id.clone(), nonce, Timestamp::now(), Some(patient.clone()), body)
            .sign(&self.key, &me);
        let hash = sha256(jws.as_bytes());
        let env = wire::TxEnvelope::received_now(jws.into_bytes(), hash.0.to_vec(), "alert.raise", self.chain.height());
        self.bus.publish(&subjects::tx("alert.raise"), &hash.to_string(), Bytes::from(env.encode_to_vec())).await?;
        Ok(())
    }

    /// Consumes observation transactions from `TXS` as ingest accepts them
    /// (before they are in a block), with the durable consumer `detector`:
    /// readings that arrive while the detector is down or restarting wait in
    /// the stream, and each is acknowledged only once its alerts are
    /// published. A reading is judged on a view of the chain at least as
    /// recent as ingest's when it accepted it (the signer's key, the care
    /// plan committed just before the readings).
    pub async fn consume(self: Arc<Self>) -> anyhow::Result<()> {
        let spec = ConsumerSpec {
            filter_subject: subjects::tx("observation.record"),
            from_new: true,
            ..ConsumerSpec::durable("detector")
        };
        let mut messages = self.bus.durable_messages(StreamSpec::txs(), spec);
        loop {
            let m = messages.next().await;
            if let Ok(env) = wire::TxEnvelope::decode(m.payload.as_ref()) {
                if !self.chain.caught_up(env.chain_height, VIEW_PATIENCE).await {
                    // Judged on an older view (defaults where the care plan is
                    // not yet known) rather than not at all.
                    metrics::counter!("glucochain_detector_view_behind_total").increment(1);
                    tracing::warn!(
                        wanted = env.chain_height,
                        have = self.chain.height(),
                        "the chain view is behind the reading's; judging on the older view"
                    );
                }
                match self.readings_persistently(&m, &env.jws).await {
                    Some((patient, readings)) => {
                        // The reading's trace (from the submitter, through ingest) continues
                        // into the alert events and transactions published below.
                        let span = tracing::info_span!("detector.readings", readings = readings.len());
                        glucochain_bus::trace::set_parent_from(&span, m.headers.as_ref());
                        self.handle(&m, &patient, &readings, sha256(&env.jws), env.received_at_ms)
                            .instrument(span)
                            .await;
                    }
                    None => metrics::counter!("glucochain_detector_ignored_total").increment(1),
                }
            }
            if let Err(e) = m.ack().await {
                tracing::warn!(error = %e, "ack to JetStream failed; the reading will be redelivered");
            }
        }
    }

    /// Detects on a patient's new readings and publishes what it finds,
    /// each resolution and alert tried again until the bus takes it (the
    /// event and the transaction carry ids derived from the alert, so a
    /// second try after a first that got through is a duplicate the streams
    /// drop); the reading is acknowledged only then.
    async fn handle(
        &self,
        m: &async_nats::jetstream::Message,
        patient: &ParticipantId,
        readings: &[Reading],
        reading_tx: Hash32,
        received_at_ms: i64,
    ) {
        self.open_treatments(patient).await;
        let config = self.config_for(patient).await;
        let (alerts, recent, resolved) = self.detect(patient, readings, config);
        if !alerts.is_empty() && received_at_ms > 0 {
            // From ingest accepting the reading to the alert going out.
            let secs = (Timestamp::now().unix_ms() - received_at_ms).max(0) as f64 / 1000.0;
            metrics::histogram!("glucochain_detector_alert_latency_seconds").record(secs);
        }
        for r in &resolved {
            until_published(m, "episode resolution", || self.resolve(patient, r)).await;
        }
        for a in &alerts {
            until_published(m, "alert", || self.raise(patient, a, &recent, Some(reading_tx))).await;
        }
    }

    /// Checks every patient for signal loss once a minute.
    pub async fn watch_signal(self: Arc<Self>) -> anyhow::Result<()> {
        let mut interval = tokio::time::interval(Duration::from_secs(60));
        loop {
            interval.tick().await;
            let now = Timestamp::now().unix_ms();
            let due: Vec<(ParticipantId, Alert)> = {
                let mut patients = self.patients.lock().expect("patients lock");
                patients
                    .iter_mut()
                    .flat_map(|(p, st)| st.detector.tick(now).into_iter().map(|a| (p.clone(), a)))
                    .collect()
            };
            for (p, a) in due {
                if let Err(e) = self.raise(&p, &a, &[], None).await {
                    tracing::warn!(error = format!("{e:#}"), "signal-loss alert not published");
                }
            }
        }
    }
}

/// Reads the stored blocks of the last [`TREATMENT_KEEP_MS`] (newest first,
/// down to the first older block).
async fn recent_treatments(chain: &StoredChain) -> anyhow::Result<Treatments> {
    let mut into = Treatments::default();
    let since = Timestamp::now().unix_ms() - TREATMENT_KEEP_MS;
    let mut blocks = Vec::new();
    let mut h = chain.height();
    while h >= 1 {
        let stored = chain.store.block(h).await.context("stored block")?.context("stored block missing")?;
        if stored.time_ms < since {
            break;
        }
        blocks.push(glucochain_follow::from_stored(&stored)?.0);
        h -= 1;
    }
    for b in blocks.iter().rev() {
        into.take_block(b);
    }
    Ok(into)
}

/// Runs the detector until a fatal error.
pub async fn serve(cfg: DetectorServiceConfig) -> anyhow::Result<()> {
    let genesis = Genesis::read_file(&cfg.genesis).context("genesis")?;
    let key = KeyPair::read_pem_file(&cfg.key).context("detector key")?;
    let ready = Readiness::new(&["database", "nats"]);
    let store = glucochain_api::service::open_store(&cfg.database_url(), &cfg.data_dir, &ready).await?;
    let chain = Arc::new(StoredChain::open(store, &genesis).await?);
    let bus = Bus::connect(&cfg.nats_url, "detector").await.context("nats")?;
    bus.ensure_stream(&StreamSpec::alerts()).await?;
    bus.ensure_stream(&StreamSpec::txs()).await?;
    ready.set("nats", true);
    let kek = glucochain_vault::keys::FileKek::load(&cfg.kek_file).context("key-encryption key")?;
    let vault = VaultReader::new(&bus, Arc::new(kek)).await.context("VAULT stream")?;
    let service = Arc::new(DetectorService {
        chain: chain.clone(),
        bus: bus.clone(),
        vault,
        key,
        chain_id: genesis.chain_id.clone(),
        patients: Mutex::new(HashMap::new()),
        treatments: Arc::new(Mutex::new(Treatments::default())),
        audited: glucochain_follow::audit::OpeningLog::new(
            bus.clone(),
            subjects::AUDIT_APPEND_DETECTOR,
            "glucochain_detector_unaudited_total",
        ),
    });
    // Treatments of the last hours are in the stored chain: a restarted
    // detector knows them again before its first reading.
    let recent = recent_treatments(&chain).await?;
    *service.treatments.lock().expect("treatments lock") = recent;
    let treatments = service.treatments.clone();
    let follow = tokio::spawn(async move {
        let on_new = Box::new(move |b: &glucochain_consensus::block::Block| {
            metrics::gauge!("glucochain_detector_height").set(b.header.height as f64);
            treatments.lock().expect("treatments lock").take_block(b);
        });
        follow_stored(chain, bus, "detector", on_new).await.map_err(anyhow::Error::from)
    });
    let consume = tokio::spawn(service.clone().consume());
    let signal = tokio::spawn(service.clone().watch_signal());
    let server = http_server(cfg.http_addr, &cfg.tls, ready, |_| {})?;
    tokio::select! {
        r = server => r.context("http server"),
        r = follow => Err(ended("following BLOCKS", r)),
        r = consume => Err(ended("the TXS observation consumer", r)),
        r = signal => Err(ended("signal-loss checks", r)),
    }
}

/// The binary's body: telemetry, then [`serve`].
pub fn main_with(cfg: DetectorServiceConfig) -> anyhow::Result<()> {
    glucochain_api::service::run("detector", || serve(cfg))
}
