//! The smart contracts between a patient and their care team, as
//! deterministic rules over committed state: consent, care plans (two
//! signatures), emergency (break-glass) profiles and tokens, tele-health
//! consults, medication and alert acknowledgements. The validators apply
//! them when admitting transactions; the ledger and the contracts engine use
//! [`decide_read`] for every read. Every rule answers allow or deny with a
//! reason.

use crate::{BlockExecution, LedgerState, Participant, Rejection};
use glucochain_crypto::{Hash32, PublicKey};
use glucochain_types::ids::LocalId;
use glucochain_types::time::Timestamp;
use glucochain_types::tx::{
    Access, AccessEmergency, AlertAck, AlertRaise, AuditCheckpoint, CareplanAccept, CareplanPropose, ChannelKind,
    ConsentGrant, ConsentRevoke, ConsentScope, ConsultRequest, ConsultRespond, ContactChannelsSet, EmergencyProfileSet,
    EmergencyReason, EraseScope, MedicationTaken, Purpose, RecordErase, RecordType, TxBody,
};
use glucochain_types::{DataClass, ParticipantId, Role, Transaction};
use std::collections::BTreeMap;

/// How long a consult request lets the clinician read the shared records
/// when it is not answered (after an answer, access ends).
pub const CONSULT_WINDOW_MS: i64 = 7 * 24 * 3600 * 1000;
/// How long a break-glass access lasts.
pub const EMERGENCY_WINDOW_MS: i64 = 60 * 60 * 1000;
/// Most break-glass accesses one clinician may open in [`EMERGENCY_RATE_WINDOW_MS`].
pub const EMERGENCY_MAX_PER_WINDOW: usize = 5;
/// The rolling window of the break-glass limit (block time).
pub const EMERGENCY_RATE_WINDOW_MS: i64 = 24 * 60 * 60 * 1000;

/// Whether a consent whose grantee is `grantee` covers `who`: the grantee
/// themself, or — when the grantee is an institution — a member of its
/// staff: a clinician or lab staff whose link to the institution was set by
/// an admin or by that institution. Nobody else who names the institution
/// (a patient it registered, a caregiver, anyone who wrote its id into their
/// registration) is covered. `lookup` finds participants (with the
/// registrations of the block being checked, where there is one).
pub fn grantee_covers<'a>(
    grantee: &ParticipantId,
    who: &Participant,
    lookup: impl Fn(&ParticipantId) -> Option<&'a Participant>,
) -> bool {
    if &who.id == grantee {
        return true;
    }
    if !matches!(who.role, Role::Clinician | Role::Lab) || who.institution.as_ref() != Some(grantee) {
        return false;
    }
    let Some(institution) = lookup(grantee).filter(|i| i.role == Role::Institution && i.is_active()) else {
        return false;
    };
    match &who.registered_by {
        None => false,
        Some(by) if by == &institution.id => true,
        Some(by) => lookup(by).is_some_and(|p| p.role == Role::Admin),
    }
}

/// A consent a patient granted.
#[derive(Debug, Clone, PartialEq)]
pub struct Consent {
    /// The patient.
    pub patient: ParticipantId,
    /// Its id (per patient).
    pub consent_id: LocalId,
    /// Who may access: a participant or an institution (then its staff).
    pub grantee: ParticipantId,
    /// What.
    pub scope: ConsentScope,
    /// Why.
    pub purpose: Purpose,
    /// From when (default: the granting block).
    pub valid_from: Option<Timestamp>,
    /// Until when (default: until revoked).
    pub valid_until: Option<Timestamp>,
    /// Block that granted it.
    pub granted_at: u64,
    /// Block that revoked it.
    pub revoked_at: Option<u64>,
}

impl Consent {
    /// Whether it is in force at `t`.
    pub fn active_at(&self, t: Timestamp) -> bool {
        self.revoked_at.is_none() && self.valid_from.is_none_or(|f| t >= f) && self.valid_until.is_none_or(|u| t < u)
    }
}

/// Whether `scope` covers an access to one record of `class` and
/// `record_type` with these codings (`(system, code)`, see
/// [`ConsentScope::covers_codes`]).
pub fn scope_covers(
    scope: &ConsentScope,
    access: Access,
    class: DataClass,
    record_type: RecordType,
    codings: &[(Option<String>, String)],
) -> bool {
    scope.allows_type(access, record_type) && scope.data_classes.contains(&class) && scope.covers_codes(codings)
}

/// One version of a care plan.
#[derive(Debug, Clone, PartialEq)]
pub struct CareplanVersion {
    /// The proposal as the chain holds it (its clinical content,
    /// `CareplanBody`, is in the record vault under `proposal_tx`).
    pub plan: CareplanPropose,
    /// The clinician who proposed it.
    pub proposer: ParticipantId,
    /// Hash of the `careplan.propose` transaction.
    pub proposal_tx: Hash32,
    /// Block of the proposal.
    pub proposed_at: u64,
    /// Block of the patient's acceptance (then this version is the active one).
    pub accepted_at: Option<u64>,
}

/// A care plan with its versions.
#[derive(Debug, Clone, PartialEq)]
pub struct Careplan {
    /// The patient.
    pub patient: ParticipantId,
    /// Plan id.
    pub plan_id: LocalId,
    /// Proposed versions.
    pub versions: BTreeMap<u32, CareplanVersion>,
    /// The accepted (active) version, if any.
    pub active_version: Option<u32>,
}

