//! `thoth-kv-perf` end to end: the built binary, a small run of every strategy with three
//! replica processes on 127.0.0.1; one JSON row per strategy with every figure; every
//! process it started has exited.

mod common;

use common::{field, num};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_thoth-kv-perf");

#[test]
fn json_rows_for_every_strategy() {
    let args = ["--ops", "400", "--size", "100", "--json"];
    let (out, pid, _) = common::run(BIN, &args, Duration::from_secs(180));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    let names: Vec<&str> = lines.iter().map(|l| field(l, "strategy")).collect();
    assert_eq!(names, ["active", "primary-backup", "client-server", "cached"], "{stdout}");
    for l in &lines {
        assert_eq!(num(l, "replicas"), 3.0);
        for k in ["writes_per_sec", "reads_per_sec", "write_p50_us", "read_p50_us", "write_p99_us", "read_p99_us"] {
            assert!(num(l, k) > 0.0, "{k} in {l}");
        }
        assert!(num(l, "write_p50_us") <= num(l, "write_p99_us"), "{l}");
    }
    common::assert_no_members_left("thoth-kv-perf", pid);
}
