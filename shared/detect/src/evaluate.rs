//! Offline evaluation: runs the detector (or a naive threshold baseline)
//! over a folder of CGM traces and gives alerts in the scorers' shape. The
//! quality tests, `emrctl detect` and `examples/evaluate.rs` share it.

use crate::score::ScoredAlert;
use crate::treatments::{InsulinProfile, Treatment};
use crate::{DetectorConfig, MIN, Reading, kind_name, run_trace, run_trace_with};
use glucochain_types::time::Timestamp;
use std::collections::BTreeMap;
use std::path::Path;

/// Readings by patient from every `*.csv` in `dir` (files named `*.truth.csv` are skipped).
pub fn read_dir(dir: &Path) -> Result<BTreeMap<String, Vec<Reading>>, String> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.ends_with(".csv") && !name.ends_with(".truth.csv")
        })
        .collect();
    files.sort();
    let mut out = BTreeMap::new();
    for f in files {
        let text = std::fs::read_to_string(&f).map_err(|e| format!("{}: {e}", f.display()))?;
        out.extend(crate::csv::parse_cgm_csv(&text).map_err(|e| format!("{}: {e}", f.display()))?);
    }
    Ok(out)
}

fn scored(patient: &str, at_ms: i64, kind: &str) -> ScoredAlert {
    ScoredAlert {
        patient_id: patient.to_string(),
        timestamp: Timestamp::from_unix_ms(at_ms).to_rfc3339(),
        kind: kind.to_string(),
    }
}

/// The detector's alerts over every patient's trace.
pub fn detect_all(cfg: &DetectorConfig, traces: &BTreeMap<String, Vec<Reading>>) -> Vec<ScoredAlert> {
    detect_all_with(cfg, traces, &BTreeMap::new())
}

/// What a patient's record holds besides the CGM: their insulin factors
/// and their treatments, in time order.
#[derive(Debug, Clone)]
pub struct PatientRecord {
    /// Correction factor and carb ratio.
    pub profile: InsulinProfile,
    /// Insulin given and carbohydrates entered.
    pub treatments: Vec<Treatment>,
}

impl PatientRecord {
    /// The detector's alerts over `readings` with this record: the
    /// patient's factors in `cfg`, the treatments fed in time.
    pub fn run(&self, cfg: &DetectorConfig, readings: &[Reading]) -> Vec<crate::Alert> {
        run_trace_with(&DetectorConfig { insulin: Some(self.profile), ..cfg.clone() }, readings, &self.treatments)
    }
}

/// The plasma set's `scenario.json` read as the record would hold it: every
/// bolus as delivered, the carbohydrates the patient entered for each
/// bolused meal (the meal's carbs × their counting error, at the time of the
/// bolus) and every rescue treatment. Unbolused meals are not in the record;
/// nor is exercise.
pub fn plasma_record(scenario: &str) -> Result<BTreeMap<String, PatientRecord>, String> {
    let v: serde_json::Value = serde_json::from_str(scenario).map_err(|e| format!("scenario.json: {e}"))?;
    let start = Timestamp::parse("2025-01-06T00:00:00Z").map_err(|e| e.to_string())?.unix_ms();
    let at = |minute: f64| start + (minute * MIN as f64) as i64;
    let num = |x: &serde_json::Value, k: &str| x.get(k).and_then(|v| v.as_f64());
    let mut out = BTreeMap::new();
    for p in v.get("patients").and_then(|p| p.as_array()).ok_or("scenario.json: no patients")? {
        let id = p.get("patient_id").and_then(|v| v.as_str()).ok_or("scenario.json: patient without id")?;
        let (Some(cf), Some(cr)) = (num(p, "CF"), num(p, "CR")) else {
            return Err(format!("scenario.json: {id} has no CF/CR"));
        };
        let mut treatments = Vec::new();
        for e in p.get("delivered").and_then(|d| d.as_array()).into_iter().flatten() {
            let Some(minute) = num(e, "minute") else { continue };
            if let Some(u) = num(e, "bolus_u") {
                treatments.push(Treatment::Insulin { at_ms: at(minute), units: u });
            }
            if let Some(g) = num(e, "rescue_carbs_g") {
                treatments.push(Treatment::Carbs { at_ms: at(minute), grams: g });
            }
        }
        let meals = p.get("plan").and_then(|p| p.get("meals")).and_then(|m| m.as_array());
        for m in meals.into_iter().flatten() {
            if m.get("bolus_mode").and_then(|b| b.as_str()) == Some("missed") {
                continue;
            }
            let (Some(minute), Some(carbs)) = (num(m, "minute"), num(m, "carbs")) else { continue };
            let entered = carbs * num(m, "carb_est_factor").unwrap_or(1.0);
            let minute = minute + num(m, "bolus_delay_min").unwrap_or(0.0);
            treatments.push(Treatment::Carbs { at_ms: at(minute), grams: entered });
        }
        treatments.sort_by_key(|t| t.at_ms());
        out.insert(id.to_string(), PatientRecord { profile: InsulinProfile::new(cf, cr), treatments });
    }
    Ok(out)
}

/// The detector's alerts over every patient's trace, with what each
/// patient's record holds (their factors in the detector's configuration,
/// their treatments fed in time); patients without a record run on the CGM
/// alone.
pub fn detect_all_with(
    cfg: &DetectorConfig,
    traces: &BTreeMap<String, Vec<Reading>>,
    records: &BTreeMap<String, PatientRecord>,
) -> Vec<ScoredAlert> {
    traces
        .iter()
        .flat_map(|(p, readings)| {
            let alerts = match records.get(p) {
                Some(r) => r.run(cfg, readings),
                None => run_trace(cfg, readings),
            };
            alerts.into_iter().map(move |a| scored(p, a.at_ms, kind_name(a.kind)))
        })
        .collect()
}

/// The naive edge-triggered threshold baseline: `low` when a reading is
/// below `low` after one that was not, `high` likewise above `high`.
pub fn threshold_baseline(traces: &BTreeMap<String, Vec<Reading>>, low: f64, high: f64) -> Vec<ScoredAlert> {
    let mut out = Vec::new();
    for (p, readings) in traces {
        let (mut was_low, mut was_high) = (false, false);
        for r in readings {
            let (is_low, is_high) = (r.mg_dl < low, r.mg_dl > high);
            if is_low && !was_low {
                out.push(scored(p, r.at_ms, "low"));
            }
            if is_high && !was_high {
                out.push(scored(p, r.at_ms, "high"));
            }
            (was_low, was_high) = (is_low, is_high);
        }
    }
    out
}
