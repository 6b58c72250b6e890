//! The location trader (Electra's): names to object groups, itself a replicated object.
//!
//! `Directory` is its semantics object. A service is offered under a name by each member
//! that serves it: `install(name, entry)` registers an offer (the object group, the member
//! that offers it, and a contact: where a client that is not a member reaches that member,
//! an address for instance), replacing that member's earlier offer of the name;
//! `remove(name, owner)` withdraws one; `bind(name)` gives every offer of the name (the
//! object group and all its contacts, by owner); `list()` gives them all. It knows nothing
//! of replication: the trader group runs it under any strategy (`Cached` makes `bind` a
//! local read).
//!
//! `Trader` is a member of the trader group: a `Replica<Directory>` and the trader's duty,
//! which its first member carries out: every `period` it probes the owner of every offer
//! (`ObjCmd::Probe`, Electra's `are_you_alive`) and withdraws the offers of an owner that
//! missed `misses` probes in a row, by a write like any other (so every replica drops them
//! alike). Owners are members of the trader group: a service offers itself by joining it.
//! The duty's own operations have ids with the top bit set; the application's must not.
//!
//! Operations on the wire: a tag (0 install, 1 remove, 2 bind, 3 list), then the name (u16
//! length, UTF-8), then for install the entry and for remove the owner (u64). An entry is
//! the group and the owner (u64 each, little-endian) and the contact (u16 length, UTF-8). A
//! bind answers its entries one after another (none if the name has no offer); a list, the
//! installs of every offer. What does not decode is refused with why. Tested below
//! (operations) and in `grpc/tests/objects.rs` (install and bind from different members, a
//! service's owner crashing and its offer dropped by the duty, the duty moving with the
//! first member) and `bins/tests/kv.rs` (the demo's replicas and clients over real sockets).

use super::{ObjCmd, ObjEvent, Replica, Semantics};
use crate::machine::{CallId, RpcError};
use std::collections::BTreeMap;
use std::time::Duration;
use thoth_stack::sim::Simulated;
use thoth_stack::{Bytes, EndpointId, GroupId, Layer, Machine, Metrics, Rx, Stack, Stats, Time, Transmit, View};

/// One offer of a service: its object group, the member that offers it, and where a client
/// reaches that member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The service's object group (its `GroupId` number).
    pub group: u64,
    /// The member that offers it; its offer goes when it misses the duty's probes.
    pub owner: EndpointId,
    /// Where a client that is not a member reaches the owner (an address, say); opaque here.
    pub contact: String,
}

/// An operation on the directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TraderOp {
    /// Registers `entry` under `name`, replacing its owner's earlier offer of the name (a
    /// write; answers whether there was one).
    Install {
        /// The service's name.
        name: String,
        /// The offer.
        entry: Entry,
    },
    /// Withdraws `owner`'s offer of `name` (a write; answers whether there was one).
    Remove {
        /// The service's name.
        name: String,
        /// Whose offer goes.
        owner: EndpointId,
    },
    /// Every offer of `name`, by owner (a read; `decode_bind` reads the answer).
    Bind {
        /// The service's name.
        name: String,
    },
    /// Every offer of every name, as their installs (a read).
    List,
}

/// A string after its u16 length (cut to what a u16 counts, at a character boundary).
fn put_str(v: &mut Vec<u8>, s: &str) {
    let mut end = s.len().min(u16::MAX as usize);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    v.extend_from_slice(&(end as u16).to_le_bytes());
    v.extend_from_slice(&s.as_bytes()[..end]);
}

fn take_str(r: &mut &[u8]) -> Result<String, String> {
    let (len, rest) = r.split_first_chunk::<2>().ok_or("a string without its length")?;
    let len = u16::from_le_bytes(*len) as usize;
    if rest.len() < len {
        return Err("a string cut short".into());
    }
    let (s, rest) = rest.split_at(len);
    *r = rest;
    String::from_utf8(s.to_vec()).map_err(|_| "a string that is not UTF-8".into())
}

fn take_u64(r: &mut &[u8]) -> Result<u64, String> {
    let (b, rest) = r.split_first_chunk::<8>().ok_or("a number cut short")?;
    *r = rest;
    Ok(u64::from_le_bytes(*b))
}

