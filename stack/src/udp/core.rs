//! The I/O core: a member's sockets, its routes, its outbox and its `sendmmsg` / `recvmmsg`
//! batches, with no loop of its own. A loop drives it around a `Machine`: the driver thread
//! (`driver`) or the application's own thread (`inline`). One turn is
//!
//! 1. `timers`: the machine's timeout, if due;
//! 2. `receive`: each socket read with `recvmmsg` (up to `RECV_ROUNDS` batches per socket; a
//!    socket that had nothing is skipped for a few turns while the loop stays busy), every
//!    datagram handed to `Machine::handle_datagram`, which says what it was (`Rx`): a sound
//!    frame from a source with no route may teach one (`routes`);
//! 3. the machine's `end_turn`, then `take_events` (a view the machine announces moves the
//!    routes to its members before any transmit is routed);
//! 4. `route` then `flush`: the machine's transmits into the outbox, then `sendmmsg` (up to
//!    `SEND_ROUNDS` calls of `batch` datagrams), each datagram two iovecs (frame and
//!    headers, then the application's `Bytes`, not copied). On EAGAIN the rest waits for
//!    POLLOUT; on ENOBUFS (a full device queue, which POLLOUT does not report) it waits 1 ms;
//!    nothing is dropped for lack of room. A datagram the kernel refuses outright is counted
//!    and dropped.
//!
//! `wait` sleeps in `ppoll` on the sockets (and a waker, if the loop has one) until one is
//! ready or a deadline passes. The machine's clock is the time since the core was made.
//!
//! Tested by `stack/tests/udp.rs`, `udp_routes.rs` and `udp_bounds.rs` under both loops.

use super::routes::{Learned, NOWHERE, Routes, Source};
use super::socket::{Granted, Sockets};
use super::sys::{self, RecvBatch, SendBatch, Waker};
use crate::endpoint::{Dest, Stats, Transmit};
use crate::ids::{EndpointId, View};
use crate::machine::{Announce, Machine, Rx};
use crate::metrics::Hist;
use crate::time::Time;
use bytes::{Bytes, BytesMut};
use socket2::Socket;
use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant};

/// What the driver counted, with the machine's own counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DriverStats {
    /// The machine's own counters, as of this snapshot.
    pub endpoint: Stats,
    /// The socket buffer sizes the kernel granted when the sockets were opened.
    pub granted: Granted,
    /// `sendmmsg` calls made, failed ones included (each sends up to `UdpConfig::batch` datagrams).
    pub sendmmsg_calls: u64,
    /// `recvmmsg` calls made, over both sockets, including those that found nothing (EAGAIN).
    pub recvmmsg_calls: u64,
    /// Datagrams the kernel took.
    pub tx_sent: u64,
    /// Of those, datagrams to the multicast group. The kernel loops a copy of each back to
    /// this member, which the own-copy filter (`UdpConfig::filter_own`) drops: the socket
    /// counts each such copy among its drops (`/proc/net/udp`), though nothing was lost.
    pub tx_to_group: u64,
    /// Datagrams the kernel refused (other than for lack of room): dropped.
    pub tx_errors: u64,
    /// Times sending stopped on EAGAIN / ENOBUFS until the socket could take more.
    pub tx_blocked: u64,
    /// `Dest::One` to an id with no route (neither configured nor learned, and carrying no
    /// address this member can send to), or a datagram whose learned route was replaced
    /// while it waited: dropped.
    pub tx_unroutable: u64,
    /// Routes learned from received datagrams (see `Routes`).
    pub routes_learned: u64,
    /// Learned routes replaced by newer ones because `MAX_LEARNED` were held.
    pub routes_replaced: u64,
    /// Sound datagrams from a source with no route whose frame claims a source id that is
    /// not `endpoint_id` of the source address: they teach no route (the machine judged
    /// them as usual).
    pub rx_src_mismatch: u64,
    /// Datagrams read from the sockets.
    pub rx_datagrams: u64,
    /// Datagrams longer than the receive slot (`max_datagram + 1` bytes), so truncated by
    /// the kernel: dropped before the machine.
    pub rx_oversize: u64,
    /// Receive calls that failed with something else than EAGAIN.
    pub rx_errors: u64,
    /// Times the loop returned from sleeping in `ppoll`.
    pub wakeups: u64,
    /// Times the handles (or the driver's own queues) wrote the driver's eventfd.
    pub wake_signals: u64,
    /// Times the loop stopped reading its sockets because the events were not taken.
    pub events_full: u64,
    /// Commands the machine refused after the handle let them through (a cast racing a
    /// `leave` from another clone).
    pub rejected_commands: u64,
    /// The command queue's depth each time the driver took commands (how many it took).
    pub cmd_depth: Hist,
    /// The event queue's depth each time the driver queued events for the application.
    pub event_depth: Hist,
}

