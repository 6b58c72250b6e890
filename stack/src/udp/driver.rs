//! The driver loop: one thread that owns the sockets and the endpoint and moves data between
//! them and the handle's queues. Each turn it
//!
//! 0. stops at once if the handles asked it to (`Handle::shutdown`, the last handle
//!    dropped), whatever it holds;
//! 1. takes every queued command in one lock and feeds them to the endpoint (not while the
//!    socket refuses datagrams or the outbox holds `SEND_ROUNDS` batches: then commands wait
//!    and `cast` feels the backpressure), in order, until a cast meets flow control
//!    (`Endpoint::can_cast` false): that cast and the commands behind it (a leave among
//!    them) wait for credit, still counted in the command queue's bound until applied, and
//!    `Shared::flow_blocked` tells the handles (`FlowPolicy::WouldBlock`). The answers to a
//!    view change (`Handle::block_ok`, `Handle::send_state`) do not wait behind such a cast
//!    — the view change is what holds it — they are fetched past it and applied;
//! 2. runs the endpoint's timers that are due;
//! 3. reads each socket with `recvmmsg` (up to `RECV_ROUNDS` batches per socket per turn; a
//!    socket that had nothing is skipped for a few turns while the driver stays busy) and
//!    hands every datagram to `Endpoint::handle_datagram` — unless the event queue is full,
//!    in which case the sockets are left alone and the kernel buffers, then drops, as it
//!    would for raw UDP. Datagrams from a source with no route may teach one (`routes`);
//! 4. moves the endpoint's events into the event queue in one lock, publishing each view
//!    the endpoint announces to the handles (`Handle::view`) first;
//! 5. sends the endpoint's transmits with `sendmmsg` (up to `SEND_ROUNDS` calls of `batch`
//!    datagrams per turn), each datagram as two iovecs (frame and headers, then the
//!    application's `Bytes`, not copied). On EAGAIN the rest waits for POLLOUT; on ENOBUFS
//!    (a full device queue, which POLLOUT does not report) it waits 1 ms; nothing is dropped
//!    for lack of room. A datagram the kernel refuses outright is counted and dropped.
//!
//! With nothing to do it parks on the queues (see `queue`) and sleeps in `ppoll` on its
//! sockets and its eventfd until the endpoint's next deadline. `Event::Exit` ends the loop
//! after the remaining transmits are flushed (for at most a second); a stop (shutdown, last
//! handle dropped) ends it at the start of the next turn, whatever it holds — casts held by
//! flow control, events the application does not take, datagrams the socket refuses — after
//! one non-blocking attempt to send what the outbox holds. Either way the event queue is
//! closed with every event still pending appended, so none is lost. The endpoint's clock is
//! the time since the thread started.
//!
//! Where datagrams go, and the routes learned from datagrams received: `routes`.
//!
//! Tested by the unit test below (the frame's flag offset), `routes`'s, and end to end by
//! `stack/tests/udp.rs`
//! (delivery over multicast and fan-out, IPv4 and IPv6, point-to-point routing, hostile
//! datagrams, queue bounds, shutdown) and `stack/tests/udp_routes.rs` (members reach a
//! member that joined through a seed by the address its id carries, and no configured peer
//! outside the view gets casts; learned routes in IPv6 fan-out and in multicast, forged and
//! unsound datagrams teach nothing, a stranger's route gets gossip and no casts; the
//! handle's view, block_ok / send_state past held casts, joining through a seed).

