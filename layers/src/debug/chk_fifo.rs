//! `chk_fifo`: checks on live traffic that casts arrive in FIFO order, exactly once.
//!
//! Protocol: going down, each `Cast` gets a `Chk { seq }` header with this member's next
//! cast number (0, 1, 2, ...), a cast that asks for FIFO order only (`Msg::set_fifo`) a
//! `FifoOnly { seq }` from a numbering of its own (an ordering layer below keeps each kind
//! in FIFO order, not the two together); other message events get `NoHdr`. Going up, the header of
//! every `Cast` and `Send` is popped; for a stamped cast from rank `r` the checker compares
//! `seq` with the next number it expects from `r`:
//! - equal: in order;
//! - higher: a **gap** (loss, or a FIFO / reliability violation), the numbers skipped are
//!   remembered as missing;
//! - lower and missing: a **reorder** (it arrived late);
//! - lower and not missing: a **duplicate** (an exactly-once violation).
//!
//! A violation is counted, raised as `Up::Error { layer: "chk_fifo", detail }` (the
//! application gets `Event::Error`), and the message is still passed up: a checker is not a
//! filter. A header that does not decode, or a rank outside the view, is dropped and counted
//! (`bad_hdr`, `bad_rank`), never delivered. The loss of a sender's last casts cannot be seen
//! (nothing follows them); `missing` in `dump` is the count of casts known missing now.
//!
//! Parameters: none. Properties: requires nothing (so it also runs above `bare`, where it
//! fires), provides nothing. Put it above the layer whose FIFO reliable casts it checks.
//! Header: `Hdr::NoHdr` (tag 0) | `Hdr::Chk { seq }` (tag 1, varint) | `Hdr::FifoOnly { seq }`
//! (tag 2, varint).
//! Memory: per sender in the view, one counter and at most `MAX_RANGES` missing ranges; past
//! that the oldest range is forgotten (a late arrival there then reads as a duplicate).
//! Dump counters: `sent`, `checked`, `gap`, `duplicate`, `reorder`, `missing`, `bad_hdr`,
//! `bad_rank`.
//!
//! The checker pattern (see `debug/mod.rs`): `Fifo` is the `Checker` (stamp on the way down,
//! compare on the way up), `Reporter` counts and raises, the layer does the header work.
//!
//! Tested by the unit tests below and `tests/chk_fifo.rs` (exact verdicts, bolero: header
//! round-trip, arbitrary bytes into `handle_up`, `Fifo` against a set-based model; simulated
//! groups over `bare`, `drop`, `dup` and `shuffle`).

use super::{Checker, PerSender, Reporter, Violation};
use std::collections::BTreeMap;
use thoth_stack::wire::var_len;
use thoth_stack::{Args, Cx, Dn, Dump, Layer, Rank, Reader, Up, Wire, WireError, Writer};

/// Missing ranges remembered per sender.
pub const MAX_RANGES: usize = 64;

/// The `chk_fifo` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hdr {
    /// Not checked: sends and other message events (the nothing: no bytes on the wire).
    NoHdr,
    /// The sender's cast number.
    Chk {
        /// From 0, one per cast of the sender's.
        seq: u64,
    },
    /// The sender's number of a cast that asks for FIFO order only.
    FifoOnly {
        /// From 0, one per FIFO-only cast of the sender's (apart from `Chk`'s numbering).
        seq: u64,
    },
}

impl Wire for Hdr {
    thoth_stack::nothing!(Hdr::NoHdr);
    fn encoded_len(&self) -> usize {
        match self {
            Hdr::NoHdr => 1,
            Hdr::Chk { seq } | Hdr::FifoOnly { seq } => 1 + var_len(*seq),
        }
    }
    fn encode(&self, w: &mut Writer<'_>) {
        match self {
            Hdr::NoHdr => w.put_u8(0),
            Hdr::Chk { seq } => {
                w.put_u8(1);
                w.put_var(*seq);
            }
            Hdr::FifoOnly { seq } => {
                w.put_u8(2);
                w.put_var(*seq);
            }
        }
    }
    fn decode(r: &mut Reader<'_>) -> Result<Hdr, WireError> {
        match r.u8()? {
            0 => Ok(Hdr::NoHdr),
            1 => Ok(Hdr::Chk { seq: r.var()? }),
            2 => Ok(Hdr::FifoOnly { seq: r.var()? }),
            _ => Err(WireError::BadTag),
        }
    }
}

/// What a receiver knows of one sender.
#[derive(Clone, Debug, Default)]
struct Rx {
    next: u64,
    /// Missing numbers as ranges `start -> end` (end exclusive).
    missing: BTreeMap<u64, u64>,
}

