//! Each alert kind on constructed traces: it fires, it does not fire on
//! what only looks like it, and it fires once per episode.

mod common;

use common::{T0, count, kinds, run, trace};
use glucochain_detect::{Alert, DetectorConfig, MIN, PatientDetector, Reading, run_trace};
use glucochain_types::tx::AlertKind;

#[test]
fn urgent_low_fires_once_per_episode_and_again_after_recovery() {
    // Slow slide (no prediction, no rapid fall) to 50 and back, twice.
    let a = run(&[(0, 80.0), (60, 60.0), (90, 50.0), (150, 50.0), (180, 75.0), (240, 75.0), (270, 50.0), (300, 50.0)]);
    assert_eq!(count(&a, AlertKind::UrgentLow), 2, "{:?}", kinds(&a));
    let first = a.iter().find(|x| x.kind == AlertKind::UrgentLow).unwrap();
    assert!(first.glucose.unwrap() < 54.0);
    assert!(first.reason.contains("mg/dL"), "every alert says why: {}", first.reason);
}

#[test]
fn an_episode_is_resolved_once_glucose_has_been_back_long_enough() {
    let mut d = PatientDetector::new(DetectorConfig::default());
    let mut raised = Vec::new();
    let mut resolved = Vec::new();
    // Down to 50 for an hour, back to 75 at minute 180, then 85.
    for r in trace(&[(0, 80.0), (60, 60.0), (90, 50.0), (150, 50.0), (180, 75.0), (240, 85.0)]) {
        raised.extend(d.push(r));
        resolved.extend(d.take_resolved());
    }
    assert!(d.take_resolved().is_empty(), "taken");
    let episodes: std::collections::BTreeSet<u64> = raised.iter().map(|a| a.episode).collect();
    let ended: std::collections::BTreeSet<u64> = resolved.iter().map(|r| r.episode).collect();
    assert_eq!(ended, episodes, "every episode that alerted ends, once: {resolved:?}");
    assert_eq!(resolved.len(), episodes.len());
    // The low episode ends 15 minutes after glucose is back above 75, not before.
    let low = resolved.iter().find(|r| r.kinds.contains(&AlertKind::Low)).expect("the low episode ends");
    assert_eq!(low.at_ms, T0 + 195 * MIN);
    let urgent = resolved.iter().find(|r| r.kinds.contains(&AlertKind::UrgentLow)).expect("the urgent episode ends");
    assert!(urgent.at_ms >= T0 + 170 * MIN, "15 minutes above 58 first: {urgent:?}");
}

#[test]
fn low_needs_two_readings_and_a_single_noisy_dip_is_not_a_low() {
    let dip = run(&[(0, 80.0), (30, 80.0), (35, 68.0), (40, 80.0), (120, 80.0)]);
    assert_eq!(count(&dip, AlertKind::Low), 0, "{:?}", kinds(&dip));
    assert_eq!(count(&dip, AlertKind::UrgentLow), 0);
    let low = run(&[(0, 75.0), (60, 66.0), (120, 66.0)]);
    assert_eq!(count(&low, AlertKind::Low), 1, "{:?}", kinds(&low));
}

#[test]
fn predicted_low_comes_before_the_low_and_not_on_a_flat_trace() {
    // Falling 1.5 mg/dL/min from 115: predicted low while still above 70.
    let a = run(&[(0, 115.0), (20, 115.0), (50, 70.0), (60, 60.0), (120, 60.0)]);
    let p = a.iter().find(|x| x.kind == AlertKind::PredictedLow).expect("predicted_low fires");
    assert!(p.glucose.unwrap() >= 70.0, "before the low: {p:?}");
    assert!(p.predicted.unwrap() < 70.0);
    assert_eq!(count(&a, AlertKind::PredictedLow), 1);
    // The low itself is still said when it comes (once): it is news, and the
    // naive threshold's alert is never missing from ours.
    let low = a.iter().find(|x| x.kind == AlertKind::Low).expect("the low when it comes");
    assert!(low.at_ms > p.at_ms && low.glucose.unwrap() < 70.0);
    assert_eq!(count(&a, AlertKind::Low), 1);
    let flat = run(&[(0, 100.0), (240, 100.0)]);
    assert!(flat.is_empty(), "{:?}", kinds(&flat));
}

