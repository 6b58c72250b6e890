//! `swim`: SWIM-style failure detection by direct and indirect probing (Das, Gupta and
//! Motivala, "SWIM: Scalable Weakly-consistent Infection-style Process Group Membership
//! Protocol", DSN 2002), without the dissemination part: each member decides for itself.
//!
//! Protocol. Time is cut into probe periods of `period`. At the start of each period a member
//! picks its next target in a round-robin order over the other members, reshuffled (from
//! `cx.rng`, so deterministic) at the start of every round, so every member is probed once
//! per round of `n - 1` periods. It sends the target `Ping { nonce }` (`Dn::SendUnrel`), and
//! the target answers `Ack { nonce }`. Every `ack_timeout` after that, while no ack has come
//! and the period is not over, it pings the target again and asks `k` other members, chosen
//! at random each time, to probe the target for it with `PingReq { target, nonce }`. A helper
//! sends the target `RelayPing { origin, nonce }`, the target answers the helper
//! `RelayAck { origin, nonce }`, and the helper passes it on to the origin as
//! `IndirectAck { target, nonce }`. Relaying is stateless, so a helper holds nothing for it.
//! If the period ends (the probe timeout is the period) without an ack, direct or indirect,
//! the target becomes suspected: `Up::Suspect(vec![target])`, once per member while it stays
//! suspected. Because the suspicion is checked through other members first, a broken link
//! between two members (one direction or both) does not make one suspect the other as long
//! as some helper reaches both. Repeating the ping within the period makes a false
//! suspicion under independent loss need every attempt to fail.
//!
//! Liveness evidence. Any message from a member through this layer (a probe message or an
//! application message with `NoHdr`, cast or send) counts as proof that it is alive: it
//! completes the current probe of that member, and an `IndirectAck` for the current probe
//! counts for the target. A suspected member heard from again stops being suspected (counted
//! as `unsuspected`); there is no "unsuspect" event yet: membership will decide exclusion.
//!
//! Bounds. With messages taking less than `ack_timeout / 2`: a member whose outgoing traffic
//! stops for less than `period - ack_timeout` (a pause) is not suspected, because some ping
//! of every probe window reaches it after the pause and its answer gets back in time. A
//! crashed member is suspected by every live member within `2 (n - 1) period` of the crash
//! (its position in two consecutive shuffled rounds is at most `2 (n - 1) - 1` periods
//! apart, plus the period of the failing probe); a pause longer than `(2n - 1) period` is
//! suspected by every other member (the tests check both bounds).
//!
//! Parameters (spec `swim(period_ms=..,ack_timeout_ms=..,k=..)`); defaults scale with the
//! group size `n` of the view:
//! `period_ms` = `1000 / (n - 1)` clamped to `[50, 500]` (every member probes every other
//! at least once in about two seconds for groups up to 21, so the crash bound stays near
//! 1–2.5 s); `ack_timeout_ms` = `period / 8` (8 attempts per probe); `k` = `min(3, n - 2)`
//! (fewer when fewer other members exist). The effective values are in `dump`
//! (`period_ms`, `ack_timeout_ms`, `k`), so they show in `Endpoint::dump()`.
//!
//! Properties: requires nothing; provides `SUSPECT`.
//!
//! Events generated: `Dn::SendUnrel` (all probe traffic), `Up::Suspect`. Every message event
//! going down gets a `NoHdr` header; every `Up::Cast`/`Up::Send` gets its header popped.
//! Control events (`Leave`, `Stable`, `Exit`, `Error`, `Flow`, `Suspect`) pass through.
//!
//! Hostile input: a header that does not decode or a probe message in a cast (`bad_hdr`), a
//! sender or rank field outside the view or naming the wrong member (`bad_rank`) is dropped
//! and counted; an ack that does not match the current probe is counted (`stale_acks`) and
//! still counts as evidence for its sender. Nothing panics, nothing bad is delivered.
//!
//! Memory: O(n) per member (the round-robin order and a suspected flag per rank), whatever
//! the peers send; relaying keeps no state.
//!
//! Tests: `failure-detector/tests/swim.rs`: exact-output unit tests; bolero (header
//! round-trip, arbitrary bytes into `handle_up`, the suspicion state against a reference
//! model); simulator runs for N = 2..9: crash detection by every live member within the
//! bound (the measured distribution is printed), no suspicion under 10 % loss for 60 s, a
//! short pause not suspected and a long one suspected, and a one-pair cut that raises no
//! suspicion, while the same run with indirect probing disabled (`test_no_indirect`) does.

