//! `thoth-perf` end to end: the built binary, small runs on loopback multicast.

mod common;

use common::{field, num};
use std::process::Output;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_thoth-perf");

fn run(args: &[&str], limit: Duration) -> (Output, u32, Duration) {
    common::run(BIN, args, limit)
}

fn assert_no_members_left(parent: u32) {
    common::assert_no_members_left("thoth-perf", parent)
}

fn json_lines(out: &Output) -> Vec<String> {
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    assert!(
        out.status.success(),
        "thoth-perf failed ({}); stdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<String> = stdout.lines().map(str::to_string).collect();
    assert!(lines.iter().all(|l| l.starts_with('{') && l.ends_with('}')), "not JSON lines: {stdout}");
    lines
}

const KEYS: [&str; 19] = [
    "stack",
    "secure",
    "secure_ratio",
    "cpu_us_per_msg",
    "driver",
    "rtt_p50_us",
    "raw_rtt_p50_us",
    "members",
    "senders",
    "size",
    "count",
    "msgs_per_sec",
    "mb_per_sec",
    "lost",
    "p50_us",
    "p99_us",
    "p999_us",
    "raw_msgs_per_sec",
    "ratio",
];

#[test]
fn json_row_for_the_default_group() {
    let (out, pid, _) = run(&["--count", "2000", "--size", "200", "--json"], Duration::from_secs(60));
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let l = &lines[0];
    for k in KEYS {
        field(l, k);
    }
    assert_eq!(field(l, "stack"), thoth::DEFAULT_STACK);
    assert_eq!(field(l, "secure"), "true", "sealed by default");
    assert_eq!((num(l, "members"), num(l, "senders"), num(l, "size"), num(l, "count")), (3.0, 3.0, 200.0, 2000.0));
    assert!(num(l, "msgs_per_sec") > 0.0 && num(l, "raw_msgs_per_sec") > 0.0, "{l}");
    assert!((num(l, "ratio") - num(l, "msgs_per_sec") / num(l, "raw_msgs_per_sec")).abs() < 1e-3, "{l}");
    // The default stack is reliable: nothing lost.
    assert_eq!(num(l, "lost"), 0.0, "{l}");
    assert!(num(l, "p50_us") <= num(l, "p99_us"), "{l}");
    assert_eq!(num(l, "dups"), 0.0, "{l}");
    assert_eq!(num(l, "rx_rejected"), 0.0, "{l}");
    assert!(num(l, "cpu_us_per_msg") > 0.0 && num(l, "raw_cpu_us_per_msg") > 0.0, "{l}");
    assert_no_members_left(pid);
}

/// Raw UDP at a datagram size of its own: messages packed whole, every one delivered and
/// counted once (a wrong split would make them `bad` or lose them).
#[test]
fn raw_udp_packs_messages_into_large_datagrams() {
    let args = ["--stack", "raw", "--members", "2", "--count", "3000", "--size", "200", "--raw-datagram", "8000"];
    let (out, pid, _) = run(&[&args[..], &["--rate", "20000", "--json"]].concat(), Duration::from_secs(60));
    let l = &json_lines(&out)[0];
    assert_eq!(num(l, "raw_datagram"), 8000.0, "{l}");
    assert_eq!((num(l, "lost"), num(l, "dups"), num(l, "bad")), (0.0, 0.0, 0.0), "{l}");
    assert_no_members_left(pid);
}

/// Three member processes on loopback multicast, each dropping 10 % of what it receives
/// below the reliable layers, with `chk_fifo` on top (a FIFO or exactly-once violation is an
/// error that fails the run): every message arrives exactly once, in order.
#[test]
fn reliable_stack_delivers_exactly_once_in_order_through_ten_percent_loss() {
    let args = ["--stack", "chk_fifo:reliable:drop(p=0.1)", "--count", "5000", "--size", "300", "--no-raw", "--json"];
    let (out, pid, _) = run(&args, Duration::from_secs(120));
    let l = &json_lines(&out)[0];
    assert_eq!((num(l, "members"), num(l, "senders"), num(l, "count")), (3.0, 3.0, 5000.0), "{l}");
    assert_eq!(num(l, "lost"), 0.0, "{l}");
    assert_eq!(num(l, "dups"), 0.0, "{l}");
    assert_eq!(num(l, "fifo_violations"), 0.0, "{l}");
    assert_eq!(num(l, "bad"), 0.0, "{l}");
    assert_no_members_left(pid);
}

/// Round trips through the default (reliable) stack in both driver modes, with raw UDP's
/// ping-pong beside: every ping answered, every answer heard by every member.
#[test]
fn round_trips_in_both_driver_modes() {
    for driver in ["inline", "thread"] {
        let args = ["--rtt", "--count", "300", "--size", "100", "--driver", driver, "--json"];
        let (out, pid, _) = run(&args, Duration::from_secs(60));
        let l = &json_lines(&out)[0];
        assert_eq!(field(l, "driver"), driver);
        assert_eq!((num(l, "members"), num(l, "senders"), num(l, "count")), (3.0, 2.0, 300.0), "{l}");
        assert_eq!(num(l, "lost"), 0.0, "every ping and every answer at every member: {l}");
        let (rtt, rtt99) = (num(l, "rtt_p50_us"), num(l, "rtt_p99_us"));
        assert!(rtt >= 1.0 && rtt <= rtt99, "{l}");
        assert!(num(l, "raw_rtt_p50_us") >= 1.0 && num(l, "rtt_ratio") > 0.0, "{l}");
        assert_no_members_left(pid);
    }
}

/// Many groups per member on one socket pair: every cast of every group delivered, the idle
/// phase measured (CPU and memory per group, datagrams bundled: fewer on the wire than the
/// groups made).
#[test]
fn many_groups_per_member() {
    let args = ["--groups", "30", "--idle", "1", "--duration", "1", "--rate", "200", "--size", "100", "--json"];
    let (out, pid, _) = run(&args, Duration::from_secs(90));
    let l = &json_lines(&out)[0];
    assert_eq!((num(l, "groups"), num(l, "members"), num(l, "senders")), (30.0, 3.0, 3.0), "{l}");
    assert_eq!(field(l, "stack"), thoth::GROUP);
    assert!(num(l, "count") > 0.0, "{l}");
    assert_eq!((num(l, "lost"), num(l, "dups"), num(l, "udp_drops")), (0.0, 0.0, 0.0), "{l}");
    assert!(num(l, "idle_cpu_us_per_group_s") > 0.0 && num(l, "bytes_per_group") > 0.0, "{l}");
    let (wire, made) = (num(l, "idle_datagrams_per_s"), num(l, "idle_endpoint_datagrams_per_s"));
    assert!(wire > 0.0 && wire * 2.0 < made, "idle groups share datagrams: {l}");
    assert_no_members_left(pid);
}

/// Inline members whose casts flow control holds take their events meanwhile: with a large
/// credit window and 64 KB messages the others' deliveries fill a member's event bound
/// while its casts wait, and a member that waited in the cast without taking them would
/// read no more, credit included (every member stuck until `block_timeout`).
#[test]
fn inline_members_take_their_events_while_flow_control_holds_their_casts() {
    let stack = "frag:flow(credits=8388608):stable:nak:pt2pt:pack";
    let args = ["--stack", stack, "--size", "65000", "--count", "400", "--no-raw", "--driver", "inline", "--json"];
    let (out, pid, took) = run(&args, Duration::from_secs(120));
    let l = &json_lines(&out)[0];
    assert_eq!((num(l, "lost"), num(l, "dups"), num(l, "count")), (0.0, 0.0, 400.0), "{l}");
    // About 0.3 s here; a cast that waited its whole block_timeout (5 s) makes it longer.
    assert!(took < Duration::from_secs(5), "took {took:?}: a cast waited out its block_timeout");
    assert_no_members_left(pid);
}

#[test]
fn one_sender_of_three() {
    let (out, pid, _) = run(
        &["--members", "3", "--senders", "1", "--count", "2000", "--size", "200", "--json"],
        Duration::from_secs(60),
    );
    let l = &json_lines(&out)[0];
    assert_eq!((num(l, "members"), num(l, "senders"), num(l, "count")), (3.0, 1.0, 2000.0));
    assert!(num(l, "msgs_per_sec") > 0.0, "{l}");
    assert_no_members_left(pid);
}

#[test]
fn raw_only_with_repeats_prints_each_run_and_the_median() {
    let args = ["--stack", "raw", "--members", "2", "--count", "1000", "--size", "64", "--repeat", "3", "--json"];
    let (out, pid, _) = run(&args, Duration::from_secs(60));
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert_eq!(field(&lines[3], "run"), "median");
    assert_eq!(field(&lines[0], "stack"), "raw");
    assert_eq!(field(&lines[0], "ratio"), "null");
    assert_no_members_left(pid);
}

/// `--sweep --plot --jgroups`: a row per sweep size, each with the JGroups figure of a
/// stand-in for the reference script (it prints what the real one prints, from the options
/// it was given, and fails unless given the run's members, senders and count), and an SVG
/// that parses, names the three series and has a point for each at every size in both
/// panels. A reference script that fails leaves its figure out.
#[test]
fn sweep_plots_thoth_raw_and_jgroups() {
    let dir = std::env::temp_dir().join(format!("thoth-perf-sweep-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (script, svg) = (dir.join("jgroups.sh"), dir.join("sweep.svg"));
    std::fs::write(
        &script,
        r#"[ "$*" = "--members 2 --senders all --size $6 --count 400" ] || { echo "bad options: $*" >&2; exit 1; }
echo "installing nothing" >&2
echo "{\"system\":\"jgroups-2.12\",\"size\":$6,\"msgs_per_sec\":$((100000 + $6)).5,\"fifo_violations\":0}"
"#,
    )
    .unwrap();
    let args = ["--sweep", "--members", "2", "--count", "400", "--json", "--plot", svg.to_str().unwrap()];
    let (out, pid, _) = run(&[&args[..], &["--jgroups", script.to_str().unwrap()]].concat(), Duration::from_secs(120));
    let lines = json_lines(&out);
    let sizes: Vec<f64> = lines.iter().map(|l| num(l, "size")).collect();
    assert_eq!(sizes, [64.0, 256.0, 1024.0, 4096.0, 16384.0, 60000.0]);
    for l in &lines {
        let j = num(l, "jgroups_msgs_per_sec");
        assert_eq!(j, 100_000.0 + num(l, "size") + 0.5, "{l}");
        assert!((num(l, "jgroups_ratio") - num(l, "msgs_per_sec") / j).abs() < 1e-3, "{l}");
        assert!(num(l, "raw_msgs_per_sec") > 0.0, "{l}");
    }
    let text = std::fs::read_to_string(&svg).expect("the plot was written");
    std::fs::remove_dir_all(&dir).unwrap();
    let doc = roxmltree::Document::parse(&text).expect("well-formed SVG");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let texts: Vec<&str> = doc.descendants().filter_map(|n| n.text()).collect();
    for w in ["Thoth `reliable`", "raw UDP multicast", "JGroups 2.12", "2 members, 2 sending"] {
        assert!(texts.iter().any(|t| t.contains(w)), "no `{w}` in the SVG");
    }
    let points = doc.descendants().filter(|n| n.has_tag_name("circle")).count();
    assert_eq!(points, 6 * 3 * 2, "a point per size, series and panel");
    assert_no_members_left(pid);
    // A reference that fails costs its figure, not Thoth's: said on stderr, null in JSON.
    let args = ["--members", "2", "--count", "400", "--size", "200", "--json", "--jgroups", "/nonexistent/jgroups.sh"];
    let (out, pid, _) = run(&args, Duration::from_secs(60));
    let l = &json_lines(&out)[0];
    assert_eq!((field(l, "jgroups_msgs_per_sec"), field(l, "jgroups_ratio")), ("null", "null"), "{l}");
    assert!(num(l, "msgs_per_sec") > 0.0, "{l}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no JGroups figure"));
    assert_no_members_left(pid);
}

/// Progress bars: drawn on a terminal (a pseudo-terminal from util-linux's `script`), not
/// with `--json`, and not when stderr is a pipe.
#[test]
fn progress_bars_on_a_terminal_only() {
    let on_tty = |extra: &str| {
        let cmd = format!("{BIN} --count 100000 --size 200 --no-raw {extra}");
        let (out, _, _) = common::run("script", &["-q", "-e", "-c", &cmd, "/dev/null"], Duration::from_secs(60));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{cmd}: {}\n{text}", out.status);
        text
    };
    const BAR: &str = "sent, slowest receiver has";
    let tty = on_tty("");
    assert!(tty.contains(&format!("/300,000 {BAR}")), "no bar on a terminal:\n{tty}");
    let json = on_tty("--json");
    assert!(!json.contains(BAR) && json.contains("\"msgs_per_sec\""), "a bar with --json:\n{json}");
    let (out, pid, _) = run(&["--count", "100000", "--size", "200", "--no-raw"], Duration::from_secs(60));
    assert!(out.status.success() && !String::from_utf8_lossy(&out.stderr).contains(BAR));
    assert_no_members_left(pid);
}

#[test]
fn a_dying_member_is_an_error_naming_it() {
    let args = ["--count", "500000", "--size", "200", "--debug-die-member", "1"];
    let (out, pid, took) = run(&args, Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a dead member went unnoticed; stderr:\n{stderr}");
    assert!(stderr.contains("member 1") && stderr.contains("exited"), "{stderr}");
    assert!(stderr.contains("test hook"), "the member's stderr tail is missing: {stderr}");
    assert!(took < Duration::from_secs(10), "took {took:?} to notice");
    assert_no_members_left(pid);
}

#[test]
fn multicast_that_cannot_work_is_a_clear_error() {
    // 203.0.113.0/24 is TEST-NET-3: no host has it, so joining the group on it fails at once
    // (and nothing is sent anywhere).
    let (out, pid, took) =
        run(&["--interface", "203.0.113.77", "--group", "239.84.250.9:45999"], Duration::from_secs(20));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("239.84.250.9:45999") && stderr.contains("203.0.113.77"), "{stderr}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert!(out.stdout.is_empty());
    assert_no_members_left(pid);
}

#[test]
fn bad_options_are_refused_with_a_reason() {
    for (args, why) in [
        (&["--group", "127.0.0.1:5000"][..], "not an IPv4 multicast address"),
        (&["--size", "8"], "too small"),
        (&["--stack", "no_such_layer"], "unknown layer"),
    ] {
        let (out, _, _) = run(args, Duration::from_secs(10));
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(why), "{args:?}: {stderr}");
    }
}

#[test]
fn help_lists_options_and_layers() {
    let (out, _, _) = run(&["--help"], Duration::from_secs(10));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for w in [
        "--members",
        "--senders",
        "--size",
        "--count",
        "--duration",
        "--rate",
        "--stack",
        "--json",
        "bare",
        "--insecure",
        "--vs-insecure",
        "--sweep",
        "--plot",
        "--jgroups",
        "What is measured",
    ] {
        assert!(text.contains(w), "--help lacks {w}");
    }
    let (out, _, _) = run(&["--version"], Duration::from_secs(10));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("thoth-perf {}", env!("CARGO_PKG_VERSION")));
    let (out, _, _) = run(&["--frobnicate"], Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown option `--frobnicate`"));
}

/// The cost of protection in one invocation: each repeat runs the stack sealed and
/// unprotected; `--insecure` alone runs it unprotected and says so on stderr; the key file
/// the members read is gone afterwards.
#[test]
fn sealed_against_unprotected_and_insecure_said_loudly() {
    let (out, pid, _) =
        run(&["--count", "2000", "--size", "200", "--json", "--no-raw", "--vs-insecure"], Duration::from_secs(60));
    let lines = json_lines(&out);
    let l = &lines[0];
    assert_eq!(field(l, "secure"), "true");
    assert!(num(l, "insecure_msgs_per_sec") > 0.0, "{l}");
    assert!((num(l, "secure_ratio") - num(l, "msgs_per_sec") / num(l, "insecure_msgs_per_sec")).abs() < 1e-3, "{l}");
    assert_eq!((num(l, "lost"), num(l, "insecure_lost")), (0.0, 0.0), "{l}");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("WARNING"));
    let keys: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(&format!("thoth-perf-{pid}-")))
        .collect();
    assert!(keys.is_empty(), "key files left behind: {keys:?}");
    assert_no_members_left(pid);
    let (out, pid, _) = run(&["--count", "2000", "--size", "200", "--json", "--insecure"], Duration::from_secs(60));
    let l = &json_lines(&out)[0];
    assert_eq!((field(l, "secure"), field(l, "secure_ratio")), ("false", "null"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("WARNING: running with --insecure"));
    assert_no_members_left(pid);
}
