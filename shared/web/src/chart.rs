//! Glucose charts as inline SVG. Each has a `<title>` and `<desc>` for
//! screen readers, and the pages that show them also give the figures as
//! text or a table. Colours follow the AGP report's conventions (target
//! range green, percentile bands blue), each at least 3:1 against white.

use glucochain_agp::{AgpReport, DailyProfile};
use maud::{Markup, html};

const TARGET_FILL: &str = "#dcefdc";
const TARGET_LINE: &str = "#1b5e20";
const LOW_LINE: &str = "#a3001b";
const TRACE: &str = "#0b3d6b";
const OUTER_BAND: &str = "#b9d3ee";
const INNER_BAND: &str = "#5b8fc7";
const MEDIAN: &str = "#0b2e59";
const AXIS: &str = "#4a4a4a";

/// The glucose thresholds a chart draws, mg/dL.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// Urgent low.
    pub urgent_low: f64,
    /// Low (bottom of the target range).
    pub low: f64,
    /// High (top of the target range).
    pub high: f64,
}

impl Default for Thresholds {
    /// The consensus targets: 54, 70, 180 mg/dL.
    fn default() -> Self {
        Thresholds { urgent_low: 54.0, low: 70.0, high: 180.0 }
    }
}

struct Frame {
    w: f64,
    h: f64,
    left: f64,
    right: f64,
    top: f64,
    bottom: f64,
    t0: f64,
    t1: f64,
    g0: f64,
    g1: f64,
}

impl Frame {
    fn x(&self, t: f64) -> f64 {
        self.left + (t - self.t0) / (self.t1 - self.t0) * (self.w - self.left - self.right)
    }
    fn y(&self, g: f64) -> f64 {
        let g = g.clamp(self.g0, self.g1);
        self.h - self.bottom - (g - self.g0) / (self.g1 - self.g0) * (self.h - self.top - self.bottom)
    }
    fn path(&self, points: impl Iterator<Item = (f64, f64)>) -> String {
        points.map(|(t, g)| format!("{:.1},{:.1}", self.x(t), self.y(g))).collect::<Vec<_>>().join(" ")
    }
}

/// The last hours of glucose: readings as a line, the target range shaded,
/// the urgent-low line, and the prediction as a dashed segment to a marked
/// point. `offset_minutes` sets the clock of the time axis.
pub fn trace(points: &[(i64, f64)], limits: Thresholds, prediction: Option<(i64, f64)>, offset_minutes: i32) -> Markup {
    let Some(&(first, _)) = points.first() else {
        return html! { p.muted { "No readings to chart." } };
    };
    let last = points[points.len() - 1];
    let end = prediction.map(|(at, _)| at.max(last.0)).unwrap_or(last.0).max(first + 60_000);
    let mut g1: f64 = 250.0;
    for (_, g) in points.iter().chain(prediction.iter().map(|(_, g)| g).map(|g| (0, *g)).collect::<Vec<_>>().iter()) {
        g1 = g1.max(*g + 20.0);
    }
    let f = Frame {
        w: 480.0,
        h: 240.0,
        left: 40.0,
        right: 12.0,
        top: 16.0,
        bottom: 28.0,
        t0: first as f64,
        t1: end as f64,
        g0: 30.0,
        g1: g1.min(400.0),
    };
    let hour = 3_600_000i64;
    let step = if end - first > 8 * hour { 2 * hour } else { hour };
    let ticks: Vec<i64> = {
        let local = |t: i64| t + offset_minutes as i64 * 60_000;
        let mut t = first - local(first).rem_euclid(step) + step;
        let mut v = Vec::new();
        while t <= end {
            v.push(t);
            t += step;
        }
        v
    };
    let desc = format!(
        "{} readings from {} to {}, last {:.0} mg/dL{}. Target range {:.0} to {:.0} mg/dL shaded, urgent low {:.0}.",
        points.len(),
        crate::clock(first, offset_minutes),
        crate::clock(last.0, offset_minutes),
        last.1,
        prediction
            .map(|(at, g)| format!(", predicted {g:.0} mg/dL at {}", crate::clock(at, offset_minutes)))
            .unwrap_or_default(),
        limits.low,
        limits.high,
        limits.urgent_low,
    );
    html! {
        svg xmlns="http://www.w3.org/2000/svg" width=(f.w) height=(f.h) viewBox=(format!("0 0 {} {}", f.w, f.h)) role="img" aria-labelledby="trace-title trace-desc" class="chart trace" {
            title #trace-title { "Glucose, last hours" }
            desc #trace-desc { (desc) }
            rect x=(f.left) y=(format!("{:.1}", f.y(limits.high))) width=(f.w - f.left - f.right) height=(format!("{:.1}", f.y(limits.low) - f.y(limits.high))) fill=(TARGET_FILL) {}
            @for (g, colour, dash) in [(limits.low, TARGET_LINE, "0"), (limits.high, TARGET_LINE, "0"), (limits.urgent_low, LOW_LINE, "5 4")] {
                line x1=(f.left) x2=(f.w - f.right) y1=(format!("{:.1}", f.y(g))) y2=(format!("{:.1}", f.y(g))) stroke=(colour) stroke-width="1" stroke-dasharray=(dash) {}
                text x=(f.left - 4.0) y=(format!("{:.1}", f.y(g) + 4.0)) text-anchor="end" font-size="12" fill=(AXIS) { (format!("{g:.0}")) }
            }
            @for t in &ticks {
                line x1=(format!("{:.1}", f.x(*t as f64))) x2=(format!("{:.1}", f.x(*t as f64))) y1=(f.top) y2=(f.h - f.bottom) stroke="#e0e0e0" {}
                text x=(format!("{:.1}", f.x(*t as f64))) y=(f.h - 10.0) text-anchor="middle" font-size="12" fill=(AXIS) { (crate::clock(*t, offset_minutes)) }
            }
            polyline.readings fill="none" stroke=(TRACE) stroke-width="2.5" points=(f.path(points.iter().map(|(t, g)| (*t as f64, *g)))) {}
            circle cx=(format!("{:.1}", f.x(last.0 as f64))) cy=(format!("{:.1}", f.y(last.1))) r="4" fill=(TRACE) {}
            @if let Some((at, g)) = prediction {
                line.prediction x1=(format!("{:.1}", f.x(last.0 as f64))) y1=(format!("{:.1}", f.y(last.1))) x2=(format!("{:.1}", f.x(at as f64))) y2=(format!("{:.1}", f.y(g))) stroke=(LOW_LINE) stroke-width="2.5" stroke-dasharray="6 4" {}
                circle cx=(format!("{:.1}", f.x(at as f64))) cy=(format!("{:.1}", f.y(g))) r="4" fill="#fff" stroke=(LOW_LINE) stroke-width="2" {}
                text x=(format!("{:.1}", f.x(at as f64) - 6.0)) y=(format!("{:.1}", f.y(g) - 8.0)) text-anchor="end" font-size="12" fill=(LOW_LINE) { "predicted " (format!("{g:.0}")) }
            }
            text x=(f.left) y="10" font-size="11" fill=(AXIS) { "mg/dL" }
        }
    }
}

