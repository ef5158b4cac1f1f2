//! Latency summaries: percentiles by the nearest-rank method.

use serde::Serialize;

/// A latency distribution, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Summary {
    /// Samples.
    pub count: usize,
    /// Mean.
    pub mean_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Largest.
    pub max_ms: f64,
}

/// The `p`-th percentile (0 < p <= 100) of sorted samples, nearest rank.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

impl Summary {
    /// Summarises samples (any order).
    pub fn of(samples: &[f64]) -> Self {
        if samples.is_empty() {
            return Summary::default();
        }
        let mut s = samples.to_vec();
        s.sort_by(f64::total_cmp);
        Summary {
            count: s.len(),
            mean_ms: s.iter().sum::<f64>() / s.len() as f64,
            p50_ms: percentile(&s, 50.0),
            p95_ms: percentile(&s, 95.0),
            p99_ms: percentile(&s, 99.0),
            max_ms: s[s.len() - 1],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let s: Vec<f64> = (1..=100).map(f64::from).rev().collect();
        let m = Summary::of(&s);
        assert_eq!((m.count, m.p50_ms, m.p95_ms, m.p99_ms, m.max_ms), (100, 50.0, 95.0, 99.0, 100.0));
        assert_eq!(m.mean_ms, 50.5);
        assert_eq!(Summary::of(&[7.0]).p99_ms, 7.0);
        assert_eq!(Summary::of(&[]).count, 0);
    }
}
