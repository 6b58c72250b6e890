//! The simulation: nodes, the network between them, and the event loop on a virtual clock.
//!
//! `Sim` owns every node's endpoint and an agenda of future actions (a datagram copy
//! arriving, a node's timer coming due) ordered by (time, scheduling order). `step` pops the
//! earliest action, moves the clock to it and runs it: an arrival goes through the link's
//! partition check and the destination's liveness check into `handle_datagram`; a timer
//! calls `handle_timeout`. After every such input the simulator ends the endpoint's turn
//! (`Endpoint::end_turn`: a datagram or a timer is a batch of one) and drains it: each
//! `Transmit` is turned into bytes (the real wire format) and put on the links to its
//! destinations (`Dest::All` fans out to every other node of the sender's group,
//! `Dest::One(id)` goes to the node whose endpoint has that id), every application event is
//! recorded, and the timer is re-armed from `poll_timeout`. Application commands (`cast`,
//! `send`, `leave`, `with`) and faults (`crash`, `restart`, `partition`, `cut`, link changes)
//! happen at the current virtual time, between steps; the commands a node gets between two
//! steps are one batch, as a driver hands them over, and its turn ends before the next step.
//!
//! **Hosts outside the group.** Any host on a LAN hears the group's multicast and can send
//! anything to anyone: `tap` keeps the last datagrams sent to the group (`Dest::All`, what a
//! multicast listener hears; unicast is not overheard) for `overheard` to take, and `inject`
//! hands a datagram made outside the simulation to a node now, as if it had just arrived.
//! A hostile peer is built from the two (see `membership/tests/common/hostile.rs`).
//!
//! A crashed node gets no input; copies in flight to it are dropped when they arrive, and so
//! are copies sent to an earlier incarnation of a restarted node. Copies it sent before the
//! crash are already on the wire and still arrive. Every run is bounded: `Limits` caps the
//! number of steps and the virtual time, and passing either panics with a message naming the
//! seed, the time and what is still pending.
//!
//! Tested by `tests/sim.rs`: determinism (same seed, same trace hash and deliveries),
//! delivery, FIFO, corruption, directed partitions, crash and restart, loss statistics,
//! the step bound, and many-seed properties through `check_seeds`.

use super::agenda::Agenda;
use super::net::{Link, Net, NetStats, Outcome};
use super::node::{Delivery, Node, NodeEvent, NodeId, Simulated, Spawn};
use super::seed;
use super::trace::{Entry, Fate, Record, Trace, summary};
use crate::compose::Stack;
use crate::endpoint::{CastError, Config, Dest, Endpoint, Stats, Transmit};
use crate::ids::{EndpointId, GroupId, View};
use crate::layer::Layer;
use crate::machine::Rx;
use crate::time::{Duration, Time};
use bytes::Bytes;
use core::fmt;
use std::collections::VecDeque;

/// Bounds on a run: more steps or later virtual time than this panics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Actions the simulation may run in its whole life.
    pub max_steps: u64,
    /// Virtual time the simulation may reach.
    pub max_time: Time,
}

impl Default for Limits {
    /// Ten million steps, one virtual hour.
    fn default() -> Self {
        Limits { max_steps: 10_000_000, max_time: Time::ZERO + Duration::from_secs(3600) }
    }
}

/// Why an application command was not carried out (`E`: why the machine refuses one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmdError<E = CastError> {
    /// The node is crashed.
    Down(NodeId),
    /// The machine refused it.
    Refused(E),
}

impl<E: fmt::Display> fmt::Display for CmdError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CmdError::Down(n) => write!(f, "node {n} is down"),
            CmdError::Refused(e) => e.fmt(f),
        }
    }
}

impl<E: fmt::Display + fmt::Debug> std::error::Error for CmdError<E> {}

/// `run_until_quiet` reached its limit with work pending.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotQuiet {
    /// The simulation's seed, to replay the run.
    pub seed: u64,
    /// The virtual time it gave up at (the end of the limit).
    pub at: Time,
    /// Datagram copies still travelling.
    pub in_flight: u64,
    /// Nodes with an armed timer, and its deadline.
    pub timers: Vec<(NodeId, Time)>,
}

impl fmt::Display for NotQuiet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "simulation (seed {}) not quiet at {:?}: {} datagram copies in flight, timers armed {:?}",
            self.seed, self.at, self.in_flight, self.timers
        )
    }
}

