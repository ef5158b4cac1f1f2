//! The README's first command, end to end: `emrctl demo` brings up a devnet
//! (every service a process, NATS, a real SMTP mail sink) and plays the whole
//! story; every step must pass, and `devnet status`, `devnet mail` and
//! `devnet down` work on what it leaves running. A real Prometheus server
//! scrapes the devnet while the story plays, and every panel of every
//! Grafana dashboard must return data from it: no dead panels.

mod common;

use common::bin_dir;
use std::path::Path;
use std::process::Command;

fn emrctl(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_e2e-emrctl")).args(args).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
}

/// A Prometheus server scraping the targets of a file (file service
/// discovery, re-read every second), each target's `component` label as its job.
struct Prometheus {
    child: std::process::Child,
    url: String,
    targets: std::path::PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn prometheus(dir: &Path) -> Prometheus {
    let targets = dir.join("targets.json");
    std::fs::write(&targets, "[]").unwrap();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n\
             scrape_configs:\n  - job_name: glucochain\n    file_sd_configs: [{{files: ['{}'], refresh_interval: 1s}}]\n\
             \x20   relabel_configs:\n      - {{source_labels: [component], target_label: job}}\n",
            targets.display()
        ),
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", dir.join("tsdb").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("prometheus (Debian package prometheus; scripts/setup.sh installs it)");
    Prometheus { child, url: format!("http://127.0.0.1:{port}"), targets }
}

/// Points Prometheus at every HTTP service of the devnet.
fn scrape_devnet(p: &Prometheus, devnet_json: &Path) {
    let net: serde_json::Value = serde_json::from_slice(&std::fs::read(devnet_json).unwrap()).unwrap();
    let targets: Vec<serde_json::Value> = net["services"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| {
            let url = s["url"].as_str()?;
            let name = s["name"].as_str()?;
            let component = if name.starts_with("validator-") { "validator" } else { name };
            Some(serde_json::json!({
                "targets": [url.trim_start_matches("http://")],
                "labels": { "component": format!("glucochain-{component}"), "instance": name },
            }))
        })
        .collect();
    let tmp = p.targets.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec(&targets).unwrap()).unwrap();
    std::fs::rename(&tmp, &p.targets).unwrap();
}

/// Every panel query of a dashboard that returns no sample or only NaN.
fn dead_panels(prom: &str, dashboard: &Path) -> Vec<String> {
    let d: serde_json::Value = serde_json::from_slice(&std::fs::read(dashboard).unwrap()).unwrap();
    let mut dead = Vec::new();
    for panel in d["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().unwrap() {
            let expr = t["expr"].as_str().unwrap();
            let out = Command::new("curl")
                .args(["-sfG", &format!("{prom}/api/v1/query"), "--data-urlencode", &format!("query={expr}")])
                .output()
                .unwrap();
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            let live = v["data"]["result"]
                .as_array()
                .is_some_and(|r| r.iter().any(|s| s["value"][1].as_str().is_some_and(|x| x != "NaN")));
            if !live {
                dead.push(format!("{} / {}: {expr} -> {v}", d["title"], panel["title"]));
            }
        }
    }
    dead
}

/// Runs schemathesis (every check, a fixed seed) against each service's
/// `/openapi.json`; returns the output of each run that failed, or left a
/// service down.
fn openapi_conformance(net: &Path) -> Vec<String> {
    let devnet: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(net.join("devnet.json")).unwrap()).unwrap();
    let (ok, token) = emrctl(&["token", "--key", net.join("keys/patient-sam.pem").to_str().unwrap()]);
    assert!(ok, "{token}");
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemathesis/schemathesis.toml");
    let mut failed = Vec::new();
    for service in ["ingest", "ledger", "contracts", "notifier"] {
        let url = format!("{}/openapi.json", devnet[service].as_str().unwrap());
        let out = Command::new("python3")
            .args(["-m", "schemathesis.cli", "--config-file", config.to_str().unwrap(), "run", &url])
            .args(["--checks", "all", "--max-examples", "30", "--seed", "20261130", "--request-timeout", "10"])
            .args(["--header", &format!("Authorization: Bearer {}", token.trim())])
            .env("NO_COLOR", "1")
            // Its crash cache stays with the devnet, not in the tree, and no
            // earlier run's cases are replayed.
            .current_dir(net)
            .output()
            .expect("python3 -m schemathesis (scripts/setup.sh installs it)");
        let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            failed.push(format!("--- {service}\n{text}"));
        }
    }
    let (ok, status) = emrctl(&["devnet", "status", "--dir", net.to_str().unwrap()]);
    if !ok {
        failed.push(format!("a service is down after schemathesis:\n{status}"));
    }
    failed
}

