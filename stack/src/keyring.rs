//! `Keyring`: what a secured endpoint keeps to seal its datagrams and open the others' (frame
//! protection; the primitives are `secure`'s, the frame layout `frame`'s).
//!
//! Two sets of keys: the current view's, for datagrams sent in it, and the group's gossip
//! keys, for datagrams from outside a view (discovery, joins, installs, merges). Each holds
//! this endpoint's own sealing key and, per sender (an id in one incarnation) whose datagram
//! opened, its key and its replay window. A sender is remembered only once a datagram of it
//! has opened, so a forger (no key) adds nothing; the sets are bounded all the same (a key
//! holder could make up incarnations), the least recently heard sender making room for a
//! new one. The current view's set starts afresh at each view.
//!
//! **Member key pairs** (`Security::KeyPairs`). There is no key every member holds before
//! it is admitted, so gossip is sealed for each receiver on the sender's allow-list: its
//! body (with which endpoints of the sender's view hold which key) encrypted under a key
//! drawn for the datagram, and that key sealed for each other listed member under the key
//! the sender shares with it, with a SHA-256 digest of everything before as associated data
//! (a receiver holds the datagram's key, so its own tag alone would not stop it from
//! altering what the others read; the digest does). A forgery costs a receiver one tag
//! check, where a signature would cost it a verification and the forger nothing:
//! ```text
//!  | header (56) | sealed: body, (endpoint, key id) × m, m: u16 | tag | sender's key id |
//!  | (key id, the datagram's key sealed, tag) × n | n: u16 |
//! ```
//! A view's key is drawn by its coordinator and handed out in the view's `Install` (the
//! membership layer carries it, opaque, from `Cx::key_table` to `Cx::take_key_table`): a
//! *key table*, the key sealed for each member under the key the coordinator shares with it.
//! A member installs a view only with its `Install`, so it never sits in a view without the
//! means to read it (a separate key message could be lost with its coordinator), and an
//! endpoint not in the table cannot read the view, whatever keys it held before.
//! ```text
//!  | coordinator's key id | coordinator | its incarnation | (member, key id, pn, sealed key, tag) × members |
//! ```
//!
//! A datagram of a later view is checked (its tag, under that view's key) before the
//! endpoint holds it for that view, and opened when it is replayed there; one of an earlier
//! view is not opened at all (the endpoint drops it, counted as of another view). With
//! member key pairs a later view's key is not known before its `Install`: its datagrams are
//! held unchecked (bounded in bytes, as always) and opened when replayed.
//!
//! Packet numbers: one sequence for every datagram and key table entry of this incarnation,
//! views and gossip alike, so a nonce is never used twice with a key.
//!
//! Tested here (key tables: who can read a view) and through the endpoint
//! (`thoth/tests/secure.rs`): every rejection reason with a datagram crafted outside the
//! stack, replays within a view and from an earlier one, groups of each key mode.

use crate::frame::{Frame, SEALED_LEN, Seal, write_sealed};
use crate::ids::{EndpointId, GroupId, View, ViewId};
use crate::secure::{Drbg, GroupSecret, Reject, Security, SenderKey, TAG_LEN, ViewKeys, Window, open, seal};
use crate::wire::Reader;
use bytes::{Bytes, BytesMut};
use ring::digest::{Context, SHA256, digest};
use std::collections::BTreeMap;

/// Senders the gossip keys remember at most.
const GOSSIP_SENDERS: usize = 256;
/// Bytes of `Keyring::out` at a time.
const OUT_CHUNK: usize = 256 << 10;
/// Endpoints whose key an endpoint remembers at most (member key pairs).
const KNOWN: usize = 4096;
/// Endpoints a key-pair gossip datagram says the key of, at most.
const MAP_MOST: usize = 1024;
/// A key-pair gossip datagram's part for one receiver: its key id, the datagram's key sealed
/// and the tag.
const VECTOR_ENTRY: usize = 8 + 16 + TAG_LEN;
/// A key table's entry: member, key id, packet number, the sealed view key and its tag.
const TABLE_ENTRY: usize = 24 + 32 + TAG_LEN;

