//! The Ambulatory Glucose Profile (AGP) report's figures, computed from CGM
//! readings as the international consensus describes them (Danne et al. 2017;
//! Battelino et al. 2019, 2023):
//!
//! * **time in ranges**, the share of readings in each band: very low
//!   `< 54`, low `54 ≤ g < 70`, in range `70 ≤ g ≤ 180`, high `180 < g ≤ 250`,
//!   very high `> 250` mg/dL;
//! * **mean glucose**, **GMI** (glucose management indicator, % =
//!   3.31 + 0.02392 × mean mg/dL; Bergenstal et al. 2018) and the
//!   **coefficient of variation** (sample standard deviation / mean × 100);
//! * **CGM active time**: the share of the period's 5-minute slots that hold
//!   at least one reading;
//! * the **modal day**: the 5th, 25th, 50th, 75th and 95th percentiles of all
//!   readings by time of day, in 15-minute bins (percentiles by linear
//!   interpolation between closest ranks, "type 7"); and
//! * **daily profiles**: each day's readings.
//!
//! Pure and deterministic: times are Unix milliseconds and days and times of
//! day are taken after adding `utc_offset_minutes`, so a clinician sees the
//! patient's own clock.

use serde::Serialize;

/// One CGM reading.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Reading {
    /// When (Unix ms).
    pub at_ms: i64,
    /// Glucose, mg/dL.
    pub mg_dl: f64,
}

/// The consensus glucose bands, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Band {
    /// `< 54` mg/dL (level 2 hypoglycaemia).
    VeryLow,
    /// `54 ≤ g < 70` (level 1).
    Low,
    /// `70 ≤ g ≤ 180` (target range).
    InRange,
    /// `180 < g ≤ 250` (level 1 hyperglycaemia).
    High,
    /// `> 250` (level 2).
    VeryHigh,
}

impl Band {
    /// Every band, lowest first.
    pub const ALL: [Band; 5] = [Band::VeryLow, Band::Low, Band::InRange, Band::High, Band::VeryHigh];

    /// The band a reading falls in.
    pub fn of(mg_dl: f64) -> Band {
        if mg_dl < 54.0 {
            Band::VeryLow
        } else if mg_dl < 70.0 {
            Band::Low
        } else if mg_dl <= 180.0 {
            Band::InRange
        } else if mg_dl <= 250.0 {
            Band::High
        } else {
            Band::VeryHigh
        }
    }

    /// As printed on the report, e.g. "54–69 mg/dL".
    pub fn label(self) -> &'static str {
        match self {
            Band::VeryLow => "Very low, below 54 mg/dL",
            Band::Low => "Low, 54–69 mg/dL",
            Band::InRange => "Target range, 70–180 mg/dL",
            Band::High => "High, 181–250 mg/dL",
            Band::VeryHigh => "Very high, above 250 mg/dL",
        }
    }

    /// The consensus goal for most adults with type 1 or type 2 diabetes
    /// (Battelino et al. 2019): `(at least?, percent)`.
    pub fn goal(self) -> (bool, f64) {
        match self {
            Band::VeryLow => (false, 1.0),
            Band::Low => (false, 4.0),
            Band::InRange => (true, 70.0),
            Band::High => (false, 25.0),
            Band::VeryHigh => (false, 5.0),
        }
    }
}

/// Length of one sensor slot, the consensus' 5 minutes.
pub const SLOT_MS: i64 = 5 * 60_000;
/// Width of one modal-day bin.
pub const BIN_MINUTES: i64 = 15;
/// The percentiles of the modal day.
pub const PERCENTILES: [f64; 5] = [5.0, 25.0, 50.0, 75.0, 95.0];
const DAY_MS: i64 = 86_400_000;

/// Why a report cannot be computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AgpError {
    /// The period ends before it starts.
    #[error("the period must end after it starts")]
    EmptyPeriod,
    /// No reading falls in the period.
    #[error("no CGM readings in the period")]
    NoReadings,
    /// A reading is not a finite positive number.
    #[error("reading at {at_ms} ms is not a glucose value ({mg_dl})")]
    BadReading {
        /// When.
        at_ms: i64,
        /// What it held.
        mg_dl: f64,
    },
}

