//! `nak`: reliable FIFO multicast by negative acknowledgement.
//!
//! **Protocol.** Each `Dn::Cast` gets the next sequence number of its sender (`Data { seq }`,
//! from 0) and a copy is kept for retransmission. A receiver delivers each sender's casts in
//! sequence order, exactly once; arrivals ahead of a gap are held in a bounded window
//! (`window` sequence numbers past the delivered prefix; beyond it they are dropped and
//! counted as `window_drop`: they will be asked for again). A member learns that a message
//! exists from any later message of the same sender, from a retransmission, or from a
//! `Tail { sent }` announcement. When a gap has lasted `nak_delay` (room for reordering) it
//! sends a `Nak` naming the missing runs as coalesced ranges (at most 16), by
//! `Dn::SendUnrel`, and repeats every `nak_interval` while the gap stays. The first
//! `origin_tries` NAKs go to the original sender; if it stays silent the NAKs rotate over
//! the other members (every member keeps the casts it delivered until they are stable, so
//! any of them may hold the message), coming back to the sender in turn. Progress (the
//! prefix moving) sends the next NAK to the sender again.
//!
//! **Retransmission** is by `Dn::SendUnrel` to the asker (`Retrans { origin, seq }`), never
//! by multicast: NAKs are per receiver and rare, and a unicast does not disturb members that
//! have the message. One NAK is served with at most `max_rtx` messages, and one requester is
//! served for one sender at most once per `rtx_interval` (a duplicated or repeated NAK inside
//! that span is dropped and counted as `rtx_limited`); `rtx_interval < nak_interval` so an
//! honest requester's repeats are never refused.
//!
//! **Tail loss.** While a sender has unstable casts it multicasts `Tail { sent }`
//! (`Dn::CastUnrel`) `tail_interval` after its last cast, and again every `tail_interval`
//! until a `Dn::Stable` makes all its casts stable: a receiver that lost the last casts of a
//! burst learns they exist and NAKs them. With nothing unstable no timer is armed, so an idle
//! group is quiet. This layer needs a stability layer above it (`stable`) both to free its
//! buffers and to stop the tail announcements.
//!
//! **Failed members.** `Dn::Failed(ranks)` (from the membership layer's flush; passed on
//! down first) adds to a set that only grows. Survivors must end with the same casts of each
//! failed member `f`: every cast of `f` up to the first one no survivor received (a cast
//! held past a gap counts: once another survivor fills the gap it is delivered, so this can
//! exceed the longest prefix any survivor had delivered when told). No NAK goes to `f` any
//! more, and what comes from `f` with a nak header (casts, tails, NAKs, retransmissions) is
//! dropped and counted (`from_failed`): its casts now come from survivors only. A member
//! that delivered casts of `f` multicasts `Have { origin: f, count }` (`Dn::CastUnrel`,
//! `count` its delivered prefix of `f`) at once, then every `tail_ms` while `Dn::Stable`
//! shows some survivor may not hold them all (stability is over survivors, see `stable`).
//! A receiver of `Have` from `h` learns that casts below `count` exist (as from a `Tail`)
//! and NAKs the missing ones from the members that announced them, in the order they first
//! did (`h` first), in turn; with no such member, from the live members in turn; never from
//! `f`. With no live member left to ask, a gap of `f` arms no timer; a gap that no survivor
//! can fill is NAKed every `nak_interval` until the view change drops the stack. A `Have` is
//! a `Tail` in effect: an absurd count costs one NAK per `nak_interval`, never memory; an
//! impossible rank is `bad`.
//!
//! **The flush** (`Props::FLUSH`). The membership layer's flush counts casts here, in this
//! layer's sequence numbers, and nowhere else: a forged or corrupt cast that a layer above
//! drops still took its number at every member that received it, so every member's count
//! means the same thing. `Dn::Failed` (the start of every flush attempt) freezes the
//! deliveries of every failed member at what this member has delivered so far (arrivals go
//! on being fetched and held) and drops the cut of an earlier attempt. `Dn::GetDigest` is
//! answered at once with `Up::Digest`: per rank, the casts delivered; for this member's own
//! rank, every cast it has numbered. So the membership
//! layer need not wait for its own casts to come back up to it, which an ordering layer
//! between the two could hold for a decision that will only come at the cut. `Dn::Cut(cut)` sets how many casts of each rank this member delivers in
//! the view, and goes on down; it delivers up to the cut (what lies beyond stays held and
//! dies with the stack) and, once every rank has reached it and the cut has come back up
//! from below (`Up::CutReached(cut)`, turned at the bottom of the stack), passes
//! `Up::CutReached(cut)` up — after the last delivery it allowed, so every layer above has
//! seen them all. A cut of the wrong length is `bad`; a `CutReached` that is not for the
//! current cut (an earlier attempt's) is dropped.
//!
//! **Stability.** `Dn::Stable(vec)` frees every kept cast of rank `r` with `seq < vec[r]`
//! (capped at what this member has itself delivered, so a bad vector frees nothing it still
//! needs), and passes on down.
//!
//! Its own casts are delivered as they are numbered (within the flush's limit, like
//! anyone's), and marked going down (`Msg::set_delivered_here`) so that the bottom of the
//! stack does not loop them back: they skip the layers below and the unpacking. One that
//! comes back anyway (a packed datagram is looped back if anything in it is unmarked) is
//! not delivered again (`own_back`). `Dn::CastUnrel`, `Send`, `SendUnrel` pass through with
//! no header; an `Up` with none (`NoHdr`, the nothing) passes up. Malformed headers,
//! impossible ranks and misplaced variants are dropped and counted (`bad`).
//!
//! **Parameters** (spec `nak(...)`): `nak_delay_ms` (2), `nak_interval_ms` (5),
//! `rtx_interval_ms` (2), `tail_ms` (20), `window` (8192), `max_rtx` (1024), `origin_tries`
//! (2), `mem` (32 MiB), `mem_all` (128 MiB). `mem` is several times what a sender has in
//! flight at full speed (flow control's 2 MiB of credit plus the casts delivered while
//! stability catches up, ~8 MiB per sender at 600 MB/s over 3 senders). The defaults are measured with `thoth-perf --stack "reliable:drop(p=0.05)"` (3
//! members, 1 KB, loopback): a window of 256 and 64 retransmissions per NAK every 20 ms cap
//! recovery near 9k msgs/s; these defaults keep ~470k msgs/s at 5 % loss. A wide window is
//! cheap under flow control, which bounds what a sender can have outstanding.
//!
//! **Properties:** requires nothing; provides `RELIABLE_CAST | FIFO_CAST | FLUSH`.
//!
//! **Events generated:** down `Cast` (data), `SendUnrel` (NAKs, retransmissions), `CastUnrel`
//! (tail, have), `Failed` (passed on); up `Cast` (deliveries, `from` = original sender),
//! `Digest`, `CutReached`.
//!
//! **Memory.** What this member holds for others — arrivals held out of order and delivered
//! casts kept until stable — is bounded in bytes by a `Budget`: `mem` per sender and
//! `mem_all` in all. A cast is charged its bytes plus 64. A cast is a slice of its datagram
//! and keeps it alive: a kept cast from a larger datagram is charged the datagram too, once
//! for all its casts kept in a row (honest packed datagrams cost about twice their size, a
//! forged datagram of one cast and much padding costs all of it), or, with no room for
//! that, kept as a copy of its own bytes; one held out of order is copied (`Msg::compact`). An arrival that
//! does not fit is dropped and counted (`mem_drop`) as if it had been lost: it is asked for
//! again once stability has freed room, so honest traffic slows down, never stops. A peer
//! that forges casts far ahead of a sender's next one, or delivers casts to this member
//! only, can thus hold at most `mem` here, and all of them together `mem_all`. At most
//! `window` arrivals per sender are held besides. This member's own unstable casts are
//! bounded by flow control above, not here. Rate-limit state is one time per (requester, sender) pair, and
//! one count per (failed sender, announcer) pair. A peer that claims casts that do not exist
//! costs one NAK per `nak_interval`, never memory.
//!
//! **Tests:** unit tests in `tests/nak.rs` (exact outputs: gap → NAK after the delay,
//! retransmission on NAK, duplicates, window overflow, stability frees, tail), bolero model
//! test of `Window` against a reference, header round-trips and arbitrary bytes; whole groups
//! with `stable:nak` under loss, duplication, reordering and asymmetric links in
//! `tests/sim_reliable.rs`, including deliberately broken configurations it must catch.
//! Failed members: exact outputs of `Failed` and `Have` (announcing, NAK targets, hostile
//! `Have`) in `tests/nak.rs`; a whole `reliable` group whose member crashes mid-burst in
//! `tests/failed.rs` (a nak that skips `Have` must be caught). The flush: exact outputs of
//! freezing, digests and cuts, and the byte budget against forged far-ahead casts, in
//! `tests/nak.rs`.

