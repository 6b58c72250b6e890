#!/usr/bin/env bash
# A bounded, coverage-guided fuzzing run of one bolero target with libFuzzer, on this
# machine's stable toolchain. `cargo test` runs every bolero target with random inputs; this
# runs one of them under libFuzzer, which steers the inputs by the code they reach.
#
#   fuzz/run.sh [SECONDS] [TARGET]
#
# Targets are the tests of this package (`thoth-fuzz`): `order::sequencer_matches_the_model`
# (the default: 60 s of the sequencer against its model, `layers/tests/order.rs`),
# `order::causal_matches_the_model`, `order::token_matches_the_model`,
# `order::lamport_matches_the_model`, and those of
# `datagram.rs`; e.g.
#   fuzz/run.sh 120 order::causal_matches_the_model
# Installs cargo-bolero (libFuzzer engine only, built from crates.io) into target/tools the
# first time, and builds with the workspace's `fuzz` profile (the first run compiles for a
# few minutes). A failing input is printed; the corpus is kept under the test file's
# __fuzz__/ folder (ignored by git).
set -euo pipefail
cd "$(dirname "$0")/.."
SECS="${1:-60}"
TARGET="${2:-order::sequencer_matches_the_model}"
TOOLS="$PWD/target/tools"
if [ ! -x "$TOOLS/bin/cargo-bolero" ]; then
  cargo install --locked --root "$TOOLS" cargo-bolero --version '^0.13' --no-default-features --features libfuzzer
fi
export PATH="$TOOLS/bin:$PATH"
timeout $((SECS + 900)) cargo bolero test -p thoth-fuzz "$TARGET" \
  --engine libfuzzer --sanitizer NONE -T "${SECS}s"
