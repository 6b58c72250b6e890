//! The simulator's trace: every observable thing that happens in a run, as typed records,
//! folded into one stable 64-bit hash (FNV-1a over a fixed little-endian encoding of each
//! record). Two runs with the same hash saw the same events at the same virtual times with
//! the same bytes; the hash is the same on every platform and every build.
//!
//! Records cover application commands, node starts and crashes, timer firings, every event
//! an endpoint hands its application (with sender and payload bytes), and the fate of every
//! datagram on every link (lost, cut, dropped at a dead node, corrupted, delivered). Keeping
//! the records themselves is optional (`Sim::keep_trace`); the hash is always computed.
//!
//! Tested by the unit tests below (FNV-1a reference vectors; field changes change the hash;
//! kept records match what was hashed) and by the determinism tests in `tests/sim.rs`.

use super::node::{Kind, NodeId};
use crate::event::Event;
use crate::ids::EndpointId;
use crate::time::Time;
use bytes::Bytes;

pub use crate::ids::Fnv;

/// The FNV-1a hash of a byte string (a datagram's digest in the trace).
pub fn digest(b: &[u8]) -> u64 {
    crate::ids::fnv1a(b)
}

/// What became of one datagram on one directed link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Put on the link: `copies` copies in flight (more than one if duplicated), of which
    /// `corrupted` have damaged bytes.
    InFlight {
        /// Copies scheduled to arrive: 1, or 2 if the link duplicated it.
        copies: u8,
        /// How many of those copies the link damaged.
        corrupted: u8,
    },
    /// Dropped by the link's loss probability.
    Lost,
    /// Dropped by a partition (at send or at arrival).
    Cut,
    /// Dropped because the destination is down, or restarted since the datagram was sent.
    Dead,
    /// `Dest::One` to an endpoint id no node has.
    Unroutable,
    /// Handed to the destination's `handle_datagram`.
    Delivered {
        /// The copy was damaged in flight (the frame check should reject it).
        corrupted: bool,
    },
}

/// What the simulator needs of the events a machine hands its application: a stable
/// encoding for the trace's hash, and the message an event delivers, if it is one.
pub trait Observed: Clone + core::fmt::Debug {
    /// Feeds a stable encoding of the event to `h`.
    fn hash_into(&self, h: &mut Fnv);
    /// The message it delivers to the application: sender, cast or send, payload.
    fn delivery(&self) -> Option<(EndpointId, Kind, &Bytes)>;
}

/// One thing that happened; `E` is what the machines hand their applications.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry<E = Event> {
    /// A node's endpoint was built (its first start or a restart).
    Start {
        /// The node started.
        node: NodeId,
        /// 0 for the first start, one more for each restart.
        incarnation: u32,
        /// The endpoint id the factory gave this incarnation.
        id: EndpointId,
    },
    /// A node crashed (`Sim::crash`, or a restart's crash); only recorded if it was up.
    Crash {
        /// The node crashed.
        node: NodeId,
        /// The incarnation that died.
        incarnation: u32,
    },
    /// An application cast (`Sim::cast`, `Sim::cast_fifo`) and whether the endpoint accepted it.
    Cast {
        /// The casting node.
        node: NodeId,
        /// Payload length in bytes.
        len: usize,
        /// FNV-1a of the payload (`digest`).
        digest: u64,
        /// The endpoint accepted the cast (false: node down or cast refused).
        ok: bool,
    },
    /// An application point-to-point send (`Sim::send`) and whether the endpoint accepted it.
    Send {
        /// The sending node.
        node: NodeId,
        /// The destination member's endpoint id.
        to: EndpointId,
        /// Payload length in bytes.
        len: usize,
        /// FNV-1a of the payload (`digest`).
        digest: u64,
        /// The endpoint accepted the send (false: node down or send refused).
        ok: bool,
    },
    /// The application asked to leave the group (`Sim::leave`).
    Leave {
        /// The leaving node.
        node: NodeId,
        /// The endpoint accepted the leave (false: the node was down).
        ok: bool,
    },
    /// The user ran code against an endpoint (`Sim::with`).
    With {
        /// The node whose machine the code ran on (recorded only if it was up).
        node: NodeId,
    },
    /// A command of the machine's own kind (`Sim::command`) and whether it was accepted.
    Command {
        /// The node whose machine got the command.
        node: NodeId,
        /// The machine accepted it (false: node down or command refused).
        ok: bool,
    },
    /// A datagram on the link `from → to` (`to` is `from` for an unroutable one).
    Datagram {
        /// The sending node.
        from: NodeId,
        /// The destination node (`from` itself if unroutable).
        to: NodeId,
        /// Datagram length in bytes, as on the wire.
        len: usize,
        /// FNV-1a of the datagram's bytes (of the damaged bytes for a corrupted copy on arrival).
        digest: u64,
        /// What became of it at this point: put on the link, or at arrival.
        fate: Fate,
    },
    /// A node's timer fired.
    Timer {
        /// The node whose `handle_timeout` ran.
        node: NodeId,
    },
    /// A datagram from outside the simulated group (`Sim::inject`: a hostile host, say)
    /// arrived at `to`, if it was up.
    Inject {
        /// The node it was handed to.
        to: NodeId,
        /// Datagram length in bytes.
        len: usize,
        /// FNV-1a of the datagram's bytes.
        digest: u64,
        /// The node was up and got it through `handle_datagram` (false: dropped, node down).
        delivered: bool,
    },
    /// An event the endpoint handed its application.
    Event {
        /// The receiving node.
        node: NodeId,
        /// The incarnation that handed it over.
        incarnation: u32,
        /// The event itself, as the machine output it.
        event: E,
    },
}

