//! `pt2pt`: reliable FIFO point-to-point sends.
//!
//! Protocol. Every `Dn::Send(rank, msg)` to another member gets the next sequence number of
//! that destination (0, 1, 2, ...) and a `Data { seq, ack }` header, and is kept in the
//! destination's unacked buffer until the peer acknowledges it. The receiver delivers each
//! peer's messages in sequence order exactly once: a message ahead of a gap is held in a
//! bounded window (`window` messages past the next expected one; beyond it the message is
//! dropped and counted, and the sender's retransmission brings it back later); a message
//! below the next expected one is a duplicate, dropped and counted and re-acked, so a lost
//! ack never stalls the sender.
//!
//! Acks are cumulative: `ack` is the number of messages received contiguously from the peer,
//! i.e. the next sequence number expected. Every outgoing `Data` carries the current ack for
//! its destination (piggybacked). A received `Data` (new, duplicate or out of window) makes
//! an ack due after `ack_delay`; if no `Data` to that peer carries it first, a standalone
//! `Ack { ack }` goes out with `Dn::SendUnrel`, so a burst of messages gets one ack. There is
//! no selective ack or NAK: the sender retransmits from its oldest unacked message, which is
//! the one the cumulative ack says is missing; messages the receiver already holds past a gap
//! come back as duplicates and cost only bandwidth. That keeps the header two varints.
//!
//! Retransmission. Each destination with unacked messages has a retransmission deadline,
//! `rto` after the first unacked message was sent or after the last ack that made progress.
//! When it passes, the oldest `burst` unacked messages are sent again (with a fresh
//! piggybacked ack), the destination's rto doubles up to `max_rto`, and the deadline is
//! re-armed. An ack that makes progress resets the rto to its initial value.
//!
//! Everything else passes through with a `NoHdr` header: `Cast`, `CastUnrel`, `SendUnrel`, and
//! a `Send` to this member's own rank (the endpoint loops it back locally and in order, so no
//! sequence number or ack is needed), or to a rank outside the view (the endpoint counts it).
//! Going up, `NoHdr` passes up; `Data` and `Ack` are consumed here. Control events (`Leave`,
//! `Stable`, `Exit`, `Error`) pass through.
//!
//! Failed members. After `Dn::Failed(ranks)` (passed on down first; the set only grows) this
//! layer stops retransmitting to those members: their unacked messages are dropped (counted
//! `abandoned`) with their retransmission and ack timers. A later `Send` to one is dropped
//! (`to_failed`), and anything from one (`Cast` or `Send`, whatever its header) is dropped
//! and counted (`from_failed`): a failed member's casts are fetched from the survivors.
//!
//! Forged acks. An ack frees the messages it covers, so a forged one from a peer frees
//! messages the peer never got: the peer would wait for them forever. A peer's ack below
//! what this member still holds (`base`) shows it, and is answered with `Skip { to: base }`
//! by `Dn::SendUnrel`: the peer gives up on the messages it will never get (at most
//! `window` at a time; `skipped`) and delivers what it held beyond them. Honest acks never
//! free what the peer has not received, so honest traffic never skips (a reordered old ack
//! costs one `Skip` that changes nothing). A forged `Skip` costs at most `window` messages,
//! like a forged ack; what rides on this layer must survive losing a message to a forger
//! (`gms` repeats its control messages until answered).
//!
//! Hostile input: a header that does not decode, a `Data`/`Ack` on a cast, from this member's
//! own rank or from a rank outside the view (`bad_hdr`, `bad_rank`), or an ack for messages
//! never sent (`bad_ack`, the whole datagram is dropped) is dropped and counted; nothing
//! panics and nothing is delivered.
//!
//! Parameters (spec `pt2pt(ack_delay_ms=5,rto_ms=50,max_rto_ms=1000,burst=16,window=256,`
//! `mem=16777216,mem_all=67108864)`): `ack_delay_ms` delay before a standalone ack; `rto_ms`
//! initial retransmission timeout; `max_rto_ms` cap of its exponential backoff; `burst`
//! messages retransmitted per timeout per destination; `window` out-of-order messages held
//! per sender (1..=65536); `mem` and `mem_all` the bytes of them held per sender and in all.
//!
//! Properties: requires nothing; provides `RELIABLE_SEND | FIFO_SEND`.
//!
//! Events generated: `Dn::Send` (data and its retransmissions), `Dn::SendUnrel` (standalone
//! acks), `Dn::Failed` (passed on), `Up::Send` (in-order deliveries).
//!
//! Memory: per peer, the receive window holds at most `window` messages whatever the peer
//! sends, and a `Budget` bounds their bytes (`mem` per sender, `mem_all` in all; a message
//! held past a gap is charged its bytes plus 64 after `Msg::compact`): one that does not fit
//! is dropped and counted (`mem_drop`) like one beyond the window, and comes back with the
//! sender's retransmission. The unacked buffer holds every message sent and not yet acknowledged: that is what
//! reliability costs, bounded by what the application sends while a peer is slow or lost;
//! a flow-control layer above bounds it. `dump` counts it (`unacked`) and the held
//! out-of-order messages (`buffered`).
//!
//! Tests: unit tests below (header codec, receive window); `layers/tests/batch.rs`: a batch of
//! casts handed on at once (`handle_ups`) as one at a time; `layers/tests/pt2pt.rs` has unit
//! tests with exact expected outputs, bolero tests (header round-trip, arbitrary bytes into
//! `handle_up`, the receive window against a reference model), and simulator properties for
//! whole groups under loss, duplication, reordering, jitter and asymmetric loss, plus a test
//! that the simulator catches a broken retransmission (`Config::test_skip_retransmit`), and
//! exact outputs of `Dn::Failed` (a failed peer's queue and timers dropped, its traffic too).

