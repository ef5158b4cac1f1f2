//! The dependency graph under cargo-deny (deny.toml): permissive licences
//! only, crates from crates.io only, and no second TLS stack. The RustSec
//! advisories check needs its database from GitHub, which the build machine
//! cannot reach; docs/threat-model.md says where to run it.

use std::path::Path;
use std::process::Command;

fn cargo_deny(config: &Path) -> (bool, String) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new("cargo")
        .args(["deny", "--log-level", "error", "--config"])
        .arg(config)
        .args(["check", "licenses", "bans", "sources"])
        .current_dir(&root)
        .output()
        .expect("cargo-deny (scripts/setup.sh installs it)");
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn every_dependency_has_an_allowed_licence_and_source_and_none_is_banned() {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deny.toml");
    let (ok, err) = cargo_deny(&config);
    assert!(ok, "cargo deny refused the dependency graph:\n{err}");
}

#[test]
fn the_check_refuses_a_graph_outside_its_rules() {
    // The same graph against narrower rules: MIT only, and ring banned.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("deny.toml");
    std::fs::write(&config, "[licenses]\nallow = [\"MIT\"]\n\n[bans]\ndeny = [{ name = \"ring\" }]\n").unwrap();
    let (ok, err) = cargo_deny(&config);
    assert!(!ok, "narrower rules must fail");
    assert!(err.contains("rejected") && err.contains("ring"), "refusals name the licence and the banned crate:\n{err}");
}
