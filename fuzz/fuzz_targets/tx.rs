#![no_main]
//! cargo-fuzz target `tx`: see glucochain_fuzz_targets::tx.
libfuzzer_sys::fuzz_target!(|data: &[u8]| glucochain_fuzz_targets::tx(data));
