//! bolero targets that cross crates live in `tests/`; run them as tests with `cargo test -p
//! thoth-fuzz`, or as fuzzers with `cargo bolero test -p thoth-fuzz <target>`.
