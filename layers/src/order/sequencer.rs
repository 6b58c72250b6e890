//! `sequencer`: total order by a fixed sequencer, broadcast-broadcast.
//!
//! **Protocol.** A cast goes straight from its sender to every member (`Data`, the nothing:
//! no header bytes); no data takes an extra hop. The sequencer, rank 0 of the view, orders
//! the casts in the order they reach it and, at the end of each turn, multicasts its
//! decisions as `Order { runs }`: "the next `count` casts of `rank`", many decisions per
//! message under load (a turn's arrivals from one sender are one run; at most `MAX_RUNS` runs
//! per message). Each member holds every cast until a decision covers it and delivers in the
//! order of the decisions; the sequencer too, when its own `Order` comes back to it, so it
//! follows exactly the decisions everyone else gets. FIFO order below makes "the next cast
//! of `rank`" mean the same cast at every member, so every member of a view delivers one
//! order that respects each sender's FIFO order.
//!
//! **The view change** (the layer contract, `thoth_stack::layer`). The sequencer stops
//! deciding once the flush has taken its digest (`Dn::GetDigest` going down: it sends what it
//! decided first, so the flush counts every decision made). At `Up::CutReached` the members
//! that move together hold the same casts and the same decisions (both are casts of the
//! view, and the reliable layer delivered exactly the cut); each applies the decisions in
//! order, passing over those whose cast never came (a failed sender's cast that none of them
//! got), then delivers what no decision covered by rank and FIFO order (`Held::leftovers`),
//! then passes `Up::CutReached` up. So the total order holds across the view change (as
//! `order` states it), and the sequencer's crash is just a view change: the next view has a
//! sequencer of its own.
//!
//! **Safe delivery** (`safe=1`): a cast goes up once it and its decision are stable
//! (`Up::Stable`); see `order`.
//!
//! **Parameters** (spec `sequencer(safe=0,mem=8388608,mem_all=67108864)`): `safe`; `mem`
//! bytes held per sender and `mem_all` in all (`Budget`), four times the flow control's
//! default credit per sender, which bounds what an honest sender has in flight here.
//!
//! **Properties:** requires `RELIABLE_CAST | FIFO_CAST` (and `STABLE` with `safe=1`);
//! provides `TOTAL`.
//!
//! **Header:** `Data` (the nothing; also on sends, ignored) | `Unrel` (tag 1: unreliable
//! casts, passed up at once) | `Order { runs }` (tag 2, a varint count of runs, then a
//! varint rank and a varint count per run) | `Fifo` (tag 3: a cast that asks for FIFO order
//! only, passed up at once; see `order`).
//!
//! **Hostile input** is dropped and counted, never a panic: an undecodable header, a rank
//! outside the view (`bad`), an `Order` from a member other than the sequencer or naming a
//! rank outside the view (`bad_order`), a cast past the budget (`over_budget`, reported as
//! `Up::Error`: this member's order may then differ from the others'), decisions beyond
//! `MAX_QUEUED` runs (`over_budget`). A forged `Order` in the sequencer's name is taken as
//! real: frames are not authenticated yet (the security issue), and a decision naming a cast
//! that never comes holds the order until the view change, not the membership.
//!
//! **Tests:** the unit tests below (header bytes, decisions, delivery order, the cut,
//! hostile input); `tests/order.rs` (bolero: the sequencer and a member against a reference
//! model under arbitrary arrival orders, turn ends, stability reports and cuts, through the
//! real encoding); simulated groups with crashes of the sequencer and of any member,
//! partitions and joins in `membership/tests/sim_order.rs`, checked by `chk_total` and the
//! harness's own total-order check (h). Each of the three catches the planted bug
//! `Config::test_leftovers_by_arrival`; the model also a safe delivery that ignores
//! stability.

use super::{Held, MEM, MEM_ALL, get_pairs, pairs_len, pass_fifo, put_pairs, spec_args};
use std::collections::VecDeque;
use thoth_stack::{Args, Cx, Dn, Dump, Layer, Msg, Props, Rank, Reader, Registry, Up, Wire, WireError, Writer};