pub(crate) struct Keyring {
    group: GroupId,
    me: EndpointId,
    incarnation: u64,
    /// The next packet number.
    pn: u64,
    mode: Mode,
    view: Keys,
    view_id: ViewId,
    /// Where datagrams are sealed, one after another: a sealed datagram is a slice of it,
    /// so sealing costs no allocation while the driver sends them faster than they come.
    out: BytesMut,
}

enum Mode {
    /// A pre-shared group secret: view keys derived from it, gossip under the group's keys.
    Shared {
        secret: GroupSecret,
        gossip: Box<Keys>,
    },
    Pairs(Box<Pairs>),
}

/// One set of keys (a view's, or the group's gossip).
struct Keys {
    material: ViewKeys,
    mine: SenderKey,
    senders: Senders,
}

/// Who sealed a datagram: its sender, in an incarnation, under a key (the id of the key it
/// authenticated key-pair gossip under; 0 otherwise).
type Who = (EndpointId, u64, u64);

/// The senders heard from, with their keys and replay windows.
struct Senders {
    map: BTreeMap<Who, Sender>,
    most: usize,
    /// Opens so far: when each sender was last heard, to find the least recent.
    clock: u64,
}

struct Sender {
    key: SenderKey,
    window: Window,
    heard: u64,
}

/// Member key pairs: what this endpoint shares with each member on its allow-list.
struct Pairs {
    /// This endpoint's key id.
    mine: u64,
    peers: BTreeMap<u64, Peer>,
    drbg: Drbg,
    /// The key of the view about to be installed, from its key table.
    next: Option<(ViewId, GroupSecret)>,
    /// Which key each endpoint holds, as opened gossip and key tables said.
    known: BTreeMap<EndpointId, u64>,
    members: Vec<EndpointId>,
    senders: Senders,
}

/// A member on the allow-list: the key material this endpoint shares with it, and the key
/// this endpoint seals with towards it.
struct Peer {
    material: ViewKeys,
    mine: SenderKey,
}

impl Senders {
    fn new(most: usize) -> Senders {
        Senders { map: BTreeMap::new(), most, clock: 0 }
    }

    /// Checks datagram `pn` of `who` with `check` under its key (`derive`d the first time):
    /// a replay or a number below the window refused before, the window moved only after
    /// `check` passed.
    fn open<R>(
        &mut self,
        who: Who,
        pn: u64,
        derive: impl FnOnce() -> SenderKey,
        check: impl FnOnce(&SenderKey) -> Result<R, Reject>,
    ) -> Result<R, Reject> {
        self.clock += 1;
        if let Some(s) = self.map.get_mut(&who) {
            s.window.check(pn)?;
            let r = check(&s.key)?;
            s.window.record(pn);
            s.heard = self.clock;
            return Ok(r);
        }
        let key = derive();
        let r = check(&key)?;
        if self.map.len() >= self.most
            && let Some(oldest) = self.map.iter().min_by_key(|(_, s)| s.heard).map(|(id, _)| *id)
        {
            self.map.remove(&oldest);
        }
        let mut window = Window::default();
        window.record(pn);
        self.map.insert(who, Sender { key, window, heard: self.clock });
        Ok(r)
    }
}

impl Keys {
    fn new(material: ViewKeys, me: EndpointId, incarnation: u64, most: usize) -> Keys {
        let mine = material.sender(me, incarnation);
        Keys { material, mine, senders: Senders::new(most) }
    }

    /// Opens `datagram` (a sealed frame's header, then its sealed part) in place: the length
    /// of the plaintext after the header, or why not.
    fn open(&mut self, src: EndpointId, seal: Seal, datagram: &mut [u8]) -> Result<usize, Reject> {
        let (aad, sealed) = datagram.split_at_mut(SEALED_LEN);
        let material = &self.material;
        self.senders.open(
            (src, seal.incarnation, 0),
            seal.pn,
            || material.sender(src, seal.incarnation),
            |key| open(key, seal.pn, aad, sealed).map(|p| p.len()),
        )
    }
}

