//! CPU time and memory of running processes, from `/proc` (Linux).

use serde::Serialize;

/// One process's counters at one moment.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct ProcSample {
    /// User + system CPU seconds so far.
    pub cpu_secs: f64,
    /// Resident memory now, MiB.
    pub rss_mib: f64,
    /// Peak resident memory, MiB.
    pub peak_rss_mib: f64,
}

fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// Reads `pid`'s counters (`None` when it is gone).
pub fn sample(pid: u32) -> Option<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which may hold spaces: state is field 3.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let (utime, stime): (f64, f64) = (f.get(11)?.parse().ok()?, f.get(12)?.parse().ok()?);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = |key: &str| -> f64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    Some(ProcSample {
        cpu_secs: (utime + stime) / clock_ticks(),
        rss_mib: kib("VmRSS:") / 1024.0,
        peak_rss_mib: kib("VmHWM:") / 1024.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let before = sample(std::process::id()).unwrap();
        let mut x = 0u64;
        for i in 0..30_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let after = sample(std::process::id()).unwrap();
        assert!(after.cpu_secs > before.cpu_secs, "CPU time grows while working");
        assert!(after.rss_mib > 0.0 && after.peak_rss_mib >= after.rss_mib);
        assert!(sample(u32::MAX).is_none());
    }
}
