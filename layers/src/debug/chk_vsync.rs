//! `chk_vsync`: checks virtual synchrony on live traffic, at each member, above the
//! membership layer (spec `chk_vsync:gms:...`).
//!
//! Protocol. Going down, each `Cast` gets a `Chk { view }` header with the view it is sent in
//! (`cx.view.id`); other message events get `NoHdr`. Going up, the header of every `Cast` and
//! `Send` is popped, and the layer checks four things, each violation counted and raised once
//! as `Up::Error { layer: "chk_vsync", detail }` (kind first in the detail):
//! - **wrong_view** (same-view delivery): a stamped cast delivered in a view other than the
//!   one it was sent in ("delivered in view X, sent in view Y"). It is still passed up: a
//!   checker is not a filter.
//! - **self_delivery**: at `Up::Install(next)`, this member has delivered exactly the casts it
//!   sent in this view (its own casts going down vs its own stamped deliveries coming up).
//! - **view_order**: at `Up::Install(next)`, `next.id > cx.view.id`; and the first stack of a
//!   view checks that its view is the one the last `Install` announced (kept in the memo).
//! - **agreement**: members that move together from `V` to `V'` delivered the same casts in
//!   `V`. At `Install` the layer keeps in the memo (key `chk_vsync`) `V`'s id, the announced
//!   id and a digest of what it delivered in `V`: per member of `V`, in rank order, its
//!   `EndpointId`, how many of its casts were delivered and a running FNV-1a hash of them in
//!   delivery order. The memo keeps the last `KEEP_VIEWS` such entries, not only the last:
//!   each view's stack, at its start (`init`), casts `Digest { prev, next, digest }`
//!   reliably for every entry it holds, and the receiving `chk_vsync` consumes it and, if
//!   its own memo has an entry for the same move `prev → next` with another digest, reports
//!   the two members and `prev`. So a comparison
//!   is not lost when the view that should have carried it is replaced before its casts are
//!   delivered (a view whose casts are held for a joiner that never loads the state, say):
//!   the next view carries it again. Digests of moves this member did not make (the other
//!   side of a merge, a joiner) are counted and ignored; own digests too; each move is
//!   compared once per member.
//!
//! Casts are the subject: `Send`, `CastUnrel` and `SendUnrel` carry `NoHdr` and are not
//! checked. A delivery after `Install` in the same stack cannot enter the digest already kept;
//! it is counted (`after_install`). Hostile input: a header that does not decode, a rank
//! outside the view, or a stamped header on a `Send` is dropped and counted (`bad_hdr`,
//! `bad_rank`), never delivered; a memo that does not decode is counted (`bad_memo`).
//!
//! Parameters: none. Properties: requires `MEMBERSHIP` below, provides nothing.
//! Header: `NoHdr` (tag 0) | `Chk { view }` (tag 1: ltime, coord as varints) |
//! `Digest { prev, next, digest }` (tag 2: prev's and next's ltime and coord, count, then per
//! member: id and count as varints, hash as 8 bytes little-endian).
//! Events generated: `Up::Error` for violations, `Dn::Cast` of one `Digest` per kept move at
//! the start of each view.
//! Memory: per member of the view, a count, a hash and a flag; the digests of the last
//! `KEEP_VIEWS` moves (one entry per member of each), and the moves compared. A received
//! digest is bounded by its datagram and freed once compared.
//! Dump counters: `sent`, `own_delivered`, `checked`, the four violation kinds, `digests`
//! (received), `digests_compared`, `digests_other`, `after_install`, `bad_hdr`, `bad_rank`,
//! `bad_memo`.
//!
//! The checker pattern (see `debug/mod.rs`): the sender stamps, the receiver compares,
//! `Reporter` counts and raises. Tested by the unit tests below and `tests/chk_vsync.rs`
//! (exact outputs of a clean view change between two members and of each violation planted
//! by hand; bolero: header round-trip, arbitrary bytes into `handle_up`).

use super::{Reporter, Violation};
use thoth_stack::ids::Fnv;
use thoth_stack::wire::{from_slice, to_vec, var_len};
use thoth_stack::{
    Args, Bytes, Cx, Dn, Dump, EndpointId, Layer, Msg, Props, Rank, Reader, Up, View, ViewId, Wire, WireError, Writer,
};

/// The memo key.
pub const KEY: &str = "chk_vsync";
/// Moves whose digests the memo keeps.
pub const KEEP_VIEWS: usize = 8;
/// Divergences already reported that the memo keeps, so a later view's repeat of the same
/// comparison does not report one twice.
pub const KEEP_REPORTED: usize = 64;

/// Deliveries of one sender in one view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tally {
    pub sender: EndpointId,
    /// Its casts delivered.
    pub count: u64,
    /// FNV-1a over them, in delivery order (each one length-prefixed).
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

