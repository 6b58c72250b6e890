//! `chk_total`: checks on live traffic that the members of a view deliver its casts in one
//! order (total order), each sender's in FIFO order, exactly once.
//!
//! **In the view.** Going down, each `Cast` gets `Chk { seq, upto, hash, sum }`: the
//! sender's cast number (0, 1, 2, ...) and a **claim** about the first `upto` casts it
//! delivered in this view: `hash`, a running hash over their `(rank, seq)` in delivery order,
//! and `sum`, a hash of the same casts as a set (a wrapping sum of one hash per cast). Going
//! up, every stamped cast is checked for FIFO (`Fifo`, as `chk_fifo`: `gap`, `duplicate`,
//! `reorder`), extends this member's hashes, and its claim is compared with this member's
//! own after `upto` deliveries (from a history of the last `HISTORY`): the same set in
//! another order is an **`order`** violation. A different set is not one by itself: where
//! delivery is not uniform, a member may deliver a cast that others never get (its sender and
//! the sequencer fail, or the view partitions) and then cast; the two sequences then differ in
//! content but not in order. It is counted (`diverged`), as are claims about more deliveries
//! than this member has made before the claim's cast (also `diverged`); claims older than
//! the history, and every claim once the view's change has begun here (`Up::Block`), are
//! counted `unchecked`: from there the flush may deliver what no decision ordered, in an
//! order only the members that move together share (see `order`), which the next part checks.
//!
//! **Across the view change** (`moves`, the mechanism `chk_vsync` uses): at `Up::Install`
//! the member keeps in the memo (key `chk_total`) the count and hash of its whole delivery
//! sequence in the view; the next view's stack casts it as `Digest { prev, next, digest }`
//! (one `Tally`, sender id 0), and a member that made the same move with another sequence
//! reports an **`order`** violation. Members that move together delivered the same casts
//! (virtual synchrony), so under total order they delivered the same sequence: this is where
//! the order of a view's last casts, delivered at the flush, is checked.
//!
//! A violation is counted, raised as `Up::Error { layer: "chk_total", detail }`, and the
//! message still goes up (a checker is not a filter). A header that does not decode, or a
//! rank outside the view, is dropped and counted (`bad_hdr`, `bad_rank`); a delivery after
//! `Install` cannot enter the digest kept (`after_install`).
//!
//! Parameters: none. Properties: requires nothing (so it also runs above a stack that does
//! not order, where it fires), provides nothing. Put it above the layer whose total order it
//! checks (for a group: above `gms`, one stack per view, so it checks view by view).
//! Header: `Hdr::NoHdr` (the nothing) | `Hdr::Chk { seq, upto, hash, sum }` (tag 1, two
//! varints and two u64) | `Hdr::Digest` (tag 2, as `chk_vsync`'s). A cast that asks for FIFO
//! order only (`Msg::set_fifo`) is in no total order: it gets `NoHdr`, and is not checked.
//! Memory: `HISTORY` pairs of hashes, `chk_fifo`'s per-sender state, the memo's moves.
//! Dump counters: `sent`, `checked`, `claims`, `diverged`, `unchecked`, one per violation
//! kind, `after_install`, `bad_hdr`, `bad_rank`, and the digests' (`moves`).
//!
//! Tested by the unit tests below (verdicts, header bytes) and, in simulated groups over the
//! `total` stack, by `membership/tests/sim_order.rs`, where it must catch a sequencer with a
//! planted bug.

use super::chk_fifo::Fifo;
use super::moves::{Moves, Tally, digest_len, get_digest, get_view, put_digest, put_view, view_len};
use super::{Checker, Reporter, Violation};
use std::collections::VecDeque;
use thoth_stack::wire::var_len;
use thoth_stack::{Args, Cx, Dn, Dump, EndpointId, Layer, Rank, Reader, Up, ViewId, Wire, WireError, Writer};

/// Hashes of this member's deliveries kept to check claims that arrive late.
pub const HISTORY: usize = 1 << 14;
/// The memo key.
pub const KEY: &str = "chk_total";

/// The `chk_total` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hdr {
    /// Not checked: sends, FIFO-only casts, other message events.
    NoHdr,
    /// A checked cast: the sender's cast number and its claim about its deliveries so far.
    Chk {
        /// The sender's cast number, from 0 (checked for FIFO).
        seq: u64,
        /// How many stamped casts the sender had delivered in this view before this one.
        upto: u64,
        /// Running hash of those `upto` deliveries, in delivery order (`extend`).
        hash: u64,
        /// Hash of the same deliveries as a set: a wrapping sum of one hash per cast.
        sum: u64,
    },
    /// Control: the sequence the sender delivered in view `prev` before it moved to `next`.
    Digest {
        /// The view the sender ran in.
        prev: ViewId,
        /// The view its `Install` announced.
        next: ViewId,
        /// One `Tally` (sender id 0): the count and running hash of its whole sequence in `prev`.
        digest: Vec<Tally>,
    },
}

