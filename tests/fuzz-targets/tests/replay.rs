//! Every input cargo-fuzz kept (its corpus and the regressions of crashes
//! it found) goes through its target on every `cargo test`, then a seeded
//! batch of mutations of the seeds: none may panic.

use glucochain_fuzz_targets::{TARGETS, seeds};
use std::path::Path;

fn kept(dir: &Path) -> Vec<Vec<u8>> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries.filter_map(|e| std::fs::read(e.ok()?.path()).ok()).collect()
}

#[test]
fn every_kept_input_goes_through_its_target() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut seen = 0;
    for (name, body) in TARGETS {
        for input in kept(&fuzz.join("regressions").join(name)).into_iter().chain(kept(&fuzz.join("corpus").join(name)))
        {
            body(&input);
            seen += 1;
        }
    }
    assert!(seen >= TARGETS.len(), "every target keeps at least its seed in fuzz/corpus ({seen} inputs)");
}

/// xorshift64*: a fixed sequence, so a failure here reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        match rng.below(6) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 if !v.is_empty() => v.truncate(rng.below(v.len())),
            2 => {
                let i = rng.below(v.len() + 1);
                v.insert(i, rng.next() as u8);
            }
            3 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] = b"0.-,:{}[]\"\n9eE+"[rng.below(15)];
            }
            4 if !v.is_empty() => {
                let (a, b) = (rng.below(v.len()), rng.below(v.len()));
                let (lo, hi) = (a.min(b), a.max(b));
                let chunk = v[lo..hi].to_vec();
                let at = rng.below(v.len() + 1);
                v.splice(at..at, chunk);
            }
            _ => v.extend_from_slice(&(rng.next()).to_le_bytes()),
        }
    }
    v
}

#[test]
fn seeded_mutations_of_every_seed_never_panic() {
    let mut rng = Rng(0x5eed_2026_1130);
    for (name, body) in TARGETS {
        let seeds = seeds(name);
        assert!(!seeds.is_empty(), "{name} has seeds");
        for seed in &seeds {
            body(seed);
            for _ in 0..400 {
                body(&mutate(&mut rng, seed));
            }
        }
    }
}

/// A short libFuzzer run of every target (`cargo fuzz`, stable toolchain,
/// no sanitizer), from the committed seeds: any crash, abort or timeout
/// fails the test and leaves the input in fuzz/artifacts/<target>/.
#[test]
fn a_short_libfuzzer_run_of_every_target_finds_nothing() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    for (name, _) in TARGETS {
        // Only the committed seeds: what earlier local runs added stays out of the way.
        let corpus = tempfile::tempdir().unwrap();
        for (i, s) in seeds(name).iter().enumerate() {
            std::fs::write(corpus.path().join(format!("seed-{i}")), s).unwrap();
        }
        let out = std::process::Command::new("cargo")
            .current_dir(&fuzz)
            .args(["fuzz", "run", "--sanitizer", "none", name])
            .arg(corpus.path())
            .args(["--", "-max_total_time=8", "-timeout=10", "-rss_limit_mb=2048", "-seed=1"])
            .env_remove("CARGO_TARGET_DIR")
            .output()
            .expect("cargo fuzz (scripts/setup.sh installs cargo-fuzz)");
        let text = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && text.contains("Done "),
            "cargo fuzz run {name} failed:\n{}",
            &text[text.len().saturating_sub(4000)..]
        );
    }
}
