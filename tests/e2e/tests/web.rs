//! The web pages in a real browser: Debian's headless Chromium, driven by
//! Playwright (`tests/browser/glucochain.mjs`), on a devnet the demo left
//! running (every service a process, real NATS and SMTP mail sink).
//!
//! * A patient accepts a care plan in the browser (signing with their key in
//!   WebCrypto); a falling trace raises an alert; the caregiver opens the
//!   link in the real notification email on a phone-sized screen, sees the
//!   chart and who was told, acknowledges with the keyboard, and the
//!   escalation to the second caregiver stops.
//! * A patient revokes a consent; the clinician's next read is refused, and
//!   the patient sees the refusal in the access log. A new emergency card
//!   shows its QR code.
//! * The clinician's AGP report over a CGM fixture matches an independent
//!   computation (tests/agp/agp_reference.py).
//!
//! Every page visited is checked for WCAG AA text contrast and for loading
//! only our own script. Screenshots go to a temporary directory, or to
//! `docs/screenshots/` with `GLUCOCHAIN_UPDATE_SCREENSHOTS=1`.

mod common;

use common::bin_dir;
use emrctl::devnet::{Devnet, commit, key, mailbox, register, sign};
use glucochain_crypto::KeyPair;
use glucochain_types::fhir::cgm_observation;
use glucochain_types::ids::LocalId;
use glucochain_types::sealed::Submission;
use glucochain_types::time::Timestamp;
use glucochain_types::tx::{
    AlertKind, CareContact, CarePlan, ChannelKind, ConsentGrant, ContactChannel, ContactChannelsBody,
    GlucoseThresholds, Term, TxBody,
};
use glucochain_types::{DataClass, ParticipantId, Role};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs one browser scenario and returns what it saw.
fn browser(scenario: &str, args: Value) -> Value {
    let dir = repo().join("tests/browser");
    let out = Command::new("node")
        .arg(dir.join("glucochain.mjs"))
        .arg(scenario)
        .arg(args.to_string())
        .current_dir(&dir)
        .output()
        .expect("node (tests/browser: npm ci)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "browser scenario {scenario} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap_or_else(|e| panic!("{scenario}: {e}: {stdout}"))
}

/// Stops the devnet however the test ends.
struct Running(PathBuf);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = Command::new(env!("CARGO_BIN_EXE_e2e-emrctl"))
            .args(["devnet", "down", "--dir", self.0.to_str().unwrap()])
            .output();
    }
}

fn wait_mail(net: &Devnet, to: &str, secs: u64) -> emrctl::devnet::Mail {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(m) = mailbox(&net.maildir).into_iter().find(|m| m.header("To") == Some(to)) {
            return m;
        }
        assert!(Instant::now() < deadline, "no email to {to} within {secs} s (logs in {})", net.dir.display());
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() { out.extend(walk(&p)) } else { out.push(p) }
    }
    out
}

fn pem(net: &Devnet, name: &str) -> String {
    net.dir.join("keys").join(format!("{name}.pem")).display().to_string()
}

