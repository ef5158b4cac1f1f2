//! A patient's pages: records, consents, care plan, emergency card, access
//! log; and the care team's list of patients.

use super::{Api, PageError, PageResult, Web, finish, page, patient_nav, patient_of, viewer};
use crate::api::{Reader, audited, decide, patient_entries};
use actix_web::{HttpRequest, HttpResponse, web};
use glucochain_api::Problem;
use glucochain_state::ReadDecision;
use glucochain_types::fhir::{LOINC_CGM_MG_DL, LOINC_CGM_MMOL_L};
use glucochain_types::time::Timestamp;
use glucochain_types::tx::{CareContact, CarePlan, ChannelKind, ContactChannel};
use glucochain_types::{DataClass, ParticipantId, Role};
use glucochain_web::chart::{Thresholds, trace};
use glucochain_web::{date_time, html};

/// Entries on one page of the access log.
const PAGE_ROWS: u32 = 100;

/// The record kinds a consent may be narrowed to, for the grant form.
const RECORD_TYPES: [(&str, &str); 5] = [
    ("observation", "observations (glucose, lab values)"),
    ("document", "documents"),
    ("careplan", "care plans"),
    ("alert", "alerts"),
    ("medication", "medication"),
];

/// What a consent scope covers, in words.
fn scope_text(scope: &glucochain_types::tx::ConsentScope) -> String {
    let list = |v: Vec<String>| v.join(", ");
    let access = list(scope.access.iter().map(|a| format!("{a:?}").to_lowercase()).collect());
    let classes = list(scope.data_classes.iter().map(|d| format!("{d:?}").to_lowercase()).collect());
    let kinds = if scope.record_types.is_empty() {
        "records of every kind".to_string()
    } else {
        list(scope.record_types.iter().map(|t| format!("{t:?}").to_lowercase()).collect())
    };
    let codes = if scope.codes.is_empty() { String::new() } else { format!(" with codes {}", scope.codes.join(", ")) };
    format!("{access} of {classes} {kinds}{codes}")
}

/// mg/dL per mmol/L of glucose.
pub(crate) const MG_DL_PER_MMOL_L: f64 = 18.016;

/// The glucose value (mg/dL) of a CGM observation resource, if it is one.
pub(crate) fn cgm_mg_dl(resource: &serde_json::Value, codes: &[(Option<String>, String)]) -> Option<f64> {
    if resource["status"] == "entered-in-error" {
        return None;
    }
    let v = resource["valueQuantity"]["value"].as_f64()?;
    if codes.iter().any(|(_, c)| c == LOINC_CGM_MG_DL) {
        Some(v)
    } else if codes.iter().any(|(_, c)| c == LOINC_CGM_MMOL_L) {
        Some(v * MG_DL_PER_MMOL_L)
    } else {
        None
    }
}

/// Reads of a patient page: the contract rules decide (`own_only`: only the
/// patient and admins), and the view is audited either way.
async fn authorize(
    api: &crate::api::ApiState,
    req: &HttpRequest,
    v: &Reader,
    patient: &ParticipantId,
    own_only: bool,
) -> Result<ReadDecision, PageError> {
    let decision = decide(api, req, v, patient).await?;
    let (granted, reason) = if own_only && !matches!(decision, ReadDecision::All { .. }) {
        (false, "only the patient and admins see this page")
    } else {
        (decision.allows(), decision.reason())
    };
    audited(api, req, v, Some(patient), "read", granted, reason).await?;
    Ok(decision)
}

/// The viewer and the patient of a patient page, once the read is authorized and audited.
async fn open_page(
    req: &HttpRequest,
    api: &crate::api::ApiState,
    web: &super::WebState,
    id: &str,
    own_only: bool,
) -> Result<(Reader, ParticipantId), PageError> {
    let v = viewer(req, api, web).await?;
    let patient = patient_of(id)?;
    authorize(api, req, &v, &patient, own_only).await?;
    Ok((v, patient))
}

