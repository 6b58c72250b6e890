//! Group RPC across processes. This process is member 0 of a group of three and calls; the
//! other two are child processes of this same test binary (the test `child`, ignored unless
//! asked for by name and by `THOTH_RPC_CHILD`: a member that serves until its stdin closes
//! or a minute passes). The group runs the `group` stack (membership, heartbeat detection,
//! the reliable layers) with a quick detector, in fan-out mode on 127.0.0.1.
//!
//! Checked: every call type (sync, answer handler, promise) and every mode reaches the
//! other processes, and a call to one member only that member; then a member killed
//! (SIGKILL) while it holds a call is that call's fault (`Fault::Left`) once the view
//! excludes it, well within the call's timeout, the call ending with the survivors'
//! answers; and calls go on in the smaller group. Every process the test starts, it stops
//! by its handle (`Kids`); every wait is bounded.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};
use thoth_grpc::{Bounds, Fault, Mode, Node, Outcome, Request, RpcConfig};
use thoth_stack::testing::random_u64;
use thoth_stack::udp::{Sockets, UdpConfig};
use thoth_stack::{Bytes, Config, Endpoint, EndpointId, GroupId};

const SPEC: &str = "gms:heartbeat(period_ms=50,timeout_ms=600):reliable";
/// Answers `args@pid`.
const ECHO: u64 = 1;
/// Answered by every member but the child numbered 2, which keeps the request unanswered.
const HOLD: u64 = 2;
const CHILD: &str = "THOTH_RPC_CHILD";

fn node(socks: Sockets, group: GroupId, addrs: &[std::net::SocketAddr], ids: Vec<EndpointId>) -> Node {
    let cfg = Config::new(group, socks.id(), ids);
    let ep = Endpoint::from_spec(cfg, &thoth::registry(), SPEC).expect("the stack builds");
    Node::start(socks, ep, addrs, RpcConfig { nonce: random_u64(), cache: Bounds::default() }, 2).expect("node")
}

fn serve(n: &Node, index: usize, held: Arc<Mutex<Vec<thoth_grpc::Responder>>>) {
    let pid = std::process::id();
    n.serve(ECHO, move |inc| {
        let v = format!("{}@{pid}", String::from_utf8_lossy(&inc.args));
        inc.responder.reply(Ok(Bytes::from(v)));
    });
    n.serve(HOLD, move |inc| {
        if index == 2 {
            held.lock().expect("held").push(inc.responder);
        } else {
            inc.responder.reply(Ok(Bytes::from(format!("held@{pid}"))));
        }
    });
}

/// A member in a child process: prints `ADDR addr`, reads `PEERS group a b c`, serves.
#[test]
#[ignore = "a member process of `calls_across_processes`, run by it"]
fn child() {
    let Ok(index) = std::env::var(CHILD) else { return };
    let index: usize = index.parse().expect("a child's number");
    let socks = Sockets::open(&UdpConfig { fanout: true, ..UdpConfig::default() }).expect("sockets");
    println!("ADDR {}", socks.local_addr());
    // The parent's lines, then the end of its stdin (or of the parent).
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            let _ = tx.send(Some(line));
        }
        let _ = tx.send(None);
    });
    let peers = rx.recv_timeout(Duration::from_secs(10)).ok().flatten().expect("a PEERS line");
    let mut f = peers.strip_prefix("PEERS ").expect("PEERS").split(' ');
    let group = GroupId(f.next().expect("group").parse().expect("group"));
    let addrs: Vec<std::net::SocketAddr> = f.map(|a| a.parse().expect("addr")).collect();
    let ids = addrs.iter().map(|&a| thoth_stack::udp::endpoint_id(a)).collect();
    let n = node(socks, group, &addrs, ids);
    let held = Arc::new(Mutex::new(Vec::new()));
    serve(&n, index, held.clone());
    // Until the parent closes stdin (or is gone), at most a minute.
    let until = Instant::now() + Duration::from_secs(60);
    while let Ok(Some(_)) = rx.recv_timeout(until.saturating_duration_since(Instant::now())) {}
    drop(held);
    n.shutdown();
}

/// The child processes, killed and reaped on drop whatever happened.
struct Kids(Vec<(Child, Option<ChildStdin>)>);

