//! Web sessions: after a participant signs in with a read token signed by
//! their own key, the service sets a cookie `<participant>.<expiry ms>.<sig>`
//! signed with the service's key in its own signature domain. Stateless, so
//! any replica holding the key accepts it; the participant's registration is
//! checked again on every request (a revoked participant's session ends).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use glucochain_crypto::{Domain, KeyPair, PublicKey};
use glucochain_types::ParticipantId;

/// The cookie's name.
pub const COOKIE: &str = "glucochain_session";

/// Why a session cookie is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// Not a session cookie.
    #[error("malformed session")]
    Malformed,
    /// Signed by another key, or altered.
    #[error("the session's signature does not verify")]
    Forged,
    /// Past its expiry.
    #[error("the session has expired; sign in again")]
    Expired,
}

/// A session's cookie value for `participant` until `expires_ms`.
pub fn issue(key: &KeyPair, participant: &ParticipantId, expires_ms: i64) -> String {
    let msg = format!("{participant}.{expires_ms}");
    let sig = key.sign(Domain::WebSession, msg.as_bytes());
    format!("{msg}.{}", URL_SAFE_NO_PAD.encode(sig))
}

/// The participant a valid cookie names.
pub fn verify(public: &PublicKey, cookie: &str, now_ms: i64) -> Result<ParticipantId, SessionError> {
    let (msg, sig) = cookie.rsplit_once('.').ok_or(SessionError::Malformed)?;
    let (who, exp) = msg.split_once('.').ok_or(SessionError::Malformed)?;
    let who = ParticipantId::parse(who).map_err(|_| SessionError::Malformed)?;
    let exp: i64 = exp.parse().map_err(|_| SessionError::Malformed)?;
    let sig = URL_SAFE_NO_PAD.decode(sig).map_err(|_| SessionError::Malformed)?;
    public.verify(Domain::WebSession, msg.as_bytes(), &sig).map_err(|_| SessionError::Forged)?;
    if now_ms >= exp {
        return Err(SessionError::Expired);
    }
    Ok(who)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_holds_until_it_expires_and_cannot_be_altered() {
        let key = KeyPair::from_seed([7; 32]);
        let who = ParticipantId::from_public_key(&KeyPair::from_seed([8; 32]).public());
        let c = issue(&key, &who, 1_000);
        assert_eq!(verify(&key.public(), &c, 999), Ok(who.clone()));
        assert_eq!(verify(&key.public(), &c, 1_000), Err(SessionError::Expired));
        let other = ParticipantId::from_public_key(&KeyPair::from_seed([9; 32]).public());
        let swapped = c.replacen(who.as_str(), other.as_str(), 1);
        assert_eq!(verify(&key.public(), &swapped, 0), Err(SessionError::Forged));
        let stretched = c.replacen(".1000.", ".9000.", 1);
        assert_eq!(verify(&key.public(), &stretched, 0), Err(SessionError::Forged));
        assert_eq!(verify(&KeyPair::from_seed([1; 32]).public(), &c, 0), Err(SessionError::Forged));
        assert_eq!(verify(&key.public(), "x", 0), Err(SessionError::Malformed));
    }
}
