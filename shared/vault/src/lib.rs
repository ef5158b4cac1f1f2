//! The record vault's core (issue 21, ADR 0016), free of I/O.
//!
//! * [`commitment`]: what the chain holds of a record — a salted,
//!   domain-separated SHA-256 of its canonical body — and the check a reader
//!   makes against it.
//! * [`seal`]: XChaCha20-Poly1305 (RustCrypto) with associated data that
//!   binds a ciphertext to its place (a body to its transaction, patient and
//!   class; a wrapped key to what it unlocks), so nothing can be moved.
//! * [`keys`]: the hierarchy. A random record key encrypts one body; record
//!   keys are wrapped by a data key per patient, class and epoch; data keys
//!   are wrapped by the deployment's key-encryption key, behind the
//!   [`keys::KeyWrap`] trait (a key file here, a KMS in production). Erasing
//!   a record drops its wrapped key and ciphertext; erasing a class destroys
//!   its data keys, after which no copy of its ciphertexts opens.
//!
//! * [`record_vault`]: the vault over a service's store (PostgreSQL, or
//!   SQLite in the embedded demo): put, get (a body, "erased", or nothing),
//!   erase a record, erase a class.
//! * [`replica`]: the same rows on the `VAULT` JetStream stream, replicated
//!   beyond one database, purged by erasures, restorable into a new vault.
//!
//! Key material is zeroed when dropped and never printed (`Debug` shows
//! only a fingerprint).

pub mod commitment;
pub mod keys;
pub mod record_vault;
pub mod replica;
pub mod seal;
pub mod writer;

/// Why a vault operation failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum VaultError {
    /// A ciphertext did not open: wrong key, wrong place (associated data) or altered.
    #[error("the ciphertext does not open with this key for this place (wrong key, moved or altered)")]
    Open,
    /// A sealed value is not in the expected form.
    #[error("malformed sealed value: {0}")]
    Malformed(String),
    /// The key-encryption key could not be loaded.
    #[error("key-encryption key {path}: {reason}")]
    Kek {
        /// Where it was looked for.
        path: String,
        /// Why it was refused.
        reason: String,
    },
    /// A body does not match the commitment on the chain.
    #[error("the body does not match its commitment on the chain")]
    Commitment,
    /// The vault's database failed.
    #[error("vault store: {0}")]
    Store(String),
    /// A data key was wrapped by another key-encryption key than this vault holds.
    #[error(
        "data key of {patient}/{class} epoch {epoch} was wrapped by {kek_id}, this vault holds another key-encryption key"
    )]
    OtherKek {
        /// Patient.
        patient: String,
        /// Class.
        class: String,
        /// Epoch.
        epoch: i64,
        /// The KEK that wrapped it.
        kek_id: String,
    },
}

impl From<glucochain_store::StoreError> for VaultError {
    fn from(e: glucochain_store::StoreError) -> Self {
        VaultError::Store(e.to_string())
    }
}
