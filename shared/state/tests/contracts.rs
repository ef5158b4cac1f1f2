//! The contract rules, each with allow and deny cases, and property tests
//! of consent revocation and expiry ordering.

mod common;

use common::{Actor, Chain, consent_body, scoped_consent};
use glucochain_crypto::{Hash32, sha256};
use glucochain_state::{ReadDecision, decide_careplan_read, decide_read, emergency_profile_for};
use glucochain_types::emergency::EmergencyCard;
use glucochain_types::ids::LocalId;
use glucochain_types::time::Timestamp;
use glucochain_types::tx::{
    Access, AccessEmergency, AlertAck, AlertKind, AlertRaise, AuditCheckpoint, BloodGroup, CareContact, CarePlan,
    CareplanAccept, ChannelKind, ConsentRevoke, ConsentScope, ConsultRequest, ConsultRespond, ContactChannel,
    ContactChannelsBody, DiabetesType, EmergencyProfileBody, EmergencyReason, EraseScope, GlucoseThresholds,
    MedicationTakenBody, Purpose, RecordErase, RecordType, Severity, Term, TxBody,
};
use glucochain_types::{DataClass, ParticipantId, Role};
use proptest::prelude::*;

fn id(s: &str) -> LocalId {
    LocalId::parse(s, "id").unwrap()
}

/// Admin, a hospital, its clinician, a second clinician, a patient and the
/// patient's caregiver, the three services; a second hospital with a
/// clinician, and a patient the first hospital registered.
struct World {
    chain: Chain,
    admin: Actor,
    clinician: Actor,
    other_clinician: Actor,
    patient: Actor,
    caregiver: Actor,
    stranger_caregiver: Actor,
    detector: Actor,
    notifier: Actor,
    ledger: Actor,
    hospital: Actor,
    elsewhere_clinician: Actor,
    hospital_patient: Actor,
}

fn mum() -> ContactChannel {
    ContactChannel { kind: ChannelKind::Email, address: "mum@example.org".into() }
}

impl World {
    fn new() -> Self {
        let mut admin = Actor::new(1);
        let mut chain = Chain::new(&admin);
        let mut hospital = Actor::new(2);
        let clinician = Actor::new(3);
        let other_clinician = Actor::new(4);
        let mut patient = Actor::new(5);
        let caregiver = Actor::new(6);
        let stranger_caregiver = Actor::new(7);
        let detector = Actor::new(8);
        let mut other_patient = Actor::new(9);
        let notifier = Actor::new(10);
        let ledger = Actor::new(11);
        let mut elsewhere = Actor::new(12);
        let elsewhere_clinician = Actor::new(13);
        let hospital_patient = Actor::new(14);
        let t = chain.now();
        let me = Actor::new(5);
        let them = Actor::new(9);
        chain.commit(vec![
            admin.register(t, &hospital, Role::Institution, None),
            admin.register(t, &elsewhere, Role::Institution, None),
            admin.register(t, &detector, Role::Detector, None),
            admin.register(t, &notifier, Role::Notifier, None),
            admin.register(t, &ledger, Role::Ledger, None),
            patient.register(t, &me, Role::Patient, None),
            other_patient.register(t, &them, Role::Patient, None),
        ]);
        let t = chain.now();
        let (hid, eid) = (hospital.id.clone(), elsewhere.id.clone());
        chain.commit(vec![
            hospital.register(t, &clinician, Role::Clinician, Some(&hid)),
            hospital.register(t, &other_clinician, Role::Clinician, Some(&hid)),
            hospital.register(t, &hospital_patient, Role::Patient, Some(&hid)),
            elsewhere.register(t, &elsewhere_clinician, Role::Clinician, Some(&eid)),
            patient.register(t, &caregiver, Role::Caregiver, None),
            other_patient.register(t, &stranger_caregiver, Role::Caregiver, None),
        ]);
        let mut w = World {
            chain,
            admin,
            clinician,
            other_clinician,
            patient,
            caregiver,
            stranger_caregiver,
            detector,
            notifier,
            ledger,
            hospital,
            elsewhere_clinician,
            hospital_patient,
        };
        // The caregiver says where they may be alerted (care plans may route only there).
        let t = w.chain.now();
        let declare = w.caregiver.sign(t, None, ContactChannelsBody::seal(vec![mum()]).0);
        w.chain.commit(vec![declare]);
        w
    }

    fn pid(&self) -> ParticipantId {
        self.patient.id.clone()
    }

    fn patient_signs(&mut self, body: TxBody) -> Vec<u8> {
        let (t, p) = (self.chain.now(), self.pid());
        self.patient.sign(t, Some(&p), body)
    }

    fn read(&self, reader: &ParticipantId) -> ReadDecision {
        decide_read(&self.chain.state, reader, &self.patient.id, "TREAT", Timestamp::from_unix_ms(self.chain.now()))
    }

    fn plan(&self, version: u32, contact: &ParticipantId) -> CarePlan {
        CarePlan {
            plan_id: id("plan-1"),
            version,
            thresholds: GlucoseThresholds::default(),
            alert_kinds: vec![AlertKind::UrgentLow, AlertKind::Low],
            contacts: vec![CareContact {
                participant: contact.clone(),
                channels: vec![ChannelKind::Email],
                escalate_after_minutes: 10,
            }],
            quiet_hours: None,
            medications: vec![],
            checkups: vec![],
            term: Term {
                start: Timestamp::from_unix_ms(self.chain.now() - 1000),
                end: Timestamp::from_unix_ms(self.chain.now() + 365 * 86_400_000),
            },
            language: None,
            alert_repeat: None,
            insulin: None,
        }
    }
}

#[test]
fn writing_needs_a_consent_with_write_access_to_the_data_class() {
    let mut w = World::new();
    let p = w.pid();
    let t = w.chain.now();
    let obs = w.clinician.observe(t, &p);
    assert_eq!(w.chain.reject(vec![obs.clone()]).1, "forbidden", "no consent");
    // Read-only consent does not allow writing.
    let read_only =
        w.patient_signs(consent_body("c-read", &w.clinician.id.clone(), &[Access::Read], &[DataClass::Private], None));
    w.chain.commit(vec![read_only]);
    assert_eq!(w.chain.reject(vec![obs.clone()]).1, "forbidden", "read-only consent");
    // Write consent for institution data only does not cover private data.
    let inst = w.patient_signs(consent_body(
        "c-inst",
        &w.clinician.id.clone(),
        &[Access::Write],
        &[DataClass::Institution],
        None,
    ));
    w.chain.commit(vec![inst]);
    assert_eq!(w.chain.reject(vec![obs.clone()]).1, "forbidden", "wrong data class");
    // A consent to the hospital covers its staff.
    let hid = w.hospital.id.clone();
    let to_hospital = w.patient_signs(consent_body("c-hosp", &hid, &[Access::Write], &[DataClass::Private], None));
    w.chain.commit(vec![to_hospital, obs]);
    // The other clinician of the same hospital is covered too; a patient writes freely.
    let t = w.chain.now();
    let obs2 = w.other_clinician.observe(t, &p);
    let own = w.patient.observe(t, &p);
    w.chain.commit(vec![obs2, own]);
}

