#![no_main]
//! Fuzz target: a block's records (see the harness, shared with the regression test).

#[path = "../../tests/decode/fuzz_harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    harness::block(data);
});
