//! Prints the detector's quality on the fixture sets (plasma dev set, and the
//! interstitial dev and holdout sets) next to the naive threshold baseline:
//! `cargo run --release -p glucochain-detect --example evaluate [-- --alerts DIR]`
//! (`--alerts DIR` also writes each set's alerts as JSONL there, for the
//! reference scorers).

use glucochain_detect::DetectorConfig;
use glucochain_detect::evaluate::{detect_all, detect_all_with, plasma_record, read_dir, threshold_baseline};
use glucochain_detect::score::{self, plasma};
use std::path::PathBuf;

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let out_dir = args.iter().position(|a| a == "--alerts").and_then(|i| args.get(i + 1)).map(PathBuf::from);
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures");
    let cfg = DetectorConfig::default();
    let write = |name: &str, alerts: &[score::ScoredAlert]| {
        if let Some(d) = &out_dir {
            let text: String = alerts.iter().map(|a| serde_json::to_string(a).unwrap() + "\n").collect();
            std::fs::write(d.join(format!("{name}.jsonl")), text).map_err(|e| e.to_string())
        } else {
            Ok(())
        }
    };

    let dir = fixtures.join("cgm-plasma/dev");
    let traces = read_dir(&dir.join("cgm"))?;
    let labels: plasma::Labels =
        serde_json::from_str(&std::fs::read_to_string(dir.join("labels.json")).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    let ours = detect_all(&cfg, &traces);
    write("plasma-dev", &ours)?;
    let base = threshold_baseline(&traces, 70.0, 250.0);
    let (r, b) =
        (plasma::score(&labels, &ours, Default::default())?, plasma::score(&labels, &base, Default::default())?);
    println!(
        "== plasma dev set (window [-30, +15], kind-match)\n-- baseline (<70, >250)\n{}-- detector\n{}",
        plasma::render(&b),
        plasma::render(&r)
    );
    let record = plasma_record(&std::fs::read_to_string(dir.join("scenario.json")).map_err(|e| e.to_string())?)?;
    let informed = detect_all_with(&cfg, &traces, &record);
    write("plasma-dev-record", &informed)?;
    let ri = plasma::score(&labels, &informed, Default::default())?;
    println!("-- detector with the record (insulin, carbohydrates, the patient's factors)\n{}", plasma::render(&ri));
    let base54 = plasma::score(&labels, &threshold_baseline(&traces, 54.0, 1e9), Default::default())?;
    for (p, s) in &r.per_patient {
        let get = |m: &plasma::PatientScore, k: &str| m.detected.get(k).copied().unwrap_or(0);
        let n = s.events.get("hypo_l2").copied().unwrap_or(0);
        let (mine, theirs) = (get(s, "hypo_l2"), get(&base54.per_patient[p], "hypo_l2"));
        println!(
            "  {p:<16} hypo_l2 {mine}/{n} (<54 rule {theirs}){}  hypo_l1 {}/{}  false {}",
            if mine < theirs { "  BELOW THE RULE" } else { "" },
            get(s, "hypo_l1"),
            s.events.get("hypo_l1").copied().unwrap_or(0),
            s.false_alerts
        );
    }
    for set in ["dev", "holdout"] {
        let dir = fixtures.join("cgm").join(set);
        let traces = read_dir(&dir)?;
        let labels: score::Labels =
            serde_json::from_str(&std::fs::read_to_string(dir.join("labels.json")).map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
        let ours = detect_all(&cfg, &traces);
        write(&format!("cgm-{set}"), &ours)?;
        println!("== interstitial {set} set\n{}", score::render(&score::score(&labels, &ours)?));
    }
    Ok(())
}
