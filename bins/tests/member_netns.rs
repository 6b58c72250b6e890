//! `thoth-member` across network namespaces over multicast, as across hosts: the test
//! creates two network namespaces joined by a veth pair (iproute2), gives each end an
//! address and multicast, runs one `thoth-member --interface <that address>` in each
//! (`ip netns exec`, which execs the member: the child is the member process), and checks
//! that they form one view of both and exchange a line each way, then leave on end of
//! input with status 0 — over IPv4 and over IPv6. No traffic touches the host's own
//! interfaces: both veth ends are created inside the namespaces.
//!
//! Namespaces and links are named after the test process's pid and a counter, so parallel
//! runs do not collide; a guard deletes them on every path, after the members (declared
//! after it) have been killed and reaped, and the test checks that they are gone. Where
//! `ip` is missing or namespaces cannot be created (not root), the test says why on stderr
//! and returns; any other setup failure fails it.

mod common;

use common::field;
use common::member::{BIN, Member, converge, keyed, wait};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Two network namespaces joined by a veth pair; deleted (with the pair) when dropped.
struct Link {
    ns: [String; 2],
    dev: [String; 2],
    /// Namespaces created so far (a failed setup deletes what it made).
    made: usize,
}

/// Runs `ip args`; its stderr on failure.
fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip").args(args).output().map_err(|e| format!("cannot run `ip`: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("`ip {}` failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

impl Link {
    /// The namespaces and the pair, each end up with multicast on and `addrs[i]` (with its
    /// prefix length). `None` (and the reason on stderr) where namespaces cannot be made.
    fn create(addrs: [&str; 2]) -> Option<Link> {
        let (pid, k) = (std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let mut link = Link {
            ns: [format!("thoth-test-{pid}-{k}-a"), format!("thoth-test-{pid}-{k}-b")],
            // Interface names hold at most 15 bytes: "th" + pid (at most 7 digits) + ...
            dev: [format!("th{pid}v{k}a"), format!("th{pid}v{k}b")],
            made: 0,
        };
        if let Err(e) = ip(&["netns", "add", &link.ns[0]]) {
            let cannot = ["cannot run", "Operation not permitted", "Permission denied"];
            assert!(cannot.iter().any(|c| e.contains(c)), "creating a network namespace failed: {e}");
            eprintln!("SKIPPED: cannot create network namespaces here ({e})");
            return None;
        }
        link.made = 1;
        let (ns, dev) = (link.ns.clone(), link.dev.clone());
        ip(&["netns", "add", &ns[1]]).unwrap();
        link.made = 2;
        ip(&["-n", &ns[0], "link", "add", &dev[0], "type", "veth", "peer", "name", &dev[1], "netns", &ns[1]]).unwrap();
        for i in 0..2 {
            ip(&["-n", &ns[i], "link", "set", "lo", "up"]).unwrap();
            ip(&["-n", &ns[i], "link", "set", &dev[i], "multicast", "on"]).unwrap();
            let mut add = vec!["-n", &ns[i], "addr", "add", addrs[i], "dev", &dev[i]];
            if addrs[i].contains(':') {
                add.push("nodad"); // usable at once, not after duplicate address detection
            }
            ip(&add).unwrap();
            ip(&["-n", &ns[i], "link", "set", &dev[i], "up"]).unwrap();
        }
        Some(link)
    }

    /// `thoth-member args...` inside namespace `i`.
    fn member(&self, i: usize, args: &[String]) -> Member {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns[i], BIN]).args(keyed(args));
        Member::spawn(&format!("member in {}", self.ns[i]), cmd)
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        if self.made == 2 {
            // The pair goes with either namespace; deleting it first leaves nothing behind
            // should a namespace outlive its deletion (a process still inside).
            if let Err(e) = ip(&["-n", &self.ns[0], "link", "del", &self.dev[0]]) {
                eprintln!("{e}");
            }
        }
        for ns in &self.ns[..self.made] {
            if let Err(e) = ip(&["netns", "del", ns]) {
                eprintln!("{e}");
            }
        }
    }
}

/// The network namespaces whose name carries this test process's pid.
fn namespaces_left() -> Vec<String> {
    let out = Command::new("ip").args(["netns", "list"]).output().expect("ip netns list");
    let tag = format!("thoth-test-{}-", std::process::id());
    String::from_utf8_lossy(&out.stdout).lines().filter(|l| l.contains(&tag)).map(str::to_string).collect()
}

/// Two members, one per namespace, on `group` over the veth pair addressed `addrs`.
fn a_group_forms_across_namespaces(addrs: [&str; 2], group: &str) {
    let made = {
        let Some(link) = Link::create(addrs) else { return };
        let name = link.ns[0].clone();
        let iface = |i: usize| addrs[i].split('/').next().unwrap().to_string();
        let args = |i: usize| -> Vec<String> {
            ["--interface", &iface(i), "--addr", group, "--group", &name].iter().map(|s| s.to_string()).collect()
        };
        let mut ms = [link.member(0, &args(0)), link.member(1, &args(1))];
        let ids: Vec<String> = ms.iter().map(Member::me).collect();
        for (i, m) in ms.iter().enumerate() {
            let start = m.events("start");
            let addr: std::net::SocketAddr = field(&start[0].text, "addr").parse().expect("a socket address");
            assert_eq!(addr.ip().to_string(), iface(i), "{} is bound to its interface", m.name);
        }
        let mut view = converge(&[&ms[0], &ms[1]], 2, Duration::from_secs(10));
        view.sort();
        let mut both = ids.clone();
        both.sort();
        assert_eq!(view, both, "one view of both members");
        ms[0].cast("from-a");
        ms[1].cast("from-b");
        for m in &ms {
            wait(Duration::from_secs(10), "both lines", || (m.count("deliver") >= 2).then_some(()));
            let mut got: Vec<(String, String)> = m
                .events("deliver")
                .iter()
                .map(|l| (field(&l.text, "from").to_string(), field(&l.text, "data").to_string()))
                .collect();
            got.sort();
            let mut want = vec![(ids[0].clone(), "from-a".to_string()), (ids[1].clone(), "from-b".to_string())];
            want.sort();
            assert_eq!(got, want, "{} delivered", m.name);
        }
        for m in ms.iter_mut() {
            m.close_stdin();
            let status = m.exit_status(Duration::from_secs(10));
            assert!(status.is_some_and(|s| s.success()), "{} ended with {status:?}", m.name);
            assert_eq!(m.count("exit"), 1, "{}", m.name);
        }
        link.ns.clone()
    }; // the members are reaped, then the namespaces deleted
    let left: Vec<String> = namespaces_left().into_iter().filter(|n| made.iter().any(|m| n.starts_with(m))).collect();
    assert_eq!(left, Vec::<String>::new(), "namespaces left behind");
}

#[test]
fn a_group_forms_across_network_namespaces_over_ipv4_multicast() {
    a_group_forms_across_namespaces(["10.213.0.1/24", "10.213.0.2/24"], "239.84.75.1:47475");
}

#[test]
fn a_group_forms_across_network_namespaces_over_ipv6_multicast() {
    a_group_forms_across_namespaces(["fd54:7468::1/64", "fd54:7468::2/64"], "[ff15::7468:75]:47475");
}
