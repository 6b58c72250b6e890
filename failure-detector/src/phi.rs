//! `phi`: the phi-accrual failure detector (Hayashibara et al. 2004, as in Akka and Cassandra).
//!
//! Protocol. Every member multicasts a heartbeat (`Dn::CastUnrel` with a `Beat` header) every
//! `period`. For each peer it keeps a sliding window of the last `window` heartbeat
//! inter-arrival times and their mean μ and standard deviation σ. At each check (every
//! `period / 4`) it computes, for each peer, with `t` the time since the peer was last heard
//! from,
//!
//! ```text
//! phi(t) = -log10(1 - F(t)),   F = normal CDF with mean μ + pause and std max(σ, min_std)
//! ```
//!
//! using Akka's logistic approximation of the normal CDF
//! (`1 - F(t) ≈ 1 / (1 + exp(y·(1.5976 + 0.070566·y²)))`, `y = (t - mean) / std`, error under
//! 0.0002 over the whole range). A peer whose phi exceeds `threshold` becomes suspected: the
//! layer emits `Up::Suspect` once, listing every peer that became suspected at that check.
//!
//! What feeds what. Any message from a peer through this layer (a heartbeat or any
//! `Up::Cast`/`Up::Send` with a `NoHdr` header) refreshes "last heard": it is evidence the peer
//! is alive. Only heartbeats feed the inter-arrival statistics: application traffic is bursty
//! (many messages in a millisecond, then silence), and mixing it in would shrink μ and σ to
//! the burst spacing, so phi would soar at the first quiet moment. Heartbeats are a regular
//! process whose gaps — including those from lost heartbeats — are exactly what the detector
//! must learn. The gap that ends a suspicion is not recorded (it measures the outage, not the
//! heartbeat process, and would blunt the detector for the next `window` beats).
//!
//! Bootstrap. With fewer than two samples from a peer, μ = `period` and σ = `period / 4`
//! (then floored by `min_std`). "Last heard" starts when the layer starts, so a member that
//! never speaks is suspected like one that stops.
//!
//! Suspicion is not exclusion. A suspected peer that is heard from again stops being
//! suspected (counted as `unsuspected`), but there is no "unsuspect" event yet: the membership
//! layers decide exclusion from the `Up::Suspect` they saw. A peer suspected again after
//! recovering is reported again.
//!
//! Parameters (spec `phi(period_ms=..,threshold=8,window=100,min_std_ms=..,pause_ms=..)`):
//! `period_ms` heartbeat period, default scaled to the group size `n` so each member
//! receives a bounded rate of heartbeats: `40 + 10·n` ms (60 ms for 2 members, 130 ms for 9);
//! `threshold` phi above which a peer is suspected (default 8, as Akka and Cassandra);
//! `window` inter-arrival samples kept per peer (2..=10000, default 100); `min_std_ms`
//! floor of σ, default `period / 2`; `pause_ms` acceptable heartbeat pause added to μ,
//! default `5·period`. With the defaults and a steady heartbeat, phi reaches 8 about
//! `1 + 5 + 0.5·5.23 ≈ 8.6` periods after the last heartbeat (at 10 % loss, μ ≈ 1.1 periods:
//! 8.7). So 8 consecutive heartbeats of one peer must be lost (probability 1e-8 at 10 % loss)
//! before a live member is suspected: for 9 members at 10 % loss, about one false suspicion
//! per 50 hours in the group — rare, and membership verifies suspicions anyway. A crashed
//! member is suspected 7.6 to 8.7 periods after its last heartbeat. Akka's defaults (pause 3
//! periods) assume TCP; lost datagrams need the larger margin. The effective
//! values are the counters `period_ms`, `threshold_x1000`, `window`, `min_std_ms`, `pause_ms`
//! (0 until the layer has seen its view); the state line lists each peer's current phi.
//!
//! Header `PhiHdr`: tag 0 `NoHdr` (every message of the layers above), tag 1 `Beat`.
//!
//! Properties: requires nothing; provides `SUSPECT`.
//!
//! Events generated: `Dn::CastUnrel` (heartbeats), `Up::Suspect`; every other event passes
//! through (no header going down: `NoHdr`, the nothing, popped going up).
//!
//! Hostile input: a header that does not decode (`bad_hdr`), a `Beat` on a point-to-point
//! message (`bad_hdr`), a sender outside the view (`bad_rank`): dropped and counted, never
//! delivered, never counted as evidence. Own heartbeats looped back are consumed silently.
//!
//! Memory: per member of the view, one window of at most `window` samples (8 bytes each) and
//! a few scalars: O(n·window) whatever the peers send.
//!
//! Tests: unit tests below (phi against hand-computed values, statistics, header codec);
//! `failure-detector/tests/phi.rs` (exact outputs through a harness, bolero header round-trip,
//! arbitrary bytes, a model of the suspicion state machine, and simulator runs: crash
//! detection time, no false suspicion under 10 % loss, short and long pauses).

