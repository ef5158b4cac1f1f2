//! The notifier's HTTP API: an alert's delivery state, acknowledgement (by
//! a signed link, a read token, a signed `alert.ack`, or an SMS reply), and
//! the page an acknowledge link opens.

use crate::outbox::SourceRow;
use crate::{Notifier, link};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError as _, web};
use glucochain_api::{Problem, authenticate};
use glucochain_crypto::jose::TokenPolicy;
use glucochain_types::ParticipantId;
use glucochain_types::time::Timestamp;
use glucochain_types::tx::ChannelKind;
use serde_json::json;
use std::sync::Arc;

/// Handler state.
pub struct ApiState {
    /// The notifier.
    pub notifier: Arc<Notifier>,
    /// Read-token rules.
    pub policy: TokenPolicy,
    /// The secret the SMS gateway signs replies with; none: replies are not taken.
    pub sms_secret: Option<Vec<u8>>,
    /// SMS replies per sending number.
    pub sms_per_number: std::sync::Mutex<glucochain_api::rate::RateLimiter>,
    /// SMS replies all together.
    pub sms_overall: std::sync::Mutex<glucochain_api::rate::RateLimiter>,
}

/// The header an acknowledge link's token travels in to the API (never the
/// query string, which proxies and access logs keep).
pub const LINK_HEADER: &str = "x-glucochain-link";

/// How long after its link was used an alert page still shows the glucose
/// values and chart; after that it says only who acknowledged and when.
pub const PAGE_AFTER_USE_MS: i64 = 15 * 60_000;

type Data = web::Data<ApiState>;

fn internal(e: impl std::fmt::Display) -> Problem {
    tracing::error!(error = %e, "notifier API");
    Problem::internal()
}

fn forbidden(detail: impl Into<String>) -> Problem {
    Problem::new(StatusCode::FORBIDDEN, "forbidden", "Not authorized", detail)
}

fn unauthenticated(detail: &str) -> Problem {
    Problem::new(StatusCode::UNAUTHORIZED, "unauthenticated", "Authentication required", detail.to_string())
}

fn bearer(req: &HttpRequest, s: &ApiState) -> Result<Option<ParticipantId>, Problem> {
    let Some(header) = req.headers().get("authorization").and_then(|v| v.to_str().ok()) else { return Ok(None) };
    let view = s.notifier.chain.view.read().expect("view lock");
    let p = authenticate(Some(header), view.state(), &s.policy, Timestamp::now().unix_ms() / 1000)?;
    Ok(Some(p.id.clone()))
}

async fn source_of(s: &ApiState, id: &str) -> Result<SourceRow, Problem> {
    s.notifier.outbox.source(id).await.map_err(internal)?.ok_or_else(|| Problem::not_found(format!("no alert {id}")))
}

/// The delivery and its source a link token names.
async fn by_link(s: &ApiState, token: &str) -> Result<(crate::outbox::DeliveryRow, SourceRow), Problem> {
    let refused =
        |e: link::LinkError| Problem::new(StatusCode::UNAUTHORIZED, "bad-link", "Link not valid", e.to_string());
    let delivery_id = link::verify(&s.notifier.public_key(), token, Timestamp::now().unix_ms()).map_err(refused)?;
    let d = s
        .notifier
        .outbox
        .delivery(&delivery_id)
        .await
        .map_err(internal)?
        .ok_or_else(|| Problem::not_found("no such notification"))?;
    let src = source_of(s, &d.source_id).await?;
    Ok((d, src))
}

/// The channel kind of a stored channel name.
pub(crate) fn channel_kind(name: &str) -> ChannelKind {
    match name {
        "email" => ChannelKind::Email,
        "sms" => ChannelKind::Sms,
        _ => ChannelKind::Webhook,
    }
}

fn time(ms: Option<i64>) -> serde_json::Value {
    ms.map(|m| json!(Timestamp::from_unix_ms(m).to_rfc3339())).unwrap_or(serde_json::Value::Null)
}

