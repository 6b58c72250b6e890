//! `frag`: fragmentation and reassembly of messages larger than a datagram.
//!
//! **Protocol.** Going down, a reliable `Cast` or `Send` whose message (payload plus the
//! headers of the layers above) is at most `size` bytes gets the 1-byte `Whole` header. A
//! larger one is cut into `count = ⌈len / size⌉` fragments of `size` bytes (the last one
//! shorter), each sent as its own `Cast` / `Send` with `Frag { id, index, count, total }`:
//! `id` numbers this sender's fragmented messages, a counter per kind: casts, casts that ask
//! for FIFO order only (`Msg::set_fifo`: their fragments say so and carry the mark), sends;
//! `total` is the message length, so a receiver reserves its memory at the first fragment.
//! Nothing is copied: fragment bodies are slices of the payload, and a fragment that
//! overlaps the headers of the layers above carries them in its inline buffer
//! (`Msg::with_head`). Going up, fragments are kept per sender and kind, keyed
//! by `id`, and concatenated once, in index order, when the last one is in; the result goes
//! up as one `Cast` / `Send` from that sender. This member's own fragmented casts are not
//! reassembled: each is kept as it was sent (charged as its set would be, in a `mem` budget
//! of its own) and delivered in place of its last fragment when that comes back up; its
//! fragments come back in order, so one out of order drops it (`contradictory`), and one
//! evicted for room before any fragment came back is reassembled as anyone's. `CastUnrel` / `SendUnrel`
//! are never fragmented: they get `NoHdr` and pass (one larger than a datagram is dropped at
//! the endpoint as `tx_oversize`).
//!
//! **Below.** Frag requires nothing, so it composes anywhere, but it is meant to sit above the
//! reliable FIFO layers (nak, pt2pt): with them every message arrives whole and in order.
//! Without them a lost fragment loses its message (its set stays incomplete until evicted),
//! duplicate fragments are dropped (a duplicated whole message is not), and reordering is tolerated within the sets held at a time; a
//! set whose fragments all arrive after a later message of the same sender completed is
//! taken for a stale duplicate and dropped (`stale`).
//!
//! **Parameters** (`frag(size=N,max=16777216,mem=33554432,mem_all=134217728)`):
//! - `size` (by default none): largest fragment payload. A fragment is never larger than
//!   the room the datagram has for it (`Cx::room`: the endpoint's `max_datagram` less the
//!   frame, the presence bits and the `Layer::max_header` of every layer below frag), less
//!   frag's own header (41 bytes at worst); by default that room alone sizes the fragments,
//!   so a 65,000-byte message goes whole in one datagram under the reliable stack, a larger
//!   one in as few datagrams as hold it, and a stack whose layers below frag declare longer
//!   headers (causal order's grow with the view) gets smaller fragments, never a datagram
//!   too large to send. On a path whose MTU matters (a 1500-byte Ethernet), no datagram
//!   should be IP-fragmented (one lost IP fragment loses the whole datagram): give the
//!   endpoint the path's `max_datagram` (1452 bytes of UDP payload over IPv6), or cap the
//!   fragments with `size`. Measured (`thoth-perf --size 65000`, 3 senders on loopback):
//!   507 MB/s per receiver with 1,280-byte fragments, 964 MB/s with 60,000 (two datagrams
//!   per message), and see the README for whole 65,000-byte messages.
//! - `max` (16 MiB): largest message. The endpoint accepts any size once a stack provides
//!   FRAG, so the limit is here: a larger `Cast` / `Send` cannot be refused to its caller from
//!   inside a layer, so it is dropped, counted (`tx_oversize`) and reported up as
//!   `Up::Error { layer: "frag", .. }`. A received fragment claiming a larger total is
//!   dropped (`rx_oversize`).
//! - `mem` (32 MiB): reassembly memory per sender, casts and sends together. A set is charged
//!   at its first fragment for `total` bytes plus 64 per fragment plus 256, the bookkeeping
//!   of its maps. A set that alone exceeds `mem` is dropped (`over_budget`); otherwise the
//!   sender's oldest sets (lowest id, same kind first) are evicted (`evicted`) to make room.
//!   At most 8 sets per sender and kind are held (the oldest is evicted).
//! - `mem_all` (128 MiB): reassembly memory for all senders together. A set that does not
//!   fit even once its sender's own sets are evicted is dropped (`over_budget`): one sender,
//!   or one forger using members' names, cannot take the others' room.
//!
//! **Hostile input.** A header that does not decode (`bad_hdr`: unknown tag, `count < 2`,
//! `index >= count`, `total < count`), a rank outside the view (`bad_rank`), and a set that
//! contradicts itself (`contradictory`: fragments that disagree on `count` or `total`, an
//! empty fragment, the same index with other bytes, more bytes than `total`, or a completed
//! set whose bytes do not add up to `total`) are dropped and counted; the contradictory set is
//! discarded whole. Nothing is delivered that was not sent as one message.
//!
//! **Properties.** Requires nothing; provides FRAG.
//!
//! **Events generated.** `Up::Error` for an oversize message sent down; the reassembled
//! `Up::Cast` / `Up::Send`. Everything else passes through.
//!
//! **Memory.** At most `mem` bytes (as charged above) per rank of the view, and `mem_all` in
//! all. A fragment is a slice of its datagram and keeps it alive: a set is also charged, once
//! for the fragments one datagram gave it in a row, the datagram's bytes when a fragment is
//! a part of a larger one (or, with no room for that, the fragment is kept as a copy of its
//! own bytes), so the charge bounds what the held fragments really keep alive; and `mem`
//! more for this member's own casts on their way back up. Partial sets and own casts are
//! discarded on `Up::Exit`, and when the sender leaves the view: with fixed views that is
//! when a new stack is built for the next view, which starts empty.
//!
//! **Tests.** A unit test here (header bytes); `layers/tests/batch.rs`: a batch of whole
//! casts handed on at once (`handle_ups`) as one at a time; `layers/tests/frag.rs`: exact
//! outputs for split, reassembly, own casts back up, bounds, contradictions and exit; bolero header round-trip,
//! hostile input and model tests; and simulator runs of 3-member groups with and without
//! loss, including one that must catch `Config::test_deliver_on_last`.

