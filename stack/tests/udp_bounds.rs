//! Every call on a UDP `Handle` returns within a bound, whatever the driver holds: shutdown
//! and the drop of the last handle while flow control holds casts and senders wait on a
//! full command queue; the command queue's bound counting the commands the driver keeps
//! behind a held cast; `cast` under `FlowPolicy::Block` giving up after
//! `UdpConfig::block_timeout`; `leave` and the answers never waiting, the leave going after
//! the casts accepted before it; and shutdown giving up on a driver stuck in a layer after
//! `SHUTDOWN_WAIT`. The same bounds in inline mode, where nothing is queued: a cast under
//! flow control gives up after `block_timeout` (at once under `FlowPolicy::WouldBlock`) while
//! the member keeps running its timers, the answers and `leave` never wait, shutdown and the
//! drop are prompt. One member in fan-out mode on 127.0.0.1 per test; flow control is a
//! test layer (`Gate`) the test opens and closes. Every wait is bounded; every driver is
//! shut down or dropped.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};
use thoth_stack::testing::{collect, random_u64};
use thoth_stack::udp::{self, FlowPolicy, Handle, HandleError, Inline, SHUTDOWN_WAIT, Sockets, UdpConfig};
use thoth_stack::{Bytes, CastError, Cmd, Config, Cx, Dn, Dump, Endpoint, Event, GroupId, Layer, Time, Up, View};

/// How long a stop may take here: far above one turn of the driver (milliseconds) under
/// any load, and below `SHUTDOWN_WAIT`, so a driver that did not end on its own (and was
/// given up on) fails the test.
const PROMPT: Duration = Duration::from_millis(500);
const WAIT: Duration = Duration::from_secs(10);

/// Flow control the test drives: while `open` is false, the first cast goes down and says
/// `ready: false` (as `flow` does with the cast that exhausts the credit), so the driver
/// holds the casts behind it; every 2 ms it looks whether `open` was set, and then says
/// `ready: true`.
struct Gate {
    open: Arc<AtomicBool>,
    ready: bool,
    look_at: Option<Time>,
}

const LOOK_EVERY: Duration = Duration::from_millis(2);

impl Layer for Gate {
    fn name(&self) -> &'static str {
        "gate"
    }
    /// Closed, it lets the first cast go and holds back what was handed over with it.
    fn cast_room(&self) -> usize {
        if self.ready && !self.open.load(Ordering::SeqCst) { 0 } else { usize::MAX }
    }
    fn handle_dn(&mut self, ev: Dn, cx: &mut Cx<'_>) {
        let cast = matches!(ev, Dn::Cast(_));
        cx.dn(ev);
        if cast && self.ready && !self.open.load(Ordering::SeqCst) {
            self.ready = false;
            self.look_at = Some(cx.now + LOOK_EVERY);
            cx.up(Up::Flow { ready: false });
        }
    }
    fn handle_up(&mut self, ev: Up, cx: &mut Cx<'_>) {
        cx.up(ev)
    }
    fn poll_timeout(&self) -> Option<Time> {
        self.look_at
    }
    fn handle_timeout(&mut self, cx: &mut Cx<'_>) {
        if self.open.load(Ordering::SeqCst) {
            self.ready = true;
            self.look_at = None;
            cx.up(Up::Flow { ready: true });
        } else {
            self.look_at = Some(cx.now + LOOK_EVERY);
        }
    }
    fn dump(&self, _: &mut Vec<Dump>) {}
}

/// One member alone in fan-out mode over `stack`, its sockets and unicast address.
fn alone_endpoint<L: Layer + 'static>(
    cfg: UdpConfig,
    stack: impl Fn() -> L + Send + 'static,
) -> (Sockets, Endpoint<L>, SocketAddr) {
    let s = Sockets::open(&UdpConfig { fanout: true, ..cfg }).expect("open");
    let (me, addr) = (s.id(), s.local_addr());
    let ep = Endpoint::new(Config::new(GroupId(random_u64()), me, vec![me]), move |_: &View| stack()).unwrap();
    (s, ep, addr)
}

