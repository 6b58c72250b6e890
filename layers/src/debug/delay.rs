//! `delay`: holds message events and releases them later.
//!
//! Protocol: none. A matching message event (see `Filter` in `debug/mod.rs`), picked with
//! probability `p`, is held until `now + ms + j`, `j` uniform in `[0, jitter_ms]`, then
//! passed on in its own direction from `handle_timeout`. Without jitter the release order is
//! the arrival order (FIFO per direction); jitter reorders. Events that do not match pass at
//! once (so they may overtake held ones). `Exit` going up and `Leave` going down first
//! release everything held in their direction, so nothing is delivered after them. No
//! header: the layer is wire-transparent.
//!
//! Parameters: `ms=` (default 10), `jitter_ms=` (default 0), `p=` (default 1), `max=`
//! (default 1024, at least 1), and the common `dir=`, `from=`, `to=`, `loopback=`, `seed=`.
//! In code: `Delay::new(Duration, jitter, Filter::all())`.
//!
//! Memory: at most `max` held events. When full, the held event due first is released early
//! to make room (counted as `early`): nothing is lost and FIFO order is kept; only that
//! event's delay is shortened.
//!
//! Properties: requires nothing, provides nothing. Events generated: the held events, later.
//! Dump counters: `seen`, `delayed`, `released`, `early`, `held` (now).
//!
//! Tested by the unit tests below and `tests/debug.rs` (exact release times and order, the
//! memory bound, and a bolero model: the multiset of messages is preserved).

use super::{Decide, FaultArgs, Filter, Held, prob_arg};
use std::collections::BTreeMap;
use thoth_stack::{Args, Cx, Dn, Dump, Duration, Layer, Time, Up};

/// The `delay` layer.
#[derive(Clone, Debug)]
pub struct Delay {
    filter: Filter,
    decide: Decide,
    delay: Duration,
    jitter: Duration,
    max: usize,
    /// Held events by (release time, arrival number).
    held: BTreeMap<(Time, u64), Held>,
    arrivals: u64,
    delayed: u64,
    released: u64,
    early: u64,
}

impl Delay {
    /// Delays every matching message by `delay` plus up to `jitter`.
    pub fn new(delay: Duration, jitter: Duration, filter: Filter) -> Delay {
        Delay::with(delay, jitter, 1.0, 1024, filter, None)
    }

    /// The general form. `max` is raised to 1 if zero.
    pub fn with(delay: Duration, jitter: Duration, p: f64, max: usize, filter: Filter, seed: Option<u64>) -> Delay {
        Delay {
            filter,
            decide: Decide::new(p, [], seed),
            delay,
            jitter,
            max: max.max(1),
            held: BTreeMap::new(),
            arrivals: 0,
            delayed: 0,
            released: 0,
            early: 0,
        }
    }

    /// Events held now.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    fn hold(&mut self, ev: Held, cx: &mut Cx<'_>) {
        while self.held.len() >= self.max {
            if let Some((_, e)) = self.held.pop_first() {
                self.early += 1;
                self.released += 1;
                e.emit(cx);
            }
        }
        let j = self.jitter.as_nanos().min(u64::MAX as u128 - 1) as u64;
        let extra = if j > 0 { self.decide.rng(cx).below(j + 1) } else { 0 };
        let at = cx.now + self.delay + Duration::from_nanos(extra);
        self.arrivals += 1;
        self.delayed += 1;
        self.held.insert((at, self.arrivals), ev);
    }

    /// Releases, in order, every held event of one direction.
    fn flush(&mut self, up: bool, cx: &mut Cx<'_>) {
        let keys: Vec<(Time, u64)> =
            self.held.iter().filter(|(_, e)| matches!(e, Held::Up(_)) == up).map(|(k, _)| *k).collect();
        for k in keys {
            if let Some(e) = self.held.remove(&k) {
                self.released += 1;
                e.emit(cx);
            }
        }
    }
}

pub(super) fn ctor(a: &mut Args) -> Result<Box<dyn Layer>, String> {
    let f = FaultArgs::read(a)?;
    let ms: u64 = a.get("ms", 10)?;
    let jitter: u64 = a.get("jitter_ms", 0)?;
    let p = prob_arg(a, "p", 1.0)?;
    let max: usize = a.get("max", 1024)?;
    if max == 0 {
        return Err("`max` must be at least 1".into());
    }
    let (ms, jitter) = (Duration::from_millis(ms), Duration::from_millis(jitter));
    Ok(Box::new(Delay::with(ms, jitter, p, max, f.filter, f.seed)))
}

impl Layer for Delay {
    fn name(&self) -> &'static str {
        "delay"
    }
    fn max_header(&self, _: &thoth_stack::View) -> usize {
        0
    }
    fn handle_dn(&mut self, ev: Dn, cx: &mut Cx<'_>) {
        if matches!(ev, Dn::Leave) {
            self.flush(false, cx);
        }
        if self.filter.dn(&ev, cx.rank) && self.decide.next(cx) {
            self.hold(Held::Dn(ev), cx);
        } else {
            cx.dn(ev)
        }
    }
    fn handle_up(&mut self, ev: Up, cx: &mut Cx<'_>) {
        if matches!(ev, Up::Exit) {
            self.flush(true, cx);
        }
        if self.filter.up(&ev, cx.rank) && self.decide.next(cx) {
            self.hold(Held::Up(ev), cx);
        } else {
            cx.up(ev)
        }
    }
    fn poll_timeout(&self) -> Option<Time> {
        self.held.first_key_value().map(|((t, _), _)| *t)
    }
    fn handle_timeout(&mut self, cx: &mut Cx<'_>) {
        while let Some(entry) = self.held.first_entry() {
            if entry.key().0 > cx.now {
                break;
            }
            self.released += 1;
            entry.remove().emit(cx);
        }
    }
    fn dump(&self, out: &mut Vec<Dump>) {
        out.push(Dump {
            layer: "delay",
            counters: vec![
                ("seen", self.decide.seen()),
                ("delayed", self.delayed),
                ("released", self.released),
                ("early", self.early),
            ],
            gauges: vec![("held", self.held.len() as u64)],
            state: format!("delay={:?} jitter={:?} max={} filter={:?}", self.delay, self.jitter, self.max, self.filter),
            ..Dump::default()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{H, cast_from};
    use super::*;

    #[test]
    fn holds_then_releases_in_order_and_exit_flushes() {
        let ms = Duration::from_millis(1);
        let (mut h, mut d) = (H::new(), Delay::new(10 * ms, Duration::ZERO, Filter::all()));
        h.up(&mut d, cast_from(1, "a"));
        h.now += 2 * ms;
        h.up(&mut d, cast_from(2, "b"));
        h.up(&mut d, cast_from(0, "own")); // loopback passes at once
        assert_eq!(h.ups(), ["own"]);
        assert_eq!(d.poll_timeout(), Some(Time::ZERO + 10 * ms));
        h.now = Time::ZERO + 10 * ms;
        h.timeout(&mut d);
        assert_eq!(h.ups(), ["a"]);
        h.up(&mut d, cast_from(1, "c"));
        h.up(&mut d, Up::Exit);
        assert_eq!(h.ups(), ["b", "c", "Exit"]);
        assert_eq!(d.poll_timeout(), None);
    }
}
