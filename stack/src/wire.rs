//! The `Wire` codec for headers: exact-size encoding, bounds-checked decoding.
//!
//! A header is encoded into exactly `encoded_len()` bytes and decoded from a `Reader` that
//! checks every read: malformed input yields a `WireError`, never a panic.

use core::fmt;

/// Why bytes from the network did not decode. Small and `Copy`: counted, never propagated far.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum WireError {
    /// Fewer bytes than the header needs.
    Truncated,
    /// A tag or enum discriminant that this version does not know.
    BadTag,
    /// A value out of its allowed range (an over-long varint, a zero where none is allowed).
    BadValue,
    /// No header where the layer needs one (its sender's layer had nothing to say, and this
    /// header type has no "nothing" to stand for that).
    Absent,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WireError::Truncated => "truncated",
            WireError::BadTag => "unknown tag",
            WireError::BadValue => "value out of range",
            WireError::Absent => "header absent",
        })
    }
}

impl std::error::Error for WireError {}

/// A header codec. `encode` writes exactly `encoded_len()` bytes; `decode` consumes what it
/// read from the front of the reader.
///
/// A header type may have a *nothing*: the value a layer pushes when it has nothing to say
/// (its pass-through `NoHdr`, or the variant its data path carries most). Pushing it writes
/// no bytes at all, and popping where the sender's layer pushed nothing yields it (see
/// `Msg`): as in Ensemble, an empty header costs nothing on the wire.
pub trait Wire: Sized {
    /// Bytes `encode` writes, exactly.
    fn encoded_len(&self) -> usize;
    /// Writes the header: exactly `encoded_len()` bytes.
    fn encode(&self, w: &mut Writer<'_>);
    /// Reads one header from the front of `r`; malformed or short input is an error, never
    /// a panic.
    fn decode(r: &mut Reader<'_>) -> Result<Self, WireError>;
    /// The value that stands for "nothing to say", if this header type has one.
    fn nothing() -> Option<Self> {
        None
    }
    /// Whether this value is the nothing (pushed as no bytes).
    fn is_nothing(&self) -> bool {
        false
    }
}

/// Gives a header type its nothing: `nothing!(Hdr::NoHdr)` inside its `impl Wire`.
#[macro_export]
macro_rules! nothing {
    ($v:path) => {
        fn nothing() -> Option<Self> {
            Some($v)
        }
        fn is_nothing(&self) -> bool {
            matches!(self, $v)
        }
    };
}

/// Writes into a buffer sized by `encoded_len`. Overrunning it is a bug in the header's
/// codec (its length and its encoding disagree), not a network condition, so it panics.
pub struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> Writer<'a> {
    /// A writer at the start of `buf`.
    pub fn new(buf: &'a mut [u8]) -> Writer<'a> {
        Writer { buf, pos: 0 }
    }
    /// Bytes written so far.
    pub fn written(&self) -> usize {
        self.pos
    }
    /// Writes the bytes as they are (no length prefix).
    pub fn put_slice(&mut self, s: &[u8]) {
        self.buf[self.pos..self.pos + s.len()].copy_from_slice(s);
        self.pos += s.len();
    }
    /// Writes one byte.
    pub fn put_u8(&mut self, v: u8) {
        self.put_slice(&[v]);
    }
    /// Writes 2 bytes, little-endian.
    pub fn put_u16(&mut self, v: u16) {
        self.put_slice(&v.to_le_bytes());
    }
    /// Writes 4 bytes, little-endian.
    pub fn put_u32(&mut self, v: u32) {
        self.put_slice(&v.to_le_bytes());
    }
    /// Writes 8 bytes, little-endian.
    pub fn put_u64(&mut self, v: u64) {
        self.put_slice(&v.to_le_bytes());
    }
    /// LEB128 unsigned varint (1 to 10 bytes).
    pub fn put_var(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.put_u8(v as u8 | 0x80);
            v >>= 7;
        }
        self.put_u8(v as u8);
    }
}

/// Length of `v` as a LEB128 varint.
pub const fn var_len(v: u64) -> usize {
    let bits = 64 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Reads from the front of a byte slice; every read is checked.
#[derive(Clone, Copy)]
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf }
    }
    /// The bytes not read yet.
    pub fn rest(&self) -> &'a [u8] {
        self.buf
    }
    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len()
    }
    /// The next `n` bytes, borrowed from the input (`Truncated` if fewer remain; nothing is
    /// consumed then).
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if n > self.buf.len() {
            return Err(WireError::Truncated);
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
    /// One byte.
    pub fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.array::<1>()?[0])
    }
    /// 2 bytes, little-endian.
    pub fn u16(&mut self) -> Result<u16, WireError> {
        self.array().map(u16::from_le_bytes)
    }
    /// 4 bytes, little-endian.
    pub fn u32(&mut self) -> Result<u32, WireError> {
        self.array().map(u32::from_le_bytes)
    }
    /// 8 bytes, little-endian.
    pub fn u64(&mut self) -> Result<u64, WireError> {
        self.array().map(u64::from_le_bytes)
    }
    /// LEB128 unsigned varint; rejects encodings longer than 10 bytes or overflowing 64 bits.
    pub fn var(&mut self) -> Result<u64, WireError> {
        let mut v = 0u64;
        for i in 0..10 {
            let b = self.u8()?;
            let bits = (b & 0x7f) as u64;
            if i == 9 && bits > 1 {
                return Err(WireError::BadValue);
            }
            v |= bits << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(WireError::BadValue)
    }
}