mod hdr;
pub mod window;

pub use hdr::{MAX_RANGES, NakHdr};
pub use window::{Arrival, Window};

use std::collections::VecDeque;
use thoth_stack::{Args, Budget, Cx, Dn, Dump, Duration, Hist, Layer, Msg, Props, Rank, Registry, Time, Up};

/// Parameters; see **Parameters** above for the spec names and defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// How long a gap may last before the first NAK (lets reordered datagrams arrive).
    pub nak_delay: Duration,
    /// Between NAKs for one sender while its gap lasts.
    pub nak_interval: Duration,
    /// Least time between two retransmission bursts to one requester for one sender.
    pub rtx_interval: Duration,
    /// Quiet time after a cast before announcing the tail, and its period while unstable.
    pub tail_interval: Duration,
    /// Out-of-order arrivals held per sender, in sequence numbers past the delivered prefix.
    pub window: u64,
    /// Most messages retransmitted for one NAK.
    pub max_rtx: usize,
    /// NAKs to the original sender before asking other members.
    pub origin_tries: u32,
    /// Bytes held for one sender (out-of-order arrivals and unstable deliveries).
    pub mem: usize,
    /// Bytes held for all senders together.
    pub mem_all: usize,
    /// Test only: never retransmit a sender's cast number 1 (a bug the simulator must catch).
    #[doc(hidden)]
    pub test_skip_retransmit: bool,
    /// Test only: deliver duplicates instead of dropping them (a bug the simulator must catch).
    #[doc(hidden)]
    pub test_deliver_duplicate: bool,
    /// Test only: never announce `Have` (survivors may then disagree on a failed sender's casts).
    #[doc(hidden)]
    pub test_skip_have: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            nak_delay: Duration::from_millis(2),
            nak_interval: Duration::from_millis(5),
            rtx_interval: Duration::from_millis(2),
            tail_interval: Duration::from_millis(20),
            window: 8192,
            max_rtx: 1024,
            origin_tries: 2,
            mem: 32 << 20,
            mem_all: 128 << 20,
            test_skip_retransmit: false,
            test_deliver_duplicate: false,
            test_skip_have: false,
        }
    }
}