impl Careplan {
    /// The active version, if accepted and within its term at `t`.
    pub fn active_at(&self, t: Timestamp) -> Option<&CareplanVersion> {
        let v = self.versions.get(&self.active_version?)?;
        (v.plan.term.start <= t && t < v.plan.term.end).then_some(v)
    }
}

/// A patient's emergency profile and the public key of their emergency card.
#[derive(Debug, Clone, PartialEq)]
pub struct EmergencyProfile {
    /// The patient.
    pub patient: ParticipantId,
    /// What the chain holds of it: the card's key and the commitment to the
    /// profile (blood group, allergies, medication, contacts), whose body is
    /// in the record vault under `tx`.
    pub profile: EmergencyProfileSet,
    /// The transaction that set it (where the vault keeps its body).
    pub tx: Hash32,
    /// Block that set it.
    pub set_at: u64,
}

/// The channels a care-team member declares (`contact.channels.set`): their
/// kinds on the chain, their addresses in the record vault under `tx`.
#[derive(Debug, Clone, PartialEq)]
pub struct DeclaredChannels {
    /// The kind of each channel, in declared order.
    pub kinds: Vec<ChannelKind>,
    /// Commitment to the addresses (`ContactChannelsBody`).
    pub body_commitment: Hash32,
    /// The transaction that declared them (where the vault keeps them,
    /// under the contact's own id).
    pub tx: Hash32,
}

impl DeclaredChannels {
    /// Whether a channel of every one of `kinds` is declared.
    pub fn covers(&self, kinds: &[ChannelKind]) -> bool {
        kinds.iter().all(|k| self.kinds.contains(k))
    }
}

/// A tele-health consult.
#[derive(Debug, Clone, PartialEq)]
pub struct Consult {
    /// The patient.
    pub patient: ParticipantId,
    /// Its id.
    pub consult_id: LocalId,
    /// The clinician asked.
    pub clinician: ParticipantId,
    /// What the patient shares with them.
    pub shared: ConsentScope,
    /// When it was requested (block time).
    pub requested_time: Timestamp,
    /// Block of the answer.
    pub responded_at: Option<u64>,
}

/// A raised alert and who acknowledged it.
#[derive(Debug, Clone, PartialEq)]
pub struct RaisedAlert {
    /// The patient.
    pub patient: ParticipantId,
    /// Alert id.
    pub alert_id: LocalId,
    /// Who acknowledged.
    pub acked_by: Vec<ParticipantId>,
}

/// A committed erasure of a patient's records (`record.erase`): every vault
/// destroys the bodies in its scope.
#[derive(Debug, Clone, PartialEq)]
pub struct Erasure {
    /// The patient.
    pub patient: ParticipantId,
    /// Erasure id.
    pub erase_id: LocalId,
    /// What it covers.
    pub scope: EraseScope,
    /// Who signed it (the patient, or an admin on a verified request).
    pub by: ParticipantId,
    /// The request an admin acted on.
    pub request: Option<String>,
    /// The height it was committed at.
    pub height: u64,
}

/// A break-glass access granted by a block.
#[derive(Debug, Clone, PartialEq)]
pub struct EmergencyAccess {
    /// The patient.
    pub patient: ParticipantId,
    /// The clinician.
    pub clinician: ParticipantId,
    /// When it was granted (block time).
    pub at: Timestamp,
    /// Until when the profile may be read.
    pub until: Timestamp,
    /// Why.
    pub reason_code: EmergencyReason,
    /// The `access.emergency` transaction.
    pub tx: Hash32,
    /// The commitment to the clinician's words, sealed in the vault, if any.
    pub reason_commitment: Option<Hash32>,
}

/// The newest committed head of a service's audit log.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditHead {
    /// Hash of the newest entry.
    pub head: Hash32,
    /// Entries up to and including it.
    pub entries: u64,
    /// Block of the checkpoint.
    pub height: u64,
}

/// All contract state (also used as the per-block overlay of changes).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Contracts {
    /// Consents by (patient, consent id).
    pub consents: BTreeMap<(ParticipantId, LocalId), Consent>,
    /// Care plans by (patient, plan id).
    pub careplans: BTreeMap<(ParticipantId, LocalId), Careplan>,
    /// Emergency profiles by patient.
    pub emergency: BTreeMap<ParticipantId, EmergencyProfile>,
    /// Consults by (patient, consult id).
    pub consults: BTreeMap<(ParticipantId, LocalId), Consult>,
    /// Alerts by (patient, alert id).
    pub alerts: BTreeMap<(ParticipantId, LocalId), RaisedAlert>,
    /// Break-glass accesses, newest last.
    pub emergency_accesses: Vec<EmergencyAccess>,
    /// The channels each care-team member declared (`contact.channels.set`).
    pub contact_channels: BTreeMap<ParticipantId, DeclaredChannels>,
    /// Committed audit-log heads by (ledger, log id).
    pub audit_heads: BTreeMap<(ParticipantId, LocalId), AuditHead>,
    /// Erasures by (patient, erase id).
    pub erasures: BTreeMap<(ParticipantId, LocalId), Erasure>,
}