impl Keyring {
    /// The keys of an endpoint secured by `security` (none if it is not), in `view` of
    /// `group`.
    pub(crate) fn new(security: &Security, group: GroupId, me: EndpointId, view: &View) -> Option<Keyring> {
        let (mode, incarnation, material) = match security {
            Security::Insecure => return None,
            Security::Shared { secret, incarnation } => {
                let gossip = Keys::new(ViewKeys::gossip(secret, group), me, *incarnation, GOSSIP_SENDERS);
                let mode = Mode::Shared { secret: secret.clone(), gossip: Box::new(gossip) };
                (mode, *incarnation, ViewKeys::derive(secret, group, view.id))
            }
            Security::KeyPairs { identity, allow, incarnation, seed } => {
                let mine = identity.public().id();
                let peer = |key| {
                    let material = ViewKeys::pair(identity, key, group)?;
                    Some(Peer { mine: material.sender(me, *incarnation), material })
                };
                let peers = allow.keys().chain([&identity.public()]).filter_map(|k| Some((k.id(), peer(k)?))).collect();
                let mut drbg = Drbg::new(seed);
                // A view with no key table (the provisional one, or alone): nobody else's.
                let material = ViewKeys::derive(&drbg.draw(), group, view.id);
                let pairs = Pairs {
                    mine,
                    peers,
                    drbg,
                    next: None,
                    known: BTreeMap::from([(me, mine)]),
                    members: view.members.clone(),
                    senders: Senders::new(GOSSIP_SENDERS),
                };
                (Mode::Pairs(Box::new(pairs)), *incarnation, material)
            }
        };
        let view_keys = Keys::new(material, me, incarnation, senders(view.len()));
        Some(Keyring { group, me, incarnation, pn: 0, mode, view: view_keys, view_id: view.id, out: BytesMut::new() })
    }

    /// The keys of a newly installed view: whether this endpoint has the view's key (with
    /// member key pairs, only from the view's key table; without it, a key of its own that
    /// no other member has).
    pub(crate) fn install(&mut self, view: &View) -> bool {
        let (key, keyed) = match &mut self.mode {
            Mode::Shared { secret, .. } => (secret.clone(), true),
            Mode::Pairs(p) => {
                p.members = view.members.clone();
                match p.next.take() {
                    Some((id, key)) if id == view.id => (key, true),
                    _ => (p.drbg.draw(), false),
                }
            }
        };
        let material = ViewKeys::derive(&key, self.group, view.id);
        self.view = Keys::new(material, self.me, self.incarnation, senders(view.len()));
        self.view_id = view.id;
        keyed
    }

    /// Seals a datagram of `frame` (its view the current one, or gossip) made of `parts`:
    /// its header (`SEALED_LEN` bytes) and its sealed part with the tag (key-pair gossip:
    /// its body and what authenticates it, as the module doc shows).
    pub(crate) fn seal(&mut self, frame: &Frame, parts: [&[u8]; 2]) -> ([u8; SEALED_LEN], Bytes) {
        debug_assert!(frame.is_gossip() || frame.view == self.view_id, "sealed in the current view");
        let s = Seal { incarnation: self.incarnation, pn: self.pn };
        self.pn += 1;
        let mut head = [0u8; SEALED_LEN];
        write_sealed(frame, s, &mut head);
        let out = &mut self.out;
        let keys = match (frame.is_gossip(), &mut self.mode) {
            (true, Mode::Pairs(p)) => return (head, p.seal(&head, s.pn, parts, out)),
            (true, Mode::Shared { gossip, .. }) => gossip,
            (false, _) => &self.view,
        };
        reserve(out, parts[0].len() + parts[1].len() + TAG_LEN);
        out.extend_from_slice(parts[0]);
        out.extend_from_slice(parts[1]);
        let tag = seal(&keys.mine, s.pn, &head, out);
        out.extend_from_slice(&tag);
        (head, out.split().freeze())
    }

