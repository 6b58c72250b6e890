//! Live metrics: what a running member's layers counted, readable while it runs.
//!
//! Each layer says what it counts in its `Dump`: counters (only ever grow), gauges (a level
//! now: bytes held, a queue's length, a setting) and histograms (`Hist`: delays, durations,
//! depths). A layer lives for one view, so its counters start from zero with each view; the
//! endpoint keeps what the stacks of earlier views counted (`Tally`) and adds it to the
//! live stack's, so a counter read from `Endpoint::metrics` (or, on a running member,
//! `udp::Handle::metrics`) only grows for the life of the endpoint, as an operator's
//! dashboards expect. Gauges are the live stack's.
//!
//! Each layer instance has its own key (`Key`): its name and how many layers of that name
//! are above it in the stack (`instance`), so the two `frag` layers of one stack never add
//! into each other. A stack of one spec has the same layers in every view, so the key of a
//! layer is the same from view to view.
//!
//! Nothing here is on the data path: a layer increments its own fields as it always did,
//! and a histogram's `record` is an index computation and an increment. The dump is taken
//! when metrics are asked for, and at each view change (to fold the ending stack's counts).
//!
//! Tested below (buckets, merge, keys, folding across views) and, on running members, by
//! `thoth/tests/metrics.rs`.

use crate::endpoint::Stats;
use crate::ids::GroupId;
use crate::layer::Dump;
use std::collections::BTreeMap;

/// Buckets of a `Hist`: bucket `i` counts values below `2^i` (and at least `2^(i-1)`);
/// the last one counts everything above.
pub const BUCKETS: usize = 40;

/// A histogram over powers of two: fixed size, no allocation, `record` in a few
/// instructions; exact count and sum. Durations are recorded in microseconds (their names
/// end in `_us`), so the buckets run from 1 µs to about six days.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Hist {
    buckets: [u64; BUCKETS],
    count: u64,
    sum: u64,
}

impl Default for Hist {
    fn default() -> Hist {
        Hist { buckets: [0; BUCKETS], count: 0, sum: 0 }
    }
}

impl Hist {
    /// Records one value (a duration: in microseconds, see `record_duration`).
    pub fn record(&mut self, v: u64) {
        let i = ((u64::BITS - v.leading_zeros()) as usize).min(BUCKETS - 1);
        self.buckets[i] += 1;
        self.count += 1;
        self.sum = self.sum.saturating_add(v);
    }

    /// Records a duration in microseconds.
    pub fn record_duration(&mut self, d: crate::time::Duration) {
        self.record(d.as_micros() as u64)
    }

    /// Values recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// How many values each bucket holds (see `BUCKETS`).
    pub fn buckets(&self) -> &[u64; BUCKETS] {
        &self.buckets
    }

    /// A histogram from its parts, if they agree (the buckets add up to `count`).
    pub fn from_parts(buckets: [u64; BUCKETS], count: u64, sum: u64) -> Option<Hist> {
        let total = buckets.iter().try_fold(0u64, |t, &n| t.checked_add(n))?;
        (total == count).then_some(Hist { buckets, count, sum })
    }

    /// The sum of the values recorded (saturating at `u64::MAX`).
    pub fn sum(&self) -> u64 {
        self.sum
    }

    /// Adds `other`'s observations to these.
    pub fn merge(&mut self, other: &Hist) {
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            *a += b;
        }
        self.count += other.count;
        self.sum = self.sum.saturating_add(other.sum);
    }

    /// The largest value bucket `i` holds (`u64::MAX` for the last, open one).
    pub fn upper(i: usize) -> u64 {
        if i + 1 >= BUCKETS { u64::MAX } else { (1u64 << i) - 1 }
    }

    /// An upper bound of the `q` quantile (0 ≤ q ≤ 1): the top of the bucket it falls in.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        let mut total = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            total += n;
            if total >= rank {
                return Some(Hist::upper(i));
            }
        }
        None
    }
}

