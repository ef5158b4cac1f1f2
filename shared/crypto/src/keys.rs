//! Ed25519 key pairs and public keys, stored as PKCS#8 / SPKI PEM.
//!
//! Private key files are written with mode 0600 and refused when readable by
//! group or others, as `ssh` does: a key that others could read is a leaked key.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, spki::der::pem::LineEnding,
};
use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::io::Write;
use std::path::Path;
use zeroize::Zeroizing;

/// Errors reading, writing or parsing keys.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// File system error, with the path.
    #[error("{path}: {source}")]
    Io {
        /// The key file.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The key file can be read by group or others.
    #[error("{path}: private key file has mode {mode:o}; it must not be readable by group or others (chmod 600)")]
    Permissions {
        /// The key file.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// The file exists and overwriting was not asked for.
    #[error("{0}: already exists; refusing to overwrite a key")]
    Exists(String),
    /// Not a PKCS#8 Ed25519 private key, or not an SPKI Ed25519 public key.
    #[error("not an Ed25519 key in PEM: {0}")]
    Pem(String),
    /// A public key given as text or bytes is malformed.
    #[error("invalid Ed25519 public key: {0}")]
    PublicKey(String),
}

/// An Ed25519 signing key pair. The secret is zeroized on drop and never
/// printed: `Debug` shows only the public key.
pub struct KeyPair {
    signing: SigningKey,
}

impl KeyPair {
    /// A fresh key pair from the operating system's random generator.
    pub fn generate() -> Self {
        let mut rng = rand_core::OsRng;
        KeyPair { signing: SigningKey::generate(&mut rng) }
    }

    /// The key pair whose RFC 8032 secret key is `seed` (deterministic; for
    /// test vectors and fixtures).
    pub fn from_seed(seed: [u8; 32]) -> Self {
        KeyPair { signing: SigningKey::from_bytes(&seed) }
    }

    /// Parses a PKCS#8 PEM ("BEGIN PRIVATE KEY") Ed25519 key.
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, KeyError> {
        SigningKey::from_pkcs8_pem(pem).map(|signing| KeyPair { signing }).map_err(|e| KeyError::Pem(e.to_string()))
    }

    /// PKCS#8 PEM of the private key (zeroized when dropped), version 1:
    /// the seed only (RFC 8410 §7's first form), which OpenSSL 3.0 and
    /// pyca/cryptography read; version 2, with the public key, they refuse
    /// ("extra data"). Both versions are read.
    pub fn to_pkcs8_pem(&self) -> Zeroizing<String> {
        let v1 = ed25519_dalek::pkcs8::KeypairBytes { secret_key: self.signing.to_bytes(), public_key: None };
        v1.to_pkcs8_pem(LineEnding::LF).expect("an Ed25519 key always encodes as PKCS#8")
    }

    /// Writes the private key as PKCS#8 PEM with mode 0600. Refuses to
    /// overwrite an existing file unless `overwrite` is set.
    pub fn write_pem_file(&self, path: &Path, overwrite: bool) -> Result<(), KeyError> {
        write_secret_file(path, self.to_pkcs8_pem().as_bytes(), overwrite)
    }

    /// Reads a PKCS#8 PEM private key file, refusing files that group or
    /// others may read.
    pub fn read_pem_file(path: &Path) -> Result<Self, KeyError> {
        Self::from_pkcs8_pem(&read_secret_file(path)?)
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.signing.verifying_key())
    }

    pub(crate) fn signing_key(&self) -> &SigningKey {
        &self.signing
    }
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyPair(public: {})", self.public())
    }
}

/// Writes `contents` to a secret file (a private key, an NKey seed) with
/// mode 0600, forced on an existing file too. Refuses to overwrite an
/// existing file unless `overwrite` is set.
pub fn write_secret_file(path: &Path, contents: &[u8], overwrite: bool) -> Result<(), KeyError> {
    let p = path.display().to_string();
    let io = |source| KeyError::Io { path: p.clone(), source };
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true);
    if overwrite {
        opts.create(true).truncate(true);
    } else {
        opts.create_new(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .map_err(|e| if e.kind() == std::io::ErrorKind::AlreadyExists { KeyError::Exists(p.clone()) } else { io(e) })?;
    #[cfg(unix)]
    {
        // An existing file keeps its mode on open: force 0600.
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    }
    f.write_all(contents).map_err(io)?;
    f.sync_all().map_err(io)?;
    Ok(())
}

/// Reads a secret file as text, refusing one that group or others may read.
pub fn read_secret_file(path: &Path) -> Result<Zeroizing<String>, KeyError> {
    let p = path.display().to_string();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path).map_err(|source| KeyError::Io { path: p.clone(), source })?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyError::Permissions { path: p, mode });
        }
    }
    Ok(Zeroizing::new(std::fs::read_to_string(path).map_err(|source| KeyError::Io { path: p.clone(), source })?))
}