use std::collections::{BTreeMap, VecDeque};
use thoth_stack::{Args, Bytes, BytesMut, Cx, Dn, Dump, Layer, Msg, Props, Rank, Reader, Registry, Up};
use thoth_stack::{Wire, WireError, Writer, wire::var_len};

const NAME: &str = "frag";
/// Charged per fragment a set may hold (its `Bytes` handle and map entry).
pub const FRAG_OVERHEAD: u64 = 64;
/// Charged per set (its maps and bookkeeping).
pub const SET_OVERHEAD: u64 = 256;
/// Sets held per sender and kind.
pub const MAX_SETS: usize = 8;

/// Frag's header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FragHdr {
    /// An unreliable message, never fragmented.
    NoHdr,
    /// A reliable message that fits in one fragment.
    Whole,
    /// Fragment `index` of `count` of the sender's message `id`, `total` bytes long; `fifo`:
    /// of a cast that asks for FIFO order only (`Msg::set_fifo`), numbered apart.
    Frag {
        /// Of a cast that asks for FIFO order only: numbered and reassembled apart.
        fifo: bool,
        /// The sender's number for this message, per kind (casts, FIFO-only casts, sends).
        id: u64,
        /// This fragment's position in the message, from 0.
        index: u64,
        /// Fragments in the message (at least 2).
        count: u64,
        /// Bytes of the whole message (its wire form), at least `count`.
        total: u64,
    },
}

