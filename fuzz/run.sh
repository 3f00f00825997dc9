#!/usr/bin/env bash
# Runs each cargo-fuzz target for a while: the frame decoder and the engine's message handler.
#
#   fuzz/run.sh                    # each target for 60 s
#   FUZZ_SECONDS=600 fuzz/run.sh   # longer
#   fuzz/run.sh engine_handler     # one target
#
# cargo-fuzz needs nightly compiler flags (`-Zsanitizer`, coverage instrumentation). The
# machines have only the stable toolchain, so RUSTC_BOOTSTRAP=1 unlocks them there; with a
# nightly toolchain it changes nothing. The first build takes minutes (the targets link the
# whole RTI, TLS stack included, instrumented). A crash leaves its input under
# fuzz/artifacts/<target>/; replay it with `cargo fuzz run <target> <file>`, shrink it with
# `cargo fuzz tmin <target> <file>`. The engine interpreter also runs as a plain test on every
# `cargo test` (rti/tests/engine/fuzz.rs), so CI exercises it without cargo-fuzz.
set -euo pipefail

export RUSTC_BOOTSTRAP=1
seconds="${FUZZ_SECONDS:-60}"
cd "$(dirname "$0")"

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(frame_decoder engine_handler)
fi

for target in "${targets[@]}"; do
    echo "fuzzing ${target} for ${seconds} s"
    # -a: debug assertions and overflow checks, so that an arithmetic overflow is a crash.
    cargo fuzz run --debug-assertions "${target}" -- -max_total_time="${seconds}"
done
