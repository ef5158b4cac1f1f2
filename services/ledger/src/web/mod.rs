//! The ledger's web pages under `/ui/`: sign-in with the participant's own
//! key, a patient's records, consents, care plan, emergency card and access
//! log, and the clinician's AGP report. Server-rendered HTML with inline SVG
//! charts; every page read is authorized by the same contract rules as the
//! API and written to the same hash-chained audit log, so the patient sees
//! page views in their access log too. Writes (revoking a consent, accepting
//! a care plan, a new emergency card) are transactions the participant signs
//! in the browser; the ledger prepares them and forwards the signed JWS to
//! ingest.

mod agp;
mod pages;
mod tx;

use crate::api::{ApiState, Reader, throttle};
use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use glucochain_api::Problem;
use glucochain_types::time::Timestamp;
use glucochain_types::{ParticipantId, Role};
use glucochain_web::page::{NavLink, document, error_page, respond};
use glucochain_web::{Markup, html, session};
use serde_json::json;

/// Settings of the web pages.
pub struct WebState {
    /// How long a session lasts, ms.
    pub session_ms: i64,
    /// Mark cookies `Secure` (when served over HTTPS).
    pub secure_cookies: bool,
    /// Where signed transactions go (`POST {ingest}/v1/transactions`); none: pages are read-only.
    pub ingest_url: Option<String>,
    /// Client for ingest.
    pub http: reqwest::Client,
}

type Api = web::Data<ApiState>;
type Web = web::Data<WebState>;

/// Why a page is not shown.
pub(crate) enum PageError {
    /// No valid session: go to the sign-in page.
    SignIn,
    /// Refused or failed, with the reason.
    Problem(Problem),
}

impl From<Problem> for PageError {
    fn from(p: Problem) -> Self {
        PageError::Problem(p)
    }
}

pub(crate) type PageResult = Result<HttpResponse, PageError>;

/// The response for a page's outcome.
pub(crate) fn finish(r: PageResult) -> HttpResponse {
    match r {
        Ok(resp) => resp,
        Err(PageError::SignIn) => HttpResponse::SeeOther().insert_header(("location", "/ui/")).finish(),
        Err(PageError::Problem(p)) => {
            let status = StatusCode::from_u16(p.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            error_page(status, p.title, &p.detail)
        }
    }
}

/// The signed-in participant: a live session in the ledger's database (not
/// signed out, not expired), whose participant is still active on the chain
/// (a revoked participant's session ends), within their read rate.
pub(crate) async fn viewer(req: &HttpRequest, api: &ApiState, _web: &WebState) -> Result<Reader, PageError> {
    let cookie = req.cookie(session::COOKIE).ok_or(PageError::SignIn)?;
    let hash = session::id_hash(cookie.value()).ok_or(PageError::SignIn)?;
    let (who, _) = api
        .ledger
        .store
        .web_session(&hash, Timestamp::now().unix_ms())
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "web session lookup failed");
            Problem::unavailable("sessions cannot be checked right now")
        })?
        .ok_or(PageError::SignIn)?;
    let id = ParticipantId::parse(&who).map_err(|_| PageError::SignIn)?;
    let view = api.ledger.chain.view.read().expect("view lock");
    let p = view.state().participant(&id).filter(|p| p.is_active()).ok_or(PageError::SignIn)?;
    let reader = Reader { id: p.id.clone(), role: p.role };
    drop(view);
    throttle(api, &reader)?;
    Ok(reader)
}

/// A state-changing request from the pages must come from the pages
/// themselves: a browser says where a request comes from (`Sec-Fetch-Site`,
/// `Origin`), and a cross-site one is refused, whatever the cookie's
/// SameSite attribute lets through.
pub(crate) fn same_origin(req: &HttpRequest) -> Result<(), Problem> {
    if glucochain_web::page::same_origin(req) {
        Ok(())
    } else {
        Err(Problem::new(
            StatusCode::FORBIDDEN,
            "cross-site",
            "Cross-site request refused",
            "this form may only be sent from the GlucoChain pages themselves",
        ))
    }
}

/// The patient a path names.
pub(crate) fn patient_of(id: &str) -> Result<ParticipantId, PageError> {
    ParticipantId::parse(id).map_err(|_| Problem::not_found(format!("{id:?} is not a patient id")).into())
}

