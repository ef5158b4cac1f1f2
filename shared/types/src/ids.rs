//! Identifiers, roles and data classes.

use glucochain_crypto::{PublicKey, sha256_parts};
use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;

/// Invalid identifier text.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdError {
    /// A participant id is `p` followed by 32 base32 characters (a-z, 2-7).
    #[error("{0:?} is not a participant id (\"p\" followed by 32 characters a-z, 2-7)")]
    Participant(String),
    /// Chain ids are 3–64 characters a-z, 0-9 and '-'.
    #[error("{0:?} is not a chain id (3-64 characters a-z, 0-9, '-')")]
    Chain(String),
    /// Other ids (consent, plan, alert ...) are 1–64 characters A-Z, a-z, 0-9, '-', '_', '.', ':'.
    #[error("{0:?} is not a valid {1} (1-64 characters A-Z a-z 0-9 - _ . :)")]
    Local(String, &'static str),
}

/// A participant's id: pseudonymous, derived from the public key it was
/// registered with (`p` + base32 of the first 20 bytes of
/// SHA-256("glucochain/v1/participant-id" || 0x00 || key)). It reveals nothing
/// about the person (no name, no MRN) and anyone can recompute it from the key.
/// A patient's id is their *secure ID*.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ParticipantId(String);

impl ParticipantId {
    /// The id registered for `key`.
    pub fn from_public_key(key: &PublicKey) -> Self {
        let h = sha256_parts(&[b"glucochain/v1/participant-id", &[0], key.as_bytes()]);
        let b32 = data_encoding::BASE32_NOPAD.encode(&h.0[..20]).to_ascii_lowercase();
        ParticipantId(format!("p{b32}"))
    }

    /// Parses and validates an id.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let ok = s.len() == 33
            && s.starts_with('p')
            && s[1..].bytes().all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b));
        if ok { Ok(ParticipantId(s.to_string())) } else { Err(IdError::Participant(s.to_string())) }
    }

    /// The id text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ParticipantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ParticipantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for ParticipantId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        Self::parse(s)
    }
}

impl<'de> Deserialize<'de> for ParticipantId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// The id of a chain, from the genesis file (e.g. `glucochain-dev`).
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Debug)]
#[serde(transparent)]
pub struct ChainId(String);

impl ChainId {
    /// Parses and validates a chain id.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let ok =
            (3..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok { Ok(ChainId(s.to_string())) } else { Err(IdError::Chain(s.to_string())) }
    }

    /// The id text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ChainId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ChainId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// An id chosen by the author for a consent, care plan, alert, document...
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Debug)]
#[serde(transparent)]
pub struct LocalId(String);

impl LocalId {
    /// Parses and validates a local id; `what` names it in errors.
    pub fn parse(s: &str, what: &'static str) -> Result<Self, IdError> {
        let ok = (1..=64).contains(&s.len())
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
        if ok { Ok(LocalId(s.to_string())) } else { Err(IdError::Local(s.to_string(), what)) }
    }

    /// The id text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LocalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for LocalId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse(&s, "id").map_err(serde::de::Error::custom)
    }
}

/// What a participant is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Consortium administrator: registers institutions, clinicians, lab staff, validators.
    Admin,
    /// A hospital or clinic; its key submits institution data.
    Institution,
    /// A person with diabetes; the owner of their records.
    Patient,
    /// A physician, nurse or diabetes educator.
    Clinician,
    /// Laboratory staff submitting lab results.
    Lab,
    /// A parent, partner or friend invited by a patient to receive alerts.
    Caregiver,
    /// A consensus validator.
    Validator,
    /// The glucose detector service: raises alerts (`alert.raise`) and signs
    /// the alert events it publishes; nothing else.
    Detector,
    /// The notifier service: relays acknowledgements a care-team member gave
    /// through a keyless channel (`alert.ack` with `on_behalf_of`); nothing else.
    Notifier,
    /// The ledger service: commits the head of its audit log
    /// (`audit.checkpoint`); nothing else.
    Ledger,
}

impl Role {
    /// All roles, in order.
    pub const ALL: [Role; 10] = [
        Role::Admin,
        Role::Institution,
        Role::Patient,
        Role::Clinician,
        Role::Lab,
        Role::Caregiver,
        Role::Validator,
        Role::Detector,
        Role::Notifier,
        Role::Ledger,
    ];

    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Institution => "institution",
            Role::Patient => "patient",
            Role::Clinician => "clinician",
            Role::Lab => "lab",
            Role::Caregiver => "caregiver",
            Role::Validator => "validator",
            Role::Detector => "detector",
            Role::Notifier => "notifier",
            Role::Ledger => "ledger",
        }
    }

    /// Whether this is one of the system services (detector, notifier,
    /// ledger), each registered by an admin and allowed only its own
    /// transaction types.
    pub fn is_service(self) -> bool {
        matches!(self, Role::Detector | Role::Notifier | Role::Ledger)
    }

    /// Whether an `institution` on a registration of this role means
    /// something: staff (clinicians, lab staff) work for it, and a patient
    /// may be registered at one. A consent to an institution covers only its
    /// staff (see `glucochain_state::contracts::grantee_covers`).
    pub fn may_belong_to_institution(self) -> bool {
        matches!(self, Role::Clinician | Role::Lab | Role::Patient)
    }
}

/// The two data classes of the paper (fig. d): data an institution produced
/// and holds responsibility for, and data the patient produced privately
/// (home CGM, notes). Access to each is granted separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataClass {
    /// Produced by an institution (hospital lab results, clinic readings).
    Institution,
    /// Produced by the patient (home devices, own notes).
    Private,
}

impl DataClass {
    /// Both classes.
    pub const ALL: [DataClass; 2] = [DataClass::Institution, DataClass::Private];

    /// The wire name (`institution`, `private`).
    pub fn as_str(self) -> &'static str {
        match self {
            DataClass::Institution => "institution",
            DataClass::Private => "private",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use glucochain_crypto::KeyPair;

    #[test]
    fn participant_id_is_derived_and_validated() {
        let kp = KeyPair::from_seed([1; 32]);
        let id = ParticipantId::from_public_key(&kp.public());
        assert_eq!(id.as_str().len(), 33);
        assert_eq!(ParticipantId::parse(id.as_str()).unwrap(), id);
        assert_ne!(id, ParticipantId::from_public_key(&KeyPair::from_seed([2; 32]).public()));
        for bad in [
            "",
            "p",
            "x234567abcdefghijklmnopqrstuvwxyz",
            "pABCDEFGHIJKLMNOPQRSTUVWXYZ234567",
            "p0000000000000000000000000000000",
        ] {
            assert!(ParticipantId::parse(bad).is_err(), "{bad}");
        }
        assert!(serde_json::from_str::<ParticipantId>("\"nope\"").is_err());
    }

    #[test]
    fn chain_and_local_ids() {
        assert!(ChainId::parse("glucochain-dev").is_ok());
        assert!(ChainId::parse("GC").is_err());
        assert!(LocalId::parse("consent-2026.11:01_a", "consent id").is_ok());
        assert!(LocalId::parse("a b", "consent id").is_err());
        assert!(LocalId::parse(&"x".repeat(65), "consent id").is_err());
    }
}