impl std::error::Error for NotQuiet {}

enum Action {
    Arrive { from: NodeId, to: NodeId, incarnation: u32, data: Bytes, corrupted: bool },
    Timer { node: NodeId, incarnation: u32, deadline: Time },
}

/// Many machines (endpoints, by default) on one virtual clock over a seeded, faulty network.
pub struct Sim<M: Simulated = Endpoint<Stack>> {
    seed: u64,
    now: Time,
    agenda: Agenda<Action>,
    net: Net,
    nodes: Vec<Node<M>>,
    trace: Trace<M::Event>,
    limits: Limits,
    steps: u64,
    in_flight: u64,
    /// The last multicast datagrams sent, while tapped, and how many to keep.
    tapped: VecDeque<Bytes>,
    tap: usize,
}

impl<M: Simulated> Sim<M> {
    /// An empty simulation at time zero; the default link is perfect with 100 µs latency.
    pub fn new(seed: u64) -> Self {
        Sim {
            seed,
            now: Time::ZERO,
            agenda: Agenda::new(),
            net: Net::new(seed),
            nodes: Vec::new(),
            trace: Trace::default(),
            limits: Limits::default(),
            steps: 0,
            in_flight: 0,
            tapped: VecDeque::new(),
            tap: 0,
        }
    }

    /// Keeps the last `keep` datagrams sent to the group from now on (0: none).
    pub fn tap(&mut self, keep: usize) {
        self.tap = keep;
        while self.tapped.len() > keep {
            self.tapped.pop_front();
        }
    }

    /// The multicast datagrams sent since the last call (at most the `tap` most recent).
    pub fn overheard(&mut self) -> Vec<Bytes> {
        self.tapped.drain(..).collect()
    }

    /// A datagram from outside the simulated group arrives at `n` now (dropped if `n` is down).
    pub fn inject(&mut self, n: NodeId, data: Bytes) {
        let (len, digest) = summary(&data);
        let now = self.now;
        let delivered = match self.node_mut(n).ep.as_mut() {
            Some(ep) => {
                ep.handle_datagram(now, data);
                true
            }
            None => false,
        };
        self.trace.record(now, Entry::Inject { to: n, len, digest, delivered });
        self.drain(n);
    }

    /// The seed the run was created with (`Sim::new`): everything random derives from it.
    pub fn seed(&self) -> u64 {
        self.seed
    }
    /// The current virtual time.
    pub fn now(&self) -> Time {
        self.now
    }
    /// Actions run so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }
    /// The bounds on this run (`Limits::default` unless set).
    pub fn limits(&self) -> Limits {
        self.limits
    }
    /// Replaces the bounds on this run; steps already taken count against the new ones.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    // ---- the network ----

    /// The link every directed pair uses unless `set_link` says otherwise.
    pub fn set_default_link(&mut self, link: Link) {
        self.net.set_default_link(link);
    }
    /// The link `from → to` (one direction).
    pub fn set_link(&mut self, from: NodeId, to: NodeId, link: Link) {
        self.net.set_link(from, to, link);
    }
    /// The link `from → to` in use: its own if `set_link` gave it one, else the default.
    pub fn link(&self, from: NodeId, to: NodeId) -> Link {
        self.net.link(from, to)
    }
    /// Cuts every link between `a` and `b`, both directions.
    pub fn partition(&mut self, a: &[NodeId], b: &[NodeId]) {
        self.cut(a, b);
        self.cut(b, a);
    }
    /// Cuts every link from a node of `from` to a node of `to` (one direction).
    pub fn cut(&mut self, from: &[NodeId], to: &[NodeId]) {
        for &f in from {
            for &t in to {
                self.net.cut(f, t);
            }
        }
    }
    /// Heals every link between `a` and `b`, both directions.
    pub fn heal(&mut self, a: &[NodeId], b: &[NodeId]) {
        for &x in a {
            for &y in b {
                self.net.heal(x, y);
                self.net.heal(y, x);
            }
        }
    }
    /// Heals every cut link: the network is whole again (link faults stay as set).
    pub fn heal_all(&mut self) {
        self.net.heal_all();
    }
    /// Whether the direction `from → to` is cut by a partition.
    pub fn is_cut(&self, from: NodeId, to: NodeId) -> bool {
        self.net.is_cut(from, to)
    }
    /// What the network has done with every datagram so far.
    pub fn net_stats(&self) -> &NetStats {
        &self.net.stats
    }
    /// Datagram copies scheduled to arrive.
    pub fn in_flight(&self) -> u64 {
        self.in_flight
    }

