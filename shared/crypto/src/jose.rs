//! JWS compact serialization with Ed25519 (RFC 7515, RFC 8037, RFC 9864) and
//! short-lived JWTs (RFC 7519) for authenticating reads.
//!
//! Parsing is strict: exactly three unpadded base64url parts, a protected
//! header with only `alg`, `typ`, `kid` and `cty`, `alg` either `Ed25519`
//! (RFC 9864) or the older `EdDSA` (RFC 8037, accepted for older clients), and
//! a `typ` that must equal the expected kind exactly. `typ` is what separates
//! a transaction from a read token (see [`Domain::jose_typ`]), so a token can
//! never be replayed as a transaction or the other way round. Keys are never
//! taken from the header (`jwk`, `jku`, `x5u` are refused): `kid` names the
//! signer, and the caller looks its registered key up.

use crate::domain::{Domain, SignatureError};
use crate::keys::{KeyPair, PublicKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

/// Unpadded base64url encoding (RFC 7515 §2).
pub fn b64url_encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Unpadded base64url decoding; padding and non-canonical trailing bits are refused.
pub fn b64url_decode(s: &str) -> Result<Vec<u8>, base64::DecodeError> {
    URL_SAFE_NO_PAD.decode(s)
}

/// The `alg` we write: RFC 9864's fully specified name for Ed25519.
pub const ALG_ED25519: &str = "Ed25519";
/// The polymorphic `alg` of RFC 8037, accepted with an Ed25519 key.
pub const ALG_EDDSA: &str = "EdDSA";

/// Why a JWS or JWT was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JoseError {
    /// Input longer than allowed.
    #[error("JWS is {len} bytes; at most {max} are accepted")]
    TooLarge {
        /// Actual length.
        len: usize,
        /// Limit.
        max: usize,
    },
    /// Not three base64url parts.
    #[error("malformed JWS compact serialization: {0}")]
    Malformed(&'static str),
    /// A part is not unpadded base64url.
    #[error("JWS {0} is not unpadded base64url")]
    Base64(&'static str),
    /// The protected header is not the JSON we accept.
    #[error("JWS header: {0}")]
    Header(String),
    /// `alg` is not Ed25519/EdDSA.
    #[error("JWS alg {0:?} is not supported; use \"Ed25519\" (or \"EdDSA\" with an Ed25519 key)")]
    UnsupportedAlg(String),
    /// `typ` differs from the kind expected here.
    #[error("JWS typ is {found:?}, expected {expected:?}")]
    WrongType {
        /// Expected typ.
        expected: &'static str,
        /// Found typ (None when missing).
        found: Option<String>,
    },
    /// `kid` missing or empty.
    #[error("JWS header has no kid (the signer's participant id)")]
    MissingKid,
    /// The signature did not verify.
    #[error("JWS signature: {0}")]
    Signature(#[from] SignatureError),
    /// The JWT claims are not valid JSON of the expected shape.
    #[error("JWT claims: {0}")]
    Claims(String),
    /// The token expired.
    #[error("token expired at {exp} (now {now})")]
    Expired {
        /// exp claim.
        exp: i64,
        /// Current time.
        now: i64,
    },
    /// The token is not valid yet (iat/nbf in the future).
    #[error("token not valid before {nbf} (now {now})")]
    NotYetValid {
        /// nbf or iat.
        nbf: i64,
        /// Current time.
        now: i64,
    },
    /// The token lives longer than policy allows.
    #[error("token lifetime {lifetime}s exceeds the maximum of {max}s")]
    LifetimeTooLong {
        /// exp - iat.
        lifetime: i64,
        /// Maximum.
        max: i64,
    },
    /// Audience does not match.
    #[error("token audience does not include {0:?}")]
    Audience(String),
    /// iss differs from kid.
    #[error("token iss must equal the header kid")]
    IssuerMismatch,
    /// The token is for another chain.
    #[error("token is for chain {found:?}, this service serves {expected:?}")]
    WrongChain {
        /// This service's chain.
        expected: String,
        /// The token's `chain_id`.
        found: String,
    },
}

/// The audience a read token names for the ledger (records, proofs, access log, web pages).
pub const LEDGER_AUDIENCE: &str = "glucochain-ledger";
/// The audience a read token names for the contracts engine.
pub const CONTRACTS_AUDIENCE: &str = "glucochain-contracts";
/// The audience a read token names for the notifier.
pub const NOTIFIER_AUDIENCE: &str = "glucochain-notifier";

/// The protected header we accept and write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwsHeader {
    /// `Ed25519` or `EdDSA`.
    pub alg: String,
    /// Explicit type (RFC 8725 §3.11): `emr-tx+jws` or `emr-auth+jwt`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub typ: Option<String>,
    /// The signer's participant id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// Content type of the payload, if given (ignored).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cty: Option<String>,
}

/// Signs `payload` as a JWS compact serialization for `domain` (which must be
/// a JOSE domain: [`Domain::Tx`] or [`Domain::Token`]) with `kid` as signer id.
pub fn sign_compact(key: &KeyPair, domain: Domain, kid: &str, payload: &[u8]) -> String {
    let typ = domain.jose_typ().expect("sign_compact needs a JOSE domain (Tx or Token)");
    let header = JwsHeader { alg: ALG_ED25519.into(), typ: Some(typ.into()), kid: Some(kid.into()), cty: None };
    let header_json = serde_json::to_vec(&header).expect("header serializes");
    let mut out = URL_SAFE_NO_PAD.encode(header_json);
    out.push('.');
    URL_SAFE_NO_PAD.encode_string(payload, &mut out);
    let sig = key.sign_raw(out.as_bytes());
    out.push('.');
    URL_SAFE_NO_PAD.encode_string(sig, &mut out);
    out
}

/// A syntactically valid JWS, not yet verified.
#[derive(Debug, Clone)]
pub struct ParsedJws<'a> {
    /// The decoded protected header.
    pub header: JwsHeader,
    /// The decoded payload.
    pub payload: Vec<u8>,
    signing_input: &'a str,
    signature: Vec<u8>,
}

/// Parses a JWS compact serialization of at most `max_len` bytes.
pub fn parse_compact(jws: &str, max_len: usize) -> Result<ParsedJws<'_>, JoseError> {
    if jws.len() > max_len {
        return Err(JoseError::TooLarge { len: jws.len(), max: max_len });
    }
    let mut parts = jws.split('.');
    let (h, p, s) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(h), Some(p), Some(s), None) => (h, p, s),
        _ => return Err(JoseError::Malformed("expected three parts separated by '.'")),
    };
    if h.is_empty() || s.is_empty() {
        return Err(JoseError::Malformed("empty header or signature"));
    }
    let header_bytes = URL_SAFE_NO_PAD.decode(h).map_err(|_| JoseError::Base64("header"))?;
    let payload = URL_SAFE_NO_PAD.decode(p).map_err(|_| JoseError::Base64("payload"))?;
    let signature = URL_SAFE_NO_PAD.decode(s).map_err(|_| JoseError::Base64("signature"))?;
    let header: JwsHeader = serde_json::from_slice(&header_bytes).map_err(|e| JoseError::Header(e.to_string()))?;
    if header.alg != ALG_ED25519 && header.alg != ALG_EDDSA {
        return Err(JoseError::UnsupportedAlg(header.alg));
    }
    if header.kid.as_deref().unwrap_or("").is_empty() {
        return Err(JoseError::MissingKid);
    }
    let signing_input = &jws[..h.len() + 1 + p.len()];
    Ok(ParsedJws { header, payload, signing_input, signature })
}