use thoth_stack::wire::var_len;
use thoth_stack::{
    Args, Cx, Dn, Dump, Duration, Layer, Msg, Props, Rank, Reader, Registry, Time, Up, Wire, WireError, Writer,
};

/// The layer's header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hdr {
    /// Nothing to say: a message this layer passes through.
    NoHdr,
    /// A direct probe; answered with `Ack` carrying the same nonce.
    Ping {
        /// The origin's probe number, echoed back in every answer.
        nonce: u64,
    },
    /// The answer to `Ping`.
    Ack {
        /// The `Ping`'s nonce.
        nonce: u64,
    },
    /// Asks the receiver to probe `target` for the sender.
    PingReq {
        /// Rank of the member to probe.
        target: u16,
        /// The origin's probe number, echoed back in every answer.
        nonce: u64,
    },
    /// A helper's probe of the receiver on behalf of `origin`.
    RelayPing {
        /// Rank of the member that asked the helper (the prober).
        origin: u16,
        /// The origin's probe number, echoed back in every answer.
        nonce: u64,
    },
    /// The target's answer to `RelayPing`, back to the helper.
    RelayAck {
        /// The `RelayPing`'s origin, so the stateless helper knows whom to tell.
        origin: u16,
        /// The `RelayPing`'s nonce.
        nonce: u64,
    },
    /// A helper tells the receiver that `target` answered its probe `nonce`.
    IndirectAck {
        /// Rank of the member that answered.
        target: u16,
        /// The receiver's own probe number, from its `PingReq`.
        nonce: u64,
    },
}

const TAG_NOHDR: u8 = 0;
const TAG_PING: u8 = 1;
const TAG_ACK: u8 = 2;
const TAG_PING_REQ: u8 = 3;
const TAG_RELAY_PING: u8 = 4;
const TAG_RELAY_ACK: u8 = 5;
const TAG_INDIRECT_ACK: u8 = 6;

fn get_rank(r: &mut Reader<'_>) -> Result<u16, WireError> {
    u16::try_from(r.var()?).map_err(|_| WireError::BadValue)
}

impl Wire for Hdr {
    thoth_stack::nothing!(Hdr::NoHdr);
    fn encoded_len(&self) -> usize {
        1 + match *self {
            Hdr::NoHdr => 0,
            Hdr::Ping { nonce } | Hdr::Ack { nonce } => var_len(nonce),
            Hdr::PingReq { target: x, nonce }
            | Hdr::RelayPing { origin: x, nonce }
            | Hdr::RelayAck { origin: x, nonce }
            | Hdr::IndirectAck { target: x, nonce } => var_len(x as u64) + var_len(nonce),
        }
    }
    fn encode(&self, w: &mut Writer<'_>) {
        let (tag, x, nonce) = match *self {
            Hdr::NoHdr => return w.put_u8(TAG_NOHDR),
            Hdr::Ping { nonce } => (TAG_PING, None, nonce),
            Hdr::Ack { nonce } => (TAG_ACK, None, nonce),
            Hdr::PingReq { target, nonce } => (TAG_PING_REQ, Some(target), nonce),
            Hdr::RelayPing { origin, nonce } => (TAG_RELAY_PING, Some(origin), nonce),
            Hdr::RelayAck { origin, nonce } => (TAG_RELAY_ACK, Some(origin), nonce),
            Hdr::IndirectAck { target, nonce } => (TAG_INDIRECT_ACK, Some(target), nonce),
        };
        w.put_u8(tag);
        if let Some(x) = x {
            w.put_var(x as u64);
        }
        w.put_var(nonce);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Hdr, WireError> {
        Ok(match r.u8()? {
            TAG_NOHDR => Hdr::NoHdr,
            TAG_PING => Hdr::Ping { nonce: r.var()? },
            TAG_ACK => Hdr::Ack { nonce: r.var()? },
            TAG_PING_REQ => Hdr::PingReq { target: get_rank(r)?, nonce: r.var()? },
            TAG_RELAY_PING => Hdr::RelayPing { origin: get_rank(r)?, nonce: r.var()? },
            TAG_RELAY_ACK => Hdr::RelayAck { origin: get_rank(r)?, nonce: r.var()? },
            TAG_INDIRECT_ACK => Hdr::IndirectAck { target: get_rank(r)?, nonce: r.var()? },
            _ => return Err(WireError::BadTag),
        })
    }
}

/// Parameters; `None` scales with the group size (see the module doc).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Config {
    /// Probe period, which is also the probe timeout.
    pub period: Option<Duration>,
    /// Wait for an ack before pinging again and asking helpers (less than `period`).
    pub ack_timeout: Option<Duration>,
    /// Helpers asked per attempt (at most `n - 2` are used).
    pub k: Option<usize>,
    /// Tests only: never ask helpers (the one-pair-cut test must then see a suspicion).
    #[doc(hidden)]
    pub test_no_indirect: bool,
}