impl DriverStats {
    /// The driver's own counters (not the endpoint's, nor the sockets' buffers, nor the
    /// histograms), by their fields' names.
    pub fn counters(&self) -> Vec<(&'static str, u64)> {
        // Destructured whole: a field added to the struct and not here does not compile.
        macro_rules! list {
            ($($f:ident),*) => {{
                let DriverStats { endpoint: _, granted: _, cmd_depth: _, event_depth: _, $($f),* } = self;
                vec![$((stringify!($f), *$f)),*]
            }};
        }
        list!(
            sendmmsg_calls,
            recvmmsg_calls,
            tx_sent,
            tx_to_group,
            tx_errors,
            tx_blocked,
            tx_unroutable,
            routes_learned,
            routes_replaced,
            rx_src_mismatch,
            rx_datagrams,
            rx_oversize,
            rx_errors,
            wakeups,
            wake_signals,
            events_full,
            rejected_commands
        )
    }
}

/// A datagram waiting for the socket, with the index of its destination in `Routes::addrs`.
struct Out {
    addr: usize,
    tx: Transmit,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Blocked {
    /// EAGAIN: the socket buffer is full; wait for POLLOUT.
    Full,
    /// ENOBUFS: the device queue is full; try again at this instant.
    NoBufs(Instant),
}

/// Receive calls per socket per turn, at most (then the other work gets a turn).
const RECV_ROUNDS: usize = 64;
/// Successful `sendmmsg` calls per turn, at most. Receiving comes first: in a group where
/// everyone sends, a member receives several datagrams for each one it sends, and a
/// datagram not read in time is lost, while a cast that waits only slows its sender down.
/// (Measured with thoth-perf, 3 members on loopback: 64:2 beat 8:8, 32:4 and 64:1.)
pub(crate) const SEND_ROUNDS: usize = 2;
/// A socket that had nothing is read again only every this many turns while another keeps
/// the loop busy (a sleeping loop polls every socket, so nothing waits longer).
const QUIET_SKIP: u8 = 8;
/// How long, at most, an exiting machine's loop keeps trying to flush its last datagrams.
pub(crate) const EXIT_FLUSH: Duration = Duration::from_secs(1);
/// How long the loop waits after ENOBUFS before trying again.
const NOBUFS_BACKOFF: Duration = Duration::from_millis(1);
/// Received datagrams are copied out of the receive slots into chunks of this size, each
/// datagram a slice of its chunk: a copy and a reference count per datagram instead of an
/// allocation that another thread (the application's) frees. A chunk whose datagrams have
/// all been dropped is reused in place; one the application still holds a datagram of lives
/// until that datagram is dropped, so a held message keeps at most this much alive. A
/// datagram of three quarters of a slot or more (a packed datagram, a large fragment) is not
/// copied: it is taken with its slot's buffer (`RecvBatch::take`), which it fills enough
/// that what the layers charge for holding it (its length) is at least 3/4 of the memory it
/// keeps alive.
const RX_CHUNK: usize = 128 << 10;

/// Copies `data` into the receive chunk (reclaimed, or a new one, if it does not fit).
fn copy_out(chunk: &mut BytesMut, data: &[u8]) -> Bytes {
    if chunk.capacity() - chunk.len() < data.len() {
        // Reuses the chunk's allocation when no datagram of it is alive any more.
        chunk.reserve(RX_CHUNK.max(data.len()));
    }
    chunk.extend_from_slice(data);
    chunk.split().freeze()
}

/// Queues `tx` for every destination of `to` (cloned for all but the last).
fn fan_out(outbox: &mut VecDeque<Out>, tx: Transmit, mut to: impl Iterator<Item = usize>) {
    if let Some(mut a) = to.next() {
        for next in to {
            outbox.push_back(Out { addr: a, tx: tx.clone() });
            a = next;
        }
        outbox.push_back(Out { addr: a, tx });
    }
}

/// A sound frame claiming `id` came from `src`: learns the route if the two agree and none
/// was known; the queued datagrams of a route it replaces are dropped (they must not go to
/// the new address).
fn check_source(
    routes: &mut Routes,
    outbox: &mut VecDeque<Out>,
    stats: &mut DriverStats,
    id: EndpointId,
    src: SocketAddr,
) {
    match routes.check_source(src, id) {
        Source::Known => {}
        Source::Mismatch => stats.rx_src_mismatch += 1,
        Source::Learn(id) => {
            match routes.learn(id, src) {
                Learned::Known => return,
                Learned::New => {}
                Learned::Replaced(gone) => {
                    stats.routes_replaced += 1;
                    let before = outbox.len();
                    outbox.retain(|o| o.addr != gone);
                    stats.tx_unroutable += (before - outbox.len()) as u64;
                }
            }
            stats.routes_learned += 1;
        }
    }
}

pub(crate) struct Core {
    uni: Socket,
    mc: Option<Socket>,
    routes: Routes,
    start: Instant,
    outbox: VecDeque<Out>,
    send: SendBatch,
    recv: RecvBatch,
    rx_chunk: BytesMut,
    pub(crate) stats: DriverStats,
    blocked: Option<Blocked>,
    /// Per socket (unicast, multicast): turns to skip before reading it again.
    quiet: [u8; 2],
}

impl Core {
    /// A core over `sockets` for a machine whose id is `me`, whose datagrams are at most
    /// `max_datagram` bytes and whose view is `view`; `peers` as for `spawn`.
    pub(crate) fn new(
        sockets: Sockets,
        peers: &[SocketAddr],
        me: EndpointId,
        max_datagram: usize,
        view: &View,
    ) -> Core {
        let batch = sockets.cfg.batch;
        // One byte more than the largest datagram a member sends: longer means truncated.
        let slot = max_datagram.saturating_add(1);
        let mut routes = Routes::new(&sockets, me, peers);
        routes.set_view(view, std::iter::empty());
        Core {
            stats: DriverStats { granted: sockets.granted(), ..DriverStats::default() },
            uni: sockets.uni,
            mc: sockets.mc,
            routes,
            start: Instant::now(),
            outbox: VecDeque::new(),
            send: SendBatch::new(batch),
            recv: RecvBatch::new(batch, slot),
            rx_chunk: BytesMut::new(),
            blocked: None,
            quiet: [0; 2],
        }
    }