/// Most runs in one `Order` message (about 1 KiB at most of decisions per message).
pub const MAX_RUNS: usize = 256;
/// Most runs of decisions a member holds before their casts arrive.
pub const MAX_QUEUED: usize = 1 << 20;

/// The `sequencer` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hdr {
    /// A cast to be ordered (and, ignored, on sends).
    Data,
    /// An unreliable cast: not ordered.
    Unrel,
    /// The sequencer's decisions: the next `count` casts of `rank`, run after run.
    Order {
        /// (rank, count) per run, in decision order; at most `MAX_RUNS`.
        runs: Vec<(Rank, u64)>,
    },
    /// A cast that asks for FIFO order only: not ordered, not counted in the decisions.
    Fifo,
}

impl Wire for Hdr {
    thoth_stack::nothing!(Hdr::Data);
    fn encoded_len(&self) -> usize {
        1 + match self {
            Hdr::Data | Hdr::Unrel | Hdr::Fifo => 0,
            Hdr::Order { runs } => pairs_len(runs),
        }
    }
    fn encode(&self, w: &mut Writer<'_>) {
        match self {
            Hdr::Data => w.put_u8(0),
            Hdr::Unrel => w.put_u8(1),
            Hdr::Order { runs } => {
                w.put_u8(2);
                put_pairs(w, runs);
            }
            Hdr::Fifo => w.put_u8(3),
        }
    }
    fn decode(r: &mut Reader<'_>) -> Result<Hdr, WireError> {
        match r.u8()? {
            0 => Ok(Hdr::Data),
            1 => Ok(Hdr::Unrel),
            2 => Ok(Hdr::Order { runs: get_pairs(r, MAX_RUNS)? }),
            3 => Ok(Hdr::Fifo),
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
    /// Planted bug (tests only): at the cut, deliver what is held in the order it arrived
    /// here instead of the order every survivor computes alike.
    #[doc(hidden)]
    pub test_leftovers_by_arrival: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config { safe: false, mem: MEM, mem_all: MEM_ALL, test_leftovers_by_arrival: false }
    }
}

/// Registers `sequencer` and its parameters (`safe`, `mem`, `mem_all`).
pub fn register(r: &mut Registry) {
    r.register("sequencer", "total order: a fixed sequencer orders casts sent straight to all", |a: &mut Args| {
        let (safe, mem, mem_all) = spec_args(a)?;
        Ok(Box::new(Sequencer::new(Config { safe, mem, mem_all, ..Config::default() })))
    });
}

/// A run of decisions: the next `left` casts of `rank`, decided in the sequencer's cast `at`.
#[derive(Clone, Copy, Debug)]
struct Run {
    rank: usize,
    left: u64,
    at: u64,
}

#[derive(Default)]
struct Counters {
    data: u64,
    decided: u64,
    orders_sent: u64,
    orders_rcvd: u64,
    delivered: u64,
    leftovers: u64,
    skipped: u64,
    bad: u64,
    bad_order: u64,
    over_budget: u64,
    late: u64,
    fifo: u64,
}

/// The fixed-sequencer total order layer; see the module documentation. Rank 0 of the
/// view decides.
pub struct Sequencer {
    cfg: Config,
    held: Held,
    /// Decisions received, not yet applied.
    orders: VecDeque<Run>,
    /// The sequencer's decisions of this turn, not sent yet.
    pending: Vec<(Rank, u64)>,
    /// The sequencer still decides (until the flush takes its digest).
    deciding: bool,
    /// The cut was reached: nothing more of this view goes up but at a later cut.
    done: bool,
    /// Arrival order of held casts (only for the planted bug).
    arrivals: Vec<Rank>,
    c: Counters,
}

const SEQUENCER: usize = 0;

impl Sequencer {
    /// A sequencer layer; what it holds is sized from the view at `init`.
    pub fn new(cfg: Config) -> Sequencer {
        Sequencer {
            cfg,
            held: Held::new(0, 0, 0),
            orders: VecDeque::new(),
            pending: Vec::new(),
            deciding: true,
            done: false,
            arrivals: Vec::new(),
            c: Counters::default(),
        }
    }

