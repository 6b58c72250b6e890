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
//!    would for raw UDP. Datagrams from a source with no route may teach one (below);
//! 4. moves the endpoint's events into the event queue in one lock, publishing each view
//!    the endpoint announces to the handles (`Handle::view`) first;
//! 5. sends the endpoint's transmits with `sendmmsg` (up to `SEND_ROUNDS` calls of `batch`
//!    datagrams per turn), each datagram as two iovecs (frame and headers, then the
//!    application's `Bytes`, not copied). On EAGAIN the rest waits for POLLOUT; on ENOBUFS
//!    (a full device queue, which POLLOUT does not report) it waits 1 ms; nothing is dropped
//!    for lack of room. A datagram the kernel refuses outright is counted and dropped.
//!
//! **Routes.** `Dest::All` goes to the group in multicast mode. In fan-out mode a cast goes
//! to every other member of the current view, each by its route: its configured address
//! (the addresses given to `spawn`), else the route learned from its datagrams, else — the
//! common case for a member that joined through a seed — the address its id carries
//! (`endpoint_addr`: IPv4 ids are the address and port, so any member reaches any other
//! whose id is in its view, configured or not, heard from or not). A cast goes to nobody
//! else: it means nothing outside the view, and a route learned from a stranger (or a
//! spoofed source) must not turn every cast into a datagram to it; nor do casts go to the
//! configured peers outside the view (seeds that left, or were never members). Gossip
//! (discovery, merge beacons) goes to every configured peer but this member (the seeds),
//! every learned route, and the members a cast reaches by their decoded address. An id
//! that is neither configured nor learned and decodes to nothing a datagram can go to (an
//! IPv6 member's id is a hash; see `config`) gets no casts: in IPv6 fan-out a member that
//! joined through a seed reaches, and is reached by, only the members it has talked to.
//!
//! `Dest::One(id)` goes to the configured peer of that id, else its learned route, else the
//! address `id` carries, else nowhere (`tx_unroutable`). Decoded destinations are made on
//! demand (one per id, kept while the view has the member or a queued datagram goes there;
//! the table is rebuilt at each view and whenever it has doubled, to at least
//! `MAX_LEARNED`, queued datagrams renumbered), so an id is decoded once. Only this member's family decodes: an
//! IPv4 id is never sent to from an IPv6 socket, nor to an unspecified, broadcast or
//! multicast address or port 0 (an id is only a number). A reply to a forged source id thus
//! goes to the address that id names, one datagram per datagram received, as with any
//! request over UDP; no forged datagram makes casts or gossip go anywhere.
//!
//! A member's id is `endpoint_id` of its unicast address and it sends everything from that
//! socket, so a datagram tells where its sender lives: when its source address has no route,
//! the frame's source id equals `endpoint_id(source)` (a forger cannot make another address
//! map to the id it claims; otherwise `rx_src_mismatch`), and the endpoint finds the frame
//! sound (CRC, group), the route is learned (for an IPv4 member, at the very address its id
//! carries; learned, it also gets gossip once out of the view). Routes are learned in both
//! modes (multicast needs them for `Dest::One` to IPv6 members), never for a configured id,
//! and never forgotten except that at most `MAX_LEARNED` are kept: a new one then replaces
//! the oldest (`routes_replaced`), and the datagrams still queued for the old one are
//! dropped (`tx_unroutable`). Nothing here depends on the view but where casts go: the
//! first view may be provisional (a joining endpoint) and every later one is the membership
//! layer's business. The cost per datagram from a known source is a few address
//! comparisons (`RECENT` recent sources); a lookup by id, and for an unknown id the id of
//! the address, only on a miss.
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
//! Tested by the unit tests below (routes: configured, learned, forged, replaced when full,
//! decoded from ids and renumbered when rebuilt; casts to members only, gossip to every
//! route; the frame's flag and source offsets) and end to end by `stack/tests/udp.rs`
//! (delivery over multicast and fan-out, IPv4 and IPv6, point-to-point routing, hostile
//! datagrams, queue bounds, shutdown) and `stack/tests/udp_routes.rs` (members reach a
//! member that joined through a seed by the address its id carries, and no configured peer
//! outside the view gets casts; learned routes in IPv6 fan-out and in multicast, forged and
//! unsound datagrams teach nothing, a stranger's route gets gossip and no casts; the
//! handle's view, block_ok / send_state past held casts, joining through a seed).