impl Contracts {
    /// Applies a block's changes; returns lines describing them (for the state root).
    pub(crate) fn merge(&mut self, delta: Contracts) -> Vec<String> {
        let mut lines = Vec::new();
        for (k, v) in delta.consents {
            lines.push(format!("consent {}/{} revoked={:?}", k.0, k.1, v.revoked_at));
            self.consents.insert(k, v);
        }
        for (k, v) in delta.careplans {
            lines.push(format!("careplan {}/{} versions={} active={:?}", k.0, k.1, v.versions.len(), v.active_version));
            self.careplans.insert(k, v);
        }
        for (k, v) in delta.emergency {
            lines.push(format!("emergency {k} card={}", v.profile.card_key));
            self.emergency.insert(k, v);
        }
        for (k, v) in delta.consults {
            lines.push(format!("consult {}/{} responded={:?}", k.0, k.1, v.responded_at));
            self.consults.insert(k, v);
        }
        for (k, v) in delta.alerts {
            lines.push(format!("alert {}/{} acks={}", k.0, k.1, v.acked_by.len()));
            self.alerts.insert(k, v);
        }
        for a in delta.emergency_accesses {
            lines.push(format!("break-glass {} by {}", a.patient, a.clinician));
            self.emergency_accesses.push(a);
        }
        for (k, v) in delta.contact_channels {
            lines.push(format!("channels {k} {:?} {}", v.kinds, v.tx));
            self.contact_channels.insert(k, v);
        }
        for (k, v) in delta.audit_heads {
            lines.push(format!("audit {}/{} {}@{}", k.0, k.1, v.entries, v.head));
            self.audit_heads.insert(k, v);
        }
        for (k, v) in delta.erasures {
            lines.push(format!("erasure {}/{} {:?} by {}", k.0, k.1, v.scope, v.by));
            self.erasures.insert(k, v);
        }
        lines
    }

    /// A patient's consents.
    pub fn consents_of<'a>(&'a self, patient: &'a ParticipantId) -> impl Iterator<Item = &'a Consent> + 'a {
        self.consents.values().filter(move |c| &c.patient == patient)
    }

    /// A patient's care plans.
    pub fn careplans_of<'a>(&'a self, patient: &'a ParticipantId) -> impl Iterator<Item = &'a Careplan> + 'a {
        self.careplans.values().filter(move |c| &c.patient == patient)
    }

    /// The patient's care plan in force at `t` (the most recently accepted).
    pub fn active_careplan(&self, patient: &ParticipantId, t: Timestamp) -> Option<&CareplanVersion> {
        self.careplans
            .values()
            .filter(|c| &c.patient == patient)
            .filter_map(|p| p.active_at(t))
            .max_by_key(|v| v.accepted_at)
    }

    /// The emergency profile whose current card has this public key.
    pub fn profile_by_card(&self, card_key: &PublicKey) -> Option<&EmergencyProfile> {
        self.emergency.values().find(|p| &p.profile.card_key == card_key)
    }

    /// Whether `contact` declares a channel of every one of `kinds` (`contact.channels.set`).
    pub fn channels_declared(&self, contact: &ParticipantId, kinds: &[ChannelKind]) -> bool {
        self.contact_channels.get(contact).is_some_and(|d| d.covers(kinds))
    }
}

fn deny(reason: impl Into<String>) -> Rejection {
    Rejection { code: "forbidden", reason: reason.into() }
}

fn conflict(reason: impl Into<String>) -> Rejection {
    Rejection { code: "conflict", reason: reason.into() }
}

fn not_found(reason: impl Into<String>) -> Rejection {
    Rejection { code: "unknown-contract", reason: reason.into() }
}

