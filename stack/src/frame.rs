//! The outer frame on every datagram.
//!
//! ```text
//!  0      2     3     4        8        16         24         32       40
//!  | "TH" | ver | flg | crc32  | group  | view.lt  | view.co  | source | layer headers, payload
//! ```
//! All integers little-endian. The CRC-32 (IEEE) covers bytes 0..4 and everything from byte
//! 8 to the end of the datagram. `FrameView::parse` checks length, magic, version, flags and
//! CRC once; after that every accessor returns a decoded field and cannot fail.
//!
//! A **sealed** frame (`FLAG_SEALED`, frame protection: `secure`, `keyring`) has no CRC (the
//! field is zero) and carries the sender's incarnation and packet number after the source;
//! the 56 bytes up to there are the AEAD's associated data, what follows is encrypted, and
//! the tag ends the datagram:
//! ```text
//!  0 .. 40                      40            48   56                           len-16  len
//!  | frame as above, crc = 0   | incarnation | pn | sealed layer headers, payload | tag |
//! ```
//! `parse` checks the length of a sealed frame, never its contents: the endpoint opens it
//! before anything looks past the header.

use crate::ids::{EndpointId, GroupId, ViewId};
use crate::wire::Reader;
use core::fmt;

/// The first two bytes of every datagram.
pub const MAGIC: [u8; 2] = *b"TH";
/// The wire version this code speaks; `parse` rejects any other (`FrameError::BadVersion`).
pub const VERSION: u8 = 1;
/// Bytes of the frame, before the layer headers (an unsealed frame's whole header).
pub const FRAME_LEN: usize = 40;

/// The datagram is point-to-point (`Send`); without it, a multicast (`Cast`).
pub const FLAG_SEND: u8 = 0x01;
/// The datagram is gossip from outside the view (`Dn::Gossip`): not checked against the view.
pub const FLAG_GOSSIP: u8 = 0x02;
/// The datagram is sealed (see the module doc).
pub const FLAG_SEALED: u8 = 0x04;
/// The datagram is a probe or an answer to one (`probe`); always with `FLAG_GOSSIP`.
pub const FLAG_PROBE: u8 = 0x08;
const KNOWN_FLAGS: u8 = FLAG_SEND | FLAG_GOSSIP | FLAG_SEALED | FLAG_PROBE;

/// Bytes of a sealed frame's header: the frame, the incarnation and the packet number.
pub const SEALED_LEN: usize = FRAME_LEN + 16;
/// Bytes a sealed datagram has beyond an unsealed one: incarnation, packet number, tag.
pub const SEAL_OVERHEAD: usize = SEALED_LEN - FRAME_LEN + crate::secure::TAG_LEN;

/// What a sealed frame says about its sealing: the sender's incarnation (which, with the
/// sender, picks its key) and packet number (the nonce, and the replay window's number).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub struct Seal {
    /// The sender's incarnation: with the sender's id, which of its keys sealed it.
    pub incarnation: u64,
    /// The packet number: the AEAD nonce, and the replay window's sequence number.
    pub pn: u64,
}

/// Why a datagram was rejected before any layer saw it.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum FrameError {
    /// Shorter than a frame (or a sealed frame without room for its seal and tag).
    Truncated,
    /// The first two bytes are not `MAGIC`: not a Thoth datagram.
    BadMagic,
    /// A wire version other than `VERSION`.
    BadVersion,
    /// Unknown flag bits set, or `FLAG_PROBE` without `FLAG_GOSSIP`.
    BadFlags,
    /// The CRC does not match (an unsealed frame): corrupted in transit, or forged.
    BadCrc,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FrameError::Truncated => "shorter than a frame",
            FrameError::BadMagic => "bad magic",
            FrameError::BadVersion => "unknown wire version",
            FrameError::BadFlags => "unknown flags",
            FrameError::BadCrc => "CRC mismatch",
        })
    }
}

impl std::error::Error for FrameError {}

/// The decoded frame fields.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub struct Frame {
    /// The `FLAG_*` bits.
    pub flags: u8,
    /// The group the datagram belongs to.
    pub group: GroupId,
    /// The view it was sent in (for gossip, the sender's current view).
    pub view: ViewId,
    /// The sending endpoint.
    pub src: EndpointId,
}