    // ---- nodes ----

    /// Adds a node and starts it now with `factory`, which builds its endpoint again at
    /// every restart (and may give each incarnation another endpoint id).
    pub fn add_node(&mut self, factory: impl FnMut(Spawn) -> M + Send + 'static) -> NodeId {
        let n = NodeId(u32::try_from(self.nodes.len()).expect("fewer than 2^32 nodes"));
        self.nodes.push(Node::new(Box::new(factory)));
        self.start(n);
        n
    }

    /// Crashes a node: its endpoint is dropped with everything it held, and copies on
    /// their way to it will be dropped when they arrive. Crashing a crashed node does nothing.
    pub fn crash(&mut self, n: NodeId) {
        let now = self.now;
        let node = self.node_mut(n);
        if let Some(ep) = node.ep.take() {
            node.stats = ep.stats();
            node.timer = None;
            node.open_turn = false;
            let incarnation = node.incarnation;
            self.trace.record(now, Entry::Crash { node: n, incarnation });
        }
    }

    /// Starts the next incarnation of a node from its factory (crashing it first if up).
    pub fn restart(&mut self, n: NodeId) {
        self.crash(n);
        self.node_mut(n).incarnation += 1;
        self.start(n);
    }

    /// Whether the node is running (started and not crashed).
    pub fn is_up(&self, n: NodeId) -> bool {
        self.node(n).is_up()
    }
    /// The node's current incarnation (its last one while crashed): 0, plus one per restart.
    pub fn incarnation(&self, n: NodeId) -> u32 {
        self.node(n).incarnation
    }
    /// The endpoint id of the node's current incarnation (its last one while crashed).
    pub fn id(&self, n: NodeId) -> EndpointId {
        self.node(n).id
    }
    /// The live node whose endpoint has id `id`.
    pub fn node_of(&self, id: EndpointId) -> Option<NodeId> {
        self.nodes().find(|&n| self.node(n).is_up() && self.node(n).id == id)
    }
    /// Every node added so far, up or crashed, in the order added.
    pub fn nodes(&self) -> impl Iterator<Item = NodeId> + use<M> {
        (0..self.nodes.len() as u32).map(NodeId)
    }
    /// How many nodes were added, up or crashed.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }
    /// The machine (the endpoint) of a live node.
    pub fn endpoint(&self, n: NodeId) -> Option<&M> {
        self.node(n).ep.as_ref()
    }
    /// The machine's statistics: the current incarnation's, or the last one's while crashed.
    pub fn stats(&self, n: NodeId) -> Stats {
        self.node(n).stats()
    }
    /// Every message the node's application received, over all incarnations, in order.
    pub fn delivered(&self, n: NodeId) -> &[Delivery] {
        &self.node(n).delivered
    }
    /// Every event the node's application received, over all incarnations, in order.
    pub fn events(&self, n: NodeId) -> &[NodeEvent<M::Event>] {
        &self.node(n).events
    }

    // ---- application commands, at the current time ----

    /// The node's application hands `cmd` to its machine.
    pub fn command(&mut self, n: NodeId, cmd: M::Cmd) -> Result<(), CmdError<M::Refused>> {
        let r = self.on(n, |m, now| m.handle_command(now, cmd)).and_then(|r| r.map_err(CmdError::Refused));
        self.trace.record(self.now, Entry::Command { node: n, ok: r.is_ok() });
        self.drain_open(n);
        r
    }

    /// Runs `f` on the node's machine at the current time, then collects what it output.
    pub fn with<R>(&mut self, n: NodeId, f: impl FnOnce(&mut M, Time) -> R) -> Result<R, CmdError<M::Refused>> {
        let r = self.on(n, f);
        if r.is_ok() {
            self.trace.record(self.now, Entry::With { node: n });
        }
        self.drain_open(n);
        r
    }

    fn on<R, E>(&mut self, n: NodeId, f: impl FnOnce(&mut M, Time) -> R) -> Result<R, CmdError<E>> {
        let now = self.now;
        match self.node_mut(n).ep.as_mut() {
            Some(ep) => Ok(f(ep, now)),
            None => Err(CmdError::Down(n)),
        }
    }

    // ---- running ----

