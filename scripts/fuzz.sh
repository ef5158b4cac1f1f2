#!/usr/bin/env bash
# Fuzzes every target with cargo-fuzz (libFuzzer) for SECONDS each
# (default 60), on the stable toolchain (`--sanitizer none`: no ASan, the
# code under test is safe Rust; a panic, an abort or a timeout is a finding).
#
#   scripts/fuzz.sh            # a minute per target
#   scripts/fuzz.sh 3600 wire  # an hour on one target
#
# A crash leaves its input in fuzz/artifacts/<target>/; copy it to
# fuzz/regressions/<target>/ with the fix, and `cargo test` replays it forever.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(tx token wire fhir cgm_csv)
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
cargo run -q -p glucochain-fuzz-targets --bin fuzz-seeds -- fuzz/corpus
for t in "${targets[@]}"; do
  echo "fuzz: $t for ${secs}s"
  (cd fuzz && cargo fuzz run --sanitizer none "$t" -- -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048)
done
