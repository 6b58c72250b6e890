//! `stable`: stability detection by gossip.
//!
//! **Protocol.** Every reliable cast going down gets a `Cast` header; coming up, each one
//! counts as received from its sender (`recv[r]`, casts of rank `r` delivered up through
//! this layer, own casts included). Members gossip `Gossip { recv, stable }` by
//! `Dn::CastUnrel`: what they received from each sender and the stability they computed. A
//! member keeps the latest (element-wise largest) `recv` of every member; the minimum over
//! the view, per sender, is stable: every member has received those casts. When it grows it
//! is announced up (`Up::Stable`) and down (`Dn::Stable`, so `nak` frees its buffers).
//!
//! **When to gossip.** Only when something changed (this member received a cast since its
//! last gossip, or a peer's gossip shows it has not learned what this member received) or
//! something is unstable here (`stable < recv`). Otherwise no timer is armed: an idle group
//! is quiet. Gossip goes out at slots staggered by rank, `rank * period / n + k * period`, so
//! members do not gossip in the same instant.
//!
//! **Failed members.** After `Dn::Failed(ranks)` (passed on down first; the set only grows)
//! the minimum is taken over the surviving members only: a failed member's counts are frozen
//! and would otherwise hold every buffer below forever. Gossip from a failed member is
//! dropped and counted (`from_failed`). The casts of a failed member stay counted as they
//! are delivered (nak fetches them from survivors), so its column becomes stable once every
//! survivor has what the most advanced one has.
//!
//! The counts must match the sequence numbers of the reliable layer below (`nak`): put
//! nothing that adds or removes casts between the two (the stack is `stable:nak`).
//!
//! **Parameters** (spec `stable(...)`): `period_ms` (20): the gossip period.
//!
//! **Properties:** requires `RELIABLE_CAST`; provides `STABLE`.
//!
//! **Events generated:** down `CastUnrel` (gossip), `Stable`, `Failed` (passed on); up
//! `Stable`. Other events pass through (`NoHdr` on unreliable casts and sends). Malformed
//! gossip (wrong vector length, undecodable) is dropped and counted (`bad`).
//!
//! **Memory.** `n × n` counters for a view of `n`; a gossip is `2n` varints.
//!
//! **Tests:** `tests/batch.rs`: a batch of casts counted and handed on at once (`handle_ups`)
//! as one at a time, stability announced once per batch and never earlier; unit tests in
//! `tests/stable.rs` (exact outputs: counting, stability from
//! gossip, staggered deadlines, quiescence, hostile input, failed members), bolero header
//! round-trips and arbitrary bytes; with `nak` in `tests/sim_reliable.rs` (every buffer freed
//! after the run quiesces, bounded under steady load); in the whole `reliable` stack with a
//! crashed member in `tests/failed.rs` (a `stable` blind to the failure must be caught).

use std::collections::VecDeque;
use thoth_stack::wire::var_len;
use thoth_stack::{
    Args, Cx, Dn, Dump, Duration, Layer, Msg, Props, Reader, Registry, Time, Up, Wire, WireError, Writer,
};

/// The stable layer's header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StableHdr {
    /// Unreliable casts and sends: not counted.
    NoHdr,
    /// A reliable cast: counted when it comes up.
    Cast,
    /// What the sender received from each member, and the stability it computed.
    Gossip {
        /// Per rank: casts of that rank the sender has received.
        recv: Vec<u64>,
        /// Per rank: casts of that rank the sender knows every live member received (as long
        /// as `recv`).
        stable: Vec<u64>,
    },
}

const NO_HDR: u8 = 0;
const CAST: u8 = 1;
const GOSSIP: u8 = 2;

/// Most members a gossip may describe (ranks are `u16`).
const MAX_MEMBERS: u64 = 1 << 16;

impl Wire for StableHdr {
    thoth_stack::nothing!(StableHdr::Cast);
    fn encoded_len(&self) -> usize {
        1 + match self {
            StableHdr::NoHdr | StableHdr::Cast => 0,
            StableHdr::Gossip { recv, stable } => {
                var_len(recv.len() as u64) + recv.iter().chain(stable).map(|&v| var_len(v)).sum::<usize>()
            }
        }
    }

