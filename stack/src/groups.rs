//! `Groups`: many groups in one process over one socket pair and one driver — the
//! light-weight groups of Horus and Spread, one per replicated object as E1 and Electra have
//! them. A `Machine` that holds one member machine per group (an `Endpoint`, each with its
//! own stack and view, or any machine over one that says its group, `GroupMember`: Group
//! RPC, a replicated object), and demultiplexes datagrams by the group id in their frame,
//! as quinn's endpoint demultiplexes datagrams to connections.
//!
//! What it adds to the endpoints it holds:
//! - **Timers** in one ordered set of (deadline, group), so a turn touches only the groups
//!   due, whatever their number; deadlines are rounded up to a `tick` (default 5 ms), so the
//!   periodic timers of idle groups (heartbeats, stability gossip) come due together.
//! - **Bundles** (`bundle`): the small datagrams its groups send in one turn to the same
//!   destination leave as one UDP datagram, each part still framed and checked by its own
//!   group. With the tick, the heartbeats of a thousand idle groups cost a process a few
//!   hundred datagrams a second instead of ten thousand. Busy groups send what they send
//!   (the heartbeat layer already stays quiet while a member casts).
//! - **Fan-out** (`GroupsConfig::fanout`): with no multicast, each cast of a group becomes a
//!   datagram to each other member of that group's view (the driver's routes know one view;
//!   here each group has its own).
//!
//! Commands name their group (`GroupCmd`); events carry it (`GroupEvent`). A group is added
//! with its member (`GroupCmd::Add`, or `Groups::add` before the machine is driven) and
//! removed once its member exits (after its exit event is handed on) or on
//! `GroupCmd::Remove`. Flow control is per group (`Machine::ready`), and so is the order of
//! commands (`Command::lane`): a group whose casts flow control holds holds back no other
//! group's. A datagram of a group
//! this process does not hold is counted (`rx_foreign_group`) and dropped, as an endpoint
//! drops one of another group.
//!
//! Deterministic: groups are kept in ordered maps, so the simulator runs it as it runs an
//! endpoint. Tested by `stack/tests/groups.rs` (a thousand groups in the simulator: demux,
//! per-group views and deliveries, bundles and ticks, removal, hostile bundles) and by
//! `stack/tests/udp.rs` (groups over real sockets, in both driver modes); groups of
//! replicated objects by `grpc/tests/objects.rs` and `grpc/tests/objects_udp.rs`.

use crate::bundle::{self, Builder};
use crate::compose::Stack;
use crate::endpoint::{CastError, Dest, Endpoint, Stats, Transmit};
use crate::event::Event;
use crate::frame::{FRAME_LEN, peek_group};
use crate::ids::{EndpointId, GroupId, View};
use crate::layer::Layer;
use crate::machine::{Announce, Command, Machine, Rx};
use crate::metrics::Metrics;
use crate::sim::Observed;
use crate::time::{Duration, Time};
use bytes::Bytes;
use smallvec::SmallVec;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// How a `Groups` machine is set up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupsConfig {
    /// This process's id (every endpoint it holds has it).
    pub me: EndpointId,
    /// Largest datagram sent, bundles included (the endpoints' own bound is theirs).
    pub max_datagram: usize,
    /// Deadlines are rounded up to a multiple of this (zero: not rounded).
    pub tick: Duration,
    /// Datagrams this long or shorter may travel in a bundle (zero: no bundles).
    pub bundle_part: usize,
    /// No multicast: a cast goes to each other member of its group's view.
    pub fanout: bool,
}

impl GroupsConfig {
    /// The defaults for process `me`: `MAX_UDP_PAYLOAD` datagrams, a 5 ms tick, bundles of
    /// datagrams up to 1024 bytes, multicast (no fan-out).
    pub fn new(me: EndpointId) -> GroupsConfig {
        GroupsConfig {
            me,
            max_datagram: crate::endpoint::MAX_UDP_PAYLOAD,
            tick: Duration::from_millis(5),
            bundle_part: 1024,
            fanout: false,
        }
    }
}

/// A machine that is one member of one group (an `Endpoint`, or a machine over one), as
/// `Groups` holds them: it says its group. Its refusals must take `Groups`' own (a group
/// held already, one not held).
pub trait GroupMember: Machine<Refused: From<CastError>> {
    /// The group this member belongs to: where `Groups` files it and routes its datagrams.
    fn group(&self) -> GroupId;
}

