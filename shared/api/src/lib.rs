//! Pieces both HTTPS APIs share: errors as RFC 9457 problem details with a
//! stable type per error, and authentication of reads by a short-lived
//! EdDSA JWT from a key registered on the chain.

pub mod rate;
pub mod service;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use glucochain_crypto::jose::{TokenPolicy, parse_compact, verify_token};
use glucochain_state::{LedgerState, Participant};
use glucochain_types::ParticipantId;
use serde::Serialize;
use std::fmt;

/// The media type of problem responses.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An RFC 9457 problem: `type` is `urn:glucochain:problem:<code>`, stable per error.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// `urn:glucochain:problem:<code>`.
    #[serde(rename = "type", serialize_with = "problem_type")]
    #[schema(value_type = String, example = "urn:glucochain:problem:bad-signature")]
    code: &'static str,
    /// Short summary of the problem type.
    pub title: &'static str,
    /// HTTP status.
    pub status: u16,
    /// What went wrong in this occurrence.
    pub detail: String,
    /// Extra members (e.g. the tx hash, retry hints).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    pub extra: Option<Box<serde_json::Map<String, serde_json::Value>>>,
    #[serde(skip)]
    retry_after: Option<u32>,
}

fn problem_type<S: serde::Serializer>(code: &&'static str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("urn:glucochain:problem:{code}"))
}

impl Problem {
    /// A problem with `status`, stable `code`, a title and the detail.
    pub fn new(status: StatusCode, code: &'static str, title: &'static str, detail: impl Into<String>) -> Self {
        Problem { code, title, status: status.as_u16(), detail: detail.into(), extra: None, retry_after: None }
    }

    /// Adds a member.
    pub fn with(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.extra.get_or_insert_with(Default::default).insert(key.into(), value.into());
        self
    }

    /// Sets `Retry-After` (seconds).
    pub fn retry_after(mut self, secs: u32) -> Self {
        self.retry_after = Some(secs);
        self
    }

    /// The stable code (the last part of `type`).
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// 429 `rate-limited`, with `Retry-After` rounded up to whole seconds.
    pub fn rate_limited(title: &'static str, detail: impl Into<String>, wait: std::time::Duration) -> Self {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        Self::new(StatusCode::TOO_MANY_REQUESTS, "rate-limited", title, detail).retry_after(secs.max(1) as u32)
    }

    /// 400 `bad-request`.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad-request", "Bad request", detail)
    }

    /// 404 `not-found`.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "Not found", detail)
    }

    /// 503 `unavailable` with a retry hint.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "Service unavailable", detail).retry_after(2)
    }

    /// 500 `internal` (details go to the log, not the client).
    pub fn internal() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "Internal error", "see the service log")
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.title, self.status, self.detail)
    }
}

impl ResponseError for Problem {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        let mut r = HttpResponse::build(self.status_code());
        r.content_type(PROBLEM_JSON);
        if let Some(s) = self.retry_after {
            r.insert_header(("Retry-After", s.to_string()));
        }
        r.json(self)
    }
}

/// The integer query parameter `name` of `query` (`default` when absent),
/// refused with `400 bad-request` when it does not parse or lies outside
/// `range` — a request asking for something else is not quietly answered
/// with what the server chose instead.
pub fn query_u32(query: &str, name: &str, default: u32, range: std::ops::RangeInclusive<u32>) -> Result<u32, Problem> {
    let pairs = actix_web::web::Query::<Vec<(String, String)>>::from_query(query)
        .map_err(|e| Problem::bad_request(format!("query: {e}")))?;
    let mut values = pairs.iter().filter(|(k, _)| k == name).map(|(_, v)| v);
    let value = match (values.next(), values.next()) {
        (None, _) => return Ok(default),
        (Some(_), Some(_)) => return Err(Problem::bad_request(format!("{name} is given more than once"))),
        (Some(v), None) => v,
    };
    match value.parse::<u32>() {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => Err(Problem::bad_request(format!(
            "{name}={value:?}: an integer from {} to {} is expected",
            range.start(),
            range.end()
        ))),
    }
}

/// Problems for the JSON body and path extractors of actix-web, so even
/// malformed requests get a problem document.
pub fn json_config() -> actix_web::web::JsonConfig {
    actix_web::web::JsonConfig::default()
        .limit(512 * 1024)
        .error_handler(|e, _| Problem::bad_request(format!("request body: {e}")).into())
}

