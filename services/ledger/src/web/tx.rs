//! Transactions from the pages: the ledger prepares the payload the page
//! asks for (revoke or grant a consent, accept a care plan, a new emergency
//! card), the browser decodes it, checks it against what the person asked
//! for, shows it and signs it with the participant's key only once they
//! confirm (the script never signs what it has not checked), and the ledger
//! forwards the signed JWS to ingest and reports the contract rules' answer:
//! committed in a block, or refused with the reason. The emergency card's
//! secret is made in the browser: the ledger only ever sees its public key.

use super::{Api, PageError, Web, viewer};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use glucochain_api::Problem;
use glucochain_crypto::jose::{JwsHeader, b64url_encode};
use glucochain_crypto::{Domain, PublicKey};
use glucochain_types::ids::LocalId;
use glucochain_types::sealed::{SealedBody, Submission};
use glucochain_types::time::Timestamp;
use glucochain_types::tx::{
    Access, CareplanAccept, ConsentGrant, ConsentRevoke, ConsentScope, Purpose, RecordType, TxBody, TxPayload,
};
use glucochain_types::{DataClass, ParticipantId, Transaction};
use rand_core::RngCore as _;
use serde_json::json;
use std::time::Duration;

fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    rand_core::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter().find(|(k, _)| k == name).map(|(_, v)| v.trim()).filter(|v| !v.is_empty())
}

fn required<'a>(form: &'a [(String, String)], name: &str) -> Result<&'a str, Problem> {
    field(form, name).ok_or_else(|| Problem::bad_request(format!("{name} is required")))
}

fn local_id(s: &str, what: &'static str) -> Result<LocalId, Problem> {
    LocalId::parse(s, what).map_err(|e| Problem::bad_request(e.to_string()))
}

/// What a transaction does, in words.
pub(crate) fn summary(body: &TxBody) -> String {
    match body {
        TxBody::ConsentRevoke(r) => format!("revoke consent {}", r.consent_id.as_str()),
        TxBody::ConsentGrant(g) => format!("grant consent {} to {}", g.consent_id.as_str(), g.grantee),
        TxBody::CareplanAccept(a) => format!("accept care plan {} version {}", a.plan_id.as_str(), a.version),
        TxBody::EmergencyProfileSet(_) => "issue a new emergency card".into(),
        other => other.tx_type().as_str().to_string(),
    }
}

/// The values of a repeated form field.
fn all<'a>(form: &'a [(String, String)], name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    form.iter().filter(move |(k, _)| k == name).map(|(_, v)| v.trim())
}

/// Builds the body the form asks for, on behalf of `patient`.
fn body_for(api: &crate::api::ApiState, patient: &ParticipantId, form: &[(String, String)]) -> Result<TxBody, Problem> {
    match required(form, "intent")? {
        "consent.revoke" => Ok(TxBody::ConsentRevoke(ConsentRevoke {
            consent_id: local_id(required(form, "consent_id")?, "consent_id")?,
        })),
        "consent.grant" => {
            let grantee = ParticipantId::parse(required(form, "grantee")?)
                .map_err(|_| Problem::bad_request("grantee: a participant id (p followed by 32 letters and digits)"))?;
            let classes: Vec<DataClass> = all(form, "class")
                .map(|v| match v {
                    "institution" => Ok(DataClass::Institution),
                    "private" => Ok(DataClass::Private),
                    other => Err(Problem::bad_request(format!("class {other:?}: institution or private"))),
                })
                .collect::<Result<_, _>>()?;
            if classes.is_empty() {
                return Err(Problem::bad_request("choose at least one kind of record"));
            }
            // Read only unless the person also lets the grantee add records.
            let access = match field(form, "access").unwrap_or("read") {
                "read" => vec![Access::Read],
                "read-write" => vec![Access::Read, Access::Write],
                other => return Err(Problem::bad_request(format!("access {other:?}: read or read-write"))),
            };
            let record_types: Vec<RecordType> = all(form, "type")
                .map(|v| {
                    serde_json::from_value(json!(v)).map_err(|_| {
                        Problem::bad_request(format!(
                            "type {v:?}: observation, document, careplan, alert or medication"
                        ))
                    })
                })
                .collect::<Result<_, _>>()?;
            let purpose: Purpose = serde_json::from_value(json!(field(form, "purpose").unwrap_or("TREAT")))
                .map_err(|_| Problem::bad_request("purpose: TREAT, CAREMGT or FAMRQT"))?;
            let valid_until = match field(form, "until") {
                Some(d) => Some(
                    Timestamp::parse(&format!("{d}T23:59:59Z"))
                        .map_err(|_| Problem::bad_request(format!("until {d:?}: a date as YYYY-MM-DD")))?,
                ),
                None => None,
            };
            Ok(TxBody::ConsentGrant(ConsentGrant {
                consent_id: local_id(&format!("c-{}", random_hex(6)), "consent_id")?,
                grantee,
                scope: ConsentScope { data_classes: classes, record_types, codes: vec![], access },
                purpose,
                valid_from: None,
                valid_until,
            }))
        }
        "careplan.accept" => Ok(TxBody::CareplanAccept(CareplanAccept {
            plan_id: local_id(required(form, "plan_id")?, "plan_id")?,
            version: required(form, "version")?.parse().map_err(|_| Problem::bad_request("version: a whole number"))?,
            proposal_tx: glucochain_crypto::Hash32::from_hex(required(form, "proposal_tx")?)
                .map_err(|_| Problem::bad_request("proposal_tx: a 64-character hex hash"))?,
        })),
        "emergency.card" => {
            // The browser made the card; only its public key comes here.
            let card_key: PublicKey = required(form, "card_key")?
                .parse()
                .map_err(|_| Problem::bad_request("card_key: the new card's public key (base64url, 32 bytes)"))?;
            let view = api.ledger.chain.view.read().expect("view lock");
            let current = view
                .state()
                .contracts()
                .emergency
                .get(patient)
                .ok_or_else(|| Problem::bad_request("set an emergency profile first"))?;
            let mut profile = current.profile.clone();
            profile.card_key = card_key;
            Ok(TxBody::EmergencyProfileSet(profile))
        }
        other => Err(Problem::bad_request(format!("intent {other:?} is not offered here"))),
    }
}