use super::handle::{Cmd, Shared};
use super::routes::{FRAME_FLAGS, Learned, NOWHERE, Routes, Source};
use super::socket::{Granted, Sockets};
use super::sys::{self, RecvBatch, SendBatch};
use crate::endpoint::{Dest, Endpoint, Stats, Transmit};
use crate::event::Event;
use crate::frame::FLAG_GOSSIP;
use crate::ids::EndpointId;
use crate::layer::Layer;
use crate::time::Time;
use bytes::{Bytes, BytesMut};
use socket2::Socket;
use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// What the driver counted, with the endpoint's own counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DriverStats {
    pub endpoint: Stats,
    pub granted: Granted,
    pub sendmmsg_calls: u64,
    pub recvmmsg_calls: u64,
    /// Datagrams the kernel took.
    pub tx_sent: u64,
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
    /// Datagrams from a source with no route whose frame claims a source id that is not
    /// `endpoint_id` of the source address: they teach no route (the endpoint still
    /// judges them as usual).
    pub rx_src_mismatch: u64,
    /// Datagrams read from the sockets.
    pub rx_datagrams: u64,
    /// Datagrams longer than the receive slot (`max_datagram + 1` bytes), so truncated by
    /// the kernel: dropped before the endpoint.
    pub rx_oversize: u64,
    /// Receive calls that failed with something else than EAGAIN.
    pub rx_errors: u64,
    /// Times the driver returned from sleeping in `ppoll`.
    pub wakeups: u64,
    /// Times the handles (or the driver's own queues) wrote the driver's eventfd.
    pub wake_signals: u64,
    /// Times the driver stopped reading its sockets because the event queue was full.
    pub events_full: u64,
    /// Commands the endpoint refused after the handle let them through (a cast racing a
    /// `leave` from another clone).
    pub rejected_commands: u64,
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
const SEND_ROUNDS: usize = 2;
/// A socket that had nothing is read again only every this many turns while another keeps
/// the driver busy (a sleeping driver polls every socket, so nothing waits longer).
const QUIET_SKIP: u8 = 8;
/// How long the driver waits after ENOBUFS before trying again.
const NOBUFS_BACKOFF: Duration = Duration::from_millis(1);
/// How long, at most, an exiting driver keeps trying to flush its last datagrams.
const EXIT_FLUSH: Duration = Duration::from_secs(1);
/// Received datagrams are copied out of the receive slots into chunks of this size, each
/// datagram a slice of its chunk: a copy and a reference count per datagram instead of an
/// allocation that another thread (the application's) frees. A chunk whose datagrams have
/// all been dropped is reused in place; one the application still holds a datagram of lives
/// until that datagram is dropped, so a held message keeps at most this much alive.
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

/// Whether a transmit is gossip (the frame's flags, see `frame`).
fn is_gossip(tx: &Transmit) -> bool {
    tx.head.get(FRAME_FLAGS).is_some_and(|f| f & FLAG_GOSSIP != 0)
}

/// Adds a route the endpoint vouched for; a replaced route's queued datagrams are dropped
/// (they must not go to the new address).
fn learn(routes: &mut Routes, outbox: &mut VecDeque<Out>, stats: &mut DriverStats, id: EndpointId, src: SocketAddr) {
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

/// Datagrams the endpoint rejected before looking at their source: malformed, or of
/// another group. Unchanged across `handle_datagram` means the frame was sound.
fn frame_rejections(s: &Stats) -> u64 {
    s.rx_truncated + s.rx_bad_magic + s.rx_bad_version + s.rx_bad_flags + s.rx_bad_crc + s.rx_foreign_group
}

/// Statistics are published at least this often while the driver is busy.
const PUBLISH_EVERY: Duration = Duration::from_millis(10);

pub(crate) struct Driver<L: Layer> {
    ep: Endpoint<L>,
    shared: Arc<Shared>,
    uni: Socket,
    mc: Option<Socket>,
    routes: Routes,
    start: Instant,
    outbox: VecDeque<Out>,
    send: SendBatch,
    recv: RecvBatch,
    rx_chunk: BytesMut,
    cmds: VecDeque<Cmd>,
    events: VecDeque<Event>,
    stats: DriverStats,
    blocked: Option<Blocked>,
    /// Per socket (unicast, multicast): turns to skip before reading it again.
    quiet: [u8; 2],
    exiting: bool,
    /// What was last published as `Shared::flow_blocked`.
    flow_blocked: bool,
    last_publish: Instant,
}

/// Closes the queues when the driver thread ends, even by a panic in a layer, so no handle
/// waits forever.
struct CloseOnDrop(Arc<Shared>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.events.close();
        self.0.cmds.close();
    }
}

