//! A member process (`thoth-perf member ...`): opens its sockets, says `READY`, learns the
//! group from the parent, and then for each round sends (if it is a sender) and receives,
//! reporting `SENT` and `RESULT`. Its stdin is a dead-man switch: if the parent goes away,
//! the member exits.

use super::args::{MemberOpts, Mode};
use super::clock::{cpu_ns, now_ns, sleep_until, thread_cpu_ns, udp_drops};
use super::net::{Net, Tx};
use super::proto::{Ctl, HDR, Hdr, MemberResult, payload};
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
        Mode::Stack(spec) => match o.groups {
            Some(n) => super::groups::serve(o, spec, n, &ctl),
            None => super::stack::serve(o, spec, &ctl),
        },
        Mode::Raw => {
            let setup = super::stack::raw_setup(o)?;
            let socks = raw::open(&setup).map_err(|e| format!("cannot open sockets for {}: {e}", o.group))?;
            let addr = socks.unicast.local_addr().map_err(|e| e.to_string())?;
            ready(addr, socks.granted.0, socks.granted.1);
            let peers = wait_peers(o, &ctl)?;
            let net = RawNet::new(socks, o.group, o.fanout, &peers, o.size, o.raw_datagram.unwrap_or(0))
                .map_err(|e| e.to_string())?;
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
        let t0 = match serve_until(&mut net, ctl, o.cap, "GO")? {
            Ctl::Go { round: r, t0 } if r == round => t0,
            other => return Err(format!("expected GO {round}, got `{}`", other.line())),
        };
        let sent = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (done_tx, done_rx) = mpsc::channel();
        // The process's CPU time over the round: its threads' now and at the end, and the
        // sender thread's own, read before it ends (an ended thread's time is not listed).
        let (cpu0, sender_cpu) = (cpu_ns(), Arc::new(AtomicU64::new(0)));
        let mut pump = Pump { pacer: None, pinger: None, sent: &sent, done: &done_rx };
        let mut thread = None;
        if o.rtt {
            pump.pinger = (o.index == 0).then(|| Pinger::new(o, round, t0));
        } else if o.index < o.senders {
            match net.tx() {
                Some(tx) => {
                    let (o, sent, stop, cpu) = (o.clone(), sent.clone(), stop.clone(), sender_cpu.clone());
                    thread = Some(std::thread::spawn(move || {
                        let r = send_round(tx, &o, round, t0, &sent, &stop);
                        cpu.store(thread_cpu_ns(), Ordering::Relaxed);
                        let _ = done_tx.send(r);
                    }));
                }
                None => pump.pacer = Some(Pacer::new(o, round, t0)),
            }
        }
        let result = receive(&mut net, o, ctl, round, t0, &mut pump);
        stop.store(true, Ordering::Relaxed);
        if let Some(h) = thread {
            h.join().map_err(|_| "the sender thread panicked".to_string())?;
        }
        let cpu = cpu_ns().saturating_sub(cpu0) + sender_cpu.load(Ordering::Relaxed);
        emit(&MemberResult { cpu_ns: Some(cpu), ..result? }.line(round));
    }
    match serve_until(&mut net, ctl, Duration::from_secs(60), "QUIT")? {
        Ctl::Quit => net.close(),
        other => Err(format!("expected QUIT, got `{}`", other.line())),
    }
}

/// The next control line, waiting at most `wait`, with the path at work meanwhile: a member
/// whose round is over still answers the others' retransmission requests and runs its
/// timers (an inline path works only while it is called; messages that arrive are dropped).
fn serve_until<N: Net>(net: &mut N, ctl: &Control, wait: Duration, what: &str) -> Result<Ctl, String> {
    let give_up = now_ns() + wait.as_nanos() as u64;
    loop {
        if let Some(c) = ctl.try_next()? {
            return Ok(c);
        }
        if now_ns() >= give_up {
            return Err(format!("no {what} from the parent within {} s", wait.as_secs()));
        }
        net.recv(RECV_WAIT, &mut |_, _| {})?;
    }
}

/// What a member sends from its receiving loop, and how long a receive may wait meanwhile.
struct Pump<'a> {
    /// One-way messages, on a path one thread runs (else a sender thread sends them).
    pacer: Option<Pacer>,
    /// Pings, in a round-trip round.
    pinger: Option<Pinger>,
    /// Messages sent so far (for progress lines).
    sent: &'a AtomicU64,
    /// The sender thread's outcome.
    done: &'a mpsc::Receiver<Result<u64, String>>,
}

