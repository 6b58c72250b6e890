//! `chk_causal`: checks on live traffic that casts are delivered in causal order (each after
//! every cast its sender had delivered before casting it), each sender's in FIFO order,
//! exactly once.
//!
//! Protocol: going down, each `Cast` gets `Chk { seq, deps }`: the sender's cast number
//! (0, 1, 2, ...) and, per rank in rank order, how many stamped casts of that rank the sender
//! had delivered (its vector clock, in full: a checker wants no state to go wrong). Other
//! message events get `NoHdr`, and so does a cast that asks for FIFO order only
//! (`Msg::set_fifo`: it is in no causal order). Going up, every stamped cast is checked for FIFO (`Fifo`, as
//! `chk_fifo`: `gap`, `duplicate`, `reorder`) and for its causes: a rank of which this member
//! has delivered fewer casts than the stamp says is a **`causal`** violation (a cause
//! delivered after its effect, or never). A cast delivered at a view's end whose cause no
//! member that moves with this one got is a violation too: a causal layer drops such casts
//! (see `order::causal`).
//!
//! A violation is counted, raised as `Up::Error { layer: "chk_causal", detail }`, and the
//! message still goes up (a checker is not a filter). A header that does not decode, or a
//! rank outside the view, is dropped and counted (`bad_hdr`, `bad_rank`); a stamp with more
//! entries than the view has members is `bad_hdr` too.
//!
//! Parameters: none. Properties: requires nothing (so it also runs above a stack that does
//! not order, where it fires), provides nothing. Put it above the layer whose causal order it
//! checks (for a group: right above `gms`, one stack per view, so it checks view by view).
//! Header: `Hdr::NoHdr` (the nothing) | `Hdr::Chk { seq, deps }` (tag 1, a varint, then a
//! varint count and one varint per rank).
//! Memory: `chk_fifo`'s per-sender state and one count per member.
//! Dump counters: `sent`, `checked`, one per violation kind, `bad_hdr`, `bad_rank`.
//!
//! Tested by the unit tests below (verdicts, header bytes) and, in simulated groups over the
//! stack with `causal`, by `membership/tests/sim_order.rs`, where it must catch a causal
//! layer with a planted bug.

use super::chk_fifo::Fifo;
use super::{Checker, PerSender, Reporter, Violation};
use thoth_stack::wire::var_len;
use thoth_stack::{Args, Cx, Dn, Dump, Layer, Rank, Reader, Up, Wire, WireError, Writer};

/// The `chk_causal` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hdr {
    /// Not checked: sends, FIFO-only casts, other message events.
    NoHdr,
    /// A checked cast: the sender's stamp.
    Chk {
        /// The sender's cast number, from 0.
        seq: u64,
        /// Per rank, in rank order: stamped casts of that rank the sender had delivered.
        deps: Vec<u64>,
    },
}

impl Wire for Hdr {
    thoth_stack::nothing!(Hdr::NoHdr);
    fn encoded_len(&self) -> usize {
        1 + match self {
            Hdr::NoHdr => 0,
            Hdr::Chk { seq, deps } => {
                var_len(*seq) + var_len(deps.len() as u64) + deps.iter().map(|&d| var_len(d)).sum::<usize>()
            }
        }
    }
    fn encode(&self, w: &mut Writer<'_>) {
        match self {
            Hdr::NoHdr => w.put_u8(0),
            Hdr::Chk { seq, deps } => {
                w.put_u8(1);
                w.put_var(*seq);
                w.put_var(deps.len() as u64);
                for &d in deps {
                    w.put_var(d);
                }
            }
        }
    }
    fn decode(r: &mut Reader<'_>) -> Result<Hdr, WireError> {
        match r.u8()? {
            0 => Ok(Hdr::NoHdr),
            1 => {
                let seq = r.var()?;
                let n = r.var()?;
                // A varint takes at least a byte: a count beyond the bytes left is a lie.
                if n > r.remaining() as u64 {
                    return Err(WireError::BadValue);
                }
                let deps = (0..n).map(|_| r.var()).collect::<Result<_, _>>()?;
                Ok(Hdr::Chk { seq, deps })
            }
            _ => Err(WireError::BadTag),
        }
    }
}

/// What a sender stamps: its cast number and its vector clock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stamp {
    /// The sender's cast number, from 0 (checked for FIFO).
    pub seq: u64,
    /// The sender's vector clock: per rank, stamped casts of that rank it had delivered.
    pub deps: Vec<u64>,
}

/// The causal checker: FIFO per sender plus the causes of each cast.
#[derive(Clone, Debug, Default)]
pub struct Causal {
    fifo: Fifo,
    /// Stamped casts delivered here, per rank.
    got: PerSender<u64>,
}

impl Checker for Causal {
    type Stamp = Stamp;

    fn stamp(&mut self, me: Rank) -> Stamp {
        Stamp { seq: self.fifo.stamp(me), deps: self.got.iter().map(|(_, &n)| n).collect() }
    }

