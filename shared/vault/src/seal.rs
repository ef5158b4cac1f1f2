//! Authenticated encryption of one value for one place: XChaCha20-Poly1305
//! (192-bit random nonces, so random nonces never repeat in practice) with
//! associated data naming the place. The sealed form is
//! `nonce (24 bytes) || ciphertext+tag`.

use crate::VaultError;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// A 256-bit symmetric key, zeroed on drop, never printed.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Key256(pub(crate) [u8; 32]);

impl std::fmt::Debug for Key256 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key256({})", self.fingerprint())
    }
}

impl Key256 {
    /// A fresh random key.
    pub fn random() -> Self {
        Key256(XChaCha20Poly1305::generate_key(&mut OsRng).into())
    }

    /// From raw bytes (for keys unwrapped or loaded from a key file).
    pub fn from_bytes(b: [u8; 32]) -> Self {
        Key256(b)
    }

    /// A short public name for logs: the first 8 hex digits of SHA-256 of
    /// the key under its own domain (reveals nothing usable about it).
    pub fn fingerprint(&self) -> String {
        let h = glucochain_crypto::hash::sha256_parts(&[b"glucochain/v1/key-fingerprint\0", &self.0]);
        hex::encode(&h.0[..4])
    }
}

/// Seals `plaintext` under `key` for the place `aad`.
pub fn seal(key: &Key256, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let cipher = XChaCha20Poly1305::new((&key.0).into());
    let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
    let ct = cipher.encrypt(&nonce, Payload { msg: plaintext, aad }).expect("XChaCha20-Poly1305 seals any length here");
    let mut out = Vec::with_capacity(24 + ct.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    out
}

/// Opens what [`seal`] made, for the same key and place.
pub fn open(key: &Key256, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, VaultError> {
    if sealed.len() < 24 + 16 {
        return Err(VaultError::Malformed(format!("{} bytes is too short for a sealed value", sealed.len())));
    }
    let (nonce, ct) = sealed.split_at(24);
    let cipher = XChaCha20Poly1305::new((&key.0).into());
    cipher.decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad }).map_err(|_| VaultError::Open)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_only_with_its_key_for_its_place_and_unaltered() {
        let k = Key256::random();
        let body = b"allergy: penicillin".as_slice();
        let s = seal(&k, b"tx-1|patient-a|private", body);
        assert_eq!(open(&k, b"tx-1|patient-a|private", &s).unwrap(), body);
        assert_eq!(open(&Key256::random(), b"tx-1|patient-a|private", &s), Err(VaultError::Open), "another key");
        assert_eq!(open(&k, b"tx-2|patient-a|private", &s), Err(VaultError::Open), "moved to another record");
        let mut altered = s.clone();
        *altered.last_mut().unwrap() ^= 1;
        assert_eq!(open(&k, b"tx-1|patient-a|private", &altered), Err(VaultError::Open), "altered");
        assert!(matches!(open(&k, b"", &s[..30]), Err(VaultError::Malformed(_))));
        // The plaintext is not in the sealed bytes, and two seals of one body differ (fresh nonces).
        assert!(!s.windows(body.len()).any(|w| w == body));
        assert_ne!(seal(&k, b"x", body), seal(&k, b"x", body));
    }

    #[test]
    fn keys_are_never_printed() {
        let k = Key256::from_bytes([0xAB; 32]);
        let shown = format!("{k:?}");
        assert!(shown.starts_with("Key256(") && shown.len() == "Key256(".len() + 8 + 1, "{shown}");
        assert!(!shown.to_lowercase().contains("abab"), "{shown}");
    }
}
