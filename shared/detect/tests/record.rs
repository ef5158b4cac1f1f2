//! The low prediction when the care plan gives the patient's insulin
//! factors and the record holds their insulin and carbohydrates
//! (`treatments.rs`), on constructed traces: what the record explains
//! changes the prediction both ways, and what it does not explain (a fast
//! fall into a severe low) is still announced from the trend.

mod common;

use common::{T0, count, trace};
use glucochain_detect::treatments::{InsulinProfile, Treatment};
use glucochain_detect::{Alert, DetectorConfig, MIN, run_trace, run_trace_with};
use glucochain_types::tx::AlertKind;

fn with_record(knots: &[(i64, f64)], treatments: &[Treatment]) -> Vec<Alert> {
    let cfg = DetectorConfig { insulin: Some(InsulinProfile::new(40.0, 10.0)), ..Default::default() };
    run_trace_with(&cfg, &trace(knots), treatments)
}

fn first(a: &[Alert], k: AlertKind) -> Option<i64> {
    a.iter().find(|x| x.kind == k).map(|x| (x.at_ms - T0) / MIN)
}

/// Too much insulin for a meal: glucose drifts down slowly for now (the
/// trend sees no low coming), but 4 U on board at 40 mg/dL/U will push it
/// far lower. With the record the low is announced while glucose is still
/// in range; with the factors but no treatment recorded, or from the CGM
/// alone, only later.
#[test]
fn insulin_on_board_announces_a_low_the_trend_does_not_see_yet() {
    let knots = [(0, 120.0), (60, 120.0), (100, 100.0), (130, 75.0), (150, 60.0)];
    let bolus = [Treatment::Insulin { at_ms: T0 + 40 * MIN, units: 4.0 }];
    let informed = with_record(&knots, &bolus);
    let at = first(&informed, AlertKind::PredictedLow).expect("predicted low with the record");
    for (what, other) in [
        ("nothing recorded", with_record(&knots, &[])),
        ("the CGM alone", run_trace(&DetectorConfig::default(), &trace(&knots))),
    ] {
        let later = first(&other, AlertKind::PredictedLow).unwrap_or(i64::MAX);
        assert!(at < later, "with the bolus at minute {at}, with {what} at {later}");
    }
    let p = informed.iter().find(|x| x.kind == AlertKind::PredictedLow).unwrap();
    assert!(p.reason.contains("U of insulin on board"), "{}", p.reason);
    assert!(p.predicted.unwrap() < 70.0);
}

/// The carbohydrates entered with a bolus cover its insulin: the same
/// drift with the same bolus is not a coming low once the meal is recorded.
#[test]
fn carbohydrates_on_board_cover_the_insulin_given_for_them() {
    let knots = [(0, 120.0), (60, 120.0), (100, 100.0), (130, 90.0), (160, 90.0)];
    let bolus = Treatment::Insulin { at_ms: T0 + 40 * MIN, units: 4.0 };
    let insulin_only = with_record(&knots, &[bolus]);
    assert_eq!(count(&insulin_only, AlertKind::PredictedLow), 1, "4 U uncovered: a coming low");
    let meal = Treatment::Carbs { at_ms: T0 + 40 * MIN, grams: 40.0 };
    let covered = with_record(&knots, &[bolus, meal]);
    assert_eq!(count(&covered, AlertKind::PredictedLow), 0, "{covered:?}");
}

/// A fast fall the record does not explain (exercise, say, with carbs
/// eaten before it): the trend's coming severe low still speaks, and the
/// urgent low comes at the first reading below 54.
#[test]
fn a_fast_fall_the_record_does_not_explain_is_still_announced() {
    let knots = [(0, 140.0), (60, 140.0), (100, 60.0), (130, 45.0)];
    let carbs = [Treatment::Carbs { at_ms: T0 + 50 * MIN, grams: 20.0 }];
    let a = with_record(&knots, &carbs);
    let predicted = first(&a, AlertKind::PredictedLow).expect("a coming low");
    let urgent = first(&a, AlertKind::UrgentLow).expect("urgent low");
    let below = trace(&knots).iter().find(|r| r.mg_dl < 54.0).map(|r| (r.at_ms - T0) / MIN).unwrap();
    assert!(predicted < below, "predicted at {predicted}, below 54 at {below}");
    assert_eq!(urgent, below);
}

/// Without the patient's factors the record changes nothing.
#[test]
fn without_factors_the_cgm_alone_decides() {
    let knots = [(0, 120.0), (60, 120.0), (100, 100.0), (130, 75.0), (150, 60.0)];
    let bolus = [Treatment::Insulin { at_ms: T0 + 40 * MIN, units: 4.0 }];
    let cfg = DetectorConfig::default();
    assert_eq!(run_trace_with(&cfg, &trace(&knots), &bolus), run_trace(&cfg, &trace(&knots)));
}