    /// Encoding a `Gossip` whose two vectors differ in length is a bug.
    fn encode(&self, w: &mut Writer<'_>) {
        match self {
            StableHdr::NoHdr => w.put_u8(NO_HDR),
            StableHdr::Cast => w.put_u8(CAST),
            StableHdr::Gossip { recv, stable } => {
                debug_assert_eq!(recv.len(), stable.len());
                w.put_u8(GOSSIP);
                w.put_var(recv.len() as u64);
                for &v in recv.iter().chain(stable) {
                    w.put_var(v);
                }
            }
        }
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(match r.u8()? {
            NO_HDR => StableHdr::NoHdr,
            CAST => StableHdr::Cast,
            GOSSIP => {
                let n = r.var()?;
                // Each value takes at least a byte: a length beyond the bytes left is a lie.
                if n > MAX_MEMBERS || n.saturating_mul(2) > r.remaining() as u64 {
                    return Err(WireError::BadValue);
                }
                let mut read = || (0..n).map(|_| r.var()).collect::<Result<Vec<u64>, _>>();
                let recv = read()?;
                let stable = read()?;
                StableHdr::Gossip { recv, stable }
            }
            _ => return Err(WireError::BadTag),
        })
    }
}

/// Parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Gossip period.
    pub period: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config { period: Duration::from_millis(20) }
    }
}

/// Registers `stable` and its parameter `period_ms` (at least 1).
pub fn register(r: &mut Registry) {
    r.register("stable", "stability detection by staggered gossip of received counts", |a: &mut Args| {
        let period = Duration::from_millis(a.get("period_ms", 20u64)?);
        if period.is_zero() {
            return Err("`period_ms` must be at least 1".into());
        }
        Ok(Box::new(Stable::new(Config { period })))
    });
}

#[derive(Default)]
struct Counters {
    gossip_sent: u64,
    gossip_rcvd: u64,
    announced: u64,
    bad: u64,
    from_failed: u64,
}

/// The stability layer; see the module documentation.
pub struct Stable {
    cfg: Config,
    /// Set from the view at the first event.
    n: usize,
    me: usize,
    /// `seen[m][r]`: casts of `r` member `m` said it received; `seen[me]` is this member's.
    seen: Vec<Vec<u64>>,
    stable: Vec<u64>,
    /// Members `Dn::Failed` named, by rank: left out of the minimum.
    failed: Vec<bool>,
    /// Something to tell: a cast received since the last gossip, or a peer behind.
    dirty: bool,
    due: Option<Time>,
    last_gossip: Option<Time>,
    c: Counters,
}

impl Default for Stable {
    fn default() -> Self {
        Stable::new(Config::default())
    }
}

impl Stable {
    /// A stable layer; its counters are sized from the view at `init`.
    pub fn new(cfg: Config) -> Stable {
        Stable {
            cfg,
            n: 0,
            me: 0,
            seen: Vec::new(),
            stable: Vec::new(),
            failed: Vec::new(),
            dirty: false,
            due: None,
            last_gossip: None,
            c: Counters::default(),
        }
    }

    /// Casts of each rank this member received.
    pub fn received(&self) -> &[u64] {
        self.seen.get(self.me).map_or(&[], |v| v)
    }

    /// The stability vector computed so far.
    pub fn stability(&self) -> &[u64] {
        &self.stable
    }

    /// The first gossip slot at or after `now` (after the last gossip).
    fn slot(&self, now: Time) -> Time {
        let p = self.cfg.period.as_nanos().max(1) as u64;
        let offset = p / self.n as u64 * self.me as u64;
        let t = now.as_nanos();
        let mut s = if t <= offset { offset } else { offset + (t - offset).div_ceil(p) * p };
        if self.last_gossip.is_some_and(|l| l.as_nanos() >= s) {
            s += p;
        }
        Time::from_nanos(s)
    }

    /// Recomputes stability, announces growth, and arms or disarms the gossip timer.
    fn update(&mut self, cx: &mut Cx<'_>) {
        let mut grew = false;
        for r in 0..self.n {
            let live = self.seen.iter().zip(&self.failed).filter(|&(_, &f)| !f);
            let min = live.map(|(row, _)| row[r]).min().unwrap_or(0);
            if min > self.stable[r] {
                self.stable[r] = min;
                grew = true;
            }
        }
        if grew {
            self.c.announced += 1;
            cx.up(Up::Stable(self.stable.clone()));
            cx.dn(Dn::Stable(self.stable.clone()));
        }
        if self.n == 1 {
            self.dirty = false; // nobody to tell
        }
        let unstable = self.stable != self.seen[self.me];
        if self.dirty || unstable {
            if self.due.is_none() {
                self.due = Some(self.slot(cx.now));
            }
        } else {
            self.due = None;
        }
    }

    fn gossip(&mut self, from: usize, recv: Vec<u64>, stable: Vec<u64>, cx: &mut Cx<'_>) {
        if recv.len() != self.n || stable.len() != self.n {
            self.c.bad += 1;
            return;
        }
        self.c.gossip_rcvd += 1;
        for (s, v) in self.seen[from].iter_mut().zip(recv) {
            *s = (*s).max(v);
        }
        // The peer has not learned everything this member received: tell it again.
        if stable.iter().zip(&self.seen[self.me]).any(|(s, mine)| s < mine) {
            self.dirty = true;
        }
        self.update(cx);
    }
}