impl<L: Layer> Driver<L> {
    pub(crate) fn new(ep: Endpoint<L>, sockets: Sockets, routes: Routes, shared: Arc<Shared>) -> Driver<L> {
        let batch = sockets.cfg.batch;
        // One byte more than the largest datagram a member sends: longer means truncated.
        let slot = ep.config().max_datagram.saturating_add(1);
        let stats = DriverStats { granted: sockets.granted(), ..DriverStats::default() };
        let now = Instant::now();
        let mut routes = routes;
        routes.set_view(ep.view(), std::iter::empty());
        Driver {
            ep,
            shared,
            uni: sockets.uni,
            mc: sockets.mc,
            routes,
            start: now,
            outbox: VecDeque::new(),
            send: SendBatch::new(batch),
            recv: RecvBatch::new(batch, slot),
            rx_chunk: BytesMut::new(),
            cmds: VecDeque::new(),
            events: VecDeque::new(),
            stats,
            blocked: None,
            quiet: [0; 2],
            exiting: false,
            flow_blocked: false,
            last_publish: now,
        }
    }

    fn now(&self) -> Time {
        Time::from_nanos(u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }

    pub(crate) fn run(mut self) {
        let _guard = CloseOnDrop(self.shared.clone());
        loop {
            if self.shared.is_stopping() {
                self.finish(false);
                return;
            }
            let mut busy = false;
            // New commands only when the socket takes datagrams and the outbox is short:
            // otherwise `cast` waits (backpressure) instead of the outbox growing.
            if self.blocked.is_none() && self.outbox.len() < self.recv.capacity() * SEND_ROUNDS {
                // Commands wait here only behind a cast that flow control holds; an answer
                // on its way is fetched past them (see `take_answers`).
                if self.cmds.is_empty() || self.shared.answers.load(Ordering::Relaxed) > 0 {
                    let d = self.shared.cmds.drain_into(&mut self.cmds);
                    if d.closed {
                        self.finish(false);
                        return;
                    }
                }
                busy |= self.apply_commands();
            }
            let now = self.now();
            if self.ep.poll_timeout().is_some_and(|t| t <= now) {
                self.ep.handle_timeout(now);
                busy = true;
            }
            if self.events.is_empty() {
                busy |= self.receive();
            }
            // The batch is in: the layers' end of turn (pack sends what it gathered).
            self.ep.end_turn(self.now());
            self.collect_events();
            if !self.events.is_empty() {
                self.shared.events.push_from(&mut self.events);
            }
            self.collect_transmits();
            busy |= self.flush(SEND_ROUNDS);
            if self.exiting {
                self.finish(true);
                return;
            }
            if busy {
                if self.last_publish.elapsed() >= PUBLISH_EVERY {
                    self.publish();
                }
            } else {
                self.sleep();
            }
        }
    }

    /// Feeds queued commands to the endpoint, in order, until a cast meets flow control
    /// (the rest wait for credit, except answers: see `take_answers`); true if any went in.
    /// What went in gives its room in the command queue back.
    fn apply_commands(&mut self) -> bool {
        let now = self.now();
        let (mut items, mut bytes) = (0, 0);
        while let Some(cmd) = self.cmds.pop_front() {
            if matches!(cmd, Cmd::Cast(_)) && !self.ep.can_cast() && !self.ep.has_left() {
                self.cmds.push_front(cmd);
                let (n, b) = self.take_answers(now);
                if n > 0 {
                    // An answer may have released the cast (the next view, say): look again.
                    (items, bytes) = (items + n, bytes + b);
                    continue;
                }
                break;
            }
            (items, bytes) = (items + 1, bytes + self.shared.cmds.weigh(&cmd));
            self.apply(now, cmd);
        }
        self.shared.cmds.release(items, bytes);
        items > 0
    }

    fn apply(&mut self, now: Time, cmd: Cmd) {
        let r = match cmd {
            Cmd::Cast(data) => self.ep.cast(now, data),
            Cmd::Send(to, data) => self.ep.send(now, to, data),
            Cmd::Leave => {
                self.ep.leave(now);
                Ok(())
            }
            Cmd::BlockOk => {
                self.shared.answers.fetch_sub(1, Ordering::Relaxed);
                self.ep.block_ok(now);
                Ok(())
            }
            Cmd::State(state) => {
                self.shared.answers.fetch_sub(1, Ordering::Relaxed);
                self.ep.send_state(now, state);
                Ok(())
            }
        };
        if r.is_err() {
            self.stats.rejected_commands += 1;
        }
    }

    /// Applies the answers (`BlockOk`, `State`) waiting behind a cast that flow control holds:
    /// a view change holds casts until the application has answered, so answers must not
    /// wait behind them. Returns how many were applied and their weight.
    fn take_answers(&mut self, now: Time) -> (usize, usize) {
        if self.shared.answers.load(Ordering::Relaxed) == 0 {
            return (0, 0);
        }
        let (answers, rest): (VecDeque<Cmd>, VecDeque<Cmd>) = self.cmds.drain(..).partition(Cmd::is_answer);
        self.cmds = rest;
        let (n, mut bytes) = (answers.len(), 0);
        for cmd in answers {
            bytes += self.shared.cmds.weigh(&cmd);
            self.apply(now, cmd);
        }
        (n, bytes)
    }

    /// Reads the sockets (a quiet one only every `QUIET_SKIP` turns); true if a datagram
    /// came in.
    fn receive(&mut self) -> bool {
        let mut got = false;
        for (k, sock) in [Some(&self.uni), self.mc.as_ref()].into_iter().enumerate() {
            let Some(sock) = sock else { continue };
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
                    let source = match self.recv.source(i) {
                        Some(src) => (src, self.routes.check_source(src, data)),
                        None => (NOWHERE, Source::Known),
                    };
                    let data = copy_out(&mut self.rx_chunk, data);
                    match source {
                        (_, Source::Known) => self.ep.handle_datagram(now, data),
                        (src, Source::Learn(id)) => {
                            let unsound = frame_rejections(self.ep.stats());
                            self.ep.handle_datagram(now, data);
                            if frame_rejections(self.ep.stats()) == unsound {
                                learn(&mut self.routes, &mut self.outbox, &mut self.stats, id, src);
                            }
                        }
                        (_, Source::Mismatch) => {
                            self.stats.rx_src_mismatch += 1;
                            self.ep.handle_datagram(now, data);
                        }
                    }
                }
                if n < self.recv.capacity() {
                    break;
                }
            }
        }
        got
    }

    fn collect_events(&mut self) {
        let blocked = !self.ep.can_cast();
        if blocked != self.flow_blocked {
            self.flow_blocked = blocked;
            self.shared.flow_blocked.store(blocked, Ordering::Relaxed);
        }
        while let Some(ev) = self.ep.poll_event() {
            match &ev {
                Event::Exit => self.exiting = true,
                Event::View(v) => {
                    self.routes.set_view(v, self.outbox.iter_mut().map(|o| &mut o.addr));
                    self.shared.set_view(v.clone());
                }
                _ => {}
            }
            self.events.push_back(ev);
        }
    }

    fn collect_transmits(&mut self) {
        while let Some(tx) = self.ep.poll_transmit() {
            match tx.dst {
                Dest::All => match self.routes.group {
                    Some(g) => self.outbox.push_back(Out { addr: g, tx }),
                    None if is_gossip(&tx) => fan_out(&mut self.outbox, tx, self.routes.fanout()),
                    None => fan_out(&mut self.outbox, tx, self.routes.cast_targets().iter().copied()),
                },
                Dest::One(id) => match self.routes.dest(id, self.outbox.iter_mut().map(|o| &mut o.addr)) {
                    Some(a) => self.outbox.push_back(Out { addr: a, tx }),
                    None => self.stats.tx_unroutable += 1,
                },
            }
        }
    }

    /// Sends what the outbox holds until it is empty, the socket refuses more, or `rounds`
    /// batches went; true if a datagram left the outbox.
    fn flush(&mut self, rounds: usize) -> bool {
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

    fn publish(&mut self) {
        self.stats.endpoint.clone_from(self.ep.stats());
        self.shared.publish(&self.stats);
        self.last_publish = Instant::now();
    }

    /// Parks on the queues and sleeps until a socket, the eventfd or a deadline wakes it.
    fn sleep(&mut self) {
        let reading = self.events.is_empty();
        if !reading {
            if !self.shared.events.park_if_full() {
                return; // room appeared: go on
            }
            self.stats.events_full += 1;
        }
        // Commands matter only when they can go in: not while the socket refuses datagrams
        // and not while flow control holds back the cast at the front.
        if self.blocked.is_none() && self.cmds.is_empty() && !self.shared.cmds.park_if_empty() {
            return; // a command arrived: go on
        }
        self.publish();
        let now = self.now();
        let mut timeout = self.ep.poll_timeout().map(|t| t.since(now));
        if let Some(Blocked::NoBufs(until)) = self.blocked {
            let d = until.saturating_duration_since(Instant::now());
            timeout = Some(timeout.map_or(d, |t| t.min(d)));
        }
        let read = if reading { libc::POLLIN } else { 0 };
        let write = if self.blocked == Some(Blocked::Full) { libc::POLLOUT } else { 0 };
        let mut fds = [
            libc::pollfd { fd: self.shared.wake.waker().fd().as_raw_fd(), events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: self.uni.as_raw_fd(), events: read | write, revents: 0 },
            libc::pollfd { fd: self.mc.as_ref().map_or(-1, |s| s.as_raw_fd()), events: read, revents: 0 },
        ];
        let n = if self.mc.is_some() { 3 } else { 2 };
        if sys::poll(&mut fds[..n], timeout).is_err() {
            // Cannot happen with valid fds; do not spin if it does.
            std::thread::sleep(NOBUFS_BACKOFF);
        }
        self.stats.wakeups += 1;
        if fds[0].revents != 0 {
            self.shared.wake.waker().drain();
        }
        // A socket that woke us is read on the next turn, quiet or not.
        for (k, fd) in fds[1..n].iter().enumerate() {
            if fd.revents != 0 {
                self.quiet[k] = 0;
            }
        }
    }

    /// Ends the loop: flushes (waiting up to `EXIT_FLUSH` if `wait`), publishes the final
    /// statistics, closes the queues with every pending event delivered.
    fn finish(&mut self, wait: bool) {
        self.collect_transmits();
        self.flush(usize::MAX);
        let give_up = Instant::now() + EXIT_FLUSH;
        while wait && !self.outbox.is_empty() && Instant::now() < give_up && !self.shared.is_stopping() {
            let mut fds = [
                libc::pollfd { fd: self.shared.wake.waker().fd().as_raw_fd(), events: libc::POLLIN, revents: 0 },
                libc::pollfd { fd: self.uni.as_raw_fd(), events: libc::POLLOUT, revents: 0 },
            ];
            let _ = sys::poll(&mut fds, Some(Duration::from_millis(10)));
            if fds[0].revents != 0 {
                self.shared.wake.waker().drain();
            }
            self.blocked = None;
            self.flush(usize::MAX);
        }
        self.collect_events();
        self.publish();
        self.shared.events.close_with(&mut self.events);
        self.shared.cmds.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{FLAG_SEND, FRAME_LEN, Frame};
    use crate::ids::{GroupId, ViewId};

    #[test]
    fn the_frames_gossip_flag_follows_the_frame_layout() {
        let id = EndpointId(0x0102_0304_0506_0708);
        let tx = |flags| {
            let mut f = [0u8; FRAME_LEN];
            Frame { flags, group: GroupId(9), view: ViewId { ltime: 1, coord: id }, src: id }.write(&mut f);
            Transmit { dst: Dest::All, head: f[..].into(), body: Bytes::new() }
        };
        assert!(is_gossip(&tx(FLAG_GOSSIP)) && is_gossip(&tx(FLAG_GOSSIP | FLAG_SEND)));
        assert!(!is_gossip(&tx(0)) && !is_gossip(&tx(FLAG_SEND)));
    }
}