/// What this member knows of one sender's casts.
struct Peer {
    /// Delivered prefix and held arrivals.
    win: Window<Msg>,
    /// Casts below this are stable and freed.
    base: u64,
    /// Delivered, not yet stable: casts `base .. win.next()` (empty for this member's own).
    kept: VecDeque<Msg>,
    /// Per kept cast, the bytes of its datagram it carries the charge for (see **Memory**).
    charges: VecDeque<u32>,
    /// The datagram of the newest kept cast.
    last_datagram: u32,
    /// One past the highest sequence number known to exist.
    known: u64,
    nak_due: Option<Time>,
    /// When the present gap was first seen.
    gap_since: Option<Time>,
    /// NAKs sent since the prefix last moved.
    tries: u32,
    /// Only for a failed sender: how many of its casts each member announced (`Have`),
    /// indexed by rank (empty until the first announcement).
    have: Vec<u64>,
    /// Members that announced this sender's casts, in the order they first did.
    holders: Vec<usize>,
}

#[derive(Default)]
struct Counters {
    casts: u64,
    delivered: u64,
    dup: u64,
    own_back: u64,
    window_drop: u64,
    bad: u64,
    naks_sent: u64,
    naks_rcvd: u64,
    rtx_sent: u64,
    rtx_limited: u64,
    tails_sent: u64,
    freed: u64,
    haves_sent: u64,
    haves_rcvd: u64,
    from_failed: u64,
    mem_drop: u64,
    digests: u64,
    cuts: u64,
    /// How long each gap lasted, from first seen to filled (by reordering or repair).
    gap_us: Hist,
}

/// The nak layer; see the module documentation.
pub struct Nak {
    cfg: Config,
    /// Set from the view at the first event.
    peers: Vec<Peer>,
    me: usize,
    /// This member's casts so far.
    sent: u64,
    /// This member's casts below this are stable.
    mine_base: u64,
    /// This member's unstable casts `mine_base .. sent`, without the nak header.
    mine: VecDeque<Msg>,
    tail_due: Option<Time>,
    /// Last retransmission burst to requester q for sender o, at `q * n + o`.
    last_rtx: Vec<Option<Time>>,
    /// Members `Dn::Failed` named, by rank (the set only grows).
    failed: Vec<bool>,
    /// Next `Have` announcement, while a failed sender's casts are unstable here.
    have_due: Option<Time>,
    /// What this member holds for others.
    budget: Budget,
    /// Per rank: its deliveries stop here while it is failed and no cut is set (its
    /// delivered prefix at the last `Dn::Failed`).
    frozen: Vec<u64>,
    /// The flush's cut, once set (`Dn::Cut`), until the next `Dn::Failed`.
    cut: Option<Vec<u64>>,
    /// `Up::CutReached` is still owed for `cut`.
    cut_pending: bool,
    /// `cut` came back up from below.
    cut_back: bool,
    c: Counters,
}