async fn status_json(s: &ApiState, src: &SourceRow) -> Result<serde_json::Value, Problem> {
    let group = s.notifier.outbox.group(&src.group_id).await.map_err(internal)?;
    let deliveries = s.notifier.outbox.group_deliveries(&src.group_id).await.map_err(internal)?;
    let head = group.iter().find(|g| g.next_escalation_ms.is_some());
    let snoozes =
        s.notifier.outbox.active_snoozes(&src.patient, s.notifier.clock.now().unix_ms()).await.map_err(internal)?;
    Ok(json!({
        "alert_id": src.id,
        "source_kind": src.source_kind,
        "patient": src.patient,
        "kind": src.kind,
        "level": crate::policy::Level::from_i32(src.severity).as_str(),
        "group_id": src.group_id,
        "received": time(Some(src.received_ms)),
        "acknowledged": src.acked_ms.map(|_| json!({
            "by": src.acked_by, "via": src.ack_via, "at": time(src.acked_ms),
        })),
        "escalation": {
            "step": group.iter().map(|g| g.step).max().unwrap_or(0),
            "next_at": time(head.and_then(|h| h.next_escalation_ms)),
        },
        "alerts_in_group": group.iter().map(|g| json!({
            "alert_id": g.id, "kind": g.kind, "received": time(Some(g.received_ms)),
        })).collect::<Vec<_>>(),
        "deliveries": deliveries.iter().map(|d| json!({
            "contact": d.contact,
            "channel": d.channel,
            "address": channel_kind(&d.channel).mask(&d.address),
            "step": d.step,
            "state": d.state,
            "attempts": d.attempts,
            "due": time(Some(d.due_ms)),
            "sent": time(d.sent_ms),
            "last_error": d.last_error,
        })).collect::<Vec<_>>(),
        "snoozes": snoozes.iter().map(|z| json!({
            "contact": z.contact, "kind": z.kind, "until": time(Some(z.until_ms)), "since": time(Some(z.created_ms)),
        })).collect::<Vec<_>>(),
    }))
}

/// An alert's delivery state: who was told, on which channel, when, whether
/// it was sent, and who acknowledged. For the patient, the care team and
/// admins (read token), or the holder of one of its acknowledge links (in
/// the `X-GlucoChain-Link` header).
#[utoipa::path(get, path = "/v1/alerts/{id}", tag = "alerts",
    params(("id" = String, Path, description = "alert id"), ("X-GlucoChain-Link" = Option<String>, Header, description = "an acknowledge link token")),
    responses((status = 200, description = "delivery state per contact and channel"), (status = 400, body = Problem, description = "a token in the query string"), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn alert_status(req: HttpRequest, s: Data, id: web::Path<String>) -> Result<HttpResponse, Problem> {
    if !req.query_string().is_empty() {
        return Err(Problem::bad_request(format!(
            "no query parameters here: send a link token in the {LINK_HEADER} header, never in the URL"
        )));
    }
    let link = req.headers().get(LINK_HEADER).and_then(|v| v.to_str().ok()).map(str::trim);
    let src = if let Some(token) = link {
        let (_, src) = by_link(&s, token).await?;
        let asked = source_of(&s, &id).await?;
        if asked.group_id != src.group_id {
            return Err(forbidden("the link is for another alert"));
        }
        asked
    } else {
        let who = bearer(&req, &s)?.ok_or_else(|| unauthenticated("a read token or link token"))?;
        let src = source_of(&s, &id).await?;
        if !s.notifier.on_care_team(&who, &src.patient) {
            return Err(forbidden("only the patient, the care team and admins"));
        }
        src
    };
    Ok(HttpResponse::Ok().json(status_json(&s, &src).await?))
}

/// Body of an acknowledgement.
#[derive(serde::Deserialize, utoipa::ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct AckRequest {
    /// The acknowledge link token (from the email).
    #[serde(default)]
    pub token: Option<String>,
    /// A signed `alert.ack` transaction (JWS) by a care-team member (`emrctl alert ack`).
    #[serde(default)]
    pub tx: Option<String>,
}

/// Acknowledges an alert (and its group): escalation stops on every channel.
/// With a link token or a read token the notifier records the `alert.ack` on
/// the chain on the person's behalf; a signed `alert.ack` is forwarded as is.
#[utoipa::path(post, path = "/v1/alerts/{id}/ack", tag = "alerts", request_body = AckRequest,
    params(("id" = String, Path, description = "alert id")),
    responses((status = 200, description = "acknowledged (or already was)"), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem, description = "the link was used before")))]
