//! Transactions: a JWS compact serialization (see `glucochain_crypto::jose`)
//! whose payload is JSON:
//!
//! ```json
//! { "type": "observation.record", "chain_id": "glucochain-dev", "nonce": "9f2c41d0",
//!   "created_at": "2026-11-25T08:00:00Z", "patient": "p...", "body": { ... } }
//! ```
//!
//! Parsing is strict: unknown fields anywhere are refused, sizes and counts
//! are bounded, and each error names the field at fault. The tx hash is
//! SHA-256 over the compact JWS bytes.

use crate::ids::{ChainId, DataClass, IdError, LocalId, ParticipantId, Role};
use crate::time::Timestamp;
use glucochain_crypto::jose::{JoseError, parse_compact, sign_compact};
use glucochain_crypto::{Domain, Hash32, KeyPair, PublicKey, sha256};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Size and count limits applied while parsing.
#[derive(Debug, Clone, Copy)]
pub struct TxLimits {
    /// Largest JWS accepted, bytes.
    pub max_jws_bytes: usize,
    /// Most observations in one `observation.record`.
    pub max_observations: usize,
    /// Longest free text (reasons, notes), characters.
    pub max_text_chars: usize,
    /// Most entries in any other list.
    pub max_list_len: usize,
}

impl Default for TxLimits {
    fn default() -> Self {
        // 288 CGM readings (a day at 5-minute intervals) are ~100 KiB of JWS.
        TxLimits { max_jws_bytes: 256 * 1024, max_observations: 1000, max_text_chars: 4000, max_list_len: 64 }
    }
}

/// Why a transaction was refused. [`TxError::code`] gives a stable code.
#[derive(Debug, thiserror::Error)]
pub enum TxError {
    /// JWS syntax, header, size or signature.
    #[error(transparent)]
    Jose(#[from] JoseError),
    /// The `kid` is not a participant id.
    #[error("signer: {0}")]
    Signer(IdError),
    /// The payload is not the JSON we accept.
    #[error("payload: {0}")]
    Json(String),
    /// Unknown transaction type.
    #[error("unknown transaction type {0:?}")]
    UnknownType(String),
    /// A field violates a rule.
    #[error("{field}: {reason}")]
    Invalid {
        /// Dotted path of the field.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// The chain id is another chain's.
    #[error("transaction is for chain {found:?}, this is {expected:?}")]
    WrongChain {
        /// This chain.
        expected: String,
        /// The transaction's.
        found: String,
    },
}

impl TxError {
    /// A stable, machine-readable code (used as the problem type in APIs).
    pub fn code(&self) -> &'static str {
        match self {
            TxError::Jose(JoseError::TooLarge { .. }) => "too-large",
            TxError::Jose(JoseError::Signature(_)) => "bad-signature",
            TxError::Jose(JoseError::WrongType { .. }) => "wrong-type",
            TxError::Jose(_) => "malformed-jws",
            TxError::Signer(_) => "malformed-jws",
            TxError::Json(_) | TxError::UnknownType(_) | TxError::Invalid { .. } => "invalid-payload",
            TxError::WrongChain { .. } => "wrong-chain",
        }
    }

    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        TxError::Invalid { field: field.into(), reason: reason.into() }
    }
}

macro_rules! tx_types {
    ($( $variant:ident => $name:literal, $body:ident, patient: $patient:literal, signers: [$($role:ident),*] ; )*) => {
        /// The kind of a transaction (the payload's `type`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum TxType { $( #[doc = concat!("`", $name, "`")] $variant, )* }

        impl TxType {
            /// Every type, in order.
            pub const ALL: &'static [TxType] = &[$(TxType::$variant),*];

            /// The wire name, e.g. `observation.record`.
            pub fn as_str(self) -> &'static str {
                match self { $(TxType::$variant => $name,)* }
            }

            /// Parses the wire name.
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($name => Some(TxType::$variant),)* _ => None }
            }

            /// Whether the payload must name a patient.
            pub fn concerns_patient(self) -> bool {
                match self { $(TxType::$variant => $patient,)* }
            }

            /// The roles that may sign this type at all. The contract rules
            /// decide the rest (consent, ownership, care relations).
            pub fn signer_roles(self) -> &'static [Role] {
                match self { $(TxType::$variant => &[$(Role::$role),*],)* }
            }
        }

        /// The typed body of a transaction.
        #[derive(Debug, Clone, PartialEq, Serialize)]
        #[serde(untagged)]
        pub enum TxBody { $( #[doc = concat!("`", $name, "`")] $variant($body), )* }

        impl TxBody {
            /// The type of this body.
            pub fn tx_type(&self) -> TxType {
                match self { $(TxBody::$variant(_) => TxType::$variant,)* }
            }

            pub(crate) fn from_value(t: TxType, v: serde_json::Value) -> Result<Self, TxError> {
                match t { $(TxType::$variant => Ok(TxBody::$variant(body_from::<$body>(v, $name)?)),)* }
            }

            fn validate(&self, l: &TxLimits) -> Result<(), TxError> {
                match self { $(TxBody::$variant(b) => b.validate(l),)* }
            }
        }
    };
}

tx_types! {
    ParticipantRegister => "participant.register", ParticipantRegister, patient: false, signers: [Admin, Institution, Patient];
    ParticipantRevoke => "participant.revoke", ParticipantRevoke, patient: false, signers: [Admin, Institution, Patient];
    ValidatorUpdate => "validator.update", ValidatorUpdate, patient: false, signers: [Admin];
    ObservationRecord => "observation.record", ObservationRecord, patient: true, signers: [Patient, Clinician, Lab, Institution];
    DocumentAdd => "document.add", DocumentAdd, patient: true, signers: [Patient, Clinician, Lab, Institution];
    ConsentGrant => "consent.grant", ConsentGrant, patient: true, signers: [Patient, Admin];
    ConsentRevoke => "consent.revoke", ConsentRevoke, patient: true, signers: [Patient, Admin];
    CareplanPropose => "careplan.propose", CareplanPropose, patient: true, signers: [Clinician];
    CareplanAccept => "careplan.accept", CareplanAccept, patient: true, signers: [Patient];
    EmergencyProfileSet => "emergency.profile.set", EmergencyProfileSet, patient: true, signers: [Patient];
    AccessEmergency => "access.emergency", AccessEmergency, patient: true, signers: [Clinician];
    ConsultRequest => "consult.request", ConsultRequest, patient: true, signers: [Patient];
    ConsultRespond => "consult.respond", ConsultRespond, patient: true, signers: [Clinician];
    MedicationTaken => "medication.taken", MedicationTaken, patient: true, signers: [Patient, Caregiver];
    AlertRaise => "alert.raise", AlertRaise, patient: true, signers: [Detector];
    AlertAck => "alert.ack", AlertAck, patient: true, signers: [Caregiver, Clinician, Patient, Notifier];
    AuditCheckpoint => "audit.checkpoint", AuditCheckpoint, patient: false, signers: [Ledger];
    ContactChannelsSet => "contact.channels.set", ContactChannelsSet, patient: false, signers: [Caregiver, Clinician];
    RecordErase => "record.erase", RecordErase, patient: true, signers: [Patient, Admin];
}

impl TxType {
    /// Whether this type's record travels as a sealed body beside the
    /// transaction, the chain holding only its envelope and commitment (ADR
    /// 0016): the types of `sealed::record_bodies!`. The other types
    /// carrying personal data follow in later steps (`docs/privacy.md`
    /// lists which are still in clear).
    pub fn sealed(self) -> bool {
        crate::sealed::has_sealed_body(self)
    }
}

impl TxBody {
    /// The commitment to the sealed body, for a type that has one.
    pub fn body_commitment(&self) -> Option<&Hash32> {
        match self {
            TxBody::ObservationRecord(r) => Some(&r.body_commitment),
            TxBody::ParticipantRegister(r) => r.body_commitment.as_ref(),
            TxBody::DocumentAdd(d) => Some(&d.body_commitment),
            TxBody::EmergencyProfileSet(e) => Some(&e.body_commitment),
            TxBody::ConsultRequest(c) => Some(&c.body_commitment),
            TxBody::ConsultRespond(c) => Some(&c.body_commitment),
            TxBody::ContactChannelsSet(c) => Some(&c.body_commitment),
            TxBody::CareplanPropose(c) => Some(&c.body_commitment),
            TxBody::MedicationTaken(m) => Some(&m.body_commitment),
            TxBody::AccessEmergency(a) => a.body_commitment.as_ref(),
            _ => None,
        }
    }

    /// The data class a sealed body is kept under in the vault (its data
    /// keys, and what a class erasure reaches): the record's own class for
    /// an observation record or a document, `institution` for a clinician's
    /// words on a break-glass access (the institution's record of why; an
    /// erasure of `all` reaches it), `private` for an emergency profile, a
    /// consult's texts, a participant's name and the other sealed types.
    pub fn sealed_class(&self) -> Option<DataClass> {
        match self {
            TxBody::ObservationRecord(r) => Some(r.data_class),
            TxBody::DocumentAdd(d) => Some(d.data_class),
            TxBody::AccessEmergency(_) => Some(DataClass::Institution),
            TxBody::ParticipantRegister(_)
            | TxBody::EmergencyProfileSet(_)
            | TxBody::ConsultRequest(_)
            | TxBody::ConsultRespond(_)
            | TxBody::ContactChannelsSet(_)
            | TxBody::CareplanPropose(_)
            | TxBody::MedicationTaken(_) => Some(DataClass::Private),
            _ => None,
        }
    }
}

impl TxPayload {
    /// Whose data keys seal this transaction's body in the vault (and whose
    /// erasure reaches it): the patient's; for a registration the registered
    /// participant's own, and for a contact's channels the contact's own
    /// (`signer`).
    pub fn sealed_subject<'a>(&'a self, signer: &'a ParticipantId) -> Option<&'a ParticipantId> {
        match &self.body {
            TxBody::ParticipantRegister(r) => Some(&r.id),
            TxBody::ContactChannelsSet(_) => Some(signer),
            _ => self.patient.as_ref(),
        }
    }
}

fn body_from<T: DeserializeOwned>(v: serde_json::Value, name: &str) -> Result<T, TxError> {
    serde_json::from_value(v).map_err(|e| TxError::Json(format!("body of {name}: {e}")))
}

fn check_text(field: &str, s: &str, l: &TxLimits) -> Result<(), TxError> {
    if s.chars().count() > l.max_text_chars {
        return Err(TxError::invalid(field, format!("longer than {} characters", l.max_text_chars)));
    }
    if s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(TxError::invalid(field, "control characters are not allowed"));
    }
    Ok(())
}