/// The period a report covers: `[from_ms, to_ms)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Period {
    /// Start (Unix ms, inclusive).
    pub from_ms: i64,
    /// End (Unix ms, exclusive).
    pub to_ms: i64,
    /// The patient's offset from UTC, minutes (days and times of day are local).
    pub utc_offset_minutes: i32,
}

impl Period {
    /// Whole local days.
    pub fn days(&self) -> f64 {
        (self.to_ms - self.from_ms) as f64 / DAY_MS as f64
    }

    fn local(&self, at_ms: i64) -> i64 {
        at_ms + self.utc_offset_minutes as i64 * 60_000
    }
}

/// One band's share.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BandShare {
    /// The band.
    pub band: Band,
    /// Readings in it.
    pub readings: usize,
    /// Percent of all readings.
    pub percent: f64,
}

/// One modal-day bin: the percentiles of the readings whose local time of
/// day falls in `[start_minute, start_minute + BIN_MINUTES)`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModalBin {
    /// Minute of the day the bin starts at.
    pub start_minute: u32,
    /// Readings in the bin.
    pub readings: usize,
    /// The 5/25/50/75/95th percentiles; `None` when the bin is empty.
    pub percentiles: Option<[f64; 5]>,
}

/// One local day's readings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DailyProfile {
    /// Local date, `YYYY-MM-DD`.
    pub date: String,
    /// Local midnight as Unix ms (UTC instant).
    pub start_ms: i64,
    /// The readings, oldest first.
    pub readings: Vec<Reading>,
}

/// Every figure of an AGP report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgpReport {
    /// The period.
    pub period: Period,
    /// Readings used (in the period, after dropping exact duplicates).
    pub readings: usize,
    /// Time in each band, lowest first.
    pub bands: Vec<BandShare>,
    /// Mean glucose, mg/dL.
    pub mean_mg_dl: f64,
    /// Sample standard deviation, mg/dL.
    pub sd_mg_dl: f64,
    /// Glucose management indicator, %.
    pub gmi_percent: f64,
    /// Coefficient of variation, %.
    pub cv_percent: f64,
    /// 5-minute slots in the period.
    pub slots: usize,
    /// Slots with at least one reading.
    pub active_slots: usize,
    /// CGM active time, %.
    pub active_percent: f64,
    /// The modal day, 96 bins from local midnight.
    pub modal_day: Vec<ModalBin>,
    /// Each local day touched by the period.
    pub days: Vec<DailyProfile>,
}

impl AgpReport {
    /// The share of `band`.
    pub fn band(&self, band: Band) -> BandShare {
        *self.bands.iter().find(|b| b.band == band).expect("every band is present")
    }
}

/// The `p`th percentile (0–100) of sorted, non-empty `xs`, by linear
/// interpolation between closest ranks (Hyndman and Fan's type 7, the
/// default of R, NumPy and Python's `statistics.quantiles(method="inclusive")`).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    assert!(!sorted.is_empty(), "percentile of nothing");
    let h = (sorted.len() - 1) as f64 * p / 100.0;
    let lo = h.floor() as usize;
    let hi = h.ceil() as usize;
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

/// GMI (%) for a mean glucose in mg/dL (Bergenstal et al. 2018).
pub fn gmi(mean_mg_dl: f64) -> f64 {
    3.31 + 0.02392 * mean_mg_dl
}