/// Path parameter errors as problems.
pub fn path_config() -> actix_web::web::PathConfig {
    actix_web::web::PathConfig::default().error_handler(|e, _| Problem::bad_request(format!("path: {e}")).into())
}

/// Query string errors as problems.
pub fn query_config() -> actix_web::web::QueryConfig {
    actix_web::web::QueryConfig::default().error_handler(|e, _| Problem::bad_request(format!("query: {e}")).into())
}

/// Authenticates a read: `Authorization: Bearer <JWT>` signed by a key
/// registered (and not revoked) in `state`, `typ: emr-auth+jwt`, audience,
/// chain and lifetime per `policy`. Returns the reader.
pub fn authenticate<'s>(
    authorization: Option<&str>,
    state: &'s LedgerState,
    policy: &TokenPolicy,
    now_secs: i64,
) -> Result<&'s Participant, Problem> {
    authenticate_claims(authorization, state, policy, now_secs).map(|(p, _)| p)
}

/// [`authenticate`], with the token's claims (for a sign-in, which spends the `jti`).
pub fn authenticate_claims<'s>(
    authorization: Option<&str>,
    state: &'s LedgerState,
    policy: &TokenPolicy,
    now_secs: i64,
) -> Result<(&'s Participant, glucochain_crypto::jose::AuthClaims), Problem> {
    let unauthorized =
        |code: &'static str, detail: String| Problem::new(StatusCode::UNAUTHORIZED, code, "Not authenticated", detail);
    let token = authorization
        .and_then(|h| h.strip_prefix("Bearer "))
        .ok_or_else(|| unauthorized("missing-token", "send Authorization: Bearer <read token>".into()))?;
    let parsed = parse_compact(token.trim(), 8 * 1024).map_err(|e| unauthorized("invalid-token", e.to_string()))?;
    let kid = ParticipantId::parse(parsed.kid()).map_err(|e| unauthorized("invalid-token", format!("kid: {e}")))?;
    let reader = state
        .participant(&kid)
        .filter(|p| p.is_active())
        .ok_or_else(|| unauthorized("unknown-reader", format!("{kid} is not an active participant")))?;
    let claims = verify_token(&parsed, &reader.public_key, policy, now_secs).map_err(|e| {
        let code = match e {
            glucochain_crypto::jose::JoseError::Expired { .. } => "expired-token",
            _ => "invalid-token",
        };
        unauthorized(code, e.to_string())
    })?;
    Ok((reader, claims))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_integer_query_parameter_outside_its_range_or_not_a_number_is_refused() {
        assert_eq!(query_u32("", "hours", 24, 1..=720).unwrap(), 24);
        assert_eq!(query_u32("a=1&hours=720", "hours", 24, 1..=720).unwrap(), 720);
        for q in ["hours=0", "hours=721", "hours=null", "hours=", "hours=-1", "hours=2&hours=3"] {
            let e = query_u32(q, "hours", 24, 1..=720).unwrap_err();
            assert_eq!(e.status, 400, "{q}");
        }
    }

    #[test]
    fn rate_limited_rounds_the_wait_up_to_whole_seconds() {
        let retry = |ms| {
            let r = Problem::rate_limited("Too many", "x", std::time::Duration::from_millis(ms)).error_response();
            assert_eq!(r.status(), 429);
            r.headers().get("Retry-After").unwrap().to_str().unwrap().to_string()
        };
        assert_eq!(retry(0), "1");
        assert_eq!(retry(400), "1");
        assert_eq!(retry(1000), "1");
        assert_eq!(retry(1001), "2");
        assert_eq!(retry(19_999), "20");
    }

    #[test]
    fn problem_document_shape() {
        let p = Problem::new(StatusCode::CONFLICT, "replay", "Replayed nonce", "nonce used").with("tx_hash", "ab");
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["type"], "urn:glucochain:problem:replay");
        assert_eq!(v["status"], 409);
        assert_eq!(v["tx_hash"], "ab");
        assert_eq!(p.code(), "replay");
        let r = Problem::unavailable("nats down").error_response();
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers().get("Retry-After").unwrap(), "2");
        assert_eq!(r.headers().get("content-type").unwrap(), PROBLEM_JSON);
    }
}

