//! `thoth-probe` against real `thoth-member` processes on loopback multicast, secured under
//! the tests' group key: three members started with `--probe` answer with their view and
//! their layers' counters (the caster's own casts among them), a fourth started without it
//! does not; `--member` asks one member only; a probe under another key gets no answer.
//! Every process a test starts is killed and reaped when dropped (`Member`) or when it
//! overstays its time limit (`common::run`).

mod common;

use common::member::{Member, converge, keyed, no_errors, wait};
use common::{field, run};
use std::time::Duration;

const PROBE: &str = env!("CARGO_BIN_EXE_thoth-probe");

fn net() -> (String, String) {
    let pid = std::process::id();
    (format!("239.84.74.1:{}", 20_000 + (pid % 20_000) as u16), format!("probe-test-{pid}"))
}

/// Runs `thoth-probe` with `args` (within 10 s): its exit status and stdout.
fn probe(args: &[String]) -> (bool, String) {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (out, _, _) = run(PROBE, &args, Duration::from_secs(10));
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn probe_reads_the_view_and_counters_of_the_members_that_allow_it() {
    let (addr, group) = net();
    let base = vec!["--addr".to_string(), addr.clone(), "--group".into(), group.clone()];
    let with: Vec<String> = base.iter().cloned().chain(["--probe".to_string()]).collect();
    let mut ms: Vec<Member> = (0..3).map(|i| Member::start(&format!("m{i}"), &with)).collect();
    ms.push(Member::start("quiet", &base));
    converge(&ms.iter().collect::<Vec<_>>(), 4, Duration::from_secs(10));
    for k in 0..30 {
        ms[0].cast(&format!("line {k}"));
    }
    wait(Duration::from_secs(10), "30 deliveries", || ms.iter().all(|m| m.events("deliver").len() == 30).then_some(()))
        .expect("every line delivered");

    // The whole group, as JSON: the three that allow it, each with the view of four.
    let keyed_base = keyed(&base);
    let json: Vec<String> =
        keyed_base.iter().cloned().chain(["--json".into(), "--wait-ms".into(), "1500".into()]).collect();
    let (ok, out) = probe(&json);
    assert!(ok, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    let mut answered: Vec<String> = lines.iter().map(|l| field(l, "member").to_string()).collect();
    answered.sort();
    let mut allowing: Vec<String> = ms[..3].iter().map(Member::me).collect();
    allowing.sort();
    assert_eq!(answered, allowing, "the members started with --probe answer, the other does not:\n{out}");
    let view = ms[0].view();
    for l in &lines {
        for m in &view {
            assert!(l.contains(&format!("\"{m}\"")), "a member of the view missing in {l}");
        }
        for layer in ["gms", "heartbeat", "nak", "frag"] {
            assert!(l.contains(&format!(r#""layer":"{layer}""#)), "no {layer} in {l}");
        }
    }
    let caster = lines.iter().find(|l| field(l, "member") == ms[0].me()).unwrap();
    let nak = &caster[caster.find(r#""layer":"nak""#).unwrap()..];
    assert_eq!(field(nak, "casts"), "30", "the caster's own casts: {nak}");

    // One member, by its address, as a table: it alone, and at once.
    let one = field(&ms[1].events("start")[0].text, "addr").to_string();
    let table: Vec<String> =
        keyed_base.iter().cloned().chain(["--member".into(), one, "--wait-ms".into(), "5000".into()]).collect();
    let started = std::time::Instant::now();
    let (ok, out) = probe(&table);
    assert!(ok, "{out}");
    assert!(started.elapsed() < Duration::from_secs(4), "it waits only until the member asked has answered");
    assert_eq!(out.lines().filter(|l| l.starts_with("member ")).count(), 1, "{out}");
    assert!(out.contains(&format!("member {}", ms[1].me())) && out.contains("  nak "), "{out}");

    // The member without --probe, asked alone: no answer, status 1.
    let quiet = field(&ms[3].events("start")[0].text, "addr").to_string();
    let ask: Vec<String> =
        keyed_base.iter().cloned().chain(["--member".into(), quiet, "--wait-ms".into(), "500".into()]).collect();
    assert_eq!(probe(&ask), (false, String::new()));

    // Another key: nothing it can read comes back, and nothing it sent is answered.
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let other = dir.join(format!("probe-other-{}.key", std::process::id()));
    let k = std::process::Command::new(common::member::BIN).arg("--keygen").output().unwrap();
    std::fs::write(&other, &k.stdout).unwrap();
    let wrong: Vec<String> =
        [&["--key".to_string(), other.display().to_string(), "--wait-ms".into(), "800".into()][..], &base].concat();
    assert_eq!(probe(&wrong), (false, String::new()));
    let _ = std::fs::remove_file(&other);
    no_errors(&ms.iter().collect::<Vec<_>>());
}