impl Wire for FragHdr {
    thoth_stack::nothing!(FragHdr::Whole);
    fn encoded_len(&self) -> usize {
        match *self {
            FragHdr::NoHdr | FragHdr::Whole => 1,
            FragHdr::Frag { id, index, count, total, .. } => {
                1 + var_len(id) + var_len(index) + var_len(count) + var_len(total)
            }
        }
    }
    fn encode(&self, w: &mut Writer<'_>) {
        match *self {
            FragHdr::NoHdr => w.put_u8(0),
            FragHdr::Whole => w.put_u8(1),
            FragHdr::Frag { fifo, id, index, count, total } => {
                w.put_u8(if fifo { 3 } else { 2 });
                for v in [id, index, count, total] {
                    w.put_var(v);
                }
            }
        }
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, WireError> {
        match r.u8()? {
            0 => Ok(FragHdr::NoHdr),
            1 => Ok(FragHdr::Whole),
            tag @ (2 | 3) => {
                let (id, index, count, total) = (r.var()?, r.var()?, r.var()?, r.var()?);
                // Every fragment is non-empty, so a set has at least two and at most `total`.
                if count < 2 || index >= count || total < count {
                    return Err(WireError::BadValue);
                }
                Ok(FragHdr::Frag { fifo: tag == 3, id, index, count, total })
            }
            _ => Err(WireError::BadTag),
        }
    }
}

/// Parameters; see the module documentation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Largest fragment payload (bytes of the message, headers of the layers above included);
    /// a fragment is never larger than the datagram's room below frag (`Cx::room`) either,
    /// so the default, `usize::MAX`, cuts fragments as large as a datagram takes.
    pub size: usize,
    /// Largest message.
    pub max: usize,
    /// Reassembly memory per sender.
    pub mem: usize,
    /// Reassembly memory for all senders together.
    pub mem_all: usize,
    /// A planted bug for the tests: deliver a set when its last index arrives, missing
    /// fragments or not.
    #[doc(hidden)]
    pub test_deliver_on_last: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config { size: usize::MAX, max: 16 << 20, mem: 32 << 20, mem_all: 128 << 20, test_deliver_on_last: false }
    }
}

/// What a message is, for its numbering: each kind has its own ids and sets, since the
/// layers below deliver each kind in its sender's FIFO order but not the kinds together (an
/// ordering layer delivers a FIFO-only cast as it comes, ahead of ordered ones it holds).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Kind {
    Cast,
    /// A cast asking for FIFO order only (`Msg::set_fifo`).
    Fifo,
    Send,
}

/// One message being reassembled.
#[derive(Debug)]
struct Set {
    count: u64,
    total: u64,
    got: u64,
    charge: u64,
    frags: BTreeMap<u64, Bytes>,
    /// The datagram of the newest fragment whose datagram the set was charged for.
    last_datagram: u32,
}

/// A fragmented cast of this member's own, kept as it was sent until its fragments come
/// back up (in order, as the layers below deliver this member's casts) and delivered then
/// in their stead: no reassembly copy for one's own casts.
#[derive(Debug)]
struct Own {
    count: u64,
    next: u64,
    charge: u64,
    msg: Msg,
}

/// One sender's sets of one kind (`Kind`).
#[derive(Default, Debug)]
struct Stream {
    sets: BTreeMap<u64, Set>,
    /// The highest id completed, evicted or dropped: a fragment of an id at or below it with
    /// no set held is a stale duplicate.
    done: Option<u64>,
}

impl Stream {
    fn finish(&mut self, id: u64) {
        self.done = Some(self.done.map_or(id, |d| d.max(id)));
    }
}

#[derive(Default, Debug)]
struct Sender {
    /// By `Kind`.
    streams: [Stream; 3],
    held: u64,
}

#[derive(Default, Debug, Clone, Copy)]
struct Counters {
    tx_whole: u64,
    tx_unrel: u64,
    tx_fragmented: u64,
    tx_fragments: u64,
    tx_oversize: u64,
    rx_whole: u64,
    rx_unrel: u64,
    rx_fragments: u64,
    rx_reassembled: u64,
    bad_hdr: u64,
    bad_rank: u64,
    rx_oversize: u64,
    over_budget: u64,
    contradictory: u64,
    dup: u64,
    stale: u64,
    evicted: u64,
    discarded: u64,
    held_max: u64,
    rx_own: u64,
    own_evicted: u64,
}

/// The fragmentation layer; see the module documentation.
#[derive(Debug)]
pub struct Frag {
    cfg: Config,
    /// The next id, by `Kind`.
    next: [u64; 3],
    senders: Vec<Sender>,
    held: u64,
    /// This member's fragmented casts on their way back up, by kind and id, and their bytes.
    own: BTreeMap<(Kind, u64), Own>,
    own_held: u64,
    c: Counters,
}

impl Default for Frag {
    fn default() -> Self {
        Frag::new(Config::default())
    }
}

