//! The ledger's read API. Every request is authenticated by a read token
//! from a registered key, authorized (until the contracts engine decides:
//! the patient themself, the transaction's signer, or an admin; block
//! headers to any active participant) and audited — denied reads too.

use crate::fhir::{RecordQuery, bundle, entries};
use crate::ledger::{Access, Ledger};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use glucochain_api::{Problem, authenticate};
use glucochain_crypto::Hash32;
use glucochain_crypto::jose::TokenPolicy;
use glucochain_crypto::merkle::MerkleTree;
use glucochain_follow::from_stored;
use glucochain_state::{ReadDecision, decide_read};
use glucochain_types::proof::InclusionProof;
use glucochain_types::time::Timestamp;
use glucochain_types::{ParticipantId, Role};
use serde_json::json;
use std::sync::Arc;

/// Shared state of the handlers.
pub struct ApiState {
    /// The ledger.
    pub ledger: Arc<Ledger>,
    /// Records' bodies (the replicated vault), opened for allowed readers only.
    pub vault: glucochain_vault::replica::VaultReader,
    /// Token rules.
    pub policy: TokenPolicy,
    /// Where access decisions come from.
    pub authz: Authz,
    /// Reads per reader: a token bucket each.
    pub limiter: std::sync::Mutex<glucochain_api::rate::RateLimiter>,
}

/// Who decides reads.
pub enum Authz {
    /// The contracts engine, over `emr.authz.decide` (fail closed: no answer, no read).
    Contracts(Box<glucochain_bus::Bus>),
    /// The ledger itself, with the same rules on its own verified state.
    Local,
}

fn decision_from_wire(d: glucochain_wire::v1::AuthzDecision) -> ReadDecision {
    use glucochain_types::tx::{Access, ConsentScope};
    fn parse<T: serde::de::DeserializeOwned>(s: &str) -> Option<T> {
        serde_json::from_value(serde_json::Value::String(s.to_string())).ok()
    }
    if !d.allow {
        return ReadDecision::Deny { reason: d.reason };
    }
    if d.all {
        return ReadDecision::All { reason: d.reason };
    }
    let scopes = d
        .scopes
        .iter()
        .map(|s| ConsentScope {
            data_classes: s.data_classes.iter().filter_map(|c| parse(c)).collect(),
            record_types: s.record_types.iter().filter_map(|c| parse(c)).collect(),
            codes: s.codes.clone(),
            access: vec![Access::Read],
        })
        .collect();
    ReadDecision::Scoped { scopes, reason: d.reason }
}

/// A decision from the contracts engine, if it was made on a state at least
/// as recent as the ledger's own (`min_height`): one made on older state
/// could grant what a revocation the ledger already holds took away, so it
/// is refused with 503 and never used as a grant.
fn accept_decision(d: glucochain_wire::v1::AuthzDecision, min_height: u64) -> Result<ReadDecision, Problem> {
    if d.height < min_height {
        metrics::counter!("glucochain_ledger_reads_refused_total", "code" => "stale-decision").increment(1);
        return Err(Problem::unavailable(format!(
            "the contracts engine decided at height {}, behind this ledger's {min_height}; no read on a stale decision",
            d.height
        )));
    }
    Ok(decision_from_wire(d))
}

type Data = web::Data<ApiState>;

/// An authenticated reader.
pub(crate) struct Reader {
    /// Who.
    pub(crate) id: ParticipantId,
    /// Their role.
    pub(crate) role: Role,
}

fn reader(req: &HttpRequest, s: &ApiState) -> Result<Reader, Problem> {
    let header = req.headers().get("authorization").and_then(|v| v.to_str().ok());
    let view = s.ledger.chain.view.read().expect("view lock");
    let p = authenticate(header, view.state(), &s.policy, Timestamp::now().unix_ms() / 1000)?;
    let reader = Reader { id: p.id.clone(), role: p.role };
    drop(view);
    throttle(s, &reader)?;
    Ok(reader)
}

