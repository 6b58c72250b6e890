//! The simulated network: directed links with their faults, partitions, and the accounting
//! of every datagram's fate.
//!
//! Each directed link `from → to` has a `Link`: loss, duplication, reordering, delay (base
//! plus uniform jitter) and corruption. Every (link, fault) pair draws from its own random
//! stream derived from the run seed (see `seed`), so turning a fault on for one link leaves
//! the draws of other links and other faults as they were. A partition is a set of blocked
//! directed pairs: `A → B` can be cut while `B → A` stays open. A cut drops datagrams both
//! when they are sent and when they arrive, so nothing crosses a cut direction while it is in
//! place, in flight or not.
//!
//! Corruption damages a copy in a way CRC-32 always detects: one flipped bit, one changed
//! byte, or a burst of up to four changed bytes after the frame's checksum field (CRC-32
//! catches every burst of 32 bits or less). The simulator still counts any damaged copy an
//! endpoint accepts (`NetStats::corrupt_accepted`), so a change to the frame that weakens
//! the check shows up.
//!
//! Tested by the unit tests below (corruption always changes the datagram and the frame
//! parser always rejects it; cuts are directed; loss and duplication rates; a fault on one
//! link leaves another link's draws alone; accounting balances) and by `tests/sim.rs`.

use super::node::NodeId;
use super::seed;
use crate::rng::Rng;
use crate::time::Duration;
use bytes::Bytes;
use smallvec::SmallVec;
use std::collections::{BTreeMap, BTreeSet};

/// The faults and delay of one directed link. Probabilities are per datagram (per copy for
/// reordering and corruption); outside `[0, 1]` they saturate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Link {
    /// Probability a datagram is dropped.
    pub loss: f64,
    /// Probability a datagram that is not dropped arrives twice.
    pub dup: f64,
    /// Probability a copy is held back by an extra random span in `[1 µs, 2·(delay + jitter)]`
    /// so that datagrams sent after it overtake it.
    pub reorder: f64,
    /// Base one-way latency.
    pub delay: Duration,
    /// Extra latency drawn uniformly from `[0, jitter]` for each copy.
    pub jitter: Duration,
    /// Probability a copy arrives with damaged bytes.
    pub corrupt: f64,
}

impl Default for Link {
    /// A perfect link with 100 µs latency.
    fn default() -> Self {
        Link {
            loss: 0.0,
            dup: 0.0,
            reorder: 0.0,
            delay: Duration::from_micros(100),
            jitter: Duration::ZERO,
            corrupt: 0.0,
        }
    }
}

/// What the network did with the datagrams it carried.
///
/// Every datagram put on a link (`sent`) is lost, cut, dropped at a dead node, or becomes
/// one or more copies (`duplicated` counts the extra ones); every copy is cut, dropped at a
/// dead node, or delivered. So `sent + duplicated = lost + cut + dead + delivered + in flight`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetStats {
    /// `Transmit`s taken from endpoints.
    pub transmits: u64,
    /// Datagrams put on a link: one per destination (a `Dest::All` transmit fans out).
    pub sent: u64,
    /// Datagrams dropped by the link's loss probability.
    pub lost: u64,
    /// Extra copies made by duplication.
    pub duplicated: u64,
    /// Copies held back to arrive out of order.
    pub reordered: u64,
    /// Copies damaged in flight.
    pub corrupted: u64,
    /// Datagrams or copies dropped by a partition.
    pub cut: u64,
    /// Datagrams or copies dropped because the destination was down or had restarted.
    pub dead: u64,
    /// `Dest::One` transmits to an endpoint id no node has (not counted in `sent`).
    pub unroutable: u64,
    /// Copies handed to an endpoint.
    pub delivered: u64,
    /// Damaged copies handed to an endpoint.
    pub delivered_corrupted: u64,
    /// Damaged copies the endpoint accepted as valid (the frame check missed them).
    pub corrupt_accepted: u64,
}