/// The care team's patients: those whose consent names the viewer (or the
/// viewer's institution) now; admins see every patient.
pub async fn patients(req: HttpRequest, api: Api, web: Web) -> HttpResponse {
    finish(
        async {
            let v = viewer(&req, &api, &web).await?;
            let now = Timestamp::now();
            let rows: Vec<(ParticipantId, String)> = {
                let view = api.ledger.chain.view.read().expect("view lock");
                let state = view.state();
                let me = state.participant(&v.id).cloned();
                // The same rule as reads: a consent to an institution covers its staff only.
                let covers = |grantee: &ParticipantId| {
                    me.as_ref().is_some_and(|me| glucochain_state::grantee_covers(grantee, me, |id| state.participant(id)))
                };
                state
                    .participants()
                    .filter(|p| p.role == Role::Patient && p.is_active())
                    .filter_map(|p| {
                        if v.role == Role::Admin {
                            return Some((p.id.clone(), "admin".to_string()));
                        }
                        state
                            .contracts()
                            .consents_of(&p.id)
                            .find(|c| c.active_at(now) && covers(&c.grantee))
                            .map(|c| (p.id.clone(), format!("consent {} ({:?})", c.consent_id.as_str(), c.purpose)))
                    })
                    .collect()
            };
            let body = html! {
                h1 { "Patients" }
                @if rows.is_empty() {
                    p { "No patient has given you consent yet." }
                } @else {
                    table {
                        caption.muted { "Patients whose consent names you now" }
                        thead { tr { th scope="col" { "Patient" } th scope="col" { "Access by" } th scope="col" { "Pages" } } }
                        tbody {
                            @for (p, why) in &rows {
                                tr {
                                    td { code { (p) } }
                                    td { (why) }
                                    td {
                                        a href=(format!("/ui/patients/{p}/agp")) { "AGP report" } " · "
                                        a href=(format!("/ui/patients/{p}/records")) { "Records" } " · "
                                        a href=(format!("/ui/patients/{p}/careplan")) { "Care plan" }
                                    }
                                }
                            }
                        }
                    }
                }
            };
            Ok(page(&v, "Patients", &[], body))
        }
        .await,
    )
}

/// The records timeline: the last day of glucose as a chart, then every
/// record the viewer may see, newest first, with the block that holds it.
pub async fn records(req: HttpRequest, api: Api, web: Web, id: web::Path<String>) -> HttpResponse {
    finish(records_page(&req, &api, &web, &id).await)
}

async fn records_page(req: &HttpRequest, api: &Api, web: &Web, id: &str) -> PageResult {
    let v = viewer(req, api, web).await?;
    let patient = patient_of(id)?;
    let decision = authorize(api, req, &v, &patient, false).await?;
    let mut all = patient_entries(api, &patient, &decision, (None, None)).await?;
    all.sort_by_key(|e| std::cmp::Reverse((e.effective, e.height, e.index)));
    // CGM readings of the 24 hours up to the latest one (entries are newest first).
    let mut readings = all.iter().filter_map(|e| cgm_mg_dl(&e.resource, &e.codes).map(|g| (e.effective.unix_ms(), g)));
    let mut recent: Vec<(i64, f64)> = match readings.next() {
        Some(latest) => {
            std::iter::once(latest).chain(readings.take_while(|p| p.0 > latest.0 - 24 * 3_600_000)).collect()
        }
        None => Vec::new(),
    };
    recent.reverse();
    let shown = 300.min(all.len());
    let body = html! {
        h1 { "Records" }
        p.muted { "Patient " code { (patient) } ". Every entry is a committed transaction, verified up to the chain's genesis." }
        @if !recent.is_empty() {
            h2 { "Glucose, the last 24 hours of readings" }
            (trace(&recent, Thresholds::default(), None, 0))
        }
        h2 { "Timeline" }
        @if all.is_empty() {
            p { "No records you may see." }
        } @else {
            p.muted { "Showing the newest " (shown) " of " (all.len()) " entries." }
            table {
                thead { tr { th scope="col" { "When" } th scope="col" { "What" } th.num scope="col" { "Value" } th scope="col" { "Class" } th scope="col" { "Block · transaction" } } }
                tbody {
                    @for e in all.iter().take(shown) {
                        tr {
                            td { (date_time(e.effective.unix_ms())) }
                            td { (describe(&e.resource, &e.codes)) }
                            td.num { (value_text(&e.resource)) }
                            td { (if e.class == DataClass::Private { "private" } else { "institution" }) }
                            td { "#" (e.height) " · " code title=(e.tx_hash.to_string()) { (e.tx_hash.to_string().get(..12).unwrap_or("")) } }
                        }
                    }
                }
            }
        }
    };
    Ok(page(&v, "Records", &patient_nav(&v, &patient, "records"), body))
}

