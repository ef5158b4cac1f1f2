//! Clinical latency: how long from a dangerous reading being posted until
//! the alert event leaves the detector, and until the caregiver's email is
//! accepted by the SMTP server (the devnet's mail sink writes it to its
//! Maildir). Patients get a clinician, a caregiver with an email address
//! and an accepted care plan first, as in real use.

use crate::load::Load;
use crate::stats::Summary;
use anyhow::{Context as _, bail};
use futures::StreamExt as _;
use glucochain_crypto::{KeyPair, sha256};
use glucochain_types::fhir::cgm_observation;
use glucochain_types::ids::LocalId;
use glucochain_types::sealed::{ObservationBody, Submission};
use glucochain_types::time::Timestamp;
use glucochain_types::tx::{
    AlertKind, CareContact, CarePlan, CareplanAccept, ChannelKind, ConsentGrant, ContactChannel, ContactChannelsBody,
    GlucoseThresholds, ParticipantRegister, Term, TxBody,
};
use glucochain_types::{DataClass, ParticipantId, Role};
use prost::Message as _;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Reading → alert event → email, over the patients measured.
#[derive(Debug, Clone, Serialize)]
pub struct ClinicalResult {
    /// Validators.
    pub validators: usize,
    /// Patients with a falling trace.
    pub patients: usize,
    /// Patients whose caregiver got an email.
    pub emailed: usize,
    /// Triggering reading posted → alert event on `emr.alert.*`.
    pub reading_to_alert: Summary,
    /// Triggering reading posted → email in the SMTP server's mailbox.
    pub reading_to_email: Summary,
}

fn register(who: &KeyPair, role: Role, institution: Option<&ParticipantId>) -> TxBody {
    TxBody::ParticipantRegister(ParticipantRegister {
        id: ParticipantId::from_public_key(&who.public()),
        role,
        public_key: who.public(),
        body_commitment: None,
        institution: institution.cloned(),
    })
}

fn address(i: usize) -> String {
    format!("carer{i}@bench.invalid")
}

/// The `To` address of every message in a Maildir's `new/` and `cur/`, with
/// the moment it was first seen.
fn scan(maildir: &Path, seen: &mut HashMap<String, Instant>) {
    for sub in ["new", "cur"] {
        let Ok(rd) = std::fs::read_dir(maildir.join(sub)) else { continue };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if seen.contains_key(&name) {
                continue;
            }
            seen.insert(name, Instant::now());
        }
    }
}

fn recipient(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let head = text.split("\n\n").next()?;
    head.lines().find_map(|l| l.strip_prefix("To:").map(|v| v.trim().to_string()))
}