/// A one-line text of at most `max` characters (names, doses, codes): no
/// line breaks or other control characters.
fn check_line(field: &str, s: &str, max: usize) -> Result<(), TxError> {
    if s.chars().count() > max {
        return Err(TxError::invalid(field, format!("longer than {max} characters")));
    }
    if s.chars().any(char::is_control) {
        return Err(TxError::invalid(field, "line breaks and control characters are not allowed"));
    }
    Ok(())
}

/// The bounds every transaction body keeps, whatever its type: no string
/// longer than `max_text_chars` or holding control characters other than
/// line breaks and tabs, no list longer than `max_list_len` (the
/// observations of a batch excepted: `max_observations`). Checked on the
/// JSON before the typed parse, so a field added later is bounded too; the
/// types then apply tighter limits where a field needs them.
pub(crate) fn check_bounds(path: &mut String, v: &serde_json::Value, l: &TxLimits) -> Result<(), TxError> {
    match v {
        serde_json::Value::String(s) => check_text(path, s, l),
        serde_json::Value::Array(items) => {
            let max = if path == "body.observations" { l.max_observations } else { l.max_list_len };
            check_len(path, items, max)?;
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                check_bounds(path, item, l)?;
                path.truncate(len);
            }
            Ok(())
        }
        serde_json::Value::Object(fields) => {
            for (k, item) in fields {
                let len = path.len();
                path.push('.');
                path.push_str(k);
                check_bounds(path, item, l)?;
                path.truncate(len);
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn check_len<T>(field: &str, v: &[T], max: usize) -> Result<(), TxError> {
    if v.len() > max {
        return Err(TxError::invalid(field, format!("at most {max} entries")));
    }
    Ok(())
}

fn check_nonempty(field: &str, s: &str) -> Result<(), TxError> {
    if s.trim().is_empty() {
        return Err(TxError::invalid(field, "must not be empty"));
    }
    Ok(())
}

// ---------------------------------------------------------------- bodies

/// Registers a participant: its role and the key it signs with. The id must
/// be the one derived from that key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParticipantRegister {
    /// The new participant's id (derived from `public_key`).
    pub id: ParticipantId,
    /// Its role.
    pub role: Role,
    /// Its Ed25519 public key (unpadded base64url).
    pub public_key: PublicKey,
    /// The institution it belongs to, for clinicians, lab staff and patients
    /// registered by an institution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub institution: Option<ParticipantId>,
    /// The commitment to its display name, when it has one: the name (a
    /// person's own, or an institution's) is sealed beside the registration
    /// ([`ParticipantNameBody`]), kept in the vault under the participant's
    /// own id and class `private`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_commitment: Option<Hash32>,
}

/// The sealed body of a `participant.register` that names its participant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParticipantNameBody {
    /// A display name (clinicians, institutions) or alias (patients).
    pub display_name: String,
}

impl ParticipantNameBody {
    pub(crate) fn validate(&self, _l: &TxLimits) -> Result<(), TxError> {
        check_nonempty("body.display_name", &self.display_name)?;
        check_line("body.display_name", &self.display_name, 100)
    }
}

impl ParticipantRegister {
    fn validate(&self, _l: &TxLimits) -> Result<(), TxError> {
        if ParticipantId::from_public_key(&self.public_key) != self.id {
            return Err(TxError::invalid("body.id", "is not the id derived from body.public_key"));
        }
        Ok(())
    }
}

/// Revokes a participant from the block that commits this on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParticipantRevoke {
    /// Who is revoked.
    pub id: ParticipantId,
    /// Why.
    pub reason: String,
}

impl ParticipantRevoke {
    fn validate(&self, l: &TxLimits) -> Result<(), TxError> {
        check_nonempty("body.reason", &self.reason)?;
        check_text("body.reason", &self.reason, l)
    }
}

/// Adds, re-weights or (with power 0) removes a validator; takes effect at a
/// later height, as the consensus rules define.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidatorUpdate {
    /// The validator's participant id (derived from `public_key`).
    pub validator: ParticipantId,
    /// Its consensus key.
    pub public_key: PublicKey,
    /// New voting power; 0 removes it.
    pub power: u64,
}

impl ValidatorUpdate {
    fn validate(&self, _l: &TxLimits) -> Result<(), TxError> {
        if ParticipantId::from_public_key(&self.public_key) != self.validator {
            return Err(TxError::invalid("body.validator", "is not the id derived from body.public_key"));
        }
        if self.power > 1_000_000 {
            return Err(TxError::invalid("body.power", "at most 1000000"));
        }
        Ok(())
    }
}

/// Records FHIR Observations (one, or a batch of CGM readings as with the
/// CGM guide's `$submit-cgm-bundle`). On the chain it is an envelope (ADR
/// 0016): what the consent rules and indexes need — class, how many, which
/// codes, when — and the salted commitment to the body
/// ([`crate::sealed::ObservationBody`]), which travels beside the
/// transaction to ingest and lives in the record vault. No value, note,
/// device or identifier is on the chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObservationRecord {
    /// Institution or patient-private data.
    pub data_class: DataClass,
    /// How many observations the body holds, 1 to `max_observations`.
    pub count: u32,
    /// The distinct code lists of the observations (each one's `code.coding`
    /// without display texts), for consent scopes: a consent covers the
    /// record when it covers every list, as it covered every observation.
    pub codes: Vec<Vec<Code>>,
    /// The earliest and latest `effectiveDateTime`.
    pub effective: Period,
    /// SHA-256 over the salt and the canonical body ([`crate::sealed::commit`]).
    pub body_commitment: Hash32,
}

/// A code from a terminology (a FHIR Coding without its display text).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Code {
    /// Terminology URI.
    pub system: String,
    /// The code.
    pub code: String,
}

/// A closed time interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Period {
    /// First instant.
    pub start: Timestamp,
    /// Last instant (not before `start`).
    pub end: Timestamp,
}

impl Period {
    /// Whether it meets `[from, until)` (either end open when `None`).
    pub fn meets(&self, from: Option<Timestamp>, until: Option<Timestamp>) -> bool {
        from.is_none_or(|f| self.end >= f) && until.is_none_or(|u| self.start < u)
    }
}

impl ObservationRecord {
    /// The code lists as the consent rules take them.
    pub fn codings(&self) -> Vec<Vec<(Option<String>, String)>> {
        self.codes.iter().map(|l| l.iter().map(|c| (Some(c.system.clone()), c.code.clone())).collect()).collect()
    }

    fn validate(&self, l: &TxLimits) -> Result<(), TxError> {
        if self.count == 0 || self.count as usize > l.max_observations {
            return Err(TxError::invalid("body.count", format!("1 to {} observations", l.max_observations)));
        }
        if self.codes.is_empty() || self.codes.iter().any(Vec::is_empty) {
            return Err(TxError::invalid("body.codes", "must name at least one code for each observation"));
        }
        check_len("body.codes", &self.codes, l.max_list_len)?;
        for (i, list) in self.codes.iter().enumerate() {
            check_len(&format!("body.codes[{i}]"), list, l.max_list_len)?;
            for (j, c) in list.iter().enumerate() {
                check_line(&format!("body.codes[{i}][{j}].system"), &c.system, 256)?;
                check_line(&format!("body.codes[{i}][{j}].code"), &c.code, 128)?;
            }
        }
        if self.effective.end < self.effective.start {
            return Err(TxError::invalid("body.effective", "end is before start"));
        }
        Ok(())
    }
}

/// Kind of an off-chain document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocumentKind {
    /// A laboratory report.
    LabReport,
    /// A clinical note.
    ClinicalNote,
    /// A discharge summary.
    DischargeSummary,
    /// An imaging report (e.g. retinal screening).
    ImagingReport,
    /// Anything else.
    Other,
}

/// Adds a document whose body is stored off-chain; the chain holds its hash,
/// so the body can be encrypted or erased without breaking proofs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocumentAdd {
    /// Id chosen by the author.
    pub document_id: LocalId,
    /// Institution or patient-private data.
    pub data_class: DataClass,
    /// Kind of document.
    pub kind: DocumentKind,
    /// MIME type of the body.
    pub content_type: String,
    /// SHA-256 of the body.
    pub content_sha256: Hash32,
    /// Size of the body, bytes.
    pub size_bytes: u64,
    /// LOINC document code, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// The commitment to the document's sealed part, its title
    /// ([`DocumentBody`]; a title such as "Discharge letter, oncology" says
    /// too much to stay on the chain).
    pub body_commitment: Hash32,
}

/// The sealed body of a `document.add`: the title shown in lists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocumentBody {
    /// Title shown in lists.
    pub title: String,
}

impl DocumentBody {
    pub(crate) fn validate(&self, _l: &TxLimits) -> Result<(), TxError> {
        check_nonempty("body.title", &self.title)?;
        check_line("body.title", &self.title, 200)
    }
}

impl DocumentAdd {
    fn validate(&self, _l: &TxLimits) -> Result<(), TxError> {
        if !self.content_type.contains('/')
            || self.content_type.len() > 100
            || self.content_type.bytes().any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            return Err(TxError::invalid("body.content_type", "must be a MIME type such as application/pdf"));
        }
        if let Some(code) = &self.code {
            check_nonempty("body.code", code)?;
            check_line("body.code", code, 128)?;
        }
        Ok(())
    }
}

/// Read or write access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// May read.
    Read,
    /// May add records.
    Write,
}

/// Kinds of records a consent can cover.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordType {
    /// Observations (glucose, HbA1c, ...).
    Observation,
    /// Documents.
    Document,
    /// Care plans.
    Careplan,
    /// Alerts and acknowledgements.
    Alert,
    /// Medication intake.
    Medication,
}

/// What a consent covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentScope {
    /// Data classes covered (at least one).
    pub data_classes: Vec<DataClass>,
    /// Record types covered; empty means all.
    #[serde(default)]
    pub record_types: Vec<RecordType>,
    /// Codes covered, each `system|code` (a bare `code` is a LOINC code);
    /// empty means all. A record is covered when one of its codings is
    /// listed, system and code both; a record without codes is not covered
    /// by a scope that lists codes.
    #[serde(default)]
    pub codes: Vec<String>,
    /// Read and/or write (at least one).
    pub access: Vec<Access>,
}

