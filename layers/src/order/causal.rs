//! `causal`: causal order by vector timestamps, compressed on the wire.
//!
//! **Protocol.** A cast carries the sender's vector timestamp: for every other member of the
//! view, how many of its casts the sender had delivered when it cast (its own casts are in
//! FIFO order below, so its own entry is implicit). On the wire only the entries that changed
//! since the sender's previous cast go, each as the increase: a sender that delivered
//! nothing new in between sends no header bytes at all (the nothing). A receiver rebuilds
//! the full vector from the sender's previous one, which it has: the reliable layer below
//! delivers every cast of a sender, in order. A cast is delivered once every cast it
//! depends on has been (`delivered[r] >= vt[r]` for every other rank `r`); until then it is
//! held. The vector is sized by the view (one entry per member) and starts at zero with it.
//!
//! **The view change** (the layer contract, `thoth_stack::layer`). Nothing is held back at
//! the flush: a member's own casts are delivered as they come back (what they depend on was
//! delivered before they were cast). At `Up::CutReached` the members that move together hold
//! the same casts; each delivers every one whose causes are all there, repeatedly, in one
//! deterministic order (ranks in turn, each in FIFO order), and drops the rest, counted as
//! `orphans`: casts that depend on one none of them got (cast by a member that failed or is
//! on another side of a partition, after delivering a cast of yet another such member). All
//! of them drop the same, so virtual synchrony holds, and what a sender's casts delivered in
//! a view still form a prefix of what it cast.
//!
//! **Safe (uniform) delivery** (`safe=1`): a cast goes up only once it is also stable (every
//! member holds it); at the cut, at once (see `order`).
//!
//! **Parameters** (spec `causal(safe=0,mem=8388608,mem_all=67108864)`): as `sequencer`'s.
//!
//! **Properties:** requires `RELIABLE_CAST | FIFO_CAST` (and `STABLE` with `safe=1`);
//! provides `CAUSAL`.
//!
//! **Header:** `Data { deps }` (tag 0, a varint count, then per entry a varint rank and a
//! varint increase; with no entries, the nothing) | `Unrel` (tag 1: unreliable casts, passed
//! up at once, unordered) | `Fifo` (tag 2: a cast that asks for FIFO order only, passed up
//! at once, neither a cause nor caused in the vectors; see `order`).
//!
//! **Hostile input** is dropped and counted, never a panic: an undecodable header, a rank
//! outside the view, an entry for the sender itself or an increase that overflows (`bad`),
//! a cast past the budget (`over_budget`, reported as `Up::Error`: this member then waits for
//! it in vain until the view changes). A forged cast in a member's name is taken as real
//! (frames are not authenticated yet, the security issue); one that claims a cause that never
//! comes holds its sender's later casts here until the view change, not the membership.
//!
//! **Memory:** the casts held, within `mem` per sender and `mem_all` in all (each charged its
//! bytes and its vector), and one vector per member of the view.
//!
//! **Tests:** the unit tests below (header bytes, compression, delivery order, the cut,
//! hostile input); `tests/order.rs` (bolero: against a reference model of causal delivery
//! under arbitrary arrival orders, through the real encoding); simulated groups in
//! `membership/tests/sim_order.rs`, checked by `chk_causal` and the harness's own causal
//! check.

use super::{Held, MEM, MEM_ALL, get_pairs, pairs_len, pass_fifo, put_pairs, spec_args};
use thoth_stack::{Args, Cx, Dn, Dump, Layer, Msg, Props, Rank, Reader, Registry, Up, Wire, WireError, Writer};

/// The `causal` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hdr {
    /// A causal cast: the entries of the sender's vector that grew since its previous cast,
    /// as (rank, increase).
    Data {
        /// (rank, increase) per entry that grew, never the sender's own; empty: the nothing.
        deps: Vec<(Rank, u64)>,
    },
    /// An unreliable cast: not ordered.
    Unrel,
    /// A cast that asks for FIFO order only: not in the vectors.
    Fifo,
}