use std::collections::{BTreeMap, VecDeque};
use thoth_stack::wire::var_len;
use thoth_stack::{
    Args, Budget, Bytes, Cx, Dn, Dump, Duration, Layer, Msg, Props, Rank, Reader, Registry, Time, Up, Wire, WireError,
    Writer,
};

/// The layer's header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hdr {
    /// Nothing to say: a message this layer passes through.
    NoHdr,
    /// A reliable send: its sequence number, and the cumulative ack for the destination.
    Data {
        /// This message's sequence number towards the destination, from 0.
        seq: u64,
        /// The next sequence number the sender expects from the destination.
        ack: u64,
    },
    /// A standalone cumulative ack: the next sequence number expected from the destination.
    Ack {
        /// The next sequence number expected: everything below it was received.
        ack: u64,
    },
    /// The sender no longer holds the destination's messages below `to`: an ack it took for
    /// one from the destination freed them (only a forged ack can). Skip to `to`.
    Skip {
        /// The sender's oldest message still held: the receiver's new next expected one.
        to: u64,
    },
}

const TAG_NOHDR: u8 = 0;
const TAG_DATA: u8 = 1;
const TAG_ACK: u8 = 2;
const TAG_SKIP: u8 = 3;

impl Wire for Hdr {
    thoth_stack::nothing!(Hdr::NoHdr);
    fn encoded_len(&self) -> usize {
        1 + match *self {
            Hdr::NoHdr => 0,
            Hdr::Data { seq, ack } => var_len(seq) + var_len(ack),
            Hdr::Ack { ack } => var_len(ack),
            Hdr::Skip { to } => var_len(to),
        }
    }
    fn encode(&self, w: &mut Writer<'_>) {
        match *self {
            Hdr::NoHdr => w.put_u8(TAG_NOHDR),
            Hdr::Data { seq, ack } => {
                w.put_u8(TAG_DATA);
                w.put_var(seq);
                w.put_var(ack);
            }
            Hdr::Ack { ack } => {
                w.put_u8(TAG_ACK);
                w.put_var(ack);
            }
            Hdr::Skip { to } => {
                w.put_u8(TAG_SKIP);
                w.put_var(to);
            }
        }
    }
    fn decode(r: &mut Reader<'_>) -> Result<Hdr, WireError> {
        match r.u8()? {
            TAG_NOHDR => Ok(Hdr::NoHdr),
            TAG_DATA => Ok(Hdr::Data { seq: r.var()?, ack: r.var()? }),
            TAG_ACK => Ok(Hdr::Ack { ack: r.var()? }),
            TAG_SKIP => Ok(Hdr::Skip { to: r.var()? }),
            _ => Err(WireError::BadTag),
        }
    }
}

/// Parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Delay before a standalone ack, so that a burst gets one.
    pub ack_delay: Duration,
    /// Initial retransmission timeout.
    pub rto: Duration,
    /// Cap of the exponential backoff.
    pub max_rto: Duration,
    /// Messages retransmitted per timeout, per destination (at least 1).
    pub burst: usize,
    /// Out-of-order messages held per sender (at least 1).
    pub window: u64,
    /// Bytes of them held per sender.
    pub mem: usize,
    /// Bytes of them held for all senders together.
    pub mem_all: usize,
    /// Tests only: never retransmit (the harness must catch it).
    #[doc(hidden)]
    pub test_skip_retransmit: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            ack_delay: Duration::from_millis(5),
            rto: Duration::from_millis(50),
            max_rto: Duration::from_millis(1000),
            burst: 16,
            window: 256,
            mem: 16 << 20,
            mem_all: 64 << 20,
            test_skip_retransmit: false,
        }
    }
}

/// What the receive window did with an offered message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Offer {
    /// New: held until every earlier message is in.
    Accepted,
    /// Already received (delivered or held).
    Duplicate,
    /// Too far ahead of the next expected message: dropped.
    Overflow,
}

/// One sender's receive window: the next expected sequence number and the messages held
/// past it, at most `window` of them (sequence numbers `next .. next + window`).
#[derive(Clone, Debug)]
pub struct RecvWindow<T> {
    next: u64,
    window: u64,
    held: BTreeMap<u64, T>,
}

impl<T> RecvWindow<T> {
    /// An empty window expecting sequence number 0, holding at most `window` messages
    /// (at least 1).
    pub fn new(window: u64) -> Self {
        RecvWindow { next: 0, window: window.max(1), held: BTreeMap::new() }
    }
    /// The next sequence number expected: the cumulative ack.
    pub fn next(&self) -> u64 {
        self.next
    }
    /// Messages held, ready or waiting for a gap to fill.
    pub fn held(&self) -> usize {
        self.held.len()
    }
    /// Offers message `seq`; it is kept only if `Accepted` (then `pop_ready` delivers it in turn).
    pub fn offer(&mut self, seq: u64, item: T) -> Offer {
        if seq < self.next || self.held.contains_key(&seq) {
            Offer::Duplicate
        } else if seq - self.next >= self.window {
            Offer::Overflow
        } else {
            self.held.insert(seq, item);
            Offer::Accepted
        }
    }
    /// Gives up on everything below `to` (at most `window` past the next one): the
    /// messages held below it are returned, and `to` is the next one expected.
    pub fn skip_to(&mut self, to: u64) -> Vec<T> {
        let to = to.min(self.next.saturating_add(self.window));
        if to <= self.next {
            return Vec::new();
        }
        let keep = self.held.split_off(&to);
        self.next = to;
        core::mem::replace(&mut self.held, keep).into_values().collect()
    }
    /// The next message in sequence, if it is here.
    pub fn pop_ready(&mut self) -> Option<T> {
        let item = self.held.remove(&self.next)?;
        self.next += 1;
        Some(item)
    }
}

/// Per-peer state: the send side towards it and the receive side from it.
struct Peer {
    /// Sequence number of the next new message to this peer.
    next_seq: u64,
    /// Sent and not acked: sequence numbers `next_seq - unacked.len() .. next_seq`.
    unacked: VecDeque<Msg>,
    rto: Duration,
    rto_at: Option<Time>,
    recv: RecvWindow<Msg>,
    ack_at: Option<Time>,
}