/// Registers `frag` with its parameters.
pub fn register(r: &mut Registry) {
    r.register(NAME, "fragmentation and reassembly of large messages (size, max, mem)", |a: &mut Args| {
        let d = Config::default();
        let cfg = Config {
            size: a.get("size", d.size)?,
            max: a.get("max", d.max)?,
            mem: a.get("mem", d.mem)?,
            mem_all: a.get("mem_all", d.mem_all)?,
            test_deliver_on_last: false,
        };
        if cfg.size == 0 {
            return Err("`size` must be at least 1".into());
        }
        Ok(Box::new(Frag::new(cfg)))
    });
}

impl Frag {
    /// A frag layer; `size` must be at least 1.
    pub fn new(cfg: Config) -> Frag {
        assert!(cfg.size > 0, "frag: size must be at least 1");
        Frag {
            cfg,
            next: [0; 3],
            senders: Vec::new(),
            held: 0,
            own: BTreeMap::new(),
            own_held: 0,
            c: Counters::default(),
        }
    }

    /// Sends `msg` down, whole or in fragments; `emit` wraps each piece in its event.
    fn down(&mut self, msg: Msg, kind: Kind, cx: &mut Cx<'_>, emit: impl Fn(Msg) -> Dn) {
        let len = msg.len();
        if len > self.cfg.max {
            self.c.tx_oversize += 1;
            let what = if kind == Kind::Send { "send" } else { "cast" };
            let detail = format!("{what} of {len} bytes exceeds the {}-byte maximum: dropped", self.cfg.max);
            cx.up(Up::Error { layer: NAME, detail });
            return;
        }
        let size = self.piece(cx);
        if len <= size {
            self.c.tx_whole += 1;
            let mut msg = msg;
            msg.push(&FragHdr::Whole);
            cx.dn(emit(msg));
            return;
        }
        let id = self.next[kind as usize];
        self.next[kind as usize] += 1;
        let count = msg.wire_len().div_ceil(size);
        let fifo = kind == Kind::Fifo;
        if kind != Kind::Send {
            self.keep_own((kind, id), count as u64, msg.clone());
        }
        // The fragments carry the message's wire form: its presence bits too.
        let (head, body) = msg.into_parts();
        let (h, len) = (head.len(), head.len() + body.len());
        self.c.tx_fragmented += 1;
        self.c.tx_fragments += count as u64;
        for index in 0..count {
            let (a, b) = (index * size, ((index + 1) * size).min(len));
            // A fragment that overlaps the headers of the layers above carries them in its
            // inline buffer, in front of its slice of the body.
            let mut m = if a >= h {
                Msg::new(body.slice(a - h..b - h))
            } else {
                Msg::with_head(&head[a..b.min(h)], body.slice(0..b.max(h) - h))
            };
            if fifo {
                m.set_fifo();
            }
            m.push(&FragHdr::Frag { fifo, id, index: index as u64, count: count as u64, total: len as u64 });
            cx.dn(emit(m));
        }
    }

    /// The most bytes of a message one fragment carries: `size`, or what the datagram's
    /// room below leaves once frag's own header is on, if that is less.
    fn piece(&self, cx: &Cx<'_>) -> usize {
        self.cfg.size.min(cx.room.saturating_sub(self.max_header(cx.view))).max(1)
    }

    /// Keeps one of this member's fragmented casts until it comes back up, charged as its
    /// set would be, in a budget of `mem` of its own: the oldest casts none of whose
    /// fragments came back yet make room, and theirs are then reassembled as anyone's.
    fn keep_own(&mut self, key: (Kind, u64), count: u64, msg: Msg) {
        let charge = (msg.wire_len() as u64).saturating_add(count * FRAG_OVERHEAD) + SET_OVERHEAD;
        while self.own_held + charge > self.cfg.mem as u64 {
            let Some(old) = self.own.iter().find(|(_, o)| o.next == 0).map(|(&k, _)| k) else { return };
            let o = self.own.remove(&old).expect("found");
            self.own_held -= o.charge;
            self.c.own_evicted += 1;
        }
        self.own_held += charge;
        self.own.insert(key, Own { count, next: 0, charge, msg });
    }