    fn data(&mut self, r: usize, msg: Msg, cx: &mut Cx<'_>) {
        let idx = self.held.count(r);
        self.c.data += 1;
        if self.done {
            self.c.late += 1;
            return;
        }
        if !self.held.hold(r, idx, msg, (), 0) {
            self.c.over_budget += 1;
            let detail = format!("a cast of rank {r} past the budget was dropped: the order may differ here");
            return cx.up(Up::Error { layer: "sequencer", detail });
        }
        if self.cfg.test_leftovers_by_arrival {
            self.arrivals.push(Rank(r as u16));
        }
        if cx.rank.index() == SEQUENCER && self.deciding {
            self.c.decided += 1;
            match self.pending.last_mut() {
                Some((last, n)) if last.index() == r => *n += 1,
                _ => self.pending.push((Rank(r as u16), 1)),
            }
        }
        self.deliver(cx);
    }

    fn order(&mut self, from: usize, runs: Vec<(Rank, u64)>, cx: &mut Cx<'_>) {
        let at = self.held.count(from);
        if from != SEQUENCER || runs.iter().any(|(r, _)| r.index() >= cx.view.len()) {
            self.c.bad_order += 1;
            return;
        }
        self.c.orders_rcvd += 1;
        if self.done {
            self.c.late += 1;
            return;
        }
        for (r, left) in runs.into_iter().filter(|&(_, n)| n > 0) {
            if self.orders.len() >= MAX_QUEUED {
                self.c.over_budget += 1;
                break;
            }
            self.orders.push_back(Run { rank: r.index(), left, at });
        }
        self.deliver(cx);
    }

    /// Applies the decisions in order while their casts are here (and stable, with `safe`).
    fn deliver(&mut self, cx: &mut Cx<'_>) {
        while let Some(run) = self.orders.front_mut() {
            let r = run.rank;
            let Some((idx, _)) = self.held.front(r) else { break };
            if self.cfg.safe && !(self.held.is_stable(r, idx) && self.held.is_stable(SEQUENCER, run.at)) {
                break;
            }
            run.left -= 1;
            if run.left == 0 {
                self.orders.pop_front();
            }
            let msg = self.held.pop(r).expect("a cast is held");
            self.c.delivered += 1;
            cx.up(Up::Cast { from: Rank(r as u16), msg });
        }
    }

    /// Sends this turn's decisions.
    fn send_orders(&mut self, cx: &mut Cx<'_>) {
        for chunk in self.pending.chunks(MAX_RUNS) {
            let mut m = Msg::new(Default::default());
            m.push(&Hdr::Order { runs: chunk.to_vec() });
            self.c.orders_sent += 1;
            cx.dn(Dn::Cast(m));
        }
        self.pending.clear();
    }

    /// The cut: the decisions this member holds, passing over casts that never came, then
    /// everything else by rank and FIFO order.
    fn at_cut(&mut self, cx: &mut Cx<'_>) {
        self.done = true;
        let mut out: Vec<(Rank, Msg)> = Vec::new();
        if self.cfg.test_leftovers_by_arrival {
            // The planted bug: what is held goes up in this member's arrival order.
            self.orders.clear();
            for r in core::mem::take(&mut self.arrivals) {
                if let Some(m) = self.held.pop(r.index()) {
                    out.push((r, m));
                }
            }
        }
        while let Some(run) = self.orders.pop_front() {
            for _ in 0..run.left {
                match self.held.pop(run.rank) {
                    Some(m) => {
                        self.c.delivered += 1;
                        out.push((Rank(run.rank as u16), m));
                    }
                    None => {
                        self.c.skipped += 1;
                        break;
                    }
                }
            }
        }
        let rest = self.held.leftovers();
        self.c.leftovers += rest.len() as u64;
        self.c.delivered += rest.len() as u64;
        out.extend(rest);
        for (from, msg) in out {
            cx.up(Up::Cast { from, msg });
        }
    }
}

impl Layer for Sequencer {
    fn name(&self) -> &'static str {
        "sequencer"
    }
    fn requires(&self) -> Props {
        let base = Props::RELIABLE_CAST | Props::FIFO_CAST;
        if self.cfg.safe { base | Props::STABLE } else { base }
    }
    fn provides(&self) -> Props {
        Props::TOTAL
    }