impl Rx {
    fn take_missing(&mut self, seq: u64) -> bool {
        let Some((&start, &end)) = self.missing.range(..=seq).next_back() else {
            return false;
        };
        if seq >= end {
            return false;
        }
        self.missing.remove(&start);
        if start < seq {
            self.missing.insert(start, seq);
        }
        if seq + 1 < end {
            self.missing.insert(seq + 1, end);
        }
        self.trim();
        true
    }

    fn trim(&mut self) {
        while self.missing.len() > MAX_RANGES {
            self.missing.pop_first();
        }
    }

    fn missing(&self) -> u64 {
        self.missing.iter().fold(0u64, |n, (s, e)| n.saturating_add(e - s))
    }
}

/// The FIFO / exactly-once checker: per-sender cast numbers.
#[derive(Clone, Debug, Default)]
pub struct Fifo {
    next_send: u64,
    rx: PerSender<Rx>,
}

impl Fifo {
    /// Casts known missing now, over every sender.
    pub fn missing(&self) -> u64 {
        self.rx.iter().fold(0u64, |n, (_, r)| n.saturating_add(r.missing()))
    }

    /// The next cast number expected from `from`.
    pub fn expected(&mut self, from: Rank) -> u64 {
        self.rx.get_mut(from).next
    }
}

impl Checker for Fifo {
    type Stamp = u64;

    fn stamp(&mut self, _me: Rank) -> u64 {
        let s = self.next_send;
        self.next_send += 1;
        s
    }

    fn arrive(&mut self, from: Rank, &seq: &u64) -> Vec<Violation> {
        let rx = self.rx.get_mut(from);
        let v = |kind, detail| vec![Violation { kind, from, detail }];
        if seq == rx.next {
            rx.next = seq.saturating_add(1);
            Vec::new()
        } else if seq > rx.next {
            let expected = rx.next;
            rx.missing.insert(expected, seq);
            rx.trim();
            rx.next = seq.saturating_add(1);
            v("gap", format!("expected cast {expected}, got {seq} ({} missing)", seq - expected))
        } else if rx.take_missing(seq) {
            v("reorder", format!("cast {seq} arrived after cast {}", rx.next - 1))
        } else {
            v("duplicate", format!("cast {seq} delivered again (next expected {})", rx.next))
        }
    }
}

/// The `chk_fifo` layer.
#[derive(Clone, Debug)]
pub struct ChkFifo {
    fifo: Fifo,
    /// Casts that ask for FIFO order only, numbered apart.
    fifo_only: Fifo,
    report: Reporter,
    sent: u64,
    checked: u64,
    bad_hdr: u64,
    bad_rank: u64,
}

impl Default for ChkFifo {
    fn default() -> Self {
        ChkFifo::new()
    }
}

impl ChkFifo {
    /// A checker with nothing sent or delivered yet.
    pub fn new() -> ChkFifo {
        ChkFifo {
            fifo: Fifo::default(),
            fifo_only: Fifo::default(),
            report: Reporter::new("chk_fifo", &["gap", "duplicate", "reorder"]),
            sent: 0,
            checked: 0,
            bad_hdr: 0,
            bad_rank: 0,
        }
    }

    /// Violations reported so far.
    pub fn violations(&self) -> u64 {
        self.report.total()
    }

    /// The violation counts, by kind (`gap`, `duplicate`, `reorder`).
    pub fn reporter(&self) -> &Reporter {
        &self.report
    }
}

pub(super) fn ctor(_: &mut Args) -> Result<Box<dyn Layer>, String> {
    Ok(Box::new(ChkFifo::new()))
}