use super::config::{endpoint_addr, endpoint_id};
use super::handle::{Cmd, Shared};
use super::socket::{Granted, Sockets};
use super::sys::{self, RecvBatch, SendBatch};
use crate::endpoint::{Dest, Endpoint, Stats, Transmit};
use crate::event::Event;
use crate::frame::FLAG_GOSSIP;
use crate::ids::{EndpointId, View};
use crate::layer::Layer;
use crate::time::Time;
use bytes::{Bytes, BytesMut};
use socket2::{SockAddr, Socket};
use std::collections::{HashMap, VecDeque};
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

/// Learned routes kept at most (when full, a new one replaces the oldest).
pub(crate) const MAX_LEARNED: usize = 4096;
/// Source addresses remembered as "nothing to learn" (checked before anything else).
const RECENT: usize = 8;
/// Where the frame keeps its flags and its source id (little-endian; see `frame`).
const FRAME_FLAGS: usize = 3;
const FRAME_SRC: core::ops::Range<usize> = 32..40;

/// The source id a datagram's frame claims, if it is long enough to have one (unchecked:
/// the endpoint checks the frame).
fn frame_src(data: &[u8]) -> Option<EndpointId> {
    Some(EndpointId(u64::from_le_bytes(data.get(FRAME_SRC)?.try_into().ok()?)))
}

/// The same socket as far as member ids go: same port, same address (IPv4-mapped IPv6 as
/// IPv4; scope and flow label ignored), as `endpoint_id` sees it.
fn same_socket(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && a.ip().to_canonical() == b.ip().to_canonical()
}

/// A destination made from an id (`endpoint_addr`): `DECODED | k` is `Routes::decoded[k]`.
const DECODED: usize = 1 << (usize::BITS - 1);

/// Whether an address an id carries is one to send datagrams to: a unicast IPv4 address
/// and a port (an id is only a number: it may name the unspecified, a broadcast or a
/// multicast address, which no member's socket is bound to).
fn sendable(a: SocketAddr) -> bool {
    match a {
        SocketAddr::V4(v) => {
            let ip = v.ip();
            v.port() != 0 && !ip.is_unspecified() && !ip.is_broadcast() && !ip.is_multicast()
        }
        SocketAddr::V6(_) => false,
    }
}

/// Where datagrams go: the group (multicast mode), the configured peers (resolved once), the
/// routes learned from received datagrams, and the addresses IPv4 ids carry (decoded).
/// Destinations are indices into `addrs`, `[group] [configured peers...] [learned
/// routes...]`, or `DECODED | k` into `decoded`.
pub(crate) struct Routes {
    me: EndpointId,
    addrs: Vec<SockAddr>,
    group: Option<usize>,
    /// Configured peers by id, sorted for binary search, with their address.
    by_id: Vec<(EndpointId, usize, SocketAddr)>,
    /// Every configured peer but this member (fan-out).
    others: Vec<usize>,
    /// The current view's members, in rank order.
    view: Vec<EndpointId>,
    /// The same, sorted.
    members: Vec<EndpointId>,
    /// Where a fan-out cast goes: one destination for each other member of the view that
    /// has one (configured, else learned, else decoded), in rank order.
    cast_to: Vec<usize>,
    /// The decoded destinations in `cast_to` (members with no configured or learned route):
    /// gossip goes there too.
    member_decoded: Vec<usize>,
    /// Whether ids are decoded at all: this member's socket is IPv4 (its own id decodes).
    decode: bool,
    /// Destinations made from ids, `DECODED | k` for `decoded[k]`; appended to as needed,
    /// and rebuilt (`renew`) only with the queued datagrams' destinations renumbered, so a
    /// queued datagram never goes to another id's address.
    decoded: Vec<(EndpointId, SockAddr)>,
    decoded_ids: HashMap<EndpointId, usize>,
    /// `dest` rebuilds the decoded table (`renew`) when it holds this many.
    compact_at: usize,
    /// Index in `addrs` of the first learned route.
    learned_base: usize,
    /// Learned routes by slot (`addrs[learned_base + slot]`), filled in order; once
    /// `cap` are full, slot `victim` (the oldest) is replaced next.
    learned: Vec<(EndpointId, SocketAddr)>,
    learned_ids: HashMap<EndpointId, usize>,
    victim: usize,
    cap: usize,
    /// Recent sources whose route is known: a datagram from one of them teaches nothing,
    /// and costs no more than these comparisons. The unspecified address (port 0) never
    /// sends, so it marks an empty entry.
    recent: [SocketAddr; RECENT],
    recent_next: usize,
}

