//! `partition`: cuts sets of members apart, and heals them.
//!
//! Protocol: none. The layer holds a set of directed cuts `(from, to)` between ranks; a
//! message event going up at the member of rank `to` from the member of rank `from` is
//! dropped if `(from, to)` is cut. It acts on receive only: every message crosses its
//! receiver's stack, so a cast is cut for exactly the receivers on the other side, which a
//! sender-side drop could not do. A member's own loopback is never cut. Control events pass
//! through. No header: the layer is wire-transparent.
//!
//! Parameters: `cut=0+1/2` (sides separated by `/`, ranks of a side by `+`: members of
//! different sides cannot hear each other; unlisted ranks hear everyone), `oneway=true`
//! (exactly two sides: only the second stops hearing the first). In code: `cut(a, b)`,
//! `cut_oneway(a, b)`, `heal()`, on the layer or on a `PartitionCtl` from `ctl()`, a handle
//! that shares the cut set (give one handle to every member's layer to cut a whole simulated
//! group at once, between steps).
//!
//! Properties: requires nothing, provides nothing. Events generated: none of its own.
//! Memory: one entry per directed cut pair named (at most the square of the ranks named).
//! Dump counters: `cut` (messages dropped), `passed`, `pairs` (directed pairs cut now).
//!
//! Tested by the unit tests below and `tests/debug.rs` (exact outputs, spec parsing, and a
//! simulated group where a cut stops deliveries across it and a heal resumes them).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};
use thoth_stack::{Args, Cx, Dn, Dump, Layer, Rank, Up};

type Pairs = BTreeSet<(u16, u16)>;

/// A handle on a partition layer's cuts, shareable between layers and with a test.
#[derive(Clone, Debug, Default)]
pub struct PartitionCtl {
    pairs: Arc<Mutex<Pairs>>,
}

impl PartitionCtl {
    /// A handle on a fresh, empty cut set (nothing cut).
    pub fn new() -> PartitionCtl {
        PartitionCtl::default()
    }

    fn lock(&self) -> MutexGuard<'_, Pairs> {
        // A panic elsewhere while holding the lock leaves a valid set: use it anyway.
        self.pairs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Members of `a` and of `b` stop hearing each other.
    pub fn cut(&self, a: &[Rank], b: &[Rank]) {
        self.cut_oneway(a, b);
        self.cut_oneway(b, a);
    }

    /// Members of `b` stop hearing members of `a` (`a` still hears `b`).
    pub fn cut_oneway(&self, a: &[Rank], b: &[Rank]) {
        let mut p = self.lock();
        for x in a {
            for y in b {
                if x != y {
                    p.insert((x.0, y.0));
                }
            }
        }
    }

    /// Removes every cut.
    pub fn heal(&self) {
        self.lock().clear();
    }

    /// Does the member of rank `to` not hear the member of rank `from`?
    pub fn is_cut(&self, from: Rank, to: Rank) -> bool {
        self.lock().contains(&(from.0, to.0))
    }

    /// Directed pairs cut now.
    pub fn pairs(&self) -> usize {
        self.lock().len()
    }
}

/// The `partition` layer.
#[derive(Clone, Debug, Default)]
pub struct Partition {
    ctl: PartitionCtl,
    cut: u64,
    passed: u64,
}

impl Partition {
    /// A layer with no cuts.
    pub fn new() -> Partition {
        Partition::default()
    }

    /// A layer whose cuts are `ctl`'s (shared with every other holder of the handle).
    pub fn with_ctl(ctl: PartitionCtl) -> Partition {
        Partition { ctl, cut: 0, passed: 0 }
    }

    /// A handle on this layer's cuts.
    pub fn ctl(&self) -> PartitionCtl {
        self.ctl.clone()
    }

    /// Members of `a` and of `b` stop hearing each other (`PartitionCtl::cut`).
    pub fn cut(&mut self, a: &[Rank], b: &[Rank]) {
        self.ctl.cut(a, b)
    }
    /// Members of `b` stop hearing members of `a` (`PartitionCtl::cut_oneway`).
    pub fn cut_oneway(&mut self, a: &[Rank], b: &[Rank]) {
        self.ctl.cut_oneway(a, b)
    }
    /// Removes every cut, for every holder of the shared handle (`PartitionCtl::heal`).
    pub fn heal(&mut self) {
        self.ctl.heal()
    }
}

