//! Offline evaluation: runs the detector (or a naive threshold baseline)
//! over a folder of CGM traces and gives alerts in the scorers' shape. The
//! quality tests, `emrctl detect` and `examples/evaluate.rs` share it.

use crate::score::ScoredAlert;
use crate::{DetectorConfig, Reading, kind_name, run_trace};
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
    traces
        .iter()
        .flat_map(|(p, readings)| {
            run_trace(cfg, readings).into_iter().map(move |a| scored(p, a.at_ms, kind_name(a.kind)))
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
