//! Operations artefacts checked with the real tools: the Prometheus alert
//! rules parse (`promtool check rules`), their unit tests pass (`promtool
//! test rules`), every alert has a runbook section that exists, and the Helm
//! chart lints, renders, validates and refuses bad values (`helm/check.py`:
//! Helm's library, kubernetes-validate, promtool).

use std::path::PathBuf;
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn promtool(args: &[&str]) -> (bool, String) {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(repo().join("deploy/prometheus"))
        .output()
        .expect("promtool (Debian package prometheus; scripts/setup.sh installs it)");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
}

#[test]
fn alert_rules_parse_and_their_unit_tests_pass() {
    let (ok, out) = promtool(&["check", "rules", "glucochain-rules.yaml"]);
    assert!(ok, "{out}");
    let (ok, out) = promtool(&["test", "rules", "glucochain-rules.test.yaml"]);
    assert!(ok, "{out}");
}

#[test]
fn every_alert_links_a_runbook_section_that_exists() {
    let rules = std::fs::read_to_string(repo().join("deploy/prometheus/glucochain-rules.yaml")).unwrap();
    let runbook = std::fs::read_to_string(repo().join("docs/runbook.md")).unwrap();
    let anchors: Vec<String> =
        runbook.lines().filter_map(|l| l.strip_prefix("## ")).map(|h| h.to_lowercase().replace(' ', "-")).collect();
    let alerts = rules.lines().filter(|l| l.trim_start().starts_with("- alert:")).count();
    let links: Vec<&str> = rules.lines().filter_map(|l| l.split("docs/runbook.md#").nth(1)).collect();
    assert_eq!(links.len(), alerts, "one runbook link per alert");
    for l in links {
        let anchor = l.trim_end_matches('"');
        assert!(anchors.iter().any(|a| a == anchor), "no runbook section for #{anchor}: {anchors:?}");
    }
}

#[test]
fn the_helm_chart_lints_renders_validates_and_refuses_bad_values() {
    let out = Command::new("python3").arg(repo().join("helm/check.py")).output().expect("python3");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("chart checks passed"), "{text}");
}
