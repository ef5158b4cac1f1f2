//! Glucose alert detection for one patient's CGM stream: pure and
//! deterministic (readings in, alerts out), so the detector service, the
//! offline evaluation (`emrctl detect`) and the tests run exactly the same
//! code.
//!
//! * **Thresholds** from the care plan (defaults after Battelino et al. 2019:
//!   urgent low < 54, low < 70, high > 180, very high > 250 mg/dL).
//! * **Trend**: the rate of change is the slope of a least-squares line
//!   through the last 20 minutes; the **prediction** fits the last 30
//!   minutes with linfa's linear regression on time and, where the curve
//!   bends, time² — a damped quadratic is used only when it explains the
//!   data clearly better than the line.
//! * **Episodes**: one alert per kind per episode; an episode ends
//!   (re-arms) only after glucose has been back in range for a while.
//! * **Artefacts**: a sudden implausible drop from a steady level (a
//!   compression low: pressure on the sensor) is held back until the low
//!   persists with plausible dynamics; signal loss is its own alert.
//! * Every alert says why: value, slope, prediction.

pub mod csv;
pub mod evaluate;
pub mod model;
pub mod score;
pub mod treatments;

use glucochain_types::tx::{AlertKind, GlucoseThresholds};
use linfa::prelude::*;
use linfa_linear::LinearRegression;
use ndarray::{Array1, Array2};
use std::collections::{BTreeSet, VecDeque};

/// One minute in milliseconds.
pub const MIN: i64 = 60_000;

/// A CGM reading.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    /// Unix milliseconds.
    pub at_ms: i64,
    /// Glucose, mg/dL.
    pub mg_dl: f64,
}

/// How the detector is set up (from the patient's care plan).
#[derive(Debug, Clone)]
pub struct DetectorConfig {
    /// Thresholds.
    pub thresholds: GlucoseThresholds,
    /// Alert kinds that may fire.
    pub enabled: BTreeSet<AlertKind>,
    /// How far ahead the low prediction looks, minutes.
    pub horizon_min: f64,
    /// The patient's insulin and carbohydrate factors, when the care plan
    /// gives them: the low prediction then adds what recorded insulin and
    /// carbohydrates will still do (see [`treatments`]).
    pub insulin: Option<treatments::InsulinProfile>,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        use AlertKind::*;
        DetectorConfig {
            thresholds: GlucoseThresholds::default(),
            enabled: [
                UrgentLow,
                Low,
                High,
                VeryHigh,
                RapidFall,
                RapidRise,
                PredictedLow,
                PredictedHigh,
                Anomaly,
                SignalLoss,
            ]
            .into_iter()
            .collect(),
            horizon_min: 30.0,
            insulin: None,
        }
    }
}

/// An alert, with the evidence for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// Kind.
    pub kind: AlertKind,
    /// Time of the reading that raised it (or, for signal loss, of the check).
    pub at_ms: i64,
    /// The episode it belongs to (one alert per kind per episode).
    pub episode: u64,
    /// Glucose, mg/dL.
    pub glucose: Option<f64>,
    /// Rate of change, mg/dL/min.
    pub slope: Option<f64>,
    /// Predicted glucose at `predicted_at_ms`.
    pub predicted: Option<f64>,
    /// When the prediction is for.
    pub predicted_at_ms: Option<i64>,
    /// Anomaly score, when the per-patient model spoke.
    pub model_score: Option<f64>,
    /// Why, for people.
    pub reason: String,
}

#[derive(Debug, Clone, Default)]
struct Episode {
    id: u64,
    fired: BTreeSet<AlertKind>,
    /// Since when the condition that ends the episode holds.
    clear_since: Option<i64>,
}

/// A low is predicted only while glucose is within this of the low threshold, mg/dL.
const PREDICT_BAND: f64 = 30.0;
/// With insulin and carbohydrates known: within this of the low threshold, mg/dL.
const FORECAST_BAND: f64 = 40.0;
/// ... and this share of the recent change they do not explain carries on
/// (measured on the plasma set: 0.3-0.4 give the same lows found).
const FORECAST_MOMENTUM: f64 = 0.3;