/// Prepares a transaction for the signed-in participant to sign: answers
/// `{signer, signing_input, summary}`. The page's script checks the
/// decoded payload against the form and does not take `summary` on trust.
pub async fn prepare(req: HttpRequest, api: Api, web: Web, form: web::Form<Vec<(String, String)>>) -> HttpResponse {
    let r: Result<HttpResponse, PageError> = async {
        super::same_origin(&req)?;
        let v = viewer(&req, &api, &web).await?;
        if web.ingest_url.is_none() {
            return Err(Problem::unavailable("this ledger has no ingest URL configured; pages are read-only").into());
        }
        let body = body_for(&api, &v.id, &form)?;
        let text = summary(&body);
        let payload = TxPayload::new(
            api.ledger.genesis.chain_id.clone(),
            random_hex(12),
            Timestamp::now(),
            Some(v.id.clone()),
            body,
        );
        let header = JwsHeader {
            alg: glucochain_crypto::jose::ALG_ED25519.into(),
            typ: Domain::Tx.jose_typ().map(String::from),
            kid: Some(v.id.to_string()),
            cty: None,
        };
        let header = serde_json::to_vec(&header).map_err(|_| Problem::internal())?;
        let payload = serde_json::to_vec(&payload).map_err(|_| Problem::internal())?;
        let signing_input = format!("{}.{}", b64url_encode(&header), b64url_encode(&payload));
        Ok(HttpResponse::Ok().insert_header(("cache-control", "no-store")).json(json!({
            "signer": v.id.as_str(), "signing_input": signing_input, "summary": text,
        })))
    }
    .await;
    json_outcome(r)
}

/// The sealed body to send beside a transaction signed on a page. The only
/// sealed type a page offers is a new emergency card, which carries the
/// patient's current profile again under its commitment: the body comes
/// from the vault (the patient's own read, audited), never from the browser.
async fn sealed_beside(
    req: &HttpRequest,
    api: &crate::api::ApiState,
    v: &super::Reader,
    tx: &Transaction,
) -> Result<Option<SealedBody>, PageError> {
    let TxBody::EmergencyProfileSet(env) = &tx.payload.body else {
        return match tx.payload.body.body_commitment().is_some() {
            true => Err(Problem::bad_request("a page sends no record bodies; use the API").into()),
            false => Ok(None),
        };
    };
    let current = {
        let view = api.ledger.chain.view.read().expect("view lock");
        view.state().contracts().emergency.get(&v.id).cloned()
    };
    let Some(current) = current
        .filter(|c| tx.payload.patient.as_ref() == Some(&v.id) && c.profile.body_commitment == env.body_commitment)
    else {
        return Err(Problem::bad_request("a new card carries your current emergency profile; reload the page").into());
    };
    crate::api::audited(api, req, v, Some(&v.id), "read", true, "a new emergency card for the patient's own profile")
        .await?;
    let Some((_, kept)) = super::pages::sealed_profile(api, &current).await? else {
        return Err(Problem::bad_request("your emergency profile was erased; set a new one first").into());
    };
    Ok(Some(SealedBody::from_kept(&kept).map_err(|_| Problem::internal())?))
}

fn json_outcome(r: Result<HttpResponse, PageError>) -> HttpResponse {
    match r {
        Ok(x) => x,
        Err(PageError::SignIn) => actix_web::ResponseError::error_response(&Problem::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "Sign in again",
            "the session has ended",
        )),
        Err(PageError::Problem(p)) => actix_web::ResponseError::error_response(&p),
    }
}

