//! Debug layers: fault injection (`drop`, `dup`, `delay`, `shuffle`, `partition`) and the
//! checkers `chk_fifo`, `chk_causal`, `chk_total`, `chk_vsync`, plus the pieces they share.
//!
//! **Fault layers** sit anywhere in a stack, usually at the bottom below the reliable layers
//! to make the network lossy (`"nak:drop(p=0.1)"`). They act on message events only (`Cast`,
//! `Send`, `CastUnrel`, `SendUnrel` going down; `Cast`, `Send` going up); control events pass
//! through. They push **no header**: a stack is wire-identical with and without them, so a
//! fault layer can be added to or removed from one member without breaking the others.
//!
//! Common parameters (`FaultArgs`):
//! - `dir=up|dn|both` (default `up`): losing on receive models a lossy network, per link.
//! - `from=1+2`, `to=0` (default: every rank): only traffic from / to these ranks. Going up,
//!   `from` is the sender and `to` is this member; going down, `from` is this member and `to`
//!   the destination of a `Send`. A `Cast` going down has no single destination, so it
//!   matches only when `to` is not given (per-destination loss of casts: use `dir=up`).
//!   Acting on a cast going down acts for every member, this one included (the endpoint
//!   makes the member's own loopback copy below the stack).
//! - `loopback=true|false` (default `false`): a member's own messages coming back up (its
//!   cast looped back by the endpoint, a send to itself) never crossed a network and are left
//!   alone unless this is set.
//! - `seed=N`: the layer's own random stream. Default: forked from `cx.rng` at the first
//!   random draw, so a simulated run stays a function of its seed.
//! - `nth=3+7+9` (where the layer has a script): act on exactly the 3rd, 7th and 9th matching
//!   message (counted from 1 over every matching message the layer sees, both directions).
//!
//! **Checkers** sit above a layer that promises some order and fail loudly when it breaks:
//! they count the violation, emit `Up::Error` (the application gets `Event::Error`; the
//! simulator records it; tests assert none), and still pass the message up (a checker is
//! not a filter). The pattern (`Checker`, `Reporter`, `PerSender`): on the way down the
//! sender stamps each checked message with what it intends (its own header variant `Chk`);
//! on the way up the receiver compares the stamp with what it has recorded per sender and
//! reports a `Violation`. `chk_fifo` stamps casts with a per-sender sequence number;
//! `chk_vsync` stamps the view id and compares digests of the delivered set per view after
//! the view change; `chk_total` stamps (sender, seq) and a claim about the sender's delivery
//! sequence so far (a count and a running hash), compared with the receiver's own;
//! `chk_causal` stamps its vector clock, every cause delivered before its effect.
//!
//! Tested by the unit tests in each file, `tests/debug.rs` (fault layers: exact outputs,
//! seeded determinism, bolero models, simulated groups, partitions, spec parsing) and
//! `tests/chk_fifo.rs` (the checker, alone and in simulated groups over faulty stacks).

pub mod chk_causal;
pub mod chk_fifo;
pub mod chk_total;
pub mod chk_vsync;
pub mod delay;
pub mod drop;
pub mod dup;
pub mod moves;
pub mod partition;
pub mod shuffle;

use std::collections::BTreeMap;
use thoth_stack::{Args, Cx, Dn, Rank, Registry, Rng, Up};

/// Registers every debug layer under its spec name.
pub fn register(r: &mut Registry) {
    r.register("drop", "debug: loses message events (random `p=` or scripted `nth=`)", drop::ctor);
    r.register("dup", "debug: duplicates message events (random `p=` or scripted `nth=`)", dup::ctor);
    r.register("delay", "debug: holds message events for `ms=` (+ up to `jitter_ms=`)", delay::ctor);
    r.register("shuffle", "debug: reorders message events within a bounded window", shuffle::ctor);
    r.register("partition", "debug: cuts sets of ranks apart (`cut=0+1/2`), receive side", partition::ctor);
    r.register("chk_causal", "checker: reports casts delivered before a cast they depend on", chk_causal::ctor);
    r.register("chk_fifo", "checker: reports FIFO / exactly-once violations of casts", chk_fifo::ctor);
    r.register(
        "chk_total",
        "checker: reports casts delivered in different orders at different members",
        chk_total::ctor,
    );
    r.register("chk_vsync", "checker: reports virtual-synchrony violations of casts across views", chk_vsync::ctor);
}