    /// Runs the earliest pending action; false if there is none.
    ///
    /// Panics past `Limits::max_steps` or `Limits::max_time`.
    pub fn step(&mut self) -> bool {
        self.end_turns();
        let Some(at) = self.agenda.peek_time() else {
            return false;
        };
        self.steps += 1;
        if self.steps > self.limits.max_steps {
            panic!("{}", self.over_limit(format!("step limit of {} reached", self.limits.max_steps)));
        }
        if at > self.limits.max_time {
            panic!(
                "{}",
                self.over_limit(format!("next action at {at:?} is past the time limit {:?}", self.limits.max_time))
            );
        }
        let (at, action) = self.agenda.pop().expect("peeked");
        debug_assert!(at >= self.now, "the agenda went back in time");
        self.now = at;
        match action {
            Action::Arrive { from, to, incarnation, data, corrupted } => {
                self.arrive(from, to, incarnation, data, corrupted)
            }
            Action::Timer { node, incarnation, deadline } => self.fire(node, incarnation, deadline),
        }
        true
    }

    /// Runs every action due up to and including `t`, then sets the clock to `t` (never back).
    ///
    /// Panics if `t` is past `Limits::max_time`, or past `Limits::max_steps`.
    pub fn run_until(&mut self, t: Time) {
        if t > self.limits.max_time {
            panic!(
                "{}",
                self.over_limit(format!("asked to run until {t:?}, past the time limit {:?}", self.limits.max_time))
            );
        }
        self.end_turns();
        while self.agenda.peek_time().is_some_and(|at| at <= t) {
            self.step();
        }
        self.now = self.now.max(t);
    }