/// An entry and when it happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record<E = Event> {
    /// The virtual time it happened at.
    pub at: Time,
    /// What happened.
    pub entry: Entry<E>,
}

impl<E: Observed> Record<E> {
    /// Feeds the record's stable encoding to `h`.
    pub fn hash_into(&self, h: &mut Fnv) {
        h.u64(self.at.as_nanos());
        match &self.entry {
            Entry::Start { node, incarnation, id } => {
                h.u8(1);
                h.u32(node.0);
                h.u32(*incarnation);
                h.u64(id.0);
            }
            Entry::Crash { node, incarnation } => {
                h.u8(2);
                h.u32(node.0);
                h.u32(*incarnation);
            }
            Entry::Cast { node, len, digest, ok } => {
                h.u8(3);
                h.u32(node.0);
                h.u64(*len as u64);
                h.u64(*digest);
                h.u8(*ok as u8);
            }
            Entry::Send { node, to, len, digest, ok } => {
                h.u8(4);
                h.u32(node.0);
                h.u64(to.0);
                h.u64(*len as u64);
                h.u64(*digest);
                h.u8(*ok as u8);
            }
            Entry::Leave { node, ok } => {
                h.u8(5);
                h.u32(node.0);
                h.u8(*ok as u8);
            }
            Entry::With { node } => {
                h.u8(6);
                h.u32(node.0);
            }
            Entry::Command { node, ok } => {
                h.u8(11);
                h.u32(node.0);
                h.u8(*ok as u8);
            }
            Entry::Datagram { from, to, len, digest, fate } => {
                h.u8(7);
                h.u32(from.0);
                h.u32(to.0);
                h.u64(*len as u64);
                h.u64(*digest);
                match fate {
                    Fate::InFlight { copies, corrupted } => {
                        h.u8(0);
                        h.u8(*copies);
                        h.u8(*corrupted);
                    }
                    Fate::Lost => h.u8(1),
                    Fate::Cut => h.u8(2),
                    Fate::Dead => h.u8(3),
                    Fate::Unroutable => h.u8(4),
                    Fate::Delivered { corrupted } => {
                        h.u8(5);
                        h.u8(*corrupted as u8);
                    }
                }
            }
            Entry::Timer { node } => {
                h.u8(8);
                h.u32(node.0);
            }
            Entry::Inject { to, len, digest, delivered } => {
                h.u8(10);
                h.u32(to.0);
                h.u64(*len as u64);
                h.u64(*digest);
                h.u8(*delivered as u8);
            }
            Entry::Event { node, incarnation, event } => {
                h.u8(9);
                h.u32(node.0);
                h.u32(*incarnation);
                event.hash_into(h);
            }
        }
    }
}

impl Observed for Event {
    fn hash_into(&self, h: &mut Fnv) {
        hash_event(self, h)
    }
    fn delivery(&self) -> Option<(EndpointId, Kind, &Bytes)> {
        match self {
            Event::Cast { from, data } => Some((*from, Kind::Cast, data)),
            Event::Send { from, data } => Some((*from, Kind::Send, data)),
            Event::View(_)
            | Event::Exit
            | Event::Error { .. }
            | Event::Suspect(_)
            | Event::Block
            | Event::StateRequest
            | Event::State { .. }
            | Event::Probed(_) => None,
        }
    }
}

fn hash_event(ev: &Event, h: &mut Fnv) {
    match ev {
        Event::View(v) => {
            h.u8(0);
            h.u64(v.id.ltime);
            h.u64(v.id.coord.0);
            h.u8(v.primary as u8);
            h.u64(v.members.len() as u64);
            for m in &v.members {
                h.u64(m.0);
            }
            h.u64(v.subgroups.len() as u64);
            for g in &v.subgroups {
                h.u64(g.len() as u64);
                g.iter().for_each(|m| h.u64(m.0));
            }
        }
        Event::Cast { from, data } => {
            h.u8(1);
            h.u64(from.0);
            h.blob(data);
        }
        Event::Send { from, data } => {
            h.u8(2);
            h.u64(from.0);
            h.blob(data);
        }
        Event::Exit => h.u8(3),
        Event::Error { layer, detail } => {
            h.u8(4);
            h.blob(layer.as_bytes());
            h.blob(detail.as_bytes());
        }
        Event::Block => h.u8(6),
        Event::StateRequest => h.u8(7),
        Event::Probed(r) => {
            h.u8(9);
            h.blob(&crate::probe::Probe::Answer(r.clone()).encode());
        }
        Event::State { chunk, last } => {
            h.u8(8);
            h.blob(chunk);
            h.u8(*last as u8);
        }
        Event::Suspect(ids) => {
            h.u8(5);
            h.u64(ids.len() as u64);
            for id in ids {
                h.u64(id.0);
            }
        }
    }
}