fn view_len(v: ViewId) -> usize {
    var_len(v.ltime) + var_len(v.coord.0)
}

fn put_view(w: &mut Writer<'_>, v: ViewId) {
    w.put_var(v.ltime);
    w.put_var(v.coord.0);
}

fn get_view(r: &mut Reader<'_>) -> Result<ViewId, WireError> {
    Ok(ViewId { ltime: r.var()?, coord: EndpointId(r.var()?) })
}

fn digest_len(d: &[Tally]) -> usize {
    var_len(d.len() as u64) + d.iter().map(Wire::encoded_len).sum::<usize>()
}

fn put_digest(w: &mut Writer<'_>, d: &[Tally]) {
    w.put_var(d.len() as u64);
    for t in d {
        t.encode(w);
    }
}

fn get_digest(r: &mut Reader<'_>) -> Result<Vec<Tally>, WireError> {
    let n = r.var()?;
    // Bound the allocation by the bytes actually there.
    if n > (r.remaining() / MIN_TALLY) as u64 {
        return Err(WireError::Truncated);
    }
    (0..n).map(|_| Tally::decode(r)).collect()
}

/// The `chk_vsync` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hdr {
    NoHdr,
    /// A cast, with the view it was sent in.
    Chk {
        view: ViewId,
    },
    /// Control: what the sender delivered in view `prev` before it moved to `next`.
    Digest {
        prev: ViewId,
        next: ViewId,
        digest: Vec<Tally>,
    },
}

impl Wire for Hdr {
    thoth_stack::nothing!(Hdr::NoHdr);
    fn encoded_len(&self) -> usize {
        match self {
            Hdr::NoHdr => 1,
            Hdr::Chk { view } => 1 + view_len(*view),
            Hdr::Digest { prev, next, digest } => 1 + view_len(*prev) + view_len(*next) + digest_len(digest),
        }
    }
    fn encode(&self, w: &mut Writer<'_>) {
        match self {
            Hdr::NoHdr => w.put_u8(0),
            Hdr::Chk { view } => {
                w.put_u8(1);
                put_view(w, *view);
            }
            Hdr::Digest { prev, next, digest } => {
                w.put_u8(2);
                put_view(w, *prev);
                put_view(w, *next);
                put_digest(w, digest);
            }
        }
    }
    fn decode(r: &mut Reader<'_>) -> Result<Hdr, WireError> {
        match r.u8()? {
            0 => Ok(Hdr::NoHdr),
            1 => Ok(Hdr::Chk { view: get_view(r)? }),
            2 => Ok(Hdr::Digest { prev: get_view(r)?, next: get_view(r)?, digest: get_digest(r)? }),
            _ => Err(WireError::BadTag),
        }
    }
}

/// One move a member made: the view it ran in, the view its `Install` announced, and the
/// digest of its deliveries in the first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kept {
    pub prev: ViewId,
    pub next: ViewId,
    pub digest: Vec<Tally>,
}

/// What a stack keeps for the next ones (memo key `chk_vsync`): its last moves, oldest first,
/// at most `KEEP_VIEWS`, and the divergences it reported (the view and the other member),
/// newest last, at most `KEEP_REPORTED`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct History {
    pub moves: Vec<Kept>,
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

/// The first difference between two digests of the same view, for the report.
fn difference(mine: &[Tally], theirs: &[Tally], me: EndpointId, peer: EndpointId) -> String {
    match mine.iter().zip(theirs).find(|(a, b)| a != b) {
        Some((a, b)) if a.sender == b.sender => format!(
            "from {}, {} casts (hash {:016x}) at {me} vs {} (hash {:016x}) at {peer}",
            a.sender, a.count, a.hash, b.count, b.hash
        ),
        Some((a, b)) => format!("senders differ: {} at {me} vs {} at {peer}", a.sender, b.sender),
        None => format!("{} senders at {me} vs {} at {peer}", mine.len(), theirs.len()),
    }
}

/// The `chk_vsync` layer.
#[derive(Clone, Debug)]
pub struct ChkVsync {
    report: Reporter,
    /// Per rank of this view: casts delivered and their running hash.
    tally: Vec<(u64, Fnv)>,
    /// Moves compared, with the rank whose digest it was.
    compared: std::collections::BTreeSet<(Rank, ViewId, ViewId)>,
    /// The previous stack's memo: the moves this member made last.
    came_from: History,
    installed: bool,
    sent: u64,
    own_delivered: u64,
    checked: u64,
    digests: u64,
    digests_compared: u64,
    digests_other: u64,
    after_install: u64,
    bad_hdr: u64,
    bad_rank: u64,
    bad_memo: u64,
}