impl ConsentScope {
    fn validate(&self, field: &str, l: &TxLimits) -> Result<(), TxError> {
        if self.data_classes.is_empty() {
            return Err(TxError::invalid(format!("{field}.data_classes"), "name at least one data class"));
        }
        if self.access.is_empty() {
            return Err(TxError::invalid(format!("{field}.access"), "name read and/or write"));
        }
        check_len(&format!("{field}.codes"), &self.codes, l.max_list_len)?;
        for (i, c) in self.codes.iter().enumerate() {
            let f = format!("{field}.codes[{i}]");
            check_line(&f, c, 300)?;
            let (system, code) = split_code(c);
            if code.is_empty() || system.is_empty() || c.contains(char::is_whitespace) {
                return Err(TxError::invalid(f, "a code is system|code or a bare LOINC code, without spaces"));
            }
        }
        Ok(())
    }

    /// Whether a record with these codings (`(system, code)`; several
    /// codings of one record name the same thing) is within the scope's codes.
    pub fn covers_codes(&self, codings: &[(Option<String>, String)]) -> bool {
        if self.codes.is_empty() {
            return true;
        }
        codings.iter().any(|(system, code)| {
            self.codes.iter().any(|c| {
                let (s, k) = split_code(c);
                k == code && system.as_deref() == Some(s)
            })
        })
    }

    /// Whether the scope allows `access` to records of `record_type` at all
    /// (whatever their data class and codes).
    pub fn allows_type(&self, access: Access, record_type: RecordType) -> bool {
        self.access.contains(&access) && (self.record_types.is_empty() || self.record_types.contains(&record_type))
    }
}

/// A scope code as (system, code): `system|code`, or a bare code in LOINC.
fn split_code(c: &str) -> (&str, &str) {
    c.split_once('|').unwrap_or((crate::fhir::LOINC, c))
}

/// Why data is used (HL7 v3 PurposeOfUse).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Purpose {
    /// Treatment.
    #[serde(rename = "TREAT")]
    Treat,
    /// Emergency treatment (break-glass).
    #[serde(rename = "ETREAT")]
    EmergencyTreat,
    /// Care management.
    #[serde(rename = "CAREMGT")]
    CareManagement,
    /// Family or caregiver involvement.
    #[serde(rename = "FAMRQT")]
    FamilyRequest,
    /// Patient's own request.
    #[serde(rename = "PATRQT")]
    PatientRequest,
    /// Research.
    #[serde(rename = "HRESCH")]
    Research,
}

/// Grants a participant access to the patient's records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentGrant {
    /// Id chosen by the patient.
    pub consent_id: LocalId,
    /// Who gets access (a participant, possibly an institution).
    pub grantee: ParticipantId,
    /// What is covered.
    pub scope: ConsentScope,
    /// Why.
    pub purpose: Purpose,
    /// Start of validity (default: the block's time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_from: Option<Timestamp>,
    /// End of validity (none: until revoked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<Timestamp>,
}

impl ConsentGrant {
    /// The usual consent for a care team member: read and write the
    /// patient's records of `classes`, for treatment, from now until revoked.
    pub fn for_treatment(consent_id: LocalId, grantee: ParticipantId, classes: &[DataClass]) -> Self {
        ConsentGrant {
            consent_id,
            grantee,
            scope: ConsentScope {
                data_classes: classes.to_vec(),
                record_types: vec![],
                codes: vec![],
                access: vec![Access::Read, Access::Write],
            },
            purpose: Purpose::Treat,
            valid_from: None,
            valid_until: None,
        }
    }

    fn validate(&self, l: &TxLimits) -> Result<(), TxError> {
        self.scope.validate("body.scope", l)?;
        if let (Some(a), Some(b)) = (self.valid_from, self.valid_until)
            && b <= a
        {
            return Err(TxError::invalid("body.valid_until", "must be after valid_from"));
        }
        Ok(())
    }
}

/// Revokes a consent. No reason is asked for or kept: a patient withdraws
/// consent without giving one (GDPR Art. 7(3)), and free text on the chain
/// would be readable by every validator (issue 21).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentRevoke {
    /// The consent.
    pub consent_id: LocalId,
}

impl ConsentRevoke {
    fn validate(&self, _l: &TxLimits) -> Result<(), TxError> {
        Ok(())
    }
}

/// Glucose thresholds of a care plan, mg/dL (defaults: International
/// Consensus on Time in Range, Battelino et al. 2019).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlucoseThresholds {
    /// Urgent low (default 54).
    pub urgent_low: f64,
    /// Low (default 70).
    pub low: f64,
    /// High (default 180).
    pub high: f64,
    /// Very high (default 250).
    pub very_high: f64,
    /// Rate of change that counts as rapid, mg/dL per minute (default 2).
    pub rapid_change_per_min: f64,
    /// Minutes without data before `signal_loss` (default 30).
    pub signal_loss_minutes: u32,
}

impl Default for GlucoseThresholds {
    fn default() -> Self {
        GlucoseThresholds {
            urgent_low: 54.0,
            low: 70.0,
            high: 180.0,
            very_high: 250.0,
            rapid_change_per_min: 2.0,
            signal_loss_minutes: 30,
        }
    }
}

/// Alert kinds the detector can raise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// Below the urgent-low threshold.
    UrgentLow,
    /// Below the low threshold.
    Low,
    /// Above the high threshold.
    High,
    /// Above the very-high threshold.
    VeryHigh,
    /// Falling fast.
    RapidFall,
    /// Rising fast.
    RapidRise,
    /// Projected to go low soon.
    PredictedLow,
    /// Unusual for this patient at this time of day.
    Anomaly,
    /// No data for too long.
    SignalLoss,
    /// Projected to go very high soon (rising towards the very-high threshold).
    PredictedHigh,
}

/// How a contact is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    /// Email.
    Email,
    /// SMS.
    Sms,
    /// HTTP webhook.
    Webhook,
}

impl ChannelKind {
    /// The address masked for display to others (`s***@example.org`,
    /// `+44******89`, a webhook's scheme and host only).
    pub fn mask(self, address: &str) -> String {
        match self {
            ChannelKind::Email => match address.split_once('@') {
                Some((user, domain)) => format!("{}***@{domain}", user.chars().next().unwrap_or('*')),
                None => "***".into(),
            },
            ChannelKind::Sms => {
                let n = address.chars().count();
                address.chars().enumerate().map(|(i, c)| if i < 3 || i + 2 >= n { c } else { '*' }).collect()
            }
            ChannelKind::Webhook => address.split('/').take(3).collect::<Vec<_>>().join("/"),
        }
    }
}

/// One way to reach a contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactChannel {
    /// Channel kind.
    pub kind: ChannelKind,
    /// Address: email address, E.164 phone number or https URL.
    pub address: String,
}

impl ContactChannel {
    /// Checks the address for its kind: an email address, an E.164 number,
    /// or an `https://` URL (webhooks never go over plain HTTP).
    fn validate(&self, field: &str) -> Result<(), TxError> {
        let a = &self.address;
        let ok = !a.chars().any(|c| c.is_whitespace() || c.is_control())
            && match self.kind {
                ChannelKind::Email => {
                    a.len() <= 254 && a.split_once('@').is_some_and(|(u, d)| !u.is_empty() && d.contains('.'))
                }
                ChannelKind::Sms => {
                    a.starts_with('+') && (8..=16).contains(&a.len()) && a[1..].bytes().all(|b| b.is_ascii_digit())
                }
                ChannelKind::Webhook => {
                    a.len() <= 2048 && a.strip_prefix("https://").is_some_and(|rest| !rest.is_empty())
                }
            };
        if ok {
            Ok(())
        } else {
            Err(TxError::invalid(field, "not a valid address for this channel (email, +E.164, https:// URL)"))
        }
    }
}

/// A person to alert, in escalation order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CareContact {
    /// The caregiver's or clinician's participant id.
    pub participant: ParticipantId,
    /// Kinds of channel, tried together: each reaches every address of that
    /// kind the contact declares (`contact.channels.set`), so the plan
    /// never holds an address and a contact who moves keeps their alerts.
    pub channels: Vec<ChannelKind>,
    /// Minutes without acknowledgement before escalating to the next contact.
    pub escalate_after_minutes: u32,
}

/// Hours in which non-urgent alerts are held back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuietHours {
    /// Start, `HH:MM` local time.
    pub start: String,
    /// End, `HH:MM` local time.
    pub end: String,
    /// Offset of local time from UTC, minutes.
    pub utc_offset_minutes: i32,
}

/// A medication to take at given local times.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MedicationSchedule {
    /// Medication name.
    pub name: String,
    /// Dose text, e.g. `10 U`.
    pub dose: String,
    /// Local times `HH:MM`.
    pub times: Vec<String>,
}

/// A recurring check-up, e.g. HbA1c every 90 days.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckupSchedule {
    /// LOINC code of the result that satisfies it (e.g. 4548-4).
    pub code: String,
    /// What it is, for people.
    pub display: String,
    /// Interval in days.
    pub every_days: u32,
}

/// The term of a care plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Term {
    /// Start.
    pub start: Timestamp,
    /// End.
    pub end: Timestamp,
}

/// How often an alert nobody has acknowledged is sent again, by level
/// (the devices' practice: urgent lows again every 15-30 minutes, not every 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRepeat {
    /// Urgent alerts (urgent low, break-glass), minutes: 5 to 60.
    pub urgent_minutes: u32,
    /// Warnings (low, predicted low, very high, ...), minutes: 15 to 240.
    pub warning_minutes: u32,
}

impl AlertRepeat {
    /// Allowed urgent repeat intervals, minutes.
    pub const URGENT_RANGE: std::ops::RangeInclusive<u32> = 5..=60;
    /// Allowed warning repeat intervals, minutes.
    pub const WARNING_RANGE: std::ops::RangeInclusive<u32> = 15..=240;
}

impl Default for AlertRepeat {
    /// Urgent every 15 minutes, warnings every 30.
    fn default() -> Self {
        AlertRepeat { urgent_minutes: 15, warning_minutes: 30 }
    }
}

/// A clinician's proposal of a care plan (or an amendment: a higher
/// `version` of the same `plan_id`), as the chain holds it: what the rules
/// and the alert routing read (who is alerted and how often, which kinds,
/// the term), and the commitment to the plan's clinical content
/// ([`CareplanBody`]: thresholds, medications, check-ups, quiet hours,
/// language, insulin factors), which is sealed in the record vault (ADR
/// 0016). Active only once the patient accepts it. [`CarePlan`] is the
/// whole plan, as authors write it and readers see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CareplanPropose {
    /// Plan id.
    pub plan_id: LocalId,
    /// Version, starting at 1; amendments increase it.
    pub version: u32,
    /// Alert kinds enabled.
    pub alert_kinds: Vec<AlertKind>,
    /// Contacts in escalation order.
    pub contacts: Vec<CareContact>,
    /// Term.
    pub term: Term,
    /// How often unacknowledged alerts are sent again (default: [`AlertRepeat::default`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_repeat: Option<AlertRepeat>,
    /// Commitment to the [`CareplanBody`] (`sealed::commit`).
    pub body_commitment: Hash32,
}