/// The low forecast from the record's insulin and carbohydrates.
#[derive(Debug, Clone, Copy)]
struct Forecast {
    /// Glucose at the horizon, mg/dL.
    mg_dl: f64,
    /// Insulin on board now, U.
    insulin_on_board: f64,
    /// What insulin and carbohydrates still do over the horizon, mg/dL.
    ahead: f64,
    /// Glucose at the high horizon, mg/dL.
    high_soon: f64,
}
/// ... and falling at least this fast, mg/dL/min.
const PREDICT_MIN_FALL: f64 = 1.0;
/// An urgent-low episode ends this far above the urgent threshold (held 15 min), mg/dL.
const URGENT_REARM: f64 = 4.0;
/// A low episode ends this far above the low threshold (held 15 min), mg/dL.
const LOW_REARM: f64 = 5.0;
/// A drop faster than this (mg/dL/min) out of a steady level is held as a possible compression low.
pub const COMPRESSION_RATE: f64 = 3.0;
/// A reading this many usual spreads away from the patient's daily profile is an anomaly.
const ANOMALY_SCORE: f64 = 3.5;
/// Rapid change needs the care plan's rate times this (the sensor's noise inflates short slopes).
const RAPID_MARGIN: f64 = 1.15;
/// The longest a suspected compression low holds low alerts, minutes: a real
/// low that looks like one is announced at most this late.
pub const COMPRESSION_HOLD_MIN: i64 = 15;
/// What sensors report below their range ("LOW"), mg/dL.
pub const SENSOR_FLOOR: f64 = 39.0;
/// How far ahead the high prediction looks, minutes.
const HIGH_HORIZON_MIN: f64 = 20.0;
/// A very high is predicted only within this of the very-high threshold, mg/dL ...
const HIGH_BAND: f64 = 50.0;
/// ... while rising at least this fast, mg/dL/min.
const HIGH_MIN_RISE: f64 = 1.0;

/// Least-squares slope (mg/dL/min) of `points` (minutes, mg/dL).
fn slope(points: &[(f64, f64)]) -> Option<f64> {
    if points.len() < 3 {
        return None;
    }
    let n = points.len() as f64;
    let (mx, my) = points.iter().fold((0.0, 0.0), |(a, b), (x, y)| (a + x / n, b + y / n));
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for (x, y) in points {
        sxy += (x - mx) * (y - my);
        sxx += (x - mx) * (x - mx);
    }
    (sxx > 0.0).then(|| sxy / sxx)
}

/// A trend prediction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prediction {
    /// Predicted glucose at the horizon.
    pub mg_dl: f64,
    /// Whether the curved (quadratic) model was used.
    pub curved: bool,
}

/// Predicts glucose `horizon` minutes after the last point with linfa: a
/// line through the points, or a damped quadratic when the curvature is
/// clear (it explains at least 40% of what the line leaves unexplained).
pub fn predict(points: &[(f64, f64)], horizon: f64) -> Option<Prediction> {
    predict_at(points, &[horizon]).and_then(|p| p.first().copied())
}

