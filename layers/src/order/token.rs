//! `token`: total order by a rotating token (Totem / Spread style).
//!
//! **Protocol.** A token goes round the view in rank order, carrying the next global
//! sequence number. A member casts only while it holds the token: its application's casts
//! wait here until the token comes, then go out at once, numbered from the token's sequence
//! number on (at most `MAX_BURST` a visit, so that one sender cannot keep the token), and the
//! token goes on to the next rank at the end of the turn. Every member delivers the casts
//! in sequence-number order; each sender's casts are numbered in its FIFO order, so the
//! total order respects it. The data goes straight from its sender to all: no cast takes an
//! extra hop. A cast carries its number (`At { seq }`) only when it does not follow its
//! sender's previous one: the casts after the first of a visit, and the first when nobody
//! cast since, carry nothing (the nothing: the number after the sender's previous cast).
//!
//! The token travels by reliable point-to-point send (`Dn::Send`, the `pt2pt` layer below
//! retransmits it): **a lost token is recovered** by retransmission, and a copy that comes
//! twice is known by its visit number and ignored. **An idle token rests:** after a full
//! round in which nobody cast, its holder keeps it; a member with casts waiting multicasts
//! `Want` (unreliably, again every `want_ms` while it waits) and the holder sends the token
//! on. The first holder of a view is rank 0.
//!
//! **The view change** (the layer contract, `thoth_stack::layer`). At `Dn::BlockOk` (and
//! `Dn::Leave`) the casts still waiting for the token go out at once, unnumbered
//! (`Unordered`): they belong to this view and the flush counts them. At `Up::CutReached`
//! the members that move together hold the same casts; each delivers the numbered ones in
//! number order, passing over numbers that never came (a failed holder's cast that none of
//! them got), then the unnumbered ones by rank and FIFO order (`Held::leftovers`). So the
//! total order holds across the view change (as `order` states it), and the crash of the
//! token holder is just a view change: the next view has a token of its own.
//!
//! **Safe delivery** (`safe=1`): a cast goes up only once stable (`Up::Stable`).
//!
//! **Parameters** (spec `token(safe=0,mem=8388608,mem_all=67108864,want_ms=20)`): as
//! `sequencer`'s, and `want_ms`, how often a member whose casts wait asks for the token.
//!
//! **Properties:** requires `RELIABLE_CAST | FIFO_CAST | RELIABLE_SEND` (and `STABLE` with
//! `safe=1`); provides `TOTAL`.
//!
//! **Header:** `Next` (the nothing: the next number of its sender) | `At { seq }` (tag 1,
//! varint) | `Unordered` (tag 2) | `Unrel` (tag 3: unreliable casts, passed up at once) |
//! `Want` (tag 4, an unreliable cast) | `Token { seq, visit, idle }` (tag 5, three varints, on
//! a send; on other sends: the nothing) | `Fifo` (tag 6: a cast that asks for FIFO order only,
//! sent at once without the token and passed up at once; see `order`).
//!
//! **Hostile input** is dropped and counted, never a panic: an undecodable header, a rank
//! outside the view, a `Next` from a sender with no number yet, a number below the next to
//! deliver or beyond `MAX_AHEAD` of it, below its sender's previous one, a second cast with
//! one number (`bad`); a cast past the
//! budget (`over_budget`, reported as `Up::Error`). A forged token in a member's name is
//! taken as real (frames are not authenticated yet, the security issue): two members may
//! then number casts alike, and a number taken twice delivers the first cast that came and
//! drops the other (`bad`); nothing waits beyond the view change.
//!
//! **Tests:** the unit tests below (header bytes, numbering, delivery order, the idle
//! token, the cut, hostile input); `tests/order.rs` (bolero: three members against the
//! model of one order under arbitrary casts, turns, timers and arrival orders, through the
//! real encoding; it catches a member that skips a missing number); simulated groups with
//! crashes of the token holder and of any member, loss, partitions and joins in
//! `membership/tests/sim_order.rs`, checked by `chk_total` and the harness's total-order
//! check, both proven by a planted bug (`Config::test_cut_by_arrival`).

