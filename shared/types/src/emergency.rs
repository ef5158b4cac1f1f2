//! Emergency cards (break-glass): what a patient carries on a wristband,
//! phone or card, and how a clinician proves holding it without revealing it.
//!
//! A card is `gce1:<patient id>:<secret>` (the secret is 20 random bytes in
//! lower-case base32), shown as a QR code. The secret never goes on the chain
//! nor to any service but the contracts engine that serves the profile:
//!
//! * The card's **key** is an Ed25519 key derived from the secret
//!   (`seed = SHA-256("glucochain/v1/emergency-card-key" || 0x00 || secret)`).
//!   The patient's `emergency.profile.set` commits to the card's *public* key.
//! * A clinician's `access.emergency` carries a **proof of possession**: a
//!   signature by the card key, in its own signature domain, over the chain
//!   id, the patient, the clinician, the transaction's nonce and creation
//!   time. The validators check it against the committed card key. Reading
//!   the chain (every validator does) gives the public key and old proofs,
//!   neither of which lets anyone else break the glass: a proof names one
//!   clinician and one transaction.
//!
//! Issuing a new card (a new `emergency.profile.set`) makes the old one useless.

use crate::ids::{ChainId, ParticipantId};
use crate::time::Timestamp;
use glucochain_crypto::jose::{b64url_decode, b64url_encode};
use glucochain_crypto::{Domain, KeyPair, PublicKey, sha256_parts};

/// The text prefix of a card.
pub const CARD_PREFIX: &str = "gce1";
/// Bytes of randomness in a card's secret.
pub const SECRET_BYTES: usize = 20;

/// Why a card's text is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CardError {
    /// Not `gce1:<patient>:<secret>`.
    #[error("not an emergency card (expected gce1:<patient id>:<32-character code>)")]
    Malformed,
}

/// A patient's emergency card (secret included: keep it off the chain and out of logs).
#[derive(Clone, PartialEq, Eq)]
pub struct EmergencyCard {
    /// The patient it belongs to.
    pub patient: ParticipantId,
    secret: [u8; SECRET_BYTES],
}

impl std::fmt::Debug for EmergencyCard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmergencyCard").field("patient", &self.patient).finish_non_exhaustive()
    }
}

impl EmergencyCard {
    /// A new card for `patient` from the operating system's randomness.
    pub fn generate(patient: ParticipantId) -> Self {
        let mut secret = [0u8; SECRET_BYTES];
        glucochain_crypto::random_bytes(&mut secret);
        EmergencyCard { patient, secret }
    }

    /// A card from its secret (tests, and clients that generate their own).
    pub fn from_secret(patient: ParticipantId, secret: [u8; SECRET_BYTES]) -> Self {
        EmergencyCard { patient, secret }
    }

    /// Parses a card as scanned (surrounding whitespace ignored).
    pub fn parse(text: &str) -> Result<Self, CardError> {
        let mut parts = text.trim().split(':');
        let (Some(CARD_PREFIX), Some(patient), Some(secret), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(CardError::Malformed);
        };
        let patient = ParticipantId::parse(patient).map_err(|_| CardError::Malformed)?;
        let bytes = data_encoding::BASE32_NOPAD
            .decode(secret.to_ascii_uppercase().as_bytes())
            .map_err(|_| CardError::Malformed)?;
        let secret: [u8; SECRET_BYTES] = bytes.try_into().map_err(|_| CardError::Malformed)?;
        Ok(EmergencyCard { patient, secret })
    }

    /// The card's text (what the QR code holds).
    pub fn text(&self) -> String {
        let secret = data_encoding::BASE32_NOPAD.encode(&self.secret).to_ascii_lowercase();
        format!("{CARD_PREFIX}:{}:{secret}", self.patient)
    }

    /// The card's signing key.
    pub fn key(&self) -> KeyPair {
        let seed = sha256_parts(&[b"glucochain/v1/emergency-card-key", &[0], &self.secret]);
        KeyPair::from_seed(seed.0)
    }

    /// The public key the patient's emergency profile commits to.
    pub fn public_key(&self) -> PublicKey {
        self.key().public()
    }

    /// The proof of possession for `clinician`'s `access.emergency` with
    /// this `nonce` and `created_at` (unpadded base64url of the signature).
    pub fn prove(&self, chain: &ChainId, clinician: &ParticipantId, nonce: &str, created_at: Timestamp) -> String {
        let msg = proof_message(chain, &self.patient, clinician, nonce, created_at);
        b64url_encode(&self.key().sign(Domain::EmergencyCard, &msg))
    }
}