impl NetStats {
    /// Copies still travelling, from the balance of the counters.
    pub fn in_flight(&self) -> u64 {
        (self.sent + self.duplicated).saturating_sub(self.lost + self.cut + self.dead + self.delivered)
    }
}

/// One copy of a datagram on its way.
pub(crate) struct Copy {
    pub(crate) delay: Duration,
    pub(crate) data: Bytes,
    pub(crate) corrupted: bool,
}

/// What happened to a datagram put on a link.
pub(crate) enum Outcome {
    Lost,
    Cut,
    Copies(SmallVec<[Copy; 2]>),
}

/// One link's random streams, one per fault.
struct Streams {
    loss: Rng,
    dup: Rng,
    delay: Rng,
    reorder: Rng,
    corrupt: Rng,
}

impl Streams {
    fn new(run: u64, from: NodeId, to: NodeId) -> Streams {
        let (f, t) = (from.0 as u64, to.0 as u64);
        let rng = |purpose| Rng::new(seed::derive(run, &[purpose, f, t]));
        Streams {
            loss: rng(seed::LOSS),
            dup: rng(seed::DUP),
            delay: rng(seed::DELAY),
            reorder: rng(seed::REORDER),
            corrupt: rng(seed::CORRUPT),
        }
    }
}

pub(crate) struct Net {
    seed: u64,
    default: Link,
    links: BTreeMap<(NodeId, NodeId), Link>,
    cuts: BTreeSet<(NodeId, NodeId)>,
    streams: BTreeMap<(NodeId, NodeId), Streams>,
    pub(crate) stats: NetStats,
}

impl Net {
    pub(crate) fn new(seed: u64) -> Net {
        Net {
            seed,
            default: Link::default(),
            links: BTreeMap::new(),
            cuts: BTreeSet::new(),
            streams: BTreeMap::new(),
            stats: NetStats::default(),
        }
    }

    pub(crate) fn set_default_link(&mut self, link: Link) {
        self.default = link;
    }
    pub(crate) fn set_link(&mut self, from: NodeId, to: NodeId, link: Link) {
        self.links.insert((from, to), link);
    }
    pub(crate) fn link(&self, from: NodeId, to: NodeId) -> Link {
        self.links.get(&(from, to)).copied().unwrap_or(self.default)
    }

    pub(crate) fn cut(&mut self, from: NodeId, to: NodeId) {
        if from != to {
            self.cuts.insert((from, to));
        }
    }
    pub(crate) fn heal(&mut self, from: NodeId, to: NodeId) {
        self.cuts.remove(&(from, to));
    }
    pub(crate) fn heal_all(&mut self) {
        self.cuts.clear();
    }
    pub(crate) fn is_cut(&self, from: NodeId, to: NodeId) -> bool {
        self.cuts.contains(&(from, to))
    }

    /// Puts `data` on the link `from → to` and decides its fate (the caller has checked the
    /// destination is alive).
    pub(crate) fn put(&mut self, from: NodeId, to: NodeId, data: &Bytes) -> Outcome {
        self.stats.sent += 1;
        if self.is_cut(from, to) {
            self.stats.cut += 1;
            return Outcome::Cut;
        }
        let link = self.link(from, to);
        let run = self.seed;
        let s = self.streams.entry((from, to)).or_insert_with(|| Streams::new(run, from, to));
        if s.loss.chance(link.loss) {
            self.stats.lost += 1;
            return Outcome::Lost;
        }
        let n = if s.dup.chance(link.dup) { 2 } else { 1 };
        self.stats.duplicated += n - 1;
        let mut copies = SmallVec::new();
        for _ in 0..n {
            let mut delay = link.delay + uniform(&mut s.delay, link.jitter);
            if s.reorder.chance(link.reorder) {
                self.stats.reordered += 1;
                let window = (link.delay + link.jitter) * 2;
                delay +=
                    Duration::from_micros(1) + uniform(&mut s.reorder, window.saturating_sub(Duration::from_micros(1)));
            }
            let corrupted = !data.is_empty() && s.corrupt.chance(link.corrupt);
            let data = if corrupted {
                self.stats.corrupted += 1;
                corrupt(data, &mut s.corrupt)
            } else {
                data.clone()
            };
            copies.push(Copy { delay, data, corrupted });
        }
        Outcome::Copies(copies)
    }
}