use std::collections::VecDeque;
use std::fmt::Write as _;
use thoth_stack::{
    Args, Bytes, Cx, Dn, Dump, Duration, Layer, Msg, Props, Rank, Reader, Registry, Time, Up, Wire, WireError, Writer,
};

/// The `phi` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PhiHdr {
    /// A message of the layers above.
    NoHdr,
    /// A heartbeat.
    Beat,
}

impl Wire for PhiHdr {
    thoth_stack::nothing!(PhiHdr::NoHdr);
    fn encoded_len(&self) -> usize {
        1
    }
    fn encode(&self, w: &mut Writer<'_>) {
        w.put_u8(match self {
            PhiHdr::NoHdr => 0,
            PhiHdr::Beat => 1,
        })
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, WireError> {
        match r.u8()? {
            0 => Ok(PhiHdr::NoHdr),
            1 => Ok(PhiHdr::Beat),
            _ => Err(WireError::BadTag),
        }
    }
}

/// Parameters; `None` means "scaled to the group size" (see the module doc).
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Heartbeat period (`None`: `default_period` of the view's size).
    pub period: Option<Duration>,
    /// Phi above which a peer is suspected.
    pub threshold: f64,
    /// Inter-arrival samples kept per peer.
    pub window: usize,
    /// Floor of the standard deviation (`None`: half the period).
    pub min_std: Option<Duration>,
    /// Acceptable heartbeat pause, added to the mean (`None`: five periods).
    pub pause: Option<Duration>,
}

impl Default for Config {
    fn default() -> Self {
        Config { period: None, threshold: 8.0, window: 100, min_std: None, pause: None }
    }
}

/// Parameters resolved against the view.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Params {
    period: Duration,
    threshold: f64,
    window: usize,
    min_std: Duration,
    pause: Duration,
}

/// The default heartbeat period for a group of `n` members.
pub fn default_period(n: usize) -> Duration {
    Duration::from_millis(40 + 10 * n as u64)
}

/// `-log10(1 - F(t))` for `F` the normal CDF of mean `mean` and standard deviation `std`
/// (all in the same unit), by Akka's logistic approximation. `std` must be positive.
pub fn phi(t: f64, mean: f64, std: f64) -> f64 {
    let y = (t - mean) / std;
    let e = (-y * (1.5976 + 0.070566 * y * y)).exp();
    // Two forms of the same value, each accurate on its side of the mean.
    if t > mean { -(e / (1.0 + e)).log10() } else { -(1.0 - 1.0 / (1.0 + e)).log10() }
}

