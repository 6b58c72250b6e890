//! Shared harness for the simulated `gms` tests: a `World` of endpoints joining one group
//! through `chk_vsync:gms:heartbeat:reliable`, an application that casts numbered payloads,
//! and a global virtual-synchrony checker over every node's recorded events.
//!
//! Node `i` (0-based) of a world runs endpoints `EndpointId((i + 1) * 100 + incarnation)`, so a
//! restarted node is a new member. Every cast payload is the text `id:incarnation:ltime:coord:seq`
//! (sender id, its incarnation, the view id at send time, a per-incarnation sequence number
//! counting only the casts `Endpoint::cast` accepted), padded with `pad` bytes of filler when
//! asked; the world records every accepted cast.
//!
//! `World::check` checks, per incarnation of each node: (a) view ids strictly increase, and
//! a view id names one view (every node that installed it saw the same members, flags);
//! (b) a cast is delivered in the view it was sent in, from the id that sent it; (c) per
//! sender and view, the deliveries are exactly a prefix of what that sender cast in that view
//! (no duplicate, no gap, FIFO, nothing invented); (d) self delivery: a node that installed a
//! view after V delivered in V every cast it had cast in V; (e) agreement: nodes that installed
//! V and then the same next view delivered the same casts in V; (g) no `Event::Error` (from
//! `chk_vsync`, and the checker of the ordering layer if any); with `World::order` set, (h)
//! total order (`check_total`) or (i) causal order (`check_causal`), and with safe delivery
//! (u) uniform delivery (`check_uniform`). With `primary` on, `check_primary` adds (f): two primary views of one lineage
//! whose lifetimes overlap share a member (a view's lifetime: from its first installation by
//! any node to the last moment any node was in it — until that node installed another, exited
//! or crashed; lineages: see `check_primary`).
//! Every violation message names the seed.
#![allow(dead_code)]

pub mod hostile;

use std::collections::{BTreeMap, BTreeSet};
use thoth_layers::debug::chk_causal::ChkCausal;
use thoth_layers::debug::chk_total::ChkTotal;
use thoth_layers::debug::chk_vsync::ChkVsync;
use thoth_layers::order::causal::{self, Causal};
use thoth_layers::order::lamport::{self, Lamport};
use thoth_layers::order::sequencer::{self, Sequencer};
use thoth_layers::order::token::{self, Token};
use thoth_membership::gms::{self, Gms};
use thoth_stack::Rng;
use thoth_stack::sim::{Link, NodeId, Sim};
use thoth_stack::{
    AllowList, Bytes, Config, Duration, Endpoint, EndpointId, Event, GroupId, GroupSecret, Identity, Security, Stack,
    Time, View, ViewId,
};

pub const GROUP: GroupId = GroupId(7);

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub fn at(d: Duration) -> Time {
    Time::ZERO + d
}

/// The ordering layer of a group under test (see `stack`), built in code for its test knobs.
#[derive(Clone, Debug)]
pub enum Order {
    Total(sequencer::Config),
    Token(token::Config),
    Lamport(lamport::Config),
    Causal(causal::Config),
}

impl Order {
    pub fn safe(&self) -> bool {
        match self {
            Order::Total(c) => c.safe,
            Order::Token(c) => c.safe,
            Order::Lamport(c) => c.safe,
            Order::Causal(c) => c.safe,
        }
    }
}

/// The stack of every view: the checker on top of gms, the heartbeat detector, the reliable
/// layers (`reliable`, a spec: `"reliable"` unless a test sets its budgets; gms built in code
/// so that tests can set `gms::Config`'s test knobs). With `order`, its checker (`chk_total`
/// or `chk_causal`) goes right above gms (below `chk_vsync`, which then does not count the
/// digests `chk_total` casts at a view's start among the casts it checks) and the ordering
/// layer right above `stable` in the reliable layers.
pub fn stack(cfg: &gms::Config, reliable: &str, order: Option<&Order>) -> Stack {
    let registry = thoth_layers::registry();
    let mut b = Stack::builder().push(ChkVsync::new());
    match order {
        Some(Order::Total(_) | Order::Token(_) | Order::Lamport(_)) => b = b.push(ChkTotal::new()),
        Some(Order::Causal(_)) => b = b.push(ChkCausal::new()),
        None => {}
    }
    b = b.push(Gms::new(cfg.clone())).push(thoth_failure_detector::heartbeat::Heartbeat::default());
    let mut below = registry.layers(reliable).expect("the reliable layers build");
    if let Some(o) = order {
        let at = below.iter().position(|l| l.name() == "stable").expect("the reliable layers have `stable`");
        let layer: Box<dyn thoth_stack::Layer> = match o {
            Order::Total(c) => Box::new(Sequencer::new(c.clone())),
            Order::Token(c) => Box::new(Token::new(c.clone())),
            Order::Lamport(c) => Box::new(Lamport::new(c.clone())),
            Order::Causal(c) => Box::new(Causal::new(c.clone())),
        };
        below.insert(at, layer);
    }
    for l in below {
        b = b.push_boxed(l);
    }
    b.build().expect("chk_vsync:[chk_total or chk_causal:]gms:heartbeat:reliable is well formed")
}

/// A cast as the application made it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sent {
    pub inc: u32,
    pub view: ViewId,
    pub seq: u64,
    /// Cast as asking for FIFO order only (`World::fifo_every`).
    pub fifo: bool,
    pub at: Time,
    /// With causal order: the casts it depends on directly (see `World::causes`).
    pub causes: Vec<Payload>,
}