/// Uniform in `[0, max]`, at nanosecond resolution; draws nothing when `max` is zero.
fn uniform(rng: &mut Rng, max: Duration) -> Duration {
    let ns = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
    if ns == 0 { Duration::ZERO } else { Duration::from_nanos(rng.below(ns.saturating_add(1))) }
}

/// Where a burst may start: after the frame's magic, version, flags and CRC field, so that
/// the burst is contiguous in the bytes the CRC covers.
const BURST_FROM: usize = 8;
/// Longest burst, in bytes: CRC-32 detects every error burst of up to 32 bits.
const BURST_MAX: usize = 4;

/// A damaged copy of a non-empty datagram: one flipped bit (half the time), one changed
/// byte, or a burst of 2 to 4 changed bytes. The result always differs from `data`.
pub(crate) fn corrupt(data: &[u8], rng: &mut Rng) -> Bytes {
    debug_assert!(!data.is_empty());
    let mut v = data.to_vec();
    let n = v.len();
    let nonzero = |rng: &mut Rng| 1 + rng.below(255) as u8;
    match rng.below(4) {
        0 | 1 => {
            let bit = rng.below(n as u64 * 8) as usize;
            v[bit / 8] ^= 1 << (bit % 8);
        }
        2 => {
            let i = rng.below(n as u64) as usize;
            v[i] ^= nonzero(rng);
        }
        _ if n >= BURST_FROM + 2 => {
            let len = 2 + rng.below((BURST_MAX.min(n - BURST_FROM) - 1) as u64) as usize;
            let start = BURST_FROM + rng.below((n - BURST_FROM - len + 1) as u64) as usize;
            v[start] ^= nonzero(rng);
            for b in &mut v[start + 1..start + len] {
                *b ^= rng.below(256) as u8;
            }
        }
        _ => {
            let i = rng.below(n as u64) as usize;
            v[i] ^= nonzero(rng);
        }
    }
    Bytes::from(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{FRAME_LEN, Frame, FrameView, seal};
    use crate::ids::{EndpointId, GroupId, ViewId};

    fn datagram(body_len: usize) -> Vec<u8> {
        let f =
            Frame { flags: 0, group: GroupId(7), view: ViewId { ltime: 1, coord: EndpointId(1) }, src: EndpointId(2) };
        let body: Vec<u8> = (0..body_len).map(|i| (i * 31 + 7) as u8).collect();
        let mut head = [0u8; FRAME_LEN];
        f.write(&mut head);
        seal(&mut head, &body);
        let mut d = head.to_vec();
        d.extend_from_slice(&body);
        d
    }

    #[test]
    fn corruption_always_changes_the_datagram_and_the_frame_check_catches_it() {
        let mut rng = Rng::new(1);
        for body_len in [0, 1, 3, 17, 300, 1400, 9000] {
            let d = datagram(body_len);
            assert!(FrameView::parse(&d).is_ok());
            for _ in 0..2_000 {
                let c = corrupt(&d, &mut rng);
                assert_eq!(c.len(), d.len());
                assert_ne!(&c[..], &d[..], "corruption left the datagram intact");
                assert!(FrameView::parse(&c).is_err(), "corrupted datagram of body {body_len} accepted");
            }
        }
        // Tiny datagrams (shorter than a burst) still change.
        for n in 1..BURST_FROM + 2 {
            let d = vec![0u8; n];
            for _ in 0..200 {
                assert_ne!(&corrupt(&d, &mut rng)[..], &d[..]);
            }
        }
    }

    fn net_with(link: Link) -> Net {
        let mut net = Net::new(9);
        net.set_default_link(link);
        net
    }

    #[test]
    fn cuts_are_directed() {
        let (a, b) = (NodeId(0), NodeId(1));
        let mut net = Net::new(1);
        let d = Bytes::from_static(b"x");
        net.cut(a, b);
        assert!(matches!(net.put(a, b, &d), Outcome::Cut));
        assert!(matches!(net.put(b, a, &d), Outcome::Copies(ref c) if c.len() == 1));
        net.heal(a, b);
        assert!(matches!(net.put(a, b, &d), Outcome::Copies(_)));
        net.cut(a, b);
        net.cut(b, a);
        net.heal_all();
        assert!(!net.is_cut(a, b) && !net.is_cut(b, a));
        assert_eq!((net.stats.sent, net.stats.cut), (3, 1));
    }

    #[test]
    fn loss_and_duplication_rates_match_and_the_books_balance() {
        let mut net = net_with(Link { loss: 0.3, dup: 0.2, ..Link::default() });
        let d = Bytes::from_static(b"payload");
        let mut copies = 0u64;
        for i in 0..20_000u32 {
            if let Outcome::Copies(c) = net.put(NodeId(i % 3), NodeId(3), &d) {
                copies += c.len() as u64;
            }
        }
        let s = net.stats;
        assert_eq!(s.sent, 20_000);
        assert!((5_600..6_400).contains(&s.lost), "lost {}", s.lost);
        assert!((2_600..3_000).contains(&s.duplicated), "duplicated {} of {} kept", s.duplicated, s.sent - s.lost);
        assert_eq!(copies, s.sent - s.lost + s.duplicated);
        assert_eq!(s.in_flight(), copies);
    }

    #[test]
    fn delays_stay_within_the_configured_window() {
        let link = Link {
            delay: Duration::from_micros(50),
            jitter: Duration::from_micros(20),
            reorder: 0.5,
            ..Link::default()
        };
        let mut net = net_with(link);
        let d = Bytes::from_static(b"p");
        let (mut plain, mut held) = (0, 0);
        for _ in 0..5_000 {
            let Outcome::Copies(c) = net.put(NodeId(0), NodeId(1), &d) else { panic!("no loss configured") };
            let us = c[0].delay.as_nanos() as f64 / 1e3;
            assert!((50.0..=211.0).contains(&us), "delay {us} µs");
            if us <= 70.0 { plain += 1 } else { held += 1 }
        }
        // Only a reordered copy can take longer than delay + jitter.
        let r = net.stats.reordered;
        assert!((2_300..2_700).contains(&r), "reordered {r}");
        assert!(held <= r && held > 2_000, "held {held} plain {plain} reordered {r}");
    }

    #[test]
    fn a_fault_on_one_link_leaves_other_links_draws_alone() {
        let link = Link { loss: 0.5, jitter: Duration::from_micros(100), ..Link::default() };
        let fates = |net: &mut Net| -> Vec<Option<Duration>> {
            (0..500)
                .map(|i| {
                    let (from, to) = if i % 2 == 0 { (NodeId(0), NodeId(1)) } else { (NodeId(2), NodeId(1)) };
                    let out = net.put(from, to, &Bytes::from_static(b"d"));
                    match (from, out) {
                        (NodeId(0), Outcome::Copies(c)) => Some(c[0].delay),
                        _ => None,
                    }
                })
                .collect()
        };
        let mut quiet = net_with(link);
        let mut noisy = net_with(link);
        noisy.set_link(NodeId(2), NodeId(1), Link { corrupt: 0.9, dup: 0.5, reorder: 0.5, ..link });
        assert_eq!(fates(&mut quiet), fates(&mut noisy));
        assert!(noisy.stats.corrupted > 0 && quiet.stats.corrupted == 0);
    }
}