/// The parameters in force for a view of `n` members.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Effective {
    /// Probe period and probe timeout.
    pub period: Duration,
    /// Between two attempts of one probe (at least 1 µs, at most `period`).
    pub ack_timeout: Duration,
    /// Helpers asked per attempt (at most `n - 2`).
    pub k: usize,
}

impl Config {
    /// The parameters for a view of `n` members.
    pub fn effective(&self, n: usize) -> Effective {
        let others = n.saturating_sub(1).max(1) as u64;
        let period = self.period.unwrap_or(Duration::from_millis((1000 / others).clamp(50, 500)));
        let ack_timeout = self.ack_timeout.unwrap_or(period / 8).min(period).max(Duration::from_micros(1));
        let k = self.k.unwrap_or(3).min(n.saturating_sub(2));
        Effective { period, ack_timeout, k }
    }
}

/// The probe of the current period.
#[derive(Clone, Copy, Debug)]
struct Probe {
    target: Rank,
    nonce: u64,
    /// End of the period: the probe fails if no evidence came by then.
    end: Time,
    /// Next ping and ping-req round, if before `end`.
    next_attempt: Time,
    acked: bool,
}

#[derive(Clone, Copy, Debug, Default)]
struct Counters {
    probes: u64,
    pings_sent: u64,
    ping_reqs_sent: u64,
    acks_sent: u64,
    relayed: u64,
    indirect_acks: u64,
    suspicions: u64,
    unsuspected: u64,
    stale_acks: u64,
    bad_hdr: u64,
    bad_rank: u64,
}

/// The `swim` layer.
#[derive(Debug)]
pub struct Swim {
    cfg: Config,
    /// Set at the first event, from the view (the stack is rebuilt for every view).
    eff: Option<Effective>,
    /// This round's probe order, and the next position in it.
    order: Vec<Rank>,
    pos: usize,
    probe: Option<Probe>,
    /// When the first probe starts (before any probe exists).
    first: Option<Time>,
    nonce: u64,
    suspected: Vec<bool>,
    c: Counters,
}

impl Default for Swim {
    fn default() -> Self {
        Swim::new(Config::default())
    }
}

impl Swim {
    /// A detector with these parameters (the defaults are settled per view, see `Effective`).
    pub fn new(cfg: Config) -> Swim {
        Swim {
            cfg,
            eff: None,
            order: Vec::new(),
            pos: 0,
            probe: None,
            first: None,
            nonce: 0,
            suspected: Vec::new(),
            c: Counters::default(),
        }
    }

    /// Sets the parameters from the view and schedules the first probe at a random offset
    /// within one period, so members do not probe in lockstep.
    fn start(&mut self, cx: &mut Cx<'_>) {
        let n = cx.view.len();
        let e = self.cfg.effective(n);
        self.eff = Some(e);
        self.suspected = vec![false; n];
        if n > 1 {
            let span = u64::try_from(e.period.as_nanos()).unwrap_or(u64::MAX).max(1);
            self.first = Some(cx.now + Duration::from_nanos(cx.rng.below(span)));
        }
    }

    fn send(&mut self, cx: &mut Cx<'_>, to: Rank, h: Hdr) {
        let mut m = Msg::default();
        m.push(&h);
        cx.dn(Dn::SendUnrel(to, m));
    }

    /// The next target of the round-robin order, reshuffling at the start of each round.
    fn next_target(&mut self, cx: &mut Cx<'_>) -> Option<Rank> {
        if self.pos >= self.order.len() {
            self.order = cx.view.ranks().filter(|&r| r != cx.rank).collect();
            for i in (1..self.order.len()).rev() {
                let j = cx.rng.below(i as u64 + 1) as usize;
                self.order.swap(i, j);
            }
            self.pos = 0;
        }
        let t = self.order.get(self.pos).copied();
        self.pos += 1;
        t
    }