impl Wire for Hdr {
    fn nothing() -> Option<Hdr> {
        Some(Hdr::Data { deps: Vec::new() })
    }
    fn is_nothing(&self) -> bool {
        matches!(self, Hdr::Data { deps } if deps.is_empty())
    }
    fn encoded_len(&self) -> usize {
        1 + match self {
            Hdr::Data { deps } => pairs_len(deps),
            Hdr::Unrel | Hdr::Fifo => 0,
        }
    }
    fn encode(&self, w: &mut Writer<'_>) {
        match self {
            Hdr::Data { deps } => {
                w.put_u8(0);
                put_pairs(w, deps);
            }
            Hdr::Unrel => w.put_u8(1),
            Hdr::Fifo => w.put_u8(2),
        }
    }
    fn decode(r: &mut Reader<'_>) -> Result<Hdr, WireError> {
        match r.u8()? {
            // At most one entry per member of the largest view (`Rank` is a u16).
            0 => Ok(Hdr::Data { deps: get_pairs(r, u16::MAX as usize + 1)? }),
            1 => Ok(Hdr::Unrel),
            2 => Ok(Hdr::Fifo),
            _ => Err(WireError::BadTag),
        }
    }
}

/// Parameters; see **Parameters** above.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Safe (uniform) delivery: a cast goes up only once stable (needs `STABLE` below).
    pub safe: bool,
    /// Bytes of held casts per sender; a cast past it is dropped (`over_budget`).
    pub mem: usize,
    /// Bytes of held casts for all senders together.
    pub mem_all: usize,
    /// Planted bug (tests only): deliver a cast whose sender's FIFO turn has come without
    /// waiting for its other causes.
    #[doc(hidden)]
    pub test_ignore_deps: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config { safe: false, mem: MEM, mem_all: MEM_ALL, test_ignore_deps: false }
    }
}

/// Registers `causal` and its parameters (`safe`, `mem`, `mem_all`).
pub fn register(r: &mut Registry) {
    r.register(
        "causal",
        "causal order: vector timestamps, only the entries that changed on the wire",
        |a: &mut Args| {
            let (safe, mem, mem_all) = spec_args(a)?;
            Ok(Box::new(Causal::new(Config { safe, mem, mem_all, ..Config::default() })))
        },
    );
}

#[derive(Default)]
struct Counters {
    data: u64,
    delivered: u64,
    at_cut: u64,
    orphans: u64,
    bad: u64,
    over_budget: u64,
    late: u64,
    fifo: u64,
}

/// The causal order layer; see the module documentation.
pub struct Causal {
    cfg: Config,
    held: Held<Vec<u64>>,
    /// Casts delivered per rank in this view.
    delivered: Vec<u64>,
    /// The vector this member sent with its previous cast.
    sent: Vec<u64>,
    /// Per rank, the vector of its previous cast as rebuilt here.
    last: Vec<Vec<u64>>,
    /// The cut was reached: nothing more of this view goes up.
    done: bool,
    c: Counters,
}

impl Causal {
    /// A causal layer; its vectors and budget are sized from the view at `init`.
    pub fn new(cfg: Config) -> Causal {
        Causal {
            cfg,
            held: Held::new(0, 0, 0),
            delivered: Vec::new(),
            sent: Vec::new(),
            last: Vec::new(),
            done: false,
            c: Counters::default(),
        }
    }

    /// The header of this member's next cast: what grew since its previous one.
    fn stamp(&mut self, me: usize) -> Hdr {
        let mut deps = Vec::new();
        for (r, (s, &d)) in self.sent.iter_mut().zip(&self.delivered).enumerate() {
            if r != me && d > *s {
                deps.push((Rank(r as u16), d - *s));
                *s = d;
            }
        }
        Hdr::Data { deps }
    }

    fn data(&mut self, s: usize, deps: Vec<(Rank, u64)>, msg: Msg, cx: &mut Cx<'_>) {
        let n = cx.view.len();
        // A reliable cast below, whatever it says: it takes its index (stability counts it).
        let idx = self.held.count(s);
        let mut vt = self.last[s].clone();
        for (r, d) in deps {
            let r = r.index();
            match vt.get_mut(r).filter(|_| r != s).and_then(|x| x.checked_add(d).map(|y| (x, y))) {
                Some((x, y)) => *x = y,
                None => {
                    self.c.bad += 1;
                    return;
                }
            }
        }
        self.c.data += 1;
        self.last[s].copy_from_slice(&vt);
        if self.done {
            self.c.late += 1;
            return;
        }
        if !self.held.hold(s, idx, msg, vt, 8 * n) {
            self.c.over_budget += 1;
            let detail = format!("a cast of rank {s} past the budget was dropped: its successors wait in vain here");
            return cx.up(Up::Error { layer: "causal", detail });
        }
        self.deliver(false, cx);
    }