use super::{Held, MEM, MEM_ALL, pass_fifo, spec_args};
use std::collections::{BTreeMap, VecDeque};
use thoth_stack::wire::var_len;
use thoth_stack::{
    Args, Cx, Dn, Dump, Duration, Layer, Msg, Props, Rank, Reader, Registry, Time, Up, Wire, WireError, Writer,
};

/// Most casts a member sends in one visit of the token.
pub const MAX_BURST: usize = 1024;
/// A number further than this beyond the next to deliver is refused (what an honest group
/// has in flight is bounded by flow control far below it).
pub const MAX_AHEAD: u64 = 1 << 24;

/// The `token` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hdr {
    /// A cast numbered right after its sender's previous one (and, ignored, on other sends).
    Next,
    /// The first cast of a visit, and its number.
    At {
        /// The global sequence number of this cast.
        seq: u64,
    },
    /// A cast released at the flush, ordered at the cut.
    Unordered,
    /// An unreliable cast: not ordered.
    Unrel,
    /// A member asks for the token.
    Want,
    /// The token: the next number, the visit (counts the hops), and how many hops ago a
    /// holder last cast.
    Token {
        /// The next global sequence number to give a cast.
        seq: u64,
        /// Hops of the token so far in this view; a copy with a visit already seen is a duplicate.
        visit: u64,
        /// Hops since a holder last cast or the token was asked for; once past the view's
        /// size, a holder with nothing to cast keeps it (it rests).
        idle: u64,
    },
    /// A cast that asks for FIFO order only: sent without the token, not numbered.
    Fifo,
}

impl Wire for Hdr {
    thoth_stack::nothing!(Hdr::Next);
    fn encoded_len(&self) -> usize {
        1 + match self {
            Hdr::At { seq } => var_len(*seq),
            Hdr::Token { seq, visit, idle } => var_len(*seq) + var_len(*visit) + var_len(*idle),
            _ => 0,
        }
    }
    fn encode(&self, w: &mut Writer<'_>) {
        match *self {
            Hdr::Next => w.put_u8(0),
            Hdr::At { seq } => {
                w.put_u8(1);
                w.put_var(seq);
            }
            Hdr::Unordered => w.put_u8(2),
            Hdr::Unrel => w.put_u8(3),
            Hdr::Want => w.put_u8(4),
            Hdr::Token { seq, visit, idle } => {
                w.put_u8(5);
                w.put_var(seq);
                w.put_var(visit);
                w.put_var(idle);
            }
            Hdr::Fifo => w.put_u8(6),
        }
    }
    fn decode(r: &mut Reader<'_>) -> Result<Hdr, WireError> {
        match r.u8()? {
            0 => Ok(Hdr::Next),
            1 => Ok(Hdr::At { seq: r.var()? }),
            2 => Ok(Hdr::Unordered),
            3 => Ok(Hdr::Unrel),
            4 => Ok(Hdr::Want),
            5 => Ok(Hdr::Token { seq: r.var()?, visit: r.var()?, idle: r.var()? }),
            6 => Ok(Hdr::Fifo),
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
    /// How often a member whose casts wait multicasts `Want` (spec `want_ms`, at least 1 ms).
    pub want: Duration,
    /// Planted bug (tests only): at the cut, deliver the numbered casts held in the order
    /// they arrived here instead of number order.
    #[doc(hidden)]
    pub test_cut_by_arrival: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config { safe: false, mem: MEM, mem_all: MEM_ALL, want: Duration::from_millis(20), test_cut_by_arrival: false }
    }
}

/// Registers `token` and its parameters (`safe`, `mem`, `mem_all`, `want_ms`).
pub fn register(r: &mut Registry) {
    r.register("token", "total order: a rotating token numbers the casts (Totem style)", |a: &mut Args| {
        let (safe, mem, mem_all) = spec_args(a)?;
        let want = Duration::from_millis(a.get("want_ms", 20u64)?.max(1));
        Ok(Box::new(Token::new(Config { safe, mem, mem_all, want, ..Config::default() })))
    });
}

/// What is known of a held cast: its number (none: unordered).
type Seq = Option<u64>;

#[derive(Default)]
struct Counters {
    sent: u64,
    unordered_sent: u64,
    visits: u64,
    passed: u64,
    rested: u64,
    wants_sent: u64,
    dup_tokens: u64,
    delivered: u64,
    at_cut: u64,
    skipped: u64,
    bad: u64,
    over_budget: u64,
    late: u64,
    fifo: u64,
}

/// The token, while this member holds it.
#[derive(Clone, Copy, Debug)]
struct Visit {
    seq: u64,
    visit: u64,
    idle: u64,
}

/// The rotating-token total order layer; see the module documentation.
pub struct Token {
    cfg: Config,
    held: Held<Seq>,
    /// Numbered casts held, by number: their sender.
    by_seq: BTreeMap<u64, usize>,
    /// The next number to deliver.
    next: u64,
    /// Per rank, the number its next `Next` cast takes (none before its first `At`).
    next_of: Vec<Option<u64>>,
    /// This application's casts waiting for the token.
    waiting: VecDeque<Msg>,
    /// The number the others take this member's next `Next` cast to have.
    my_next: Option<u64>,
    /// The token, if this member holds it, and whether it rests here.
    token: Option<Visit>,
    resting: bool,
    /// The last visit seen (a copy with this visit or an earlier one is a duplicate).
    last_visit: Option<u64>,
    /// Someone asked for the token while it rested here.
    wanted: bool,
    /// When to ask for the token again, while casts wait.
    want_at: Option<Time>,
    /// After `BlockOk` or `Leave`: casts go out unordered at once.
    released: bool,
    /// The cut was reached.
    done: bool,
    /// Arrival order of numbered casts (only for the planted bug).
    arrivals: Vec<u64>,
    c: Counters,
}

impl Token {
    /// A token layer; rank 0 of the view holds the token first.
    pub fn new(cfg: Config) -> Token {
        Token {
            cfg,
            held: Held::new(0, 0, 0),
            by_seq: BTreeMap::new(),
            next: 0,
            next_of: Vec::new(),
            waiting: VecDeque::new(),
            my_next: None,
            token: None,
            resting: false,
            last_visit: None,
            wanted: false,
            want_at: None,
            released: false,
            done: false,
            arrivals: Vec::new(),
            c: Counters::default(),
        }
    }