impl Layer for ChkFifo {
    fn name(&self) -> &'static str {
        "chk_fifo"
    }
    fn max_header(&self, _: &thoth_stack::View) -> usize {
        Hdr::Chk { seq: u64::MAX }.encoded_len()
    }
    fn handle_dn(&mut self, mut ev: Dn, cx: &mut Cx<'_>) {
        if let Dn::Cast(m) = &mut ev {
            self.sent += 1;
            if m.is_fifo() {
                m.push(&Hdr::FifoOnly { seq: self.fifo_only.stamp(cx.rank) });
            } else {
                m.push(&Hdr::Chk { seq: self.fifo.stamp(cx.rank) });
            }
        }
        cx.dn(ev) // anything else: no header, read as `NoHdr` above
    }
    fn handle_up(&mut self, mut ev: Up, cx: &mut Cx<'_>) {
        let (from, msg, cast) = match &mut ev {
            Up::Cast { from, msg } => (*from, msg, true),
            Up::Send { from, msg } => (*from, msg, false),
            _ => return cx.up(ev),
        };
        let Ok(hdr) = msg.pop::<Hdr>() else {
            self.bad_hdr += 1;
            return;
        };
        if from.index() >= cx.view.len() {
            self.bad_rank += 1;
            return;
        }
        let (fifo, seq) = match (cast, hdr) {
            (true, Hdr::Chk { seq }) => (&mut self.fifo, seq),
            (true, Hdr::FifoOnly { seq }) => (&mut self.fifo_only, seq),
            _ => return cx.up(ev),
        };
        self.checked += 1;
        for v in fifo.arrive(from, &seq) {
            self.report.report(v, cx);
        }
        cx.up(ev)
    }
    fn dump(&self, out: &mut Vec<Dump>) {
        let mut counters = vec![("sent", self.sent), ("checked", self.checked)];
        counters.extend(self.report.counters());
        counters.extend([("bad_hdr", self.bad_hdr), ("bad_rank", self.bad_rank)]);
        out.push(Dump {
            layer: "chk_fifo",
            counters,
            gauges: vec![("missing", self.fifo.missing() + self.fifo_only.missing())],
            state: format!("violations={}", self.report.total()),
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
        assert_eq!(to_vec(&Hdr::NoHdr), [0]);
        assert_eq!(to_vec(&Hdr::Chk { seq: 300 }), [1, 0xac, 0x02]);
        assert_eq!(from_slice::<Hdr>(&[1, 0xac, 0x02]), Ok(Hdr::Chk { seq: 300 }));
        assert_eq!(from_slice::<Hdr>(&[2, 7]), Ok(Hdr::FifoOnly { seq: 7 }));
        assert_eq!(from_slice::<Hdr>(&[3]), Err(WireError::BadTag));
    }

    #[test]
    fn verdicts_in_order_gap_reorder_duplicate() {
        let mut f = Fifo::default();
        let r = Rank(1);
        let kinds = |v: Vec<Violation>| v.into_iter().map(|v| v.kind).collect::<Vec<_>>();
        assert!(f.arrive(r, &0).is_empty());
        assert_eq!(kinds(f.arrive(r, &3)), ["gap"]);
        assert_eq!(f.missing(), 2);
        assert_eq!(kinds(f.arrive(r, &1)), ["reorder"]);
        assert_eq!(kinds(f.arrive(r, &1)), ["duplicate"]);
        assert_eq!(kinds(f.arrive(r, &3)), ["duplicate"]);
        assert_eq!(f.missing(), 1);
        assert!(f.arrive(r, &4).is_empty());
        assert_eq!(f.expected(r), 5);
        assert!(f.arrive(Rank(2), &0).is_empty(), "senders are independent");
    }
}

#[cfg(test)]
mod layer_tests {
    use super::super::testkit::H;
    use super::*;
    use thoth_stack::{Bytes, Msg};

    #[test]
    fn stamps_casts_checks_them_and_drops_bad_headers() {
        let (mut h, mut c) = (H::new(), ChkFifo::new());
        h.dn(&mut c, Dn::Cast(Msg::new(Bytes::from_static(b"x"))));
        h.dn(&mut c, Dn::Send(Rank(1), Msg::new(Bytes::from_static(b"y"))));
        let heads: Vec<Vec<u8>> =
            h.dn.drain(..)
                .map(|e| match e {
                    Dn::Cast(m) | Dn::Send(_, m) => m.head().to_vec(),
                    _ => panic!(),
                })
                .collect();
        assert_eq!(heads, [vec![1, 0], vec![]], "a send: `NoHdr`, the nothing, takes no bytes");
        let stamped = |seq: u8| Up::Cast { from: Rank(1), msg: Msg::from_wire(Bytes::from(vec![1, seq, b'm'])) };
        h.up(&mut c, stamped(1)); // expected 0: a gap, still delivered
        let tag7 = Up::Cast { from: Rank(1), msg: Msg::from_wire(Bytes::from_static(&[7])) };
        h.up(&mut c, tag7); // tag 7: dropped
        let out: Vec<Up> = h.up.drain(..).collect();
        assert_eq!(out.len(), 2);
        assert!(matches!(&out[0], Up::Error { layer: "chk_fifo", detail } if detail.starts_with("gap from rank 1")));
        assert!(matches!(&out[1], Up::Cast { from: Rank(1), .. }));
        let mut d = Vec::new();
        c.dump(&mut d);
        assert_eq!(d[0].counter("gap"), Some(1));
        assert_eq!(d[0].counter("bad_hdr"), Some(1));
        assert_eq!(d[0].counter("missing"), Some(1));
    }
}