impl Load {
    /// Sets up `n` patients with care plans, posts a falling trace for each
    /// (one reading per patient every `spacing`), and measures.
    pub async fn clinical(&mut self, n: usize, spacing: Duration) -> anyhow::Result<ClinicalResult> {
        if n + 1 > self.world.patients.len() {
            bail!("{n} clinical patients need more than {} patients", self.world.patients.len());
        }
        let patients: Vec<usize> = (1..=n).collect();
        self.care_for(&patients, address).await?;
        // The detector and notifier follow the chain: give them the plans.
        tokio::time::sleep(Duration::from_secs(3)).await;

        // Alert events, as the notifier receives them.
        let nats = self.target.nats().await.context("nats")?;
        let mut sub = nats.subscribe(glucochain_bus::subjects::ALERT_ALL).await?;
        let alerts: Arc<Mutex<Vec<(String, i64, Instant)>>> = Arc::default();
        let a = alerts.clone();
        let watcher = tokio::spawn(async move {
            while let Some(m) = sub.next().await {
                if let Ok(e) = glucochain_wire::v1::Alert::decode(m.payload.as_ref())
                    && !e.resolved
                {
                    a.lock().expect("alerts").push((e.patient, e.observed_at_ms, Instant::now()));
                }
            }
        });
        let maildir = self.target.maildir.clone();
        let mut seen = HashMap::new();
        scan(&maildir, &mut seen);
        let before: std::collections::HashSet<String> = seen.keys().cloned().collect();

        // Falling traces: 150 → 45 mg/dL over 70 minutes of readings, posted
        // one per patient every `spacing`; the readings' own times are the
        // last 70 minutes.
        let mut posted: HashMap<(String, i64), Instant> = HashMap::new();
        let start = Timestamp::now().unix_ms() - 70 * 60_000;
        for step in 0..15i64 {
            let at = Timestamp::from_unix_ms(start + step * 5 * 60_000);
            let mut batch = Vec::new();
            for &i in &patients {
                let pid = self.world.patients[i].id.as_str().to_string();
                batch.push((pid, self.falling_reading(i, step, start)));
            }
            let t0 = Instant::now();
            let posts = batch.into_iter().map(|(pid, jws)| {
                let (http, url) = (self.http.clone(), self.target.ingest.clone());
                async move {
                    let sent = Instant::now();
                    let ok = http
                        .post(format!("{url}/v1/transactions"))
                        .header("content-type", crate::world::media_type(&jws))
                        .body(jws)
                        .send()
                        .await
                        .is_ok_and(|r| r.status().as_u16() == 202);
                    (pid, sent, ok)
                }
            });
            for (pid, sent, ok) in futures::future::join_all(posts).await {
                if ok {
                    posted.insert((pid, at.unix_ms()), sent);
                }
            }
            while t0.elapsed() < spacing {
                scan(&maildir, &mut seen);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        // Emails for up to 30 s more.
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut first_email: BTreeMap<usize, Instant> = BTreeMap::new();
        while Instant::now() < deadline && first_email.len() < n {
            scan(&maildir, &mut seen);
            for (name, at) in &seen {
                if before.contains(name) {
                    continue;
                }
                let path = ["new", "cur"].iter().map(|s| maildir.join(s).join(name)).find(|p| p.exists());
                let Some(to) = path.and_then(|p| recipient(&p)) else { continue };
                if let Some(k) = (0..n).find(|k| address(*k) == to) {
                    let e = first_email.entry(k).or_insert(*at);
                    *e = (*e).min(*at);
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        watcher.abort();
        let alerts = alerts.lock().expect("alerts").clone();
        let (mut to_alert, mut to_email) = (Vec::new(), Vec::new());
        for (k, &i) in patients.iter().enumerate() {
            let pid = self.world.patients[i].id.as_str().to_string();
            // The patient's first alert and the reading that triggered it.
            let Some((_, observed, alert_at)) =
                alerts.iter().filter(|(p, _, _)| *p == pid).min_by_key(|(_, _, at)| *at)
            else {
                continue;
            };
            let Some(sent) = posted.get(&(pid.clone(), *observed)) else { continue };
            to_alert.push(alert_at.duration_since(*sent).as_secs_f64() * 1000.0);
            if let Some(mail) = first_email.get(&k) {
                to_email.push(mail.saturating_duration_since(*sent).as_secs_f64() * 1000.0);
            }
        }
        Ok(ClinicalResult {
            validators: self.validators,
            patients: n,
            emailed: first_email.len(),
            reading_to_alert: Summary::of(&to_alert),
            reading_to_email: Summary::of(&to_email),
        })
    }
}

impl Load {
    /// Gives each of `patients` (indexes into the world's patients) a
    /// caregiver reachable by email at `address(k)` (k: position in
    /// `patients`), a clinician of the hospital with their consent, and an
    /// accepted care plan alerting on lows; returns once ingest has every
    /// transaction committed.
    pub async fn care_for(&mut self, patients: &[usize], address: impl Fn(usize) -> String) -> anyhow::Result<()> {
        let chain = self.world.chain.clone();
        let now = Timestamp::now();
        let hospital = &mut self.hospital;
        let clinician = KeyPair::generate();
        let clinician_id = ParticipantId::from_public_key(&clinician.public());
        let carers: Vec<KeyPair> = patients.iter().map(|_| KeyPair::generate()).collect();
        let hid = hospital.id.clone();
        let first = vec![hospital.sign(&chain, now, None, register(&clinician, Role::Clinician, Some(&hid)))];
        let mut clinician = crate::world::Signer::new(clinician, "clinical");
        let mut second = Vec::new();
        for (k, &i) in patients.iter().enumerate() {
            let p = &mut self.world.patients[i];
            let pid = p.id.clone();
            second.push(p.sign(&chain, now, None, register(&carers[k], Role::Caregiver, None)));
            let consent = TxBody::ConsentGrant(ConsentGrant::for_treatment(
                LocalId::parse("bench-care", "consent_id")?,
                clinician_id.clone(),
                &[DataClass::Private, DataClass::Institution],
            ));
            second.push(p.sign(&chain, now, Some(&pid), consent));
        }
        // Each caregiver declares the address (a care plan may route only
        // there), sealed beside the kinds the chain holds.
        let mut declared_hashes = Vec::new();
        let declarations: Vec<String> = carers
            .iter()
            .enumerate()
            .map(|(k, c)| {
                let copy = KeyPair::from_pkcs8_pem(&c.to_pkcs8_pem()).expect("a key reads back");
                let mut carer = crate::world::Signer::new(copy, "carer");
                let channels = vec![ContactChannel { kind: ChannelKind::Email, address: address(k) }];
                let (declare, sealed) = ContactChannelsBody::seal(channels);
                let jws = carer.sign(&chain, now, None, declare);
                declared_hashes.push(sha256(jws.as_bytes()));
                String::from_utf8(Submission::sealed(jws, sealed).to_json()).expect("JSON is UTF-8")
            })
            .collect();
        let (mut proposals, mut proposal_hashes) = (Vec::new(), Vec::new());
        for (k, &i) in patients.iter().enumerate() {
            let pid = self.world.patients[i].id.clone();
            let plan = CarePlan {
                plan_id: LocalId::parse("bench-plan", "plan_id")?,
                version: 1,
                thresholds: GlucoseThresholds::default(),
                alert_kinds: vec![AlertKind::UrgentLow, AlertKind::Low, AlertKind::PredictedLow],
                contacts: vec![CareContact {
                    participant: ParticipantId::from_public_key(&carers[k].public()),
                    channels: vec![ChannelKind::Email],
                    escalate_after_minutes: 30,
                }],
                quiet_hours: None,
                medications: vec![],
                checkups: vec![],
                term: Term {
                    start: Timestamp::from_unix_ms(now.unix_ms() - 3_600_000),
                    end: Timestamp::from_unix_ms(now.unix_ms() + 86_400_000),
                },
                language: None,
                alert_repeat: None,
                insulin: None,
            };
            let (envelope, sealed) = plan.seal();
            let jws = clinician.sign(&chain, now, Some(&pid), envelope);
            proposal_hashes.push(sha256(jws.as_bytes()));
            proposals.push(String::from_utf8(Submission::sealed(jws, sealed).to_json()).expect("JSON is UTF-8"));
        }
        let accepts: Vec<String> = patients
            .iter()
            .zip(&proposal_hashes)
            .map(|(&i, prop)| {
                let p = &mut self.world.patients[i];
                let pid = p.id.clone();
                let accept = TxBody::CareplanAccept(CareplanAccept {
                    plan_id: LocalId::parse("bench-plan", "plan_id").expect("plan id"),
                    version: 1,
                    proposal_tx: *prop,
                });
                p.sign(&chain, now, Some(&pid), accept)
            })
            .collect();
        let bare = |phase: &[String]| phase.iter().map(|t| sha256(t.as_bytes())).collect::<Vec<_>>();
        let phases = [
            (bare(&first), first),
            (bare(&second), second),
            (declared_hashes, declarations),
            (proposal_hashes.clone(), proposals),
            (bare(&accepts), accepts),
        ];
        for (hashes, phase) in phases {
            let want = phase.len();
            let out = self.post_all(phase, 32).await;
            if out.accepted != want {
                bail!("care set-up refused: {:?}", out.refused);
            }
            // The next phase depends on this one: wait until ingest has applied it too.
            self.settle(&hashes).await?;
        }
        Ok(())
    }

    /// Step `step` (0..15) of a falling trace for patient `i`: 150 mg/dL
    /// down to 45 over 70 minutes of readings whose own times start at
    /// `start_ms`, signed now.
    pub fn falling_reading(&mut self, i: usize, step: i64, start_ms: i64) -> String {
        let chain = self.world.chain.clone();
        let p = &mut self.world.patients[i];
        let pid = p.id.clone();
        let at = Timestamp::from_unix_ms(start_ms + step * 5 * 60_000);
        let obs =
            cgm_observation(pid.as_str(), at, (150.0 - 7.5 * step as f64).max(45.0), Some(&format!("fall{step}")));
        let (body, sealed) = ObservationBody::seal(vec![obs], DataClass::Private);
        let jws = p.sign(&chain, Timestamp::now(), Some(&pid), body);
        String::from_utf8(Submission::sealed(jws, sealed).to_json()).expect("JSON is UTF-8")
    }
}