/// The sealed body of a `careplan.propose`: the plan's clinical content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CareplanBody {
    /// Thresholds.
    pub thresholds: GlucoseThresholds,
    /// Quiet hours, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiet_hours: Option<QuietHours>,
    /// Medication schedule.
    #[serde(default)]
    pub medications: Vec<MedicationSchedule>,
    /// Check-up schedule.
    #[serde(default)]
    pub checkups: Vec<CheckupSchedule>,
    /// Language of messages (BCP 47), default `en`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// The patient's insulin factors: with them, the detector's low
    /// prediction counts the insulin and carbohydrates recorded with
    /// `medication.taken`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insulin: Option<InsulinFactors>,
}

/// A whole care plan: the envelope's fields and the body's, as a clinician
/// writes one (`CarePlan::seal` makes the transaction body and the sealed
/// body) and as readers see one once opened ([`CarePlan::join`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CarePlan {
    /// Plan id.
    pub plan_id: LocalId,
    /// Version, starting at 1; amendments increase it.
    pub version: u32,
    /// Thresholds.
    pub thresholds: GlucoseThresholds,
    /// Alert kinds enabled.
    pub alert_kinds: Vec<AlertKind>,
    /// Contacts in escalation order.
    pub contacts: Vec<CareContact>,
    /// Quiet hours, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiet_hours: Option<QuietHours>,
    /// Medication schedule.
    #[serde(default)]
    pub medications: Vec<MedicationSchedule>,
    /// Check-up schedule.
    #[serde(default)]
    pub checkups: Vec<CheckupSchedule>,
    /// Term.
    pub term: Term,
    /// Language of messages (BCP 47), default `en`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// How often unacknowledged alerts are sent again (default: [`AlertRepeat::default`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_repeat: Option<AlertRepeat>,
    /// The patient's insulin factors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insulin: Option<InsulinFactors>,
}

impl CarePlan {
    /// Its two parts: the envelope (under `commitment`) and the body.
    pub fn parts(self, commitment: Hash32) -> (CareplanPropose, CareplanBody) {
        let envelope = CareplanPropose {
            plan_id: self.plan_id,
            version: self.version,
            alert_kinds: self.alert_kinds,
            contacts: self.contacts,
            term: self.term,
            alert_repeat: self.alert_repeat,
            body_commitment: commitment,
        };
        let body = CareplanBody {
            thresholds: self.thresholds,
            quiet_hours: self.quiet_hours,
            medications: self.medications,
            checkups: self.checkups,
            language: self.language,
            insulin: self.insulin,
        };
        (envelope, body)
    }

    /// The whole plan from its envelope and its opened body.
    pub fn join(envelope: &CareplanPropose, body: CareplanBody) -> Self {
        CarePlan {
            plan_id: envelope.plan_id.clone(),
            version: envelope.version,
            thresholds: body.thresholds,
            alert_kinds: envelope.alert_kinds.clone(),
            contacts: envelope.contacts.clone(),
            quiet_hours: body.quiet_hours,
            medications: body.medications,
            checkups: body.checkups,
            term: envelope.term.clone(),
            language: body.language,
            alert_repeat: envelope.alert_repeat,
            insulin: body.insulin,
        }
    }
}

/// A patient's insulin factors, as their pump or bolus calculator holds them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InsulinFactors {
    /// How far one unit of rapid-acting insulin lowers glucose, mg/dL per U
    /// (the correction factor, 5-500).
    pub sensitivity_mg_dl_per_u: f64,
    /// How many grams of carbohydrate one unit covers (the carb ratio, 1-150).
    pub carb_ratio_g_per_u: f64,
}

impl InsulinFactors {
    /// Correction factors people have, mg/dL per U.
    pub const SENSITIVITY_RANGE: std::ops::RangeInclusive<f64> = 5.0..=500.0;
    /// Carb ratios people have, g per U.
    pub const CARB_RATIO_RANGE: std::ops::RangeInclusive<f64> = 1.0..=150.0;
}

fn check_hhmm(field: &str, s: &str) -> Result<(), TxError> {
    let ok = s.len() == 5
        && s.as_bytes()[2] == b':'
        && s[..2].parse::<u8>().map(|h| h < 24).unwrap_or(false)
        && s[3..].parse::<u8>().map(|m| m < 60).unwrap_or(false);
    if ok { Ok(()) } else { Err(TxError::invalid(field, format!("{s:?} is not a time HH:MM"))) }
}

impl CareplanPropose {
    fn validate(&self, l: &TxLimits) -> Result<(), TxError> {
        if self.version == 0 {
            return Err(TxError::invalid("body.version", "starts at 1"));
        }
        if self.term.end <= self.term.start {
            return Err(TxError::invalid("body.term.end", "must be after term.start"));
        }
        check_len("body.contacts", &self.contacts, l.max_list_len)?;
        for (i, c) in self.contacts.iter().enumerate() {
            if c.channels.is_empty() {
                return Err(TxError::invalid(format!("body.contacts[{i}].channels"), "name at least one channel"));
            }
            let mut kinds = c.channels.clone();
            kinds.sort();
            kinds.dedup();
            if kinds.len() != c.channels.len() {
                return Err(TxError::invalid(format!("body.contacts[{i}].channels"), "name each kind once"));
            }
        }
        if let Some(r) = &self.alert_repeat {
            if !AlertRepeat::URGENT_RANGE.contains(&r.urgent_minutes) {
                return Err(TxError::invalid("body.alert_repeat.urgent_minutes", "between 5 and 60"));
            }
            if !AlertRepeat::WARNING_RANGE.contains(&r.warning_minutes) {
                return Err(TxError::invalid("body.alert_repeat.warning_minutes", "between 15 and 240"));
            }
        }
        Ok(())
    }
}

impl CareplanBody {
    pub(crate) fn validate(&self, _l: &TxLimits) -> Result<(), TxError> {
        let t = &self.thresholds;
        let ordered = t.urgent_low > 0.0 && t.urgent_low < t.low && t.low < t.high && t.high < t.very_high;
        if !ordered || !t.very_high.is_finite() {
            return Err(TxError::invalid("body.thresholds", "need 0 < urgent_low < low < high < very_high"));
        }
        if !(t.rapid_change_per_min > 0.0 && t.rapid_change_per_min <= 20.0) {
            return Err(TxError::invalid("body.thresholds.rapid_change_per_min", "must be in (0, 20]"));
        }
        if let Some(lang) = &self.language
            && (lang.is_empty() || lang.len() > 35 || !lang.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        {
            return Err(TxError::invalid("body.language", "a BCP 47 language tag such as en or pt-BR"));
        }
        if let Some(f) = &self.insulin {
            if !InsulinFactors::SENSITIVITY_RANGE.contains(&f.sensitivity_mg_dl_per_u) {
                return Err(TxError::invalid(
                    "body.insulin.sensitivity_mg_dl_per_u",
                    "between 5 and 500 mg/dL per unit",
                ));
            }
            if !InsulinFactors::CARB_RATIO_RANGE.contains(&f.carb_ratio_g_per_u) {
                return Err(TxError::invalid("body.insulin.carb_ratio_g_per_u", "between 1 and 150 g per unit"));
            }
        }
        if let Some(q) = &self.quiet_hours {
            check_hhmm("body.quiet_hours.start", &q.start)?;
            check_hhmm("body.quiet_hours.end", &q.end)?;
            if !(-720..=840).contains(&q.utc_offset_minutes) {
                return Err(TxError::invalid("body.quiet_hours.utc_offset_minutes", "between -720 and 840"));
            }
        }
        for (i, m) in self.medications.iter().enumerate() {
            check_nonempty(&format!("body.medications[{i}].name"), &m.name)?;
            check_line(&format!("body.medications[{i}].name"), &m.name, 200)?;
            check_line(&format!("body.medications[{i}].dose"), &m.dose, 100)?;
            for t in &m.times {
                check_hhmm(&format!("body.medications[{i}].times"), t)?;
            }
        }
        for (i, c) in self.checkups.iter().enumerate() {
            if c.every_days == 0 {
                return Err(TxError::invalid(format!("body.checkups[{i}].every_days"), "must be at least 1"));
            }
            check_nonempty(&format!("body.checkups[{i}].code"), &c.code)?;
            check_line(&format!("body.checkups[{i}].code"), &c.code, 128)?;
            check_line(&format!("body.checkups[{i}].display"), &c.display, 200)?;
        }
        Ok(())
    }
}

/// The patient's acceptance of a proposed care plan version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CareplanAccept {
    /// Plan id.
    pub plan_id: LocalId,
    /// Version accepted.
    pub version: u32,
    /// Hash of the `careplan.propose` transaction accepted.
    pub proposal_tx: Hash32,
}

impl CareplanAccept {
    fn validate(&self, _l: &TxLimits) -> Result<(), TxError> {
        Ok(())
    }
}

/// ABO/Rh blood group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BloodGroup {
    /// O negative.
    #[serde(rename = "O-")]
    ONeg,
    /// O positive.
    #[serde(rename = "O+")]
    OPos,
    /// A negative.
    #[serde(rename = "A-")]
    ANeg,
    /// A positive.
    #[serde(rename = "A+")]
    APos,
    /// B negative.
    #[serde(rename = "B-")]
    BNeg,
    /// B positive.
    #[serde(rename = "B+")]
    BPos,
    /// AB negative.
    #[serde(rename = "AB-")]
    AbNeg,
    /// AB positive.
    #[serde(rename = "AB+")]
    AbPos,
    /// Not known.
    #[serde(rename = "unknown")]
    Unknown,
}

/// Type of diabetes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiabetesType {
    /// Type 1.
    Type1,
    /// Type 2.
    Type2,
    /// Gestational.
    Gestational,
    /// Other.
    Other,
}

/// An emergency contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmergencyContact {
    /// Name.
    pub name: String,
    /// Phone (E.164).
    pub phone: String,
    /// Relation, e.g. `mother`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relation: Option<String>,
}

