//! The severe-low guarantee: a level-2 low is never announced later than a
//! plain "first reading below 54" rule would announce it. An earlier low or
//! predicted-low alert of the same episode never silences the urgent low,
//! the compression-low hold never delays it once the fall goes on the way a
//! real low does, and a reading of 39 (the sensor's "LOW") is an urgent low.

mod common;

use common::{T0, count, kinds, readings, trace};
use glucochain_detect::{Alert, COMPRESSION_HOLD_MIN, DetectorConfig, MIN, Reading, run_trace};
use glucochain_types::tx::AlertKind;

fn detect(r: &[Reading]) -> Vec<Alert> {
    run_trace(&DetectorConfig::default(), r)
}

/// When the plain rule would alarm: the first reading below 54.
fn first_below_54(r: &[Reading]) -> i64 {
    r.iter().find(|x| x.mg_dl < 54.0).expect("the trace goes below 54").at_ms
}

fn urgent_at(a: &[Alert]) -> Option<i64> {
    a.iter().find(|x| x.kind == AlertKind::UrgentLow).map(|x| x.at_ms)
}

#[test]
fn issue_20_a_consistent_fall_into_a_severe_low_after_an_earlier_low_alert_is_urgent_at_the_first_reading_below_54() {
    // Down into the 60s (low and predicted low fire), a pause there, then on
    // down into a severe low, at slow to very fast rates.
    for rate in [0.5, 1.0, 2.0, 3.0, 4.5, 6.0] {
        for pause in [0, 20, 45] {
            let to_62 = ((120.0 - 62.0) / 1.5) as i64;
            let resume = 30 + to_62 + pause;
            let down = ((62.0 - 39.0) / rate) as i64;
            let r = trace(&[
                (0, 120.0),
                (30, 120.0),
                (30 + to_62, 62.0),
                (resume, 62.0),
                (resume + down, 39.0),
                (resume + down + 30, 39.0),
            ]);
            let a = detect(&r);
            let case = format!("rate {rate}, pause {pause}: {:?}", kinds(&a));
            let first_low = a.iter().find(|x| matches!(x.kind, AlertKind::Low | AlertKind::PredictedLow)).expect(&case);
            assert!(first_low.at_ms < first_below_54(&r), "an earlier low alert: {case}");
            assert_eq!(urgent_at(&a), Some(first_below_54(&r)), "{case}");
            assert_eq!(count(&a, AlertKind::UrgentLow), 1, "{case}");
        }
    }
}

#[test]
fn issue_20_a_compression_like_drop_that_keeps_falling_is_urgent_at_the_first_reading_below_54() {
    // A step down from a steady level, as pressure on the sensor makes one,
    // after which the value goes on falling as a real low does.
    for tail in [
        vec![76.0, 71.0, 66.0, 61.0, 56.0, 51.0, 47.0],
        vec![62.0, 54.0, 46.0, 40.0],
        vec![81.0, 78.0, 60.0, 52.0, 44.0],
    ] {
        let mut v = vec![100.0; 12];
        v.push(80.0);
        v.extend(tail.iter().copied());
        v.extend([tail[tail.len() - 1]; 4]);
        let r = readings(&v);
        let a = detect(&r);
        assert_eq!(urgent_at(&a), Some(first_below_54(&r)), "{tail:?}: {:?}", kinds(&a));
    }
}

#[test]
fn issue_20_the_compression_hold_never_delays_an_urgent_low() {
    // A step from a steady 110 to a floor in the 40s, staying there or
    // bouncing back within ten minutes: either way urgent at the first
    // reading below 54 (a real fall can look like pressure on the sensor).
    for floor in [vec![47.0, 46.0, 46.0, 47.0, 46.0, 46.0], vec![47.0, 46.0, 88.0, 106.0, 110.0]] {
        let mut v = vec![110.0; 12];
        v.push(80.0);
        v.extend(floor.iter().copied());
        let r = readings(&v);
        let a = detect(&r);
        assert_eq!(urgent_at(&a), Some(first_below_54(&r)), "{floor:?}: {:?}", kinds(&a));
    }
    // What the hold still holds: lesser alerts, for at most COMPRESSION_HOLD_MIN.
    let mut v = vec![110.0; 12];
    v.extend([80.0, 61.0, 60.0, 60.0, 61.0, 60.0, 60.0, 60.0]);
    let r = readings(&v);
    let low = detect(&r).into_iter().find(|a| a.kind == AlertKind::Low).expect("a floor that stays is a low");
    assert!(low.at_ms <= r[12].at_ms + COMPRESSION_HOLD_MIN * MIN);
}

#[test]
fn issue_20_a_step_that_keeps_falling_releases_the_hold_for_the_low_too() {
    // Steady 110, a step to 85, then on down at a body's pace: a real low.
    // The low comes at the first reading below 70, not when the hold runs out.
    let mut v = vec![110.0; 12];
    v.extend([85.0, 77.0, 69.0, 63.0, 58.0, 58.0, 58.0]);
    let r = readings(&v);
    let low = detect(&r).into_iter().find(|a| a.kind == AlertKind::Low).expect("a low");
    assert_eq!(low.at_ms, r[14].at_ms, "at the first reading below 70");
}

#[test]
fn issue_20_runs_of_39_are_an_urgent_low() {
    // Falling into the sensor's floor.
    let r = readings(&[90.0, 82.0, 75.0, 68.0, 61.0, 55.0, 39.0, 39.0, 39.0, 39.0, 39.0, 39.0]);
    let a = detect(&r);
    assert_eq!(urgent_at(&a), Some(r[6].at_ms), "{:?}", kinds(&a));
    let u = a.iter().find(|x| x.kind == AlertKind::UrgentLow).unwrap();
    assert!(u.reason.contains("LOW"), "{}", u.reason);
    // A sensor that starts reading LOW: no history needed.
    let r = readings(&[39.0, 39.0, 39.0]);
    assert_eq!(urgent_at(&detect(&r)), Some(T0));
    // LOW after a signal gap, the trend unknown.
    let mut r = readings(&[70.0, 68.0, 66.0]);
    r.extend(
        [39.0, 39.0].iter().enumerate().map(|(i, g)| Reading { at_ms: T0 + (60 + 5 * i as i64) * MIN, mg_dl: *g }),
    );
    let a = detect(&r);
    assert_eq!(urgent_at(&a), Some(T0 + 60 * MIN), "{:?}", kinds(&a));
    // A straight drop to LOW from a steady level: at once.
    let mut v = vec![105.0; 12];
    v.extend([39.0; 6]);
    let r = readings(&v);
    assert_eq!(urgent_at(&detect(&r)), Some(r[12].at_ms));
}

#[test]
fn issue_20_an_urgent_low_is_not_silenced_by_disabled_or_earlier_kinds_of_the_episode() {
    // Only urgent lows enabled: still at the first reading below 54.
    let cfg = DetectorConfig { enabled: [AlertKind::UrgentLow].into_iter().collect(), ..Default::default() };
    let r = trace(&[(0, 100.0), (40, 60.0), (60, 60.0), (80, 40.0)]);
    let a = run_trace(&cfg, &r);
    assert_eq!(kinds(&a), vec![AlertKind::UrgentLow]);
    assert_eq!(urgent_at(&a), Some(first_below_54(&r)));
}
