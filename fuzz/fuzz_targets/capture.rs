#![no_main]
//! Fuzz target: a whole capture file (see the harness, shared with the regression test).

#[path = "../../tests/decode/fuzz_harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    harness::capture(data);
});
