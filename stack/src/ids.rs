//! Names: endpoints, groups, ranks and views.
//!
//! An `EndpointId` names one incarnation of a member for its whole life; a `Rank` names a
//! member inside one view only (its index in the view's member list). Every frame carries
//! the view id, so a datagram is always read against the view it was sent in.

use core::fmt;

/// One member incarnation, unique within a group.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct EndpointId(pub u64);

/// A group, named by the FNV-1a hash of its name (stable across platforms and runs).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct GroupId(pub u64);

/// FNV-1a 64-bit: small, stable, deterministic; used for names and trace hashes, not for
/// security.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h = Fnv::new();
    h.bytes(bytes);
    h.finish()
}

/// Streaming FNV-1a, 64 bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    /// A hasher at the FNV-1a offset basis (the hash of no bytes).
    pub fn new() -> Fnv {
        Fnv::default()
    }
    /// Feeds raw bytes, without a length (see `blob` to keep fields apart).
    pub fn bytes(&mut self, b: &[u8]) {
        for &x in b {
            self.0 = (self.0 ^ x as u64).wrapping_mul(0x0100_0000_01b3);
        }
    }
    /// Feeds one byte.
    pub fn u8(&mut self, x: u8) {
        self.bytes(&[x]);
    }
    /// Feeds `x` as 4 little-endian bytes (the same hash on every platform).
    pub fn u32(&mut self, x: u32) {
        self.bytes(&x.to_le_bytes());
    }
    /// Feeds `x` as 8 little-endian bytes.
    pub fn u64(&mut self, x: u64) {
        self.bytes(&x.to_le_bytes());
    }
    /// A length-prefixed byte string (so `"ab","c"` and `"a","bc"` differ).
    pub fn blob(&mut self, b: &[u8]) {
        self.u64(b.len() as u64);
        self.bytes(b);
    }
    /// The hash of everything fed so far; the hasher stays usable.
    pub fn finish(&self) -> u64 {
        self.0
    }
}

impl GroupId {
    /// The group of this name: `fnv1a` of its UTF-8 bytes, so every member computes it alike.
    pub fn named(name: &str) -> GroupId {
        GroupId(fnv1a(name.as_bytes()))
    }
}

/// A member's position in the current view, `0..view.len()`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Rank(pub u16);

impl Rank {
    /// The rank as an index into `View::members`.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// Views are totally ordered by logical time; the coordinator's id separates views that
/// partitions installed concurrently with the same logical time.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ViewId {
    /// Logical time: each view installed after another has a larger one.
    pub ltime: u64,
    /// The coordinator that installed the view.
    pub coord: EndpointId,
}

/// A group membership: the members in rank order (oldest first), and whether this is a
/// primary view.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct View {
    /// Which view this is; every frame sent in it carries this id.
    pub id: ViewId,
    /// The members, rank order (index = `Rank`), oldest first.
    pub members: Vec<EndpointId>,
    /// Whether this is a primary view: one that holds a majority of the last primary view,
    /// where the membership layer tracks a primary partition (otherwise every view is).
    pub primary: bool,
    /// For a view made by merging partitions, the members of each side (empty otherwise):
    /// the application's cue to reconcile state that diverged while the sides were apart.
    pub subgroups: Vec<Vec<EndpointId>>,
}

impl View {
    /// The first view of a fixed membership: every member computes the same id from the list.
    pub fn initial(members: Vec<EndpointId>) -> View {
        let coord = members.first().copied().unwrap_or_default();
        View { id: ViewId { ltime: 1, coord }, members, primary: true, subgroups: Vec::new() }
    }

    /// The provisional view of an endpoint that has not joined yet: itself alone, logical
    /// time 0 (before any real view), never announced.
    pub fn provisional(me: EndpointId) -> View {
        View { id: ViewId { ltime: 0, coord: me }, members: vec![me], primary: false, subgroups: Vec::new() }
    }

    /// The member of rank 0: the oldest, who coordinates view changes.
    pub fn coord(&self) -> EndpointId {
        self.members.first().copied().unwrap_or_default()
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the view has no members (only a default, never an installed view).
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The rank of `id` in this view, `None` if it is not a member.
    pub fn rank_of(&self, id: EndpointId) -> Option<Rank> {
        self.members.iter().position(|&m| m == id).map(|i| Rank(i as u16))
    }

    /// The member of this rank, `None` if the rank is out of range.
    pub fn member(&self, rank: Rank) -> Option<EndpointId> {
        self.members.get(rank.index()).copied()
    }

    /// Every rank of the view, `0..len()`.
    pub fn ranks(&self) -> impl Iterator<Item = Rank> + '_ {
        (0..self.members.len()).map(|i| Rank(i as u16))
    }
}

impl fmt::Debug for EndpointId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "e{:x}", self.0)
    }
}
impl fmt::Display for EndpointId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}
impl fmt::Debug for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "g{:x}", self.0)
    }
}
impl fmt::Debug for Rank {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "r{}", self.0)
    }
}
impl fmt::Display for Rank {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}
impl fmt::Debug for ViewId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}@{:?}", self.ltime, self.coord)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_ids_are_stable_hashes() {
        // FNV-1a test vectors.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_ne!(GroupId::named("a"), GroupId::named("b"));
    }

    #[test]
    fn ranks_follow_member_order() {
        let v = View::initial(vec![EndpointId(9), EndpointId(4)]);
        assert_eq!(v.id, ViewId { ltime: 1, coord: EndpointId(9) });
        assert_eq!(v.rank_of(EndpointId(4)), Some(Rank(1)));
        assert_eq!(v.rank_of(EndpointId(5)), None);
        assert_eq!(v.member(Rank(0)), Some(EndpointId(9)));
        assert_eq!(v.member(Rank(2)), None);
        assert!(ViewId { ltime: 2, coord: EndpointId(0) } > v.id);
    }
}