impl ParsedJws<'_> {
    /// The signer's participant id (`kid`); present after parsing.
    pub fn kid(&self) -> &str {
        self.header.kid.as_deref().unwrap_or("")
    }

    /// Checks that `typ` is `domain`'s and the signature verifies with `key`.
    pub fn verify(&self, key: &PublicKey, domain: Domain) -> Result<(), JoseError> {
        let expected = domain.jose_typ().expect("verify needs a JOSE domain (Tx or Token)");
        if self.header.typ.as_deref() != Some(expected) {
            return Err(JoseError::WrongType { expected, found: self.header.typ.clone() });
        }
        key.verify_raw(self.signing_input.as_bytes(), &self.signature)?;
        Ok(())
    }
}

/// Claims of a read token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthClaims {
    /// Issuer: the reader's participant id (must equal `kid`).
    pub iss: String,
    /// Audience: the service(s) the token is for.
    pub aud: Audience,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Expires at, Unix seconds.
    pub exp: i64,
    /// Not before, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// Unique token id (for audit correlation; a web sign-in uses each once).
    pub jti: String,
    /// The chain the token is for (its genesis file's `chain_id`), so a
    /// token made for one chain's services is refused by another's.
    pub chain_id: String,
}

/// `aud` may be one string or an array of strings (RFC 7519 §4.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    /// One audience.
    One(String),
    /// Several audiences.
    Many(Vec<String>),
}

impl Audience {
    fn contains(&self, a: &str) -> bool {
        match self {
            Audience::One(s) => s == a,
            Audience::Many(v) => v.iter().any(|s| s == a),
        }
    }
}