#[test]
fn consent_grant_and_revoke_rules() {
    let mut w = World::new();
    let p = w.pid();
    let cid = w.clinician.id.clone();
    let grant = w.patient_signs(consent_body("c1", &cid, &[Access::Read, Access::Write], &[DataClass::Private], None));
    w.chain.commit(vec![grant]);
    assert_eq!(w.chain.state.contracts().consents_of(&p).count(), 1);
    // Same id again: conflict. Unknown grantee: refused. Another patient may not grant for this one.
    let again = w.patient_signs(consent_body("c1", &cid, &[Access::Read], &[DataClass::Private], None));
    assert_eq!(w.chain.reject(vec![again]).1, "conflict");
    let nobody = Actor::new(99).id;
    let unknown = w.patient_signs(consent_body("c2", &nobody, &[Access::Read], &[DataClass::Private], None));
    assert_eq!(w.chain.reject(vec![unknown]).1, "unknown-participant");
    let t = w.chain.now();
    let mut intruder = Actor::new(9);
    intruder.nonce = 100; // past the nonces its registration used
    let foreign = intruder.sign(t, Some(&p), consent_body("c3", &cid, &[Access::Read], &[DataClass::Private], None));
    assert_eq!(w.chain.reject(vec![foreign]).1, "forbidden");
    // An admin may grant on the patient's behalf (delegated admin).
    let t = w.chain.now();
    let delegated = w.admin.sign(
        t,
        Some(&p),
        consent_body("c4", &w.other_clinician.id.clone(), &[Access::Read], &[DataClass::Private], None),
    );
    w.chain.commit(vec![delegated]);
    // Revocation: unknown id, then effective, then twice is a conflict.
    let bad = w.patient_signs(TxBody::ConsentRevoke(ConsentRevoke { consent_id: id("nope") }));
    assert_eq!(w.chain.reject(vec![bad]).1, "unknown-contract");
    let revoke = w.patient_signs(TxBody::ConsentRevoke(ConsentRevoke { consent_id: id("c1") }));
    assert!(w.read(&cid).allows());
    w.chain.commit(vec![revoke]);
    assert!(!w.read(&cid).allows(), "revoked from the block that commits it");
    let twice = w.patient_signs(TxBody::ConsentRevoke(ConsentRevoke { consent_id: id("c1") }));
    assert_eq!(w.chain.reject(vec![twice]).1, "conflict");
}

#[test]
fn reads_follow_consent_scope_purpose_and_expiry() {
    let mut w = World::new();
    let cid = w.clinician.id.clone();
    assert!(matches!(w.read(&w.patient.id.clone()), ReadDecision::All { .. }), "the patient reads everything");
    assert!(matches!(w.read(&w.admin.id.clone()), ReadDecision::All { .. }), "admins read (audited)");
    let denied = w.read(&cid);
    assert!(!denied.allows());
    assert!(denied.reason().contains("has not granted"));
    let until = w.chain.now() + 10_000;
    let grant = w.patient_signs(TxBody::ConsentGrant(glucochain_types::tx::ConsentGrant {
        consent_id: id("c1"),
        grantee: cid.clone(),
        scope: ConsentScope {
            data_classes: vec![DataClass::Private],
            record_types: vec![RecordType::Observation],
            codes: vec!["99504-3".into()],
            access: vec![Access::Read],
        },
        purpose: glucochain_types::tx::Purpose::Treat,
        valid_from: None,
        valid_until: Some(Timestamp::from_unix_ms(until)),
    }));
    w.chain.commit(vec![grant]);
    let d = w.read(&cid);
    let loinc = |c: &str| vec![(Some(glucochain_types::fhir::LOINC.to_string()), c.to_string())];
    assert!(d.covers(DataClass::Private, RecordType::Observation, &loinc("99504-3")));
    assert!(!d.covers(DataClass::Private, RecordType::Observation, &loinc("4548-4")), "other codes are not covered");
    assert!(!d.covers(DataClass::Institution, RecordType::Observation, &loinc("99504-3")), "other class");
    assert!(!d.covers(DataClass::Private, RecordType::Document, &[]), "other record type");
    // Issue 19, M6: a record without codes is not inside a code-restricted scope.
    assert!(!d.covers(DataClass::Private, RecordType::Observation, &[]), "no codes");
    let other_system = vec![(Some("http://snomed.info/sct".to_string()), "99504-3".to_string())];
    assert!(!d.covers(DataClass::Private, RecordType::Observation, &other_system), "the same code in another system");
    // Another purpose is not covered.
    let research = decide_read(&w.chain.state, &cid, &w.patient.id, "HRESCH", Timestamp::from_unix_ms(w.chain.now()));
    assert!(!research.allows());
    // After valid_until the consent no longer applies.
    assert!(!decide_read(&w.chain.state, &cid, &w.patient.id, "TREAT", Timestamp::from_unix_ms(until)).allows());
}

