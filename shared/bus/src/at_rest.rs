//! JetStream encryption at rest: the streams' files on a NATS server's
//! disk (`TXS`, `BLOCKS`, `ALERTS`, ...) are sealed with ChaCha20-Poly1305
//! under a key the server is given in its configuration, so a copied disk,
//! a backup or a store directory read by anyone but the running server
//! shows no message in clear (issue 21). The key is the NATS operator's;
//! it protects the files, not the messages from the server itself (the
//! record vault keeps bodies out of the messages; ADR 0016).

use std::path::Path;

/// The environment variable a deployment passes the key in (Helm: from a
/// Secret), for [`encryption_config_from_env`].
pub const KEY_ENV: &str = "GLUCOCHAIN_JETSTREAM_KEY";

/// A new key: 32 random bytes, hex.
pub fn new_key() -> String {
    let mut b = [0u8; 32];
    glucochain_crypto::random_bytes(&mut b);
    hex::encode(b)
}

fn check(key: &str) -> Result<(), crate::BusError> {
    if key.len() < 32 || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err(crate::BusError::Credentials {
            path: "jetstream key".into(),
            reason: "at least 32 characters of A-Z a-z 0-9 - _".into(),
        });
    }
    Ok(())
}

/// The `jetstream` block of a server configuration that encrypts its store
/// with `key` (the server's `-js -sd DIR` flags give the store directory).
pub fn encryption_config(key: &str) -> Result<String, crate::BusError> {
    check(key)?;
    Ok(format!("jetstream {{\n  cipher: chacha\n  key: \"{key}\"\n}}\n"))
}

/// The same block reading the key from [`KEY_ENV`] when the server starts:
/// a server without the variable refuses to start rather than run in clear.
pub fn encryption_config_from_env() -> String {
    format!("jetstream {{\n  cipher: chacha\n  key: ${KEY_ENV}\n}}\n")
}

/// The key in `path`, made (0600) when the file does not exist yet.
pub fn key_file(path: &Path) -> Result<String, crate::BusError> {
    let bad = |e: String| crate::BusError::Credentials { path: path.display().to_string(), reason: e };
    if !path.exists() {
        glucochain_crypto::write_secret_file(path, format!("{}\n", new_key()).as_bytes(), false)
            .map_err(|e| bad(e.to_string()))?;
    }
    let key = glucochain_crypto::read_secret_file(path).map_err(|e| bad(e.to_string()))?.trim().to_string();
    check(&key).map_err(|_| bad("not a JetStream key (at least 32 characters of A-Z a-z 0-9 - _)".into()))?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_and_short_or_odd_ones_refused() {
        let (a, b) = (new_key(), new_key());
        assert_ne!(a, b);
        assert!(encryption_config(&a).unwrap().contains(&a));
        assert!(encryption_config("short").is_err());
        assert!(encryption_config(&format!("{a}\"\n}}")).is_err(), "no config injection");
        assert!(encryption_config_from_env().contains("$GLUCOCHAIN_JETSTREAM_KEY"));
    }

    #[test]
    fn a_key_file_is_made_once_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("jetstream.key");
        let k = key_file(&p).unwrap();
        assert_eq!(key_file(&p).unwrap(), k);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
    }
}