    /// One of this member's fragments back up, if it is of a cast kept whole: the cast once
    /// its last fragment is in. Fragments come back in order; one out of order (layers below
    /// that break FIFO) drops the cast, counted as contradictory.
    fn own_fragment(&mut self, key: (Kind, u64), index: u64, count: u64) -> Option<Option<Msg>> {
        let own = self.own.get_mut(&key)?;
        self.c.rx_fragments += 1;
        let in_order = index == own.next && count == own.count;
        own.next += 1;
        if in_order && own.next < count {
            return Some(None);
        }
        let own = self.own.remove(&key).expect("found");
        self.own_held -= own.charge;
        if !in_order {
            self.c.contradictory += 1;
            return Some(None);
        }
        self.c.rx_reassembled += 1;
        self.c.rx_own += 1;
        Some(Some(own.msg))
    }

    /// A message from the network (or looped back): pops the header, delivers what is whole.
    fn up(&mut self, from: Rank, mut msg: Msg, kind: Kind, cx: &mut Cx<'_>) {
        let hdr = match msg.pop::<FragHdr>() {
            Ok(h) => h,
            Err(_) => {
                self.c.bad_hdr += 1;
                return;
            }
        };
        let wrap = |msg| if kind == Kind::Send { Up::Send { from, msg } } else { Up::Cast { from, msg } };
        match hdr {
            FragHdr::NoHdr => {
                self.c.rx_unrel += 1;
                cx.up(wrap(msg));
            }
            FragHdr::Whole => {
                self.c.rx_whole += 1;
                cx.up(wrap(msg));
            }
            FragHdr::Frag { fifo, id, index, count, total } => {
                let kind = match (kind, fifo) {
                    (Kind::Send, true) => {
                        self.c.bad_hdr += 1;
                        return;
                    }
                    (Kind::Send, false) => Kind::Send,
                    (_, true) => Kind::Fifo,
                    (_, false) => Kind::Cast,
                };
                if kind != Kind::Send
                    && from == cx.rank
                    && let Some(whole) = self.own_fragment((kind, id), index, count)
                {
                    if let Some(msg) = whole {
                        cx.up(wrap(msg));
                    }
                    return;
                }
                if from.index() >= self.senders.len() {
                    self.c.bad_rank += 1;
                    return;
                }
                // A set is the message's wire form: `max` bytes and its presence bits (a
                // varint, at most 10 bytes).
                if total > self.cfg.max as u64 + 10 {
                    self.c.rx_oversize += 1;
                    return;
                }
                self.c.rx_fragments += 1;
                if let Some(data) = self.fragment(from.index(), kind, id, index, count, total, msg) {
                    match Msg::from_frame(data) {
                        Ok(mut whole) => {
                            if kind == Kind::Fifo {
                                whole.set_fifo();
                            }
                            self.c.rx_reassembled += 1;
                            cx.up(wrap(whole));
                        }
                        Err(_) => self.c.bad_hdr += 1,
                    }
                }
            }
        }
    }