/// The sections of a patient's pages, for the patient or for their care team.
pub(crate) fn patient_nav(viewer: &Reader, patient: &ParticipantId, current: &str) -> Vec<NavLink> {
    let own = &viewer.id == patient || viewer.role == Role::Admin;
    let mut items: Vec<(&str, &'static str)> = Vec::new();
    if viewer.role != Role::Patient {
        items.push(("/ui/patients", "Patients"));
    }
    items.push(("records", "Records"));
    if own {
        items.push(("consents", "Consents"));
    }
    items.push(("careplan", "Care plan"));
    if own {
        items.push(("emergency", "Emergency card"));
        items.push(("access-log", "Access log"));
    }
    items.push(("agp", "AGP report"));
    items
        .into_iter()
        .map(|(href, label)| {
            let href = if href.starts_with('/') { href.to_string() } else { format!("/ui/patients/{patient}/{href}") };
            NavLink { current: href.ends_with(&format!("/{current}")), href, label }
        })
        .collect()
}

/// A page of the signed-in participant.
pub(crate) fn page(viewer: &Reader, title: &str, nav: &[NavLink], body: Markup) -> HttpResponse {
    let who = format!("{} ({})", viewer.id, viewer.role.as_str());
    respond(StatusCode::OK, document(title, Some(&who), nav, body))
}

async fn sign_in_page(req: HttpRequest, api: Api, web: Web) -> HttpResponse {
    if let Ok(v) = viewer(&req, &api, &web).await {
        return HttpResponse::SeeOther().insert_header(("location", home(&v))).finish();
    }
    let body = html! {
        div.narrow {
            h1 { "Sign in" }
            p { "Sign in with your GlucoChain key file: the private key your device or administrator gave you (" code { ".pem" } "). "
                "It is used inside this browser to sign; it is never sent anywhere." }
            form.signin data-audience=(api.policy.audience) data-chain-id=(api.policy.chain_id) method="post" action="/ui/session" {
                label for="key" { "Your key file" }
                input #key type="file" name="key" accept=".pem,.key,application/x-pem-file" required;
                p { button type="submit" { "Sign in" } }
            }
            noscript { p.notice.bad { "Signing in needs JavaScript: the key signs inside the browser." } }
        }
    };
    respond(StatusCode::OK, document("Sign in", None, &[], body))
}

fn home(v: &Reader) -> String {
    if v.role == Role::Patient { format!("/ui/patients/{}/records", v.id) } else { "/ui/patients".into() }
}

/// Body of a sign-in.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SignIn {
    /// A read token the participant signed in the browser (at most 300 s).
    token: String,
}

fn session_cookie(web: &WebState, value: String, max_age_secs: i64) -> Cookie<'static> {
    Cookie::build(session::COOKIE, value)
        .path(session::COOKIE_PATH)
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(web.secure_cookies)
        .max_age(actix_web::cookie::time::Duration::seconds(max_age_secs))
        .finish()
}

async fn sign_in(req: HttpRequest, api: Api, web: Web, body: web::Json<SignIn>) -> Result<HttpResponse, Problem> {
    same_origin(&req)?;
    let now = Timestamp::now().unix_ms();
    let bearer = format!("Bearer {}", body.token.trim());
    let (id, role, claims) = {
        let view = api.ledger.chain.view.read().expect("view lock");
        let (p, claims) = glucochain_api::authenticate_claims(Some(&bearer), view.state(), &api.policy, now / 1000)?;
        (p.id.clone(), p.role, claims)
    };
    // One signed token opens one session: a token copied on its way here opens nothing more.
    let (cookie, hash) = session::new_session();
    let expires = now + web.session_ms;
    let jti_until = (claims.exp + api.policy.leeway_secs) * 1000;
    let created = api.ledger.store.create_web_session(id.as_str(), &claims.jti, jti_until, &hash, now, expires).await;
    match created {
        Ok(Ok(())) => {}
        Ok(Err(glucochain_store::SessionRefused::TokenReused)) => {
            return Err(Problem::new(
                StatusCode::UNAUTHORIZED,
                "token-reused",
                "Sign-in token already used",
                "each sign-in needs a newly signed token; sign in again",
            ));
        }
        Err(e) => {
            tracing::error!(error = %e, "web session not stored");
            return Err(Problem::unavailable("the session could not be opened; try again"));
        }
    }
    tracing::info!(participant = %id, role = role.as_str(), "web sign-in");
    Ok(HttpResponse::Ok().cookie(session_cookie(&web, cookie, web.session_ms / 1000)).json(json!({
        "participant": id.as_str(), "home": home(&Reader { id, role }), "expires_ms": expires,
    })))
}

/// Ends the session here (its cookie stops working everywhere at once) and clears the cookie.
async fn sign_out(req: HttpRequest, api: Api, web: Web) -> HttpResponse {
    if let Err(p) = same_origin(&req) {
        return finish(Err(p.into()));
    }
    if let Some(hash) = req.cookie(session::COOKIE).and_then(|c| session::id_hash(c.value()))
        && let Err(e) = api.ledger.store.end_web_session(&hash, Timestamp::now().unix_ms()).await
    {
        tracing::error!(error = %e, "sign-out not recorded");
        return finish(Err(Problem::unavailable("signing out failed; try again").into()));
    }
    HttpResponse::SeeOther().cookie(session_cookie(&web, String::new(), 0)).insert_header(("location", "/ui/")).finish()
}

/// Routes of the web pages.
pub fn configure(cfg: &mut web::ServiceConfig) {
    glucochain_web::assets::configure(cfg);
    cfg.route(
        "/ui",
        web::get().to(|| async { HttpResponse::PermanentRedirect().insert_header(("location", "/ui/")).finish() }),
    )
    .route("/ui/", web::get().to(sign_in_page))
    .route("/ui/session", web::post().to(sign_in))
    .route("/ui/signout", web::post().to(sign_out))
    .route("/ui/patients", web::get().to(pages::patients))
    .route("/ui/patients/{id}/records", web::get().to(pages::records))
    .route("/ui/patients/{id}/consents", web::get().to(pages::consents))
    .route("/ui/patients/{id}/careplan", web::get().to(pages::careplan))
    .route("/ui/patients/{id}/emergency", web::get().to(pages::emergency))
    .route("/ui/patients/{id}/access-log", web::get().to(pages::access_log))
    .route("/ui/patients/{id}/agp", web::get().to(agp::report))
    .route("/ui/patients/{id}/agp.csv", web::get().to(agp::readings_csv))
    .route("/ui/tx/prepare", web::post().to(tx::prepare))
    .route("/ui/tx/submit", web::post().to(tx::submit));
}
