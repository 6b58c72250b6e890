//! The ordering layers (causal order: `causal`; total order: `sequencer`, `token`,
//! `lamport`) and what they share.
//!
//! An ordering layer sits above the reliable FIFO multicast and below flow control and
//! fragmentation (`frag:flow:sequencer:stable:nak:pt2pt:pack`, the named stack `total`
//! under `gms:heartbeat`): every cast it emits is one reliable cast below, so its count of
//! each member's casts is the count `stable` and `nak` keep (stability and the flush's cut
//! mean the same casts here), and flow control above it returns credit only for what it has
//! delivered, which bounds what it holds of an honest sender.
//!
//! **The guarantee** of a total order, in a view V (checked by `chk_total` and by the
//! simulated groups' check (h), `membership/tests/common`):
//! - what members deliver in V before its change begins follows one order, each sender's
//!   casts in FIFO order: any two members deliver the casts both delivered in the same
//!   relative order (a member that fails may have delivered further into it than any
//!   survivor gets);
//! - members that move together from V to the same next view deliver one sequence in V, its
//!   end included: at `Up::CutReached` they hold the same casts and the same decisions (the
//!   reliable layer delivered exactly the cut), so what is still unordered is delivered in
//!   one order that each computes alike — the algorithm's own decisions first, then the rest
//!   by rank and, within a rank, in FIFO order (`Held::leftovers`);
//! - members that go on to different views (a partition) may complete V in different
//!   orders: each side's flush orders what its members hold and no decision covered. (So do
//!   Isis's and JGroups's sequencers; extended virtual synchrony names this a transitional
//!   delivery.)
//!
//! **Causal order** (`causal`): every member delivers a cast after every cast its sender had
//! delivered before casting it (and, as every ordering layer here, each sender's casts in
//! FIFO order). At a view change the members that move together deliver what they hold in
//! one causal order and drop the same casts: those whose causes none of them has.
//!
//! **Safe (uniform) delivery** (`safe=1`): a cast goes up only once stable (every member of
//! the view holds it: `Up::Stable` from `stable` below, in the same count), and so does the
//! decision that ordered it. Then what any member delivered before the change, even one that
//! failed right after, every member that goes on delivers too (every member held it, so
//! every side's cut has it); at the cut the leftovers go up at once (the side holds them all).
//!
//! **FIFO-only casts** (`Msg::set_fifo`, Isis's `fbcast` beside `abcast` / `cbcast`: what
//! Group RPC's `ubcast` calls are): a cast that asks for no order beyond its sender's FIFO
//! order goes down with the layer's `Fifo` header and every member passes it up as it
//! arrives (`pass_fifo`), never held for the order, with `safe=1` too (it is not uniform):
//! so a cheap cast costs no sequencer decision, no token and no wait on other members'
//! clocks or causes. It still takes its index (the reliable layer counted it with the rest,
//! and stability and the flush count in that number); the order the layer keeps among its
//! other casts is untouched, and a FIFO-only cast is in no order with them, not even with its
//! own sender's ordered casts (each kind keeps its sender's FIFO order: `frag` numbers the
//! kinds apart). It is delivered in the view it was cast in as any cast is (virtual
//! synchrony holds for it: the reliable layer delivers exactly the cut), and it goes up
//! marked, so the checkers of an order above (`chk_total`, `chk_causal`) leave it alone.
//!
//! What they share is `Held`: the casts a member holds until the order allows them out,
//! per sender, each with its index (the sender's reliable casts counted from 0 in this
//! view, every one of them: one that does not decode still took its number below), what the
//! algorithm keeps of it, a byte budget, and the stability vector.

pub mod causal;
pub mod lamport;
pub mod sequencer;
pub mod token;

use std::collections::VecDeque;
use thoth_stack::budget::MSG_OVERHEAD;
use thoth_stack::msg::COMPACT_SLACK;
use thoth_stack::wire::var_len;
use thoth_stack::{Args, Budget, Cx, Msg, Rank, Reader, Registry, Up, WireError, Writer};

/// Registers the four ordering layers: `causal`, `lamport`, `sequencer` and `token`.
pub fn register(r: &mut Registry) {
    causal::register(r);
    lamport::register(r);
    sequencer::register(r);
    token::register(r);
}

/// Bytes held per sender by default (`mem`): four times the flow control's default credit per
/// sender, which bounds what an honest sender has in flight here.
pub const MEM: usize = 8 << 20;
/// Bytes held in all by default (`mem_all`).
pub const MEM_ALL: usize = 64 << 20;