/// Applies the reader's read rate (429 with Retry-After beyond it).
pub(crate) fn throttle(s: &ApiState, reader: &Reader) -> Result<(), Problem> {
    if let Err(wait) = s.limiter.lock().expect("limiter lock").take(reader.id.as_str(), std::time::Instant::now()) {
        metrics::counter!("glucochain_ledger_reads_refused_total", "code" => "rate-limited").increment(1);
        let detail = format!("{} is over its read rate; retry later", reader.id);
        return Err(Problem::rate_limited("Too many reads", detail, wait));
    }
    Ok(())
}

fn purpose(req: &HttpRequest, r: &Reader) -> Result<String, Problem> {
    match req.headers().get("x-purpose-of-use").and_then(|v| v.to_str().ok()) {
        Some(p) if (2..=16).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_uppercase()) => Ok(p.to_string()),
        Some(p) => Err(Problem::bad_request(format!("X-Purpose-Of-Use {p:?}: an HL7 ActReason code such as TREAT"))),
        None if r.role == Role::Patient => Ok("PATRQT".into()),
        None => Ok("TREAT".into()),
    }
}

fn resource(req: &HttpRequest) -> String {
    req.uri().path_and_query().map(|p| p.as_str().to_string()).unwrap_or_default()
}

/// Records the access and, when denied, answers 403.
pub(crate) async fn audited(
    s: &ApiState,
    req: &HttpRequest,
    r: &Reader,
    patient: Option<&ParticipantId>,
    action: &str,
    granted: bool,
    reason: &str,
) -> Result<(), Problem> {
    let purpose = purpose(req, r)?;
    let res = resource(req);
    s.ledger
        .audit(Access {
            reader: &r.id,
            role: r.role.as_str(),
            patient,
            action,
            resource: &res,
            purpose: &purpose,
            granted,
            reason,
        })
        .await
        .map_err(|e| match e {
            crate::ledger::AuditError::Throttled(wait) => Problem::rate_limited(
                "Too many refused reads",
                "too many refused reads of this patient lately; retry later",
                wait,
            ),
            e => {
                tracing::error!(error = format!("{e:#}"), "audit write failed; refusing the read");
                Problem::unavailable("the access could not be audited")
            }
        })?;
    if granted {
        Ok(())
    } else {
        Err(Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Not authorized",
            format!("{} may not read this: {reason}", r.id),
        ))
    }
}

/// The contract rules' answer for `r` reading `patient`'s records now.
pub(crate) async fn decide(
    s: &ApiState,
    req: &HttpRequest,
    r: &Reader,
    patient: &ParticipantId,
) -> Result<ReadDecision, Problem> {
    use prost::Message as _;
    let purpose = purpose(req, r)?;
    match &s.authz {
        Authz::Local => {
            let view = s.ledger.chain.view.read().expect("view lock");
            Ok(decide_read(view.state(), &r.id, patient, &purpose, Timestamp::now()))
        }
        Authz::Contracts(bus) => {
            let q = glucochain_wire::v1::AuthzRequest {
                reader: r.id.as_str().into(),
                patient: patient.as_str().into(),
                purpose,
                at_ms: Timestamp::now().unix_ms(),
                min_height: s.ledger.height(),
            };
            let ask = bus.client().request(glucochain_bus::subjects::AUTHZ_DECIDE, q.clone().encode_to_vec().into());
            let reply = tokio::time::timeout(std::time::Duration::from_secs(3), ask)
                .await
                .map_err(|_| Problem::unavailable("the contracts engine did not answer; no read without a decision"))?
                .map_err(|_| Problem::unavailable("the contracts engine is unavailable; no read without a decision"))?;
            let d =
                glucochain_wire::v1::AuthzDecision::decode(reply.payload.as_ref()).map_err(|_| Problem::internal())?;
            accept_decision(d, q.min_height)
        }
    }
}

fn parse_hash(s: &str) -> Result<Hash32, Problem> {
    Hash32::from_hex(s).map_err(|_| Problem::bad_request(format!("{s:?} is not a 64-character hex hash")))
}

fn parse_patient(s: &str) -> Result<ParticipantId, Problem> {
    ParticipantId::parse(s).map_err(|e| Problem::bad_request(format!("patient id: {e}")))
}

