//! The contract rules, each with allow and deny cases, and property tests
//! of consent revocation and expiry ordering.

mod common;

use common::{Actor, Chain, consent_body};
use glucochain_crypto::{Hash32, sha256};
use glucochain_state::{ReadDecision, decide_read, emergency_profile_for};
use glucochain_types::ids::LocalId;
use glucochain_types::time::Timestamp;
use glucochain_types::tx::{
    Access, AccessEmergency, AlertAck, AlertKind, AlertRaise, BloodGroup, CareContact, CareplanAccept, CareplanPropose,
    ChannelKind, ConsentRevoke, ConsentScope, ConsultRequest, ConsultRespond, ContactChannel, DiabetesType,
    EmergencyProfileSet, GlucoseThresholds, MedicationTaken, RecordType, Severity, Term, TxBody,
};
use glucochain_types::{DataClass, ParticipantId, Role};
use proptest::prelude::*;

fn id(s: &str) -> LocalId {
    LocalId::parse(s, "id").unwrap()
}

/// Admin, a hospital, its clinician, a second clinician, a patient and the patient's caregiver, a detector.
struct World {
    chain: Chain,
    admin: Actor,
    clinician: Actor,
    other_clinician: Actor,
    patient: Actor,
    caregiver: Actor,
    stranger_caregiver: Actor,
    detector: Actor,
    hospital: Actor,
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
        let t = chain.now();
        let me = Actor::new(5);
        let them = Actor::new(9);
        chain.commit(vec![
            admin.register(t, &hospital, Role::Institution, None),
            admin.register(t, &detector, Role::Service, None),
            patient.register(t, &me, Role::Patient, None),
            other_patient.register(t, &them, Role::Patient, None),
        ]);
        let t = chain.now();
        let hid = hospital.id.clone();
        chain.commit(vec![
            hospital.register(t, &clinician, Role::Clinician, Some(&hid)),
            hospital.register(t, &other_clinician, Role::Clinician, Some(&hid)),
            patient.register(t, &caregiver, Role::Caregiver, None),
            other_patient.register(t, &stranger_caregiver, Role::Caregiver, None),
        ]);
        World { chain, admin, clinician, other_clinician, patient, caregiver, stranger_caregiver, detector, hospital }
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

