//! The emrctl binary, run as an integrator would.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn emrctl(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_emrctl"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let mut si = child.stdin.take().unwrap();
        if let Some(s) = stdin {
            si.write_all(s.as_bytes()).unwrap();
        }
    }
    child.wait_with_output().unwrap()
}

fn json(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn keygen_writes_0600_and_refuses_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k/patient.pem");
    let info = json(&emrctl(&["keygen", "--out", p(&key)], None));
    let id = info["participant_id"].as_str().unwrap();
    assert!(id.starts_with('p') && id.len() == 33);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    }
    assert_eq!(json(&emrctl(&["keyinfo", "--key", p(&key)], None))["participant_id"], info["participant_id"]);
    let again = emrctl(&["keygen", "--out", p(&key)], None);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("refusing to overwrite"));
}

#[test]
fn sign_then_verify_and_tamper() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("patient.pem");
    let info = json(&emrctl(&["keygen", "--out", p(&key)], None));
    let id = info["participant_id"].as_str().unwrap();
    let pk = info["public_key"].as_str().unwrap();
    let body = r#"{"consent_id":"c-2026-001"}"#;
    let out = emrctl(
        &[
            "sign-tx",
            "--key",
            p(&key),
            "--chain-id",
            "glucochain-dev",
            "--type",
            "consent.revoke",
            "--patient",
            id,
            "--body",
            "-",
        ],
        Some(body),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let jws = String::from_utf8(out.stdout).unwrap();
    let v = json(&emrctl(&["verify-tx", "-", "--public-key", pk, "--chain-id", "glucochain-dev"], Some(&jws)));
    assert_eq!(v["signature"], "valid");
    assert_eq!(v["type"], "consent.revoke");
    assert_eq!(v["signer"], id);
    // The tx hash is the same whichever command computes it.
    let h = emrctl(&["hash", "--tx", "-"], Some(&jws));
    assert_eq!(String::from_utf8(h.stdout).unwrap().trim(), v["tx_hash"].as_str().unwrap());

    // Another chain id is refused.
    let wrong = emrctl(&["verify-tx", "-", "--public-key", pk, "--chain-id", "glucochain-prod"], Some(&jws));
    assert_eq!(wrong.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("glucochain-prod"));

    // A changed signature fails with exit 1.
    let mut parts: Vec<String> = jws.trim().split('.').map(String::from).collect();
    let sig = &mut parts[2];
    let c = if sig.starts_with('A') { "B" } else { "A" };
    sig.replace_range(0..1, c);
    let tampered = parts.join(".");
    let bad = emrctl(&["verify-tx", "-", "--public-key", pk], Some(&tampered));
    assert_eq!(bad.status.code(), Some(1));
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&bad.stdout).unwrap()["signature"], "invalid");
}

#[test]
fn sign_tx_refuses_bad_bodies_with_the_field_named() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("patient.pem");
    let id = json(&emrctl(&["keygen", "--out", p(&key)], None))["participant_id"].as_str().unwrap().to_string();
    let cases = [
        (r#"{"medication":"x","taken_at":"2026-11-25T07:30:00Z","colour":"red"}"#, "unknown field `colour`"),
        (r#"{"medication":"x","taken_at":"tomorrow"}"#, "RFC 3339"),
        (r#"{"medication":"  ","taken_at":"2026-11-25T07:30:00Z"}"#, "body.medication"),
        ("not json", "not valid JSON"),
    ];
    for (body, want) in cases {
        let out = emrctl(
            &[
                "sign-tx",
                "--key",
                p(&key),
                "--chain-id",
                "glucochain-dev",
                "--type",
                "medication.taken",
                "--patient",
                &id,
            ],
            Some(body),
        );
        assert_eq!(out.status.code(), Some(2), "{body}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{body}: expected {want:?} in {err}");
        assert!(out.stdout.is_empty(), "nothing signed for a bad body");
    }
}

#[test]
fn genesis_lookup_and_offline_proof() {
    let dir = tempfile::tempdir().unwrap();
    let rt = dir.path().join("rt");
    let out = emrctl(&["roundtrip", "--dir", p(&rt), "--validators", "4"], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stdout).contains("All steps passed"));
    let genesis = rt.join("genesis.json");
    let proof = rt.join("proof.json");
    let v = json(&emrctl(&["verify-proof", "--proof", p(&proof), "--genesis", p(&genesis)], None));
    assert_eq!(v["verified"], true);
    assert_eq!(v["signed_power"], 30);

    // A proof with one signature removed no longer reaches the quorum.
    let mut doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&proof).unwrap()).unwrap();
    doc["certificate"]["signatures"].as_array_mut().unwrap().pop();
    let weak = emrctl(&["verify-proof", "--genesis", p(&genesis)], Some(&doc.to_string()));
    assert_eq!(weak.status.code(), Some(1));
    let res: serde_json::Value = serde_json::from_slice(&weak.stdout).unwrap();
    assert_eq!(res["verified"], false);
    assert!(res["error"].as_str().unwrap().contains("two thirds"));

    // A genesis built by `emrctl genesis` from the same keys verifies it too.
    let keys = rt.join("keys");
    let mut args = vec!["genesis".to_string(), "--chain-id".into(), "glucochain-roundtrip".into()];
    let orig: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&genesis).unwrap()).unwrap();
    for i in 1..=4 {
        args.push("--validator".into());
        args.push(format!("validator-{i}={}:10", keys.join(format!("validator-{i}.pem")).display()));
    }
    args.push("--admin".into());
    args.push(format!("admin={}", keys.join("admin.pem").display()));
    args.push("--time".into());
    args.push(orig["genesis_time"].as_str().unwrap().into());
    let g2 = dir.path().join("genesis2.json");
    args.push("--out".into());
    args.push(p(&g2).into());
    let argv: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    let out = emrctl(&argv, None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rebuilt: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&g2).unwrap()).unwrap();
    assert_eq!(rebuilt, orig);

    // verify-tx finds a genesis admin's key by the JWS kid.
    let body = r#"{"id":"PLACEHOLDER","reason":"left the hospital"}"#;
    let admin_key = keys.join("admin.pem");
    let victim = json(&emrctl(&["keyinfo", "--key", p(&keys.join("patient.pem"))], None));
    let body = body.replace("PLACEHOLDER", victim["participant_id"].as_str().unwrap());
    let out = emrctl(
        &[
            "sign-tx",
            "--key",
            p(&admin_key),
            "--chain-id",
            "glucochain-roundtrip",
            "--type",
            "participant.revoke",
            "--body",
            "-",
        ],
        Some(&body),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let jws = String::from_utf8(out.stdout).unwrap();
    let v = json(&emrctl(&["verify-tx", "-", "--genesis", p(&g2)], Some(&jws)));
    assert_eq!(v["signature"], "valid");
}