#[test]
fn a_care_plan_takes_effect_only_with_both_signatures() {
    let mut w = World::new();
    let p = w.pid();
    let caregiver = w.caregiver.id.clone();
    let t = w.chain.now();
    let plan = w.plan(1, &caregiver);
    let propose = w.clinician.sign(t, Some(&p), plan.clone().seal().0);
    assert_eq!(w.chain.reject(vec![propose]).1, "forbidden", "no treating consent");
    let grant = w.patient_signs(consent_body(
        "c1",
        &w.clinician.id.clone(),
        &[Access::Read, Access::Write],
        &[DataClass::Private],
        None,
    ));
    w.chain.commit(vec![grant]);
    // A contact who is another patient's caregiver is refused.
    let t = w.chain.now();
    let bad_plan = w.plan(1, &w.stranger_caregiver.id.clone());
    let bad = w.clinician.sign(t, Some(&p), bad_plan.seal().0);
    assert_eq!(w.chain.reject(vec![bad]).1, "forbidden");
    let propose = w.clinician.sign(t, Some(&p), plan.seal().0);
    let proposal_tx = sha256(&propose);
    w.chain.commit(vec![propose]);
    let now = Timestamp::from_unix_ms(w.chain.now());
    assert!(w.chain.state.contracts().active_careplan(&p, now).is_none(), "one signature: no effect");
    // Accepting with the wrong proposal hash fails; the right one activates it.
    let wrong = w.patient_signs(TxBody::CareplanAccept(CareplanAccept {
        plan_id: id("plan-1"),
        version: 1,
        proposal_tx: Hash32::default(),
    }));
    assert_eq!(w.chain.reject(vec![wrong]).1, "conflict");
    let accept =
        w.patient_signs(TxBody::CareplanAccept(CareplanAccept { plan_id: id("plan-1"), version: 1, proposal_tx }));
    w.chain.commit(vec![accept]);
    let now = Timestamp::from_unix_ms(w.chain.now());
    assert_eq!(w.chain.state.contracts().active_careplan(&p, now).unwrap().plan.version, 1);
    // An amendment follows the same rule: version 1 stays active until 2 is accepted.
    let t = w.chain.now();
    let mut v2 = w.plan(2, &caregiver);
    v2.thresholds.low = 75.0;
    let (envelope2, _) = v2.seal();
    let commitment2 = *envelope2.body_commitment().unwrap();
    let propose2 = w.clinician.sign(t, Some(&p), envelope2);
    let tx2 = sha256(&propose2);
    w.chain.commit(vec![propose2]);
    let now = Timestamp::from_unix_ms(w.chain.now());
    assert_eq!(w.chain.state.contracts().active_careplan(&p, now).unwrap().plan.version, 1);
    let accept2 =
        w.patient_signs(TxBody::CareplanAccept(CareplanAccept { plan_id: id("plan-1"), version: 2, proposal_tx: tx2 }));
    w.chain.commit(vec![accept2]);
    let now = Timestamp::from_unix_ms(w.chain.now());
    // In force: version 2, whose thresholds are its sealed body's.
    let active = w.chain.state.contracts().active_careplan(&p, now).unwrap();
    assert_eq!((active.plan.version, active.plan.body_commitment, active.proposal_tx), (2, commitment2, tx2));
    // Re-accepting an older version is refused.
    let old =
        w.patient_signs(TxBody::CareplanAccept(CareplanAccept { plan_id: id("plan-1"), version: 1, proposal_tx }));
    assert_eq!(w.chain.reject(vec![old]).1, "conflict");
}

fn profile_with(card: &EmergencyCard) -> TxBody {
    // The chain holds the card's key and a commitment; the profile is sealed beside it.
    EmergencyProfileBody {
        blood_group: BloodGroup::APos,
        allergies: vec!["penicillin".into()],
        diabetes_type: DiabetesType::Type1,
        medications: vec!["insulin glargine".into()],
        emergency_contacts: vec![],
    }
    .seal(card.public_key())
    .0
}

impl World {
    /// `who` breaks the glass with `card` (a proof made for exactly this transaction).
    fn break_glass(&mut self, who: Who, card: &EmergencyCard) -> Vec<u8> {
        let p = self.pid();
        let t = self.chain.now();
        let actor = match who {
            Who::Clinician => &mut self.clinician,
            Who::Other => &mut self.other_clinician,
            Who::Caregiver => &mut self.caregiver,
        };
        let nonce = format!("nonce-{:04}", actor.nonce + 1);
        let chain = glucochain_types::ChainId::parse("glucochain-test").unwrap();
        let proof = card.prove(&chain, &actor.id, &nonce, Timestamp::from_unix_ms(t));
        let body =
            AccessEmergency { card_proof: proof, reason_code: EmergencyReason::Unconscious, body_commitment: None };
        actor.sign(t, Some(&p), TxBody::AccessEmergency(body))
    }
}

#[derive(Clone, Copy)]
enum Who {
    Clinician,
    Other,
    Caregiver,
}

#[test]
fn break_glass_needs_the_current_card() {
    let mut w = World::new();
    let p = w.pid();
    let card = EmergencyCard::generate(p.clone());
    let set = w.patient_signs(profile_with(&card));
    let set_hash_input = set.clone();
    w.chain.commit(vec![set]);
    let cid = w.clinician.id.clone();
    let at = Timestamp::from_unix_ms(w.chain.now());
    assert!(emergency_profile_for(&w.chain.state, &cid, &p, at).is_none(), "nothing without a break-glass access");
    let guess = EmergencyCard::generate(p.clone());
    let wrong = w.break_glass(Who::Clinician, &guess);
    assert_eq!(w.chain.reject(vec![wrong]).1, "forbidden");
    let access = w.break_glass(Who::Clinician, &card);
    w.chain.commit(vec![access]);
    let at = Timestamp::from_unix_ms(w.chain.now());
    let prof = emergency_profile_for(&w.chain.state, &cid, &p, at).expect("profile after access");
    assert_eq!(prof.profile.card_key, card.public_key());
    assert_eq!(prof.tx, glucochain_crypto::sha256(&set_hash_input), "the vault keeps its body under the setting tx");
    assert!(
        emergency_profile_for(&w.chain.state, &w.other_clinician.id, &p, at).is_none(),
        "only the accessing clinician"
    );
    let later = Timestamp::from_unix_ms(at.unix_ms() + glucochain_state::contracts::EMERGENCY_WINDOW_MS + 1);
    assert!(emergency_profile_for(&w.chain.state, &cid, &p, later).is_none(), "only for a short window");
    // A new card makes the old one useless.
    let new = EmergencyCard::generate(p.clone());
    let rotate = w.patient_signs(profile_with(&new));
    w.chain.commit(vec![rotate]);
    let stale = w.break_glass(Who::Other, &card);
    assert_eq!(w.chain.reject(vec![stale]).1, "forbidden");
    // A caregiver cannot break the glass (role rule).
    let cg = w.break_glass(Who::Caregiver, &new);
    assert_eq!(w.chain.reject(vec![cg]).1, "forbidden");
}

#[test]
fn m1_break_glass_proves_holding_the_card_and_a_proof_serves_one_clinician_and_one_transaction() {
    let mut w = World::new();
    let p = w.pid();
    let card = EmergencyCard::generate(p.clone());
    let set = w.patient_signs(profile_with(&card));
    w.chain.commit(vec![set]);
    // What everyone who reads the chain sees: the profile's card key and a clinician's committed access.
    let access = w.break_glass(Who::Clinician, &card);
    let seen =
        glucochain_types::Transaction::parse(std::str::from_utf8(&access).unwrap(), &Default::default()).unwrap();
    w.chain.commit(vec![access]);
    let TxBody::AccessEmergency(a) = &seen.payload.body else { unreachable!() };
    // Another clinician lifting that proof into their own access is refused,
    let t = w.chain.now();
    let lifted = w.other_clinician.sign(t, Some(&p), TxBody::AccessEmergency(a.clone()));
    assert_eq!(w.chain.reject(vec![lifted]).1, "forbidden", "a proof names its clinician");
    // and so is the same clinician reusing it in a new transaction (new nonce).
    w.chain.time += glucochain_state::contracts::EMERGENCY_WINDOW_MS;
    let t = w.chain.now();
    let reused = w.clinician.sign(t, Some(&p), TxBody::AccessEmergency(a.clone()));
    assert_eq!(w.chain.reject(vec![reused]).1, "forbidden", "a proof names its transaction");
    // Nothing on the chain reveals the card itself.
    let chain_bytes = String::from_utf8_lossy(&seen.jws.clone().into_bytes()).into_owned();
    let secret = card.text().rsplit(':').next().unwrap().to_string();
    assert!(!chain_bytes.contains(&secret));
}