/// An Ed25519 public key. Shown and serialized as unpadded base64url of the
/// 32 raw bytes (the `x` of an OKP JWK, RFC 8037).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    /// From the 32 raw bytes; rejects encodings that are not a curve point
    /// and small-order (weak) keys.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        let arr: [u8; 32] =
            bytes.try_into().map_err(|_| KeyError::PublicKey(format!("expected 32 bytes, got {}", bytes.len())))?;
        let vk = VerifyingKey::from_bytes(&arr).map_err(|_| KeyError::PublicKey("not a valid curve point".into()))?;
        if vk.is_weak() {
            return Err(KeyError::PublicKey("small-order (weak) key".into()));
        }
        Ok(PublicKey(vk))
    }

    /// From unpadded base64url of the 32 raw bytes.
    pub fn from_base64url(s: &str) -> Result<Self, KeyError> {
        let bytes =
            URL_SAFE_NO_PAD.decode(s).map_err(|e| KeyError::PublicKey(format!("not unpadded base64url: {e}")))?;
        Self::from_bytes(&bytes)
    }

    /// From an SPKI PEM ("BEGIN PUBLIC KEY").
    pub fn from_spki_pem(pem: &str) -> Result<Self, KeyError> {
        let vk = VerifyingKey::from_public_key_pem(pem).map_err(|e| KeyError::Pem(e.to_string()))?;
        Self::from_bytes(vk.as_bytes())
    }

    /// SPKI PEM of this key.
    pub fn to_spki_pem(&self) -> String {
        self.0.to_public_key_pem(LineEnding::LF).expect("an Ed25519 key always encodes as SPKI")
    }

    /// The 32 raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        self.0.as_bytes()
    }

    /// Unpadded base64url of the raw bytes.
    pub fn to_base64url(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0.as_bytes())
    }

    pub(crate) fn verifying_key(&self) -> &VerifyingKey {
        &self.0
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64url())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_base64url())
    }
}

impl std::str::FromStr for PublicKey {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_base64url(s)
    }
}

impl Serialize for PublicKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_base64url())
    }
}

impl<'de> Deserialize<'de> for PublicKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::from_base64url(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_file_round_trip_with_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.pem");
        let kp = KeyPair::generate();
        kp.write_pem_file(&path, false).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let back = KeyPair::read_pem_file(&path).unwrap();
        assert_eq!(back.public(), kp.public());
        assert!(std::fs::read_to_string(&path).unwrap().starts_with("-----BEGIN PRIVATE KEY-----"));
        // No silent overwrite.
        assert!(matches!(KeyPair::generate().write_pem_file(&path, false), Err(KeyError::Exists(_))));
    }

    #[cfg(unix)]
    #[test]
    fn refuses_key_readable_by_others() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.pem");
        KeyPair::generate().write_pem_file(&path, false).unwrap();
        for mode in [0o644, 0o640, 0o604, 0o660, 0o700 | 0o020] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let err = KeyPair::read_pem_file(&path).unwrap_err();
            assert!(matches!(err, KeyError::Permissions { mode: m, .. } if m == mode), "{mode:o}: {err}");
        }
        // Owner-only modes are fine.
        for mode in [0o600, 0o400] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            KeyPair::read_pem_file(&path).unwrap();
        }
    }

    #[test]
    fn public_key_encodings() {
        let kp = KeyPair::from_seed([7; 32]);
        let pk = kp.public();
        assert_eq!(PublicKey::from_base64url(&pk.to_base64url()).unwrap(), pk);
        assert_eq!(PublicKey::from_spki_pem(&pk.to_spki_pem()).unwrap(), pk);
        assert!(PublicKey::from_base64url("AAAA").is_err());
        // The identity point is a small-order key.
        let mut ident = [0u8; 32];
        ident[0] = 1;
        assert!(PublicKey::from_bytes(&ident).is_err());
        assert!(!format!("{kp:?}").contains("PRIVATE"));
    }
}
