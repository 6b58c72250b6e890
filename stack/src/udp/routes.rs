//! `Routes`: where the UDP driver's datagrams go, and what a datagram received teaches.
//!
//! `Dest::All` goes to the group in multicast mode. In fan-out mode a cast goes
//! to every other member of the current view, each by its route: its configured address
//! (the addresses given to `spawn`), else the route learned from its datagrams, else — the
//! common case for a member that joined through a seed — the address its id carries
//! (`endpoint_addr`: IPv4 ids are the address and port, so any member reaches any other
//! whose id is in its view, configured or not, heard from or not). A cast goes to nobody
//! else: it means nothing outside the view, and a route learned from a stranger (or a
//! spoofed source) must not turn every cast into a datagram to it; nor do casts go to the
//! configured peers outside the view (seeds that left, or were never members). Gossip
//! (discovery, merge beacons) goes to every configured peer but this member (the seeds),
//! every learned route, and the members a cast reaches by their decoded address. An id
//! that is neither configured nor learned and decodes to nothing a datagram can go to (an
//! IPv6 member's id is a hash; see `config`) gets no casts: in IPv6 fan-out a member that
//! joined through a seed reaches, and is reached by, only the members it has talked to.
//!
//! `Dest::One(id)` goes to the configured peer of that id, else its learned route, else the
//! address `id` carries, else nowhere (`tx_unroutable`). Decoded destinations are made on
//! demand (one per id, kept while the view has the member or a queued datagram goes there;
//! the table is rebuilt at each view and whenever it has doubled, to at least
//! `MAX_LEARNED`, queued datagrams renumbered), so an id is decoded once. Only this member's family decodes: an
//! IPv4 id is never sent to from an IPv6 socket, nor to an unspecified, broadcast or
//! multicast address or port 0 (an id is only a number). A reply to a forged source id thus
//! goes to the address that id names, one datagram per datagram received, as with any
//! request over UDP; no forged datagram makes casts or gossip go anywhere.
//!
//! A member's id is `endpoint_id` of its unicast address and it sends everything from that
//! socket, so a datagram tells where its sender lives: when the machine found its frame
//! sound (CRC, group; `Rx::Sound`, with the source id the frame claims), its source address
//! has no route, and the claimed id equals `endpoint_id(source)` (a forger cannot make
//! another address map to the id it claims; otherwise `rx_src_mismatch`), the route is learned (for an IPv4 member, at the very address its id
//! carries; learned, it also gets gossip once out of the view). Routes are learned in both
//! modes (multicast needs them for `Dest::One` to IPv6 members), never for a configured id,
//! and never forgotten except that at most `MAX_LEARNED` are kept: a new one then replaces
//! the oldest (`routes_replaced`), and the datagrams still queued for the old one are
//! dropped (`tx_unroutable`). Nothing here depends on the view but where casts go: the
//! first view may be provisional (a joining endpoint) and every later one is the membership
//! layer's business. The cost per datagram from a known source is a few address
//! comparisons (`RECENT` recent sources); a lookup by id, and for an unknown id the id of
//! the address, only on a miss.
//!
//! Tested by the unit tests below (configured, learned, forged, replaced when full, decoded
//! from ids and renumbered when rebuilt; casts to members only, gossip to every route) and end to end by `stack/tests/udp_routes.rs` (members reach a
//! member that joined through a seed by the address its id carries, and no configured peer
//! outside the view gets casts; learned routes in IPv6 fan-out and in multicast, forged and
//! unsound datagrams teach nothing, a stranger's route gets gossip and no casts).

use super::config::{endpoint_addr, endpoint_id};
use super::socket::Sockets;
use crate::ids::{EndpointId, View};
use socket2::SockAddr;
use std::collections::HashMap;
use std::net::SocketAddr;

/// Learned routes kept at most (when full, a new one replaces the oldest).
pub(crate) const MAX_LEARNED: usize = 4096;
/// Source addresses remembered as "nothing to learn" (checked before anything else).
const RECENT: usize = 8;
/// The same socket as far as member ids go: same port, same address (IPv4-mapped IPv6 as
/// IPv4; scope and flow label ignored), as `endpoint_id` sees it.
fn same_socket(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && a.ip().to_canonical() == b.ip().to_canonical()
}