/// What a service accepts in a read token.
#[derive(Debug, Clone)]
pub struct TokenPolicy {
    /// Required audience: this service's (e.g. [`LEDGER_AUDIENCE`]), so a
    /// token given to one service is refused by the others.
    pub audience: String,
    /// Required `chain_id`.
    pub chain_id: String,
    /// Longest allowed `exp - iat`, seconds.
    pub max_lifetime_secs: i64,
    /// Tolerated clock skew, seconds.
    pub leeway_secs: i64,
}

impl TokenPolicy {
    /// The policy of a service with `audience` on chain `chain_id`: at most
    /// 300 s of lifetime, 30 s of clock skew.
    pub fn new(audience: impl Into<String>, chain_id: impl Into<String>) -> Self {
        TokenPolicy { audience: audience.into(), chain_id: chain_id.into(), max_lifetime_secs: 300, leeway_secs: 30 }
    }
}

/// Issues a read token for `kid` to present to the service `audience` of
/// chain `chain_id`, valid `lifetime_secs` from `now` (Unix s).
pub fn issue_token(
    key: &KeyPair,
    kid: &str,
    audience: &str,
    chain_id: &str,
    now: i64,
    lifetime_secs: i64,
    jti: &str,
) -> String {
    let claims = AuthClaims {
        iss: kid.into(),
        aud: Audience::One(audience.into()),
        iat: now,
        exp: now + lifetime_secs,
        nbf: None,
        jti: jti.into(),
        chain_id: chain_id.into(),
    };
    sign_compact(key, Domain::Token, kid, &serde_json::to_vec(&claims).expect("claims serialize"))
}