impl Sent {
    /// The payload it was.
    pub fn payload(&self, sender: EndpointId) -> Payload {
        Payload { sender, inc: self.inc, view: self.view, seq: self.seq, fifo: self.fifo }
    }
}

/// A decoded payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Payload {
    pub sender: EndpointId,
    pub inc: u32,
    pub view: ViewId,
    pub seq: u64,
    /// Cast as asking for FIFO order only: in no order with the sender's other casts, and
    /// out of the checks of an order.
    pub fifo: bool,
}

impl Payload {
    pub fn encode(&self, pad: usize) -> Bytes {
        let (sender, inc, view, seq, fifo) = (self.sender.0, self.inc, self.view, self.seq, self.fifo as u8);
        let mut s = format!("{sender}:{inc}:{}:{}:{seq}:{fifo}", view.ltime, view.coord.0);
        if pad > 0 {
            s.push('#');
            s.extend(std::iter::repeat_n('.', pad));
        }
        Bytes::from(s)
    }

    pub fn decode(b: &[u8]) -> Option<Payload> {
        let s = std::str::from_utf8(b).ok()?;
        let s = s.split('#').next()?;
        let f: Vec<u64> = s.split(':').map(|x| x.parse().ok()).collect::<Option<_>>()?;
        let [sender, inc, ltime, coord, seq, fifo @ (0 | 1)] = f[..] else { return None };
        Some(Payload {
            sender: EndpointId(sender),
            inc: u32::try_from(inc).ok()?,
            view: ViewId { ltime, coord: EndpointId(coord) },
            seq,
            fifo: fifo == 1,
        })
    }
}

/// One node incarnation's stay in one view.
#[derive(Clone, Debug)]
pub struct Seg {
    pub node: NodeId,
    pub inc: u32,
    pub view: View,
    pub at: Time,
    /// The view it installed next, if it did.
    pub next: Option<ViewId>,
    /// When the stay ended (next view, exit, crash), if it did.
    pub until: Option<Time>,
    pub dels: Vec<Payload>,
    /// How many of `dels` came before the first `Block` of the stay (a view change began).
    pub blocked: Option<usize>,
}

pub struct World {
    pub sim: Sim,
    pub nodes: Vec<NodeId>,
    pub cfg: gms::Config,
    /// What each node's application cast (accepted casts only), over all incarnations.
    pub sent: Vec<Vec<Sent>>,
    /// When each (node, incarnation) crashed.
    pub crashes: BTreeMap<(NodeId, u32), Time>,
    /// Bytes of filler in each payload.
    pub pad: usize,
    pub transfer_state: bool,
    /// With `transfer_state`: what a coordinator's application answers a state request
    /// with (after every `run_for`), and how many requests each node had answered.
    pub state: Bytes,
    pub answered: Vec<usize>,
    /// The application answers `Event::Block` (with `gms::Config::block` set) at the next
    /// `run_for`; how many Blocks each node had answered.
    pub block_ok: bool,
    pub blocks: Vec<usize>,
    /// The spec of the reliable layers under gms, and the endpoint's `hold_bytes`.
    pub reliable: String,
    pub hold_bytes: usize,
    /// A group with an ordering layer (see `stack`), checked by `check` (h) or (i).
    pub order: Option<Order>,
    /// Every this many casts of a node, one asks for FIFO order only (`Endpoint::cast_fifo`;
    /// 0: none): FIFO is then checked per kind, and an order's checks leave such casts out.
    pub fifo_every: u64,
    /// Frame protection: every datagram sealed under one group secret, or under member
    /// key pairs (node `k`'s key `k`, keys 1..=`LISTED` allowed), each incarnation of a node
    /// with an incarnation number of its own. Off unless a test asks, or
    /// `THOTH_SIM_SECURE=1` (`=pairs`) runs every scenario secured.
    pub secure: Protect,
    /// Per node, for the causes of its casts: how far into its deliveries it has read, and
    /// the last cast delivered from each sender.
    seen: Vec<(usize, BTreeMap<EndpointId, Payload>)>,
}

/// How a `World`'s datagrams are protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protect {
    Off,
    Shared,
    KeyPairs,
}

/// Nodes whose keys a `World` under `Protect::KeyPairs` allows.
const LISTED: u64 = 16;

fn identity(k: u64) -> Identity {
    Identity::new([k as u8; 32])
}

impl World {
    pub fn new(seed: u64, cfg: gms::Config) -> World {
        World {
            sim: Sim::new(seed),
            nodes: Vec::new(),
            cfg,
            sent: Vec::new(),
            crashes: BTreeMap::new(),
            pad: 0,
            transfer_state: false,
            state: Bytes::new(),
            answered: Vec::new(),
            block_ok: false,
            blocks: Vec::new(),
            reliable: "reliable".to_string(),
            hold_bytes: Config::joining(GROUP, EndpointId(0)).hold_bytes,
            order: None,
            fifo_every: 0,
            secure: match std::env::var("THOTH_SIM_SECURE").as_deref() {
                Ok("1") => Protect::Shared,
                Ok("pairs") => Protect::KeyPairs,
                _ => Protect::Off,
            },
            seen: Vec::new(),
        }
    }

    pub fn seed(&self) -> u64 {
        self.sim.seed()
    }

