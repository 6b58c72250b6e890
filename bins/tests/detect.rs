//! `thoth-detect` end to end: the built binary, 3 member processes on loopback multicast, one
//! of them killed; every survivor must detect the crash in time, nobody a live member.

mod common;

use common::{field, num};
use std::process::Output;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_thoth-detect");

fn run(args: &[&str], limit: Duration) -> (Output, u32) {
    let (out, pid, _) = common::run(BIN, args, limit);
    (out, pid)
}

fn members_left(parent: u32) -> Vec<String> {
    common::members_left("thoth-detect", parent)
}

fn crash_is_detected(detector: &str) {
    let args = ["--members", "3", "--duration", "4", "--after", "3", "--load", "0", "--detector", detector, "--json"];
    let (out, pid) = run(&args, Duration::from_secs(30));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "thoth-detect failed ({}); stdout:\n{stdout}\nstderr:\n{stderr}", out.status);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one JSON object expected: {stdout}");
    let j = lines[0];
    assert_eq!(field(j, "detector"), detector);
    assert_eq!(num(j, "false_suspicions"), 0.0, "false suspicions: {j}\n{stderr}");
    assert_eq!((num(j, "survivors"), num(j, "detected"), num(j, "never_detected")), (2.0, 2.0, 0.0), "{j}");
    let (min, max) = (num(j, "detect_min_ms"), num(j, "detect_max_ms"));
    assert!(0.0 < min && min <= num(j, "detect_median_ms") && max < 3000.0, "detection times: {j}");
    assert!(num(j, "delivered") > 1000.0, "the members' traffic did not flow: {j}");
    common::assert_no_members_left("thoth-detect", pid);
}

#[test]
fn heartbeat_detects_a_killed_member() {
    crash_is_detected("heartbeat");
}

#[test]
fn swim_detects_a_killed_member() {
    crash_is_detected("swim");
}

#[test]
fn refuses_bad_options_at_once() {
    let (out, pid) = run(&["--detector", "nope"], Duration::from_secs(5));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("heartbeat, phi, swim"));
    assert!(members_left(pid).is_empty());
}
