//! The GlucoChain notifier: takes alerts (`emr.alert.*`) and reminders
//! (`emr.reminder.*`) from durable JetStream consumers, routes each by the
//! patient's active care plan, writes every delivery to the outbox before
//! sending it (email over SMTP, SMS through an HTTP gateway, webhooks),
//! escalates to the next contact and then the responsible clinician when
//! nobody acknowledges, and stops once someone does — by the link in the
//! email, an SMS reply code, the API or an `alert.ack` on the chain.
//! See `docs/alerts.md`.

pub mod api;
pub mod channels;
pub mod config;
pub mod directory;
pub mod link;
pub mod message;
pub mod outbox;
pub mod policy;
pub mod sms_reply;

pub use config::NotifierConfig;

use anyhow::Context as _;
use bytes::Bytes;
use glucochain_api::service::{ended, http_server};
use glucochain_bus::streams::{ConsumerSpec, StreamSpec};
use glucochain_bus::{Bus, subjects};
use glucochain_crypto::{KeyPair, sha256};
use glucochain_follow::service_event::{EventRefused, verify_alert};
use glucochain_follow::{StoredChain, follow_stored};
use glucochain_telemetry::http::Readiness;
use glucochain_types::genesis::Genesis;
use glucochain_types::ids::LocalId;
use glucochain_types::time::{Clock, Timestamp};
use glucochain_types::tx::{AlertAck, ContactChannelsBody, TxBody, TxPayload};
use glucochain_types::{ChainId, ParticipantId, Transaction};
use glucochain_wire::v1 as wire;
use message::Notice;
use outbox::{NewDelivery, Outbox, SourceRow};
use policy::{Contact, Fold, Level, OpenGroup, Routing, Target};
use prost::Message as _;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument as _;

/// How long an alert waits for the chain view to reach the detector's
/// height before it is left for redelivery (normally milliseconds).
const VIEW_PATIENCE: Duration = Duration::from_secs(10);

/// The notifier's state.
pub struct Notifier {
    /// The verified chain (care plans, registry).
    pub chain: Arc<StoredChain>,
    /// The outbox.
    pub outbox: Outbox,
    bus: Bus,
    key: KeyPair,
    me: ParticipantId,
    chain_id: ChainId,
    /// Names and channels the care plans do not carry.
    pub directory: directory::Directory,
    mailer: Option<channels::Mailer>,
    http: channels::Http,
    /// The escalation clock.
    pub clock: Clock,
    /// The replicated record vault: contacts' addresses (ADR 0016).
    vault: glucochain_vault::replica::VaultReader,
    /// Contacts' declared addresses by declaring transaction (a
    /// declaration never changes; a new one has a new hash).
    addresses: std::sync::Mutex<std::collections::HashMap<glucochain_crypto::Hash32, Arc<ContactChannelsBody>>>,
    public_url: String,
    lease_ms: i64,
    wake: tokio::sync::Notify,
    /// Its openings of patients' care plans, in their access logs.
    openings: glucochain_follow::audit::OpeningLog,
}

fn kind_of_alert(k: i32) -> &'static str {
    match wire::AlertKind::try_from(k).unwrap_or(wire::AlertKind::Unspecified) {
        wire::AlertKind::UrgentLow => "urgent_low",
        wire::AlertKind::Low => "low",
        wire::AlertKind::High => "high",
        wire::AlertKind::VeryHigh => "very_high",
        wire::AlertKind::RapidFall => "rapid_fall",
        wire::AlertKind::RapidRise => "rapid_rise",
        wire::AlertKind::PredictedLow => "predicted_low",
        wire::AlertKind::Anomaly => "anomaly",
        wire::AlertKind::SignalLoss => "signal_loss",
        wire::AlertKind::PredictedHigh => "predicted_high",
        wire::AlertKind::BreakGlass => "break_glass",
        wire::AlertKind::Unspecified => "unspecified",
    }
}

fn kind_of_reminder(k: i32) -> &'static str {
    match wire::ReminderKind::try_from(k).unwrap_or(wire::ReminderKind::Unspecified) {
        wire::ReminderKind::Medication => "medication",
        wire::ReminderKind::Checkup => "checkup",
        wire::ReminderKind::CheckupOverdue => "checkup_overdue",
        wire::ReminderKind::Unspecified => "reminder",
    }
}

fn deliveries_for(targets: &[Target], step: u32, due_ms: i64) -> Vec<NewDelivery> {
    targets
        .iter()
        .flat_map(|t| {
            t.channels.iter().map(move |c| NewDelivery {
                contact: t.participant.as_str().to_string(),
                channel: policy::channel_name(c.kind),
                address: c.address.clone(),
                step,
                due_ms,
            })
        })
        .collect()
}

impl Notifier {
    /// `targets` less the contacts who snoozed `kind` alerts of `patient`
    /// (in force at `now`); and whether someone was passed by.
    async fn unsnoozed(
        &self,
        patient: &str,
        kind: &str,
        mut targets: Vec<Target>,
        now: i64,
    ) -> anyhow::Result<(Vec<Target>, bool)> {
        let held = self.outbox.active_snoozes(patient, now).await?;
        let before = targets.len();
        targets.retain(|t| !held.iter().any(|s| s.kind == kind && s.contact == t.participant.as_str()));
        let passed = targets.len() < before;
        if passed {
            metrics::counter!("glucochain_notify_snoozed_total", "kind" => kind.to_string()).increment(1);
        }
        Ok((targets, passed))
    }

