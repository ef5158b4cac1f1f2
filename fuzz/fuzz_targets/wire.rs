#![no_main]
//! cargo-fuzz target `wire`: see glucochain_fuzz_targets::wire_messages.
libfuzzer_sys::fuzz_target!(|data: &[u8]| glucochain_fuzz_targets::wire_messages(data));
