//! A hostile peer for the simulator: a host on the group's LAN that knows the group id and
//! the members' ids (as any host there does: they are in every frame it hears), listens to
//! the group's multicast (`Sim::tap`), and sends frames with valid CRCs (`Sim::inject`) made
//! from what it heard — as a forger, a buggy peer, or corruption that slips past a CRC-32
//! would. Seeded: the same seed sends the same frames.
//!
//! Every frame names the group and a member of a view it heard (the source a receiver takes
//! it from), or a stranger. What it carries, drawn each time (see `Attack`):
//! - heard datagrams replayed, to their own or another member, or with bytes flipped past
//!   the frame, or with another member's source, or with a later or earlier view id;
//! - reliable casts "from" a member at its next sequence number (just past the highest the
//!   peer heard), a little or far ahead, stale, or absurd, carrying the headers of every layer
//!   above (plausible) or bytes no layer above can parse, small or large;
//! - every layer's control traffic with plausible and implausible values: nak tails, haves,
//!   NAKs and retransmissions; pt2pt data and acks carrying any `gms` control message
//!   (Block, Report, Cut, Flushed, Leave, Suspect, Go, ...); stability gossip; flow grants
//!   and credit requests; fragments of huge messages; heartbeats;
//! - `gms` gossip: hellos and joins from strangers (phantom joiners), beacons, merge
//!   requests and `Install`s of made-up views that name the real view and coordinator.
//!
//! It knows the stack (`chk_vsync:gms:heartbeat:frag:flow:stable:nak:pt2pt:pack`, see
//! `common::stack`) only to forge headers the layers will parse.

use super::GROUP;
use std::collections::BTreeMap;
use thoth_failure_detector::heartbeat::Hdr as HbHdr;
use thoth_layers::debug::chk_vsync::Hdr as ChkHdr;
use thoth_layers::flow::FlowHdr;
use thoth_layers::frag::FragHdr;
use thoth_layers::nak::NakHdr;
use thoth_layers::pack::Hdr as PackHdr;
use thoth_layers::pt2pt::Hdr as P2Hdr;
use thoth_layers::stable::StableHdr;
use thoth_membership::gms::wire::{Ctl, Gossip, Hdr as GmsHdr, Install, Kind, Primary, Side};
use thoth_stack::frame::{FLAG_GOSSIP, FLAG_SEND, FRAME_LEN, Frame, FrameView};
use thoth_stack::sim::{NodeId, Sim};
use thoth_stack::{Bytes, EndpointId, Msg, Rank, Reader, Rng, View, ViewId};

/// Datagrams kept to replay, views and members remembered.
const KEEP: usize = 64;
const VIEWS: usize = 8;

/// What the peer heard of one view.
#[derive(Clone, Debug, Default)]
struct Heard {
    /// Members, from beacons (in rank order) or, failing that, the sources heard.
    members: Vec<EndpointId>,
    from_beacon: bool,
    /// One past the highest reliable-cast sequence number heard per source.
    next: BTreeMap<EndpointId, u64>,
}

/// The kinds of frame the peer sends, counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Attack {
    Replay,
    Flip,
    Resource,
    OtherView,
    Cast,
    NakCtl,
    Ctl,
    StableGossip,
    FlowCtl,
    Fragment,
    Beat,
    GmsGossip,
}

/// How a peer attacks.
#[derive(Clone, Copy, Debug)]
pub struct Style {
    /// Largest forged payload, and how often a payload is that large (else at most 64 bytes).
    pub max_payload: usize,
    pub large: f64,
    /// Only this kind of frame (else any, drawn each time).
    pub focus: Option<Attack>,
    /// How often a frame goes to every member (as a multicast would) rather than to one.
    pub to_all: f64,
}

pub struct Hostile {
    rng: Rng,
    style: Style,
    heard: Vec<Bytes>,
    views: BTreeMap<ViewId, Heard>,
    /// Frames sent, per kind.
    pub sent: BTreeMap<Attack, u64>,
}

impl Hostile {
    pub fn new(seed: u64, style: Style) -> Hostile {
        Hostile {
            rng: Rng::new(seed ^ 0x4057_11e0),
            style,
            heard: Vec::new(),
            views: BTreeMap::new(),
            sent: BTreeMap::new(),
        }
    }