/// The parameters every ordering layer's spec takes: `safe` (0 or 1), `mem`, `mem_all`.
pub fn spec_args(a: &mut Args) -> Result<(bool, usize, usize), String> {
    Ok((a.get("safe", 0u8)? != 0, a.get("mem", MEM)?, a.get("mem_all", MEM_ALL)?))
}

/// A cast that asks for FIFO order only, arrived from `from`: it takes its index and goes up
/// at once, marked (see the module doc), unless the cut was reached (`done`: nothing more of
/// the view goes up); whether it went up.
pub fn pass_fifo<T>(held: &mut Held<T>, done: bool, from: Rank, mut msg: Msg, cx: &mut Cx<'_>) -> bool {
    held.count(from.index());
    if done {
        return false;
    }
    msg.set_fifo();
    cx.up(Up::Cast { from, msg });
    true
}

/// The longest `pairs_len` of `n` pairs.
pub fn pairs_max_len(n: usize) -> usize {
    var_len(n as u64) + n * (var_len(u16::MAX.into()) + var_len(u64::MAX))
}

/// The wire form of a list of (rank, number) pairs (decisions, vector entries): a varint
/// count, then a varint rank and a varint number per pair.
pub fn pairs_len(v: &[(Rank, u64)]) -> usize {
    var_len(v.len() as u64) + v.iter().map(|&(r, n)| var_len(r.0 as u64) + var_len(n)).sum::<usize>()
}

/// Writes a list of (rank, number) pairs in the wire form `pairs_len` measures.
pub fn put_pairs(w: &mut Writer<'_>, v: &[(Rank, u64)]) {
    w.put_var(v.len() as u64);
    for &(r, n) in v {
        w.put_var(r.0 as u64);
        w.put_var(n);
    }
}

/// Reads a list of at most `max` pairs; a count beyond `max`, or beyond the bytes left (a
/// pair takes at least two), and a rank past `u16` are `BadValue`.
pub fn get_pairs(r: &mut Reader<'_>, max: usize) -> Result<Vec<(Rank, u64)>, WireError> {
    let n = r.var()?;
    if n > max as u64 || n.saturating_mul(2) > r.remaining() as u64 {
        return Err(WireError::BadValue);
    }
    let mut v = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let rank = u16::try_from(r.var()?).map_err(|_| WireError::BadValue)?;
        v.push((Rank(rank), r.var()?));
    }
    Ok(v)
}

/// The casts a member holds for the order, per sender, each with what the algorithm keeps
/// of it (`T`: nothing for `sequencer`, the vector timestamp for `causal`).
pub struct Held<T = ()> {
    /// Reliable casts received from each rank (data and decisions alike): the next index.
    got: Vec<u64>,
    queues: Vec<VecDeque<Entry<T>>>,
    /// For each rank, how many of its casts every member holds.
    stable: Vec<u64>,
    budget: Budget,
}

struct Entry<T> {
    idx: u64,
    msg: Msg,
    /// All it is charged, `carry` included.
    cost: usize,
    /// The charge of the datagram it is a slice of, if it carries it.
    carry: usize,
    extra: T,
}

impl<T> Held<T> {
    /// Nothing held yet for a view of `n` members, within `mem` bytes per sender and
    /// `mem_all` in all.
    pub fn new(n: usize, mem: usize, mem_all: usize) -> Held<T> {
        Held {
            got: vec![0; n],
            queues: (0..n).map(|_| VecDeque::new()).collect(),
            stable: vec![0; n],
            budget: Budget::new(n, mem, mem_all),
        }
    }

    /// The index of the reliable cast that just arrived from `r` (in range).
    pub fn count(&mut self, r: usize) -> u64 {
        let i = self.got[r];
        self.got[r] += 1;
        i
    }

