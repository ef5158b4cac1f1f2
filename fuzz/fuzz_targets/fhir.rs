#![no_main]
//! cargo-fuzz target `fhir`: see glucochain_fuzz_targets::fhir.
libfuzzer_sys::fuzz_target!(|data: &[u8]| glucochain_fuzz_targets::fhir(data));