pub async fn ack(
    req: HttpRequest,
    s: Data,
    id: web::Path<String>,
    body: Option<web::Json<AckRequest>>,
) -> Result<HttpResponse, Problem> {
    let body = body.map(|b| b.into_inner()).unwrap_or_default();
    let src = source_of(&s, &id).await?;
    if src.source_kind != "alert" {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "not-acknowledgeable",
            "Not an alert",
            "reminders and notices need no acknowledgement",
        ));
    }
    let (by, first) = if let Some(token) = &body.token {
        let (d, link_src) = by_link(&s, token).await?;
        if link_src.group_id != src.group_id {
            return Err(forbidden("the link is for another alert"));
        }
        let by = ParticipantId::parse(&d.contact).map_err(internal)?;
        // A link acknowledges once, on this path as on the page's.
        if !s.notifier.outbox.use_link(&d.id, Timestamp::now().unix_ms()).await.map_err(internal)? {
            return Err(Problem::new(
                StatusCode::CONFLICT,
                "link-used",
                "Link already used",
                "this acknowledge link was used before; the alert's state is at GET /v1/alerts/{id}",
            ));
        }
        let first = s.notifier.acknowledge(&src, &by, "link", true).await.map_err(internal)?;
        (by, first)
    } else if let Some(tx) = &body.tx {
        let by = s
            .notifier
            .acknowledge_signed(&src, tx.trim())
            .await
            .map_err(|e| Problem::new(StatusCode::FORBIDDEN, "ack-refused", "Acknowledgement refused", e))?;
        (by, true)
    } else {
        let who =
            bearer(&req, &s)?.ok_or_else(|| unauthenticated("a link token, a signed alert.ack or a read token"))?;
        if !s.notifier.on_care_team(&who, &src.patient) {
            return Err(forbidden("only the patient and the care team"));
        }
        let first = s.notifier.acknowledge(&src, &who, "api", true).await.map_err(internal)?;
        (who, first)
    };
    Ok(HttpResponse::Ok().json(json!({ "alert_id": src.id, "acknowledged_by": by.as_str(), "first": first })))
}

fn problem_page(p: &Problem) -> HttpResponse {
    glucochain_web::page::error_page(p.status_code(), "This link cannot be used", &p.to_string())
}

fn level_class(level: crate::policy::Level) -> &'static str {
    match level {
        crate::policy::Level::Urgent => "level-urgent",
        crate::policy::Level::Warning => "level-warning",
        crate::policy::Level::Info => "level-info",
    }
}

fn delivery_state(state: &str) -> &'static str {
    match state {
        "sent" => "sent",
        "pending" => "waiting to be sent",
        "sending" => "sending",
        "failed" => "failed",
        "suppressed" => "not sent (acknowledged before its turn)",
        _ => "unknown",
    }
}

