//! SMS replies from the gateway (`POST /v1/sms/inbound`), authenticated: the
//! gateway signs each request with a secret it shares with the notifier,
//!
//! ```text
//! X-GlucoChain-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." || body)>
//! ```
//!
//! and a request signed more than [`MAX_SKEW_SECS`] from now is refused, so
//! a recorded request cannot be replayed later. Without a configured secret
//! the notifier takes no SMS replies at all.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "x-glucochain-signature";
/// How far a signature's time may be from the notifier's clock.
pub const MAX_SKEW_SECS: i64 = 300;
/// How long after a delivery was sent its reply code still acknowledges.
pub const REPLY_WINDOW_MS: i64 = 24 * 3_600_000;

/// Why an inbound request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyRefused {
    /// No or malformed signature header.
    #[error("missing or malformed {SIGNATURE_HEADER} header")]
    Malformed,
    /// Signed too long ago (or in the future).
    #[error("the signature's time is more than {MAX_SKEW_SECS} s from now")]
    Stale,
    /// The signature does not verify with the shared secret.
    #[error("the signature does not verify")]
    Forged,
}

/// The header value for `body` signed at `t` (what a gateway sends; the tests' gateway too).
pub fn sign(secret: &[u8], t: i64, body: &[u8]) -> String {
    format!("t={t},v1={}", hex::encode(mac(secret, t, body).finalize().into_bytes()))
}

fn mac(secret: &[u8], t: i64, body: &[u8]) -> Hmac<Sha256> {
    let mut m = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    m.update(t.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m
}

/// Checks the header against `body`, the secret and the clock (`now` Unix seconds).
pub fn verify(secret: &[u8], header: Option<&str>, body: &[u8], now: i64) -> Result<(), ReplyRefused> {
    let header = header.ok_or(ReplyRefused::Malformed)?;
    let mut t = None;
    let mut sig = None;
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => sig = hex::decode(v).ok(),
            _ => {}
        }
    }
    let (t, sig) = (t.ok_or(ReplyRefused::Malformed)?, sig.ok_or(ReplyRefused::Malformed)?);
    if (now - t).abs() > MAX_SKEW_SECS {
        return Err(ReplyRefused::Stale);
    }
    // Constant-time comparison.
    mac(secret, t, body).verify_slice(&sig).map_err(|_| ReplyRefused::Forged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn m5_only_a_fresh_request_signed_with_the_shared_secret_is_taken() {
        let (secret, body, now) =
            (b"gateway-secret".as_slice(), b"From=%2B441234&Body=ABCD2345".as_slice(), 1_790_000_000);
        let good = sign(secret, now - 10, body);
        assert_eq!(verify(secret, Some(&good), body, now), Ok(()));
        assert_eq!(verify(secret, None, body, now), Err(ReplyRefused::Malformed), "unsigned");
        assert_eq!(verify(secret, Some("t=1,v1=zz"), body, now), Err(ReplyRefused::Malformed));
        assert_eq!(verify(b"other", Some(&good), body, now), Err(ReplyRefused::Forged), "another secret");
        assert_eq!(verify(secret, Some(&good), b"From=%2B441234&Body=OTHER", now), Err(ReplyRefused::Forged));
        let old = sign(secret, now - MAX_SKEW_SECS - 1, body);
        assert_eq!(verify(secret, Some(&old), body, now), Err(ReplyRefused::Stale), "a replay later");
        // The time is signed too: moving it forward breaks the signature.
        let moved = good.replacen(&format!("t={}", now - 10), &format!("t={now}"), 1);
        assert_eq!(verify(secret, Some(&moved), body, now), Err(ReplyRefused::Forged));
    }
}
