//! The commitment a transaction carries instead of its body: SHA-256 over
//! the domain tag `glucochain/v1/body-commitment`, a NUL byte, a 32-byte
//! random salt and the body's canonical bytes. The salt makes a guess of a
//! low-entropy body (one glucose value) useless to whoever sees only the
//! chain; the signature over the commitment keeps authorship provable.

use crate::VaultError;
use glucochain_crypto::hash::{Hash32, sha256_parts};
use rand_core::{OsRng, RngCore};

/// The domain tag of body commitments.
pub const DOMAIN: &[u8] = b"glucochain/v1/body-commitment";

/// A commitment's random salt.
#[derive(Clone, PartialEq, Eq)]
pub struct Salt(pub [u8; 32]);

impl std::fmt::Debug for Salt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Salt(…)")
    }
}

impl Salt {
    /// A fresh random salt.
    pub fn random() -> Self {
        let mut s = [0u8; 32];
        OsRng.fill_bytes(&mut s);
        Salt(s)
    }

    /// As unpadded base64url (how a sealed body carries it).
    pub fn to_b64(&self) -> String {
        glucochain_crypto::jose::b64url_encode(&self.0)
    }

    /// From unpadded base64url.
    pub fn from_b64(s: &str) -> Result<Self, VaultError> {
        let bytes = glucochain_crypto::jose::b64url_decode(s).map_err(|e| VaultError::Malformed(e.to_string()))?;
        let arr: [u8; 32] = bytes.try_into().map_err(|_| VaultError::Malformed("a salt is 32 bytes".into()))?;
        Ok(Salt(arr))
    }
}

/// The commitment to `body` (its canonical bytes) under `salt`.
pub fn commit(salt: &Salt, body: &[u8]) -> Hash32 {
    sha256_parts(&[DOMAIN, &[0], &salt.0, body])
}

/// Checks that `body` under `salt` is the committed one.
pub fn verify(commitment: &Hash32, salt: &Salt, body: &[u8]) -> Result<(), VaultError> {
    if &commit(salt, body) == commitment { Ok(()) } else { Err(VaultError::Commitment) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commitment_binds_the_body_and_hides_it_behind_the_salt() {
        let body = br#"{"value":87.3}"#;
        let salt = Salt::random();
        let c = commit(&salt, body);
        assert_eq!(verify(&c, &salt, body), Ok(()));
        assert_eq!(verify(&c, &salt, br#"{"value":87.4}"#), Err(VaultError::Commitment), "another body");
        assert_eq!(verify(&c, &Salt::random(), body), Err(VaultError::Commitment), "another salt");
        assert_ne!(commit(&Salt::random(), body), c, "the same body under another salt looks unrelated");
        // Not a plain hash of the body (a guess of the value alone finds nothing).
        assert_ne!(c, glucochain_crypto::hash::sha256(body));
        assert_eq!(Salt::from_b64(&salt.to_b64()).unwrap(), salt);
        assert!(Salt::from_b64("AAAA").is_err(), "too short");
        assert_eq!(format!("{salt:?}"), "Salt(…)");
    }

    #[test]
    fn the_commitment_is_the_documented_construction() {
        // SHA-256("glucochain/v1/body-commitment" || 0x00 || salt || body), in one piece.
        let salt = Salt([7u8; 32]);
        let mut input = b"glucochain/v1/body-commitment\0".to_vec();
        input.extend_from_slice(&[7u8; 32]);
        input.extend_from_slice(b"{}");
        assert_eq!(commit(&salt, b"{}"), glucochain_crypto::hash::sha256(&input));
    }
}