    /// Who to reach for `patient` now: the active care plan's contacts and
    /// quiet hours, and the responsible clinician from the directory. Each
    /// contact is reached at the addresses they declare now of the kinds the
    /// plan names, opened from the record vault; an error (the vault cannot
    /// be reached) leaves the event for redelivery or the next pass.
    pub async fn routing(&self, patient: &ParticipantId) -> anyhow::Result<Routing> {
        let (plan, declared) = {
            let view = self.chain.view.read().expect("view lock");
            let contracts = view.state().contracts();
            let Some(plan) = contracts.active_careplan(patient, Timestamp::now()) else {
                return Ok(Routing::default());
            };
            let declared: Vec<_> =
                plan.plan.contacts.iter().map(|c| contracts.contact_channels.get(&c.participant).cloned()).collect();
            (plan.clone(), declared)
        };
        let clinician = self
            .directory
            .channels(&plan.proposer)
            .map(|channels| Target { participant: plan.proposer.clone(), channels });
        let mut contacts = Vec::new();
        for (c, declared) in plan.plan.contacts.iter().zip(declared) {
            // Only what the contact still declares: a kind they withdrew
            // since the plan was accepted is not used.
            let channels = match declared {
                Some(d) => self.declared_addresses(&c.participant, &d).await?.of_kinds(&c.channels),
                None => Vec::new(),
            };
            // A contact left with no channel is skipped rather than waited for.
            if !channels.is_empty() {
                contacts.push(Contact {
                    participant: c.participant.clone(),
                    channels,
                    escalate_after_minutes: c.escalate_after_minutes,
                });
            }
        }
        // Quiet hours are the plan's clinical content (its sealed body): a
        // body erased or missing holds nothing back.
        self.audit_plan_opening(patient, &plan);
        let quiet_hours = match self.vault.careplan(patient, &plan.proposal_tx, &plan.plan).await? {
            Some(whole) => whole.quiet_hours,
            None => {
                metrics::counter!("glucochain_notify_plan_unreadable_total").increment(1);
                tracing::warn!(plan = %plan.plan.plan_id, "care plan body erased or not in the vault: no quiet hours");
                None
            }
        };
        Ok(Routing { contacts, clinician, quiet_hours, repeat: plan.plan.alert_repeat.unwrap_or_default() })
    }

    /// The thresholds of the patient's care plan in force, opened from the
    /// vault (for the alert page's chart); `None` without a plan, or when
    /// its body cannot be opened (the chart then shows the defaults).
    pub async fn plan_thresholds(&self, patient: &ParticipantId) -> Option<glucochain_types::tx::GlucoseThresholds> {
        let plan = {
            let view = self.chain.view.read().expect("view lock");
            view.state().contracts().active_careplan(patient, Timestamp::now()).cloned()
        }?;
        self.audit_plan_opening(patient, &plan);
        match self.vault.careplan(patient, &plan.proposal_tx, &plan.plan).await {
            Ok(whole) => whole.map(|p| p.thresholds),
            Err(e) => {
                tracing::warn!(error = %e, "record vault read failed (care plan thresholds)");
                None
            }
        }
    }

    /// Writes the patient's access-log entry for the notifier's openings of
    /// their care plan's content (quiet hours, thresholds), once per window
    /// ([`glucochain_follow::audit`]), never in the way of a delivery.
    fn audit_plan_opening(&self, patient: &ParticipantId, plan: &glucochain_state::contracts::CareplanVersion) {
        let entry = wire::AuditAppend {
            reader: self.me.to_string(),
            reader_role: glucochain_types::Role::Notifier.as_str().to_string(),
            patient: patient.to_string(),
            action: "notifier.read".into(),
            resource: format!("urn:glucochain:vault:careplan.propose:{}", plan.proposal_tx),
            purpose: "TREAT".into(),
            granted: true,
            reason: format!(
                "the notifier opened care plan {} v{} to route its alerts (quiet hours, thresholds); this entry \
                 covers its openings in the {} minutes from now",
                plan.plan.plan_id,
                plan.plan.version,
                glucochain_follow::audit::WINDOW_MS / 60_000
            ),
        };
        self.openings.opened(patient, Timestamp::now().unix_ms(), entry);
    }