    /// Casts what waits, numbered from the token's number on (while holding the token).
    fn cast_waiting(&mut self, cx: &mut Cx<'_>) {
        let Some(t) = self.token.as_mut() else { return };
        for _ in 0..MAX_BURST {
            let Some(mut m) = self.waiting.pop_front() else { break };
            m.push(&if self.my_next == Some(t.seq) { Hdr::Next } else { Hdr::At { seq: t.seq } });
            t.seq += 1;
            self.my_next = Some(t.seq);
            t.idle = 0;
            self.c.sent += 1;
            cx.dn(Dn::Cast(m));
        }
    }

    /// Releases every waiting cast unnumbered (the view is ending, or this member leaving).
    fn release(&mut self, cx: &mut Cx<'_>) {
        self.released = true;
        self.want_at = None;
        while let Some(mut m) = self.waiting.pop_front() {
            m.push(&Hdr::Unordered);
            self.c.unordered_sent += 1;
            cx.dn(Dn::Cast(m));
        }
    }

    /// The token arrives (or is created, for rank 0 at the start of the view).
    fn take_token(&mut self, seq: u64, visit: u64, idle: u64, cx: &mut Cx<'_>) {
        if self.last_visit.is_some_and(|v| visit <= v) {
            self.c.dup_tokens += 1;
            return;
        }
        self.last_visit = Some(visit);
        self.c.visits += 1;
        self.token = Some(Visit { seq, visit, idle: idle.saturating_add(1) });
        self.resting = false;
        self.cast_waiting(cx);
        self.want_at = if self.waiting.is_empty() { None } else { self.want_at };
    }

