//! The contracts engine's HTTPS API: break-glass reads of the emergency
//! profile, a patient's consents, care plan and upcoming reminders.

use crate::engine::Engine;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use glucochain_api::{Problem, authenticate};
use glucochain_crypto::jose::TokenPolicy;
use glucochain_state::{ReadDecision, decide_careplan_read, emergency_profile_for};
use glucochain_types::emergency::EmergencyCard;
use glucochain_types::time::Timestamp;
use glucochain_types::tx::TxType;
use glucochain_types::{ParticipantId, Role};
use serde_json::json;
use std::sync::Arc;

/// Where the reads served here are audited.
pub enum AuditLog {
    /// The ledger's hash-chained audit log, over NATS (`emr.audit.append`):
    /// the patient sees these reads in their access log.
    Ledger(glucochain_bus::Bus),
}

/// Handler state.
pub struct ApiState {
    /// The engine.
    pub engine: Arc<Engine>,
    /// Sealed bodies (the replicated vault): emergency profiles, opened
    /// only for a clinician whose break-glass access is committed.
    pub vault: glucochain_vault::replica::VaultReader,
    /// Where reads are audited.
    pub audit: AuditLog,
    /// Token rules.
    pub policy: TokenPolicy,
}

type Data = web::Data<ApiState>;

fn reader(req: &HttpRequest, s: &ApiState) -> Result<(ParticipantId, Role), Problem> {
    let header = req.headers().get("authorization").and_then(|v| v.to_str().ok());
    let view = s.engine.chain.view.read().expect("view lock");
    let p = authenticate(header, view.state(), &s.policy, Timestamp::now().unix_ms() / 1000)?;
    Ok((p.id.clone(), p.role))
}

fn forbidden(detail: impl Into<String>) -> Problem {
    Problem::new(StatusCode::FORBIDDEN, "forbidden", "Not authorized", detail)
}

/// Whether `reader` is the patient themself or an admin (the decision rule's `All`).
fn own_or_admin(s: &ApiState, reader: &ParticipantId, patient: &ParticipantId) -> bool {
    matches!(s.engine.decide(reader, patient, "PATRQT", Timestamp::now()), ReadDecision::All { .. })
}

/// One read served here, as the audit log records it.
struct Read<'a> {
    reader: &'a ParticipantId,
    role: Role,
    patient: Option<&'a ParticipantId>,
    action: &'static str,
    purpose: &'static str,
}

/// Appends the read (granted or refused) to the ledger's audit log and
/// waits for its sequence number; a read that cannot be audited is not
/// served (503), like at the ledger. A refusal then answers 403.
async fn audited(s: &ApiState, req: &HttpRequest, read: Read<'_>, granted: bool, reason: &str) -> Result<(), Problem> {
    let AuditLog::Ledger(bus) = &s.audit;
    let entry = glucochain_wire::v1::AuditAppend {
        reader: read.reader.as_str().to_string(),
        reader_role: read.role.as_str().to_string(),
        patient: read.patient.map(|p| p.as_str().to_string()).unwrap_or_default(),
        action: read.action.to_string(),
        resource: req.uri().path().to_string(),
        purpose: read.purpose.to_string(),
        granted,
        reason: reason.to_string(),
    };
    match glucochain_follow::audit::append(bus, &entry).await {
        Ok(_) => {}
        Err(glucochain_follow::audit::AppendError::RateLimited(wait)) => {
            let detail = "too many refused reads of this patient lately; retry later";
            return Err(Problem::rate_limited("Too many refused reads", detail, wait));
        }
        Err(e) => return Err(unaudited(&e.to_string())),
    }
    metrics::counter!("glucochain_contracts_reads_total", "outcome" => if granted { "granted" } else { "denied" })
        .increment(1);
    if granted { Ok(()) } else { Err(forbidden(reason.to_string())) }
}

fn unaudited(why: &str) -> Problem {
    tracing::error!(error = why, "audit append failed; refusing the read");
    metrics::counter!("glucochain_contracts_unaudited_total").increment(1);
    Problem::unavailable("the access could not be audited")
}