#[test]
fn m1_break_glass_is_limited_per_clinician_one_open_access_and_five_a_day() {
    let mut w = World::new();
    let p = w.pid();
    let card = EmergencyCard::generate(p.clone());
    let set = w.patient_signs(profile_with(&card));
    w.chain.commit(vec![set]);
    let first = w.break_glass(Who::Clinician, &card);
    w.chain.commit(vec![first]);
    let again = w.break_glass(Who::Clinician, &card);
    assert_eq!(w.chain.reject(vec![again]).1, "conflict", "an access is already open");
    for _ in 1..glucochain_state::contracts::EMERGENCY_MAX_PER_WINDOW {
        w.chain.time += glucochain_state::contracts::EMERGENCY_WINDOW_MS;
        let next = w.break_glass(Who::Clinician, &card);
        w.chain.commit(vec![next]);
    }
    w.chain.time += glucochain_state::contracts::EMERGENCY_WINDOW_MS;
    let sixth = w.break_glass(Who::Clinician, &card);
    assert_eq!(w.chain.reject(vec![sixth]).1, "rate-limited", "five in 24 hours");
    // Another clinician is not limited by the first one's accesses.
    let other = w.break_glass(Who::Other, &card);
    w.chain.commit(vec![other]);
    // A day later the clinician may again.
    w.chain.time += glucochain_state::contracts::EMERGENCY_RATE_WINDOW_MS;
    let tomorrow = w.break_glass(Who::Clinician, &card);
    w.chain.commit(vec![tomorrow]);
}

#[test]
fn low_two_patients_cannot_set_the_same_card_in_one_block() {
    let mut w = World::new();
    let p = w.pid();
    let card = EmergencyCard::generate(p.clone());
    let mine = w.patient_signs(profile_with(&card));
    let t = w.chain.now();
    let q = w.hospital_patient.id.clone();
    let theirs = w.hospital_patient.sign(t, Some(&q), profile_with(&card));
    assert_eq!(w.chain.reject(vec![mine.clone(), theirs.clone()]), (1, "conflict"));
    w.chain.commit(vec![mine]);
    assert_eq!(w.chain.reject(vec![theirs]).1, "conflict", "and not after it was committed either");
    // The patient may set the same card again (a profile update).
    let update = w.patient_signs(profile_with(&card));
    w.chain.commit(vec![update]);
}

#[test]
fn a_consult_shares_records_until_answered_by_the_clinician_asked() {
    let mut w = World::new();
    let p = w.pid();
    let cid = w.clinician.id.clone();
    let scope = ConsentScope {
        data_classes: vec![DataClass::Private],
        record_types: vec![],
        codes: vec![],
        access: vec![Access::Read],
    };
    let req = w.patient_signs(TxBody::ConsultRequest(ConsultRequest {
        consult_id: id("k1"),
        clinician: cid.clone(),
        shared: scope.clone(),
        // The rules see the envelope; the texts are sealed off the chain.
        body_commitment: glucochain_crypto::sha256(b"lows at night"),
    }));
    w.chain.commit(vec![req]);
    assert!(w.read(&cid).covers(DataClass::Private, RecordType::Observation, &[]), "shared with the clinician asked");
    assert!(!w.read(&w.caregiver.id.clone()).allows(), "a consult shares with a clinician only");
    assert!(!w.read(&w.other_clinician.id.clone()).allows());
    let dup = w.patient_signs(TxBody::ConsultRequest(ConsultRequest {
        consult_id: id("k1"),
        clinician: cid.clone(),
        shared: scope,
        body_commitment: glucochain_crypto::sha256(b"again"),
    }));
    assert_eq!(w.chain.reject(vec![dup]).1, "conflict");
    let t = w.chain.now();
    let respond = |who: &mut Actor| {
        who.sign(
            t,
            Some(&p),
            TxBody::ConsultRespond(ConsultRespond {
                consult_id: id("k1"),
                careplan_change: None,
                body_commitment: glucochain_crypto::sha256(b"lower basal"),
            }),
        )
    };
    let wrong = respond(&mut w.other_clinician);
    assert_eq!(w.chain.reject(vec![wrong]).1, "forbidden");
    let right = respond(&mut w.clinician);
    w.chain.commit(vec![right]);
    assert!(!w.read(&cid).allows(), "access ends with the answer");
}

