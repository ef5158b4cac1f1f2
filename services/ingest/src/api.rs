//! The write API: `POST /v1/transactions` and `GET /v1/transactions/{hash}`.

use crate::ingest::{Ingest, Submitted};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use futures::StreamExt as _;
use glucochain_api::Problem;
use glucochain_crypto::Hash32;
use glucochain_store::TxState;
use glucochain_types::sealed::Submission;
use serde_json::json;
use std::sync::Arc;

type Data = web::Data<Arc<Ingest>>;

/// Reads the body, refusing more than `limit` bytes with a 413 problem.
async fn read_body(mut payload: web::Payload, limit: usize) -> Result<Vec<u8>, Problem> {
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| Problem::bad_request(format!("request body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-large",
                "Transaction too large",
                format!("at most {limit} bytes are accepted"),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A transaction wrapped in JSON (`application/json`), with the sealed body
/// of a record (ADR 0016; `glucochain_types::sealed::Submission`).
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct Wrapped {
    /// The compact JWS.
    pub jws: String,
    /// For a type whose record travels off the chain (`observation.record`):
    /// `{"salt": <32 bytes base64url>, "body": <the record>}`.
    pub sealed: Option<serde_json::Value>,
}

/// The submission from an `application/jose` body (a transaction without a
/// sealed body) or a JSON `{"jws": "...", "sealed": {...}}` body.
fn submission_from(req: &HttpRequest, body: &[u8]) -> Result<Submission, Problem> {
    let ct = req.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    let media = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match media.as_str() {
        "application/jose" => std::str::from_utf8(body)
            .map(|s| Submission::bare(s.trim().to_string()))
            .map_err(|_| Problem::new(StatusCode::BAD_REQUEST, "malformed-jws", "Malformed transaction", "not UTF-8")),
        "application/json" => serde_json::from_slice::<Submission>(body)
            .map(|mut s| {
                s.jws = s.jws.trim().to_string();
                s
            })
            .map_err(|e| {
                Problem::new(
                    StatusCode::BAD_REQUEST,
                    "malformed-request",
                    "Malformed request",
                    format!("expected {{\"jws\": \"...\", \"sealed\": {{...}}}}: {e}"),
                )
            }),
        _ => Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
            format!(
                "send application/jose (the compact JWS) or application/json {{\"jws\": ..., \"sealed\": ...}}, not {ct:?}"
            ),
        )),
    }
}

fn status_json(hash: &Hash32, state: &TxState) -> serde_json::Value {
    match state {
        TxState::Pending => json!({ "tx_hash": hash.to_string(), "status": "pending" }),
        TxState::Committed { height, index, block_hash } => json!({
            "tx_hash": hash.to_string(), "status": "committed", "height": height, "index": index,
            "block_hash": hex::encode(block_hash),
        }),
        TxState::Rejected { code, reason } => json!({
            "tx_hash": hash.to_string(), "status": "rejected", "code": code, "reason": reason,
        }),
    }
}

/// Submit a signed transaction.
#[utoipa::path(post, path = "/v1/transactions", tag = "transactions",
    request_body(description = "the compact JWS (`application/jose`), or `{\"jws\": \"...\", \"sealed\": {\"salt\": \"...\", \"body\": {...}}}` (`application/json`; `sealed` is required for `observation.record`, whose record is off the chain)",
        content((String = "application/jose"), (Wrapped = "application/json"))),
    responses(
        (status = 202, description = "accepted: stored in the TXS stream, `{tx_hash, status: pending}`"),
        (status = 200, description = "an identical resubmission: the existing status"),
        (status = 400, body = Problem, description = "malformed JWS or payload, wrong chain, sealed body missing, unexpected or invalid"),
        (status = 401, body = Problem, description = "unknown signer or bad signature"),
        (status = 403, body = Problem, description = "the signer's role may not sign this type, or is revoked"),
        (status = 409, body = Problem, description = "replayed nonce, or conflicts with committed state"),
        (status = 413, body = Problem), (status = 415, body = Problem),
        (status = 422, body = Problem, description = "outside the time window, unknown patient, a sealed body that is not the committed one"),
        (status = 429, body = Problem, description = "rate limited (Retry-After)"),
        (status = 503, body = Problem, description = "NATS or the record vault unavailable, or still catching up (Retry-After); nothing stored")))]
pub async fn submit(req: HttpRequest, s: Data, payload: web::Payload) -> Result<HttpResponse, Problem> {
    let body = read_body(payload, s.max_body()).await?;
    let submission = submission_from(&req, &body)?;
    let client = req.app_data::<web::Data<ClientAddress>>().and_then(|c| c.of(&req));
    match s.submit(&submission, client).await? {
        Submitted::Accepted(hash) => {
            Ok(HttpResponse::Accepted().json(json!({ "tx_hash": hash.to_string(), "status": "pending" })))
        }
        Submitted::Known(hash, state) => Ok(HttpResponse::Ok().json(status_json(&hash, &state))),
    }
}

/// How the client's address is found.
#[derive(Debug, Clone, Default)]
pub struct ClientAddress {
    /// Behind a proxy that appends the client to `X-Forwarded-For`: take its last entry.
    pub trust_forwarded_for: bool,
}

impl ClientAddress {
    /// The client's address for `req`.
    pub fn of(&self, req: &HttpRequest) -> Option<std::net::IpAddr> {
        if self.trust_forwarded_for
            && let Some(last) =
                req.headers().get("x-forwarded-for").and_then(|v| v.to_str().ok()).and_then(|v| v.rsplit(',').next())
            && let Ok(ip) = last.trim().parse()
        {
            return Some(ip);
        }
        req.peer_addr().map(|a| a.ip())
    }
}

/// Where a submitted transaction stands.
#[utoipa::path(get, path = "/v1/transactions/{hash}", tag = "transactions",
    params(("hash" = String, Path, description = "tx hash (hex): SHA-256 of the compact JWS", pattern = "^[0-9a-fA-F]{64}$")),
    responses((status = 200, description = "`pending`, `committed` (height, index, block_hash) or `rejected` (code, reason)"),
        (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn status(s: Data, hash: web::Path<String>) -> Result<HttpResponse, Problem> {
    let hash = Hash32::from_hex(&hash)
        .map_err(|_| Problem::bad_request(format!("{hash:?} is not a 64-character hex hash")))?;
    match s.status(&hash).await? {
        Some(state) => Ok(HttpResponse::Ok().json(status_json(&hash, &state))),
        None => Err(Problem::not_found(format!("transaction {hash} is unknown here"))),
    }
}

/// The OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "GlucoChain ingest API",
        description = "Submit signed transactions (JWS, Ed25519) and follow their status. Errors are RFC 9457 problem documents with a stable `type`."
    ),
    paths(submit, status),
    components(schemas(Problem, Wrapped))
)]
pub struct ApiDoc;

async fn openapi() -> HttpResponse {
    use utoipa::OpenApi as _;
    glucochain_api::service::openapi_response(&ApiDoc::openapi())
}

/// Routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(glucochain_api::path_config())
        .route("/openapi.json", web::get().to(openapi))
        .service(glucochain_api::service::endpoint("/v1/transactions", "POST").route(web::post().to(submit)))
        .service(glucochain_api::service::endpoint("/v1/transactions/{hash}", "GET").route(web::get().to(status)))
        .default_service(web::to(glucochain_api::service::no_such_endpoint));
}