impl BlockExecution<'_> {
    fn c_consent(&self, key: &(ParticipantId, LocalId)) -> Option<&Consent> {
        self.effects.contracts.consents.get(key).or_else(|| self.state.contracts.consents.get(key))
    }

    fn c_careplan(&self, key: &(ParticipantId, LocalId)) -> Option<&Careplan> {
        self.effects.contracts.careplans.get(key).or_else(|| self.state.contracts.careplans.get(key))
    }

    fn c_consult(&self, key: &(ParticipantId, LocalId)) -> Option<&Consult> {
        self.effects.contracts.consults.get(key).or_else(|| self.state.contracts.consults.get(key))
    }

    fn c_alert(&self, key: &(ParticipantId, LocalId)) -> Option<&RaisedAlert> {
        self.effects.contracts.alerts.get(key).or_else(|| self.state.contracts.alerts.get(key))
    }

    fn active_participant(&self, id: &ParticipantId) -> Option<&Participant> {
        match self.lookup(id) {
            Some((p, true)) => Some(p),
            _ => None,
        }
    }

    /// Whether a consent to `grantee` covers `who` (see [`grantee_covers`]),
    /// with this block's registrations.
    fn covers(&self, grantee: &ParticipantId, who: &Participant) -> bool {
        grantee_covers(grantee, who, |id| self.lookup(id).map(|(p, _)| p))
    }

    /// Consents of `patient` in force now (state and this block), each once.
    fn consents_in_force(&self, patient: &ParticipantId) -> Vec<&Consent> {
        let mut keys: Vec<&(ParticipantId, LocalId)> = self
            .state
            .contracts
            .consents
            .keys()
            .chain(self.effects.contracts.consents.keys())
            .filter(|k| &k.0 == patient)
            .collect();
        keys.sort();
        keys.dedup();
        keys.into_iter().filter_map(|k| self.c_consent(k)).filter(|c| c.active_at(self.time)).collect()
    }

    /// Whether `who` may write records of `class`/`record_type` for
    /// `patient` under a consent: one covering every record (each record's
    /// codings given separately).
    fn may_write(
        &self,
        who: &Participant,
        patient: &ParticipantId,
        class: DataClass,
        rt: RecordType,
        records: &[Vec<(Option<String>, String)>],
    ) -> bool {
        self.consents_in_force(patient).iter().any(|c| {
            self.covers(&c.grantee, who)
                && records.iter().all(|codings| scope_covers(&c.scope, Access::Write, class, rt, codings))
        })
    }

    /// The contract rules of `tx` (signed by `signer` with `role`).
    pub(crate) fn contract_rules(&mut self, tx: &Transaction, role: Role) -> Result<(), Rejection> {
        match &tx.payload.body {
            TxBody::ContactChannelsSet(c) => return self.contact_channels_set(tx, c),
            TxBody::AuditCheckpoint(a) => return self.audit_checkpoint(&tx.signer, a),
            _ => {}
        }
        let Some(patient) = tx.payload.patient.clone() else { return Ok(()) };
        let signer = self.active_participant(&tx.signer).cloned();
        match &tx.payload.body {
            TxBody::ObservationRecord(r) if role != Role::Patient => {
                // A consent must cover each observation's codes.
                let records = r.codings();
                let who = signer.ok_or_else(|| deny("signer not active"))?;
                if !self.may_write(&who, &patient, r.data_class, RecordType::Observation, &records) {
                    return Err(deny(format!("no consent of {patient} lets {} write these observations", who.id)));
                }
            }
            TxBody::DocumentAdd(d) if role != Role::Patient => {
                let codings: Vec<(Option<String>, String)> =
                    d.code.iter().map(|c| (Some(glucochain_types::fhir::LOINC.to_string()), c.clone())).collect();
                let who = signer.ok_or_else(|| deny("signer not active"))?;
                if !self.may_write(&who, &patient, d.data_class, RecordType::Document, &[codings]) {
                    return Err(deny(format!("no consent of {patient} lets {} add this document", who.id)));
                }
            }
            TxBody::ConsentGrant(g) => self.consent_grant(&patient, g)?,
            TxBody::ConsentRevoke(r) => self.consent_revoke(&patient, r)?,
            TxBody::CareplanPropose(p) => self.careplan_propose(tx, &patient, p)?,
            TxBody::CareplanAccept(a) => self.careplan_accept(&patient, a)?,
            TxBody::EmergencyProfileSet(e) => {
                // A card key belongs to one patient: committed, or set earlier in this block.
                let in_use = |p: &EmergencyProfile| p.profile.card_key == e.card_key && p.patient != patient;
                if self
                    .state
                    .contracts
                    .emergency
                    .values()
                    .any(|p| in_use(p) && !self.effects.contracts.emergency.contains_key(&p.patient))
                    || self.effects.contracts.emergency.values().any(in_use)
                {
                    return Err(conflict("this emergency card is already in use"));
                }
                let p = EmergencyProfile {
                    patient: patient.clone(),
                    profile: e.clone(),
                    tx: tx.hash,
                    set_at: self.state.height + 1,
                };
                self.effects.contracts.emergency.insert(patient, p);
            }
            TxBody::AccessEmergency(a) => self.access_emergency(tx, &patient, a)?,
            TxBody::ConsultRequest(c) => self.consult_request(&patient, c)?,
            TxBody::ConsultRespond(r) => self.consult_respond(&tx.signer, &patient, r)?,
            TxBody::MedicationTaken(m) => self.medication_taken(signer.as_ref(), role, &patient, m)?,
            TxBody::AlertRaise(a) => self.alert_raise(&patient, a)?,
            TxBody::AlertAck(a) => self.alert_ack(&tx.signer, role, &patient, a)?,
            TxBody::RecordErase(e) => self.record_erase(&tx.signer, role, &patient, e)?,
            _ => {}
        }
        Ok(())
    }

    fn consent_grant(&mut self, patient: &ParticipantId, g: &ConsentGrant) -> Result<(), Rejection> {
        let key = (patient.clone(), g.consent_id.clone());
        if self.c_consent(&key).is_some() {
            return Err(conflict(format!("consent {} already exists", g.consent_id)));
        }
        let Some(grantee) = self.active_participant(&g.grantee) else {
            return Err(Rejection {
                code: "unknown-participant",
                reason: format!("grantee {} is not active", g.grantee),
            });
        };
        if !matches!(grantee.role, Role::Institution | Role::Clinician | Role::Lab | Role::Caregiver | Role::Patient) {
            return Err(deny(format!("a {} cannot be given access to records", grantee.role.as_str())));
        }
        if &g.grantee == patient {
            return Err(deny("a patient needs no consent for their own records"));
        }
        let c = Consent {
            patient: patient.clone(),
            consent_id: g.consent_id.clone(),
            grantee: g.grantee.clone(),
            scope: g.scope.clone(),
            purpose: g.purpose,
            valid_from: g.valid_from,
            valid_until: g.valid_until,
            granted_at: self.state.height + 1,
            revoked_at: None,
        };
        self.effects.contracts.consents.insert(key, c);
        Ok(())
    }

    fn consent_revoke(&mut self, patient: &ParticipantId, r: &ConsentRevoke) -> Result<(), Rejection> {
        let key = (patient.clone(), r.consent_id.clone());
        let mut c = self.c_consent(&key).cloned().ok_or_else(|| not_found(format!("no consent {}", r.consent_id)))?;
        if c.revoked_at.is_some() {
            return Err(conflict(format!("consent {} is already revoked", r.consent_id)));
        }
        c.revoked_at = Some(self.state.height + 1);
        self.effects.contracts.consents.insert(key, c);
        Ok(())
    }

    fn careplan_propose(
        &mut self,
        tx: &Transaction,
        patient: &ParticipantId,
        p: &CareplanPropose,
    ) -> Result<(), Rejection> {
        let who = self.active_participant(&tx.signer).cloned().ok_or_else(|| deny("signer not active"))?;
        let treats = self
            .consents_in_force(patient)
            .iter()
            .any(|c| self.covers(&c.grantee, &who) && c.scope.allows_type(Access::Write, RecordType::Careplan));
        if !treats {
            return Err(deny(format!("{} holds no consent with write access to care plans from {patient}", who.id)));
        }
        for c in &p.contacts {
            match self.active_participant(&c.participant) {
                Some(q) if q.role == Role::Caregiver && q.registered_by.as_ref() == Some(patient) => {}
                Some(q) if q.role == Role::Clinician => {}
                _ => {
                    return Err(deny(format!(
                        "contact {} is neither a caregiver this patient invited nor a clinician",
                        c.participant
                    )));
                }
            }
            // Alerts (and their acknowledge links) go only where the contact said they may.
            if !self.channels_declared(&c.participant, &c.channels) {
                return Err(deny(format!(
                    "contact {} has not declared a channel of every kind the plan names (contact.channels.set)",
                    c.participant
                )));
            }
        }
        let key = (patient.clone(), p.plan_id.clone());
        let mut plan = self.c_careplan(&key).cloned().unwrap_or_else(|| Careplan {
            patient: patient.clone(),
            plan_id: p.plan_id.clone(),
            versions: BTreeMap::new(),
            active_version: None,
        });
        if plan.versions.contains_key(&p.version) {
            return Err(conflict(format!("plan {} version {} was already proposed", p.plan_id, p.version)));
        }
        if plan.active_version.is_some_and(|a| p.version <= a) {
            return Err(conflict("an amendment needs a version above the active one"));
        }
        plan.versions.insert(
            p.version,
            CareplanVersion {
                plan: p.clone(),
                proposer: who.id,
                proposal_tx: tx.hash,
                proposed_at: self.state.height + 1,
                accepted_at: None,
            },
        );
        self.effects.contracts.careplans.insert(key, plan);
        Ok(())
    }

    fn careplan_accept(&mut self, patient: &ParticipantId, a: &CareplanAccept) -> Result<(), Rejection> {
        let key = (patient.clone(), a.plan_id.clone());
        let mut plan =
            self.c_careplan(&key).cloned().ok_or_else(|| not_found(format!("no care plan {}", a.plan_id)))?;
        let time = self.time;
        let v = plan.versions.get_mut(&a.version).ok_or_else(|| not_found(format!("no version {}", a.version)))?;
        if v.proposal_tx != a.proposal_tx {
            return Err(conflict("proposal_tx is not the proposal of this version"));
        }
        if v.accepted_at.is_some() {
            return Err(conflict("this version is already accepted"));
        }
        if time >= v.plan.term.end {
            return Err(Rejection { code: "expired", reason: "the plan's term has ended".into() });
        }
        if plan.active_version.is_some_and(|act| a.version <= act) {
            return Err(conflict("a newer version is already active"));
        }
        v.accepted_at = Some(self.state.height + 1);
        plan.active_version = Some(a.version);
        self.effects.contracts.careplans.insert(key, plan);
        Ok(())
    }

    /// Whether `contact` declares a channel of every one of `kinds`, as of this block.
    fn channels_declared(&self, contact: &ParticipantId, kinds: &[ChannelKind]) -> bool {
        match self.effects.contracts.contact_channels.get(contact) {
            Some(declared) => declared.covers(kinds),
            None => self.state.contracts.channels_declared(contact, kinds),
        }
    }

    fn contact_channels_set(&mut self, tx: &Transaction, c: &ContactChannelsSet) -> Result<(), Rejection> {
        let declared = DeclaredChannels { kinds: c.channels.clone(), body_commitment: c.body_commitment, tx: tx.hash };
        self.effects.contracts.contact_channels.insert(tx.signer.clone(), declared);
        Ok(())
    }

    fn audit_checkpoint(&mut self, ledger: &ParticipantId, a: &AuditCheckpoint) -> Result<(), Rejection> {
        let key = (ledger.clone(), a.log_id.clone());
        let last = self.effects.contracts.audit_heads.get(&key).or_else(|| self.state.contracts.audit_heads.get(&key));
        if let Some(last) = last {
            if a.entries < last.entries {
                return Err(conflict(format!(
                    "audit log {} already has {} entries checkpointed; a log only grows",
                    a.log_id, last.entries
                )));
            }
            if a.entries == last.entries {
                let why = if a.head == last.head {
                    "this head is already checkpointed"
                } else {
                    "another head with the same number of entries is already checkpointed"
                };
                return Err(conflict(why));
            }
        }
        let head = AuditHead { head: a.head, entries: a.entries, height: self.state.height + 1 };
        self.effects.contracts.audit_heads.insert(key, head);
        Ok(())
    }

    fn access_emergency(
        &mut self,
        tx: &Transaction,
        patient: &ParticipantId,
        a: &AccessEmergency,
    ) -> Result<(), Rejection> {
        let clinician = &tx.signer;
        let current = self
            .effects
            .contracts
            .emergency
            .get(patient)
            .or_else(|| self.state.contracts.emergency.get(patient))
            .ok_or_else(|| deny(format!("{patient} has no emergency profile")))?;
        let p = &tx.payload;
        let held = glucochain_types::emergency::verify_proof(
            &current.profile.card_key,
            &a.card_proof,
            &p.chain_id,
            patient,
            clinician,
            &p.nonce,
            p.created_at,
        );
        if !held {
            return Err(deny("the card proof does not verify: not this patient's current emergency card"));
        }
        let now = self.time.unix_ms();
        let accesses =
            || self.state.contracts.emergency_accesses.iter().chain(&self.effects.contracts.emergency_accesses);
        if let Some(open) =
            accesses().find(|x| &x.clinician == clinician && &x.patient == patient && now < x.until.unix_ms())
        {
            return Err(conflict(format!("a break-glass access to this patient is already open until {}", open.until)));
        }
        let recent =
            accesses().filter(|x| &x.clinician == clinician && now - x.at.unix_ms() < EMERGENCY_RATE_WINDOW_MS).count();
        if recent >= EMERGENCY_MAX_PER_WINDOW {
            return Err(Rejection {
                code: "rate-limited",
                reason: format!("at most {EMERGENCY_MAX_PER_WINDOW} break-glass accesses per clinician in 24 hours"),
            });
        }
        self.effects.contracts.emergency_accesses.push(EmergencyAccess {
            patient: patient.clone(),
            clinician: clinician.clone(),
            at: self.time,
            until: Timestamp::from_unix_ms(now + EMERGENCY_WINDOW_MS),
            reason_code: a.reason_code,
            tx: tx.hash,
            reason_commitment: a.body_commitment,
        });
        Ok(())
    }

    fn consult_request(&mut self, patient: &ParticipantId, c: &ConsultRequest) -> Result<(), Rejection> {
        let key = (patient.clone(), c.consult_id.clone());
        if self.c_consult(&key).is_some() {
            return Err(conflict(format!("consult {} already exists", c.consult_id)));
        }
        match self.active_participant(&c.clinician) {
            Some(p) if p.role == Role::Clinician => {}
            _ => return Err(deny(format!("{} is not an active clinician", c.clinician))),
        }
        self.effects.contracts.consults.insert(
            key,
            Consult {
                patient: patient.clone(),
                consult_id: c.consult_id.clone(),
                clinician: c.clinician.clone(),
                shared: c.shared.clone(),
                requested_time: self.time,
                responded_at: None,
            },
        );
        Ok(())
    }

    fn consult_respond(
        &mut self,
        clinician: &ParticipantId,
        patient: &ParticipantId,
        r: &ConsultRespond,
    ) -> Result<(), Rejection> {
        let key = (patient.clone(), r.consult_id.clone());
        let mut c = self.c_consult(&key).cloned().ok_or_else(|| not_found(format!("no consult {}", r.consult_id)))?;
        if &c.clinician != clinician {
            return Err(deny("only the clinician asked may answer the consult"));
        }
        if c.responded_at.is_some() {
            return Err(conflict("the consult was already answered"));
        }
        if let Some(plan) = &r.careplan_change
            && self.c_careplan(&(patient.clone(), plan.clone())).is_none()
        {
            return Err(not_found(format!("no care plan {plan}")));
        }
        c.responded_at = Some(self.state.height + 1);
        self.effects.contracts.consults.insert(key, c);
        Ok(())
    }

    fn medication_taken(
        &self,
        who: Option<&Participant>,
        role: Role,
        patient: &ParticipantId,
        _m: &MedicationTaken,
    ) -> Result<(), Rejection> {
        if role == Role::Caregiver && who.and_then(|w| w.registered_by.as_ref()) != Some(patient) {
            return Err(deny("only a caregiver this patient invited may record their medication"));
        }
        Ok(())
    }

    /// `record.erase`: the patient's own (the generic rules already refuse a
    /// patient signing for another), or an admin's naming the verified
    /// request acted on; an erasure id once per patient.
    fn record_erase(
        &mut self,
        by: &ParticipantId,
        role: Role,
        patient: &ParticipantId,
        e: &RecordErase,
    ) -> Result<(), Rejection> {
        match role {
            Role::Patient if e.request.is_some() => {
                return Err(deny("a patient's own erasure names no request (`request` is for an admin acting on one)"));
            }
            Role::Patient => {}
            Role::Admin if e.request.is_none() => {
                return Err(deny("an admin erases only on a verified request, named in `request`"));
            }
            Role::Admin => {}
            _ => return Err(deny("only the patient, or an admin on their verified request, erases records")),
        }
        let key = (patient.clone(), e.erase_id.clone());
        if self.effects.contracts.erasures.contains_key(&key) || self.state.contracts.erasures.contains_key(&key) {
            return Err(conflict(format!("erasure {} already exists", e.erase_id)));
        }
        let erasure = Erasure {
            patient: patient.clone(),
            erase_id: e.erase_id.clone(),
            scope: e.scope.clone(),
            by: by.clone(),
            request: e.request.clone(),
            height: self.state.height + 1,
        };
        self.effects.contracts.erasures.insert(key, erasure);
        Ok(())
    }

    fn alert_raise(&mut self, patient: &ParticipantId, a: &AlertRaise) -> Result<(), Rejection> {
        let key = (patient.clone(), a.alert_id.clone());
        if self.c_alert(&key).is_some() {
            return Err(conflict(format!("alert {} was already raised", a.alert_id)));
        }
        self.effects
            .contracts
            .alerts
            .insert(key, RaisedAlert { patient: patient.clone(), alert_id: a.alert_id.clone(), acked_by: Vec::new() });
        Ok(())
    }

    fn alert_ack(
        &mut self,
        who: &ParticipantId,
        role: Role,
        patient: &ParticipantId,
        a: &AlertAck,
    ) -> Result<(), Rejection> {
        let key = (patient.clone(), a.alert_id.clone());
        let mut alert = self.c_alert(&key).cloned().ok_or_else(|| not_found(format!("no alert {}", a.alert_id)))?;
        // A service relays an acknowledgement given through a keyless channel;
        // the care-team rules then apply to the person it names.
        let (who, role) = match (&a.on_behalf_of, role) {
            (Some(person), Role::Notifier) => {
                let role = match self.lookup(person) {
                    Some((p, true)) => p.role,
                    _ => return Err(deny(format!("{person} is not an active participant"))),
                };
                (person, role)
            }
            (Some(_), _) => return Err(deny("only the notifier may acknowledge on behalf of someone")),
            (None, Role::Notifier) => {
                return Err(deny("the notifier acknowledges only on behalf of a care-team member"));
            }
            (None, role) => (who, role),
        };
        let in_plan = self
            .state
            .contracts
            .active_careplan(patient, self.time)
            .is_some_and(|v| v.plan.contacts.iter().any(|c| &c.participant == who) || &v.proposer == who);
        let allowed = match role {
            Role::Patient => true,
            Role::Caregiver => {
                in_plan || self.lookup(who).and_then(|(p, _)| p.registered_by.clone()).as_ref() == Some(patient)
            }
            // A clinician on the plan, or one treating the patient under a
            // consent that covers alerts; a consent for research or for
            // documents only does not let anyone silence an alert.
            Role::Clinician => {
                in_plan
                    || self.lookup(who).is_some_and(|(me, _)| {
                        self.consents_in_force(patient).iter().any(|c| {
                            matches!(c.purpose, Purpose::Treat | Purpose::CareManagement)
                                && c.scope.allows_type(Access::Read, RecordType::Alert)
                                && self.covers(&c.grantee, me)
                        })
                    })
            }
            _ => false,
        };
        if !allowed {
            return Err(deny(format!("{who} is not on this patient's care team")));
        }
        if alert.acked_by.contains(who) {
            return Err(conflict("already acknowledged by this participant"));
        }
        alert.acked_by.push(who.clone());
        self.effects.contracts.alerts.insert(key, alert);
        Ok(())
    }
}