/// Which directions a fault layer acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Dir {
    /// On receive (events going up): the default.
    #[default]
    Up,
    /// On send (events going down).
    Dn,
    /// On receive and on send.
    Both,
}

impl Dir {
    /// Acts on events going up (`Up` or `Both`).
    pub fn up(self) -> bool {
        matches!(self, Dir::Up | Dir::Both)
    }
    /// Acts on events going down (`Dn` or `Both`).
    pub fn dn(self) -> bool {
        matches!(self, Dir::Dn | Dir::Both)
    }
}

impl std::str::FromStr for Dir {
    type Err = ();
    fn from_str(s: &str) -> Result<Dir, ()> {
        match s {
            "up" => Ok(Dir::Up),
            "dn" | "down" => Ok(Dir::Dn),
            "both" => Ok(Dir::Both),
            _ => Err(()),
        }
    }
}

/// A set of ranks; `None` is every rank.
pub type Ranks = Option<Vec<Rank>>;

fn has(set: &Ranks, r: Rank) -> bool {
    set.as_ref().is_none_or(|v| v.contains(&r))
}

/// Parses `1+2+5` into ranks (a single rank is `3`).
pub fn parse_ranks(s: &str) -> Option<Vec<Rank>> {
    s.split('+').map(|x| x.trim().parse::<u16>().ok().map(Rank)).collect()
}

/// Parses `3+7+9` into 1-based message numbers.
pub fn parse_nth(s: &str) -> Option<Vec<u64>> {
    s.split('+').map(|x| x.trim().parse::<u64>().ok().filter(|&n| n > 0)).collect()
}

/// Which message events a fault layer acts on.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Filter {
    /// The directions acted on (`dir=`).
    pub dir: Dir,
    /// Only messages from these ranks (`from=`): the sender going up, this member going down.
    pub from: Ranks,
    /// Only messages to these ranks (`to=`): this member going up, a `Send`'s destination
    /// going down (a cast going down matches only when this is `None`).
    pub to: Ranks,
    /// Also act on this member's own messages coming back up (`loopback=`).
    pub loopback: bool,
}

impl Filter {
    /// Every message arriving from another member (the defaults).
    pub fn all() -> Filter {
        Filter::default()
    }

    /// Does `ev`, going up at the member of rank `me`, match?
    pub fn up(&self, ev: &Up, me: Rank) -> bool {
        match ev {
            Up::Cast { from, .. } | Up::Send { from, .. } => {
                self.dir.up() && (self.loopback || *from != me) && has(&self.from, *from) && has(&self.to, me)
            }
            _ => false,
        }
    }

    /// Does `ev`, going down at the member of rank `me`, match?
    pub fn dn(&self, ev: &Dn, me: Rank) -> bool {
        let to = match ev {
            Dn::Cast(_) | Dn::CastUnrel(_) => self.to.is_none(),
            Dn::Send(r, _) | Dn::SendUnrel(r, _) => has(&self.to, *r),
            _ => return false,
        };
        self.dir.dn() && to && has(&self.from, me)
    }
}

/// The parameters every fault layer shares, read from a spec item.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct FaultArgs {
    /// Which messages the layer acts on (`dir`, `from`, `to`, `loopback`).
    pub filter: Filter,
    /// `seed=`: the layer's own random stream; `None` forks one from `cx.rng` at first use.
    pub seed: Option<u64>,
}