impl Wire for Hdr {
    thoth_stack::nothing!(Hdr::NoHdr);
    fn encoded_len(&self) -> usize {
        1 + match self {
            Hdr::NoHdr => 0,
            Hdr::Chk { seq, upto, .. } => var_len(*seq) + var_len(*upto) + 16,
            Hdr::Digest { prev, next, digest } => view_len(*prev) + view_len(*next) + digest_len(digest),
        }
    }
    fn encode(&self, w: &mut Writer<'_>) {
        match self {
            Hdr::NoHdr => w.put_u8(0),
            Hdr::Chk { seq, upto, hash, sum } => {
                w.put_u8(1);
                w.put_var(*seq);
                w.put_var(*upto);
                w.put_u64(*hash);
                w.put_u64(*sum);
            }
            Hdr::Digest { prev, next, digest } => {
                w.put_u8(2);
                put_view(w, *prev);
                put_view(w, *next);
                put_digest(w, digest);
            }
        }
    }
    fn decode(r: &mut Reader<'_>) -> Result<Hdr, WireError> {
        match r.u8()? {
            0 => Ok(Hdr::NoHdr),
            1 => Ok(Hdr::Chk { seq: r.var()?, upto: r.var()?, hash: r.u64()?, sum: r.u64()? }),
            2 => Ok(Hdr::Digest { prev: get_view(r)?, next: get_view(r)?, digest: get_digest(r)? }),
            _ => Err(WireError::BadTag),
        }
    }
}

/// splitmix64's finaliser: every input bit moves every output bit.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// One cast's hash.
fn one(from: Rank, seq: u64) -> u64 {
    mix(((from.0 as u64) << 48) ^ seq ^ 0x9e37_79b9_7f4a_7c15)
}

/// The running hash of a delivery sequence, one cast at a time.
pub fn extend(hash: u64, from: Rank, seq: u64) -> u64 {
    mix(hash.rotate_left(17) ^ one(from, seq))
}

/// The hashes of a prefix of the delivery sequence: in order, and as a set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Prefix {
    hash: u64,
    sum: u64,
}

/// The total-order checker: FIFO per sender plus claims about the delivery sequence.
#[derive(Clone, Debug, Default)]
pub struct Total {
    fifo: Fifo,
    /// This member's deliveries so far, and the hashes over them.
    delivered: u64,
    now: Prefix,
    /// `history[i]` is the prefix after `base + i + 1` deliveries.
    history: VecDeque<Prefix>,
    base: u64,
    /// Stamped casts received, each carrying a claim.
    pub claims: u64,
    /// Claims about another set of casts, or about more deliveries than this member had
    /// made: not an order violation by themselves (delivery need not be uniform).
    pub diverged: u64,
    /// Claims not compared: older than the `HISTORY` kept, or made once the view's change
    /// had begun here (`stopped`).
    pub unchecked: u64,
    /// Claims are no longer compared (the view's change began).
    pub stopped: bool,
}

/// What a sender stamps: its cast number and its claim.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    /// The sender's cast number, from 0.
    pub seq: u64,
    /// The sender's deliveries so far that the claim covers (all of them).
    pub upto: u64,
    /// Running hash of those deliveries in order.
    pub hash: u64,
    /// Order-blind hash of the same deliveries (a wrapping sum).
    pub sum: u64,
}

impl Total {
    /// This member's prefix after `upto` deliveries, if it still has it.
    fn at(&self, upto: u64) -> Option<Prefix> {
        if upto == 0 {
            return Some(Prefix::default());
        }
        upto.checked_sub(self.base + 1).and_then(|i| self.history.get(i as usize)).copied()
    }

    /// Casts delivered so far and the running hash of their sequence.
    pub fn sequence(&self) -> (u64, u64) {
        (self.delivered, self.now.hash)
    }
}

impl Checker for Total {
    type Stamp = Stamp;

    fn stamp(&mut self, me: Rank) -> Stamp {
        Stamp { seq: self.fifo.stamp(me), upto: self.delivered, hash: self.now.hash, sum: self.now.sum }
    }

