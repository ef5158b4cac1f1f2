#![no_main]
//! cargo-fuzz target `token`: see glucochain_fuzz_targets::token.
libfuzzer_sys::fuzz_target!(|data: &[u8]| glucochain_fuzz_targets::token(data));