/// A destination made from an id (`endpoint_addr`): `DECODED | k` is `Routes::decoded[k]`.
const DECODED: usize = 1 << (usize::BITS - 1);

/// Whether an address an id carries is one to send datagrams to: a unicast IPv4 address
/// and a port (an id is only a number: it may name the unspecified, a broadcast or a
/// multicast address, which no member's socket is bound to).
fn sendable(a: SocketAddr) -> bool {
    match a {
        SocketAddr::V4(v) => {
            let ip = v.ip();
            v.port() != 0 && !ip.is_unspecified() && !ip.is_broadcast() && !ip.is_multicast()
        }
        SocketAddr::V6(_) => false,
    }
}

/// Where datagrams go: the group (multicast mode), the configured peers (resolved once), the
/// routes learned from received datagrams, and the addresses IPv4 ids carry (decoded).
/// Destinations are indices into `addrs`, `[group] [configured peers...] [learned
/// routes...]`, or `DECODED | k` into `decoded`.
pub(crate) struct Routes {
    me: EndpointId,
    addrs: Vec<SockAddr>,
    pub(super) group: Option<usize>,
    /// Configured peers by id, sorted for binary search, with their address.
    by_id: Vec<(EndpointId, usize, SocketAddr)>,
    /// Every configured peer but this member (fan-out).
    others: Vec<usize>,
    /// The current view's members, in rank order.
    view: Vec<EndpointId>,
    /// The same, sorted.
    members: Vec<EndpointId>,
    /// Where a fan-out cast goes: one destination for each other member of the view that
    /// has one (configured, else learned, else decoded), in rank order.
    cast_to: Vec<usize>,
    /// The decoded destinations in `cast_to` (members with no configured or learned route):
    /// gossip goes there too.
    member_decoded: Vec<usize>,
    /// Whether ids are decoded at all: this member's socket is IPv4 (its own id decodes).
    decode: bool,
    /// Destinations made from ids, `DECODED | k` for `decoded[k]`; appended to as needed,
    /// and rebuilt (`renew`) only with the queued datagrams' destinations renumbered, so a
    /// queued datagram never goes to another id's address.
    decoded: Vec<(EndpointId, SockAddr)>,
    decoded_ids: HashMap<EndpointId, usize>,
    /// `dest` rebuilds the decoded table (`renew`) when it holds this many.
    compact_at: usize,
    /// Index in `addrs` of the first learned route.
    learned_base: usize,
    /// Learned routes by slot (`addrs[learned_base + slot]`), filled in order; once
    /// `cap` are full, slot `victim` (the oldest) is replaced next.
    learned: Vec<(EndpointId, SocketAddr)>,
    learned_ids: HashMap<EndpointId, usize>,
    victim: usize,
    cap: usize,
    /// Recent sources whose route is known: a datagram from one of them teaches nothing,
    /// and costs no more than these comparisons. The unspecified address (port 0) never
    /// sends, so it marks an empty entry.
    recent: [SocketAddr; RECENT],
    recent_next: usize,
}

/// What `Routes::check_source` found out about a datagram's source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    /// Known, this member, or not worth a look: nothing to learn.
    Known,
    /// A route to `id` at this address may be learned.
    Learn(EndpointId),
    /// The frame claims a source id that is not `endpoint_id` of the source address (and no
    /// route knows that address): it teaches nothing.
    Mismatch,
}

/// What `Routes::learn` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Learned {
    /// A new route, in a free slot.
    New,
    /// A new route, replacing the oldest learned one, whose destination index this was.
    Replaced(usize),
    /// The id had a route already (or is this member's): nothing changed.
    Known,
}

pub(super) const NOWHERE: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 0);

impl Routes {
    pub(crate) fn new(sockets: &Sockets, me: EndpointId, peers: &[SocketAddr]) -> Routes {
        let group = match sockets.group_dst {
            Some(g) if sockets.is_multicast() => Some(g),
            _ => None,
        };
        Routes::with_capacity(group, me, peers, MAX_LEARNED)
    }