/// The answer to a read request.
#[derive(Debug, Clone, PartialEq)]
pub enum ReadDecision {
    /// Everything of the patient may be read (the patient, an admin).
    All {
        /// Why.
        reason: String,
    },
    /// Only records these scopes cover.
    Scoped {
        /// The scopes (from consents and consults in force).
        scopes: Vec<ConsentScope>,
        /// Why.
        reason: String,
    },
    /// Nothing.
    Deny {
        /// Why.
        reason: String,
    },
}

impl ReadDecision {
    /// Whether anything may be read.
    pub fn allows(&self) -> bool {
        !matches!(self, ReadDecision::Deny { .. })
    }

    /// The reason, for the audit log.
    pub fn reason(&self) -> &str {
        match self {
            ReadDecision::All { reason } | ReadDecision::Scoped { reason, .. } | ReadDecision::Deny { reason } => {
                reason
            }
        }
    }

    /// Whether a record of `class`/`record_type` with these codings may be read.
    pub fn covers(&self, class: DataClass, rt: RecordType, codings: &[(Option<String>, String)]) -> bool {
        match self {
            ReadDecision::All { .. } => true,
            ReadDecision::Scoped { scopes, .. } => {
                scopes.iter().any(|s| scope_covers(s, Access::Read, class, rt, codings))
            }
            ReadDecision::Deny { .. } => false,
        }
    }