/// A read only the patient and admins may make, audited either way.
async fn own_or_admin_audited(
    s: &ApiState,
    req: &HttpRequest,
    who: &ParticipantId,
    role: Role,
    patient: &ParticipantId,
    action: &'static str,
) -> Result<(), Problem> {
    let granted = own_or_admin(s, who, patient);
    let read = Read { reader: who, role, patient: Some(patient), action, purpose: purpose_of(who, patient) };
    let reason = if granted { "the patient or an admin" } else { "only the patient and admins" };
    audited(s, req, read, granted, reason).await
}

/// The purpose of use recorded for a read by `reader` of `patient`'s data.
fn purpose_of(reader: &ParticipantId, patient: &ParticipantId) -> &'static str {
    if reader == patient { "PATRQT" } else { "TREAT" }
}

fn patient_id(s: &str) -> Result<ParticipantId, Problem> {
    ParticipantId::parse(s).map_err(|e| Problem::bad_request(format!("patient id: {e}")))
}

/// Body of a break-glass read.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmergencyRequest {
    /// The emergency card as scanned from the wristband, phone or card
    /// (`gce1:<patient>:<code>`).
    pub card: String,
}

/// Break-glass: the emergency profile behind an emergency card, for a
/// clinician whose `access.emergency` with a proof of that card is committed
/// (and within its hour). Nothing else of the patient is returned.
#[utoipa::path(post, path = "/v1/emergency-access", tag = "emergency", request_body = EmergencyRequest,
    responses((status = 200, description = "blood group, allergies, diabetes type, medication, emergency contacts"),
        (status = 401, body = Problem), (status = 403, body = Problem, description = "no committed access.emergency by this clinician with this token, or it expired"),
        (status = 503, body = Problem, description = "a refusal could not be audited (the ledger is unreachable)")))]
pub async fn emergency_access(
    req: HttpRequest,
    s: Data,
    body: web::Json<EmergencyRequest>,
) -> Result<HttpResponse, Problem> {
    let (clinician, role) = reader(&req, &s)?;
    let refused = || {
        Problem::new(
            StatusCode::FORBIDDEN,
            "break-glass-required",
            "Break-glass access not granted",
            "commit access.emergency with a proof of this card first (emrctl emergency access); a card stops working when the patient issues a new one",
        )
    };
    let read = |patient| Read { reader: &clinician, role, patient, action: "emergency.read", purpose: "ETREAT" };
    if role != Role::Clinician {
        let reason = "break-glass is for registered clinicians";
        return Err(audited(&s, &req, read(None), false, reason).await.err().unwrap_or_else(|| forbidden(reason)));
    }
    let card = EmergencyCard::parse(&body.card).map_err(|e| Problem::bad_request(format!("card: {e}")))?;
    let now = Timestamp::now();
    // Decided on one view, released before the audit is written.
    let (patient, granted) = {
        let view = s.engine.chain.view.read().expect("view lock");
        let state = view.state();
        let profile = state.contracts().profile_by_card(&card.public_key()).filter(|p| p.patient == card.patient);
        let patient = profile.map(|p| p.patient.clone());
        let granted = profile.and_then(|profile| {
            let granted = emergency_profile_for(state, &clinician, &profile.patient, now)?;
            let until = state
                .contracts()
                .emergency_accesses
                .iter()
                .filter(|a| a.clinician == clinician && a.patient == granted.patient)
                .map(|a| a.until)
                .max();
            Some((granted.clone(), until))
        });
        (patient, granted)
    };
    let Some((granted, until)) = granted else {
        // A refusal is audited like any other; its answer stays the break-glass one.
        let reason = "no committed access.emergency by this clinician with this token, or it expired";
        match audited(&s, &req, read(patient.as_ref()), false, reason).await {
            Err(p) if p.status == 503 => return Err(p),
            _ => return Err(refused()),
        }
    };
    // The committed access.emergency is the durable record of a break-glass
    // read: an emergency is served even when the ledger cannot log it now.
    if let Err(p) = audited(&s, &req, read(patient.as_ref()), true, "committed access.emergency").await {
        tracing::warn!(
            status = p.status,
            "break-glass read served without an audit entry (the access.emergency transaction records it)"
        );
    }
    // Only now, for this clinician's committed access, is the profile's
    // body fetched from the vault and checked against the chain.
    let p = open_profile(&s, &granted).await?;
    Ok(HttpResponse::Ok().json(json!({
        "patient": granted.patient.as_str(),
        "blood_group": p.blood_group,
        "allergies": p.allergies,
        "diabetes_type": p.diabetes_type,
        "medications": p.medications,
        "emergency_contacts": p.emergency_contacts,
        "access_until": until.map(|u| u.to_rfc3339()),
    })))
}

