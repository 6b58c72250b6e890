//! The location trader (Electra's): names to object groups, itself a replicated object.
//!
//! `Directory` is its semantics object: `install(name, group, owner)` registers a service
//! (the object group `group`, offered by the member `owner`), `remove(name)` drops it,
//! `bind(name)` finds it and `list()` gives them all. It knows nothing of replication: the
//! trader group runs it under any strategy (`Cached` makes `bind` a local read).
//!
//! `Trader` is a member of the trader group: a `Replica<Directory>` and the trader's duty,
//! which its first member carries out: every `period` it probes the owner of every service
//! (`ObjCmd::Probe`, Electra's `are_you_alive`) and removes the services of an owner that
//! missed `misses` probes in a row, by a write like any other (so every replica drops them
//! alike). Owners are members of the trader group: a service offers itself by joining it.
//! The duty's own operations have ids with the top bit set; the application's must not.
//!
//! Operations on the wire: a tag (0 install, 1 remove, 2 bind, 3 list), then the name (u16
//! length, UTF-8) and, for install, the group and the owner (u64 each, little-endian). A
//! bind answers the entry (group, owner) or nothing; a list, every entry. What does not
//! decode is refused with why. Tested below (operations) and in `grpc/tests/objects.rs`
//! (install and bind from different members, a service's owner crashing and its service
//! dropped by the duty, the duty moving with the first member).

use super::{ObjCmd, ObjEvent, Replica, Semantics};
use crate::machine::{CallId, RpcError};
use std::collections::BTreeMap;
use std::time::Duration;
use thoth_stack::sim::Simulated;
use thoth_stack::{Bytes, EndpointId, GroupId, Layer, Machine, Rx, Stack, Stats, Time, Transmit, View};

/// A registered service: its object group, and the member that offers it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    pub group: u64,
    pub owner: EndpointId,
}

/// An operation on the directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TraderOp {
    Install { name: String, entry: Entry },
    Remove { name: String },
    Bind { name: String },
    List,
}

impl TraderOp {
    pub fn encode(&self) -> Bytes {
        let mut v = Vec::new();
        let (tag, name) = match self {
            TraderOp::Install { name, .. } => (0, name.as_str()),
            TraderOp::Remove { name } => (1, name.as_str()),
            TraderOp::Bind { name } => (2, name.as_str()),
            TraderOp::List => (3, ""),
        };
        v.push(tag);
        let name = &name.as_bytes()[..name.len().min(u16::MAX as usize)];
        v.extend_from_slice(&(name.len() as u16).to_le_bytes());
        v.extend_from_slice(name);
        if let TraderOp::Install { entry, .. } = self {
            put_entry(&mut v, entry);
        }
        Bytes::from(v)
    }

    pub fn decode(b: &[u8]) -> Result<TraderOp, String> {
        let (&tag, rest) = b.split_first().ok_or("an empty operation")?;
        let (len, rest) = rest.split_first_chunk::<2>().ok_or("no name length")?;
        let len = u16::from_le_bytes(*len) as usize;
        if rest.len() < len {
            return Err("a name cut short".into());
        }
        let (name, mut rest) = rest.split_at(len);
        let name = String::from_utf8(name.to_vec()).map_err(|_| "a name that is not UTF-8")?;
        let op = match tag {
            0 => TraderOp::Install { name, entry: take_entry(&mut rest)? },
            1 => TraderOp::Remove { name },
            2 => TraderOp::Bind { name },
            3 => TraderOp::List,
            t => return Err(format!("no trader operation {t}")),
        };
        if !rest.is_empty() {
            return Err("bytes after an operation".into());
        }
        Ok(op)
    }
}

fn put_entry(v: &mut Vec<u8>, e: &Entry) {
    v.extend_from_slice(&e.group.to_le_bytes());
    v.extend_from_slice(&e.owner.0.to_le_bytes());
}

fn take_entry(r: &mut &[u8]) -> Result<Entry, String> {
    let (b, rest) = r.split_first_chunk::<16>().ok_or("an entry cut short")?;
    *r = rest;
    Ok(Entry {
        group: u64::from_le_bytes(b[..8].try_into().expect("8 bytes")),
        owner: EndpointId(u64::from_le_bytes(b[8..].try_into().expect("8 bytes"))),
    })
}

/// A `bind`'s answer: the entry, if the name is registered.
pub fn decode_bind(b: &[u8]) -> Result<Option<Entry>, String> {
    if b.is_empty() {
        return Ok(None);
    }
    let mut r = b;
    let e = take_entry(&mut r)?;
    if r.is_empty() { Ok(Some(e)) } else { Err("bytes after an entry".into()) }
}

