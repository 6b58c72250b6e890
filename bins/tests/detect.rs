//! `thoth-detect` end to end: the built binary, 3 member processes on loopback multicast, one
//! of them killed; every survivor must detect the crash in time, nobody a live member.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_thoth-detect");

/// Runs the binary with a time limit; kills it if it overstays.
fn run(args: &[&str], limit: Duration) -> (Output, u32) {
    let start = Instant::now();
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start thoth-detect");
    let pid = child.id();
    while child.try_wait().expect("poll thoth-detect").is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().expect("reap thoth-detect");
            panic!("thoth-detect {args:?} ran over {limit:?}; stderr:\n{}", String::from_utf8_lossy(&out.stderr));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    (child.wait_with_output().expect("collect thoth-detect output"), pid)
}

/// Member processes carry their parent's pid in the group name (`--name thoth-detect-<pid>-...`).
fn members_left(parent: u32) -> Vec<String> {
    let tag = format!("thoth-detect-{parent}-");
    let mut left = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(&tag) {
                left.push(cmd);
            }
        }
    }
    left
}

/// The raw text of a scalar field of a flat JSON object.
fn field<'a>(line: &'a str, key: &str) -> &'a str {
    let pat = format!("\"{key}\":");
    let at = line.find(&pat).unwrap_or_else(|| panic!("no key `{key}` in {line}")) + pat.len();
    let rest = &line[at..];
    rest[..rest.find([',', '}']).unwrap_or(rest.len())].trim_matches('"')
}

fn num(line: &str, key: &str) -> f64 {
    field(line, key).parse().unwrap_or_else(|_| panic!("`{key}` is not a number in {line}"))
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
    let deadline = Instant::now() + Duration::from_secs(2);
    while !members_left(pid).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(members_left(pid), Vec::<String>::new(), "member processes outlived the parent");
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