    pub fn total(&self) -> u64 {
        self.sent.values().sum()
    }

    /// Takes in what the tap heard since last time.
    pub fn listen(&mut self, sim: &mut Sim) {
        for d in sim.overheard() {
            self.learn(&d);
            if self.heard.len() == KEEP {
                let i = self.rng.below(KEEP as u64) as usize;
                self.heard[i] = d;
            } else {
                self.heard.push(d);
            }
        }
    }

    fn learn(&mut self, d: &Bytes) {
        let Ok(v) = FrameView::parse(d) else { return };
        let f = *v.frame();
        if f.group != GROUP {
            return;
        }
        let Ok(mut msg) = Msg::from_frame(d.slice(FRAME_LEN..)) else { return };
        msg.unseal();
        if f.is_gossip() {
            for _ in 0..7 {
                msg.unseal(); // up to gms past the layers below it
            }
            if msg.pop::<GmsHdr>() == Ok(GmsHdr::Gossip)
                && let Ok(Gossip { view, kind: Kind::Beacon { members } }) = Gossip::decode(msg.body())
            {
                let h = self.view_mut(view);
                h.members = members;
                h.from_beacon = true;
            }
            return;
        }
        let h = self.view_mut(f.view);
        if !h.from_beacon && !h.members.contains(&f.src) && h.members.len() < 64 {
            h.members.push(f.src);
        }
        // The first message of the datagram: pack, pt2pt, nak.
        let first = match msg.pop::<PackHdr>() {
            Ok(PackHdr::One) => Some(msg),
            Ok(PackHdr::Many { .. }) => {
                let body = msg.into_payload();
                let mut r = Reader::new(&body);
                r.var().ok().and_then(|len| {
                    let start = body.len() - r.remaining();
                    let end = start.checked_add(usize::try_from(len).ok()?)?;
                    (end <= body.len()).then(|| Msg::from_frame(body.slice(start..end)).ok()).flatten()
                })
            }
            Err(_) => None,
        };
        if let Some(mut m) = first
            && {
                m.unseal();
                m.pop::<P2Hdr>() == Ok(P2Hdr::NoHdr)
            }
            && {
                m.unseal();
                true
            }
            && let Ok(NakHdr::Data { seq }) = m.pop::<NakHdr>()
        {
            let n = h.next.entry(f.src).or_default();
            *n = (*n).max(seq.saturating_add(1));
        }
    }

    fn view_mut(&mut self, id: ViewId) -> &mut Heard {
        if !self.views.contains_key(&id) && self.views.len() == VIEWS {
            let oldest = *self.views.keys().next().expect("full");
            self.views.remove(&oldest);
        }
        self.views.entry(id).or_default()
    }

    /// Sends `count` frames, each to one member or to all of `targets`.
    pub fn strike(&mut self, sim: &mut Sim, targets: &[NodeId], count: usize) {
        if targets.is_empty() {
            return;
        }
        for _ in 0..count {
            let Some((kind, d)) = self.forge() else { continue };
            *self.sent.entry(kind).or_default() += 1;
            if self.rng.chance(self.style.to_all) {
                for &t in targets {
                    sim.inject(t, d.clone());
                }
            } else {
                let t = targets[self.rng.below(targets.len() as u64) as usize];
                sim.inject(t, d);
            }
        }
    }

    fn pick<T: Clone>(&mut self, v: &[T]) -> Option<T> {
        (!v.is_empty()).then(|| v[self.rng.below(v.len() as u64) as usize].clone())
    }

    /// A view heard, and a member of it.
    fn target(&mut self) -> Option<(ViewId, Heard, EndpointId)> {
        let views: Vec<ViewId> = self.views.keys().copied().collect();
        // Mostly the newest view: that is where the traffic is.
        let id = if self.rng.chance(0.7) { *views.last()? } else { self.pick(&views)? };
        let h = self.views[&id].clone();
        let src = self.pick(&h.members)?;
        Some((id, h, src))
    }

