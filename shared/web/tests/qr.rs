//! The pages' own QR encoder (in `assets/glucochain.js`, used for a new
//! emergency card, whose secret must not reach the server) against an
//! independent reader: zxing-cpp decodes what it draws, for every version
//! it supports (1 to 10, byte mode, level M).

use std::io::Write as _;
use std::process::{Command, Stdio};

#[test]
fn the_pages_qr_codes_are_read_back_by_zxing_for_every_version() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/qr");
    // Lengths at the edges of versions 1..10 (level M byte capacities 14, 26, 42, 62, 84, 106, 122, 152, 180, 213).
    let texts: Vec<String> = [1, 14, 15, 26, 42, 62, 71, 84, 106, 122, 152, 180, 213]
        .iter()
        .map(|n| (0..*n).map(|i| char::from(b'a' + (i % 26) as u8)).collect())
        .chain(["gce1:pabcdefghijklmnopqrstuvwxyz234567:mfrggzdfmztwq2lknnwg23tpobyxe4ts".to_string()])
        .collect();
    let out = Command::new("node").arg(root.join("matrix.mjs")).args(&texts).output().expect("node (scripts/setup.sh)");
    assert!(out.status.success(), "matrix.mjs: {}", String::from_utf8_lossy(&out.stderr));
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let mut child = Command::new(python)
        .arg(root.join("decode.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&out.stdout).unwrap();
    let decoded = child.wait_with_output().unwrap();
    assert!(
        decoded.status.success(),
        "decode.py (pip install zxing-cpp pillow numpy): {}",
        String::from_utf8_lossy(&decoded.stderr)
    );
    let got: Vec<serde_json::Value> = serde_json::from_slice(&decoded.stdout).unwrap();
    assert_eq!(got.len(), texts.len());
    let mut sizes = std::collections::BTreeSet::new();
    for (want, g) in texts.iter().zip(&got) {
        assert_eq!(g["text"].as_str(), Some(want.as_str()), "size {} does not read back", g["size"]);
        sizes.insert(g["size"].as_u64().unwrap());
    }
    assert_eq!(sizes.len(), 10, "every version was drawn: {sizes:?}");
}