    fn arrive(&mut self, from: Rank, s: &Stamp) -> Vec<Violation> {
        let mut out = self.fifo.arrive(from, &s.seq);
        self.claims += 1;
        // The claim is about the sender's deliveries before this cast: compare before it counts.
        match self.at(s.upto) {
            _ if self.stopped => self.unchecked += 1,
            _ if s.upto > self.delivered => self.diverged += 1,
            Some(p) if p == (Prefix { hash: s.hash, sum: s.sum }) => {}
            Some(p) if p.sum == s.sum => out.push(Violation {
                kind: "order",
                from,
                detail: format!("the first {} deliveries are the same casts in another order here", s.upto),
            }),
            Some(_) => self.diverged += 1,
            None => self.unchecked += 1,
        }
        self.delivered += 1;
        self.now =
            Prefix { hash: extend(self.now.hash, from, s.seq), sum: self.now.sum.wrapping_add(one(from, s.seq)) };
        self.history.push_back(self.now);
        if self.history.len() > HISTORY {
            self.history.pop_front();
            self.base += 1;
        }
        out
    }
}

/// The `chk_total` layer.
#[derive(Clone, Debug)]
pub struct ChkTotal {
    total: Total,
    report: Reporter,
    moves: Moves,
    installed: bool,
    sent: u64,
    checked: u64,
    after_install: u64,
    bad_hdr: u64,
    bad_rank: u64,
}

impl Default for ChkTotal {
    fn default() -> Self {
        ChkTotal::new()
    }
}

impl ChkTotal {
    /// A checker with nothing sent or delivered yet; its moves kept under `KEY`.
    pub fn new() -> ChkTotal {
        ChkTotal {
            total: Total::default(),
            report: Reporter::new("chk_total", &["order", "gap", "duplicate", "reorder"]),
            moves: Moves::new(KEY),
            installed: false,
            sent: 0,
            checked: 0,
            after_install: 0,
            bad_hdr: 0,
            bad_rank: 0,
        }
    }

    /// Violations reported so far.
    pub fn violations(&self) -> u64 {
        self.report.total()
    }

    /// The digest of this view's delivery sequence so far.
    fn digest(&self) -> Vec<Tally> {
        let (count, hash) = self.total.sequence();
        vec![Tally { sender: EndpointId(0), count, hash }]
    }

    fn on_digest(&mut self, from: Rank, prev: ViewId, next: ViewId, digest: Vec<Tally>, cx: &mut Cx<'_>) {
        if let Some((mine, peer)) = self.moves.arrive(from, prev, next, &digest, cx) {
            let me = cx.view.member(cx.rank).unwrap_or_default();
            let show = |d: &[Tally]| d.first().map(|t| format!("{} casts (hash {:016x})", t.count, t.hash));
            let detail = format!(
                "{me} and {peer} both came from view {prev:?} with different sequences: {:?} at {me}, {:?} at {peer}",
                show(&mine),
                show(&digest)
            );
            self.report.report(Violation { kind: "order", from, detail }, cx);
        }
    }
}

pub(super) fn ctor(_: &mut Args) -> Result<Box<dyn thoth_stack::Layer>, String> {
    Ok(Box::new(ChkTotal::new()))
}