/// TLS for an HTTPS API (rustls with the ring provider). Both files or neither.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TlsArgs {
    /// Certificate chain (PEM) to serve HTTPS. Without it the service
    /// serves plain HTTP only on a loopback address, or with `--insecure-http`.
    #[arg(long, env = "GLUCOCHAIN_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// Private key (PEM, PKCS#8 or SEC1/PKCS#1) of the certificate.
    #[arg(long, env = "GLUCOCHAIN_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
    /// Serve plain HTTP on a non-loopback address: only where a proxy in
    /// front (an ingress, a service mesh) terminates TLS.
    #[arg(long, env = "GLUCOCHAIN_INSECURE_HTTP")]
    pub insecure_http: bool,
}

/// A TLS file that cannot be used.
#[derive(Debug)]
pub struct TlsError(pub String);

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TLS: {}", self.0)
    }
}

impl std::error::Error for TlsError {}

impl TlsArgs {
    /// Whether serving on `addr` is allowed as configured: HTTPS always;
    /// plain HTTP on a loopback address, or when `--insecure-http` says a
    /// proxy in front terminates TLS. Records and tokens never cross a
    /// network in clear by default.
    pub fn check_plain(&self, addr: std::net::SocketAddr) -> Result<(), TlsError> {
        if self.tls_cert.is_some() || self.insecure_http || addr.ip().is_loopback() {
            return Ok(());
        }
        Err(TlsError(format!(
            "refusing plain HTTP on {addr}: give --tls-cert and --tls-key, or --insecure-http \
             (GLUCOCHAIN_INSECURE_HTTP=true) where a proxy in front terminates TLS"
        )))
    }

    /// The server configuration, if TLS is configured.
    pub fn server_config(&self) -> Result<Option<rustls::ServerConfig>, TlsError> {
        use rustls_pki_types::pem::PemObject as _;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) else { return Ok(None) };
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
            .map_err(|e| TlsError(format!("{}: {e}", cert.display())))?
            .collect::<Result<_, _>>()
            .map_err(|e| TlsError(format!("{}: {e}", cert.display())))?;
        if certs.is_empty() {
            return Err(TlsError(format!("{}: no certificate in the file", cert.display())));
        }
        let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError(format!("{}: {e}", key.display())))?;
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| TlsError(format!("certificate and key do not fit together: {e}")))?;
        Ok(Some(config))
    }
}

#[cfg(test)]
mod tls_tests {
    use super::*;

    #[test]
    fn loads_a_certificate_and_refuses_mismatched_or_missing_files() {
        let dir = tempfile::tempdir().unwrap();
        let a = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let b = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        std::fs::write(dir.path().join("a.crt"), a.cert.pem()).unwrap();
        std::fs::write(dir.path().join("a.key"), a.signing_key.serialize_pem()).unwrap();
        std::fs::write(dir.path().join("b.key"), b.signing_key.serialize_pem()).unwrap();
        let args = |c: &str, k: &str| TlsArgs {
            tls_cert: Some(dir.path().join(c)),
            tls_key: Some(dir.path().join(k)),
            insecure_http: false,
        };
        assert!(args("a.crt", "a.key").server_config().unwrap().is_some());
        assert!(TlsArgs::default().server_config().unwrap().is_none(), "no TLS configured");
        let e = args("a.crt", "b.key").server_config().unwrap_err();
        assert!(e.to_string().contains("do not fit"), "{e}");
        assert!(args("missing.crt", "a.key").server_config().is_err());
    }

    #[test]
    fn plain_http_only_on_loopback_unless_a_proxy_is_declared_to_terminate_tls() {
        let plain = TlsArgs::default();
        assert!(plain.check_plain("127.0.0.1:8080".parse().unwrap()).is_ok());
        assert!(plain.check_plain("[::1]:8080".parse().unwrap()).is_ok());
        let e = plain.check_plain("0.0.0.0:8080".parse().unwrap()).unwrap_err();
        assert!(e.to_string().contains("--insecure-http"), "{e}");
        assert!(plain.check_plain("10.0.0.7:8080".parse().unwrap()).is_err());
        let behind_proxy = TlsArgs { insecure_http: true, ..TlsArgs::default() };
        assert!(behind_proxy.check_plain("0.0.0.0:8080".parse().unwrap()).is_ok());
        let https = TlsArgs { tls_cert: Some("c".into()), tls_key: Some("k".into()), insecure_http: false };
        assert!(https.check_plain("0.0.0.0:8443".parse().unwrap()).is_ok());
    }
}