async fn block_json(s: &ApiState, height: u64) -> Result<serde_json::Value, Problem> {
    let stored = s.ledger.store.block(height).await.map_err(|_| Problem::internal())?;
    let stored = stored.ok_or_else(|| Problem::not_found(format!("no block at height {height}")))?;
    let (block, cert) = from_stored(&stored).map_err(|_| Problem::internal())?;
    Ok(json!({
        "height": height,
        "hash": block.hash().to_string(),
        "header": block.header,
        "tx_hashes": stored.txs.iter().map(|t| hex::encode(&t.hash)).collect::<Vec<_>>(),
        "certificate": cert,
    }))
}

/// The newest committed block.
#[utoipa::path(get, path = "/v1/blocks/latest", tag = "chain",
    responses((status = 200, description = "header, tx hashes and commit certificate"), (status = 401, body = Problem), (status = 429, body = Problem, description = "over the reader's rate (Retry-After)"), (status = 404, body = Problem)))]
pub async fn latest_block(req: HttpRequest, s: Data) -> Result<HttpResponse, Problem> {
    let r = reader(&req, &s)?;
    audited(&s, &req, &r, None, "read", true, "block headers are public to participants").await?;
    let h = s.ledger.height();
    if h == 0 {
        return Err(Problem::not_found("no block committed yet"));
    }
    Ok(HttpResponse::Ok().json(block_json(&s, h).await?))
}

/// A block by height.
#[utoipa::path(get, path = "/v1/blocks/{height}", tag = "chain",
    params(("height" = u64, Path, description = "block height, from 1")),
    responses((status = 200, description = "header, tx hashes and commit certificate"), (status = 401, body = Problem), (status = 429, body = Problem, description = "over the reader's rate (Retry-After)"), (status = 404, body = Problem)))]
pub async fn block(req: HttpRequest, s: Data, height: web::Path<u64>) -> Result<HttpResponse, Problem> {
    let r = reader(&req, &s)?;
    audited(&s, &req, &r, None, "read", true, "block headers are public to participants").await?;
    Ok(HttpResponse::Ok().json(block_json(&s, height.into_inner()).await?))
}

async fn load_tx(
    s: &ApiState,
    req: &HttpRequest,
    r: &Reader,
    hash: &str,
) -> Result<glucochain_store::StoredTx, Problem> {
    let hash = parse_hash(hash)?;
    // Unknown, and known but not the reader's to see, get the same answer,
    // and a refusal goes into the reader's trail only: a hash tried by
    // someone who may not read it says nothing about whose it is, and puts
    // nothing into that patient's access log.
    let hidden = |reason: &str| {
        let reason = reason.to_string();
        async move {
            match audited(s, req, r, None, "read", false, &reason).await {
                // Not audited (503) or over the refusal rate (429): that answer.
                Err(p) if p.status != 403 => Err(p),
                _ => Err(Problem::new(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    "Not authorized",
                    format!("no committed transaction {hash} that you may read"),
                )),
            }
        }
    };
    let tx = s.ledger.store.transaction(&hash.0).await.map_err(|_| Problem::internal())?;
    let Some(tx) = tx else {
        return hidden("unknown transaction").await;
    };
    let patient = tx.patient.as_deref().and_then(|p| ParticipantId::parse(p).ok());
    let (granted, reason) = if tx.signer == r.id.as_str() {
        (true, "the signer of the transaction".to_string())
    } else if tx.tx_type == "audit.checkpoint" {
        // A log's head and count, no one's data: patients check their access log against it.
        (true, "audit checkpoints are public to participants".to_string())
    } else if let Some(p) = &patient {
        // A patient's transaction: readable when the contract rules cover what it holds.
        let d = decide(s, req, r, p).await?;
        let entries = entries(&tx);
        let covered = match &d {
            ReadDecision::All { .. } => true,
            _ if entries.is_empty() => false,
            _ => entries.iter().all(|e| d.covers(e.class, e.record_type, &e.codes)),
        };
        (covered, d.reason().to_string())
    } else {
        (r.role == Role::Admin, if r.role == Role::Admin { "consortium admin" } else { "not the signer" }.to_string())
    };
    if !granted {
        return hidden(&reason).await;
    }
    audited(s, req, r, patient.as_ref(), "read", true, &reason).await?;
    Ok(tx)
}