impl Default for Nak {
    fn default() -> Self {
        Nak::new(Config::default())
    }
}

/// Registers `nak` and its parameters; `window` and `max_rtx` must be at least 1.
pub fn register(r: &mut Registry) {
    r.register("nak", "reliable FIFO multicast by negative acknowledgement", |a: &mut Args| {
        let d = Config::default();
        let ms = |a: &mut Args, k: &str, v: Duration| a.get(k, v.as_millis() as u64).map(Duration::from_millis);
        let cfg = Config {
            nak_delay: ms(a, "nak_delay_ms", d.nak_delay)?,
            nak_interval: ms(a, "nak_interval_ms", d.nak_interval)?,
            rtx_interval: ms(a, "rtx_interval_ms", d.rtx_interval)?,
            tail_interval: ms(a, "tail_ms", d.tail_interval)?,
            window: a.get("window", d.window)?,
            max_rtx: a.get("max_rtx", d.max_rtx)?,
            origin_tries: a.get("origin_tries", d.origin_tries)?,
            mem: a.get("mem", d.mem)?,
            mem_all: a.get("mem_all", d.mem_all)?,
            ..d
        };
        if cfg.window == 0 || cfg.max_rtx == 0 {
            return Err("`window` and `max_rtx` must be at least 1".into());
        }
        Ok(Box::new(Nak::new(cfg)))
    });
}

impl Nak {
    /// A nak layer. Per-view state (peers, byte budget) is set up from the view at `init`.
    pub fn new(cfg: Config) -> Nak {
        Nak {
            cfg,
            peers: Vec::new(),
            me: 0,
            sent: 0,
            mine_base: 0,
            mine: VecDeque::new(),
            tail_due: None,
            last_rtx: Vec::new(),
            failed: Vec::new(),
            have_due: None,
            budget: Budget::new(0, 0, 0),
            frozen: Vec::new(),
            cut: None,
            cut_pending: false,
            cut_back: false,
            c: Counters::default(),
        }
    }

    /// Messages kept for retransmission (own unstable casts and delivered unstable ones).
    pub fn buffered(&self) -> usize {
        self.mine.len() + self.peers.iter().map(|p| p.kept.len()).sum::<usize>()
    }

    /// Arrivals held out of order (or beyond the flush's limits).
    pub fn held(&self) -> usize {
        self.peers.iter().map(|p| p.win.held()).sum()
    }

    /// How many casts of `origin` may be delivered for now (see **The flush**).
    fn limit(&self, origin: usize) -> u64 {
        match &self.cut {
            Some(cut) => cut[origin],
            None if self.failed[origin] => self.frozen[origin],
            None => u64::MAX,
        }
    }

    fn bad(&mut self) {
        self.c.bad += 1;
    }

    /// Cast `seq` of `origin` arrived (first copy, retransmission, or own cast numbered).
    fn accept(&mut self, origin: usize, seq: u64, msg: Msg, cx: &mut Cx<'_>) {
        let me = self.me;
        if origin >= self.peers.len() {
            return self.bad();
        }
        let limit = self.limit(origin);
        let Some(p) = self.peers.get_mut(origin) else {
            return self.bad();
        };
        p.known = p.known.max(seq.saturating_add(1));
        if self.cfg.test_deliver_duplicate && seq < p.win.next() {
            cx.up(Up::Cast { from: Rank(origin as u16), msg: msg.clone() });
        }
        // Others' casts are held for others, so charged; one held past a gap (or the flush's
        // limit) is copied out of a large datagram rather than keep it alive.
        let held = seq != p.win.next() || p.win.next() >= limit;
        let msg = if origin != me && held { msg.compact() } else { msg };
        let cost = Budget::cost(&msg);
        match p.win.insert(seq, msg) {
            Arrival::Duplicate => self.c.dup += 1,
            Arrival::Overflow => self.c.window_drop += 1,
            Arrival::Held | Arrival::Ready if origin != me && !self.budget.take(origin, cost) => {
                p.win.remove(seq);
                self.c.mem_drop += 1;
            }
            Arrival::Held | Arrival::Ready => self.deliver(origin, cx),
        }
        self.arm_nak(origin, cx.now);
    }