/// The body of a committed emergency profile, from the vault, checked
/// against its commitment: 410 when the patient erased it.
async fn open_profile(
    s: &ApiState,
    profile: &glucochain_state::contracts::EmergencyProfile,
) -> Result<glucochain_types::tx::EmergencyProfileBody, Problem> {
    use glucochain_types::sealed::RecordBody;
    use glucochain_vault::replica::Opened;
    let wanted =
        glucochain_vault::replica::Wanted::of(&profile.tx, &profile.patient, glucochain_types::DataClass::Private);
    let found = s.vault.open_committed(&wanted, TxType::EmergencyProfileSet, &profile.profile.body_commitment).await;
    match found {
        Ok(Opened::Body { body: RecordBody::EmergencyProfile(p), .. }) => Ok(p),
        Ok(Opened::Body { .. }) | Err(glucochain_vault::VaultError::Commitment) => {
            tracing::error!(tx = %profile.tx, "an emergency profile's body does not open against its commitment");
            Err(Problem::internal())
        }
        Err(e) => {
            tracing::error!(error = %e, "record vault read failed");
            Err(Problem::unavailable("the record vault is unavailable; retry shortly"))
        }
        Ok(Opened::Erased { .. }) => Err(Problem::new(
            StatusCode::GONE,
            "erased",
            "Erased",
            "the patient erased their emergency profile (record.erase); it cannot be read",
        )),
        Ok(Opened::Missing) => Err(Problem::unavailable("the profile is not in the record vault yet; retry shortly")),
    }
}

/// The patient's consents, with their status.
#[utoipa::path(get, path = "/v1/patients/{id}/consents", tag = "patients",
    params(("id" = String, Path, description = "the patient's secure id", pattern = "^p[a-z2-7]{32}$")),
    responses((status = 200, description = "consents with status active, pending, expired or revoked"), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 503, body = Problem, description = "the read could not be audited (the ledger is unreachable)")))]
pub async fn consents(req: HttpRequest, s: Data, id: web::Path<String>) -> Result<HttpResponse, Problem> {
    let (who, role) = reader(&req, &s)?;
    let patient = patient_id(&id)?;
    own_or_admin_audited(&s, &req, &who, role, &patient, "consents.read").await?;
    let view = s.engine.chain.view.read().expect("view lock");
    let now = Timestamp::now();
    let list: Vec<serde_json::Value> = view
        .state()
        .contracts()
        .consents_of(&patient)
        .map(|c| {
            let status = if c.revoked_at.is_some() {
                "revoked"
            } else if c.valid_until.is_some_and(|u| now >= u) {
                "expired"
            } else if c.valid_from.is_some_and(|f| now < f) {
                "pending"
            } else {
                "active"
            };
            json!({
                "consent_id": c.consent_id.as_str(), "grantee": c.grantee.as_str(), "scope": c.scope,
                "purpose": c.purpose, "valid_from": c.valid_from.map(|t| t.to_rfc3339()),
                "valid_until": c.valid_until.map(|t| t.to_rfc3339()), "granted_at_height": c.granted_at,
                "revoked_at_height": c.revoked_at, "status": status,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "patient": patient.as_str(), "consents": list })))
}