    pub fn now(&self) -> Time {
        self.sim.now()
    }

    /// Adds (and starts) a node that joins the group.
    pub fn add(&mut self) -> NodeId {
        let k = self.nodes.len() as u64 + 1;
        let base = k * 100;
        let (cfg, transfer_state) = (self.cfg.clone(), self.transfer_state);
        let (reliable, hold_bytes, order) = (self.reliable.clone(), self.hold_bytes, self.order.clone());
        let secure = self.secure;
        let n = self.sim.add_node(move |spawn| {
            let me = EndpointId(base + spawn.incarnation as u64);
            let mut ecfg = Config { seed: spawn.seed, transfer_state, hold_bytes, ..Config::joining(GROUP, me) };
            let incarnation = spawn.seed;
            ecfg = ecfg.secured(match secure {
                Protect::Off => Security::Insecure,
                Protect::Shared => Security::Shared { secret: GroupSecret::new([0x5e; 32]), incarnation },
                Protect::KeyPairs => Security::KeyPairs {
                    identity: identity(k),
                    allow: AllowList::new((1..=LISTED).map(|k| identity(k).public())).expect("a list"),
                    incarnation,
                    seed: GroupSecret::new(core::array::from_fn(|i| (spawn.seed >> (i % 8 * 8)) as u8)),
                },
            });
            let (cfg, reliable, order) = (cfg.clone(), reliable.clone(), order.clone());
            Endpoint::new(ecfg, move |_view: &View| stack(&cfg, &reliable, order.as_ref())).expect("a joining endpoint")
        });
        self.nodes.push(n);
        self.sent.push(Vec::new());
        self.seen.push((0, BTreeMap::new()));
        n
    }

    pub fn add_many(&mut self, k: usize) -> Vec<NodeId> {
        (0..k).map(|_| self.add()).collect()
    }

    pub fn crash(&mut self, n: NodeId) {
        if self.sim.is_up(n) {
            self.crashes.insert((n, self.sim.incarnation(n)), self.now());
        }
        self.sim.crash(n);
    }

    pub fn restart(&mut self, n: NodeId) {
        self.crash(n);
        self.sim.restart(n);
    }

    pub fn id(&self, n: NodeId) -> EndpointId {
        self.sim.id(n)
    }

    /// Up and not left.
    pub fn is_live(&self, n: NodeId) -> bool {
        self.sim.endpoint(n).is_some_and(|e| !e.has_left())
    }

    pub fn live(&self) -> Vec<NodeId> {
        self.nodes.iter().copied().filter(|&n| self.is_live(n)).collect()
    }

    pub fn view(&self, n: NodeId) -> Option<View> {
        self.sim.endpoint(n).map(|e| e.view().clone())
    }

    /// The application of `n` casts one numbered payload; true if the endpoint took it.
    pub fn cast(&mut self, n: NodeId) -> bool {
        let Some(ep) = self.sim.endpoint(n) else { return false };
        // Not before the first view: a joining endpoint takes casts until its stack first
        // runs (the core starts it with casts open), and gms drops what its provisional view
        // took (see the report on the core: `Endpoint::new` should start a joiner blocked).
        if ep.has_left() || !ep.can_cast() || ep.view().id.ltime == 0 {
            return false;
        }
        let view = ep.view().id;
        let inc = self.sim.incarnation(n);
        let seq = self.sent[n.index()].iter().filter(|s| s.inc == inc).count() as u64;
        let fifo = self.fifo_every > 0 && seq % self.fifo_every == self.fifo_every - 1;
        let p = Payload { sender: ep.me(), inc, view, seq, fifo };
        let causes = if fifo { Vec::new() } else { self.causes(n, inc, view) };
        let data = p.encode(self.pad);
        let ok = if fifo { self.sim.cast_fifo(n, data) } else { self.sim.cast(n, data) }.is_ok();
        if ok {
            let now = self.now();
            self.sent[n.index()].push(Sent { inc, view, seq, fifo, at: now, causes });
        }
        ok
    }

    /// With causal order: the last cast `n` (incarnation `inc`) delivered from each sender in
    /// `view` (whatever it casts now depends on them, and on their causes).
    fn causes(&mut self, n: NodeId, inc: u32, view: ViewId) -> Vec<Payload> {
        if !matches!(self.order, Some(Order::Causal(_))) {
            return Vec::new();
        }
        let (read, last) = &mut self.seen[n.index()];
        for d in &self.sim.delivered(n)[*read..] {
            if let Some(p) = Payload::decode(&d.data).filter(|p| d.incarnation == inc && !p.fifo) {
                last.insert(p.sender, p);
            }
        }
        *read = self.sim.delivered(n).len();
        last.values().filter(|p| p.view == view).copied().collect()
    }

    pub fn run_for(&mut self, d: Duration) {
        self.sim.run_for(d);
        if self.transfer_state {
            let (mut answered, state) = (core::mem::take(&mut self.answered), self.state.clone());
            self.answer_state_requests(&mut answered, &state);
            self.answered = answered;
        }
        if self.block_ok {
            self.blocks.resize(self.nodes.len(), 0);
            for n in self.nodes.clone() {
                let b = self.sim.events(n).iter().filter(|e| matches!(e.event, Event::Block)).count();
                if b > self.blocks[n.index()] {
                    self.blocks[n.index()] = b;
                    let _ = self.sim.with(n, |ep, now| ep.block_ok(now));
                }
            }
        }
    }

