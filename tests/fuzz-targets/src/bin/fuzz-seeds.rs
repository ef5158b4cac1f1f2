//! Writes each target's seed inputs to `<dir>/<target>/seed-<n>` (the
//! corpus cargo-fuzz starts from): `fuzz-seeds fuzz/corpus`.

fn main() -> std::io::Result<()> {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "fuzz/corpus".into()));
    for (name, _) in glucochain_fuzz_targets::TARGETS {
        let d = dir.join(name);
        std::fs::create_dir_all(&d)?;
        for (i, s) in glucochain_fuzz_targets::seeds(name).iter().enumerate() {
            std::fs::write(d.join(format!("seed-{i}")), s)?;
        }
    }
    Ok(())
}
