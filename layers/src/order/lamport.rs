//! `lamport`: total order by Lamport timestamps, symmetric and leaderless.
//!
//! **Protocol.** Each member keeps a logical clock: a cast takes the next tick
//! (`clock + 1`), and whatever a member receives moves its clock up to the timestamp it
//! carries. Every member delivers the casts in (timestamp, rank) order: the cast with the
//! smallest key it holds goes up once every other member's clock is known to have reached
//! its timestamp (that member's next cast can only come after it: a sender's timestamps
//! grow, in its FIFO order below). No member is special, and no cast waits for anyone's
//! turn. A member that learned of a later time than it last announced, and cast nothing
//! since, announces its clock with a `Null` at the end of the turn, so that nothing stalls
//! on an idle member: one null per member per burst of traffic, and none when every member
//! casts. Nulls are reliable casts (numbered, FIFO with the data), so a lost one is
//! retransmitted and no clock is believed before the casts it follows.
//!
//! On the wire a timestamp travels as its increase over the sender's previous cast or null
//! (the nothing when it is 1, as in a burst of one sender's casts).
//!
//! **The view change** (the layer contract, `thoth_stack::layer`). A member's casts go out
//! at once, so nothing is held back at the flush. At `Up::CutReached` the members that move
//! together hold the same casts and deliver what is left in (timestamp, rank) order: the
//! total order holds across the view change (as `order` states it), and no member's crash
//! is more than a view change.
//!
//! **Safe delivery** (`safe=1`): a cast goes up only once stable (`Up::Stable`).
//!
//! **Parameters** (spec `lamport(safe=0,mem=8388608,mem_all=67108864)`): as `sequencer`'s.
//!
//! **Properties:** requires `RELIABLE_CAST | FIFO_CAST` (and `STABLE` with `safe=1`);
//! provides `TOTAL`.
//!
//! **Header:** `Data { dt }` (the increase of the timestamp, at least 1; the nothing when 1,
//! else tag 0 and a varint) | `Null { dt }` (tag 1, a varint, may be 0) | `Unrel` (tag 2:
//! unreliable casts, passed up at once; also on sends: the nothing is read there) | `Fifo`
//! (tag 3: a cast that asks for FIFO order only, passed up at once, no timestamp; see
//! `order`).
//!
//! **Hostile input** is dropped and counted, never a panic: an undecodable header, a rank
//! outside the view, a data increase of 0, a timestamp that overflows or leaps more than
//! `MAX_LEAP` past this member's clock (`bad`: a forged leap would stall every member's
//! clock-driven delivery far into the future); a cast past the budget (`over_budget`,
//! reported as `Up::Error`). Frames are not authenticated yet (the security issue): a forged
//! cast in a member's name with a small increase is taken as real.
//!
//! **Tests:** the unit tests below (header bytes, clocks, delivery order, nulls, the cut,
//! hostile input); `tests/order.rs` (bolero: three members against the model of one order
//! under arbitrary casts, turns and arrival orders, through the real encoding); simulated
//! groups with crashes, partitions and joins in `membership/tests/sim_order.rs`, checked
//! by `chk_total` and the harness's total-order check, both proven by a planted bug
//! (`Config::test_deliver_early`).

use super::{Held, MEM, MEM_ALL, pass_fifo, spec_args};
use thoth_stack::wire::var_len;
use thoth_stack::{Args, Cx, Dn, Dump, Layer, Msg, Props, Rank, Reader, Registry, Up, Wire, WireError, Writer};

/// The most a timestamp may leap past this member's clock (an honest group's clocks stay
/// within the casts in flight of each other, which flow control bounds far below it).
pub const MAX_LEAP: u64 = 1 << 24;

/// The `lamport` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hdr {
    /// A cast: its timestamp's increase over its sender's previous one.
    Data {
        /// The increase, at least 1 (0 is `bad`).
        dt: u64,
    },
    /// The sender's clock, announced: its increase over the sender's previous timestamp.
    Null {
        /// The increase, possibly 0.
        dt: u64,
    },
    /// An unreliable cast: not ordered.
    Unrel,
    /// A cast that asks for FIFO order only: no timestamp, not ordered.
    Fifo,
}