/// Mean and (population) standard deviation of `samples`; `None` under two samples.
pub fn mean_std(samples: impl ExactSizeIterator<Item = f64> + Clone) -> Option<(f64, f64)> {
    let n = samples.len();
    if n < 2 {
        return None;
    }
    let mean = samples.clone().sum::<f64>() / n as f64;
    let var = samples.map(|x| (x - mean) * (x - mean)).sum::<f64>() / n as f64;
    Some((mean, var.sqrt()))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// What this member knows of one peer.
#[derive(Clone, Debug)]
struct Peer {
    /// Last time anything came from it (or the layer's start).
    last_heard: Time,
    /// Last heartbeat, the start of the next inter-arrival sample.
    last_beat: Option<Time>,
    /// Inter-arrival times in ms, oldest first, at most `window`.
    samples: VecDeque<f64>,
    suspected: bool,
}

/// The `phi` layer.
pub struct Phi {
    cfg: Config,
    /// Set at the first event, from the view.
    params: Option<Params>,
    peers: Vec<Peer>,
    next_beat: Time,
    next_check: Time,
    beats_sent: u64,
    beats_rcvd: u64,
    suspicions: u64,
    unsuspected: u64,
    bad_hdr: u64,
    bad_rank: u64,
    /// Phi of each peer at the last check, for `dump`.
    last_phi: Vec<f64>,
}

impl Default for Phi {
    fn default() -> Self {
        Phi::new(Config::default())
    }
}

impl Phi {
    /// A detector with these parameters (the defaults are settled when it sees its view).
    pub fn new(cfg: Config) -> Phi {
        Phi {
            cfg,
            params: None,
            peers: Vec::new(),
            next_beat: Time::ZERO,
            next_check: Time::ZERO,
            beats_sent: 0,
            beats_rcvd: 0,
            suspicions: 0,
            unsuspected: 0,
            bad_hdr: 0,
            bad_rank: 0,
            last_phi: Vec::new(),
        }
    }

    /// Resolves the parameters for the view and starts watching every peer.
    fn start(&mut self, cx: &Cx<'_>) {
        let period = self.cfg.period.unwrap_or_else(|| default_period(cx.view.len()));
        let p = Params {
            period,
            threshold: self.cfg.threshold,
            window: self.cfg.window,
            min_std: self.cfg.min_std.unwrap_or(period / 2),
            pause: self.cfg.pause.unwrap_or(period * 5),
        };
        self.params = Some(p);
        let peer = Peer { last_heard: cx.now, last_beat: None, samples: VecDeque::new(), suspected: false };
        self.peers = vec![peer; cx.view.len()];
        self.last_phi = vec![0.0; cx.view.len()];
        self.next_beat = cx.now;
        self.next_check = cx.now + period / 4;
    }

    /// The phi of `peer` at `now` (0 for this member, unknown ranks, or before the start).
    fn phi_of(&self, peer: usize, now: Time) -> f64 {
        let (Some(p), Some(st)) = (self.params, self.peers.get(peer)) else { return 0.0 };
        let (mean, std) = mean_std(st.samples.iter().copied()).unwrap_or((ms(p.period), ms(p.period) / 4.0));
        phi(ms(now.since(st.last_heard)), mean + ms(p.pause), std.max(ms(p.min_std)))
    }

    /// The current phi of every member of the view, by rank (0 for this member).
    pub fn phis(&self, now: Time, me: Rank) -> Vec<f64> {
        (0..self.peers.len()).map(|i| if i == me.index() { 0.0 } else { self.phi_of(i, now) }).collect()
    }

    /// Whether the member of rank `r` is currently suspected.
    pub fn is_suspected(&self, r: Rank) -> bool {
        self.peers.get(r.index()).is_some_and(|p| p.suspected)
    }

    /// Something came from `from`: it is alive. A heartbeat also adds a sample.
    fn heard(&mut self, from: usize, beat: bool, now: Time, window: usize) {
        let Some(st) = self.peers.get_mut(from) else { return };
        let was_suspected = st.suspected;
        if was_suspected {
            st.suspected = false;
            self.unsuspected += 1;
        }
        st.last_heard = st.last_heard.max(now);
        if beat {
            self.beats_rcvd += 1;
            if let Some(prev) = st.last_beat
                && !was_suspected
            {
                if st.samples.len() >= window {
                    st.samples.pop_front();
                }
                st.samples.push_back(ms(now.since(prev)));
            }
            st.last_beat = Some(now);
        }
    }

    fn up_msg(&mut self, from: Rank, mut msg: Msg, cast: bool, cx: &mut Cx<'_>) {
        let Some(p) = self.params else { return };
        let hdr = match msg.pop::<PhiHdr>() {
            Ok(h) => h,
            Err(_) => {
                self.bad_hdr += 1;
                return;
            }
        };
        if from.index() >= cx.view.len() {
            self.bad_rank += 1;
            return;
        }
        let own = from == cx.rank;
        match hdr {
            PhiHdr::Beat if !cast => self.bad_hdr += 1,
            PhiHdr::Beat => {
                if !own {
                    self.heard(from.index(), true, cx.now, p.window);
                }
            }
            PhiHdr::NoHdr => {
                if !own {
                    self.heard(from.index(), false, cx.now, p.window);
                }
                cx.up(if cast { Up::Cast { from, msg } } else { Up::Send { from, msg } });
            }
        }
    }

    fn check(&mut self, cx: &mut Cx<'_>, p: Params) {
        let mut newly = Vec::new();
        for i in 0..self.peers.len() {
            if i == cx.rank.index() {
                continue;
            }
            let v = self.phi_of(i, cx.now);
            if let Some(slot) = self.last_phi.get_mut(i) {
                *slot = v;
            }
            if let Some(st) = self.peers.get_mut(i)
                && v > p.threshold
                && !st.suspected
            {
                st.suspected = true;
                newly.push(Rank(i as u16));
            }
        }
        if !newly.is_empty() {
            self.suspicions += newly.len() as u64;
            cx.up(Up::Suspect(newly));
        }
    }
}

impl Layer for Phi {
    fn name(&self) -> &'static str {
        "phi"
    }

    fn provides(&self) -> Props {
        Props::SUSPECT
    }

    /// Learns the view and sends the first beat at once.
    fn init(&mut self, cx: &mut Cx<'_>) {
        self.start(cx);
        self.handle_timeout(cx);
    }

    fn max_header(&self, _: &thoth_stack::View) -> usize {
        0
    }
    fn handle_dn(&mut self, ev: Dn, cx: &mut Cx<'_>) {
        cx.dn(ev) // no header: read as `NoHdr` above
    }

    fn handle_up(&mut self, ev: Up, cx: &mut Cx<'_>) {
        match ev {
            Up::Cast { from, msg } => self.up_msg(from, msg, true, cx),
            Up::Send { from, msg } => self.up_msg(from, msg, false, cx),
            other => cx.up(other),
        }
    }

    fn poll_timeout(&self) -> Option<Time> {
        self.params.map(|_| self.next_beat.min(self.next_check))
    }

    fn handle_timeout(&mut self, cx: &mut Cx<'_>) {
        let Some(p) = self.params else { return };
        if cx.now >= self.next_beat {
            let mut m = Msg::new(Bytes::new());
            m.push(&PhiHdr::Beat);
            cx.dn(Dn::CastUnrel(m));
            self.beats_sent += 1;
            // Keeps the period even if the timeout fired late.
            while self.next_beat <= cx.now {
                self.next_beat += p.period;
            }
        }
        if cx.now >= self.next_check {
            self.check(cx, p);
            while self.next_check <= cx.now {
                self.next_check += p.period / 4;
            }
        }
    }

    fn dump(&self, out: &mut Vec<Dump>) {
        let p = self.params;
        let as_ms = |d: Option<Duration>| d.map_or(0, |d| d.as_millis() as u64);
        let mut state = String::from("phi");
        for (i, (v, st)) in self.last_phi.iter().zip(&self.peers).enumerate() {
            let _ = write!(state, " r{i}={v:.2}{}", if st.suspected { "!" } else { "" });
        }
        out.push(Dump {
            layer: "phi",
            counters: vec![
                ("beats_sent", self.beats_sent),
                ("beats_rcvd", self.beats_rcvd),
                ("suspicions", self.suspicions),
                ("unsuspected", self.unsuspected),
                ("bad_hdr", self.bad_hdr),
                ("bad_rank", self.bad_rank),
            ],
            gauges: vec![
                ("period_ms", as_ms(p.map(|p| p.period))),
                ("threshold_x1000", p.map_or(0, |p| (p.threshold * 1000.0) as u64)),
                ("window", p.map_or(0, |p| p.window as u64)),
                ("min_std_ms", as_ms(p.map(|p| p.min_std))),
                ("pause_ms", as_ms(p.map(|p| p.pause))),
            ],
            state,
            ..Dump::default()
        });
    }
}