impl FaultArgs {
    /// Reads `dir`, `from`, `to`, `loopback` and `seed`.
    pub fn read(a: &mut Args) -> Result<FaultArgs, String> {
        let dir = a.get("dir", Dir::Up).map_err(|e| format!("{e} (expected up, dn or both)"))?;
        let from = ranks_arg(a, "from")?;
        let to = ranks_arg(a, "to")?;
        let loopback = a.get("loopback", false)?;
        let seed = match a.raw("seed") {
            None => None,
            Some(v) => Some(v.parse::<u64>().map_err(|_| format!("bad value `{v}` for `seed`"))?),
        };
        Ok(FaultArgs { filter: Filter { dir, from, to, loopback }, seed })
    }
}

fn ranks_arg(a: &mut Args, key: &str) -> Result<Ranks, String> {
    match a.raw(key) {
        None => Ok(None),
        Some(v) => {
            parse_ranks(v).map(Some).ok_or_else(|| format!("bad value `{v}` for `{key}` (expected ranks like 1+2)"))
        }
    }
}

/// Reads a probability parameter: a number in `[0, 1]`.
pub fn prob_arg(a: &mut Args, key: &str, default: f64) -> Result<f64, String> {
    let p: f64 = a.get(key, default)?;
    if (0.0..=1.0).contains(&p) { Ok(p) } else { Err(format!("`{key}={p}` is not a probability in [0, 1]")) }
}

/// Reads `nth=3+7+9`, if given.
pub fn nth_arg(a: &mut Args) -> Result<Vec<u64>, String> {
    match a.raw("nth") {
        None => Ok(Vec::new()),
        Some(v) => parse_nth(v).ok_or_else(|| format!("bad value `{v}` for `nth` (expected numbers from 1, like 3+7)")),
    }
}

/// A fault layer's randomness and script: decides, message by message, whether to act.
#[derive(Clone, Debug)]
pub struct Decide {
    /// Probability of acting on a matching message.
    pub p: f64,
    /// 1-based numbers of matching messages to act on, sorted, deduplicated.
    script: Vec<u64>,
    seed: Option<u64>,
    rng: Option<Rng>,
    /// Matching messages seen so far.
    seen: u64,
}

impl Decide {
    /// Acts with probability `p`, and always on the matching messages numbered in `script`
    /// (1-based, any order, repeats ignored); `seed` as in `FaultArgs::seed`.
    pub fn new(p: f64, script: impl IntoIterator<Item = u64>, seed: Option<u64>) -> Decide {
        let mut script: Vec<u64> = script.into_iter().collect();
        script.sort_unstable();
        script.dedup();
        Decide { p, script, seed, rng: None, seen: 0 }
    }

    /// Counts one matching message; true if the layer acts on it (scripted, or drawn).
    pub fn next(&mut self, cx: &mut Cx<'_>) -> bool {
        self.seen += 1;
        if self.script.binary_search(&self.seen).is_ok() {
            return true;
        }
        let p = self.p;
        p > 0.0 && self.rng(cx).chance(p)
    }

    /// The layer's random stream, seeded at first use.
    pub fn rng(&mut self, cx: &mut Cx<'_>) -> &mut Rng {
        let seed = self.seed;
        self.rng.get_or_insert_with(|| match seed {
            Some(s) => Rng::new(s),
            None => cx.rng.fork(),
        })
    }

    /// Matching messages counted so far by `next`.
    pub fn seen(&self) -> u64 {
        self.seen
    }
}

/// A message event held by a layer (delay, shuffle), in either direction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Held {
    /// Going up, toward the application.
    Up(Up),
    /// Going down, toward the network.
    Dn(Dn),
}

impl Held {
    /// Releases the event in its own direction (`cx.up` or `cx.dn`).
    pub fn emit(self, cx: &mut Cx<'_>) {
        match self {
            Held::Up(e) => cx.up(e),
            Held::Dn(e) => cx.dn(e),
        }
    }
}