    /// Whether the oldest cast held from `r` may go up: its causes are delivered (and it is
    /// stable, with `safe`, unless the view is ending).
    fn ready(&self, r: usize, ending: bool) -> bool {
        let Some((idx, vt)) = self.held.front(r) else { return false };
        let caused = self.cfg.test_ignore_deps
            || vt.iter().zip(&self.delivered).enumerate().all(|(q, (&need, &have))| q == r || have >= need);
        caused && (ending || !self.cfg.safe || self.held.is_stable(r, idx))
    }

    /// Delivers every held cast that may go up, ranks in turn, until none may.
    fn deliver(&mut self, ending: bool, cx: &mut Cx<'_>) {
        let n = self.delivered.len();
        let mut progress = true;
        while progress {
            progress = false;
            for r in 0..n {
                while self.ready(r, ending) {
                    let msg = self.held.pop(r).expect("a cast is held");
                    self.delivered[r] += 1;
                    self.c.delivered += 1;
                    self.c.at_cut += u64::from(ending);
                    cx.up(Up::Cast { from: Rank(r as u16), msg });
                    progress = true;
                }
            }
        }
    }
}

impl Layer for Causal {
    fn name(&self) -> &'static str {
        "causal"
    }
    fn requires(&self) -> Props {
        let base = Props::RELIABLE_CAST | Props::FIFO_CAST;
        if self.cfg.safe { base | Props::STABLE } else { base }
    }
    fn provides(&self) -> Props {
        Props::CAUSAL
    }

    fn init(&mut self, cx: &mut Cx<'_>) {
        let n = cx.view.len();
        self.held = Held::new(n, self.cfg.mem, self.cfg.mem_all);
        self.delivered = vec![0; n];
        self.sent = vec![0; n];
        self.last = vec![vec![0; n]; n];
    }

    fn max_header(&self, view: &thoth_stack::View) -> usize {
        // A dependency on every member.
        1 + super::pairs_max_len(view.len())
    }
    fn handle_dn(&mut self, mut ev: Dn, cx: &mut Cx<'_>) {
        match &mut ev {
            Dn::Cast(m) if m.is_fifo() => m.push(&Hdr::Fifo),
            Dn::Cast(m) => {
                let h = self.stamp(cx.rank.index());
                m.push(&h);
            }
            Dn::CastUnrel(m) => m.push(&Hdr::Unrel),
            _ => {} // sends: no header
        }
        cx.dn(ev)
    }

    fn handle_up(&mut self, ev: Up, cx: &mut Cx<'_>) {
        match ev {
            Up::Cast { from, mut msg } => {
                let s = from.index();
                match msg.pop::<Hdr>() {
                    _ if s >= cx.view.len() => self.c.bad += 1,
                    Ok(Hdr::Unrel) => cx.up(Up::Cast { from, msg }),
                    Ok(Hdr::Fifo) => {
                        let up = pass_fifo(&mut self.held, self.done, from, msg, cx);
                        *(if up { &mut self.c.fifo } else { &mut self.c.late }) += 1;
                    }
                    Ok(Hdr::Data { deps }) => self.data(s, deps, msg, cx),
                    Err(_) => {
                        // Taken for a reliable cast: it took its index below.
                        self.held.count(s);
                        self.c.bad += 1;
                    }
                }
            }
            Up::Send { from, mut msg } => match msg.pop::<Hdr>() {
                Ok(h) if h.is_nothing() => cx.up(Up::Send { from, msg }),
                _ => self.c.bad += 1,
            },
            Up::Stable(v) => {
                if self.held.stable(&v) && !self.done {
                    self.deliver(false, cx);
                }
                cx.up(Up::Stable(v));
            }
            Up::CutReached(cut) => {
                self.done = true;
                self.deliver(true, cx);
                self.c.orphans += self.held.len() as u64;
                drop(self.held.leftovers());
                cx.up(Up::CutReached(cut));
            }
            other => cx.up(other),
        }
    }

    fn dump(&self, out: &mut Vec<Dump>) {
        let c = &self.c;
        out.push(Dump {
            layer: "causal",
            counters: vec![
                ("data", c.data),
                ("delivered", c.delivered),
                ("at_cut", c.at_cut),
                ("orphans", c.orphans),
                ("bad", c.bad),
                ("over_budget", c.over_budget),
                ("late", c.late),
                ("fifo", c.fifo),
            ],
            gauges: vec![("held", self.held.len() as u64)],
            state: format!("delivered {:?} got {:?} done {}", self.delivered, self.held.got(), self.done),
            ..Dump::default()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::testkit::{self as testkit, counter, delivered};
    use thoth_stack::testing::{Harness, over_wire};
    use thoth_stack::wire::{from_slice, to_vec};
    use thoth_stack::{Bytes, Time};

    const T: Time = Time::ZERO;

    /// A cast as it arrives: `deps` in the header (empty: no header bytes), `body` after it.
    fn cast(from: u16, deps: &[(u16, u64)], body: &'static [u8]) -> Up {
        testkit::cast(from, Hdr::Data { deps: deps.iter().map(|&(r, d)| (Rank(r), d)).collect() }, body)
    }

    /// The header member `rank`'s layer puts on its next cast.
    fn next_hdr(h: &mut Harness, s: &mut Causal) -> Hdr {
        h.dn(s, T, Dn::Cast(Msg::new(Bytes::from_static(b"x"))));
        let Some(Dn::Cast(m)) = h.take_dn().pop() else { panic!("a cast") };
        let mut m = over_wire(&m);
        m.unseal();
        m.pop::<Hdr>().expect("decodes")
    }

    #[test]
    fn header_bytes() {
        let d = Hdr::Data { deps: vec![(Rank(2), 3), (Rank(0), 300)] };
        assert_eq!(to_vec(&d), [0, 2, 2, 3, 0, 0xac, 0x02]);
        assert_eq!(from_slice::<Hdr>(&to_vec(&d)), Ok(d));
        assert!(Hdr::Data { deps: vec![] }.is_nothing(), "nothing new: no header bytes");
        assert_eq!(to_vec(&Hdr::Unrel), [1]);
        assert_eq!(from_slice::<Hdr>(&[0, 100]), Err(WireError::BadValue), "more entries than bytes");
        assert_eq!(to_vec(&Hdr::Fifo), [2]);
        assert_eq!(from_slice::<Hdr>(&[3]), Err(WireError::BadTag));
    }

    #[test]
    fn a_cast_carries_only_what_grew_since_the_previous_one() {
        let (mut h, mut s) = (Harness::new(3, 0), Causal::new(Config::default()));
        assert_eq!(next_hdr(&mut h, &mut s), Hdr::Data { deps: vec![] });
        h.up(&mut s, T, cast(1, &[], b"a"));
        h.up(&mut s, T, cast(1, &[], b"b"));
        h.up(&mut s, T, cast(2, &[], b"c"));
        assert_eq!(delivered(&mut h).len(), 3);
        assert_eq!(next_hdr(&mut h, &mut s), Hdr::Data { deps: vec![(Rank(1), 2), (Rank(2), 1)] });
        assert_eq!(next_hdr(&mut h, &mut s), Hdr::Data { deps: vec![] }, "nothing new since");
        h.up(&mut s, T, cast(2, &[], b"d"));
        assert_eq!(next_hdr(&mut h, &mut s), Hdr::Data { deps: vec![(Rank(2), 1)] });
    }

    #[test]
    fn a_cast_waits_for_its_causes_and_the_vector_is_rebuilt_from_increases() {
        let (mut h, mut s) = (Harness::new(3, 2), Causal::new(Config::default()));
        // Rank 1 had delivered rank 0's first cast when it cast "b", and nothing new for "c".
        h.up(&mut s, T, cast(1, &[(0, 1)], b"b"));
        h.up(&mut s, T, cast(1, &[], b"c"));
        assert!(delivered(&mut h).is_empty(), "both wait for rank 0's first cast");
        h.up(&mut s, T, cast(0, &[], b"a"));
        assert_eq!(delivered(&mut h), [(0, b"a".to_vec()), (1, b"b".to_vec()), (1, b"c".to_vec())]);
        // Its next cast depends on rank 0's second: the rebuilt vector says 2, not 1.
        h.up(&mut s, T, cast(1, &[(0, 1)], b"e"));
        assert!(delivered(&mut h).is_empty());
        h.up(&mut s, T, cast(0, &[], b"d"));
        assert_eq!(delivered(&mut h), [(0, b"d".to_vec()), (1, b"e".to_vec())]);
    }

    #[test]
    fn at_the_cut_what_can_go_up_does_in_rank_order_and_orphans_are_dropped() {
        let (mut h, mut s) = (Harness::new(3, 2), Causal::new(Config::default()));
        h.up(&mut s, T, cast(1, &[(0, 1)], b"b")); // its cause never comes
        h.up(&mut s, T, cast(0, &[(1, 2)], b"z")); // nor do these
        let safe = Config { safe: true, ..Config::default() };
        let (mut h2, mut s2) = (Harness::new(3, 2), Causal::new(safe));
        h2.up(&mut s2, T, cast(0, &[], b"a"));
        h2.up(&mut s2, T, cast(1, &[(0, 1)], b"b"));
        assert!(delivered(&mut h2).is_empty(), "safe: not stable yet");
        h2.up(&mut s2, T, Up::CutReached(vec![1, 1, 0]));
        let want = [(0, b"a".to_vec()), (1, b"b".to_vec()), (u16::MAX, vec![])];
        assert_eq!(delivered(&mut h2), want, "at the cut every member holds them: no wait for stability");
        h.up(&mut s, T, Up::CutReached(vec![1, 1, 0]));
        assert_eq!(delivered(&mut h), [(u16::MAX, vec![])]);
        assert_eq!(counter(&s, "orphans"), 2);
        h.up(&mut s, T, cast(2, &[], b"late"));
        assert!(delivered(&mut h).is_empty(), "nothing after the cut");
    }

    #[test]
    fn safe_delivery_waits_for_stability() {
        let cfg = Config { safe: true, ..Config::default() };
        let (mut h, mut s) = (Harness::new(3, 1), Causal::new(cfg));
        h.up(&mut s, T, cast(2, &[], b"c"));
        assert!(delivered(&mut h).is_empty());
        h.up(&mut s, T, Up::Stable(vec![0, 0, 1]));
        assert_eq!(delivered(&mut h), [(2, b"c".to_vec())]);
        assert!(s.requires().contains(Props::STABLE));
    }

    #[test]
    fn a_fifo_only_cast_is_not_ordered_and_takes_its_index() {
        let s = Causal::new(Config { safe: true, ..Config::default() });
        crate::order::testkit::fifo_only_contract(s, Hdr::Fifo, Hdr::Data { deps: vec![] }, |_, _| {});
    }

    #[test]
    fn hostile_input_is_dropped_and_counted() {
        let cfg = Config { mem: 200, ..Config::default() };
        let (mut h, mut s) = (Harness::new(3, 1), Causal::new(cfg));
        h.up(&mut s, T, cast(2, &[(7, 1)], b"x")); // no rank 7
        h.up(&mut s, T, cast(2, &[(2, 1)], b"x")); // its own entry
        h.up(&mut s, T, cast(5, &[], b"x")); // no rank 5
        h.up(&mut s, T, Up::Cast { from: Rank(2), msg: Msg::from_wire(Bytes::from_static(&[9])) });
        h.up(&mut s, T, cast(0, &[(1, u64::MAX)], b"x"));
        h.up(&mut s, T, cast(0, &[(1, 1)], b"x")); // overflows what the previous one set
        assert_eq!(counter(&s, "bad"), 5);
        h.up(&mut s, T, cast(2, &[(0, 9)], b"a")); // held: rank 0 has no such cast
        h.up(&mut s, T, cast(2, &[], &[0u8; 300]));
        assert_eq!(counter(&s, "over_budget"), 1);
        assert!(h.take_up().iter().any(|e| matches!(e, Up::Error { layer: "causal", .. })));
        assert_eq!(counter(&s, "held"), 2, "the two that wait for causes that never come");
    }
}
