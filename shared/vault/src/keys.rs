//! The key hierarchy: key-encryption key → data key (per patient, class and
//! epoch) → record key (per record) → body.
//!
//! Every wrap names what it unlocks in its associated data, so a wrapped
//! key cannot be moved to another patient, class, epoch or record. Erasing
//! a record deletes its wrapped record key (and its ciphertext); erasing a
//! class destroys the class's data keys, so every copy of its ciphertexts —
//! replicas included — stays closed for good.

use crate::VaultError;
use crate::seal::{Key256, open, seal};
use std::path::Path;

/// Wraps and unwraps data keys: the deployment's key-encryption key. A key
/// file here ([`FileKek`]); a KMS or HSM implements the same two calls in
/// production, and the vault never sees its key.
pub trait KeyWrap: Send + Sync {
    /// Wraps `key` for the place `aad`.
    fn wrap(&self, key: &Key256, aad: &[u8]) -> Vec<u8>;
    /// Unwraps what [`KeyWrap::wrap`] made for `aad`.
    fn unwrap(&self, wrapped: &[u8], aad: &[u8]) -> Result<Key256, VaultError>;
    /// A public name of the key-encryption key (to know which one wrapped what).
    fn id(&self) -> String;
}

fn key_from(bytes: Vec<u8>) -> Result<Key256, VaultError> {
    let arr: [u8; 32] = bytes.try_into().map_err(|_| VaultError::Malformed("an unwrapped key is 32 bytes".into()))?;
    Ok(Key256::from_bytes(arr))
}

/// A key-encryption key read from a file (or a secret mounted as one): 32
/// bytes as 64 hex digits or unpadded base64url, surrounding whitespace
/// ignored. The file must not be readable by group or others.
pub struct FileKek {
    key: Key256,
}

impl std::fmt::Debug for FileKek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FileKek({})", self.key.fingerprint())
    }
}

impl FileKek {
    /// Loads the key file at `path`.
    pub fn load(path: &Path) -> Result<Self, VaultError> {
        let refuse = |reason: String| VaultError::Kek { path: path.display().to_string(), reason };
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path).map_err(|e| refuse(e.to_string()))?.permissions().mode();
            if mode & 0o077 != 0 {
                return Err(refuse(format!("readable by others (mode {:o}); chmod 600 it", mode & 0o777)));
            }
        }
        let text = std::fs::read_to_string(path).map_err(|e| refuse(e.to_string()))?;
        Self::parse(text.trim()).map_err(|reason| refuse(reason.to_string()))
    }

    /// From the key file's text.
    pub fn parse(text: &str) -> Result<Self, &'static str> {
        let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode(text).map_err(|_| "not hex")?
        } else {
            glucochain_crypto::jose::b64url_decode(text).map_err(|_| "neither 64 hex digits nor base64url")?
        };
        let arr: [u8; 32] = bytes.try_into().map_err(|_| "the key must be 32 bytes")?;
        Ok(FileKek { key: Key256::from_bytes(arr) })
    }

    /// The text of a new random key file (64 hex digits).
    pub fn generate() -> String {
        hex::encode(Key256::random().0)
    }

    /// Writes a new random key file at `path` (mode 0600) unless one is
    /// there; a development convenience (`emrctl devnet`, the tests): a
    /// deployment's KEK comes from its secret store or KMS.
    pub fn create_file_if_missing(path: &Path) -> Result<(), VaultError> {
        if path.exists() {
            return Ok(());
        }
        glucochain_crypto::write_secret_file(path, format!("{}\n", Self::generate()).as_bytes(), false)
            .map_err(|e| VaultError::Kek { path: path.display().to_string(), reason: e.to_string() })
    }
}

impl KeyWrap for FileKek {
    fn wrap(&self, key: &Key256, aad: &[u8]) -> Vec<u8> {
        seal(&self.key, &[b"kek|".as_slice(), aad].concat(), &key.0)
    }

    fn unwrap(&self, wrapped: &[u8], aad: &[u8]) -> Result<Key256, VaultError> {
        key_from(open(&self.key, &[b"kek|".as_slice(), aad].concat(), wrapped)?)
    }

    fn id(&self) -> String {
        format!("file:{}", self.key.fingerprint())
    }
}

/// Opens a stored data key that `kek_id` wrapped, refusing one another
/// key-encryption key wrapped (a vault or replica of another deployment).
pub fn open_stored_data_key(
    kek: &dyn KeyWrap,
    id: &DataKeyId,
    wrapped: &[u8],
    kek_id: String,
) -> Result<Key256, VaultError> {
    if kek_id != kek.id() {
        return Err(VaultError::OtherKek {
            patient: id.patient.clone(),
            class: id.class.clone(),
            epoch: i64::from(id.epoch),
            kek_id,
        });
    }
    open_data_key(kek, id, wrapped)
}

/// Which data key: one per patient, data class and epoch (a new epoch
/// starts after the class was erased).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DataKeyId {
    /// The patient's participant id.
    pub patient: String,
    /// The data class (`institution`, `private`).
    pub class: String,
    /// The epoch.
    pub epoch: u32,
}

impl DataKeyId {
    fn aad(&self) -> Vec<u8> {
        format!("data-key|{}|{}|{}", self.patient, self.class, self.epoch).into_bytes()
    }
}

/// Where one record lives: its transaction, and the data key it is under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordPlace {
    /// The transaction's hash (hex).
    pub tx_hash: String,
    /// The data key.
    pub key: DataKeyId,
}

