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

/// Clock ticks per second of `/proc`'s CPU times, asked of `getconf` once.
fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// `/proc/<pid>/stat` of one process: command name and the fields after it
/// (state is the first, field 3 of the file).
fn stat_fields(pid: u32) -> Option<(String, Vec<String>)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name sits in parentheses and may hold spaces.
    let comm = stat[stat.find('(')? + 1..stat.rfind(')')?].to_string();
    let rest = &stat[stat.rfind(')')? + 2..];
    Some((comm, rest.split_whitespace().map(str::to_string).collect()))
}

fn ticks(f: &[String], i: usize) -> Option<f64> {
    f.get(i)?.parse().ok()
}

/// Reads `pid`'s counters (`None` when it is gone).
pub fn sample(pid: u32) -> Option<ProcSample> {
    let (_, f) = stat_fields(pid)?;
    let (utime, stime) = (ticks(&f, 11)?, ticks(&f, 12)?);
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

/// CPU seconds of the whole PostgreSQL server on this machine: every
/// `postgres` process (postmaster, backends, background writers) plus what
/// the postmaster's exited children used (a backend that closed during a run
/// is counted in its parent's `cutime`/`cstime`). `None` when no server runs
/// here. The machine's server is shared: read it where nothing else uses it.
pub fn postgres_cpu_secs() -> Option<f64> {
    let mut total = 0.0;
    let mut found = false;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Some((comm, f)) = stat_fields(pid) else { continue };
        if comm != "postgres" {
            continue;
        }
        found = true;
        total += ticks(&f, 11).unwrap_or(0.0) + ticks(&f, 12).unwrap_or(0.0);
        // The postmaster's parent is not a postgres process: add its reaped children.
        let parent = ticks(&f, 1).map(|p| p as u32).and_then(stat_fields).map(|(c, _)| c);
        if parent.as_deref() != Some("postgres") {
            total += ticks(&f, 13).unwrap_or(0.0) + ticks(&f, 14).unwrap_or(0.0);
        }
    }
    found.then(|| total / clock_ticks())
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

    #[test]
    fn reads_the_postgres_server() {
        // The test machine runs PostgreSQL (as CI does); its CPU time only grows.
        let before = postgres_cpu_secs().expect("a PostgreSQL server runs on this machine");
        let work = std::process::Command::new("psql")
            .args(["-h", "127.0.0.1", "-U", "postgres", "-Atqc", "SELECT count(*) FROM generate_series(1, 3000000)"])
            .output()
            .expect("psql");
        assert!(work.status.success(), "{}", String::from_utf8_lossy(&work.stderr));
        // The backend has exited; its time moves to the postmaster's children's
        // time once the postmaster has reaped it (asynchronously, on SIGCHLD).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let mut after = postgres_cpu_secs().unwrap();
        while after <= before && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(100));
            after = postgres_cpu_secs().unwrap();
        }
        assert!(after > before, "the server's CPU time grows while it works ({before} -> {after})");
    }
}