/// The patient's care plans: the active version and pending proposals.
#[utoipa::path(get, path = "/v1/patients/{id}/careplan", tag = "patients",
    params(("id" = String, Path, description = "the patient's secure id", pattern = "^p[a-z2-7]{32}$")),
    responses((status = 200, description = "care plans with versions; `active` is the version in force"), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 503, body = Problem, description = "the read could not be audited (the ledger is unreachable)")))]
pub async fn careplan(req: HttpRequest, s: Data, id: web::Path<String>) -> Result<HttpResponse, Problem> {
    let (who, role) = reader(&req, &s)?;
    let patient = patient_id(&id)?;
    // The patient, admins, the contacts of the plan in force, and readers
    // whose consent covers care plans (the contract rule, `decide_careplan_read`).
    let decision = {
        let view = s.engine.chain.view.read().expect("view lock");
        decide_careplan_read(view.state(), &who, &patient, purpose_of(&who, &patient), Timestamp::now())
    };
    let (granted, reason) = (decision.allows(), decision.reason().to_string());
    let read = Read {
        reader: &who,
        role,
        patient: Some(&patient),
        action: "careplan.read",
        purpose: purpose_of(&who, &patient),
    };
    audited(&s, &req, read, granted, &reason).await?;
    careplan_json(&s, &patient, Timestamp::now()).await
}

/// Every version of the patient's care plans; each version's clinical
/// content (its sealed body) opened from the vault after the read was
/// audited. A version whose body is erased shows its envelope only, said so.
async fn careplan_json(s: &ApiState, patient: &ParticipantId, now: Timestamp) -> Result<HttpResponse, Problem> {
    let plans: Vec<_> = {
        let view = s.engine.chain.view.read().expect("view lock");
        view.state().contracts().careplans_of(patient).cloned().collect()
    };
    let mut out = Vec::with_capacity(plans.len());
    for p in plans {
        let mut versions = Vec::with_capacity(p.versions.len());
        for v in p.versions.values() {
            let opened = s.vault.careplan(patient, &v.proposal_tx, &v.plan).await.map_err(|e| {
                tracing::error!(error = %e, "record vault read failed (care plan)");
                Problem::unavailable("the record vault is unavailable; retry shortly")
            })?;
            let mut entry = json!({
                "version": v.plan.version, "proposer": v.proposer.as_str(), "proposal_tx": v.proposal_tx.to_string(),
                "proposed_at_height": v.proposed_at, "accepted_at_height": v.accepted_at,
            });
            match opened {
                Some(plan) => entry["plan"] = json!(plan),
                None => {
                    entry["plan"] = json!(v.plan);
                    entry["content"] = json!("erased (record.erase) or not in the record vault yet");
                }
            }
            versions.push(entry);
        }
        out.push(json!({
            "plan_id": p.plan_id.as_str(),
            "active_version": p.active_at(now).map(|v| v.plan.version),
            "versions": versions,
        }));
    }
    Ok(HttpResponse::Ok().json(json!({ "patient": patient.as_str(), "careplans": out })))
}

/// Reminders for the patient from `hours` ago to `hours` ahead (default 24):
/// medication reminders say whether a `medication.taken` was recorded
/// within 90 minutes of the due time.
#[utoipa::path(get, path = "/v1/patients/{id}/reminders", tag = "patients",
    params(("id" = String, Path, description = "the patient's secure id", pattern = "^p[a-z2-7]{32}$"), ("hours" = Option<u32>, Query, description = "how far ahead (1..=720)", minimum = 1, maximum = 720)),
    responses((status = 200, description = "medication and check-up reminders with due times"), (status = 400, body = Problem, description = "an hours value that is not 1..=720"), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 503, body = Problem, description = "the read could not be audited (the ledger is unreachable)")))]