/// A committed transaction (the JWS and where it is).
#[utoipa::path(get, path = "/v1/transactions/{hash}", tag = "chain",
    params(("hash" = String, Path, description = "tx hash (hex)", pattern = "^[0-9a-fA-F]{64}$")),
    responses((status = 200, description = "the transaction"), (status = 401, body = Problem), (status = 429, body = Problem, description = "over the reader's rate (Retry-After)"), (status = 403, body = Problem, description = "unknown, or not the reader's to see (the same answer)")))]
pub async fn transaction(req: HttpRequest, s: Data, hash: web::Path<String>) -> Result<HttpResponse, Problem> {
    let r = reader(&req, &s)?;
    let tx = load_tx(&s, &req, &r, &hash).await?;
    let block =
        s.ledger.store.block(tx.height).await.map_err(|_| Problem::internal())?.ok_or_else(Problem::internal)?;
    Ok(HttpResponse::Ok().json(json!({
        "tx_hash": hex::encode(&tx.hash),
        "status": "committed",
        "height": tx.height,
        "index": tx.index,
        "block_hash": hex::encode(&block.hash),
        "tx_type": tx.tx_type,
        "signer": tx.signer,
        "patient": tx.patient,
        "jws": tx.jws,
    })))
}

/// Everything needed to verify offline that a transaction is in the chain.
#[utoipa::path(get, path = "/v1/transactions/{hash}/proof", tag = "chain",
    params(("hash" = String, Path, description = "tx hash (hex)", pattern = "^[0-9a-fA-F]{64}$")),
    responses((status = 200, description = "RFC 9162 inclusion proof, header and commit certificate (verify with `emrctl verify-proof`)"), (status = 401, body = Problem), (status = 429, body = Problem, description = "over the reader's rate (Retry-After)"), (status = 403, body = Problem, description = "unknown, or not the reader's to see (the same answer)")))]
pub async fn proof(req: HttpRequest, s: Data, hash: web::Path<String>) -> Result<HttpResponse, Problem> {
    let r = reader(&req, &s)?;
    let tx = load_tx(&s, &req, &r, &hash).await?;
    let stored =
        s.ledger.store.block(tx.height).await.map_err(|_| Problem::internal())?.ok_or_else(Problem::internal)?;
    let (block, certificate) = from_stored(&stored).map_err(|_| Problem::internal())?;
    let leaves: Vec<[u8; 32]> = block.txs.iter().map(|t| glucochain_crypto::sha256(t).0).collect();
    let audit_path =
        MerkleTree::from_entries(&leaves).inclusion_proof(tx.index as u64).map_err(|_| Problem::internal())?;
    let set = s.ledger.chain.view.read().expect("view lock").validators_at(tx.height).cloned();
    let validator_set = set.filter(|set| *set != s.ledger.genesis.validator_set());
    let p = InclusionProof {
        tx_hash: Hash32::from_slice(&tx.hash).map_err(|_| Problem::internal())?,
        jws: Some(tx.jws.clone()),
        leaf_index: tx.index as u64,
        audit_path,
        header: block.header,
        certificate,
        validator_set,
    };
    Ok(HttpResponse::Ok().json(p))
}

/// A patient's records as a FHIR R4 searchset Bundle.
#[utoipa::path(get, path = "/v1/patients/{id}/records", tag = "patients",
    params(("id" = String, Path, description = "the patient's secure id", pattern = "^p[a-z2-7]{32}$"),
        ("code" = Option<String>, Query, description = "[system|]code, e.g. http://loinc.org|99504-3; comma-separated or repeated"),
        ("date" = Option<String>, Query, description = "ge/gt/le/lt/eq + RFC 3339 time or YYYY-MM-DD; repeatable", pattern = "^(eq|gt|ge|lt|le)?[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"),
        ("_count" = Option<u32>, Query, description = "page size, 1..=500 (default 50)", minimum = 1, maximum = 500),
        ("_offset" = Option<u32>, Query, description = "entries to skip")),
    responses((status = 200, description = "FHIR Bundle (searchset), each entry with its tx hash and block height"), (status = 400, body = Problem), (status = 401, body = Problem), (status = 429, body = Problem, description = "over the reader's rate (Retry-After)"), (status = 403, body = Problem)))]
