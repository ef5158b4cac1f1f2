//! SVG plots of a run's figures (for `docs/benchmarks.md`): latency against
//! committed throughput, and CPU per transaction by process group against
//! committed throughput. Drawn with `plotters`' SVG backend (text as SVG
//! text, no font files).

use crate::load::RunResult;
use plotters::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Errors drawing a plot.
#[derive(Debug, thiserror::Error)]
#[error("plot {path}: {reason}")]
pub struct PlotError {
    path: PathBuf,
    reason: String,
}

/// Colours per validator count, and per process group.
const PALETTE: [RGBColor; 6] = [
    RGBColor(0, 90, 181),
    RGBColor(220, 50, 32),
    RGBColor(0, 140, 70),
    RGBColor(150, 80, 170),
    RGBColor(230, 140, 0),
    RGBColor(90, 90, 90),
];

/// The process groups of the cost plot: a process counts in the first group whose prefix it has.
const GROUPS: [(&str, &[&str]); 5] = [
    ("validators (all)", &["validator-"]),
    ("ingest", &["ingest"]),
    ("followers: ledger, contracts, detector, notifier", &["ledger", "contracts", "detector", "notifier"]),
    ("nats-server", &["nats"]),
    ("PostgreSQL server", &["postgres"]),
];

/// CPU milliseconds per transaction of one process group in a run.
pub fn group_cpu_ms_per_tx(run: &RunResult, prefixes: &[&str]) -> f64 {
    run.cpu_secs_per_1000_tx
        .iter()
        .filter(|(name, v)| prefixes.iter().any(|p| name.starts_with(p)) && v.is_finite())
        .map(|(_, v)| *v)
        .sum()
}

/// Runs of each validator count, ordered by committed throughput.
fn by_validators(runs: &[RunResult]) -> BTreeMap<usize, Vec<&RunResult>> {
    let mut out: BTreeMap<usize, Vec<&RunResult>> = BTreeMap::new();
    for r in runs.iter().filter(|r| r.committed > 0) {
        out.entry(r.validators).or_default().push(r);
    }
    for v in out.values_mut() {
        v.sort_by(|a, b| a.committed_tps.total_cmp(&b.committed_tps));
    }
    out
}

fn err(path: &Path, e: impl std::fmt::Display) -> PlotError {
    PlotError { path: path.to_path_buf(), reason: e.to_string() }
}

/// One labelled line of a plot, with a marker at each point.
struct Line {
    label: String,
    points: Vec<(f64, f64)>,
    style: ShapeStyle,
    marker_radius: u32,
    marker_filled: bool,
}