impl Peer {
    fn new(cfg: &Config) -> Peer {
        Peer {
            next_seq: 0,
            unacked: VecDeque::new(),
            rto: cfg.rto,
            rto_at: None,
            recv: RecvWindow::new(cfg.window),
            ack_at: None,
        }
    }
    fn base(&self) -> u64 {
        self.next_seq - self.unacked.len() as u64
    }
}

#[derive(Default, Debug, Clone, Copy)]
struct Counters {
    sent: u64,
    retransmits: u64,
    delivered: u64,
    acks_sent: u64,
    dups: u64,
    window_drops: u64,
    bad_hdr: u64,
    bad_rank: u64,
    bad_ack: u64,
    abandoned: u64,
    to_failed: u64,
    from_failed: u64,
    mem_drop: u64,
    skips_sent: u64,
    skipped: u64,
}

/// The layer.
pub struct Pt2pt {
    cfg: Config,
    /// Indexed by rank; sized to the view on the first event.
    peers: Vec<Peer>,
    /// Indexed by rank: named by `Dn::Failed`.
    failed: Vec<bool>,
    /// Bytes of the messages held past a gap.
    budget: Budget,
    c: Counters,
}

impl Default for Pt2pt {
    fn default() -> Self {
        Pt2pt::new(Config::default())
    }
}

impl Pt2pt {
    /// A pt2pt layer. `burst` and `window` are raised to at least 1, and `max_rto` to at
    /// least `rto`.
    pub fn new(mut cfg: Config) -> Pt2pt {
        cfg.burst = cfg.burst.max(1);
        cfg.window = cfg.window.max(1);
        cfg.max_rto = cfg.max_rto.max(cfg.rto);
        Pt2pt { cfg, peers: Vec::new(), failed: Vec::new(), budget: Budget::new(0, 0, 0), c: Counters::default() }
    }

    /// The peer a `Data`/`Ack` from `from` belongs to, if it is a real other member.
    fn peer_index(&self, from: Rank, cx: &Cx<'_>) -> Option<usize> {
        let i = from.index();
        (from != cx.rank && i < cx.view.len() && i < self.peers.len()).then_some(i)
    }

    /// Sends `msg` as `Data { seq }` to `to`, piggybacking the ack due to it.
    fn transmit(peer: &mut Peer, to: Rank, seq: u64, mut msg: Msg, cx: &mut Cx<'_>) {
        msg.push(&Hdr::Data { seq, ack: peer.recv.next() });
        peer.ack_at = None;
        cx.dn(Dn::Send(to, msg));
    }

    /// Applies a cumulative ack from peer `i`; false if it acks messages never sent.
    fn on_ack(&mut self, i: usize, ack: u64, now: Time) -> bool {
        let p = &mut self.peers[i];
        if ack > p.next_seq {
            self.c.bad_ack += 1;
            return false;
        }
        let base = p.base();
        if ack > base {
            p.unacked.drain(..(ack - base) as usize);
            p.rto = self.cfg.rto;
            p.rto_at = if p.unacked.is_empty() { None } else { Some(now + p.rto) };
        }
        true
    }

    fn on_data(&mut self, i: usize, seq: u64, msg: Msg, cx: &mut Cx<'_>) {
        let ack_delay = self.cfg.ack_delay;
        // The next one goes straight up; one past a gap is held, so charged (and compacted).
        let at_next = seq == self.peers[i].recv.next();
        let msg = if at_next { msg } else { msg.compact() };
        let cost = Budget::cost(&msg);
        if !at_next && !self.budget.take(i, cost) {
            self.c.mem_drop += 1;
        } else {
            match self.peers[i].recv.offer(seq, msg) {
                Offer::Accepted => self.deliver_ready(i, !at_next, cx),
                refused => {
                    if !at_next {
                        self.budget.give(i, cost);
                    }
                    *if refused == Offer::Duplicate { &mut self.c.dups } else { &mut self.c.window_drops } += 1;
                }
            }
        }
        self.peers[i].ack_at.get_or_insert(cx.now + ack_delay);
    }