    /// The machine's clock: the time since the core was made.
    pub(crate) fn now(&self) -> Time {
        Time::from_nanos(u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }

    /// Whether new commands should go in: the socket takes datagrams and the outbox is
    /// short (otherwise the caller feels the backpressure instead of the outbox growing).
    pub(crate) fn takes_commands(&self) -> bool {
        self.blocked.is_none() && self.outbox.len() < self.recv.capacity() * SEND_ROUNDS
    }

    /// The socket refuses datagrams for now.
    pub(crate) fn is_blocked(&self) -> bool {
        self.blocked.is_some()
    }

    /// Runs the machine's timeout if it is due; true if it was.
    pub(crate) fn timers<M: Machine>(&mut self, m: &mut M) -> bool {
        let now = self.now();
        let due = m.poll_timeout().is_some_and(|t| t <= now);
        if due {
            m.handle_timeout(now);
        }
        due
    }

    /// Reads the sockets (a quiet one only every `QUIET_SKIP` turns) into the machine; true
    /// if a datagram came in.
    pub(crate) fn receive<M: Machine>(&mut self, m: &mut M) -> bool {
        let mut got = false;
        for k in 0..2 {
            let Some(sock) = (if k == 0 { Some(&self.uni) } else { self.mc.as_ref() }) else { continue };
            if self.quiet[k] > 0 {
                self.quiet[k] -= 1;
                continue;
            }
            for round in 0..RECV_ROUNDS {
                self.stats.recvmmsg_calls += 1;
                let n = match self.recv.recv(sock.as_fd()) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        if round == 0 {
                            self.quiet[k] = QUIET_SKIP - 1;
                        }
                        break;
                    }
                    Err(_) => {
                        self.stats.rx_errors += 1;
                        break;
                    }
                };
                got = true;
                let now = self.now();
                for i in 0..n {
                    let Some((data, truncated)) = self.recv.datagram(i) else {
                        break;
                    };
                    self.stats.rx_datagrams += 1;
                    if truncated {
                        self.stats.rx_oversize += 1;
                        continue;
                    }
                    let src = self.recv.source(i).unwrap_or(NOWHERE);
                    let data = if data.len() >= self.recv.slot_len() / 4 * 3 {
                        self.recv.take(i).expect("read just above")
                    } else {
                        copy_out(&mut self.rx_chunk, data)
                    };
                    if let Rx::Sound { src: id, .. } = m.handle_datagram(now, data)
                        && src != NOWHERE
                    {
                        check_source(&mut self.routes, &mut self.outbox, &mut self.stats, id, src);
                    }
                }
                if n < self.recv.capacity() {
                    break;
                }
            }
        }
        got
    }