impl Frame {
    /// Point-to-point (`FLAG_SEND`), not a multicast.
    pub fn is_send(&self) -> bool {
        self.flags & FLAG_SEND != 0
    }
    /// Gossip from outside the view (`FLAG_GOSSIP`).
    pub fn is_gossip(&self) -> bool {
        self.flags & FLAG_GOSSIP != 0
    }
    /// Sealed by frame protection (`FLAG_SEALED`).
    pub fn is_sealed(&self) -> bool {
        self.flags & FLAG_SEALED != 0
    }
    /// A probe or a probe's answer (`FLAG_PROBE`).
    pub fn is_probe(&self) -> bool {
        self.flags & FLAG_PROBE != 0
    }

    /// Writes the frame into `out[..FRAME_LEN]` with a zero CRC; `seal` fills it in.
    pub fn write(&self, out: &mut [u8; FRAME_LEN]) {
        out[0..2].copy_from_slice(&MAGIC);
        out[2] = VERSION;
        out[3] = self.flags;
        out[4..8].fill(0);
        out[8..16].copy_from_slice(&self.group.0.to_le_bytes());
        out[16..24].copy_from_slice(&self.view.ltime.to_le_bytes());
        out[24..32].copy_from_slice(&self.view.coord.0.to_le_bytes());
        out[32..40].copy_from_slice(&self.src.0.to_le_bytes());
    }
}

impl Frame {
    /// A whole unprotected datagram: this frame with its CRC, then `body` (the layers'
    /// headers and payload, or anything) — as tests, tools and forgers build one.
    pub fn datagram(&self, body: &[u8]) -> Vec<u8> {
        let mut d = vec![0u8; FRAME_LEN];
        self.write((&mut d[..]).try_into().expect("a frame's length"));
        seal(&mut d, body);
        d.extend_from_slice(body);
        d
    }
}

/// Writes a sealed frame's header (`SEALED_LEN` bytes): the frame with `FLAG_SEALED` and a
/// zero CRC, then the seal.
pub fn write_sealed(frame: &Frame, seal: Seal, out: &mut [u8; SEALED_LEN]) {
    let f = Frame { flags: frame.flags | FLAG_SEALED, ..*frame };
    f.write((&mut out[..FRAME_LEN]).try_into().expect("a frame's length"));
    out[40..48].copy_from_slice(&seal.incarnation.to_le_bytes());
    out[48..56].copy_from_slice(&seal.pn.to_le_bytes());
}

/// Computes the CRC of a datagram made of `frame` (the first FRAME_LEN bytes of `first`)
/// followed by the rest of `first` and then `rest`, and stores it in the frame.
pub fn seal(first: &mut [u8], rest: &[u8]) {
    debug_assert!(first.len() >= FRAME_LEN);
    let crc = checksum(first, rest);
    first[4..8].copy_from_slice(&crc.to_le_bytes());
}

fn checksum(first: &[u8], rest: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&first[0..4]);
    h.update(&first[8..]);
    h.update(rest);
    h.finalize()
}

/// The group a datagram's frame names, read without checking anything else (the magic
/// aside): for routing it to its group's endpoint, which checks the whole frame.
pub fn peek_group(buf: &[u8]) -> Option<GroupId> {
    if buf.get(..2)? != MAGIC {
        return None;
    }
    Some(GroupId(u64::from_le_bytes(buf.get(8..16)?.try_into().ok()?)))
}

/// A datagram whose frame has been checked.
#[derive(Clone, Copy, Debug)]
pub struct FrameView<'a> {
    frame: Frame,
    seal: Option<Seal>,
    payload: &'a [u8],
}

