//! The commitment a transaction carries instead of its body: SHA-256 over
//! the domain tag `glucochain/v1/body-commitment`, a NUL byte, a 32-byte
//! random salt and the body's canonical bytes. The salt makes a guess of a
//! low-entropy body (one glucose value) useless to whoever sees only the
//! chain; the signature over the commitment keeps authorship provable.

use crate::VaultError;
use glucochain_crypto::hash::Hash32;
pub use glucochain_types::sealed::{DOMAIN, Salt, commit};

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
}