/// One member alone in fan-out mode over `stack`; its handle and unicast address.
fn alone<L: Layer + 'static>(cfg: UdpConfig, stack: impl Fn() -> L + Send + 'static) -> (Handle, SocketAddr) {
    let (s, ep, addr) = alone_endpoint(cfg, stack);
    (udp::spawn(s, ep, &[addr]).expect("spawn"), addr)
}

/// The same, inline behind a closed `Gate`; the gate's switch.
fn gated_inline(cfg: UdpConfig) -> (Inline<Endpoint<Gate>>, SocketAddr, Arc<AtomicBool>) {
    let open = Arc::new(AtomicBool::new(false));
    let o = open.clone();
    let (s, ep, addr) = alone_endpoint(cfg, move || Gate { open: o.clone(), ready: true, look_at: None });
    (udp::inline(s, ep, &[addr]).expect("inline"), addr, open)
}

/// Events of an inline member until `done` holds or `within` passes.
fn collect_inline<L: Layer>(
    m: &mut Inline<Endpoint<L>>,
    within: Duration,
    done: impl Fn(&[Event]) -> bool,
) -> Vec<Event> {
    let deadline = Instant::now() + within;
    let mut evs = Vec::new();
    while !done(&evs) && Instant::now() < deadline {
        m.recv_many(&mut evs, Duration::from_millis(20));
    }
    evs
}

/// A member behind a closed `Gate`; the gate's switch.
fn gated(cfg: UdpConfig) -> (Handle, SocketAddr, Arc<AtomicBool>) {
    let open = Arc::new(AtomicBool::new(false));
    let o = open.clone();
    let (h, addr) = alone(cfg, move || Gate { open: o.clone(), ready: true, look_at: None });
    (h, addr, open)
}

/// The payloads of the casts in `evs`.
fn casts(evs: &[Event]) -> Vec<Bytes> {
    evs.iter()
        .filter_map(|e| match e {
            Event::Cast { data, .. } => Some(data.clone()),
            _ => None,
        })
        .collect()
}

/// Polls `f` every 5 ms until it holds or `within` passes; whether it held.
fn until(within: Duration, f: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while !f() {
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(5));
    }
    true
}

/// The driver ended and closed its socket: the address can be bound again.
fn socket_closed(addr: SocketAddr) -> bool {
    UdpSocket::bind(addr).is_ok()
}

/// Casts `first` (which closes the gate), then starts `senders` threads casting until the
/// handle refuses; waits until the queue is full (`queue` more accepted, and no more for
/// 50 ms). Returns the senders and the count of casts they had accepted.
fn fill(h: &Handle, queue: usize, senders: usize) -> (Vec<thread::JoinHandle<HandleError>>, Arc<AtomicUsize>) {
    h.cast(Bytes::from_static(b"first")).unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let threads = (0..senders)
        .map(|_| {
            let (h, accepted) = (h.clone(), accepted.clone());
            thread::spawn(move || {
                for i in 0..1_000_000u32 {
                    if let Err(e) = h.cast(Bytes::from(i.to_le_bytes().to_vec())) {
                        return e;
                    }
                    accepted.fetch_add(1, Ordering::SeqCst);
                }
                panic!("a million casts accepted behind a closed gate");
            })
        })
        .collect();
    assert!(until(WAIT, || accepted.load(Ordering::SeqCst) >= queue), "the queue never filled");
    thread::sleep(Duration::from_millis(50));
    (threads, accepted)
}

