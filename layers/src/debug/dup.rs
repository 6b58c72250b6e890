//! `dup`: duplicates message events, at random (`p=`) or by script (`nth=`).
//!
//! Protocol: none. A matching message event (see `Filter` in `debug/mod.rs`) that the
//! script names or the random stream picks is passed on twice, back to back (the copy shares
//! the body: no payload copy). No header: the layer is wire-transparent.
//!
//! Parameters: `p=` (default 0), `nth=`, and the common `dir=`, `from=`, `to=`, `loopback=`,
//! `seed=`. In code: `Dup::new(p, Filter::all())`, `Dup::script([2])`.
//!
//! Properties: requires nothing, provides nothing. Events generated: the copies.
//! Memory: constant. Dump counters: `seen`, `duplicated`.
//!
//! Tested by the unit tests below and `tests/debug.rs` (exact outputs, determinism, bolero,
//! and in simulated groups under `chk_fifo`, which must report the duplicates).

use super::{Decide, FaultArgs, Filter, nth_arg, prob_arg};
use thoth_stack::{Args, Cx, Dn, Dump, Layer, Up};

/// The `dup` layer.
#[derive(Clone, Debug)]
pub struct Dup {
    filter: Filter,
    decide: Decide,
    duplicated: u64,
}

impl Dup {
    /// Duplicates each matching message with probability `p`; the random stream forks from
    /// the context at first use.
    pub fn new(p: f64, filter: Filter) -> Dup {
        Dup { filter, decide: Decide::new(p, [], None), duplicated: 0 }
    }

    /// Duplicates exactly the `nth` matching messages (1-based) arriving from other members.
    pub fn script(nth: impl IntoIterator<Item = u64>) -> Dup {
        Dup { filter: Filter::all(), decide: Decide::new(0.0, nth, None), duplicated: 0 }
    }

    /// The general form: probability, script, filter and seed together.
    pub fn with(p: f64, nth: impl IntoIterator<Item = u64>, filter: Filter, seed: Option<u64>) -> Dup {
        Dup { filter, decide: Decide::new(p, nth, seed), duplicated: 0 }
    }

    /// Matching messages passed on twice so far (extra copies made).
    pub fn duplicated(&self) -> u64 {
        self.duplicated
    }
}

pub(super) fn ctor(a: &mut Args) -> Result<Box<dyn Layer>, String> {
    let f = FaultArgs::read(a)?;
    let p = prob_arg(a, "p", 0.0)?;
    let nth = nth_arg(a)?;
    Ok(Box::new(Dup::with(p, nth, f.filter, f.seed)))
}

impl Layer for Dup {
    fn name(&self) -> &'static str {
        "dup"
    }
    fn max_header(&self, _: &thoth_stack::View) -> usize {
        0
    }
    fn handle_dn(&mut self, ev: Dn, cx: &mut Cx<'_>) {
        if self.filter.dn(&ev, cx.rank) && self.decide.next(cx) {
            self.duplicated += 1;
            cx.dn(ev.clone());
        }
        cx.dn(ev)
    }
    fn handle_up(&mut self, ev: Up, cx: &mut Cx<'_>) {
        if self.filter.up(&ev, cx.rank) && self.decide.next(cx) {
            self.duplicated += 1;
            cx.up(ev.clone());
        }
        cx.up(ev)
    }
    fn dump(&self, out: &mut Vec<Dump>) {
        out.push(Dump {
            layer: "dup",
            counters: vec![("seen", self.decide.seen()), ("duplicated", self.duplicated)],
            state: format!("p={} filter={:?}", self.decide.p, self.filter),
            ..Dump::default()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{H, cast_from};
    use super::*;

    #[test]
    fn script_duplicates_back_to_back() {
        let (mut h, mut d) = (H::new(), Dup::script([2]));
        for b in ["a", "b", "c"] {
            h.up(&mut d, cast_from(1, b));
        }
        h.up(&mut d, Up::Exit);
        assert_eq!(h.ups(), ["a", "b", "b", "c", "Exit"]);
        assert_eq!(d.duplicated(), 1);
    }
}