/// The page an acknowledge link opens: what happened, the last hours of
/// glucose with the care plan's thresholds and the prediction, who else was
/// told and whether anyone acknowledged, and an Acknowledge button (a GET
/// never acknowledges, so mail scanners that follow links do not).
pub async fn link_page(req: HttpRequest, s: Data, token: web::Path<String>) -> HttpResponse {
    use glucochain_web::chart::{Thresholds, trace};
    use glucochain_web::{date_time, html};
    let (d, src) = match by_link(&s, &token).await {
        Ok(x) => x,
        Err(p) => return problem_page(&p),
    };
    let n = s.notifier.notice_for(&src, &d);
    // Snoozes run on the notifier's clock, as its escalation does.
    let now = s.notifier.clock.now().unix_ms();
    let snoozes = match s.notifier.outbox.active_snoozes(&src.patient, now).await {
        Ok(z) => z,
        Err(e) => return problem_page(&internal(e)),
    };
    let choices = if src.source_kind == "alert" { crate::policy::snooze_choices(n.level) } else { &[] };
    let mine = snoozes.iter().find(|z| z.contact == d.contact && z.kind == src.kind);
    let (group, deliveries) =
        match (s.notifier.outbox.group(&src.group_id).await, s.notifier.outbox.group_deliveries(&src.group_id).await) {
            (Ok(g), Ok(ds)) => (g, ds),
            (Err(e), _) | (_, Err(e)) => return problem_page(&internal(e)),
        };
    let limits = match ParticipantId::parse(&src.patient) {
        Ok(p) => s.notifier.plan_thresholds(&p).await,
        Err(_) => None,
    }
    .map(|t| Thresholds { urgent_low: t.urgent_low, low: t.low, high: t.high })
    .unwrap_or_default();
    // A contact by the directory's name, else by role and the start of their id.
    let name = |id: &str| {
        let Ok(p) = ParticipantId::parse(id) else { return "someone".to_string() };
        s.notifier.directory.name(&p).unwrap_or_else(|| {
            let view = s.notifier.chain.view.read().expect("view lock");
            let role = view.state().participant(&p).map(|x| x.role.as_str()).unwrap_or("contact");
            format!("{role} {}…", &id[..8.min(id.len())])
        })
    };
    let about = |source_id: &str| {
        group.iter().find(|g| g.id == source_id).map(|g| crate::message::headline(&g.kind)).unwrap_or("")
    };
    let acked = group.iter().find(|g| g.acked_ms.is_some()).or(src.acked_ms.map(|_| &src));
    let next_escalation = group.iter().filter_map(|g| g.next_escalation_ms).min();
    let just_done = req.query_string() == "acknowledged=1";
    let used_before = req.query_string() == "acknowledged=again";
    // A used link keeps showing the glucose for a short while, then only the outcome.
    if d.link_used_ms.is_some_and(|t| Timestamp::now().unix_ms() - t > PAGE_AFTER_USE_MS) {
        let body = html! {
            div.narrow {
                h1 { "Alert acknowledged" }
                @match acked {
                    Some(a) => p #ack-state data-state="acknowledged" {
                        "Acknowledged by " (a.acked_by.as_deref().map(name).unwrap_or_default())
                        " at " (date_time(a.acked_ms.unwrap_or_default())) "."
                    },
                    None => p #ack-state data-state="used" { "This link was used." },
                }
                p.muted { "This link was used; the alert's details are no longer shown here." }
            }
        };
        return glucochain_web::page::respond(
            StatusCode::OK,
            glucochain_web::page::document("Alert acknowledged", None, &[], body),
        );
    }
    let body = html! {
        div.narrow {
            h1 class=(level_class(n.level)) { (n.headline()) }
            p.facts { "for " strong { (n.patient_name) } }
            @if just_done { p.notice role="status" { "Thank you. The alert is acknowledged; nobody else will be alerted about it." } }
            @if used_before { p.notice role="status" { "Already acknowledged: this link was used before." } }
            @if req.query_string() == "snoozed=1" { p.notice role="status" { "Snoozed. The other contacts are still alerted and see your snooze." } }
            ul.facts { @for f in n.facts() { li { (f) } } }
            (trace(&n.recent, limits, n.predicted.map(|(g, at)| (at, g)), 0))
            p { strong { "What to do: " } (n.advice()) }
            @if !n.detail.is_empty() { p.muted { "Why: " (n.detail) } }
            h2 { "Who knows" }
            @match acked {
                Some(a) => p #ack-state data-state="acknowledged" {
                    span.granted { "Acknowledged" } " by " (a.acked_by.as_deref().map(name).unwrap_or_default())
                    " at " (date_time(a.acked_ms.unwrap_or_default())) " (" (a.ack_via.as_deref().unwrap_or("")) "). Escalation stopped."
                },
                None => p #ack-state data-state="open" {
                    span.denied { "Not acknowledged yet." }
                    @if let Some(at) = next_escalation { " If nobody acknowledges, the next contact is alerted at " (date_time(at)) "." }
                },
            }
            table #deliveries {
                caption.muted { "Notifications of this alert" }
                thead { tr { th scope="col" { "Who" } th scope="col" { "About" } th scope="col" { "How" } th scope="col" { "State" } } }
                tbody {
                    @for x in &deliveries {
                        tr data-step=(x.step) data-state=(x.state) {
                            td { (name(&x.contact)) @if x.contact == d.contact { " (you)" } @if x.step > 0 { br; span.muted { "escalation " (x.step) } } }
                            td { (about(&x.source_id)) }
                            td { (x.channel) " " span.muted { (channel_kind(&x.channel).mask(&x.address)) } }
                            td { (delivery_state(&x.state)) @if let Some(t) = x.sent_ms { ", " (date_time(t)) } }
                        }
                    }
                }
            }
            @if acked.is_none() {
                form method="post" action=(format!("/a/{}", token.as_str())) {
                    button.big type="submit" { "Acknowledge" }
                }
                p.muted { "or reply to the SMS with " strong { (n.ack_code) } }
            }
            h2 { "Snoozed" }
            @if snoozes.is_empty() {
                p #snoozes.muted data-count="0" { "Nobody has snoozed alerts for " (n.patient_name) "." }
            } @else {
                ul #snoozes data-count=(snoozes.len()) {
                    @for z in &snoozes {
                        li data-kind=(z.kind) {
                            (name(&z.contact)) @if z.contact == d.contact { " (you)" }
                            " snoozed “" (crate::message::headline(&z.kind)) "” until " (date_time(z.until_ms))
                            ". The others are still alerted."
                        }
                    }
                }
            }
            @if !choices.is_empty() {
                form #snooze method="post" action=(format!("/a/{}/snooze", token.as_str())) {
                    label for="snooze-minutes" {
                        "Snooze “" (n.headline()) "” for me for "
                    }
                    select #snooze-minutes name="minutes" {
                        @for m in choices {
                            option value=(m) { (m) " minutes" }
                        }
                    }
                    " "
                    button type="submit" { "Snooze" }
                    p.muted {
                        @if let Some(z) = mine { "You have snoozed these until " (date_time(z.until_ms)) ". " }
                        "While snoozed you are not sent this kind of alert; the other contacts still are, and see your snooze here. It does not acknowledge this alert."
                    }
                }
            }
        }
    };
    glucochain_web::page::respond(StatusCode::OK, glucochain_web::page::document(n.headline(), None, &[], body))
}

