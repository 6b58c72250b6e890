//! Simulated nodes: a slot per node holding the user's machine factory, the machine of the
//! current incarnation (none while crashed), and everything the node's application saw over
//! all its incarnations (`NodeEvent`s, and the `Delivery`s among them). A node runs any
//! `Simulated` machine: an `Endpoint`, or a machine built on endpoints.
//!
//! A node is named by its index (`NodeId`), which stays the same across restarts; the
//! endpoint id is whatever the factory gives each incarnation. Tested through `Sim` in
//! `tests/sim.rs` (crash and restart scenarios) and by the unit test below.

use super::trace::Observed;
use crate::endpoint::{Endpoint, Stats};
use crate::event::Event;
use crate::ids::{EndpointId, GroupId};
use crate::layer::Layer;
use crate::machine::Machine;
use crate::time::Time;
use bytes::Bytes;
use core::fmt;

/// A node of the simulation: its index, in the order nodes were added.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct NodeId(pub u32);

impl NodeId {
    /// The node's position in the simulation's node list (its `NodeId.0` as a `usize`).
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}", self.0)
    }
}
impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// What a factory is told when it builds an endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Spawn {
    /// The node being started (or restarted).
    pub node: NodeId,
    /// 0 for the first start, then one more for each restart.
    pub incarnation: u32,
    /// A seed derived from the simulation's seed, the node and the incarnation: use it for
    /// `Config::seed` so the endpoint's randomness replays with the run.
    pub seed: u64,
}

/// Builds a node's machine, for its first start and for every restart.
pub type Factory<M> = Box<dyn FnMut(Spawn) -> M + Send>;

/// A machine the simulator runs: it records the machine's events (`Observed`) and delivers
/// its multicasts (`Dest::All`, `Dest::Everyone`) to the other nodes of its segment.
pub trait Simulated: Machine<Event: Observed> {
    /// The simulated multicast group this node has joined: the nodes that hear each other's
    /// multicasts (an endpoint's group).
    fn segment(&self) -> GroupId;
}

impl<L: Layer> Simulated for Endpoint<L> {
    fn segment(&self) -> GroupId {
        self.group()
    }
}

/// Cast or Send.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// A multicast to the view (`Event::Cast`).
    Cast,
    /// A point-to-point message to one member (`Event::Send`).
    Send,
}

/// A message the application of a node received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// The virtual time the application got it.
    pub at: Time,
    /// The incarnation of the receiving node.
    pub incarnation: u32,
    /// The sender's endpoint id.
    pub from: EndpointId,
    /// Whether it was cast to the view or sent to this member alone.
    pub kind: Kind,
    /// The application payload.
    pub data: Bytes,
}

/// An event the application of a node received, and when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeEvent<E = Event> {
    /// The virtual time the application got it.
    pub at: Time,
    /// The incarnation of the receiving node.
    pub incarnation: u32,
    /// The event, as the machine output it.
    pub event: E,
}

/// One node's slot in the simulation.
pub(crate) struct Node<M: Simulated> {
    pub(crate) factory: Factory<M>,
    pub(crate) ep: Option<M>,
    pub(crate) incarnation: u32,
    /// Of the current incarnation, or the last one while crashed.
    pub(crate) id: EndpointId,
    pub(crate) group: GroupId,
    pub(crate) stats: Stats,
    /// The deadline a timer action is scheduled for, if any.
    pub(crate) timer: Option<Time>,
    /// Commands were handed to the endpoint since its last end of turn.
    pub(crate) open_turn: bool,
    pub(crate) events: Vec<NodeEvent<M::Event>>,
    pub(crate) delivered: Vec<Delivery>,
}

impl<M: Simulated> Node<M> {
    /// A slot for a node that has not started yet.
    pub(crate) fn new(factory: Factory<M>) -> Self {
        Node {
            factory,
            ep: None,
            open_turn: false,
            incarnation: 0,
            id: EndpointId::default(),
            group: GroupId::default(),
            stats: Stats::default(),
            timer: None,
            events: Vec::new(),
            delivered: Vec::new(),
        }
    }

    pub(crate) fn is_up(&self) -> bool {
        self.ep.is_some()
    }

    /// The current incarnation's statistics, or the last one's while crashed.
    pub(crate) fn stats(&self) -> Stats {
        self.ep.as_ref().map_or_else(|| self.stats.clone(), |ep| ep.stats())
    }

    /// Records an event the machine handed its application.
    pub(crate) fn record(&mut self, at: Time, event: M::Event) {
        let incarnation = self.incarnation;
        if let Some((from, kind, data)) = event.delivery() {
            self.delivered.push(Delivery { at, incarnation, from, kind, data: data.clone() });
        }
        self.events.push(NodeEvent { at, incarnation, event });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::Bare;

    #[test]
    fn deliveries_are_the_cast_and_send_events() {
        let mut n: Node<Endpoint<Bare>> = Node::new(Box::new(|_| unreachable!("not started in this test")));
        let t = Time::from_nanos(3);
        n.record(t, Event::View(crate::ids::View::initial(vec![EndpointId(1)])));
        n.record(t, Event::Cast { from: EndpointId(1), data: Bytes::from_static(b"c") });
        n.incarnation = 1;
        n.record(t, Event::Send { from: EndpointId(2), data: Bytes::from_static(b"s") });
        n.record(t, Event::Exit);
        assert_eq!(n.events.len(), 4);
        assert_eq!(
            n.delivered,
            vec![
                Delivery {
                    at: t,
                    incarnation: 0,
                    from: EndpointId(1),
                    kind: Kind::Cast,
                    data: Bytes::from_static(b"c")
                },
                Delivery {
                    at: t,
                    incarnation: 1,
                    from: EndpointId(2),
                    kind: Kind::Send,
                    data: Bytes::from_static(b"s")
                },
            ]
        );
        assert!(!n.is_up());
    }
}
