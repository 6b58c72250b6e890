//! How the benchmarks' member processes meet, parent and member side: each member opens its
//! sockets and says `READY addr` (its node's unicast address, then `/` and whatever else it
//! wants the others to know), the parent sends every member the group key it made for the
//! run (`KEY`, on the member's standard input: a pipe only the two hold, never a command
//! line) and `PEERS` with all the lines, each member says `ARMED` once its group is built,
//! and from there the parent drives it with lines of its own (`GO ...`, `QUIT`). Used by
//! `thoth-rpc-perf` and `thoth-kv-perf`; their groups are sealed under the key.

use crate::perf::procs::Procs;
use std::io::BufRead;
use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};
use thoth::udp::{Sockets, UdpConfig, endpoint_id};
use thoth::{Config, EndpointId, GroupId, GroupSecret, Security};

/// How long a member may take to answer the parent at each stage.
pub const STAGE: Duration = Duration::from_secs(60);

/// Parent side: starts one member per argument list and waits until all are armed.
pub fn start(args: Vec<Vec<String>>) -> Result<Procs, String> {
    let n = args.len();
    let mut procs = Procs::spawn(args)?;
    let until = Instant::now() + STAGE;
    let mut ready = vec![String::new(); n];
    let mut got = 0;
    while got < n {
        let (i, line) = procs.next(until)?.ok_or("members did not start in time")?;
        if let Some(addrs) = line.strip_prefix("READY ") {
            ready[i] = addrs.to_string();
            got += 1;
        }
    }
    procs.send_all(&format!("KEY {}", GroupSecret::generate().to_hex()))?;
    procs.send_all(&format!("PEERS {}", ready.join(" ")))?;
    let mut armed = 0;
    while armed < n {
        let (_, line) = procs.next(until)?.ok_or("members did not arm in time")?;
        armed += (line == "ARMED") as usize;
    }
    Ok(procs)
}

/// Parent side: member `i`'s `RESULT` line's numbers, within `STAGE`.
pub fn result(procs: &mut Procs, i: usize) -> Result<Vec<f64>, String> {
    let until = Instant::now() + STAGE;
    loop {
        let (from, line) = procs.next(until)?.ok_or(format!("member {i} did not finish in time"))?;
        if let (true, Some(r)) = (from == i, line.strip_prefix("RESULT ")) {
            return r.split(' ').map(|x| x.parse::<f64>().map_err(|e| format!("{r}: {e}"))).collect();
        }
    }
}

/// The parent's lines as a member reads them, from a thread of their own (an inline member
/// keeps serving while it waits).
pub type Lines = mpsc::Receiver<Result<String, String>>;

/// Member side: what it learned from the parent.
pub struct Joined {
    pub socks: Sockets,
    pub lines: Lines,
    /// Every member's node address, and what it added after it.
    pub addrs: Vec<SocketAddr>,
    pub extra: Vec<String>,
    /// The group key the parent made for the run.
    secret: GroupSecret,
}

impl Joined {
    /// Opens the node's sockets (fan-out on 127.0.0.1, spinning for `busy_poll` when inline),
    /// says `READY addr/extra`, and reads the `PEERS` line.
    pub fn meet(busy_poll: Duration, extra: &str) -> Result<Joined, String> {
        let cfg = UdpConfig { fanout: true, busy_poll, ..UdpConfig::default() };
        let socks = Sockets::open(&cfg).map_err(|e| format!("sockets: {e}"))?;
        println!("READY {}/{extra}", socks.local_addr());
        let (line_tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in std::io::stdin().lock().lines() {
                if line_tx.send(line.map_err(|e| e.to_string())).is_err() {
                    return;
                }
            }
        });
        let key_line = lines.recv().map_err(|_| "the parent went away")??;
        let secret =
            GroupSecret::from_hex(key_line.strip_prefix("KEY ").ok_or("expected KEY")?).map_err(|e| e.to_string())?;
        let peers_line = lines.recv().map_err(|_| "the parent went away")??;
        let (mut addrs, mut extras) = (Vec::new(), Vec::new());
        for p in peers_line.strip_prefix("PEERS ").ok_or("expected PEERS")?.split(' ') {
            let (a, b) = p.split_once('/').ok_or("a peer is addr/extra")?;
            addrs.push(a.parse().map_err(|e| format!("{a}: {e}"))?);
            extras.push(b.to_string());
        }
        Ok(Joined { socks, lines, addrs, extra: extras, secret })
    }

    /// The endpoint configuration of a fixed group of every member, named `name`, sealed
    /// under the run's key.
    pub fn config(&self, name: &str) -> Config {
        let ids: Vec<EndpointId> = self.addrs.iter().map(|&a| endpoint_id(a)).collect();
        Config::new(GroupId::named(name), self.socks.id(), ids).secured(Security::shared(self.secret.clone()))
    }
}