impl Drop for Kids {
    fn drop(&mut self) {
        for (c, stdin) in &mut self.0 {
            drop(stdin.take());
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Starts child `index`; its address, once it printed it (within 10 s).
fn spawn(index: usize, kids: &mut Kids) -> std::net::SocketAddr {
    let exe = std::env::current_exe().expect("the test binary");
    let mut c = Command::new(exe)
        .args(["--exact", "child", "--include-ignored", "--nocapture", "--test-threads=1"])
        .env(CHILD, index.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("a child process");
    let out = c.stdout.take().expect("piped");
    let stdin = c.stdin.take();
    kids.0.push((c, stdin));
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            // After the test harness's own words on the same line ("test child ... ").
            if let Some(at) = line.find("ADDR ") {
                let _ = tx.send(line[at + 5..].trim().to_string());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(10)).expect("the child's address").parse().expect("an address")
}

/// Good answers, sorted.
fn values(o: &Outcome) -> Vec<String> {
    let mut v: Vec<String> = o.values().map(|(_, v)| String::from_utf8_lossy(v).into_owned()).collect();
    v.sort();
    v
}

fn sorted(v: impl Iterator<Item = String>) -> Vec<String> {
    let mut v: Vec<String> = v.collect();
    v.sort();
    v
}

#[test]
fn calls_across_processes() {
    let socks = Sockets::open(&UdpConfig { fanout: true, ..UdpConfig::default() }).expect("sockets");
    let mut kids = Kids(Vec::new());
    let addrs = vec![socks.local_addr(), spawn(1, &mut kids), spawn(2, &mut kids)];
    let pids: Vec<u32> = std::iter::once(std::process::id()).chain(kids.0.iter().map(|(c, _)| c.id())).collect();
    let group = GroupId(random_u64());
    let line = format!("PEERS {} {}\n", group.0, addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(" "));
    for (_, stdin) in &mut kids.0 {
        stdin.as_mut().expect("open").write_all(line.as_bytes()).expect("to the child");
    }
    let ids: Vec<EndpointId> = addrs.iter().map(|&a| thoth_stack::udp::endpoint_id(a)).collect();
    let me = node(socks, group, &addrs, ids.clone());
    serve(&me, 0, Arc::new(Mutex::new(Vec::new())));
    let echo = |tag: &str| Request::group(ECHO, tag.to_string()).timeout(Duration::from_secs(10));
    let all = sorted(pids.iter().map(|p| format!("x@{p}")));

    // Sync, every mode.
    assert_eq!(values(&me.call(echo("x")).expect("sync")), all);
    let first = me.call(echo("x").mode(Mode::First)).expect("first");
    assert!(!values(&first).is_empty() && values(&first).iter().all(|v| all.contains(v)), "{first:?}");
    assert!(values(&me.call(echo("x").mode(Mode::Majority)).expect("majority")).len() >= 2);
    let none = me.call(echo("x").mode(Mode::None)).expect("one-way");
    assert!(none.answers.is_empty() && !none.timed_out);
    // An answer handler; promises, completing in call order.
    let (tx, rx) = mpsc::channel();
    me.call_then(echo("t"), move |r| {
        let _ = tx.send(r);
    })
    .expect("call_then");
    let then = rx.recv_timeout(Duration::from_secs(12)).expect("the handler ran").expect("an outcome");
    assert_eq!(values(&then).len(), 3);
    let promises: Vec<_> = (0..3).map(|i| me.promise(echo(&format!("p{i}"))).expect("promise")).collect();
    for (i, p) in promises.into_iter().enumerate() {
        let out = p.wait().expect("a promised outcome");
        assert!(values(&out).iter().all(|v| v.starts_with(&format!("p{i}@"))), "{out:?}");
    }
    // To one member only: the child numbered 1.
    let one = me.call(Request::member(ids[1], ECHO, "o")).expect("to one");
    assert_eq!(values(&one), [format!("o@{}", pids[1])]);

    // A member killed while it holds a call: its fault, once the view excludes it.
    let held = me.promise(Request::group(HOLD, "h").timeout(Duration::from_secs(20))).expect("hold");
    std::thread::sleep(Duration::from_millis(300));
    let killed = Instant::now();
    kids.0[1].0.kill().expect("kill -9 the child numbered 2");
    let out = held.wait().expect("the held call ends");
    let waited = killed.elapsed();
    assert!(!out.timed_out && waited < Duration::from_secs(10), "ended {waited:?} after the kill: {out:?}");
    assert_eq!(values(&out), sorted(pids[..2].iter().map(|p| format!("held@{p}"))));
    assert!(out.answers.iter().any(|(id, a)| *id == ids[2] && *a == Some(Err(Fault::Left))), "{out:?}");
    // The group goes on without it.
    assert_eq!(values(&me.call(echo("y")).expect("sync")), sorted(pids[..2].iter().map(|p| format!("y@{p}"))));
    me.shutdown();
    drop(kids);
}
