//! The nak header: one tag byte, then varint fields.

use thoth_stack::wire::var_len;
use thoth_stack::{Rank, Reader, Wire, WireError, Writer};

/// Most ranges one NAK names; the rest of a gap is asked for by the next NAK.
pub const MAX_RANGES: usize = 16;

/// The nak layer's header, on every message it sends or passes down.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NakHdr {
    /// Not sequenced: unreliable casts, sends, and what passes through.
    NoHdr,
    /// A reliable cast, number `seq` of its sender (from 0).
    Data {
        /// The sender's sequence number for this cast.
        seq: u64,
    },
    /// A copy of cast `seq` of `origin`, from the origin or any member holding it.
    Retrans {
        /// The member that first cast it.
        origin: Rank,
        /// Its sequence number at `origin`.
        seq: u64,
    },
    /// Please retransmit these half-open ranges `[lo, hi)` of `origin`'s casts.
    Nak {
        /// The sender whose casts are missing.
        origin: Rank,
        /// Non-empty runs of missing sequence numbers, lowest first; 1 to `MAX_RANGES` of them.
        ranges: Vec<(u64, u64)>,
    },
    /// The sender has cast `sent` messages (reveals a lost tail).
    Tail {
        /// Casts the sender has numbered so far: sequence numbers `0..sent` exist.
        sent: u64,
    },
    /// The sender has delivered `count` casts of the failed member `origin` (see
    /// `Dn::Failed`): ask it for the ones you miss.
    Have {
        /// The failed member whose casts are announced.
        origin: Rank,
        /// The announcer's delivered prefix of `origin`: casts `0..count` exist.
        count: u64,
    },
}

const NO_HDR: u8 = 0;
const DATA: u8 = 1;
const RETRANS: u8 = 2;
const NAK: u8 = 3;
const TAIL: u8 = 4;
const HAVE: u8 = 5;

fn rank(r: &mut Reader<'_>) -> Result<Rank, WireError> {
    u16::try_from(r.var()?).map(Rank).map_err(|_| WireError::BadValue)
}

impl Wire for NakHdr {
    thoth_stack::nothing!(NakHdr::NoHdr);
    fn encoded_len(&self) -> usize {
        1 + match self {
            NakHdr::NoHdr => 0,
            NakHdr::Data { seq } => var_len(*seq),
            NakHdr::Retrans { origin, seq } => var_len(origin.0 as u64) + var_len(*seq),
            NakHdr::Nak { origin, ranges } => {
                var_len(origin.0 as u64)
                    + 1
                    + ranges.iter().map(|&(lo, hi)| var_len(lo) + var_len(hi.wrapping_sub(lo))).sum::<usize>()
            }
            NakHdr::Tail { sent } => var_len(*sent),
            NakHdr::Have { origin, count } => var_len(origin.0 as u64) + var_len(*count),
        }
    }

    /// Encoding a `Nak` with no range, more than `MAX_RANGES`, or an empty range is a bug.
    fn encode(&self, w: &mut Writer<'_>) {
        match self {
            NakHdr::NoHdr => w.put_u8(NO_HDR),
            NakHdr::Data { seq } => {
                w.put_u8(DATA);
                w.put_var(*seq);
            }
            NakHdr::Retrans { origin, seq } => {
                w.put_u8(RETRANS);
                w.put_var(origin.0 as u64);
                w.put_var(*seq);
            }
            NakHdr::Nak { origin, ranges } => {
                debug_assert!((1..=MAX_RANGES).contains(&ranges.len()));
                w.put_u8(NAK);
                w.put_var(origin.0 as u64);
                w.put_u8(ranges.len() as u8);
                for &(lo, hi) in ranges {
                    debug_assert!(lo < hi);
                    w.put_var(lo);
                    w.put_var(hi.wrapping_sub(lo));
                }
            }
            NakHdr::Tail { sent } => {
                w.put_u8(TAIL);
                w.put_var(*sent);
            }
            NakHdr::Have { origin, count } => {
                w.put_u8(HAVE);
                w.put_var(origin.0 as u64);
                w.put_var(*count);
            }
        }
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(match r.u8()? {
            NO_HDR => NakHdr::NoHdr,
            DATA => NakHdr::Data { seq: r.var()? },
            RETRANS => NakHdr::Retrans { origin: rank(r)?, seq: r.var()? },
            NAK => {
                let origin = rank(r)?;
                let n = r.u8()? as usize;
                if n == 0 || n > MAX_RANGES {
                    return Err(WireError::BadValue);
                }
                let mut ranges = Vec::with_capacity(n);
                for _ in 0..n {
                    let lo = r.var()?;
                    let len = r.var()?;
                    let hi = lo.checked_add(len).filter(|_| len > 0).ok_or(WireError::BadValue)?;
                    ranges.push((lo, hi));
                }
                NakHdr::Nak { origin, ranges }
            }
            TAIL => NakHdr::Tail { sent: r.var()? },
            HAVE => NakHdr::Have { origin: rank(r)?, count: r.var()? },
            _ => return Err(WireError::BadTag),
        })
    }
}