fn describe(resource: &serde_json::Value, codes: &[(Option<String>, String)]) -> String {
    if resource["resourceType"] == "DocumentReference" {
        return format!("Document: {}", resource["description"].as_str().unwrap_or("untitled"));
    }
    if resource["resourceType"] == "OperationOutcome" {
        return match resource["issue"][0]["code"].as_str() {
            Some("deleted") => "Erased at the patient's request".into(),
            _ => "Not available (the record's body is not in the vault)".into(),
        };
    }
    let display = resource["code"]["coding"][0]["display"].as_str().or(resource["code"]["text"].as_str());
    match (display, codes.first()) {
        (Some(d), _) => d.to_string(),
        (None, Some((_, c))) if c == LOINC_CGM_MG_DL || c == LOINC_CGM_MMOL_L => "Glucose (CGM)".into(),
        (None, Some((_, c))) => format!("Observation {c}"),
        (None, None) => "Observation".into(),
    }
}

fn value_text(resource: &serde_json::Value) -> String {
    match (resource["valueQuantity"]["value"].as_f64(), resource["valueQuantity"]["unit"].as_str()) {
        (Some(v), Some(u)) => format!("{v} {u}"),
        (Some(v), None) => v.to_string(),
        _ => String::new(),
    }
}

/// The patient's consents, with revoke and grant forms (signed in the browser).
pub async fn consents(req: HttpRequest, api: Api, web: Web, id: web::Path<String>) -> HttpResponse {
    finish(
        async {
            let (v, patient) = open_page(&req, &api, &web, &id, true).await?;
            let now = Timestamp::now();
            let consents: Vec<_> = {
                let view = api.ledger.chain.view.read().expect("view lock");
                let state = view.state();
                state
                    .contracts()
                    .consents_of(&patient)
                    .map(|c| {
                        let role = state.participant(&c.grantee).map(|p| p.role.as_str()).unwrap_or("unknown");
                        (c.clone(), role, c.active_at(now))
                    })
                    .collect()
            };
            let can_sign = v.id == patient;
            let body = html! {
                h1 { "Consents" }
                p { "Who may read or write your records, for what, and until when. A revoked consent stops access from the next block; every attempt after it is refused and shows in your " a href="access-log" { "access log" } "." }
                table {
                    thead { tr { th scope="col" { "Consent" } th scope="col" { "Who" } th scope="col" { "What" } th scope="col" { "Why" } th scope="col" { "Valid" } th scope="col" { "State" } } }
                    tbody {
                        @for (c, role, active) in &consents {
                            tr {
                                td { code { (c.consent_id.as_str()) } }
                                td { code { (c.grantee) } " " span.muted { (role) } }
                                td { (scope_text(&c.scope)) }
                                td { (format!("{:?}", c.purpose)) }
                                td {
                                    "from block " (c.granted_at)
                                    @if let Some(u) = c.valid_until { " until " (date_time(u.unix_ms())) }
                                }
                                td {
                                    @if let Some(b) = c.revoked_at {
                                        span.denied { "revoked" } " in block " (b)
                                    } @else if *active {
                                        span.granted { "active" }
                                        @if can_sign {
                                            form.signed method="post" action="/ui/tx/prepare" {
                                                input type="hidden" name="intent" value="consent.revoke";
                                                input type="hidden" name="consent_id" value=(c.consent_id.as_str());
                                                button.danger type="submit" aria-label=(format!("Revoke consent {} of {}", c.consent_id.as_str(), c.grantee)) { "Revoke" }
                                            }
                                        }
                                    } @else {
                                        "not in force now"
                                    }
                                }
                            }
                        }
                    }
                }
                @if can_sign {
                    h2 { "Grant a consent" }
                    form.signed method="post" action="/ui/tx/prepare" {
                        input type="hidden" name="intent" value="consent.grant";
                        label for="grantee" { "Participant id of the clinician, caregiver or institution" }
                        input #grantee name="grantee" required pattern="p[a-z2-7]{32}" size="36" autocomplete="off";
                        fieldset {
                            legend { "Records" }
                            label { input type="checkbox" name="class" value="institution" checked; " institution records (from your care team)" }
                            label { input type="checkbox" name="class" value="private" checked; " private records (your own uploads)" }
                        }
                        fieldset {
                            legend { "Which kinds (none ticked: all kinds)" }
                            @for (value, text) in RECORD_TYPES {
                                label { input type="checkbox" name="type" value=(value); " " (text) }
                            }
                        }
                        fieldset {
                            legend { "Access" }
                            label { input type="radio" name="access" value="read" checked; " read only" }
                            label { input type="radio" name="access" value="read-write"; " read, and add records and care plans" }
                        }
                        label for="purpose" { "Purpose" }
                        select #purpose name="purpose" {
                            option value="TREAT" { "Treatment" }
                            option value="CAREMGT" { "Care management" }
                            option value="FAMRQT" { "Family (caregiver)" }
                        }
                        label for="until" { "Until (optional)" }
                        input #until type="date" name="until";
                        p { button type="submit" { "Grant" } }
                    }
                }
            };
            Ok(page(&v, "Consents", &patient_nav(&v, &patient, "consents"), body))
        }
        .await,
    )
}