    /// One fault of a chaos run, drawn from `r`: a crash (never of the last live node), a
    /// restart, a symmetric partition of all `nodes`, a one-way cut, healing, a leave, or
    /// (with `joins`, at most 8 nodes) a new endpoint joining, added to `nodes`.
    pub fn fault(&mut self, r: &mut Rng, nodes: &mut Vec<NodeId>, joins: bool) {
        let pick = |r: &mut Rng, v: &[NodeId]| v[r.below(v.len() as u64) as usize];
        let live = self.live();
        let down: Vec<_> = nodes.iter().copied().filter(|&x| !self.sim.is_up(x)).collect();
        match r.below(8) {
            0 | 1 if live.len() > 1 => {
                let x = pick(r, &live);
                self.crash(x);
            }
            2 if !down.is_empty() => {
                let x = pick(r, &down);
                self.restart(x);
            }
            3 => {
                self.sim.heal_all();
                let (a, b): (Vec<_>, Vec<_>) = nodes.iter().partition(|_| r.chance(0.5));
                self.sim.partition(&a, &b);
            }
            4 => {
                let (a, b) = (pick(r, nodes), pick(r, nodes));
                if a != b {
                    self.sim.cut(&[a], &[b]);
                }
            }
            5 => self.sim.heal_all(),
            6 if live.len() > 1 && r.chance(0.3) => {
                let x = pick(r, &live);
                let _ = self.sim.leave(x);
            }
            7 if joins && nodes.len() < 8 => nodes.push(self.add()),
            _ => {}
        }
    }

    /// The chaos workload of the property runs: every directed link between `nodes` gets its
    /// own faults (`faulty_link`, up to 10 % loss); then until `base + [0, spread)` ms every
    /// node casts at each 20 ms tick with a per-run probability (every tick for 300 ms after
    /// a fault: storms during view changes), and about every 500 ms `fault` strikes. When
    /// the workload ended.
    pub fn chaos(
        &mut self,
        r: &mut Rng,
        nodes: &mut Vec<NodeId>,
        (base, spread): (u64, u64),
        mut fault: impl FnMut(&mut World, &mut Rng, &mut Vec<NodeId>),
    ) -> Time {
        for &a in nodes.iter() {
            for &b in nodes.iter() {
                if a != b {
                    let l = faulty_link(r, 0.10);
                    self.sim.set_link(a, b, l);
                }
            }
        }
        let rate = 0.05 + r.unit() * 0.5;
        let end = at(ms(base + r.below(spread)));
        let mut storm_until = Time::ZERO;
        while self.now() < end {
            let p = if self.now() < storm_until { 1.0 } else { rate };
            for &x in nodes.iter() {
                if r.chance(p) {
                    self.cast(x);
                }
            }
            if r.chance(0.04) {
                storm_until = self.now() + ms(300);
                fault(self, r, nodes);
            }
            self.run_for(ms(20));
        }
        end
    }

    /// Every partition and cut healed, and every link between `nodes` perfect.
    pub fn heal(&mut self, nodes: &[NodeId]) {
        self.sim.heal_all();
        for &a in nodes {
            for &b in nodes {
                if a != b {
                    self.sim.set_link(a, b, Link::default());
                }
            }
        }
    }

    /// Runs in `step` increments until `done`, at most `limit`; the time it took.
    pub fn run_until(
        &mut self,
        step: Duration,
        limit: Duration,
        mut done: impl FnMut(&World) -> bool,
    ) -> Option<Duration> {
        let start = self.now();
        loop {
            if done(self) {
                return Some(self.now().since(start));
            }
            if self.now().since(start) >= limit {
                return None;
            }
            self.run_for(step);
        }
    }

    /// Runs until `converged` holds and then still holds, in the same view, `quiet` later
    /// (a dead endpoint merged in at the last moment is excluded again within that); at most
    /// `limit` to the start of the quiet span. The time to the (last) convergence.
    pub fn settle(&mut self, limit: Duration, quiet: Duration) -> Option<Duration> {
        let start = self.now();
        loop {
            let rest = limit.checked_sub(self.now().since(start))?;
            self.run_until(ms(10), rest, |w| w.converged())?;
            let took = self.now().since(start);
            let id = self.live().first().and_then(|&n| self.view(n)).map(|v| v.id);
            self.run_for(quiet);
            if self.converged() && self.live().first().and_then(|&n| self.view(n)).map(|v| v.id) == id {
                return Some(took);
            }
        }
    }

    /// Every live node is in one real view whose members are exactly the live nodes, and no
    /// view change is under way.
    pub fn converged(&self) -> bool {
        let live = self.live();
        let ids: BTreeSet<EndpointId> = live.iter().map(|&n| self.id(n)).collect();
        let Some(v) = live.first().and_then(|&n| self.view(n)) else { return true };
        v.id.ltime > 0
            && v.members.iter().copied().collect::<BTreeSet<_>>() == ids
            && v.members.len() == ids.len()
            && live.iter().all(|&n| self.view(n).is_some_and(|w| w.id == v.id))
            && live.iter().all(|&n| self.idle(n))
    }

    /// No view change under way at `n` (from its gms state: no flush, no change).
    pub fn idle(&self, n: NodeId) -> bool {
        self.sim
            .endpoint(n)
            .and_then(|e| e.dump().into_iter().find(|d| d.layer == "gms"))
            .is_some_and(|d| d.state.contains("flush=None change=None"))
    }