pub async fn records(req: HttpRequest, s: Data, id: web::Path<String>) -> Result<HttpResponse, Problem> {
    let r = reader(&req, &s)?;
    let patient = parse_patient(&id)?;
    let raw: Vec<(String, String)> = web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .map_err(|e| Problem::bad_request(format!("query: {e}")))?
        .into_inner();
    let query = RecordQuery::parse(&raw).map_err(Problem::bad_request)?;
    let decision = decide(&s, &req, &r, &patient).await?;
    audited(&s, &req, &r, Some(&patient), "search", decision.allows(), decision.reason()).await?;
    let all = patient_entries(&s, &patient, &decision, (query.from, query.until)).await?;
    let base = format!("/v1/patients/{patient}/records");
    Ok(HttpResponse::Ok().content_type("application/fhir+json").json(bundle(&base, &all, &query, &raw)))
}

/// Every record entry of `patient`'s committed transactions that `decision`
/// covers and that may fall in `[from, until)`, in chain order, the bodies
/// of records opened from the vault (for those records only: a body is
/// released only to a reader the decision allows, after the read was
/// audited by the caller).
pub(crate) async fn patient_entries(
    s: &ApiState,
    patient: &ParticipantId,
    decision: &ReadDecision,
    (from, until): (Option<Timestamp>, Option<Timestamp>),
) -> Result<Vec<crate::fhir::RecordEntry>, Problem> {
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let page = s
            .ledger
            .store
            .patient_transactions(patient.as_str(), after, 1000)
            .await
            .map_err(|_| Problem::internal())?;
        let Some(last) = page.last() else { break };
        after = Some((last.height, last.index));
        all.extend(
            page.iter()
                .flat_map(entries)
                .filter(|e| e.may_meet(from, until) && decision.covers(e.class, e.record_type, &e.codes)),
        );
    }
    let opened = crate::fhir::open_all(&s.vault, all).await.map_err(|e| {
        tracing::error!(error = %e, "record vault read failed");
        Problem::unavailable("the record vault is unavailable; retry shortly")
    })?;
    // Each observation of a record is judged again on its own codes.
    Ok(opened.into_iter().filter(|e| decision.covers(e.class, e.record_type, &e.codes)).collect())
}

/// Who read a patient's records, when and why (FHIR AuditEvent shapes), a
/// page at a time: newest first, `before` the sequence number a `next` link names.
#[utoipa::path(get, path = "/v1/patients/{id}/access-log", tag = "patients",
    params(("id" = String, Path, description = "the patient's secure id", pattern = "^p[a-z2-7]{32}$"),
        ("_count" = Option<u32>, Query, description = "most entries, 1..=1000 (default 100)", minimum = 1, maximum = 1000),
        ("before" = Option<u32>, Query, description = "only entries older than this sequence number (the `next` link's)", minimum = 1, maximum = 2147483647)),
    responses((status = 200, description = "FHIR Bundle of AuditEvent, newest first, with a `next` link when there are older entries"), (status = 400, body = Problem), (status = 401, body = Problem), (status = 429, body = Problem, description = "over the reader's rate (Retry-After)"), (status = 403, body = Problem)))]
pub async fn access_log(req: HttpRequest, s: Data, id: web::Path<String>) -> Result<HttpResponse, Problem> {
    let r = reader(&req, &s)?;
    let patient = parse_patient(&id)?;
    let count = glucochain_api::query_u32(req.query_string(), "_count", 100, 1..=1000)?;
    let before = match glucochain_api::query_u32(req.query_string(), "before", 0, 0..=2_147_483_647)? {
        0 => None,
        b => Some(u64::from(b)),
    };
    own_log_read(&s, &req, &r, &patient).await?;
    let rows =
        s.ledger.store.audit_for_patient(patient.as_str(), count, before).await.map_err(|_| Problem::internal())?;
    let entries: Vec<serde_json::Value> = rows.iter().map(audit_event).collect();
    let mut links = vec![json!({ "relation": "self", "url": resource(&req) })];
    if rows.len() == count as usize
        && let Some(oldest) = rows.last()
    {
        let url = format!("/v1/patients/{patient}/access-log?_count={count}&before={}", oldest.seq);
        links.push(json!({ "relation": "next", "url": url }));
    }
    Ok(HttpResponse::Ok().content_type("application/fhir+json").json(json!({
        "resourceType": "Bundle", "type": "searchset", "total": entries.len(), "link": links, "entry": entries,
    })))
}

