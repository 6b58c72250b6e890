//! bolero targets that cross crates live in `tests/`; run them as tests with `cargo test -p
//! thoth-fuzz`, or as fuzzers with `cargo bolero test -p thoth-fuzz <target>`.

// A fuzzing build instruments every test binary of this package, this library's own too:
// bolero brings the fuzzer's runtime it then needs to link.
#[cfg(all(test, fuzzing))]
extern crate bolero as _;