impl<L: Layer> GroupMember for Endpoint<L> {
    fn group(&self) -> GroupId {
        Endpoint::group(self)
    }
}

/// A command for one group of a `Groups` machine.
pub enum GroupCmd<M: Machine = Endpoint<Stack>> {
    /// Starts running this member (refused if its group is held already, or its id is not
    /// the machine's).
    Add(Box<M>),
    /// Drops a group's member at once, with whatever it holds (a crash of that member;
    /// `To(group, Cmd::Leave)` leaves properly).
    Remove(GroupId),
    /// A command for the group's member.
    To(GroupId, M::Cmd),
}

impl<M: GroupMember> Command for GroupCmd<M> {
    fn weight(&self) -> usize {
        match self {
            GroupCmd::To(_, c) => c.weight(),
            GroupCmd::Add(_) | GroupCmd::Remove(_) => 0,
        }
    }
    fn is_answer(&self) -> bool {
        matches!(self, GroupCmd::To(_, c) if c.is_answer())
    }
    fn is_flow_controlled(&self) -> bool {
        matches!(self, GroupCmd::To(_, c) if c.is_flow_controlled())
    }
    /// A group's commands keep their order; one group's held cast holds back no other's.
    fn lane(&self) -> u64 {
        match self {
            GroupCmd::Add(ep) => ep.group().0,
            GroupCmd::Remove(g) | GroupCmd::To(g, _) => g.0,
        }
    }
}

/// An event of one group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupEvent<E = Event> {
    /// The group whose member raised it.
    pub group: GroupId,
    /// The member's event, as it raised it.
    pub event: E,
}

impl<E: Announce> Announce for GroupEvent<E> {
    fn weight(&self) -> usize {
        self.event.weight()
    }
    /// None: the driver's routes follow no single group's view.
    fn view(&self) -> Option<&View> {
        None
    }
    /// The machine goes on when one of its groups exits.
    fn is_exit(&self) -> bool {
        false
    }
}

impl<E: Observed> Observed for GroupEvent<E> {
    fn hash_into(&self, h: &mut crate::ids::Fnv) {
        h.u64(self.group.0);
        self.event.hash_into(h);
    }
    fn delivery(&self) -> Option<(EndpointId, crate::sim::Kind, &Bytes)> {
        self.event.delivery()
    }
}

struct Slot<M> {
    ep: M,
    /// The deadline this group is filed under in `timers`.
    armed: Option<Time>,
    /// Had input since its last `end_turn`.
    touched: bool,
}

/// Many group members, one per group, behind one `Machine` (see the module's
/// documentation).
pub struct Groups<M: GroupMember = Endpoint<Stack>> {
    cfg: GroupsConfig,
    slots: BTreeMap<GroupId, Slot<M>>,
    timers: BTreeSet<(Time, GroupId)>,
    touched: Vec<GroupId>,
    /// Transmits of the groups in this turn, not yet bundled.
    outbox: VecDeque<Transmit>,
    /// Transmits ready to go (bundled where they could be), at the end of a turn.
    ready: VecDeque<Transmit>,
    events: VecDeque<GroupEvent<M::Event>>,
    /// The view the driver sees: this process alone (each group has its own).
    alone: View,
    /// What the machine itself counted (datagrams of no group held here, bundles); the
    /// groups' endpoints count the rest.
    own: Stats,
    /// The counters of the endpoints removed so far.
    gone: Stats,
}

impl<M: GroupMember> Groups<M> {
    /// A machine that holds no group yet (add them with `add` or `GroupCmd::Add`).
    pub fn new(cfg: GroupsConfig) -> Groups<M> {
        Groups {
            alone: View::provisional(cfg.me),
            cfg,
            slots: BTreeMap::new(),
            timers: BTreeSet::new(),
            touched: Vec::new(),
            outbox: VecDeque::new(),
            ready: VecDeque::new(),
            events: VecDeque::new(),
            own: Stats::default(),
            gone: Stats::default(),
        }
    }

    /// Starts running `ep` (its group must not be held already; its id must be this
    /// machine's).
    pub fn add(&mut self, ep: M) -> Result<(), CastError> {
        let group = ep.group();
        if ep.me() != self.cfg.me || self.slots.contains_key(&group) {
            return Err(CastError::GroupExists);
        }
        self.slots.insert(group, Slot { ep, armed: None, touched: false });
        self.after_input(group);
        Ok(())
    }