    /// A number that is plausible now and then and absurd now and then.
    fn number(&mut self, near: u64) -> u64 {
        match self.rng.below(6) {
            0 => 0,
            1 => near,
            2 => near.saturating_add(1 + self.rng.below(4)),
            3 => near.saturating_add(1000 + self.rng.below(8000)),
            4 => u64::MAX - self.rng.below(3),
            _ => self.rng.below(1 << 20),
        }
    }

    fn bytes(&mut self, max: usize) -> Bytes {
        let n = self.rng.below(max as u64 + 1) as usize;
        Bytes::from((0..n).map(|_| self.rng.below(256) as u8).collect::<Vec<u8>>())
    }

    fn payload(&mut self) -> Bytes {
        if self.rng.chance(self.style.large) {
            let max = self.style.max_payload;
            let n = max / 2 + self.rng.below(max as u64 / 2 + 1) as usize;
            Bytes::from(vec![self.rng.below(256) as u8; n])
        } else {
            self.bytes(64)
        }
    }

    fn seal(flags: u8, view: ViewId, src: EndpointId, msg: Msg) -> Bytes {
        let (head, body) = msg.into_parts();
        Self::framed(Frame { flags, group: GROUP, view, src }, &[&head[..], &body[..]].concat())
    }

    /// `rest` (the message's wire form, or anything) behind frame `f`, with a sound CRC.
    fn framed(f: Frame, rest: &[u8]) -> Bytes {
        Bytes::from(f.datagram(rest))
    }

    /// A reliable cast "from" `src` in `view` with sequence number `seq`, and a body that no
    /// layer above the reliable one can parse.
    pub fn unparseable_cast(view: ViewId, src: EndpointId, seq: u64) -> Bytes {
        let mut m = Msg::new(Bytes::from_static(&[0xee, 0xdd]));
        put(&mut m, &0xffu8); // "stable's header": a tag no stable knows
        put(&mut m, &NakHdr::Data { seq });
        Self::seal(0, view, src, Self::lower(m))
    }

    fn reseal(d: &[u8], f: Frame) -> Bytes {
        Self::framed(f, &d[FRAME_LEN..])
    }

    /// The headers of the layers below `nak` (pt2pt's `NoHdr`, pack's `One`: nothing to say).
    fn lower(mut m: Msg) -> Msg {
        put(&mut m, &P2Hdr::NoHdr);
        put(&mut m, &PackHdr::One);
        m
    }

    fn rank(&mut self, n: usize) -> Rank {
        Rank(if self.rng.chance(0.9) { self.rng.below(n.max(1) as u64) } else { self.rng.below(1 << 16) } as u16)
    }

    /// The length of a per-rank vector: the view's mostly.
    fn len(&mut self, n: usize) -> usize {
        if self.rng.chance(0.9) { n } else { self.rng.below(8) as usize }
    }

    fn vector(&mut self, len: usize, near: u64) -> Vec<u64> {
        (0..len).map(|_| self.number(near)).collect()
    }

    fn forge(&mut self) -> Option<(Attack, Bytes)> {
        let kind = match self.style.focus {
            Some(k) => k,
            None => self.any(),
        };
        self.frame(kind)
    }

    fn any(&mut self) -> Attack {
        match self.rng.below(24) {
            0..=2 => Attack::Replay,
            3 | 4 => Attack::Flip,
            5 => Attack::Resource,
            6 => Attack::OtherView,
            7..=11 => Attack::Cast,
            12 | 13 => Attack::NakCtl,
            14..=16 => Attack::Ctl,
            17 => Attack::StableGossip,
            18 => Attack::FlowCtl,
            19 => Attack::Fragment,
            20 => Attack::Beat,
            _ => Attack::GmsGossip,
        }
    }