/// The care plan in force (and proposals awaiting the patient's acceptance).
/// Who may see it is the care-plan rule (`decide_careplan_read`): the
/// patient, admins, the plan's contacts, and readers whose consent covers
/// care plans. A proposal is shown in full before it can be accepted: every
/// contact with every channel, and what changes against the plan in force.
pub async fn careplan(req: HttpRequest, api: Api, web: Web, id: web::Path<String>) -> HttpResponse {
    finish(careplan_page(&req, &api, &web, &id).await)
}

async fn careplan_page(req: &HttpRequest, api: &Api, web: &Web, id: &str) -> PageResult {
    let v = viewer(req, api, web).await?;
    let patient = patient_of(id)?;
    let now = Timestamp::now();
    let decision = {
        let purpose = if v.id == patient { "PATRQT" } else { "TREAT" };
        let view = api.ledger.chain.view.read().expect("view lock");
        glucochain_state::decide_careplan_read(view.state(), &v.id, &patient, purpose, now)
    };
    audited(api, req, &v, Some(&patient), "read", decision.allows(), decision.reason()).await?;
    let (active, pending, declared) = {
        let view = api.ledger.chain.view.read().expect("view lock");
        let c = view.state().contracts();
        let active = c.active_careplan(&patient, now).cloned();
        let pending: Vec<_> = c
            .careplans_of(&patient)
            .flat_map(|p| p.versions.values().filter(|v| v.accepted_at.is_none()).cloned())
            .filter(|p| p.plan.term.end > now)
            .collect();
        let named = active.iter().chain(&pending).flat_map(|p| &p.plan.contacts);
        let declared: Vec<_> = named
            .filter_map(|k| c.contact_channels.get(&k.participant).map(|d| (k.participant.clone(), d.clone())))
            .collect();
        (active, pending, declared)
    };
    let addresses = contact_addresses(api, declared).await?;
    // Each plan's clinical content is its sealed body (ADR 0016), opened
    // after the read was audited; an erased one is shown as such.
    let open = |v: &glucochain_state::contracts::CareplanVersion| {
        let (tx, env) = (v.proposal_tx, v.plan.clone());
        let patient = patient.clone();
        async move {
            api.vault.careplan(&patient, &tx, &env).await.map_err(|e| {
                tracing::error!(error = %e, "record vault read failed (care plan)");
                Problem::unavailable("the record vault is unavailable; reload in a moment")
            })
        }
    };
    let active_whole = match &active {
        Some(cp) => open(cp).await?,
        None => None,
    };
    let mut pending_whole = Vec::with_capacity(pending.len());
    for p in &pending {
        pending_whole.push(open(p).await?);
    }
    let own = v.id == patient;
    // The patient sees addresses in full (they check where alerts go before
    // accepting); others masked.
    let address = |ch: &ContactChannel| if own { ch.address.clone() } else { ch.kind.mask(&ch.address) };
    let reaches = |who: &ParticipantId, kind: ChannelKind| -> Vec<ContactChannel> {
        addresses.get(who).map(|b| b.of_kinds(&[kind])).unwrap_or_default()
    };
    let body = html! {
        h1 { "Care plan" }
        @match &active {
            None => p { "No care plan is in force." },
            Some(cp) => {
                p { "Plan " code { (cp.plan.plan_id.as_str()) } " version " (cp.plan.version) ", proposed by " code { (cp.proposer) } " and accepted in block " (cp.accepted_at.unwrap_or_default()) "; from " (date_time(cp.plan.term.start.unix_ms())) " to " (date_time(cp.plan.term.end.unix_ms())) "." }
                @match &active_whole {
                    Some(whole) => (plan_details(whole, None, &address, &reaches)),
                    None => p.erased { "This plan's thresholds, reminders and quiet hours were erased at the patient's request (or are not in the record vault yet); alerts still follow its contacts." },
                }
            }
        }
        @if !pending.is_empty() {
            h2 { "Awaiting your acceptance" }
            @for (p, whole) in pending.iter().zip(&pending_whole) {
                div.card.proposal data-plan=(p.plan.plan_id.as_str()) data-version=(p.plan.version) {
                    p { "Plan " code { (p.plan.plan_id.as_str()) } " version " (p.plan.version) " proposed by " code { (p.proposer) } " in block " (p.proposed_at) ". "
                        @if active.is_some() { "Changes against the plan in force are marked." } }
                    @match whole {
                        Some(w) => (plan_details(w, active_whole.as_ref(), &address, &reaches)),
                        None => p.erased { "This proposal's content cannot be shown (erased, or not in the record vault yet), so it cannot be accepted." },
                    }
                    @if own && whole.is_some() {
                        form.signed method="post" action="/ui/tx/prepare" {
                            input type="hidden" name="intent" value="careplan.accept";
                            input type="hidden" name="plan_id" value=(p.plan.plan_id.as_str());
                            input type="hidden" name="version" value=(p.plan.version);
                            input type="hidden" name="proposal_tx" value=(p.proposal_tx.to_string());
                            button type="submit" { "Accept this plan" }
                        }
                    }
                }
            }
        }
    };
    Ok(page(&v, "Care plan", &patient_nav(&v, &patient, "careplan"), body))
}