/// Registers `phi` with its parameters (see the module doc).
pub fn register(r: &mut Registry) {
    r.register("phi", "phi-accrual failure detector: heartbeats, suspect when phi > threshold", |a: &mut Args| {
        let d = Config::default();
        let cfg = Config {
            period: opt_ms_arg(a, "period_ms")?,
            threshold: a.get("threshold", d.threshold)?,
            window: a.get("window", d.window)?,
            min_std: opt_ms_arg(a, "min_std_ms")?,
            pause: opt_ms_arg(a, "pause_ms")?,
        };
        if cfg.period.is_some_and(|p| p.is_zero()) {
            return Err("`period_ms` must be positive".into());
        }
        if !(cfg.threshold.is_finite() && cfg.threshold > 0.0) {
            return Err("`threshold` must be a positive number".into());
        }
        if !(2..=10_000).contains(&cfg.window) {
            return Err("`window` must be in 2..=10000".into());
        }
        if cfg.min_std.is_some_and(|d| d.is_zero()) {
            return Err("`min_std_ms` must be positive".into());
        }
        Ok(Box::new(Phi::new(cfg)))
    });
}

fn opt_ms_arg(a: &mut Args, k: &str) -> Result<Option<Duration>, String> {
    match a.raw(k) {
        None => Ok(None),
        Some(v) => {
            v.parse::<u64>().map(|x| Some(Duration::from_millis(x))).map_err(|_| format!("bad value `{v}` for `{k}`"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn phi_matches_hand_computed_values() {
        // y = 0: e = 1, 1 - F = 1/2, phi = log10(2).
        assert!(close(phi(100.0, 100.0, 10.0), 2f64.log10()));
        // y = 1: e = exp(-1.668166) = 0.1886121..., 1 - F = e/(1+e) = 0.158680..., phi = 0.799508...
        let e = (-1.668166f64).exp();
        assert!(close(phi(110.0, 100.0, 10.0), -(e / (1.0 + e)).log10()));
        assert!((phi(110.0, 100.0, 10.0) - 0.799_508_320_8).abs() < 1e-9);
        // Against the normal tail 1 - Φ(1) = 0.158655: -log10 = 0.79955, within the approximation.
        assert!((phi(110.0, 100.0, 10.0) - 0.799_55).abs() < 1e-3);
        // y = 2: 1 - Φ(2) = 0.02275, -log10 = 1.643.
        assert!((phi(120.0, 100.0, 10.0) - 1.642_827_885_5).abs() < 1e-9);
        // y = 3: 1 - Φ(3) = 0.00135, -log10 = 2.870; the approximation gives 2.909.
        assert!((phi(130.0, 100.0, 10.0) - 2.909_475_326_5).abs() < 1e-9);
        // y = 5: 7.2999.
        assert!((phi(150.0, 100.0, 10.0) - 7.299_947_394_5).abs() < 1e-9);
        // y = -1: below the mean phi is small but positive.
        assert!((phi(90.0, 100.0, 10.0) - 0.075_033_032_1).abs() < 1e-9);
        // Far tails: no NaN, 0 long before the mean, infinite long after.
        assert_eq!(phi(0.0, 1e6, 1.0), 0.0);
        assert_eq!(phi(1e6, 0.0, 1.0), f64::INFINITY);
    }

    #[test]
    fn phi_increases_with_elapsed_time() {
        let mut last = -1.0;
        for t in 0..400 {
            let v = phi(t as f64, 200.0, 25.0);
            assert!(v >= last, "t={t}");
            last = v;
        }
    }

    #[test]
    fn mean_and_std() {
        assert_eq!(mean_std([1.0].into_iter()), None);
        assert_eq!(mean_std([2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0].into_iter()), Some((5.0, 2.0)));
    }

    #[test]
    fn header_codec() {
        for (h, b) in [(PhiHdr::NoHdr, 0u8), (PhiHdr::Beat, 1)] {
            assert_eq!(thoth_stack::wire::to_vec(&h), vec![b]);
            assert_eq!(thoth_stack::wire::from_slice::<PhiHdr>(&[b]), Ok(h));
        }
        assert_eq!(thoth_stack::wire::from_slice::<PhiHdr>(&[2]), Err(WireError::BadTag));
        assert_eq!(thoth_stack::wire::from_slice::<PhiHdr>(&[]), Err(WireError::Truncated));
    }

    #[test]
    fn default_period_scales_with_group_size() {
        assert_eq!(default_period(2), Duration::from_millis(60));
        assert_eq!(default_period(9), Duration::from_millis(130));
    }
}