impl TraderOp {
    /// The operation's bytes (the layout in the module doc), as a replica's `op`.
    pub fn encode(&self) -> Bytes {
        let mut v = Vec::new();
        let (tag, name) = match self {
            TraderOp::Install { name, .. } => (0, name.as_str()),
            TraderOp::Remove { name, .. } => (1, name.as_str()),
            TraderOp::Bind { name } => (2, name.as_str()),
            TraderOp::List => (3, ""),
        };
        v.push(tag);
        put_str(&mut v, name);
        match self {
            TraderOp::Install { entry, .. } => put_entry(&mut v, entry),
            TraderOp::Remove { owner, .. } => v.extend_from_slice(&owner.0.to_le_bytes()),
            _ => {}
        }
        Bytes::from(v)
    }

    /// Reads one whole operation; why not if it does not decode or bytes follow it.
    pub fn decode(b: &[u8]) -> Result<TraderOp, String> {
        let mut r = b;
        Self::take(&mut r).and_then(|op| if r.is_empty() { Ok(op) } else { Err("bytes after an operation".into()) })
    }

    /// Reads one operation from the front of `r`, leaving the rest.
    fn take(r: &mut &[u8]) -> Result<TraderOp, String> {
        let (&tag, rest) = r.split_first().ok_or("an empty operation")?;
        *r = rest;
        let name = take_str(r)?;
        Ok(match tag {
            0 => TraderOp::Install { name, entry: take_entry(r)? },
            1 => TraderOp::Remove { name, owner: EndpointId(take_u64(r)?) },
            2 => TraderOp::Bind { name },
            3 => TraderOp::List,
            t => return Err(format!("no trader operation {t}")),
        })
    }
}

fn put_entry(v: &mut Vec<u8>, e: &Entry) {
    v.extend_from_slice(&e.group.to_le_bytes());
    v.extend_from_slice(&e.owner.0.to_le_bytes());
    put_str(v, &e.contact);
}

fn take_entry(r: &mut &[u8]) -> Result<Entry, String> {
    Ok(Entry { group: take_u64(r)?, owner: EndpointId(take_u64(r)?), contact: take_str(r)? })
}

/// A `bind`'s answer: every offer of the name, by owner.
pub fn decode_bind(b: &[u8]) -> Result<Vec<Entry>, String> {
    let mut r = b;
    let mut out = Vec::new();
    while !r.is_empty() {
        out.push(take_entry(&mut r)?);
    }
    Ok(out)
}

/// The trader's semantics object: names to the offers of their services.
#[derive(Default, Debug, PartialEq, Eq)]
pub struct Directory {
    services: BTreeMap<String, BTreeMap<EndpointId, Entry>>,
}

impl Directory {
    /// The offers of `name`, by owner.
    pub fn get(&self, name: &str) -> Vec<Entry> {
        self.services.get(name).map(|o| o.values().cloned().collect()).unwrap_or_default()
    }
    /// Names with at least one offer.
    pub fn len(&self) -> usize {
        self.services.len()
    }
    /// Whether no name has an offer.
    pub fn is_empty(&self) -> bool {
        self.services.is_empty()
    }
    /// The names a member offers.
    fn offered_by(&self, owner: EndpointId) -> Vec<String> {
        self.services.iter().filter(|(_, o)| o.contains_key(&owner)).map(|(n, _)| n.clone()).collect()
    }
    fn owners(&self) -> Vec<EndpointId> {
        let mut o: Vec<EndpointId> = self.services.values().flat_map(|o| o.keys().copied()).collect();
        o.sort();
        o.dedup();
        o
    }
}

impl Semantics for Directory {
    /// An install or a remove; its result: whether the offer was there before.
    fn apply(&mut self, op: &[u8]) -> Result<Bytes, String> {
        let had = match TraderOp::decode(op)? {
            TraderOp::Install { name, entry } => {
                self.services.entry(name).or_default().insert(entry.owner, entry).is_some()
            }
            TraderOp::Remove { name, owner } => {
                let offers = self.services.get_mut(&name);
                let had = offers.is_some_and(|o| o.remove(&owner).is_some());
                if self.services.get(&name).is_some_and(BTreeMap::is_empty) {
                    self.services.remove(&name);
                }
                had
            }
            _ => return Err("bind and list are read-only".into()),
        };
        Ok(Bytes::from_static(if had { &[1] } else { &[0] }))
    }
    fn read(&self, op: &[u8]) -> Result<Bytes, String> {
        match TraderOp::decode(op)? {
            TraderOp::Bind { name } => {
                let mut v = Vec::new();
                for e in self.services.get(&name).into_iter().flat_map(BTreeMap::values) {
                    put_entry(&mut v, e);
                }
                Ok(Bytes::from(v))
            }
            TraderOp::List => Ok(self.dump()),
            _ => Err("install and remove are not read-only".into()),
        }
    }
    /// Every offer, as its install.
    fn dump(&self) -> Bytes {
        let mut v = Vec::new();
        for (name, offers) in &self.services {
            for entry in offers.values() {
                v.extend_from_slice(&TraderOp::Install { name: name.clone(), entry: entry.clone() }.encode());
            }
        }
        Bytes::from(v)
    }
    fn undump(&mut self, state: &[u8]) -> Result<(), String> {
        let mut services: BTreeMap<String, BTreeMap<EndpointId, Entry>> = BTreeMap::new();
        let mut r = state;
        while !r.is_empty() {
            match TraderOp::take(&mut r)? {
                TraderOp::Install { name, entry } => services.entry(name).or_default().insert(entry.owner, entry),
                _ => return Err("a dump holds installs only".into()),
            };
        }
        self.services = services;
        Ok(())
    }
}

