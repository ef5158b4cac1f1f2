//! Key files a hospital's own tools can read (issue 19, low): `emrctl keygen`
//! writes PKCS#8 version 1 (the seed only), which OpenSSL 3.0 and
//! pyca/cryptography load; version 2 files (public key included) written by
//! earlier versions are still read.

use glucochain_crypto::KeyPair;
use std::process::Command;

fn der_of(pem: &str) -> Vec<u8> {
    use base64::Engine as _;
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD.decode(body).unwrap()
}

#[test]
fn key_files_are_pkcs8_v1_and_openssl_and_python_read_them() {
    let kp = KeyPair::from_seed([42; 32]);
    let pem = kp.to_pkcs8_pem();
    let der = der_of(&pem);
    assert_eq!(der.len(), 48, "version 1: 16 bytes of structure and the 32-byte seed");
    assert_eq!(der[4], 0, "version field 0 (v1)");
    assert_eq!(&der[16..], &[42u8; 32]);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.pem");
    kp.write_pem_file(&path, false).unwrap();
    let want = kp.public().as_bytes().to_vec();

    let out = Command::new("openssl")
        .args(["pkey", "-in"])
        .arg(&path)
        .args(["-pubout", "-outform", "DER"])
        .output()
        .expect("openssl is installed (scripts/setup.sh)");
    assert!(out.status.success(), "openssl refused the key: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(&out.stdout[out.stdout.len() - 32..], want.as_slice(), "openssl derives the same public key");

    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let script = "import sys\nfrom cryptography.hazmat.primitives import serialization as s\n\
        k = s.load_pem_private_key(open(sys.argv[1], 'rb').read(), password=None)\n\
        print(k.public_key().public_bytes(s.Encoding.Raw, s.PublicFormat.Raw).hex())";
    let out = Command::new(python).args(["-c", script]).arg(&path).output().expect("python3");
    assert!(out.status.success(), "pyca/cryptography refused the key: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), hex::encode(&want));
}

#[test]
fn version_2_key_files_are_still_read() {
    // A version 2 file: the same seed with the public key appended ([1] IMPLICIT BIT STRING).
    let kp = KeyPair::from_seed([7; 32]);
    let mut der = vec![0x30, 0x51, 0x02, 0x01, 0x01, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];
    der.extend_from_slice(&[7; 32]);
    der.extend_from_slice(&[0x81, 0x21, 0x00]);
    der.extend_from_slice(kp.public().as_bytes());
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
    let lines: Vec<&str> = b64.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap()).collect();
    let pem = format!("-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n", lines.join("\n"));
    assert_eq!(KeyPair::from_pkcs8_pem(&pem).unwrap().public(), kp.public());
}