/// Signs (and seals) a transaction with `emrctl`, submits it to the devnet
/// and waits for its commit.
fn commit_with_emrctl(net: &Path, work: &Path, sign: &[&str]) {
    let (ok, text) = emrctl(sign);
    assert!(ok, "{text}");
    let f = work.join("canary-tx.json");
    std::fs::write(&f, text.trim()).unwrap();
    let ingest = devnet_url(net, "ingest");
    let (ok, out) = emrctl(&["submit", "--ingest", &ingest, "--wait", "60", f.to_str().unwrap()]);
    assert!(ok && out.contains("committed"), "{out}");
}

fn devnet_url(net: &Path, service: &str) -> String {
    let d: serde_json::Value = serde_json::from_slice(&std::fs::read(net.join("devnet.json")).unwrap()).unwrap();
    d[service].as_str().unwrap().to_string()
}

fn participant(net: &Path, name: &str) -> String {
    let key = net.join(format!("keys/{name}.pem"));
    let (ok, out) = emrctl(&["keyinfo", "--key", key.to_str().unwrap()]);
    assert!(ok, "{out}");
    serde_json::from_str::<serde_json::Value>(&out).unwrap()["participant_id"].as_str().unwrap().to_string()
}

/// Plants PHI canaries for Sam through the public API — a reading with odd
/// decimals, an allergy and a medication in the emergency profile, a
/// consult's reason, note and prescription, a document's title, a
/// caregiver's display name and email address, a care plan's medication, a
/// dose taken —
/// and checks
/// that the patient and the consented clinician read them back. Returns
/// what was planted.
fn plant_canaries(net: &Path, work: &Path) -> Vec<(&'static str, String)> {
    const CHAIN: &str = "glucochain-devnet";
    let key = |name: &str| net.join(format!("keys/{name}.pem")).display().to_string();
    let (sam, clinician) = (participant(net, "patient-sam"), participant(net, "clinician"));
    let canaries = vec![
        ("glucose value", "123.4567".to_string()),
        ("allergy", "canary-allergy-kw31".to_string()),
        ("medication", "canary-medication-zp58".to_string()),
        ("consult reason", "canary-reason-hq22".to_string()),
        ("consult note", "canary-note-vb77".to_string()),
        ("prescription", "canary-prescription-mx04".to_string()),
        ("document title", "canary-title-ty19".to_string()),
        ("display name", "Canary Carer Qx".to_string()),
        ("contact address", "canary-carer-jw63@example.org".to_string()),
        ("contact phone", "+447700900563".to_string()),
        ("care-plan medication", "canary-plan-med-rk42".to_string()),
        ("dose taken", "canary-dose-tk81".to_string()),
        ("break-glass reason", "canary-glass-bq19".to_string()),
    ];
    let c = |what: &str| canaries.iter().find(|(w, _)| *w == what).unwrap().1.clone();
    let sign_as = |who: &str, tx_type: &str, body: serde_json::Value| {
        let f = work.join("canary-body.json");
        std::fs::write(&f, body.to_string()).unwrap();
        let k = key(who);
        let args = ["sign-tx", "--key", &k, "--chain-id", CHAIN, "--type", tx_type, "--patient", &sam, "--body"];
        commit_with_emrctl(net, work, &[&args[..], &[f.to_str().unwrap()]].concat());
    };
    let now = glucochain_types::time::Timestamp::now();
    let reading = glucochain_types::fhir::cgm_observation(&sam, now, c("glucose value").parse().unwrap(), None);
    sign_as(
        "patient-sam",
        "observation.record",
        serde_json::json!({ "data_class": "private", "observations": [reading] }),
    );
    sign_as(
        "patient-sam",
        "document.add",
        serde_json::json!({
            "document_id": "canary-doc", "data_class": "private", "kind": "lab_report", "title": c("document title"),
            "content_type": "application/pdf", "content_sha256": "cd".repeat(32), "size_bytes": 2048, "code": "11502-2",
        }),
    );
    // Sam invites a caregiver, named.
    let carer_key = work.join("canary-carer.pem");
    let (ok, carer) = emrctl(&["keygen", "--out", carer_key.to_str().unwrap()]);
    assert!(ok, "{carer}");
    let carer: serde_json::Value = serde_json::from_str(&carer).unwrap();
    let f = work.join("canary-register.json");
    let register = serde_json::json!({
        "id": carer["participant_id"], "role": "caregiver", "public_key": carer["public_key"],
        "display_name": c("display name"),
    });
    std::fs::write(&f, register.to_string()).unwrap();
    let k = key("patient-sam");
    let args = ["sign-tx", "--key", &k, "--chain-id", CHAIN, "--type", "participant.register", "--body"];
    commit_with_emrctl(net, work, &[&args[..], &[f.to_str().unwrap()]].concat());
    // The caregiver declares where to reach them (no care plan names them,
    // so nothing is ever sent there: the address is only in the vault).
    let f = work.join("canary-channels.json");
    let channels = serde_json::json!({ "channels": [
        { "kind": "email", "address": c("contact address") },
        { "kind": "sms", "address": c("contact phone") },
    ] });
    std::fs::write(&f, channels.to_string()).unwrap();
    let k = carer_key.display().to_string();
    let args = ["sign-tx", "--key", &k, "--chain-id", CHAIN, "--type", "contact.channels.set", "--body"];
    commit_with_emrctl(net, work, &[&args[..], &[f.to_str().unwrap()]].concat());
    // The clinician proposes a care plan naming a medication (its clinical
    // content is sealed; Sam need not accept it for it to be on the chain).
    let now_ms = now.unix_ms();
    let at = |ms: i64| glucochain_types::time::Timestamp::from_unix_ms(ms).to_rfc3339();
    sign_as(
        "clinician",
        "careplan.propose",
        serde_json::json!({
            "plan_id": "canary-plan", "version": 1,
            "thresholds": { "urgent_low": 54.0, "low": 70.0, "high": 180.0, "very_high": 250.0, "rapid_change_per_min": 2.0, "signal_loss_minutes": 30 },
            "alert_kinds": [], "contacts": [],
            "medications": [{ "name": c("care-plan medication"), "dose": "7 U", "times": ["07:15"] }],
            "term": { "start": at(now_ms - 60_000), "end": at(now_ms + 86_400_000) },
        }),
    );
    sign_as(
        "patient-sam",
        "medication.taken",
        serde_json::json!({ "medication": "insulin aspart", "dose": c("dose taken"), "taken_at": at(now_ms), "insulin_units": 3.5 }),
    );
    let (ok, card) = emrctl(&["emergency", "card", "--patient", &sam, "--qr", work.join("card.svg").to_str().unwrap()]);
    assert!(ok, "{card}");
    let card: serde_json::Value = serde_json::from_str(&card).unwrap();
    let base = ["--chain-id", CHAIN, "--patient", &sam];
    let (sam_key, clinician_key) = (key("patient-sam"), key("clinician"));
    let (allergy, medication) = (c("allergy"), c("medication"));
    let profile = [
        &["emergency", "profile", "--key", &sam_key][..],
        &base[..],
        &["--blood-group", "A+", "--diabetes-type", "type1", "--allergies", &allergy, "--medications", &medication][..],
        &["--card-key", card["card_key"].as_str().unwrap()][..],
    ]
    .concat();
    commit_with_emrctl(net, work, &profile);
    let reason = c("consult reason");
    let request = [&["consult", "request", "--key", &sam_key][..], &base[..]].concat();
    let ask = ["--id", "canary-consult", "--clinician", &clinician, "--classes", "private", "--reason", &reason];
    commit_with_emrctl(net, work, &[&request[..], &ask[..]].concat());
    let (note, prescription) = (c("consult note"), c("prescription"));
    let rx = format!("{prescription};5 U;at night");
    let respond = [&["consult", "respond", "--key", &clinician_key][..], &base[..]].concat();
    commit_with_emrctl(
        net,
        work,
        &[&respond[..], &["--id", "canary-consult", "--note", &note, "--prescription", &rx]].concat(),
    );
    // Those allowed still read what they need: the patient and the
    // consented clinician their records, the clinician who breaks the glass
    // the profile.
    let ledger = devnet_url(net, "ledger");
    let since = format!("ge{}", glucochain_types::time::Timestamp::from_unix_ms(now.unix_ms() - 60_000).to_rfc3339());
    for reader in [&sam_key, &clinician_key] {
        let (ok, out) =
            emrctl(&["records", &sam, "--key", reader, "--chain-id", CHAIN, "--ledger", &ledger, "--date", &since]);
        assert!(ok, "{out}");
        assert!(out.contains(&c("glucose value")) && out.contains(&c("document title")), "{reader}: {out}");
    }
    let (ingest, contracts) = (devnet_url(net, "ingest"), devnet_url(net, "contracts"));
    // A clinician of the hospital who has not broken the glass this hour
    // (the story's clinician has) does, in their own words.
    let medic_key = work.join("canary-medic.pem");
    let (ok, medic) = emrctl(&["keygen", "--out", medic_key.to_str().unwrap()]);
    assert!(ok, "{medic}");
    let medic: serde_json::Value = serde_json::from_str(&medic).unwrap();
    let f = work.join("canary-medic.json");
    let register = serde_json::json!({
        "id": medic["participant_id"], "role": "clinician", "public_key": medic["public_key"],
        "institution": participant(net, "hospital"),
    });
    std::fs::write(&f, register.to_string()).unwrap();
    let k = key("hospital");
    let args = ["sign-tx", "--key", &k, "--chain-id", CHAIN, "--type", "participant.register", "--body"];
    commit_with_emrctl(net, work, &[&args[..], &[f.to_str().unwrap()]].concat());
    let (ok, out) = emrctl(&[
        "emergency",
        "access",
        "--key",
        medic_key.to_str().unwrap(),
        "--chain-id",
        CHAIN,
        "--card",
        card["card"].as_str().unwrap(),
        "--reason-code",
        "unconscious",
        "--reason",
        &c("break-glass reason"),
        "--ingest",
        &ingest,
        "--contracts",
        &contracts,
    ]);
    assert!(ok && out.contains(&allergy) && out.contains(&medication) && !out.contains("already open"), "{out}");
    // Sam reads the proposed plan, its medication opened from the vault.
    let (ok, token) = emrctl(&["token", "--key", &sam_key, "--chain-id", CHAIN, "--audience", "glucochain-contracts"]);
    assert!(ok, "{token}");
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let plans = rt.block_on(async {
        let url = format!("{contracts}/v1/patients/{sam}/careplan");
        let r = reqwest::Client::new().get(&url).bearer_auth(token.trim()).send().await.unwrap();
        assert_eq!(r.status(), 200, "{url}");
        r.text().await.unwrap()
    });
    assert!(plans.contains(&c("care-plan medication")), "{plans}");
    // Then Sam erases everything: reads answer erased, nothing opens any more.
    sign_as("patient-sam", "record.erase", serde_json::json!({ "erase_id": "canary-erase", "scope": "all" }));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (ok, out) =
            emrctl(&["records", &sam, "--key", &sam_key, "--chain-id", CHAIN, "--ledger", &ledger, "--date", &since]);
        assert!(ok, "{out}");
        if !out.contains(&c("glucose value")) && !out.contains(&c("document title")) && out.contains("deleted") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "still served after the erasure: {out}");
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    let plans = rt.block_on(async {
        let url = format!("{contracts}/v1/patients/{sam}/careplan");
        reqwest::Client::new().get(&url).bearer_auth(token.trim()).send().await.unwrap().text().await.unwrap()
    });
    assert!(!plans.contains(&c("care-plan medication")) && plans.contains("erased"), "{plans}");
    canaries
}

