//! Shared pieces of the Thoth binaries.
//!
//! `perf` is the multicast benchmark behind `thoth-perf`: a parent process that spawns one
//! OS process per group member, runs the same workload through a Thoth stack and over raw
//! UDP multicast, and prints both side by side. `detect` is behind `thoth-detect`: crash
//! detection time and false suspicions of the failure detectors between member processes.
//! `member` is `thoth-member`: one member of a dynamic group, events as JSON lines.
//! `iface` is the `--interface` option the three share; `key`, the group keys they take. `rpc_perf` and `kv_perf` are behind
//! `thoth-rpc-perf` and `thoth-kv-perf`; `peers` is how their member processes meet. `kv`
//! is also the replicated key-value store of `thoth-kv`, the demo; `term`, the SIGTERM
//! flag `thoth-member` and `thoth-kv` poll; `cli`, what their command lines share;
//! `exporter`, the Prometheus endpoint of `thoth-member --metrics`; `probe`, `thoth-probe`;
//! `log`, the `tracing` subscriber every binary starts (`RUST_LOG`).

pub mod cli;
pub mod detect;
pub mod exporter;
pub mod iface;
pub mod key;
pub mod kv;
pub mod kv_perf;
pub mod log;
pub mod member;
pub mod peers;
pub mod perf;
pub mod probe;
pub mod rpc_perf;
pub mod term;
