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
//!   `EndpointId`, how many of its casts were delivered and a hash of them in delivery order
//!   (a running FNV-1a hash per kind, then one over the two: casts that ask for FIFO order
//!   only, `Msg::set_fifo`, are hashed apart, since an ordering layer below delivers a
//!   sender's two kinds in no order with each other). Each view's stack, at its start (`init`), casts
//!   `Digest { prev, next, digest }` reliably for every move its memo holds (the last
//!   `KEEP_VIEWS`), and the receiving `chk_vsync` consumes it and, if it made the same move
//!   `prev → next` with another digest, reports the two members and `prev` (the mechanism is
//!   `moves::Moves`, shared with `chk_total`).
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

pub use super::moves::{History, KEEP_VIEWS, Kept, Tally};
use super::moves::{Moves, digest_len, get_digest, get_view, put_digest, put_view, view_len};
use super::{Reporter, Violation};
use thoth_stack::ids::Fnv;
use thoth_stack::{
    Args, Cx, Dn, Dump, EndpointId, Layer, Msg, Props, Rank, Reader, Up, View, ViewId, Wire, WireError, Writer,
};

/// The memo key.
pub const KEY: &str = "chk_vsync";
/// The `chk_vsync` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hdr {
    /// Not checked: sends, unreliable casts and sends, other message events.
    NoHdr,
    /// A cast, with the view it was sent in.
    Chk {
        /// The sender's view (`cx.view.id`) when it cast.
        view: ViewId,
    },
    /// Control: what the sender delivered in view `prev` before it moved to `next`.
    Digest {
        /// The view the sender ran in.
        prev: ViewId,
        /// The view its `Install` announced.
        next: ViewId,
        /// Per member of `prev`, in rank order: its casts the sender delivered, count and hash.
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
    /// Per rank of this view: casts delivered and their running hash per kind (ordered,
    /// FIFO-only).
    tally: Vec<(u64, [Fnv; 2])>,
    moves: Moves,
    installed: bool,
    sent: u64,
    own_delivered: u64,
    checked: u64,
    after_install: u64,
    bad_hdr: u64,
    bad_rank: u64,
}

impl Default for ChkVsync {
    fn default() -> Self {
        ChkVsync::new()
    }
}

impl ChkVsync {
    /// A checker with nothing sent or delivered yet; its moves kept under `KEY`.
    pub fn new() -> ChkVsync {
        ChkVsync {
            report: Reporter::new("chk_vsync", &["wrong_view", "self_delivery", "view_order", "agreement"]),
            tally: Vec::new(),
            moves: Moves::new(KEY),
            installed: false,
            sent: 0,
            own_delivered: 0,
            checked: 0,
            after_install: 0,
            bad_hdr: 0,
            bad_rank: 0,
        }
    }

    /// Violations reported so far.
    pub fn violations(&self) -> u64 {
        self.report.total()
    }

    /// The violation counts, by kind (`wrong_view`, `self_delivery`, `view_order`, `agreement`).
    pub fn reporter(&self) -> &Reporter {
        &self.report
    }

    /// The digest of this view's deliveries so far: one entry per member, in rank order.
    pub fn digest(&self, view: &View) -> Vec<Tally> {
        view.members
            .iter()
            .enumerate()
            .map(|(i, &sender)| {
                let (count, hash) = self.tally.get(i).map_or((0, Fnv::new().finish()), |(c, [h, f])| {
                    let mut both = Fnv::new();
                    both.u64(h.finish());
                    both.u64(f.finish());
                    (*c, both.finish())
                });
                Tally { sender, count, hash }
            })
            .collect()
    }

    fn violation(&mut self, kind: &'static str, from: Rank, detail: String, cx: &mut Cx<'_>) {
        self.report.report(Violation { kind, from, detail }, cx);
    }

    /// Start of the view: casts the digests kept, checks the view is the one announced.
    fn start(&mut self, cx: &mut Cx<'_>) {
        self.tally = vec![(0, [Fnv::new(), Fnv::new()]); cx.view.len()];
        let announced = self.moves.start(cx, |k| Hdr::Digest { prev: k.prev, next: k.next, digest: k.digest });
        if let Some(next) = announced.filter(|&n| n != cx.view.id) {
            let detail = format!("installed view {:?}, but Install announced {next:?}", cx.view.id);
            self.violation("view_order", cx.rank, detail, cx);
        }
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
        if let Some((count, hs)) = self.tally.get_mut(from.index()) {
            *count += 1;
            let h = &mut hs[usize::from(msg.is_fifo())];
            h.u64(msg.len() as u64);
            h.bytes(msg.head());
            h.bytes(msg.body());
        }
        if from == cx.rank {
            self.own_delivered += 1;
        }
    }

    fn on_digest(&mut self, from: Rank, prev: ViewId, next: ViewId, digest: Vec<Tally>, cx: &mut Cx<'_>) {
        if let Some((mine, peer)) = self.moves.arrive(from, prev, next, &digest, cx) {
            let me = cx.view.member(cx.rank).unwrap_or_default();
            let detail = format!(
                "{me} and {peer} both came from view {prev:?} with different deliveries: {}",
                difference(&mine, &digest, me, peer)
            );
            self.violation("agreement", from, detail, cx);
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
        let digest = self.digest(cx.view);
        self.moves.install(next.id, digest, cx);
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
    fn max_header(&self, _: &View) -> usize {
        Hdr::Chk { view: ViewId { ltime: u64::MAX, coord: EndpointId(u64::MAX) } }.encoded_len()
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
            ("after_install", self.after_install),
            ("bad_hdr", self.bad_hdr),
            ("bad_rank", self.bad_rank),
        ]);
        counters.extend(self.moves.counters());
        let came_from = self.moves.came_from();
        out.push(Dump {
            layer: "chk_vsync",
            counters,
            state: format!("violations={} came_from={came_from:?}", self.report.total()),
            ..Dump::default()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use thoth_stack::wire::{from_slice, to_vec};

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