/// [`predict`] at several horizons from one pair of fits (the choice between
/// line and curve does not depend on the horizon).
pub fn predict_at(points: &[(f64, f64)], horizons: &[f64]) -> Option<Vec<Prediction>> {
    if points.len() < 4 {
        return None;
    }
    let t_last = points.last()?.0;
    let xs: Vec<f64> = points.iter().map(|(x, _)| x - t_last).collect();
    let y = Array1::from_iter(points.iter().map(|(_, y)| *y));
    // Each fit: intercept, coefficients, squared error.
    let fit = |cols: usize| -> Option<(f64, Vec<f64>, f64)> {
        let x = Array2::from_shape_fn((xs.len(), cols), |(i, j)| xs[i].powi(j as i32 + 1));
        let ds = Dataset::new(x.clone(), y.clone());
        let model = LinearRegression::default().fit(&ds).ok()?;
        let fitted = model.predict(&x);
        let sse: f64 = fitted.iter().zip(y.iter()).map(|(f, o)| (f - o).powi(2)).sum();
        Some((model.intercept(), model.params().to_vec(), sse))
    };
    // The quadratic term is damped by half.
    let ahead = |(b0, c, _): &(f64, Vec<f64>, f64), h: f64| {
        b0 + c.iter().enumerate().map(|(j, cj)| cj * h.powi(j as i32 + 1) * if j == 1 { 0.5 } else { 1.0 }).sum::<f64>()
    };
    let line = fit(1)?;
    let curve = fit(2)?;
    let curved = curve.2 < 0.6 * line.2 && (line.2 - curve.2) > 4.0 * points.len() as f64;
    let chosen = if curved { &curve } else { &line };
    Some(horizons.iter().map(|h| Prediction { mg_dl: ahead(chosen, *h), curved }).collect())
}

/// A suspected compression low (pressure on the sensor): a drop faster than
/// a body's glucose falls, out of a steady level. It holds low alerts until
/// the value bounces back (an artefact), goes on falling on two more
/// readings in a row (a real low: pressure on a sensor makes a step and a
/// floor, not a slope), or [`COMPRESSION_HOLD_MIN`] pass (then it alarms,
/// whatever it was). It is never suspected once glucose is already low.
#[derive(Debug, Clone, Copy)]
struct Compression {
    /// The reading that dropped.
    since: i64,
    /// The level before the drop.
    level: f64,
    /// The newest reading.
    last: f64,
    /// The lowest reading since the drop.
    nadir: f64,
    /// Readings in a row, since the drop, at least 2 mg/dL below the one before.
    falls: u32,
}

/// The detector for one patient.
#[derive(Debug, Clone)]
pub struct PatientDetector {
    cfg: DetectorConfig,
    hist: VecDeque<Reading>,
    next_episode: u64,
    low: Option<Episode>,
    urgent: Option<Episode>,
    predicted: Option<Episode>,
    high: Option<Episode>,
    very_high: Option<Episode>,
    fall: Option<Episode>,
    rise: Option<Episode>,
    /// A suspected compression low.
    suspect: Option<Compression>,
    /// Until when the recovery from a compression low is still going on.
    artefact_until: i64,
    signal_lost: bool,
    /// The per-patient daily profile (anomaly alerts).
    model: model::AnomalyModel,
    anomaly: Option<Episode>,
    /// When each kind last fired.
    last_fired: std::collections::BTreeMap<AlertKind, i64>,
    /// Episodes ended since the last `take_resolved`.
    resolved: Vec<Resolved>,
    /// Insulin and carbohydrates recorded for the patient.
    treatments: treatments::TreatmentLog,
}

/// An episode that ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The episode.
    pub episode: u64,
    /// The kinds it had raised.
    pub kinds: Vec<AlertKind>,
    /// When it ended.
    pub at_ms: i64,
}

impl PatientDetector {
    /// A detector with `cfg`.
    pub fn new(cfg: DetectorConfig) -> Self {
        PatientDetector {
            cfg,
            hist: VecDeque::new(),
            next_episode: 1,
            low: None,
            urgent: None,
            predicted: None,
            high: None,
            very_high: None,
            fall: None,
            rise: None,
            suspect: None,
            artefact_until: 0,
            signal_lost: false,
            last_fired: std::collections::BTreeMap::new(),
            model: model::AnomalyModel::default(),
            anomaly: None,
            resolved: Vec::new(),
            treatments: treatments::TreatmentLog::default(),
        }
    }

    /// Records insulin given or carbohydrates eaten (from the record), for
    /// the low prediction of a patient whose care plan gives their factors.
    pub fn treat(&mut self, t: treatments::Treatment) {
        self.treatments.add(t);
    }