#[test]
fn shutdown_is_prompt_while_flow_control_holds_casts() {
    const QUEUE: usize = 16;
    let cfg = UdpConfig { queue: QUEUE, block_timeout: Duration::MAX, ..UdpConfig::default() };
    let (h, addr, _gate) = gated(cfg);
    let (senders, accepted) = fill(&h, QUEUE, 3);
    // The driver keeps the casts it took behind the held one: they count in the bound.
    assert_eq!(accepted.load(Ordering::SeqCst), QUEUE, "accepted beyond the command queue's bound");
    assert_eq!(h.try_cast(Bytes::new()), Err(HandleError::WouldBlock));
    let watcher = h.clone();
    let t = Instant::now();
    let stats = h.shutdown();
    let took = t.elapsed();
    println!("shutdown with {QUEUE} casts held and 3 senders waiting took {took:?}");
    assert!(took < PROMPT, "shutdown took {took:?}");
    assert!(socket_closed(addr), "shutdown returned before the driver ended");
    for s in senders {
        assert_eq!(s.join().expect("sender"), HandleError::Stopped, "a waiting sender is released by shutdown");
    }
    assert_eq!(watcher.cast(Bytes::new()), Err(HandleError::Stopped));
    let evs = collect(&watcher, WAIT, |_| watcher.is_stopped());
    assert_eq!(casts(&evs), vec![Bytes::from_static(b"first")], "only the cast before the gate closed went");
    assert_eq!(stats.endpoint.delivered_casts, 1);
}

#[test]
fn dropping_the_last_handle_is_prompt_while_flow_control_holds_casts() {
    const QUEUE: usize = 8;
    let cfg = UdpConfig { queue: QUEUE, block_timeout: Duration::from_millis(100), ..UdpConfig::default() };
    let (h, addr, _gate) = gated(cfg);
    h.cast(Bytes::from_static(b"first")).unwrap();
    for i in 0..QUEUE as u32 {
        h.cast(Bytes::from(i.to_le_bytes().to_vec())).unwrap();
    }
    assert_eq!(h.cast(Bytes::new()), Err(HandleError::WouldBlock), "the queue is full of held casts");
    let t = Instant::now();
    drop(h);
    let took = t.elapsed();
    println!("drop with {QUEUE} casts held took {took:?}");
    assert!(took < PROMPT, "dropping the last handle took {took:?}");
    assert!(socket_closed(addr), "the drop returned before the driver ended");
}

#[test]
fn cast_gives_up_after_block_timeout() {
    const QUEUE: usize = 4;
    const LIMIT: Duration = Duration::from_millis(200);
    let cfg = UdpConfig { queue: QUEUE, block_timeout: LIMIT, ..UdpConfig::default() };
    let (h, _, gate) = gated(cfg);
    let me = h.me();
    h.cast(Bytes::from_static(b"first")).unwrap();
    let held: Vec<Bytes> = (0..QUEUE).map(|i| Bytes::from(format!("held {i}"))).collect();
    for b in &held {
        h.cast(b.clone()).unwrap();
    }
    let t = Instant::now();
    assert_eq!(h.cast(Bytes::from_static(b"refused")), Err(HandleError::WouldBlock));
    let took = t.elapsed();
    assert!(took >= LIMIT && took < LIMIT + PROMPT, "cast gave up after {took:?}, not {LIMIT:?}");
    assert_eq!(h.send(me, Bytes::from_static(b"refused")), Err(HandleError::WouldBlock), "send waits as long");
    let t = Instant::now();
    assert_eq!(h.try_send(me, Bytes::from_static(b"refused")), Err(HandleError::WouldBlock));
    assert!(t.elapsed() < LIMIT, "try_send waited {:?}", t.elapsed());
    // Once the gate opens, every accepted cast goes, in order; the refused ones never.
    gate.store(true, Ordering::SeqCst);
    let want: Vec<Bytes> = std::iter::once(Bytes::from_static(b"first")).chain(held).collect();
    let evs = collect(&h, WAIT, |e| casts(e).len() >= want.len());
    assert_eq!(casts(&evs), want);
    h.cast(Bytes::from_static(b"after")).unwrap();
    let evs = collect(&h, WAIT, |e| !casts(e).is_empty());
    assert_eq!(casts(&evs), vec![Bytes::from_static(b"after")]);
    h.shutdown();
}