    /// Opens a datagram of the current view or gossip in place: the length of what follows
    /// the header for the layers (see `Keys::open`, `Pairs::open`).
    pub(crate) fn open(&mut self, frame: &Frame, seal: Seal, datagram: &mut [u8]) -> Result<usize, Reject> {
        let keys = match (frame.is_gossip(), &mut self.mode) {
            (true, Mode::Pairs(p)) => return p.open(frame.src, seal, datagram),
            (true, Mode::Shared { gossip, .. }) => gossip,
            (false, _) => {
                debug_assert_eq!(frame.view, self.view_id, "opened in the current view");
                &mut self.view
            }
        };
        keys.open(frame.src, seal, datagram)
    }

    /// Whether a datagram of a later view is genuine, as far as this endpoint can tell: its
    /// tag verifies under that view's key (checked on a copy; it is opened, and its replay
    /// window consulted, once the view is installed and the datagram replayed). `Ok(false)`:
    /// the view's key is not known yet (member key pairs), to be checked when replayed.
    pub(crate) fn verify_later(&self, frame: &Frame, seal: Seal, datagram: &[u8]) -> Result<bool, Reject> {
        let Mode::Shared { secret, .. } = &self.mode else { return Ok(false) };
        let key = ViewKeys::derive(secret, self.group, frame.view).sender(frame.src, seal.incarnation);
        let mut copy = datagram.to_vec();
        let (aad, sealed) = copy.split_at_mut(SEALED_LEN);
        open(&key, seal.pn, aad, sealed).map(|_| true)
    }

    /// Member key pairs: a key table for `view`, whose coordinator this endpoint is (a fresh
    /// key, sealed for each member whose key it knows); empty in the other modes.
    pub(crate) fn key_table(&mut self, view: &View) -> Bytes {
        let Mode::Pairs(p) = &mut self.mode else { return Bytes::new() };
        let key = p.drbg.draw();
        let mut t = Vec::with_capacity(24 + view.len() * TABLE_ENTRY);
        for v in [p.mine, self.me.0, self.incarnation] {
            t.extend_from_slice(&v.to_le_bytes());
        }
        for &m in &view.members {
            let Some((id, peer)) = p.known.get(&m).and_then(|id| Some((*id, p.peers.get(id)?))) else { continue };
            let pn = self.pn;
            self.pn += 1;
            let mut sealed = *key.bytes();
            let tag = seal(&peer.mine, pn, &entry_aad(self.group, view.id, m, id), &mut sealed);
            for v in [m.0, id, pn] {
                t.extend_from_slice(&v.to_le_bytes());
            }
            t.extend_from_slice(&sealed);
            t.extend_from_slice(&tag);
        }
        p.next = Some((view.id, key));
        Bytes::from(t)
    }

    /// Member key pairs: the key table of `view`, about to be installed; this endpoint's key
    /// for it, if the table has one sealed for it (else the view is installed without).
    pub(crate) fn take_key_table(&mut self, view: &View, table: &[u8]) {
        let Mode::Pairs(p) = &mut self.mode else { return };
        let r = &mut Reader::new(table);
        let (Ok(signer), Ok(coord), Ok(incarnation)) = (r.u64(), r.u64().map(EndpointId), r.u64()) else { return };
        if (coord, incarnation) == (self.me, self.incarnation) {
            // Its own: the key was kept when drawn.
            return;
        }
        let Some(peer) = p.peers.get(&signer) else { return };
        let mut key = None;
        let mut members = Vec::new();
        while let Ok(e) = r.take(TABLE_ENTRY) {
            let (m, id, pn) = (EndpointId(le(&e[..8])), le(&e[8..16]), le(&e[16..24]));
            members.push((m, id));
            if (m, id) == (self.me, p.mine) {
                let mut sealed = e[24..].to_vec();
                let from = peer.material.sender(coord, incarnation);
                if let Ok(k) = open(&from, pn, &entry_aad(self.group, view.id, m, id), &mut sealed) {
                    key = Some(GroupSecret::new(k.try_into().expect("a sealed view key is 32 bytes")));
                }
            }
        }
        if let Some(key) = key {
            p.next = Some((view.id, key));
            members.into_iter().for_each(|(m, id)| p.learn(m, id));
        }
    }
}

