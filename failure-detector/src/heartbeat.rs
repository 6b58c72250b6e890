//! `heartbeat`: the classic all-to-all heartbeat failure detector.
//!
//! Protocol. Every member multicasts a `Beat` (one tag byte, sent with `Dn::CastUnrel` so no
//! reliable or flow-control layer holds it back) every `period`, unless it cast something else
//! within that period: any `Dn::Cast` or `Dn::CastUnrel` passing down through this layer resets
//! the beat timer, because every member receives it and it proves liveness as well as a beat
//! does (traffic counts as heartbeat, so a busy member sends no beats). Point-to-point sends
//! reach one member only and do not reset it. The first beat goes out when the layer first runs
//! (its timer is due at time zero, which also lets it learn the view size for the defaults).
//!
//! Every message received from a peer through this layer (any `Up::Cast` / `Up::Send` from that
//! rank whose header decodes, beat or not) is evidence that the peer is alive: the layer records
//! when it last heard from each member. A member not heard from for `timeout` (measured from its
//! last message, or from the layer's start) becomes suspected: the layer emits one
//! `Up::Suspect(ranks)` listing every member that became suspected at that instant, once per
//! member, not at every tick. A suspected member that is heard from again stops being suspected
//! (counted as `unsuspected`); there is no "unsuspect" event yet: membership verifies suspicions
//! and decides exclusion, and may re-read the state from `dump`. A member never suspects itself;
//! its own casts loop back from its own rank and are not evidence.
//!
//! Parameters (spec `heartbeat(period_ms=..,timeout_ms=..)`): `period_ms` the beat period;
//! `timeout_ms` the silence after which a member is suspected (must exceed the period). Each one
//! left out takes a default that scales with the view size `n`:
//! - `period = 100 ms × ceil(n / 16)`: 100 ms up to 16 members, then growing linearly, so the
//!   heartbeat traffic of the whole group stays at most about 160 datagrams per second
//!   (n / period) however large it grows, and each member receives at most ~160 beats a second.
//!   The price is a detection time that grows with n for large groups; small groups (the common
//!   case) get 100 ms.
//! - `timeout = 10 × period` (1 s for small groups): a false suspicion needs nine consecutive
//!   beats from one member to another lost; at 10 % independent loss that is 10⁻⁹ per beat and
//!   pair, so a group of 9 (72 pairs) beating for a day expects far under one. Ten periods also
//!   absorb scheduling pauses and jitter of several hundred milliseconds.
//!   If only `period_ms` is given, the timeout is 10 × that period; a given `timeout_ms` is kept.
//!
//! The effective parameters are reported in `dump` (counters `period_ms`, `timeout_ms`), which
//! is how they reach the endpoint's statistics (`Endpoint::dump`); before the layer's first
//! event (when it learns the view) they read as given, 0 for a default.
//!
//! Detection time of a crash lies between `timeout - period - latency` and `timeout + latency`
//! with no loss (a beat in flight at the crash still arrives); loss only makes it shorter. A
//! member that pauses for `P` goes unsuspected if `P + period + latency < timeout`.
//!
//! Header: `NoHdr` (tag 0) on every message event this layer passes down (`Cast`, `Send`,
//! `CastUnrel`, `SendUnrel`) and `Beat` (tag 1), the layer's own traffic, consumed on the peer.
//!
//! Hostile input: a header that does not decode (`bad_hdr`), a message from a rank outside the
//! view (`bad_rank`), a `Beat` on a point-to-point send (`bad_hdr`) is dropped and counted, and
//! is not evidence of liveness; nothing panics, nothing is delivered.
//!
//! Properties: requires nothing; provides `SUSPECT`.
//!
//! Events generated: `Dn::CastUnrel` (beats), `Up::Suspect` (new suspicions); everything else
//! passes through (no header going down: `NoHdr`, the nothing, popped going up). Control events (`Leave`, `Stable`, `Error`,
//! `Flow`) pass through; after `Exit` the layer stops beating and suspecting.
//!
//! Memory: two entries per member of the view (last heard, suspected), fixed at the first event;
//! nothing else grows, whatever the peers send.
//!
//! Tests: unit tests below (codec, defaults); `failure-detector/tests/heartbeat.rs` has unit
//! tests with exact outputs, bolero tests (header round-trip, arbitrary bytes into `handle_up`,
//! the layer against a reference model under arbitrary time steps and traffic), and simulator
//! properties for groups of 2 to 9: a crash is suspected by every live member within `timeout`;
//! no live member is suspected in 60 s at 10 % loss; a pause shorter than the threshold goes
//! unsuspected and a longer one does not; and a receiver that ignores traffic as evidence
//! (`Config::test_ignore_traffic`) is caught suspecting a busy member.