#[test]
fn leave_and_answers_never_wait_and_the_leave_follows_the_held_casts() {
    const QUEUE: usize = 4;
    let cfg = UdpConfig { queue: QUEUE, block_timeout: Duration::from_millis(100), ..UdpConfig::default() };
    let (h, _, gate) = gated(cfg);
    h.cast(Bytes::from_static(b"first")).unwrap();
    let held: Vec<Bytes> = (0..QUEUE).map(|i| Bytes::from(format!("held {i}"))).collect();
    for b in &held {
        h.cast(b.clone()).unwrap();
    }
    assert_eq!(h.cast(Bytes::new()), Err(HandleError::WouldBlock), "the queue is full");
    let t = Instant::now();
    h.block_ok().unwrap();
    h.send_state(Bytes::from_static(b"state")).unwrap();
    h.leave();
    let took = t.elapsed();
    assert!(took < PROMPT, "block_ok, send_state and leave on a full queue took {took:?}");
    assert_eq!(h.cast(Bytes::new()), Err(HandleError::Cast(CastError::Left)));
    // The leave waits behind the held casts: nothing ends while the gate is closed.
    let early = collect(&h, Duration::from_millis(50), |_| false);
    assert_eq!(casts(&early), vec![Bytes::from_static(b"first")]);
    assert!(!early.contains(&Event::Exit), "the leave overtook the held casts: {early:?}");
    gate.store(true, Ordering::SeqCst);
    let evs = collect(&h, WAIT, |e| e.last() == Some(&Event::Exit));
    assert_eq!(evs.last(), Some(&Event::Exit), "no exit: {evs:?}");
    assert_eq!(casts(&evs), held, "the held casts, in order, then the leave");
    assert_eq!(h.recv_timeout(WAIT), None, "the driver ends after Exit");
    h.shutdown();
}

/// On a cast of "stick", waits (up to a minute) until the test lets it go: a layer that
/// holds the driver thread.
struct Stuck {
    gate: Arc<(Mutex<(bool, bool)>, Condvar)>,
}

impl Layer for Stuck {
    fn name(&self) -> &'static str {
        "stuck"
    }
    fn handle_dn(&mut self, ev: Dn, cx: &mut Cx<'_>) {
        if matches!(&ev, Dn::Cast(m) if &m.body()[..] == b"stick") {
            let (lock, cv) = &*self.gate;
            let mut g = lock.lock().unwrap();
            g.0 = true; // stuck
            cv.notify_all();
            let deadline = Instant::now() + Duration::from_secs(60);
            while !g.1 && Instant::now() < deadline {
                g = cv.wait_timeout(g, Duration::from_millis(100)).unwrap().0;
            }
        }
        cx.dn(ev);
    }
    fn handle_up(&mut self, ev: Up, cx: &mut Cx<'_>) {
        cx.up(ev)
    }
    fn dump(&self, _: &mut Vec<Dump>) {}
}

#[test]
fn shutdown_gives_up_on_a_driver_stuck_in_a_layer() {
    let gate = Arc::new((Mutex::new((false, false)), Condvar::new()));
    let g = gate.clone();
    let (h, addr) = alone(UdpConfig::default(), move || Stuck { gate: g.clone() });
    h.cast(Bytes::from_static(b"stick")).unwrap();
    assert!(until(WAIT, || gate.0.lock().unwrap().0), "the layer never got the cast");
    let t = Instant::now();
    h.shutdown();
    let took = t.elapsed();
    println!("shutdown of a stuck driver took {took:?}");
    assert!(took >= SHUTDOWN_WAIT && took < SHUTDOWN_WAIT + PROMPT, "shutdown took {took:?}");
    assert!(!socket_closed(addr), "the stuck driver still holds its socket");
    // Let go, the thread ends by itself and closes its socket.
    gate.0.lock().unwrap().1 = true;
    gate.1.notify_all();
    assert!(until(WAIT, || socket_closed(addr)), "the detached driver never ended");
}