    /// The addresses of a contact's declaration, from the vault (kept once
    /// opened). A declaration whose body is erased or missing reaches
    /// nobody, logged and counted: the escalation goes on to the next
    /// contact rather than waiting.
    async fn declared_addresses(
        &self,
        contact: &ParticipantId,
        d: &glucochain_state::contracts::DeclaredChannels,
    ) -> anyhow::Result<Arc<ContactChannelsBody>> {
        use glucochain_types::sealed::RecordBody;
        use glucochain_vault::replica::{Opened, Wanted};
        if let Some(found) = self.addresses.lock().expect("addresses lock").get(&d.tx) {
            return Ok(found.clone());
        }
        let wanted = Wanted::of(&d.tx, contact, glucochain_types::DataClass::Private);
        let opened = self
            .vault
            .open_committed(&wanted, glucochain_types::TxType::ContactChannelsSet, &d.body_commitment)
            .await
            .context("record vault (contacts' addresses)")?;
        let unreadable = |why: &'static str| {
            metrics::counter!("glucochain_notify_contact_unreadable_total", "reason" => why).increment(1);
            tracing::error!(contact = %contact, tx = %d.tx, reason = why, "a contact's declared addresses cannot be read; skipped");
            Arc::new(ContactChannelsBody { channels: Vec::new() })
        };
        let body = match opened {
            Opened::Body { body: RecordBody::ContactChannels(b), .. } => Arc::new(b),
            Opened::Body { .. } => unreadable("not-channels"),
            Opened::Erased { .. } => unreadable("erased"),
            Opened::Missing => return Ok(unreadable("missing")),
        };
        let mut kept = self.addresses.lock().expect("addresses lock");
        if kept.len() >= 10_000 {
            kept.clear();
        }
        kept.insert(d.tx, body.clone());
        Ok(body)
    }

    /// The patient's own channels: a care-plan contact entry for them, else the directory.
    fn patient_target(&self, patient: &ParticipantId, routing: &Routing) -> Option<Target> {
        if let Some(c) = routing.contacts.iter().find(|c| &c.participant == patient) {
            return Some(Target { participant: patient.clone(), channels: c.channels.clone() });
        }
        self.directory.channels(patient).map(|channels| Target { participant: patient.clone(), channels })
    }

    /// Whether `a` was signed by an active service registered on the chain
    /// (a signer this view does not know yet is looked up again once the
    /// view holds the event's height). A refused event is logged and counted.
    async fn signed_by_a_service(&self, a: &wire::Alert) -> bool {
        let verify = || verify_alert(a, self.chain.view.read().expect("view lock").state());
        let mut checked = verify();
        if matches!(checked, Err(EventRefused::UnknownSigner(_))) {
            self.chain.caught_up(a.chain_height, VIEW_PATIENCE).await;
            checked = verify();
        }
        match checked {
            Ok(_) => true,
            Err(e) => {
                metrics::counter!("glucochain_notify_refused_events_total", "reason" => e.label()).increment(1);
                tracing::warn!(alert = %a.alert_id, reason = %e, "alert event refused: not signed by a registered service");
                false
            }
        }
    }

    /// A break-glass notice checked against the chain: the `access.emergency`
    /// transaction it names (`episode_id`) must be committed for this
    /// patient, and the notice is rebuilt from that transaction rather than
    /// taken from the event. `None`: refused (logged and counted); an error:
    /// the view is still behind the event, left for redelivery.
    async fn break_glass_from_chain(&self, a: &wire::Alert) -> anyhow::Result<Option<wire::Alert>> {
        let refuse = |why: &'static str| {
            metrics::counter!("glucochain_notify_refused_events_total", "reason" => why).increment(1);
            tracing::warn!(alert = %a.alert_id, reason = why, "break-glass notice refused");
            Ok(None)
        };
        let Ok(hash) = glucochain_crypto::Hash32::from_hex(&a.episode_id) else { return refuse("no-access-tx") };
        let caught_up = self.chain.caught_up(a.chain_height, VIEW_PATIENCE).await;
        let stored = self.chain.store.transaction(&hash.0).await?;
        let Some(stored) = stored else {
            if !caught_up {
                anyhow::bail!("the chain view is behind the break-glass notice; it waits for redelivery");
            }
            return refuse("no-access-tx");
        };
        let tx = Transaction::parse(&stored.jws, &Default::default()).map_err(|e| anyhow::anyhow!("stored tx: {e}"))?;
        let TxBody::AccessEmergency(access) = &tx.payload.body else { return refuse("not-an-emergency-access") };
        if !stored.ok || tx.payload.patient.as_ref().map(|p| p.as_str()) != Some(a.patient.as_str()) {
            return refuse("not-an-emergency-access");
        }
        Ok(Some(wire::Alert {
            alert_id: a.alert_id.clone(),
            patient: a.patient.clone(),
            kind: wire::AlertKind::BreakGlass as i32,
            severity: wire::Severity::Urgent as i32,
            episode_id: a.episode_id.clone(),
            observed_at_ms: tx.payload.created_at.unix_ms(),
            reason: access.notice(&tx.signer),
            chain_height: stored.height,
            ..Default::default()
        }))
    }

    /// Takes on an alert event (idempotent: a redelivered one changes
    /// nothing). Only what the chain vouches for is taken: an alert signed by
    /// a registered service, or a break-glass notice for an emergency access
    /// committed on the chain; anything else is dropped.
    pub async fn take_alert(&self, event: &wire::Alert) -> anyhow::Result<()> {
        let a: std::borrow::Cow<wire::Alert> = if event.kind == wire::AlertKind::BreakGlass as i32 {
            match self.break_glass_from_chain(event).await? {
                Some(rebuilt) => std::borrow::Cow::Owned(rebuilt),
                None => return Ok(()),
            }
        } else if self.signed_by_a_service(event).await {
            std::borrow::Cow::Borrowed(event)
        } else {
            return Ok(());
        };
        let a = a.as_ref();
        let patient = ParticipantId::parse(&a.patient).map_err(|e| anyhow::anyhow!("alert patient: {e}"))?;
        let now = self.clock.now().unix_ms();
        if a.resolved {
            // The episode ended: stop escalating it (idempotent).
            let n = self.outbox.resolve_episode(patient.as_str(), &a.episode_id, now).await?;
            if n > 0 {
                metrics::counter!("glucochain_notify_resolved_total").increment(n);
                tracing::info!(episode = %a.episode_id, sources = n, "episode resolved; escalation stopped");
            }
            return Ok(());
        }
        if a.alert_id.is_empty() || self.outbox.has_source(&a.alert_id).await? {
            return Ok(());
        }
        // Routed only on a view holding the care plan the detector judged by:
        // an older view could lack it and reach nobody.
        if !self.chain.caught_up(a.chain_height, VIEW_PATIENCE).await {
            metrics::counter!("glucochain_notify_view_behind_total").increment(1);
            anyhow::bail!(
                "the chain view (height {}) is behind the alert's ({}); it waits for redelivery",
                self.chain.height(),
                a.chain_height
            );
        }
        let level = Level::from_i32(a.severity);
        let kind = kind_of_alert(a.kind);
        let routing = self.routing(&patient).await?;
        let mut source =
            SourceRow::received(&a.alert_id, "alert", patient.as_str(), kind, level as i32, a.encode_to_vec(), now);
        if !a.episode_id.is_empty() {
            source.episode_id = a.episode_id.clone();
        }
        source.traceparent = glucochain_bus::trace::span_traceparent(&tracing::Span::current());
        if kind == "break_glass" {
            // A notice for the patient and everyone on the care plan at once; no escalation.
            source.source_kind = "notice".into();
            let mut targets: Vec<Target> = self.patient_target(&patient, &routing).into_iter().collect();
            targets.extend(routing.others_than(&patient));
            let d = deliveries_for(&targets, 0, now);
            self.outbox.take(&source, &d, false, now).await?;
            self.wake.notify_one();
            return Ok(());
        }
        let open = self.outbox.open_group(patient.as_str()).await?.map(|g| OpenGroup {
            group: g.group_id,
            level: Level::from_i32(g.severity),
            step: g.step.max(0) as u32,
            last_ms: g.last_ms,
        });
        let (deliveries, carries) = match policy::fold(open.as_ref(), level, now) {
            Fold::NewGroup => {
                let step = policy::escalation_step(&routing, level, 0, now);
                let due = policy::send_time(level, routing.quiet_hours.as_ref(), now);
                let (targets, passed) = self.unsnoozed(patient.as_str(), kind, step.targets, now).await?;
                // A snoozer passed by is not waited for: the next step comes now.
                source.next_escalation_ms =
                    step.next_at_ms.map(|t| if passed && targets.is_empty() { due } else { t + (due - now) });
                (deliveries_for(&targets, 0, due), true)
            }
            Fold::Into { group } => {
                metrics::counter!("glucochain_notify_grouped_total", "kind" => kind).increment(1);
                source.group_id = group;
                (Vec::new(), false)
            }
            Fold::Raise { group, step } => {
                // Everyone the group reached so far hears of the higher level now.
                let mut targets = Vec::new();
                for s in 0..=step {
                    targets.extend(policy::escalation_step(&routing, level, s, now).targets);
                }
                targets.dedup_by(|a, b| a.participant == b.participant);
                let (targets, _) = self.unsnoozed(patient.as_str(), kind, targets, now).await?;
                let next = policy::escalation_step(&routing, level, step, now).next_at_ms;
                source.group_id = group;
                source.step = step as i32;
                source.next_escalation_ms = next;
                (deliveries_for(&targets, step, policy::send_time(level, routing.quiet_hours.as_ref(), now)), true)
            }
        };
        if self.outbox.take(&source, &deliveries, carries, now).await? {
            metrics::counter!("glucochain_notify_sources_total", "kind" => kind).increment(1);
            tracing::info!(alert = %a.alert_id, kind, deliveries = deliveries.len(), "alert taken on");
        }
        self.wake.notify_one();
        Ok(())
    }

    /// Takes on a reminder: the patient, and for an overdue check-up the
    /// care plan's contacts too. No escalation; quiet hours apply.
    pub async fn take_reminder(&self, r: &wire::Reminder) -> anyhow::Result<()> {
        if r.reminder_id.is_empty() || self.outbox.has_source(&r.reminder_id).await? {
            return Ok(());
        }
        let patient = ParticipantId::parse(&r.patient).map_err(|e| anyhow::anyhow!("reminder patient: {e}"))?;
        let now = self.clock.now().unix_ms();
        let kind = kind_of_reminder(r.kind);
        let routing = self.routing(&patient).await?;
        let mut targets: Vec<Target> = self.patient_target(&patient, &routing).into_iter().collect();
        if kind == "checkup_overdue" {
            targets.extend(routing.others_than(&patient));
        }
        let mut source = SourceRow::received(
            &r.reminder_id,
            "reminder",
            patient.as_str(),
            kind,
            Level::Info as i32,
            r.encode_to_vec(),
            now,
        );
        source.traceparent = glucochain_bus::trace::span_traceparent(&tracing::Span::current());
        let due = policy::send_time(Level::Info, routing.quiet_hours.as_ref(), now);
        if targets.is_empty() {
            tracing::warn!(reminder = %r.reminder_id, "no channel for the patient or contacts: recorded, not sent");
        }
        self.outbox.take(&source, &deliveries_for(&targets, 0, due), false, now).await?;
        self.wake.notify_one();
        Ok(())
    }

    /// The public key acknowledge links are signed with.
    pub fn public_key(&self) -> glucochain_crypto::PublicKey {
        self.key.public()
    }

    /// What a delivery says.
    pub fn notice_for(&self, source: &SourceRow, delivery: &outbox::DeliveryRow) -> Notice {
        let patient = ParticipantId::parse(&source.patient).ok();
        let patient_name =
            patient.as_ref().and_then(|p| self.directory.name(p)).unwrap_or_else(|| "your patient".to_string());
        let level = Level::from_i32(source.severity);
        let base = Notice {
            source_kind: match source.source_kind.as_str() {
                "alert" => "alert",
                "reminder" => "reminder",
                _ => "notice",
            },
            kind: source.kind.clone(),
            level,
            patient_name,
            detail: String::new(),
            glucose: None,
            slope: None,
            predicted: None,
            at_ms: source.received_ms,
            recent: Vec::new(),
            ack_url: None,
            ack_code: delivery.ack_code.clone(),
            step: delivery.step.max(0) as u32,
        };
        match source.source_kind.as_str() {
            "reminder" => match wire::Reminder::decode(source.payload.as_slice()) {
                Ok(r) => Notice { detail: r.text, at_ms: r.due_at_ms, ..base },
                Err(_) => base,
            },
            _ => match wire::Alert::decode(source.payload.as_slice()) {
                Ok(a) => Notice {
                    detail: a.reason,
                    glucose: (a.glucose_mg_dl > 0.0).then_some(a.glucose_mg_dl),
                    slope: (a.slope_mg_dl_per_min != 0.0).then_some(a.slope_mg_dl_per_min),
                    predicted: (a.predicted_mg_dl > 0.0).then_some((a.predicted_mg_dl, a.predicted_at_ms)),
                    at_ms: a.observed_at_ms,
                    recent: a.recent.iter().map(|p| (p.at_ms, p.mg_dl)).collect(),
                    ack_url: (source.source_kind == "alert").then(|| {
                        let exp = Timestamp::now().unix_ms() + link::LINK_TTL_MS;
                        format!("{}/a/{}", self.public_url, link::sign(&self.key, &delivery.id, exp))
                    }),
                    ..base
                },
                Err(_) => base,
            },
        }
    }

    /// Sends one claimed delivery.
    async fn send(&self, source: &SourceRow, d: &outbox::DeliveryRow) -> Result<(), channels::SendError> {
        let n = self.notice_for(source, d);
        match d.channel.as_str() {
            "email" => {
                let mailer = self.mailer.as_ref().ok_or(channels::SendError::NotConfigured("email"))?;
                mailer.send(&d.address, &n.email(), &d.id).await
            }
            "sms" => self.http.sms(&d.address, &n.sms()).await,
            "webhook" => self.http.webhook(&d.address, &n.webhook(&source.id)).await,
            _ => Err(channels::SendError::Permanent(format!("unknown channel {}", d.channel))),
        }
    }

    /// One pass over the due deliveries.
    pub async fn dispatch(&self) -> anyhow::Result<usize> {
        let now = self.clock.now().unix_ms();
        let due = self.outbox.due_deliveries(now, 64).await?;
        let mut done = 0;
        for d in due {
            let lease = now + (self.lease_ms as f64 * self.clock.speed()) as i64;
            if !self.outbox.claim(&d.id, now, lease).await? {
                continue;
            }
            let Some(source) = self.outbox.source(&d.source_id).await? else { continue };
            if source.acked_ms.is_some() {
                self.outbox.suppress(&d.id).await?;
                continue;
            }
            let attempts = d.attempts.max(0) as u32 + 1;
            let channel = match d.channel.as_str() {
                "email" => "email",
                "sms" => "sms",
                _ => "webhook",
            };
            let span = tracing::info_span!("notifier.deliver", delivery = %d.id, channel, step = d.step, attempts);
            if let Some(tp) = &source.traceparent {
                glucochain_bus::trace::set_parent_traceparent(&span, tp);
            }
            match self.send(&source, &d).instrument(span).await {
                Ok(()) => {
                    let sent_ms = self.clock.now().unix_ms();
                    self.outbox.sent(&d.id, sent_ms).await?;
                    metrics::counter!("glucochain_notify_deliveries_total", "channel" => channel, "outcome" => "sent")
                        .increment(1);
                    tracing::info!(delivery = %d.id, source = %d.source_id, channel, step = d.step, "delivered");
                    done += 1;
                    // The channel works: deliveries on it that failed
                    // during an outage go now, not after their backoff.
                    let now_due = self.outbox.retry_channel_now(&d.channel, sent_ms).await?;
                    if now_due > 0 {
                        tracing::info!(
                            channel,
                            deliveries = now_due,
                            "channel back: retrying its failed deliveries now"
                        );
                        self.wake.notify_one();
                    }
                }
                Err(e) => {
                    let retry = match &e {
                        channels::SendError::Temporary(_) if attempts < policy::MAX_ATTEMPTS => {
                            Some(self.clock.now().unix_ms() + policy::backoff_ms(attempts))
                        }
                        _ => None,
                    };
                    let outcome = if retry.is_some() { "retry" } else { "failed" };
                    metrics::counter!("glucochain_notify_deliveries_total", "channel" => channel, "outcome" => outcome)
                        .increment(1);
                    let logged = channels::redact(&e.to_string(), api::channel_kind(&d.channel), &d.address);
                    tracing::warn!(delivery = %d.id, channel, attempts, error = %logged, outcome, "delivery failed");
                    let shown = channels::redact(&e.to_string(), api::channel_kind(&d.channel), &d.address);
                    self.outbox.failed(&d.id, &shown, retry).await?;
                }
            }
        }
        if let Ok(depth) = self.outbox.depth().await {
            metrics::gauge!("glucochain_notify_outbox_depth").set(depth as f64);
        }
        Ok(done)
    }

    /// One pass over due escalations.
    pub async fn escalate(&self) -> anyhow::Result<usize> {
        let now = self.clock.now().unix_ms();
        let mut moved = 0;
        for s in self.outbox.due_escalations(now).await? {
            let Ok(patient) = ParticipantId::parse(&s.patient) else { continue };
            let routing = match self.routing(&patient).await {
                Ok(r) => r,
                Err(e) => {
                    // Tried again on the next pass; the other escalations go on.
                    tracing::warn!(source = %s.id, error = format!("{e:#}"), "escalation waits: routing unavailable");
                    continue;
                }
            };
            let level = Level::from_i32(s.severity);
            let next_step = s.step.max(0) as u32 + 1;
            let step = policy::escalation_step(&routing, level, next_step, now);
            let due = policy::send_time(level, routing.quiet_hours.as_ref(), now);
            let (targets, passed) = self.unsnoozed(&s.patient, &s.kind, step.targets, now).await?;
            // A step whose only people snoozed this kind moves on at once.
            let next = step.next_at_ms.map(|t| if passed && targets.is_empty() { due } else { t });
            let d = deliveries_for(&targets, next_step, due);
            if self.outbox.advance(&s.id, s.step, next_step, next, &d, now).await? {
                metrics::counter!("glucochain_notify_escalations_total").increment(1);
                tracing::info!(source = %s.id, step = next_step, deliveries = d.len(), "escalated");
                moved += 1;
            }
        }
        if moved > 0 {
            self.wake.notify_one();
        }
        Ok(moved)
    }

    /// Acknowledges the group of `source_id` by `by`, received `via` a
    /// channel; `relay` records it on the chain as an `alert.ack` this
    /// service signs on behalf of `by`. Returns whether it was news.
    pub async fn acknowledge(
        &self,
        source: &SourceRow,
        by: &ParticipantId,
        via: &str,
        relay: bool,
    ) -> anyhow::Result<bool> {
        let now = self.clock.now().unix_ms();
        let first = self.outbox.ack_group(&source.group_id, by.as_str(), via, now).await?;
        if first {
            let since = self.outbox.group(&source.group_id).await?.first().map(|s| s.received_ms).unwrap_or(now);
            metrics::histogram!("glucochain_notify_ack_seconds").record((now - since) as f64 / 1000.0);
            metrics::counter!("glucochain_notify_acks_total", "via" => via.to_string()).increment(1);
            tracing::info!(source = %source.id, via, "acknowledged");
        }
        if relay && source.source_kind == "alert" {
            self.relay_ack(source, by).await?;
        }
        Ok(first)
    }

    async fn relay_ack(&self, source: &SourceRow, by: &ParticipantId) -> anyhow::Result<()> {
        let patient = ParticipantId::parse(&source.patient).map_err(|e| anyhow::anyhow!("{e}"))?;
        let alert_id = LocalId::parse(&source.id, "alert_id").map_err(|e| anyhow::anyhow!("{e}"))?;
        let body = TxBody::AlertAck(AlertAck { alert_id, on_behalf_of: Some(by.clone()) });
        let nonce = format!("ack-{}", &sha256(format!("{}|{by}", source.id).as_bytes()).to_string()[..24]);
        let jws = TxPayload::new(self.chain_id.clone(), nonce, Timestamp::now(), Some(patient), body)
            .sign(&self.key, &self.me);
        self.publish_tx(jws, "alert.ack").await
    }

    /// Forwards a signed transaction to the TXS stream.
    async fn publish_tx(&self, jws: String, tx_type: &str) -> anyhow::Result<()> {
        let hash = sha256(jws.as_bytes());
        let env = wire::TxEnvelope::received_now(jws.into_bytes(), hash.0.to_vec(), tx_type, self.chain.height());
        self.bus.publish(&subjects::tx(tx_type), &hash.to_string(), Bytes::from(env.encode_to_vec())).await?;
        Ok(())
    }

    /// Acknowledgement by a signed `alert.ack` transaction (the CLI's way):
    /// checked here and forwarded to the validators, who apply the rules.
    pub async fn acknowledge_signed(&self, source: &SourceRow, jws: &str) -> Result<ParticipantId, String> {
        let tx = Transaction::parse(jws, &Default::default()).map_err(|e| e.to_string())?;
        let TxBody::AlertAck(a) = &tx.payload.body else { return Err("not an alert.ack transaction".into()) };
        if a.alert_id.as_str() != source.id || tx.payload.patient.as_ref().map(|p| p.as_str()) != Some(&source.patient)
        {
            return Err("the transaction acknowledges another alert".into());
        }
        if a.on_behalf_of.is_some() {
            return Err("on_behalf_of is for services".into());
        }
        let key = {
            let view = self.chain.view.read().expect("view lock");
            view.state().participant(&tx.signer).filter(|p| p.is_active()).map(|p| p.public_key)
        };
        let key = key.ok_or("the signer is not an active participant")?;
        tx.verify_signature(&key).map_err(|e| e.to_string())?;
        if !self.on_care_team(&tx.signer, &source.patient) {
            return Err("the signer is not on this patient's care team".into());
        }
        self.publish_tx(jws.to_string(), "alert.ack").await.map_err(|e| format!("{e:#}"))?;
        self.acknowledge(source, &tx.signer, "api", false).await.map_err(|e| format!("{e:#}"))?;
        Ok(tx.signer)
    }

    /// The patient, a care-plan contact or the plan's clinician, or an admin.
    pub fn on_care_team(&self, who: &ParticipantId, patient: &str) -> bool {
        let Ok(patient) = ParticipantId::parse(patient) else { return false };
        if who == &patient {
            return true;
        }
        let view = self.chain.view.read().expect("view lock");
        let state = view.state();
        if state.participant(who).is_some_and(|p| p.role == glucochain_types::Role::Admin) {
            return true;
        }
        state
            .contracts()
            .active_careplan(&patient, Timestamp::now())
            .is_some_and(|v| &v.proposer == who || v.plan.contacts.iter().any(|c| &c.participant == who))
    }

    /// Acknowledgements committed on the chain (from any client) stop escalation too.
    async fn chain_acks(self: Arc<Self>, mut rx: tokio::sync::mpsc::UnboundedReceiver<(String, ParticipantId)>) {
        while let Some((alert_id, by)) = rx.recv().await {
            match self.outbox.source(&alert_id).await {
                Ok(Some(s)) => {
                    if let Err(e) = self.acknowledge(&s, &by, "chain", false).await {
                        tracing::warn!(error = format!("{e:#}"), "chain acknowledgement not recorded");
                    }
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "outbox"),
            }
        }
    }

    /// The dispatcher: sends due deliveries and escalates, every tick or when woken.
    async fn run_outbox(self: Arc<Self>, tick: Duration) -> anyhow::Result<()> {
        loop {
            if let Err(e) = self.escalate().await {
                tracing::warn!(error = format!("{e:#}"), "escalation pass failed");
            }
            if let Err(e) = self.dispatch().await {
                tracing::warn!(error = format!("{e:#}"), "outbox pass failed");
            }
            let _ = tokio::time::timeout(tick, self.wake.notified()).await;
        }
    }

    /// Watches the SMTP server's health for the `glucochain_notify_smtp_up` gauge.
    async fn probe_smtp(self: Arc<Self>) -> anyhow::Result<()> {
        let Some(mailer) = self.mailer.clone() else { return std::future::pending().await };
        loop {
            let up = mailer.probe().await;
            metrics::gauge!("glucochain_notify_smtp_up").set(if up { 1.0 } else { 0.0 });
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
    }
}