use thoth_stack::{
    Args, Cx, Dn, Dump, Duration, Layer, Msg, Props, Rank, Reader, Registry, Time, Up, Wire, WireError, Writer,
};

/// The layer's header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hdr {
    /// Nothing to say: a message this layer passes through.
    NoHdr,
    /// A heartbeat: "I am alive", consumed by this layer on the peer.
    Beat,
}

const TAG_NOHDR: u8 = 0;
const TAG_BEAT: u8 = 1;

impl Wire for Hdr {
    thoth_stack::nothing!(Hdr::NoHdr);
    fn encoded_len(&self) -> usize {
        1
    }
    fn encode(&self, w: &mut Writer<'_>) {
        w.put_u8(match self {
            Hdr::NoHdr => TAG_NOHDR,
            Hdr::Beat => TAG_BEAT,
        })
    }
    fn decode(r: &mut Reader<'_>) -> Result<Hdr, WireError> {
        match r.u8()? {
            TAG_NOHDR => Ok(Hdr::NoHdr),
            TAG_BEAT => Ok(Hdr::Beat),
            _ => Err(WireError::BadTag),
        }
    }
}

/// Parameters; `None` takes the default for the view size (see the module doc).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Config {
    /// The beat period.
    pub period: Option<Duration>,
    /// The silence after which a member is suspected (more than the period).
    pub timeout: Option<Duration>,
    /// Tests only: count only beats as evidence of liveness, not other traffic (the bug the
    /// simulator must catch: a busy member sends no beats and gets suspected).
    #[doc(hidden)]
    pub test_ignore_traffic: bool,
}

/// The default period grows by `BASE_PERIOD` for every this many members.
const GROUP_SIZE_PER_STEP: usize = 16;
const BASE_PERIOD: Duration = Duration::from_millis(100);
const TIMEOUT_PERIODS: u32 = 10;

impl Config {
    /// The effective (period, timeout) for a view of `n` members.
    pub fn effective(&self, n: usize) -> (Duration, Duration) {
        let steps = n.div_ceil(GROUP_SIZE_PER_STEP).max(1);
        let period = self.period.unwrap_or(BASE_PERIOD * u32::try_from(steps).unwrap_or(u32::MAX));
        let timeout = self.timeout.unwrap_or(period.saturating_mul(TIMEOUT_PERIODS));
        (period, timeout)
    }
}

/// What the layer knows of one member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Peer {
    heard: Time,
    suspected: bool,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Counters {
    beats_sent: u64,
    beats_recv: u64,
    suspected: u64,
    unsuspected: u64,
    bad_hdr: u64,
    bad_rank: u64,
}

/// State once the layer has seen its view.
#[derive(Clone, Debug)]
struct Running {
    period: Duration,
    timeout: Duration,
    me: Rank,
    /// Indexed by rank; this member's own entry is never suspected.
    peers: Vec<Peer>,
    /// When this member last cast anything (a beat or other traffic); `None`: never, so the
    /// first beat is due at once.
    last_cast: Option<Time>,
    /// The earliest time a non-suspected peer's silence reaches `timeout`.
    next_check: Time,
}

impl Running {
    fn next_beat(&self) -> Time {
        self.last_cast.map_or(Time::ZERO, |t| t + self.period)
    }

    fn recompute_check(&mut self) {
        let me = self.me.index();
        self.next_check = self
            .peers
            .iter()
            .enumerate()
            .filter(|&(i, p)| i != me && !p.suspected)
            .map(|(_, p)| p.heard + self.timeout)
            .min()
            .unwrap_or(Time::NEVER);
    }
}

/// Sized for the view at its start: every peer is "heard" then, so it has a full timeout to
/// say something.
fn start(cfg: &Config, cx: &Cx<'_>) -> Running {
    let (period, timeout) = cfg.effective(cx.view.len());
    let peers = vec![Peer { heard: cx.now, suspected: false }; cx.view.len()];
    let mut r = Running { period, timeout, me: cx.rank, peers, last_cast: None, next_check: Time::NEVER };
    r.recompute_check();
    r
}