impl Wire for Hdr {
    fn nothing() -> Option<Hdr> {
        Some(Hdr::Data { dt: 1 })
    }
    fn is_nothing(&self) -> bool {
        *self == Hdr::Data { dt: 1 }
    }
    fn encoded_len(&self) -> usize {
        1 + match self {
            Hdr::Data { dt } | Hdr::Null { dt } => var_len(*dt),
            Hdr::Unrel | Hdr::Fifo => 0,
        }
    }
    fn encode(&self, w: &mut Writer<'_>) {
        match *self {
            Hdr::Data { dt } => {
                w.put_u8(0);
                w.put_var(dt);
            }
            Hdr::Null { dt } => {
                w.put_u8(1);
                w.put_var(dt);
            }
            Hdr::Unrel => w.put_u8(2),
            Hdr::Fifo => w.put_u8(3),
        }
    }
    fn decode(r: &mut Reader<'_>) -> Result<Hdr, WireError> {
        match r.u8()? {
            0 => Ok(Hdr::Data { dt: r.var()? }),
            1 => Ok(Hdr::Null { dt: r.var()? }),
            2 => Ok(Hdr::Unrel),
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
    /// Planted bug (tests only): deliver the smallest key held without waiting for the other
    /// members' clocks.
    #[doc(hidden)]
    pub test_deliver_early: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config { safe: false, mem: MEM, mem_all: MEM_ALL, test_deliver_early: false }
    }
}

/// Registers `lamport` and its parameters (`safe`, `mem`, `mem_all`).
pub fn register(r: &mut Registry) {
    r.register("lamport", "total order: Lamport timestamps, leaderless, null messages when idle", |a: &mut Args| {
        let (safe, mem, mem_all) = spec_args(a)?;
        Ok(Box::new(Lamport::new(Config { safe, mem, mem_all, ..Config::default() })))
    });
}

#[derive(Default)]
struct Counters {
    sent: u64,
    nulls_sent: u64,
    nulls_rcvd: u64,
    delivered: u64,
    at_cut: u64,
    bad: u64,
    over_budget: u64,
    late: u64,
    fifo: u64,
}

/// The Lamport-timestamp total order layer; see the module documentation.
pub struct Lamport {
    cfg: Config,
    held: Held<u64>,
    clock: u64,
    /// The last timestamp this member announced (a cast or a null).
    announced: u64,
    /// Per rank, the timestamp of its last cast or null received: its clock, as far as this
    /// member knows.
    latest: Vec<u64>,
    /// The cut was reached.
    done: bool,
    c: Counters,
}

impl Lamport {
    /// A lamport layer with its clock at 0; its per-rank state is sized from the view at
    /// `init`.
    pub fn new(cfg: Config) -> Lamport {
        Lamport {
            cfg,
            held: Held::new(0, 0, 0),
            clock: 0,
            announced: 0,
            latest: Vec::new(),
            done: false,
            c: Counters::default(),
        }
    }

    /// A cast or null of `r` with timestamp increase `dt`; its timestamp, or `None` if bad.
    fn stamp_of(&mut self, r: usize, dt: u64) -> Option<u64> {
        let ts = self.latest[r].checked_add(dt).filter(|&ts| ts <= self.clock.saturating_add(MAX_LEAP));
        if ts.is_none() {
            self.c.bad += 1;
        }
        ts
    }