#[test]
fn caregivers_patients_and_clinicians_use_the_web_pages_in_a_browser() {
    let work = tempfile::tempdir().unwrap();
    let bins = bin_dir(work.path());
    let dir = work.path().join("devnet");
    let shots = match std::env::var_os("GLUCOCHAIN_UPDATE_SCREENSHOTS") {
        Some(_) => repo().join("docs/screenshots"),
        None => work.path().join("screenshots"),
    };
    let demo = Command::new(env!("CARGO_BIN_EXE_e2e-emrctl"))
        .args(["demo", "--dir", dir.to_str().unwrap(), "--bin-dir", bins.to_str().unwrap(), "--keep"])
        .output()
        .unwrap();
    let _running = Running(dir.clone());
    assert!(demo.status.success(), "demo: {}", String::from_utf8_lossy(&demo.stdout));
    let net = Devnet::read(&dir).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    let ok = |jws: String| {
        rt.block_on(commit(&http, &net.ingest, &jws)).unwrap();
    };
    let me = |k: &KeyPair| ParticipantId::from_public_key(&k.public());
    let clinician = key(&dir, "clinician").unwrap();
    let sam = key(&dir, "patient-sam").unwrap();
    let alex = key(&dir, "patient-alex").unwrap();
    let base = |who: &str| json!({ "base": net.ledger, "key": pem(&net, who), "shots": shots });

    // --- A new patient with two caregivers; the clinician proposes a care plan.
    let robin = key(&dir, "patient-robin").unwrap();
    let carers = [key(&dir, "caregiver-robin-1").unwrap(), key(&dir, "caregiver-robin-2").unwrap()];
    ok(register(&robin, &robin, Role::Patient, None, None));
    for c in &carers {
        ok(register(&robin, c, Role::Caregiver, None, None));
    }
    // Each caregiver says where they may be alerted; the plan names exactly that.
    for (c, address) in carers.iter().zip(["robin.carer1@example.org", "robin.carer2@example.org"]) {
        let channels = vec![ContactChannel { kind: ChannelKind::Email, address: address.into() }];
        let (declare, sealed) = ContactChannelsBody::seal(channels);
        ok(String::from_utf8(Submission::sealed(sign(c, None, declare), sealed).to_json()).unwrap());
    }
    let grant = ConsentGrant::for_treatment(
        LocalId::parse("care-team", "consent_id").unwrap(),
        me(&clinician),
        &[DataClass::Private, DataClass::Institution],
    );
    ok(sign(&robin, Some(&me(&robin)), TxBody::ConsentGrant(grant)));
    let now = Timestamp::now().unix_ms();
    let contact = |k: &KeyPair| CareContact {
        participant: me(k),
        channels: vec![ChannelKind::Email],
        // Half a minute at the devnet's clock speed (60×).
        escalate_after_minutes: 30,
    };
    let plan = CarePlan {
        plan_id: LocalId::parse("plan-1", "plan_id").unwrap(),
        version: 1,
        thresholds: GlucoseThresholds::default(),
        alert_kinds: vec![AlertKind::UrgentLow, AlertKind::Low, AlertKind::PredictedLow, AlertKind::RapidFall],
        contacts: vec![contact(&carers[0]), contact(&carers[1])],
        quiet_hours: None,
        medications: vec![],
        checkups: vec![],
        term: Term {
            start: Timestamp::from_unix_ms(now - 3_600_000),
            end: Timestamp::from_unix_ms(now + 30 * 86_400_000),
        },
        language: None,
        alert_repeat: None,
        insulin: None,
    };
    let (envelope, sealed) = plan.seal();
    ok(String::from_utf8(Submission::sealed(sign(&clinician, Some(&me(&robin)), envelope), sealed).to_json()).unwrap());

    // Robin accepts it in the browser, signing with the key file.
    let accepted = browser("accept-plan", {
        let mut a = base("patient-robin");
        a["patient"] = json!(me(&robin));
        a
    });
    assert!(accepted["notice"].as_str().unwrap().contains("accept care plan plan-1 version 1"), "{accepted}");
    // Issue 19, H4: before accepting, the patient saw every contact's every address;
    // issue 19, H1: what they signed was decoded and shown in the browser.
    let proposal = accepted["proposal"].as_str().unwrap();
    assert!(
        proposal.contains("robin.carer1@example.org") && proposal.contains("robin.carer2@example.org"),
        "{accepted}"
    );
    assert!(accepted["confirmed"].as_str().unwrap().contains("plan-1 version 1"), "{accepted}");
    assert!(accepted["page"].as_str().unwrap().contains("Who is alerted, in order"), "{accepted}");

    // --- A falling trace: the first caregiver is emailed.
    let values = [182.0, 170.0, 158.0, 146.0, 134.0, 121.0, 108.0, 96.0, 84.0, 73.0, 63.0, 55.0, 49.0];
    let end = Timestamp::now().unix_ms() - 60_000;
    for (i, g) in values.iter().enumerate() {
        let at = Timestamp::from_unix_ms(end - (values.len() - 1 - i) as i64 * 300_000);
        let obs = cgm_observation(me(&robin).as_str(), at, *g, Some(&format!("web-{i}")));
        let (posted, media) = common::posted(&sign(&robin, Some(&me(&robin)), common::record(vec![obs])));
        let r = rt
            .block_on(
                http.post(format!("{}/v1/transactions", net.ingest)).header("content-type", media).body(posted).send(),
            )
            .unwrap();
        assert_eq!(r.status(), 202);
    }
    let mail = wait_mail(&net, "robin.carer1@example.org", 120);
    let link = mail
        .text()
        .split_whitespace()
        .find(|w| w.starts_with(&format!("{}/a/", net.notifier)))
        .map(|w| w.trim_end_matches(['.', '"', '>']).to_string())
        .expect("the email has an acknowledge link");

    // The caregiver opens it on a phone, sees the chart, acknowledges by keyboard.
    let alert = browser("alert", json!({ "url": link, "shots": shots }));
    assert!(alert["chart"].as_str().unwrap().contains("readings from"), "{alert}");
    let before = alert["deliveries_before"].to_string();
    assert!(before.contains("(you)") && before.contains("sent"), "{alert}");
    assert!(alert["state"].as_str().unwrap().contains("Escalation stopped"), "{alert}");
    // Issue 20: a snooze is offered, for the page's durations, and none is in force yet.
    let options = alert["snooze_options"].to_string();
    assert!(options.contains("15 minutes") && options.contains("30 minutes"), "{alert}");
    assert_eq!(alert["snoozes"], "0", "{alert}");
    // Before the acknowledgement the next contact was due; half a minute later
    // (and more) nobody else has been emailed about it.
    let acked_at = Instant::now();
    std::thread::sleep(Duration::from_secs(45));
    let others: Vec<_> =
        mailbox(&net.maildir).into_iter().filter(|m| m.header("To") == Some("robin.carer2@example.org")).collect();
    assert!(others.is_empty(), "escalated after the acknowledgement ({:?} later)", acked_at.elapsed());

    // --- Consent: the clinician reads Sam's records; Sam revokes; the next read is refused.
    let sam_args = |extra: Value| {
        let mut a = base("patient-sam");
        a["patient"] = json!(me(&sam));
        for (k, v) in extra.as_object().unwrap() {
            a[k] = v.clone();
        }
        a
    };
    let clinician_args = |patient: &ParticipantId, shot: &str| {
        let mut a = base("clinician");
        a["patient"] = json!(patient);
        a["shot"] = json!(shot);
        a
    };
    let read = browser("read-records", clinician_args(&me(&sam), "clinician-records.png"));
    assert_eq!(read["status"], 200, "{read}");
    assert!(read["text"].as_str().unwrap().contains("Glucose"), "{read}");
    // Issue 19, H1: a prepare answer altered on its way is refused in the browser, and nothing is signed.
    let tampered = browser("tampered", sam_args(json!({ "consent": "care-team" })));
    let refused = tampered["refused"].as_object().unwrap();
    assert_eq!(refused.len(), 6, "{tampered}");
    for (what, text) in refused {
        assert!(text.as_str().unwrap().starts_with("Not signed"), "{what}: {text}");
    }
    assert!(tampered["shown"].as_str().unwrap().contains("care-team"), "{tampered}");
    assert!(tampered["cancelled"].as_str().unwrap().contains("nothing was signed"), "{tampered}");
    let revoked = browser("revoke", sam_args(json!({ "consent": "care-team" })));
    assert!(revoked["notice"].as_str().unwrap().starts_with("Done: revoke consent care-team"), "{revoked}");
    assert!(revoked["confirmed"].as_str().unwrap().contains("Revoke consent care-team"), "{revoked}");
    assert!(revoked["row"].as_str().unwrap().contains("revoked"), "{revoked}");
    let denied = browser("read-records", clinician_args(&me(&sam), "clinician-denied.png"));
    assert_eq!(denied["status"], 403, "{denied}");
    // A new emergency card, made in the browser (issue 19, M1): its code is on
    // the card only, the chain holds its public key; the QR code reads back.
    let old_card = std::fs::read_to_string(net.dir.join("keys/sam-emergency-card.txt")).unwrap().trim().to_string();
    let card = browser("emergency", sam_args(json!({})));
    let code = card["code"].as_str().unwrap().rsplit(' ').next().unwrap().to_string();
    assert!(code.starts_with(&format!("gce1:{}:", me(&sam))), "{card}");
    assert!(card["profile"].as_str().unwrap().contains("penicillin"), "{card}");
    assert!(card["confirmed"].as_str().unwrap().contains("New emergency card"), "{card}");
    let decoded = Command::new("python3")
        .arg(repo().join("tests/qr/decode.py"))
        .args(["--png", card["qr"].as_str().unwrap()])
        .output()
        .unwrap();
    assert!(decoded.status.success(), "{}", String::from_utf8_lossy(&decoded.stderr));
    let decoded: Value = serde_json::from_slice(&decoded.stdout).unwrap();
    assert_eq!(decoded["text"].as_str(), Some(code.as_str()), "the QR code on the page holds the card");
    // The card's secret never reached a service: no log and no database file holds it.
    let secret = code.rsplit(':').next().unwrap().to_string();
    for entry in walk(&net.dir) {
        if entry.to_string_lossy().contains("screenshots") {
            continue;
        }
        let bytes = std::fs::read(&entry).unwrap_or_default();
        assert!(!String::from_utf8_lossy(&bytes).contains(&secret), "the card's secret is in {}", entry.display());
    }
    // The clinician breaks the glass with the new card; the old card no longer works.
    let break_glass = |card: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_e2e-emrctl"))
            .args(["emergency", "access", "--key", &pem(&net, "clinician"), "--chain-id", &net.chain_id])
            .args(["--card", card, "--reason-code", "unconscious", "--reason", "web test: at the pool"])
            .args(["--ingest", &net.ingest, "--contracts", &net.contracts])
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (served, profile) = break_glass(&code);
    assert!(served && profile.contains("penicillin"), "{profile}");
    let (served, refused) = break_glass(&old_card);
    assert!(!served, "the old card still opens the profile: {refused}");
    // The clinician's words are sealed off the chain (issue 21); the
    // patient reads them on their emergency page (the story's access: the
    // one above reads under it, still open).
    let list = browser("break-glass-list", sam_args(json!({})));
    let items = list["items"].as_array().unwrap();
    assert!(
        items.iter().any(|i| i.as_str().unwrap().contains(": found unconscious at the clinic entrance")),
        "the patient sees the clinician's words: {list}"
    );

    let log = browser("access-log", sam_args(json!({})));
    let rows = log["rows"].as_array().unwrap();
    let clinician_rows: Vec<&Value> = rows.iter().filter(|r| r["reader"] == json!(me(&clinician))).collect();
    let record_reads: Vec<&&Value> =
        clinician_rows.iter().filter(|r| r["text"].as_str().unwrap().contains("/records")).collect();
    assert_eq!(record_reads.first().map(|r| r["outcome"].clone()), Some(json!("denied")), "{log}");
    assert!(record_reads.iter().any(|r| r["outcome"] == "granted"), "the earlier read is there too: {log}");
    assert!(
        clinician_rows.iter().any(|r| r["text"].as_str().unwrap().contains("break-glass")),
        "the break-glass read is in the log and marked: {log}"
    );

    // A consent to someone the chain does not know: the contract rules' refusal is shown.
    let stranger = ParticipantId::from_public_key(&KeyPair::generate().public());
    let refused = browser("grant", sam_args(json!({ "grantee": stranger })));
    assert!(refused["notice"].as_str().unwrap().starts_with("Refused"), "{refused}");
    assert!(refused["bad"].as_bool().unwrap(), "{refused}");

    // The pages refuse a forged session and carry the security headers.
    let page = format!("{}/ui/patients/{}/records", net.ledger, me(&sam));
    let forged = format!("glucochain_session={}", "A".repeat(43));
    let no_redirect = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let r = rt.block_on(no_redirect.get(&page).header("cookie", forged).send()).unwrap();
    assert_eq!(r.status(), 303, "a forged session goes to the sign-in page");
    assert_eq!(r.headers()["location"], "/ui/");
    let r = rt.block_on(http.get(format!("{}/ui/", net.ledger)).send()).unwrap();
    let csp = r.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'") && !csp.contains("unsafe"),
        "{csp}"
    );

    // --- The AGP report over a fixture matches an independent computation.
    let fixture = repo().join("tests/fixtures/cgm/dev/adult-002.csv");
    let csv = std::fs::read_to_string(&fixture).unwrap();
    let readings: Vec<(Timestamp, f64)> = csv
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut f = l.split(',').skip(1);
            Some((Timestamp::parse(f.next()?).ok()?, f.next()?.trim().parse().ok()?))
        })
        .collect();
    for (n, chunk) in readings.chunks(250).enumerate() {
        let observations = chunk
            .iter()
            .enumerate()
            .map(|(i, (at, g))| cgm_observation(me(&alex).as_str(), *at, *g, Some(&format!("fixture-{n}-{i}"))))
            .collect();
        ok(common::posted(&sign(&alex, Some(&me(&alex)), common::record(observations))).0);
    }
    let (from, to) = ("2026-03-02", "2026-03-05");
    let mut a = clinician_args(&me(&alex), "agp.png");
    a["from"] = json!(from);
    a["to"] = json!(to);
    let page = browser("agp", a);
    let reference = Command::new("python3")
        .arg(repo().join("tests/agp/agp_reference.py"))
        .args([fixture.to_str().unwrap(), from, to])
        .output()
        .unwrap();
    assert!(reference.status.success(), "{}", String::from_utf8_lossy(&reference.stderr));
    let want: Value = serde_json::from_slice(&reference.stdout).unwrap();
    let close = |got: &Value, want: &Value, what: &str| {
        let (g, w) = (got.as_f64().unwrap(), want.as_f64().unwrap());
        assert!((g - w).abs() < 1e-4, "{what}: page {g}, reference {w}");
    };
    assert_eq!(page["readings"], want["readings"], "{page}");
    for (fig, key) in [("mean", "mean"), ("gmi", "gmi"), ("cv", "cv"), ("active", "active")] {
        close(&page["figures"][fig], &want[key], fig);
    }
    for band in ["very_low", "low", "in_range", "high", "very_high"] {
        close(&page["bands"][band], &want["bands"][band], band);
    }
    // The modal-day table (rounded to whole mg/dL) against the reference's percentiles.
    let modal = page["modal"].as_array().unwrap();
    assert_eq!(modal.len(), 96);
    for (row, want) in modal.iter().zip(want["modal"].as_array().unwrap()) {
        let cells: Vec<&str> = row.as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
        match want.as_array() {
            None => assert_eq!(cells[2], "–", "{row}"),
            Some(ps) => {
                for (cell, p) in cells[2..].iter().zip(ps) {
                    let shown: f64 = cell.parse().unwrap();
                    assert!((shown - p.as_f64().unwrap()).abs() <= 0.5 + 1e-9, "{row} vs {want}");
                }
            }
        }
    }
    assert!(page["pdf_bytes"].as_u64().unwrap() > 10_000, "a printable PDF: {page}");
    // The readings behind the figures, each with the transaction and block that hold it.
    let lines: Vec<&str> = page["csv"].as_str().unwrap().lines().collect();
    assert_eq!(lines[0], "timestamp,glucose_mg_dl,tx_hash,block_height,tx_index");
    assert_eq!(lines.len() as u64 - 1, want["readings"].as_u64().unwrap());
    assert!(lines[1].starts_with("2026-03-02T00:00:00Z,"), "{}", lines[1]);
}