/// The addresses each named contact declares now (`contact.channels.set`),
/// opened from the record vault. A declaration erased or not yet in the
/// vault shows as no address.
async fn contact_addresses(
    api: &Api,
    declared: Vec<(ParticipantId, glucochain_state::contracts::DeclaredChannels)>,
) -> Result<std::collections::HashMap<ParticipantId, glucochain_types::tx::ContactChannelsBody>, Problem> {
    use glucochain_types::sealed::RecordBody;
    use glucochain_vault::replica::{Opened, Wanted};
    let mut found = std::collections::HashMap::new();
    for (who, d) in declared {
        let wanted = Wanted::of(&d.tx, &who, glucochain_types::DataClass::Private);
        match api.vault.open_committed(&wanted, glucochain_types::TxType::ContactChannelsSet, &d.body_commitment).await
        {
            Ok(Opened::Body { body: RecordBody::ContactChannels(b), .. }) => {
                found.insert(who, b);
            }
            Ok(Opened::Erased { .. } | Opened::Missing) => {}
            Ok(Opened::Body { .. }) | Err(glucochain_vault::VaultError::Commitment) => {
                tracing::error!(tx = %d.tx, "a contact's channels do not open against their commitment");
                return Err(Problem::internal());
            }
            Err(e) => {
                tracing::error!(error = %e, "record vault read failed");
                return Err(Problem::unavailable("the record vault is unavailable; reload in a moment"));
            }
        }
    }
    Ok(found)
}