pub async fn reminders(req: HttpRequest, s: Data, id: web::Path<String>) -> Result<HttpResponse, Problem> {
    let (who, role) = reader(&req, &s)?;
    let patient = patient_id(&id)?;
    let hours = i64::from(glucochain_api::query_u32(req.query_string(), "hours", 24, 1..=720)?);
    own_or_admin_audited(&s, &req, &who, role, &patient, "reminders.read").await?;
    let now = Timestamp::now();
    let from = Timestamp::from_unix_ms(now.unix_ms() - hours * 3_600_000);
    let until = Timestamp::from_unix_ms(now.unix_ms() + hours * 3_600_000);
    // This patient's plan only, opened once for every window.
    let plans = s.engine.active_plans(&s.vault, Some(&patient)).await.map_err(|e| {
        tracing::error!(error = %e, "record vault read failed (care plans)");
        Problem::unavailable("the record vault is unavailable; retry shortly")
    })?;
    let mut list = Vec::new();
    // Past and future windows of at most a day each (the scheduler's catch-up bound).
    let mut t = from;
    while t < until {
        let next = Timestamp::from_unix_ms((t.unix_ms() + 86_400_000).min(until.unix_ms()));
        list.extend(s.engine.due(&plans, t, next));
        t = next;
    }
    // Each medication.taken counts for the nearest scheduled dose of that
    // medication, within 90 minutes.
    let window = |t: Timestamp, ms: i64| Timestamp::from_unix_ms(t.unix_ms() + ms);
    let taken = s.engine.taken_between(&s.vault, &patient, window(from, -90 * 60_000), window(until, 90 * 60_000));
    let taken = taken.await.map_err(|e| {
        tracing::error!(error = %e, "record vault read failed (medication.taken)");
        Problem::unavailable("the record vault is unavailable; retry shortly")
    })?;
    let mut taken_ids = std::collections::HashSet::new();
    let meds: std::collections::BTreeSet<String> = list
        .iter()
        .filter(|r| r.kind == crate::reminders::ReminderKind::Medication)
        .map(|r| r.subject.clone())
        .collect();
    for med in &meds {
        let slots: Vec<&crate::reminders::Reminder> = list.iter().filter(|r| &r.subject == med).collect();
        for t in taken.get(&med.to_lowercase()).into_iter().flatten().copied() {
            let nearest = slots.iter().min_by_key(|r| (r.due.unix_ms() - t.unix_ms()).abs());
            if let Some(r) = nearest.filter(|r| (r.due.unix_ms() - t.unix_ms()).abs() <= 90 * 60_000) {
                taken_ids.insert(r.id.clone());
            }
        }
    }
    let items: Vec<serde_json::Value> = list
        .into_iter()
        .map(|r| {
            let taken = (r.kind == crate::reminders::ReminderKind::Medication).then(|| taken_ids.contains(&r.id));
            json!({
                "id": r.id, "kind": r.kind.as_str(), "plan_id": r.plan_id, "subject": r.subject, "text": r.text,
                "due": r.due.to_rfc3339(), "past": r.due < now, "taken": taken,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "patient": patient.as_str(), "from": from.to_rfc3339(), "until": until.to_rfc3339(), "reminders": items,
    })))
}

/// The OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "GlucoChain contracts API",
        description = "Emergency (break-glass) access, consents, care plans and reminders. Reads need a read token (`emrctl token`)."
    ),
    paths(emergency_access, consents, careplan, reminders),
    components(schemas(Problem, EmergencyRequest))
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
        .route("/openapi.json", web::get().to(openapi))
        .service(
            glucochain_api::service::endpoint("/v1/emergency-access", "POST").route(web::post().to(emergency_access)),
        )
        .service(glucochain_api::service::endpoint("/v1/patients/{id}/consents", "GET").route(web::get().to(consents)))
        .service(glucochain_api::service::endpoint("/v1/patients/{id}/careplan", "GET").route(web::get().to(careplan)))
        .service(
            glucochain_api::service::endpoint("/v1/patients/{id}/reminders", "GET").route(web::get().to(reminders)),
        )
        .default_service(web::to(glucochain_api::service::no_such_endpoint));
}
