//! The per-patient model behind the `anomaly` alert: what this patient's
//! glucose usually is at this time of day, learned with linfa from their own
//! history (a linear regression on daily harmonics of the time of day), and
//! how far readings usually stray from it. A reading far outside that band
//! is unusual *for this patient*, even when it is inside the population
//! thresholds.

use crate::Reading;
use linfa::prelude::*;
use linfa_linear::LinearRegression;
use ndarray::{Array1, Array2};

const DAY_MS: f64 = 86_400_000.0;
/// History needed before the model speaks.
pub const MIN_HISTORY_MS: i64 = 2 * 86_400_000;
/// History the model learns from.
pub const WINDOW_MS: i64 = 7 * 86_400_000;
/// Refit at most this often.
pub const REFIT_MS: i64 = 6 * 3_600_000;

fn features(at_ms: i64) -> [f64; 4] {
    let x = (at_ms as f64 % DAY_MS) / DAY_MS * std::f64::consts::TAU;
    [x.sin(), x.cos(), (2.0 * x).sin(), (2.0 * x).cos()]
}

/// A fitted daily profile.
#[derive(Debug, Clone)]
pub struct DailyProfile {
    intercept: f64,
    coef: [f64; 4],
    /// Typical deviation from the profile, mg/dL.
    pub spread: f64,
    /// When it was fitted.
    pub fitted_at: i64,
}

impl DailyProfile {
    /// Fits a profile to `history` (at least [`MIN_HISTORY_MS`] of readings).
    pub fn fit(history: &[Reading]) -> Option<Self> {
        let (first, last) = (history.first()?, history.last()?);
        if last.at_ms - first.at_ms < MIN_HISTORY_MS || history.len() < 100 {
            return None;
        }
        let x = Array2::from_shape_fn((history.len(), 4), |(i, j)| features(history[i].at_ms)[j]);
        let y = Array1::from_iter(history.iter().map(|r| r.mg_dl));
        let model = LinearRegression::default().fit(&Dataset::new(x.clone(), y.clone())).ok()?;
        let fitted = model.predict(&x);
        let n = history.len() as f64;
        let spread = (fitted.iter().zip(y.iter()).map(|(f, o)| (f - o).powi(2)).sum::<f64>() / n).sqrt();
        let p = model.params();
        Some(DailyProfile {
            intercept: model.intercept(),
            coef: [p[0], p[1], p[2], p[3]],
            spread: spread.max(5.0),
            fitted_at: last.at_ms,
        })
    }

    /// The usual glucose at `at_ms`.
    pub fn expected(&self, at_ms: i64) -> f64 {
        let f = features(at_ms);
        self.intercept + self.coef.iter().zip(f).map(|(c, x)| c * x).sum::<f64>()
    }

    /// How unusual `r` is: deviations from the profile in units of the usual spread.
    pub fn score(&self, r: &Reading) -> f64 {
        (r.mg_dl - self.expected(r.at_ms)).abs() / self.spread
    }
}

/// Keeps the history and the fitted profile.
#[derive(Debug, Clone, Default)]
pub struct AnomalyModel {
    history: std::collections::VecDeque<Reading>,
    profile: Option<DailyProfile>,
}

impl AnomalyModel {
    /// Learns from `r` (refitting now and then) and scores it.
    pub fn observe(&mut self, r: Reading) -> Option<(f64, f64)> {
        self.history.push_back(r);
        while self.history.front().is_some_and(|f| f.at_ms < r.at_ms - WINDOW_MS) {
            self.history.pop_front();
        }
        let stale = self.profile.as_ref().is_none_or(|p| r.at_ms - p.fitted_at >= REFIT_MS);
        if stale && self.history.len().is_multiple_of(12) {
            let h: Vec<Reading> = self.history.iter().copied().collect();
            if let Some(p) = DailyProfile::fit(&h) {
                self.profile = Some(p);
            }
        }
        let p = self.profile.as_ref()?;
        Some((p.score(&r), p.expected(r.at_ms)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MIN;

    #[test]
    fn learns_a_daily_pattern_and_flags_what_breaks_it() {
        // Three days: 100 mg/dL at night, 160 after lunch every day, small noise.
        let t0 = 1_790_000_000_000 - 1_790_000_000_000 % 86_400_000;
        let mut m = AnomalyModel::default();
        let usual = |t: i64| {
            let h = ((t - t0) % 86_400_000) as f64 / 3_600_000.0;
            100.0 + 60.0 * (-(h - 13.0).powi(2) / 8.0).exp() + ((t / 300_000) % 7) as f64 - 3.0
        };
        let mut last = None;
        for i in 0..(3 * 288) {
            let t = t0 + i * 5 * MIN;
            last = m.observe(Reading { at_ms: t, mg_dl: usual(t) });
        }
        let (score, expected) = last.expect("the model speaks after two days");
        assert!(score < 2.0, "a usual reading: {score}");
        assert!((expected - 100.0).abs() < 25.0, "{expected}");
        // 175 mg/dL at 3 am is within every population threshold, but unusual for this patient.
        let night = t0 + 3 * 86_400_000 + 3 * 3_600_000;
        let (z, _) = m.observe(Reading { at_ms: night, mg_dl: 175.0 }).unwrap();
        assert!(z > 3.5, "unusual at night: {z}");
        let lunch = t0 + 3 * 86_400_000 + 13 * 3_600_000;
        let (z, _) = m.observe(Reading { at_ms: lunch, mg_dl: 160.0 }).unwrap();
        assert!(z < 3.0, "usual after lunch: {z}");
    }

    #[test]
    fn says_nothing_before_two_days() {
        let mut m = AnomalyModel::default();
        for i in 0..200 {
            assert!(m.observe(Reading { at_ms: i * 5 * MIN, mg_dl: 100.0 }).is_none());
        }
    }
}