#[test]
fn rapid_fall_and_rise_need_a_sustained_fast_change() {
    let fall = run(&[(0, 250.0), (20, 250.0), (50, 160.0), (120, 160.0)]);
    assert_eq!(count(&fall, AlertKind::RapidFall), 1, "{:?}", kinds(&fall));
    let slow = run(&[(0, 250.0), (90, 160.0), (150, 160.0)]);
    assert_eq!(count(&slow, AlertKind::RapidFall), 0, "-1 mg/dL/min is not rapid");
    let rise = run(&[(0, 100.0), (20, 100.0), (50, 190.0), (60, 190.0), (70, 175.0)]);
    assert_eq!(count(&rise, AlertKind::RapidRise), 1, "{:?}", kinds(&rise));
}

#[test]
fn very_high_and_sustained_high() {
    // A climb of 1.5 mg/dL/min (not a rapid rise) towards 250: predicted
    // before it gets there, and the very high itself is not said again
    // within half an hour of its prediction.
    let a = run(&[(0, 200.0), (40, 260.0), (120, 260.0)]);
    let p = a.iter().find(|x| x.kind == AlertKind::PredictedHigh).expect("predicted_high fires");
    assert!(p.glucose.unwrap() <= 250.0 && p.predicted.unwrap() > 250.0, "{p:?}");
    assert_eq!(count(&a, AlertKind::PredictedHigh), 1, "{:?}", kinds(&a));
    assert_eq!(count(&a, AlertKind::VeryHigh), 0, "{:?}", kinds(&a));
    assert_eq!(count(&a, AlertKind::RapidRise), 0, "{:?}", kinds(&a));
    // A step above 250 with no climb before it: very high at once.
    let step = run(&[(0, 240.0), (30, 240.0), (35, 262.0), (90, 262.0)]);
    assert_eq!(kinds(&step), vec![AlertKind::VeryHigh]);
    // Above 180 for 30 minutes: nothing; for over an hour: one high.
    let short = run(&[(0, 170.0), (10, 190.0), (40, 190.0), (50, 170.0), (120, 170.0)]);
    assert_eq!(count(&short, AlertKind::High), 0);
    let long = run(&[(0, 170.0), (30, 200.0), (100, 200.0), (200, 200.0)]);
    assert_eq!(count(&long, AlertKind::High), 1, "{:?}", kinds(&long));
}

#[test]
fn signal_loss_fires_after_the_care_plan_gap_once() {
    let mut r = trace(&[(0, 120.0), (30, 120.0)]);
    let later = trace(&[(75, 120.0), (90, 120.0)]);
    r.extend(later.clone());
    let a = run_trace(&DetectorConfig::default(), &r);
    assert_eq!(count(&a, AlertKind::SignalLoss), 1, "{:?}", kinds(&a));
    let mut short = trace(&[(0, 120.0), (30, 120.0)]);
    short.extend(trace(&[(50, 120.0), (60, 120.0)]));
    assert_eq!(count(&run_trace(&DetectorConfig::default(), &short), AlertKind::SignalLoss), 0);
}

/// What `run_trace` stands for: a check every 5 minutes of every gap.
fn run_ticking_every_5_minutes(cfg: &DetectorConfig, readings: &[Reading]) -> Vec<Alert> {
    let mut d = PatientDetector::new(cfg.clone());
    let mut out = Vec::new();
    let mut last: Option<i64> = None;
    for r in readings {
        if let Some(l) = last {
            let mut t = l + 5 * MIN;
            while t < r.at_ms {
                out.extend(d.tick(t));
                t += 5 * MIN;
            }
        }
        out.extend(d.push(*r));
        last = Some(r.at_ms);
    }
    out
}

#[test]
fn signal_loss_is_raised_where_a_check_every_5_minutes_raises_it_whatever_the_gaps() {
    // Gaps just under, at and over the limit, off the 5-minute grid, long,
    // and a reading out of order.
    let mut r = trace(&[(0, 120.0), (30, 118.0)]);
    for (gap_min, g) in [(44, 110.0), (45, 100.0), (46, 90.0), (61, 85.0), (17, 80.0), (600, 150.0), (3, 151.0)] {
        let at = r.last().unwrap().at_ms + gap_min * MIN;
        r.push(Reading { at_ms: at, mg_dl: g });
    }
    r.push(Reading { at_ms: r[2].at_ms, mg_dl: 60.0 });
    r.push(Reading { at_ms: r.last().unwrap().at_ms + 24 * 60 * MIN, mg_dl: 100.0 });
    let mut cfg = DetectorConfig::default();
    for limit in [20, 45, 47, 120] {
        cfg.thresholds.signal_loss_minutes = limit;
        let want = run_ticking_every_5_minutes(&cfg, &r);
        let got = run_trace(&cfg, &r);
        assert!(count(&want, AlertKind::SignalLoss) >= 2, "limit {limit}: {:?}", kinds(&want));
        let at = |a: &[Alert]| a.iter().map(|x| (x.kind, x.at_ms, x.reason.clone())).collect::<Vec<_>>();
        assert_eq!(at(&got), at(&want), "limit {limit}");
    }
}

