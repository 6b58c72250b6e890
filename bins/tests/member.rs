//! `thoth-member` as real processes on loopback multicast: a group forms, survives a
//! member killed with SIGKILL (virtual synchrony checked on the JSON lines), gives a late
//! joiner the state before the stream, merges two partitions, lets members leave on end
//! of input and on SIGTERM, and casts every line of a long input before it leaves. Each
//! test uses its own multicast address and group name, and kills every process it started
//! (a `Member` is killed and reaped when dropped).

mod common;

use common::field;
use common::member::{Member, converge, delivered_in, members, no_errors, wait};
use std::collections::BTreeSet;
use std::io::Write;
use std::time::{Duration, Instant};

/// A multicast address and group name of this test's own.
fn net(test: u16) -> (String, String) {
    let pid = std::process::id();
    let port = 20_000 + (pid % 20_000) as u16 + test;
    (format!("239.84.73.{}:{port}", 1 + test), format!("member-test-{test}-{pid}"))
}

fn args(test: u16, extra: &[&str]) -> Vec<String> {
    let (addr, group) = net(test);
    let mut v = vec!["--addr".into(), addr, "--group".into(), group];
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

#[test]
fn five_members_survive_a_kill_9_with_virtual_synchrony() {
    let a = args(1, &["--stack", "chk_vsync:group"]);
    let mut ms: Vec<Member> = (0..5).map(|i| Member::start(&format!("m{i}"), &a)).collect();
    let refs: Vec<&Member> = ms.iter().collect();
    let five = converge(&refs, 5, Duration::from_secs(10));
    // The member to kill: not the coordinator (members[0]), so the survivors' coordinator
    // is unchanged and the view change is one detection plus one flush.
    let ids: Vec<String> = ms.iter().map(|m| m.me()).collect();
    let victim = ids.iter().position(|id| *id == five[2]).expect("a member of the view");
    let view5 = ms[0].events("view").last().unwrap().text.clone();
    let mut killed_at = None;
    for k in 0..150 {
        for (i, m) in ms.iter_mut().enumerate() {
            if killed_at.is_none() || i != victim {
                m.cast(&format!("m{i}-{k}"));
            }
        }
        if k == 100 {
            ms[victim].signal("-KILL");
            killed_at = Some(Instant::now());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let killed_at = killed_at.unwrap();
    let survivors: Vec<&Member> = ms.iter().enumerate().filter(|(i, _)| *i != victim).map(|(_, m)| m).collect();
    let four = converge(&survivors, 4, Duration::from_secs(10));
    assert!(!four.contains(&five[2]));
    let mut times = Vec::new();
    for m in &survivors {
        let v = m.events("view").into_iter().rfind(|l| members(&l.text) == four).unwrap();
        times.push(v.at.duration_since(killed_at));
    }
    times.sort();
    eprintln!("view change after kill -9 (heartbeat 1 s + verification + flush): {times:?}");
    assert!(times[3] < Duration::from_millis(3000), "survivors took {times:?}");
    // Everyone that moved from the 5-view to the 4-view delivered the same casts in it (the
    // same set: without an ordering layer, senders interleave differently at each member).
    let sets: Vec<BTreeSet<String>> = survivors.iter().map(|m| delivered_in(m, &view5).into_iter().collect()).collect();
    for (i, s) in sets.iter().enumerate().skip(1) {
        let differ: Vec<_> = s.symmetric_difference(&sets[0]).take(5).collect();
        assert!(differ.is_empty(), "survivor {i} and survivor 0 delivered different casts in the old view: {differ:?}");
    }
    assert!(sets[0].len() >= 400, "the stream ran in the old view: {}", sets[0].len());
    eprintln!("casts delivered in the old view by every survivor: {}", sets[0].len());
    no_errors(&survivors);
}

#[test]
fn late_joiner_gets_the_state_then_the_stream() {
    let a = args(2, &[]);
    let mut ms: Vec<Member> = (0..3).map(|i| Member::start(&format!("m{i}"), &a)).collect();
    converge(&ms.iter().collect::<Vec<_>>(), 3, Duration::from_secs(10));
    for k in 0..50 {
        ms[k % 3].cast(&format!("before-{k}"));
    }
    wait(Duration::from_secs(10), "50 deliveries", || ms.iter().all(|m| m.events("deliver").len() == 50).then_some(()))
        .expect("the first casts delivered");
    let t = Instant::now();
    ms.push(Member::start("late", &a));
    converge(&ms.iter().collect::<Vec<_>>(), 4, Duration::from_secs(10));
    let joined = ms[3].events("view").first().map(|l| l.at.duration_since(t)).unwrap();
    eprintln!("join: process start to its first view (discovery, join, flush, install): {joined:?}");
    for k in 0..20 {
        ms[0].cast(&format!("after-{k}"));
    }
    wait(Duration::from_secs(10), "the stream at the joiner", || (ms[3].events("deliver").len() == 20).then_some(()))
        .expect("the joiner follows the stream");
    let late = ms[3].lines();
    let state = late.iter().position(|l| l.text.contains("\"event\":\"state\"")).expect("a state event");
    assert_eq!(field(&late[state].text, "lines"), "50", "{}", late[state].text);
    let first = late.iter().position(|l| l.text.contains("\"event\":\"deliver\"")).unwrap();
    assert!(state < first, "the state comes before any delivery");
    assert!(late[first].text.contains("after-0"), "the stream starts right after the cut: {}", late[first].text);
    no_errors(&ms.iter().collect::<Vec<_>>());
}

#[test]
fn two_partitions_started_apart_merge_into_one_view() {
    let (addr, group) = net(3);
    let base = 30_000 + (std::process::id() % 20_000) as u16;
    let addrs: Vec<String> = (0..6).map(|i| format!("127.0.0.1:{}", base + i)).collect();
    let side = |i: usize| if i < 3 { &addrs[3..] } else { &addrs[..3] };
    let started = Instant::now();
    let ms: Vec<Member> = (0..6)
        .map(|i| {
            let a: Vec<String> = [
                "--addr",
                &addr,
                "--group",
                &group,
                "--bind",
                &addrs[i],
                "--deaf-to",
                &side(i).join(","),
                "--deaf-ms",
                "3000",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            Member::start(&format!("m{i}"), &a)
        })
        .collect();
    let (a, b) = (ms[..3].iter().collect::<Vec<_>>(), ms[3..].iter().collect::<Vec<_>>());
    converge(&a, 3, Duration::from_secs(3));
    converge(&b, 3, Duration::from_secs(3));
    let healed = started + Duration::from_millis(3000);
    let all: Vec<&Member> = ms.iter().collect();
    let six = converge(&all, 6, Duration::from_secs(10));
    let merged = ms[0].events("view").into_iter().rfind(|l| members(&l.text) == six).unwrap();
    let took = merged.at.saturating_duration_since(healed);
    eprintln!("merge after the partition healed (beacons every 500 ms): {took:?}");
    assert!(took < Duration::from_secs(3), "the merge took {took:?}");
    assert!(merged.text.contains("\"subgroups\":[["), "a merge view lists its sides: {}", merged.text);
    no_errors(&all);
}

#[test]
fn members_leave_on_end_of_input_and_on_sigterm() {
    let a = args(4, &[]);
    let mut ms: Vec<Member> = (0..3).map(|i| Member::start(&format!("m{i}"), &a)).collect();
    converge(&ms.iter().collect::<Vec<_>>(), 3, Duration::from_secs(10));
    let t = Instant::now();
    ms[2].close_stdin();
    assert!(ms[2].wait_exit(Duration::from_secs(5)), "a member leaves at the end of its input");
    assert_eq!(ms[2].events("exit").len(), 1);
    converge(&[&ms[0], &ms[1]], 2, Duration::from_secs(5));
    let took = t.elapsed();
    eprintln!("leave on end of input, until the others' view: {took:?}");
    assert!(took < Duration::from_millis(900), "a leave does not wait for failure detection: {took:?}");
    ms[1].signal("-TERM");
    assert!(ms[1].wait_exit(Duration::from_secs(5)), "SIGTERM makes a member leave");
    assert_eq!(ms[1].events("exit").len(), 1);
    converge(&[&ms[0]], 1, Duration::from_secs(5));
}

#[test]
fn unicast_members_join_through_one_seed() {
    let (_, group) = net(5);
    let base = 50_000 + (std::process::id() % 10_000) as u16;
    let addrs: Vec<String> = (0..3).map(|i| format!("127.0.0.1:{}", base + i)).collect();
    let mut ms: Vec<Member> = (0..3)
        .map(|i| {
            let a: Vec<String> =
                ["--group", &group, "--bind", &addrs[i], "--seeds", &addrs[0]].iter().map(|s| s.to_string()).collect();
            Member::start(&format!("m{i}"), &a)
        })
        .collect();
    converge(&ms.iter().collect::<Vec<_>>(), 3, Duration::from_secs(10));
    // Members 1 and 2 know only the seed; they reach each other all the same.
    ms[2].cast("from-2");
    ms[1].cast("from-1");
    for m in &ms {
        wait(Duration::from_secs(5), "both casts", || (m.events("deliver").len() == 2).then_some(()))
            .unwrap_or_else(|| panic!("{} delivered {:?}", m.name, m.events("deliver")));
    }
}

#[test]
fn a_member_leaving_at_the_end_of_a_long_input_casts_every_line_first() {
    const LINES: usize = 50_000;
    let a = args(6, &[]);
    let mut ms: Vec<Member> = (0..3).map(|i| Member::start(&format!("m{i}"), &a)).collect();
    converge(&ms.iter().collect::<Vec<_>>(), 3, Duration::from_secs(10));
    let sender = ms[0].me();
    let mut stdin = ms[0].stdin.take().expect("piped stdin");
    let t = Instant::now();
    // The pipe holds 64 KiB: the writer waits while the member casts. A member that died
    // closes the pipe, and the writer stops on the error.
    let writer = std::thread::spawn(move || -> std::io::Result<()> {
        let mut w = std::io::BufWriter::new(&mut stdin);
        for k in 0..LINES {
            writeln!(w, "line-{k}")?;
        }
        w.flush()
    }); // `stdin` is dropped, so closed, when the thread ends
    let status = ms[0].exit_status(Duration::from_secs(60));
    let took = t.elapsed();
    // The member saw the end of its input, so the writer is done, or about to mark it.
    wait(Duration::from_secs(10), "the writer", || writer.is_finished().then_some(()));
    assert!(writer.is_finished(), "the member exited without reading all its input");
    writer.join().expect("writer thread").expect("write the lines");
    eprintln!("{LINES} lines cast, then a leave: exit after {took:?}");
    assert!(status.is_some_and(|s| s.success()), "the member ended with {status:?}");
    assert_eq!(ms[0].count("exit"), 1, "one exit event");
    let want: Vec<String> = (0..LINES).map(|k| format!("line-{k}")).collect();
    for m in &ms[1..] {
        wait(Duration::from_secs(30), "every line delivered", || (m.count("deliver") >= LINES).then_some(()));
        let got: Vec<String> = m
            .events("deliver")
            .iter()
            .filter(|l| field(&l.text, "from") == sender)
            .map(|l| field(&l.text, "data").to_string())
            .collect();
        let first_wrong = got.iter().zip(&want).position(|(g, w)| g != w);
        assert!(
            got.len() == LINES && first_wrong.is_none(),
            "{} delivered {} of {LINES} lines, first out of order at {first_wrong:?}",
            m.name,
            got.len()
        );
    }
    converge(&[&ms[1], &ms[2]], 2, Duration::from_secs(10));
    no_errors(&ms.iter().collect::<Vec<_>>());
}

#[test]
fn without_a_key_it_refuses_and_says_how() {
    let (addr, group) = net(7);
    let out = std::process::Command::new(common::member::BIN)
        .args(["--addr", &addr, "--group", &group])
        .output()
        .expect("run thoth-member");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--keygen") && err.contains("--insecure"), "{err}");
    assert!(out.stdout.is_empty(), "it started: {}", String::from_utf8_lossy(&out.stdout));
}

/// Two members with the tests' key and one with a key of its own, on one address and group
/// name: the two form a view without the third, which forms its own; neither side delivers
/// a line of the other's. An insecure member is as much an outsider. Every member says in
/// its start line whether it runs secured.
#[test]
fn a_member_with_another_key_stays_outside() {
    let a = args(8, &[]);
    let other = std::env::temp_dir().join(format!("thoth-member-test-other-{}.key", std::process::id()));
    let key = std::process::Command::new(common::member::BIN).arg("--keygen").output().expect("--keygen").stdout;
    assert_eq!(String::from_utf8_lossy(&key).trim().len(), 64, "64 hex digits");
    std::fs::write(&other, &key).unwrap();
    let mut outsider_args = a.clone();
    outsider_args.extend(["--key".to_string(), other.display().to_string()]);
    let mut insecure_args = a.clone();
    insecure_args.push("--insecure".into());
    let mut ms = [
        Member::start("m0", &a),
        Member::start("m1", &a),
        Member::start("outsider", &outsider_args),
        Member::start("insecure", &insecure_args),
    ];
    let two = converge(&[&ms[0], &ms[1]], 2, Duration::from_secs(10));
    for m in &ms[2..] {
        assert!(wait(Duration::from_secs(5), "a view alone", || (m.view().len() == 1).then_some(())).is_some());
    }
    for (i, m) in ms.iter_mut().enumerate() {
        m.cast(&format!("line of {i}"));
    }
    // What the two deliver: their own lines only; what each outsider delivers: its own.
    let got = |m: &Member| -> BTreeSet<String> {
        m.events("deliver").iter().map(|l| field(&l.text, "data").to_string()).collect()
    };
    for (i, m) in ms.iter().enumerate() {
        let want: BTreeSet<String> =
            if i < 2 { ["line of 0", "line of 1"].map(String::from).into() } else { [format!("line of {i}")].into() };
        assert!(
            wait(Duration::from_secs(5), "the lines", || (got(m) == want).then_some(())).is_some(),
            "{i}: {:?}",
            got(m)
        );
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(got(&ms[0]), ["line of 0", "line of 1"].map(String::from).into(), "nothing from outside, later either");
    assert_eq!(ms[0].view(), two);
    for (i, m) in ms.iter().enumerate() {
        let start = m.events("start");
        assert!(start[0].text.contains(&format!("\"secure\":{}", i != 3)), "{}", start[0].text);
    }
    let _ = std::fs::remove_file(&other);
}

/// Member key pairs as the README sets them up: `--new-identity` per member, the public keys
/// it prints in one allow-list. Three listed members form a view; a fourth with a key of its
/// own (its list names everyone, nobody's names it) cannot join and delivers nothing of
/// theirs, nor they of it. Then a member stopped (SIGSTOP) until the other two install a
/// view without it resumes, casting with the keys it had: nothing of it is delivered in
/// the view that excluded it, and it comes back only by joining again (it is listed).
#[test]
fn key_pairs_admit_the_listed_only_and_an_excluded_member_comes_back_only_by_joining() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("member-pairs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut publics = Vec::new();
    for name in ["m0", "m1", "m2", "stranger"] {
        let out = std::process::Command::new(common::member::BIN)
            .args(["--new-identity", &dir.join(name).display().to_string()])
            .output()
            .expect("--new-identity");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        publics.push(String::from_utf8(out.stdout).unwrap());
    }
    std::fs::write(dir.join("allow"), publics[..3].concat()).unwrap();
    std::fs::write(dir.join("allow-all"), publics.concat()).unwrap();
    let keyed = |name: &str, allow: &str| {
        let (id, allow) = (dir.join(name).display().to_string(), dir.join(allow).display().to_string());
        args(9, &["--identity", &id, "--allow", &allow, "--stack", "chk_vsync:group"])
    };
    let mut ms = [
        Member::start("m0", &keyed("m0", "allow")),
        Member::start("m1", &keyed("m1", "allow")),
        Member::start("m2", &keyed("m2", "allow")),
        Member::start("stranger", &keyed("stranger", "allow-all")),
    ];
    let three = converge(&[&ms[0], &ms[1], &ms[2]], 3, Duration::from_secs(10));
    assert!(wait(Duration::from_secs(3), "the stranger alone", || (ms[3].view().len() == 1).then_some(())).is_some());
    assert!(ms[0].events("start")[0].text.contains(r#""keys":"pairs""#), "{}", ms[0].events("start")[0].text);
    for (i, m) in ms.iter_mut().enumerate() {
        m.cast(&format!("line of {i}"));
    }
    let got = |m: &Member| -> BTreeSet<String> {
        m.events("deliver").iter().map(|l| field(&l.text, "data").to_string()).collect()
    };
    let ours: BTreeSet<String> = (0..3).map(|i| format!("line of {i}")).collect();
    for m in &ms[..3] {
        assert!(wait(Duration::from_secs(5), "the lines", || (got(m) == ours).then_some(())).is_some(), "{:?}", got(m));
    }
    let stranger: BTreeSet<String> = ["line of 3".to_string()].into();
    assert!(wait(Duration::from_secs(5), "its own line", || (got(&ms[3]) == stranger).then_some(())).is_some());
    assert_eq!(ms[3].view().len(), 1, "the stranger got in");
    // Member 2 stopped (not the coordinator: three[0]) until the others exclude it.
    let ids: Vec<String> = ms.iter().map(|m| m.me()).collect();
    let (stopped, others): (usize, Vec<usize>) = if ids[2] == three[0] { (1, vec![0, 2]) } else { (2, vec![0, 1]) };
    ms[stopped].signal("-STOP");
    let two = converge(&[&ms[others[0]], &ms[others[1]]], 2, Duration::from_secs(15));
    assert!(!two.contains(&ids[stopped]));
    let view2 = ms[others[0]].events("view").into_iter().rfind(|l| members(&l.text) == two).unwrap().text;
    for k in 0..20 {
        ms[stopped].cast(&format!("excluded {k}"));
    }
    ms[stopped].signal("-CONT");
    // It finds itself out and joins again, as a listed member may.
    let back = converge(&[&ms[0], &ms[1], &ms[2]], 3, Duration::from_secs(20));
    assert!(back.contains(&ids[stopped]));
    std::thread::sleep(Duration::from_millis(500));
    let in_view2 = delivered_in(&ms[others[0]], &view2);
    assert!(!in_view2.iter().any(|l| l.contains("excluded")), "the excluded member got in: {in_view2:?}");
    assert!(!got(&ms[3]).iter().any(|l| l.starts_with("line of") && l != "line of 3"), "the stranger read the group");
    for (i, m) in ms[..3].iter().enumerate() {
        assert!(!got(m).contains("line of 3"), "{i} delivered the stranger's line");
    }
    no_errors(&[&ms[0], &ms[1], &ms[2]]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--help` says every option and exits 0; `--version` says the version; an unknown option
/// is named, with exit status 2.
/// `method url` (`http://host:port/path`) over a plain TCP connection, with time limits:
/// the status line, the headers and the body.
fn http_get(url: &str, method: &str) -> (String, String, String) {
    use std::io::Read;
    let rest = url.strip_prefix("http://").expect("an http URL");
    let (host, path) = rest.split_at(rest.find('/').unwrap());
    let mut s = std::net::TcpStream::connect(host).expect("connect to the exporter");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    // HTTP/1.0: the body as it is, not in chunks.
    write!(s, "{method} {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).expect("the answer");
    let (head, body) = text.split_once("\r\n\r\n").expect("headers and a body");
    let (status, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    (status.to_string(), headers.to_string(), body.to_string())
}

/// The value of the sample whose line starts with `prefix` (name and labels).
fn sample(body: &str, prefix: &str) -> Option<f64> {
    body.lines().find(|l| l.starts_with(prefix)).and_then(|l| l.rsplit(' ').next()).and_then(|v| v.parse().ok())
}

/// `--metrics`: a member serves its live metrics for Prometheus while the group casts; the
/// counters are the member's (its casts, counted across views), they move between scrapes,
/// and the flush histogram records the view change when a member leaves.
#[test]
fn metrics_are_served_for_prometheus_while_the_group_casts() {
    let a = args(10, &[]);
    let with: Vec<String> = a.iter().cloned().chain(["--metrics".into(), "127.0.0.1:0".into()]).collect();
    let mut ms = [Member::start("m0", &with), Member::start("m1", &a), Member::start("m2", &a)];
    converge(&ms.iter().collect::<Vec<_>>(), 3, Duration::from_secs(10));
    let line = ms[0].events("metrics").first().expect("a metrics event").text.clone();
    let url = field(&line, "addr").to_string();
    assert!(url.starts_with("http://127.0.0.1:") && url.ends_with("/metrics"), "{line}");
    let mut scraped = Vec::new();
    for round in 1..=2 {
        if round == 2 {
            // A view change m0 takes part in: m2 leaves.
            ms[2].close_stdin();
            wait(Duration::from_secs(10), "a view of two", || (ms[0].view().len() == 2).then_some(()))
                .expect("m2 left");
        }
        for k in 0..40 {
            ms[0].cast(&format!("r{round}-{k}"));
        }
        let n = 40 * round;
        wait(Duration::from_secs(10), "the casts delivered", || {
            ms[..2].iter().all(|m| m.events("deliver").len() == n).then_some(())
        })
        .expect("every cast delivered");
        let (status, headers, body) = http_get(&url, "GET");
        assert!(status.contains(" 200 "), "{status}\n{headers}\n{body}");
        assert!(headers.to_ascii_lowercase().contains("content-type: application/openmetrics-text"), "{headers}");
        assert_eq!(body.lines().last(), Some("# EOF"), "{:?}", &body[body.len().saturating_sub(300)..]);
        let casts = sample(&body, "thoth_layer_nak_casts_total{").unwrap_or_else(|| panic!("no nak casts in\n{body}"));
        assert_eq!(casts, n as f64, "the member's own casts, all views together");
        assert!(sample(&body, "thoth_endpoint_delivered_casts_total ").is_some_and(|d| d >= n as f64), "{body}");
        let flushes = sample(&body, "thoth_layer_gms_flush_seconds_count{").expect("the flush histogram");
        assert!(round == 1 || flushes >= 1.0, "no flush recorded:\n{body}");
        scraped.push(casts);
    }
    assert!(scraped[1] > scraped[0], "the counters moved between scrapes: {scraped:?}");
    assert!(http_get(&url.replace("/metrics", "/other"), "GET").0.contains(" 404 "));
    assert!(http_get(&url, "POST").0.contains(" 405 "));
    // Every line says when it was printed, in seconds since the epoch, in order.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    let ts: Vec<f64> = ms[0].lines().iter().map(|l| common::num(&l.text, "ts")).collect();
    assert!(ts.iter().all(|t| (now - 120.0..=now).contains(t)), "{ts:?} against {now}");
    assert!(ts.windows(2).all(|w| w[0] <= w[1]), "{ts:?}");
    no_errors(&ms.iter().collect::<Vec<_>>());
}

#[test]
fn help_version_and_an_unknown_option() {
    let run = |arg: &str| std::process::Command::new(common::member::BIN).arg(arg).output().expect("run thoth-member");
    let help = run("--help");
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(help.status.success(), "{help:?}");
    for o in ["--key", "--identity", "--allow", "--insecure", "--keygen", "--new-identity", "--group", "--seeds"] {
        assert!(text.contains(o), "{o} is not in --help:\n{text}");
    }
    let version = run("--version");
    assert_eq!(String::from_utf8_lossy(&version.stdout).trim(), format!("thoth-member {}", env!("CARGO_PKG_VERSION")));
    let bogus = run("--bogus");
    assert_eq!(bogus.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bogus.stderr).contains("unknown option `--bogus`"), "{bogus:?}");
    // The start line says the order casts are delivered in, by the stack's properties.
    let (addr, group) = net(11);
    for (stack, order) in [("group", "fifo"), ("total", "total"), ("gms:heartbeat:reliable_causal", "causal")] {
        let m = Member::start(
            stack,
            &["--addr".into(), addr.clone(), "--group".into(), group.clone(), "--stack".into(), stack.into()],
        );
        let start = wait(Duration::from_secs(10), "the start line", || m.events("start").first().cloned()).unwrap();
        assert_eq!(field(&start.text, "order"), order, "{}", start.text);
    }
}