    /// Adds one fragment; returns the message it completes.
    #[allow(clippy::too_many_arguments)]
    fn fragment(
        &mut self,
        rank: usize,
        kind: Kind,
        id: u64,
        index: u64,
        count: u64,
        total: u64,
        msg: Msg,
    ) -> Option<Bytes> {
        let (datagram, pinned) = (msg.datagram(), msg.pinned() as u64);
        let mut body = msg.into_payload();
        let (mem, mem_all) = (self.cfg.mem as u64, self.cfg.mem_all as u64);
        let s = &mut self.senders[rank];
        let k = kind as usize;
        if !s.streams[k].sets.contains_key(&id) {
            let stream = &mut s.streams[k];
            if stream.done.is_some_and(|d| id <= d) {
                self.c.stale += 1;
                return None;
            }
            let charge = total.saturating_add(count.saturating_mul(FRAG_OVERHEAD)).saturating_add(SET_OVERHEAD);
            if charge > mem || self.held - s.held + charge > mem_all {
                self.c.over_budget += 1;
                stream.finish(id);
                return None;
            }
            // Room: this kind's oldest sets first (the set cap is per kind), then the other kind's.
            while s.held + charge > mem || self.held + charge > mem_all || s.streams[k].sets.len() >= MAX_SETS {
                let Some(v) = [k, (k + 1) % 3, (k + 2) % 3].into_iter().find(|&v| !s.streams[v].sets.is_empty()) else {
                    break;
                };
                let victims = &mut s.streams[v];
                let Some((vid, set)) = victims.sets.pop_first() else { break };
                victims.finish(vid);
                s.held -= set.charge;
                self.held -= set.charge;
                self.c.evicted += 1;
            }
            s.held += charge;
            self.held += charge;
            self.c.held_max = self.c.held_max.max(self.held);
            s.streams[k]
                .sets
                .insert(id, Set { count, total, got: 0, charge, frags: BTreeMap::new(), last_datagram: 0 });
        }
        let stream = &mut s.streams[k];
        let set = stream.sets.get_mut(&id)?;
        let held = set.frags.get(&index);
        if set.count == count && set.total == total && held.is_some_and(|b| *b == body) {
            self.c.dup += 1;
            return None;
        }
        let contradicts = set.count != count
            || set.total != total
            || body.is_empty()
            || held.is_some()
            || set.got + body.len() as u64 > total;
        if !contradicts {
            // A fragment is a slice of its datagram and keeps it alive: the set is charged the
            // datagram once for the fragments it gave in a row; with no room for that, the
            // fragment is kept as a copy of its own bytes.
            if datagram != 0 && pinned > body.len() as u64 && datagram != set.last_datagram {
                if s.held + pinned <= mem && self.held + pinned <= mem_all {
                    set.charge += pinned;
                    s.held += pinned;
                    self.held += pinned;
                    self.c.held_max = self.c.held_max.max(self.held);
                    set.last_datagram = datagram;
                } else {
                    body = Bytes::copy_from_slice(&body);
                }
            }
            set.got += body.len() as u64;
            set.frags.insert(index, body);
            let complete = set.frags.len() as u64 == count;
            let planted = self.cfg.test_deliver_on_last && index == count - 1;
            if !complete && !planted {
                return None;
            }
        }
        // Done with this set: it contradicts itself, or it is complete.
        let set = stream.sets.remove(&id)?;
        stream.finish(id);
        s.held -= set.charge;
        self.held -= set.charge;
        if contradicts || (set.got != total && !self.cfg.test_deliver_on_last) {
            self.c.contradictory += 1;
            return None;
        }
        let mut out = BytesMut::with_capacity(set.got as usize);
        for b in set.frags.values() {
            out.extend_from_slice(b);
        }
        Some(out.freeze())
    }

    /// Sets held now, over every sender and kind.
    fn sets(&self) -> usize {
        self.senders.iter().flat_map(|s| &s.streams).map(|st| st.sets.len()).sum()
    }
}