/// The top bit: the trader duty's own operation ids.
const DUTY: CallId = 1 << 63;

/// A member of the trader group (see the module doc).
pub struct Trader<L: Layer = Stack> {
    replica: Replica<Directory, L>,
    period: Duration,
    misses: u32,
    next_tick: Option<Time>,
    /// Probes out: their ids, and whom.
    probing: BTreeMap<CallId, EndpointId>,
    /// Probes missed in a row, per owner.
    missed: BTreeMap<EndpointId, u32>,
    next_id: CallId,
    /// The application's events (the duty's own outcomes taken out).
    events: std::collections::VecDeque<ObjEvent>,
    /// Offers the duty withdrew.
    pub dropped: u64,
}

impl<L: Layer> Trader<L> {
    /// A member of the trader group over `replica`; its first member probes every `period`
    /// and drops the services of an owner that misses `misses` probes in a row.
    pub fn new(replica: Replica<Directory, L>, period: Duration, misses: u32) -> Trader<L> {
        Trader {
            replica,
            period,
            misses: misses.max(1),
            next_tick: None,
            probing: BTreeMap::new(),
            missed: BTreeMap::new(),
            next_id: DUTY,
            events: std::collections::VecDeque::new(),
            dropped: 0,
        }
    }

    /// The directory's replica at this member (its state, its counters).
    pub fn replica(&self) -> &Replica<Directory, L> {
        &self.replica
    }

    fn duty_id(&mut self) -> CallId {
        self.next_id += 1;
        self.next_id
    }

    /// The first member's round: a probe to every owner of a service (itself excepted).
    fn tick(&mut self, now: Time) {
        self.next_tick = Some(now + self.period);
        let me = self.replica.rpc().me();
        if self.replica.view().members.first() != Some(&me) {
            return;
        }
        for owner in self.replica.object().owners() {
            if owner == me || self.probing.values().any(|&o| o == owner) {
                continue;
            }
            let id = self.duty_id();
            if self.replica.handle_command(now, ObjCmd::Probe { id, member: owner }).is_ok() {
                self.probing.insert(id, owner);
            }
        }
    }

    /// Takes the replica's events: the duty's own outcomes here, the rest for the
    /// application.
    fn collect(&mut self, now: Time) {
        while let Some(ev) = self.replica.poll_event() {
            match ev {
                ObjEvent::Done { id, result } if id > DUTY => {
                    if let Some(owner) = self.probing.remove(&id) {
                        self.probed(now, owner, result.is_ok());
                    }
                }
                other => self.events.push_back(other),
            }
        }
    }

    /// A probe's outcome: a miss counts, an answer clears; enough misses drop the owner's
    /// services.
    fn probed(&mut self, now: Time, owner: EndpointId, alive: bool) {
        if alive {
            self.missed.remove(&owner);
            return;
        }
        let m = self.missed.entry(owner).or_default();
        *m += 1;
        if *m < self.misses {
            return;
        }
        self.missed.remove(&owner);
        for name in self.replica.object().offered_by(owner) {
            let id = self.duty_id();
            let op = TraderOp::Remove { name, owner }.encode();
            if self.replica.handle_command(now, ObjCmd::Write { id, op }).is_ok() {
                self.dropped += 1;
            }
        }
    }
}

impl<L: Layer> Machine for Trader<L> {
    type Cmd = ObjCmd;
    type Event = ObjEvent;
    type Refused = RpcError;