    /// Whether records of `record_type` may be read at all (of some class
    /// and codes): what a page listing such records needs.
    pub fn covers_type(&self, rt: RecordType) -> bool {
        match self {
            ReadDecision::All { .. } => true,
            ReadDecision::Scoped { scopes, .. } => scopes.iter().any(|s| s.allows_type(Access::Read, rt)),
            ReadDecision::Deny { .. } => false,
        }
    }
}

/// May `reader` read `patient`'s records at `at` for `purpose` (an HL7
/// ActReason code)? The patient themself and admins read everything (and are
/// audited); others need a consent in force whose grantee is them or their
/// institution, with read access and the same purpose, or an open consult
/// the patient asked them for.
pub fn decide_read(
    state: &LedgerState,
    reader: &ParticipantId,
    patient: &ParticipantId,
    purpose: &str,
    at: Timestamp,
) -> ReadDecision {
    let Some(r) = state.participant(reader).filter(|p| p.is_active()) else {
        return ReadDecision::Deny { reason: format!("{reader} is not an active participant") };
    };
    if reader == patient {
        return ReadDecision::All { reason: "the patient's own records".into() };
    }
    if r.role == Role::Admin {
        return ReadDecision::All { reason: "consortium admin".into() };
    }
    let purpose_code =
        |p: Purpose| serde_json::to_value(p).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
    let covers = |grantee: &ParticipantId| grantee_covers(grantee, r, |id| state.participant(id));
    let mut scopes = Vec::new();
    let mut reasons = Vec::new();
    for c in state.contracts.consents_of(patient) {
        if covers(&c.grantee)
            && c.active_at(at)
            && c.scope.access.contains(&Access::Read)
            && purpose_code(c.purpose) == purpose
        {
            scopes.push(c.scope.clone());
            reasons.push(format!("consent {}", c.consent_id));
        }
    }
    for c in state.contracts.consults.values().filter(|c| &c.patient == patient && &c.clinician == reader) {
        let open = c.responded_at.is_none() && at.unix_ms() < c.requested_time.unix_ms() + CONSULT_WINDOW_MS;
        if open && r.role == Role::Clinician && c.shared.access.contains(&Access::Read) {
            scopes.push(c.shared.clone());
            reasons.push(format!("consult {}", c.consult_id));
        }
    }
    if scopes.is_empty() {
        let any = state.contracts.consents_of(patient).any(|c| covers(&c.grantee));
        let reason = if any {
            format!("no consent of {patient} in force for {reader} with read access and purpose {purpose}")
        } else {
            format!("{patient} has not granted {reader} access")
        };
        return ReadDecision::Deny { reason };
    }
    ReadDecision::Scoped { scopes, reason: reasons.join(", ") }
}