    fn arrive(&mut self, r: usize, hdr: Hdr, msg: Msg, cx: &mut Cx<'_>) {
        // A reliable cast below, whatever it says: it takes its index (stability counts it).
        let idx = self.held.count(r);
        let (dt, data) = match hdr {
            Hdr::Data { dt } if dt > 0 => (dt, true),
            Hdr::Null { dt } => (dt, false),
            _ => {
                self.c.bad += 1;
                return;
            }
        };
        let Some(ts) = self.stamp_of(r, dt) else { return };
        self.latest[r] = ts;
        self.clock = self.clock.max(ts);
        if !data {
            self.c.nulls_rcvd += 1;
        } else if self.done {
            self.c.late += 1;
            return;
        } else if !self.held.hold(r, idx, msg, ts, 8) {
            self.c.over_budget += 1;
            let detail = format!("a cast of rank {r} past the budget was dropped: the order may differ here");
            return cx.up(Up::Error { layer: "lamport", detail });
        }
        if !self.done {
            self.deliver(false, cx);
        }
    }

    /// The held cast with the smallest (timestamp, rank), if any.
    fn first(&self) -> Option<(u64, usize, u64)> {
        (0..self.latest.len())
            .filter_map(|r| self.held.front(r).map(|(idx, &ts)| (ts, r, idx)))
            .min_by_key(|&(ts, r, _)| (ts, r))
    }

    /// Delivers in (timestamp, rank) order while every other member's clock has reached the
    /// first key (and it is stable, with `safe`); at the cut, everything.
    fn deliver(&mut self, ending: bool, cx: &mut Cx<'_>) {
        while let Some((ts, r, idx)) = self.first() {
            if !ending {
                let reached = self.latest.iter().enumerate().all(|(q, &l)| q == r || l >= ts);
                if !(reached || self.cfg.test_deliver_early) || self.cfg.safe && !self.held.is_stable(r, idx) {
                    break;
                }
            }
            let msg = self.held.pop(r).expect("a cast is held");
            self.c.delivered += 1;
            self.c.at_cut += u64::from(ending);
            cx.up(Up::Cast { from: Rank(r as u16), msg });
        }
    }
}

impl Layer for Lamport {
    fn name(&self) -> &'static str {
        "lamport"
    }
    fn requires(&self) -> Props {
        let base = Props::RELIABLE_CAST | Props::FIFO_CAST;
        if self.cfg.safe { base | Props::STABLE } else { base }
    }
    fn provides(&self) -> Props {
        Props::TOTAL
    }

    fn init(&mut self, cx: &mut Cx<'_>) {
        let n = cx.view.len();
        self.held = Held::new(n, self.cfg.mem, self.cfg.mem_all);
        self.latest = vec![0; n];
    }

    fn max_header(&self, _: &thoth_stack::View) -> usize {
        Hdr::Data { dt: u64::MAX }.encoded_len()
    }
    fn handle_dn(&mut self, mut ev: Dn, cx: &mut Cx<'_>) {
        match &mut ev {
            Dn::Cast(m) if m.is_fifo() => m.push(&Hdr::Fifo),
            Dn::Cast(m) => {
                self.clock += 1;
                m.push(&Hdr::Data { dt: self.clock - self.announced });
                self.announced = self.clock;
                self.c.sent += 1;
            }
            Dn::CastUnrel(m) => m.push(&Hdr::Unrel),
            _ => {} // sends: the nothing
        }
        cx.dn(ev)
    }