/// The Acknowledge button of the link page: acknowledges once, then shows the page again.
pub async fn link_ack(req: HttpRequest, s: Data, token: web::Path<String>) -> HttpResponse {
    if !glucochain_web::page::same_origin(&req) {
        return problem_page(&forbidden("the Acknowledge button works only from the alert page itself"));
    }
    let (d, src) = match by_link(&s, &token).await {
        Ok(x) => x,
        Err(p) => return problem_page(&p),
    };
    let Ok(by) = ParticipantId::parse(&d.contact) else { return problem_page(&Problem::internal()) };
    let back =
        HttpResponse::SeeOther().insert_header(("location", format!("/a/{}?acknowledged=1", token.as_str()))).finish();
    match s.notifier.outbox.use_link(&d.id, Timestamp::now().unix_ms()).await {
        Ok(true) => match s.notifier.acknowledge(&src, &by, "link", true).await {
            Ok(_) => back,
            Err(e) => problem_page(&internal(format!("{e:#}"))),
        },
        // Used before: the page says who acknowledged and when.
        Ok(false) => HttpResponse::SeeOther()
            .insert_header(("location", format!("/a/{}?acknowledged=again", token.as_str())))
            .finish(),
        Err(e) => problem_page(&internal(e)),
    }
}

/// The form of the Snooze button.
#[derive(serde::Deserialize)]
pub struct SnoozeForm {
    /// How long, minutes (one of [`crate::policy::snooze_choices`]).
    pub minutes: u32,
}

/// The Snooze button of the link page: the link's contact holds this kind of
/// alert of this patient for the chosen time. The escalation passes them by
/// at once; everyone else is still alerted and sees the snooze on their page.
pub async fn link_snooze(
    req: HttpRequest,
    s: Data,
    token: web::Path<String>,
    form: Result<web::Form<SnoozeForm>, actix_web::Error>,
) -> HttpResponse {
    if !glucochain_web::page::same_origin(&req) {
        return problem_page(&forbidden("the Snooze button works only from the alert page itself"));
    }
    let (d, src) = match by_link(&s, &token).await {
        Ok(x) => x,
        Err(p) => return problem_page(&p),
    };
    if d.link_used_ms.is_some_and(|t| Timestamp::now().unix_ms() - t > PAGE_AFTER_USE_MS) {
        return problem_page(&forbidden("this link was used; snooze from a newer alert"));
    }
    // Snoozes run on the notifier's clock, as its escalation does.
    let now = s.notifier.clock.now().unix_ms();
    let level = crate::policy::Level::from_i32(src.severity);
    let choices = if src.source_kind == "alert" { crate::policy::snooze_choices(level) } else { &[] };
    let minutes = match form {
        Ok(f) if choices.contains(&f.minutes) => f.minutes,
        _ => {
            return problem_page(&Problem::new(
                StatusCode::BAD_REQUEST,
                "bad-snooze",
                "Snooze not possible",
                format!("{} alerts can be snoozed for {:?} minutes", src.kind, choices),
            ));
        }
    };
    let row = crate::outbox::SnoozeRow {
        patient: src.patient.clone(),
        contact: d.contact.clone(),
        kind: src.kind.clone(),
        until_ms: now + i64::from(minutes) * 60_000,
        created_ms: now,
        via: "link".into(),
    };
    if let Err(e) = s.notifier.outbox.snooze(&row, &src.group_id).await {
        return problem_page(&internal(e));
    }
    tracing::info!(source = %src.id, contact = %d.contact, kind = %src.kind, minutes, "snoozed");
    s.notifier.wake.notify_one();
    HttpResponse::SeeOther().insert_header(("location", format!("/a/{}?snoozed=1", token.as_str()))).finish()
}