#[test]
fn medication_and_alert_acknowledgement_come_from_the_care_team() {
    let mut w = World::new();
    let p = w.pid();
    let t = w.chain.now();
    let taken = |who: &mut Actor| {
        who.sign(
            t,
            Some(&p),
            MedicationTakenBody { medication: "insulin".into(), dose: None, insulin_units: None, carbs_g: None }
                .seal(Timestamp::from_unix_ms(t))
                .0,
        )
    };
    let ok = taken(&mut w.caregiver);
    let bad = taken(&mut w.stranger_caregiver);
    assert_eq!(w.chain.reject(vec![bad]).1, "forbidden");
    w.chain.commit(vec![ok]);
    let raise = w.detector.sign(
        t,
        Some(&p),
        TxBody::AlertRaise(AlertRaise {
            alert_id: id("a1"),
            kind: AlertKind::UrgentLow,
            severity: Severity::Urgent,
            episode_id: id("e1"),
            observed_at: Timestamp::from_unix_ms(t),
            reading_tx: None,
        }),
    );
    let ack = |who: &mut Actor, alert: &str| {
        who.sign(t, Some(&p), TxBody::AlertAck(AlertAck { alert_id: id(alert), on_behalf_of: None }))
    };
    let early = ack(&mut w.caregiver, "a1");
    assert_eq!(w.chain.reject(vec![early]).1, "unknown-contract", "no such alert yet");
    w.chain.commit(vec![raise.clone()]);
    assert_eq!(w.chain.reject(vec![raise]).1, "duplicate");
    let foreign = ack(&mut w.stranger_caregiver, "a1");
    assert_eq!(w.chain.reject(vec![foreign]).1, "forbidden", "another patient's caregiver");
    let mine = ack(&mut w.caregiver, "a1");
    w.chain.commit(vec![mine]);
    let t2 = w.chain.now();
    let twice = w.caregiver.sign(t2, Some(&p), TxBody::AlertAck(AlertAck { alert_id: id("a1"), on_behalf_of: None }));
    assert_eq!(w.chain.reject(vec![twice]).1, "conflict");
    let by_patient = w.patient_signs(TxBody::AlertAck(AlertAck { alert_id: id("a1"), on_behalf_of: None }));
    w.chain.commit(vec![by_patient]);

    // A service (the notifier) relays acknowledgements given by link or SMS,
    // on behalf of someone the care-team rules allow; nobody else relays.
    let raise2 = w.detector.sign(
        w.chain.now(),
        Some(&p),
        TxBody::AlertRaise(AlertRaise {
            alert_id: id("a2"),
            kind: AlertKind::Low,
            severity: Severity::Warning,
            episode_id: id("e2"),
            observed_at: Timestamp::from_unix_ms(w.chain.now()),
            reading_tx: None,
        }),
    );
    w.chain.commit(vec![raise2]);
    let relay = |who: &mut Actor, t: i64, behalf: Option<ParticipantId>| {
        who.sign(t, Some(&p), TxBody::AlertAck(AlertAck { alert_id: id("a2"), on_behalf_of: behalf }))
    };
    let t3 = w.chain.now();
    let stranger = w.stranger_caregiver.id.clone();
    let carer = w.caregiver.id.clone();
    assert_eq!(w.chain.reject(vec![relay(&mut w.notifier, t3, None)]).1, "forbidden", "the notifier acks for someone");
    assert_eq!(
        w.chain.reject(vec![relay(&mut w.notifier, t3, Some(stranger))]).1,
        "forbidden",
        "not on this patient's care team"
    );
    assert_eq!(
        w.chain.reject(vec![relay(&mut w.stranger_caregiver, t3, Some(carer.clone()))]).1,
        "forbidden",
        "only the notifier relays"
    );
    w.chain.commit(vec![relay(&mut w.notifier, t3, Some(carer))]);
}

fn raise(w: &mut World, alert: &str) -> Vec<u8> {
    let (t, p) = (w.chain.now(), w.pid());
    w.detector.sign(
        t,
        Some(&p),
        TxBody::AlertRaise(AlertRaise {
            alert_id: id(alert),
            kind: AlertKind::Low,
            severity: Severity::Warning,
            episode_id: id(&format!("e-{alert}")),
            observed_at: Timestamp::from_unix_ms(t),
            reading_tx: None,
        }),
    )
}

#[test]
fn m4_each_service_signs_only_its_own_transactions_and_relays_only_for_the_care_team() {
    let mut w = World::new();
    let p = w.pid();
    let t = w.chain.now();
    // The detector raises; the notifier and the ledger may not.
    for who in [&mut w.notifier, &mut w.ledger] {
        let body = TxBody::AlertRaise(AlertRaise {
            alert_id: id("x1"),
            kind: AlertKind::UrgentLow,
            severity: Severity::Urgent,
            episode_id: id("x"),
            observed_at: Timestamp::from_unix_ms(t),
            reading_tx: None,
        });
        let forged = who.sign(t, Some(&p), body);
        assert_eq!(w.chain.reject(vec![forged]).1, "forbidden");
    }
    let a = raise(&mut w, "a1");
    w.chain.commit(vec![a]);
    // Nobody but the notifier acknowledges on someone's behalf: not the detector, not the ledger.
    let carer = w.caregiver.id.clone();
    let t = w.chain.now();
    for who in [&mut w.detector, &mut w.ledger] {
        let ack = TxBody::AlertAck(AlertAck { alert_id: id("a1"), on_behalf_of: Some(carer.clone()) });
        let silenced = who.sign(t, Some(&p), ack);
        assert_eq!(w.chain.reject(vec![silenced]).1, "forbidden", "another service silences an alert");
    }
    // The notifier relays for the care team only: not for another patient's caregiver, a
    // clinician without a treating consent, or a revoked participant.
    let stranger = w.stranger_caregiver.id.clone();
    let outsider = w.elsewhere_clinician.id.clone();
    for person in [stranger, outsider] {
        let ack = TxBody::AlertAck(AlertAck { alert_id: id("a1"), on_behalf_of: Some(person) });
        let relayed = w.notifier.sign(t, Some(&p), ack);
        assert_eq!(w.chain.reject(vec![relayed]).1, "forbidden");
    }
    // Only the ledger checkpoints an audit log.
    let cp = |n| TxBody::AuditCheckpoint(AuditCheckpoint { log_id: id("ledger"), head: sha256(b"h"), entries: n });
    for who in [&mut w.admin, &mut w.detector, &mut w.notifier] {
        let not_yours = who.sign(t, None, cp(1));
        assert_eq!(w.chain.reject(vec![not_yours]).1, "forbidden");
    }
    let ok = w.ledger.sign(t, None, cp(1));
    w.chain.commit(vec![ok]);
    // A service key never counts as a patient or clinician: it cannot grant itself access.
    let g =
        w.patient_signs(consent_body("c-svc", &w.notifier.id.clone(), &[Access::Read], &[DataClass::Private], None));
    assert_eq!(w.chain.reject(vec![g]).1, "forbidden");
}

#[test]
fn m7_audit_checkpoints_only_grow_per_ledger_and_log() {
    let mut w = World::new();
    let cp = |n, head: &[u8]| {
        TxBody::AuditCheckpoint(AuditCheckpoint { log_id: id("ledger"), head: sha256(head), entries: n })
    };
    let t = w.chain.now();
    let five = w.ledger.sign(t, None, cp(5, b"h5"));
    w.chain.commit(vec![five]);
    let t = w.chain.now();
    let back = w.ledger.sign(t, None, cp(3, b"h3"));
    assert_eq!(w.chain.reject(vec![back]).1, "conflict", "fewer entries than committed");
    let same = w.ledger.sign(t, None, cp(5, b"h5"));
    assert_eq!(w.chain.reject(vec![same]).1, "conflict", "the same head again");
    let fork = w.ledger.sign(t, None, cp(5, b"other"));
    assert_eq!(w.chain.reject(vec![fork]).1, "conflict", "another head for the same count");
    // Within one block the order counts too: 7 then 6 is refused at the second.
    let seven = w.ledger.sign(t, None, cp(7, b"h7"));
    let six = w.ledger.sign(t, None, cp(6, b"h6"));
    assert_eq!(w.chain.reject(vec![seven.clone(), six]), (1, "conflict"));
    w.chain.commit(vec![seven]);
    let head = w.chain.state.contracts().audit_heads.get(&(w.ledger.id.clone(), id("ledger"))).unwrap();
    assert_eq!((head.entries, head.head), (7, sha256(b"h7")));
    // Another ledger's log is its own.
    let mut second = Actor::new(40);
    let t = w.chain.now();
    let reg = w.admin.register(t, &second, Role::Ledger, None);
    w.chain.commit(vec![reg]);
    let t = w.chain.now();
    let theirs = second.sign(t, None, cp(2, b"x2"));
    w.chain.commit(vec![theirs]);
}

