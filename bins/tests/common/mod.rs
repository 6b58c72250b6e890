//! What the binaries' end-to-end tests share: run a built binary with a time limit, check
//! that no member process outlived it, read fields of its JSON lines; and (`member`) the
//! `thoth-member` process a test drives.
#![allow(dead_code)]

pub mod member;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs `bin` with `args` and a time limit (it is killed if it overstays); returns its
/// output, its pid and how long it took.
pub fn run(bin: &str, args: &[&str], limit: Duration) -> (Output, u32, Duration) {
    let start = Instant::now();
    let mut child = Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {bin}: {e}"));
    let pid = child.id();
    while child.try_wait().expect("poll the binary").is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().expect("reap the binary");
            panic!("{bin} {args:?} ran over {limit:?}; stderr:\n{}", String::from_utf8_lossy(&out.stderr));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("collect the output");
    (out, pid, start.elapsed())
}

/// Command lines of the member processes a parent started: they carry `<name>-<parent pid>-`
/// in their group name.
pub fn members_left(name: &str, parent: u32) -> Vec<String> {
    let tag = format!("{name}-{parent}-");
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

/// Waits up to 2 s for the parent's members to be gone, then asserts they are.
pub fn assert_no_members_left(name: &str, parent: u32) {
    let deadline = Instant::now() + Duration::from_secs(2);
    while !members_left(name, parent).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(members_left(name, parent), Vec::<String>::new(), "member processes outlived the parent");
}

/// The raw text of a scalar field of a flat JSON object.
pub fn field<'a>(line: &'a str, key: &str) -> &'a str {
    let pat = format!("\"{key}\":");
    let at = line.find(&pat).unwrap_or_else(|| panic!("no key `{key}` in {line}")) + pat.len();
    let rest = &line[at..];
    rest[..rest.find([',', '}']).unwrap_or(rest.len())].trim_matches('"')
}

pub fn num(line: &str, key: &str) -> f64 {
    field(line, key).parse().unwrap_or_else(|_| panic!("`{key}` is not a number in {line}"))
}