    /// The groups held, in order.
    pub fn groups(&self) -> impl Iterator<Item = GroupId> + '_ {
        self.slots.keys().copied()
    }

    /// The member of a group held here.
    pub fn member(&self, group: GroupId) -> Option<&M> {
        self.slots.get(&group).map(|s| &s.ep)
    }

    /// Number of groups held.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether no group is held.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    fn round(&self, t: Time) -> Time {
        let tick = u64::try_from(self.cfg.tick.as_nanos()).unwrap_or(u64::MAX);
        if tick == 0 {
            return t;
        }
        Time::from_nanos(t.as_nanos().div_ceil(tick).saturating_mul(tick))
    }

    /// After an input to `group`: the group marked for `end_turn`, its outputs collected.
    fn after_input(&mut self, group: GroupId) {
        if let Some(slot) = self.slots.get_mut(&group)
            && !slot.touched
        {
            slot.touched = true;
            self.touched.push(group);
        }
        self.collect(group);
    }

    /// Moves `group`'s outputs out and files its deadline again; an endpoint that exited is
    /// removed.
    fn collect(&mut self, group: GroupId) {
        let Some(slot) = self.slots.get_mut(&group) else { return };
        let mut exited = false;
        while let Some(event) = slot.ep.poll_event() {
            exited |= event.is_exit();
            self.events.push_back(GroupEvent { group, event });
        }
        while let Some(tx) = slot.ep.poll_transmit() {
            if let (Dest::All, true) = (tx.dst, self.cfg.fanout) {
                let me = self.cfg.me;
                let others: SmallVec<[EndpointId; 8]> =
                    slot.ep.view().members.iter().copied().filter(|&m| m != me).collect();
                for m in others {
                    self.outbox.push_back(Transmit { dst: Dest::One(m), ..tx.clone() });
                }
            } else {
                self.outbox.push_back(tx);
            }
        }
        let due = slot.ep.poll_timeout();
        let due = due.map(|t| self.round(t));
        let slot = self.slots.get_mut(&group).expect("looked up above");
        if slot.armed != due {
            if let Some(old) = slot.armed {
                self.timers.remove(&(old, group));
            }
            if let Some(t) = due {
                self.timers.insert((t, group));
            }
            slot.armed = due;
        }
        if exited {
            self.remove(group);
        }
    }

    fn remove(&mut self, group: GroupId) {
        if let Some(slot) = self.slots.remove(&group) {
            if let Some(t) = slot.armed {
                self.timers.remove(&(t, group));
            }
            self.gone.add(&slot.ep.stats());
        }
    }

    /// One datagram (or bundle part) for the group its frame names.
    fn dispatch(&mut self, now: Time, data: Bytes) -> Rx {
        let Some(group) = peek_group(&data).filter(|g| self.slots.contains_key(g)) else {
            self.own.rx_datagrams += 1;
            self.own.rx_bytes += data.len() as u64;
            if data.len() < FRAME_LEN {
                self.own.rx_truncated += 1;
            } else {
                self.own.rx_foreign_group += 1;
            }
            return Rx::Unsound;
        };
        let rx = self.slots.get_mut(&group).expect("checked").ep.handle_datagram(now, data);
        self.after_input(group);
        rx
    }

    /// Moves the outbox into `ready`, bundling the small datagrams of destinations that
    /// have more than one; the others go as they are (no copy).
    fn bundle(&mut self) {
        let bundled = |tx: &Transmit| tx.len() <= self.cfg.bundle_part && tx.dst != Dest::Everyone;
        let mut small: BTreeMap<Dest, usize> = BTreeMap::new();
        if self.outbox.len() > 1 {
            for tx in self.outbox.iter().filter(|tx| bundled(tx)) {
                *small.entry(tx.dst).or_default() += 1;
            }
        }
        let limit = self.cfg.max_datagram;
        let mut open: BTreeMap<Dest, Builder> = BTreeMap::new();
        while let Some(tx) = self.outbox.pop_front() {
            if !bundled(&tx) || small.get(&tx.dst).is_none_or(|&n| n < 2) {
                self.ready.push_back(tx);
                continue;
            }
            let b = open.entry(tx.dst).or_insert_with(|| Builder::new(limit));
            if !b.fits(tx.len()) {
                let full = std::mem::replace(b, Builder::new(limit));
                self.ready.push_back(Self::sealed(tx.dst, full, &mut self.own));
            }
            b.push(&tx.head, &tx.body);
        }
        for (dst, b) in open {
            self.ready.push_back(Self::sealed(dst, b, &mut self.own));
        }
    }

    fn sealed(dst: Dest, b: Builder, own: &mut Stats) -> Transmit {
        own.tx_bundles += 1;
        own.tx_bundled += b.parts() as u64;
        Transmit { dst, head: SmallVec::new(), body: b.finish() }
    }
}