/// Computes the report over `period` from `readings` (any order; those
/// outside the period are ignored, exact duplicates — same time and value,
/// as a re-upload gives — counted once).
pub fn compute(readings: &[Reading], period: Period) -> Result<AgpReport, AgpError> {
    if period.to_ms <= period.from_ms {
        return Err(AgpError::EmptyPeriod);
    }
    if let Some(r) = readings.iter().find(|r| !r.mg_dl.is_finite() || r.mg_dl <= 0.0) {
        return Err(AgpError::BadReading { at_ms: r.at_ms, mg_dl: r.mg_dl });
    }
    let mut rs: Vec<Reading> =
        readings.iter().copied().filter(|r| r.at_ms >= period.from_ms && r.at_ms < period.to_ms).collect();
    rs.sort_by(|a, b| a.at_ms.cmp(&b.at_ms).then(a.mg_dl.total_cmp(&b.mg_dl)));
    rs.dedup();
    if rs.is_empty() {
        return Err(AgpError::NoReadings);
    }
    let n = rs.len();
    let bands = Band::ALL
        .iter()
        .map(|&band| {
            let k = rs.iter().filter(|r| Band::of(r.mg_dl) == band).count();
            BandShare { band, readings: k, percent: 100.0 * k as f64 / n as f64 }
        })
        .collect();
    let mean = rs.iter().map(|r| r.mg_dl).sum::<f64>() / n as f64;
    let sd =
        if n > 1 { (rs.iter().map(|r| (r.mg_dl - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt() } else { 0.0 };
    let slots = ((period.to_ms - period.from_ms + SLOT_MS - 1) / SLOT_MS) as usize;
    let mut filled: Vec<i64> = rs.iter().map(|r| (r.at_ms - period.from_ms) / SLOT_MS).collect();
    filled.dedup();
    let active_slots = filled.len();

    let bins_per_day = (24 * 60 / BIN_MINUTES) as usize;
    let mut by_bin: Vec<Vec<f64>> = vec![Vec::new(); bins_per_day];
    for r in &rs {
        let minute = period.local(r.at_ms).rem_euclid(DAY_MS) / 60_000;
        by_bin[(minute / BIN_MINUTES) as usize].push(r.mg_dl);
    }
    let modal_day = by_bin
        .into_iter()
        .enumerate()
        .map(|(i, mut xs)| {
            xs.sort_by(f64::total_cmp);
            ModalBin {
                start_minute: (i as i64 * BIN_MINUTES) as u32,
                readings: xs.len(),
                percentiles: (!xs.is_empty()).then(|| PERCENTILES.map(|p| percentile(&xs, p))),
            }
        })
        .collect();

    let mut days: Vec<DailyProfile> = Vec::new();
    for r in &rs {
        let local_day = period.local(r.at_ms).div_euclid(DAY_MS);
        let start_ms = local_day * DAY_MS - period.utc_offset_minutes as i64 * 60_000;
        match days.last_mut() {
            Some(d) if d.start_ms == start_ms => d.readings.push(*r),
            _ => days.push(DailyProfile { date: civil_date(local_day), start_ms, readings: vec![*r] }),
        }
    }

    Ok(AgpReport {
        period,
        readings: n,
        bands,
        mean_mg_dl: mean,
        sd_mg_dl: sd,
        gmi_percent: gmi(mean),
        cv_percent: if mean > 0.0 { 100.0 * sd / mean } else { 0.0 },
        slots,
        active_slots,
        active_percent: 100.0 * active_slots as f64 / slots as f64,
        modal_day,
        days,
    })
}

/// `YYYY-MM-DD` of the day `days` after 1970-01-01 (Howard Hinnant's
/// civil-from-days).
pub fn civil_date(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const T0: i64 = 1_772_409_600_000; // 2026-03-02T00:00:00Z

    fn period(days: i64) -> Period {
        Period { from_ms: T0, to_ms: T0 + days * DAY_MS, utc_offset_minutes: 0 }
    }

    #[test]
    fn bands_follow_the_consensus_boundaries() {
        let cases = [
            (53.9, Band::VeryLow),
            (54.0, Band::Low),
            (69.9, Band::Low),
            (70.0, Band::InRange),
            (180.0, Band::InRange),
            (180.1, Band::High),
            (250.0, Band::High),
            (250.1, Band::VeryHigh),
        ];
        for (g, b) in cases {
            assert_eq!(Band::of(g), b, "{g}");
        }
    }

    #[test]
    fn percentiles_interpolate_between_closest_ranks() {
        let xs = [10.0, 20.0, 30.0, 40.0];
        assert_eq!(percentile(&xs, 0.0), 10.0);
        assert_eq!(percentile(&xs, 100.0), 40.0);
        assert_eq!(percentile(&xs, 50.0), 25.0);
        assert!((percentile(&xs, 25.0) - 17.5).abs() < 1e-12);
        assert_eq!(percentile(&[7.0], 95.0), 7.0);
    }

    #[test]
    fn a_hand_worked_day_gives_the_expected_figures() {
        // Ten readings five minutes apart: two very low, one low, five in range, one high, one very high.
        let values = [50.0, 52.0, 60.0, 100.0, 110.0, 120.0, 130.0, 140.0, 200.0, 300.0];
        let rs: Vec<Reading> =
            values.iter().enumerate().map(|(i, &g)| Reading { at_ms: T0 + i as i64 * SLOT_MS, mg_dl: g }).collect();
        let r = compute(&rs, period(1)).unwrap();
        assert_eq!(r.readings, 10);
        let pct: Vec<f64> = r.bands.iter().map(|b| b.percent).collect();
        assert_eq!(pct, vec![20.0, 10.0, 50.0, 10.0, 10.0]);
        assert!((r.mean_mg_dl - 126.2).abs() < 1e-9);
        // sample SD of the ten values
        let sd = (values.iter().map(|v| (v - 126.2f64).powi(2)).sum::<f64>() / 9.0).sqrt();
        assert!((r.sd_mg_dl - sd).abs() < 1e-9);
        assert!((r.gmi_percent - (3.31 + 0.02392 * 126.2)).abs() < 1e-9);
        assert!((r.cv_percent - 100.0 * sd / 126.2).abs() < 1e-9);
        assert_eq!(r.slots, 288);
        assert_eq!(r.active_slots, 10);
        // The first 15-minute bin holds the first three readings.
        assert_eq!(r.modal_day[0].readings, 3);
        assert_eq!(r.modal_day[0].percentiles.unwrap()[2], 52.0);
        assert_eq!(r.modal_day.len(), 96);
        assert_eq!(r.days.len(), 1);
        assert_eq!(r.days[0].date, "2026-03-02");
    }

    #[test]
    fn readings_outside_the_period_and_duplicates_are_not_counted() {
        let rs = vec![
            Reading { at_ms: T0 - 1, mg_dl: 40.0 },
            Reading { at_ms: T0, mg_dl: 100.0 },
            Reading { at_ms: T0, mg_dl: 100.0 },
            Reading { at_ms: T0 + DAY_MS, mg_dl: 300.0 },
        ];
        let r = compute(&rs, period(1)).unwrap();
        assert_eq!(r.readings, 1);
        assert_eq!(r.band(Band::InRange).percent, 100.0);
    }

    #[test]
    fn bad_input_is_refused_with_its_reason() {
        assert_eq!(compute(&[], period(1)), Err(AgpError::NoReadings));
        assert_eq!(compute(&[], Period { from_ms: 5, to_ms: 5, utc_offset_minutes: 0 }), Err(AgpError::EmptyPeriod));
        let bad = [Reading { at_ms: T0, mg_dl: f64::NAN }];
        assert!(matches!(compute(&bad, period(1)), Err(AgpError::BadReading { .. })));
    }

    #[test]
    fn local_time_moves_readings_between_bins_and_days() {
        // 23:30 UTC is 00:30 the next day at UTC+1.
        let rs = [Reading { at_ms: T0 + DAY_MS - 30 * 60_000, mg_dl: 100.0 }];
        let p = Period { from_ms: T0 - 3_600_000, to_ms: T0 + DAY_MS, utc_offset_minutes: 60 };
        let r = compute(&rs, p).unwrap();
        assert_eq!(r.days[0].date, "2026-03-03");
        assert_eq!(r.days[0].start_ms, T0 + DAY_MS - 3_600_000);
        assert_eq!(r.modal_day[2].readings, 1);
    }

    #[test]
    fn civil_dates_are_right_around_leap_days() {
        assert_eq!(civil_date(0), "1970-01-01");
        assert_eq!(civil_date(19_782), "2024-02-29");
        assert_eq!(civil_date(-1), "1969-12-31");
    }

    proptest! {
        #[test]
        fn shares_sum_to_one_hundred_and_percentiles_are_ordered(
            values in proptest::collection::vec(39.0f64..401.0, 1..600),
        ) {
            let rs: Vec<Reading> = values.iter().enumerate()
                .map(|(i, &g)| Reading { at_ms: T0 + i as i64 * SLOT_MS, mg_dl: g }).collect();
            let r = compute(&rs, period(3)).unwrap();
            let total: f64 = r.bands.iter().map(|b| b.percent).sum();
            prop_assert!((total - 100.0).abs() < 1e-9);
            prop_assert_eq!(r.bands.iter().map(|b| b.readings).sum::<usize>(), r.readings);
            for bin in r.modal_day.iter().filter_map(|b| b.percentiles) {
                prop_assert!(bin.windows(2).all(|w| w[0] <= w[1]));
            }
            prop_assert!(r.active_percent <= 100.0);
            prop_assert_eq!(r.modal_day.iter().map(|b| b.readings).sum::<usize>(), r.readings);
        }
    }
}
