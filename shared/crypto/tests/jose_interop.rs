//! Interoperability with an independent JOSE implementation (Python joserfc):
//! JWS and JWT made by joserfc verify here, and ours verify there.
//! Fixtures come from `tests/interop/jose_interop.py make-fixtures`.

use glucochain_crypto::jose::{LEDGER_AUDIENCE, TokenPolicy, issue_token, parse_compact, sign_compact, verify_token};
use glucochain_crypto::{Domain, KeyPair, PublicKey};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

fn interop_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop")
}

fn fixtures() -> serde_json::Value {
    let text = std::fs::read_to_string(interop_dir().join("jose-fixtures.json")).expect("fixtures present");
    serde_json::from_str(&text).unwrap()
}

#[test]
fn joserfc_transactions_and_tokens_verify_here() {
    let f = fixtures();
    let key = PublicKey::from_base64url(f["public_key_x"].as_str().unwrap()).unwrap();
    for name in ["tx_ed25519", "tx_eddsa"] {
        let jws = f[name].as_str().unwrap();
        let parsed = parse_compact(jws, 1 << 16).unwrap_or_else(|e| panic!("{name}: {e}"));
        parsed.verify(&key, Domain::Tx).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(parsed.kid(), f["kid"].as_str().unwrap());
        assert_eq!(parsed.payload, f["payload"].as_str().unwrap().as_bytes());
        // The same signature with one payload character changed fails.
        let mut tampered = jws.to_string();
        let mid = jws.find('.').unwrap() + 5;
        let c = if &tampered[mid..mid + 1] == "A" { "B" } else { "A" };
        tampered.replace_range(mid..mid + 1, c);
        assert!(parse_compact(&tampered, 1 << 16).map(|p| p.verify(&key, Domain::Tx).is_err()).unwrap_or(true));
    }
    let iat = f["token_iat"].as_i64().unwrap();
    let token = parse_compact(f["token"].as_str().unwrap(), 1 << 16).unwrap();
    let policy = TokenPolicy::new(LEDGER_AUDIENCE, "glucochain-test");
    let claims = verify_token(&token, &key, &policy, iat + 5).unwrap();
    assert_eq!(claims.jti, "fixture-1");
    let as_tx = parse_compact(f["token_as_tx"].as_str().unwrap(), 1 << 16).unwrap();
    assert!(verify_token(&as_tx, &key, &policy, iat + 5).is_err());
}

/// Runs the Python verifier over our JWS; returns one (ok, error) per input.
fn verify_with_joserfc(inputs: &[serde_json::Value]) -> Vec<(bool, String)> {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let mut child = Command::new(&python)
        .arg(interop_dir().join("jose_interop.py"))
        .arg("verify")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {python} (needed for JOSE interop; .ci/run installs it): {e}"));
    {
        let mut stdin = child.stdin.take().unwrap();
        for i in inputs {
            writeln!(stdin, "{i}").unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "joserfc verifier failed (pip install joserfc cryptography): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (v["ok"].as_bool().unwrap(), v["error"].as_str().unwrap().to_string())
        })
        .collect()
}

#[test]
fn ours_verify_in_joserfc() {
    let kp = KeyPair::generate();
    let x = kp.public().to_base64url();
    let tx = sign_compact(&kp, Domain::Tx, "p-ours", br#"{"type":"observation.record"}"#);
    // joserfc checks iat/exp against its own clock: use the real time.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let token = issue_token(&kp, "p-ours", LEDGER_AUDIENCE, "glucochain-test", now, 120, "ours-1");
    let other = KeyPair::generate().public().to_base64url();
    let mut tampered = tx.clone();
    let mid = tx.find('.').unwrap() + 3;
    let c = if &tampered[mid..mid + 1] == "A" { "B" } else { "A" };
    tampered.replace_range(mid..mid + 1, c);
    let inputs = vec![
        serde_json::json!({"jws": tx, "x": x, "typ": "emr-tx+jws", "kind": "tx"}),
        serde_json::json!({"jws": token, "x": x, "typ": "emr-auth+jwt", "kind": "token"}),
        // Negative controls: the verifier must refuse these, or the test proves nothing.
        serde_json::json!({"jws": tx, "x": other, "typ": "emr-tx+jws", "kind": "tx"}),
        serde_json::json!({"jws": tampered, "x": x, "typ": "emr-tx+jws", "kind": "tx"}),
    ];
    let results = verify_with_joserfc(&inputs);
    assert_eq!(results.len(), 4);
    assert!(results[0].0, "our tx JWS refused by joserfc: {}", results[0].1);
    assert!(results[1].0, "our token refused by joserfc: {}", results[1].1);
    assert!(!results[2].0, "joserfc accepted our JWS with the wrong key");
    assert!(!results[3].0, "joserfc accepted a tampered JWS");
}