    /// Delivers `origin`'s casts that are in order and within the flush's limit; a delivered
    /// cast of another member is kept (its charge with it) until stable.
    fn deliver(&mut self, origin: usize, cx: &mut Cx<'_>) {
        let limit = self.limit(origin);
        let p = &mut self.peers[origin];
        let mut moved = false;
        while p.win.next() < limit {
            let Some((_, m)) = p.win.pop_ready() else { break };
            if origin != self.me {
                // A slice of a larger datagram keeps it alive: the datagram is charged once,
                // carried by the newest of its kept casts (the last freed); with no room for
                // it, the cast alone is kept, copied.
                let (d, whole) = (m.datagram(), m.pinned() as u32);
                let (copy, charge) = if d == 0 || whole as usize <= m.len() {
                    (Msg::rewired(m.clone()), 0)
                } else if d == p.last_datagram && p.charges.back().is_some_and(|&c| c > 0) {
                    let c = p.charges.back_mut().map(core::mem::take).unwrap_or(0);
                    (Msg::rewired(m.clone()), c)
                } else if self.budget.take(origin, whole as usize) {
                    (Msg::rewired(m.clone()), whole)
                } else {
                    (Msg::rewired(m.clone().compact()), 0)
                };
                p.last_datagram = d;
                p.kept.push_back(copy);
                p.charges.push_back(charge);
            }
            self.c.delivered += 1;
            moved = true;
            cx.up(Up::Cast { from: Rank(origin as u16), msg: m });
        }
        if moved {
            p.tries = 0;
            if self.failed[origin] {
                self.arm_have(cx.now);
            }
            self.check_cut(cx);
        }
    }

    /// Delivers what every sender has in order within its limit (a limit was raised).
    fn deliver_all(&mut self, cx: &mut Cx<'_>) {
        for o in 0..self.peers.len() {
            self.deliver(o, cx);
            self.arm_nak(o, cx.now);
        }
    }

    /// `Up::CutReached` once every rank has delivered up to the cut.
    fn check_cut(&mut self, cx: &mut Cx<'_>) {
        let Some(cut) = self.cut.as_ref().filter(|_| self.cut_pending && self.cut_back) else { return };
        if self.peers.iter().zip(cut).all(|(p, &c)| p.win.next() >= c) {
            self.cut_pending = false;
            cx.up(Up::CutReached(cut.clone()));
        }
    }

    /// `Dn::Cut`: deliver up to `cut`, then say so.
    fn set_cut(&mut self, cut: Vec<u64>, cx: &mut Cx<'_>) {
        if cut.len() != self.peers.len() {
            return self.bad();
        }
        self.c.cuts += 1;
        self.cut = Some(cut.clone());
        self.cut_pending = true;
        self.cut_back = false;
        cx.dn(Dn::Cut(cut));
        self.deliver_all(cx);
        self.check_cut(cx);
    }

    /// Arms or disarms the NAK timer of `origin` after its state changed.
    fn arm_nak(&mut self, origin: usize, now: Time) {
        let delay = self.cfg.nak_delay;
        // A failed origin's casts can only come from a live member.
        let askable = origin < self.peers.len() && (!self.failed[origin] || self.nak_target(origin).is_some());
        if let Some(p) = self.peers.get_mut(origin) {
            // A gap: casts known to exist, neither delivered nor held (all held is no gap:
            // a frozen member's casts wait for the cut, not for a NAK).
            let gap = p.known > p.win.next() && !p.win.missing(p.known, 1).is_empty();
            if origin != self.me && gap && askable {
                p.nak_due.get_or_insert(now + delay);
                p.gap_since.get_or_insert(now);
            } else {
                if let Some(since) = p.gap_since.take()
                    && !gap
                {
                    self.c.gap_us.record_duration(now.since(since));
                }
                p.nak_due = None;
                p.tries = 0;
            }
        }
    }

    /// Who the next NAK for `origin` goes to (`None`: nobody left to ask).
    fn nak_target(&self, origin: usize) -> Option<usize> {
        let n = self.peers.len();
        let p = &self.peers[origin];
        let tries = p.tries;
        if self.failed[origin] {
            // Never the failed origin: first the members that announced what this one
            // misses, in the order they announced it, in turn.
            let next = p.win.next();
            let holders: Vec<usize> =
                p.holders.iter().copied().filter(|&h| p.have[h] > next && !self.failed[h] && h != self.me).collect();
            if !holders.is_empty() {
                return Some(holders[tries as usize % holders.len()]);
            }
        } else if tries < self.cfg.origin_tries || n <= 2 {
            return Some(origin);
        }
        // Rotate over every live member but this one, starting after the origin (which
        // comes back in turn unless it failed).
        let ring: Vec<usize> = (1..=n).map(|k| (origin + k) % n).filter(|&r| r != self.me && !self.failed[r]).collect();
        if ring.is_empty() {
            return (!self.failed[origin]).then_some(origin);
        }
        let k = if self.failed[origin] { tries } else { tries - self.cfg.origin_tries };
        Some(ring[k as usize % ring.len()])
    }