    /// `Skip { to }` from `from`: it no longer holds its messages below `to`; deliver what
    /// was held beyond them.
    fn on_skip(&mut self, from: Rank, to: u64, cx: &mut Cx<'_>) {
        let Some(i) = self.peer_index(from, cx) else {
            self.c.bad_rank += 1;
            return;
        };
        let p = &mut self.peers[i];
        let before = p.recv.next();
        for m in p.recv.skip_to(to) {
            self.budget.give(i, Budget::cost(&m));
        }
        self.c.skipped += p.recv.next() - before;
        self.deliver_ready(i, true, cx);
    }

    /// Delivers peer `i`'s messages that are next in sequence, giving back what they were
    /// charged (all of them were held past a gap, but the first when `first_charged` is
    /// false: it arrived as the next one and went straight through).
    fn deliver_ready(&mut self, i: usize, first_charged: bool, cx: &mut Cx<'_>) {
        let mut charged = first_charged;
        while let Some(m) = self.peers[i].recv.pop_ready() {
            if charged {
                self.budget.give(i, Budget::cost(&m));
            }
            charged = true;
            self.c.delivered += 1;
            cx.up(Up::Send { from: Rank(i as u16), msg: m });
        }
    }

    /// Whether `r` is a member `Dn::Failed` named.
    fn is_failed(&self, r: Rank) -> bool {
        self.failed.get(r.index()).is_some_and(|&f| f)
    }

    /// `Dn::Failed`: forget what is owed to these members and what is due from them.
    fn fail(&mut self, ranks: &[Rank], me: Rank) {
        for &r in ranks {
            if r == me || r.index() >= self.peers.len() {
                continue;
            }
            self.failed[r.index()] = true;
            let p = &mut self.peers[r.index()];
            self.c.abandoned += p.unacked.len() as u64;
            p.unacked.clear();
            p.rto_at = None;
            p.ack_at = None;
        }
    }
}