impl Layer for Frag {
    fn name(&self) -> &'static str {
        NAME
    }
    fn provides(&self) -> Props {
        Props::FRAG
    }
    fn init(&mut self, cx: &mut Cx<'_>) {
        self.senders = (0..cx.view.len()).map(|_| Sender::default()).collect();
    }
    fn max_header(&self, _: &thoth_stack::View) -> usize {
        FragHdr::Frag { fifo: true, id: u64::MAX, index: u64::MAX, count: u64::MAX, total: u64::MAX }.encoded_len()
    }
    fn handle_dn(&mut self, ev: Dn, cx: &mut Cx<'_>) {
        match ev {
            Dn::Cast(msg) => {
                let kind = if msg.is_fifo() { Kind::Fifo } else { Kind::Cast };
                self.down(msg, kind, cx, Dn::Cast)
            }
            Dn::Send(to, msg) => self.down(msg, Kind::Send, cx, move |m| Dn::Send(to, m)),
            Dn::CastUnrel(mut msg) => {
                self.c.tx_unrel += 1;
                msg.push(&FragHdr::NoHdr);
                cx.dn(Dn::CastUnrel(msg));
            }
            Dn::SendUnrel(to, mut msg) => {
                self.c.tx_unrel += 1;
                msg.push(&FragHdr::NoHdr);
                cx.dn(Dn::SendUnrel(to, msg));
            }
            other => cx.dn(other),
        }
    }
    fn handle_ups(&mut self, evs: &mut VecDeque<Up>, cx: &mut Cx<'_>) {
        // The data path: whole casts (frag's nothing) pass on as they came, all at once.
        if evs.iter().all(Up::is_bare_cast) {
            self.c.rx_whole += evs.len() as u64;
            return cx.up_all(evs);
        }
        thoth_stack::layer::each_up(self, evs, cx)
    }
    fn handle_up(&mut self, ev: Up, cx: &mut Cx<'_>) {
        match ev {
            Up::Cast { from, msg } => self.up(from, msg, Kind::Cast, cx),
            Up::Send { from, msg } => self.up(from, msg, Kind::Send, cx),
            Up::Exit => {
                // Nothing more is delivered in this stack: let every partial set go.
                self.c.discarded += self.sets() as u64;
                self.senders.clear();
                self.held = 0;
                self.own.clear();
                self.own_held = 0;
                cx.up(Up::Exit);
            }
            other => cx.up(other),
        }
    }
    fn dump(&self, out: &mut Vec<Dump>) {
        let c = &self.c;
        out.push(Dump {
            layer: NAME,
            counters: vec![
                ("tx_whole", c.tx_whole),
                ("tx_unrel", c.tx_unrel),
                ("tx_fragmented", c.tx_fragmented),
                ("tx_fragments", c.tx_fragments),
                ("tx_oversize", c.tx_oversize),
                ("rx_whole", c.rx_whole),
                ("rx_unrel", c.rx_unrel),
                ("rx_fragments", c.rx_fragments),
                ("rx_reassembled", c.rx_reassembled),
                ("bad_hdr", c.bad_hdr),
                ("bad_rank", c.bad_rank),
                ("rx_oversize", c.rx_oversize),
                ("over_budget", c.over_budget),
                ("contradictory", c.contradictory),
                ("dup", c.dup),
                ("stale", c.stale),
                ("evicted", c.evicted),
                ("discarded", c.discarded),
                ("rx_own", c.rx_own),
                ("own_evicted", c.own_evicted),
            ],
            gauges: vec![
                ("held_bytes", self.held),
                ("held_bytes_max", c.held_max),
                ("own_bytes", self.own_held),
                ("sets", self.sets() as u64),
            ],
            state: format!(
                "size={} max={} mem={} mem_all={}",
                if self.cfg.size == usize::MAX { "room".to_string() } else { self.cfg.size.to_string() },
                self.cfg.max,
                self.cfg.mem,
                self.cfg.mem_all
            ),
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
        assert_eq!(to_vec(&FragHdr::NoHdr), [0]);
        assert_eq!(to_vec(&FragHdr::Whole), [1]);
        let h = FragHdr::Frag { fifo: false, id: 300, index: 1, count: 2, total: 2000 };
        assert_eq!(to_vec(&h), [2, 0xac, 0x02, 1, 2, 0xd0, 0x0f]);
        assert_eq!(from_slice::<FragHdr>(&to_vec(&h)), Ok(h));
        assert_eq!(from_slice::<FragHdr>(&[2, 0, 2, 2, 5]), Err(WireError::BadValue), "index >= count");
        assert_eq!(from_slice::<FragHdr>(&[2, 0, 0, 1, 5]), Err(WireError::BadValue), "count < 2");
        assert_eq!(from_slice::<FragHdr>(&[2, 0, 0, 3, 2]), Err(WireError::BadValue), "total < count");
        let f = FragHdr::Frag { fifo: true, id: 1, index: 0, count: 2, total: 2 };
        assert_eq!(to_vec(&f), [3, 1, 0, 2, 2], "a FIFO-only cast's fragment: tag 3");
        assert_eq!(from_slice::<FragHdr>(&to_vec(&f)), Ok(f));
        assert_eq!(from_slice::<FragHdr>(&[4]), Err(WireError::BadTag));
        assert_eq!(from_slice::<FragHdr>(&[2, 0, 0]), Err(WireError::Truncated));
        let worst = FragHdr::Frag { fifo: true, id: u64::MAX, index: u64::MAX - 1, count: u64::MAX, total: u64::MAX };
        assert_eq!(worst.encoded_len(), 41);
    }
}