    pub(crate) fn with_capacity(
        group_dst: Option<SocketAddr>,
        me: EndpointId,
        peers: &[SocketAddr],
        cap: usize,
    ) -> Routes {
        let mut addrs = Vec::new();
        let group = group_dst.map(|g| {
            addrs.push(SockAddr::from(g));
            0
        });
        let mut by_id: Vec<(EndpointId, usize, SocketAddr)> = Vec::new();
        let mut others = Vec::new();
        for &p in peers {
            let id = endpoint_id(p);
            if by_id.iter().any(|&(i, _, _)| i == id) {
                continue;
            }
            by_id.push((id, addrs.len(), p));
            if id != me {
                others.push(addrs.len());
            }
            addrs.push(SockAddr::from(p));
        }
        by_id.sort_unstable_by_key(|&(id, _, _)| id);
        Routes {
            me,
            learned_base: addrs.len(),
            addrs,
            group,
            by_id,
            others,
            view: Vec::new(),
            members: Vec::new(),
            cast_to: Vec::new(),
            member_decoded: Vec::new(),
            decode: endpoint_addr(me).is_some(),
            decoded: Vec::new(),
            decoded_ids: HashMap::new(),
            compact_at: cap.max(1),
            learned: Vec::new(),
            learned_ids: HashMap::new(),
            victim: 0,
            cap: cap.max(1),
            recent: [NOWHERE; RECENT],
            recent_next: 0,
        }
    }

    /// The route to `id`: a configured peer, else a learned route.
    pub(super) fn peer(&self, id: EndpointId) -> Option<usize> {
        match self.by_id.binary_search_by_key(&id, |&(i, _, _)| i) {
            Ok(k) => Some(self.by_id[k].1),
            Err(_) => self.learned_ids.get(&id).map(|&slot| self.learned_base + slot),
        }
    }

    /// The address of the route to `id`, if any.
    pub(super) fn route_addr(&self, id: EndpointId) -> Option<SocketAddr> {
        match self.by_id.binary_search_by_key(&id, |&(i, _, _)| i) {
            Ok(k) => Some(self.by_id[k].2),
            Err(_) => self.learned_ids.get(&id).map(|&slot| self.learned[slot].1),
        }
    }

    /// The address of a destination.
    pub(super) fn sockaddr(&self, dst: usize) -> &SockAddr {
        if dst & DECODED == 0 { &self.addrs[dst] } else { &self.decoded[dst & !DECODED].1 }
    }