    /// At the end of a turn the token goes on, unless it has been idle a full round (then it
    /// rests here until someone wants it).
    fn pass_token(&mut self, cx: &mut Cx<'_>) {
        let Some(t) = self.token else { return };
        let n = cx.view.len() as u64;
        if n == 1 {
            return; // alone: it stays, and casts go out as they come
        }
        if t.idle > n && !self.wanted && self.waiting.is_empty() {
            if !self.resting {
                self.resting = true;
                self.c.rested += 1;
            }
            return;
        }
        let idle = if self.wanted { 0 } else { t.idle };
        self.wanted = false;
        self.token = None;
        self.resting = false;
        self.c.passed += 1;
        let to = Rank(((cx.rank.index() + 1) % n as usize) as u16);
        let mut m = Msg::new(Default::default());
        m.push(&Hdr::Token { seq: t.seq, visit: t.visit + 1, idle });
        cx.dn(Dn::Send(to, m));
    }

    fn want(&mut self, cx: &mut Cx<'_>) {
        let mut m = Msg::new(Default::default());
        m.push(&Hdr::Want);
        self.c.wants_sent += 1;
        self.want_at = Some(cx.now + self.cfg.want);
        cx.dn(Dn::CastUnrel(m));
    }

    /// A numbered (or unordered) cast of `r` arrives.
    fn data(&mut self, r: usize, seq: Seq, msg: Msg, cx: &mut Cx<'_>) {
        let idx = self.held.count(r);
        if self.done {
            self.c.late += 1;
            return;
        }
        if let Some(s) = seq {
            let behind = self.next_of[r].is_some_and(|n| s < n); // a sender's numbers grow
            if behind || s < self.next || s - self.next > MAX_AHEAD || self.by_seq.contains_key(&s) {
                self.c.bad += 1;
                return;
            }
            self.next_of[r] = Some(s + 1);
        }
        if !self.held.hold(r, idx, msg, seq, 8) {
            self.c.over_budget += 1;
            let detail = format!("a cast of rank {r} past the budget was dropped: the order may differ here");
            return cx.up(Up::Error { layer: "token", detail });
        }
        if let Some(s) = seq {
            self.by_seq.insert(s, r);
            if self.cfg.test_cut_by_arrival {
                self.arrivals.push(s);
            }
        }
        self.deliver(cx);
    }

    /// Delivers in number order while the next number is here (and stable, with `safe`).
    fn deliver(&mut self, cx: &mut Cx<'_>) {
        while let Some(&r) = self.by_seq.get(&self.next) {
            // The next number is the oldest numbered cast its sender has here (numbers grow
            // in each sender's FIFO order); one unordered before it cannot be (sent last).
            let Some((idx, &Some(seq))) = self.held.front(r) else { break };
            if seq != self.next || self.cfg.safe && !self.held.is_stable(r, idx) {
                break; // (the first: only a forged number does that, and the cut ends it)
            }
            self.by_seq.remove(&seq);
            let msg = self.held.pop(r).expect("a cast is held");
            self.next += 1;
            self.c.delivered += 1;
            cx.up(Up::Cast { from: Rank(r as u16), msg });
        }
    }

    /// The cut: the numbered casts held in number order, passing over numbers that never
    /// came, then the unordered ones by rank and FIFO order.
    fn at_cut(&mut self, cx: &mut Cx<'_>) {
        self.done = true;
        let mut order: Vec<u64> = self.by_seq.keys().copied().collect();
        if self.cfg.test_cut_by_arrival {
            let held: std::collections::BTreeSet<u64> = order.iter().copied().collect();
            order = core::mem::take(&mut self.arrivals).into_iter().filter(|s| held.contains(s)).collect();
        }
        let mut out = Vec::new();
        for s in order {
            let r = self.by_seq[&s];
            // Casts of a sender come in its FIFO order: take them from its queue in number
            // order (the planted bug takes them in arrival order, which is the same per
            // sender; across senders it is not).
            if let Some(m) = self.held.pop(r) {
                out.push((Rank(r as u16), m));
            }
            self.c.skipped += u64::from(s != self.next);
            self.next = s + 1;
        }
        self.by_seq.clear();
        let rest = self.held.leftovers();
        self.c.at_cut += (out.len() + rest.len()) as u64;
        self.c.delivered += (out.len() + rest.len()) as u64;
        for (from, msg) in out.into_iter().chain(rest) {
            cx.up(Up::Cast { from, msg });
        }
    }
}

impl Layer for Token {
    fn name(&self) -> &'static str {
        "token"
    }
    fn requires(&self) -> Props {
        let base = Props::RELIABLE_CAST | Props::FIFO_CAST | Props::RELIABLE_SEND;
        if self.cfg.safe { base | Props::STABLE } else { base }
    }
    fn provides(&self) -> Props {
        Props::TOTAL
    }

