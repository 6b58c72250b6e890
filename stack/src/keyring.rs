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
//! A datagram of a later view is checked (its tag, under that view's key) before the
//! endpoint holds it for that view, and opened when it is replayed there; one of an earlier
//! view is not opened at all (the endpoint drops it, counted as of another view).
//!
//! Packet numbers: one sequence for every datagram of this incarnation, views and gossip
//! alike, so a nonce is never used twice with a key.
//!
//! Tested through the endpoint (`stack/tests/secure.rs`): every rejection reason with a
//! datagram crafted outside the stack, replays within a view and from an earlier one,
//! bounded sets of senders.

use crate::frame::{Frame, SEALED_LEN, Seal, write_sealed};
use crate::ids::{EndpointId, GroupId, ViewId};
use crate::secure::{GroupSecret, Reject, SenderKey, TAG_LEN, ViewKeys, Window, open, seal};
use bytes::{Bytes, BytesMut};
use std::collections::BTreeMap;

/// Senders the gossip keys remember at most.
const GOSSIP_SENDERS: usize = 256;
/// Bytes of `Keyring::out` at a time.
const OUT_CHUNK: usize = 256 << 10;

pub(crate) struct Keyring {
    secret: GroupSecret,
    group: GroupId,
    me: EndpointId,
    incarnation: u64,
    /// The next packet number.
    pn: u64,
    gossip: Keys,
    view: Keys,
    view_id: ViewId,
    /// Where datagrams are sealed, one after another: a sealed datagram is a slice of it,
    /// so sealing costs no allocation while the driver sends them faster than they come.
    out: BytesMut,
}

/// One set of keys (a view's, or the group's gossip).
struct Keys {
    material: ViewKeys,
    mine: SenderKey,
    senders: BTreeMap<(EndpointId, u64), Sender>,
    most: usize,
    /// Opens so far: when each sender was last heard, to find the least recent.
    clock: u64,
}

struct Sender {
    key: SenderKey,
    window: Window,
    heard: u64,
}

impl Keys {
    fn new(material: ViewKeys, me: EndpointId, incarnation: u64, most: usize) -> Keys {
        let mine = material.sender(me, incarnation);
        Keys { material, mine, senders: BTreeMap::new(), most, clock: 0 }
    }

    /// Opens `datagram` (a sealed frame's header, then its sealed part) in place: the length
    /// of the plaintext after the header, or why not.
    fn open(&mut self, src: EndpointId, seal: Seal, datagram: &mut [u8]) -> Result<usize, Reject> {
        let (aad, sealed) = datagram.split_at_mut(SEALED_LEN);
        self.clock += 1;
        let id = (src, seal.incarnation);
        if let Some(s) = self.senders.get_mut(&id) {
            s.window.check(seal.pn)?;
            let n = open(&s.key, seal.pn, aad, sealed)?.len();
            s.window.record(seal.pn);
            s.heard = self.clock;
            return Ok(n);
        }
        let key = self.material.sender(src, seal.incarnation);
        let n = open(&key, seal.pn, aad, sealed)?.len();
        if self.senders.len() >= self.most
            && let Some(oldest) = self.senders.iter().min_by_key(|(_, s)| s.heard).map(|(id, _)| *id)
        {
            self.senders.remove(&oldest);
        }
        let mut window = Window::default();
        window.record(seal.pn);
        self.senders.insert(id, Sender { key, window, heard: self.clock });
        Ok(n)
    }
}

impl Keyring {
    pub(crate) fn new(
        secret: GroupSecret,
        incarnation: u64,
        group: GroupId,
        me: EndpointId,
        view: ViewId,
        members: usize,
    ) -> Keyring {
        let gossip = Keys::new(ViewKeys::gossip(&secret, group), me, incarnation, GOSSIP_SENDERS);
        let view_keys = Keys::new(ViewKeys::derive(&secret, group, view), me, incarnation, senders(members));
        Keyring { secret, group, me, incarnation, pn: 0, gossip, view: view_keys, view_id: view, out: BytesMut::new() }
    }

    /// The keys of a newly installed view (of `members` members).
    pub(crate) fn install(&mut self, view: ViewId, members: usize) {
        let material = ViewKeys::derive(&self.secret, self.group, view);
        self.view = Keys::new(material, self.me, self.incarnation, senders(members));
        self.view_id = view;
    }

    /// Seals a datagram of `frame` (its view the current one, or gossip) made of `parts`:
    /// its header (`SEALED_LEN` bytes) and its sealed part with the tag.
    pub(crate) fn seal(&mut self, frame: &Frame, parts: [&[u8]; 2]) -> ([u8; SEALED_LEN], Bytes) {
        debug_assert!(frame.is_gossip() || frame.view == self.view_id, "sealed in the current view");
        let s = Seal { incarnation: self.incarnation, pn: self.pn };
        self.pn += 1;
        let mut head = [0u8; SEALED_LEN];
        write_sealed(frame, s, &mut head);
        let len = parts[0].len() + parts[1].len() + TAG_LEN;
        if self.out.capacity() - self.out.len() < len {
            // Reuses the chunk's memory when no datagram of it is alive any more.
            self.out.reserve(OUT_CHUNK.max(len));
        }
        self.out.extend_from_slice(parts[0]);
        self.out.extend_from_slice(parts[1]);
        let keys = if frame.is_gossip() { &self.gossip } else { &self.view };
        let tag = seal(&keys.mine, s.pn, &head, &mut self.out);
        self.out.extend_from_slice(&tag);
        (head, self.out.split().freeze())
    }

    /// Opens a datagram of the current view or gossip in place (see `Keys::open`).
    pub(crate) fn open(&mut self, frame: &Frame, seal: Seal, datagram: &mut [u8]) -> Result<usize, Reject> {
        let keys = if frame.is_gossip() {
            &mut self.gossip
        } else {
            debug_assert_eq!(frame.view, self.view_id, "opened in the current view");
            &mut self.view
        };
        keys.open(frame.src, seal, datagram)
    }

    /// Whether a datagram of a later view is genuine: its tag verifies under that view's key
    /// (checked on a copy; it is opened, and its replay window consulted, once the view is
    /// installed and the datagram replayed).
    pub(crate) fn verify_later(&self, frame: &Frame, seal: Seal, datagram: &[u8]) -> Result<(), Reject> {
        let key = ViewKeys::derive(&self.secret, self.group, frame.view).sender(frame.src, seal.incarnation);
        let mut copy = datagram.to_vec();
        let (aad, sealed) = copy.split_at_mut(SEALED_LEN);
        open(&key, seal.pn, aad, sealed).map(|_| ())
    }
}

/// Senders a view's keys remember at most: each member in two incarnations, and some.
fn senders(members: usize) -> usize {
    2 * members + 8
}