/// The trader's semantics object: names to services.
#[derive(Default, Debug, PartialEq, Eq)]
pub struct Directory {
    services: BTreeMap<String, Entry>,
}

impl Directory {
    pub fn get(&self, name: &str) -> Option<Entry> {
        self.services.get(name).copied()
    }
    pub fn len(&self) -> usize {
        self.services.len()
    }
    pub fn is_empty(&self) -> bool {
        self.services.is_empty()
    }
    /// The names a member offers.
    fn offered_by(&self, owner: EndpointId) -> Vec<String> {
        self.services.iter().filter(|(_, e)| e.owner == owner).map(|(n, _)| n.clone()).collect()
    }
    fn owners(&self) -> Vec<EndpointId> {
        let mut o: Vec<EndpointId> = self.services.values().map(|e| e.owner).collect();
        o.sort();
        o.dedup();
        o
    }
}

impl Semantics for Directory {
    fn apply(&mut self, op: &[u8]) -> Result<Bytes, String> {
        let had = match TraderOp::decode(op)? {
            TraderOp::Install { name, entry } => self.services.insert(name, entry).is_some(),
            TraderOp::Remove { name } => self.services.remove(&name).is_some(),
            _ => return Err("bind and list are read-only".into()),
        };
        Ok(Bytes::from_static(if had { &[1] } else { &[0] }))
    }
    fn read(&self, op: &[u8]) -> Result<Bytes, String> {
        let mut v = Vec::new();
        match TraderOp::decode(op)? {
            TraderOp::Bind { name } => {
                if let Some(e) = self.services.get(&name) {
                    put_entry(&mut v, e);
                }
            }
            TraderOp::List => return Ok(self.dump()),
            _ => return Err("install and remove are not read-only".into()),
        }
        Ok(Bytes::from(v))
    }
    fn dump(&self) -> Bytes {
        let mut v = Vec::new();
        for (name, entry) in &self.services {
            v.extend_from_slice(&TraderOp::Install { name: name.clone(), entry: *entry }.encode());
        }
        Bytes::from(v)
    }
    fn undump(&mut self, state: &[u8]) -> Result<(), String> {
        let mut services = BTreeMap::new();
        let mut r = state;
        while !r.is_empty() {
            // One install after another: the tag, the name's length, the name, the entry.
            let len = 3 + r.get(1..3).map_or(0, |l| u16::from_le_bytes([l[0], l[1]]) as usize) + 16;
            let (one, rest) = r.split_at(len.min(r.len()));
            match TraderOp::decode(one)? {
                TraderOp::Install { name, entry } => services.insert(name, entry),
                _ => return Err("a dump holds installs only".into()),
            };
            r = rest;
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
    /// Services the duty removed.
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
            let op = TraderOp::Remove { name }.encode();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_round_trip_and_apply() {
        let e = Entry { group: 77, owner: EndpointId(5) };
        let ops = [
            TraderOp::Install { name: "kv".into(), entry: e },
            TraderOp::Remove { name: "kv".into() },
            TraderOp::Bind { name: "kv".into() },
            TraderOp::List,
        ];
        for op in &ops {
            assert_eq!(TraderOp::decode(&op.encode()).as_ref(), Ok(op));
        }
        let mut d = Directory::default();
        assert_eq!(d.apply(&ops[0].encode()), Ok(Bytes::from_static(&[0])));
        assert_eq!(decode_bind(&d.read(&ops[2].encode()).expect("bind")), Ok(Some(e)));
        d.apply(&TraderOp::Install { name: "other".into(), entry: Entry { group: 1, owner: EndpointId(6) } }.encode())
            .expect("install");
        let mut copy = Directory::default();
        copy.undump(&d.dump()).expect("undumps");
        assert_eq!(copy, d);
        assert_eq!(d.offered_by(EndpointId(5)), ["kv"]);
        assert_eq!(d.owners(), [EndpointId(5), EndpointId(6)]);
        assert_eq!(d.apply(&ops[1].encode()), Ok(Bytes::from_static(&[1])));
        assert_eq!(decode_bind(&d.read(&ops[2].encode()).expect("bind")), Ok(None));
        for bad in [&[][..], &[0, 2, 0, b'k'], &[9, 0, 0], &[2, 0, 0, 1]] {
            assert!(TraderOp::decode(bad).is_err(), "{bad:?}");
        }
        assert!(Directory::default().undump(&[0, 1, 0, b'x', 1]).is_err());
    }
}