/// The heartbeat failure detector.
#[derive(Clone, Debug)]
pub struct Heartbeat {
    cfg: Config,
    /// `None` until `init` tells the view.
    run: Option<Running>,
    stopped: bool,
    c: Counters,
}

impl Default for Heartbeat {
    fn default() -> Self {
        Heartbeat::new(Config::default())
    }
}

impl Heartbeat {
    /// A detector with these parameters (the defaults are settled when it sees its view).
    pub fn new(cfg: Config) -> Heartbeat {
        Heartbeat { cfg, run: None, stopped: false, c: Counters::default() }
    }

    /// The ranks currently suspected, in rank order.
    pub fn suspects(&self) -> Vec<Rank> {
        let Some(run) = &self.run else { return Vec::new() };
        run.peers.iter().enumerate().filter(|(_, p)| p.suspected).map(|(i, _)| Rank(i as u16)).collect()
    }

    /// A message from `from` arrived; its header is `hdr` (already decoded).
    fn heard(&mut self, from: Rank, is_beat: bool, cx: &mut Cx<'_>) {
        let Some(run) = self.run.as_mut() else { return };
        if from == run.me {
            return;
        }
        let Some(p) = run.peers.get_mut(from.index()) else { return };
        if self.cfg.test_ignore_traffic && !is_beat {
            return;
        }
        let (was, old_deadline) = (p.suspected, p.heard + run.timeout);
        p.heard = cx.now;
        p.suspected = false;
        if was {
            self.c.unsuspected += 1;
        }
        // Only a peer that was suspected or held the earliest deadline can move it.
        if was || old_deadline == run.next_check {
            run.recompute_check();
        }
    }

    fn up_msg(&mut self, from: Rank, mut msg: Msg, cast: bool, cx: &mut Cx<'_>) {
        if from.index() >= cx.view.len() {
            self.c.bad_rank += 1;
            return;
        }
        match msg.pop::<Hdr>() {
            Ok(Hdr::NoHdr) => {
                self.heard(from, false, cx);
                cx.up(if cast { Up::Cast { from, msg } } else { Up::Send { from, msg } });
            }
            Ok(Hdr::Beat) if cast => {
                if from != cx.rank {
                    self.c.beats_recv += 1;
                }
                self.heard(from, true, cx);
            }
            Ok(Hdr::Beat) | Err(_) => self.c.bad_hdr += 1,
        }
    }
}