    /// The view change times (first installation of each view by anyone) after `since`.
    pub fn installs_after(&self, since: Time) -> Vec<(Time, View)> {
        let mut first: BTreeMap<ViewId, (Time, View)> = BTreeMap::new();
        for &n in &self.nodes {
            for e in self.sim.events(n) {
                if let Event::View(v) = &e.event
                    && e.at >= since
                {
                    first.entry(v.id).or_insert((e.at, v.clone()));
                }
            }
        }
        let mut v: Vec<_> = first.into_values().collect();
        v.sort_by_key(|(t, _)| *t);
        v
    }

    /// The time by which every live node has installed the view it is in now.
    pub fn last_install(&self) -> Option<Time> {
        self.live()
            .iter()
            .filter_map(|&n| {
                let id = self.view(n)?.id;
                self.sim.events(n).iter().rev().find(|e| matches!(&e.event, Event::View(v) if v.id == id)).map(|e| e.at)
            })
            .max()
    }

    /// Liveness after the faults: every live node casts one payload (retrying while flow
    /// control or a view change holds casts back), and within `limit` every live node
    /// delivers every one of them.
    pub fn check_all_deliver(&mut self, limit: Duration) -> Result<(), String> {
        let seed = self.seed();
        let start = self.now();
        let live = self.live();
        let mut want: Vec<Payload> = Vec::new();
        let mut todo = live.clone();
        while !todo.is_empty() {
            let mut left = Vec::new();
            for n in todo {
                if self.cast(n) {
                    let s = self.sent[n.index()].last().expect("just cast");
                    want.push(s.payload(self.id(n)));
                } else {
                    left.push(n);
                }
            }
            todo = left;
            if !todo.is_empty() {
                if self.now().since(start) >= limit {
                    return Err(format!(
                        "seed {seed}: liveness: {todo:?} could not cast for {limit:?}{}",
                        self.describe()
                    ));
                }
                self.run_for(ms(10));
            }
        }
        let missing = |w: &World| -> Vec<(NodeId, Payload)> {
            let mut out = Vec::new();
            for &n in &live {
                let inc = w.sim.incarnation(n);
                let got: BTreeSet<Payload> = w
                    .sim
                    .delivered(n)
                    .iter()
                    .filter(|d| d.incarnation == inc)
                    .filter_map(|d| Payload::decode(&d.data))
                    .collect();
                out.extend(want.iter().filter(|p| !got.contains(p)).map(|p| (n, *p)));
            }
            out
        };
        let rest = limit.saturating_sub(self.now().since(start));
        if self.run_until(ms(10), rest, |w| missing(w).is_empty()).is_none() {
            let m = missing(self);
            return Err(format!(
                "seed {seed}: liveness: {} deliveries missing after {limit:?}, e.g. {:?}{}",
                m.len(),
                &m[..m.len().min(4)],
                self.describe()
            ));
        }
        Ok(())
    }

    /// Segments of every node incarnation's stays in views, and the violations of (a) and
    /// of deliveries outside any view found on the way.
    pub fn segments(&self, errs: &mut Vec<String>) -> Vec<Seg> {
        let seed = self.seed();
        let end = self.now();
        let mut segs: Vec<Seg> = Vec::new();
        for &n in &self.nodes {
            let mut cur: Option<Seg> = None;
            let mut inc = None;
            let close = |cur: &mut Option<Seg>, segs: &mut Vec<Seg>, next: Option<ViewId>, until: Option<Time>| {
                if let Some(mut s) = cur.take() {
                    s.next = next;
                    s.until = until;
                    segs.push(s);
                }
            };
            for e in self.sim.events(n) {
                if inc != Some(e.incarnation) {
                    let t = inc.and_then(|i| self.crashes.get(&(n, i)).copied());
                    close(&mut cur, &mut segs, None, t.or(Some(e.at)));
                    inc = Some(e.incarnation);
                }
                match &e.event {
                    Event::View(v) => {
                        if let Some(c) = &cur
                            && v.id <= c.view.id
                        {
                            errs.push(format!(
                                "seed {seed}: (a) {n:?}#{} installed {:?} after {:?} at {:?}",
                                e.incarnation, v.id, c.view.id, e.at
                            ));
                        }
                        close(&mut cur, &mut segs, Some(v.id), Some(e.at));
                        cur = Some(Seg {
                            node: n,
                            inc: e.incarnation,
                            view: v.clone(),
                            at: e.at,
                            next: None,
                            until: None,
                            dels: Vec::new(),
                            blocked: None,
                        });
                    }
                    Event::Exit => close(&mut cur, &mut segs, None, Some(e.at)),
                    Event::Block => {
                        if let Some(s) = cur.as_mut() {
                            s.blocked.get_or_insert(s.dels.len());
                        }
                    }
                    Event::Cast { from, data } => {
                        let Some(p) = Payload::decode(data) else {
                            errs.push(format!(
                                "seed {seed}: {n:?} delivered an undecodable cast from {from:?} at {:?}: {} bytes {:?}",
                                e.at,
                                data.len(),
                                String::from_utf8_lossy(&data[..data.len().min(60)])
                            ));
                            continue;
                        };
                        if p.sender != *from {
                            errs.push(format!("seed {seed}: (b) {n:?} delivered {p:?} as from {from:?}"));
                        }
                        match cur.as_mut() {
                            Some(s) => s.dels.push(p),
                            None => errs.push(format!("seed {seed}: {n:?} delivered {p:?} outside any view")),
                        }
                    }
                    Event::Error { layer, detail } => {
                        errs.push(format!("seed {seed}: (g) {n:?}#{} {layer} at {:?}: {detail}", e.incarnation, e.at))
                    }
                    _ => {}
                }
            }
            let t = inc.and_then(|i| self.crashes.get(&(n, i)).copied());
            let _ = end;
            close(&mut cur, &mut segs, None, t);
        }
        segs
    }

