//! `thoth-kv` as real processes on loopback multicast, the README's walk-through: three
//! replicas form the store's group and the trader's; one client writes, another reads; a
//! replica killed with SIGKILL does not stop the writes, and the trader drops its offer; a
//! fresh replica catches up by state transfer (shown by stopping the two old ones and
//! reading every key from it alone); every replica stopped and restarted from its
//! checkpoint (the one killed too, from its last periodic checkpoint, first: the oldest)
//! gives back every key, the newest included.
//! Hostile datagrams at a contact and at the rendezvous are dropped and counted. The other
//! strategies' failover: the first replica (the primary, the server) killed with SIGKILL,
//! and the writes go on. Each run
//! uses its own multicast addresses, group names and directories, and kills every process
//! it started (a replica is killed and reaped when dropped; clients run under a limit).

mod common;

use common::member::{Member, wait};
use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};
use thoth_bins::kv::wire::{Kind, Reply, Request, Status};

const BIN: &str = env!("CARGO_BIN_EXE_thoth-kv");

struct Net {
    args: Vec<String>,
    dir: PathBuf,
    rendezvous: String,
}

/// Addresses, a store name and a directory of the run's own (`run`: one per run in this
/// process, so runs side by side do not meet).
fn net(run: u16) -> Net {
    let pid = std::process::id();
    let port = 20_000 + (pid % 20_000) as u16 + 2 * run;
    let rendezvous = format!("239.84.74.2:{}", port + 1);
    let args = vec![
        "--group-addr".into(),
        format!("239.84.74.1:{port}"),
        "--rendezvous".into(),
        rendezvous.clone(),
        "--name".into(),
        format!("kv-test-{pid}-{run}"),
    ];
    let dir = std::env::temp_dir().join(format!("thoth-kv-test-{pid}-{run}"));
    let _ = std::fs::remove_dir_all(&dir);
    Net { args, dir, rendezvous }
}

/// A replica, with the run's group key (`thoth-kv keygen`, as the README's walk-through).
fn serve(n: &Net, name: &str, strategy: &str) -> Member {
    let key = n.dir.join("kv.key");
    if !key.exists() {
        let out = Command::new(BIN).arg("keygen").output().expect("thoth-kv keygen");
        std::fs::create_dir_all(&n.dir).unwrap();
        std::fs::write(&key, out.stdout).unwrap();
    }
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--dir", &n.dir.join(name).to_string_lossy(), "--strategy", strategy]).args(&n.args);
    cmd.args(["--key", &key.to_string_lossy()]);
    Member::spawn(name, cmd)
}