/// A plan's thresholds, contacts (every kind of channel, with the addresses
/// it reaches now) and reminders; with `before`, what changed against it is
/// marked.
fn plan_details(
    plan: &CarePlan,
    before: Option<&CarePlan>,
    address: &dyn Fn(&ContactChannel) -> String,
    reaches: &dyn Fn(&ParticipantId, ChannelKind) -> Vec<ContactChannel>,
) -> glucochain_web::Markup {
    let t = &plan.thresholds;
    let old = before.map(|b| &b.thresholds);
    let repeat = plan.alert_repeat.unwrap_or_default();
    let old_repeat = before.map(|b| b.alert_repeat.unwrap_or_default());
    let changed = |now: f64, was: Option<f64>| was.is_some_and(|w| (w - now).abs() > f64::EPSILON);
    let row = |name: &str, now: f64, was: Option<f64>, unit: &str| {
        html! {
            tr {
                th scope="row" { (name) }
                td.num {
                    (now) " " (unit)
                    @if changed(now, was) { " " span.tag.changed { "changed, was " (was.unwrap_or_default()) } }
                }
            }
        }
    };
    let before_contacts: Vec<&CareContact> = before.map(|b| b.contacts.iter().collect()).unwrap_or_default();
    let channel_is_new = |who: &ParticipantId, kind: &ChannelKind| {
        before.is_some() && !before_contacts.iter().any(|c| &c.participant == who && c.channels.contains(kind))
    };
    html! {
        h3 { "Glucose thresholds" }
        table {
            tbody {
                (row("Urgent low", t.urgent_low, old.map(|o| o.urgent_low), "mg/dL"))
                (row("Low", t.low, old.map(|o| o.low), "mg/dL"))
                (row("High", t.high, old.map(|o| o.high), "mg/dL"))
                (row("Very high", t.very_high, old.map(|o| o.very_high), "mg/dL"))
                (row("Rapid change", t.rapid_change_per_min, old.map(|o| o.rapid_change_per_min), "mg/dL per minute"))
                (row("No data for", f64::from(t.signal_loss_minutes), old.map(|o| f64::from(o.signal_loss_minutes)), "minutes"))
                (row("Urgent alerts repeat every", f64::from(repeat.urgent_minutes), old_repeat.map(|r| f64::from(r.urgent_minutes)), "minutes until acknowledged"))
                (row("Warnings repeat every", f64::from(repeat.warning_minutes), old_repeat.map(|r| f64::from(r.warning_minutes)), "minutes until acknowledged"))
            }
        }
        p { "Alerts: " (plan.alert_kinds.iter().map(|k| format!("{k:?}")).collect::<Vec<_>>().join(", ")) }
        h3 { "Who is alerted, in order, and where" }
        ol.contacts {
            @for c in &plan.contacts {
                li {
                    code { (c.participant) }
                    @if before.is_some() && !before_contacts.iter().any(|b| b.participant == c.participant) { " " span.tag.changed { "new contact" } }
                    "; next contact after " (c.escalate_after_minutes) " minutes without acknowledgement"
                    ul {
                        @for kind in &c.channels {
                            @let at = reaches(&c.participant, *kind);
                            li.channel data-kind=(format!("{kind:?}").to_lowercase()) {
                                (format!("{kind:?}"))
                                @for ch in &at { " " code { (address(ch)) } }
                                @if channel_is_new(&c.participant, kind) { " " span.tag.changed { "new channel" } }
                                @if at.is_empty() { " " span.tag.denied { "not (or no longer) declared by this contact" } }
                            }
                        }
                    }
                }
            }
        }
        @for b in &before_contacts {
            @if !plan.contacts.iter().any(|c| c.participant == b.participant) {
                p { span.tag.changed { "removed" } " contact " code { (b.participant) } }
            }
        }
        @if let Some(q) = &plan.quiet_hours { p { "Quiet hours " (q.start) "–" (q.end) " (UTC offset " (q.utc_offset_minutes) " minutes): only urgent alerts." } }
        h3 { "Reminders" }
        ul {
            @for m in &plan.medications { li { (m.name) " " (m.dose) " at " (m.times.join(", ")) } }
            @for c in &plan.checkups { li { (c.display) " every " (c.every_days) " days" } }
            @if plan.medications.is_empty() && plan.checkups.is_empty() { li { "none" } }
        }
    }
}

/// A clinician's words on a break-glass access, from the vault and checked
/// against the access's commitment; what the page says instead when they
/// are erased or cannot be read now (the page still shows the access).
async fn emergency_words(
    api: &crate::api::ApiState,
    a: &glucochain_state::contracts::EmergencyAccess,
) -> Option<String> {
    use glucochain_types::sealed::RecordBody;
    use glucochain_vault::replica::{Opened, Wanted};
    let commitment = a.reason_commitment.as_ref()?;
    let wanted = Wanted::of(&a.tx, &a.patient, glucochain_types::DataClass::Institution);
    Some(match api.vault.open_committed(&wanted, glucochain_types::TxType::AccessEmergency, commitment).await {
        Ok(Opened::Body { body: RecordBody::EmergencyReason(b), .. }) => b.reason,
        Ok(Opened::Erased { .. }) => "(erased)".into(),
        Ok(Opened::Missing) => "(not in the record vault yet)".into(),
        Ok(Opened::Body { .. }) | Err(glucochain_vault::VaultError::Commitment) => {
            tracing::error!(tx = %a.tx, "a break-glass reason does not open against its commitment");
            "(unreadable)".into()
        }
        Err(e) => {
            tracing::warn!(error = %e, "record vault read failed (break-glass reason)");
            "(the record vault is unavailable; reload in a moment)".into()
        }
    })
}

/// The body of a committed emergency profile from the vault, checked
/// against its commitment; `None` when the patient erased it.
pub(crate) async fn open_profile(
    api: &crate::api::ApiState,
    p: &glucochain_state::contracts::EmergencyProfile,
) -> Result<Option<glucochain_types::tx::EmergencyProfileBody>, Problem> {
    Ok(sealed_profile(api, p).await?.map(|(body, _)| body))
}