impl<M: GroupMember> Machine for Groups<M> {
    type Cmd = GroupCmd<M>;
    type Event = GroupEvent<M::Event>;
    type Refused = M::Refused;

    fn me(&self) -> EndpointId {
        self.cfg.me
    }
    fn max_datagram(&self) -> usize {
        self.cfg.max_datagram
    }
    fn max_payload(&self) -> usize {
        self.cfg.max_datagram - FRAME_LEN - 1
    }
    fn view(&self) -> &View {
        &self.alone
    }
    fn has_left(&self) -> bool {
        false
    }
    /// Flow control is per group: see `ready`.
    fn held(&self) -> bool {
        false
    }
    fn ready(&self, cmd: &GroupCmd<M>) -> bool {
        match cmd {
            GroupCmd::To(g, c) => self.slots.get(g).is_none_or(|s| Machine::ready(&s.ep, c)),
            GroupCmd::Add(_) | GroupCmd::Remove(_) => true,
        }
    }
    fn stats(&self) -> Stats {
        let mut s = self.own.clone();
        s.add(&self.gone);
        for slot in self.slots.values() {
            s.add(&slot.ep.stats());
        }
        s
    }
    /// Each group's layers (in group order), and the counters of `stats`.
    fn metrics(&self) -> Metrics {
        let layers = self.slots.values().flat_map(|slot| slot.ep.metrics().layers).collect();
        Metrics { layers, endpoint: self.stats() }
    }

    fn handle_command(&mut self, now: Time, cmd: GroupCmd<M>) -> Result<(), M::Refused> {
        match cmd {
            GroupCmd::Add(ep) => Ok(self.add(*ep)?),
            GroupCmd::Remove(g) => {
                self.remove(g);
                Ok(())
            }
            GroupCmd::To(g, c) => {
                let slot = self.slots.get_mut(&g).ok_or(CastError::UnknownGroup)?;
                let r = Machine::handle_command(&mut slot.ep, now, c);
                self.after_input(g);
                r
            }
        }
    }

    fn handle_datagram(&mut self, now: Time, data: Bytes) -> Rx {
        if !bundle::is_bundle(&data) {
            return self.dispatch(now, data);
        }
        let Some(parts) = bundle::split(&data) else {
            self.own.rx_bad_bundle += 1;
            return Rx::Unsound;
        };
        self.own.rx_bundles += 1;
        let mut rx = Rx::Unsound;
        for part in parts {
            let r = self.dispatch(now, part);
            if rx == Rx::Unsound {
                rx = r;
            }
        }
        rx
    }

    fn handle_timeout(&mut self, now: Time) {
        while let Some(&(t, g)) = self.timers.first() {
            if t > now {
                break;
            }
            self.timers.pop_first();
            let slot = self.slots.get_mut(&g).expect("a filed timer belongs to a held group");
            slot.armed = None;
            slot.ep.handle_timeout(now);
            self.after_input(g);
        }
    }

    /// Ends the turn of every group that had input, then bundles what the turn made: the
    /// transmits go out only now, all of the turn's together.
    fn end_turn(&mut self, now: Time) {
        for g in std::mem::take(&mut self.touched) {
            if let Some(slot) = self.slots.get_mut(&g) {
                slot.touched = false;
                slot.ep.end_turn(now);
                self.collect(g);
            }
        }
        self.bundle();
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.ready.pop_front()
    }

    fn poll_event(&mut self) -> Option<GroupEvent<M::Event>> {
        self.events.pop_front()
    }

    fn poll_timeout(&self) -> Option<Time> {
        self.timers.first().map(|&(t, _)| t)
    }
}

impl<M: GroupMember<Event: Observed>> crate::sim::Simulated for Groups<M> {
    /// Every `Groups` machine is on one segment (they share the multicast address).
    fn segment(&self) -> GroupId {
        GroupId(0)
    }
}