    /// Runs for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        self.run_until(self.now + d);
    }

    /// Runs until nothing is in flight and no timer is armed, for at most `limit` of virtual
    /// time; returns when it became quiet. A stack with a periodic timer is never quiet.
    pub fn run_until_quiet(&mut self, limit: Duration) -> Result<Time, NotQuiet> {
        let deadline = self.now + limit;
        if deadline > self.limits.max_time {
            panic!(
                "{}",
                self.over_limit(format!(
                    "asked to run until {deadline:?}, past the time limit {:?}",
                    self.limits.max_time
                ))
            );
        }
        loop {
            self.end_turns();
            if self.in_flight == 0 && self.nodes.iter().all(|n| n.timer.is_none()) {
                return Ok(self.now);
            }
            if self.agenda.peek_time().is_none_or(|at| at > deadline) {
                break;
            }
            self.step();
        }
        self.now = self.now.max(deadline);
        Err(self.not_quiet())
    }

    fn not_quiet(&self) -> NotQuiet {
        let timers = self.nodes().filter_map(|n| self.node(n).timer.map(|t| (n, t))).collect();
        NotQuiet { seed: self.seed, at: self.now, in_flight: self.in_flight, timers }
    }

    fn over_limit(&self, what: String) -> String {
        format!(
            "simulation bound hit: {what} (seed {}, at {:?}, after {} steps); it never went quiet: {}",
            self.seed,
            self.now,
            self.steps,
            self.not_quiet()
        )
    }

    // ---- trace ----

    /// A stable hash of everything observable so far: same seed and scenario, same hash.
    pub fn trace_hash(&self) -> u64 {
        self.trace.hash()
    }
    /// Records folded into the hash so far.
    pub fn trace_len(&self) -> u64 {
        self.trace.count()
    }
    /// Keeps the trace records from now on (for `trace`), not only their hash.
    pub fn keep_trace(&mut self, keep: bool) {
        self.trace.set_keep(keep);
    }
    /// The records kept since `keep_trace(true)`.
    pub fn trace(&self) -> &[Record<M::Event>] {
        self.trace.records()
    }

    // ---- internals ----

    fn node(&self, n: NodeId) -> &Node<M> {
        self.nodes.get(n.index()).unwrap_or_else(|| panic!("no node {n} in this simulation"))
    }
    fn node_mut(&mut self, n: NodeId) -> &mut Node<M> {
        self.nodes.get_mut(n.index()).unwrap_or_else(|| panic!("no node {n} in this simulation"))
    }

    fn start(&mut self, n: NodeId) {
        let run = self.seed;
        let node = self.node_mut(n);
        let incarnation = node.incarnation;
        let spawn =
            Spawn { node: n, incarnation, seed: seed::derive(run, &[seed::ENDPOINT, n.0 as u64, incarnation as u64]) };
        let ep = (node.factory)(spawn);
        node.id = ep.me();
        node.group = ep.segment();
        node.ep = Some(ep);
        node.timer = None;
        let id = node.id;
        self.trace.record(self.now, Entry::Start { node: n, incarnation, id });
        self.drain(n);
    }

    /// Ends the turn of every node that has had commands since its last one, in node order.
    fn end_turns(&mut self) {
        for i in 0..self.nodes.len() {
            if self.nodes[i].open_turn {
                self.drain(NodeId(i as u32));
            }
        }
    }

    /// What a command output, collected at once; the node's turn stays open for the
    /// commands that follow it before the next step.
    fn drain_open(&mut self, n: NodeId) {
        self.collect(n);
        self.node_mut(n).open_turn = true;
    }

    /// Ends the node's turn and collects what its endpoint output.
    fn drain(&mut self, n: NodeId) {
        let now = self.now;
        let node = &mut self.nodes[n.index()];
        node.open_turn = false;
        if let Some(ep) = node.ep.as_mut() {
            ep.end_turn(now);
        }
        self.collect(n);
    }

    /// Collects what the node's endpoint output: transmits onto the network, events into
    /// the record, and its next deadline onto the agenda.
    fn collect(&mut self, n: NodeId) {
        let now = self.now;
        let node = &mut self.nodes[n.index()];
        let Some(ep) = node.ep.as_mut() else {
            return;
        };
        let transmits: Vec<Transmit> = core::iter::from_fn(|| ep.poll_transmit()).collect();
        let events: Vec<M::Event> = core::iter::from_fn(|| ep.poll_event()).collect();
        let next = ep.poll_timeout();
        for event in events {
            let incarnation = node.incarnation;
            self.trace.record(now, Entry::Event { node: n, incarnation, event: event.clone() });
            node.record(now, event);
        }
        if next != node.timer {
            node.timer = next;
            if let Some(deadline) = next {
                let incarnation = node.incarnation;
                self.agenda.push(deadline.max(now), Action::Timer { node: n, incarnation, deadline });
            }
        }
        for tx in transmits {
            self.route(n, tx);
        }
    }

    fn route(&mut self, from: NodeId, tx: Transmit) {
        self.net.stats.transmits += 1;
        let data = tx.to_bytes();
        match tx.dst {
            Dest::All | Dest::Everyone => {
                if self.tap > 0 {
                    if self.tapped.len() == self.tap {
                        self.tapped.pop_front();
                    }
                    self.tapped.push_back(data.clone());
                }
                let group = self.node(from).group;
                for to in self.nodes() {
                    if to != from && self.node(to).group == group {
                        self.put(from, to, &data);
                    }
                }
            }
            Dest::One(id) => match self.route_one(id) {
                Some(to) => self.put(from, to, &data),
                None => {
                    self.net.stats.unroutable += 1;
                    let (len, digest) = summary(&data);
                    let fate = Fate::Unroutable;
                    self.trace.record(self.now, Entry::Datagram { from, to: from, len, digest, fate });
                }
            },
        }
    }

    /// The node a `Dest::One(id)` datagram goes to: the live one with that id, else the
    /// crashed one whose last incarnation had it (the datagram dies there).
    fn route_one(&self, id: EndpointId) -> Option<NodeId> {
        self.node_of(id).or_else(|| self.nodes().find(|&n| self.node(n).id == id))
    }

    fn put(&mut self, from: NodeId, to: NodeId, data: &Bytes) {
        let (len, digest) = summary(data);
        let now = self.now;
        let dst = &self.nodes[to.index()];
        let fate = if !dst.is_up() {
            self.net.stats.sent += 1;
            self.net.stats.dead += 1;
            Fate::Dead
        } else {
            let incarnation = dst.incarnation;
            match self.net.put(from, to, data) {
                Outcome::Lost => Fate::Lost,
                Outcome::Cut => Fate::Cut,
                Outcome::Copies(copies) => {
                    let (mut n, mut bad) = (0u8, 0u8);
                    for c in copies {
                        n += 1;
                        bad += c.corrupted as u8;
                        self.in_flight += 1;
                        let arrive = Action::Arrive { from, to, incarnation, data: c.data, corrupted: c.corrupted };
                        self.agenda.push(now + c.delay, arrive);
                    }
                    Fate::InFlight { copies: n, corrupted: bad }
                }
            }
        };
        self.trace.record(now, Entry::Datagram { from, to, len, digest, fate });
    }

    fn arrive(&mut self, from: NodeId, to: NodeId, incarnation: u32, data: Bytes, corrupted: bool) {
        self.in_flight -= 1;
        let (len, digest) = summary(&data);
        let now = self.now;
        let cut = self.net.is_cut(from, to);
        let stats = &mut self.net.stats;
        let node = &mut self.nodes[to.index()];
        let fate = match node.ep.as_mut() {
            _ if cut => {
                stats.cut += 1;
                Fate::Cut
            }
            Some(ep) if node.incarnation == incarnation => {
                stats.delivered += 1;
                let rx = ep.handle_datagram(now, data);
                if corrupted {
                    stats.delivered_corrupted += 1;
                    stats.corrupt_accepted += matches!(rx, Rx::Sound { accepted: true, .. }) as u64;
                }
                Fate::Delivered { corrupted }
            }
            _ => {
                stats.dead += 1;
                Fate::Dead
            }
        };
        self.trace.record(now, Entry::Datagram { from, to, len, digest, fate });
        if let Fate::Delivered { .. } = fate {
            self.drain(to);
        }
    }

    fn fire(&mut self, n: NodeId, incarnation: u32, deadline: Time) {
        let now = self.now;
        let node = &mut self.nodes[n.index()];
        if node.incarnation != incarnation || node.timer != Some(deadline) {
            return; // superseded by a later arming, or a dead incarnation's
        }
        let Some(ep) = node.ep.as_mut() else {
            return;
        };
        node.timer = None;
        ep.handle_timeout(now);
        self.trace.record(now, Entry::Timer { node: n });
        self.drain(n);
    }
}

