//! Acknowledge links: `<delivery id>.<expiry ms>.<signature>`, signed by the
//! notifier's key in its own signature domain, so a link names exactly one
//! delivery (hence one contact) and cannot be forged or stretched. Single use
//! is enforced by the outbox (`link_used_ms`).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use glucochain_crypto::{Domain, KeyPair, PublicKey};

/// How long a link stays valid: a week.
pub const LINK_TTL_MS: i64 = 7 * 24 * 3_600_000;

/// A link token for `delivery_id`, valid until `expires_ms`.
pub fn sign(key: &KeyPair, delivery_id: &str, expires_ms: i64) -> String {
    let msg = format!("{delivery_id}.{expires_ms}");
    let sig = key.sign(Domain::NotifyLink, msg.as_bytes());
    format!("{msg}.{}", URL_SAFE_NO_PAD.encode(sig))
}

/// Why a link is refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// Not a link token.
    #[error("malformed link")]
    Malformed,
    /// Signature does not verify.
    #[error("the link's signature does not verify")]
    Forged,
    /// Past its expiry.
    #[error("the link has expired")]
    Expired,
}

/// The delivery id a valid token names.
pub fn verify(public: &PublicKey, token: &str, now_ms: i64) -> Result<String, LinkError> {
    let mut parts = token.rsplitn(2, '.');
    let sig = parts.next().ok_or(LinkError::Malformed)?;
    let msg = parts.next().ok_or(LinkError::Malformed)?;
    let (delivery, exp) = msg.rsplit_once('.').ok_or(LinkError::Malformed)?;
    let exp: i64 = exp.parse().map_err(|_| LinkError::Malformed)?;
    if delivery.is_empty() || delivery.len() > 64 || !delivery.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(LinkError::Malformed);
    }
    let sig = URL_SAFE_NO_PAD.decode(sig).map_err(|_| LinkError::Malformed)?;
    public.verify(Domain::NotifyLink, msg.as_bytes(), &sig).map_err(|_| LinkError::Forged)?;
    if now_ms > exp {
        return Err(LinkError::Expired);
    }
    Ok(delivery.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_verifies_until_it_expires_and_not_when_changed() {
        let key = KeyPair::from_seed([3; 32]);
        let t = sign(&key, "d-abc123", 1_000);
        assert_eq!(verify(&key.public(), &t, 999), Ok("d-abc123".into()));
        assert_eq!(verify(&key.public(), &t, 1_001), Err(LinkError::Expired));
        let stretched = t.replacen(".1000.", ".9999.", 1);
        assert_eq!(verify(&key.public(), &stretched, 0), Err(LinkError::Forged));
        let other = sign(&KeyPair::from_seed([4; 32]), "d-abc123", 1_000);
        assert_eq!(verify(&key.public(), &other, 0), Err(LinkError::Forged));
        assert_eq!(verify(&key.public(), "nonsense", 0), Err(LinkError::Malformed));
    }
}