    /// Hands the machine's events to `sink`, in order, after moving the routes to each view
    /// announced.
    pub(crate) fn take_events<M: Machine>(&mut self, m: &mut M, mut sink: impl FnMut(M::Event)) {
        while let Some(ev) = m.poll_event() {
            if let Some(v) = ev.view() {
                self.routes.set_view(v, self.outbox.iter_mut().map(|o| &mut o.addr));
            }
            sink(ev);
        }
    }

    /// Moves the machine's transmits into the outbox, one per destination.
    pub(crate) fn route<M: Machine>(&mut self, m: &mut M) {
        while let Some(tx) = m.poll_transmit() {
            match (tx.dst, self.routes.group) {
                (Dest::All | Dest::Everyone, Some(g)) => self.outbox.push_back(Out { addr: g, tx }),
                (Dest::Everyone, None) => fan_out(&mut self.outbox, tx, self.routes.fanout()),
                (Dest::All, None) => fan_out(&mut self.outbox, tx, self.routes.cast_targets().iter().copied()),
                (Dest::One(id), _) => match self.routes.dest(id, self.outbox.iter_mut().map(|o| &mut o.addr)) {
                    Some(a) => self.outbox.push_back(Out { addr: a, tx }),
                    None => self.stats.tx_unroutable += 1,
                },
            }
        }
    }