/// May an access-log entry in `reader`'s name, claiming role
/// `claimed_role`, come from the audit subject of the service `service`
/// (the detector's or the notifier's)? Only for an active registered
/// participant of that role, under that role: a service records its
/// openings of patients' records in its own name, never in a clinician's
/// (or another service's, or a revoked one's).
pub fn service_may_append(state: &LedgerState, service: Role, reader: &ParticipantId, claimed_role: &str) -> bool {
    let registered = state.participant(reader).filter(|p| p.is_active()).map(|p| p.role);
    matches!(service, Role::Detector | Role::Notifier)
        && registered == Some(service)
        && claimed_role == service.as_str()
}

/// May `reader` read `patient`'s care plans at `at`? The patient and
/// admins; a care-team member named on the plan in force (its contacts, so
/// that a caregiver knows when they will be alerted); anyone whose read
/// consent for `purpose` covers care plans. Having proposed a plan once is
/// not enough: a clinician whose consent ended no longer reads the plan.
pub fn decide_careplan_read(
    state: &LedgerState,
    reader: &ParticipantId,
    patient: &ParticipantId,
    purpose: &str,
    at: Timestamp,
) -> ReadDecision {
    let decision = decide_read(state, reader, patient, purpose, at);
    if matches!(decision, ReadDecision::All { .. }) {
        return decision;
    }
    let named = state
        .contracts
        .active_careplan(patient, at)
        .is_some_and(|v| v.plan.contacts.iter().any(|c| &c.participant == reader));
    if named && state.participant(reader).is_some_and(|p| p.is_active()) {
        return ReadDecision::All { reason: "a contact on the care plan in force".into() };
    }
    match decision {
        ReadDecision::Scoped { reason, .. } if decision.covers_type(RecordType::Careplan) => {
            ReadDecision::All { reason }
        }
        ReadDecision::Scoped { .. } => {
            ReadDecision::Deny { reason: "no consent in force lets the reader see care plans".into() }
        }
        other => other,
    }
}

/// The emergency profile a clinician may read right now: only after a
/// committed `access.emergency` of theirs for that patient, within its window.
pub fn emergency_profile_for<'a>(
    state: &'a LedgerState,
    clinician: &ParticipantId,
    patient: &ParticipantId,
    at: Timestamp,
) -> Option<&'a EmergencyProfile> {
    let granted = state
        .contracts
        .emergency_accesses
        .iter()
        .any(|a| &a.clinician == clinician && &a.patient == patient && at < a.until);
    granted.then(|| state.contracts.emergency.get(patient)).flatten()
}