/// What `Routes::check_source` found out about a datagram's source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    /// Known, this member, or not worth a look: nothing to learn.
    Known,
    /// A route to `id` at this address may be learned once the endpoint has found the frame
    /// sound (CRC, group).
    Learn(EndpointId),
    /// The frame claims a source id that is not `endpoint_id` of the source address (and no
    /// route knows that address): it teaches nothing.
    Mismatch,
}

/// What `Routes::learn` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Learned {
    /// A new route, in a free slot.
    New,
    /// A new route, replacing the oldest learned one, whose destination index this was.
    Replaced(usize),
    /// The id had a route already (or is this member's): nothing changed.
    Known,
}

const NOWHERE: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 0);

impl Routes {
    pub(crate) fn new(sockets: &Sockets, me: EndpointId, peers: &[SocketAddr]) -> Routes {
        let group = match sockets.group_dst {
            Some(g) if sockets.is_multicast() => Some(g),
            _ => None,
        };
        Routes::with_capacity(group, me, peers, MAX_LEARNED)
    }

    pub(crate) fn with_capacity(
        group_dst: Option<SocketAddr>,
        me: EndpointId,
        peers: &[SocketAddr],
        cap: usize,
    ) -> Routes {
        let mut addrs = Vec::new();
        let group = group_dst.map(|g| {
            addrs.push(SockAddr::from(g));
            0
        });
        let mut by_id: Vec<(EndpointId, usize, SocketAddr)> = Vec::new();
        let mut others = Vec::new();
        for &p in peers {
            let id = endpoint_id(p);
            if by_id.iter().any(|&(i, _, _)| i == id) {
                continue;
            }
            by_id.push((id, addrs.len(), p));
            if id != me {
                others.push(addrs.len());
            }
            addrs.push(SockAddr::from(p));
        }
        by_id.sort_unstable_by_key(|&(id, _, _)| id);
        Routes {
            me,
            learned_base: addrs.len(),
            addrs,
            group,
            by_id,
            others,
            view: Vec::new(),
            members: Vec::new(),
            cast_to: Vec::new(),
            member_decoded: Vec::new(),
            decode: endpoint_addr(me).is_some(),
            decoded: Vec::new(),
            decoded_ids: HashMap::new(),
            compact_at: cap.max(1),
            learned: Vec::new(),
            learned_ids: HashMap::new(),
            victim: 0,
            cap: cap.max(1),
            recent: [NOWHERE; RECENT],
            recent_next: 0,
        }
    }

    /// The route to `id`: a configured peer, else a learned route.
    fn peer(&self, id: EndpointId) -> Option<usize> {
        match self.by_id.binary_search_by_key(&id, |&(i, _, _)| i) {
            Ok(k) => Some(self.by_id[k].1),
            Err(_) => self.learned_ids.get(&id).map(|&slot| self.learned_base + slot),
        }
    }

    /// The address of the route to `id`, if any.
    fn route_addr(&self, id: EndpointId) -> Option<SocketAddr> {
        match self.by_id.binary_search_by_key(&id, |&(i, _, _)| i) {
            Ok(k) => Some(self.by_id[k].2),
            Err(_) => self.learned_ids.get(&id).map(|&slot| self.learned[slot].1),
        }
    }

    /// The address of a destination.
    fn sockaddr(&self, dst: usize) -> &SockAddr {
        if dst & DECODED == 0 { &self.addrs[dst] } else { &self.decoded[dst & !DECODED].1 }
    }