/// The access log is the patient's own (and the admins'): consents to
/// records do not extend to it. The read is audited either way.
async fn own_log_read(s: &ApiState, req: &HttpRequest, r: &Reader, patient: &ParticipantId) -> Result<(), Problem> {
    let decision = decide(s, req, r, patient).await?;
    let own = matches!(decision, ReadDecision::All { .. });
    let reason = if own { decision.reason() } else { "only the patient and admins read the access log" };
    audited(s, req, r, Some(patient), "read", own, reason).await
}

/// The service that made the read an audit row records.
fn observer(a: &glucochain_store::AuditRow) -> &'static str {
    match (a.reader_role.as_str(), a.action.as_str()) {
        ("detector", _) => "glucochain-detector",
        (_, "read" | "search") => "glucochain-ledger",
        _ => "glucochain-contracts",
    }
}

/// One audit row as a FHIR AuditEvent.
fn audit_event(a: &glucochain_store::AuditRow) -> serde_json::Value {
    json!({ "resource": {
        "resourceType": "AuditEvent",
        "id": a.seq.to_string(),
        "type": { "system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest" },
        "action": if a.action == "search" { "E" } else { "R" },
        "recorded": Timestamp::from_unix_ms(a.at_ms).to_rfc3339(),
        "outcome": if a.outcome == "granted" { "0" } else { "4" },
        "outcomeDesc": a.reason,
        "purposeOfEvent": [{ "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": a.purpose }] }],
        "agent": [{ "who": { "identifier": { "value": a.reader } }, "role": [{ "text": a.reader_role }], "requestor": true }],
        // Reads served by the contracts engine carry their own action names;
        // the detector's openings of bodies come in a detector's name.
        "source": { "observer": { "display": observer(a) } },
        "entity": [{ "what": { "reference": format!("Patient/{}", a.patient.clone().unwrap_or_default()) }, "query": a.resource }],
        "extension": [{ "url": "urn:glucochain:audit:entry-hash", "valueString": hex::encode(&a.entry_hash) }],
    }})
}

/// Most entries one access-log proof spans.
pub const MAX_PROOF_ENTRIES: u64 = 20_000;

/// What a patient needs to check their access log against the chain
/// offline (`emrctl verify-audit`): the newest committed checkpoint of this
/// ledger's log, and every entry from `from` (default: the oldest of the
/// patient's newest 100) up to it — the patient's own in full, everyone
/// else's as its content hash only (see `glucochain_types::audit`).
#[utoipa::path(get, path = "/v1/patients/{id}/access-log/proof", tag = "patients",
    params(("id" = String, Path, description = "the patient's secure id", pattern = "^p[a-z2-7]{32}$"),
        ("from" = Option<u32>, Query, description = "first sequence number of the segment", minimum = 1, maximum = 2147483647)),
    responses((status = 200, description = "the checkpoint (tx hash, entries, head), the hash before the segment, and the segment"), (status = 400, body = Problem, description = "a segment longer than 20000 entries"), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem, description = "no checkpoint committed yet"), (status = 429, body = Problem, description = "over the reader's rate (Retry-After)")))]