    /// The readings of the last `minutes` up to the newest, oldest first
    /// (what a notification's chart shows).
    pub fn recent(&self, minutes: i64) -> Vec<Reading> {
        let Some(last) = self.hist.back() else { return Vec::new() };
        self.hist.iter().filter(|r| r.at_ms >= last.at_ms - minutes * MIN).copied().collect()
    }

    /// Numbers episodes from `first` on (a service passes the time it
    /// created the detector, so episode ids stay unique across restarts).
    pub fn starting_episodes_at(mut self, first: u64) -> Self {
        self.next_episode = first.max(1);
        self
    }

    fn points(&self, now: i64, minutes: i64) -> Vec<(f64, f64)> {
        self.hist
            .iter()
            .filter(|r| r.at_ms > now - minutes * MIN - MIN / 2)
            .map(|r| ((r.at_ms - now) as f64 / MIN as f64, r.mg_dl))
            .collect()
    }

    /// Whether the newest `n` readings (5-minute spacing, no gap) each lie below the one before.
    fn falling_steadily(&self, n: usize) -> bool {
        let last: Vec<&Reading> = self.hist.iter().rev().take(n).collect();
        last.len() == n && last.windows(2).all(|w| w[0].mg_dl < w[1].mg_dl && w[0].at_ms - w[1].at_ms <= 10 * MIN)
    }

    fn open(next: &mut u64, ep: &mut Option<Episode>) -> u64 {
        if ep.is_none() {
            *ep = Some(Episode { id: *next, ..Default::default() });
            *next += 1;
        }
        ep.as_ref().map(|e| e.id).unwrap_or(0)
    }

    /// Updates the episode's end condition; closes it after `hold` minutes of
    /// `clear`, noting it as resolved when it had raised alerts.
    fn settle(ep: &mut Option<Episode>, clear: bool, now: i64, hold: i64, resolved: &mut Vec<Resolved>) {
        if let Some(e) = ep {
            if clear {
                let since = *e.clear_since.get_or_insert(now);
                if now - since >= hold * MIN {
                    if !e.fired.is_empty() {
                        resolved.push(Resolved { episode: e.id, kinds: e.fired.iter().copied().collect(), at_ms: now });
                    }
                    *ep = None;
                }
            } else {
                e.clear_since = None;
            }
        }
    }

    /// Episodes that ended (back in range long enough) since the last call,
    /// each with the kinds it had raised: the notifier stops escalating them.
    pub fn take_resolved(&mut self) -> Vec<Resolved> {
        std::mem::take(&mut self.resolved)
    }