impl Default for ChkVsync {
    fn default() -> Self {
        ChkVsync::new()
    }
}

impl ChkVsync {
    pub fn new() -> ChkVsync {
        ChkVsync {
            report: Reporter::new("chk_vsync", &["wrong_view", "self_delivery", "view_order", "agreement"]),
            tally: Vec::new(),
            compared: Default::default(),
            came_from: History::default(),
            installed: false,
            sent: 0,
            own_delivered: 0,
            checked: 0,
            digests: 0,
            digests_compared: 0,
            digests_other: 0,
            after_install: 0,
            bad_hdr: 0,
            bad_rank: 0,
            bad_memo: 0,
        }
    }

    /// Violations reported so far.
    pub fn violations(&self) -> u64 {
        self.report.total()
    }

    pub fn reporter(&self) -> &Reporter {
        &self.report
    }

    /// The digest of this view's deliveries so far: one entry per member, in rank order.
    pub fn digest(&self, view: &View) -> Vec<Tally> {
        view.members
            .iter()
            .enumerate()
            .map(|(i, &sender)| {
                let (count, hash) = self.tally.get(i).map_or((0, Fnv::new().finish()), |(c, h)| (*c, h.finish()));
                Tally { sender, count, hash }
            })
            .collect()
    }

    fn violation(&mut self, kind: &'static str, from: Rank, detail: String, cx: &mut Cx<'_>) {
        self.report.report(Violation { kind, from, detail }, cx);
    }

    /// Start of the view: checks the view is the one announced, casts the digests kept.
    fn start(&mut self, cx: &mut Cx<'_>) {
        self.tally = vec![(0, Fnv::new()); cx.view.len()];
        let Some(b) = cx.kept(KEY) else { return };
        let Ok(h) = from_slice::<History>(&b) else {
            self.bad_memo += 1;
            return;
        };
        if let Some(k) = h.moves.last().filter(|k| k.next != cx.view.id) {
            let detail = format!("installed view {:?}, but Install announced {:?}", cx.view.id, k.next);
            self.violation("view_order", cx.rank, detail, cx);
        }
        for k in &h.moves {
            let mut m = Msg::new(Bytes::new());
            m.push(&Hdr::Digest { prev: k.prev, next: k.next, digest: k.digest.clone() });
            cx.dn(Dn::Cast(m));
        }
        self.came_from = h;
    }

    fn deliver(&mut self, from: Rank, sent_in: ViewId, msg: &Msg, cx: &mut Cx<'_>) {
        self.checked += 1;
        if self.installed {
            self.after_install += 1;
        }
        if sent_in != cx.view.id {
            let detail = format!("delivered in view {:?}, sent in view {sent_in:?}", cx.view.id);
            self.violation("wrong_view", from, detail, cx);
        }
        if let Some((count, h)) = self.tally.get_mut(from.index()) {
            *count += 1;
            h.u64(msg.len() as u64);
            h.bytes(msg.head());
            h.bytes(msg.body());
        }
        if from == cx.rank {
            self.own_delivered += 1;
        }
    }

    fn on_digest(&mut self, from: Rank, prev: ViewId, next: ViewId, digest: Vec<Tally>, cx: &mut Cx<'_>) {
        self.digests += 1;
        if from == cx.rank || !self.compared.insert((from, prev, next)) {
            return; // our own, looped back; or a move this member's digest was compared for
        }
        match self.came_from.moves.iter().find(|k| k.prev == prev && k.next == next) {
            Some(k) => {
                self.digests_compared += 1;
                let peer = cx.view.member(from).unwrap_or_default();
                if k.digest != digest && !self.came_from.reported.contains(&(prev, peer)) {
                    let me = cx.view.member(cx.rank).unwrap_or_default();
                    let detail = format!(
                        "{me} and {peer} both came from view {prev:?} with different deliveries: {}",
                        difference(&k.digest, &digest, me, peer)
                    );
                    self.violation("agreement", from, detail, cx);
                    self.came_from.reported.push((prev, peer));
                    let drop = self.came_from.reported.len().saturating_sub(KEEP_REPORTED);
                    self.came_from.reported.drain(..drop);
                }
            }
            None => self.digests_other += 1,
        }
    }

    fn install(&mut self, next: &View, cx: &mut Cx<'_>) {
        if next.id <= cx.view.id {
            let detail = format!("Install of view {:?} in view {:?}: view ids must increase", next.id, cx.view.id);
            self.violation("view_order", cx.rank, detail, cx);
        }
        if self.own_delivered != self.sent {
            let detail =
                format!("sent {} casts in view {:?}, delivered {} of them", self.sent, cx.view.id, self.own_delivered);
            self.violation("self_delivery", cx.rank, detail, cx);
        }
        let mut h = self.came_from.clone();
        h.moves.push(Kept { prev: cx.view.id, next: next.id, digest: self.digest(cx.view) });
        let drop = h.moves.len().saturating_sub(KEEP_VIEWS);
        h.moves.drain(..drop);
        cx.keep(KEY, Bytes::from(to_vec(&h)));
        self.installed = true;
    }
}