impl Layer for Pt2pt {
    fn name(&self) -> &'static str {
        "pt2pt"
    }
    fn provides(&self) -> Props {
        Props::RELIABLE_SEND | Props::FIFO_SEND
    }

    fn init(&mut self, cx: &mut Cx<'_>) {
        let (n, cfg) = (cx.view.len(), &self.cfg);
        self.peers = (0..n).map(|_| Peer::new(cfg)).collect();
        self.failed = vec![false; n];
        self.budget = Budget::new(n, cfg.mem, cfg.mem_all);
    }

    fn max_header(&self, _: &thoth_stack::View) -> usize {
        Hdr::Data { seq: u64::MAX, ack: u64::MAX }.encoded_len()
    }
    fn handle_dn(&mut self, ev: Dn, cx: &mut Cx<'_>) {
        match ev {
            Dn::Failed(ranks) => {
                cx.dn(Dn::Failed(ranks.clone()));
                self.fail(&ranks, cx.rank);
            }
            Dn::Send(to, _) if self.is_failed(to) => self.c.to_failed += 1,
            Dn::Send(to, msg) if to != cx.rank && to.index() < self.peers.len() => {
                let now = cx.now;
                let p = &mut self.peers[to.index()];
                let seq = p.next_seq;
                p.next_seq += 1;
                p.unacked.push_back(msg.clone());
                p.rto_at.get_or_insert(now + p.rto);
                self.c.sent += 1;
                Self::transmit(p, to, seq, msg, cx);
            }
            ev => cx.dn(ev), // no header: read as `NoHdr` above
        }
    }

    fn handle_ups(&mut self, evs: &mut VecDeque<Up>, cx: &mut Cx<'_>) {
        // The data path: casts from live members pass on as they came, all at once.
        if evs.iter().all(|e| e.is_bare_cast() && !matches!(e, Up::Cast { from, .. } if self.is_failed(*from))) {
            return cx.up_all(evs);
        }
        thoth_stack::layer::each_up(self, evs, cx)
    }
    fn handle_up(&mut self, ev: Up, cx: &mut Cx<'_>) {
        match ev {
            Up::Cast { from, .. } | Up::Send { from, .. } if self.is_failed(from) => self.c.from_failed += 1,
            Up::Cast { from, mut msg } => match msg.pop::<Hdr>() {
                Ok(Hdr::NoHdr) => cx.up(Up::Cast { from, msg }),
                Ok(_) | Err(_) => self.c.bad_hdr += 1,
            },
            Up::Send { from, mut msg } => {
                let (seq, ack) = match msg.pop::<Hdr>() {
                    Ok(Hdr::NoHdr) => return cx.up(Up::Send { from, msg }),
                    Ok(Hdr::Data { seq, ack }) => (Some(seq), ack),
                    Ok(Hdr::Ack { ack }) => (None, ack),
                    Ok(Hdr::Skip { to }) => return self.on_skip(from, to, cx),
                    Err(_) => {
                        self.c.bad_hdr += 1;
                        return;
                    }
                };
                let Some(i) = self.peer_index(from, cx) else {
                    self.c.bad_rank += 1;
                    return;
                };
                // A bad ack discredits the whole datagram.
                if !self.on_ack(i, ack, cx.now) {
                    return;
                }
                let base = self.peers[i].base();
                if ack < base {
                    // The peer waits for messages this member no longer holds.
                    self.c.skips_sent += 1;
                    let mut m = Msg::new(Bytes::new());
                    m.push(&Hdr::Skip { to: base });
                    cx.dn(Dn::SendUnrel(from, m));
                }
                if let Some(seq) = seq {
                    self.on_data(i, seq, msg, cx);
                }
            }
            other => cx.up(other),
        }
    }

    fn poll_timeout(&self) -> Option<Time> {
        self.peers.iter().flat_map(|p| [p.rto_at, p.ack_at]).flatten().min()
    }

    fn handle_timeout(&mut self, cx: &mut Cx<'_>) {
        let now = cx.now;
        for (i, p) in self.peers.iter_mut().enumerate() {
            let to = Rank(i as u16);
            if p.rto_at.is_some_and(|t| t <= now) {
                if !self.cfg.test_skip_retransmit {
                    let base = p.base();
                    let resend: Vec<Msg> = p.unacked.iter().take(self.cfg.burst).cloned().collect();
                    for (k, m) in resend.into_iter().enumerate() {
                        self.c.retransmits += 1;
                        Self::transmit(p, to, base + k as u64, m, cx);
                    }
                }
                p.rto = p.rto.saturating_mul(2).min(self.cfg.max_rto);
                p.rto_at = if p.unacked.is_empty() { None } else { Some(now + p.rto) };
            }
            if p.ack_at.is_some_and(|t| t <= now) {
                p.ack_at = None;
                self.c.acks_sent += 1;
                let mut m = Msg::new(Bytes::new());
                m.push(&Hdr::Ack { ack: p.recv.next() });
                cx.dn(Dn::SendUnrel(to, m));
            }
        }
    }

    fn dump(&self, out: &mut Vec<Dump>) {
        let c = &self.c;
        let unacked = self.peers.iter().map(|p| p.unacked.len() as u64).sum();
        let buffered = self.peers.iter().map(|p| p.recv.held() as u64).sum();
        let state = self
            .peers
            .iter()
            .enumerate()
            .map(|(i, p)| {
                format!(
                    "r{i}: next_seq={} unacked={} rto={:?} recv_next={} held={}",
                    p.next_seq,
                    p.unacked.len(),
                    p.rto,
                    p.recv.next(),
                    p.recv.held()
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        out.push(Dump {
            layer: "pt2pt",
            counters: vec![
                ("sent", c.sent),
                ("retransmits", c.retransmits),
                ("delivered", c.delivered),
                ("acks_sent", c.acks_sent),
                ("dups", c.dups),
                ("window_drops", c.window_drops),
                ("bad_hdr", c.bad_hdr),
                ("bad_rank", c.bad_rank),
                ("bad_ack", c.bad_ack),
                ("abandoned", c.abandoned),
                ("to_failed", c.to_failed),
                ("from_failed", c.from_failed),
                ("mem_drop", c.mem_drop),
                ("skips_sent", c.skips_sent),
                ("skipped", c.skipped),
            ],
            gauges: vec![("held_bytes", self.budget.total() as u64), ("unacked", unacked), ("buffered", buffered)],
            state,
            ..Dump::default()
        });
    }
}

fn ms(a: &mut Args, key: &str, default: u64) -> Result<Duration, String> {
    a.get(key, default).map(Duration::from_millis)
}

/// Registers `pt2pt` and its parameters.
pub fn register(r: &mut Registry) {
    r.register("pt2pt", "reliable FIFO point-to-point: sequence numbers, cumulative acks, retransmission", |a| {
        let d = Config::default();
        let cfg = Config {
            ack_delay: ms(a, "ack_delay_ms", d.ack_delay.as_millis() as u64)?,
            rto: ms(a, "rto_ms", d.rto.as_millis() as u64)?,
            max_rto: ms(a, "max_rto_ms", d.max_rto.as_millis() as u64)?,
            burst: a.get("burst", d.burst)?,
            window: a.get("window", d.window)?,
            mem: a.get("mem", d.mem)?,
            mem_all: a.get("mem_all", d.mem_all)?,
            test_skip_retransmit: false,
        };
        if cfg.rto.is_zero() {
            return Err("rto_ms must be at least 1".into());
        }
        if cfg.max_rto < cfg.rto {
            return Err("max_rto_ms must be at least rto_ms".into());
        }
        if cfg.burst == 0 {
            return Err("burst must be at least 1".into());
        }
        if !(1..=65_536).contains(&cfg.window) {
            return Err("window must be in 1..=65536".into());
        }
        Ok(Box::new(Pt2pt::new(cfg)))
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use thoth_stack::wire::{from_slice, to_vec};

    #[test]
    fn header_bytes() {
        assert_eq!(to_vec(&Hdr::NoHdr), [0]);
        assert_eq!(to_vec(&Hdr::Data { seq: 3, ack: 200 }), [1, 3, 0xc8, 0x01]);
        assert_eq!(to_vec(&Hdr::Ack { ack: 0 }), [2, 0]);
        assert_eq!(from_slice::<Hdr>(&[7]), Err(WireError::BadTag));
        assert_eq!(from_slice::<Hdr>(&[1, 3]), Err(WireError::Truncated));
    }

    #[test]
    fn window_holds_delivers_in_order_and_bounds() {
        let mut w = RecvWindow::new(3);
        assert_eq!(w.offer(1, 'b'), Offer::Accepted);
        assert_eq!(w.offer(3, 'd'), Offer::Overflow);
        assert_eq!(w.offer(1, 'b'), Offer::Duplicate);
        assert_eq!(w.pop_ready(), None);
        assert_eq!(w.offer(0, 'a'), Offer::Accepted);
        assert_eq!((w.pop_ready(), w.pop_ready(), w.pop_ready()), (Some('a'), Some('b'), None));
        assert_eq!((w.next(), w.held()), (2, 0));
        assert_eq!(w.offer(0, 'a'), Offer::Duplicate);
        assert_eq!(w.offer(4, 'e'), Offer::Accepted);
        assert_eq!(w.offer(5, 'f'), Offer::Overflow);
    }

    #[test]
    fn registry_reads_parameters() {
        let mut r = Registry::new();
        register(&mut r);
        let s = r.build("pt2pt(ack_delay_ms=1,rto_ms=10,max_rto_ms=80,burst=2,window=4)").unwrap();
        assert_eq!(s.spec(), "pt2pt");
        assert!(r.build("pt2pt(rto_ms=0)").is_err());
        assert!(r.build("pt2pt(window=0)").is_err());
        assert!(r.build("pt2pt(max_rto_ms=1,rto_ms=2)").is_err());
        assert!(r.build("pt2pt(bogus=1)").is_err());
    }
}