    /// Feeds a reading; returns the alerts it raises (in a stable order).
    pub fn push(&mut self, r: Reading) -> Vec<Alert> {
        if !r.mg_dl.is_finite() || self.hist.back().is_some_and(|last| r.at_ms <= last.at_ms) {
            return Vec::new();
        }
        let prev = self.hist.back().copied();
        self.hist.push_back(r);
        while self.hist.front().is_some_and(|f| f.at_ms < r.at_ms - 4 * 60 * MIN) {
            self.hist.pop_front();
        }
        self.signal_lost = false;
        let now = r.at_ms;
        let g = r.mg_dl;
        let t = self.cfg.thresholds.clone();
        let recent = self.points(now, 20);
        let s = slope(&recent);
        // One pair of fits over the last 30 minutes, read at the low and the high horizons.
        let (prediction, soon) = match predict_at(&self.points(now, 30), &[self.cfg.horizon_min, HIGH_HORIZON_MIN]) {
            Some(p) => (Some(p[0]), Some(p[1])),
            None => (None, None),
        };
        let unusual = self.model.observe(r);

        // Compression low: a sudden drop (> 3 mg/dL/min) out of a steady level.
        // It holds low alerts, but briefly, and not once the fall goes on the
        // way a real low does (see `Compression`).
        if let Some(p) = prev {
            let dt = (now - p.at_ms) as f64 / MIN as f64;
            let before = slope(&self.points(p.at_ms, 20));
            let steady_before = before.is_some_and(|b| b > -1.2);
            if dt > 0.0
                && dt <= 10.0
                && (g - p.mg_dl) / dt < -COMPRESSION_RATE
                && steady_before
                && p.mg_dl >= t.low
                && self.low.is_none()
                && self.predicted.is_none()
                && self.suspect.is_none()
            {
                self.suspect = Some(Compression { since: now, level: p.mg_dl, last: g, nadir: g, falls: 0 });
            }
        }
        if let Some(c) = &mut self.suspect
            && c.since != now
        {
            // A real low goes on falling; a compression low flattens out at
            // the bottom and bounces back.
            c.falls = if g <= c.last - 2.0 { c.falls + 1 } else { 0 };
            c.last = g;
            c.nadir = c.nadir.min(g);
            let recovered = g >= c.level - 15.0 || g >= c.nadir + 15.0;
            let real = c.falls >= 2 || now - c.since >= COMPRESSION_HOLD_MIN * MIN;
            if recovered {
                self.artefact_until = now + 30 * MIN;
            }
            if recovered || real {
                self.suspect = None;
            }
        }
        let held = self.suspect.is_some();
        // The trend through an artefact is not glucose's: the climb back is
        // not a rapid rise, nor the plunge a rapid fall or a coming low.
        let after_artefact = now < self.artefact_until;
        // The short-term rate (15 minutes), for rapid change: the sensor lags
        // the blood by 7-20 minutes, so a 20-minute slope comes too late.
        let short = self.points(now, 15);
        let s15 = slope(&short).filter(|_| short.len() >= 4);
        // With the patient's factors: where recorded insulin and carbohydrates
        // push glucose over the horizon, plus part of what the last 15
        // minutes did that they do not explain (exercise, an unrecorded meal).
        let forecast = self.cfg.insulin.filter(|p| p.is_valid()).and_then(|p| {
            self.treatments.prune(&p, now);
            if self.treatments.is_empty() {
                return None;
            }
            let sl = s15?;
            let h = self.cfg.horizon_min;
            let unexplained = sl * 15.0 - self.treatments.effect(&p, now, now - 15 * MIN, now);
            let ahead = self.treatments.effect(&p, now, now, now + (h * MIN as f64) as i64);
            Some(Forecast {
                mg_dl: g + ahead + FORECAST_MOMENTUM * unexplained * h / 15.0,
                insulin_on_board: self.treatments.insulin_on_board(&p, now),
                ahead,
                // A high ahead: the whole recent change carries on (a rise is
                // food being absorbed), corrected by insulin still to act.
                high_soon: g
                    + self.treatments.effect(&p, now, now, now + (HIGH_HORIZON_MIN * MIN as f64) as i64)
                    + unexplained * HIGH_HORIZON_MIN / 15.0,
            })
        });

        let mut out = Vec::new();
        let mut fire = |kind: AlertKind,
                        ep: &mut Option<Episode>,
                        next: &mut u64,
                        reason: String,
                        enabled: &BTreeSet<AlertKind>| {
            if !enabled.contains(&kind) {
                return;
            }
            let id = Self::open(next, ep);
            let e = ep.as_mut().expect("opened");
            if e.fired.insert(kind) {
                let (predicted, horizon) = match kind {
                    AlertKind::PredictedHigh => (soon.map(|p| p.mg_dl), HIGH_HORIZON_MIN),
                    _ => (forecast.map(|f| f.mg_dl).or(prediction.map(|p| p.mg_dl)), self.cfg.horizon_min),
                };
                out.push(Alert {
                    kind,
                    at_ms: now,
                    episode: id,
                    glucose: Some(g),
                    slope: s,
                    predicted,
                    predicted_at_ms: predicted.map(|_| now + (horizon * MIN as f64) as i64),
                    model_score: if kind == AlertKind::Anomaly {
                        unusual.map(|(z, _)| (z * 10.0).round() / 10.0)
                    } else {
                        None
                    },
                    reason,
                });
            }
        };
        let enabled = self.cfg.enabled.clone();
        let previous_below = |limit: f64| prev.is_some_and(|p| p.mg_dl < limit && now - p.at_ms <= 10 * MIN);

        // Lows. A reading below the urgent threshold (39 is the sensor's
        // "LOW") is an urgent low at once, whatever came before: its episode
        // is its own, so an earlier low or predicted low never silences it,
        // and the compression-low hold never delays it (a real fall can look
        // like pressure on the sensor for its first readings; a false alarm
        // at night costs less than a severe low announced late).
        if g < t.urgent_low {
            fire(
                AlertKind::UrgentLow,
                &mut self.urgent,
                &mut self.next_episode,
                if g <= SENSOR_FLOOR {
                    format!("the sensor reads LOW (below {SENSOR_FLOOR:.0} mg/dL): urgent low")
                } else {
                    format!("glucose {g:.0} mg/dL is below {:.0} (urgent low)", t.urgent_low)
                },
                &enabled,
            );
        }
        if !held {
            // Below the low threshold on two readings, or on one that ends a
            // steady fall (a single noisy dip on a flat or rising trace is
            // not a low).
            if g < t.low && (previous_below(t.low) || self.falling_steadily(3)) {
                fire(
                    AlertKind::Low,
                    &mut self.low,
                    &mut self.next_episode,
                    format!("glucose {g:.0} mg/dL is below {:.0}", t.low),
                    &enabled,
                );
            }
            // Coming lows. With the patient's factors, the forecast from the
            // record decides; the trend alone still speaks when it sees a
            // severe low coming, since what the record does not hold
            // (exercise, an unrecorded meal) shows in the trend first.
            let by_record = forecast.filter(|f| f.mg_dl < t.low && g < t.low + FORECAST_BAND && g >= t.urgent_low);
            let trend_limit = if forecast.is_some() { t.urgent_low } else { t.low };
            let by_trend = match (prediction, s) {
                (Some(p), Some(sl)) if p.mg_dl < trend_limit && g < t.low + PREDICT_BAND && sl < -PREDICT_MIN_FALL => {
                    Some((p, sl))
                }
                _ => None,
            };
            let reason = match (by_record, by_trend) {
                (Some(f), _) => Some(format!(
                    "glucose {g:.0} mg/dL, predicted {:.0} in {:.0} min from the trend, insulin and carbohydrates \
                     ({:.1} U of insulin on board; still to act: {:+.0} mg/dL)",
                    f.mg_dl, self.cfg.horizon_min, f.insulin_on_board, f.ahead
                )),
                (None, Some((p, sl))) => Some(format!(
                    "glucose {g:.0} mg/dL falling {sl:.1} mg/dL/min, predicted {:.0} in {:.0} min ({})",
                    p.mg_dl,
                    self.cfg.horizon_min,
                    if p.curved { "curved trend" } else { "linear trend" }
                )),
                (None, None) => None,
            };
            if let Some(reason) = reason
                && !after_artefact
            {
                fire(AlertKind::PredictedLow, &mut self.predicted, &mut self.next_episode, reason, &enabled);
            }
            if let Some(sl) = s15
                && sl < -t.rapid_change_per_min * RAPID_MARGIN
                && !after_artefact
            {
                fire(
                    AlertKind::RapidFall,
                    &mut self.fall,
                    &mut self.next_episode,
                    format!("glucose {g:.0} mg/dL falling fast: {sl:.1} mg/dL/min over 15 min"),
                    &enabled,
                );
            }
        }
        // Highs.
        if g > t.very_high {
            fire(
                AlertKind::VeryHigh,
                &mut self.very_high,
                &mut self.next_episode,
                format!("glucose {g:.0} mg/dL is above {:.0}", t.very_high),
                &enabled,
            );
        }
        if let (Some(p), Some(sl)) = (soon, s)
            && g <= t.very_high
            && g > t.very_high - HIGH_BAND
            && sl > HIGH_MIN_RISE
            && p.mg_dl > t.very_high
            && forecast.is_none_or(|f| f.high_soon > t.very_high)
            && !after_artefact
        {
            fire(
                AlertKind::PredictedHigh,
                &mut self.very_high,
                &mut self.next_episode,
                format!(
                    "glucose {g:.0} mg/dL rising {sl:.1} mg/dL/min, predicted {:.0} in {HIGH_HORIZON_MIN:.0} min",
                    p.mg_dl
                ),
                &enabled,
            );
        }
        if self.hist.front().is_some_and(|f| f.at_ms <= now - 60 * MIN)
            && self.hist.iter().filter(|x| x.at_ms > now - 60 * MIN).all(|x| x.mg_dl > t.high)
        {
            fire(
                AlertKind::High,
                &mut self.high,
                &mut self.next_episode,
                format!("glucose {g:.0} mg/dL has stayed above {:.0}", t.high),
                &enabled,
            );
        }
        if let Some(sl) = s15
            && !held
            && !after_artefact
            && sl > t.rapid_change_per_min * RAPID_MARGIN
        {
            fire(
                AlertKind::RapidRise,
                &mut self.rise,
                &mut self.next_episode,
                format!("glucose {g:.0} mg/dL rising fast: +{sl:.1} mg/dL/min over 15 min"),
                &enabled,
            );
        }

        if let Some((z, expected)) = unusual
            && z > ANOMALY_SCORE
            && !held
        {
            fire(
                AlertKind::Anomaly,
                &mut self.anomaly,
                &mut self.next_episode,
                format!(
                    "glucose {g:.0} mg/dL is unusual for this patient at this time of day (usually about {expected:.0}; score {z:.1})"
                ),
                &enabled,
            );
        }

        // One excursion, one alert where one of the same kind of news already
        // covers it: a very high right after its prediction, a sustained high
        // after a very high. Lows are never covered: a low after its
        // prediction says it has come (and the naive threshold's alert is
        // never missing), and an urgent low has its own episode.
        let covered =
            |kinds: &[AlertKind], within: i64, out: &[Alert], last: &std::collections::BTreeMap<AlertKind, i64>| {
                kinds
                    .iter()
                    .any(|k| out.iter().any(|a| a.kind == *k) || last.get(k).is_some_and(|t| now - t <= within * MIN))
            };
        let mut kept = Vec::new();
        for a in &out {
            let skip = match a.kind {
                AlertKind::VeryHigh => covered(&[AlertKind::PredictedHigh], 30, &kept, &self.last_fired),
                AlertKind::High => covered(
                    &[AlertKind::RapidRise, AlertKind::VeryHigh, AlertKind::PredictedHigh],
                    120,
                    &kept,
                    &self.last_fired,
                ),
                // The model only speaks where the rules have not.
                AlertKind::Anomaly => covered(
                    &[
                        AlertKind::UrgentLow,
                        AlertKind::Low,
                        AlertKind::PredictedLow,
                        AlertKind::RapidFall,
                        AlertKind::RapidRise,
                        AlertKind::VeryHigh,
                        AlertKind::PredictedHigh,
                        AlertKind::High,
                    ],
                    120,
                    &kept,
                    &self.last_fired,
                ),
                _ => false,
            };
            if !skip {
                kept.push(a.clone());
            }
        }
        for a in &kept {
            self.last_fired.insert(a.kind, now);
        }
        let out = kept;

        // Episodes end after a while back in range.
        let r = &mut self.resolved;
        Self::settle(&mut self.urgent, g >= t.urgent_low + URGENT_REARM, now, 15, r);
        Self::settle(&mut self.low, g >= t.low + LOW_REARM, now, 15, r);
        Self::settle(&mut self.predicted, g >= t.low + 10.0 && s.is_none_or(|x| x > 0.0), now, 15, r);
        Self::settle(&mut self.high, g <= t.high - 20.0, now, 30, r);
        Self::settle(&mut self.very_high, g <= t.very_high - 30.0, now, 30, r);
        Self::settle(&mut self.anomaly, unusual.is_none_or(|(z, _)| z < 2.0), now, 60, r);
        Self::settle(&mut self.fall, s.is_some_and(|x| x > -1.0), now, 30, r);
        Self::settle(&mut self.rise, s.is_some_and(|x| x < 1.0), now, 30, r);
        out
    }