/// [`open_profile`] with what the vault kept (to send the same body again).
pub(crate) async fn sealed_profile(
    api: &crate::api::ApiState,
    p: &glucochain_state::contracts::EmergencyProfile,
) -> Result<Option<(glucochain_types::tx::EmergencyProfileBody, Vec<u8>)>, Problem> {
    use glucochain_types::sealed::RecordBody;
    use glucochain_vault::replica::{Opened, Wanted};
    let wanted = Wanted::of(&p.tx, &p.patient, glucochain_types::DataClass::Private);
    match api
        .vault
        .open_committed(&wanted, glucochain_types::TxType::EmergencyProfileSet, &p.profile.body_commitment)
        .await
    {
        Ok(Opened::Body { body: RecordBody::EmergencyProfile(b), kept }) => Ok(Some((b, kept))),
        Ok(Opened::Erased { .. }) => Ok(None),
        Ok(Opened::Missing) => {
            Err(Problem::unavailable("the profile is not in the record vault yet; reload in a moment"))
        }
        Ok(Opened::Body { .. }) | Err(glucochain_vault::VaultError::Commitment) => {
            tracing::error!(tx = %p.tx, "an emergency profile's body does not open against its commitment");
            Err(Problem::internal())
        }
        Err(e) => {
            tracing::error!(error = %e, "record vault read failed");
            Err(Problem::unavailable("the record vault is unavailable; reload in a moment"))
        }
    }
}

/// The emergency profile a clinician sees after scanning the patient's card,
/// the recent break-glass accesses, and a new card (QR) on request.
pub async fn emergency(req: HttpRequest, api: Api, web: Web, id: web::Path<String>) -> HttpResponse {
    finish(
        async {
            let (v, patient) = open_page(&req, &api, &web, &id, true).await?;
            let (profile, accesses) = {
                let view = api.ledger.chain.view.read().expect("view lock");
                let c = view.state().contracts();
                let accesses: Vec<_> =
                    c.emergency_accesses.iter().filter(|a| a.patient == patient).rev().take(20).cloned().collect();
                (c.emergency.get(&patient).cloned(), accesses)
            };
            // The profile is the patient's private data (sealed in the vault):
            // opened for the patient only, after the read above was audited;
            // an admin sees that it is set, not what it says.
            let opened = match &profile {
                Some(p) if v.id == patient => Some(open_profile(&api, p).await?),
                _ => None,
            };
            // The clinicians' own words on their accesses (sealed, class
            // institution): for the patient, the one told of each access.
            let mut words = Vec::with_capacity(accesses.len());
            for a in &accesses {
                words.push(if v.id == patient { emergency_words(&api, a).await } else { None });
            }
            let body = html! {
                h1 { "Emergency card" }
                p { "What a clinician sees in an emergency after scanning your card or device: nothing else. Each scan is recorded on the chain, and you and your caregivers are told." }
                @match &profile {
                    None => p { "No emergency profile is set." },
                    Some(p) => {
                        @match &opened {
                            Some(Some(body)) => table {
                                tbody {
                                    tr { th scope="row" { "Blood group" } td { (serde_json::to_value(body.blood_group).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default()) } }
                                    tr { th scope="row" { "Diabetes" } td { (format!("{:?}", body.diabetes_type)) } }
                                    tr { th scope="row" { "Allergies" } td { @if body.allergies.is_empty() { "none recorded" } @else { (body.allergies.join(", ")) } } }
                                    tr { th scope="row" { "Current medication" } td { @if body.medications.is_empty() { "none recorded" } @else { (body.medications.join(", ")) } } }
                                    tr { th scope="row" { "Set in block" } td { (p.set_at) } }
                                }
                            },
                            Some(None) => p { "You erased your emergency profile. Set a new one to be found in an emergency." },
                            None => p { "An emergency profile is set (block " (p.set_at) "). It is the patient's private data: only the patient, and a clinician during a break-glass access, can read it." },
                        }
                        h2 { "Your card" }
                        p { "A new card is made in this browser: its code never leaves it except on the card you print; the chain holds only the card's public key. Issuing a new card makes the old one stop working." }
                        @if v.id == patient {
                            form.signed method="post" action="/ui/tx/prepare" data-patient=(patient) data-commitment=(p.profile.body_commitment.to_string()) {
                                input type="hidden" name="intent" value="emergency.card";
                                input type="hidden" name="card_key" value="";
                                button type="submit" { "Issue a new card" }
                            }
                        }
                        div #card.qr hidden {}
                    }
                }
                h2 { "Break-glass accesses" }
                @if accesses.is_empty() {
                    p { "None." }
                } @else {
                    ul #break-glass {
                        @for (a, said) in accesses.iter().zip(&words) {
                            li {
                                "Clinician " code { (a.clinician) } " (" (a.reason_code.text()) "), access until " (date_time(a.until.unix_ms()))
                                @if let Some(w) = said { ": " q.reason { (w) } }
                            }
                        }
                    }
                }
            };
            Ok(page(&v, "Emergency card", &patient_nav(&v, &patient, "emergency"), body))
        }
        .await,
    )
}