impl<'a> FrameView<'a> {
    /// Checks a datagram's frame: length, magic, version, flags, and the CRC of an unsealed
    /// one (a sealed one only for room for its seal and tag; the endpoint checks the tag).
    pub fn parse(buf: &'a [u8]) -> Result<FrameView<'a>, FrameError> {
        let mut r = Reader::new(buf);
        let fixed = r.take(FRAME_LEN).map_err(|_| FrameError::Truncated)?;
        let mut f = Reader::new(fixed);
        let field = |e: crate::wire::WireError| -> FrameError {
            debug_assert!(false, "frame field read failed after length check: {e}");
            FrameError::Truncated
        };
        let magic = f.take(2).map_err(field)?;
        if magic != MAGIC {
            return Err(FrameError::BadMagic);
        }
        if f.u8().map_err(field)? != VERSION {
            return Err(FrameError::BadVersion);
        }
        let flags = f.u8().map_err(field)?;
        if flags & !KNOWN_FLAGS != 0 || (flags & FLAG_PROBE != 0 && flags & FLAG_GOSSIP == 0) {
            return Err(FrameError::BadFlags);
        }
        let crc = f.u32().map_err(field)?;
        let group = GroupId(f.u64().map_err(field)?);
        let ltime = f.u64().map_err(field)?;
        let coord = EndpointId(f.u64().map_err(field)?);
        let src = EndpointId(f.u64().map_err(field)?);
        let frame = Frame { flags, group, view: ViewId { ltime, coord }, src };
        if frame.is_sealed() {
            // Authenticated by the tag, which the endpoint checks: nothing to check here but
            // that the seal and a tag are there.
            if r.remaining() < SEALED_LEN - FRAME_LEN + crate::secure::TAG_LEN {
                return Err(FrameError::Truncated);
            }
            let seal = Seal { incarnation: r.u64().map_err(field)?, pn: r.u64().map_err(field)? };
            return Ok(FrameView { frame, seal: Some(seal), payload: r.rest() });
        }
        if checksum(fixed, r.rest()) != crc {
            return Err(FrameError::BadCrc);
        }
        Ok(FrameView { frame, seal: None, payload: r.rest() })
    }

    /// The decoded frame fields.
    pub fn frame(&self) -> &Frame {
        &self.frame
    }
    /// A sealed frame's seal.
    pub fn seal(&self) -> Option<Seal> {
        self.seal
    }
    /// Layer headers and application payload (sealed: encrypted, and the tag).
    pub fn payload(&self) -> &'a [u8] {
        self.payload
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Frame {
        Frame {
            flags: FLAG_SEND,
            group: GroupId(0x1122),
            view: ViewId { ltime: 3, coord: EndpointId(4) },
            src: EndpointId(5),
        }
    }

    fn datagram(f: &Frame, body: &[u8]) -> Vec<u8> {
        f.datagram(body)
    }

    #[test]
    fn round_trip() {
        let d = datagram(&sample(), b"xyz");
        let v = FrameView::parse(&d).unwrap();
        assert_eq!(*v.frame(), sample());
        assert!(v.frame().is_send());
        assert_eq!(v.payload(), b"xyz");
    }

    #[test]
    fn the_group_is_read_where_the_frame_keeps_it() {
        let d = datagram(&sample(), b"xyz");
        assert_eq!(peek_group(&d), Some(GroupId(0x1122)));
        assert_eq!(peek_group(&d[..15]), None);
        let mut c = d.clone();
        c[0] = b'X';
        assert_eq!(peek_group(&c), None);
    }

    #[test]
    fn every_single_bit_flip_is_rejected() {
        let d = datagram(&sample(), b"payload bytes");
        for bit in 0..d.len() * 8 {
            let mut c = d.clone();
            c[bit / 8] ^= 1 << (bit % 8);
            assert!(FrameView::parse(&c).is_err(), "flip of bit {bit} accepted");
        }
    }

    #[test]
    fn specific_rejections() {
        let d = datagram(&sample(), b"");
        assert_eq!(FrameView::parse(&d[..FRAME_LEN - 1]).unwrap_err(), FrameError::Truncated);
        let mut c = d.clone();
        c[0] = b'X';
        assert_eq!(FrameView::parse(&c).unwrap_err(), FrameError::BadMagic);
        let mut c = d.clone();
        c[2] = VERSION + 1;
        assert_eq!(FrameView::parse(&c).unwrap_err(), FrameError::BadVersion);
        let mut c = d.clone();
        c[3] = 0x80;
        assert_eq!(FrameView::parse(&c).unwrap_err(), FrameError::BadFlags);
        let mut c = d.clone();
        c[12] ^= 1;
        assert_eq!(FrameView::parse(&c).unwrap_err(), FrameError::BadCrc);
        let mut longer = d.clone();
        longer.push(0);
        assert_eq!(FrameView::parse(&longer).unwrap_err(), FrameError::BadCrc);
    }
}