    /// When a tick would raise signal loss if no reading came first: the
    /// newest reading's time plus the care plan's limit; `None` when it
    /// cannot (no reading yet, already raised, or the kind is disabled).
    pub fn signal_loss_due(&self) -> Option<i64> {
        let last = self.hist.back()?;
        if self.signal_lost || !self.cfg.enabled.contains(&AlertKind::SignalLoss) {
            return None;
        }
        Some(last.at_ms.saturating_add(self.cfg.thresholds.signal_loss_minutes as i64 * MIN))
    }

    /// The clock advanced to `now` without a reading: signal loss once the
    /// gap exceeds the care plan's limit.
    pub fn tick(&mut self, now: i64) -> Vec<Alert> {
        let Some(last) = self.hist.back().copied() else { return Vec::new() };
        if self.signal_loss_due().is_none_or(|due| now < due) {
            return Vec::new();
        }
        self.signal_lost = true;
        let id = self.next_episode;
        self.next_episode += 1;
        vec![Alert {
            kind: AlertKind::SignalLoss,
            at_ms: now,
            episode: id,
            glucose: Some(last.mg_dl),
            slope: None,
            predicted: None,
            predicted_at_ms: None,
            model_score: None,
            reason: format!("no CGM reading for {} min (last {:.0} mg/dL)", (now - last.at_ms) / MIN, last.mg_dl),
        }]
    }
}