/// What the chain holds of a patient's emergency profile: the public key
/// of their emergency card and a commitment to the profile itself, which
/// travels beside the transaction and is sealed in the record vault under
/// the patient's class `private` (ADR 0016; the profile is
/// [`EmergencyProfileBody`]). Setting it again replaces both.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmergencyProfileSet {
    /// The public key of the patient's emergency card (see
    /// [`crate::emergency`]): a clinician breaking the glass proves holding
    /// the card by a signature with its key. The card itself never goes on
    /// the chain.
    pub card_key: PublicKey,
    /// The commitment to the profile ([`crate::sealed::commit`]).
    pub body_commitment: Hash32,
}

impl EmergencyProfileSet {
    fn validate(&self, _l: &TxLimits) -> Result<(), TxError> {
        Ok(())
    }
}

/// The emergency profile (blood group, allergies, medication, contacts):
/// the sealed body of an `emergency.profile.set`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmergencyProfileBody {
    /// Blood group.
    pub blood_group: BloodGroup,
    /// Allergies.
    pub allergies: Vec<String>,
    /// Diabetes type.
    pub diabetes_type: DiabetesType,
    /// Current medication.
    pub medications: Vec<String>,
    /// Emergency contacts.
    pub emergency_contacts: Vec<EmergencyContact>,
}

impl EmergencyProfileBody {
    /// Checks sizes and formats (paths named as in the sealed body).
    pub(crate) fn validate(&self, l: &TxLimits) -> Result<(), TxError> {
        check_len("body.allergies", &self.allergies, l.max_list_len)?;
        check_len("body.medications", &self.medications, l.max_list_len)?;
        check_len("body.emergency_contacts", &self.emergency_contacts, 8)?;
        for (i, a) in self.allergies.iter().enumerate() {
            check_line(&format!("body.allergies[{i}]"), a, 200)?;
        }
        for (i, m) in self.medications.iter().enumerate() {
            check_line(&format!("body.medications[{i}]"), m, 200)?;
        }
        for (i, c) in self.emergency_contacts.iter().enumerate() {
            check_nonempty(&format!("body.emergency_contacts[{i}].name"), &c.name)?;
            check_line(&format!("body.emergency_contacts[{i}].name"), &c.name, 100)?;
            ContactChannel { kind: ChannelKind::Sms, address: c.phone.clone() }
                .validate(&format!("body.emergency_contacts[{i}].phone"))?;
            if let Some(r) = &c.relation {
                check_line(&format!("body.emergency_contacts[{i}].relation"), r, 50)?;
            }
        }
        Ok(())
    }
}

/// Why a clinician breaks the glass (required; free text may add detail).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmergencyReason {
    /// The patient is unconscious.
    Unconscious,
    /// The patient cannot communicate (confused, hypoglycaemic, language).
    CannotCommunicate,
    /// A life-threatening situation needs the information now.
    LifeThreatening,
    /// Something else: `reason` must say what.
    Other,
}

impl EmergencyReason {
    /// The reason in words.
    pub fn text(self) -> &'static str {
        match self {
            EmergencyReason::Unconscious => "patient unconscious",
            EmergencyReason::CannotCommunicate => "patient cannot communicate",
            EmergencyReason::LifeThreatening => "life-threatening situation",
            EmergencyReason::Other => "other",
        }
    }
}

/// A break-glass access by a clinician who holds the patient's emergency card.
/// The clinician's own words, when they give any, are sealed beside it
/// ([`EmergencyReasonBody`]): on the chain is only the typed reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessEmergency {
    /// Proof of holding the card: the card key's signature over this access
    /// (chain, patient, clinician, nonce, creation time), unpadded base64url;
    /// see [`crate::emergency::EmergencyCard::prove`].
    pub card_proof: String,
    /// Why.
    pub reason_code: EmergencyReason,
    /// Commitment to the [`EmergencyReasonBody`] (`sealed::commit`), when the
    /// clinician says more (e.g. "found unconscious at A&E"); required with
    /// `other`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_commitment: Option<Hash32>,
}

/// What a clinician says of a break-glass access in their own words, off
/// the chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmergencyReasonBody {
    /// The detail (at most 500 characters).
    pub reason: String,
}

impl EmergencyReasonBody {
    pub(crate) fn validate(&self, l: &TxLimits) -> Result<(), TxError> {
        check_nonempty("body.reason", &self.reason)?;
        check_text("body.reason", &self.reason, &TxLimits { max_text_chars: 500, ..*l })
    }
}

impl AccessEmergency {
    /// What the patient and caregivers are told of this access by
    /// `clinician`: the typed reason. The clinician's own words, when there
    /// are any, are shown to the patient on their emergency page (an
    /// audited read), never sent by email or SMS.
    pub fn notice(&self, clinician: &ParticipantId) -> String {
        let more =
            if self.body_commitment.is_some() { "; the clinician's words are on your emergency page" } else { "" };
        format!(
            "Emergency access to the emergency profile by clinician {clinician} ({}){more}",
            self.reason_code.text()
        )
    }

    fn validate(&self, _l: &TxLimits) -> Result<(), TxError> {
        if self.card_proof.len() != 86 || glucochain_crypto::jose::b64url_decode(&self.card_proof).is_err() {
            return Err(TxError::invalid("body.card_proof", "a 64-byte signature in unpadded base64url"));
        }
        if self.body_commitment.is_none() && self.reason_code == EmergencyReason::Other {
            return Err(TxError::invalid(
                "body.body_commitment",
                "say why when the reason code is other (a sealed reason beside the transaction)",
            ));
        }
        Ok(())
    }
}

/// A patient asks a clinician for a tele-health consult, sharing some
/// records. What it is about is sealed beside it ([`ConsultRequestBody`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsultRequest {
    /// Consult id.
    pub consult_id: LocalId,
    /// The clinician asked.
    pub clinician: ParticipantId,
    /// Records shared for the consult.
    pub shared: ConsentScope,
    /// The commitment to the request's text ([`crate::sealed::commit`]).
    pub body_commitment: Hash32,
}

impl ConsultRequest {
    fn validate(&self, l: &TxLimits) -> Result<(), TxError> {
        self.shared.validate("body.shared", l)?;
        if self.shared.access != [Access::Read] {
            return Err(TxError::invalid(
                "body.shared.access",
                "a consult shares records for reading only: [\"read\"]",
            ));
        }
        Ok(())
    }
}

/// The sealed body of a `consult.request`: what it is about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsultRequestBody {
    /// What it is about.
    pub reason: String,
}

impl ConsultRequestBody {
    pub(crate) fn validate(&self, l: &TxLimits) -> Result<(), TxError> {
        check_nonempty("body.reason", &self.reason)?;
        check_text("body.reason", &self.reason, l)
    }
}

/// A prescription in a consult response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prescription {
    /// Medication.
    pub medication: String,
    /// Dose.
    pub dose: String,
    /// Instructions.
    pub instructions: String,
}

/// The clinician's answer to a consult. The note and prescription are
/// sealed beside it ([`ConsultRespondBody`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsultRespond {
    /// Consult id.
    pub consult_id: LocalId,
    /// Id of a care plan proposal made with this answer, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub careplan_change: Option<LocalId>,
    /// The commitment to the note and prescription.
    pub body_commitment: Hash32,
}

impl ConsultRespond {
    fn validate(&self, _l: &TxLimits) -> Result<(), TxError> {
        Ok(())
    }
}

/// The sealed body of a `consult.respond`: the clinical note and any prescription.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsultRespondBody {
    /// Clinical note.
    pub note: String,
    /// Prescription, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prescription: Option<Prescription>,
}

impl ConsultRespondBody {
    pub(crate) fn validate(&self, l: &TxLimits) -> Result<(), TxError> {
        check_nonempty("body.note", &self.note)?;
        check_text("body.note", &self.note, l)?;
        if let Some(p) = &self.prescription {
            check_nonempty("body.prescription.medication", &p.medication)?;
            check_line("body.prescription.medication", &p.medication, 200)?;
            check_line("body.prescription.dose", &p.dose, 100)?;
            check_text("body.prescription.instructions", &p.instructions, &TxLimits { max_text_chars: 1000, ..*l })?;
        }
        Ok(())
    }
}

/// A medication was taken, as the chain holds it: when, and the commitment
/// to what ([`MedicationTakenBody`]: the medication, dose, insulin and
/// carbohydrates), which is sealed in the record vault (ADR 0016).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MedicationTaken {
    /// When.
    pub taken_at: Timestamp,
    /// Commitment to the [`MedicationTakenBody`] (`sealed::commit`).
    pub body_commitment: Hash32,
}

impl MedicationTaken {
    fn validate(&self, _l: &TxLimits) -> Result<(), TxError> {
        Ok(())
    }
}

/// The sealed body of a `medication.taken`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MedicationTakenBody {
    /// Medication name (as in the care plan).
    pub medication: String,
    /// Dose taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dose: Option<String>,
    /// Rapid-acting insulin given, units (a bolus; 0-100): the detector
    /// counts it when the care plan gives the patient's insulin factors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insulin_units: Option<f64>,
    /// Carbohydrates eaten, grams (a meal or a treatment of a low; 0-500).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carbs_g: Option<f64>,
}

impl MedicationTakenBody {
    pub(crate) fn validate(&self, _l: &TxLimits) -> Result<(), TxError> {
        check_nonempty("body.medication", &self.medication)?;
        check_line("body.medication", &self.medication, 200)?;
        if let Some(d) = &self.dose {
            check_line("body.dose", d, 100)?;
        }
        if let Some(u) = self.insulin_units
            && !(u > 0.0 && u <= 100.0)
        {
            return Err(TxError::invalid("body.insulin_units", "more than 0 and at most 100 units"));
        }
        if let Some(g) = self.carbs_g
            && !(g > 0.0 && g <= 500.0)
        {
            return Err(TxError::invalid("body.carbs_g", "more than 0 and at most 500 g"));
        }
        Ok(())
    }
}

/// What an erasure covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum EraseScope {
    /// One record: the transaction that carried it.
    Record(Hash32),
    /// Every record of a data class.
    Class(DataClass),
    /// Every record.
    All,
}

/// The patient's erasure of records (GDPR Art. 17; ADR 0016): signed by the
/// patient, or by an admin acting on a verified request, who names it. On
/// commit every vault destroys the bodies in scope; the envelopes stay on
/// the chain, which keeps verifying.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordErase {
    /// Erasure id (unique per patient).
    pub erase_id: LocalId,
    /// What it covers.
    pub scope: EraseScope,
    /// For an admin: the reference of the verified request acted on (the
    /// patient is told). A patient's own erasure names none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
}