/// Encodes a header into a fresh vector (tests, control messages).
pub fn to_vec<H: Wire>(h: &H) -> Vec<u8> {
    let mut v = vec![0u8; h.encoded_len()];
    let mut w = Writer::new(&mut v);
    h.encode(&mut w);
    debug_assert_eq!(w.written(), v.len(), "encoded_len disagrees with encode");
    v
}

/// Decodes a header that must take the whole slice.
pub fn from_slice<H: Wire>(b: &[u8]) -> Result<H, WireError> {
    let mut r = Reader::new(b);
    let h = H::decode(&mut r)?;
    if r.remaining() != 0 {
        return Err(WireError::BadValue);
    }
    Ok(h)
}

impl Wire for () {
    fn encoded_len(&self) -> usize {
        0
    }
    fn encode(&self, _: &mut Writer<'_>) {}
    fn decode(_: &mut Reader<'_>) -> Result<(), WireError> {
        Ok(())
    }
    fn nothing() -> Option<()> {
        Some(())
    }
    fn is_nothing(&self) -> bool {
        true
    }
}

macro_rules! wire_int {
    ($t:ty, $put:ident, $get:ident) => {
        impl Wire for $t {
            fn encoded_len(&self) -> usize {
                core::mem::size_of::<$t>()
            }
            fn encode(&self, w: &mut Writer<'_>) {
                w.$put(*self)
            }
            fn decode(r: &mut Reader<'_>) -> Result<$t, WireError> {
                r.$get()
            }
        }
    };
}
wire_int!(u8, put_u8, u8);
wire_int!(u16, put_u16, u16);
wire_int!(u32, put_u32, u32);
wire_int!(u64, put_u64, u64);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_boundaries() {
        for v in [0, 1, 127, 128, 16_383, 16_384, u32::MAX as u64, u64::MAX - 1, u64::MAX] {
            let mut b = [0u8; 10];
            let mut w = Writer::new(&mut b);
            w.put_var(v);
            let n = w.written();
            assert_eq!(n, var_len(v), "{v}");
            assert_eq!(Reader::new(&b[..n]).var(), Ok(v));
            assert_eq!(Reader::new(&b[..n - 1]).var(), Err(WireError::Truncated));
        }
    }

    #[test]
    fn overlong_varints_are_rejected() {
        assert_eq!(Reader::new(&[0xff; 11]).var(), Err(WireError::BadValue));
        let mut too_big = [0xffu8; 10];
        too_big[9] = 0x02;
        assert_eq!(Reader::new(&too_big).var(), Err(WireError::BadValue));
    }

    #[test]
    fn reads_past_the_end_are_errors() {
        let mut r = Reader::new(&[1, 2, 3]);
        assert_eq!(r.u16(), Ok(0x0201));
        assert_eq!(r.u16(), Err(WireError::Truncated));
        assert_eq!(r.u8(), Ok(3));
        assert_eq!(r.take(1), Err(WireError::Truncated));
        assert_eq!(from_slice::<u16>(&[1, 2, 3]), Err(WireError::BadValue));
        assert_eq!(from_slice::<u64>(&to_vec(&7u64)), Ok(7));
    }
}