    /// The destination of `Dest::One(id)`: a configured peer, else a learned route, else the
    /// address `id` carries (`decoded`). `pending`: the destinations of the queued datagrams,
    /// renumbered if the decoded table is rebuilt to make room.
    fn dest<'a>(&mut self, id: EndpointId, pending: impl Iterator<Item = &'a mut usize>) -> Option<usize> {
        if let Some(d) = self.peer(id) {
            return Some(d);
        }
        if let Some(&k) = self.decoded_ids.get(&id) {
            return Some(DECODED | k);
        }
        if self.decoded.len() >= self.compact_at {
            self.renew(pending);
        }
        self.decoded_dst(id)
    }

    /// The decoded destination of `id`, made if need be; `None` if ids are not decoded here
    /// or `id` carries no address a datagram can go to.
    fn decoded_dst(&mut self, id: EndpointId) -> Option<usize> {
        if let Some(&k) = self.decoded_ids.get(&id) {
            return Some(DECODED | k);
        }
        if !self.decode || id == self.me {
            return None;
        }
        let addr = endpoint_addr(id).filter(|&a| sendable(a))?;
        let k = self.decoded.len();
        self.decoded.push((id, SockAddr::from(addr)));
        self.decoded_ids.insert(id, k);
        Some(DECODED | k)
    }

    /// Rebuilds the decoded table with only the destinations `pending` still refers to
    /// (renumbered in place) and those of the view's members.
    fn renew<'a>(&mut self, pending: impl Iterator<Item = &'a mut usize>) {
        let old = std::mem::take(&mut self.decoded);
        self.decoded_ids.clear();
        for d in pending.filter(|d| **d & DECODED != 0) {
            let (id, ref addr) = old[*d & !DECODED];
            let k = *self.decoded_ids.entry(id).or_insert_with(|| {
                self.decoded.push((id, addr.clone()));
                self.decoded.len() - 1
            });
            *d = DECODED | k;
        }
        self.rebuild();
        // The next rebuild when the table has doubled (and holds at least `cap`): amortised,
        // however many entries the queued datagrams and the view keep.
        self.compact_at = self.cap.max(2 * self.decoded.len());
    }

    /// Recomputes where casts go: the route of each other member of the view; in fan-out
    /// mode a member with no configured or learned route gets a decoded one if its id
    /// carries an address.
    fn rebuild(&mut self) {
        self.cast_to.clear();
        self.member_decoded.clear();
        if self.group.is_some() {
            return; // casts go to the group
        }
        for r in 0..self.view.len() {
            let id = self.view[r];
            if id == self.me {
                continue;
            }
            if let Some(d) = self.peer(id) {
                self.cast_to.push(d);
            } else if let Some(d) = self.decoded_dst(id) {
                self.cast_to.push(d);
                self.member_decoded.push(d);
            }
        }
    }

    /// Every destination of a gossip `Dest::All` in fan-out mode: the configured peers but
    /// this member, every learned route, then the decoded routes of the view's members (so
    /// every member a cast reaches, and the seeds and strangers casts do not).
    fn fanout(&self) -> impl Iterator<Item = usize> + '_ {
        let learned = self.learned_base..self.addrs.len();
        self.others.iter().copied().chain(learned).chain(self.member_decoded.iter().copied())
    }

    /// Every destination of a cast in fan-out mode: each other member of the current view,
    /// by its configured, learned or decoded route.
    fn cast_targets(&self) -> &[usize] {
        &self.cast_to
    }

    fn is_member(&self, id: EndpointId) -> bool {
        self.members.binary_search(&id).is_ok()
    }

    /// The endpoint installed `view`: casts go to its members from now on. `pending`: the
    /// destinations of the queued datagrams (the decoded table is rebuilt for the view).
    pub(crate) fn set_view<'a>(&mut self, view: &View, pending: impl Iterator<Item = &'a mut usize>) {
        self.view.clone_from(&view.members);
        self.members.clone_from(&view.members);
        self.members.sort_unstable();
        self.renew(pending);
    }

    /// The learned routes, oldest first.
    #[cfg(test)]
    pub(crate) fn learned(&self) -> impl Iterator<Item = (EndpointId, SocketAddr)> + '_ {
        let (newer, older) = self.learned.split_at(self.victim.min(self.learned.len()));
        older.iter().chain(newer).copied()
    }

    fn remember(&mut self, src: SocketAddr) {
        self.recent[self.recent_next] = src;
        self.recent_next = (self.recent_next + 1) % RECENT;
    }

    /// What a datagram of `data` from `src` can teach. The common case, a recent source,
    /// costs `RECENT` comparisons; otherwise a lookup by the frame's claimed id, and only
    /// for an unknown id `endpoint_id` of the source address.
    pub(crate) fn check_source(&mut self, src: SocketAddr, data: &[u8]) -> Source {
        if self.recent.contains(&src) {
            return Source::Known;
        }
        let Some(id) = frame_src(data) else { return Source::Known };
        if id == self.me {
            return Source::Known;
        }
        match self.route_addr(id) {
            Some(a) if same_socket(a, src) => {
                self.remember(src);
                Source::Known
            }
            // Another address claims a routed id: a forgery (or an IPv6 hash collision).
            Some(_) => Source::Mismatch,
            None if endpoint_id(src) == id => Source::Learn(id),
            None => Source::Mismatch,
        }
    }

    /// Adds the route `id` → `src` (from `check_source`).
    pub(crate) fn learn(&mut self, id: EndpointId, src: SocketAddr) -> Learned {
        if id == self.me || self.peer(id).is_some() {
            return Learned::Known;
        }
        let learned = if self.learned.len() < self.cap {
            self.learned_ids.insert(id, self.learned.len());
            self.learned.push((id, src));
            self.addrs.push(SockAddr::from(src));
            if self.is_member(id) {
                self.rebuild();
            }
            Learned::New
        } else {
            let slot = self.victim;
            self.victim = (slot + 1) % self.cap;
            let (old, old_addr) = self.learned[slot];
            self.learned_ids.remove(&old);
            for r in self.recent.iter_mut().filter(|r| same_socket(**r, old_addr)) {
                *r = NOWHERE;
            }
            let at = self.learned_base + slot;
            self.learned_ids.insert(id, slot);
            self.learned[slot] = (id, src);
            self.addrs[at] = SockAddr::from(src);
            if self.is_member(old) || self.is_member(id) {
                self.rebuild();
            }
            Learned::Replaced(at)
        };
        self.remember(src);
        learned
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
    use crate::frame::{FRAME_LEN, Frame};
    use crate::ids::{GroupId, ViewId};

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    /// A frame from `src` (only the source field matters to the routes).
    fn frame(src: EndpointId) -> [u8; FRAME_LEN] {
        let mut f = [0u8; FRAME_LEN];
        Frame { flags: 0, group: GroupId(9), view: ViewId { ltime: 1, coord: src }, src }.write(&mut f);
        f
    }

    #[test]
    fn frame_fields_follow_the_frame_layout() {
        let id = EndpointId(0x0102_0304_0506_0708);
        assert_eq!(frame_src(&frame(id)), Some(id));
        assert_eq!(frame_src(&frame(id)[..FRAME_LEN - 1]), None);
        let tx = |flags| {
            let mut f = [0u8; FRAME_LEN];
            Frame { flags, group: GroupId(9), view: ViewId { ltime: 1, coord: id }, src: id }.write(&mut f);
            Transmit { dst: Dest::All, head: f[..].into(), body: Bytes::new() }
        };
        assert!(is_gossip(&tx(FLAG_GOSSIP)) && is_gossip(&tx(FLAG_GOSSIP | crate::frame::FLAG_SEND)));
        assert!(!is_gossip(&tx(0)) && !is_gossip(&tx(crate::frame::FLAG_SEND)));
    }

    fn view(m: &[SocketAddr]) -> View {
        View::initial(m.iter().map(|&a| endpoint_id(a)).collect())
    }

    /// No queued datagrams.
    fn none<'a>() -> std::iter::Empty<&'a mut usize> {
        std::iter::empty()
    }

    #[test]
    fn casts_go_to_members_gossip_to_every_route() {
        let (me, seed, member, stranger) = (addr(3000), addr(3001), addr(3002), addr(3003));
        let id = endpoint_id;
        let mut r = Routes::with_capacity(None, id(me), &[me, seed], 2);
        let to_seed = r.peer(id(seed)).unwrap();
        r.set_view(&view(&[me, seed]), none());
        assert_eq!(r.cast_targets(), &[to_seed]);
        assert_eq!(r.learn(id(stranger), stranger), Learned::New);
        let to_stranger = r.peer(id(stranger)).unwrap();
        assert_eq!(r.cast_targets(), &[to_seed], "not a member: no casts");
        assert_eq!(r.fanout().collect::<Vec<_>>(), vec![to_seed, to_stranger], "gossip goes everywhere");
        // A member nobody configured and nobody heard from: reached by the address its id
        // carries, casts and gossip alike.
        r.set_view(&view(&[me, seed, member]), none());
        let decoded = DECODED;
        assert_eq!(r.cast_targets(), &[to_seed, decoded]);
        assert_eq!(r.sockaddr(decoded).as_socket(), Some(member));
        assert_eq!(r.fanout().collect::<Vec<_>>(), vec![to_seed, to_stranger, decoded]);
        // Once heard from, its learned route (the same address) replaces the decoded one.
        assert_eq!(r.learn(id(member), member), Learned::New);
        let to_member = r.peer(id(member)).unwrap();
        assert_eq!(r.cast_targets(), &[to_seed, to_member]);
        assert_eq!(r.fanout().collect::<Vec<_>>(), vec![to_seed, to_stranger, to_member], "no duplicate");
        // A seed out of the view gets no casts (it still gets gossip).
        r.set_view(&view(&[me, stranger, member]), none());
        assert_eq!(r.cast_targets(), &[to_stranger, to_member], "members only, in rank order");
        // The table is full (2): the oldest (stranger, a member) is replaced by a non-member;
        // the stranger is then reached by the address its id carries.
        let other = addr(3004);
        assert_eq!(r.learn(id(other), other), Learned::Replaced(to_stranger));
        let to_other = to_stranger;
        assert_eq!(r.cast_targets(), &[decoded, to_member]);
        assert_eq!(r.sockaddr(decoded).as_socket(), Some(stranger));
        assert_eq!(r.fanout().collect::<Vec<_>>(), vec![to_seed, to_other, to_member, decoded]);
        r.set_view(&view(&[me]), none());
        assert_eq!(r.cast_targets(), &[] as &[usize]);
        assert_eq!(r.fanout().collect::<Vec<_>>(), vec![to_seed, to_other, to_member]);
        assert!(r.decoded.is_empty(), "rebuilt for the view: nothing queued, no member to decode");
    }

    #[test]
    fn sends_go_to_the_address_an_id_carries() {
        let (me, seed, far) = (addr(4000), addr(4001), addr(4002));
        let mut r = Routes::with_capacity(None, endpoint_id(me), &[me, seed], 4);
        assert_eq!(r.dest(endpoint_id(seed), none()), r.peer(endpoint_id(seed)), "configured first");
        let d = r.dest(endpoint_id(far), none()).expect("decoded");
        assert_eq!(d, DECODED);
        assert_eq!(r.sockaddr(d).as_socket(), Some(far));
        assert_eq!(r.dest(endpoint_id(far), none()), Some(d), "decoded once");
        assert_eq!(r.decoded.len(), 1);
        assert_eq!(r.peer(endpoint_id(far)), None, "a decoded destination is not a route: it teaches nothing");
        // Ids that carry no address, or none a datagram can go to.
        let v6 = endpoint_id("[::1]:4000".parse().unwrap());
        let nowhere: Vec<SocketAddr> =
            ["0.0.0.0:9", "255.255.255.255:9", "224.0.0.1:9", "239.84.72.1:47474", "127.0.0.1:0"]
                .iter()
                .map(|a| a.parse().unwrap())
                .collect();
        for id in [EndpointId(7), EndpointId(777), v6].into_iter().chain(nowhere.iter().map(|&a| endpoint_id(a))) {
            assert_eq!(r.dest(id, none()), None, "{id:?}");
        }
        assert_eq!(r.decoded.len(), 1);
        // Learned later: the learned route wins.
        assert_eq!(r.check_source(far, &frame(endpoint_id(far))), Source::Learn(endpoint_id(far)));
        assert_eq!(r.learn(endpoint_id(far), far), Learned::New);
        assert_eq!(r.dest(endpoint_id(far), none()), r.peer(endpoint_id(far)));

        // An IPv6 member decodes nothing: its socket cannot send to IPv4 addresses.
        let me6: SocketAddr = "[::1]:4000".parse().unwrap();
        let mut r6 = Routes::with_capacity(None, endpoint_id(me6), &[me6], 4);
        assert_eq!(r6.dest(endpoint_id(far), none()), None);
        r6.set_view(&View::initial(vec![endpoint_id(me6), endpoint_id(far)]), none());
        assert_eq!(r6.cast_targets(), &[] as &[usize], "the IPv6 gap: no route to a member never heard from");
    }

    #[test]
    fn rebuilding_the_decoded_table_renumbers_queued_datagrams() {
        let me = addr(5000);
        let p: Vec<SocketAddr> = (1..=7).map(|k| addr(5000 + k)).collect();
        let id = |k: usize| endpoint_id(p[k]);
        let to = |r: &Routes, d: usize| r.sockaddr(d).as_socket().unwrap();
        let mut r = Routes::with_capacity(None, endpoint_id(me), &[me], 2);
        r.set_view(&View::initial(vec![endpoint_id(me), id(0)]), none());
        assert_eq!(r.cast_targets(), &[DECODED]);
        assert_eq!(r.compact_at, 2);
        // Sends to strangers, queued (`queued` plays the outbox).
        let mut queued = Vec::new();
        let d = r.dest(id(1), queued.iter_mut()).unwrap();
        queued.push(d);
        assert_eq!(r.decoded.len(), 2);
        // Full: rebuilt with what is queued (p[1]) and the member (p[0]), then p[2] added.
        let d = r.dest(id(2), queued.iter_mut()).unwrap();
        queued.push(d);
        assert_eq!(r.decoded.len(), 3);
        assert_eq!(r.compact_at, 4, "the next rebuild waits for as much growth again");
        assert_eq!(queued.iter().map(|&d| to(&r, d)).collect::<Vec<_>>(), vec![p[1], p[2]]);
        assert_eq!(to(&r, r.cast_targets()[0]), p[0], "the member is still reached");
        // p[1]'s datagram left; p[3] fits, p[4] makes the table rebuild: p[1] is dropped.
        queued.remove(0);
        let d = r.dest(id(3), queued.iter_mut()).unwrap();
        queued.push(d);
        assert_eq!(r.decoded.len(), 4);
        let d = r.dest(id(4), queued.iter_mut()).unwrap();
        queued.push(d);
        assert_eq!(queued.iter().map(|&d| to(&r, d)).collect::<Vec<_>>(), vec![p[2], p[3], p[4]]);
        assert_eq!(to(&r, r.cast_targets()[0]), p[0]);
        assert_eq!(r.decoded.len(), 4, "p[2], p[3], p[0], p[4]");
        assert!(!r.decoded_ids.contains_key(&id(1)), "nothing queued for p[1] any more");
        // A new view rebuilds too: the queued datagrams keep their addresses, p[0] goes.
        r.set_view(&View::initial(vec![endpoint_id(me), id(5)]), queued.iter_mut());
        assert_eq!(queued.iter().map(|&d| to(&r, d)).collect::<Vec<_>>(), vec![p[2], p[3], p[4]]);
        assert_eq!(r.cast_targets().len(), 1);
        assert_eq!(to(&r, r.cast_targets()[0]), p[5]);
        assert_eq!(r.decoded.len(), 4);
        assert!(!r.decoded_ids.contains_key(&id(0)), "p[0] left the view and nothing is queued for it");
        // Multicast mode: casts go to the group, members are not decoded until sent to.
        let mut m = Routes::with_capacity(Some("239.1.2.3:4000".parse().unwrap()), endpoint_id(me), &[me], 2);
        m.set_view(&View::initial(vec![endpoint_id(me), id(6)]), none());
        assert!(m.decoded.is_empty() && m.cast_targets().is_empty());
        assert_eq!(m.dest(id(6), none()).map(|d| to(&m, d)), Some(p[6]));
    }

    #[test]
    fn configured_then_learned_then_unroutable() {
        let (me, seed, other) = (addr(1000), addr(1001), addr(1002));
        let mut r = Routes::with_capacity(None, endpoint_id(me), &[me, seed], 4);
        let (seed_id, other_id) = (endpoint_id(seed), endpoint_id(other));
        assert_eq!(r.fanout().collect::<Vec<_>>(), vec![r.peer(seed_id).unwrap()], "fan-out skips this member");
        assert_eq!(r.peer(other_id), None);
        // A configured peer teaches nothing, and is remembered as recent.
        assert_eq!(r.check_source(seed, &frame(seed_id)), Source::Known);
        assert!(r.recent.contains(&seed));
        // Own copies teach nothing.
        assert_eq!(r.check_source(me, &frame(endpoint_id(me))), Source::Known);
        // Another address claiming a routed id, or an id not its own, teaches nothing.
        assert_eq!(r.check_source(other, &frame(seed_id)), Source::Mismatch);
        assert_eq!(r.check_source(seed, &frame(other_id)), Source::Known, "a recent source is not looked at");
        assert_eq!(r.check_source(addr(1003), &frame(other_id)), Source::Mismatch);
        // The real one does.
        assert_eq!(r.check_source(other, &frame(other_id)), Source::Learn(other_id));
        assert_eq!(r.learn(other_id, other), Learned::New);
        assert_eq!(r.learn(other_id, other), Learned::Known, "learned once");
        assert_eq!(r.learn(seed_id, seed), Learned::Known, "configured wins");
        let to_other = r.peer(other_id).expect("learned route");
        assert_eq!(r.addrs[to_other].as_socket(), Some(other));
        assert_eq!(r.fanout().collect::<Vec<_>>(), vec![r.peer(seed_id).unwrap(), to_other]);
        assert_eq!(r.check_source(other, &frame(other_id)), Source::Known);
        // Too short to have a source: left to the endpoint.
        assert_eq!(r.check_source(addr(1004), &[0u8; 10]), Source::Known);
    }

    #[test]
    fn a_full_table_replaces_the_oldest() {
        let me = addr(2000);
        let mut r = Routes::with_capacity(Some("239.1.2.3:4000".parse().unwrap()), endpoint_id(me), &[me], 3);
        let peers: Vec<SocketAddr> = (1..=5).map(|k| addr(2000 + k)).collect();
        let id = |k: usize| endpoint_id(peers[k]);
        for (k, &p) in peers.iter().enumerate().take(3) {
            assert_eq!(r.learn(id(k), p), Learned::New);
        }
        let slot0 = r.peer(id(0)).unwrap();
        assert_eq!(r.learn(id(3), peers[3]), Learned::Replaced(slot0), "the oldest goes first");
        assert_eq!(r.peer(id(0)), None);
        assert_eq!(r.peer(id(3)), Some(slot0));
        assert_eq!(r.addrs[slot0].as_socket(), Some(peers[3]));
        let slot1 = r.peer(id(1)).unwrap();
        assert_eq!(r.learn(id(4), peers[4]), Learned::Replaced(slot1));
        let order: Vec<EndpointId> = r.learned().map(|(i, _)| i).collect();
        assert_eq!(order, vec![id(2), id(3), id(4)], "oldest first");
        assert_eq!(r.addrs.len(), 1 + 1 + 3, "group, this member, three learned: bounded");
        // The forgotten source is no longer "recent": it can be learned again.
        assert_eq!(r.check_source(peers[0], &frame(id(0))), Source::Learn(id(0)));
        let slot2 = r.peer(id(2)).unwrap();
        assert_eq!(r.learn(id(0), peers[0]), Learned::Replaced(slot2));
        assert_eq!(r.group, Some(0));
    }

    #[test]
    fn same_socket_as_ids_see_it() {
        let v4 = addr(7);
        let mapped = SocketAddr::new(std::net::IpAddr::V6(std::net::Ipv4Addr::LOCALHOST.to_ipv6_mapped()), 7);
        assert!(same_socket(v4, mapped));
        assert!(!same_socket(v4, addr(8)));
        assert!(!same_socket(v4, "[::1]:7".parse().unwrap()));
    }
}
