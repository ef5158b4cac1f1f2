//! `emrctl demo`: a devnet and the whole story on it, each step checked and
//! reported: a hospital registers a clinician and lab staff; two patients
//! register, invite caregivers and grant consent; care plans signed by the
//! clinician and each patient; CGM readings from the simulated set stream in;
//! the detector raises alerts and caregivers' emails arrive in the mail sink;
//! one family acknowledges, the other's alert escalates to the second parent;
//! a clinician breaks the glass with the emergency token; a medication
//! reminder arrives; the chain is verified from genesis and one record's
//! inclusion proof is checked offline.

use super::devnet::{self, DEVNET_CHAIN, Devnet, Mail, UpOptions, commit, key, mailbox, register};
use super::http::{answer, client, read_token_for, runtime};
use crate::cli::DevnetShape;
use anyhow::{Context, bail};
use glucochain_crypto::jose::{CONTRACTS_AUDIENCE, LEDGER_AUDIENCE};
use glucochain_crypto::{KeyPair, sha256};
use glucochain_types::emergency::EmergencyCard;
use glucochain_types::fhir::cgm_observation;
use glucochain_types::ids::LocalId;
use glucochain_types::sealed::{ObservationBody, Submission};
use glucochain_types::time::Timestamp;
use glucochain_types::tx::{
    AlertKind, BloodGroup, CareContact, CarePlan, CareplanAccept, ChannelKind, ConsentGrant, ContactChannel,
    ContactChannelsBody, DiabetesType, EmergencyProfileBody, EmergencyReason, EmergencyReasonBody, EraseScope,
    GlucoseThresholds, MedicationSchedule, RecordErase, Term, TxBody, TxPayload,
};
use glucochain_types::{ChainId, DataClass, ParticipantId, Role};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// The caregivers and the addresses they declare (Sam's mother and father, Alex's partner).
const CARERS: [(&str, &str); 3] = [
    ("Sam's mother", "sam.mother@example.org"),
    ("Sam's father", "sam.father@example.org"),
    ("Alex's partner", "alex.partner@example.org"),
];

/// Simulated CGM traces the demo streams (UVA/Padova simulator, from the test fixtures).
const SAM_TRACE: &str = include_str!("../../../../tests/fixtures/cgm/dev/adult-001.csv");
const ALEX_TRACE: &str = include_str!("../../../../tests/fixtures/cgm/dev/child-002.csv");

/// How to run the demo.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Directory.
    pub dir: PathBuf,
    /// Validators, database, binaries.
    pub shape: DevnetShape,
    /// Leave the devnet running.
    pub keep: bool,
}

struct Person {
    key: KeyPair,
    id: ParticipantId,
    file: PathBuf,
}

fn person(dir: &std::path::Path, name: &str) -> anyhow::Result<Person> {
    let key = key(dir, name)?;
    let id = ParticipantId::from_public_key(&key.public());
    Ok(Person { key, id, file: dir.join("keys").join(format!("{name}.pem")) })
}

fn sign(who: &Person, patient: Option<&ParticipantId>, body: TxBody) -> String {
    devnet::sign(&who.key, patient, body)
}

/// Step reporting.
struct Steps {
    n: usize,
    total: usize,
    started: Instant,
    step_started: Instant,
    passed: Vec<(String, f64)>,
}

impl Steps {
    fn begin(&mut self, what: &str) {
        self.n += 1;
        self.step_started = Instant::now();
        println!("[{}/{}] {what} ...", self.n, self.total);
    }

    fn pass(&mut self, what: &str) {
        let secs = self.step_started.elapsed().as_secs_f64();
        println!("      passed: {what} ({secs:.1} s)");
        self.passed.push((what.to_string(), secs));
    }
}

fn bar(done: usize, total: usize) -> String {
    let width = 30;
    let filled = done * width / total.max(1);
    format!("[{}{}] {done}/{total}", "#".repeat(filled), " ".repeat(width - filled))
}