    /// The global virtual-synchrony check over everything recorded so far.
    pub fn check(&self) -> Result<(), String> {
        let seed = self.seed();
        let mut errs = Vec::new();
        let segs = self.segments(&mut errs);
        // Per sender incarnation, view and kind (FIFO-only or not): the casts it made there.
        let mut cast_in: BTreeMap<(EndpointId, ViewId, bool), Vec<u64>> = BTreeMap::new();
        for &n in &self.nodes {
            for s in &self.sent[n.index()] {
                let id = EndpointId((n.index() as u64 + 1) * 100 + s.inc as u64);
                cast_in.entry((id, s.view, s.fifo)).or_default().push(s.seq);
            }
        }
        // (a') one view id, one view: every node that installed it saw the same members.
        let mut same: BTreeMap<ViewId, (NodeId, &View)> = BTreeMap::new();
        for s in &segs {
            match same.get(&s.view.id) {
                Some((n2, v)) if **v != s.view => errs.push(format!(
                    "seed {seed}: (a) view {:?} is {:?} at {:?} but {:?} at {n2:?}",
                    s.view.id, s.view.members, s.node, v.members
                )),
                Some(_) => {}
                None => {
                    same.insert(s.view.id, (s.node, &s.view));
                }
            }
        }
        let mut agree: BTreeMap<(ViewId, ViewId), (NodeId, u32, Vec<Payload>)> = BTreeMap::new();
        for s in &segs {
            let who = format!("{:?}#{} in {:?}", s.node, s.inc, s.view.id);
            // (b) and (c), FIFO per sender and kind.
            let mut per: BTreeMap<(EndpointId, bool), Vec<u64>> = BTreeMap::new();
            for p in &s.dels {
                if p.view != s.view.id {
                    errs.push(format!("seed {seed}: (b) {who} delivered {p:?} sent in {:?}", p.view));
                    continue;
                }
                per.entry((p.sender, p.fifo)).or_default().push(p.seq);
            }
            for (&(sender, fifo), got) in &per {
                let made = cast_in.get(&(sender, s.view.id, fifo)).map(Vec::as_slice).unwrap_or(&[]);
                if got.len() > made.len() || got[..] != made[..got.len()] {
                    errs.push(format!(
                        "seed {seed}: (c) {who} delivered from {sender:?} seqs {got:?}, not a prefix of its casts there {made:?}"
                    ));
                }
            }
            let me = EndpointId((s.node.index() as u64 + 1) * 100 + s.inc as u64);
            // (d) self delivery.
            for fifo in [false, true].into_iter().filter(|_| s.next.is_some()) {
                let made = cast_in.get(&(me, s.view.id, fifo)).cloned().unwrap_or_default();
                let own = per.get(&(me, fifo)).cloned().unwrap_or_default();
                if own != made {
                    errs.push(format!(
                        "seed {seed}: (d) {who} then {:?}: delivered own {own:?} but cast {made:?}",
                        s.next
                    ));
                }
            }
            // (e) agreement.
            if let Some(next) = s.next {
                let mut set = s.dels.clone();
                set.sort();
                match agree.get(&(s.view.id, next)) {
                    None => {
                        agree.insert((s.view.id, next), (s.node, s.inc, set));
                    }
                    Some((n2, i2, other)) if *other != set => {
                        let a: BTreeSet<_> = set.iter().collect();
                        let b: BTreeSet<_> = other.iter().collect();
                        errs.push(format!(
                            "seed {seed}: (e) {who} and {n2:?}#{i2} both went on to {next:?}; only {:?} had {:?}, only {n2:?} had {:?}",
                            s.node,
                            a.difference(&b).take(5).collect::<Vec<_>>(),
                            b.difference(&a).take(5).collect::<Vec<_>>()
                        ));
                    }
                    Some(_) => {}
                }
            }
        }
        if self.cfg.primary {
            check_primary(seed, &segs, self.now(), &mut errs);
        }
        match &self.order {
            Some(Order::Total(_) | Order::Token(_) | Order::Lamport(_)) => check_total(seed, &segs, &mut errs),
            Some(Order::Causal(_)) => check_causal(seed, &segs, &self.causes_of_all(), &mut errs),
            None => {}
        }
        if self.order.as_ref().is_some_and(Order::safe) {
            check_uniform(seed, &segs, &mut errs);
        }
        if errs.is_empty() {
            Ok(())
        } else {
            // Which checks saw something, before the list is cut short: "(e) 5, (g) 8".
            let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
            for e in &errs {
                let k = e.split(": ").nth(1).and_then(|t| t.split(' ').next()).filter(|k| k.starts_with('('));
                *kinds.entry(k.unwrap_or("other")).or_default() += 1;
            }
            let kinds: Vec<String> = kinds.iter().map(|(k, n)| format!("{k} {n}")).collect();
            let n = errs.len();
            errs.truncate(8);
            Err(format!("{n} violation(s) [{}]:\n{}", kinds.join(", "), errs.join("\n")))
        }
    }