/// Parses `0+1/2/3` into sides; each side non-empty, no rank on two sides.
pub fn parse_sides(s: &str) -> Result<Vec<Vec<Rank>>, String> {
    let bad = || format!("bad value `{s}` for `cut` (expected sides of ranks like 0+1/2)");
    let sides: Vec<Vec<Rank>> = s.split('/').map(super::parse_ranks).collect::<Option<_>>().ok_or_else(bad)?;
    if sides.len() < 2 {
        return Err(bad());
    }
    let mut seen = BTreeSet::new();
    for r in sides.iter().flatten() {
        if !seen.insert(r.0) {
            return Err(format!("rank {} is on two sides of `cut={s}`", r.0));
        }
    }
    Ok(sides)
}

pub(super) fn ctor(a: &mut Args) -> Result<Box<dyn Layer>, String> {
    let oneway: bool = a.get("oneway", false)?;
    let p = Partition::new();
    if let Some(spec) = a.raw("cut") {
        let sides = parse_sides(spec)?;
        if oneway {
            let [from, to] = &sides[..] else {
                return Err(format!("`oneway=true` needs exactly two sides, not `cut={spec}`"));
            };
            p.ctl.cut_oneway(from, to);
        } else {
            for (i, x) in sides.iter().enumerate() {
                for y in &sides[i + 1..] {
                    p.ctl.cut(x, y);
                }
            }
        }
    } else if oneway {
        return Err("`oneway` without `cut`".into());
    }
    Ok(Box::new(p))
}

impl Layer for Partition {
    fn name(&self) -> &'static str {
        "partition"
    }
    fn max_header(&self, _: &thoth_stack::View) -> usize {
        0
    }
    fn handle_dn(&mut self, ev: Dn, cx: &mut Cx<'_>) {
        cx.dn(ev)
    }
    fn handle_up(&mut self, ev: Up, cx: &mut Cx<'_>) {
        if let Up::Cast { from, .. } | Up::Send { from, .. } = &ev {
            if self.ctl.is_cut(*from, cx.rank) {
                self.cut += 1;
                return;
            }
            self.passed += 1;
        }
        cx.up(ev)
    }
    fn dump(&self, out: &mut Vec<Dump>) {
        let pairs = self.ctl.lock().clone();
        out.push(Dump {
            layer: "partition",
            counters: vec![("cut", self.cut), ("passed", self.passed)],
            gauges: vec![("pairs", pairs.len() as u64)],
            state: format!("cut pairs (from, to): {pairs:?}"),
            ..Dump::default()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{H, cast_from};
    use super::*;

    #[test]
    fn cut_drops_across_and_heal_resumes() {
        let (mut h, mut p) = (H::new(), Partition::new());
        p.cut(&[Rank(0), Rank(1)], &[Rank(2)]);
        for (from, b) in [(1, "a"), (2, "b"), (0, "own")] {
            h.up(&mut p, cast_from(from, b));
        }
        assert_eq!(h.ups(), ["a", "own"]);
        p.heal();
        h.up(&mut p, cast_from(2, "c"));
        assert_eq!(h.ups(), ["c"]);
        // One way: rank 0 stops hearing rank 2; rank 2 would still hear rank 0.
        p.cut_oneway(&[Rank(2)], &[Rank(0)]);
        assert!(p.ctl().is_cut(Rank(2), Rank(0)) && !p.ctl().is_cut(Rank(0), Rank(2)));
    }

    #[test]
    fn sides_parse_and_reject_overlap() {
        assert_eq!(parse_sides("0+1/2"), Ok(vec![vec![Rank(0), Rank(1)], vec![Rank(2)]]));
        assert!(parse_sides("0+1").is_err());
        assert!(parse_sides("0/0").unwrap_err().contains("two sides"));
    }
}
