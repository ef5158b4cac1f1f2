//! The detector's quality on the fixture sets, scored by our scorers (each
//! checked against its set's reference scorer on a committed alert stream):
//! the plasma-labelled set (`tests/fixtures/cgm-plasma/`, the issue-20
//! rules: window [start − 30, start + 15], kinds matched) and the first,
//! interstitial set (`tests/fixtures/cgm/`, dev and holdout). Each figure is
//! printed against its target; a test fails below the target where it is
//! met, and below today's measured level where it is not (docs/detector.md
//! says which and what was tried).

mod common;

use common::fixtures;
use glucochain_detect::evaluate::{
    PatientRecord, detect_all, detect_all_with, plasma_record, read_dir, threshold_baseline,
};
use glucochain_detect::score::{self, ScoredAlert, plasma};
use glucochain_detect::{DetectorConfig, MIN, Reading, kind_name, run_trace};
use std::collections::BTreeMap;

fn json<T: serde::de::DeserializeOwned>(path: std::path::PathBuf) -> T {
    serde_json::from_slice(&std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

fn jsonl(path: std::path::PathBuf) -> Vec<ScoredAlert> {
    std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn the_interstitial_scorer_agrees_with_the_reference_scorer_on_the_baseline() {
    let dir = fixtures().join("cgm");
    let labels: score::Labels = json(dir.join("dev/labels.json"));
    let mine = serde_json::to_value(score::score(&labels, &jsonl(dir.join("baseline_alerts.jsonl"))).unwrap()).unwrap();
    let reference: serde_json::Value = json(dir.join("baseline_score.json"));
    for k in ["alerts", "false_alerts", "false_alerts_per_patient_day", "alerts_per_patient_day", "false_by_kind"] {
        assert_eq!(mine[k], reference[k], "{k}");
    }
    for (event, r) in reference["events"].as_object().unwrap() {
        for f in ["events", "sensitivity", "timely", "median_lead_min"] {
            assert_eq!(mine["events"][event][f].as_f64(), r[f].as_f64(), "{event}.{f}");
        }
    }
}

#[test]
fn the_plasma_scorer_agrees_with_the_reference_scorer_on_the_baseline() {
    // baseline_score.json is the set's own score.py (--kind-match --per-patient --json)
    // over baseline_alerts.jsonl, the set's own threshold baseline.
    let dir = fixtures().join("cgm-plasma");
    let labels: plasma::Labels = json(dir.join("dev/labels.json"));
    let alerts = jsonl(dir.join("baseline_alerts.jsonl"));
    let r = plasma::score(&labels, &alerts, plasma::Options::default()).unwrap();
    let reference: serde_json::Value = json(dir.join("baseline_score.json"));
    assert_eq!(r.alerts as u64, reference["alerts"].as_u64().unwrap());
    assert_eq!(r.false_alerts as u64, reference["false_alerts"].as_u64().unwrap());
    assert_eq!(r.false_alerts_per_patient_day, reference["false_alerts_per_patient_day"].as_f64().unwrap());
    assert_eq!(r.patient_days, reference["patient_days"].as_f64().unwrap());
    for kind in plasma::KINDS {
        let (m, want) = (&r.by_kind[kind], &reference["by_kind"][kind]);
        assert_eq!(m.events as u64, want["events"].as_u64().unwrap(), "{kind}");
        assert_eq!(m.detected as u64, want["detected"].as_u64().unwrap(), "{kind}");
        assert_eq!(m.median_lead_min, want["median_lead_min"].as_f64(), "{kind}");
    }
    for (pid, want) in reference["per_patient"].as_object().unwrap() {
        let p = &r.per_patient[pid];
        assert_eq!(p.false_alerts as u64, want["false_alerts"].as_u64().unwrap(), "{pid}");
        let primary: usize = plasma::PRIMARY.iter().map(|k| p.detected.get(*k).copied().unwrap_or(0)).sum();
        assert_eq!(primary as u64, want["detected"].as_u64().unwrap(), "{pid}");
    }
    // And our own baseline is the set's: the same alerts.
    let traces = read_dir(&dir.join("dev/cgm")).unwrap();
    let ours: Vec<(String, String, String)> =
        threshold_baseline(&traces, 70.0, 250.0).into_iter().map(|a| (a.patient_id, a.timestamp, a.kind)).collect();
    let mut theirs: Vec<(String, String, String)> =
        alerts.into_iter().map(|a| (a.patient_id, a.timestamp, a.kind)).collect();
    let mut ours = ours;
    ours.sort();
    theirs.sort();
    assert_eq!(ours, theirs);
}

/// One quality figure: the target and the floor this detector is held to.
struct Goal {
    what: &'static str,
    value: f64,
    target: f64,
    floor: f64,
    higher_is_better: bool,
}

fn at_least(what: &'static str, value: f64, target: f64, floor: f64) -> Goal {
    Goal { what, value, target, floor, higher_is_better: true }
}

fn at_most(what: &'static str, value: f64, target: f64, floor: f64) -> Goal {
    Goal { what, value, target, floor, higher_is_better: false }
}

fn check(set: &str, goals: &[Goal]) {
    let mut failed = Vec::new();
    for g in goals {
        let v = g.value;
        let (meets_target, meets_floor) =
            if g.higher_is_better { (v >= g.target, v >= g.floor) } else { (v <= g.target, v <= g.floor) };
        println!(
            "{set:10} {:32} {v:>7.3}  target {:>6}  {}",
            g.what,
            g.target,
            if meets_target { "met" } else { "NOT MET (held at today's level)" }
        );
        if !meets_floor {
            failed.push(format!("{} = {v} (floor {}, target {})", g.what, g.floor, g.target));
        }
    }
    assert!(failed.is_empty(), "{set}: quality fell: {failed:?}");
}

fn plasma_set() -> (plasma::Labels, BTreeMap<String, Vec<Reading>>) {
    let dir = fixtures().join("cgm-plasma/dev");
    (json(dir.join("labels.json")), read_dir(&dir.join("cgm")).unwrap())
}

/// Floors a plasma run is held to where a target is not met (today's level).
struct PlasmaFloors {
    hypo_l1: f64,
    hypo_l1_lead: f64,
    false_per_day: f64,
}

/// Scores `alerts` on the plasma set against the issue-20 targets.
fn check_plasma(set: &str, labels: &plasma::Labels, alerts: &[ScoredAlert], f: PlasmaFloors) {
    let r = plasma::score(labels, alerts, Default::default()).unwrap();
    println!("{}", plasma::render(&r));
    let k = |kind: &str| &r.by_kind[kind];
    check(
        set,
        &[
            at_least("hypo_l2.sensitivity", k("hypo_l2").sensitivity.unwrap(), 0.95, 0.95),
            at_least("hypo_l1.sensitivity", k("hypo_l1").sensitivity.unwrap(), 0.85, f.hypo_l1),
            at_least("hypo_l1.median_lead", k("hypo_l1").median_lead_min.unwrap(), 5.0, f.hypo_l1_lead),
            at_least("hyper_l2.sensitivity", k("hyper_l2").sensitivity.unwrap(), 0.90, 0.90),
            at_least("rapid_fall.sensitivity", k("rapid_fall").sensitivity.unwrap(), 0.5, 0.15),
            at_most("false_alerts_per_patient_day", r.false_alerts_per_patient_day, 1.0, f.false_per_day),
        ],
    );
}

/// The issue-20 targets on the plasma-labelled dev set (15 patients × 7 days).
#[test]
fn plasma_dev_set_quality_against_the_issue_20_targets() {
    let (labels, traces) = plasma_set();
    let alerts = detect_all(&DetectorConfig::default(), &traces);
    check_plasma("plasma", &labels, &alerts, PlasmaFloors { hypo_l1: 0.77, hypo_l1_lead: 4.0, false_per_day: 3.45 });
}

/// What each plasma patient's record holds: boluses, entered carbohydrates,
/// rescue treatments, their correction factor and carb ratio.
fn plasma_records() -> BTreeMap<String, PatientRecord> {
    plasma_record(&std::fs::read_to_string(fixtures().join("cgm-plasma/dev/scenario.json")).unwrap()).unwrap()
}

/// The same targets when the detector also knows the record's insulin and
/// carbohydrates and the patient's factors (what a care plan and
/// `medication.taken` give the service): hypo_l1 is met here.
#[test]
fn plasma_dev_set_quality_with_the_record_against_the_issue_20_targets() {
    let (labels, traces) = plasma_set();
    let alerts = detect_all_with(&DetectorConfig::default(), &traces, &plasma_records());
    check_plasma(
        "plasma+rec",
        &labels,
        &alerts,
        PlasmaFloors { hypo_l1: 0.85, hypo_l1_lead: 5.0, false_per_day: 3.62 },
    );
}

/// Level-2 lows caught per patient: never fewer than the naive threshold
/// baseline (< 70 / > 250) or a plain < 54 rule catches for that patient,
/// on the CGM alone and with the record.
#[test]
fn plasma_dev_set_no_patient_has_a_severe_low_missed_that_a_plain_threshold_catches() {
    let (labels, traces) = plasma_set();
    let o = plasma::Options::default();
    let cfg = DetectorConfig::default();
    let b70 = plasma::score(&labels, &threshold_baseline(&traces, 70.0, 250.0), o).unwrap();
    let b54 = plasma::score(&labels, &threshold_baseline(&traces, 54.0, f64::INFINITY), o).unwrap();
    let l2 = |r: &plasma::Report, p: &str| r.per_patient[p].detected.get("hypo_l2").copied().unwrap_or(0);
    for (run, alerts) in
        [("cgm", detect_all(&cfg, &traces)), ("with the record", detect_all_with(&cfg, &traces, &plasma_records()))]
    {
        let ours = plasma::score(&labels, &alerts, o).unwrap();
        for p in ours.per_patient.keys() {
            let floor = l2(&b70, p).max(l2(&b54, p));
            assert!(
                l2(&ours, p) >= floor,
                "{run}, {p}: {} level-2 lows caught, a plain threshold catches {floor}",
                l2(&ours, p)
            );
        }
    }
}

/// On every trace of every set: wherever a plain "first reading below 54"
/// rule alarms, an urgent low of ours has come at that reading or before it
/// in the same low (since glucose was last at 70 or above), except inside a labelled
/// compression artefact of the interstitial set, where the hold may wait.
#[test]
fn every_fixture_trace_urgent_low_is_never_later_than_the_plain_54_rule() {
    /// A set's name, its traces, its compression artefacts (patient, start,
    /// end) and the records the detector is given.
    type Set = (String, BTreeMap<String, Vec<Reading>>, Vec<(String, i64, i64)>, BTreeMap<String, PatientRecord>);
    let mut sets: Vec<Set> = Vec::new();
    sets.push(("plasma".into(), plasma_set().1, Vec::new(), BTreeMap::new()));
    sets.push(("plasma with the record".into(), plasma_set().1, Vec::new(), plasma_records()));
    for set in ["dev", "holdout"] {
        let dir = fixtures().join("cgm").join(set);
        let labels: score::Labels = json(dir.join("labels.json"));
        let artefacts = labels
            .patients
            .iter()
            .flat_map(|(p, l)| {
                l.artifacts.iter().filter(|a| a.kind == "compression_low").map(move |a| {
                    let t = |s: &str| glucochain_types::time::Timestamp::parse(s).unwrap().unix_ms();
                    (p.clone(), t(&a.start), t(&a.end))
                })
            })
            .collect();
        sets.push((set.into(), read_dir(&dir).unwrap(), artefacts, BTreeMap::new()));
    }
    let mut crossings = 0;
    for (set, traces, artefacts, records) in &sets {
        for (p, readings) in traces {
            let alerts = match records.get(p) {
                Some(r) => r.run(&DetectorConfig::default(), readings),
                None => run_trace(&DetectorConfig::default(), readings),
            };
            let urgent: Vec<i64> =
                alerts.iter().filter(|a| kind_name(a.kind) == "urgent_low").map(|a| a.at_ms).collect();
            let (mut was_below, mut last_in_range) = (false, i64::MIN);
            for r in readings {
                let below = r.mg_dl < 54.0;
                if r.mg_dl >= 70.0 {
                    last_in_range = r.at_ms;
                }
                if below && !was_below {
                    let in_artefact =
                        artefacts.iter().any(|(ap, s, e)| ap == p && (*s..=*e + 10 * MIN).contains(&r.at_ms));
                    if !in_artefact {
                        crossings += 1;
                        assert!(
                            urgent.iter().any(|u| *u <= r.at_ms && *u >= last_in_range),
                            "{set} {p}: below 54 at {} without an urgent low by then",
                            glucochain_types::time::Timestamp::from_unix_ms(r.at_ms).to_rfc3339()
                        );
                    }
                }
                was_below = below;
            }
        }
    }
    assert!(crossings > 50, "the sets hold many severe lows: {crossings}");
}

fn interstitial(set: &str) -> score::Report {
    let dir = fixtures().join("cgm").join(set);
    let labels: score::Labels = json(dir.join("labels.json"));
    let r = score::score(&labels, &detect_all(&DetectorConfig::default(), &read_dir(&dir).unwrap())).unwrap();
    println!("{set}:\n{}", score::render(&r));
    r
}

fn figure(r: &score::Report, event: &str, f: &str) -> f64 {
    let e = &r.events[event];
    match f {
        "sensitivity" => e.sensitivity.unwrap(),
        "timely" => e.timely.unwrap(),
        _ => e.median_lead_min.unwrap(),
    }
}

/// The first set's 15 dev patients (interstitial labels, 4 days each).
#[test]
fn interstitial_dev_set_quality() {
    let r = interstitial("dev");
    check(
        "cgm dev",
        &[
            at_least("hypo_l2.sensitivity", figure(&r, "hypo_l2", "sensitivity"), 0.95, 0.95),
            at_least("hypo_l2.timely", figure(&r, "hypo_l2", "timely"), 0.98, 0.94),
            at_least("hypo_l1.sensitivity", figure(&r, "hypo_l1", "sensitivity"), 0.95, 0.95),
            at_least("hypo_l1.timely", figure(&r, "hypo_l1", "timely"), 0.93, 0.78),
            at_least("hypo_l1.lead", figure(&r, "hypo_l1", "lead"), 15.0, 15.0),
            at_least("hyper_l2.timely", figure(&r, "hyper_l2", "timely"), 0.95, 0.92),
            at_least("rapid_fall.sensitivity", figure(&r, "rapid_fall", "sensitivity"), 0.80, 0.80),
            at_least("rapid_rise.sensitivity", figure(&r, "rapid_rise", "sensitivity"), 0.80, 0.80),
            at_most("false_alerts_per_patient_day", r.false_alerts_per_patient_day, 1.0, 2.0),
        ],
    );
}

/// Nine simulated patients of the first kind that are not in its dev set
/// (generated with another seed): nothing was tuned on them.
#[test]
fn interstitial_holdout_patients_quality() {
    let r = interstitial("holdout");
    check(
        "cgm holdout",
        &[
            at_least("hypo_l2.sensitivity", figure(&r, "hypo_l2", "sensitivity"), 0.95, 0.95),
            at_least("hypo_l2.timely", figure(&r, "hypo_l2", "timely"), 0.98, 0.97),
            at_least("hypo_l1.sensitivity", figure(&r, "hypo_l1", "sensitivity"), 0.95, 0.95),
            at_least("hypo_l1.timely", figure(&r, "hypo_l1", "timely"), 0.93, 0.92),
            at_least("hypo_l1.lead", figure(&r, "hypo_l1", "lead"), 15.0, 15.0),
            at_least("hyper_l2.timely", figure(&r, "hyper_l2", "timely"), 0.95, 0.95),
            at_least("rapid_fall.sensitivity", figure(&r, "rapid_fall", "sensitivity"), 0.80, 0.80),
            at_least("rapid_rise.sensitivity", figure(&r, "rapid_rise", "sensitivity"), 0.80, 0.78),
            at_most("false_alerts_per_patient_day", r.false_alerts_per_patient_day, 1.0, 1.5),
        ],
    );
}