    /// Holds cast `idx` of `r` (what the algorithm keeps of it costing `extra_bytes`); false
    /// (not held) past the budget.
    ///
    /// A cast that is a slice of a larger datagram (packed with others of its sender) keeps
    /// the datagram alive: as `nak` does, the datagram is charged once, carried by the newest
    /// of its casts held (the last of them to go: a rank's casts go in FIFO order), rather
    /// than each cast copied out of it; with no room for the datagram, the cast alone is
    /// kept, copied.
    pub fn hold(&mut self, r: usize, idx: u64, msg: Msg, extra: T, extra_bytes: usize) -> bool {
        let own = MSG_OVERHEAD + extra_bytes;
        let (d, whole, len) = (msg.datagram(), msg.pinned(), msg.len());
        let q = &mut self.queues[r];
        let sliced = d != 0 && whole > 2 * len + COMPACT_SLACK;
        // The newest held cast carries this datagram (one that carries is never a copy).
        let moved = sliced && q.back().is_some_and(|e| e.carry > 0 && e.msg.datagram() == d);
        // (the message, the datagram charge it carries, what it costs besides)
        let (msg, carry, charge) = if !sliced {
            (msg, 0, len + own)
        } else if moved {
            let back = q.back_mut().expect("checked");
            back.cost -= back.carry;
            (msg, core::mem::take(&mut back.carry), own)
        } else if self.budget.take(r, whole) {
            (msg, whole, own)
        } else {
            (msg.compact(), 0, len + own)
        };
        if !self.budget.take(r, charge) {
            match q.back_mut().filter(|_| moved) {
                Some(back) => {
                    back.carry = carry;
                    back.cost += carry;
                }
                None => self.budget.give(r, carry),
            }
            return false;
        }
        q.push_back(Entry { idx, msg, cost: charge + carry, carry, extra });
        true
    }

    /// The index of the oldest cast held from `r`, and what is kept of it.
    pub fn front(&self, r: usize) -> Option<(u64, &T)> {
        self.queues[r].front().map(|e| (e.idx, &e.extra))
    }

    /// Takes the oldest cast held from `r`.
    pub fn pop(&mut self, r: usize) -> Option<Msg> {
        let e = self.queues[r].pop_front()?;
        self.budget.give(r, e.cost);
        Some(e.msg)
    }

    /// Whether every member holds cast `idx` of `r`.
    pub fn is_stable(&self, r: usize, idx: u64) -> bool {
        self.stable.get(r).is_some_and(|&s| s > idx)
    }

    /// Takes in a stability vector (`Up::Stable`); false if it does not fit the view.
    pub fn stable(&mut self, v: &[u64]) -> bool {
        if v.len() != self.stable.len() {
            return false;
        }
        for (s, &x) in self.stable.iter_mut().zip(v) {
            *s = (*s).max(x);
        }
        true
    }

    /// Everything still held, by rank and within a rank in FIFO order: the part of the
    /// view's last delivery that no decision covered.
    pub fn leftovers(&mut self) -> Vec<(Rank, Msg)> {
        let mut out = Vec::new();
        for r in 0..self.queues.len() {
            while let Some(m) = self.pop(r) {
                out.push((Rank(r as u16), m));
            }
        }
        out
    }

    /// Casts held, in all.
    pub fn len(&self) -> usize {
        self.queues.iter().map(VecDeque::len).sum()
    }

    /// Whether no cast is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Casts received per rank.
    pub fn got(&self) -> &[u64] {
        &self.got
    }
}

/// What the ordering layers' unit tests share.
#[cfg(test)]
pub(crate) mod testkit {
    use thoth_stack::testing::{Harness, over_wire};
    use thoth_stack::{Bytes, Dn, Layer, Msg, Rank, Time, Up, Wire};

    /// What `from` put on the wire as it arrives: header `hdr` (the nothing: no bytes),
    /// then `body`.
    pub fn wired<H: Wire>(hdr: H, body: &[u8]) -> Msg {
        let mut m = Msg::new(Bytes::copy_from_slice(body));
        m.push(&hdr);
        m.seal();
        over_wire(&m)
    }

    /// A cast of rank `from` as it arrives (see `wired`).
    pub fn cast<H: Wire>(from: u16, hdr: H, body: &[u8]) -> Up {
        Up::Cast { from: thoth_stack::Rank(from), msg: wired(hdr, body) }
    }

    /// What went up: each cast as (rank, body), a `CutReached` as `(u16::MAX, [])`.
    pub fn delivered(h: &mut Harness) -> Vec<(u16, Vec<u8>)> {
        h.take_up()
            .into_iter()
            .filter_map(|e| match e {
                Up::Cast { from, msg } => Some((from.0, msg.into_payload().to_vec())),
                Up::CutReached(_) => Some((u16::MAX, Vec::new())),
                _ => None,
            })
            .collect()
    }

    /// A counter of the layer's dump.
    pub fn counter(l: &dyn Layer, name: &str) -> u64 {
        let mut d = Vec::new();
        l.dump(&mut d);
        d[0].counter(name).expect("a counter of the layer")
    }