impl Layer for Stable {
    fn name(&self) -> &'static str {
        "stable"
    }
    fn requires(&self) -> Props {
        Props::RELIABLE_CAST
    }
    fn provides(&self) -> Props {
        Props::STABLE
    }

    fn init(&mut self, cx: &mut Cx<'_>) {
        self.n = cx.view.len().max(1);
        self.me = cx.rank.index().min(self.n - 1);
        self.seen = vec![vec![0; self.n]; self.n];
        self.stable = vec![0; self.n];
        self.failed = vec![false; self.n];
    }

    fn max_header(&self, _: &thoth_stack::View) -> usize {
        StableHdr::Cast.encoded_len()
    }
    fn handle_dn(&mut self, ev: Dn, cx: &mut Cx<'_>) {
        if let Dn::Failed(ranks) = ev {
            cx.dn(Dn::Failed(ranks.clone()));
            for f in ranks.iter().map(|r| r.index()) {
                if f < self.n && f != self.me {
                    self.failed[f] = true;
                }
            }
            return self.update(cx);
        }
        let mut ev = ev;
        // Only reliable casts are counted; everything else says nothing.
        let hdr = if matches!(ev, Dn::Cast(_)) { StableHdr::Cast } else { StableHdr::NoHdr };
        if let Some(m) = ev.msg_mut() {
            m.push(&hdr);
        }
        cx.dn(ev);
    }

    fn handle_ups(&mut self, evs: &mut VecDeque<Up>, cx: &mut Cx<'_>) {
        // The data path: casts of members of the view (stable's nothing is `Cast`) are
        // counted and pass on all at once; stability is then computed once for the batch,
        // announced after the casts that made it (never before, as one at a time does).
        if evs.is_empty()
            || !evs.iter().all(|e| e.is_bare_cast() && matches!(e, Up::Cast { from, .. } if from.index() < self.n))
        {
            return thoth_stack::layer::each_up(self, evs, cx);
        }
        let me = self.me;
        for e in evs.iter() {
            if let Up::Cast { from, .. } = e {
                self.seen[me][from.index()] += 1;
            }
        }
        self.dirty = true;
        cx.up_all(evs);
        self.update(cx);
    }
    fn handle_up(&mut self, ev: Up, cx: &mut Cx<'_>) {
        match ev {
            Up::Cast { from, mut msg } => {
                let f = from.index();
                match msg.pop::<StableHdr>() {
                    _ if f >= self.n => self.c.bad += 1,
                    Ok(StableHdr::NoHdr) => cx.up(Up::Cast { from, msg }),
                    Ok(StableHdr::Cast) => {
                        let me = self.me;
                        self.seen[me][f] += 1;
                        self.dirty = true;
                        cx.up(Up::Cast { from, msg });
                        self.update(cx);
                    }
                    Ok(StableHdr::Gossip { .. }) if f == self.me => {} // own gossip, looped back
                    Ok(StableHdr::Gossip { .. }) if self.failed[f] => self.c.from_failed += 1,
                    Ok(StableHdr::Gossip { recv, stable }) => self.gossip(f, recv, stable, cx),
                    Err(_) => self.c.bad += 1,
                }
            }
            Up::Send { from, mut msg } => match msg.pop::<StableHdr>() {
                Ok(StableHdr::NoHdr) => cx.up(Up::Send { from, msg }),
                _ => self.c.bad += 1,
            },
            other => cx.up(other),
        }
    }

    fn poll_timeout(&self) -> Option<Time> {
        self.due
    }

    fn handle_timeout(&mut self, cx: &mut Cx<'_>) {
        self.due = None;
        if self.n == 0 {
            return;
        }
        let unstable = self.stable != self.seen[self.me];
        if self.dirty || unstable {
            let mut m = Msg::new(Default::default());
            m.push(&StableHdr::Gossip { recv: self.seen[self.me].clone(), stable: self.stable.clone() });
            cx.dn(Dn::CastUnrel(m));
            self.c.gossip_sent += 1;
            self.dirty = false;
            self.last_gossip = Some(cx.now);
        }
        self.update(cx);
    }

    fn dump(&self, out: &mut Vec<Dump>) {
        let c = &self.c;
        let unstable: u64 = self.received().iter().zip(&self.stable).map(|(r, s)| r.saturating_sub(*s)).sum();
        out.push(Dump {
            layer: "stable",
            counters: vec![
                ("gossip_sent", c.gossip_sent),
                ("gossip_rcvd", c.gossip_rcvd),
                ("announced", c.announced),
                ("bad", c.bad),
                ("from_failed", c.from_failed),
            ],
            gauges: vec![("unstable", unstable)],
            state: format!("recv {:?} stable {:?}", self.received(), self.stable),
            ..Dump::default()
        });
    }
}