impl RecordErase {
    fn validate(&self, _l: &TxLimits) -> Result<(), TxError> {
        if let Some(r) = &self.request {
            check_nonempty("body.request", r)?;
            check_line("body.request", r, 200)?;
        }
        Ok(())
    }
}

/// Severity of an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// For information.
    Info,
    /// Needs attention.
    Warning,
    /// Needs action now.
    Urgent,
}

/// The detector's record of an alert it raised: what, when, and which
/// reading raised it. The values (glucose, trend, forecast) and the
/// detector's words are not on the chain (issue 21): they are the reading's
/// body, sealed in the record vault under the reading's commitment, and the
/// alert event the detector signs for the notifier (`ALERTS`, kept by the
/// institution). So an erasure of the readings also erases what an alert
/// said of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRaise {
    /// Alert id.
    pub alert_id: LocalId,
    /// Kind.
    pub kind: AlertKind,
    /// Severity.
    pub severity: Severity,
    /// Episode id shared by the alerts of one episode.
    pub episode_id: LocalId,
    /// Time of the triggering reading.
    pub observed_at: Timestamp,
    /// The `observation.record` transaction whose readings raised the alert
    /// (none for an alert no reading raised, such as a signal loss).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reading_tx: Option<Hash32>,
}

impl AlertRaise {
    fn validate(&self, _l: &TxLimits) -> Result<(), TxError> {
        Ok(())
    }
}

/// Someone acknowledged an alert: who and when, nothing in their words (a
/// note between carers is not the chain's to keep, issue 21).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertAck {
    /// Alert id.
    pub alert_id: LocalId,
    /// Set only by a service (the notifier) that records an acknowledgement
    /// a care-team member gave through a channel without a key: a signed
    /// single-use link sent to them, or an SMS reply code from their number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_behalf_of: Option<ParticipantId>,
}

impl AlertAck {
    fn validate(&self, _l: &TxLimits) -> Result<(), TxError> {
        Ok(())
    }
}

/// Commits the head of a service's hash-chained audit log to the chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditCheckpoint {
    /// Which log (e.g. `ledger`).
    pub log_id: LocalId,
    /// Hash of the newest entry.
    pub head: Hash32,
    /// Number of entries up to and including `head`.
    pub entries: u64,
}

impl AuditCheckpoint {
    fn validate(&self, _l: &TxLimits) -> Result<(), TxError> {
        if self.entries == 0 {
            return Err(TxError::invalid("body.entries", "a checkpoint covers at least one entry"));
        }
        Ok(())
    }
}

/// A care-team member (caregiver or clinician) declares the channels on
/// which they agree to be alerted. A care plan may route a contact's alerts
/// only to kinds of channel that contact declared (so whoever proposes a
/// plan cannot send someone's alerts, or their acknowledge links,
/// elsewhere), and the notifier delivers only to the addresses the contact
/// declares now. Setting it again replaces the list.
///
/// The chain holds the kinds, in order, and the commitment; the addresses
/// are the sealed body ([`ContactChannelsBody`], ADR 0016), kept in the
/// vault under the contact's own id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactChannelsSet {
    /// The kind of each declared channel, in the body's order (at most 8;
    /// empty withdraws every channel).
    pub channels: Vec<ChannelKind>,
    /// Commitment to the [`ContactChannelsBody`] (`sealed::commit`).
    pub body_commitment: Hash32,
}

impl ContactChannelsSet {
    fn validate(&self, _l: &TxLimits) -> Result<(), TxError> {
        check_len("body.channels", &self.channels, ContactChannelsBody::MAX)
    }
}

/// The sealed body of a `contact.channels.set`: the addresses themselves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactChannelsBody {
    /// The channels (at most [`ContactChannelsBody::MAX`]; empty withdraws
    /// every channel).
    pub channels: Vec<ContactChannel>,
}

impl ContactChannelsBody {
    /// How many channels one contact may declare.
    pub const MAX: usize = 8;

    pub(crate) fn validate(&self, _l: &TxLimits) -> Result<(), TxError> {
        check_len("body.channels", &self.channels, Self::MAX)?;
        for (i, ch) in self.channels.iter().enumerate() {
            ch.validate(&format!("body.channels[{i}].address"))?;
        }
        Ok(())
    }

    /// The declared addresses of the kinds in `kinds`, in declared order.
    pub fn of_kinds(&self, kinds: &[ChannelKind]) -> Vec<ContactChannel> {
        self.channels.iter().filter(|c| kinds.contains(&c.kind)).cloned().collect()
    }
}

// ---------------------------------------------------------------- payload

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPayload {
    #[serde(rename = "type")]
    tx_type: String,
    chain_id: ChainId,
    nonce: String,
    created_at: Timestamp,
    #[serde(default)]
    patient: Option<ParticipantId>,
    body: serde_json::Value,
}

/// The signed content of a transaction.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TxPayload {
    /// Transaction type (from the body).
    #[serde(rename = "type", serialize_with = "ser_type")]
    pub tx_type: TxType,
    /// Chain the transaction is for.
    pub chain_id: ChainId,
    /// Unique per signer (8-64 characters A-Z a-z 0-9 - _); replays are refused.
    pub nonce: String,
    /// When the author created it.
    pub created_at: Timestamp,
    /// The patient concerned, when the type concerns one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patient: Option<ParticipantId>,
    /// The typed body.
    pub body: TxBody,
}

fn ser_type<S: serde::Serializer>(t: &TxType, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(t.as_str())
}

impl TxPayload {
    /// A payload for `body`.
    pub fn new(
        chain_id: ChainId,
        nonce: String,
        created_at: Timestamp,
        patient: Option<ParticipantId>,
        body: TxBody,
    ) -> Self {
        TxPayload { tx_type: body.tx_type(), chain_id, nonce, created_at, patient, body }
    }

    /// Parses payload JSON strictly and validates every field.
    pub fn from_json(bytes: &[u8], limits: &TxLimits) -> Result<Self, TxError> {
        let raw: RawPayload = serde_json::from_slice(bytes).map_err(|e| TxError::Json(e.to_string()))?;
        let tx_type = TxType::parse(&raw.tx_type).ok_or_else(|| TxError::UnknownType(raw.tx_type.clone()))?;
        check_bounds(&mut "body".to_string(), &raw.body, limits)?;
        let body = TxBody::from_value(tx_type, raw.body)?;
        let p = TxPayload {
            tx_type,
            chain_id: raw.chain_id,
            nonce: raw.nonce,
            created_at: raw.created_at,
            patient: raw.patient,
            body,
        };
        p.validate(limits)?;
        Ok(p)
    }

    /// Checks the rules beyond the JSON shape.
    pub fn validate(&self, limits: &TxLimits) -> Result<(), TxError> {
        let nonce_ok = (8..=64).contains(&self.nonce.len())
            && self.nonce.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !nonce_ok {
            return Err(TxError::invalid("nonce", "8-64 characters A-Z a-z 0-9 - _"));
        }
        match (self.tx_type.concerns_patient(), &self.patient) {
            (true, None) => {
                return Err(TxError::invalid("patient", format!("{} needs a patient", self.tx_type.as_str())));
            }
            (false, Some(_)) => {
                return Err(TxError::invalid("patient", format!("{} concerns no patient", self.tx_type.as_str())));
            }
            _ => {}
        }
        self.body.validate(limits)?;
        Ok(())
    }

    /// Canonical JSON of the payload (field order fixed by the types).
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("payload serializes")
    }

    /// Signs the payload as a transaction JWS.
    pub fn sign(&self, key: &KeyPair, signer: &ParticipantId) -> String {
        sign_compact(key, Domain::Tx, signer.as_str(), &self.to_json())
    }
}

/// A parsed transaction: its JWS, hash, signer and payload. Parsing does not
/// verify the signature (the signer's key comes from committed state): call
/// [`Transaction::verify_signature`].
#[derive(Debug, Clone, PartialEq)]
pub struct Transaction {
    /// The JWS compact serialization, as submitted.
    pub jws: String,
    /// SHA-256 of the JWS bytes.
    pub hash: Hash32,
    /// The signer (`kid`).
    pub signer: ParticipantId,
    /// The payload.
    pub payload: TxPayload,
}

impl Transaction {
    /// Parses a transaction strictly.
    pub fn parse(jws: &str, limits: &TxLimits) -> Result<Self, TxError> {
        let parsed = parse_compact(jws, limits.max_jws_bytes)?;
        if parsed.header.typ.as_deref() != Domain::Tx.jose_typ() {
            return Err(TxError::Jose(JoseError::WrongType {
                expected: Domain::Tx.jose_typ().expect("tx typ"),
                found: parsed.header.typ.clone(),
            }));
        }
        let signer = ParticipantId::parse(parsed.kid()).map_err(TxError::Signer)?;
        let payload = TxPayload::from_json(&parsed.payload, limits)?;
        Ok(Transaction { jws: jws.to_string(), hash: sha256(jws.as_bytes()), signer, payload })
    }

    /// Verifies the signature with the signer's registered key.
    pub fn verify_signature(&self, key: &PublicKey) -> Result<(), TxError> {
        let parsed = parse_compact(&self.jws, usize::MAX)?;
        parsed.verify(key, Domain::Tx)?;
        Ok(())
    }

    /// The bytes the signature covers (the JWS signing input) and the
    /// signature, for batch verification with the signer's key.
    pub fn signed_parts(&self) -> Option<(&[u8], Vec<u8>)> {
        let (input, signature) = self.jws.rsplit_once('.')?;
        Some((input.as_bytes(), glucochain_crypto::jose::b64url_decode(signature).ok()?))
    }

    /// Checks the chain id.
    pub fn check_chain(&self, chain: &ChainId) -> Result<(), TxError> {
        if &self.payload.chain_id != chain {
            return Err(TxError::WrongChain {
                expected: chain.as_str().into(),
                found: self.payload.chain_id.as_str().into(),
            });
        }
        Ok(())
    }