    fn send_nak(&mut self, origin: usize, cx: &mut Cx<'_>) {
        let p = &self.peers[origin];
        let ranges = p.win.missing(p.known, MAX_RANGES);
        if ranges.is_empty() {
            return;
        }
        let Some(to) = self.nak_target(origin) else { return };
        let mut m = Msg::new(Default::default());
        m.push(&NakHdr::Nak { origin: Rank(origin as u16), ranges });
        cx.dn(Dn::SendUnrel(Rank(to as u16), m));
        self.c.naks_sent += 1;
        self.peers[origin].tries = self.peers[origin].tries.saturating_add(1);
    }

    /// A NAK from `from` for `ranges` of `origin`'s casts: retransmit what this member keeps.
    fn serve(&mut self, from: usize, origin: usize, ranges: &[(u64, u64)], now: Time) -> Vec<Dn> {
        let n = self.peers.len();
        let slot = from * n + origin;
        if self.last_rtx[slot].is_some_and(|t| now < t + self.cfg.rtx_interval) {
            self.c.rtx_limited += 1;
            return Vec::new();
        }
        let (base, kept) = if origin == self.me {
            (self.mine_base, &self.mine)
        } else {
            (self.peers[origin].base, &self.peers[origin].kept)
        };
        let end = base + kept.len() as u64;
        let mut out = Vec::new();
        'ranges: for &(lo, hi) in ranges {
            for seq in lo.max(base)..hi.min(end) {
                if out.len() == self.cfg.max_rtx {
                    break 'ranges;
                }
                if self.cfg.test_skip_retransmit && seq == 1 {
                    continue;
                }
                let Some(m) = kept.get((seq - base) as usize) else { break };
                let mut m = m.clone();
                m.push(&NakHdr::Retrans { origin: Rank(origin as u16), seq });
                out.push(Dn::SendUnrel(Rank(from as u16), m));
            }
        }
        if !out.is_empty() {
            self.last_rtx[slot] = Some(now);
            self.c.rtx_sent += out.len() as u64;
        }
        out
    }

    fn stable(&mut self, vec: &[u64]) {
        for (r, &s) in vec.iter().enumerate() {
            if r == self.me {
                let s = s.min(self.sent);
                while self.mine_base < s {
                    self.mine.pop_front();
                    self.mine_base += 1;
                    self.c.freed += 1;
                }
            } else if let Some(p) = self.peers.get_mut(r) {
                let s = s.min(p.win.next());
                while p.base < s {
                    if let Some(m) = p.kept.pop_front() {
                        let charge = p.charges.pop_front().unwrap_or(0) as usize;
                        self.budget.give(r, Budget::cost(&m) + charge);
                    }
                    p.base += 1;
                    self.c.freed += 1;
                }
            }
        }
        if self.mine_base == self.sent {
            self.tail_due = None;
        }
    }

    /// Whether some failed sender's casts this member delivered are not yet stable.
    fn have_pending(&self) -> bool {
        self.peers.iter().zip(&self.failed).any(|(p, &f)| f && p.base < p.win.next())
    }

    /// Arms the `Have` timer while a failed sender's casts are unstable; disarms it otherwise.
    fn arm_have(&mut self, now: Time) {
        if self.have_pending() {
            self.have_due.get_or_insert(now + self.cfg.tail_interval);
        } else {
            self.have_due = None;
        }
    }

    /// Multicasts `Have` for the failed sender `f`: how many of its casts this member delivered.
    fn announce(&mut self, f: usize, cx: &mut Cx<'_>) {
        let mut m = Msg::new(Default::default());
        m.push(&NakHdr::Have { origin: Rank(f as u16), count: self.peers[f].win.next() });
        cx.dn(Dn::CastUnrel(m));
        self.c.haves_sent += 1;
    }

    /// `Dn::Failed`: stop asking these members, tell the others what this member has of them,
    /// freeze every failed member's deliveries where they are, and drop an earlier cut.
    fn fail(&mut self, ranks: &[Rank], cx: &mut Cx<'_>) {
        for r in ranks {
            let f = r.index();
            if f >= self.peers.len() || f == self.me || self.failed[f] {
                continue;
            }
            self.failed[f] = true;
            self.peers[f].tries = 0;
            if self.peers[f].win.next() > 0 && !self.cfg.test_skip_have {
                self.announce(f, cx);
            }
        }
        for (f, p) in self.peers.iter().enumerate() {
            if self.failed[f] {
                self.frozen[f] = p.win.next();
            }
        }
        self.cut = None;
        self.cut_pending = false;
        self.cut_back = false;
        // What an earlier cut held back of a live member goes up now.
        self.deliver_all(cx);
        self.arm_have(cx.now);
    }

    /// `Have { origin, count }` from member `from`: `count` casts of `origin` exist, and
    /// `from` holds them.
    fn have(&mut self, from: usize, origin: usize, count: u64, now: Time) {
        let n = self.peers.len();
        self.c.haves_rcvd += 1;
        let p = &mut self.peers[origin];
        p.known = p.known.max(count);
        if p.have.is_empty() {
            p.have = vec![0; n];
        }
        if count > 0 && p.have[from] == 0 {
            p.holders.push(from);
        }
        p.have[from] = p.have[from].max(count);
        self.arm_nak(origin, now);
    }
}