// ---------------------------------------------------------------- the checker pattern

/// A broken guarantee a checker found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// A short kind, also the counter's name in `dump` (`gap`, `duplicate`, `reorder`).
    pub kind: &'static str,
    /// The rank of the sender whose message showed it.
    pub from: Rank,
    /// What was expected and what came, for the error event.
    pub detail: String,
}

/// The core of a checker: what a sender stamps, and what a receiver concludes.
///
/// A checker layer owns a `Checker`, a `Reporter` and its header (`NoHdr` | `Chk(stamp)`);
/// the layer does the header work and the reporting, the `Checker` only the logic, which
/// makes it testable against a model on its own.
pub trait Checker {
    /// What the sender puts in its `Chk` header for each checked message.
    type Stamp;
    /// The stamp of the next checked message this member (rank `me`) sends.
    fn stamp(&mut self, me: Rank) -> Self::Stamp;
    /// Records the arrival of a checked message from `from`; the violations it shows.
    fn arrive(&mut self, from: Rank, stamp: &Self::Stamp) -> Vec<Violation>;
}

/// Counts violations by kind and raises each as `Up::Error { layer, detail }`.
#[derive(Clone, Debug, Default)]
pub struct Reporter {
    layer: &'static str,
    counts: BTreeMap<&'static str, u64>,
}

impl Reporter {
    /// A reporter for the layer named `layer` (the `Up::Error`'s `layer`), with a zero
    /// counter for each of `kinds` so that `dump` lists them before any violation.
    pub fn new(layer: &'static str, kinds: &[&'static str]) -> Reporter {
        Reporter { layer, counts: kinds.iter().map(|&k| (k, 0)).collect() }
    }

    /// Counts `v` under its kind and sends `Up::Error` up, naming the kind, the sender's and
    /// this member's ranks, and the detail.
    pub fn report(&mut self, v: Violation, cx: &mut Cx<'_>) {
        *self.counts.entry(v.kind).or_default() += 1;
        let detail = format!("{} from rank {} at rank {}: {}", v.kind, v.from.0, cx.rank.0, v.detail);
        cx.up(Up::Error { layer: self.layer, detail });
    }

    /// Violations reported of this kind (0 for a kind never seen).
    pub fn count(&self, kind: &str) -> u64 {
        self.counts.get(kind).copied().unwrap_or(0)
    }

    /// Violations reported, of every kind.
    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    /// `(kind, count)` pairs for `dump`, in name order.
    pub fn counters(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        self.counts.iter().map(|(&k, &v)| (k, v))
    }
}

/// Per-sender state indexed by rank, grown on demand. Its size is bounded by the largest
/// rank asked for: a checker layer asks only for ranks inside the view (it drops and counts
/// the others before they reach its `Checker`).
#[derive(Clone, Debug, Default)]
pub struct PerSender<T> {
    v: Vec<T>,
}

impl<T: Default> PerSender<T> {
    /// The state of the sender of rank `r`, created (`T::default`) if not there yet.
    pub fn get_mut(&mut self, r: Rank) -> &mut T {
        let i = r.index();
        if self.v.len() <= i {
            self.v.resize_with(i + 1, T::default);
        }
        &mut self.v[i]
    }

    /// Every rank's state, rank 0 up to the largest asked for (defaults for ranks never asked).
    pub fn iter(&self) -> impl Iterator<Item = (Rank, &T)> {
        self.v.iter().enumerate().map(|(i, t)| (Rank(i as u16), t))
    }
}

/// A one-layer harness for the unit tests: a view of three, this member rank 0.
#[cfg(test)]
pub(crate) mod testkit {
    use std::collections::{BTreeSet, VecDeque};
    use thoth_stack::{Bytes, Cx, Dn, EndpointId, Layer, Msg, Rank, Rng, Time, Up, View};

