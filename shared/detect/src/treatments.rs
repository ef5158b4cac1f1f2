//! What the record knows beyond the CGM: insulin given and carbohydrates
//! eaten (`medication.taken` with `insulin_units` / `carbs_g`), and the
//! patient's insulin profile from the care plan. From them, the glucose
//! change still to come from insulin acting and carbohydrates being
//! absorbed — the part of the next half hour the CGM's trend cannot show
//! yet, since it lags the blood by 7–20 minutes.
//!
//! Insulin action follows the exponential activity curve used by open
//! artificial-pancreas systems for rapid-acting analogues (activity rising
//! to a peak, then decaying to zero at the duration of action; the fraction
//! still on board has a closed form). Carbohydrates are absorbed at a
//! constant rate after a short delay. Both are deliberately simple: they
//! say where glucose is being pushed, and the observed trend corrects them.

use std::collections::VecDeque;

/// One minute in milliseconds.
const MIN: i64 = 60_000;

/// The patient's insulin and carbohydrate factors (from the care plan).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InsulinProfile {
    /// How far one unit of insulin lowers glucose, mg/dL per U (the
    /// correction factor).
    pub sensitivity_mg_dl_per_u: f64,
    /// Carbohydrates one unit of insulin covers, g per U.
    pub carb_ratio_g_per_u: f64,
    /// When insulin acts most, minutes after the dose (rapid-acting: 75).
    pub peak_min: f64,
    /// When it has stopped acting, minutes (rapid-acting: 360).
    pub duration_min: f64,
    /// How long a meal takes to be absorbed, minutes.
    pub carb_absorption_min: f64,
}

impl InsulinProfile {
    /// A profile with the usual rapid-acting insulin curve (peak 75 min,
    /// 6 h of action) and 3 hours of carbohydrate absorption.
    pub fn new(sensitivity_mg_dl_per_u: f64, carb_ratio_g_per_u: f64) -> Self {
        InsulinProfile {
            sensitivity_mg_dl_per_u,
            carb_ratio_g_per_u,
            peak_min: 75.0,
            duration_min: 360.0,
            carb_absorption_min: 180.0,
        }
    }

    /// The profile for a care plan's factors, with the usual curves.
    pub fn from_factors(f: &glucochain_types::tx::InsulinFactors) -> Self {
        Self::new(f.sensitivity_mg_dl_per_u, f.carb_ratio_g_per_u)
    }

    /// The fraction of a dose still on board `minutes` after it was given
    /// (1 at the dose, 0 from the duration of action on).
    pub fn insulin_on_board(&self, minutes: f64) -> f64 {
        let (tp, td) = (self.peak_min, self.duration_min);
        if minutes <= 0.0 {
            return 1.0;
        }
        if minutes >= td {
            return 0.0;
        }
        let tau = tp * (1.0 - tp / td) / (1.0 - 2.0 * tp / td);
        let a = 2.0 * tau / td;
        let s = 1.0 / (1.0 - a + (1.0 + a) * (-td / tau).exp());
        let t = minutes;
        1.0 - s * (1.0 - a) * ((t * t / (tau * td * (1.0 - a)) - t / tau - 1.0) * (-t / tau).exp() + 1.0)
    }

    /// The fraction of a meal absorbed `minutes` after it was eaten.
    pub fn carbs_absorbed(&self, minutes: f64) -> f64 {
        let t = minutes - CARB_DELAY_MIN;
        if t <= 0.0 { 0.0 } else { (t / self.carb_absorption_min).min(1.0) }
    }

    /// Whether the factors are usable (positive and finite; a peak inside
    /// the duration of action).
    pub fn is_valid(&self) -> bool {
        let pos = |x: f64| x.is_finite() && x > 0.0;
        pos(self.sensitivity_mg_dl_per_u)
            && pos(self.carb_ratio_g_per_u)
            && pos(self.peak_min)
            && pos(self.carb_absorption_min)
            && self.duration_min > 2.0 * self.peak_min
    }
}

/// Carbohydrates start to raise glucose this long after a meal, minutes.
const CARB_DELAY_MIN: f64 = 10.0;

/// A treatment in the record.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Treatment {
    /// Rapid-acting insulin given (a bolus), units.
    Insulin {
        /// Unix milliseconds.
        at_ms: i64,
        /// Units.
        units: f64,
    },
    /// Carbohydrates eaten, grams.
    Carbs {
        /// Unix milliseconds.
        at_ms: i64,
        /// Grams.
        grams: f64,
    },
}

impl Treatment {
    /// When it was given or eaten.
    pub fn at_ms(&self) -> i64 {
        match *self {
            Treatment::Insulin { at_ms, .. } | Treatment::Carbs { at_ms, .. } => at_ms,
        }
    }
}

/// The treatments that may still act (the last duration of action).
#[derive(Debug, Clone, Default)]
pub struct TreatmentLog {
    items: VecDeque<Treatment>,
}

impl TreatmentLog {
    /// Records a treatment (kept in time order; a non-positive or
    /// non-finite amount is ignored).
    pub fn add(&mut self, t: Treatment) {
        let amount = match t {
            Treatment::Insulin { units, .. } => units,
            Treatment::Carbs { grams, .. } => grams,
        };
        if !amount.is_finite() || amount <= 0.0 {
            return;
        }
        let at = t.at_ms();
        let pos = self.items.iter().rposition(|x| x.at_ms() <= at).map(|i| i + 1).unwrap_or(0);
        self.items.insert(pos, t);
    }