    /// Ends the current probe (suspecting its target if nothing came) and starts the next.
    fn new_period(&mut self, cx: &mut Cx<'_>, e: Effective, start: Time) {
        if let Some(p) = self.probe.take()
            && !p.acked
            && let Some(s) = self.suspected.get_mut(p.target.index())
            && !*s
        {
            *s = true;
            self.c.suspicions += 1;
            cx.up(Up::Suspect(vec![p.target]));
        }
        let Some(target) = self.next_target(cx) else { return };
        self.nonce += 1;
        let nonce = self.nonce;
        self.c.probes += 1;
        self.c.pings_sent += 1;
        self.probe =
            Some(Probe { target, nonce, end: start + e.period, next_attempt: start + e.ack_timeout, acked: false });
        self.send(cx, target, Hdr::Ping { nonce });
    }

    /// Pings the target again and asks up to `k` random helpers to probe it.
    fn attempt(&mut self, cx: &mut Cx<'_>, e: Effective, p: Probe) {
        self.c.pings_sent += 1;
        self.send(cx, p.target, Hdr::Ping { nonce: p.nonce });
        if self.cfg.test_no_indirect {
            return;
        }
        let mut helpers: Vec<Rank> = cx.view.ranks().filter(|&r| r != cx.rank && r != p.target).collect();
        let k = e.k.min(helpers.len());
        for i in 0..k {
            let j = i + cx.rng.below((helpers.len() - i) as u64) as usize;
            helpers.swap(i, j);
            self.c.ping_reqs_sent += 1;
            self.send(cx, helpers[i], Hdr::PingReq { target: p.target.0, nonce: p.nonce });
        }
    }

    /// `r` is alive: completes its probe and lifts a suspicion of it.
    fn alive(&mut self, r: Rank) {
        if let Some(p) = self.probe.as_mut()
            && p.target == r
        {
            p.acked = true;
        }
        if let Some(s) = self.suspected.get_mut(r.index())
            && *s
        {
            *s = false;
            self.c.unsuspected += 1;
        }
    }

    fn valid(&self, cx: &Cx<'_>, r: u16) -> bool {
        (r as usize) < cx.view.len() && Rank(r) != cx.rank
    }

    fn control(&mut self, cx: &mut Cx<'_>, from: Rank, h: Hdr) {
        match h {
            Hdr::NoHdr => {}
            Hdr::Ping { nonce } => {
                self.c.acks_sent += 1;
                self.send(cx, from, Hdr::Ack { nonce });
            }
            Hdr::Ack { nonce } => {
                if !self.probe.is_some_and(|p| p.target == from && p.nonce == nonce) {
                    self.c.stale_acks += 1;
                }
            }
            Hdr::PingReq { target, nonce } => {
                if !self.valid(cx, target) || Rank(target) == from {
                    self.c.bad_rank += 1;
                    return;
                }
                self.c.relayed += 1;
                self.send(cx, Rank(target), Hdr::RelayPing { origin: from.0, nonce });
            }
            Hdr::RelayPing { origin, nonce } => {
                if !self.valid(cx, origin) || Rank(origin) == from {
                    self.c.bad_rank += 1;
                    return;
                }
                self.send(cx, from, Hdr::RelayAck { origin, nonce });
            }
            Hdr::RelayAck { origin, nonce } => {
                if !self.valid(cx, origin) || Rank(origin) == from {
                    self.c.bad_rank += 1;
                    return;
                }
                self.send(cx, Rank(origin), Hdr::IndirectAck { target: from.0, nonce });
            }
            Hdr::IndirectAck { target, nonce } => {
                if !self.valid(cx, target) || Rank(target) == from {
                    self.c.bad_rank += 1;
                    return;
                }
                if self.probe.is_some_and(|p| p.target == Rank(target) && p.nonce == nonce) {
                    self.c.indirect_acks += 1;
                    self.alive(Rank(target));
                } else {
                    self.c.stale_acks += 1;
                }
            }
        }
    }

    /// Members currently suspected, in rank order.
    pub fn suspected(&self) -> Vec<Rank> {
        (0..self.suspected.len()).filter(|&i| self.suspected[i]).map(|i| Rank(i as u16)).collect()
    }
}

