#![no_main]
//! cargo-fuzz target `cgm_csv`: see glucochain_fuzz_targets::cgm_csv.
libfuzzer_sys::fuzz_target!(|data: &[u8]| glucochain_fuzz_targets::cgm_csv(data));