    /// Whether `role` may sign this type at all.
    pub fn role_may_sign(&self, role: Role) -> bool {
        self.payload.tx_type.signer_roles().contains(&role)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fhir::cgm_observation;

    fn kp() -> (KeyPair, ParticipantId) {
        let k = KeyPair::from_seed([3; 32]);
        let id = ParticipantId::from_public_key(&k.public());
        (k, id)
    }

    fn chain() -> ChainId {
        ChainId::parse("glucochain-test").unwrap()
    }

    fn obs_payload(patient: &ParticipantId) -> TxPayload {
        let at = Timestamp::parse("2026-11-25T08:00:00Z").unwrap();
        TxPayload::new(
            chain(),
            "nonce-0001".into(),
            at,
            Some(patient.clone()),
            TxBody::ObservationRecord(
                crate::sealed::ObservationBody {
                    observations: vec![cgm_observation(patient.as_str(), at, 110.0, Some("r1"))],
                }
                .envelope(DataClass::Private, sha256(b"a commitment")),
            ),
        )
    }

    #[test]
    fn sign_parse_verify_round_trip() {
        let (k, id) = kp();
        let jws = obs_payload(&id).sign(&k, &id);
        let tx = Transaction::parse(&jws, &TxLimits::default()).unwrap();
        assert_eq!(tx.signer, id);
        assert_eq!(tx.payload, obs_payload(&id));
        assert_eq!(tx.hash, sha256(jws.as_bytes()));
        tx.verify_signature(&k.public()).unwrap();
        assert!(tx.verify_signature(&KeyPair::generate().public()).is_err());
        tx.check_chain(&chain()).unwrap();
        assert_eq!(tx.check_chain(&ChainId::parse("other-chain").unwrap()).unwrap_err().code(), "wrong-chain");
        assert!(tx.role_may_sign(Role::Patient));
        assert!(!tx.role_may_sign(Role::Caregiver));
    }

    #[test]
    fn payload_json_round_trips_for_every_type_name() {
        for t in TxType::ALL {
            assert_eq!(TxType::parse(t.as_str()), Some(*t));
            assert!(!t.signer_roles().is_empty());
        }
        let (_, id) = kp();
        let p = obs_payload(&id);
        assert_eq!(TxPayload::from_json(&p.to_json(), &TxLimits::default()).unwrap(), p);
    }

    fn mutate(f: impl FnOnce(&mut serde_json::Value)) -> Result<TxPayload, TxError> {
        let (_, id) = kp();
        let mut v: serde_json::Value = serde_json::from_slice(&obs_payload(&id).to_json()).unwrap();
        f(&mut v);
        TxPayload::from_json(&serde_json::to_vec(&v).unwrap(), &TxLimits::default())
    }

    /// Amounts the detector acts on are bounded, each refusal naming its field.
    #[test]
    fn treatment_amounts_and_insulin_factors_outside_their_ranges_are_refused() {
        let (_, p) = kp();
        let sample = |t: TxType| sample_bodies(&p).into_iter().find(|(x, _)| *x == t).unwrap().1;
        let parse = |t: TxType, body: serde_json::Value| {
            TxPayload::from_json(&payload_json(t, &p, body), &TxLimits::default()).map(|_| ())
        };
        // What was taken is the sealed body, checked there.
        let taken = |units: Option<f64>, grams: Option<f64>| MedicationTakenBody {
            medication: "insulin aspart".into(),
            dose: None,
            insulin_units: units,
            carbs_g: grams,
        };
        taken(Some(4.5), Some(40.0)).validate(&TxLimits::default()).unwrap();
        for (field, u, g) in [
            ("insulin_units", Some(0.0), None),
            ("insulin_units", Some(101.0), None),
            ("carbs_g", None, Some(-1.0)),
            ("carbs_g", None, Some(501.0)),
        ] {
            let err = taken(u, g).validate(&TxLimits::default()).unwrap_err().to_string();
            assert!(err.contains(&format!("body.{field}")), "{field}: {err}");
        }
        let mut m = sample(TxType::MedicationTaken);
        m["insulin_units"] = 4.5.into();
        let err = parse(TxType::MedicationTaken, m).unwrap_err().to_string();
        assert!(err.contains("unknown field `insulin_units`"), "not on the chain: {err}");
        // A plan's insulin factors are in its sealed body, checked there.
        let plan = |sensitivity: f64, ratio: f64| CareplanBody {
            thresholds: GlucoseThresholds::default(),
            quiet_hours: None,
            medications: vec![],
            checkups: vec![],
            language: None,
            insulin: Some(InsulinFactors { sensitivity_mg_dl_per_u: sensitivity, carb_ratio_g_per_u: ratio }),
        };
        plan(40.0, 10.0).validate(&TxLimits::default()).unwrap();
        for (field, s, r) in [
            ("sensitivity_mg_dl_per_u", 1.0, 10.0),
            ("sensitivity_mg_dl_per_u", 900.0, 10.0),
            ("carb_ratio_g_per_u", 40.0, 0.5),
        ] {
            let err = plan(s, r).validate(&TxLimits::default()).unwrap_err().to_string();
            assert!(err.contains(&format!("body.insulin.{field}")), "{field}: {err}");
        }
    }

    #[test]
    fn strict_parsing_names_the_field() {
        type Mutation = Box<dyn FnOnce(&mut serde_json::Value)>;
        let cases: Vec<(&str, Mutation)> = vec![
            ("unknown field `extra`", Box::new(|v| v["extra"] = 1.into())),
            ("unknown field `colour`", Box::new(|v| v["body"]["colour"] = "red".into())),
            ("unknown transaction type", Box::new(|v| v["type"] = "observation.delete".into())),
            ("nonce", Box::new(|v| v["nonce"] = "x".into())),
            ("needs a patient", Box::new(|v| v.as_object_mut().unwrap().remove("patient").map(|_| ()).unwrap())),
            ("body.count", Box::new(|v| v["body"]["count"] = 0.into())),
            ("at least one code", Box::new(|v| v["body"]["codes"] = serde_json::json!([]))),
            ("end is before start", Box::new(|v| v["body"]["effective"]["start"] = "2030-01-01T00:00:00Z".into())),
            ("unknown field `observations`", Box::new(|v| v["body"]["observations"] = serde_json::json!([]))),
            ("chain id", Box::new(|v| v["chain_id"] = "Bad Chain".into())),
            ("RFC 3339", Box::new(|v| v["created_at"] = "today".into())),
            ("unknown variant `secret`", Box::new(|v| v["body"]["data_class"] = "secret".into())),
        ];
        for (want, f) in cases {
            let err = mutate(f).unwrap_err().to_string();
            assert!(err.contains(want), "expected {want:?} in {err:?}");
        }
    }

    #[test]
    fn oversized_and_wrong_typ_are_refused() {
        let (k, id) = kp();
        let jws = obs_payload(&id).sign(&k, &id);
        let small = TxLimits { max_jws_bytes: 100, ..TxLimits::default() };
        assert_eq!(Transaction::parse(&jws, &small).unwrap_err().code(), "too-large");
        let token =
            glucochain_crypto::jose::issue_token(&k, id.as_str(), "glucochain-ledger", "glucochain-test", 0, 60, "j");
        assert_eq!(Transaction::parse(&token, &TxLimits::default()).unwrap_err().code(), "wrong-type");
    }

    /// A valid body of every transaction type, as JSON.
    fn sample_bodies(_patient: &ParticipantId) -> Vec<(TxType, serde_json::Value)> {
        use serde_json::json;
        let key = KeyPair::from_seed([5; 32]).public();
        let other = ParticipantId::from_public_key(&key);
        let at = "2026-11-25T08:00:00Z";
        let scope = json!({ "data_classes": ["private"], "record_types": ["observation"], "codes": ["http://loinc.org|99504-3"], "access": ["read"] });
        let proof = "A".repeat(86);
        let hash = "00".repeat(32);
        let body = |t: TxType| -> serde_json::Value {
            match t {
                TxType::ParticipantRegister => {
                    json!({ "id": other, "role": "clinician", "public_key": key, "body_commitment": hash })
                }
                TxType::ParticipantRevoke => json!({ "id": other, "reason": "left" }),
                TxType::ValidatorUpdate => json!({ "validator": other, "public_key": key, "power": 10 }),
                TxType::ObservationRecord => json!({ "data_class": "private", "count": 1,
                    "codes": [[{ "system": "http://loinc.org", "code": "99504-3" }]],
                    "effective": { "start": at, "end": at }, "body_commitment": hash }),
                TxType::DocumentAdd => {
                    json!({ "document_id": "d1", "data_class": "institution", "kind": "lab_report", "content_type": "application/pdf", "content_sha256": hash, "size_bytes": 10, "code": "11502-2", "body_commitment": hash })
                }
                TxType::ConsentGrant => {
                    json!({ "consent_id": "c1", "grantee": other, "scope": scope.clone(), "purpose": "TREAT" })
                }
                TxType::ConsentRevoke => json!({ "consent_id": "c1" }),
                TxType::CareplanPropose => json!({
                    "plan_id": "p1", "version": 1,
                    "alert_kinds": ["low"], "contacts": [{ "participant": other, "channels": ["email"], "escalate_after_minutes": 10 }],
                    "term": { "start": at, "end": "2027-11-25T08:00:00Z" }, "body_commitment": hash }),
                TxType::CareplanAccept => json!({ "plan_id": "p1", "version": 1, "proposal_tx": hash }),
                TxType::EmergencyProfileSet => {
                    json!({ "card_key": key, "body_commitment": hash })
                }
                TxType::AccessEmergency => {
                    json!({ "card_proof": proof, "reason_code": "unconscious", "body_commitment": hash })
                }
                TxType::ConsultRequest => {
                    json!({ "consult_id": "k1", "clinician": other, "shared": scope.clone(), "body_commitment": hash })
                }
                TxType::ConsultRespond => {
                    json!({ "consult_id": "k1", "body_commitment": hash })
                }
                TxType::MedicationTaken => json!({ "taken_at": at, "body_commitment": hash }),
                TxType::AlertRaise => {
                    json!({ "alert_id": "a1", "kind": "low", "severity": "warning", "episode_id": "e1", "observed_at": at, "reading_tx": hash })
                }
                TxType::AlertAck => json!({ "alert_id": "a1" }),
                TxType::AuditCheckpoint => json!({ "log_id": "ledger", "head": hash, "entries": 3 }),
                TxType::ContactChannelsSet => json!({ "channels": ["email"], "body_commitment": hash }),
                TxType::RecordErase => {
                    json!({ "erase_id": "x1", "scope": { "record": hash }, "request": "DPO ticket 2026-114" })
                }
            }
        };
        TxType::ALL.iter().map(|t| (*t, body(*t))).collect()
    }

    fn payload_json(t: TxType, patient: &ParticipantId, body: serde_json::Value) -> Vec<u8> {
        let mut v = serde_json::json!({ "type": t.as_str(), "chain_id": "glucochain-test", "nonce": "nonce-0001", "created_at": "2026-11-25T08:00:00Z", "body": body });
        if t.concerns_patient() {
            v["patient"] = patient.as_str().into();
        }
        serde_json::to_vec(&v).unwrap()
    }

    /// Every string leaf of `v`, as a path of keys and indexes.
    fn string_paths(v: &serde_json::Value, at: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        match v {
            serde_json::Value::String(_) => out.push(at.clone()),
            serde_json::Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    at.push(i.to_string());
                    string_paths(x, at, out);
                    at.pop();
                }
            }
            serde_json::Value::Object(o) => {
                for (k, x) in o {
                    at.push(k.clone());
                    string_paths(x, at, out);
                    at.pop();
                }
            }
            _ => {}
        }
    }

    fn at_path<'a>(v: &'a mut serde_json::Value, path: &[String]) -> &'a mut serde_json::Value {
        path.iter().fold(v, |v, k| match v {
            serde_json::Value::Array(a) => &mut a[k.parse::<usize>().unwrap()],
            other => &mut other[k.as_str()],
        })
    }

    #[test]
    fn every_text_field_of_every_type_is_bounded_and_free_of_control_characters() {
        // Issue 19, low: unbounded free-text fields (length and control characters).
        let (_, id) = kp();
        let limits = TxLimits::default();
        for (t, body) in sample_bodies(&id) {
            TxPayload::from_json(&payload_json(t, &id, body.clone()), &limits)
                .unwrap_or_else(|e| panic!("the sample {} is valid: {e}", t.as_str()));
            let mut paths = Vec::new();
            string_paths(&body, &mut Vec::new(), &mut paths);
            for path in paths {
                for (what, text) in [
                    ("too long", "x".repeat(limits.max_text_chars + 1)),
                    ("control", "a\u{0}b".into()),
                    ("escape", "a\u{1b}[31mb".into()),
                ] {
                    let mut b = body.clone();
                    *at_path(&mut b, &path) = serde_json::Value::String(text);
                    let r = TxPayload::from_json(&payload_json(t, &id, b), &limits);
                    assert!(r.is_err(), "{} body.{} {what} was accepted", t.as_str(), path.join("."));
                }
            }
        }
    }

    #[test]
    fn envelopes_hold_no_free_text_but_the_two_named() {
        // Issue 21: what every validator reads is ids, codes, times, hashes
        // and typed values; a person's words are sealed bodies. Each string
        // field of every type's envelope is named here by what it holds, so
        // a new free-text field fails this test until it is sealed or named.
        let structured = [
            "id",
            "public_key",
            "institution",
            "consent_id",
            "grantee",
            "plan_id",
            "contacts.participant",
            "card_proof",
            "card_key",
            "consult_id",
            "clinician",
            "alert_id",
            "episode_id",
            "log_id",
            "erase_id",
            "on_behalf_of",
            "document_id",
            "content_type",
            "content_sha256",
            "code",
            "codes.system",
            "codes.code",
            "codes.display",
            "body_commitment",
            "proposal_tx",
            "reading_tx",
            "head",
            "record",
            "taken_at",
            "observed_at",
            "valid_from",
            "valid_until",
            "effective.start",
            "effective.end",
            "term.start",
            "term.end",
            "role",
            "data_class",
            "kind",
            "severity",
            "purpose",
            "reason_code",
            "blood_group",
            "diabetes_type",
            "scope",
            "scope.class",
            "access",
            "data_classes",
            "record_types",
            "alert_kinds",
            "channels",
            "contacts.channels",
            "shared.data_classes",
            "shared.codes",
            "shared.access",
            "scope.data_classes",
            "scope.record_types",
            "scope.codes",
            "scope.access",
            "shared.record_types",
            "scope.record",
            "validator",
        ];
        // Words left on the chain on purpose (privacy.md, "Still open"): an
        // admin's reason for revoking a participant (about staff, not a
        // patient) and the reference of a verified erasure request.
        let named = ["participant.revoke:reason", "record.erase:request"];
        let (_, id) = kp();
        let mut words = Vec::new();
        for (t, body) in sample_bodies(&id) {
            let mut paths = Vec::new();
            string_paths(&body, &mut Vec::new(), &mut paths);
            for path in paths {
                let name: Vec<&str> = path.iter().filter(|k| k.parse::<usize>().is_err()).map(String::as_str).collect();
                let name = name.join(".");
                if !structured.contains(&name.as_str()) {
                    words.push(format!("{}:{name}", t.as_str()));
                }
            }
        }
        words.sort();
        words.dedup();
        assert_eq!(words, named, "free text on the chain");
    }

    #[test]
    fn one_line_fields_refuse_line_breaks_and_long_lists_are_refused() {
        let (_, id) = kp();
        let limits = TxLimits::default();
        let bodies = sample_bodies(&id);
        let body = |t: TxType| bodies.iter().find(|(x, _)| *x == t).unwrap().1.clone();
        for field in ["medication", "dose"] {
            let mut b = MedicationTakenBody {
                medication: "metformin".into(),
                dose: Some("500 mg".into()),
                insulin_units: None,
                carbs_g: None,
            };
            *if field == "medication" { &mut b.medication } else { b.dose.as_mut().unwrap() } = "two\nlines".into();
            assert!(b.validate(&limits).is_err(), "medication.taken {field}");
        }
        // The profile's lists are checked in its sealed body (`sealed` tests);
        // on the chain it has no allergies at all.
        let mut b = body(TxType::EmergencyProfileSet);
        b["allergies"] = serde_json::json!(["nuts"]);
        let e = TxPayload::from_json(&payload_json(TxType::EmergencyProfileSet, &id, b), &limits).unwrap_err();
        assert!(e.to_string().contains("unknown field `allergies`"), "{e}");
    }

    #[test]
    fn webhooks_are_https_only_and_consults_share_for_reading_only() {
        // Issue 19, H4 (webhooks) and low (consult scopes).
        let (_, id) = kp();
        let limits = TxLimits::default();
        let bodies = sample_bodies(&id);
        let body = |t: TxType| bodies.iter().find(|(x, _)| *x == t).unwrap().1.clone();
        // Addresses are in a contact's sealed channels, checked there; a
        // plan names kinds, each once.
        let webhook = |address: &str| ContactChannelsBody {
            channels: vec![ContactChannel { kind: ChannelKind::Webhook, address: address.into() }],
        };
        let e = webhook("http://hooks.example.org/x").validate(&limits).unwrap_err();
        assert!(e.to_string().contains("https://") && e.to_string().contains("channels[0]"), "{e}");
        webhook("https://hooks.example.org/x").validate(&limits).unwrap();
        let mut plan = body(TxType::CareplanPropose);
        plan["contacts"][0]["channels"] = serde_json::json!(["webhook", "email", "webhook"]);
        let e = TxPayload::from_json(&payload_json(TxType::CareplanPropose, &id, plan.clone()), &limits).unwrap_err();
        assert!(e.to_string().contains("each kind once"), "{e}");
        plan["contacts"][0]["channels"] = serde_json::json!(["webhook", "email"]);
        TxPayload::from_json(&payload_json(TxType::CareplanPropose, &id, plan.clone()), &limits).unwrap();
        plan["contacts"][0]["channels"] = serde_json::json!([{ "kind": "email", "address": "a@example.org" }]);
        let e = TxPayload::from_json(&payload_json(TxType::CareplanPropose, &id, plan.clone()), &limits).unwrap_err();
        assert!(e.to_string().contains("careplan.propose"), "an address in a plan is refused: {e}");
        // Nor does the chain take a plan's clinical content.
        plan["contacts"][0]["channels"] = serde_json::json!(["email"]);
        plan["medications"] = serde_json::json!([{ "name": "insulin", "dose": "10 U", "times": ["08:00"] }]);
        let e = TxPayload::from_json(&payload_json(TxType::CareplanPropose, &id, plan), &limits).unwrap_err();
        assert!(e.to_string().contains("unknown field `medications`"), "{e}");
        let mut consult = body(TxType::ConsultRequest);
        consult["shared"]["access"] = serde_json::json!(["read", "write"]);
        let e = TxPayload::from_json(&payload_json(TxType::ConsultRequest, &id, consult), &limits).unwrap_err();
        assert!(e.to_string().contains("reading only"), "{e}");
    }

    #[test]
    fn scope_codes_carry_their_system_and_a_record_without_codes_is_not_covered() {
        // Issue 19, M6.
        let scope = |codes: &[&str]| ConsentScope {
            data_classes: vec![DataClass::Private],
            record_types: vec![],
            codes: codes.iter().map(|c| c.to_string()).collect(),
            access: vec![Access::Read],
        };
        let loinc = |c: &str| (Some(crate::fhir::LOINC.to_string()), c.to_string());
        let glucose = scope(&["99504-3"]);
        assert!(glucose.covers_codes(&[loinc("99504-3")]));
        assert!(!glucose.covers_codes(&[]), "a record without codes is outside a code-restricted scope");
        assert!(
            !glucose.covers_codes(&[(Some("http://snomed.info/sct".into()), "99504-3".into())]),
            "same code, other system"
        );
        assert!(!glucose.covers_codes(&[(None, "99504-3".into())]), "a coding without a system");
        assert!(glucose.covers_codes(&[(Some("http://snomed.info/sct".into()), "1".into()), loinc("99504-3")]));
        let snomed = scope(&["http://snomed.info/sct|44054006"]);
        assert!(snomed.covers_codes(&[(Some("http://snomed.info/sct".into()), "44054006".into())]));
        assert!(!snomed.covers_codes(&[loinc("44054006")]));
        assert!(scope(&[]).covers_codes(&[]), "no codes listed: every record");
        let bad = serde_json::json!({ "data_classes": ["private"], "codes": ["|x"], "access": ["read"] });
        let (_, id) = kp();
        let body = serde_json::json!({ "consent_id": "c1", "grantee": id, "scope": bad, "purpose": "TREAT" });
        assert!(TxPayload::from_json(&payload_json(TxType::ConsentGrant, &id, body), &TxLimits::default()).is_err());
    }

    #[test]
    fn register_id_must_match_key() {
        let (k, id) = kp();
        let other = KeyPair::from_seed([4; 32]).public();
        let body = |pk: PublicKey| {
            TxBody::ParticipantRegister(ParticipantRegister {
                id: id.clone(),
                role: Role::Clinician,
                public_key: pk,
                institution: None,
                body_commitment: None,
            })
        };
        let p = |b| TxPayload::new(chain(), "nonce-0002".into(), Timestamp::from_unix_ms(0), None, b);
        p(body(k.public())).validate(&TxLimits::default()).unwrap();
        let err = p(body(other)).validate(&TxLimits::default()).unwrap_err().to_string();
        assert!(err.contains("derived"), "{err}");
    }
}
