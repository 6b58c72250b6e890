//! What the checkers that compare members across a view change share (`chk_vsync`,
//! `chk_total`): each member keeps, in the memo that passes from a view's stack to the next,
//! a digest of what it delivered in each of its last `KEEP_VIEWS` moves `prev → next`; each
//! view's stack casts them at its start; a receiver that made the same move compares the
//! digest with its own. Members that move together from a view to the same next view must
//! agree (virtual synchrony: the same casts; total order: in the same order), whatever each
//! checker puts in its digest.
//!
//! Keeping several moves, not only the last, means a comparison is not lost when the view
//! that should have carried it is replaced before its casts are delivered (a view whose casts
//! are held for a joiner that never loads the state, say): the next view carries it again.
//! Digests of moves this member did not make (the other side of a merge, a joiner) are
//! counted and ignored; own digests too; each move is compared once per member, and a
//! divergence is reported once (the memo keeps the last `KEEP_REPORTED`).
//!
//! Wire: a `Kept` is prev's and next's ltime and coord, then the digest: a count, then per
//! entry its id and count as varints and its hash as 8 bytes little-endian. A digest or memo
//! whose count exceeds its bytes or the limits is refused before allocating.

use std::collections::BTreeSet;
use thoth_stack::wire::{from_slice, to_vec, var_len};
use thoth_stack::{Bytes, Cx, Dn, EndpointId, Msg, Rank, Reader, ViewId, Wire, WireError, Writer};

/// Moves whose digests the memo keeps.
pub const KEEP_VIEWS: usize = 8;
/// Divergences already reported that the memo keeps, so a later view's repeat of the same
/// comparison does not report one twice.
pub const KEEP_REPORTED: usize = 64;

/// One entry of a digest: a count and a hash of deliveries (of one sender for `chk_vsync`,
/// of the whole delivery sequence for `chk_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tally {
    /// The sender whose casts these are (`EndpointId(0)` for `chk_total`'s whole sequence).
    pub sender: EndpointId,
    /// Casts delivered.
    pub count: u64,
    /// A hash of them in delivery order.
    pub hash: u64,
}

/// Smallest encoding of a `Tally`: two one-byte varints and the hash.
const MIN_TALLY: usize = 10;

impl Wire for Tally {
    fn encoded_len(&self) -> usize {
        var_len(self.sender.0) + var_len(self.count) + 8
    }
    fn encode(&self, w: &mut Writer<'_>) {
        w.put_var(self.sender.0);
        w.put_var(self.count);
        w.put_u64(self.hash);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Tally, WireError> {
        Ok(Tally { sender: EndpointId(r.var()?), count: r.var()?, hash: r.u64()? })
    }
}

/// Encoded bytes of a view id (`put_view`).
pub fn view_len(v: ViewId) -> usize {
    var_len(v.ltime) + var_len(v.coord.0)
}

/// Writes a view id: its ltime and coordinator's id, as varints.
pub fn put_view(w: &mut Writer<'_>, v: ViewId) {
    w.put_var(v.ltime);
    w.put_var(v.coord.0);
}

/// Reads a view id written by `put_view`.
pub fn get_view(r: &mut Reader<'_>) -> Result<ViewId, WireError> {
    Ok(ViewId { ltime: r.var()?, coord: EndpointId(r.var()?) })
}

/// Encoded bytes of a digest (`put_digest`).
pub fn digest_len(d: &[Tally]) -> usize {
    var_len(d.len() as u64) + d.iter().map(Wire::encoded_len).sum::<usize>()
}

/// Writes a digest: its entry count as a varint, then each `Tally`.
pub fn put_digest(w: &mut Writer<'_>, d: &[Tally]) {
    w.put_var(d.len() as u64);
    for t in d {
        t.encode(w);
    }
}

/// Reads a digest written by `put_digest`; `Truncated` before allocating if the count
/// claims more entries than the bytes left could hold.
pub fn get_digest(r: &mut Reader<'_>) -> Result<Vec<Tally>, WireError> {
    let n = r.var()?;
    // Bound the allocation by the bytes actually there.
    if n > (r.remaining() / MIN_TALLY) as u64 {
        return Err(WireError::Truncated);
    }
    (0..n).map(|_| Tally::decode(r)).collect()
}

/// One move a member made: the view it ran in, the view its `Install` announced, and the
/// digest of its deliveries in the first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kept {
    /// The view the member ran in.
    pub prev: ViewId,
    /// The view its `Install` announced.
    pub next: ViewId,
    /// What it delivered in `prev`, as its checker digests it.
    pub digest: Vec<Tally>,
}

impl Wire for Kept {
    fn encoded_len(&self) -> usize {
        view_len(self.prev) + view_len(self.next) + digest_len(&self.digest)
    }
    fn encode(&self, w: &mut Writer<'_>) {
        put_view(w, self.prev);
        put_view(w, self.next);
        put_digest(w, &self.digest);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Kept, WireError> {
        Ok(Kept { prev: get_view(r)?, next: get_view(r)?, digest: get_digest(r)? })
    }
}

/// What a stack keeps for the next ones (in the memo): its last moves, oldest first, at most
/// `KEEP_VIEWS`, and the divergences it reported (the view and the other member), newest
/// last, at most `KEEP_REPORTED`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct History {
    /// The member's last moves, oldest first, at most `KEEP_VIEWS`.
    pub moves: Vec<Kept>,
    /// Divergences already reported, as (`prev` of the move, the other member), newest
    /// last, at most `KEEP_REPORTED`.
    pub reported: Vec<(ViewId, EndpointId)>,
}