/// Nodes that are endpoints: groups of them, and their applications' commands by name.
impl<L: Layer> Sim<Endpoint<L>> {
    /// Adds one node per id of `members`: endpoints of `group` whose first view is
    /// `members`, each view's stack built by `stack`, the endpoint seeded from the run.
    /// A restarted node keeps its id.
    pub fn add_group(
        &mut self,
        group: GroupId,
        members: &[EndpointId],
        stack: impl Fn(&View) -> L + Clone + Send + 'static,
    ) -> Vec<NodeId> {
        members
            .iter()
            .map(|&me| {
                let (members, stack) = (members.to_vec(), stack.clone());
                self.add_node(move |spawn| {
                    let cfg = Config { seed: spawn.seed, ..Config::new(group, me, members.clone()) };
                    Endpoint::new(cfg, stack.clone()).expect("add_group: a member of its own list")
                })
            })
            .collect()
    }

    /// The node's application casts `data` to its view.
    pub fn cast(&mut self, n: NodeId, data: impl Into<Bytes>) -> Result<(), CmdError> {
        self.cast_as(n, data.into(), false)
    }

    /// The node's application casts `data` to its view in FIFO order only
    /// (`Endpoint::cast_fifo`).
    pub fn cast_fifo(&mut self, n: NodeId, data: impl Into<Bytes>) -> Result<(), CmdError> {
        self.cast_as(n, data.into(), true)
    }

    fn cast_as(&mut self, n: NodeId, data: Bytes, fifo: bool) -> Result<(), CmdError> {
        let (len, digest) = summary(&data);
        let r = self
            .on(n, |ep, now| if fifo { ep.cast_fifo(now, data) } else { ep.cast(now, data) })
            .and_then(|r| r.map_err(CmdError::Refused));
        self.trace.record(self.now, Entry::Cast { node: n, len, digest, ok: r.is_ok() });
        self.drain_open(n);
        r
    }

    /// The node's application sends `data` to the member `to`.
    pub fn send(&mut self, n: NodeId, to: EndpointId, data: impl Into<Bytes>) -> Result<(), CmdError> {
        let data = data.into();
        let (len, digest) = summary(&data);
        let r = self.on(n, |ep, now| ep.send(now, to, data)).and_then(|r| r.map_err(CmdError::Refused));
        self.trace.record(self.now, Entry::Send { node: n, to, len, digest, ok: r.is_ok() });
        self.drain_open(n);
        r
    }

    /// The node's application leaves the group.
    pub fn leave(&mut self, n: NodeId) -> Result<(), CmdError> {
        let r = self.on(n, |ep, now| ep.leave(now));
        self.trace.record(self.now, Entry::Leave { node: n, ok: r.is_ok() });
        self.drain_open(n);
        r
    }
}
