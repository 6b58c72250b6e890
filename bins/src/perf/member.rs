//! A member process (`thoth-perf member ...`): opens its sockets, says `READY`, learns the
//! group from the parent, and then for each round sends (if it is a sender) and receives,
//! reporting `SENT` and `RESULT`. Its stdin is a dead-man switch: if the parent goes away,
//! the member exits.

use super::args::{MemberOpts, Mode};
use super::clock::{now_ns, sleep_until, udp_drops};
use super::net::{Net, Tx};
use super::proto::{Ctl, HDR, Hdr, MemberResult};
use super::raw::{self, RawNet};
use super::tally::Tally;
use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

/// A receiver is done this long after its last delivery once the senders have finished.
const QUIET: Duration = Duration::from_millis(500);
/// ... and at the latest this long after the senders have finished.
pub const FINISH_CAP: Duration = Duration::from_secs(20);
/// How often a member reports progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);
/// Exit status of a member whose parent went away.
const ORPHANED: i32 = 3;
/// Exit status of the member told to die (test hook).
const DIED_ON_PURPOSE: i32 = 7;

/// Writes one line to the parent; a parent that is gone ends the member.
pub fn emit(line: &str) {
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
        std::process::exit(ORPHANED);
    }
}

/// Control lines from the parent, read by a thread of their own.
pub struct Control {
    rx: mpsc::Receiver<Result<Ctl, String>>,
}

impl Control {
    pub fn start() -> Control {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                let ctl = Ctl::parse(&line);
                let quit = ctl == Ok(Ctl::Quit);
                if tx.send(ctl).is_err() || quit {
                    return;
                }
            }
            eprintln!("thoth-perf member: the parent went away; exiting");
            std::process::exit(ORPHANED);
        });
        Control { rx }
    }

    /// The next control line, waiting at most `wait`.
    pub fn wait(&self, wait: Duration, what: &str) -> Result<Ctl, String> {
        match self.rx.recv_timeout(wait) {
            Ok(c) => c,
            Err(_) => Err(format!("no {what} from the parent within {} s", wait.as_secs())),
        }
    }

    pub fn try_next(&self) -> Result<Option<Ctl>, String> {
        match self.rx.try_recv() {
            Ok(c) => c.map(Some),
            Err(_) => Ok(None),
        }
    }
}

/// Runs a member process; returns its exit status.
pub fn main(o: MemberOpts) -> i32 {
    match serve(&o) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("thoth-perf member {}: {e}", o.index);
            emit(&format!("ERROR {e}"));
            1
        }
    }
}

fn serve(o: &MemberOpts) -> Result<(), String> {
    let ctl = Control::start();
    match &o.mode {
        Mode::Stack(spec) => super::stack::serve(o, spec, &ctl),
        Mode::Raw => {
            let setup = super::stack::raw_setup(o)?;
            let socks = raw::open(&setup).map_err(|e| format!("cannot open sockets for {}: {e}", o.group))?;
            let addr = socks.unicast.local_addr().map_err(|e| e.to_string())?;
            ready(addr, socks.granted.0, socks.granted.1);
            let peers = wait_peers(o, &ctl)?;
            let net = RawNet::new(socks, o.group, o.fanout, &peers).map_err(|e| e.to_string())?;
            emit(&format!("ARMED {}", raw::MAX_PAYLOAD));
            rounds(net, o, &ctl)
        }
    }
}

/// Tells the parent this member's unicast address and the buffer sizes it was granted.
pub fn ready(addr: SocketAddr, recv_buffer: usize, send_buffer: usize) {
    emit(&format!("READY {addr} {recv_buffer} {send_buffer}"));
}

/// The members' unicast addresses, in rank order, from the parent.
pub fn wait_peers(o: &MemberOpts, ctl: &Control) -> Result<Vec<SocketAddr>, String> {
    match ctl.wait(Duration::from_secs(30), "PEERS")? {
        Ctl::Peers(p) if p.len() == o.members => Ok(p),
        other => Err(format!("expected PEERS with {} addresses, got `{}`", o.members, other.line())),
    }
}

/// Runs every round on an armed path, then waits for `QUIT`.
pub fn rounds<N: Net>(mut net: N, o: &MemberOpts, ctl: &Control) -> Result<(), String> {
    for round in 1..=o.rounds {
        let t0 = match ctl.wait(o.cap, "GO")? {
            Ctl::Go { round: r, t0 } if r == round => t0,
            other => return Err(format!("expected GO {round}, got `{}`", other.line())),
        };
        let sent = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (done_tx, done_rx) = mpsc::channel();
        let sender = (o.index < o.senders).then(|| {
            let (tx, o, sent, stop) = (net.tx(), o.clone(), sent.clone(), stop.clone());
            std::thread::spawn(move || {
                let r = send_round(tx, &o, round, t0, &sent, &stop);
                let _ = done_tx.send(r);
            })
        });
        let result = receive(&mut net, o, ctl, round, t0, &sent, &done_rx);
        stop.store(true, Ordering::Relaxed);
        if let Some(h) = sender {
            h.join().map_err(|_| "the sender thread panicked".to_string())?;
        }
        emit(&result?.line(round));
    }
    match ctl.wait(Duration::from_secs(60), "QUIT")? {
        Ctl::Quit => net.close(),
        other => Err(format!("expected QUIT, got `{}`", other.line())),
    }
}

