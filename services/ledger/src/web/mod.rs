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
use glucochain_api::{Problem, authenticate};
use glucochain_crypto::KeyPair;
use glucochain_types::time::Timestamp;
use glucochain_types::{ParticipantId, Role};
use glucochain_web::page::{NavLink, document, error_page, respond};
use glucochain_web::{Markup, html, session};
use serde_json::json;

/// Settings of the web pages.
pub struct WebState {
    /// Signs session cookies (the ledger's key, or one made at start-up).
    pub session_key: std::sync::Arc<KeyPair>,
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

/// The signed-in participant, checked against committed state (a revoked
/// participant's session ends) and their read rate.
pub(crate) fn viewer(req: &HttpRequest, api: &ApiState, web: &WebState) -> Result<Reader, PageError> {
    let cookie = req.cookie(session::COOKIE).ok_or(PageError::SignIn)?;
    let id = session::verify(&web.session_key.public(), cookie.value(), Timestamp::now().unix_ms())
        .map_err(|_| PageError::SignIn)?;
    let view = api.ledger.chain.view.read().expect("view lock");
    let p = view.state().participant(&id).filter(|p| p.is_active()).ok_or(PageError::SignIn)?;
    let reader = Reader { id: p.id.clone(), role: p.role };
    drop(view);
    throttle(api, &reader)?;
    Ok(reader)
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
    if let Ok(v) = viewer(&req, &api, &web) {
        return HttpResponse::SeeOther().insert_header(("location", home(&v))).finish();
    }
    let body = html! {
        div.narrow {
            h1 { "Sign in" }
            p { "Sign in with your GlucoChain key file: the private key your device or administrator gave you (" code { ".pem" } "). "
                "It is used inside this browser to sign; it is never sent anywhere." }
            form.signin data-audience=(api.policy.audience) method="post" action="/ui/session" {
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
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(web.secure_cookies)
        .max_age(actix_web::cookie::time::Duration::seconds(max_age_secs))
        .finish()
}

async fn sign_in(api: Api, web: Web, body: web::Json<SignIn>) -> Result<HttpResponse, Problem> {
    let now = Timestamp::now().unix_ms();
    let bearer = format!("Bearer {}", body.token.trim());
    let (id, role) = {
        let view = api.ledger.chain.view.read().expect("view lock");
        let p = authenticate(Some(&bearer), view.state(), &api.policy, now / 1000)?;
        (p.id.clone(), p.role)
    };
    tracing::info!(participant = %id, role = role.as_str(), "web sign-in");
    let cookie = session::issue(&web.session_key, &id, now + web.session_ms);
    Ok(HttpResponse::Ok()
        .cookie(session_cookie(&web, cookie, web.session_ms / 1000))
        .json(json!({ "participant": id.as_str(), "home": home(&Reader { id, role }) })))
}

async fn sign_out(web: Web) -> HttpResponse {
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