    /// Every cast made and its direct causes (with causal order; see `World::causes`).
    pub fn causes_of_all(&self) -> BTreeMap<Payload, Vec<Payload>> {
        let mut causes = BTreeMap::new();
        for &n in &self.nodes {
            for s in &self.sent[n.index()] {
                let sender = EndpointId((n.index() as u64 + 1) * 100 + s.inc as u64);
                causes.insert(s.payload(sender), s.causes.clone());
            }
        }
        causes
    }

    /// Answers every `Event::StateRequest` not answered yet with `state` (the application of
    /// a coordinator with `Config::transfer_state`); how many it answered.
    pub fn answer_state_requests(&mut self, answered: &mut Vec<usize>, state: &Bytes) -> usize {
        answered.resize(self.nodes.len(), 0);
        let mut asks = Vec::new();
        for &n in &self.nodes {
            let reqs = self.sim.events(n).iter().filter(|e| matches!(e.event, Event::StateRequest)).count();
            for _ in answered[n.index()]..reqs {
                asks.push(n);
            }
            answered[n.index()] = reqs;
        }
        for &n in &asks {
            let st = state.clone();
            let _ = self.sim.with(n, |ep, now| ep.send_state(now, st));
        }
        asks.len()
    }

    /// Every node's events but deliveries (for debugging a seed).
    pub fn history(&self) -> String {
        let mut out = String::new();
        for &n in &self.nodes {
            out.push_str(&format!("\n{n:?}:"));
            let mut casts = 0;
            for e in self.sim.events(n) {
                if let Event::Cast { .. } = e.event {
                    casts += 1;
                    continue;
                }
                let ev = match &e.event {
                    Event::View(v) => format!("View {:?} {:?} p={} sub={:?}", v.id, v.members, v.primary, v.subgroups),
                    Event::State { chunk, last } => format!("State {} bytes last={last}", chunk.len()),
                    other => format!("{other:?}"),
                };
                out.push_str(&format!("\n  {:?} #{} (+{casts} casts) {ev}", e.at, e.incarnation));
                casts = 0;
            }
        }
        for ((n, i), t) in &self.crashes {
            out.push_str(&format!("\ncrash {n:?}#{i} at {t:?}"));
        }
        out
    }

    /// Dumps every live node's view and gms state (for failure messages).
    pub fn describe(&self) -> String {
        let mut out = String::new();
        for &n in &self.nodes {
            let v = self.view(n).map(|v| format!("{:?} {:?}", v.id, v.members));
            let gms = self.sim.endpoint(n).and_then(|e| e.dump().into_iter().find(|d| d.layer == "gms"));
            out.push_str(&format!(
                "\n  {n:?} id {:?} live {} view {v:?} gms {:?}",
                self.id(n),
                self.is_live(n),
                gms.map(|d| d.state)
            ));
        }
        out
    }
}

/// (f): primary views of one lineage whose lifetimes overlap share a member. A lineage
/// starts where an endpoint formed a view from scratch (no member came from another view):
/// with nothing but the network to go by, an endpoint cut off from the group cannot tell
/// "no group yet" from "group unreachable", so such a view is primary by definition; a view
/// belongs to the lineages of every view its members came from.
pub fn check_primary(seed: u64, segs: &[Seg], now: Time, errs: &mut Vec<String>) {
    let mut views: BTreeMap<ViewId, (Time, Time, BTreeSet<EndpointId>, bool)> = BTreeMap::new();
    for s in segs {
        let until = s.until.unwrap_or(now);
        let e =
            views.entry(s.view.id).or_insert((s.at, until, s.view.members.iter().copied().collect(), s.view.primary));
        e.0 = e.0.min(s.at);
        e.1 = e.1.max(until);
    }
    // Lineages: predecessors have smaller logical times, so walk in that order.
    let mut preds: BTreeMap<ViewId, BTreeSet<ViewId>> = BTreeMap::new();
    for s in segs {
        if let Some(next) = s.next {
            preds.entry(next).or_default().insert(s.view.id);
        }
    }
    let mut order: Vec<ViewId> = views.keys().copied().collect();
    order.sort_by_key(|v| (v.ltime, *v));
    let mut roots: BTreeMap<ViewId, BTreeSet<ViewId>> = BTreeMap::new();
    for v in &order {
        let r: BTreeSet<ViewId> = match preds.get(v) {
            Some(p) if !p.is_empty() => p.iter().flat_map(|p| roots.get(p).cloned().unwrap_or_default()).collect(),
            _ => [*v].into(),
        };
        roots.insert(*v, r);
    }
    let prim: Vec<_> = views.iter().filter(|(_, x)| x.3).collect();
    for (i, (a, (a0, a1, am, _))) in prim.iter().enumerate() {
        for (b, (b0, b1, bm, _)) in &prim[i + 1..] {
            let kin = !roots[a].is_disjoint(&roots[b]);
            if kin && a0 < b1 && b0 < a1 && am.is_disjoint(bm) {
                errs.push(format!(
                    "seed {seed}: (f) disjoint primary views coexist: {a:?} {am:?} [{a0:?}, {a1:?}) and {b:?} {bm:?} [{b0:?}, {b1:?})"
                ));
            }
        }
    }
}

