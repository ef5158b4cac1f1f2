//! What more than one of the multi-process tests needs.

use std::path::{Path, PathBuf};

/// The service binaries (and `emrctl`) under the names the devnet looks
/// for, as symlinks in `dir/bin`.
pub fn bin_dir(dir: &Path) -> PathBuf {
    let bins = dir.join("bin");
    std::fs::create_dir_all(&bins).unwrap();
    for (name, exe) in [
        ("glucochain-validator", env!("CARGO_BIN_EXE_e2e-validator")),
        ("glucochain-ingest", env!("CARGO_BIN_EXE_e2e-ingest")),
        ("glucochain-ledger", env!("CARGO_BIN_EXE_e2e-ledger")),
        ("glucochain-contracts", env!("CARGO_BIN_EXE_e2e-contracts")),
        ("glucochain-detector", env!("CARGO_BIN_EXE_e2e-detector")),
        ("glucochain-notifier", env!("CARGO_BIN_EXE_e2e-notifier")),
        ("emrctl", env!("CARGO_BIN_EXE_e2e-emrctl")),
    ] {
        std::os::unix::fs::symlink(exe, bins.join(name)).unwrap();
    }
    bins
}