impl core::fmt::Debug for Hist {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "Hist {{ count: {}, sum: {}, p50: {:?}, p99: {:?} }}",
            self.count,
            self.sum,
            self.quantile(0.5),
            self.quantile(0.99)
        )
    }
}

/// Which layer instance a layer's metrics are of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    /// The group (one endpoint: its own; a `Groups` machine holds many).
    pub group: GroupId,
    /// The layer's name (`Layer::name`).
    pub layer: &'static str,
    /// How many layers of this name are above it in the stack (0 for the top one).
    pub instance: u32,
}

/// One layer instance's metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerMetrics {
    /// Which layer instance these are of.
    pub key: Key,
    /// Since the endpoint started.
    pub counters: Vec<(&'static str, u64)>,
    /// Now.
    pub gauges: Vec<(&'static str, u64)>,
    /// Since the endpoint started.
    pub hists: Vec<(&'static str, Hist)>,
    /// The live layer's state line (`Dump::state`); empty for a layer no longer in the stack.
    pub state: String,
}

impl LayerMetrics {
    /// The counter of this name, if the layer has one.
    pub fn counter(&self, name: &str) -> Option<u64> {
        find(&self.counters, name)
    }
    /// The gauge of this name, if the layer has one.
    pub fn gauge(&self, name: &str) -> Option<u64> {
        find(&self.gauges, name)
    }
    /// The histogram of this name, if the layer has one.
    pub fn hist(&self, name: &str) -> Option<&Hist> {
        self.hists.iter().find(|(n, _)| *n == name).map(|(_, h)| h)
    }
}

fn find(v: &[(&'static str, u64)], name: &str) -> Option<u64> {
    v.iter().find(|(n, _)| *n == name).map(|&(_, v)| v)
}

/// What a machine counted: its layers', top first (a `Groups` machine: group by group), and
/// its endpoints' own counters (summed over its groups).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Metrics {
    /// Each layer instance's metrics, top first.
    pub layers: Vec<LayerMetrics>,
    /// The endpoint's own counters (`Stats`), summed over the groups of a `Groups` machine.
    pub endpoint: Stats,
}

impl Metrics {
    /// The metrics of layer `layer`'s instance `instance` (of any group).
    pub fn layer(&self, layer: &str, instance: u32) -> Option<&LayerMetrics> {
        self.layers.iter().find(|m| m.key.layer == layer && m.key.instance == instance)
    }
}

/// Keys a stack's dumps (top first): each gets its name and how many of that name came
/// before it.
fn keyed(group: GroupId, dumps: Vec<Dump>) -> impl Iterator<Item = (Key, Dump)> {
    let mut seen: BTreeMap<&'static str, u32> = BTreeMap::new();
    dumps.into_iter().map(move |d| {
        let n = seen.entry(d.layer).or_default();
        let key = Key { group, layer: d.layer, instance: *n };
        *n += 1;
        (key, d)
    })
}

/// What the stacks of earlier views counted, layer instance by layer instance.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    done: BTreeMap<Key, Done>,
}

#[derive(Clone, Debug, Default)]
struct Done {
    counters: Vec<(&'static str, u64)>,
    hists: Vec<(&'static str, Hist)>,
}

impl Done {
    fn add(&mut self, counters: &[(&'static str, u64)], hists: &[(&'static str, Hist)]) {
        for &(name, v) in counters {
            match self.counters.iter_mut().find(|(n, _)| *n == name) {
                Some((_, t)) => *t += v,
                None => self.counters.push((name, v)),
            }
        }
        for (name, h) in hists {
            match self.hists.iter_mut().find(|(n, _)| n == name) {
                Some((_, t)) => t.merge(h),
                None => self.hists.push((name, *h)),
            }
        }
    }
}

impl Tally {
    /// Keeps what the dumps of a stack that ends (top first) counted.
    pub fn fold(&mut self, group: GroupId, dumps: Vec<Dump>) {
        for (key, d) in keyed(group, dumps) {
            self.done.entry(key).or_default().add(&d.counters, &d.hists);
        }
    }

    /// The live stack's dumps (top first) with what earlier stacks counted added: counters
    /// and histograms since the start, gauges now. A layer instance no longer in the stack
    /// keeps its totals and shows no gauges.
    pub fn with_live(&self, group: GroupId, dumps: Vec<Dump>) -> Vec<LayerMetrics> {
        let mut out = Vec::new();
        let mut live = Vec::new();
        for (key, d) in keyed(group, dumps) {
            let mut total = Done::default();
            if let Some(done) = self.done.get(&key) {
                total.add(&done.counters, &done.hists);
            }
            total.add(&d.counters, &d.hists);
            live.push(key);
            out.push(LayerMetrics {
                key,
                counters: total.counters,
                gauges: d.gauges,
                hists: total.hists,
                state: d.state,
            });
        }
        for (key, done) in
            self.done.range(Key { group, layer: "", instance: 0 }..).take_while(|(k, _)| k.group == group)
        {
            if !live.contains(key) {
                out.push(LayerMetrics {
                    key: *key,
                    counters: done.counters.clone(),
                    gauges: Vec::new(),
                    hists: done.hists.clone(),
                    state: String::new(),
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_powers_of_two() {
        let mut h = Hist::default();
        for v in [0, 1, 2, 3, 4, 1000] {
            h.record(v);
        }
        assert_eq!((h.count(), h.sum()), (6, 1010));
        // Up to 0: {0}; 1: {1}; 3: {2, 3}; 7: {4}; ... 1023: {1000}.
        assert_eq!(&h.buckets()[..4], &[1, 1, 2, 1]);
        assert_eq!((h.buckets()[10], Hist::upper(10)), (1, 1023));
        assert_eq!(h.buckets().iter().sum::<u64>(), h.count());
        assert_eq!(Hist::from_parts(*h.buckets(), 6, 1010), Some(h));
        assert_eq!(Hist::from_parts(*h.buckets(), 7, 1010), None, "buckets and count disagree");
        assert_eq!(h.quantile(0.5), Some(3));
        assert_eq!(h.quantile(1.0), Some(1023));
        h.record(u64::MAX);
        assert_eq!(h.quantile(1.0), Some(u64::MAX), "the top bucket is open");
        let mut m = Hist::default();
        m.merge(&h);
        m.merge(&h);
        assert_eq!((m.count(), m.quantile(0.5)), (14, Some(3)));
    }

    fn dump(layer: &'static str, casts: u64, held: u64, delay: u64) -> Dump {
        let mut h = Hist::default();
        h.record(delay);
        Dump {
            layer,
            counters: vec![("casts", casts)],
            gauges: vec![("held", held)],
            hists: vec![("delay_us", h)],
            ..Dump::default()
        }
    }

    #[test]
    fn counters_add_up_across_views_per_instance() {
        let g = GroupId(7);
        let mut t = Tally::default();
        // Two `frag` instances: each keeps its own count.
        t.fold(g, vec![dump("frag", 5, 9, 10), dump("nak", 3, 1, 10), dump("frag", 100, 9, 10)]);
        let m = t.with_live(g, vec![dump("frag", 1, 2, 10), dump("nak", 1, 0, 10), dump("frag", 1, 3, 10)]);
        let keys: Vec<_> =
            m.iter().map(|l| (l.key.layer, l.key.instance, l.counter("casts"), l.gauge("held"))).collect();
        assert_eq!(
            keys,
            [("frag", 0, Some(6), Some(2)), ("nak", 0, Some(4), Some(0)), ("frag", 1, Some(101), Some(3))],
            "counters are summed per instance, gauges are the live stack's"
        );
        assert_eq!(m[0].hist("delay_us").map(Hist::count), Some(2));
        // A layer no longer in the stack keeps its totals.
        let m = t.with_live(g, vec![dump("nak", 1, 0, 10)]);
        assert_eq!(m.len(), 3);
        assert_eq!(m.iter().find(|l| l.key.instance == 1).and_then(|l| l.counter("casts")), Some(100));
        // Another group's tally is its own.
        assert_eq!(t.with_live(GroupId(8), vec![dump("nak", 1, 0, 10)])[0].counter("casts"), Some(1));
    }
}