/// (h) total order, as the ordering layers provide it (see `thoth_layers::order`):
/// - what members delivered in a view before its change began (their first `Block` there) is
///   in one order: for any two members, the casts both delivered so are in the same relative
///   order (a member that failed may have delivered more of it than any survivor);
/// - members that moved together from a view to the same next view delivered one sequence
///   in it (the end of it, delivered at the flush, included).
///
/// Members that went on to different views (a partition) may complete the view in different
/// orders: each side's flush orders what its members hold and no decision covered.
pub fn check_total(seed: u64, segs: &[Seg], errs: &mut Vec<String>) {
    // Casts that asked for FIFO order only are in no total order.
    let ordered = |ps: &[Payload]| ps.iter().copied().filter(|p| !p.fifo).collect::<Vec<_>>();
    for (view, ss) in &by_view(segs) {
        for (i, a) in ss.iter().enumerate() {
            let pos: BTreeMap<Payload, usize> =
                ordered(before(a)).into_iter().enumerate().map(|(i, p)| (p, i)).collect();
            for b in &ss[i + 1..] {
                let (ad, bd) = (ordered(&a.dels), ordered(&b.dels));
                if a.next.is_some() && a.next == b.next && ad != bd {
                    let at = ad.iter().zip(&bd).position(|(x, y)| x != y).unwrap_or(0);
                    errs.push(format!(
                        "seed {seed}: (h) {:?}#{} and {:?}#{} went from {view:?} to {:?} with different sequences, from delivery {at} on: {:?} vs {:?}",
                        a.node, a.inc, b.node, b.inc, a.next, &ad[at..ad.len().min(at + 3)], &bd[at..bd.len().min(at + 3)]
                    ));
                    continue;
                }
                let mut last: Option<(usize, Payload)> = None;
                for q in before(b) {
                    let Some(&at) = pos.get(q) else { continue };
                    if let Some((prev, p)) = last
                        && at < prev
                    {
                        errs.push(format!(
                            "seed {seed}: (h) in {view:?} before its change, {:?}#{} delivered {p:?} before {q:?}, {:?}#{} after",
                            b.node, b.inc, a.node, a.inc
                        ));
                        break;
                    }
                    last = Some((at, *q));
                }
            }
        }
    }
}

/// What a member delivered in its stay in a view before the view's change began (its first
/// `Block` there).
fn before(s: &Seg) -> &[Payload] {
    &s.dels[..s.blocked.unwrap_or(s.dels.len())]
}

fn by_view(segs: &[Seg]) -> BTreeMap<ViewId, Vec<&Seg>> {
    let mut by_view: BTreeMap<ViewId, Vec<&Seg>> = BTreeMap::new();
    for s in segs {
        by_view.entry(s.view.id).or_default().push(s);
    }
    by_view
}

/// (u) uniform delivery (with `safe`): a cast delivered in a view before its change began
/// by any member, even one that failed right after, is delivered there by every member that
/// went on to a next view. (What a flush delivers is held by the members of its side only: a
/// side completes the view with it, another side does not get it.)
pub fn check_uniform(seed: u64, segs: &[Seg], errs: &mut Vec<String>) {
    for (view, ss) in &by_view(segs) {
        // Casts that asked for FIFO order only go up as they come: not uniform.
        let all: BTreeSet<Payload> = ss.iter().flat_map(|s| before(s).iter().copied()).filter(|p| !p.fifo).collect();
        for s in ss.iter().filter(|s| s.next.is_some()) {
            let got: BTreeSet<Payload> = s.dels.iter().copied().collect();
            if let Some(p) = all.difference(&got).next() {
                errs.push(format!(
                    "seed {seed}: (u) uniform: {p:?} was delivered in {view:?}, but {:?}#{} went on to {:?} without it",
                    s.node, s.inc, s.next
                ));
            }
        }
    }
}

/// (i) causal order: every member delivers a cast only after the casts its sender had
/// delivered (in that view) before casting it: `causes` gives each cast's direct causes,
/// the last cast its sender had delivered from each sender (FIFO order, checked by (c),
/// covers the earlier ones, and each cause's own causes are checked where it was delivered).
pub fn check_causal(seed: u64, segs: &[Seg], causes: &BTreeMap<Payload, Vec<Payload>>, errs: &mut Vec<String>) {
    for s in segs {
        let pos: BTreeMap<Payload, usize> = s.dels.iter().enumerate().map(|(i, p)| (*p, i)).collect();
        for (i, p) in s.dels.iter().enumerate().filter(|(_, p)| !p.fifo) {
            let Some(c) = causes.get(p).and_then(|cs| cs.iter().find(|c| pos.get(c).is_none_or(|&j| j > i))) else {
                continue;
            };
            errs.push(format!(
                "seed {seed}: (i) {:?}#{} in {:?} delivered {p:?} {} its cause {c:?}",
                s.node,
                s.inc,
                s.view.id,
                if pos.contains_key(c) { "before" } else { "without" }
            ));
            break;
        }
    }
}

/// A link with the faults drawn from `r` (loss up to `max_loss`).
pub fn faulty_link(r: &mut thoth_stack::Rng, max_loss: f64) -> Link {
    Link {
        loss: r.unit() * max_loss,
        dup: r.unit() * 0.05,
        reorder: r.unit() * 0.1,
        delay: Duration::from_micros(100 + r.below(400)),
        jitter: Duration::from_micros(r.below(500)),
        corrupt: 0.0,
    }
}

/// The median of some durations.
pub fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}
