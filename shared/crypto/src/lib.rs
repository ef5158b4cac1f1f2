//! Cryptography for GlucoChain.
//!
//! * [`keys`]: Ed25519 key pairs stored as PKCS#8 PEM files (mode 0600).
//! * [`domain`]: domain-separated signatures, so that a signature made for one
//!   kind of message (a vote, say) can never be replayed as another (a proposal).
//! * [`hash`]: SHA-256 and the [`Hash32`] digest type.
//! * [`merkle`]: the RFC 9162 Merkle tree with inclusion and consistency proofs.
//! * [`jose`]: JWS compact serialization with Ed25519 (RFC 7515, RFC 8037,
//!   RFC 9864) and short-lived JWTs for authenticating reads.
//!
//! Everything here is pure and deterministic except key generation.

pub mod domain;
pub mod hash;
pub mod jose;
pub mod keys;
pub mod merkle;

pub use domain::{BatchItem, Domain, RawBatchItem, SignatureError, verify_batch, verify_batch_raw};
pub use hash::{Hash32, sha256, sha256_parts};
pub use keys::{KeyError, KeyPair, PublicKey, read_secret_file, write_secret_file};

/// Fills `out` with bytes from the operating system's random source (session
/// ids, nonces, card secrets).
pub fn random_bytes(out: &mut [u8]) {
    use rand_core::RngCore as _;
    rand_core::OsRng.fill_bytes(out);
}