    fn init(&mut self, cx: &mut Cx<'_>) {
        let n = cx.view.len();
        self.held = Held::new(n, self.cfg.mem, self.cfg.mem_all);
        self.next_of = vec![None; n];
        if cx.rank.index() == 0 {
            self.take_token(0, 0, 0, cx);
        }
    }

    fn max_header(&self, _: &thoth_stack::View) -> usize {
        Hdr::At { seq: u64::MAX }.encoded_len()
    }
    fn handle_dn(&mut self, ev: Dn, cx: &mut Cx<'_>) {
        match ev {
            Dn::Cast(mut m) if m.is_fifo() => {
                m.push(&Hdr::Fifo);
                cx.dn(Dn::Cast(m));
            }
            Dn::Cast(m) if self.released => {
                let mut m = m;
                m.push(&Hdr::Unordered);
                self.c.unordered_sent += 1;
                cx.dn(Dn::Cast(m));
            }
            Dn::Cast(m) => {
                self.waiting.push_back(m);
                if self.token.is_some() {
                    self.cast_waiting(cx);
                } else if self.want_at.is_none() {
                    self.want(cx);
                }
            }
            Dn::CastUnrel(mut m) => {
                m.push(&Hdr::Unrel);
                cx.dn(Dn::CastUnrel(m));
            }
            Dn::BlockOk | Dn::Leave => {
                self.release(cx);
                cx.dn(ev);
            }
            ev => cx.dn(ev), // sends: `Next`, the nothing
        }
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
                    Ok(Hdr::Want) => {
                        if self.token.is_some() && from != cx.rank {
                            self.wanted = true;
                        }
                    }
                    Ok(Hdr::At { seq }) => self.data(r, Some(seq), msg, cx),
                    Ok(Hdr::Next) => match self.next_of[r] {
                        Some(seq) => self.data(r, Some(seq), msg, cx),
                        None => {
                            self.held.count(r);
                            self.c.bad += 1;
                        }
                    },
                    Ok(Hdr::Unordered) => self.data(r, None, msg, cx),
                    Ok(Hdr::Fifo) => {
                        let up = pass_fifo(&mut self.held, self.done, from, msg, cx);
                        *(if up { &mut self.c.fifo } else { &mut self.c.late }) += 1;
                    }
                    Ok(Hdr::Token { .. }) | Err(_) => {
                        // Taken for a reliable cast: it took its index below.
                        self.held.count(r);
                        self.c.bad += 1;
                    }
                }
            }
            Up::Send { from, mut msg } => match msg.pop::<Hdr>() {
                Ok(Hdr::Next) => cx.up(Up::Send { from, msg }),
                Ok(Hdr::Token { seq, visit, idle }) if from.index() < cx.view.len() && !self.done => {
                    self.take_token(seq, visit, idle, cx)
                }
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
        if !self.released {
            self.cast_waiting(cx);
        }
        self.pass_token(cx);
    }

    fn poll_timeout(&self) -> Option<Time> {
        self.want_at
    }

    fn handle_timeout(&mut self, cx: &mut Cx<'_>) {
        if self.want_at.is_some_and(|t| cx.now >= t) {
            self.want_at = None;
            if !self.waiting.is_empty() && self.token.is_none() && !self.released {
                self.want(cx);
            }
        }
    }

    fn dump(&self, out: &mut Vec<Dump>) {
        let c = &self.c;
        out.push(Dump {
            layer: "token",
            counters: vec![
                ("sent", c.sent),
                ("unordered_sent", c.unordered_sent),
                ("visits", c.visits),
                ("passed", c.passed),
                ("rested", c.rested),
                ("wants_sent", c.wants_sent),
                ("dup_tokens", c.dup_tokens),
                ("delivered", c.delivered),
                ("at_cut", c.at_cut),
                ("skipped", c.skipped),
                ("bad", c.bad),
                ("over_budget", c.over_budget),
                ("late", c.late),
                ("fifo", c.fifo),
            ],
            gauges: vec![("held", self.held.len() as u64), ("waiting", self.waiting.len() as u64)],
            state: format!(
                "holding {} resting {} next {} released {} done {}",
                self.token.is_some(),
                self.resting,
                self.next,
                self.released,
                self.done
            ),
            ..Dump::default()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::testkit::{cast, counter, delivered, wired};
    use thoth_stack::Bytes;
    use thoth_stack::testing::{Harness, over_wire};
    use thoth_stack::wire::{from_slice, to_vec};

    const T: Time = Time::ZERO;

    fn app(b: &'static [u8]) -> Dn {
        Dn::Cast(Msg::new(Bytes::from_static(b)))
    }

    /// What went down: per event its kind, target, header and body.
    fn sent(h: &mut Harness) -> Vec<(&'static str, Option<u16>, Hdr, Vec<u8>)> {
        h.take_dn()
            .into_iter()
            .filter_map(|e| {
                let (kind, to, m) = match e {
                    Dn::Cast(m) => ("cast", None, m),
                    Dn::CastUnrel(m) => ("unrel", None, m),
                    Dn::Send(r, m) => ("send", Some(r.0), m),
                    _ => return None,
                };
                let mut m = over_wire(&m);
                m.unseal();
                let hdr = m.pop::<Hdr>().expect("decodes");
                Some((kind, to, hdr, m.into_payload().to_vec()))
            })
            .collect()
    }

    fn token(from: u16, seq: u64, visit: u64, idle: u64) -> Up {
        Up::Send { from: Rank(from), msg: wired(Hdr::Token { seq, visit, idle }, b"") }
    }

    #[test]
    fn header_bytes() {
        assert!(Hdr::Next.is_nothing(), "a cast after its sender's previous one: no header bytes");
        assert_eq!(to_vec(&Hdr::At { seq: 300 }), [1, 0xac, 0x02]);
        let t = Hdr::Token { seq: 5, visit: 300, idle: 1 };
        assert_eq!(to_vec(&t), [5, 5, 0xac, 0x02, 1]);
        assert_eq!(from_slice::<Hdr>(&to_vec(&t)), Ok(t));
        assert_eq!(to_vec(&Hdr::Fifo), [6]);
        assert_eq!(from_slice::<Hdr>(&[7]), Err(WireError::BadTag));
    }

    #[test]
    fn a_fifo_only_cast_goes_without_the_token_is_not_ordered_and_takes_its_index() {
        let t = Token::new(Config { safe: true, ..Config::default() });
        crate::order::testkit::fifo_only_contract(t, Hdr::Fifo, Hdr::At { seq: 0 }, |_, _| {});
    }

    #[test]
    fn the_holder_numbers_its_casts_and_passes_the_token_at_the_end_of_the_turn() {
        let (mut h, mut t) = (Harness::new(3, 0), Token::new(Config::default()));
        h.dn(&mut t, T, app(b"a"));
        h.dn(&mut t, T, app(b"b"));
        let out = sent(&mut h);
        assert_eq!(out[0], ("cast", None, Hdr::At { seq: 0 }, b"a".to_vec()), "rank 0 holds the first token");
        assert_eq!(out[1], ("cast", None, Hdr::Next, b"b".to_vec()));
        h.end_turn(&mut t, T);
        assert_eq!(sent(&mut h), [("send", Some(1), Hdr::Token { seq: 2, visit: 1, idle: 0 }, vec![])]);
        h.dn(&mut t, T, app(b"c"));
        let out = sent(&mut h);
        assert_eq!((out[0].0, &out[0].2), ("unrel", &Hdr::Want), "without the token it waits and asks");
        h.up(&mut t, T, token(2, 7, 3, 0));
        assert_eq!(sent(&mut h)[0], ("cast", None, Hdr::At { seq: 7 }, b"c".to_vec()));
        h.up(&mut t, T, token(2, 9, 3, 0));
        assert_eq!(counter(&t, "dup_tokens"), 1, "a copy of a visit already had is ignored");
    }

    #[test]
    fn casts_are_delivered_in_number_order_whatever_the_arrival_order() {
        let (mut h, mut t) = (Harness::new(3, 2), Token::new(Config::default()));
        h.up(&mut t, T, cast(1, Hdr::At { seq: 2 }, b"c"));
        h.up(&mut t, T, cast(0, Hdr::At { seq: 0 }, b"a"));
        assert_eq!(delivered(&mut h), [(0, b"a".to_vec())]);
        h.up(&mut t, T, cast(0, Hdr::Next, b"b"));
        assert_eq!(delivered(&mut h), [(0, b"b".to_vec()), (1, b"c".to_vec())]);
    }

    #[test]
    fn an_idle_token_rests_after_a_round_and_a_want_sends_it_on() {
        let (mut h, mut t) = (Harness::new(3, 1), Token::new(Config::default()));
        h.up(&mut t, T, token(0, 4, 1, 3)); // idle for three hops: this is the fourth
        h.end_turn(&mut t, T);
        assert!(sent(&mut h).is_empty(), "it rests here");
        assert_eq!(counter(&t, "rested"), 1);
        h.up(&mut t, T, cast(2, Hdr::Want, b""));
        h.end_turn(&mut t, T);
        assert_eq!(sent(&mut h), [("send", Some(2), Hdr::Token { seq: 4, visit: 2, idle: 0 }, vec![])]);
        // A lost Want is asked again after `want_ms`.
        let (mut h, mut t) = (Harness::new(3, 1), Token::new(Config::default()));
        h.dn(&mut t, T, app(b"x"));
        assert_eq!(sent(&mut h).len(), 1);
        assert_eq!(t.poll_timeout(), Some(T + Duration::from_millis(20)));
        h.timeout(&mut t, T + Duration::from_millis(20));
        assert_eq!(sent(&mut h)[0].2, Hdr::Want);
    }

    #[test]
    fn at_the_flush_waiting_casts_go_unordered_and_the_cut_orders_numbers_then_the_rest() {
        let (mut h, mut t) = (Harness::new(3, 1), Token::new(Config::default()));
        h.dn(&mut t, T, app(b"w"));
        sent(&mut h);
        h.dn(&mut t, T, Dn::BlockOk);
        let out = sent(&mut h);
        assert_eq!(out[0], ("cast", None, Hdr::Unordered, b"w".to_vec()), "released before BlockOk goes on");
        h.up(&mut t, T, cast(2, Hdr::At { seq: 3 }, b"d")); // 0..3 never came: passed over
        h.up(&mut t, T, cast(2, Hdr::Unordered, b"z"));
        h.up(&mut t, T, cast(1, Hdr::Unordered, b"w"));
        h.up(&mut t, T, cast(0, Hdr::At { seq: 5 }, b"f"));
        h.up(&mut t, T, Up::CutReached(vec![1, 1, 2]));
        let want = [(2, b"d".to_vec()), (0, b"f".to_vec()), (1, b"w".to_vec()), (2, b"z".to_vec()), (u16::MAX, vec![])];
        assert_eq!(delivered(&mut h), want);
    }

    #[test]
    fn hostile_input_is_dropped_and_counted() {
        let (mut h, mut t) = (Harness::new(3, 1), Token::new(Config::default()));
        h.up(&mut t, T, cast(2, Hdr::Next, b"x")); // no number yet
        h.up(&mut t, T, cast(7, Hdr::At { seq: 0 }, b"x")); // no rank 7
        h.up(&mut t, T, Up::Cast { from: Rank(2), msg: Msg::from_wire(Bytes::from_static(&[9])) });
        h.up(&mut t, T, cast(2, Hdr::At { seq: 1 << 30 }, b"x")); // too far ahead
        h.up(&mut t, T, cast(2, Hdr::At { seq: 4 }, b"x"));
        h.up(&mut t, T, cast(0, Hdr::At { seq: 4 }, b"x")); // taken
        h.up(&mut t, T, cast(2, Hdr::At { seq: 2 }, b"x")); // below its previous
        assert_eq!(counter(&t, "bad"), 6);
        assert_eq!(counter(&t, "held"), 1);
        assert!(delivered(&mut h).is_empty());
    }
}