#[test]
fn c1_an_institution_consent_covers_its_staff_only() {
    let mut w = World::new();
    let p = w.pid();
    let hid = w.hospital.id.clone();
    let grant =
        w.patient_signs(consent_body("c-hosp", &hid, &[Access::Read, Access::Write], &[DataClass::Private], None));
    w.chain.commit(vec![grant]);
    // Its staff read; the hospital itself reads.
    assert!(w.read(&w.clinician.id.clone()).allows(), "a clinician the hospital registered");
    assert!(w.read(&w.other_clinician.id.clone()).allows());
    assert!(w.read(&hid).allows(), "the institution itself");
    // A patient the hospital registered, another hospital's clinician: refused.
    let hp = w.hospital_patient.id.clone();
    assert!(!w.read(&hp).allows(), "another patient of the institution");
    assert!(!w.read(&w.elsewhere_clinician.id.clone()).allows(), "a clinician of another institution");
    // Lab staff an admin linked to the hospital are staff too.
    let lab = Actor::new(41);
    let t = w.chain.now();
    let reg = w.admin.register(t, &lab, Role::Lab, Some(&hid));
    w.chain.commit(vec![reg]);
    assert!(w.read(&lab.id).allows());
    // Nobody may make themselves staff: a patient's caregiver naming the hospital is
    // refused, so is any role that does not belong to an institution — even by an admin.
    let mut outsider = Actor::new(42);
    let outsider_self = Actor::new(42);
    let t = w.chain.now();
    let joined = outsider.register(t, &outsider_self, Role::Patient, None);
    w.chain.commit(vec![joined]);
    let fake = Actor::new(43);
    let t = w.chain.now();
    let naming = outsider.register(t, &fake, Role::Caregiver, Some(&hid));
    assert_eq!(w.chain.reject(vec![naming]).1, "forbidden", "a self-made caregiver naming the institution");
    let by_admin = w.admin.register(t, &fake, Role::Caregiver, Some(&hid));
    assert_eq!(w.chain.reject(vec![by_admin]).1, "forbidden", "caregivers belong to no institution");
    let svc = w.admin.register(t, &fake, Role::Detector, Some(&hid));
    assert_eq!(w.chain.reject(vec![svc]).1, "forbidden");
    // Writes and care plans follow the same rule.
    let t = w.chain.now();
    let obs = w.elsewhere_clinician.observe(t, &p);
    assert_eq!(w.chain.reject(vec![obs]).1, "forbidden", "another institution's clinician writes");
    let obs = w.clinician.observe(t, &p);
    w.chain.commit(vec![obs]);
    let plan = w.plan(1, &w.caregiver.id.clone());
    let t = w.chain.now();
    let other = w.elsewhere_clinician.sign(t, Some(&p), plan.clone().seal().0);
    assert_eq!(w.chain.reject(vec![other]).1, "forbidden");
    let staff = w.clinician.sign(t, Some(&p), plan.seal().0);
    w.chain.commit(vec![staff]);
    // A revoked clinician is no longer covered.
    let t = w.chain.now();
    let gone = w.hospital.sign(
        t,
        None,
        TxBody::ParticipantRevoke(glucochain_types::tx::ParticipantRevoke {
            id: w.other_clinician.id.clone(),
            reason: "left".into(),
        }),
    );
    w.chain.commit(vec![gone]);
    assert!(!w.read(&w.other_clinician.id.clone()).allows());
}

#[test]
fn h4_a_care_plan_routes_a_contact_only_to_channels_that_contact_declared() {
    let mut w = World::new();
    let p = w.pid();
    let grant = w.patient_signs(consent_body(
        "c1",
        &w.clinician.id.clone(),
        &[Access::Read, Access::Write],
        &[DataClass::Private],
        None,
    ));
    w.chain.commit(vec![grant]);
    let carer = w.caregiver.id.clone();
    let mut plan = w.plan(1, &carer);
    // The caregiver declared an email address only: a plan may not reach
    // them by SMS (the proposer cannot route their alerts anywhere the
    // caregiver did not give), nor by email and SMS.
    plan.contacts[0].channels = vec![ChannelKind::Sms];
    let t = w.chain.now();
    let redirect = w.clinician.sign(t, Some(&p), plan.clone().seal().0);
    assert_eq!(w.chain.reject(vec![redirect]).1, "forbidden", "a kind the caregiver never declared");
    plan.contacts[0].channels = vec![ChannelKind::Email, ChannelKind::Sms];
    let partly = w.clinician.sign(t, Some(&p), plan.clone().seal().0);
    assert_eq!(w.chain.reject(vec![partly]).1, "forbidden", "one undeclared kind is enough to refuse");
    // The caregiver adds a phone number themself: now the plan may name SMS.
    let t = w.chain.now();
    let both = vec![mum(), ContactChannel { kind: ChannelKind::Sms, address: "+441234567890".into() }];
    let declare = w.caregiver.sign(t, None, ContactChannelsBody::seal(both).0);
    w.chain.commit(vec![declare.clone()]);
    let t = w.chain.now();
    let ok = w.clinician.sign(t, Some(&p), plan.seal().0);
    w.chain.commit(vec![ok]);
    let contracts = w.chain.state.contracts();
    assert!(contracts.channels_declared(&carer, &[ChannelKind::Email, ChannelKind::Sms]));
    assert!(!contracts.channels_declared(&carer, &[ChannelKind::Webhook]));
    let declared = &contracts.contact_channels[&carer];
    assert_eq!(declared.tx, glucochain_crypto::sha256(&declare), "where the vault keeps the addresses");
    // The chain holds no address of theirs, only kinds and a commitment.
    let text = String::from_utf8_lossy(&declare);
    let payload = text.split('.').nth(1).unwrap();
    let payload = String::from_utf8(glucochain_crypto::jose::b64url_decode(payload).unwrap()).unwrap();
    assert!(!payload.contains("mum@") && !payload.contains("+44") && payload.contains("body_commitment"), "{payload}");
    // Nobody declares channels for someone else: the rule reads the signer.
    let t = w.chain.now();
    let for_other = w.stranger_caregiver.sign(t, None, ContactChannelsBody::seal(vec![]).0);
    w.chain.commit(vec![for_other]);
    assert!(
        w.chain.state.contracts().channels_declared(&carer, &[ChannelKind::Email]),
        "another caregiver's list is theirs only"
    );
    // Withdrawing every channel leaves nothing a plan may name.
    let t = w.chain.now();
    let withdraw = w.caregiver.sign(t, None, ContactChannelsBody::seal(vec![]).0);
    w.chain.commit(vec![withdraw]);
    assert!(!w.chain.state.contracts().channels_declared(&carer, &[ChannelKind::Email]));
}

