//! `shuffle`: reorders message events within a bounded window.
//!
//! Protocol: none. Matching message events (see `Filter` in `debug/mod.rs`), each picked
//! with probability `p`, collect in a buffer per direction. When a buffer holds `window`
//! events, or `ms` after its oldest event arrived (a timer, so nothing is ever stuck), the
//! whole buffer is released in a random permutation. Events not picked pass at once (and so
//! overtake held ones). `Exit` going up and `Leave` going down first release their
//! direction's buffer. No header: the layer is wire-transparent.
//!
//! Parameters: `window=` (default 4, at least 1), `ms=` (default 1), `p=` (default 1), and
//! the common `dir=`, `from=`, `to=`, `loopback=`, `seed=`. In code:
//! `Shuffle::new(window, Duration, Filter::all())`.
//!
//! Memory: at most `window` events held per direction. Properties: requires nothing,
//! provides nothing. Events generated: the held events, permuted.
//! Dump counters: `seen`, `held` (total), `released`, `reordered` (events released at another
//! position than they arrived in their batch), `holding` (now).
//!
//! Tested by the unit tests below and `tests/debug.rs` (exact permutation for a seed, and a
//! bolero model: every held event is released, none lost or duplicated, and by `ms` after
//! the last arrival the buffers are empty).

use super::{Decide, FaultArgs, Filter, Held, prob_arg};
use thoth_stack::{Args, Cx, Dn, Dump, Duration, Layer, Time, Up};

/// One direction's buffer.
#[derive(Clone, Debug, Default)]
struct Buf {
    held: Vec<Held>,
    /// When the oldest held event arrived.
    since: Option<Time>,
}

/// The `shuffle` layer.
#[derive(Clone, Debug)]
pub struct Shuffle {
    filter: Filter,
    decide: Decide,
    window: usize,
    hold: Duration,
    up: Buf,
    dn: Buf,
    total_held: u64,
    released: u64,
    reordered: u64,
}

impl Shuffle {
    /// Permutes batches of up to `window` matching events, holding none longer than `hold`.
    pub fn new(window: usize, hold: Duration, filter: Filter) -> Shuffle {
        Shuffle::with(window, hold, 1.0, filter, None)
    }

    /// The general form. `window` is raised to 1 if zero.
    pub fn with(window: usize, hold: Duration, p: f64, filter: Filter, seed: Option<u64>) -> Shuffle {
        Shuffle {
            filter,
            decide: Decide::new(p, [], seed),
            window: window.max(1),
            hold,
            up: Buf::default(),
            dn: Buf::default(),
            total_held: 0,
            released: 0,
            reordered: 0,
        }
    }

    /// Events held now, both directions.
    pub fn holding(&self) -> usize {
        self.up.held.len() + self.dn.held.len()
    }

    fn push(&mut self, up: bool, ev: Held, cx: &mut Cx<'_>) {
        self.total_held += 1;
        let buf = if up { &mut self.up } else { &mut self.dn };
        buf.since.get_or_insert(cx.now);
        buf.held.push(ev);
        if buf.held.len() >= self.window {
            self.flush(up, cx);
        }
    }

    /// Releases one direction's buffer in a random permutation (Fisher–Yates).
    fn flush(&mut self, up: bool, cx: &mut Cx<'_>) {
        let buf = if up { &mut self.up } else { &mut self.dn };
        let mut batch: Vec<(usize, Held)> = buf.held.drain(..).enumerate().collect();
        buf.since = None;
        if batch.is_empty() {
            return;
        }
        let rng = self.decide.rng(cx);
        for i in (1..batch.len()).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            batch.swap(i, j);
        }
        for (pos, (arrived, ev)) in batch.into_iter().enumerate() {
            self.released += 1;
            self.reordered += (pos != arrived) as u64;
            ev.emit(cx);
        }
    }

    fn due(&self, b: &Buf) -> Option<Time> {
        b.since.map(|t| t + self.hold)
    }
}

pub(super) fn ctor(a: &mut Args) -> Result<Box<dyn Layer>, String> {
    let f = FaultArgs::read(a)?;
    let window: usize = a.get("window", 4)?;
    if window == 0 {
        return Err("`window` must be at least 1".into());
    }
    let ms: u64 = a.get("ms", 1)?;
    let p = prob_arg(a, "p", 1.0)?;
    Ok(Box::new(Shuffle::with(window, Duration::from_millis(ms), p, f.filter, f.seed)))
}

impl Layer for Shuffle {
    fn name(&self) -> &'static str {
        "shuffle"
    }
    fn max_header(&self, _: &thoth_stack::View) -> usize {
        0
    }
    fn handle_dn(&mut self, ev: Dn, cx: &mut Cx<'_>) {
        if matches!(ev, Dn::Leave) {
            self.flush(false, cx);
        }
        if self.filter.dn(&ev, cx.rank) && self.decide.next(cx) {
            self.push(false, Held::Dn(ev), cx);
        } else {
            cx.dn(ev)
        }
    }
    fn handle_up(&mut self, ev: Up, cx: &mut Cx<'_>) {
        if matches!(ev, Up::Exit) {
            self.flush(true, cx);
        }
        if self.filter.up(&ev, cx.rank) && self.decide.next(cx) {
            self.push(true, Held::Up(ev), cx);
        } else {
            cx.up(ev)
        }
    }
    fn poll_timeout(&self) -> Option<Time> {
        thoth_stack::time::earliest(self.due(&self.up), self.due(&self.dn))
    }
    fn handle_timeout(&mut self, cx: &mut Cx<'_>) {
        if self.due(&self.up).is_some_and(|t| t <= cx.now) {
            self.flush(true, cx);
        }
        if self.due(&self.dn).is_some_and(|t| t <= cx.now) {
            self.flush(false, cx);
        }
    }
    fn dump(&self, out: &mut Vec<Dump>) {
        out.push(Dump {
            layer: "shuffle",
            counters: vec![
                ("seen", self.decide.seen()),
                ("held", self.total_held),
                ("released", self.released),
                ("reordered", self.reordered),
            ],
            gauges: vec![("holding", self.holding() as u64)],
            state: format!("window={} hold={:?} filter={:?}", self.window, self.hold, self.filter),
            ..Dump::default()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{H, cast_from};
    use super::*;

    #[test]
    fn a_full_window_is_released_permuted_and_the_rest_by_timer() {
        let ms = Duration::from_millis(1);
        let (mut h, mut s) = (H::new(), Shuffle::with(3, ms, 1.0, Filter::all(), Some(5)));
        for b in ["a", "b", "c", "d"] {
            h.up(&mut s, cast_from(1, b));
        }
        let mut first = h.ups();
        assert_eq!(first.len(), 3);
        first.sort();
        assert_eq!(first, ["a", "b", "c"]);
        assert_eq!(s.holding(), 1);
        assert_eq!(s.poll_timeout(), Some(Time::ZERO + ms));
        h.now += ms;
        h.timeout(&mut s);
        assert_eq!(h.ups(), ["d"]);
        assert_eq!(s.poll_timeout(), None);
    }
}