#[test]
fn token_is_a_short_lived_read_token() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("reader.pem");
    let info = json(&emrctl(&["keygen", "--out", p(&key)], None));
    let out = emrctl(&["token", "--key", p(&key), "--ttl", "60", "--chain-id", "glucochain-dev"], None);
    assert!(out.status.success());
    let tok = String::from_utf8(out.stdout).unwrap();
    let parsed = glucochain_crypto::jose::parse_compact(tok.trim(), 4096).unwrap();
    let pk = glucochain_crypto::PublicKey::from_base64url(info["public_key"].as_str().unwrap()).unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    use glucochain_crypto::jose::{CONTRACTS_AUDIENCE, LEDGER_AUDIENCE, TokenPolicy};
    let ledger = TokenPolicy::new(LEDGER_AUDIENCE, "glucochain-dev");
    let claims = glucochain_crypto::jose::verify_token(&parsed, &pk, &ledger, now).unwrap();
    assert_eq!(claims.iss, info["participant_id"].as_str().unwrap());
    assert_eq!(claims.exp - claims.iat, 60);
    // Issue 19, M2: made for the ledger of one chain, refused by another service or chain.
    let contracts = TokenPolicy::new(CONTRACTS_AUDIENCE, "glucochain-dev");
    assert!(glucochain_crypto::jose::verify_token(&parsed, &pk, &contracts, now).is_err());
    let other = TokenPolicy::new(LEDGER_AUDIENCE, "another-chain");
    assert!(glucochain_crypto::jose::verify_token(&parsed, &pk, &other, now).is_err());
    let out =
        emrctl(&["token", "--key", p(&key), "--chain-id", "glucochain-dev", "--audience", CONTRACTS_AUDIENCE], None);
    let tok = String::from_utf8(out.stdout).unwrap();
    let parsed = glucochain_crypto::jose::parse_compact(tok.trim(), 4096).unwrap();
    assert!(glucochain_crypto::jose::verify_token(&parsed, &pk, &contracts, now).is_ok());
}