/// The sender thread of one round: `count` messages (or for `duration`), paced at `rate` if
/// given, each stamped with the send time.
fn send_round<T: Tx>(
    mut tx: T,
    o: &MemberOpts,
    round: u32,
    t0: u64,
    sent: &AtomicU64,
    stop: &AtomicBool,
) -> Result<u64, String> {
    let mut buf: Vec<u8> = (0..o.size).map(|i| i as u8).collect();
    sleep_until(t0, Duration::from_secs(10));
    let cap_at = t0 + o.cap.as_nanos() as u64;
    let end = o.duration.map(|d| t0 + d.as_nanos() as u64);
    let limit = o.count.unwrap_or(u64::MAX);
    let gap = o.rate.map(|r| 1e9 / r);
    let mut seq = 0u64;
    while seq < limit {
        if seq % 64 == 0 && stop.load(Ordering::Relaxed) {
            break;
        }
        let mut now = now_ns();
        if end.is_some_and(|e| now >= e) {
            break;
        }
        if now >= cap_at {
            return Err(format!("sending did not finish within {} s", o.cap.as_secs()));
        }
        if let Some(g) = gap {
            let due = t0 + (seq as f64 * g) as u64;
            if due > now {
                sleep_until(due, Duration::from_secs(1));
                now = now_ns();
            }
        }
        Hdr { round, sender: o.index as u32, seq, sent_ns: now }.write(&mut buf[..HDR]);
        tx.send(&buf)?;
        seq += 1;
        if seq % 256 == 0 {
            sent.store(seq, Ordering::Relaxed);
        }
    }
    sent.store(seq, Ordering::Relaxed);
    emit(&format!("SENT {round} {seq}"));
    Ok(seq)
}

/// The receiving side of one round, on the member's main thread: until the parent says the
/// senders are done and then every message is in, or the path has gone quiet.
fn receive<N: Net>(
    net: &mut N,
    o: &MemberOpts,
    ctl: &Control,
    round: u32,
    t0: u64,
    sent: &AtomicU64,
    sender_done: &mpsc::Receiver<Result<u64, String>>,
) -> Result<MemberResult, String> {
    let mut tally = Tally::new(round, o.size, o.senders, o.count.unwrap_or(1 << 16));
    let (drops0, rejected0) = (udp_drops(), net.rx_rejected());
    let mut finish: Option<(u64, Vec<u64>)> = None;
    let cap_at = t0 + o.cap.as_nanos() as u64;
    let mut progress_at = t0 + PROGRESS_EVERY.as_nanos() as u64;
    let sent_by = loop {
        net.recv(Duration::from_millis(10), &mut |p| tally.on_payload(p, now_ns()))?;
        let now = now_ns();
        if o.die && tally.received() > 0 {
            eprintln!("thoth-perf member {}: exiting in the middle of the run (test hook)", o.index);
            std::process::exit(DIED_ON_PURPOSE);
        }
        while let Some(c) = ctl.try_next()? {
            match c {
                Ctl::Finish { round: r, sent } if r == round && sent.len() == o.senders => finish = Some((now, sent)),
                other => return Err(format!("unexpected `{}` in round {round}", other.line())),
            }
        }
        if let Ok(Err(e)) = sender_done.try_recv() {
            return Err(e);
        }
        if let Some((at, sent)) = &finish {
            let expected: u64 = sent.iter().sum();
            let quiet_since = tally.last_ns().max(*at);
            if tally.received() >= expected
                || now.saturating_sub(quiet_since) > QUIET.as_nanos() as u64
                || now.saturating_sub(*at) > FINISH_CAP.as_nanos() as u64
            {
                break sent.clone();
            }
        } else if now > cap_at {
            return Err(format!("round {round} did not finish within {} s", o.cap.as_secs()));
        }
        if now >= progress_at {
            emit(&format!("PROG {round} {} {}", sent.load(Ordering::Relaxed), tally.received()));
            progress_at = now + PROGRESS_EVERY.as_nanos() as u64;
        }
    };
    let drops = match (drops0, udp_drops()) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a)),
        _ => None,
    };
    let rejected = match (rejected0, net.rx_rejected()) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a)),
        _ => None,
    };
    Ok(tally.finish(&sent_by, drops, rejected))
}