    /// What every ordering layer does with a cast that asks for FIFO order only (`order`),
    /// checked on `l` (with `safe=1`) as rank 1 of three: such a cast goes down at once with
    /// the layer's header `fifo`. From rank 2, one then an ordered cast (header `ordered`,
    /// which needs only what `ready` feeds and stability to go up): the first goes up at once
    /// though not stable, marked; the second waits for its own stability at index 1 (so the
    /// first took index 0, as the reliable layer below numbered it). After the cut, one more
    /// goes nowhere (`late`).
    pub fn fifo_only_contract<L: Layer, H: Wire + PartialEq + core::fmt::Debug + Clone>(
        mut l: L,
        fifo: H,
        ordered: H,
        ready: impl FnOnce(&mut Harness, &mut L),
    ) {
        const T: Time = Time::ZERO;
        let mut h = Harness::new(3, 1);
        let mut mine = Msg::new(Bytes::from_static(b"mine"));
        mine.set_fifo();
        h.dn(&mut l, T, Dn::Cast(mine));
        let out = h.take_dn();
        let [Dn::Cast(m)] = &out[..] else { panic!("one cast down at once: {out:?}") };
        let mut m = over_wire(m);
        m.unseal();
        assert_eq!(m.pop::<H>(), Ok(fifo.clone()), "the layer's FIFO-only header");

        h.up(&mut l, T, cast(2, fifo.clone(), b"f"));
        h.up(&mut l, T, cast(2, ordered, b"o"));
        ready(&mut h, &mut l);
        let up = h.take_up();
        assert!(
            matches!(&up[..], [Up::Cast { from: Rank(2), msg }] if msg.is_fifo() && msg.body()[..] == b"f"[..]),
            "the FIFO-only cast at once, marked: {up:?}"
        );
        h.up(&mut l, T, Up::Stable(vec![1, 1, 1]));
        assert!(delivered(&mut h).is_empty(), "the ordered cast is rank 2's second: not stable yet");
        h.up(&mut l, T, Up::Stable(vec![1, 1, 2]));
        let up = h.take_up();
        assert!(
            matches!(&up[..], [Up::Cast { from: Rank(2), msg }, Up::Stable(_)] if !msg.is_fifo() && msg.body()[..] == b"o"[..]),
            "the ordered cast once stable, not marked: {up:?}"
        );
        h.up(&mut l, T, Up::CutReached(vec![1, 1, 3]));
        h.up(&mut l, T, cast(2, fifo, b"after"));
        assert_eq!(delivered(&mut h), [(u16::MAX, vec![])], "nothing after the cut");
        assert_eq!((counter(&l, "fifo"), counter(&l, "late")), (1, 1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use thoth_stack::Bytes;

    /// Slice `i` (100 bytes) of datagram `d` (8000 bytes).
    fn slice(d: u32, i: usize) -> Msg {
        let datagram = Bytes::from(vec![7u8; 8000]);
        Msg::from_wire(datagram.slice(i * 100..(i + 1) * 100)).within(d, 8000)
    }

    #[test]
    fn a_datagram_is_charged_once_by_the_newest_of_its_casts_held_and_freed_with_the_last() {
        let mut h: Held = Held::new(2, 20_000, 100_000);
        for i in 0..3 {
            assert!(h.hold(1, i, slice(5, i as usize), (), 0));
        }
        let one = 8000 + 3 * MSG_OVERHEAD;
        assert_eq!(h.budget.used(1), one, "the datagram once, and each cast's overhead");
        assert!(h.queues[1].iter().all(|e| e.msg.datagram() == 5), "not copied out");
        assert!(h.hold(1, 3, slice(6, 0), (), 0), "another datagram: charged too");
        assert_eq!(h.budget.used(1), one + 8000 + MSG_OVERHEAD);
        h.pop(1);
        h.pop(1);
        assert_eq!(h.budget.used(1), one + 8000 + MSG_OVERHEAD - 2 * MSG_OVERHEAD, "the third still pins it");
        h.pop(1);
        assert_eq!(h.budget.used(1), 8000 + MSG_OVERHEAD);
        h.pop(1);
        assert_eq!(h.budget.used(1), 0);
        // With no room for a datagram, a cast alone is kept, copied.
        let mut h: Held = Held::new(2, 5000, 100_000);
        assert!(h.hold(0, 0, slice(9, 0), (), 0));
        assert_eq!((h.budget.used(0), h.queues[0][0].msg.datagram()), (100 + MSG_OVERHEAD, 0));
        // Past the budget, nothing is held and nothing stays charged.
        let mut h: Held = Held::new(2, 8000 + MSG_OVERHEAD + 10, 100_000);
        assert!(h.hold(0, 0, slice(3, 0), (), 0));
        assert!(!h.hold(0, 1, slice(3, 1), (), 0), "its overhead does not fit");
        assert_eq!((h.budget.used(0), h.queues[0][0].carry), (8000 + MSG_OVERHEAD, 8000), "the first carries it still");
    }
}