#[test]
fn contract_commands_sign_valid_transactions_and_refuse_bad_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("patient.pem");
    let info = json(&emrctl(&["keygen", "--out", p(&key)], None));
    let id = info["participant_id"].as_str().unwrap().to_string();
    let base = ["--key", p(&key), "--chain-id", "glucochain-dev", "--patient", &id];
    let typed = |args: &[&str], want: &str| {
        let out = emrctl(args, None);
        assert!(out.status.success(), "{want}: {}", String::from_utf8_lossy(&out.stderr));
        let jws = String::from_utf8(out.stdout).unwrap();
        let v = json(&emrctl(&["verify-tx", "-"], Some(jws.trim())));
        assert_eq!(v["type"], want);
    };
    let grant = [
        &["consent", "grant"][..],
        &base[..],
        &["--id", "c1", "--grantee", &id, "--classes", "private", "--access", "read,write"][..],
    ]
    .concat();
    typed(&grant, "consent.grant");
    typed(&[&["consent", "revoke"][..], &base[..], &["--id", "c1"][..]].concat(), "consent.revoke");
    let h = "ab".repeat(32);
    typed(
        &[
            &["careplan", "accept"][..],
            &base[..],
            &["--plan-id", "plan-1", "--plan-version", "1", "--proposal-tx", &h][..],
        ]
        .concat(),
        "careplan.accept",
    );
    // The profile is sealed beside its envelope (issue 21): what is printed
    // is the submission, whose body verify-tx checks against the commitment.
    let profile = [
        &["emergency", "profile"][..],
        &base[..],
        &[
            "--blood-group",
            "B+",
            "--diabetes-type",
            "type2",
            "--allergies",
            "latex",
            "--card-key",
            info["public_key"].as_str().unwrap(),
        ][..],
    ]
    .concat();
    typed(&profile, "emergency.profile.set");
    let submission: serde_json::Value =
        serde_json::from_slice(&emrctl(&profile, None).stdout).expect("a submission as JSON");
    assert_eq!(submission["sealed"]["body"]["allergies"][0], "latex");
    let payload = submission["jws"].as_str().unwrap().split('.').nth(1).unwrap();
    let payload = String::from_utf8(glucochain_crypto::jose::b64url_decode(payload).unwrap()).unwrap();
    assert!(payload.contains("body_commitment") && !payload.contains("latex"), "the signed envelope: {payload}");
    let v = json(&emrctl(&["verify-tx", "-"], Some(&submission.to_string())));
    assert_eq!(v["sealed_body"], "matches the signed commitment");
    let mut altered = submission.clone();
    altered["sealed"]["body"]["allergies"][0] = "peanuts".into();
    let out = emrctl(&["verify-tx", "-"], Some(&altered.to_string()));
    assert!(!out.status.success(), "an altered body is refused");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("body_commitment"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A card key is unpadded base64url: one in four starts with `-`, and is
    // still a value, not an option (a demo run once failed on one).
    let hyphen_key = (0u8..=255)
        .map(|i| glucochain_crypto::KeyPair::from_seed([i; 32]).public().to_base64url())
        .find(|k| k.starts_with('-'))
        .expect("a seed whose public key starts with '-'");
    typed(
        &[
            &["emergency", "profile"][..],
            &base[..],
            &["--blood-group", "O-", "--diabetes-type", "type1", "--card-key", &hyphen_key][..],
        ]
        .concat(),
        "emergency.profile.set",
    );
    typed(
        &[
            &["consult", "request"][..],
            &base[..],
            &["--id", "k1", "--clinician", &id, "--classes", "private", "--reason", "lows"][..],
        ]
        .concat(),
        "consult.request",
    );
    typed(
        &[&["consult", "respond"][..], &base[..], &["--id", "k1", "--note", "ok", "--prescription", "a;b;c"][..]]
            .concat(),
        "consult.respond",
    );
    // Bad input is refused before anything is signed.
    let bad = [
        &["consent", "grant"][..],
        &base[..],
        &["--id", "c1", "--grantee", &id, "--classes", "secret", "--access", "read"][..],
    ]
    .concat();
    let out = emrctl(&bad, None);
    assert!(!out.status.success() && out.stdout.is_empty());
    let out =
        emrctl(
            &[
                &["emergency", "profile"][..],
                &base[..],
                &[
                    "--blood-group",
                    "C+",
                    "--diabetes-type",
                    "type1",
                    "--card-key",
                    info["public_key"].as_str().unwrap(),
                ][..],
            ]
            .concat(),
            None,
        );
    assert!(!out.status.success());
    // An emergency card and its QR code: the card names the patient; its public key goes on the chain.
    let qr = dir.path().join("t.svg");
    let t = json(&emrctl(&["emergency", "card", "--patient", &id, "--qr", p(&qr)], None));
    let card = glucochain_types::emergency::EmergencyCard::parse(t["card"].as_str().unwrap()).unwrap();
    assert_eq!(card.patient.as_str(), id);
    assert_eq!(t["card_key"].as_str().unwrap(), card.public_key().to_string());
    assert!(std::fs::read_to_string(&qr).unwrap().starts_with("<?xml"));
}

#[test]
fn a_public_key_starting_with_a_hyphen_is_a_value_not_a_flag() {
    // Unpadded base64url keys start with '-' one time in 64; find such a key.
    let dir = tempfile::tempdir().unwrap();
    let (key, pk) = (0..2000)
        .find_map(|i| {
            let key = dir.path().join(format!("k{i}.pem"));
            let info = json(&emrctl(&["keygen", "--out", p(&key)], None));
            let pk = info["public_key"].as_str().unwrap().to_string();
            pk.starts_with('-').then_some((key, pk))
        })
        .expect("a key starting with '-'");
    let jws = emrctl(
        &["sign-tx", "--key", p(&key), "--chain-id", "glucochain-dev", "--type", "audit.checkpoint", "--body", "-"],
        Some(&format!("{{\"log_id\":\"ledger\",\"head\":\"{}\",\"entries\":1}}", "ab".repeat(32))),
    );
    assert!(jws.status.success(), "{}", String::from_utf8_lossy(&jws.stderr));
    let v =
        json(&emrctl(&["verify-tx", "-", "--public-key", &pk], Some(String::from_utf8(jws.stdout).unwrap().trim())));
    assert_eq!(v["signature"], "valid");
}
