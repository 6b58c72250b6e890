//! What `gms` puts on the wire. Every message event gets a one- or two-byte `Hdr`; control
//! traffic travels in the message body (it is rare, so it is encoded into a fresh buffer
//! rather than into the inline header space), except state chunks, whose body is the state
//! itself, sliced from the application's buffer and never copied.

use thoth_stack::{Bytes, EndpointId, Rank, Reader, View, ViewId, Wire, WireError, Writer};

/// The header `gms` pushes on every message event: what the body is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hdr {
    /// Application traffic.
    NoHdr,
    /// In-view control (`Ctl` in the body).
    Ctl,
    /// A piece of the state for a joiner (the body); `last` ends it.
    Chunk {
        /// The final piece: the joiner answers `StateOk` after it.
        last: bool,
    },
    /// Gossip from outside the view (`Gossip` in the body).
    Gossip,
}

impl Wire for Hdr {
    thoth_stack::nothing!(Hdr::NoHdr);
    fn encoded_len(&self) -> usize {
        match self {
            Hdr::Chunk { .. } => 2,
            _ => 1,
        }
    }
    fn encode(&self, w: &mut Writer<'_>) {
        match self {
            Hdr::NoHdr => w.put_u8(0),
            Hdr::Ctl => w.put_u8(1),
            Hdr::Chunk { last } => {
                w.put_u8(2);
                w.put_u8(*last as u8);
            }
            Hdr::Gossip => w.put_u8(3),
        }
    }
    fn decode(r: &mut Reader<'_>) -> Result<Hdr, WireError> {
        Ok(match r.u8()? {
            0 => Hdr::NoHdr,
            1 => Hdr::Ctl,
            2 => Hdr::Chunk {
                last: match r.u8()? {
                    0 => false,
                    1 => true,
                    _ => return Err(WireError::BadValue),
                },
            },
            3 => Hdr::Gossip,
            _ => return Err(WireError::BadTag),
        })
    }
}

/// Control messages between members of one view, by reliable `Send` (`Ping`/`Pong` by
/// `SendUnrel`). `attempt` numbers one coordinator's flush attempts in this view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ctl {
    /// A member verified these members failed (to the coordinator).
    Suspect(Vec<Rank>),
    /// The sender asks to leave (to the coordinator).
    Leave,
    /// The coordinator begins (or restarts) a flush; `failed` will not be in the next view.
    Block {
        /// The coordinator's flush attempt in this view (from 1; a restart counts up).
        attempt: u32,
        /// Ranks excluded from the next view, frozen where they are for this flush.
        failed: Vec<Rank>,
    },
    /// A participant's answer: the casts it delivered from each rank and all it issued of
    /// its own, in the reliable layer's count (`Up::Digest`).
    Report {
        /// The attempt this report answers.
        attempt: u32,
        /// Per rank of the view: casts delivered from it (for the sender's own rank: all it
        /// issued).
        delivered: Vec<u64>,
    },
    /// The coordinator's cut: how many casts of each rank every survivor delivers in this view.
    Cut {
        /// The attempt this cut ends.
        attempt: u32,
        /// Per rank of the view: casts to deliver from it before answering `Flushed`.
        cut: Vec<u64>,
    },
    /// A participant has delivered exactly the cut.
    Flushed {
        /// The attempt whose cut was reached.
        attempt: u32,
    },
    /// Sent once by each member to the coordinator of a new view: it has installed it.
    Ready,
    /// A joiner has loaded the whole state.
    StateOk,
    /// The coordinator releases the casts held while joiners loaded the state.
    Go,
    /// Verification of a suspicion: are you alive? (a nonce, echoed in the `Pong`)
    Ping(u32),
    /// The suspect's answer to a `Ping`, with its nonce.
    Pong(u32),
}

/// One side of a view change: the members that came from `view`, flushed by `coord` in its
/// flush `attempt`. A member installs a view only if it lists the flush it took part in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Side {
    /// The view these members flushed.
    pub view: ViewId,
    /// The coordinator that ran that flush.
    pub coord: EndpointId,
    /// Its flush attempt that committed them.
    pub attempt: u32,
}

/// A primary view (primary-partition mode).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Primary {
    /// Its view id.
    pub id: ViewId,
    /// Its members: a later view is primary only with a majority of them.
    pub members: Vec<EndpointId>,
}

/// The next view and where its members come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Install {
    /// The view to install.
    pub view: View,
    /// The flushes its members come from: one per side (more than one after a merge).
    pub sides: Vec<Side>,
    /// Members that come from no view: they get the state before anything else.
    pub joiners: Vec<EndpointId>,
    /// The last primary view of each history this view descends from (one unless sides of
    /// a merge came from histories that split while not primary; see `gms` on primary
    /// partition). At most `MAX_PRIMARIES`.
    pub last_primary: Vec<Primary>,
    /// What the view's members read it with, opaque (`Cx::key_table`: under member key
    /// pairs, the view's key sealed for each member; empty otherwise).
    pub keys: Bytes,
}