/// The snake_case name of an alert kind (as in the JSON alerts and subjects).
pub fn kind_name(kind: AlertKind) -> &'static str {
    match kind {
        AlertKind::UrgentLow => "urgent_low",
        AlertKind::Low => "low",
        AlertKind::High => "high",
        AlertKind::VeryHigh => "very_high",
        AlertKind::RapidFall => "rapid_fall",
        AlertKind::RapidRise => "rapid_rise",
        AlertKind::PredictedLow => "predicted_low",
        AlertKind::Anomaly => "anomaly",
        AlertKind::SignalLoss => "signal_loss",
        AlertKind::PredictedHigh => "predicted_high",
    }
}

/// Runs a detector over a whole trace (readings in time order), checking for
/// signal loss every 5 minutes between readings. The offline evaluation and
/// the tests use this; the service feeds readings as they come.
///
/// Only the one 5-minute check that can raise signal loss is made (the first
/// at or after [`PatientDetector::signal_loss_due`]): the others raise
/// nothing, and a gap of years (a mistyped date in an imported CSV, found by
/// fuzzing) must not cost millions of them.
pub fn run_trace(cfg: &DetectorConfig, readings: &[Reading]) -> Vec<Alert> {
    run_trace_with(cfg, readings, &[])
}

/// [`run_trace`] with the patient's recorded treatments (in time order),
/// each fed to the detector before the first reading at or after its time.
pub fn run_trace_with(cfg: &DetectorConfig, readings: &[Reading], treatments: &[treatments::Treatment]) -> Vec<Alert> {
    const STEP: i64 = 5 * MIN;
    let mut d = PatientDetector::new(cfg.clone());
    let mut out = Vec::new();
    let mut last: Option<i64> = None;
    let mut pending = treatments.iter().peekable();
    for r in readings {
        while let Some(t) = pending.next_if(|t| t.at_ms() <= r.at_ms) {
            d.treat(*t);
        }
        if let (Some(l), Some(due)) = (last, d.signal_loss_due()) {
            let steps = due.saturating_sub(l).max(STEP).saturating_add(STEP - 1) / STEP;
            let t = l.saturating_add(steps.saturating_mul(STEP));
            if t < r.at_ms {
                out.extend(d.tick(t));
            }
        }
        out.extend(d.push(*r));
        last = Some(r.at_ms);
    }
    out
}