    fn plan(&self, version: u32, contact: &ParticipantId) -> CareplanPropose {
        CareplanPropose {
            plan_id: id("plan-1"),
            version,
            thresholds: GlucoseThresholds::default(),
            alert_kinds: vec![AlertKind::UrgentLow, AlertKind::Low],
            contacts: vec![CareContact {
                participant: contact.clone(),
                channels: vec![ContactChannel { kind: ChannelKind::Email, address: "mum@example.org".into() }],
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
    let bad = w.patient_signs(TxBody::ConsentRevoke(ConsentRevoke { consent_id: id("nope"), reason: None }));
    assert_eq!(w.chain.reject(vec![bad]).1, "unknown-contract");
    let revoke =
        w.patient_signs(TxBody::ConsentRevoke(ConsentRevoke { consent_id: id("c1"), reason: Some("moved".into()) }));
    assert!(w.read(&cid).allows());
    w.chain.commit(vec![revoke]);
    assert!(!w.read(&cid).allows(), "revoked from the block that commits it");
    let twice = w.patient_signs(TxBody::ConsentRevoke(ConsentRevoke { consent_id: id("c1"), reason: None }));
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
    assert!(d.covers(DataClass::Private, RecordType::Observation, &["99504-3".into()]));
    assert!(!d.covers(DataClass::Private, RecordType::Observation, &["4548-4".into()]), "other codes are not covered");
    assert!(!d.covers(DataClass::Institution, RecordType::Observation, &["99504-3".into()]), "other class");
    assert!(!d.covers(DataClass::Private, RecordType::Document, &[]), "other record type");
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
    let propose = w.clinician.sign(t, Some(&p), TxBody::CareplanPropose(plan.clone()));
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
    let bad = w.clinician.sign(t, Some(&p), TxBody::CareplanPropose(bad_plan));
    assert_eq!(w.chain.reject(vec![bad]).1, "forbidden");
    let propose = w.clinician.sign(t, Some(&p), TxBody::CareplanPropose(plan));
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
    let propose2 = w.clinician.sign(t, Some(&p), TxBody::CareplanPropose(v2));
    let tx2 = sha256(&propose2);
    w.chain.commit(vec![propose2]);
    let now = Timestamp::from_unix_ms(w.chain.now());
    assert_eq!(w.chain.state.contracts().active_careplan(&p, now).unwrap().plan.version, 1);
    let accept2 =
        w.patient_signs(TxBody::CareplanAccept(CareplanAccept { plan_id: id("plan-1"), version: 2, proposal_tx: tx2 }));
    w.chain.commit(vec![accept2]);
    let now = Timestamp::from_unix_ms(w.chain.now());
    assert_eq!(w.chain.state.contracts().active_careplan(&p, now).unwrap().plan.thresholds.low, 75.0);
    // Re-accepting an older version is refused.
    let old =
        w.patient_signs(TxBody::CareplanAccept(CareplanAccept { plan_id: id("plan-1"), version: 1, proposal_tx }));
    assert_eq!(w.chain.reject(vec![old]).1, "conflict");
}

#[test]
fn break_glass_needs_the_current_device_token() {
    let mut w = World::new();
    let p = w.pid();
    let token = b"wristband-secret-1".to_vec();
    let profile = |token: &[u8]| {
        TxBody::EmergencyProfileSet(EmergencyProfileSet {
            blood_group: BloodGroup::APos,
            allergies: vec!["penicillin".into()],
            diabetes_type: DiabetesType::Type1,
            medications: vec!["insulin glargine".into()],
            emergency_contacts: vec![],
            token_hash: sha256(token),
        })
    };
    let set = w.patient_signs(profile(&token));
    w.chain.commit(vec![set]);
    let cid = w.clinician.id.clone();
    let at = Timestamp::from_unix_ms(w.chain.now());
    assert!(emergency_profile_for(&w.chain.state, &cid, &p, at).is_none(), "nothing without a break-glass access");
    let t = w.chain.now();
    let wrong = w.clinician.sign(
        t,
        Some(&p),
        TxBody::AccessEmergency(AccessEmergency { token_hash: sha256(b"guess"), reason: "unconscious".into() }),
    );
    assert_eq!(w.chain.reject(vec![wrong]).1, "forbidden");
    let access = w.clinician.sign(
        t,
        Some(&p),
        TxBody::AccessEmergency(AccessEmergency { token_hash: sha256(&token), reason: "unconscious at the ER".into() }),
    );
    w.chain.commit(vec![access]);
    let at = Timestamp::from_unix_ms(w.chain.now());
    let prof = emergency_profile_for(&w.chain.state, &cid, &p, at).expect("profile after access");
    assert_eq!(prof.profile.blood_group, BloodGroup::APos);
    assert!(
        emergency_profile_for(&w.chain.state, &w.other_clinician.id, &p, at).is_none(),
        "only the accessing clinician"
    );
    let later = Timestamp::from_unix_ms(at.unix_ms() + glucochain_state::contracts::EMERGENCY_WINDOW_MS + 1);
    assert!(emergency_profile_for(&w.chain.state, &cid, &p, later).is_none(), "only for a short window");
    // Rotating the token revokes the old one.
    let rotate = w.patient_signs(profile(b"wristband-secret-2"));
    w.chain.commit(vec![rotate]);
    let t = w.chain.now();
    let stale = w.clinician.sign(
        t,
        Some(&p),
        TxBody::AccessEmergency(AccessEmergency { token_hash: sha256(&token), reason: "again".into() }),
    );
    assert_eq!(w.chain.reject(vec![stale]).1, "forbidden");
    // A caregiver cannot break the glass (role rule).
    let t = w.chain.now();
    let cg = w.caregiver.sign(
        t,
        Some(&p),
        TxBody::AccessEmergency(AccessEmergency { token_hash: sha256(b"wristband-secret-2"), reason: "x".into() }),
    );
    assert_eq!(w.chain.reject(vec![cg]).1, "forbidden");
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
        reason: "lows at night".into(),
    }));
    w.chain.commit(vec![req]);
    assert!(w.read(&cid).covers(DataClass::Private, RecordType::Observation, &[]), "shared with the clinician asked");
    assert!(!w.read(&w.other_clinician.id.clone()).allows());
    let dup = w.patient_signs(TxBody::ConsultRequest(ConsultRequest {
        consult_id: id("k1"),
        clinician: cid.clone(),
        shared: scope,
        reason: "again".into(),
    }));
    assert_eq!(w.chain.reject(vec![dup]).1, "conflict");
    let t = w.chain.now();
    let respond = |who: &mut Actor| {
        who.sign(
            t,
            Some(&p),
            TxBody::ConsultRespond(ConsultRespond {
                consult_id: id("k1"),
                note: "lower basal".into(),
                prescription: None,
                careplan_change: None,
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
            TxBody::MedicationTaken(MedicationTaken {
                medication: "insulin".into(),
                dose: None,
                taken_at: Timestamp::from_unix_ms(t),
            }),
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
            glucose_mg_dl: Some(48.0),
            slope_mg_dl_per_min: Some(-2.5),
            predicted_mg_dl: None,
            model_score: None,
            reason: "48 mg/dL, falling".into(),
        }),
    );
    let ack = |who: &mut Actor, alert: &str| {
        who.sign(
            t,
            Some(&p),
            TxBody::AlertAck(AlertAck { alert_id: id(alert), note: Some("gave juice".into()), on_behalf_of: None }),
        )
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
    let twice = w.caregiver.sign(
        t2,
        Some(&p),
        TxBody::AlertAck(AlertAck { alert_id: id("a1"), note: None, on_behalf_of: None }),
    );
    assert_eq!(w.chain.reject(vec![twice]).1, "conflict");
    let by_patient = w.patient_signs(TxBody::AlertAck(AlertAck { alert_id: id("a1"), note: None, on_behalf_of: None }));
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
            glucose_mg_dl: Some(65.0),
            slope_mg_dl_per_min: None,
            predicted_mg_dl: None,
            model_score: None,
            reason: "65 mg/dL".into(),
        }),
    );
    w.chain.commit(vec![raise2]);
    let relay = |who: &mut Actor, t: i64, behalf: Option<ParticipantId>| {
        who.sign(t, Some(&p), TxBody::AlertAck(AlertAck { alert_id: id("a2"), note: None, on_behalf_of: behalf }))
    };
    let t3 = w.chain.now();
    let stranger = w.stranger_caregiver.id.clone();
    let carer = w.caregiver.id.clone();
    assert_eq!(w.chain.reject(vec![relay(&mut w.detector, t3, None)]).1, "forbidden", "a service acks for someone");
    assert_eq!(
        w.chain.reject(vec![relay(&mut w.detector, t3, Some(stranger))]).1,
        "forbidden",
        "not on this patient's care team"
    );
    assert_eq!(
        w.chain.reject(vec![relay(&mut w.stranger_caregiver, t3, Some(carer.clone()))]).1,
        "forbidden",
        "only services relay"
    );
    w.chain.commit(vec![relay(&mut w.detector, t3, Some(carer))]);
}

#[derive(Debug, Clone)]
enum Op {
    Grant { until_offset: Option<i64> },
    Revoke,
    Wait(i64),
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
                        let r = w.patient_signs(TxBody::ConsentRevoke(ConsentRevoke { consent_id: id(&prev), reason: None }));
                        w.chain.commit(vec![r]);
                    }
                    let until = until_offset.map(|d| w.chain.now() + d);
                    let g = w.patient_signs(consent_body(&name, &cid, &[Access::Read], &[DataClass::Private], until));
                    w.chain.commit(vec![g]);
                    model = Some((name, until, false));
                }
                Op::Revoke => {
                    if let Some((name, _, revoked)) = &mut model {
                        let r = w.patient_signs(TxBody::ConsentRevoke(ConsentRevoke { consent_id: id(name), reason: None }));
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