    fn init(&mut self, cx: &mut Cx<'_>) {
        self.held = Held::new(cx.view.len(), self.cfg.mem, self.cfg.mem_all);
    }

    fn max_header(&self, _: &thoth_stack::View) -> usize {
        Hdr::Fifo.encoded_len()
    }
    fn handle_dn(&mut self, mut ev: Dn, cx: &mut Cx<'_>) {
        match &mut ev {
            Dn::CastUnrel(m) => m.push(&Hdr::Unrel),
            Dn::Cast(m) if m.is_fifo() => m.push(&Hdr::Fifo),
            Dn::GetDigest => {
                // Every decision made goes before the digest, and none after it.
                self.send_orders(cx);
                self.deciding = false;
            }
            _ => {} // casts: `Data`, the nothing; sends: no header
        }
        cx.dn(ev)
    }

    fn handle_up(&mut self, ev: Up, cx: &mut Cx<'_>) {
        match ev {
            Up::Cast { from, mut msg } => {
                let r = from.index();
                match msg.pop::<Hdr>() {
                    _ if r >= cx.view.len() => self.c.bad += 1,
                    Ok(Hdr::Unrel) => cx.up(Up::Cast { from, msg }),
                    Ok(Hdr::Fifo) => {
                        let up = pass_fifo(&mut self.held, self.done, from, msg, cx);
                        *(if up { &mut self.c.fifo } else { &mut self.c.late }) += 1;
                    }
                    Ok(Hdr::Data) => self.data(r, msg, cx),
                    Ok(Hdr::Order { runs }) => self.order(r, runs, cx),
                    Err(_) => {
                        // Taken for a reliable cast: it took its index below.
                        self.held.count(r);
                        self.c.bad += 1;
                    }
                }
            }
            Up::Send { from, mut msg } => match msg.pop::<Hdr>() {
                Ok(Hdr::Data) => cx.up(Up::Send { from, msg }),
                _ => self.c.bad += 1,
            },
            Up::Stable(v) => {
                if self.held.stable(&v) && !self.done {
                    self.deliver(cx);
                }
                cx.up(Up::Stable(v));
            }
            Up::CutReached(cut) => {
                self.at_cut(cx);
                cx.up(Up::CutReached(cut));
            }
            other => cx.up(other),
        }
    }

    fn end_turn(&mut self, cx: &mut Cx<'_>) {
        if !self.pending.is_empty() {
            self.send_orders(cx);
        }
    }

