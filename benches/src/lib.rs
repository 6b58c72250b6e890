//! Micro-benchmarks of the hot paths live in `benches/`: `cargo bench -p thoth-benches`.