pub async fn access_log_proof(req: HttpRequest, s: Data, id: web::Path<String>) -> Result<HttpResponse, Problem> {
    use glucochain_types::audit::SegmentEntry;
    let r = reader(&req, &s)?;
    let patient = parse_patient(&id)?;
    let from = glucochain_api::query_u32(req.query_string(), "from", 0, 0..=2_147_483_647)?;
    own_log_read(&s, &req, &r, &patient).await?;
    let store = &s.ledger.store;
    // The newest checkpoint this ledger submitted that the chain committed.
    let mut checkpoint = None;
    for (seq, head, tx) in store.audit_checkpoints(50).await.map_err(|_| Problem::internal())? {
        if let Some(t) = store.transaction(&tx).await.map_err(|_| Problem::internal())?
            && t.ok
        {
            checkpoint = Some((seq, head, t));
            break;
        }
    }
    let Some((to, head, tx)) = checkpoint else {
        return Err(Problem::not_found("no checkpoint of the access log is committed yet; try again in a minute"));
    };
    let from = match u64::from(from) {
        0 => {
            let newest =
                store.audit_for_patient(patient.as_str(), 100, Some(to + 1)).await.map_err(|_| Problem::internal())?;
            newest.last().map(|a| a.seq).unwrap_or(to)
        }
        f => f.min(to),
    };
    if to - from + 1 > MAX_PROOF_ENTRIES {
        return Err(Problem::bad_request(format!(
            "the segment {from}..={to} is longer than {MAX_PROOF_ENTRIES} entries; ask from a later entry"
        )));
    }
    let rows = store.audit_range(from, to).await.map_err(|_| Problem::internal())?;
    let prev = rows.first().map(|a| hex::encode(&a.prev_hash)).unwrap_or_default();
    let segment: Vec<SegmentEntry> = rows
        .iter()
        .map(|a| {
            let fields = crate::ledger::audit_fields(a);
            if a.patient.as_deref() == Some(patient.as_str()) {
                SegmentEntry::Own { entry: fields }
            } else {
                SegmentEntry::Other { seq: a.seq, content_hash: fields.content_hash() }
            }
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "patient": patient.as_str(),
        "checkpoint": {
            "tx_hash": hex::encode(&tx.hash), "height": tx.height, "entries": to, "head": hex::encode(&head),
            "ledger": tx.signer,
        },
        "prev_hash": prev,
        "entries": segment,
    })))
}

/// The OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "GlucoChain ledger API",
        description = "Verified chain, FHIR records, inclusion proofs and audited access. Reads need `Authorization: Bearer <read token>` (EdDSA JWT, `typ: emr-auth+jwt`, see `emrctl token`)."
    ),
    paths(latest_block, block, transaction, proof, records, access_log, access_log_proof),
    components(schemas(Problem))
)]
pub struct ApiDoc;

async fn openapi() -> HttpResponse {
    use utoipa::OpenApi as _;
    glucochain_api::service::openapi_response(&ApiDoc::openapi())
}

/// Routes of the read API.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(glucochain_api::path_config())
        .app_data(glucochain_api::query_config())
        .route("/openapi.json", web::get().to(openapi))
        .service(glucochain_api::service::endpoint("/v1/blocks/latest", "GET").route(web::get().to(latest_block)))
        .service(glucochain_api::service::endpoint("/v1/blocks/{height}", "GET").route(web::get().to(block)))
        .service(glucochain_api::service::endpoint("/v1/transactions/{hash}", "GET").route(web::get().to(transaction)))
        .service(glucochain_api::service::endpoint("/v1/transactions/{hash}/proof", "GET").route(web::get().to(proof)))
        .service(glucochain_api::service::endpoint("/v1/patients/{id}/records", "GET").route(web::get().to(records)))
        .service(
            glucochain_api::service::endpoint("/v1/patients/{id}/access-log", "GET").route(web::get().to(access_log)),
        )
        .service(
            glucochain_api::service::endpoint("/v1/patients/{id}/access-log/proof", "GET")
                .route(web::get().to(access_log_proof)),
        )
        .default_service(web::to(glucochain_api::service::no_such_endpoint));
}

#[cfg(test)]
mod tests {
    use super::*;
    use glucochain_wire::v1::AuthzDecision;

    #[test]
    fn m3_a_decision_made_below_the_ledgers_height_is_refused_never_a_grant() {
        // Issue 19, M3: the ledger ignored the decision's height.
        let grant = |height| AuthzDecision { allow: true, all: true, scopes: vec![], reason: "admin".into(), height };
        assert!(matches!(accept_decision(grant(7), 7), Ok(ReadDecision::All { .. })));
        assert!(matches!(accept_decision(grant(9), 7), Ok(ReadDecision::All { .. })));
        let stale = accept_decision(grant(6), 7).unwrap_err();
        assert_eq!(stale.status, 503);
        let deny = AuthzDecision { allow: false, reason: "no consent".into(), height: 7, ..Default::default() };
        assert!(matches!(accept_decision(deny, 7), Ok(ReadDecision::Deny { .. })));
    }
}