/// Body of a submission.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Submit {
    /// The signed transaction.
    jws: String,
}

/// Forwards a transaction the signed-in participant signed to ingest and
/// waits (up to 20 s) for the chain's answer: `{outcome, message, tx_hash[, height]}`
/// with `outcome` `committed`, `refused` or `pending`.
pub async fn submit(req: HttpRequest, api: Api, web: Web, body: web::Json<Submit>) -> HttpResponse {
    let r: Result<HttpResponse, PageError> = async {
        super::same_origin(&req)?;
        let v = viewer(&req, &api, &web).await?;
        let ingest = web.ingest_url.clone().ok_or_else(|| Problem::unavailable("no ingest URL configured"))?;
        let tx = Transaction::parse(body.jws.trim(), &Default::default())
            .map_err(|e| Problem::bad_request(format!("transaction: {e}")))?;
        if tx.signer != v.id {
            return Err(Problem::new(
                StatusCode::FORBIDDEN,
                "not-yours",
                "Not your transaction",
                "a page only forwards transactions signed by the signed-in participant",
            )
            .into());
        }
        let text = summary(&tx.payload.body);
        let base = ingest.trim_end_matches('/');
        let (media, sent_body) = match sealed_beside(&req, &api, &v, &tx).await? {
            Some(sealed) => ("application/json", Submission::sealed(tx.jws.clone(), sealed).to_json()),
            None => ("application/jose", tx.jws.clone().into_bytes()),
        };
        let sent = web
            .http
            .post(format!("{base}/v1/transactions"))
            .header("content-type", media)
            .body(sent_body)
            .send()
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "ingest unreachable from the web pages");
                Problem::unavailable("ingest is unreachable; nothing was sent, try again")
            })?;
        let status = sent.status();
        let answer: serde_json::Value = sent.json().await.unwrap_or_default();
        if !status.is_success() {
            let reason = answer["detail"].as_str().or(answer["title"].as_str()).unwrap_or("refused").to_string();
            return Ok(HttpResponse::Ok().json(json!({
                "outcome": "refused", "tx_hash": tx.hash.to_string(),
                "message": format!("Refused ({}): {reason}", status.as_u16()),
            })));
        }
        let hash = tx.hash.to_string();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let s: serde_json::Value = match web.http.get(format!("{base}/v1/transactions/{hash}")).send().await {
                Ok(r) => r.json().await.unwrap_or_default(),
                Err(_) => serde_json::Value::Null,
            };
            match s["status"].as_str() {
                Some("committed") => {
                    let height = s["height"].as_u64().unwrap_or(0);
                    // Wait until this ledger holds the block, so the next page shows it.
                    while api.ledger.height() < height && tokio::time::Instant::now() < deadline {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    return Ok(HttpResponse::Ok().json(json!({
                        "outcome": "committed", "tx_hash": hash, "height": height,
                        "message": format!("Done: {text} (committed in block {height})."),
                    })));
                }
                Some("rejected") => {
                    let reason = s["reason"].as_str().unwrap_or("refused by the contract rules");
                    return Ok(HttpResponse::Ok().json(json!({
                        "outcome": "refused", "tx_hash": hash,
                        "message": format!("Refused by the contract rules: {reason}"),
                    })));
                }
                _ if tokio::time::Instant::now() >= deadline => {
                    return Ok(HttpResponse::Ok().json(json!({
                        "outcome": "pending", "tx_hash": hash,
                        "message": format!("Sent ({text}); not committed yet. Reload in a moment."),
                    })));
                }
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }
    .await;
    json_outcome(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prepared_transaction_is_summarised_for_the_person_signing_it() {
        let revoke =
            TxBody::ConsentRevoke(ConsentRevoke { consent_id: LocalId::parse("care-team", "consent_id").unwrap() });
        assert_eq!(summary(&revoke), "revoke consent care-team");
        let accept = TxBody::CareplanAccept(CareplanAccept {
            plan_id: LocalId::parse("plan-1", "plan_id").unwrap(),
            version: 2,
            proposal_tx: glucochain_crypto::sha256(b"x"),
        });
        assert_eq!(summary(&accept), "accept care plan plan-1 version 2");
    }

    #[test]
    fn form_fields_are_read_trimmed_and_required_ones_named() {
        let form = vec![("intent".to_string(), " consent.revoke ".to_string()), ("reason".into(), "  ".into())];
        assert_eq!(field(&form, "intent"), Some("consent.revoke"));
        assert_eq!(field(&form, "reason"), None, "blank is absent");
        assert!(required(&form, "consent_id").unwrap_err().detail.contains("consent_id is required"));
        assert!(local_id("no spaces allowed", "consent_id").is_err());
    }
}