impl Layer for ChkTotal {
    fn name(&self) -> &'static str {
        "chk_total"
    }
    fn init(&mut self, cx: &mut Cx<'_>) {
        self.moves.start(cx, |k| Hdr::Digest { prev: k.prev, next: k.next, digest: k.digest });
    }
    fn max_header(&self, _: &thoth_stack::View) -> usize {
        Hdr::Chk { seq: u64::MAX, upto: u64::MAX, hash: u64::MAX, sum: u64::MAX }.encoded_len()
    }
    fn handle_dn(&mut self, mut ev: Dn, cx: &mut Cx<'_>) {
        // A cast that asks for FIFO order only is in no total order: not stamped, not checked.
        if let Dn::Cast(m) = &mut ev
            && !m.is_fifo()
        {
            self.sent += 1;
            let Stamp { seq, upto, hash, sum } = self.total.stamp(cx.rank);
            m.push(&Hdr::Chk { seq, upto, hash, sum });
        }
        cx.dn(ev)
    }
    fn handle_up(&mut self, mut ev: Up, cx: &mut Cx<'_>) {
        let (from, msg, cast) = match &mut ev {
            Up::Cast { from, msg } => (*from, msg, true),
            Up::Send { from, msg } => (*from, msg, false),
            Up::Block => {
                self.total.stopped = true;
                return cx.up(ev);
            }
            Up::Install(next) => {
                let digest = self.digest();
                self.moves.install(next.id, digest, cx);
                self.installed = true;
                return cx.up(ev);
            }
            _ => return cx.up(ev),
        };
        let Ok(hdr) = msg.pop::<Hdr>() else {
            self.bad_hdr += 1;
            return;
        };
        if from.index() >= cx.view.len() {
            self.bad_rank += 1;
            return;
        }
        match (cast, hdr) {
            (true, Hdr::Chk { seq, upto, hash, sum }) => {
                self.checked += 1;
                self.after_install += u64::from(self.installed);
                for v in self.total.arrive(from, &Stamp { seq, upto, hash, sum }) {
                    self.report.report(v, cx);
                }
            }
            (true, Hdr::Digest { prev, next, digest }) => return self.on_digest(from, prev, next, digest, cx),
            (_, Hdr::NoHdr) => {}
            (false, _) => {
                self.bad_hdr += 1;
                return;
            }
        }
        cx.up(ev)
    }
    fn dump(&self, out: &mut Vec<Dump>) {
        let t = &self.total;
        let mut counters = vec![
            ("sent", self.sent),
            ("checked", self.checked),
            ("claims", t.claims),
            ("diverged", t.diverged),
            ("unchecked", t.unchecked),
        ];
        counters.extend(self.report.counters());
        counters.extend([
            ("after_install", self.after_install),
            ("bad_hdr", self.bad_hdr),
            ("bad_rank", self.bad_rank),
        ]);
        counters.extend(self.moves.counters());
        out.push(Dump {
            layer: "chk_total",
            counters,
            state: format!("delivered={} violations={}", t.delivered, self.report.total()),
            ..Dump::default()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use thoth_stack::wire::{from_slice, to_vec};

    #[test]
    fn header_bytes() {
        let h = Hdr::Chk { seq: 300, upto: 2, hash: 0x0102_0304_0506_0708, sum: 9 };
        let want = [1, 0xac, 0x02, 2, 8, 7, 6, 5, 4, 3, 2, 1, 9, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(to_vec(&h), want, "the hashes little-endian");
        assert_eq!(from_slice::<Hdr>(&to_vec(&h)), Ok(h));
        let v = ViewId { ltime: 3, coord: EndpointId(1) };
        let d = Hdr::Digest { prev: v, next: v, digest: vec![Tally { sender: EndpointId(0), count: 2, hash: 5 }] };
        assert_eq!(from_slice::<Hdr>(&to_vec(&d)), Ok(d));
        assert_eq!(from_slice::<Hdr>(&[3]), Err(WireError::BadTag));
    }

    /// Members deliver the same casts; one swaps two of them.
    #[test]
    fn another_order_of_the_same_casts_is_caught_and_a_prefix_or_another_set_is_not() {
        let (a, b, c) = (Rank(0), Rank(1), Rank(2));
        let first = |from: Rank| Total::default().stamp(from); // a member's first cast
        let (sa, sb) = (first(a), first(b));
        let kinds = |v: Vec<Violation>| v.into_iter().map(|v| v.kind).collect::<Vec<_>>();
        // x delivers [a0, b0], y [b0, a0]: no claim says anything yet (both claim 0).
        let (mut x, mut y, mut z) = (Total::default(), Total::default(), Total::default());
        assert!(x.arrive(a, &sa).is_empty() && x.arrive(b, &sb).is_empty());
        assert!(y.arrive(b, &sb).is_empty() && y.arrive(a, &sa).is_empty());
        // x casts, claiming [a0, b0]; y delivers it third: the same two in another order.
        let sx = x.stamp(c);
        assert_eq!(kinds(y.arrive(c, &sx)), ["order"]);
        // z delivered only a0 (x's b0 never reaches it) and gets x's cast second; u got a0
        // and d0 instead of b0: neither can tell a cast it lacks from a misorder.
        assert!(z.arrive(a, &sa).is_empty());
        assert!(z.arrive(c, &sx).is_empty());
        let mut u = Total::default();
        assert!(u.arrive(a, &sa).is_empty() && u.arrive(Rank(3), &first(Rank(3))).is_empty());
        assert!(u.arrive(c, &sx).is_empty());
        assert_eq!((z.diverged, u.diverged), (1, 1));
        // v delivers in x's order: nothing; nor from a member that delivered a prefix.
        let mut v = Total::default();
        assert!(v.arrive(a, &sa).is_empty() && v.arrive(b, &sb).is_empty());
        assert!(v.arrive(c, &sx).is_empty());
        let mut p = Total::default();
        assert!(p.arrive(a, &sa).is_empty());
        let sp = p.stamp(Rank(3));
        assert!(v.arrive(Rank(3), &sp).is_empty(), "a claim about a prefix matches");
        assert_eq!((v.diverged, v.unchecked), (0, 0));
    }
}