#[test]
fn m6_care_plans_are_read_under_a_consent_that_covers_them_and_not_by_former_proposers() {
    let mut w = World::new();
    let p = w.pid();
    let cid = w.clinician.id.clone();
    let grant = w.patient_signs(consent_body("c1", &cid, &[Access::Read, Access::Write], &[DataClass::Private], None));
    w.chain.commit(vec![grant]);
    let plan = w.plan(1, &w.caregiver.id.clone());
    let t = w.chain.now();
    let propose = w.clinician.sign(t, Some(&p), plan.seal().0);
    let proposal_tx = sha256(&propose);
    w.chain.commit(vec![propose]);
    let accept =
        w.patient_signs(TxBody::CareplanAccept(CareplanAccept { plan_id: id("plan-1"), version: 1, proposal_tx }));
    w.chain.commit(vec![accept]);
    let read = |w: &World, who: &ParticipantId| {
        decide_careplan_read(&w.chain.state, who, &p, "TREAT", Timestamp::from_unix_ms(w.chain.now()))
    };
    assert!(read(&w, &cid).allows(), "the treating clinician");
    assert!(read(&w, &w.caregiver.id.clone()).allows(), "a contact on the plan in force");
    assert!(!read(&w, &w.stranger_caregiver.id.clone()).allows());
    // The consent ends: the clinician who proposed the plan no longer reads it.
    let revoke = w.patient_signs(TxBody::ConsentRevoke(ConsentRevoke { consent_id: id("c1") }));
    w.chain.commit(vec![revoke]);
    assert!(!read(&w, &cid).allows(), "a former proposer");
    // A consent for observations only does not open the care plan.
    let other = w.other_clinician.id.clone();
    let narrow =
        w.patient_signs(scoped_consent("c2", &other, &[RecordType::Observation], &[Access::Read], Purpose::Treat));
    w.chain.commit(vec![narrow]);
    assert!(w.read(&other).allows(), "the observations");
    assert!(!read(&w, &other).allows(), "not the care plan");
}

#[test]
fn low_a_clinician_acknowledges_only_when_treating_the_patient() {
    let mut w = World::new();
    let p = w.pid();
    let a = raise(&mut w, "a1");
    w.chain.commit(vec![a]);
    // A research consent, or one for documents only, does not let a clinician silence alerts.
    let (cid, other) = (w.clinician.id.clone(), w.other_clinician.id.clone());
    let research = w.patient_signs(scoped_consent("c-res", &cid, &[], &[Access::Read], Purpose::Research));
    let docs =
        w.patient_signs(scoped_consent("c-docs", &other, &[RecordType::Document], &[Access::Read], Purpose::Treat));
    w.chain.commit(vec![research, docs]);
    let t = w.chain.now();
    let ack = TxBody::AlertAck(AlertAck { alert_id: id("a1"), on_behalf_of: None });
    let by_researcher = w.clinician.sign(t, Some(&p), ack.clone());
    let by_docs = w.other_clinician.sign(t, Some(&p), ack.clone());
    assert_eq!(w.chain.reject(vec![by_researcher]).1, "forbidden");
    assert_eq!(w.chain.reject(vec![by_docs]).1, "forbidden");
    // A treating consent does.
    let treat =
        w.patient_signs(consent_body("c-treat", &w.clinician.id.clone(), &[Access::Read], &[DataClass::Private], None));
    w.chain.commit(vec![treat]);
    let t = w.chain.now();
    let ok = w.clinician.sign(t, Some(&p), ack);
    w.chain.commit(vec![ok]);
}

#[derive(Debug, Clone)]
enum Op {
    Grant { until_offset: Option<i64> },
    Revoke,
    Wait(i64),
}

fn erase(id_: &str, scope: EraseScope, request: Option<&str>) -> TxBody {
    TxBody::RecordErase(RecordErase { erase_id: id(id_), scope, request: request.map(String::from) })
}