/// Consumes a JetStream stream with a durable consumer; each message is
/// acked only once `take` recorded it (a failure leaves it for redelivery).
async fn consume<F, Fut>(bus: Bus, spec: StreamSpec, durable: &str, take: F) -> anyhow::Result<()>
where
    F: Fn(Bytes) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let name = spec.name;
    let mut messages = bus.durable_messages(spec, ConsumerSpec::durable(durable));
    loop {
        let m = messages.next().await;
        // The event's trace (the reading's, for an alert) goes on here.
        let span = tracing::info_span!("notifier.event_taken", stream = name);
        glucochain_bus::trace::set_parent_from(&span, m.headers.as_ref());
        match take(m.payload.clone()).instrument(span).await {
            Ok(()) => {
                if let Err(e) = m.ack().await {
                    tracing::warn!(error = %e, "ack to JetStream failed; the message will be redelivered");
                }
            }
            Err(e) => {
                tracing::warn!(error = format!("{e:#}"), stream = name, "not recorded; will be redelivered");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

/// Runs the notifier until a fatal error.
pub async fn serve(cfg: NotifierConfig) -> anyhow::Result<()> {
    let genesis = Genesis::read_file(&cfg.genesis).context("genesis")?;
    let key = KeyPair::read_pem_file(&cfg.key).context("notifier key")?;
    let directory = match &cfg.directory {
        Some(p) => directory::Directory::read_file(p).context("directory")?,
        None => directory::Directory::default(),
    };
    let clock = Clock::from_flags(cfg.clock_speed, cfg.clock_start.as_deref()).map_err(anyhow::Error::msg)?;
    // One TLS provider for the SMTP and HTTP clients (ring, as everywhere here).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mailer = channels::Mailer::from_config(&cfg)?;
    if mailer.is_none() {
        tracing::warn!("no --smtp-host: email deliveries will fail as not configured");
    }
    let http = channels::Http::from_config(&cfg)?;
    let ready = Readiness::new(&["database", "nats"]);
    let store = glucochain_api::service::open_store(&cfg.database_url(), &cfg.data_dir, &ready).await?;
    let chain = Arc::new(StoredChain::open(store.clone(), &genesis).await?);
    let bus = Bus::connect(&cfg.nats_url, "notifier").await.context("nats")?;
    bus.ensure_stream(&StreamSpec::txs()).await?;
    ready.set("nats", true);
    let kek = glucochain_vault::keys::FileKek::load(&cfg.kek_file).context("key-encryption key")?;
    let vault = glucochain_vault::replica::VaultReader::new(&bus, Arc::new(kek)).await.context("VAULT stream")?;
    let me = ParticipantId::from_public_key(&key.public());
    let notifier = Arc::new(Notifier {
        chain: chain.clone(),
        outbox: Outbox::new(store),
        bus: bus.clone(),
        key,
        me,
        chain_id: genesis.chain_id.clone(),
        directory,
        mailer,
        http,
        clock,
        vault,
        addresses: Default::default(),
        public_url: cfg.public_url(),
        lease_ms: cfg.lease_secs as i64 * 1000,
        wake: tokio::sync::Notify::new(),
        openings: glucochain_follow::audit::OpeningLog::new(
            bus.clone(),
            glucochain_bus::subjects::AUDIT_APPEND_NOTIFIER,
            "glucochain_notify_unaudited_total",
        ),
    });
    let (ack_tx, ack_rx) = tokio::sync::mpsc::unbounded_channel();
    let follow = tokio::spawn(async move {
        let on_new = Box::new(move |b: &glucochain_consensus::block::Block| {
            metrics::gauge!("glucochain_notifier_height").set(b.header.height as f64);
            for jws in &b.txs {
                let Ok(tx) = Transaction::parse(std::str::from_utf8(jws).unwrap_or(""), &Default::default()) else {
                    continue;
                };
                if let TxBody::AlertAck(a) = &tx.payload.body {
                    let by = a.on_behalf_of.clone().unwrap_or(tx.signer.clone());
                    let _ = ack_tx.send((a.alert_id.to_string(), by));
                }
            }
        });
        follow_stored(chain, bus, "notifier", on_new).await.map_err(anyhow::Error::from)
    });
    let acks = tokio::spawn(notifier.clone().chain_acks(ack_rx));
    let n = notifier.clone();
    let alerts = tokio::spawn(consume(notifier.bus.clone(), StreamSpec::alerts(), "notifier-alerts", move |p| {
        let n = n.clone();
        async move {
            match wire::Alert::decode(p.as_ref()) {
                Ok(a) => n.take_alert(&a).await,
                Err(e) => {
                    tracing::warn!(error = %e, "undecodable alert dropped");
                    Ok(())
                }
            }
        }
    }));
    let n = notifier.clone();
    let reminders =
        tokio::spawn(consume(notifier.bus.clone(), StreamSpec::reminders(), "notifier-reminders", move |p| {
            let n = n.clone();
            async move {
                match wire::Reminder::decode(p.as_ref()) {
                    Ok(r) => n.take_reminder(&r).await,
                    Err(e) => {
                        tracing::warn!(error = %e, "undecodable reminder dropped");
                        Ok(())
                    }
                }
            }
        }));
    let outbox = tokio::spawn(notifier.clone().run_outbox(Duration::from_millis(cfg.tick_ms.max(50))));
    let smtp = tokio::spawn(notifier.clone().probe_smtp());
    let sms_secret = config::secret(&cfg.sms_webhook_secret_file, "GLUCOCHAIN_SMS_WEBHOOK_SECRET")?;
    if sms_secret.is_none() {
        tracing::info!("no SMS webhook secret: SMS replies are not taken");
    }
    let state = actix_web::web::Data::new(api::ApiState {
        sms_secret: sms_secret.map(String::into_bytes),
        // Per number: a reply a minute after a burst of 5; all together: 10 a second after 50.
        sms_per_number: std::sync::Mutex::new(glucochain_api::rate::RateLimiter::new(1.0 / 60.0, 5.0)),
        sms_overall: std::sync::Mutex::new(glucochain_api::rate::RateLimiter::new(10.0, 50.0)),
        notifier,
        policy: glucochain_crypto::jose::TokenPolicy::new(cfg.token_audience.clone(), genesis.chain_id.as_str()),
    });
    let server = http_server(cfg.http_addr, &cfg.tls, ready, move |c| {
        c.app_data(state.clone());
        api::configure(c);
    })?;
    tokio::select! {
        r = server => r.context("http server"),
        r = follow => Err(ended("following BLOCKS", r)),
        r = alerts => Err(ended("the ALERTS consumer", r)),
        r = reminders => Err(ended("the REMINDERS consumer", r)),
        r = outbox => Err(ended("the outbox", r)),
        r = smtp => Err(ended("the SMTP probe", r)),
        _ = acks => Err(anyhow::anyhow!("chain acknowledgements ended")),
    }
}

/// The binary's body: telemetry, then [`serve`].
pub fn main_with(cfg: NotifierConfig) -> anyhow::Result<()> {
    glucochain_api::service::run("notifier", || serve(cfg))
}
