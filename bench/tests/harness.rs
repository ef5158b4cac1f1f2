//! The harness runs and records what it measured (the figures themselves
//! are never asserted: a busy machine is slower, not wrong).

#[test]
fn crypto_limits_are_measured_and_recorded() {
    let out = tempfile::tempdir().unwrap();
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_glucochain-bench"))
        .args(["--crypto-only", "--crypto-secs", "0.05", "--out"])
        .arg(out.path())
        .status()
        .unwrap();
    assert!(status.success());
    let json = std::fs::read_dir(out.path())
        .unwrap()
        .flatten()
        .find(|e| e.path().extension().is_some_and(|x| x == "json"))
        .expect("a results file");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(json.path()).unwrap()).unwrap();
    for figure in
        ["sign_per_sec", "verify_per_sec", "batch64_verify_per_sec", "batch256_verify_per_sec", "sha256_1k_per_sec"]
    {
        assert!(report["crypto"][figure].as_f64().unwrap() > 0.0, "{figure} measured: {report}");
    }
    assert!(report["machine"]["cores"].as_u64().unwrap() >= 1);
    let md = std::fs::read_to_string(out.path().join("latest.md")).unwrap();
    assert!(md.contains("| Ed25519 verify (strict) |"), "{md}");
}