/// Stops the devnet in this directory when dropped (idempotent).
struct DownOnDrop(std::path::PathBuf);

impl Drop for DownOnDrop {
    fn drop(&mut self) {
        let _ = emrctl(&["devnet", "down", "--dir", self.0.to_str().unwrap_or_default()]);
    }
}

#[test]
fn the_demo_story_passes_every_step_on_a_devnet_and_every_dashboard_panel_has_data() {
    let work = tempfile::tempdir().unwrap();
    let bins = bin_dir(work.path());
    let net = work.path().join("devnet");
    // However the test ends (a failed assertion included), the devnet's
    // processes do not outlive it.
    let _down = DownOnDrop(net.clone());
    let prom = prometheus(work.path());
    let child = Command::new(env!("CARGO_BIN_EXE_e2e-emrctl"))
        .args(["demo", "--dir", net.to_str().unwrap(), "--bin-dir", bins.to_str().unwrap(), "--keep"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Scrape the devnet as soon as it says where its services are.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !net.join("devnet.json").exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    if net.join("devnet.json").exists() {
        scrape_devnet(&prom, &net.join("devnet.json"));
    }
    let done = child.wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&done.stdout).into_owned() + &String::from_utf8_lossy(&done.stderr);
    let ok = done.status.success();
    let tail = || {
        let logs = std::fs::read_dir(net.join("logs")).map(|d| d.count()).unwrap_or(0);
        format!("{out}\n({logs} log files in {})", net.join("logs").display())
    };
    let stop = || emrctl(&["devnet", "down", "--dir", net.to_str().unwrap()]);
    if !ok {
        let t = tail();
        stop();
        panic!("demo failed:\n{t}");
    }
    assert!(out.contains("All 12 steps passed"), "{}", tail());
    assert_eq!(out.matches("passed: ").count(), 12);

    // What it left running answers.
    let (ok, status) = emrctl(&["devnet", "status", "--dir", net.to_str().unwrap()]);
    assert!(ok, "{status}");
    assert!(status.contains("validator-3") && status.contains("notifier"), "{status}");
    let (ok, mail) = emrctl(&["devnet", "mail", "--dir", net.to_str().unwrap()]);
    assert!(ok && mail.contains("sam.father@example.org"), "{mail}");
    let (ok, first) = emrctl(&["devnet", "mail", "--dir", net.to_str().unwrap(), "--show", "1"]);
    assert!(ok && first.contains("Subject:") && first.contains("What to do"), "{first}");
    // Every dashboard panel returns data from the scrapes of the story.
    std::thread::sleep(std::time::Duration::from_secs(3));
    let boards = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../helm/glucochain/files/dashboards");
    let mut dead = Vec::new();
    for b in std::fs::read_dir(&boards).unwrap() {
        dead.extend(dead_panels(&prom.url, &b.unwrap().path()));
    }
    // Every HTTP API holds to its OpenAPI document under schemathesis, with
    // a patient's read token and the story's data behind it.
    let openapi = openapi_conformance(&net);
    // A data protection officer's search (issue 21): canaries planted
    // through the public API, read back by those allowed, then looked for in
    // every file of the devnet once it is down.
    let canaries = plant_canaries(&net, work.path());
    let (ok, down) = stop();
    assert!(ok, "{down}");
    // The story's own break-glass words, sealed like the canaries.
    let story = [("story's break-glass reason", "found unconscious at the clinic entrance".to_string())];
    for (what, canary) in canaries.iter().chain(&story) {
        let found = glucochain_testkit::canary::files_holding(&net, canary);
        assert!(found.is_empty(), "the {what} {canary:?} is in clear or base64 in {found:?}");
    }
    // JetStream's files are encrypted at rest (issue 21): Sam's participant
    // id and a caregiver's address are nowhere in the NATS store, in clear
    // or base64, although the devnet holds them elsewhere (the id is on
    // every envelope of Sam's in the validators' and services' stores; the
    // address is where the notifier sent to it: its outbox and the mail
    // sink), which shows the search finds them where they are.
    let conf = std::fs::metadata(net.join("data/nats.conf")).unwrap();
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&conf.permissions()) & 0o777, 0o600, "nats.conf holds the key");
    let sam = participant(&net, "patient-sam");
    for canary in [sam.as_str(), "sam.mother@example.org"] {
        let in_nats = glucochain_testkit::canary::files_holding(&net.join("data/nats"), canary);
        assert!(in_nats.is_empty(), "{canary:?} in clear in the NATS store: {in_nats:?}");
        let anywhere = glucochain_testkit::canary::files_holding(&net.join("data"), canary);
        assert!(!anywhere.is_empty(), "the control: {canary:?} is somewhere in the devnet's data");
    }
    assert!(dead.is_empty(), "dead panels:\n{}", dead.join("\n"));
    assert!(openapi.is_empty(), "schemathesis found:\n{}", openapi.join("\n"));
    let (ok, after) = emrctl(&["devnet", "status", "--dir", net.to_str().unwrap()]);
    assert!(!ok, "nothing runs after down: {after}");
}