pub(super) fn ctor(_: &mut Args) -> Result<Box<dyn Layer>, String> {
    Ok(Box::new(ChkVsync::new()))
}

impl Layer for ChkVsync {
    fn name(&self) -> &'static str {
        "chk_vsync"
    }
    fn requires(&self) -> Props {
        Props::MEMBERSHIP
    }
    fn init(&mut self, cx: &mut Cx<'_>) {
        self.start(cx);
    }
    fn handle_dn(&mut self, mut ev: Dn, cx: &mut Cx<'_>) {
        if let Dn::Cast(m) = &mut ev {
            self.sent += 1;
            m.push(&Hdr::Chk { view: cx.view.id });
        }
        cx.dn(ev) // anything else: no header, read as `NoHdr` above
    }
    fn handle_up(&mut self, mut ev: Up, cx: &mut Cx<'_>) {
        match &mut ev {
            Up::Cast { from, msg } => {
                let from = *from;
                let Ok(hdr) = msg.pop::<Hdr>() else {
                    self.bad_hdr += 1;
                    return;
                };
                if from.index() >= cx.view.len() {
                    self.bad_rank += 1;
                    return;
                }
                match hdr {
                    Hdr::NoHdr => {} // an unreliable cast: not checked
                    Hdr::Chk { view } => self.deliver(from, view, msg, cx),
                    Hdr::Digest { prev, next, digest } => return self.on_digest(from, prev, next, digest, cx),
                }
            }
            Up::Send { from, msg } => {
                if msg.pop::<Hdr>() != Ok(Hdr::NoHdr) {
                    self.bad_hdr += 1;
                    return;
                }
                if from.index() >= cx.view.len() {
                    self.bad_rank += 1;
                    return;
                }
            }
            Up::Install(next) => self.install(next, cx),
            _ => {}
        }
        cx.up(ev)
    }
    fn dump(&self, out: &mut Vec<Dump>) {
        let mut counters = vec![("sent", self.sent), ("own_delivered", self.own_delivered), ("checked", self.checked)];
        counters.extend(self.report.counters());
        counters.extend([
            ("digests", self.digests),
            ("digests_compared", self.digests_compared),
            ("digests_other", self.digests_other),
            ("after_install", self.after_install),
            ("bad_hdr", self.bad_hdr),
            ("bad_rank", self.bad_rank),
            ("bad_memo", self.bad_memo),
        ]);
        let came_from = self.came_from.moves.last().map(|k| k.prev);
        out.push(Dump {
            layer: "chk_vsync",
            counters,
            state: format!("violations={} came_from={came_from:?}", self.report.total()),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_bytes() {
        let v = ViewId { ltime: 300, coord: EndpointId(2) };
        assert_eq!(to_vec(&Hdr::NoHdr), [0]);
        assert_eq!(to_vec(&Hdr::Chk { view: v }), [1, 0xac, 0x02, 2]);
        let next = ViewId { ltime: 301, coord: EndpointId(2) };
        let d = Hdr::Digest { prev: v, next, digest: vec![Tally { sender: EndpointId(5), count: 1, hash: 7 }] };
        assert_eq!(to_vec(&d), [2, 0xac, 0x02, 2, 0xad, 0x02, 2, 1, 5, 1, 7, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(from_slice::<Hdr>(&to_vec(&d)), Ok(d));
        assert_eq!(from_slice::<Hdr>(&[3]), Err(WireError::BadTag));
        // A count larger than the bytes behind it is refused before allocating.
        assert_eq!(from_slice::<Hdr>(&[2, 1, 1, 2, 1, 0xff, 0xff, 0xff, 0xff, 0x0f]), Err(WireError::Truncated));
        // A memo of more moves than are kept is refused.
        let k = Kept { prev: v, next, digest: vec![] };
        let h = History { moves: vec![k; KEEP_VIEWS + 1], reported: vec![] };
        assert_eq!(from_slice::<History>(&to_vec(&h)), Err(WireError::BadValue));
    }

    #[test]
    fn digest_lists_every_member_in_rank_order() {
        let view = View::initial(vec![EndpointId(4), EndpointId(9)]);
        let c = ChkVsync::new();
        let empty = Fnv::new().finish();
        assert_eq!(
            c.digest(&view),
            [
                Tally { sender: EndpointId(4), count: 0, hash: empty },
                Tally { sender: EndpointId(9), count: 0, hash: empty }
            ]
        );
    }
}