impl Layer for Heartbeat {
    fn name(&self) -> &'static str {
        "heartbeat"
    }

    fn provides(&self) -> Props {
        Props::SUSPECT
    }

    /// Learns the view and sends the first beat at once.
    fn init(&mut self, cx: &mut Cx<'_>) {
        self.run = Some(start(&self.cfg, cx));
        self.handle_timeout(cx);
    }

    fn max_header(&self, _: &thoth_stack::View) -> usize {
        0
    }
    fn handle_dn(&mut self, ev: Dn, cx: &mut Cx<'_>) {
        // A cast reaches every member: it stands in for a beat.
        if let (Dn::Cast(_) | Dn::CastUnrel(_), Some(run)) = (&ev, self.run.as_mut()) {
            run.last_cast = Some(cx.now);
        }
        cx.dn(ev); // no header: read as `NoHdr` above
    }

    fn handle_up(&mut self, ev: Up, cx: &mut Cx<'_>) {
        match ev {
            Up::Cast { from, msg } => self.up_msg(from, msg, true, cx),
            Up::Send { from, msg } => self.up_msg(from, msg, false, cx),
            Up::Exit => {
                self.stopped = true;
                cx.up(Up::Exit);
            }
            other => cx.up(other),
        }
    }

    fn poll_timeout(&self) -> Option<Time> {
        if self.stopped {
            return None;
        }
        match &self.run {
            None => None,
            Some(r) if r.peers.len() <= 1 => None,
            Some(r) => Some(r.next_beat().min(r.next_check)),
        }
    }

    fn handle_timeout(&mut self, cx: &mut Cx<'_>) {
        if self.stopped {
            return;
        }
        let Some(run) = self.run.as_mut().filter(|r| r.peers.len() > 1) else { return };
        if cx.now >= run.next_beat() {
            run.last_cast = Some(cx.now);
            let mut m = Msg::new(Default::default());
            m.push(&Hdr::Beat);
            cx.dn(Dn::CastUnrel(m));
            self.c.beats_sent += 1;
        }
        if cx.now >= run.next_check {
            let (me, timeout) = (run.me.index(), run.timeout);
            let mut newly = Vec::new();
            for (i, p) in run.peers.iter_mut().enumerate() {
                if i != me && !p.suspected && cx.now >= p.heard + timeout {
                    p.suspected = true;
                    newly.push(Rank(i as u16));
                }
            }
            run.recompute_check();
            if !newly.is_empty() {
                self.c.suspected += newly.len() as u64;
                cx.up(Up::Suspect(newly));
            }
        }
    }

    fn dump(&self, out: &mut Vec<Dump>) {
        let c = &self.c;
        let (period, timeout, now_suspected) = match &self.run {
            Some(r) => (r.period, r.timeout, r.peers.iter().filter(|p| p.suspected).count() as u64),
            None => (self.cfg.period.unwrap_or_default(), self.cfg.timeout.unwrap_or_default(), 0),
        };
        let state = match &self.run {
            None => "not started".to_string(),
            Some(r) => r
                .peers
                .iter()
                .enumerate()
                .map(|(i, p)| format!("r{i}: heard={:?}{}", p.heard, if p.suspected { " suspected" } else { "" }))
                .collect::<Vec<_>>()
                .join("; "),
        };
        out.push(Dump {
            layer: "heartbeat",
            counters: vec![
                ("beats_sent", c.beats_sent),
                ("beats_recv", c.beats_recv),
                ("suspected", c.suspected),
                ("unsuspected", c.unsuspected),
                ("bad_hdr", c.bad_hdr),
                ("bad_rank", c.bad_rank),
            ],
            gauges: vec![
                ("period_ms", period.as_millis() as u64),
                ("timeout_ms", timeout.as_millis() as u64),
                ("suspected_now", now_suspected),
            ],
            state,
            ..Dump::default()
        });
    }
}

/// A duration in milliseconds, `None` if absent (0 is refused).
fn opt_ms(a: &mut Args, key: &str) -> Result<Option<Duration>, String> {
    match a.get::<u64>(key, 0)? {
        0 if a.raw(key).is_some() => Err(format!("{key} must be at least 1")),
        0 => Ok(None),
        v => Ok(Some(Duration::from_millis(v))),
    }
}

/// Registers `heartbeat(period_ms=..,timeout_ms=..)`.
pub fn register(r: &mut Registry) {
    r.register("heartbeat", "failure detector: periodic beats (traffic counts), suspect after a silent timeout", |a| {
        let period = opt_ms(a, "period_ms")?;
        let timeout = opt_ms(a, "timeout_ms")?;
        if let (Some(p), Some(t)) = (period, timeout)
            && t <= p
        {
            return Err("timeout_ms must exceed period_ms".into());
        }
        Ok(Box::new(Heartbeat::new(Config { period, timeout, test_ignore_traffic: false })))
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use thoth_stack::wire::{from_slice, to_vec};

    #[test]
    fn header_codec() {
        assert_eq!(to_vec(&Hdr::NoHdr), vec![0]);
        assert_eq!(to_vec(&Hdr::Beat), vec![1]);
        assert_eq!(from_slice::<Hdr>(&[1]), Ok(Hdr::Beat));
        assert!(from_slice::<Hdr>(&[2]).is_err());
        assert!(from_slice::<Hdr>(&[]).is_err());
    }

    #[test]
    fn defaults_scale_with_the_group() {
        let d = Config::default();
        let ms = Duration::from_millis;
        assert_eq!(d.effective(1), (ms(100), ms(1000)));
        assert_eq!(d.effective(16), (ms(100), ms(1000)));
        assert_eq!(d.effective(17), (ms(200), ms(2000)));
        assert_eq!(d.effective(160), (ms(1000), ms(10_000)));
        let p = Config { period: Some(ms(50)), ..Config::default() };
        assert_eq!(p.effective(5), (ms(50), ms(500)));
        let t = Config { timeout: Some(ms(300)), ..Config::default() };
        assert_eq!(t.effective(5), (ms(100), ms(300)));
    }
}