    /// Sends what the outbox holds until it is empty, the socket refuses more, or `rounds`
    /// batches went; true if a datagram left the outbox.
    pub(crate) fn flush(&mut self, rounds: usize) -> bool {
        if let Some(Blocked::NoBufs(until)) = self.blocked
            && Instant::now() < until
        {
            return false;
        }
        let mut progress = false;
        let mut sent = 0;
        while !self.outbox.is_empty() && sent < rounds {
            let routes = &self.routes;
            let msgs = self.outbox.iter().map(|o| (routes.sockaddr(o.addr), &o.tx.head[..], &o.tx.body[..]));
            self.stats.sendmmsg_calls += 1;
            match self.send.send(self.uni.as_fd(), msgs) {
                Ok(n) => {
                    sent += 1;
                    self.stats.tx_sent += n as u64;
                    if let Some(g) = self.routes.group {
                        self.stats.tx_to_group += self.outbox.iter().take(n).filter(|o| o.addr == g).count() as u64;
                    }
                    self.outbox.drain(..n.min(self.outbox.len()));
                    self.blocked = None;
                    progress = true;
                }
                Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => {
                    self.stats.tx_blocked += 1;
                    self.blocked = Some(Blocked::Full);
                    break;
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    self.stats.tx_blocked += 1;
                    self.blocked = Some(Blocked::NoBufs(Instant::now() + NOBUFS_BACKOFF));
                    break;
                }
                Err(_) => {
                    // The first datagram of the batch is refused (EMSGSIZE, ENETUNREACH, ...).
                    self.stats.tx_errors += 1;
                    self.outbox.pop_front();
                    progress = true;
                }
            }
        }
        if self.outbox.is_empty() {
            self.blocked = None;
        }
        progress
    }

    /// Sleeps until a socket is ready (readable if `read`; writable while the socket refused
    /// datagrams), `waker` is written, or `deadline` (or the end of an ENOBUFS back-off)
    /// passes. Returns whether the waker was written (it is drained).
    pub(crate) fn wait(&mut self, waker: Option<&Waker>, read: bool, deadline: Option<Instant>) -> bool {
        let mut deadline = deadline;
        if let Some(Blocked::NoBufs(until)) = self.blocked {
            deadline = Some(deadline.map_or(until, |d| d.min(until)));
        }
        let timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let read = if read { libc::POLLIN } else { 0 };
        let write = if self.blocked == Some(Blocked::Full) { libc::POLLOUT } else { 0 };
        let fd = |s: Option<&Socket>, events| libc::pollfd {
            fd: s.map_or(-1, |s| s.as_raw_fd()),
            events: if s.is_some() { events } else { 0 },
            revents: 0,
        };
        let mut fds = [
            libc::pollfd { fd: waker.map_or(-1, |w| w.fd().as_raw_fd()), events: libc::POLLIN, revents: 0 },
            fd(Some(&self.uni), read | write),
            fd(self.mc.as_ref(), read),
        ];
        if sys::poll(&mut fds, timeout).is_err() {
            // Cannot happen with valid fds; do not spin if it does.
            std::thread::sleep(NOBUFS_BACKOFF);
        }
        self.stats.wakeups += 1;
        // A socket that woke us is read on the next turn, quiet or not.
        for (k, fd) in fds[1..].iter().enumerate() {
            if fd.revents != 0 {
                self.quiet[k] = 0;
            }
        }
        let woken = fds[0].revents != 0;
        if let (true, Some(w)) = (woken, waker) {
            w.drain();
        }
        woken
    }

    /// The machine's deadline as an instant of the core's clock.
    pub(crate) fn deadline<M: Machine>(&self, m: &M) -> Option<Instant> {
        let now = self.now();
        m.poll_timeout().map(|t| Instant::now() + t.since(now))
    }

    /// Flushes the outbox as far as the socket takes it; with `wait`, keeps trying (waking
    /// for POLLOUT, or `waker`) until it is empty, `wait` has passed, or `stop` says to give up.
    pub(crate) fn drain_outbox(&mut self, wait: Option<Duration>, waker: Option<&Waker>, stop: impl Fn() -> bool) {
        self.flush(usize::MAX);
        let Some(limit) = wait else { return };
        let give_up = Instant::now() + limit;
        while !self.outbox.is_empty() && Instant::now() < give_up && !stop() {
            self.wait(waker, false, Some(give_up.min(Instant::now() + Duration::from_millis(10))));
            self.blocked = None;
            self.flush(usize::MAX);
        }
    }

    /// The counters, with the machine's.
    pub(crate) fn snapshot<M: Machine>(&mut self, m: &M) -> &DriverStats {
        self.stats.endpoint = m.stats();
        &self.stats
    }
}