    /// The destination of `Dest::One(id)`: a configured peer, else a learned route, else the
    /// address `id` carries (`decoded`). `pending`: the destinations of the queued datagrams,
    /// renumbered if the decoded table is rebuilt to make room.
    pub(super) fn dest<'a>(&mut self, id: EndpointId, pending: impl Iterator<Item = &'a mut usize>) -> Option<usize> {
        if let Some(d) = self.peer(id) {
            return Some(d);
        }
        if let Some(&k) = self.decoded_ids.get(&id) {
            return Some(DECODED | k);
        }
        if self.decoded.len() >= self.compact_at {
            self.renew(pending);
        }
        self.decoded_dst(id)
    }

    /// The decoded destination of `id`, made if need be; `None` if ids are not decoded here
    /// or `id` carries no address a datagram can go to.
    pub(super) fn decoded_dst(&mut self, id: EndpointId) -> Option<usize> {
        if let Some(&k) = self.decoded_ids.get(&id) {
            return Some(DECODED | k);
        }
        if !self.decode || id == self.me {
            return None;
        }
        let addr = endpoint_addr(id).filter(|&a| sendable(a))?;
        let k = self.decoded.len();
        self.decoded.push((id, SockAddr::from(addr)));
        self.decoded_ids.insert(id, k);
        Some(DECODED | k)
    }

    /// Rebuilds the decoded table with only the destinations `pending` still refers to
    /// (renumbered in place) and those of the view's members.
    pub(super) fn renew<'a>(&mut self, pending: impl Iterator<Item = &'a mut usize>) {
        let old = std::mem::take(&mut self.decoded);
        self.decoded_ids.clear();
        for d in pending.filter(|d| **d & DECODED != 0) {
            let (id, ref addr) = old[*d & !DECODED];
            let k = *self.decoded_ids.entry(id).or_insert_with(|| {
                self.decoded.push((id, addr.clone()));
                self.decoded.len() - 1
            });
            *d = DECODED | k;
        }
        self.rebuild();
        // The next rebuild when the table has doubled (and holds at least `cap`): amortised,
        // however many entries the queued datagrams and the view keep.
        self.compact_at = self.cap.max(2 * self.decoded.len());
    }

    /// Recomputes where casts go: the route of each other member of the view; in fan-out
    /// mode a member with no configured or learned route gets a decoded one if its id
    /// carries an address.
    pub(super) fn rebuild(&mut self) {
        self.cast_to.clear();
        self.member_decoded.clear();
        if self.group.is_some() {
            return; // casts go to the group
        }
        for r in 0..self.view.len() {
            let id = self.view[r];
            if id == self.me {
                continue;
            }
            if let Some(d) = self.peer(id) {
                self.cast_to.push(d);
            } else if let Some(d) = self.decoded_dst(id) {
                self.cast_to.push(d);
                self.member_decoded.push(d);
            }
        }
    }

    /// Every destination of a gossip `Dest::All` in fan-out mode: the configured peers but
    /// this member, every learned route, then the decoded routes of the view's members (so
    /// every member a cast reaches, and the seeds and strangers casts do not).
    pub(super) fn fanout(&self) -> impl Iterator<Item = usize> + '_ {
        let learned = self.learned_base..self.addrs.len();
        self.others.iter().copied().chain(learned).chain(self.member_decoded.iter().copied())
    }

    /// Every destination of a cast in fan-out mode: each other member of the current view,
    /// by its configured, learned or decoded route.
    pub(super) fn cast_targets(&self) -> &[usize] {
        &self.cast_to
    }

    pub(super) fn is_member(&self, id: EndpointId) -> bool {
        self.members.binary_search(&id).is_ok()
    }

    /// The endpoint installed `view`: casts go to its members from now on. `pending`: the
    /// destinations of the queued datagrams (the decoded table is rebuilt for the view).
    pub(crate) fn set_view<'a>(&mut self, view: &View, pending: impl Iterator<Item = &'a mut usize>) {
        self.view.clone_from(&view.members);
        self.members.clone_from(&view.members);
        self.members.sort_unstable();
        self.renew(pending);
    }

    /// The learned routes, oldest first.
    #[cfg(test)]
    pub(crate) fn learned(&self) -> impl Iterator<Item = (EndpointId, SocketAddr)> + '_ {
        let (newer, older) = self.learned.split_at(self.victim.min(self.learned.len()));
        older.iter().chain(newer).copied()
    }

    pub(super) fn remember(&mut self, src: SocketAddr) {
        self.recent[self.recent_next] = src;
        self.recent_next = (self.recent_next + 1) % RECENT;
    }

    /// What a sound frame from `src` claiming to be `id`'s can teach. The common case, a
    /// recent source, costs `RECENT` comparisons; otherwise a lookup by the claimed id, and
    /// only for an unknown id `endpoint_id` of the source address.
    pub(crate) fn check_source(&mut self, src: SocketAddr, id: EndpointId) -> Source {
        if self.recent.contains(&src) {
            return Source::Known;
        }
        if id == self.me {
            return Source::Known;
        }
        match self.route_addr(id) {
            Some(a) if same_socket(a, src) => {
                self.remember(src);
                Source::Known
            }
            // Another address claims a routed id: a forgery (or an IPv6 hash collision).
            Some(_) => Source::Mismatch,
            None if endpoint_id(src) == id => Source::Learn(id),
            None => Source::Mismatch,
        }
    }

    /// Adds the route `id` → `src` (from `check_source`).
    pub(crate) fn learn(&mut self, id: EndpointId, src: SocketAddr) -> Learned {
        if id == self.me || self.peer(id).is_some() {
            return Learned::Known;
        }
        let learned = if self.learned.len() < self.cap {
            self.learned_ids.insert(id, self.learned.len());
            self.learned.push((id, src));
            self.addrs.push(SockAddr::from(src));
            if self.is_member(id) {
                self.rebuild();
            }
            Learned::New
        } else {
            let slot = self.victim;
            self.victim = (slot + 1) % self.cap;
            let (old, old_addr) = self.learned[slot];
            self.learned_ids.remove(&old);
            for r in self.recent.iter_mut().filter(|r| same_socket(**r, old_addr)) {
                *r = NOWHERE;
            }
            let at = self.learned_base + slot;
            self.learned_ids.insert(id, slot);
            self.learned[slot] = (id, src);
            self.addrs[at] = SockAddr::from(src);
            if self.is_member(old) || self.is_member(id) {
                self.rebuild();
            }
            Learned::Replaced(at)
        };
        self.remember(src);
        learned
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn view(m: &[SocketAddr]) -> View {
        View::initial(m.iter().map(|&a| endpoint_id(a)).collect())
    }

    /// No queued datagrams.
    fn none<'a>() -> std::iter::Empty<&'a mut usize> {
        std::iter::empty()
    }

    #[test]
    fn casts_go_to_members_gossip_to_every_route() {
        let (me, seed, member, stranger) = (addr(3000), addr(3001), addr(3002), addr(3003));
        let id = endpoint_id;
        let mut r = Routes::with_capacity(None, id(me), &[me, seed], 2);
        let to_seed = r.peer(id(seed)).unwrap();
        r.set_view(&view(&[me, seed]), none());
        assert_eq!(r.cast_targets(), &[to_seed]);
        assert_eq!(r.learn(id(stranger), stranger), Learned::New);
        let to_stranger = r.peer(id(stranger)).unwrap();
        assert_eq!(r.cast_targets(), &[to_seed], "not a member: no casts");
        assert_eq!(r.fanout().collect::<Vec<_>>(), vec![to_seed, to_stranger], "gossip goes everywhere");
        // A member nobody configured and nobody heard from: reached by the address its id
        // carries, casts and gossip alike.
        r.set_view(&view(&[me, seed, member]), none());
        let decoded = DECODED;
        assert_eq!(r.cast_targets(), &[to_seed, decoded]);
        assert_eq!(r.sockaddr(decoded).as_socket(), Some(member));
        assert_eq!(r.fanout().collect::<Vec<_>>(), vec![to_seed, to_stranger, decoded]);
        // Once heard from, its learned route (the same address) replaces the decoded one.
        assert_eq!(r.learn(id(member), member), Learned::New);
        let to_member = r.peer(id(member)).unwrap();
        assert_eq!(r.cast_targets(), &[to_seed, to_member]);
        assert_eq!(r.fanout().collect::<Vec<_>>(), vec![to_seed, to_stranger, to_member], "no duplicate");
        // A seed out of the view gets no casts (it still gets gossip).
        r.set_view(&view(&[me, stranger, member]), none());
        assert_eq!(r.cast_targets(), &[to_stranger, to_member], "members only, in rank order");
        // The table is full (2): the oldest (stranger, a member) is replaced by a non-member;
        // the stranger is then reached by the address its id carries.
        let other = addr(3004);
        assert_eq!(r.learn(id(other), other), Learned::Replaced(to_stranger));
        let to_other = to_stranger;
        assert_eq!(r.cast_targets(), &[decoded, to_member]);
        assert_eq!(r.sockaddr(decoded).as_socket(), Some(stranger));
        assert_eq!(r.fanout().collect::<Vec<_>>(), vec![to_seed, to_other, to_member, decoded]);
        r.set_view(&view(&[me]), none());
        assert_eq!(r.cast_targets(), &[] as &[usize]);
        assert_eq!(r.fanout().collect::<Vec<_>>(), vec![to_seed, to_other, to_member]);
        assert!(r.decoded.is_empty(), "rebuilt for the view: nothing queued, no member to decode");
    }

    #[test]
    fn sends_go_to_the_address_an_id_carries() {
        let (me, seed, far) = (addr(4000), addr(4001), addr(4002));
        let mut r = Routes::with_capacity(None, endpoint_id(me), &[me, seed], 4);
        assert_eq!(r.dest(endpoint_id(seed), none()), r.peer(endpoint_id(seed)), "configured first");
        let d = r.dest(endpoint_id(far), none()).expect("decoded");
        assert_eq!(d, DECODED);
        assert_eq!(r.sockaddr(d).as_socket(), Some(far));
        assert_eq!(r.dest(endpoint_id(far), none()), Some(d), "decoded once");
        assert_eq!(r.decoded.len(), 1);
        assert_eq!(r.peer(endpoint_id(far)), None, "a decoded destination is not a route: it teaches nothing");
        // Ids that carry no address, or none a datagram can go to.
        let v6 = endpoint_id("[::1]:4000".parse().unwrap());
        let nowhere: Vec<SocketAddr> =
            ["0.0.0.0:9", "255.255.255.255:9", "224.0.0.1:9", "239.84.72.1:47474", "127.0.0.1:0"]
                .iter()
                .map(|a| a.parse().unwrap())
                .collect();
        for id in [EndpointId(7), EndpointId(777), v6].into_iter().chain(nowhere.iter().map(|&a| endpoint_id(a))) {
            assert_eq!(r.dest(id, none()), None, "{id:?}");
        }
        assert_eq!(r.decoded.len(), 1);
        // Learned later: the learned route wins.
        assert_eq!(r.check_source(far, endpoint_id(far)), Source::Learn(endpoint_id(far)));
        assert_eq!(r.learn(endpoint_id(far), far), Learned::New);
        assert_eq!(r.dest(endpoint_id(far), none()), r.peer(endpoint_id(far)));

        // An IPv6 member decodes nothing: its socket cannot send to IPv4 addresses.
        let me6: SocketAddr = "[::1]:4000".parse().unwrap();
        let mut r6 = Routes::with_capacity(None, endpoint_id(me6), &[me6], 4);
        assert_eq!(r6.dest(endpoint_id(far), none()), None);
        r6.set_view(&View::initial(vec![endpoint_id(me6), endpoint_id(far)]), none());
        assert_eq!(r6.cast_targets(), &[] as &[usize], "the IPv6 gap: no route to a member never heard from");
    }

    #[test]
    fn rebuilding_the_decoded_table_renumbers_queued_datagrams() {
        let me = addr(5000);
        let p: Vec<SocketAddr> = (1..=7).map(|k| addr(5000 + k)).collect();
        let id = |k: usize| endpoint_id(p[k]);
        let to = |r: &Routes, d: usize| r.sockaddr(d).as_socket().unwrap();
        let mut r = Routes::with_capacity(None, endpoint_id(me), &[me], 2);
        r.set_view(&View::initial(vec![endpoint_id(me), id(0)]), none());
        assert_eq!(r.cast_targets(), &[DECODED]);
        assert_eq!(r.compact_at, 2);
        // Sends to strangers, queued (`queued` plays the outbox).
        let mut queued = Vec::new();
        let d = r.dest(id(1), queued.iter_mut()).unwrap();
        queued.push(d);
        assert_eq!(r.decoded.len(), 2);
        // Full: rebuilt with what is queued (p[1]) and the member (p[0]), then p[2] added.
        let d = r.dest(id(2), queued.iter_mut()).unwrap();
        queued.push(d);
        assert_eq!(r.decoded.len(), 3);
        assert_eq!(r.compact_at, 4, "the next rebuild waits for as much growth again");
        assert_eq!(queued.iter().map(|&d| to(&r, d)).collect::<Vec<_>>(), vec![p[1], p[2]]);
        assert_eq!(to(&r, r.cast_targets()[0]), p[0], "the member is still reached");
        // p[1]'s datagram left; p[3] fits, p[4] makes the table rebuild: p[1] is dropped.
        queued.remove(0);
        let d = r.dest(id(3), queued.iter_mut()).unwrap();
        queued.push(d);
        assert_eq!(r.decoded.len(), 4);
        let d = r.dest(id(4), queued.iter_mut()).unwrap();
        queued.push(d);
        assert_eq!(queued.iter().map(|&d| to(&r, d)).collect::<Vec<_>>(), vec![p[2], p[3], p[4]]);
        assert_eq!(to(&r, r.cast_targets()[0]), p[0]);
        assert_eq!(r.decoded.len(), 4, "p[2], p[3], p[0], p[4]");
        assert!(!r.decoded_ids.contains_key(&id(1)), "nothing queued for p[1] any more");
        // A new view rebuilds too: the queued datagrams keep their addresses, p[0] goes.
        r.set_view(&View::initial(vec![endpoint_id(me), id(5)]), queued.iter_mut());
        assert_eq!(queued.iter().map(|&d| to(&r, d)).collect::<Vec<_>>(), vec![p[2], p[3], p[4]]);
        assert_eq!(r.cast_targets().len(), 1);
        assert_eq!(to(&r, r.cast_targets()[0]), p[5]);
        assert_eq!(r.decoded.len(), 4);
        assert!(!r.decoded_ids.contains_key(&id(0)), "p[0] left the view and nothing is queued for it");
        // Multicast mode: casts go to the group, members are not decoded until sent to.
        let mut m = Routes::with_capacity(Some("239.1.2.3:4000".parse().unwrap()), endpoint_id(me), &[me], 2);
        m.set_view(&View::initial(vec![endpoint_id(me), id(6)]), none());
        assert!(m.decoded.is_empty() && m.cast_targets().is_empty());
        assert_eq!(m.dest(id(6), none()).map(|d| to(&m, d)), Some(p[6]));
    }

    #[test]
    fn configured_then_learned_then_unroutable() {
        let (me, seed, other) = (addr(1000), addr(1001), addr(1002));
        let mut r = Routes::with_capacity(None, endpoint_id(me), &[me, seed], 4);
        let (seed_id, other_id) = (endpoint_id(seed), endpoint_id(other));
        assert_eq!(r.fanout().collect::<Vec<_>>(), vec![r.peer(seed_id).unwrap()], "fan-out skips this member");
        assert_eq!(r.peer(other_id), None);
        // A configured peer teaches nothing, and is remembered as recent.
        assert_eq!(r.check_source(seed, seed_id), Source::Known);
        assert!(r.recent.contains(&seed));
        // Own copies teach nothing.
        assert_eq!(r.check_source(me, endpoint_id(me)), Source::Known);
        // Another address claiming a routed id, or an id not its own, teaches nothing.
        assert_eq!(r.check_source(other, seed_id), Source::Mismatch);
        assert_eq!(r.check_source(seed, other_id), Source::Known, "a recent source is not looked at");
        assert_eq!(r.check_source(addr(1003), other_id), Source::Mismatch);
        // The real one does.
        assert_eq!(r.check_source(other, other_id), Source::Learn(other_id));
        assert_eq!(r.learn(other_id, other), Learned::New);
        assert_eq!(r.learn(other_id, other), Learned::Known, "learned once");
        assert_eq!(r.learn(seed_id, seed), Learned::Known, "configured wins");
        let to_other = r.peer(other_id).expect("learned route");
        assert_eq!(r.addrs[to_other].as_socket(), Some(other));
        assert_eq!(r.fanout().collect::<Vec<_>>(), vec![r.peer(seed_id).unwrap(), to_other]);
        assert_eq!(r.check_source(other, other_id), Source::Known);
        // Too short to have a source: left to the endpoint.
    }

    #[test]
    fn a_full_table_replaces_the_oldest() {
        let me = addr(2000);
        let mut r = Routes::with_capacity(Some("239.1.2.3:4000".parse().unwrap()), endpoint_id(me), &[me], 3);
        let peers: Vec<SocketAddr> = (1..=5).map(|k| addr(2000 + k)).collect();
        let id = |k: usize| endpoint_id(peers[k]);
        for (k, &p) in peers.iter().enumerate().take(3) {
            assert_eq!(r.learn(id(k), p), Learned::New);
        }
        let slot0 = r.peer(id(0)).unwrap();
        assert_eq!(r.learn(id(3), peers[3]), Learned::Replaced(slot0), "the oldest goes first");
        assert_eq!(r.peer(id(0)), None);
        assert_eq!(r.peer(id(3)), Some(slot0));
        assert_eq!(r.addrs[slot0].as_socket(), Some(peers[3]));
        let slot1 = r.peer(id(1)).unwrap();
        assert_eq!(r.learn(id(4), peers[4]), Learned::Replaced(slot1));
        let order: Vec<EndpointId> = r.learned().map(|(i, _)| i).collect();
        assert_eq!(order, vec![id(2), id(3), id(4)], "oldest first");
        assert_eq!(r.addrs.len(), 1 + 1 + 3, "group, this member, three learned: bounded");
        // The forgotten source is no longer "recent": it can be learned again.
        assert_eq!(r.check_source(peers[0], id(0)), Source::Learn(id(0)));
        let slot2 = r.peer(id(2)).unwrap();
        assert_eq!(r.learn(id(0), peers[0]), Learned::Replaced(slot2));
        assert_eq!(r.group, Some(0));
    }

    #[test]
    fn same_socket_as_ids_see_it() {
        let v4 = addr(7);
        let mapped = SocketAddr::new(std::net::IpAddr::V6(std::net::Ipv4Addr::LOCALHOST.to_ipv6_mapped()), 7);
        assert!(same_socket(v4, mapped));
        assert!(!same_socket(v4, addr(8)));
        assert!(!same_socket(v4, "[::1]:7".parse().unwrap()));
    }
}
