//! The engine's message handler fed a program of operations: connections opened (trusted or
//! authenticated) and closed, postcard-encoded and synthesized requests, time passing. The
//! interpreter and its checks are shared with the engine test binary, which runs it on random
//! and mutated programs at every `cargo test`; see `rti/tests/engine/ops.rs`.

#![no_main]

use libfuzzer_sys::fuzz_target;

// The program builder is for the tests only.
#[allow(dead_code)]
#[path = "../../rti/tests/engine/ops.rs"]
mod ops;

fuzz_target!(|program: &[u8]| {
    ops::run(program);
});