impl Layer for Swim {
    fn name(&self) -> &'static str {
        "swim"
    }
    fn provides(&self) -> Props {
        Props::SUSPECT
    }
    fn init(&mut self, cx: &mut Cx<'_>) {
        self.start(cx);
    }
    fn max_header(&self, _: &thoth_stack::View) -> usize {
        0
    }
    fn handle_dn(&mut self, ev: Dn, cx: &mut Cx<'_>) {
        cx.dn(ev); // no header: read as `NoHdr` above
    }
    fn handle_up(&mut self, ev: Up, cx: &mut Cx<'_>) {
        let (from, mut msg, cast) = match ev {
            Up::Cast { from, msg } => (from, msg, true),
            Up::Send { from, msg } => (from, msg, false),
            other => return cx.up(other),
        };
        let Ok(h) = msg.pop::<Hdr>() else {
            self.c.bad_hdr += 1;
            return;
        };
        if from.index() >= cx.view.len() {
            self.c.bad_rank += 1;
            return;
        }
        if from == cx.rank {
            // Our own cast or send looped back: no evidence, nothing to answer.
            if h == Hdr::NoHdr {
                cx.up(if cast { Up::Cast { from, msg } } else { Up::Send { from, msg } });
            } else {
                self.c.bad_rank += 1;
            }
            return;
        }
        if cast && h != Hdr::NoHdr {
            self.c.bad_hdr += 1;
            return;
        }
        self.alive(from);
        if h == Hdr::NoHdr {
            cx.up(if cast { Up::Cast { from, msg } } else { Up::Send { from, msg } });
        } else {
            self.control(cx, from, h);
        }
    }
    fn poll_timeout(&self) -> Option<Time> {
        self.eff?;
        match self.probe {
            Some(p) if !p.acked && p.next_attempt < p.end => Some(p.next_attempt),
            Some(p) => Some(p.end),
            None => self.first,
        }
    }
    fn handle_timeout(&mut self, cx: &mut Cx<'_>) {
        let Some(e) = self.eff else { return };
        match self.probe {
            None => {
                if self.first.is_some_and(|t| t <= cx.now) {
                    self.first = None;
                    self.new_period(cx, e, cx.now);
                }
            }
            Some(p) if cx.now >= p.end => self.new_period(cx, e, cx.now),
            Some(mut p) if !p.acked && cx.now >= p.next_attempt => {
                p.next_attempt += e.ack_timeout;
                self.probe = Some(p);
                self.attempt(cx, e, p);
            }
            Some(_) => {}
        }
    }
    fn dump(&self, out: &mut Vec<Dump>) {
        let c = &self.c;
        let e = self.eff;
        let ms = |d: Duration| d.as_millis() as u64;
        out.push(Dump {
            layer: "swim",
            counters: vec![
                ("probes", c.probes),
                ("pings_sent", c.pings_sent),
                ("ping_reqs_sent", c.ping_reqs_sent),
                ("acks_sent", c.acks_sent),
                ("relayed", c.relayed),
                ("indirect_acks", c.indirect_acks),
                ("suspicions", c.suspicions),
                ("unsuspected", c.unsuspected),
                ("stale_acks", c.stale_acks),
                ("bad_hdr", c.bad_hdr),
                ("bad_rank", c.bad_rank),
            ],
            gauges: vec![
                ("period_ms", e.map_or(0, |e| ms(e.period))),
                ("ack_timeout_ms", e.map_or(0, |e| ms(e.ack_timeout))),
                ("k", e.map_or(0, |e| e.k as u64)),
                ("suspected", self.suspected.iter().filter(|&&s| s).count() as u64),
            ],
            state: format!("probe {:?}, suspected {:?}", self.probe.map(|p| (p.target, p.nonce)), self.suspected()),
            ..Dump::default()
        });
    }
}

fn opt_ms(a: &mut Args, key: &str) -> Result<Option<Duration>, String> {
    match a.raw(key).map(str::to_string) {
        None => Ok(None),
        Some(v) => match v.parse::<u64>() {
            Ok(0) | Err(_) => Err(format!("bad value `{v}` for `{key}` (milliseconds, at least 1)")),
            Ok(n) => Ok(Some(Duration::from_millis(n))),
        },
    }
}

/// Registers `swim` (arguments `period_ms`, `ack_timeout_ms`, `k`; `ack_timeout_ms` below
/// `period_ms` when both are given).
pub fn register(r: &mut Registry) {
    r.register("swim", "SWIM failure detector: round-robin pings, indirect ping-req through k members", |a| {
        let period = opt_ms(a, "period_ms")?;
        let ack_timeout = opt_ms(a, "ack_timeout_ms")?;
        let k = match a.raw("k").map(str::to_string) {
            None => None,
            Some(v) => Some(v.parse::<usize>().map_err(|_| format!("bad value `{v}` for `k`"))?),
        };
        if let (Some(p), Some(t)) = (period, ack_timeout)
            && t >= p
        {
            return Err("ack_timeout_ms must be less than period_ms".into());
        }
        Ok(Box::new(Swim::new(Config { period, ack_timeout, k, test_no_indirect: false })))
    });
}
