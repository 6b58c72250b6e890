//! `thoth-rpc-perf` end to end: the built binary, a small run of member processes on
//! 127.0.0.1, sync and with calls outstanding, under both drivers; every member it started
//! has exited.

mod common;

use common::{field, num};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_thoth-rpc-perf");

#[test]
fn json_rows_with_every_figure() {
    // Without --driver, a row per driver: the Node's threads, then the inline machine.
    for outstanding in ["1", "8"] {
        let args = ["--members", "2", "--mode", "all", "--outstanding", outstanding, "--calls", "300", "--json"];
        let (out, pid, _) = common::run(BIN, &args, Duration::from_secs(120));
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines.len(), 2, "{stdout}");
        for (l, driver) in lines.iter().zip(["thread", "inline"]) {
            assert_eq!(field(l, "driver"), driver);
            assert_eq!(field(l, "mode"), "all");
            assert_eq!(num(l, "members"), 2.0);
            assert_eq!(num(l, "outstanding"), outstanding.parse::<f64>().unwrap());
            for k in ["p50_us", "p99_us", "p999_us", "calls_per_sec", "raw_p50_us", "raw_p99_us"] {
                assert!(num(l, k) > 0.0, "{k} in {l}");
            }
            assert!(num(l, "p50_us") <= num(l, "p99_us") && num(l, "p99_us") <= num(l, "p999_us"), "{l}");
        }
        common::assert_no_members_left("thoth-rpc-perf", pid);
    }
}