    fn frame(&mut self, kind: Attack) -> Option<(Attack, Bytes)> {
        let d = match kind {
            Attack::Replay | Attack::Flip | Attack::Resource | Attack::OtherView => {
                let d = self.pick(&self.heard.clone())?;
                let mut f = *FrameView::parse(&d).ok()?.frame();
                let mut body = d[FRAME_LEN..].to_vec();
                match kind {
                    Attack::Flip if !body.is_empty() => {
                        for _ in 0..1 + self.rng.below(4) {
                            let i = self.rng.below(body.len().min(48) as u64) as usize;
                            body[i] ^= 1 << self.rng.below(8);
                        }
                    }
                    Attack::Resource => f.src = self.target()?.2,
                    Attack::OtherView => {
                        let ltime = f.view.ltime;
                        f.view.ltime = if self.rng.chance(0.5) { ltime + 1 + self.rng.below(3) } else { ltime / 2 };
                    }
                    _ => {}
                }
                let mut v = vec![0u8; FRAME_LEN];
                v.extend_from_slice(&body);
                Self::reseal(&v, f)
            }
            Attack::Cast => {
                let (view, h, src) = self.target()?;
                let next = h.next.get(&src).copied().unwrap_or(0);
                let seq = self.number(next);
                let mut m = Msg::new(self.payload());
                if self.rng.chance(0.5) {
                    // Plausible all the way up: a cast the application receives.
                    put(&mut m, &ChkHdr::Chk { view });
                    put(&mut m, &GmsHdr::NoHdr);
                    put(&mut m, &HbHdr::NoHdr);
                    put(&mut m, &FragHdr::Whole);
                    put(&mut m, &FlowHdr::Data);
                    put(&mut m, &StableHdr::Cast);
                } else {
                    // Plausible up to some layer, garbage above it: that layer finds a tag it
                    // does not know (the layers between it and nak have nothing to say).
                    put(&mut m, &0xffu8);
                    for _ in 0..self.rng.below(4) {
                        m.seal(); // stable, flow, frag in turn: nothing
                    }
                }
                put(&mut m, &NakHdr::Data { seq });
                Self::seal(0, view, src, Self::lower(m))
            }
            Attack::NakCtl => {
                let (view, h, src) = self.target()?;
                let n = h.members.len();
                let next = h.next.get(&src).copied().unwrap_or(0);
                let (hdr, flags) = match self.rng.below(4) {
                    0 => (NakHdr::Tail { sent: self.number(next) }, 0),
                    1 => (NakHdr::Have { origin: self.rank(n), count: self.number(next) }, 0),
                    2 => {
                        let lo = self.number(0).min(u64::MAX - (1 << 20));
                        let hi = lo + 1 + self.number(16).min(1 << 19);
                        (NakHdr::Nak { origin: self.rank(n), ranges: vec![(lo, hi)] }, FLAG_SEND)
                    }
                    _ => (NakHdr::Retrans { origin: self.rank(n), seq: self.number(next) }, FLAG_SEND),
                };
                let mut m = Msg::new(self.payload());
                put(&mut m, &hdr);
                Self::seal(flags, view, src, Self::lower(m))
            }
            Attack::Ctl => {
                let (view, h, src) = self.target()?;
                let n = h.members.len();
                let attempt = self.rng.below(4) as u32;
                let ctl = match self.rng.below(10) {
                    0 => Ctl::Suspect(vec![self.rank(n)]),
                    1 => Ctl::Leave,
                    2 => Ctl::Block { attempt, failed: vec![self.rank(n)] },
                    3 => {
                        let len = self.len(n);
                        Ctl::Report { attempt, delivered: self.vector(len, 10) }
                    }
                    4 => {
                        let len = self.len(n);
                        Ctl::Cut { attempt, cut: self.vector(len, 10) }
                    }
                    5 => Ctl::Flushed { attempt },
                    6 => Ctl::Go,
                    7 => Ctl::StateOk,
                    8 => Ctl::Ready,
                    _ => Ctl::Ping(attempt),
                };
                let mut m = Msg::new(ctl.encode());
                put(&mut m, &GmsHdr::Ctl);
                put(&mut m, &HbHdr::NoHdr);
                put(&mut m, &FragHdr::Whole);
                put(&mut m, &FlowHdr::NoHdr);
                put(&mut m, &StableHdr::NoHdr);
                put(&mut m, &NakHdr::NoHdr);
                let seq = self.rng.below(24);
                put(&mut m, &P2Hdr::Data { seq, ack: self.number(seq) });
                put(&mut m, &PackHdr::One);
                Self::seal(FLAG_SEND, view, src, m)
            }
            Attack::StableGossip => {
                let (view, h, src) = self.target()?;
                let n = h.members.len();
                let next = h.next.values().copied().max().unwrap_or(0);
                let mut m = Msg::new(Bytes::new());
                let len = self.len(n);
                put(&mut m, &StableHdr::Gossip { recv: self.vector(len, next), stable: self.vector(len, next) });
                put(&mut m, &NakHdr::NoHdr);
                Self::seal(0, view, src, Self::lower(m))
            }
            Attack::FlowCtl => {
                let (view, _, src) = self.target()?;
                let hdr = if self.rng.chance(0.5) {
                    FlowHdr::Grant { consumed: self.number(1 << 16) }
                } else {
                    FlowHdr::CreditReq
                };
                let mut m = Msg::new(Bytes::new());
                put(&mut m, &hdr);
                put(&mut m, &StableHdr::NoHdr);
                put(&mut m, &NakHdr::NoHdr);
                Self::seal(FLAG_SEND, view, src, Self::lower(m))
            }
            Attack::Fragment => {
                let (view, h, src) = self.target()?;
                let next = h.next.get(&src).copied().unwrap_or(0);
                let count = 2 + self.rng.below(1 << 12);
                let total = count.max(self.number(1 << 24));
                let hdr = FragHdr::Frag {
                    fifo: self.rng.below(4) == 0,
                    id: self.number(4),
                    index: self.rng.below(count),
                    count,
                    total,
                };
                let mut m = Msg::new(self.payload());
                put(&mut m, &hdr);
                put(&mut m, &FlowHdr::Data);
                put(&mut m, &StableHdr::Cast);
                put(&mut m, &NakHdr::Data { seq: self.number(next) });
                Self::seal(0, view, src, Self::lower(m))
            }
            Attack::Beat => {
                let (view, _, src) = self.target()?;
                let mut m = Msg::new(self.bytes(4));
                put(&mut m, &HbHdr::Beat);
                put(&mut m, &FragHdr::NoHdr);
                put(&mut m, &FlowHdr::NoHdr);
                put(&mut m, &StableHdr::NoHdr);
                put(&mut m, &NakHdr::NoHdr);
                Self::seal(0, view, src, Self::lower(m))
            }
            Attack::GmsGossip => {
                let (view, h, src) = self.target()?;
                let stranger = EndpointId(9_000_000 + self.rng.below(16));
                let from = if self.rng.chance(0.5) { stranger } else { src };
                let members: Vec<EndpointId> =
                    h.members.iter().copied().filter(|_| self.rng.chance(0.8)).chain([stranger]).collect();
                let attempt = 1 + self.rng.below(4) as u32;
                let gossip_kind = match self.rng.below(5) {
                    0 => Kind::Hello,
                    1 => Kind::Join,
                    2 => Kind::Beacon { members: members.clone() },
                    3 => Kind::MergeReady { members: members.clone(), attempt, last_primary: vec![] },
                    _ => {
                        let next = ViewId { ltime: view.ltime + 1 + self.rng.below(3), coord: members[0] };
                        let coord = h.members.first().copied().unwrap_or(src);
                        Kind::Install(Box::new(Install {
                            view: View { id: next, members: members.clone(), primary: true, subgroups: vec![] },
                            sides: vec![Side { view, coord, attempt }],
                            joiners: vec![stranger],
                            last_primary: vec![Primary { id: next, members }],
                            keys: Bytes::from(vec![0xa5; self.rng.below(200) as usize]),
                        }))
                    }
                };
                let mut m = Msg::new(Gossip { view, kind: gossip_kind }.encode());
                put(&mut m, &GmsHdr::Gossip);
                for _ in 0..7 {
                    m.seal(); // heartbeat, frag, flow, stable, nak, pt2pt, pack: nothing to say
                }
                let dm = if self.rng.chance(0.5) { FLAG_GOSSIP | FLAG_SEND } else { FLAG_GOSSIP };
                return Some((kind, Self::seal(dm, view, from, m)));
            }
        };
        Some((kind, d))
    }
}

/// One layer's header, as that layer emits it: pushed (nothing for a nothing), then its
/// presence bit.
fn put<H: thoth_stack::Wire>(m: &mut Msg, h: &H) {
    m.push(h);
    m.seal();
}