/// Last primary views an `Install` or `MergeReady` carries at most.
pub const MAX_PRIMARIES: usize = 64;

/// Messages outside the view; every one names the sender's view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gossip {
    /// The sender's view (a provisional one, `ltime` 0, for a new endpoint).
    pub view: ViewId,
    /// What it says.
    pub kind: Kind,
}

/// What a `Gossip` says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// An endpoint looking for its group (multicast).
    Hello,
    /// A coordinator announces its view (multicast now and then, and to each Hello).
    Beacon {
        /// The members of the coordinator's view, in rank order.
        members: Vec<EndpointId>,
    },
    /// A new endpoint asks the coordinator to be added.
    Join,
    /// A coordinator has flushed its side and asks the merge leader to merge it.
    MergeReady {
        /// The side's participants, to be members of the merged view.
        members: Vec<EndpointId>,
        /// The side's flush attempt that committed them (named in the `Install`'s sides).
        attempt: u32,
        /// The side's last primary views (see `Install::last_primary`).
        last_primary: Vec<Primary>,
    },
    /// The next view.
    Install(Box<Install>),
}

/// Largest member list a message may carry (ranks are u16).
const MAX_MEMBERS: u64 = u16::MAX as u64;

/// A growable encoder for control messages.
#[derive(Default)]
pub struct Enc(Vec<u8>);