/// The AGP modal day: the 5–95th and 25–75th percentile bands and the
/// median by time of day, over the target range.
pub fn modal_day(report: &AgpReport) -> Markup {
    let f = Frame {
        w: 720.0,
        h: 300.0,
        left: 44.0,
        right: 16.0,
        top: 12.0,
        bottom: 30.0,
        t0: 0.0,
        t1: 1440.0,
        g0: 0.0,
        g1: 350.0,
    };
    let bins: Vec<(f64, [f64; 5])> = report
        .modal_day
        .iter()
        .filter_map(|b| b.percentiles.map(|p| (b.start_minute as f64 + glucochain_agp::BIN_MINUTES as f64 / 2.0, p)))
        .collect();
    let band = |lo: usize, hi: usize| -> String {
        let up = bins.iter().map(|(m, p)| (*m, p[hi]));
        let down = bins.iter().rev().map(|(m, p)| (*m, p[lo]));
        f.path(up.chain(down))
    };
    html! {
        svg xmlns="http://www.w3.org/2000/svg" width=(f.w) height=(f.h) viewBox=(format!("0 0 {} {}", f.w, f.h)) role="img" aria-labelledby="agp-title agp-desc" class="chart agp" {
            title #agp-title { "Ambulatory glucose profile" }
            desc #agp-desc { "Median (dark line), 25th to 75th percentile (darker band) and 5th to 95th percentile (lighter band) of glucose by time of day; target range 70 to 180 mg/dL between the green lines. The table below gives the values." }
            @for g in [54.0, 70.0, 180.0, 250.0, 350.0] {
                line x1=(f.left) x2=(f.w - f.right) y1=(format!("{:.1}", f.y(g))) y2=(format!("{:.1}", f.y(g)))
                    stroke=(if g == 70.0 || g == 180.0 { TARGET_LINE } else { "#d0d0d0" }) stroke-width=(if g == 70.0 || g == 180.0 { "1.5" } else { "1" }) {}
                text x=(f.left - 4.0) y=(format!("{:.1}", f.y(g) + 4.0)) text-anchor="end" font-size="12" fill=(AXIS) { (format!("{g:.0}")) }
            }
            @for h in (0..=24).step_by(3) {
                text x=(format!("{:.1}", f.x(h as f64 * 60.0))) y=(f.h - 10.0) text-anchor="middle" font-size="12" fill=(AXIS) { (format!("{h:02}:00")) }
            }
            @if bins.len() > 1 {
                polygon.p5-95 points=(band(0, 4)) fill=(OUTER_BAND) {}
                polygon.p25-75 points=(band(1, 3)) fill=(INNER_BAND) {}
                polyline.median points=(f.path(bins.iter().map(|(m, p)| (*m, p[2])))) fill="none" stroke=(MEDIAN) stroke-width="2.5" {}
            }
            text x=(f.left) y="10" font-size="11" fill=(AXIS) { "mg/dL" }
        }
    }
}