    fn dump(&self, out: &mut Vec<Dump>) {
        let c = &self.c;
        out.push(Dump {
            layer: "sequencer",
            counters: vec![
                ("data", c.data),
                ("decided", c.decided),
                ("orders_sent", c.orders_sent),
                ("orders_rcvd", c.orders_rcvd),
                ("delivered", c.delivered),
                ("leftovers", c.leftovers),
                ("skipped", c.skipped),
                ("bad", c.bad),
                ("bad_order", c.bad_order),
                ("over_budget", c.over_budget),
                ("late", c.late),
                ("fifo", c.fifo),
            ],
            gauges: vec![("held", self.held.len() as u64)],
            state: format!(
                "got {:?} queued_runs {} deciding {} done {}",
                self.held.got(),
                self.orders.len(),
                self.deciding,
                self.done
            ),
            ..Dump::default()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::testkit::{counter, delivered, wired};
    use thoth_stack::testing::{Harness, over_wire};
    use thoth_stack::wire::{from_slice, to_vec};
    use thoth_stack::{Bytes, Time};

    const T: Time = Time::ZERO;

    /// What member `rank` of a view of three puts on the wire for `ev` going down.
    fn wire(rank: u16, ev: Dn) -> Vec<Msg> {
        let (mut h, mut s) = (Harness::new(3, rank), Sequencer::new(Config::default()));
        h.dn(&mut s, T, ev);
        h.end_turn(&mut s, T);
        h.take_dn().into_iter().filter_map(|e| if let Dn::Cast(m) = e { Some(over_wire(&m)) } else { None }).collect()
    }

    fn data(body: &'static [u8]) -> Msg {
        wire(1, Dn::Cast(Msg::new(Bytes::from_static(body)))).remove(0)
    }

    fn order(runs: &[(u16, u64)]) -> Msg {
        wired(Hdr::Order { runs: runs.iter().map(|&(r, n)| (Rank(r), n)).collect() }, b"")
    }

    fn cast(from: u16, msg: Msg) -> Up {
        Up::Cast { from: Rank(from), msg }
    }

    #[test]
    fn header_bytes() {
        assert!(data(b"x").head().is_empty(), "a cast takes no header bytes");
        assert_eq!(to_vec(&Hdr::Unrel), [1]);
        let o = Hdr::Order { runs: vec![(Rank(0), 3), (Rank(1), 300)] };
        assert_eq!(to_vec(&o), [2, 2, 0, 3, 1, 0xac, 0x02]);
        assert_eq!(from_slice::<Hdr>(&to_vec(&o)), Ok(o));
        assert_eq!(from_slice::<Hdr>(&[2, 100]), Err(WireError::BadValue), "more runs than bytes");
        assert_eq!(from_slice::<Hdr>(&[2, 1, 0x80, 0x80, 0x04, 1]), Err(WireError::BadValue), "rank past u16");
        assert_eq!(to_vec(&Hdr::Fifo), [3]);
        assert_eq!(from_slice::<Hdr>(&[4]), Err(WireError::BadTag));
    }

    #[test]
    fn the_sequencer_decides_in_arrival_order_and_delivers_on_its_own_decision() {
        let (mut h, mut s) = (Harness::new(3, 0), Sequencer::new(Config::default()));
        h.up(&mut s, T, cast(1, data(b"a")));
        h.up(&mut s, T, cast(1, data(b"b")));
        h.up(&mut s, T, cast(2, data(b"c")));
        assert!(delivered(&mut h).is_empty(), "nothing before the decision comes back");
        h.end_turn(&mut s, T);
        let out = h.take_dn();
        assert_eq!(out.len(), 1, "one decision message for the turn");
        let Dn::Cast(m) = &out[0] else { panic!("{out:?}") };
        let mut back = over_wire(m);
        back.unseal();
        assert_eq!(back.pop::<Hdr>(), Ok(Hdr::Order { runs: vec![(Rank(1), 2), (Rank(2), 1)] }));
        let Dn::Cast(m) = out.into_iter().next().unwrap() else { unreachable!() };
        h.up(&mut s, T, cast(0, over_wire(&m)));
        assert_eq!(delivered(&mut h), [(1, b"a".to_vec()), (1, b"b".to_vec()), (2, b"c".to_vec())]);
        assert_eq!(counter(&s, "held"), 0);
    }

    #[test]
    fn a_member_delivers_in_the_decided_order_whatever_the_arrival_order() {
        let (mut h, mut s) = (Harness::new(3, 1), Sequencer::new(Config::default()));
        h.up(&mut s, T, cast(2, data(b"c")));
        h.up(&mut s, T, cast(0, order(&[(1, 1), (2, 1)])));
        assert!(delivered(&mut h).is_empty(), "rank 1's cast first, and it is not here");
        h.up(&mut s, T, cast(1, data(b"a")));
        assert_eq!(delivered(&mut h), [(1, b"a".to_vec()), (2, b"c".to_vec())]);
        h.end_turn(&mut s, T);
        assert!(h.take_dn().is_empty(), "only the sequencer decides");
    }

    #[test]
    fn at_the_cut_decisions_first_then_the_rest_by_rank_and_missing_casts_are_passed_over() {
        let (mut h, mut s) = (Harness::new(3, 1), Sequencer::new(Config::default()));
        h.up(&mut s, T, cast(2, data(b"c1")));
        h.up(&mut s, T, cast(0, data(b"z")));
        h.up(&mut s, T, cast(2, data(b"c2")));
        // Decided: one of rank 1 (never comes), then rank 2's first.
        h.up(&mut s, T, cast(0, order(&[(1, 1), (2, 1)])));
        assert!(delivered(&mut h).is_empty());
        h.up(&mut s, T, Up::CutReached(vec![2, 0, 2]));
        let want = [(2, b"c1".to_vec()), (0, b"z".to_vec()), (2, b"c2".to_vec()), (u16::MAX, vec![])];
        assert_eq!(delivered(&mut h), want);
        assert_eq!((counter(&s, "skipped"), counter(&s, "leftovers")), (1, 2));
    }

    #[test]
    fn the_flush_digest_takes_every_decision_and_none_is_made_after_it() {
        let (mut h, mut s) = (Harness::new(3, 0), Sequencer::new(Config::default()));
        h.up(&mut s, T, cast(1, data(b"a")));
        h.dn(&mut s, T, Dn::GetDigest);
        let out = h.take_dn();
        assert!(matches!(&out[..], [Dn::Cast(_), Dn::GetDigest]), "the decision goes first: {out:?}");
        h.up(&mut s, T, cast(1, data(b"b")));
        h.end_turn(&mut s, T);
        assert!(h.take_dn().is_empty(), "no decision after the digest");
    }

    #[test]
    fn safe_delivery_waits_for_the_cast_and_its_decision_to_be_stable() {
        let cfg = Config { safe: true, ..Config::default() };
        let (mut h, mut s) = (Harness::new(3, 1), Sequencer::new(cfg));
        h.up(&mut s, T, cast(2, data(b"c")));
        h.up(&mut s, T, cast(0, order(&[(2, 1)])));
        assert!(delivered(&mut h).is_empty());
        h.up(&mut s, T, Up::Stable(vec![0, 0, 1]));
        assert!(delivered(&mut h).is_empty(), "the decision (rank 0's cast 0) is not stable yet");
        h.up(&mut s, T, Up::Stable(vec![1, 0, 1]));
        assert_eq!(delivered(&mut h), [(2, b"c".to_vec())]);
        assert!(s.requires().contains(Props::STABLE));
    }

    #[test]
    fn a_fifo_only_cast_is_not_ordered_and_takes_its_index() {
        let s = Sequencer::new(Config { safe: true, ..Config::default() });
        crate::order::testkit::fifo_only_contract(s, Hdr::Fifo, Hdr::Data, |h, s| {
            h.up(s, T, cast(0, order(&[(2, 1)])));
        });
    }

    #[test]
    fn hostile_input_is_dropped_and_counted() {
        let cfg = Config { mem: 200, ..Config::default() };
        let (mut h, mut s) = (Harness::new(3, 1), Sequencer::new(cfg));
        h.up(&mut s, T, cast(2, order(&[(2, 1)]))); // not the sequencer
        h.up(&mut s, T, cast(0, order(&[(9, 1)]))); // no rank 9
        h.up(&mut s, T, cast(0, order(&[(2, 0)]))); // an empty run: nothing
        assert_eq!(counter(&s, "bad_order"), 2);
        h.up(&mut s, T, cast(2, Msg::from_wire(Bytes::from_static(&[7]))));
        h.up(&mut s, T, cast(5, data(b"x")));
        assert_eq!(counter(&s, "bad"), 2);
        h.up(&mut s, T, cast(2, data(b"a")));
        h.up(&mut s, T, cast(2, wired(Hdr::Data, &[0u8; 300])));
        assert_eq!(counter(&s, "over_budget"), 1);
        assert!(h.take_up().iter().any(|e| matches!(e, Up::Error { layer: "sequencer", .. })));
        assert_eq!(counter(&s, "held"), 1);
    }
}