/// Longest wait of one receive call.
const RECV_WAIT: Duration = Duration::from_millis(10);
/// Messages an inline sender sends between two receives when it is behind.
const BURST: u64 = 64;

impl Pump<'_> {
    /// Sends what is due and says how long the next receive may wait.
    fn step<N: Net>(&mut self, net: &mut N) -> Result<Duration, String> {
        if let Ok(Err(e)) = self.done.try_recv() {
            return Err(e);
        }
        let next = match (&mut self.pacer, &mut self.pinger) {
            // Too much waits for flow control: take events first (credit comes with them).
            (Some(_), _) if !net.can_send() => return Ok(Duration::from_millis(1)),
            (Some(p), _) => {
                let next = p.step(BURST, &mut |b| net.send(b))?;
                (next, p.round, p.seq)
            }
            (None, Some(p)) => (p.step(net)?, p.round, p.seq),
            (None, None) => return Ok(RECV_WAIT),
        };
        self.sent.store(next.2, Ordering::Relaxed);
        Ok(match next.0 {
            Next::At(t) => Duration::from_nanos(t.saturating_sub(now_ns())).min(RECV_WAIT),
            Next::Now => Duration::ZERO,
            Next::Done => {
                emit(&format!("SENT {} {}", next.1, next.2));
                (self.pacer, self.pinger) = (None, None);
                RECV_WAIT
            }
        })
    }

    /// A payload arrived: the pinger looks for its answer.
    fn heard(&mut self, h: &Hdr) {
        if let Some(p) = &mut self.pinger {
            p.heard(h);
        }
    }
}

/// What a sender does next.
enum Next {
    /// Send again at this instant (ns).
    At(u64),
    /// Send again at once (behind the pace, or unpaced).
    Now,
    Done,
}

/// When a sender is done: `limit` messages, or the end of the run, whichever first.
#[derive(Clone, Copy)]
struct Schedule {
    t0: u64,
    cap_at: u64,
    cap: Duration,
    end: Option<u64>,
    limit: u64,
    /// Nanoseconds between two sends (`--rate`).
    gap: Option<f64>,
}

impl Schedule {
    fn new(o: &MemberOpts, t0: u64) -> Schedule {
        Schedule {
            t0,
            cap_at: t0 + o.cap.as_nanos() as u64,
            cap: o.cap,
            end: o.duration.map(|d| t0 + d.as_nanos() as u64),
            limit: o.count.unwrap_or(u64::MAX),
            gap: o.rate.map(|r| 1e9 / r),
        }
    }

    /// Before message `seq` at `now`: `Some(next)` if it is not to be sent now.
    fn check(&self, seq: u64, now: u64) -> Result<Option<Next>, String> {
        if now < self.t0 {
            return Ok(Some(Next::At(self.t0)));
        }
        if seq >= self.limit || self.end.is_some_and(|e| now >= e) {
            return Ok(Some(Next::Done));
        }
        if now >= self.cap_at {
            return Err(format!("sending did not finish within {} s", self.cap.as_secs()));
        }
        let due = self.gap.map_or(0, |g| self.t0 + (seq as f64 * g) as u64);
        Ok((due > now).then_some(Next::At(due)))
    }
}

/// A sender's one-way messages, each stamped with its send time.
struct Pacer {
    buf: Vec<u8>,
    round: u32,
    sender: u32,
    when: Schedule,
    seq: u64,
}

impl Pacer {
    fn new(o: &MemberOpts, round: u32, t0: u64) -> Pacer {
        let buf = payload(o.size);
        Pacer { buf, round, sender: o.index as u32, when: Schedule::new(o, t0), seq: 0 }
    }

    /// Sends up to `burst` messages that are due through `send`.
    fn step(&mut self, burst: u64, send: &mut impl FnMut(&[u8]) -> Result<(), String>) -> Result<Next, String> {
        for _ in 0..burst {
            let now = now_ns();
            if let Some(next) = self.when.check(self.seq, now)? {
                return Ok(next);
            }
            Hdr { round: self.round, sender: self.sender, seq: self.seq, sent_ns: now }.write(&mut self.buf[..HDR]);
            send(&self.buf)?;
            self.seq += 1;
        }
        Ok(Next::Now)
    }
}

/// The sender thread of one round: the pacer's schedule, sleeping between messages.
fn send_round<T: Tx>(
    mut tx: T,
    o: &MemberOpts,
    round: u32,
    t0: u64,
    sent: &AtomicU64,
    stop: &AtomicBool,
) -> Result<u64, String> {
    let mut p = Pacer::new(o, round, t0);
    while !stop.load(Ordering::Relaxed) {
        match p.step(BURST, &mut |b| tx.send(b))? {
            Next::At(t) => {
                tx.flush()?;
                sleep_until(t, Duration::from_secs(1));
            }
            Next::Now => {}
            Next::Done => break,
        }
        sent.store(p.seq, Ordering::Relaxed);
    }
    tx.flush()?;
    sent.store(p.seq, Ordering::Relaxed);
    emit(&format!("SENT {round} {}", p.seq));
    Ok(p.seq)
}