/// Colour of each band's segment (very low to very high).
pub const BAND_COLOURS: [&str; 5] = ["#8b0000", "#d7263d", "#2e7d32", "#b36b00", "#7a3e00"];

/// The time-in-ranges bar: one stacked segment per band, very high on top,
/// each labelled with its share.
pub fn ranges_bar(report: &AgpReport) -> Markup {
    let (w, h, bar) = (360.0, 260.0, 56.0);
    let mut y = h - 10.0;
    let mut segments = Vec::new();
    for (i, b) in report.bands.iter().enumerate() {
        let height = (h - 20.0) * b.percent / 100.0;
        y -= height;
        segments.push((i, b, y, height));
    }
    html! {
        svg xmlns="http://www.w3.org/2000/svg" width=(w) height=(h) viewBox=(format!("0 0 {w} {h}")) role="img" aria-labelledby="tir-title" class="chart tir" {
            title #tir-title { "Time in ranges: " (report.bands.iter().map(|b| format!("{} {:.0}%", b.band.label(), b.percent)).collect::<Vec<_>>().join("; ")) }
            @for (i, _, y, height) in &segments {
                rect x="10" y=(format!("{y:.1}")) width=(bar) height=(format!("{height:.1}")) fill=(BAND_COLOURS[*i]) stroke="#fff" stroke-width="1" {}
            }
            @for (k, (_, b, _, _)) in segments.iter().rev().enumerate() {
                text x=(bar + 24.0) y=(format!("{:.1}", 28.0 + k as f64 * 50.0)) font-size="14" fill="#111" {
                    tspan font-weight="700" { (format!("{:.0}%", b.percent)) } " " (b.band.label())
                }
            }
        }
    }
}

/// One day's readings, small, midnight to midnight, over the target range.
pub fn daily(day: &DailyProfile) -> Markup {
    let f = Frame {
        w: 160.0,
        h: 80.0,
        left: 2.0,
        right: 2.0,
        top: 2.0,
        bottom: 2.0,
        t0: day.start_ms as f64,
        t1: (day.start_ms + 86_400_000) as f64,
        g0: 40.0,
        g1: 400.0,
    };
    let low = day.readings.iter().filter(|r| r.mg_dl < 70.0).count();
    html! {
        svg xmlns="http://www.w3.org/2000/svg" viewBox=(format!("0 0 {} {}", f.w, f.h)) role="img" aria-label=(format!("{}: {} readings, {} below 70 mg/dL", day.date, day.readings.len(), low)) class="chart day" {
            rect x=(f.left) y=(format!("{:.1}", f.y(180.0))) width=(f.w - 4.0) height=(format!("{:.1}", f.y(70.0) - f.y(180.0))) fill=(TARGET_FILL) {}
            polyline points=(f.path(day.readings.iter().map(|r| (r.at_ms as f64, r.mg_dl)))) fill="none" stroke=(TRACE) stroke-width="1.2" {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use glucochain_agp::{Period, Reading, compute};

    #[test]
    fn the_trace_draws_readings_thresholds_and_the_prediction() {
        let pts = [(0, 120.0), (300_000, 100.0), (600_000, 80.0)];
        let s = trace(&pts, Thresholds::default(), Some((1_800_000, 55.0)), 0).into_string();
        assert!(s.contains("class=\"readings\""));
        assert!(s.contains("class=\"prediction\""));
        assert!(s.contains("predicted 55"));
        assert!(s.contains(">180<") && s.contains(">70<") && s.contains(">54<"));
        assert!(s.contains("3 readings from 00:00 to 00:10, last 80 mg/dL, predicted 55 mg/dL at 00:30"));
        assert!(!trace(&pts, Thresholds::default(), None, 0).into_string().contains("prediction"));
    }

    #[test]
    fn the_modal_day_has_both_bands_and_the_median() {
        let rs: Vec<Reading> =
            (0..576).map(|i| Reading { at_ms: i * 300_000, mg_dl: 100.0 + (i % 40) as f64 }).collect();
        let r = compute(&rs, Period { from_ms: 0, to_ms: 2 * 86_400_000, utc_offset_minutes: 0 }).unwrap();
        let s = modal_day(&r).into_string();
        assert!(s.contains("class=\"p5-95\"") && s.contains("class=\"p25-75\"") && s.contains("class=\"median\""));
        assert!(daily(&r.days[0]).into_string().contains("1970-01-01: 288 readings, 0 below 70 mg/dL"));
    }
}