    pub struct H {
        pub view: View,
        pub rng: Rng,
        pub up: VecDeque<Up>,
        pub dn: VecDeque<Dn>,
        pub now: Time,
        /// Layers started (`init`), by name, as the endpoint starts them before their
        /// first event.
        started: BTreeSet<&'static str>,
    }

    impl H {
        pub fn new() -> H {
            let view = View::initial((1..=3).map(EndpointId).collect());
            let (up, dn, started) = (VecDeque::new(), VecDeque::new(), BTreeSet::new());
            H { view, rng: Rng::new(1), up, dn, now: Time::ZERO, started }
        }
        fn cx(&mut self) -> Cx<'_> {
            Cx::new(self.now, &self.view, Rank(0), &mut self.rng, &mut self.up, &mut self.dn)
        }
        fn init(&mut self, l: &mut impl Layer) {
            if self.started.insert(l.name()) {
                l.init(&mut self.cx());
            }
        }
        pub fn up(&mut self, l: &mut impl Layer, mut ev: Up) {
            self.init(l);
            if let Some(m) = ev.carried_mut() {
                m.unseal();
            }
            l.handle_up(ev, &mut self.cx());
        }
        pub fn dn(&mut self, l: &mut impl Layer, ev: Dn) {
            self.init(l);
            l.handle_dn(ev, &mut self.cx());
        }
        pub fn timeout(&mut self, l: &mut impl Layer) {
            self.init(l);
            l.handle_timeout(&mut self.cx());
        }
        /// The bodies of the message events that went up, drained.
        pub fn ups(&mut self) -> Vec<String> {
            self.up
                .drain(..)
                .map(|e| match e {
                    Up::Cast { msg, .. } | Up::Send { msg, .. } => {
                        String::from_utf8_lossy(&msg.into_payload()).into_owned()
                    }
                    other => format!("{other:?}"),
                })
                .collect()
        }
    }

    pub fn cast_from(r: u16, body: &str) -> Up {
        Up::Cast { from: Rank(r), msg: Msg::new(Bytes::from(body.to_string())) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rank_lists_and_scripts() {
        assert_eq!(parse_ranks("1+2"), Some(vec![Rank(1), Rank(2)]));
        assert_eq!(parse_ranks("0"), Some(vec![Rank(0)]));
        assert_eq!(parse_ranks("1+x"), None);
        assert_eq!(parse_ranks(""), None);
        assert_eq!(parse_nth("3+7+9"), Some(vec![3, 7, 9]));
        assert_eq!(parse_nth("0"), None);
    }

    #[test]
    fn filter_matches_by_direction_rank_and_loopback() {
        use thoth_stack::{Bytes, Msg};
        let m = || Msg::new(Bytes::new());
        let f = Filter { from: Some(vec![Rank(1)]), ..Filter::all() };
        assert!(f.up(&Up::Cast { from: Rank(1), msg: m() }, Rank(0)));
        assert!(!f.up(&Up::Cast { from: Rank(2), msg: m() }, Rank(0)));
        assert!(!f.up(&Up::Exit, Rank(0)));
        assert!(!f.dn(&Dn::Cast(m()), Rank(1)), "dir=up by default");
        // Loopback is spared unless asked for.
        assert!(!Filter::all().up(&Up::Cast { from: Rank(0), msg: m() }, Rank(0)));
        assert!(Filter { loopback: true, ..Filter::all() }.up(&Up::Cast { from: Rank(0), msg: m() }, Rank(0)));
        // Down: casts match only an unrestricted `to`.
        let d = Filter { dir: Dir::Dn, to: Some(vec![Rank(2)]), ..Filter::all() };
        assert!(!d.dn(&Dn::Cast(m()), Rank(0)));
        assert!(d.dn(&Dn::Send(Rank(2), m()), Rank(0)));
        assert!(!d.dn(&Dn::SendUnrel(Rank(1), m()), Rank(0)));
        assert!(Filter { dir: Dir::Both, ..Filter::all() }.dn(&Dn::CastUnrel(m()), Rank(0)));
    }
}
