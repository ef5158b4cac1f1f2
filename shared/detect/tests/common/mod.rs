//! Shared builders for the detector's tests: constructed traces and the
//! fixture sets.
#![allow(dead_code)]

use glucochain_detect::{Alert, DetectorConfig, MIN, Reading, run_trace};
use glucochain_types::tx::AlertKind;
use std::path::PathBuf;

/// The start of every constructed trace.
pub const T0: i64 = 1_790_000_000_000;

/// A trace from (minute, mg/dL) knots, linearly interpolated every 5 minutes.
pub fn trace(knots: &[(i64, f64)]) -> Vec<Reading> {
    let mut out = Vec::new();
    for w in knots.windows(2) {
        let ((m0, g0), (m1, g1)) = (w[0], w[1]);
        let mut m = m0;
        while m < m1 {
            let g = g0 + (g1 - g0) * (m - m0) as f64 / (m1 - m0) as f64;
            out.push(Reading { at_ms: T0 + m * MIN, mg_dl: g });
            m += 5;
        }
    }
    let (m, g) = *knots.last().unwrap();
    out.push(Reading { at_ms: T0 + m * MIN, mg_dl: g });
    out
}

/// A trace of exact values, one every 5 minutes from `T0`.
pub fn readings(values: &[f64]) -> Vec<Reading> {
    values.iter().enumerate().map(|(i, g)| Reading { at_ms: T0 + i as i64 * 5 * MIN, mg_dl: *g }).collect()
}

/// The kinds raised, in order.
pub fn kinds(alerts: &[Alert]) -> Vec<AlertKind> {
    alerts.iter().map(|a| a.kind).collect()
}

/// How many alerts of `k`.
pub fn count(alerts: &[Alert], k: AlertKind) -> usize {
    alerts.iter().filter(|a| a.kind == k).count()
}

/// The default detector over a trace from knots.
pub fn run(knots: &[(i64, f64)]) -> Vec<Alert> {
    run_trace(&DetectorConfig::default(), &trace(knots))
}

/// `tests/fixtures` at the workspace root.
pub fn fixtures() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}