/// Readings around the deepest low of a trace, re-timed to end a minute ago.
fn window(csv: &str, before: usize, after: usize) -> Vec<(Timestamp, f64)> {
    let values: Vec<f64> = csv.lines().skip(1).filter_map(|l| l.split(',').nth(2)?.trim().parse().ok()).collect();
    let low = values.iter().enumerate().min_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i).unwrap_or(0);
    let from = low.saturating_sub(before);
    let to = (low + after).min(values.len());
    let n = to - from;
    let end = Timestamp::now().unix_ms() - 60_000;
    values[from..to]
        .iter()
        .enumerate()
        .map(|(i, g)| (Timestamp::from_unix_ms(end - (n - 1 - i) as i64 * 300_000), *g))
        .collect()
}

async fn wait_mail<F: Fn(&Mail) -> bool>(net: &Devnet, what: &str, secs: u64, want: F) -> anyhow::Result<Mail> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(m) = mailbox(&net.maildir).into_iter().find(|m| want(m)) {
            return Ok(m);
        }
        if Instant::now() > deadline {
            bail!("no email {what} within {secs} s (logs: {})", net.dir.join("logs").display());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn ack_link(m: &Mail, notifier: &str) -> anyhow::Result<String> {
    m.text()
        .split_whitespace()
        .find(|w| w.starts_with(&format!("{notifier}/a/")))
        .map(|w| w.trim_end_matches(['.', '"', '>']).to_string())
        .context("the email has no acknowledge link")
}

/// Runs the demo.
pub fn run(o: &DemoOptions) -> anyhow::Result<ExitCode> {
    // A fresh story each time: an earlier demo's directory (it has devnet.json)
    // is cleared; anything else that is not empty is left alone.
    if o.dir.join("devnet.json").exists() {
        if Devnet::read(&o.dir)
            .is_ok_and(|d| d.services.iter().any(|s| Path::new(&format!("/proc/{}", s.pid)).exists()))
        {
            bail!("a devnet is running in {} (emrctl devnet down --dir {0})", o.dir.display());
        }
        std::fs::remove_dir_all(&o.dir)?;
    } else if std::fs::read_dir(&o.dir).is_ok_and(|mut d| d.next().is_some()) {
        bail!("{} is not empty and not a devnet directory", o.dir.display());
    }
    std::fs::create_dir_all(o.dir.join("keys"))?;
    let dir = std::fs::canonicalize(&o.dir)?;
    let mut steps =
        Steps { n: 0, total: 12, started: Instant::now(), step_started: Instant::now(), passed: Vec::new() };
    let clinician = person(&dir, "clinician")?;
    let lab = person(&dir, "lab")?;
    let sam = person(&dir, "patient-sam")?;
    let alex = person(&dir, "patient-alex")?;
    let mother = person(&dir, "caregiver-sam-mother")?;
    let father = person(&dir, "caregiver-sam-father")?;
    let partner = person(&dir, "caregiver-alex-partner")?;
    // The hospital's contact directory: names and the patients' and clinician's own addresses.
    let email = |a: &str| json!([{ "kind": "email", "address": a }]);
    std::fs::write(
        dir.join("directory.json"),
        serde_json::to_vec_pretty(&json!({
            sam.id.as_str(): { "name": "Sam", "channels": email("sam@example.org") },
            alex.id.as_str(): { "name": "Alex", "channels": email("alex@example.org") },
            clinician.id.as_str(): { "name": "Dr Ada", "channels": email("dr.ada@hospital.example") },
        }))?,
    )?;

    steps.begin("starting the devnet (NATS, validators, ingest, ledger, contracts, detector, notifier, mail sink)");
    let net = devnet::up(&UpOptions { dir: dir.clone(), shape: o.shape.clone(), nats_port: None, clock_speed: 60.0 })?;
    steps.pass(&format!("{} processes ready, {} validators", net.services.len(), o.shape.validators));
    let result = story(&net, &mut steps, [&clinician, &lab, &sam, &alex, &mother, &father, &partner]);
    if !o.keep {
        devnet::down(&dir)?;
    }
    match result {
        Ok(summary) => {
            println!("\nAll {} steps passed in {:.0} s.", steps.passed.len(), steps.started.elapsed().as_secs_f64());
            println!("{summary}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("\nFAILED at step {}: {e:#}", steps.n);
            println!("logs: {}", dir.join("logs").display());
            Ok(ExitCode::from(1))
        }
    }
}

fn story(net: &Devnet, steps: &mut Steps, people: [&Person; 7]) -> anyhow::Result<String> {
    let [clinician, lab, sam, alex, mother, father, partner] = people;
    let hospital = KeyPair::read_pem_file(&net.hospital_key)?;
    let rt = runtime()?;
    let c = client()?;
    let ingest = net.ingest.clone();

    steps.begin("the hospital registers a clinician and lab staff; patients register and invite caregivers, who say where to reach them");
    rt.block_on(async {
        for jws in [
            register(&hospital, &clinician.key, Role::Clinician, Some("Dr Ada"), Some(&hospital)),
            register(&hospital, &lab.key, Role::Lab, Some("Lab"), Some(&hospital)),
            register(&sam.key, &sam.key, Role::Patient, None, None),
            register(&alex.key, &alex.key, Role::Patient, None, None),
        ] {
            commit(&c, &ingest, &jws).await?;
        }
        for (patient, carer) in [(sam, mother), (sam, father), (alex, partner)] {
            commit(&c, &ingest, &register(&patient.key, &carer.key, Role::Caregiver, None, None)).await?;
        }
        // Each caregiver declares the address alerts may reach them at: a care
        // plan can route their alerts nowhere else.
        for (carer, address) in CARERS.iter().zip([mother, father, partner]).map(|((_, a), p)| (p, *a)) {
            // The chain gets the kinds; the addresses are sealed beside them.
            let channels = vec![ContactChannel { kind: ChannelKind::Email, address: address.into() }];
            let (declare, sealed) = ContactChannelsBody::seal(channels);
            let submission = Submission::sealed(sign(carer, None, declare), sealed).to_json();
            commit(&c, &ingest, std::str::from_utf8(&submission)?).await?;
        }
        anyhow::Ok(())
    })?;
    steps.pass("7 participants registered and committed; 3 caregivers' channels declared");

    steps.begin("patients grant consent to the clinician; Sam sets an emergency profile");
    // Sam's wristband: made here, on Sam's side; only its public key goes on the chain.
    let sam_card = EmergencyCard::generate(sam.id.clone());
    rt.block_on(async {
        for p in [sam, alex] {
            let grant = TxBody::ConsentGrant(ConsentGrant::for_treatment(
                LocalId::parse("care-team", "consent_id")?,
                clinician.id.clone(),
                &[DataClass::Private, DataClass::Institution],
            ));
            commit(&c, &ingest, &sign(p, Some(&p.id), grant)).await?;
        }
        // The chain gets the card's key and a commitment; the profile itself
        // is sealed into the vault beside it.
        let (profile, sealed) = EmergencyProfileBody {
            blood_group: BloodGroup::APos,
            allergies: vec!["penicillin".into()],
            diabetes_type: DiabetesType::Type1,
            medications: vec!["insulin glargine".into(), "insulin aspart".into()],
            emergency_contacts: vec![],
        }
        .seal(sam_card.public_key());
        let submission = Submission::sealed(sign(sam, Some(&sam.id), profile), sealed).to_json();
        commit(&c, &ingest, std::str::from_utf8(&submission)?).await?;
        anyhow::Ok(())
    })?;
    std::fs::write(net.dir.join("keys/sam-emergency-card.txt"), format!("{}\n", sam_card.text()))?;
    steps.pass("consents and the emergency profile committed (Sam's card in keys/sam-emergency-card.txt)");

    steps.begin("the clinician and each patient sign a care plan naming caregivers");
    rt.block_on(async {
        let now = Timestamp::now().unix_ms();
        // The plan names who and which kind of channel; the addresses are
        // the ones each caregiver declared.
        let contact = |p: &Person| CareContact {
            participant: p.id.clone(),
            channels: vec![ChannelKind::Email],
            escalate_after_minutes: 2,
        };
        for (p, contacts, meds) in [
            (
                sam,
                vec![contact(mother), contact(father)],
                vec![MedicationSchedule {
                    name: "insulin glargine".into(),
                    dose: "18 U".into(),
                    times: (0..24).map(|h| format!("{h:02}:00")).collect(),
                }],
            ),
            (alex, vec![contact(partner)], vec![]),
        ] {
            let plan = CarePlan {
                plan_id: LocalId::parse("plan-1", "plan_id")?,
                version: 1,
                thresholds: GlucoseThresholds::default(),
                alert_kinds: vec![AlertKind::UrgentLow, AlertKind::Low, AlertKind::PredictedLow, AlertKind::VeryHigh],
                contacts,
                quiet_hours: None,
                medications: meds,
                checkups: vec![],
                term: Term {
                    start: Timestamp::from_unix_ms(now - 3_600_000),
                    end: Timestamp::from_unix_ms(now + 90 * 86_400_000),
                },
                language: None,
                alert_repeat: None,
                insulin: None,
            };
            // The chain gets who is alerted and how; the thresholds and the
            // medication schedule are sealed beside it.
            let (envelope, sealed) = plan.seal();
            let propose = sign(clinician, Some(&p.id), envelope);
            let proposal_tx = sha256(propose.as_bytes());
            commit(&c, &ingest, std::str::from_utf8(&Submission::sealed(propose, sealed).to_json())?).await?;
            let accept = TxBody::CareplanAccept(CareplanAccept {
                plan_id: LocalId::parse("plan-1", "plan_id")?,
                version: 1,
                proposal_tx,
            });
            commit(&c, &ingest, &sign(p, Some(&p.id), accept)).await?;
        }
        // No pause for the services to see the plans: each reading carries the
        // height ingest had reached, and the detector and notifier wait for it.
        anyhow::Ok(())
    })?;
    steps.pass("two care plans active (proposed by the clinician, accepted by the patient)");

    steps.begin("CGM readings from the simulated set stream in (three hours each, accelerated)");
    let sam_readings = window(SAM_TRACE, 30, 4);
    let alex_readings = window(ALEX_TRACE, 30, 4);
    let total = sam_readings.len() + alex_readings.len();
    let mut last_tx = String::new();
    let stream_started = std::time::SystemTime::now();
    rt.block_on(async {
        let mut done = 0;
        for i in 0..sam_readings.len().max(alex_readings.len()) {
            for (p, readings) in [(sam, &sam_readings), (alex, &alex_readings)] {
                let Some((at, g)) = readings.get(i) else { continue };
                let obs = cgm_observation(p.id.as_str(), *at, *g, Some(&format!("demo-{i}")));
                let (envelope, sealed) = ObservationBody::seal(vec![obs], DataClass::Private);
                let jws = sign(p, Some(&p.id), envelope);
                let r = c
                    .post(format!("{ingest}/v1/transactions"))
                    .header("content-type", "application/json")
                    .body(Submission::sealed(jws.clone(), sealed).to_json())
                    .send()
                    .await?;
                let (status, body) = answer(r).await?;
                if status != 202 {
                    bail!("reading refused ({status}): {body}");
                }
                if p.id == sam.id {
                    last_tx = jws;
                }
                done += 1;
                use std::io::{IsTerminal as _, Write as _};
                if std::io::stdout().is_terminal() {
                    print!("\r      {}", bar(done, total));
                    std::io::stdout().flush().ok();
                } else if done % (total / 4).max(1) == 0 || done == total {
                    println!("      {}", bar(done, total));
                }
            }
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
        if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
            println!();
        }
        // A reading that claims to be Sam's but is signed with another key is refused.
        let obs = cgm_observation(sam.id.as_str(), Timestamp::now(), 40.0, Some("forged"));
        let (body, sealed) = ObservationBody::seal(vec![obs], DataClass::Private);
        let forged = TxPayload::new(
            ChainId::parse(DEVNET_CHAIN)?,
            super::random_nonce(),
            Timestamp::now(),
            Some(sam.id.clone()),
            body,
        )
        .sign(&alex.key, &sam.id);
        let r = c
            .post(format!("{ingest}/v1/transactions"))
            .header("content-type", "application/json")
            .body(Submission::sealed(forged, sealed).to_json())
            .send()
            .await?;
        let (status, _) = answer(r).await?;
        if status != 401 {
            bail!("a forged reading got {status}, not 401");
        }
        anyhow::Ok(())
    })?;
    steps.pass(&format!("{total} readings accepted; a forged one refused (401)"));

    steps.begin("the detector raises alerts; caregivers' emails arrive in the mail sink");
    let (sam_mail, alex_mail) = rt.block_on(async {
        let s = wait_mail(net, "to Sam's first caregiver", 90, |m| m.header("To") == Some("sam.mother@example.org"))
            .await?;
        let a =
            wait_mail(net, "to Alex's caregiver", 90, |m| m.header("To") == Some("alex.partner@example.org")).await?;
        anyhow::Ok((s, a))
    })?;
    let first_email_latency = mailbox(&net.maildir)
        .iter()
        .map(|m| m.modified)
        .min()
        .and_then(|t| t.duration_since(stream_started).ok())
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    steps.pass(&format!(
        "\"{}\" to sam.mother@, \"{}\" to alex.partner@",
        sam_mail.header("Subject").unwrap_or(""),
        alex_mail.header("Subject").unwrap_or("")
    ));

    steps.begin("Alex's partner acknowledges by the link; nobody acknowledges Sam's, so it escalates");
    let escalated = rt.block_on(async {
        let link = ack_link(&alex_mail, &net.notifier)?;
        let page = c.post(&link).send().await?.text().await?;
        if !page.contains("Thank you") && !page.contains("Already") {
            bail!("acknowledgement page: {page}");
        }
        // Two (clock) minutes without an ack: Sam's father is told.
        let esc = wait_mail(net, "escalated to Sam's second caregiver", 120, |m| {
            m.header("To") == Some("sam.father@example.org")
        })
        .await?;
        if !esc.text().contains("earlier contacts have not acknowledged") {
            bail!("the escalation email does not say why it came");
        }
        // He acknowledges; the escalation stops.
        let link = ack_link(&esc, &net.notifier)?;
        c.post(&link).send().await?.error_for_status()?;
        anyhow::Ok(esc)
    })?;
    steps.pass(&format!(
        "Alex's alert acknowledged; Sam's escalated to {}, then acknowledged",
        escalated.header("To").unwrap_or("")
    ));

    steps.begin("the clinician reads Sam's records under consent; Sam sees the read in the access log");
    let (entries, logged) = rt.block_on(async {
        let token = read_token_for(&clinician.file, LEDGER_AUDIENCE, DEVNET_CHAIN)?;
        let deadline = Instant::now() + Duration::from_secs(30);
        let bundle = loop {
            let r = c.get(format!("{}/v1/patients/{}/records", net.ledger, sam.id)).bearer_auth(&token).send().await?;
            let (status, body) = answer(r).await?;
            if status == 200 && body["entry"].as_array().is_some_and(|e| !e.is_empty()) {
                break body;
            }
            if Instant::now() > deadline {
                bail!("the clinician's read failed ({status}): {body}");
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        };
        let mine = read_token_for(&sam.file, LEDGER_AUDIENCE, DEVNET_CHAIN)?;
        let r = c.get(format!("{}/v1/patients/{}/access-log", net.ledger, sam.id)).bearer_auth(&mine).send().await?;
        let (status, log) = answer(r).await?;
        if status != 200 || !log.to_string().contains(clinician.id.as_str()) {
            bail!("the access log does not show the clinician's read ({status}): {log}");
        }
        anyhow::Ok((
            bundle["entry"].as_array().map(Vec::len).unwrap_or(0),
            log["entry"].as_array().map(Vec::len).unwrap_or(0),
        ))
    })?;
    steps.pass(&format!("a FHIR bundle of {entries} records; {logged} audited reads in Sam's access log"));

    steps.begin("a clinician breaks the glass with Sam's wristband");
    let profile = rt.block_on(async {
        // The clinician's device scans the card and proves holding it, for this access only.
        let scanned = EmergencyCard::parse(&sam_card.text())?;
        let (nonce, created_at) = (super::random_nonce(), Timestamp::now());
        let chain = ChainId::parse(DEVNET_CHAIN)?;
        // The clinician's words go beside the access, sealed (issue 21).
        let (access, sealed) = EmergencyReasonBody::seal(
            scanned.prove(&chain, &clinician.id, &nonce, created_at),
            EmergencyReason::Unconscious,
            Some("found unconscious at the clinic entrance".into()),
        );
        let jws = TxPayload::new(chain, nonce, created_at, Some(scanned.patient.clone()), access)
            .sign(&clinician.key, &clinician.id);
        let sealed = sealed.context("the reason is sealed")?;
        commit(&c, &ingest, std::str::from_utf8(&Submission::sealed(jws, sealed).to_json())?).await?;
        let token = read_token_for(&clinician.file, CONTRACTS_AUDIENCE, DEVNET_CHAIN)?;
        let deadline = Instant::now() + Duration::from_secs(30);
        let profile = loop {
            let r = c
                .post(format!("{}/v1/emergency-access", net.contracts))
                .bearer_auth(&token)
                .json(&json!({ "card": scanned.text() }))
                .send()
                .await?;
            let (status, body) = answer(r).await?;
            if status == 200 {
                break body;
            }
            if Instant::now() > deadline {
                bail!("break-glass refused ({status}): {body}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        wait_mail(net, "telling Sam about the break-glass access", 60, |m| {
            m.header("To") == Some("sam@example.org")
                && m.header("Subject").is_some_and(|s| s.contains("Emergency access"))
        })
        .await?;
        anyhow::Ok(profile)
    })?;
    steps.pass(&format!(
        "blood group {}, allergies {}, medication {}; Sam was told by email",
        profile["blood_group"], profile["allergies"], profile["medications"]
    ));

    steps.begin("a medication reminder fires (the reminder clock runs a minute per second)");
    let reminder = rt.block_on(wait_mail(net, "with Sam's medication reminder", 120, |m| {
        m.header("To") == Some("sam@example.org") && m.header("Subject").is_some_and(|s| s.contains("Medication"))
    }))?;
    steps.pass(&format!("\"{}\" to sam@example.org", reminder.header("Subject").unwrap_or("")));

    steps.begin("the chain is verified from genesis; one reading's inclusion proof is checked offline");
    let hash = sha256(last_tx.as_bytes()).to_string();
    rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (_, b) = answer(c.get(format!("{ingest}/v1/transactions/{hash}")).send().await?).await?;
            if b["status"] == "committed" {
                return anyhow::Ok(());
            }
            if Instant::now() > deadline {
                bail!("the last reading is not committed: {b}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })?;
    drop(rt);
    if super::http::verify_chain(&net.genesis, &net.admin_key, &net.ledger)? != ExitCode::SUCCESS {
        bail!("the chain did not verify");
    }
    let proof = net.dir.join("proof.json");
    let sam_reader = crate::cli::ReaderArgs { key: sam.file.clone(), chain_id: DEVNET_CHAIN.into() };
    if super::http::proof(&hash, &sam_reader, &net.ledger, &proof)? != ExitCode::SUCCESS {
        bail!("no inclusion proof");
    }
    if super::verify::verify_proof(&proof, &net.genesis)? != ExitCode::SUCCESS {
        bail!("the inclusion proof did not verify");
    }
    steps.pass(&format!("every header and certificate from genesis; proof of {} in {}", &hash[..16], proof.display()));

    steps.begin("Sam erases that reading: its body leaves the vault, reads say erased, the chain still verifies");
    let rt = runtime()?;
    rt.block_on(async {
        let erase = sign(
            sam,
            Some(&sam.id),
            TxBody::RecordErase(RecordErase {
                erase_id: LocalId::parse("demo-erasure", "erase_id")?,
                scope: EraseScope::Record(glucochain_crypto::Hash32::from_hex(&hash)?),
                request: None,
            }),
        );
        commit(&c, &ingest, &erase).await?;
        let token = read_token_for(&sam.file, LEDGER_AUDIENCE, DEVNET_CHAIN)?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let url = format!("{}/v1/patients/{}/records?_count=500", net.ledger, sam.id);
            let (status, b) = answer(c.get(url).bearer_auth(&token).send().await?).await?;
            let erased = b["entry"].as_array().is_some_and(|e| {
                e.iter().any(|e| {
                    e["resource"]["issue"][0]["code"] == "deleted"
                        && e["fullUrl"].as_str().is_some_and(|u| u.contains(&hash))
                })
            });
            if status == 200 && erased {
                return anyhow::Ok(());
            }
            if Instant::now() > deadline {
                bail!("the erased reading is still served ({status}): {b}");
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    })?;
    drop(rt);
    if super::http::verify_chain(&net.genesis, &net.admin_key, &net.ledger)? != ExitCode::SUCCESS {
        bail!("the chain did not verify after the erasure");
    }
    if super::verify::verify_proof(&proof, &net.genesis)? != ExitCode::SUCCESS {
        bail!("the reading's inclusion proof did not verify after the erasure");
    }
    steps.pass("erased in the vault (the ledger answers \"deleted\"); chain and proof verify as before");

    let mails = mailbox(&net.maildir);
    let to = |a: &str| mails.iter().filter(|m| m.header("To") == Some(a)).count();
    Ok(format!(
        "Summary
  emails delivered:        {} (Sam's mother {}, father {}, Alex's partner {}, Sam {})
  CGM readings streamed:   {total}
  first caregiver email {first_email_latency:.1} s after the first reading was sent (the stream replays three hours)
  where to look:
    devnet:   {dir}/devnet.json   (every endpoint), logs in {dir}/logs/
    inbox:    emrctl devnet mail --dir {dir}   (--show N to read one)
    records:  emrctl records {sam} --key {sam_key} --chain-id glucochain-devnet --ledger {ledger}
    web:      {ledger}/ui/ in a browser (with --keep), signing in with {sam_key} or the clinician's key
    alert:    curl -s -H \"authorization: Bearer $(emrctl token --key {mother_key} --audience glucochain-notifier)\" {notifier}/v1/alerts/<id>
    ingest:   curl -s {ingest}/v1/transactions/{hash}",
        mails.len(),
        to("sam.mother@example.org"),
        to("sam.father@example.org"),
        to("alex.partner@example.org"),
        to("sam@example.org"),
        dir = net.dir.display(),
        sam = sam.id,
        sam_key = sam.file.display(),
        mother_key = mother.file.display(),
        ledger = net.ledger,
        notifier = net.notifier,
    ))
}