impl RecordPlace {
    fn key_aad(&self) -> Vec<u8> {
        format!("record-key|{}|", self.tx_hash).into_bytes().into_iter().chain(self.key.aad()).collect()
    }

    fn body_aad(&self) -> Vec<u8> {
        format!("body|{}|", self.tx_hash).into_bytes().into_iter().chain(self.key.aad()).collect()
    }
}

/// A new data key for `id`, wrapped by `kek`: what the vault stores.
pub fn new_data_key(kek: &dyn KeyWrap, id: &DataKeyId) -> (Key256, Vec<u8>) {
    let k = Key256::random();
    let wrapped = kek.wrap(&k, &id.aad());
    (k, wrapped)
}

/// Unwraps a stored data key.
pub fn open_data_key(kek: &dyn KeyWrap, id: &DataKeyId, wrapped: &[u8]) -> Result<Key256, VaultError> {
    kek.unwrap(wrapped, &id.aad())
}

/// A record sealed for the vault: the body under a fresh record key, and
/// that record key under the data key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedRecord {
    /// The body's ciphertext.
    pub body: Vec<u8>,
    /// The record key, wrapped by the data key.
    pub record_key: Vec<u8>,
}

/// Seals `body` at `place` under `data_key`.
pub fn seal_record(data_key: &Key256, place: &RecordPlace, body: &[u8]) -> SealedRecord {
    let rk = Key256::random();
    SealedRecord { body: seal(&rk, &place.body_aad(), body), record_key: seal(data_key, &place.key_aad(), &rk.0) }
}

/// Opens a record sealed by [`seal_record`].
pub fn open_record(data_key: &Key256, place: &RecordPlace, sealed: &SealedRecord) -> Result<Vec<u8>, VaultError> {
    let rk = key_from(open(data_key, &place.key_aad(), &sealed.record_key)?)?;
    open(&rk, &place.body_aad(), &sealed.body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place(tx: &str, patient: &str, class: &str) -> RecordPlace {
        RecordPlace { tx_hash: tx.into(), key: DataKeyId { patient: patient.into(), class: class.into(), epoch: 1 } }
    }

    #[test]
    fn a_record_opens_through_the_hierarchy_and_only_in_its_place() {
        let kek = FileKek::parse(&FileKek::generate()).unwrap();
        let p = place("ab12", "pat-a", "private");
        let (dk, wrapped) = new_data_key(&kek, &p.key);
        let sealed = seal_record(&dk, &p, b"{\"note\":\"canary-7731\"}");
        // Stored: the wrapped data key and the sealed record. Read back through the KEK.
        let dk2 = open_data_key(&kek, &p.key, &wrapped).unwrap();
        assert_eq!(open_record(&dk2, &p, &sealed).unwrap(), b"{\"note\":\"canary-7731\"}");
        // Nothing moves: not to another record, patient, class or epoch.
        for other in [
            place("cd34", "pat-a", "private"),
            place("ab12", "pat-b", "private"),
            place("ab12", "pat-a", "institution"),
        ] {
            assert_eq!(open_record(&dk2, &other, &sealed), Err(VaultError::Open), "{other:?}");
        }
        let mut later = p.key.clone();
        later.epoch = 2;
        assert_eq!(open_data_key(&kek, &later, &wrapped).err(), Some(VaultError::Open), "a data key of another epoch");
        // Another deployment's KEK opens nothing.
        let other_kek = FileKek::parse(&FileKek::generate()).unwrap();
        assert_eq!(open_data_key(&other_kek, &p.key, &wrapped).err(), Some(VaultError::Open));
        assert_ne!(kek.id(), other_kek.id());
        // No plaintext in what is stored.
        assert!(!sealed.body.windows(11).any(|w| w == b"canary-7731"));
    }

    #[test]
    fn a_record_opens_under_no_other_data_key_so_destroying_its_key_erases_every_copy() {
        let kek = FileKek::parse(&FileKek::generate()).unwrap();
        let p = place("ab12", "pat-a", "private");
        let (dk, _wrapped) = new_data_key(&kek, &p.key);
        let sealed = seal_record(&dk, &p, b"allergy: penicillin");
        drop(dk);
        // With the wrapped data key destroyed, a replica's copy of the record
        // (ciphertext and wrapped record key) opens under no key there is.
        let (fresh, _) = new_data_key(&kek, &p.key);
        assert_eq!(open_record(&fresh, &p, &sealed), Err(VaultError::Open));
    }

    #[test]
    fn key_files_are_hex_or_base64url_of_32_bytes_and_private() {
        let text = FileKek::generate();
        assert_eq!(text.len(), 64);
        let b64 = glucochain_crypto::jose::b64url_encode(&hex::decode(&text).unwrap());
        assert_eq!(FileKek::parse(&text).unwrap().id(), FileKek::parse(&b64).unwrap().id());
        assert!(FileKek::parse("00").is_err());
        assert!(FileKek::parse(&"zz".repeat(32)).is_err());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kek");
        std::fs::write(&path, format!("{text}\n")).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            let e = FileKek::load(&path).unwrap_err();
            assert!(e.to_string().contains("readable by others"), "{e}");
            assert!(!e.to_string().contains(&text), "the key is never in an error");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let kek = FileKek::load(&path).unwrap();
        assert!(!format!("{kek:?}").contains(&text[..8]));
    }
}
