//! `emrctl detect` and `emrctl score`: the detector's offline evaluation.

use super::read_input;
use anyhow::Context;
use glucochain_detect::score::{Labels, ScoredAlert, plasma, render};
use glucochain_detect::{DetectorConfig, Reading, kind_name, run_trace};
use glucochain_types::time::Timestamp;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

/// Readings by patient from a CGM CSV (`patient_id,timestamp,glucose_mg_dl`).
pub fn read_csv(path: &Path) -> anyhow::Result<BTreeMap<String, Vec<Reading>>> {
    let text = String::from_utf8(read_input(path)?).context("the CSV is not UTF-8")?;
    glucochain_detect::csv::parse_cgm_csv(&text).with_context(|| path.display().to_string())
}

/// Runs the detector over `inputs`; writes alerts to `out`; scores with `labels`.
pub fn detect(
    inputs: &[std::path::PathBuf],
    out: &Path,
    labels: Option<&Path>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let cfg = DetectorConfig::default();
    let mut lines = Vec::new();
    let mut scored = Vec::new();
    for input in inputs {
        for (patient, readings) in read_csv(input)? {
            for a in run_trace(&cfg, &readings) {
                let timestamp = Timestamp::from_unix_ms(a.at_ms).to_rfc3339();
                lines.push(serde_json::json!({
                    "patient_id": patient, "timestamp": timestamp, "kind": kind_name(a.kind), "episode": a.episode,
                    "glucose_mg_dl": a.glucose, "slope_mg_dl_per_min": a.slope.map(|s| (s * 100.0).round() / 100.0),
                    "predicted_mg_dl": a.predicted.map(|p| p.round()), "reason": a.reason,
                }));
                scored.push(ScoredAlert { patient_id: patient.clone(), timestamp, kind: kind_name(a.kind).into() });
            }
        }
    }
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    if out == Path::new("-") {
        std::io::stdout().write_all(text.as_bytes())?;
    } else {
        std::fs::write(out, text).with_context(|| format!("write {}", out.display()))?;
    }
    if let Some(l) = labels {
        print_score(l, &scored, json)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Scores by the rules of the set the labels come from: the plasma set's
/// labels list their patients (window [start − 30, start + 15], kinds
/// matched), the interstitial set's map them.
fn print_score(labels: &Path, alerts: &[ScoredAlert], json: bool) -> anyhow::Result<()> {
    let raw: serde_json::Value = serde_json::from_slice(&read_input(labels)?).context("labels")?;
    let (table, value) = if raw["patients"].is_array() {
        let labels: plasma::Labels = serde_json::from_value(raw).context("labels")?;
        let report = plasma::score(&labels, alerts, plasma::Options::default()).map_err(anyhow::Error::msg)?;
        (plasma::render(&report), serde_json::to_value(&report)?)
    } else {
        let labels: Labels = serde_json::from_value(raw).context("labels")?;
        let report = glucochain_detect::score::score(&labels, alerts).map_err(anyhow::Error::msg)?;
        (render(&report), serde_json::to_value(&report)?)
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        eprint!("{table}");
    }
    Ok(())
}

/// `emrctl score`.
pub fn score(labels: &Path, alerts: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let text = String::from_utf8(read_input(alerts)?)?;
    let alerts: Vec<ScoredAlert> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .context("alerts: one JSON object per line with patient_id, timestamp, kind")?;
    print_score(labels, &alerts, json)?;
    Ok(ExitCode::SUCCESS)
}