impl Wire for History {
    fn encoded_len(&self) -> usize {
        var_len(self.moves.len() as u64)
            + self.moves.iter().map(Wire::encoded_len).sum::<usize>()
            + var_len(self.reported.len() as u64)
            + self.reported.iter().map(|(v, p)| view_len(*v) + var_len(p.0)).sum::<usize>()
    }
    fn encode(&self, w: &mut Writer<'_>) {
        w.put_var(self.moves.len() as u64);
        for k in &self.moves {
            k.encode(w);
        }
        w.put_var(self.reported.len() as u64);
        for (v, p) in &self.reported {
            put_view(w, *v);
            w.put_var(p.0);
        }
    }
    fn decode(r: &mut Reader<'_>) -> Result<History, WireError> {
        let n = r.var()?;
        if n > KEEP_VIEWS as u64 {
            return Err(WireError::BadValue);
        }
        let moves = (0..n).map(|_| Kept::decode(r)).collect::<Result<_, _>>()?;
        let n = r.var()?;
        if n > KEEP_REPORTED as u64 {
            return Err(WireError::BadValue);
        }
        let reported = (0..n).map(|_| Ok((get_view(r)?, EndpointId(r.var()?)))).collect::<Result<_, _>>()?;
        Ok(History { moves, reported })
    }
}

/// A checker's moves: its memo across stacks and the comparisons made in this one.
#[derive(Clone, Debug)]
pub struct Moves {
    key: &'static str,
    /// The previous stack's memo: the moves this member made last.
    came_from: History,
    /// Moves compared, with the rank whose digest it was.
    compared: BTreeSet<(Rank, ViewId, ViewId)>,
    digests: u64,
    digests_compared: u64,
    digests_other: u64,
    bad_memo: u64,
}

impl Moves {
    /// Moves kept in the memo under `key`.
    pub fn new(key: &'static str) -> Moves {
        Moves {
            key,
            came_from: History::default(),
            compared: BTreeSet::new(),
            digests: 0,
            digests_compared: 0,
            digests_other: 0,
            bad_memo: 0,
        }
    }

    /// At the start of a view's stack: takes the previous stack's memo, casts each move it
    /// holds (oldest first) under the checker's header `hdr`, and returns the view the last
    /// `Install` announced (this view, unless something is wrong).
    pub fn start<H: Wire>(&mut self, cx: &mut Cx<'_>, hdr: impl Fn(Kept) -> H) -> Option<ViewId> {
        let b = cx.kept(self.key)?;
        let Ok(h) = from_slice::<History>(&b) else {
            self.bad_memo += 1;
            return None;
        };
        for k in &h.moves {
            let mut m = Msg::new(Bytes::new());
            m.push(&hdr(k.clone()));
            cx.dn(Dn::Cast(m));
        }
        self.came_from = h;
        self.came_from.moves.last().map(|k| k.next)
    }

    /// A digest of move `prev → next` cast by `from`: if this member made the same move with
    /// another digest, not reported yet, its own digest and the other member (to report).
    pub fn arrive(
        &mut self,
        from: Rank,
        prev: ViewId,
        next: ViewId,
        digest: &[Tally],
        cx: &Cx<'_>,
    ) -> Option<(Vec<Tally>, EndpointId)> {
        self.digests += 1;
        if from == cx.rank || !self.compared.insert((from, prev, next)) {
            return None; // our own, looped back; or a move this member's digest was compared for
        }
        let Some(k) = self.came_from.moves.iter().find(|k| k.prev == prev && k.next == next) else {
            self.digests_other += 1;
            return None;
        };
        self.digests_compared += 1;
        let peer = cx.view.member(from).unwrap_or_default();
        if k.digest == digest || self.came_from.reported.contains(&(prev, peer)) {
            return None;
        }
        let mine = k.digest.clone();
        self.came_from.reported.push((prev, peer));
        let drop = self.came_from.reported.len().saturating_sub(KEEP_REPORTED);
        self.came_from.reported.drain(..drop);
        Some((mine, peer))
    }

    /// At `Up::Install(next)`: keeps this view's digest for the next stacks.
    pub fn install(&mut self, next: ViewId, digest: Vec<Tally>, cx: &mut Cx<'_>) {
        let mut h = self.came_from.clone();
        h.moves.push(Kept { prev: cx.view.id, next, digest });
        let drop = h.moves.len().saturating_sub(KEEP_VIEWS);
        h.moves.drain(..drop);
        cx.keep(self.key, Bytes::from(to_vec(&h)));
    }

    /// `digests` (received), `digests_compared`, `digests_other`, `bad_memo`, for `dump`.
    pub fn counters(&self) -> [(&'static str, u64); 4] {
        [
            ("digests", self.digests),
            ("digests_compared", self.digests_compared),
            ("digests_other", self.digests_other),
            ("bad_memo", self.bad_memo),
        ]
    }

    /// The view this member came from, if it knows.
    pub fn came_from(&self) -> Option<ViewId> {
        self.came_from.moves.last().map(|k| k.prev)
    }
}