impl Layer for Nak {
    fn name(&self) -> &'static str {
        "nak"
    }
    fn provides(&self) -> Props {
        Props::RELIABLE_CAST | Props::FIFO_CAST | Props::FLUSH
    }

    /// Sizes the state for the view.
    fn init(&mut self, cx: &mut Cx<'_>) {
        let n = cx.view.len().max(1);
        self.me = cx.rank.index();
        self.peers = (0..n)
            .map(|_| Peer {
                win: Window::new(self.cfg.window),
                base: 0,
                kept: VecDeque::new(),
                charges: VecDeque::new(),
                last_datagram: 0,
                known: 0,
                nak_due: None,
                gap_since: None,
                tries: 0,
                have: Vec::new(),
                holders: Vec::new(),
            })
            .collect();
        self.last_rtx = vec![None; n * n];
        self.failed = vec![false; n];
        self.frozen = vec![0; n];
        self.budget = Budget::new(n, self.cfg.mem, self.cfg.mem_all);
    }

    fn max_header(&self, _: &thoth_stack::View) -> usize {
        // A retransmission's: the longest a cast from above gets.
        thoth_stack::Wire::encoded_len(&NakHdr::Retrans { origin: Rank(u16::MAX), seq: u64::MAX })
    }
    fn handle_dn(&mut self, ev: Dn, cx: &mut Cx<'_>) {
        match ev {
            Dn::Cast(mut m) => {
                let seq = self.sent;
                self.mine.push_back(m.clone());
                // Delivered here as it is numbered (within the flush's limit, like anyone's),
                // so it need not come back up from the bottom of the stack.
                self.accept(self.me, seq, m.clone(), cx);
                m.push(&NakHdr::Data { seq });
                m.set_delivered_here();
                self.sent += 1;
                self.c.casts += 1;
                self.tail_due = Some(cx.now + self.cfg.tail_interval);
                cx.dn(Dn::Cast(m));
            }
            Dn::Stable(vec) => {
                self.stable(&vec);
                self.arm_have(cx.now);
                cx.dn(Dn::Stable(vec));
            }
            Dn::Failed(ranks) => {
                cx.dn(Dn::Failed(ranks.clone()));
                self.fail(&ranks, cx);
            }
            Dn::GetDigest => {
                self.c.digests += 1;
                let mut d: Vec<u64> = self.peers.iter().map(|p| p.win.next()).collect();
                d[self.me] = self.sent;
                cx.up(Up::Digest(d));
            }
            Dn::Cut(cut) => self.set_cut(cut, cx),
            ev => cx.dn(ev), // no header: read as `NoHdr` above
        }
    }

    fn handle_up(&mut self, ev: Up, cx: &mut Cx<'_>) {
        let (from, mut msg, is_cast) = match ev {
            Up::Cast { from, msg } => (from, msg, true),
            Up::Send { from, msg } => (from, msg, false),
            Up::CutReached(cut) => {
                if self.cut.as_ref() == Some(&cut) {
                    self.cut_back = true;
                    self.check_cut(cx);
                }
                return;
            }
            other => return cx.up(other),
        };
        let Ok(h) = msg.pop::<NakHdr>() else {
            return self.bad();
        };
        let n = self.peers.len();
        let from_i = from.index();
        if from_i >= n {
            return self.bad();
        }
        if self.failed[from_i] && h != NakHdr::NoHdr {
            // A failed member's casts are fetched from the survivors only.
            self.c.from_failed += 1;
            return;
        }
        match h {
            NakHdr::NoHdr => cx.up(if is_cast { Up::Cast { from, msg } } else { Up::Send { from, msg } }),
            // Own casts were delivered as they were numbered; one that comes back up anyway
            // (in a packed datagram with something that must) is not delivered again.
            NakHdr::Data { .. } if is_cast && from_i == self.me => self.c.own_back += 1,
            NakHdr::Data { seq } if is_cast => self.accept(from_i, seq, msg, cx),
            NakHdr::Data { .. } => self.bad(),
            NakHdr::Retrans { origin, .. } if origin.index() >= n => self.bad(),
            NakHdr::Retrans { origin, seq } => {
                if origin.index() == self.me {
                    self.c.dup += 1; // own casts come back by loopback only
                } else {
                    self.accept(origin.index(), seq, msg, cx);
                }
            }
            NakHdr::Nak { origin, .. } if origin.index() >= n || from_i == self.me => self.bad(),
            NakHdr::Nak { origin, ranges } => {
                self.c.naks_rcvd += 1;
                for ev in self.serve(from_i, origin.index(), &ranges, cx.now) {
                    cx.dn(ev);
                }
            }
            NakHdr::Tail { .. } if from_i == self.me => {}
            NakHdr::Tail { sent } => {
                let p = &mut self.peers[from_i];
                p.known = p.known.max(sent);
                self.arm_nak(from_i, cx.now);
            }
            NakHdr::Have { origin, .. } if origin.index() >= n || origin.index() == from_i => self.bad(),
            NakHdr::Have { .. } if from_i == self.me => {}
            // This member's own casts: it has them all.
            NakHdr::Have { origin, .. } if origin.index() == self.me => {}
            NakHdr::Have { origin, count } => self.have(from_i, origin.index(), count, cx.now),
        }
    }

    fn poll_timeout(&self) -> Option<Time> {
        self.peers.iter().filter_map(|p| p.nak_due).chain(self.tail_due).chain(self.have_due).min()
    }

    fn handle_timeout(&mut self, cx: &mut Cx<'_>) {
        let now = cx.now;
        for o in 0..self.peers.len() {
            if self.peers[o].nak_due.is_some_and(|t| t <= now) {
                self.send_nak(o, cx);
                self.peers[o].nak_due = Some(now + self.cfg.nak_interval);
                self.arm_nak(o, now);
            }
        }
        if self.tail_due.is_some_and(|t| t <= now) {
            if self.sent > self.mine_base {
                let mut m = Msg::new(Default::default());
                m.push(&NakHdr::Tail { sent: self.sent });
                cx.dn(Dn::CastUnrel(m));
                self.c.tails_sent += 1;
                self.tail_due = Some(now + self.cfg.tail_interval);
            } else {
                self.tail_due = None;
            }
        }
        if self.have_due.is_some_and(|t| t <= now) {
            self.have_due = None;
            for f in 0..self.peers.len() {
                let p = &self.peers[f];
                if self.failed[f] && p.base < p.win.next() && !self.cfg.test_skip_have {
                    self.announce(f, cx);
                }
            }
            self.arm_have(now);
        }
    }

    fn dump(&self, out: &mut Vec<Dump>) {
        let c = &self.c;
        let next: Vec<u64> = self.peers.iter().map(|p| p.win.next()).collect();
        out.push(Dump {
            layer: "nak",
            counters: vec![
                ("casts", c.casts),
                ("delivered", c.delivered),
                ("dup", c.dup),
                ("own_back", c.own_back),
                ("window_drop", c.window_drop),
                ("bad", c.bad),
                ("naks_sent", c.naks_sent),
                ("naks_rcvd", c.naks_rcvd),
                ("rtx_sent", c.rtx_sent),
                ("rtx_limited", c.rtx_limited),
                ("tails_sent", c.tails_sent),
                ("freed", c.freed),
                ("haves_sent", c.haves_sent),
                ("haves_rcvd", c.haves_rcvd),
                ("from_failed", c.from_failed),
                ("mem_drop", c.mem_drop),
                ("digests", c.digests),
                ("cuts", c.cuts),
            ],
            hists: vec![("gap_us", c.gap_us)],
            gauges: vec![
                ("buffered", self.buffered() as u64),
                ("held", self.held() as u64),
                ("held_bytes", self.budget.total() as u64),
            ],
            state: format!("sent {} stable-own {} next {:?} cut {:?}", self.sent, self.mine_base, next, self.cut),
        });
    }
}