    fn handle_up(&mut self, ev: Up, cx: &mut Cx<'_>) {
        match ev {
            Up::Cast { from, mut msg } => {
                let r = from.index();
                if r >= cx.view.len() {
                    self.c.bad += 1;
                    return;
                }
                match msg.pop::<Hdr>() {
                    Ok(Hdr::Unrel) => cx.up(Up::Cast { from, msg }),
                    Ok(Hdr::Fifo) => {
                        let up = pass_fifo(&mut self.held, self.done, from, msg, cx);
                        *(if up { &mut self.c.fifo } else { &mut self.c.late }) += 1;
                    }
                    Ok(hdr) => self.arrive(r, hdr, msg, cx),
                    Err(_) => {
                        // Taken for a reliable cast: it took its index below.
                        self.held.count(r);
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
                cx.up(Up::CutReached(cut));
            }
            other => cx.up(other),
        }
    }

    fn end_turn(&mut self, cx: &mut Cx<'_>) {
        // Others wait for this member's clock to pass what it has seen: say so.
        if self.clock > self.announced && !self.done && cx.view.len() > 1 {
            let mut m = Msg::new(Default::default());
            m.push(&Hdr::Null { dt: self.clock - self.announced });
            self.announced = self.clock;
            self.c.nulls_sent += 1;
            cx.dn(Dn::Cast(m));
        }
    }

    fn dump(&self, out: &mut Vec<Dump>) {
        let c = &self.c;
        out.push(Dump {
            layer: "lamport",
            counters: vec![
                ("sent", c.sent),
                ("nulls_sent", c.nulls_sent),
                ("nulls_rcvd", c.nulls_rcvd),
                ("delivered", c.delivered),
                ("at_cut", c.at_cut),
                ("bad", c.bad),
                ("over_budget", c.over_budget),
                ("late", c.late),
                ("fifo", c.fifo),
            ],
            gauges: vec![("held", self.held.len() as u64)],
            state: format!("clock {} latest {:?} done {}", self.clock, self.latest, self.done),
            ..Dump::default()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::testkit::{cast, counter, delivered};
    use thoth_stack::testing::{Harness, over_wire};
    use thoth_stack::wire::{from_slice, to_vec};
    use thoth_stack::{Bytes, Time};

    const T: Time = Time::ZERO;

    /// The headers of the casts that went down.
    fn sent(h: &mut Harness) -> Vec<Hdr> {
        h.take_dn()
            .into_iter()
            .filter_map(|e| match e {
                Dn::Cast(m) => {
                    let mut m = over_wire(&m);
                    m.unseal();
                    Some(m.pop::<Hdr>().expect("decodes"))
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn header_bytes() {
        assert!(Hdr::Data { dt: 1 }.is_nothing(), "the next tick: no header bytes");
        assert_eq!(to_vec(&Hdr::Data { dt: 300 }), [0, 0xac, 0x02]);
        assert_eq!(to_vec(&Hdr::Null { dt: 0 }), [1, 0]);
        assert_eq!(from_slice::<Hdr>(&[1, 7]), Ok(Hdr::Null { dt: 7 }));
        assert_eq!(to_vec(&Hdr::Fifo), [3]);
        assert_eq!(from_slice::<Hdr>(&[4]), Err(WireError::BadTag));
    }

    #[test]
    fn a_cast_waits_for_every_clock_and_an_idle_member_announces_its_own() {
        let (mut h, mut l) = (Harness::new(3, 2), Lamport::new(Config::default()));
        h.dn(&mut l, T, Dn::Cast(Msg::new(Bytes::from_static(b"own"))));
        assert_eq!(sent(&mut h), [Hdr::Data { dt: 1 }]);
        h.up(&mut l, T, cast(0, Hdr::Data { dt: 3 }, b"a")); // ts 3
        h.up(&mut l, T, cast(1, Hdr::Null { dt: 2 }, b"")); // rank 1's clock: 2
        assert!(delivered(&mut h).is_empty(), "rank 1 and this member are behind 3");
        h.end_turn(&mut l, T);
        assert_eq!(sent(&mut h), [Hdr::Null { dt: 2 }], "its clock moved to 3: it says so");
        h.up(&mut l, T, cast(2, Hdr::Data { dt: 1 }, b"own")); // its cast comes back: ts 1
        h.up(&mut l, T, cast(2, Hdr::Null { dt: 2 }, b"")); // and its null: 3
        assert_eq!(delivered(&mut h), [(2, b"own".to_vec())], "ts 1 first; ts 3 waits for rank 1");
        h.up(&mut l, T, cast(1, Hdr::Data { dt: 1 }, b"b")); // ts 3, rank 1
        assert_eq!(delivered(&mut h), [(0, b"a".to_vec()), (1, b"b".to_vec())], "(3, 0) before (3, 1)");
        h.up(&mut l, T, cast(1, Hdr::Data { dt: 2 }, b"c")); // ts 5: rank 0 is at 3
        assert!(delivered(&mut h).is_empty());
        h.up(&mut l, T, cast(0, Hdr::Null { dt: 2 }, b""));
        h.end_turn(&mut l, T);
        assert_eq!(sent(&mut h), [Hdr::Null { dt: 2 }]);
        h.up(&mut l, T, cast(2, Hdr::Null { dt: 2 }, b""));
        assert_eq!(delivered(&mut h), [(1, b"c".to_vec())]);
        assert_eq!(counter(&l, "nulls_rcvd"), 4);
        h.end_turn(&mut l, T);
        assert!(sent(&mut h).is_empty(), "nothing new to announce");
    }

    #[test]
    fn at_the_cut_everything_held_goes_up_in_timestamp_and_rank_order() {
        let (mut h, mut l) = (Harness::new(3, 2), Lamport::new(Config::default()));
        h.up(&mut l, T, cast(1, Hdr::Data { dt: 2 }, b"b"));
        h.up(&mut l, T, cast(0, Hdr::Data { dt: 2 }, b"a"));
        h.up(&mut l, T, cast(0, Hdr::Data { dt: 1 }, b"c"));
        h.up(&mut l, T, Up::CutReached(vec![2, 1, 0]));
        let want = [(0, b"a".to_vec()), (1, b"b".to_vec()), (0, b"c".to_vec()), (u16::MAX, vec![])];
        assert_eq!(delivered(&mut h), want);
    }

    #[test]
    fn safe_delivery_waits_for_stability() {
        let cfg = Config { safe: true, ..Config::default() };
        let (mut h, mut l) = (Harness::new(1, 0), Lamport::new(cfg));
        h.up(&mut l, T, cast(0, Hdr::Data { dt: 1 }, b"a"));
        assert!(delivered(&mut h).is_empty());
        h.up(&mut l, T, Up::Stable(vec![1]));
        assert_eq!(delivered(&mut h), [(0, b"a".to_vec())]);
    }

    #[test]
    fn a_fifo_only_cast_is_not_ordered_and_takes_its_index() {
        let l = Lamport::new(Config { safe: true, ..Config::default() });
        crate::order::testkit::fifo_only_contract(l, Hdr::Fifo, Hdr::Data { dt: 1 }, |h, l| {
            // Ranks 0 and 1 (this member's own, as its casts come back) reach 1.
            h.up(l, T, cast(0, Hdr::Null { dt: 1 }, b""));
            h.up(l, T, cast(1, Hdr::Null { dt: 1 }, b""));
        });
    }

    #[test]
    fn hostile_input_is_dropped_and_counted() {
        let cfg = Config { mem: 200, ..Config::default() };
        let (mut h, mut l) = (Harness::new(3, 2), Lamport::new(cfg));
        h.up(&mut l, T, cast(5, Hdr::Data { dt: 1 }, b"x")); // no rank 5
        h.up(&mut l, T, cast(0, Hdr::Data { dt: 0 }, b"x")); // no tick
        h.up(&mut l, T, cast(0, Hdr::Data { dt: MAX_LEAP + 1 }, b"x")); // a leap
        h.up(&mut l, T, Up::Cast { from: Rank(1), msg: Msg::from_wire(Bytes::from_static(&[9])) });
        assert_eq!(counter(&l, "bad"), 4);
        h.up(&mut l, T, cast(1, Hdr::Data { dt: 5 }, b"y"));
        h.up(&mut l, T, cast(1, Hdr::Data { dt: 1 }, &[0u8; 300]));
        assert_eq!(counter(&l, "over_budget"), 1);
        assert!(h.take_up().iter().any(|e| matches!(e, Up::Error { layer: "lamport", .. })));
        assert_eq!(counter(&l, "held"), 1);
    }
}