/// An inbound SMS from the gateway (form-encoded `From`, `Body`).
#[derive(serde::Deserialize)]
pub struct InboundSms {
    /// The sender's number.
    #[serde(rename = "From")]
    pub from: String,
    /// The text.
    #[serde(rename = "Body")]
    pub body: String,
}

/// An SMS reply from the gateway: signed by the gateway (see
/// [`crate::sms_reply`]), within the per-number and overall rates, the code
/// of an alert notification sent to that number in the last day, whose alert
/// nobody acknowledged yet, acknowledges it.
pub async fn sms_inbound(req: HttpRequest, s: Data, body: web::Bytes) -> Result<HttpResponse, Problem> {
    use crate::sms_reply::{REPLY_WINDOW_MS, SIGNATURE_HEADER, verify};
    let Some(secret) = &s.sms_secret else {
        return Err(Problem::not_found("SMS replies are not configured here"));
    };
    let header = req.headers().get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
    if let Err(e) = verify(secret, header, &body, Timestamp::now().unix_ms() / 1000) {
        metrics::counter!("glucochain_notify_sms_replies_refused_total", "reason" => "signature").increment(1);
        return Err(Problem::new(StatusCode::UNAUTHORIZED, "bad-signature", "Not the SMS gateway", e.to_string()));
    }
    let form = std::str::from_utf8(&body)
        .ok()
        .and_then(|t| web::Query::<InboundSms>::from_query(t).ok())
        .ok_or_else(|| Problem::bad_request("a form with From and Body"))?;
    let from = form.from.trim();
    let now = std::time::Instant::now();
    let taken = s.sms_per_number.lock().expect("limiter lock").take(from, now);
    let taken = taken.and_then(|_| s.sms_overall.lock().expect("limiter lock").take("*", now));
    if let Err(wait) = taken {
        metrics::counter!("glucochain_notify_sms_replies_refused_total", "reason" => "rate").increment(1);
        return Err(Problem::rate_limited("Too many SMS replies", "slow down", wait));
    }
    let code: String = form.body.trim().to_uppercase().chars().filter(|c| c.is_ascii_alphanumeric()).take(12).collect();
    let since = s.notifier.clock.now().unix_ms() - REPLY_WINDOW_MS;
    let found = if code.len() == crate::outbox::ACK_CODE_LEN {
        s.notifier.outbox.by_sms_code(from, &code, since).await.map_err(internal)?
    } else {
        None
    };
    let Some(d) = found else {
        return Ok(HttpResponse::Ok().content_type("text/plain").body("Code not recognised."));
    };
    let src = source_of(&s, &d.source_id).await?;
    if src.source_kind != "alert" || src.acked_ms.is_some() || src.resolved_ms.is_some() {
        return Ok(HttpResponse::Ok().content_type("text/plain").body("Already acknowledged or over. Thank you."));
    }
    let by = ParticipantId::parse(&d.contact).map_err(internal)?;
    s.notifier.acknowledge(&src, &by, "sms", true).await.map_err(internal)?;
    Ok(HttpResponse::Ok().content_type("text/plain").body("Acknowledged. Thank you."))
}

/// The OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "GlucoChain notifier API",
        description = "Alert delivery state and acknowledgement. Reads need a read token (`emrctl token`) or an acknowledge link token."
    ),
    paths(alert_status, ack),
    components(schemas(Problem, AckRequest))
)]
pub struct ApiDoc;

async fn openapi() -> HttpResponse {
    use utoipa::OpenApi as _;
    glucochain_api::service::openapi_response(&ApiDoc::openapi())
}

/// Routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(glucochain_api::json_config())
        .app_data(glucochain_api::path_config())
        .configure(glucochain_web::assets::configure)
        .route("/openapi.json", web::get().to(openapi))
        .service(glucochain_api::service::endpoint("/v1/alerts/{id}", "GET").route(web::get().to(alert_status)))
        .service(glucochain_api::service::endpoint("/v1/alerts/{id}/ack", "POST").route(web::post().to(ack)))
        .service(
            glucochain_api::service::endpoint("/a/{token}", "GET, POST")
                .route(web::get().to(link_page))
                .route(web::post().to(link_ack)),
        )
        .service(glucochain_api::service::endpoint("/a/{token}/snooze", "POST").route(web::post().to(link_snooze)))
        .service(glucochain_api::service::endpoint("/v1/sms/inbound", "POST").route(web::post().to(sms_inbound)))
        .default_service(web::to(glucochain_api::service::no_such_endpoint));
}