impl Pairs {
    /// Seals a gossip datagram (see the module doc) made of `parts`, after `head`.
    fn seal(&mut self, head: &[u8], pn: u64, parts: [&[u8]; 2], out: &mut BytesMut) -> Bytes {
        let map: Vec<(EndpointId, u64)> =
            self.members.iter().filter_map(|m| Some((*m, *self.known.get(m)?))).take(MAP_MOST).collect();
        let len = parts[0].len() + parts[1].len() + 16 * map.len() + 2 + TAG_LEN + 10 + VECTOR_ENTRY * self.peers.len();
        reserve(out, len);
        out.extend_from_slice(parts[0]);
        out.extend_from_slice(parts[1]);
        for (m, id) in &map {
            out.extend_from_slice(&m.0.to_le_bytes());
            out.extend_from_slice(&id.to_le_bytes());
        }
        out.extend_from_slice(&(map.len() as u16).to_le_bytes());
        let once: [u8; 16] = self.drbg.draw().bytes()[..16].try_into().expect("16 bytes");
        let tag = seal(&SenderKey::once(&once), pn, &gossip_aad(head, self.mine), out);
        out.extend_from_slice(&tag);
        out.extend_from_slice(&self.mine.to_le_bytes());
        let mut sum = Context::new(&SHA256);
        sum.update(head);
        sum.update(out);
        let sum = sum.finish();
        let mut n = 0u16;
        for (&id, peer) in self.peers.iter().filter(|(id, _)| **id != self.mine) {
            let mut wrapped = once;
            let tag = seal(&peer.mine, pn, sum.as_ref(), &mut wrapped);
            out.extend_from_slice(&id.to_le_bytes());
            out.extend_from_slice(&wrapped);
            out.extend_from_slice(&tag);
            n += 1;
        }
        out.extend_from_slice(&n.to_le_bytes());
        out.split().freeze()
    }

    /// Opens a key-pair gossip datagram of `src` in place: the length of its body, or why
    /// not.
    fn open(&mut self, src: EndpointId, seal: Seal, d: &mut [u8]) -> Result<usize, Reject> {
        let len = d.len();
        let n = if len >= SEALED_LEN + 2 + TAG_LEN + 10 {
            le(&d[len - 2..]) as usize
        } else {
            return Err(Reject::Truncated);
        };
        let entries = match len.checked_sub(2 + n * VECTOR_ENTRY) {
            Some(at) if at >= SEALED_LEN + 2 + TAG_LEN + 8 => at,
            _ => return Err(Reject::Truncated),
        };
        let signer = le(&d[entries - 8..entries]);
        let mine = d[entries..len - 2].chunks_exact(VECTOR_ENTRY).find(|e| le(&e[..8]) == self.mine);
        let (Some(entry), Some(peer)) = (mine, self.peers.get(&signer)) else { return Err(Reject::NotAllowed) };
        let sum = digest(&SHA256, &d[..entries]);
        let once = self.senders.open(
            (src, seal.incarnation, signer),
            seal.pn,
            || peer.material.sender(src, seal.incarnation),
            |key| {
                let mut wrapped = entry[8..].to_vec();
                open(key, seal.pn, sum.as_ref(), &mut wrapped).map(|k| <[u8; 16]>::try_from(&*k).expect("16 bytes"))
            },
        )?;
        let (head, rest) = d.split_at_mut(SEALED_LEN);
        let p =
            open(&SenderKey::once(&once), seal.pn, &gossip_aad(head, signer), &mut rest[..entries - 8 - SEALED_LEN])?;
        let m = le(&p[p.len() - 2..]) as usize;
        let Some(body) = (p.len() - 2).checked_sub(16 * m) else { return Err(Reject::Truncated) };
        let map: Vec<(EndpointId, u64)> =
            p[body..p.len() - 2].chunks_exact(16).map(|e| (EndpointId(le(&e[..8])), le(&e[8..]))).collect();
        self.learn(src, signer);
        map.into_iter().for_each(|(m, id)| self.learn(m, id));
        Ok(body)
    }

