//! CGM traces as CSV (`patient_id,timestamp,glucose_mg_dl`, an optional
//! header): the format of the fixtures, `emrctl detect` and the scorer.

use crate::Reading;
use glucochain_types::time::Timestamp;
use std::collections::BTreeMap;

/// Why a CSV line was refused (1-based line numbers).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CsvError {
    /// Not three comma-separated columns.
    #[error("line {0}: expected 3 columns (patient_id,timestamp,glucose_mg_dl)")]
    Columns(usize),
    /// The timestamp is not RFC 3339.
    #[error("line {line}: timestamp {value:?}: {reason}")]
    Timestamp {
        /// Line.
        line: usize,
        /// The value given.
        value: String,
        /// Why.
        reason: String,
    },
    /// The glucose value is not a finite number in a physiological range.
    #[error("line {line}: glucose {value:?} is not a number from 0 to 2000 mg/dL")]
    Glucose {
        /// Line.
        line: usize,
        /// The value given.
        value: String,
    },
}

/// Readings by patient, each patient's in time order.
pub fn parse_cgm_csv(text: &str) -> Result<BTreeMap<String, Vec<Reading>>, CsvError> {
    let mut out: BTreeMap<String, Vec<Reading>> = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || (i == 0 && line.starts_with("patient_id")) {
            continue;
        }
        let cols: Vec<&str> = line.split(',').collect();
        let [patient, ts, g] = cols[..] else { return Err(CsvError::Columns(i + 1)) };
        let at = Timestamp::parse(ts.trim()).map_err(|e| CsvError::Timestamp {
            line: i + 1,
            value: ts.trim().to_string(),
            reason: e.to_string(),
        })?;
        let mg_dl = g
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && (0.0..=2000.0).contains(v))
            .ok_or_else(|| CsvError::Glucose { line: i + 1, value: g.trim().to_string() })?;
        out.entry(patient.trim().to_string()).or_default().push(Reading { at_ms: at.unix_ms(), mg_dl });
    }
    for r in out.values_mut() {
        r.sort_by_key(|x| x.at_ms);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_trace_and_refuses_what_is_not_one_with_its_line() {
        let ok = "patient_id,timestamp,glucose_mg_dl\np1,2026-11-30T10:05:00Z,120\np1,2026-11-30T10:00:00Z,118.5\n";
        let r = parse_cgm_csv(ok).unwrap();
        assert_eq!(r["p1"].iter().map(|x| x.mg_dl).collect::<Vec<_>>(), vec![118.5, 120.0], "time order");
        assert_eq!(parse_cgm_csv("p1,2026-11-30T10:00:00Z"), Err(CsvError::Columns(1)));
        assert!(matches!(parse_cgm_csv("p1,yesterday,100"), Err(CsvError::Timestamp { line: 1, .. })));
        for bad in ["NaN", "inf", "-5", "1e9", "abc"] {
            let text = format!("p1,2026-11-30T10:00:00Z,100\np1,2026-11-30T10:05:00Z,{bad}");
            assert!(matches!(parse_cgm_csv(&text), Err(CsvError::Glucose { line: 2, .. })), "{bad}");
        }
    }
}