/// Draws `lines` on axes from 0 to a tenth above the largest point, with a
/// legend at `legend`, into the SVG file `path`.
fn draw(
    path: &Path,
    caption: &str,
    y_desc: &str,
    lines: &[Line],
    legend: SeriesLabelPosition,
) -> Result<(), PlotError> {
    let finite = |v: &f64| v.is_finite();
    let all = || lines.iter().flat_map(|l| l.points.iter());
    let max_x = all().map(|p| p.0).filter(finite).fold(1.0, f64::max) * 1.1;
    let max_y = all().map(|p| p.1).filter(finite).fold(0.1, f64::max) * 1.1;
    let root = SVGBackend::new(path, (800, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(path, e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..max_x, 0.0..max_y)
        .map_err(|e| err(path, e))?;
    chart.configure_mesh().x_desc("committed tx/s").y_desc(y_desc).draw().map_err(|e| err(path, e))?;
    for line in lines {
        let style = line.style;
        chart
            .draw_series(LineSeries::new(line.points.clone(), style))
            .map_err(|e| err(path, e))?
            .label(line.label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        let marker = if line.marker_filled { style.filled() } else { style };
        chart
            .draw_series(line.points.iter().map(|p| Circle::new(*p, line.marker_radius, marker)))
            .map_err(|e| err(path, e))?;
    }
    chart
        .configure_series_labels()
        .position(legend)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(path, e))?;
    root.present().map_err(|e| err(path, e))
}

/// p50 and p99 submit → commit latency against committed tx/s, one pair of lines per validator count.
pub fn latency_vs_throughput(runs: &[RunResult], path: &Path) -> Result<(), PlotError> {
    let mut lines = Vec::new();
    for (i, (v, rs)) in by_validators(runs).iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let points = |f: fn(&RunResult) -> f64| rs.iter().map(|r| (r.committed_tps, f(r))).collect();
        lines.push(Line {
            label: format!("{v} validators, p99"),
            points: points(|r| r.commit_latency.p99_ms),
            style: color.stroke_width(2),
            marker_radius: 4,
            marker_filled: true,
        });
        lines.push(Line {
            label: format!("{v} validators, p50"),
            points: points(|r| r.commit_latency.p50_ms),
            style: color.mix(0.5).stroke_width(1),
            marker_radius: 3,
            marker_filled: false,
        });
    }
    draw(
        path,
        "Submit → commit latency against committed throughput",
        "latency, ms",
        &lines,
        SeriesLabelPosition::UpperLeft,
    )
}

/// CPU ms per committed transaction by process group against committed
/// tx/s, for the runs of `validators` validators.
pub fn cost_vs_throughput(runs: &[RunResult], validators: usize, path: &Path) -> Result<(), PlotError> {
    let groups = by_validators(runs);
    let Some(rs) = groups.get(&validators) else { return Ok(()) };
    let total = |r: &RunResult| GROUPS.iter().map(|(_, p)| group_cpu_ms_per_tx(r, p)).sum::<f64>();
    let mut lines = vec![Line {
        label: "total".into(),
        points: rs.iter().map(|r| (r.committed_tps, total(r))).collect(),
        style: BLACK.stroke_width(3),
        marker_radius: 3,
        marker_filled: true,
    }];
    for (i, (name, prefixes)) in GROUPS.iter().enumerate() {
        lines.push(Line {
            label: name.to_string(),
            points: rs.iter().map(|r| (r.committed_tps, group_cpu_ms_per_tx(r, prefixes))).collect(),
            style: PALETTE[i % PALETTE.len()].stroke_width(2),
            marker_radius: 3,
            marker_filled: true,
        });
    }
    let caption = format!("CPU per transaction, {validators} validators");
    draw(path, &caption, "CPU ms per committed tx", &lines, SeriesLabelPosition::UpperRight)
}

/// Draws every plot of `runs` into `dir`; returns the files written.
pub fn all(runs: &[RunResult], dir: &Path) -> Result<Vec<PathBuf>, PlotError> {
    std::fs::create_dir_all(dir).map_err(|e| err(dir, e))?;
    let mut written = Vec::new();
    let latency = dir.join("latency-vs-throughput.svg");
    latency_vs_throughput(runs, &latency)?;
    written.push(latency);
    for v in by_validators(runs).keys() {
        let cost = dir.join(format!("cpu-per-tx-{v}-validators.svg"));
        cost_vs_throughput(runs, *v, &cost)?;
        written.push(cost);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Summary;

    fn run(validators: usize, tps: f64, p99: f64, cpu: &[(&str, f64)]) -> RunResult {
        RunResult {
            mode: "open".into(),
            validators,
            committed: 100,
            committed_tps: tps,
            commit_latency: Summary { count: 100, p50_ms: p99 / 2.0, p99_ms: p99, ..Summary::default() },
            cpu_secs_per_1000_tx: cpu.iter().map(|(n, v)| (n.to_string(), *v)).collect(),
            ..RunResult::default()
        }
    }

    #[test]
    fn groups_sum_their_processes_only() {
        let r = run(4, 100.0, 50.0, &[("validator-0", 0.5), ("validator-1", 0.25), ("ingest", 1.0), ("loadgen", 9.0)]);
        assert_eq!(group_cpu_ms_per_tx(&r, &["validator-"]), 0.75);
        assert_eq!(group_cpu_ms_per_tx(&r, &["ingest"]), 1.0);
        assert_eq!(group_cpu_ms_per_tx(&r, &["postgres"]), 0.0);
    }

    #[test]
    fn writes_one_latency_plot_and_a_cost_plot_per_validator_count() {
        let runs = vec![
            run(4, 400.0, 220.0, &[("validator-0", 0.3), ("postgres", 0.6)]),
            run(4, 100.0, 140.0, &[("validator-0", 0.6), ("postgres", 1.0)]),
            run(7, 90.0, 250.0, &[("validator-0", 0.9), ("nats", 0.4)]),
        ];
        let dir = tempfile::tempdir().unwrap();
        let files = all(&runs, dir.path()).unwrap();
        let names: Vec<String> = files.iter().map(|f| f.file_name().unwrap().to_string_lossy().into()).collect();
        assert_eq!(names, ["latency-vs-throughput.svg", "cpu-per-tx-4-validators.svg", "cpu-per-tx-7-validators.svg"]);
        let latency = std::fs::read_to_string(&files[0]).unwrap();
        assert!(latency.starts_with("<svg"));
        for label in ["4 validators, p99", "7 validators, p50", "committed tx/s"] {
            assert!(latency.contains(label), "{label} missing");
        }
        let cost = std::fs::read_to_string(&files[1]).unwrap();
        assert!(cost.contains("PostgreSQL server") && cost.contains("total"));
        // Each line of the 4-validator cost plot joins its two runs.
        assert!(cost.matches("<polyline").count() > GROUPS.len());
    }
}