/// Who may erase a patient's records (ADR 0016's matrix): the patient
/// themselves; an admin only naming the verified request acted on, also for
/// a former patient; nobody else — not their clinician, not the
/// institution, not their caregiver, not a service, not another patient;
/// an erasure id once.
#[test]
fn record_erase_is_the_patients_own_or_an_admins_on_a_verified_request() {
    let mut w = World::new();
    let p = w.pid();
    let t = w.chain.now();
    let one = EraseScope::Record(sha256(b"a record of the patient"));
    // Their care team and every service: refused (the care plan and consent give no such right).
    let c = w.patient_signs(consent_body(
        "c-erase",
        &w.clinician.id.clone(),
        &[Access::Read, Access::Write],
        &[DataClass::Private],
        None,
    ));
    w.chain.commit(vec![c]);
    let t2 = w.chain.now();
    // The consented clinician, a colleague of the same institution without
    // consent, another institution's clinician, the institution itself, the
    // patient's own caregiver, another patient's caregiver, every service.
    for who in [
        &mut w.clinician,
        &mut w.other_clinician,
        &mut w.elsewhere_clinician,
        &mut w.hospital,
        &mut w.caregiver,
        &mut w.stranger_caregiver,
        &mut w.detector,
        &mut w.notifier,
        &mut w.ledger,
    ] {
        let tx = who.sign(t2, Some(&p), erase("x-other", EraseScope::All, Some("a request")));
        assert_eq!(w.chain.reject(vec![tx]).1, "forbidden", "someone of the care team or a service erases");
    }
    // Another patient cannot erase this one's records.
    let theirs = w.hospital_patient.sign(t, Some(&p), erase("x-them", one.clone(), None));
    assert_eq!(w.chain.reject(vec![theirs]).1, "forbidden");
    // An admin needs the request; a patient names none.
    let blind = w.admin.sign(t2, Some(&p), erase("x-admin", EraseScope::Class(DataClass::Private), None));
    assert_eq!(w.chain.reject(vec![blind]).1, "forbidden");
    let odd = w.patient_signs(erase("x-odd", one.clone(), Some("ticket")));
    assert_eq!(w.chain.reject(vec![odd]).1, "forbidden");
    // The patient's own erasure, by record, class and all; an id once.
    for (n, scope) in [("x1", one.clone()), ("x2", EraseScope::Class(DataClass::Private)), ("x3", EraseScope::All)] {
        let tx = w.patient_signs(erase(n, scope, None));
        w.chain.commit(vec![tx]);
    }
    let again = w.patient_signs(erase("x1", EraseScope::All, None));
    assert_eq!(w.chain.reject(vec![again]).1, "conflict");
    let e = &w.chain.state.contracts().erasures[&(p.clone(), id("x2"))];
    assert_eq!(
        (e.by.clone(), e.scope.clone(), e.request.clone()),
        (p.clone(), EraseScope::Class(DataClass::Private), None)
    );
    // An admin on a verified request, also once the patient has left.
    let t3 = w.chain.now();
    let revoke = w.admin.sign(
        t3,
        None,
        TxBody::ParticipantRevoke(glucochain_types::tx::ParticipantRevoke { id: p.clone(), reason: "left".into() }),
    );
    w.chain.commit(vec![revoke]);
    let t4 = w.chain.now();
    let own = w.patient.sign(t4, Some(&p), erase("x4", EraseScope::All, None));
    assert_eq!(w.chain.reject(vec![own]).1, "revoked-signer", "a revoked registration signs nothing");
    let on_request =
        w.admin.sign(t4, Some(&p), erase("x5", EraseScope::All, Some("DPO request 2026-114, identity verified")));
    w.chain.commit(vec![on_request]);
    let e = &w.chain.state.contracts().erasures[&(p.clone(), id("x5"))];
    assert_eq!(e.by, w.admin.id);
    assert_eq!(e.request.as_deref(), Some("DPO request 2026-114, identity verified"));
    // The admin's exception is for erasure only: nothing else for a former
    // patient, not even what an admin may sign for an active one.
    let obs = w.clinician.observe(t4, &p);
    assert_eq!(w.chain.reject(vec![obs]).1, "unknown-patient");
    let grant = w.admin.sign(
        t4,
        Some(&p),
        consent_body("c-late", &w.clinician.id.clone(), &[Access::Read], &[DataClass::Private], None),
    );
    assert_eq!(w.chain.reject(vec![grant]).1, "unknown-patient");
    // And only for patients: not a clinician's id, not an unregistered one.
    for not_a_patient in [w.clinician.id.clone(), Actor::new(99).id] {
        let tx = w.admin.sign(t4, Some(&not_a_patient), erase("x6", EraseScope::All, Some("a request")));
        assert_eq!(w.chain.reject(vec![tx]).1, "unknown-patient");
    }
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        prop::option::of(1_000i64..20_000).prop_map(|until_offset| Op::Grant { until_offset }),
        Just(Op::Revoke),
        (500i64..8_000).prop_map(Op::Wait),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    /// Whatever the order of grants, revocations and time passing, the
    /// clinician may read exactly when the newest consent is granted, not
    /// revoked, and not expired; and a revoked consent never comes back.
    #[test]
    fn revocation_and_expiry_ordering(ops in prop::collection::vec(op(), 1..12)) {
        let mut w = World::new();
        let cid = w.clinician.id.clone();
        let mut model: Option<(String, Option<i64>, bool)> = None; // (id, until, revoked)
        let mut n = 0;
        for o in ops {
            match o {
                Op::Grant { until_offset } => {
                    n += 1;
                    let name = format!("c{n}");
                    if matches!(&model, Some((_, _, false))) {
                        // Revoke the previous one first: one consent in force at a time in the model.
                        let prev = model.as_ref().unwrap().0.clone();
                        let r = w.patient_signs(TxBody::ConsentRevoke(ConsentRevoke { consent_id: id(&prev) }));
                        w.chain.commit(vec![r]);
                    }
                    let until = until_offset.map(|d| w.chain.now() + d);
                    let g = w.patient_signs(consent_body(&name, &cid, &[Access::Read], &[DataClass::Private], until));
                    w.chain.commit(vec![g]);
                    model = Some((name, until, false));
                }
                Op::Revoke => {
                    if let Some((name, _, revoked)) = &mut model {
                        let r = w.patient_signs(TxBody::ConsentRevoke(ConsentRevoke { consent_id: id(name) }));
                        if *revoked {
                            prop_assert_eq!(w.chain.reject(vec![r]).1, "conflict");
                        } else {
                            w.chain.commit(vec![r]);
                            *revoked = true;
                        }
                    }
                }
                Op::Wait(ms) => w.chain.time += ms,
            }
            let now = w.chain.now();
            let expected = match &model {
                Some((_, until, revoked)) => !revoked && until.is_none_or(|u| now < u),
                None => false,
            };
            prop_assert_eq!(w.read(&cid).allows(), expected, "model {:?} at {}", model, now);
        }
    }
}

/// Who may write access-log entries through the detector's and the
/// notifier's audit subjects (ADR 0016 §3): the matrix of names and roles
/// claimed.
#[test]
fn only_an_active_service_appends_audit_entries_in_its_own_name() {
    use glucochain_state::service_may_append;
    let mut w = World::new();
    let (detector, notifier, clinician, patient) =
        (w.detector.id.clone(), w.notifier.id.clone(), w.clinician.id.clone(), w.pid());
    let stranger = Actor::new(77).id.clone();
    let state = &w.chain.state;
    assert!(service_may_append(state, Role::Detector, &detector, "detector"), "the detector, in its own name");
    assert!(service_may_append(state, Role::Notifier, &notifier, "notifier"), "the notifier, in its own name");
    for (service, who, role, why) in [
        (Role::Detector, &detector, "clinician", "the detector claiming another role"),
        (Role::Detector, &clinician, "clinician", "a clinician's name"),
        (Role::Detector, &clinician, "detector", "a clinician's name under the detector's role"),
        (Role::Detector, &notifier, "detector", "another service"),
        (Role::Detector, &notifier, "notifier", "the notifier on the detector's subject"),
        (Role::Notifier, &detector, "detector", "the detector on the notifier's subject"),
        (Role::Notifier, &notifier, "clinician", "the notifier claiming another role"),
        (Role::Notifier, &clinician, "notifier", "a clinician's name under the notifier's role"),
        (Role::Detector, &patient, "patient", "the patient"),
        (Role::Notifier, &stranger, "notifier", "someone never registered"),
        (Role::Clinician, &clinician, "clinician", "a subject no service of that role has"),
    ] {
        assert!(!service_may_append(state, service, who, role), "{why}");
    }
    // Once its registration is revoked, not even in its own name.
    let t = w.chain.now();
    let gone = w.admin.sign(
        t,
        None,
        TxBody::ParticipantRevoke(glucochain_types::tx::ParticipantRevoke {
            id: detector.clone(),
            reason: "rotated".into(),
        }),
    );
    w.chain.commit(vec![gone]);
    assert!(!service_may_append(&w.chain.state, Role::Detector, &detector, "detector"), "a revoked detector");
}