/// The running trace of a simulation.
#[derive(Debug)]
pub(crate) struct Trace<E = Event> {
    hash: Fnv,
    count: u64,
    keep: bool,
    records: Vec<Record<E>>,
}

impl<E> Default for Trace<E> {
    fn default() -> Self {
        Trace { hash: Fnv::default(), count: 0, keep: false, records: Vec::new() }
    }
}

impl<E: Observed> Trace<E> {
    pub(crate) fn record(&mut self, at: Time, entry: Entry<E>) {
        let r = Record { at, entry };
        r.hash_into(&mut self.hash);
        self.count += 1;
        if self.keep {
            self.records.push(r);
        }
    }
    pub(crate) fn hash(&self) -> u64 {
        self.hash.finish()
    }
    pub(crate) fn count(&self) -> u64 {
        self.count
    }
    pub(crate) fn set_keep(&mut self, keep: bool) {
        self.keep = keep;
    }
    pub(crate) fn records(&self) -> &[Record<E>] {
        &self.records
    }
}

/// A payload for a trace entry: its length and digest.
pub(crate) fn summary(b: &Bytes) -> (usize, u64) {
    (b.len(), digest(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_reference_vectors() {
        assert_eq!(digest(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(digest(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(digest(b"foobar"), 0x8594_4171_f739_67e8);
        assert_eq!(digest(b"foobar"), crate::ids::fnv1a(b"foobar"));
    }

    #[test]
    fn blobs_are_length_prefixed() {
        let (mut a, mut b) = (Fnv::new(), Fnv::new());
        a.blob(b"ab");
        a.blob(b"c");
        b.blob(b"a");
        b.blob(b"bc");
        assert_ne!(a.finish(), b.finish());
    }

    fn hash_of(r: &Record) -> u64 {
        let mut h = Fnv::new();
        r.hash_into(&mut h);
        h.finish()
    }

    #[test]
    fn every_field_moves_the_hash() {
        let at = Time::from_nanos(10);
        let ev = |from: u64, data: &'static [u8]| Record {
            at,
            entry: Entry::Event {
                node: NodeId(1),
                incarnation: 0,
                event: Event::Cast { from: EndpointId(from), data: Bytes::from_static(data) },
            },
        };
        let base = hash_of(&ev(3, b"xy"));
        assert_ne!(base, hash_of(&ev(4, b"xy")), "sender");
        assert_ne!(base, hash_of(&ev(3, b"xz")), "payload");
        assert_ne!(base, hash_of(&Record { at: Time::from_nanos(11), ..ev(3, b"xy") }), "time");
        let dg =
            |fate| Record { at, entry: Entry::Datagram { from: NodeId(0), to: NodeId(1), len: 5, digest: 9, fate } };
        let fates = [
            Fate::InFlight { copies: 1, corrupted: 0 },
            Fate::InFlight { copies: 2, corrupted: 0 },
            Fate::InFlight { copies: 1, corrupted: 1 },
            Fate::Lost,
            Fate::Cut,
            Fate::Dead,
            Fate::Unroutable,
            Fate::Delivered { corrupted: false },
            Fate::Delivered { corrupted: true },
        ];
        let mut hashes: Vec<u64> = fates.iter().map(|&f| hash_of(&dg(f))).collect();
        hashes.sort_unstable();
        hashes.dedup();
        assert_eq!(hashes.len(), fates.len(), "every fate hashes differently");
    }

    #[test]
    fn kept_records_are_the_hashed_ones() {
        let mut t: Trace = Trace::default();
        t.record(Time::ZERO, Entry::Timer { node: NodeId(0) });
        t.set_keep(true);
        let e = Entry::Crash { node: NodeId(2), incarnation: 1 };
        t.record(Time::from_nanos(5), e.clone());
        assert_eq!(t.count(), 2);
        assert_eq!(t.records(), &[Record { at: Time::from_nanos(5), entry: e }]);
        let mut h = Fnv::new();
        Record::<Event> { at: Time::ZERO, entry: Entry::Timer { node: NodeId(0) } }.hash_into(&mut h);
        t.records()[0].hash_into(&mut h);
        assert_eq!(t.hash(), h.finish());
    }
}