    fn arrive(&mut self, from: Rank, s: &Stamp) -> Vec<Violation> {
        let mut out = self.fifo.arrive(from, &s.seq);
        for (r, &need) in s.deps.iter().enumerate() {
            let r = Rank(r as u16);
            let have = *self.got.get_mut(r);
            if r != from && have < need {
                out.push(Violation {
                    kind: "causal",
                    from,
                    detail: format!(
                        "its sender had delivered {need} casts of rank {} before casting it, this member {have}",
                        r.0
                    ),
                });
            }
        }
        *self.got.get_mut(from) += 1;
        out
    }
}

/// The `chk_causal` layer.
#[derive(Clone, Debug)]
pub struct ChkCausal {
    causal: Causal,
    report: Reporter,
    sent: u64,
    checked: u64,
    bad_hdr: u64,
    bad_rank: u64,
}

impl Default for ChkCausal {
    fn default() -> Self {
        ChkCausal::new()
    }
}

impl ChkCausal {
    /// A checker with nothing sent or delivered yet.
    pub fn new() -> ChkCausal {
        ChkCausal {
            causal: Causal::default(),
            report: Reporter::new("chk_causal", &["causal", "gap", "duplicate", "reorder"]),
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
}

pub(super) fn ctor(_: &mut Args) -> Result<Box<dyn Layer>, String> {
    Ok(Box::new(ChkCausal::new()))
}

impl Layer for ChkCausal {
    fn name(&self) -> &'static str {
        "chk_causal"
    }
    fn max_header(&self, view: &thoth_stack::View) -> usize {
        // A count for every member.
        1 + var_len(u64::MAX) + var_len(view.len() as u64) + view.len() * var_len(u64::MAX)
    }
    fn handle_dn(&mut self, mut ev: Dn, cx: &mut Cx<'_>) {
        // A cast that asks for FIFO order only is in no causal order: not stamped, not checked.
        if let Dn::Cast(m) = &mut ev
            && !m.is_fifo()
        {
            self.sent += 1;
            let Stamp { seq, deps } = self.causal.stamp(cx.rank);
            m.push(&Hdr::Chk { seq, deps });
        }
        cx.dn(ev)
    }
    fn handle_up(&mut self, mut ev: Up, cx: &mut Cx<'_>) {
        let (from, msg, cast) = match &mut ev {
            Up::Cast { from, msg } => (*from, msg, true),
            Up::Send { from, msg } => (*from, msg, false),
            _ => return cx.up(ev),
        };
        let hdr = match msg.pop::<Hdr>() {
            Ok(Hdr::Chk { deps, .. }) if deps.len() > cx.view.len() || !cast => None,
            Ok(h) => Some(h),
            Err(_) => None,
        };
        let Some(hdr) = hdr else {
            self.bad_hdr += 1;
            return;
        };
        if from.index() >= cx.view.len() {
            self.bad_rank += 1;
            return;
        }
        if let Hdr::Chk { seq, deps } = hdr {
            self.checked += 1;
            for v in self.causal.arrive(from, &Stamp { seq, deps }) {
                self.report.report(v, cx);
            }
        }
        cx.up(ev)
    }
    fn dump(&self, out: &mut Vec<Dump>) {
        let mut counters = vec![("sent", self.sent), ("checked", self.checked)];
        counters.extend(self.report.counters());
        counters.extend([("bad_hdr", self.bad_hdr), ("bad_rank", self.bad_rank)]);
        out.push(Dump {
            layer: "chk_causal",
            counters,
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
        let h = Hdr::Chk { seq: 300, deps: vec![0, 2, 1] };
        assert_eq!(to_vec(&h), [1, 0xac, 0x02, 3, 0, 2, 1]);
        assert_eq!(from_slice::<Hdr>(&to_vec(&h)), Ok(h));
        assert_eq!(from_slice::<Hdr>(&[1, 0, 9, 1]), Err(WireError::BadValue), "more entries than bytes");
        assert_eq!(from_slice::<Hdr>(&[2]), Err(WireError::BadTag));
    }

    #[test]
    fn an_effect_before_its_cause_is_caught_and_concurrent_casts_are_not() {
        let kinds = |v: Vec<Violation>| v.into_iter().map(|v| v.kind).collect::<Vec<_>>();
        let (a, b, c) = (Rank(0), Rank(1), Rank(2));
        let (mut x, mut y, mut z) = (Causal::default(), Causal::default(), Causal::default());
        let a0 = Causal::default().stamp(a);
        // x delivers a0, then casts x0 (which depends on a0).
        assert!(x.arrive(a, &a0).is_empty());
        let x0 = x.stamp(b);
        // y gets x0 before a0: the effect before its cause.
        assert_eq!(kinds(y.arrive(b, &x0)), ["causal"]);
        // z gets them in causal order; a concurrent cast of c in any place is fine.
        let c0 = Causal::default().stamp(c);
        assert!(z.arrive(c, &c0).is_empty());
        assert!(z.arrive(a, &a0).is_empty() && z.arrive(b, &x0).is_empty());
        assert!(y.arrive(a, &a0).is_empty(), "the late cause is no violation itself");
    }
}