#[test]
fn a_gap_of_thousands_of_years_raises_one_signal_loss() {
    // Found by fuzzing the CSV import: a year mistyped as 6202 made
    // run_trace check every 5 minutes of 4,000 years.
    let mut r = trace(&[(0, 120.0), (30, 120.0)]);
    r.push(Reading { at_ms: 6202_i64 * 365 * 24 * 60 * MIN, mg_dl: 90.0 });
    let a = run_trace(&DetectorConfig::default(), &r);
    assert_eq!(count(&a, AlertKind::SignalLoss), 1, "{:?}", kinds(&a));
}

#[test]
fn a_compression_low_does_not_alarm_but_a_real_low_after_it_does() {
    // Steady 110, a plunge to a floor of 60 and a quick recovery: pressure on the sensor.
    let compression =
        run(&[(0, 110.0), (60, 110.0), (65, 80.0), (70, 61.0), (75, 60.0), (80, 85.0), (85, 105.0), (150, 110.0)]);
    assert!(compression.is_empty(), "no alarm for a compression low: {:?}", kinds(&compression));
    // The same plunge that stays down is a real low: it alarms, late but surely.
    let real = run(&[(0, 110.0), (60, 110.0), (65, 80.0), (70, 61.0), (75, 60.0), (150, 60.0)]);
    let low = real.iter().find(|a| a.kind == AlertKind::Low).expect("a low that stays");
    assert!(low.at_ms <= T0 + (65 + glucochain_detect::COMPRESSION_HOLD_MIN) * MIN, "{:?}", kinds(&real));
    assert_eq!(count(&real, AlertKind::Low), 1, "{:?}", kinds(&real));
}

#[test]
fn disabled_kinds_never_fire() {
    let mut cfg = DetectorConfig::default();
    cfg.enabled.remove(&AlertKind::UrgentLow);
    cfg.enabled.remove(&AlertKind::Low);
    let a = run_trace(&cfg, &trace(&[(0, 80.0), (60, 60.0), (90, 50.0), (150, 50.0)]));
    assert!(!a.iter().any(|x| matches!(x.kind, AlertKind::UrgentLow | AlertKind::Low)), "{:?}", kinds(&a));
}

#[test]
fn anomaly_flags_what_is_unusual_for_this_patient_once() {
    // Three days of a steady personal pattern (about 110 at night, 160 after lunch) ...
    let day0 = T0 - T0 % 86_400_000;
    let usual = |t: i64| {
        let h = ((t - day0) % 86_400_000) as f64 / 3_600_000.0;
        110.0 + 50.0 * (-(h - 13.0).powi(2) / 8.0).exp() + ((t / 300_000) % 5) as f64 - 2.0
    };
    let mut r: Vec<Reading> =
        (0..3 * 288).map(|i| day0 + i * 5 * MIN).map(|t| Reading { at_ms: t, mg_dl: usual(t) }).collect();
    let quiet = run_trace(&DetectorConfig::default(), &r);
    assert!(!quiet.iter().any(|a| a.kind == AlertKind::Anomaly), "{:?}", kinds(&quiet));
    // ... then a night slowly drifting to 175: inside every threshold, unusual for this patient.
    let night = day0 + 3 * 86_400_000;
    for i in 0..36 {
        let t = night + i * 5 * MIN;
        r.push(Reading { at_ms: t, mg_dl: 110.0 + (65.0 * i as f64 / 24.0).min(65.0) });
    }
    let a = run_trace(&DetectorConfig::default(), &r);
    let anomalies: Vec<&Alert> = a.iter().filter(|x| x.kind == AlertKind::Anomaly).collect();
    assert_eq!(anomalies.len(), 1, "{:?}", kinds(&a));
    assert!(anomalies[0].model_score.unwrap() >= 3.5);
    assert!(anomalies[0].reason.contains("unusual for this patient"));
}