    /// Forgets what stopped acting before `now_ms`.
    pub fn prune(&mut self, profile: &InsulinProfile, now_ms: i64) {
        let keep = (profile.duration_min.max(profile.carb_absorption_min + CARB_DELAY_MIN) * MIN as f64) as i64;
        while self.items.front().is_some_and(|t| t.at_ms() < now_ms - keep) {
            self.items.pop_front();
        }
    }

    /// The glucose change (mg/dL) the treatments given up to `known_ms`
    /// push between `from_ms` and `to_ms`: insulin lowers it by the
    /// sensitivity per unit that acts in the interval, carbohydrates raise
    /// it by sensitivity ÷ carb ratio per gram absorbed in it.
    pub fn effect(&self, profile: &InsulinProfile, known_ms: i64, from_ms: i64, to_ms: i64) -> f64 {
        let isf = profile.sensitivity_mg_dl_per_u;
        let csf = isf / profile.carb_ratio_g_per_u;
        let minutes = |a: i64, b: i64| (a - b) as f64 / MIN as f64;
        self.items
            .iter()
            .filter(|t| t.at_ms() <= known_ms)
            .map(|t| match *t {
                Treatment::Insulin { at_ms, units } => {
                    -isf * units
                        * (profile.insulin_on_board(minutes(from_ms, at_ms))
                            - profile.insulin_on_board(minutes(to_ms, at_ms)))
                }
                Treatment::Carbs { at_ms, grams } => {
                    csf * grams
                        * (profile.carbs_absorbed(minutes(to_ms, at_ms))
                            - profile.carbs_absorbed(minutes(from_ms, at_ms)))
                }
            })
            .sum()
    }

    /// Insulin on board at `now_ms`, units.
    pub fn insulin_on_board(&self, profile: &InsulinProfile, now_ms: i64) -> f64 {
        self.items
            .iter()
            .filter_map(|t| match *t {
                Treatment::Insulin { at_ms, units } if at_ms <= now_ms => {
                    Some(units * profile.insulin_on_board((now_ms - at_ms) as f64 / MIN as f64))
                }
                _ => None,
            })
            .sum()
    }

    /// Whether nothing is recorded.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insulin_on_board_falls_from_one_to_zero_fastest_at_the_peak() {
        let p = InsulinProfile::new(40.0, 10.0);
        assert_eq!(p.insulin_on_board(0.0), 1.0);
        assert_eq!(p.insulin_on_board(360.0), 0.0);
        let mut prev = 1.0;
        let mut steepest = (0.0, 0.0);
        for m in 1..360 {
            let now = p.insulin_on_board(m as f64);
            assert!(now <= prev + 1e-12, "on board rises at {m}");
            if prev - now > steepest.1 {
                steepest = (m as f64, prev - now);
            }
            prev = now;
        }
        assert!((steepest.0 - 75.0).abs() <= 2.0, "activity peaks at {}", steepest.0);
        // About half of it is still on board at 2 hours, little at 5.
        assert!((0.35..0.65).contains(&p.insulin_on_board(120.0)));
        assert!(p.insulin_on_board(300.0) < 0.05);
    }

    #[test]
    fn effect_adds_up_insulin_down_and_carbs_up_over_the_whole_action() {
        let p = InsulinProfile::new(40.0, 10.0);
        let mut log = TreatmentLog::default();
        log.add(Treatment::Insulin { at_ms: 0, units: 2.0 });
        let all = log.effect(&p, 0, 0, 400 * MIN);
        assert!((all + 80.0).abs() < 1e-6, "2 U × 40 mg/dL/U = −80, got {all}");
        // Split into halves, the parts add up.
        let a = log.effect(&p, 0, 0, 90 * MIN) + log.effect(&p, 0, 90 * MIN, 400 * MIN);
        assert!((a - all).abs() < 1e-9);
        log.add(Treatment::Carbs { at_ms: 0, grams: 20.0 });
        let both = log.effect(&p, 0, 0, 400 * MIN);
        assert!(both.abs() < 1e-6, "20 g at 10 g/U covers the 2 U, got {both}");
        // Not yet known: a treatment recorded later than `known` does not count.
        log.add(Treatment::Insulin { at_ms: 60 * MIN, units: 1.0 });
        assert!((log.effect(&p, 30 * MIN, 0, 400 * MIN) - both).abs() < 1e-9);
    }

    #[test]
    fn bad_amounts_are_ignored_and_old_ones_pruned() {
        let p = InsulinProfile::new(40.0, 10.0);
        let mut log = TreatmentLog::default();
        log.add(Treatment::Insulin { at_ms: 0, units: f64::NAN });
        log.add(Treatment::Carbs { at_ms: 0, grams: -5.0 });
        assert!(log.is_empty());
        log.add(Treatment::Insulin { at_ms: 10 * MIN, units: 1.0 });
        log.add(Treatment::Insulin { at_ms: 0, units: 1.0 });
        assert!((log.insulin_on_board(&p, 10 * MIN) - (1.0 + p.insulin_on_board(10.0))).abs() < 1e-9);
        log.prune(&p, 400 * MIN);
        assert!(log.is_empty());
        assert!(!InsulinProfile { duration_min: 100.0, ..p }.is_valid());
        assert!(!InsulinProfile::new(0.0, 10.0).is_valid());
    }
}