    /// Remembers that `m` holds key `id` (bounded: when full, only the current view's
    /// members are kept).
    fn learn(&mut self, m: EndpointId, id: u64) {
        if self.known.len() >= KNOWN && !self.known.contains_key(&m) {
            let members = &self.members;
            self.known.retain(|k, _| members.contains(k));
        }
        if self.known.len() < KNOWN {
            self.known.insert(m, id);
        }
    }
}

/// A little-endian integer of up to 8 bytes.
fn le(b: &[u8]) -> u64 {
    b.iter().rev().fold(0, |v, &x| v << 8 | u64::from(x))
}

/// What the sealed part of a key-pair gossip datagram authenticates besides itself: the
/// header and the sender's key id.
fn gossip_aad(head: &[u8], signer: u64) -> Vec<u8> {
    [head, &signer.to_le_bytes()].concat()
}

/// What a key table's entry for member `m` (key `id`) of `view` authenticates.
fn entry_aad(group: GroupId, view: ViewId, m: EndpointId, id: u64) -> [u8; 40] {
    let mut a = [0u8; 40];
    for (i, v) in [group.0, view.ltime, view.coord.0, m.0, id].into_iter().enumerate() {
        a[8 * i..8 * i + 8].copy_from_slice(&v.to_le_bytes());
    }
    a
}

/// Room for `len` more bytes in `out`, reusing its chunk's memory when no datagram of it is
/// alive any more.
fn reserve(out: &mut BytesMut, len: usize) {
    if out.capacity() - out.len() < len {
        out.reserve(OUT_CHUNK.max(len));
    }
}

