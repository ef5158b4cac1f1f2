//! The README's first command, end to end: `emrctl demo` brings up a devnet
//! (every service a process, NATS, a real SMTP mail sink) and plays the whole
//! story; every step must pass, and `devnet status`, `devnet mail` and
//! `devnet down` work on what it leaves running.

use std::path::Path;
use std::process::Command;

/// The service binaries under the names the devnet looks for.
fn bin_dir(dir: &Path) -> std::path::PathBuf {
    let bins = dir.join("bin");
    std::fs::create_dir_all(&bins).unwrap();
    for (name, exe) in [
        ("glucochain-validator", env!("CARGO_BIN_EXE_e2e-validator")),
        ("glucochain-ingest", env!("CARGO_BIN_EXE_e2e-ingest")),
        ("glucochain-ledger", env!("CARGO_BIN_EXE_e2e-ledger")),
        ("glucochain-contracts", env!("CARGO_BIN_EXE_e2e-contracts")),
        ("glucochain-detector", env!("CARGO_BIN_EXE_e2e-detector")),
        ("glucochain-notifier", env!("CARGO_BIN_EXE_e2e-notifier")),
    ] {
        std::os::unix::fs::symlink(exe, bins.join(name)).unwrap();
    }
    bins
}

fn emrctl(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_e2e-emrctl")).args(args).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
}

#[test]
fn the_demo_story_passes_every_step_on_a_devnet() {
    let work = tempfile::tempdir().unwrap();
    let bins = bin_dir(work.path());
    let net = work.path().join("devnet");
    let (ok, out) = emrctl(&["demo", "--dir", net.to_str().unwrap(), "--bin-dir", bins.to_str().unwrap(), "--keep"]);
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
    assert!(out.contains("All 10 steps passed"), "{}", tail());
    assert_eq!(out.matches("passed: ").count(), 10);

    // What it left running answers.
    let (ok, status) = emrctl(&["devnet", "status", "--dir", net.to_str().unwrap()]);
    assert!(ok, "{status}");
    assert!(status.contains("validator-3") && status.contains("notifier"), "{status}");
    let (ok, mail) = emrctl(&["devnet", "mail", "--dir", net.to_str().unwrap()]);
    assert!(ok && mail.contains("sam.father@example.org"), "{mail}");
    let (ok, first) = emrctl(&["devnet", "mail", "--dir", net.to_str().unwrap(), "--show", "1"]);
    assert!(ok && first.contains("Subject:") && first.contains("What to do"), "{first}");
    let (ok, down) = stop();
    assert!(ok, "{down}");
    let (ok, after) = emrctl(&["devnet", "status", "--dir", net.to_str().unwrap()]);
    assert!(!ok, "nothing runs after down: {after}");
}
