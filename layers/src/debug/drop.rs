//! `drop`: loses message events, at random (`p=`) or by script (`nth=`).
//!
//! Protocol: none. A matching message event (see `Filter` in `debug/mod.rs`) is dropped when
//! the layer's script names it or its random stream draws below `p`; everything else passes
//! through unchanged. No header: the layer is wire-transparent.
//!
//! Parameters: `p=` (default 0), `nth=3+7+9`, and the common `dir=`, `from=`, `to=`,
//! `loopback=`, `seed=`. E.g. `"nak:drop(p=0.1)"` (a lossy network under nak), or
//! `drop(p=0.5,from=1+2)`. In code: `Drop::new(p, Filter::all())`, `Drop::script([3, 7])`.
//!
//! Properties: requires nothing, provides nothing (it takes guarantees away: put it below
//! the layers that should restore them). Events generated: none of its own.
//! Memory: constant (the script's length).
//! Dump counters: `seen` (matching messages), `dropped`.
//!
//! Tested by the unit tests below and `tests/debug.rs` (exact outputs, seeded determinism,
//! bolero, in simulated groups under `chk_fifo`).

use super::{Decide, FaultArgs, Filter, nth_arg, prob_arg};
use thoth_stack::{Args, Cx, Dn, Dump, Layer, Up};

/// The `drop` layer.
#[derive(Clone, Debug)]
pub struct Drop {
    filter: Filter,
    decide: Decide,
    dropped: u64,
}

impl Drop {
    /// Drops each matching message with probability `p`; the random stream forks from the
    /// context at first use.
    pub fn new(p: f64, filter: Filter) -> Drop {
        Drop { filter, decide: Decide::new(p, [], None), dropped: 0 }
    }

    /// Drops exactly the `nth` matching messages (1-based) arriving from other members.
    pub fn script(nth: impl IntoIterator<Item = u64>) -> Drop {
        Drop { filter: Filter::all(), decide: Decide::new(0.0, nth, None), dropped: 0 }
    }

    /// The general form: probability, script, filter and seed together.
    pub fn with(p: f64, nth: impl IntoIterator<Item = u64>, filter: Filter, seed: Option<u64>) -> Drop {
        Drop { filter, decide: Decide::new(p, nth, seed), dropped: 0 }
    }

    /// Matching messages dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

pub(super) fn ctor(a: &mut Args) -> Result<Box<dyn Layer>, String> {
    let f = FaultArgs::read(a)?;
    let p = prob_arg(a, "p", 0.0)?;
    let nth = nth_arg(a)?;
    Ok(Box::new(Drop::with(p, nth, f.filter, f.seed)))
}

impl Layer for Drop {
    fn name(&self) -> &'static str {
        "drop"
    }
    fn max_header(&self, _: &thoth_stack::View) -> usize {
        0
    }
    fn handle_dn(&mut self, ev: Dn, cx: &mut Cx<'_>) {
        if self.filter.dn(&ev, cx.rank) && self.decide.next(cx) {
            self.dropped += 1;
        } else {
            cx.dn(ev)
        }
    }
    fn handle_up(&mut self, ev: Up, cx: &mut Cx<'_>) {
        if self.filter.up(&ev, cx.rank) && self.decide.next(cx) {
            self.dropped += 1;
        } else {
            cx.up(ev)
        }
    }
    fn dump(&self, out: &mut Vec<Dump>) {
        out.push(Dump {
            layer: "drop",
            counters: vec![("seen", self.decide.seen()), ("dropped", self.dropped)],
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
    fn script_drops_exactly_the_nth_matching_messages() {
        let (mut h, mut d) = (H::new(), Drop::script([2, 4]));
        for (i, from) in [1, 0, 2, 1, 2, 1].into_iter().enumerate() {
            h.up(&mut d, cast_from(from, &i.to_string()));
        }
        // Matching (not loopback from rank 0): messages 0, 2, 3, 4, 5 → 2nd and 4th are 2 and 4.
        assert_eq!(h.ups(), ["0", "1", "3", "5"]);
        assert_eq!(d.dropped(), 2);
    }
}