/// Verifies a parsed read token against the signer's registered `key`, the
/// policy and the current time `now` (Unix seconds).
pub fn verify_token(
    jws: &ParsedJws<'_>,
    key: &PublicKey,
    policy: &TokenPolicy,
    now: i64,
) -> Result<AuthClaims, JoseError> {
    jws.verify(key, Domain::Token)?;
    let claims: AuthClaims = serde_json::from_slice(&jws.payload).map_err(|e| JoseError::Claims(e.to_string()))?;
    if claims.iss != jws.kid() {
        return Err(JoseError::IssuerMismatch);
    }
    if !claims.aud.contains(&policy.audience) {
        return Err(JoseError::Audience(policy.audience.clone()));
    }
    if claims.chain_id != policy.chain_id {
        return Err(JoseError::WrongChain { expected: policy.chain_id.clone(), found: claims.chain_id });
    }
    if claims.jti.is_empty() || claims.jti.len() > 128 {
        return Err(JoseError::Claims("jti must be 1..=128 characters".into()));
    }
    if claims.exp <= claims.iat {
        return Err(JoseError::Claims("exp must be after iat".into()));
    }
    if claims.exp - claims.iat > policy.max_lifetime_secs {
        return Err(JoseError::LifetimeTooLong { lifetime: claims.exp - claims.iat, max: policy.max_lifetime_secs });
    }
    if now >= claims.exp + policy.leeway_secs {
        return Err(JoseError::Expired { exp: claims.exp, now });
    }
    let not_before = claims.nbf.unwrap_or(claims.iat).max(claims.iat);
    if now + policy.leeway_secs < not_before {
        return Err(JoseError::NotYetValid { nbf: not_before, now });
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tx_round_trip_and_typ_separation() {
        let kp = KeyPair::generate();
        let jws = sign_compact(&kp, Domain::Tx, "p-1", br#"{"a":1}"#);
        let parsed = parse_compact(&jws, 4096).unwrap();
        assert_eq!(parsed.kid(), "p-1");
        assert_eq!(parsed.payload, br#"{"a":1}"#);
        parsed.verify(&kp.public(), Domain::Tx).unwrap();
        // The same JWS is not a token.
        assert!(matches!(parsed.verify(&kp.public(), Domain::Token), Err(JoseError::WrongType { .. })));
        // Another key fails.
        assert!(matches!(
            parsed.verify(&KeyPair::generate().public(), Domain::Tx),
            Err(JoseError::Signature(SignatureError::Invalid))
        ));
    }

    #[test]
    fn strict_parsing() {
        let kp = KeyPair::generate();
        let jws = sign_compact(&kp, Domain::Tx, "p-1", b"{}");
        assert!(matches!(parse_compact(&jws, 10), Err(JoseError::TooLarge { .. })));
        assert!(matches!(parse_compact("a.b", 100), Err(JoseError::Malformed(_))));
        assert!(matches!(parse_compact(&format!("{jws}.x"), 1000), Err(JoseError::Malformed(_))));
        assert!(matches!(parse_compact(&format!("{jws}="), 1000), Err(JoseError::Base64(_))));
        let enc = |v: &str| URL_SAFE_NO_PAD.encode(v);
        let rest = jws.split_once('.').unwrap().1;
        for (hdr, want) in [
            (r#"{"alg":"none","kid":"p"}"#, "alg"),
            (r#"{"alg":"HS256","kid":"p"}"#, "alg"),
            (r#"{"alg":"Ed25519"}"#, "kid"),
            (r#"{"alg":"Ed25519","kid":"p","jwk":{}}"#, "header"),
            (r#"{"alg":"Ed25519","kid":"p","crit":["b64"]}"#, "header"),
            ("not json", "header"),
        ] {
            let forged = format!("{}.{rest}", enc(hdr));
            let err = parse_compact(&forged, 1000).unwrap_err();
            let ok = match want {
                "alg" => matches!(err, JoseError::UnsupportedAlg(_)),
                "kid" => matches!(err, JoseError::MissingKid),
                _ => matches!(err, JoseError::Header(_)),
            };
            assert!(ok, "{hdr}: {err}");
        }
    }

    #[test]
    fn legacy_eddsa_alg_is_accepted() {
        let kp = KeyPair::generate();
        let h = URL_SAFE_NO_PAD.encode(r#"{"alg":"EdDSA","typ":"emr-tx+jws","kid":"p"}"#);
        let p = URL_SAFE_NO_PAD.encode("{}");
        let input = format!("{h}.{p}");
        let sig = URL_SAFE_NO_PAD.encode(kp.sign_raw(input.as_bytes()));
        let jws = format!("{input}.{sig}");
        parse_compact(&jws, 1000).unwrap().verify(&kp.public(), Domain::Tx).unwrap();
    }

    #[test]
    fn token_lifetime_rules() {
        let kp = KeyPair::generate();
        let policy = TokenPolicy::new(LEDGER_AUDIENCE, "glucochain-test");
        let now = 1_800_000_000;
        let tok = issue_token(&kp, "p-9", LEDGER_AUDIENCE, "glucochain-test", now, 120, "j1");
        let parsed = parse_compact(&tok, 4096).unwrap();
        let claims = verify_token(&parsed, &kp.public(), &policy, now + 10).unwrap();
        assert_eq!(claims.iss, "p-9");
        // Expired (beyond leeway), not yet valid, too long, wrong audience.
        assert!(matches!(verify_token(&parsed, &kp.public(), &policy, now + 120 + 30), Err(JoseError::Expired { .. })));
        assert!(matches!(verify_token(&parsed, &kp.public(), &policy, now - 31), Err(JoseError::NotYetValid { .. })));
        let long = issue_token(&kp, "p-9", LEDGER_AUDIENCE, "glucochain-test", now, 3600, "j2");
        assert!(matches!(
            verify_token(&parse_compact(&long, 4096).unwrap(), &kp.public(), &policy, now),
            Err(JoseError::LifetimeTooLong { .. })
        ));
        let other = issue_token(&kp, "p-9", "elsewhere", "glucochain-test", now, 60, "j3");
        assert!(matches!(
            verify_token(&parse_compact(&other, 4096).unwrap(), &kp.public(), &policy, now),
            Err(JoseError::Audience(_))
        ));
        // Issue 19, M2: a token for another service of the same chain, or for another chain, is refused.
        let contracts = issue_token(&kp, "p-9", CONTRACTS_AUDIENCE, "glucochain-test", now, 60, "j4");
        assert!(matches!(
            verify_token(&parse_compact(&contracts, 4096).unwrap(), &kp.public(), &policy, now),
            Err(JoseError::Audience(_))
        ));
        let chain = issue_token(&kp, "p-9", LEDGER_AUDIENCE, "another-chain", now, 60, "j5");
        assert!(matches!(
            verify_token(&parse_compact(&chain, 4096).unwrap(), &kp.public(), &policy, now),
            Err(JoseError::WrongChain { .. })
        ));
        let no_jti = issue_token(&kp, "p-9", LEDGER_AUDIENCE, "glucochain-test", now, 60, "");
        assert!(matches!(
            verify_token(&parse_compact(&no_jti, 4096).unwrap(), &kp.public(), &policy, now),
            Err(JoseError::Claims(_))
        ));
        // A transaction is never a token.
        let tx = sign_compact(&kp, Domain::Tx, "p-9", &serde_json::to_vec(&claims).unwrap());
        assert!(matches!(
            verify_token(&parse_compact(&tx, 4096).unwrap(), &kp.public(), &policy, now),
            Err(JoseError::WrongType { .. })
        ));
    }
}