/// A client command: its status and its stdout.
fn client(n: &Net, words: &[&str]) -> (bool, String) {
    let mut args: Vec<&str> = words.to_vec();
    args.extend(n.args.iter().map(String::as_str));
    let (out, _, _) = common::run(BIN, &args, Duration::from_secs(20));
    let text = String::from_utf8_lossy(&out.stdout).trim_end().to_string();
    if !out.status.success() {
        eprintln!("{words:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    (out.status.success(), text)
}

fn put(n: &Net, k: &str, v: &str) {
    let (ok, text) = client(n, &["put", k, v]);
    assert!(ok && text.starts_with("ok"), "put {k}: {text}");
}

fn get(n: &Net, k: &str) -> String {
    let (ok, text) = client(n, &["get", k]);
    assert!(ok, "get {k}");
    text
}

fn has(m: &Member, prefix: &str) -> bool {
    m.lines().iter().any(|l| l.text.starts_with(prefix))
}

/// A replica's last view of the store, as it printed it: logical time, size, its rank.
fn last_view(n: &Net, m: &Member) -> Option<[u64; 3]> {
    let want = format!("view {} ", n.args[5]);
    let line = m.lines().into_iter().rfind(|l| l.text.starts_with(&want))?;
    let mut words = line.text[want.len()..].split(' ').map(|w| w.parse().ok());
    Some([words.next()??, words.next()??, words.next()??])
}

/// Waits until every replica's last view of the store has `size` members and each has
/// offered the store.
fn settle(n: &Net, ms: &[&Member], size: usize) {
    wait(Duration::from_secs(20), &format!("{size} replicas"), || {
        ms.iter().all(|m| last_view(n, m).is_some_and(|v| v[1] == size as u64) && has(m, "offered")).then_some(())
    })
    .unwrap_or_else(|| panic!("{size} replicas: {:?}", ms.iter().map(|m| m.lines()).collect::<Vec<_>>()));
}

/// How many replicas the trader offers, as a client sees it.
fn offered(n: &Net) -> usize {
    client(n, &["where"]).1.lines().count()
}

/// Stops a replica with SIGTERM: it withdraws its offer, leaves, saves, exits 0.
fn stop(m: &mut Member) {
    m.signal("-TERM");
    let status = m.exit_status(Duration::from_secs(10)).unwrap_or_else(|| panic!("{} stops", m.name));
    assert!(status.success(), "{}: {status}", m.name);
    assert!(has(m, "exit"), "{}", m.name);
}

#[test]
fn the_walk_through_replicas_clients_a_kill_a_catch_up_and_a_restart() {
    let n = net(0);
    let mut r: Vec<Member> = Vec::new();
    for i in 1..=3 {
        r.push(serve(&n, &format!("r{i}"), "active"));
        // One at a time: each joins the group the first formed.
        std::thread::sleep(Duration::from_millis(300));
    }
    settle(&n, &r.iter().collect::<Vec<_>>(), 3);
    wait(Duration::from_secs(10), "three offers", || (offered(&n) == 3).then_some(())).expect("three offers");
    // One client writes, another reads.
    put(&n, "a", "1");
    put(&n, "b", "2");
    assert_eq!(get(&n, "a"), "1");
    // Hostile datagrams at a contact and at the rendezvous: dropped and counted.
    let contact =
        r[0].lines().iter().find_map(|l| l.text.strip_prefix("listening ").map(String::from)).expect("a contact");
    let s = UdpSocket::bind("127.0.0.1:0").expect("a socket");
    for k in 0..50u8 {
        let junk: Vec<u8> = (0..k).map(|x| x.wrapping_mul(31)).collect();
        // Its kind (0x7f) is none, or it is cut short.
        s.send_to(&[b"TKV1\x7f".as_slice(), &junk].concat(), &contact).expect("sent");
        s.send_to(&junk, &n.rendezvous).expect("sent");
    }
    assert_eq!(get(&n, "b"), "2", "garbage stops nothing");
    // At most once at a contact: a request sent again under the same number is answered
    // from what it came to, not run again (a delete says the key was there both times).
    put(&n, "once", "x");
    let deleted = |seq: u64| {
        let op = thoth_bins::kv::Op::Delete(thoth::Bytes::from_static(b"once")).encode();
        let req = Request { kind: Kind::Write, nonce: 77, seq, body: op }.encode();
        s.send_to(&req, &contact).expect("sent");
        let mut buf = [0u8; 512];
        s.set_read_timeout(Some(Duration::from_secs(5))).expect("a timeout");
        loop {
            let (len, _) = s.recv_from(&mut buf).expect("a reply in time");
            if let Ok(r) = Reply::decode(&buf[..len])
                && r.seq == seq
            {
                return r.status;
            }
        }
    };
    let was_there = Status::Done(thoth::Bytes::from_static(&[1]));
    assert_eq!(deleted(1), was_there);
    assert_eq!(deleted(1), was_there, "the repeat is answered, not run again");
    assert_eq!(deleted(2), Status::Done(thoth::Bytes::from_static(&[0])), "a new request runs");
    // kill -9 a replica; writes go on; the trader drops its offer.
    r[1].signal("-KILL");
    let t = Instant::now();
    for k in 0..10 {
        put(&n, &format!("k{k}"), &format!("v{k}"));
    }
    eprintln!("10 puts after a kill -9 (one waits out the view change): {:?}", t.elapsed());
    wait(Duration::from_secs(15), "the dead replica's offer dropped", || (offered(&n) == 2).then_some(()))
        .expect("the trader drops the offer of a replica that stopped answering");
    // A fresh replica catches up by state transfer: the two old ones stop, and it alone
    // answers for every key.
    let mut fresh = serve(&n, "r4", "active");
    settle(&n, &[&r[0], &r[2], &fresh], 3);
    for i in [0, 2] {
        stop(&mut r[i]);
    }
    settle(&n, &[&fresh], 1);
    assert_eq!(get(&n, "a"), "1");
    for k in 0..10 {
        assert_eq!(get(&n, &format!("k{k}")), format!("v{k}"), "the fresh replica has k{k}");
    }
    // A write only the fresh replica holds, then it stops too: every replica is down.
    put(&n, "newest", "yes");
    stop(&mut fresh);
    // The contact's 50 and the rendezvous's 50 (every replica there then hears them).
    assert!(has(&r[0], "dropped 100 datagrams"), "{:?}", r[0].lines());
    assert!(has(&r[2], "dropped 50 datagrams"), "{:?}", r[2].lines());
    assert!(!has(&fresh, "dropped"), "nothing hostile reached the fresh replica");
    // Restart from the checkpoints, the oldest first (the replica killed with SIGKILL, from
    // its last periodic checkpoint): the newest is offered and taken.
    drop(r);
    let again: Vec<Member> = ["r2", "r1", "r3", "r4"]
        .iter()
        .map(|name| {
            let m = serve(&n, name, "active");
            wait(Duration::from_secs(10), "restored", || has(&m, "restored").then_some(())).expect("restored");
            std::thread::sleep(Duration::from_millis(300));
            m
        })
        .collect();
    // Its last periodic checkpoint holds at least the first two puts, made well before.
    let restored = again[0].lines().iter().find_map(|l| l.text.strip_prefix("restored ")?.parse::<u64>().ok());
    assert!(restored >= Some(2), "the killed replica's checkpoint: {:?}", again[0].lines());
    settle(&n, &again.iter().collect::<Vec<_>>(), 4);
    assert_eq!(get(&n, "newest"), "yes", "the newest checkpoint won");
    assert_eq!(get(&n, "a"), "1");
    assert_eq!(get(&n, "k9"), "v9");
    for mut m in again {
        stop(&mut m);
    }
    let _ = std::fs::remove_dir_all(&n.dir);
}

/// Each strategy but active (above) when its first replica (rank 0), the one that runs the
/// calls under primary-backup and client-server, is killed with SIGKILL: writes go on at the
/// next one; under primary-backup and cached the writes made before are still there, under
/// client-server (one copy) they went with the server.
#[test]
fn every_strategy_fails_over_when_its_first_replica_is_killed() {
    for (k, strategy) in ["primary-backup", "cached", "client-server"].into_iter().enumerate() {
        let n = net(1 + k as u16);
        let mut r: Vec<Member> = Vec::new();
        for i in 1..=3 {
            r.push(serve(&n, &format!("{strategy}-r{i}"), strategy));
            std::thread::sleep(Duration::from_millis(300));
        }
        settle(&n, &r.iter().collect::<Vec<_>>(), 3);
        // The first is not always the first started: replicas that start while the machine
        // is busy may form groups of their own and merge.
        let first = r.iter().position(|m| last_view(&n, m).is_some_and(|v| v[2] == 0)).expect("a replica of rank 0");
        let first = r.remove(first);
        put(&n, "before", "1");
        first.signal("-KILL");
        let t = Instant::now();
        put(&n, "after", "2");
        eprintln!("{strategy}: a put right after the first replica's kill -9 took {:?}", t.elapsed());
        settle(&n, &[&r[0], &r[1]], 2);
        assert_eq!(get(&n, "after"), "2", "{strategy}");
        let before = if strategy == "client-server" { "" } else { "1" };
        assert_eq!(get(&n, "before"), before, "{strategy}");
        for m in &mut r {
            stop(m);
        }
        drop(first);
        let _ = std::fs::remove_dir_all(&n.dir);
    }
}