/// Senders a view's keys remember at most: each member in two incarnations, and some.
fn senders(members: usize) -> usize {
    2 * members + 8
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{FLAG_GOSSIP, FrameView};
    use crate::secure::{AllowList, Identity};

    const G: GroupId = GroupId(0x5ec);

    fn identity(k: u64) -> Identity {
        Identity::new([k as u8; 32])
    }

    /// A keyring of member `k` (key `k`), in its provisional view, with keys 1..=`listed`
    /// allowed.
    fn member(k: u64, listed: u64) -> Keyring {
        let allow = AllowList::new((1..=listed).map(|i| identity(i).public())).unwrap();
        let security = Security::KeyPairs {
            identity: identity(k),
            allow,
            incarnation: 100 + k,
            seed: GroupSecret::new([k as u8 + 50; 32]),
        };
        Keyring::new(&security, G, EndpointId(k), &View::provisional(EndpointId(k))).unwrap()
    }

    /// A datagram `from` seals in `view` (gossip if `None`) with `body`.
    fn datagram(from: &mut Keyring, view: Option<ViewId>, body: &[u8]) -> Vec<u8> {
        let flags = if view.is_none() { FLAG_GOSSIP } else { 0 };
        let frame = Frame { flags, group: G, view: view.unwrap_or(from.view_id), src: from.me };
        let (head, rest) = from.seal(&frame, [body, b""]);
        [&head[..], &rest].concat()
    }

    /// What `to` makes of a datagram: its plaintext after the header, or why not.
    fn open_at(to: &mut Keyring, mut d: Vec<u8>) -> Result<Vec<u8>, Reject> {
        let v = FrameView::parse(&d).expect("a sealed frame");
        let (frame, seal) = (*v.frame(), v.seal().expect("sealed"));
        let n = to.open(&frame, seal, &mut d)?;
        Ok(d[SEALED_LEN..SEALED_LEN + n].to_vec())
    }

    fn view(ltime: u64, members: &[u64]) -> View {
        let members: Vec<EndpointId> = members.iter().map(|&m| EndpointId(m)).collect();
        View { id: ViewId { ltime, coord: members[0] }, members, primary: true, subgroups: Vec::new() }
    }

    /// The coordinator `c` hands out `v`'s key: every keyring in `all` takes the table and
    /// installs the view if it is in it; whether each got the key.
    fn change(c: usize, v: &View, all: &mut [Keyring]) -> Vec<bool> {
        let table = all[c].key_table(v);
        all.iter_mut()
            .map(|k| {
                k.take_key_table(v, &table);
                v.members.contains(&k.me) && k.install(v)
            })
            .collect()
    }

    /// Member key pairs: gossip is authenticated for the listed only; each view's key goes
    /// to its members alone, so a member left out of a view reads nothing of it and what it
    /// seals with the keys it had is refused.
    #[test]
    fn a_view_key_reaches_its_members_alone() {
        // 1, 2, 3 on every list; 4 lists everyone but is on nobody else's list.
        let mut all = vec![member(1, 3), member(2, 3), member(3, 3), member(4, 4)];
        // Gossip: each one's join, authenticated for the listed; 1 learns who holds which key.
        for k in 1..4 {
            let d = datagram(&mut all[k], None, b"join");
            assert_eq!(
                open_at(&mut all[0], d.clone()),
                if k < 3 { Ok(b"join".to_vec()) } else { Err(Reject::NotAllowed) }
            );
            assert_eq!(open_at(&mut all[0], d), if k < 3 { Err(Reject::Replay) } else { Err(Reject::NotAllowed) });
        }
        let mut d = datagram(&mut all[1], None, b"join");
        let body = SEALED_LEN + 1;
        d[body] ^= 1;
        assert_eq!(open_at(&mut all[0], d), Err(Reject::BadTag), "altered gossip");
        for cut in [1, 2, 24, 40] {
            let mut d = datagram(&mut all[1], None, b"join");
            d.truncate(d.len() - cut);
            assert!(open_at(&mut all[0], d).is_err(), "cut by {cut}");
        }
        // View 2 of {1, 2, 3}: each member has its key (even 4, off the lists, is not sent it).
        let v2 = view(2, &[1, 2, 3]);
        assert_eq!(change(0, &v2, &mut all), [true, true, true, false]);
        let cast = datagram(&mut all[0], Some(v2.id), b"in view 2");
        for k in [1, 2] {
            assert_eq!(open_at(&mut all[k], cast.clone()), Ok(b"in view 2".to_vec()), "member {}", k + 1);
        }
        // View 3 without 3: 3 gets no key; its casts sealed under what it holds are refused.
        let Mode::Pairs(p) = &all[2].mode else { unreachable!() };
        let old = p.next.clone();
        assert!(old.is_none(), "installed");
        let v3 = view(3, &[1, 2]);
        assert_eq!(change(0, &v3, &mut all), [true, true, false, false]);
        assert!(!all[2].install(&v3), "3 takes view 3 anyway: it has no key for it");
        let cast = datagram(&mut all[0], Some(v3.id), b"in view 3");
        assert_eq!(open_at(&mut all[1], cast.clone()), Ok(b"in view 3".to_vec()));
        assert_eq!(open_at(&mut all[2], cast), Err(Reject::BadTag), "the excluded member reads view 3");
        let forged = datagram(&mut all[2], Some(v3.id), b"from the excluded one");
        assert_eq!(open_at(&mut all[1], forged), Err(Reject::BadTag));
        // 2 takes over as coordinator of view 4 and knows every member's key from view 3's table.
        let v4 = view(4, &[2, 1]);
        assert_eq!(change(1, &v4, &mut all), [true, true, false, false]);
        let cast = datagram(&mut all[1], Some(v4.id), b"in view 4");
        assert_eq!(open_at(&mut all[0], cast), Ok(b"in view 4".to_vec()));
    }
}