/// The bytes a card proof signs (in [`Domain::EmergencyCard`]).
pub fn proof_message(
    chain: &ChainId,
    patient: &ParticipantId,
    clinician: &ParticipantId,
    nonce: &str,
    created_at: Timestamp,
) -> Vec<u8> {
    format!("{chain}\n{patient}\n{clinician}\n{nonce}\n{}", created_at.unix_ms()).into_bytes()
}

/// Whether `proof` was made with the card whose public key is `card_key`
/// for exactly this access.
pub fn verify_proof(
    card_key: &PublicKey,
    proof: &str,
    chain: &ChainId,
    patient: &ParticipantId,
    clinician: &ParticipantId,
    nonce: &str,
    created_at: Timestamp,
) -> bool {
    let Ok(sig) = b64url_decode(proof) else { return false };
    let msg = proof_message(chain, patient, clinician, nonce, created_at);
    card_key.verify(Domain::EmergencyCard, &msg, &sig).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(seed: u8) -> ParticipantId {
        ParticipantId::from_public_key(&KeyPair::from_seed([seed; 32]).public())
    }

    #[test]
    fn a_card_round_trips_as_text_and_proves_one_access_only() {
        let chain = ChainId::parse("glucochain-test").unwrap();
        let (patient, dr, other) = (id(1), id(2), id(3));
        let card = EmergencyCard::from_secret(patient.clone(), [7; SECRET_BYTES]);
        let text = card.text();
        assert!(text.starts_with("gce1:p"), "{text}");
        let back = EmergencyCard::parse(&format!("  {text}\n")).unwrap();
        assert_eq!(back, card);
        assert_eq!(
            EmergencyCard::parse(&text.to_uppercase().replacen("GCE1", "gce1", 1)).err(),
            Some(CardError::Malformed),
            "the patient id is lower case"
        );
        let at = Timestamp::from_unix_ms(1_790_000_000_000);
        let proof = card.prove(&chain, &dr, "nonce-0001", at);
        let key = card.public_key();
        assert!(verify_proof(&key, &proof, &chain, &patient, &dr, "nonce-0001", at));
        // The same proof does not serve another clinician, transaction, time, patient or chain.
        assert!(!verify_proof(&key, &proof, &chain, &patient, &other, "nonce-0001", at));
        assert!(!verify_proof(&key, &proof, &chain, &patient, &dr, "nonce-0002", at));
        assert!(!verify_proof(
            &key,
            &proof,
            &chain,
            &patient,
            &dr,
            "nonce-0001",
            Timestamp::from_unix_ms(at.unix_ms() + 1)
        ));
        assert!(!verify_proof(&key, &proof, &chain, &other, &dr, "nonce-0001", at));
        assert!(!verify_proof(&key, &proof, &ChainId::parse("other-chain").unwrap(), &patient, &dr, "nonce-0001", at));
        // Another card's key does not verify it; a new card has another key.
        let new = EmergencyCard::generate(patient.clone());
        assert_ne!(new.public_key(), key);
        assert!(!verify_proof(&new.public_key(), &proof, &chain, &patient, &dr, "nonce-0001", at));
        assert!(!verify_proof(&key, "not base64!", &chain, &patient, &dr, "nonce-0001", at));
    }

    #[test]
    fn malformed_cards_are_refused() {
        let p = id(1);
        for bad in [
            String::new(),
            "gce1".into(),
            format!("gce2:{p}:{}", "a".repeat(32)),
            format!("gce1:{p}"),
            format!("gce1:{p}:{}", "a".repeat(31)),
            format!("gce1:{p}:{}", "1".repeat(32)),
            format!("gce1:nobody:{}", "a".repeat(32)),
            format!("gce1:{p}:{}:x", "a".repeat(32)),
        ] {
            assert_eq!(EmergencyCard::parse(&bad), Err(CardError::Malformed), "{bad}");
        }
    }

    #[test]
    fn the_card_key_is_the_documented_derivation() {
        // What the web page computes with WebCrypto: SHA-256 of the tag, a NUL and the secret.
        let card = EmergencyCard::from_secret(id(1), [9; SECRET_BYTES]);
        let mut input = b"glucochain/v1/emergency-card-key".to_vec();
        input.push(0);
        input.extend_from_slice(&[9; SECRET_BYTES]);
        let seed = glucochain_crypto::sha256(&input);
        assert_eq!(card.public_key(), KeyPair::from_seed(seed.0).public());
    }
}
