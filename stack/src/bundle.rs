//! Bundles: several framed datagrams in one UDP datagram, so that a process holding many
//! groups sends one datagram where its groups' small ones (the heartbeats of idle groups,
//! above all) would each have cost one. Each part is a whole datagram with its own frame and
//! CRC, checked by its own group's endpoint as if it had come alone; the bundle adds only
//! where each part ends.
//!
//! ```text
//!  0      2     3     4        6            6+len0   8+len0
//!  | "TB" | ver | 0   | len0   | datagram 0 | len1   | datagram 1 | ...
//! ```
//! Lengths are u16 little-endian, every part is at least a frame long, and the parts fill
//! the bundle exactly: anything else is a malformed bundle, dropped whole.
//!
//! Tested by the unit tests below (round trip, every malformation refused, the size limit
//! kept) and through `Groups` (`stack/tests/groups.rs`).

use crate::frame::FRAME_LEN;
use bytes::{BufMut, Bytes, BytesMut};

/// The first two bytes of a bundle (a datagram starts with `frame::MAGIC`, `"TH"`).
pub const MAGIC: [u8; 2] = *b"TB";
/// The bundle format this code speaks; `split` refuses any other.
pub const VERSION: u8 = 1;
/// Bytes before the first part.
pub const HEAD: usize = 4;
/// Bytes before each part (its length).
pub const PART_HEAD: usize = 2;

/// Whether `data` claims to be a bundle (its magic; `split` checks the rest).
pub fn is_bundle(data: &[u8]) -> bool {
    data.get(..2) == Some(&MAGIC[..])
}

/// The parts of a bundle, as slices of it (no copy); `None` if it is malformed.
pub fn split(data: &Bytes) -> Option<Vec<Bytes>> {
    if data.len() < HEAD || !is_bundle(data) || data[2] != VERSION || data[3] != 0 {
        return None;
    }
    let mut parts = Vec::new();
    let mut at = HEAD;
    while at < data.len() {
        let len = usize::from(u16::from_le_bytes([*data.get(at)?, *data.get(at + 1)?]));
        let start = at + PART_HEAD;
        if len < FRAME_LEN || start + len > data.len() {
            return None;
        }
        parts.push(data.slice(start..start + len));
        at = start + len;
    }
    (!parts.is_empty()).then_some(parts)
}

/// A bundle being filled, up to `limit` bytes in all.
pub struct Builder {
    buf: BytesMut,
    limit: usize,
    parts: usize,
}

impl Builder {
    /// An empty bundle (its head only) that will hold at most `limit` bytes in all.
    pub fn new(limit: usize) -> Builder {
        let mut buf = BytesMut::with_capacity(limit.min(16 << 10));
        buf.extend_from_slice(&MAGIC);
        buf.put_u8(VERSION);
        buf.put_u8(0);
        Builder { buf, limit, parts: 0 }
    }

    /// Whether a part of `len` bytes still fits.
    pub fn fits(&self, len: usize) -> bool {
        len <= usize::from(u16::MAX) && self.buf.len() + PART_HEAD + len <= self.limit
    }

    /// Appends a datagram given as its head and body; the caller checked `fits`.
    pub fn push(&mut self, head: &[u8], body: &[u8]) {
        let len = head.len() + body.len();
        debug_assert!(self.fits(len));
        self.buf.put_u16_le(len as u16);
        self.buf.extend_from_slice(head);
        self.buf.extend_from_slice(body);
        self.parts += 1;
    }

    /// Datagrams pushed so far.
    pub fn parts(&self) -> usize {
        self.parts
    }

    /// The bundle, ready to send (with no part it is only a head, which `split` refuses).
    pub fn finish(self) -> Bytes {
        self.buf.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(n: u8, len: usize) -> Vec<u8> {
        vec![n; len]
    }

    #[test]
    fn round_trip() {
        let mut b = Builder::new(1000);
        let (p, q) = (part(1, FRAME_LEN), part(2, FRAME_LEN + 9));
        b.push(&p[..10], &p[10..]);
        b.push(&q, &[]);
        assert_eq!(b.parts(), 2);
        let data = b.finish();
        assert!(is_bundle(&data));
        assert_eq!(split(&data), Some(vec![Bytes::from(p), Bytes::from(q)]));
    }

    #[test]
    fn the_limit_is_kept() {
        let mut b = Builder::new(HEAD + 2 * (PART_HEAD + FRAME_LEN));
        assert!(b.fits(FRAME_LEN));
        b.push(&part(1, FRAME_LEN), &[]);
        assert!(b.fits(FRAME_LEN) && !b.fits(FRAME_LEN + 1));
        b.push(&part(2, FRAME_LEN), &[]);
        assert!(!b.fits(1));
        assert_eq!(b.finish().len(), HEAD + 2 * (PART_HEAD + FRAME_LEN));
        assert!(!Builder::new(usize::MAX).fits(usize::from(u16::MAX) + 1), "a length must fit in u16");
    }

    #[test]
    fn malformed_bundles_are_refused() {
        let mut b = Builder::new(1000);
        b.push(&part(1, FRAME_LEN), &[]);
        let good = b.finish().to_vec();
        let bad = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut d = good.clone();
            f(&mut d);
            split(&Bytes::from(d))
        };
        assert!(bad(&|_| {}).is_some());
        assert_eq!(bad(&|d| d[0] = b'X'), None, "magic");
        assert_eq!(bad(&|d| d[2] = VERSION + 1), None, "version");
        assert_eq!(bad(&|d| d[3] = 1), None, "reserved byte");
        assert_eq!(bad(&|d| d.push(0)), None, "a trailing byte");
        assert_eq!(bad(&|d| d.truncate(d.len() - 1)), None, "a short part");
        assert_eq!(bad(&|d| d[4] = (FRAME_LEN - 1) as u8), None, "a part shorter than a frame");
        assert_eq!(bad(&|d| d.truncate(HEAD)), None, "no part");
        assert_eq!(split(&Bytes::from_static(b"TB")), None);
    }
}