/// How long the pinger waits for an answer before it pings again (the answer then counts
/// as late, with its full round trip).
const PING_TIMEOUT: Duration = Duration::from_millis(200);
/// The member that answers pings.
const PONGER: u32 = 1;

/// Member 0 of a round-trip round: casts a ping and, once it is answered (or after
/// `PING_TIMEOUT`), the next, on the schedule (`--count` / `--duration`, at most `--rate`
/// per second). Member 1 answers every ping with a cast carrying the ping's number and send
/// time (see `receive`), so the pinger's latency histogram holds round trips.
struct Pinger {
    buf: Vec<u8>,
    round: u32,
    when: Schedule,
    seq: u64,
    /// The ping waiting for its answer, and until when.
    waiting: Option<(u64, u64)>,
}

impl Pinger {
    fn new(o: &MemberOpts, round: u32, t0: u64) -> Pinger {
        let buf = payload(o.size);
        Pinger { buf, round, when: Schedule::new(o, t0), seq: 0, waiting: None }
    }

    fn step<N: Net>(&mut self, net: &mut N) -> Result<Next, String> {
        let now = now_ns();
        if let Some((_, until)) = self.waiting.filter(|&(_, until)| now < until) {
            return Ok(Next::At(until));
        }
        if let Some(next) = self.when.check(self.seq, now)? {
            return Ok(next);
        }
        Hdr { round: self.round, sender: 0, seq: self.seq, sent_ns: now }.write(&mut self.buf[..HDR]);
        net.send(&self.buf)?;
        let until = now + PING_TIMEOUT.as_nanos() as u64;
        self.waiting = Some((self.seq, until));
        self.seq += 1;
        Ok(Next::At(until))
    }

    fn heard(&mut self, h: &Hdr) {
        if h.round == self.round && h.sender == PONGER && self.waiting.is_some_and(|(seq, _)| seq == h.seq) {
            self.waiting = None;
        }
    }
}

/// The receiving side of one round, on the member's main thread: until the parent says the
/// senders are done and then every message is in, or the path has gone quiet. In a
/// round-trip round the pinger's histogram holds the answers' round trips only, and the
/// member that answers casts one for every ping.
fn receive<N: Net>(
    net: &mut N,
    o: &MemberOpts,
    ctl: &Control,
    round: u32,
    t0: u64,
    pump: &mut Pump<'_>,
) -> Result<MemberResult, String> {
    let latency_of = (o.rtt && o.index == 0).then_some(PONGER);
    let mut tally = Tally::new(round, o.size, o.senders, o.count.unwrap_or(1 << 16)).latency_of(latency_of);
    let (drops0, rejected0, own0) = (udp_drops(), net.rx_rejected(), net.own_copies_filtered());
    let mut finish: Option<(u64, Vec<u64>)> = None;
    let cap_at = t0 + o.cap.as_nanos() as u64;
    let mut progress_at = t0 + PROGRESS_EVERY.as_nanos() as u64;
    let answer = o.rtt && o.index == PONGER as usize;
    let mut pings: Vec<Hdr> = Vec::new();
    let mut pong = payload(o.size);
    let sent_by = loop {
        let wait = pump.step(net)?;
        net.recv(wait, &mut |p, at| {
            tally.on_payload(p, at);
            if let Some(h) = Hdr::read(p) {
                pump.heard(&h);
                if answer && h.sender == 0 && h.round == round {
                    pings.push(h);
                }
            }
        })?;
        for h in pings.drain(..) {
            Hdr { sender: PONGER, ..h }.write(&mut pong[..HDR]);
            net.send(&pong)?;
        }
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
            emit(&format!("PROG {round} {} {}", pump.sent.load(Ordering::Relaxed), tally.received()));
            progress_at = now + PROGRESS_EVERY.as_nanos() as u64;
        }
    };
    // Drops the socket counted, less this member's own copies the filter dropped.
    let own = net.own_copies_filtered() - own0;
    let drops = match (drops0, udp_drops()) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a).saturating_sub(own)),
        _ => None,
    };
    let rejected = match (rejected0, net.rx_rejected()) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a)),
        _ => None,
    };
    Ok(tally.finish(&sent_by, drops, rejected))
}