#[test]
fn inline_calls_return_within_their_bounds() {
    const LIMIT: Duration = Duration::from_millis(200);
    let (mut m, addr, gate) = gated_inline(UdpConfig { block_timeout: LIMIT, ..UdpConfig::default() });
    let me = m.me();
    m.cast(Bytes::from_static(b"first")).unwrap();
    // Flow control holds: a cast waits `block_timeout`, running the member meanwhile.
    let t = Instant::now();
    assert_eq!(m.cast(Bytes::from_static(b"refused")), Err(HandleError::WouldBlock));
    let took = t.elapsed();
    assert!(took >= LIMIT && took < LIMIT + PROMPT, "cast gave up after {took:?}, not {LIMIT:?}");
    let t = Instant::now();
    assert_eq!(m.try_cast(Bytes::from_static(b"refused")), Err(HandleError::WouldBlock));
    assert!(t.elapsed() < PROMPT, "try_cast waited");
    let mut batch: std::collections::VecDeque<Cmd> = [Cmd::Cast(Bytes::from_static(b"refused"))].into();
    let t = Instant::now();
    assert_eq!(m.try_command_batch(&mut batch), Err(HandleError::WouldBlock));
    assert!(t.elapsed() < PROMPT && batch.len() == 1, "try_command_batch waited, or dropped the cast");
    // A send is not flow controlled, and nothing queues in front of it.
    m.send(me, Bytes::from_static(b"to me")).unwrap();
    // The gate opens: the member's own timer (run by the cast that waits) lets the cast go.
    gate.store(true, Ordering::SeqCst);
    m.cast(Bytes::from_static(b"after")).unwrap();
    let evs = collect_inline(&mut m, WAIT, |e| casts(e).len() >= 2);
    assert_eq!(casts(&evs), vec![Bytes::from_static(b"first"), Bytes::from_static(b"after")], "refused ones never go");
    // Closed again: the answers and the leave never wait.
    gate.store(false, Ordering::SeqCst);
    m.cast(Bytes::from_static(b"closes")).unwrap();
    let t = Instant::now();
    m.block_ok().unwrap();
    m.send_state(Bytes::from_static(b"state")).unwrap();
    m.leave();
    assert!(t.elapsed() < PROMPT, "block_ok, send_state and leave under flow control took {:?}", t.elapsed());
    assert_eq!(m.cast(Bytes::new()), Err(HandleError::Cast(CastError::Left)));
    let evs = collect_inline(&mut m, WAIT, |e| e.last() == Some(&Event::Exit));
    assert_eq!(evs.last(), Some(&Event::Exit), "no exit: {evs:?}");
    assert!(m.is_stopped());
    assert_eq!(m.recv_timeout(WAIT), None, "a stopped member returns at once");
    assert_eq!(m.block_ok(), Err(HandleError::Stopped));
    let t = Instant::now();
    m.shutdown();
    assert!(t.elapsed() < PROMPT && socket_closed(addr), "shutdown");
}

#[test]
fn inline_would_block_policy_and_a_prompt_drop_under_flow_control() {
    let cfg = UdpConfig { flow: FlowPolicy::WouldBlock, block_timeout: Duration::MAX, ..UdpConfig::default() };
    let (mut m, addr, _gate) = gated_inline(cfg);
    m.cast(Bytes::from_static(b"first")).unwrap();
    let t = Instant::now();
    assert_eq!(m.cast(Bytes::from_static(b"refused")), Err(HandleError::WouldBlock));
    assert!(t.elapsed() < PROMPT, "a cast under FlowPolicy::WouldBlock waited {:?}", t.elapsed());
    let t = Instant::now();
    drop(m);
    assert!(t.elapsed() < PROMPT && socket_closed(addr), "drop under flow control");
}