/// Who read the patient's records, when, why and with what outcome; newest first.
pub async fn access_log(req: HttpRequest, api: Api, web: Web, id: web::Path<String>) -> HttpResponse {
    finish(
        async {
            let (v, patient) = open_page(&req, &api, &web, &id, true).await?;
            let before = match glucochain_api::query_u32(req.query_string(), "before", 0, 0..=2_147_483_647)? {
                0 => None,
                b => Some(u64::from(b)),
            };
            let rows = api.ledger.store.audit_for_patient(patient.as_str(), PAGE_ROWS, before).await.map_err(|_| Problem::internal())?;
            let older = (rows.len() == PAGE_ROWS as usize).then(|| rows.last().map(|a| a.seq)).flatten();
            let body = html! {
                h1 { "Access log" }
                p { "Every read of your records and pages, allowed or refused, newest first. The log is hash-chained and its head is committed to the chain, so entries cannot be removed unnoticed." }
                table #access-log {
                    thead { tr { th scope="col" { "When" } th scope="col" { "Who" } th scope="col" { "What" } th scope="col" { "Why" } th scope="col" { "Outcome" } } }
                    tbody {
                        @for a in &rows {
                            @let emergency = a.purpose == "ETREAT" || a.action.contains("emergency");
                            tr data-reader=(a.reader) data-outcome=(a.outcome) {
                                td { (date_time(a.at_ms)) }
                                td { code { (a.reader) } " " span.muted { (a.reader_role) } }
                                td { (a.action) " " code { (a.resource) } }
                                td { (a.purpose) @if emergency { " " span.tag.denied { "break-glass" } } }
                                td {
                                    @if a.outcome == "granted" { span.granted { "allowed" } } @else { span.denied { "refused" } }
                                    ": " (a.reason)
                                }
                            }
                        }
                    }
                }
                @if let Some(seq) = older { p { a href=(format!("access-log?before={seq}")) { "Older entries" } } }
                @if before.is_some() { p { a href="access-log" { "Newest entries" } } }
                p.muted { "Check these entries against the chain yourself: " code { "emrctl verify-audit " (patient) " --key <your key> --genesis genesis.json" } "." }
            };
            Ok(page(&v, "Access log", &patient_nav(&v, &patient, "access-log"), body))
        }
        .await,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn codes(c: &str) -> Vec<(Option<String>, String)> {
        vec![(Some("http://loinc.org".into()), c.into())]
    }

    #[test]
    fn cgm_values_are_taken_in_mg_dl_and_corrections_are_left_out() {
        let obs = |v: f64, status: &str| json!({ "status": status, "valueQuantity": { "value": v } });
        assert_eq!(cgm_mg_dl(&obs(104.0, "final"), &codes(LOINC_CGM_MG_DL)), Some(104.0));
        let mmol = cgm_mg_dl(&obs(5.5, "final"), &codes(LOINC_CGM_MMOL_L)).unwrap();
        assert!((mmol - 5.5 * MG_DL_PER_MMOL_L).abs() < 1e-9);
        assert_eq!(cgm_mg_dl(&obs(104.0, "entered-in-error"), &codes(LOINC_CGM_MG_DL)), None);
        assert_eq!(cgm_mg_dl(&obs(7.1, "final"), &codes("4548-4")), None, "HbA1c is not a CGM reading");
        assert_eq!(cgm_mg_dl(&json!({ "status": "final" }), &codes(LOINC_CGM_MG_DL)), None);
    }

    #[test]
    fn records_are_described_in_words() {
        let doc = json!({ "resourceType": "DocumentReference", "description": "Discharge letter" });
        assert_eq!(describe(&doc, &[]), "Document: Discharge letter");
        let obs = json!({ "resourceType": "Observation", "code": { "coding": [{ "display": "Glucose in blood" }] } });
        assert_eq!(describe(&obs, &codes("2339-0")), "Glucose in blood");
        assert_eq!(describe(&json!({}), &codes(LOINC_CGM_MG_DL)), "Glucose (CGM)");
        assert_eq!(value_text(&json!({ "valueQuantity": { "value": 5.5, "unit": "mmol/L" } })), "5.5 mmol/L");
        let erased = json!({ "resourceType": "OperationOutcome", "issue": [{ "code": "deleted" }] });
        assert_eq!(describe(&erased, &codes(LOINC_CGM_MG_DL)), "Erased at the patient's request");
        assert_eq!(value_text(&erased), "");
    }
}
