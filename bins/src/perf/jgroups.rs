//! `--jgroups`: the same one-way workload through JGroups 2.12, by the project's reference
//! script (`bins/jgroups/jgroups-perf.sh`: one JVM per member on loopback multicast, JGroups's
//! `udp.xml`, timed as `thoth-perf` times its members), run next to the stack in each repeat.
//! The script runs in a process group of its own, under a time limit, and the whole group
//! is stopped if it runs over. Tested through `bins/tests/perf.rs` (a stand-in script).

use super::args::{Opts, Senders};
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Longest one run of the script may take (the first installs JGroups and a JDK).
const LIMIT: Duration = Duration::from_secs(900);

/// JGroups's msgs/s at the slowest receiver for `size`-byte messages, `count` per sender.
pub fn run(o: &Opts, script: &Path, size: usize, count: u64) -> Result<f64, String> {
    let mut args = vec![
        "--members".to_string(),
        o.members.to_string(),
        "--senders".into(),
        match o.senders {
            Senders::All => "all".into(),
            Senders::First(n) => n.to_string(),
        },
        "--size".into(),
        size.to_string(),
        "--count".into(),
        count.to_string(),
    ];
    if total_order(&o.stack) {
        args.push("--total".into());
    }
    let what = format!("JGroups ({} {})", script.display(), args.join(" "));
    let mut child = Command::new("bash")
        .arg(script)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("{what}: cannot start: {e}"))?;
    // The script's output is one line and its stderr a few (apt-get's when it installs):
    // read on threads so that neither pipe can fill while we wait.
    let pipe = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(mut r) = r {
                let _ = r.read_to_string(&mut s);
            }
            s
        })
    };
    let out = pipe(child.stdout.take().map(|r| Box::new(r) as _));
    let err = pipe(child.stderr.take().map(|r| Box::new(r) as _));
    let deadline = Instant::now() + LIMIT;
    let status = loop {
        match child.try_wait().map_err(|e| format!("{what}: {e}"))? {
            Some(status) => break status,
            None if Instant::now() >= deadline => {
                stop_group(child.id());
                let _ = child.wait();
                return Err(format!("{what}: no result within {} s, stopped", LIMIT.as_secs()));
            }
            None => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    let (out, err) = (out.join().unwrap_or_default(), err.join().unwrap_or_default());
    let line = out.lines().rev().find(|l| l.starts_with('{'));
    match line.and_then(|l| number(l, "msgs_per_sec")) {
        Some(rate) if status.success() => Ok(rate),
        _ => {
            let tail: Vec<&str> = err.lines().rev().take(5).collect();
            Err(format!(
                "{what}: {status}, no result; stderr ends: {}",
                tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
            ))
        }
    }
}

/// Whether `stack` orders casts totally: JGroups then runs with its sequencer.
fn total_order(stack: &str) -> bool {
    use thoth::{Layer, Props};
    let props = thoth::registry().build(stack).ok().and_then(|s| s.check(Props::NONE).ok());
    props.is_some_and(|p| p.contains(Props::TOTAL))
}

/// SIGTERM to the script's process group (its JVMs included), SIGKILL a second later.
fn stop_group(pgid: u32) {
    let pgid = pgid as libc::pid_t;
    for (signal, wait) in [(libc::SIGTERM, Duration::from_secs(1)), (libc::SIGKILL, Duration::ZERO)] {
        // SAFETY: kill(2) with a negative pid signals the process group the child leads.
        unsafe {
            libc::kill(-pgid, signal);
        }
        std::thread::sleep(wait);
    }
}

/// The number after `"key":` in a flat JSON object.
fn number(line: &str, key: &str) -> Option<f64> {
    let rest = &line[line.find(&format!("\"{key}\":"))? + key.len() + 3..];
    rest[..rest.find([',', '}'])?].trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_scripts_line() {
        let l = r#"{"system":"jgroups-2.12","msgs_per_sec":123456.7,"mb_per_sec":126.4,"fifo_violations":0}"#;
        assert_eq!(number(l, "msgs_per_sec"), Some(123_456.7));
        assert_eq!(number(l, "fifo_violations"), Some(0.0));
        assert_eq!(number(l, "size"), None);
        assert!(total_order("reliable_total") && !total_order(thoth::DEFAULT_STACK));
    }
}
