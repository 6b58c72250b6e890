//! The ordering layers' bolero models (`layers/tests/order.rs`, which `cargo test` runs with
//! random inputs there) as coverage-guided fuzz targets: `fuzz/run.sh` runs one under
//! libFuzzer (a fuzzing build links every test binary of its package against the fuzzer,
//! which this package's all do). Compiled only in fuzzing builds, so `cargo test` does not
//! run the models twice.
#![cfg(fuzzing)]

#[path = "../../layers/tests/order.rs"]
mod order;