impl Enc {
    fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    fn var(&mut self, mut v: u64) -> &mut Self {
        while v >= 0x80 {
            self.0.push(v as u8 | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
        self
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn vid(&mut self, v: ViewId) -> &mut Self {
        self.var(v.ltime).u64(v.coord.0)
    }
    fn ids(&mut self, ids: &[EndpointId]) -> &mut Self {
        self.var(ids.len() as u64);
        ids.iter().for_each(|i| {
            self.u64(i.0);
        });
        self
    }
    fn vars(&mut self, v: impl ExactSizeIterator<Item = u64>) -> &mut Self {
        self.var(v.len() as u64);
        v.for_each(|x| {
            self.var(x);
        });
        self
    }
    fn primaries(&mut self, ps: &[Primary]) -> &mut Self {
        self.var(ps.len() as u64);
        ps.iter().for_each(|p| {
            self.vid(p.id).ids(&p.members);
        });
        self
    }
    /// The bytes encoded so far, leaving the encoder empty.
    pub fn done(&mut self) -> Bytes {
        Bytes::from(core::mem::take(&mut self.0))
    }
}

fn len(r: &mut Reader<'_>, min_each: usize) -> Result<usize, WireError> {
    let n = r.var()?;
    // Each element takes at least `min_each` bytes: a count beyond what is left is a lie.
    if n > MAX_MEMBERS || n as usize * min_each > r.remaining() {
        return Err(WireError::BadValue);
    }
    Ok(n as usize)
}
fn vid(r: &mut Reader<'_>) -> Result<ViewId, WireError> {
    Ok(ViewId { ltime: r.var()?, coord: EndpointId(r.u64()?) })
}
fn ids(r: &mut Reader<'_>) -> Result<Vec<EndpointId>, WireError> {
    let n = len(r, 8)?;
    (0..n).map(|_| r.u64().map(EndpointId)).collect()
}
fn vars(r: &mut Reader<'_>) -> Result<Vec<u64>, WireError> {
    let n = len(r, 1)?;
    (0..n).map(|_| r.var()).collect()
}
fn ranks(r: &mut Reader<'_>) -> Result<Vec<Rank>, WireError> {
    vars(r)?.into_iter().map(|x| u16::try_from(x).map(Rank).map_err(|_| WireError::BadValue)).collect()
}
fn attempt(r: &mut Reader<'_>) -> Result<u32, WireError> {
    u32::try_from(r.var()?).map_err(|_| WireError::BadValue)
}
fn primaries(r: &mut Reader<'_>) -> Result<Vec<Primary>, WireError> {
    let n = len(r, 10)?;
    if n > MAX_PRIMARIES {
        return Err(WireError::BadValue);
    }
    (0..n).map(|_| Ok(Primary { id: vid(r)?, members: ids(r)? })).collect()
}
fn end<T>(r: &Reader<'_>, v: T) -> Result<T, WireError> {
    if r.remaining() == 0 { Ok(v) } else { Err(WireError::BadValue) }
}

impl Ctl {
    /// Encodes into a fresh buffer (the message body).
    pub fn encode(&self) -> Bytes {
        let mut e = Enc::default();
        match self {
            Ctl::Suspect(rs) => e.u8(1).vars(rs.iter().map(|r| r.0 as u64)),
            Ctl::Leave => e.u8(2),
            Ctl::Block { attempt, failed } => e.u8(3).var(*attempt as u64).vars(failed.iter().map(|r| r.0 as u64)),
            Ctl::Report { attempt, delivered } => e.u8(4).var(*attempt as u64).vars(delivered.iter().copied()),
            Ctl::Cut { attempt, cut } => e.u8(5).var(*attempt as u64).vars(cut.iter().copied()),
            Ctl::Flushed { attempt } => e.u8(6).var(*attempt as u64),
            Ctl::Ready => e.u8(7),
            Ctl::StateOk => e.u8(8),
            Ctl::Go => e.u8(9),
            Ctl::Ping(n) => e.u8(10).var(*n as u64),
            Ctl::Pong(n) => e.u8(11).var(*n as u64),
        };
        e.done()
    }

    /// Decodes a whole body; trailing bytes, an unknown tag or an oversized list are an error.
    pub fn decode(b: &[u8]) -> Result<Ctl, WireError> {
        let r = &mut Reader::new(b);
        let c = match r.u8()? {
            1 => Ctl::Suspect(ranks(r)?),
            2 => Ctl::Leave,
            3 => Ctl::Block { attempt: attempt(r)?, failed: ranks(r)? },
            4 => Ctl::Report { attempt: attempt(r)?, delivered: vars(r)? },
            5 => Ctl::Cut { attempt: attempt(r)?, cut: vars(r)? },
            6 => Ctl::Flushed { attempt: attempt(r)? },
            7 => Ctl::Ready,
            8 => Ctl::StateOk,
            9 => Ctl::Go,
            10 => Ctl::Ping(attempt(r)?),
            11 => Ctl::Pong(attempt(r)?),
            _ => return Err(WireError::BadTag),
        };
        end(r, c)
    }
}

impl Install {
    fn put(&self, e: &mut Enc) {
        let v = &self.view;
        e.vid(v.id).ids(&v.members).u8(v.primary as u8).var(v.subgroups.len() as u64);
        v.subgroups.iter().for_each(|g| {
            e.ids(g);
        });
        e.var(self.sides.len() as u64);
        for s in &self.sides {
            e.vid(s.view).u64(s.coord.0).var(s.attempt as u64);
        }
        e.ids(&self.joiners).primaries(&self.last_primary).var(self.keys.len() as u64);
        e.0.extend_from_slice(&self.keys);
    }

    fn get(r: &mut Reader<'_>) -> Result<Install, WireError> {
        let id = vid(r)?;
        let members = ids(r)?;
        let is_primary = match r.u8()? {
            0 => false,
            1 => true,
            _ => return Err(WireError::BadValue),
        };
        let n = len(r, 1)?;
        let subgroups = (0..n).map(|_| ids(r)).collect::<Result<_, _>>()?;
        let n = len(r, 10)?;
        let sides = (0..n)
            .map(|_| Ok(Side { view: vid(r)?, coord: EndpointId(r.u64()?), attempt: attempt(r)? }))
            .collect::<Result<_, WireError>>()?;
        let joiners = ids(r)?;
        let last_primary = primaries(r)?;
        let n = r.var()?;
        let keys = Bytes::copy_from_slice(r.take(usize::try_from(n).map_err(|_| WireError::BadValue)?)?);
        if members.is_empty() || id.coord != members[0] {
            return Err(WireError::BadValue);
        }
        Ok(Install { view: View { id, members, primary: is_primary, subgroups }, sides, joiners, last_primary, keys })
    }

    /// The form kept in the memo across the view change.
    pub fn to_bytes(&self) -> Bytes {
        let mut e = Enc::default();
        self.put(&mut e);
        e.done()
    }

    /// Reads back the form `to_bytes` wrote; trailing bytes are an error.
    pub fn from_bytes(b: &[u8]) -> Result<Install, WireError> {
        let r = &mut Reader::new(b);
        let i = Install::get(r)?;
        end(r, i)
    }
}

impl Gossip {
    /// Encodes into a fresh buffer (the message body).
    pub fn encode(&self) -> Bytes {
        let mut e = Enc::default();
        e.vid(self.view);
        match &self.kind {
            Kind::Hello => e.u8(1),
            Kind::Beacon { members } => e.u8(2).ids(members),
            Kind::Join => e.u8(3),
            Kind::MergeReady { members, attempt, last_primary } => {
                e.u8(4).ids(members).var(*attempt as u64).primaries(last_primary)
            }
            Kind::Install(i) => {
                e.u8(5);
                i.put(&mut e);
                &mut e
            }
        };
        e.done()
    }

    /// Decodes a whole body; trailing bytes, an unknown tag, an oversized list or an
    /// `Install` whose view id does not name its first member as coordinator are an error.
    pub fn decode(b: &[u8]) -> Result<Gossip, WireError> {
        let r = &mut Reader::new(b);
        let view = vid(r)?;
        let kind = match r.u8()? {
            1 => Kind::Hello,
            2 => Kind::Beacon { members: ids(r)? },
            3 => Kind::Join,
            4 => Kind::MergeReady { members: ids(r)?, attempt: attempt(r)?, last_primary: primaries(r)? },
            5 => Kind::Install(Box::new(Install::get(r)?)),
            _ => return Err(WireError::BadTag),
        };
        end(r, Gossip { view, kind })
    }
}