    fn me(&self) -> EndpointId {
        self.replica.me()
    }
    fn max_datagram(&self) -> usize {
        self.replica.max_datagram()
    }
    fn max_payload(&self) -> usize {
        self.replica.max_payload()
    }
    fn view(&self) -> &View {
        self.replica.view()
    }
    fn has_left(&self) -> bool {
        self.replica.has_left()
    }
    fn held(&self) -> bool {
        self.replica.held()
    }
    fn stats(&self) -> Stats {
        self.replica.stats()
    }
    fn metrics(&self) -> Metrics {
        self.replica.metrics()
    }
    fn handle_command(&mut self, now: Time, cmd: ObjCmd) -> Result<(), RpcError> {
        let r = self.replica.handle_command(now, cmd);
        self.collect(now);
        r
    }
    fn handle_datagram(&mut self, now: Time, data: Bytes) -> Rx {
        let rx = self.replica.handle_datagram(now, data);
        self.collect(now);
        rx
    }
    fn handle_timeout(&mut self, now: Time) {
        self.replica.handle_timeout(now);
        if self.next_tick.is_none_or(|t| t <= now) {
            self.tick(now);
        }
        self.collect(now);
    }
    fn end_turn(&mut self, now: Time) {
        self.replica.end_turn(now);
        self.collect(now);
    }
    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.replica.poll_transmit()
    }
    fn poll_event(&mut self) -> Option<ObjEvent> {
        self.events.pop_front()
    }
    fn poll_timeout(&self) -> Option<Time> {
        thoth_stack::time::earliest(self.replica.poll_timeout(), self.next_tick.or(Some(Time::ZERO)))
    }
}

impl<L: Layer> Simulated for Trader<L> {
    fn segment(&self) -> GroupId {
        self.replica.segment()
    }
}

impl<L: Layer> thoth_stack::groups::GroupMember for Trader<L> {
    fn group(&self) -> GroupId {
        self.replica.segment()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(group: u64, owner: u64, contact: &str) -> Entry {
        Entry { group, owner: EndpointId(owner), contact: contact.into() }
    }

    #[test]
    fn operations_round_trip_and_apply() {
        let (a, b) = (entry(77, 5, "127.0.0.1:7001"), entry(77, 6, "127.0.0.1:7002"));
        let ops = [
            TraderOp::Install { name: "kv".into(), entry: a.clone() },
            TraderOp::Remove { name: "kv".into(), owner: EndpointId(5) },
            TraderOp::Bind { name: "kv".into() },
            TraderOp::List,
        ];
        for op in &ops {
            assert_eq!(TraderOp::decode(&op.encode()).as_ref(), Ok(op));
        }
        let mut d = Directory::default();
        assert_eq!(d.apply(&ops[0].encode()), Ok(Bytes::from_static(&[0])));
        assert_eq!(d.apply(&ops[0].encode()), Ok(Bytes::from_static(&[1])), "an owner's offer replaces its own");
        d.apply(&TraderOp::Install { name: "kv".into(), entry: b.clone() }.encode()).expect("install");
        d.apply(&TraderOp::Install { name: "files".into(), entry: entry(9, 6, "") }.encode()).expect("install");
        assert_eq!(decode_bind(&d.read(&ops[2].encode()).expect("bind")), Ok(vec![a.clone(), b.clone()]));
        let mut copy = Directory::default();
        copy.undump(&d.dump()).expect("undumps");
        assert_eq!(copy, d);
        assert_eq!(d.offered_by(EndpointId(6)), ["files", "kv"]);
        assert_eq!(d.owners(), [EndpointId(5), EndpointId(6)]);
        assert_eq!(d.apply(&ops[1].encode()), Ok(Bytes::from_static(&[1])));
        assert_eq!(decode_bind(&d.read(&ops[2].encode()).expect("bind")), Ok(vec![b]));
        d.apply(&TraderOp::Remove { name: "files".into(), owner: EndpointId(6) }.encode()).expect("remove");
        assert_eq!((d.len(), d.get("files")), (1, vec![]), "a name with no offer left is gone");
        for bad in [&[][..], &[0, 2, 0, b'k'], &[9, 0, 0], &[2, 0, 0, 1], &[1, 0, 0, 1, 2]] {
            assert!(TraderOp::decode(bad).is_err(), "{bad:?}");
        }
        let dump = d.dump();
        for cut in 1..dump.len() {
            assert!(Directory::default().undump(&dump[..cut]).is_err(), "cut at {cut}");
        }
        assert!(decode_bind(&[1, 2, 3]).is_err());
    }
}
