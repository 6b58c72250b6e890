//! Probes: a diagnostic question from outside the group, answered by each member that allows
//! it with its view and what its layers counted (JGroups's `probe`, typed).
//!
//! A probe travels as gossip with the `FLAG_PROBE` frame flag, so it is sealed and opened as
//! the group's gossip is (`keyring`): on a secured group only who holds the group's key
//! (under member key pairs: a key on the allow-list) can ask, and only it can read the
//! answers. The endpoint answers by itself (the stack never sees a probe), and only when
//! `Config::probe` is on; a refused or unreadable probe is counted (`Stats::rx_probe_*`).
//! Answers are rate-limited (`Budget`: at most `BURST`, then one per `REFILL`), so a
//! forged source address on an unsecured group cannot turn members into a flood. A request
//! carries a nonce that its answers carry back.
//!
//! Answers are bounded by one datagram: a report too long for it leaves out the layers'
//! state lines first, then layers from the bottom of the stack up, then the endpoint's
//! counters, then the view's last members (`Report::truncated`).
//! Decoding is bounds-checked: a hostile answer yields `WireError`, never a panic, and
//! takes memory in proportion to its own length only.
//!
//! Tested below (the codec round trip, truncation, hostile bytes) and by
//! `thoth/tests/probe.rs` (members answer or refuse, keys, the rate limit) and
//! `bins/tests/probe.rs` (`thoth-probe` against three `thoth-member` processes).

use crate::ids::{EndpointId, View, ViewId};
use crate::metrics::{BUCKETS, Hist, Metrics};
use crate::time::{Duration, Time};
use crate::wire::{Reader, WireError};

/// What a probe datagram carries: a question, or an answer to one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Probe {
    /// A question: every member that allows probes answers it.
    Request {
        /// Chosen by the asker; its answers carry it back.
        nonce: u64,
    },
    /// One member's answer.
    Answer(Box<Report>),
}

const REQUEST: u8 = 1;
const ANSWER: u8 = 2;

/// Answers a member gives at once before the rate limit applies.
pub const BURST: u32 = 16;
/// Then one more per this long.
pub const REFILL: Duration = Duration::from_millis(50);

/// One member's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// The request's nonce.
    pub nonce: u64,
    /// The member that answers.
    pub me: EndpointId,
    /// Its view (without the subgroups of a merge).
    pub view: View,
    /// Its layers, top first, as `Endpoint::metrics` has them.
    pub layers: Vec<LayerReport>,
    /// The endpoint's counters (`Stats`), by name.
    pub endpoint: Vec<(String, u64)>,
    /// Something did not fit the datagram: state lines, or layers (see the module doc).
    pub truncated: bool,
}

/// One layer instance in a report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerReport {
    /// The layer's name (`metrics::Key::layer`).
    pub layer: String,
    /// How many layers of this name are above it (`metrics::Key::instance`).
    pub instance: u32,
    /// Counters since the endpoint started, by name.
    pub counters: Vec<(String, u64)>,
    /// Gauges now, by name.
    pub gauges: Vec<(String, u64)>,
    /// Histograms since the endpoint started, by name.
    pub hists: Vec<(String, Hist)>,
    /// The layer's state line (empty if it did not fit the datagram).
    pub state: String,
}

impl Report {
    /// The report of a member with `view` and `metrics`.
    pub fn new(nonce: u64, me: EndpointId, view: &View, m: &Metrics) -> Report {
        let named = |v: &[(&'static str, u64)]| v.iter().map(|&(n, v)| (n.to_string(), v)).collect();
        Report {
            nonce,
            me,
            view: View { id: view.id, members: view.members.clone(), primary: view.primary, subgroups: Vec::new() },
            layers: m
                .layers
                .iter()
                .map(|l| LayerReport {
                    layer: l.key.layer.to_string(),
                    instance: l.key.instance,
                    counters: named(&l.counters),
                    gauges: named(&l.gauges),
                    hists: l.hists.iter().map(|(n, h)| (n.to_string(), *h)).collect(),
                    state: l.state.clone(),
                })
                .collect(),
            endpoint: named(&m.endpoint.counters()),
            truncated: false,
        }
    }

    /// The layer `layer`'s instance `instance`.
    pub fn layer(&self, layer: &str, instance: u32) -> Option<&LayerReport> {
        self.layers.iter().find(|l| l.layer == layer && l.instance == instance)
    }

    /// Encoded in at most `room` bytes, what does not fit left out (module doc); `None` if
    /// not even the member's id and view id fit.
    pub fn fit(mut self, room: usize) -> Option<Vec<u8>> {
        loop {
            let out = Probe::Answer(Box::new(self.clone())).encode();
            if out.len() <= room {
                return Some(out);
            }
            self.truncated = true;
            if self.layers.iter().any(|l| !l.state.is_empty()) {
                self.layers.iter_mut().for_each(|l| l.state.clear());
            } else if self.layers.pop().is_some() {
            } else if !self.endpoint.is_empty() {
                self.endpoint.clear();
            } else if !self.view.members.is_empty() {
                // A view too large for the datagram: its first members.
                self.view.members.truncate(self.view.members.len() / 2);
            } else {
                return None;
            }
        }
    }
}

impl LayerReport {
    /// A counter's or a gauge's value, by name.
    pub fn counter(&self, name: &str) -> Option<u64> {
        self.counters.iter().chain(&self.gauges).find(|(n, _)| n == name).map(|&(_, v)| v)
    }
    /// The histogram of this name.
    pub fn hist(&self, name: &str) -> Option<&Hist> {
        self.hists.iter().find(|(n, _)| n == name).map(|(_, h)| h)
    }
}

impl Probe {
    /// The probe datagram's payload (no size bound here: `Report::fit` keeps an answer to
    /// one datagram).
    pub fn encode(&self) -> Vec<u8> {
        let mut o = Vec::new();
        match self {
            Probe::Request { nonce } => {
                o.push(REQUEST);
                var(&mut o, *nonce);
            }
            Probe::Answer(r) => {
                o.push(ANSWER);
                var(&mut o, r.nonce);
                var(&mut o, r.me.0);
                var(&mut o, r.view.id.ltime);
                var(&mut o, r.view.id.coord.0);
                o.push(r.view.primary as u8);
                var(&mut o, r.view.members.len() as u64);
                for m in &r.view.members {
                    var(&mut o, m.0);
                }
                o.push(r.truncated as u8);
                named(&mut o, &r.endpoint);
                var(&mut o, r.layers.len() as u64);
                for l in &r.layers {
                    text(&mut o, &l.layer);
                    var(&mut o, l.instance.into());
                    named(&mut o, &l.counters);
                    named(&mut o, &l.gauges);
                    var(&mut o, l.hists.len() as u64);
                    for (n, h) in &l.hists {
                        text(&mut o, n);
                        hist(&mut o, h);
                    }
                    text(&mut o, &l.state);
                }
            }
        }
        o
    }

    /// Reads a probe payload that must take all of `b`; hostile bytes give an error, never
    /// a panic.
    pub fn decode(b: &[u8]) -> Result<Probe, WireError> {
        let mut r = Reader::new(b);
        let p = match r.u8()? {
            REQUEST => Probe::Request { nonce: r.var()? },
            ANSWER => {
                let nonce = r.var()?;
                let me = EndpointId(r.var()?);
                let id = ViewId { ltime: r.var()?, coord: EndpointId(r.var()?) };
                let primary = flag(&mut r)?;
                let members = list(&mut r, |r| Ok(EndpointId(r.var()?)))?;
                let truncated = flag(&mut r)?;
                let endpoint = read_named(&mut r)?;
                let layers = list(&mut r, |r| {
                    Ok(LayerReport {
                        layer: read_text(r)?,
                        instance: u32::try_from(r.var()?).map_err(|_| WireError::BadValue)?,
                        counters: read_named(r)?,
                        gauges: read_named(r)?,
                        hists: list(r, |r| Ok((read_text(r)?, read_hist(r)?)))?,
                        state: read_text(r)?,
                    })
                })?;
                let view = View { id, members, primary, subgroups: Vec::new() };
                Probe::Answer(Box::new(Report { nonce, me, view, layers, endpoint, truncated }))
            }
            _ => return Err(WireError::BadTag),
        };
        if r.remaining() != 0 {
            return Err(WireError::BadValue);
        }
        Ok(p)
    }
}

fn var(o: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        o.push(v as u8 | 0x80);
        v >>= 7;
    }
    o.push(v as u8);
}

fn text(o: &mut Vec<u8>, s: &str) {
    var(o, s.len() as u64);
    o.extend_from_slice(s.as_bytes());
}

fn named<S: AsRef<str>>(o: &mut Vec<u8>, v: &[(S, u64)]) {
    var(o, v.len() as u64);
    for (n, x) in v {
        text(o, n.as_ref());
        var(o, *x);
    }
}

/// Count, sum, then the buckets that hold anything, by index.
fn hist(o: &mut Vec<u8>, h: &Hist) {
    let b = h.buckets();
    var(o, h.count());
    var(o, h.sum());
    var(o, b.iter().filter(|&&n| n > 0).count() as u64);
    for (i, &n) in b.iter().enumerate().filter(|(_, n)| **n > 0) {
        o.push(i as u8);
        var(o, n);
    }
}

fn flag(r: &mut Reader<'_>) -> Result<bool, WireError> {
    match r.u8()? {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(WireError::BadValue),
    }
}

/// A count, then that many items. Each item takes at least one byte, so a list never grows
/// past what its bytes can hold: nothing is reserved on the count's word.
fn list<T>(
    r: &mut Reader<'_>,
    mut item: impl FnMut(&mut Reader<'_>) -> Result<T, WireError>,
) -> Result<Vec<T>, WireError> {
    let n = r.var()?;
    if n > r.remaining() as u64 {
        return Err(WireError::Truncated);
    }
    let mut v = Vec::new();
    for _ in 0..n {
        v.push(item(r)?);
    }
    Ok(v)
}

fn read_text(r: &mut Reader<'_>) -> Result<String, WireError> {
    let n = usize::try_from(r.var()?).map_err(|_| WireError::BadValue)?;
    String::from_utf8(r.take(n)?.to_vec()).map_err(|_| WireError::BadValue)
}

fn read_named(r: &mut Reader<'_>) -> Result<Vec<(String, u64)>, WireError> {
    list(r, |r| Ok((read_text(r)?, r.var()?)))
}

fn read_hist(r: &mut Reader<'_>) -> Result<Hist, WireError> {
    let (count, sum) = (r.var()?, r.var()?);
    let mut buckets = [0u64; BUCKETS];
    for (i, n) in list(r, |r| Ok((r.u8()? as usize, r.var()?)))? {
        *buckets.get_mut(i).ok_or(WireError::BadValue)? = n;
    }
    Hist::from_parts(buckets, count, sum).ok_or(WireError::BadValue)
}

/// The rate limit on answers: a token bucket over the endpoint's clock.
#[derive(Clone, Debug)]
pub(crate) struct Budget {
    tokens: u32,
    last: Option<Time>,
}

impl Default for Budget {
    fn default() -> Budget {
        Budget { tokens: BURST, last: None }
    }
}

impl Budget {
    /// Whether an answer may go now (taking a token if so).
    pub(crate) fn take(&mut self, now: Time) -> bool {
        let last = *self.last.get_or_insert(now);
        let earned = (now.since(last).as_nanos() / REFILL.as_nanos()).min(BURST.into()) as u32;
        if earned > 0 {
            self.tokens = (self.tokens + earned).min(BURST);
            self.last = Some(if earned == BURST { now } else { last + REFILL * earned });
        }
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{Key, LayerMetrics};
    use crate::{GroupId, Stats};

    fn report(state: &str, layers: u32) -> Report {
        let mut h = Hist::default();
        h.record(5);
        h.record(70_000);
        let m = Metrics {
            layers: (0..layers)
                .map(|i| LayerMetrics {
                    key: Key { group: GroupId(1), layer: "nak", instance: i },
                    counters: vec![("casts", 7 + i as u64)],
                    gauges: vec![("held_bytes", 3)],
                    hists: vec![("gap_us", h)],
                    state: state.to_string(),
                })
                .collect(),
            endpoint: Stats { views: 3, ..Stats::default() },
        };
        let view = View {
            id: ViewId { ltime: 4, coord: EndpointId(9) },
            members: vec![EndpointId(9), EndpointId(2)],
            primary: true,
            subgroups: vec![],
        };
        Report::new(42, EndpointId(2), &view, &m)
    }

    #[test]
    fn answers_and_requests_round_trip() {
        let r = report("next [3, 4]", 2);
        let p = Probe::Answer(Box::new(r.clone()));
        assert_eq!(Probe::decode(&p.encode()), Ok(p));
        assert_eq!(Probe::decode(&Probe::Request { nonce: 1 << 40 }.encode()), Ok(Probe::Request { nonce: 1 << 40 }));
        assert_eq!(r.layer("nak", 1).and_then(|l| l.counter("casts")), Some(8));
        assert_eq!(r.layer("nak", 1).and_then(|l| l.hist("gap_us")).map(Hist::count), Some(2));
        assert!(r.endpoint.contains(&("views".to_string(), 3)));
    }

    #[test]
    fn what_does_not_fit_is_left_out_states_first() {
        let full = report(&"x".repeat(400), 4);
        let whole = full.clone().fit(usize::MAX).unwrap();
        let Ok(Probe::Answer(r)) = Probe::decode(&whole) else { panic!() };
        assert!(!r.truncated && r.layers.len() == 4);
        let out = full.clone().fit(whole.len() - 1).unwrap();
        assert!(out.len() < whole.len());
        let Ok(Probe::Answer(r)) = Probe::decode(&out) else { panic!() };
        assert!(r.truncated && r.layers.len() == 4 && r.layers.iter().all(|l| l.state.is_empty()), "states go first");
        let out = full.clone().fit(200).unwrap();
        assert!(out.len() <= 200);
        let Ok(Probe::Answer(r)) = Probe::decode(&out) else { panic!() };
        assert!(r.truncated && r.layers.len() < 4 && r.me == EndpointId(2));
        let out = full.clone().fit(10).unwrap();
        let Ok(Probe::Answer(r)) = Probe::decode(&out) else { panic!() };
        assert!(r.layers.is_empty() && r.endpoint.is_empty() && r.view.members.is_empty() && r.view.id.ltime == 4);
        assert_eq!(full.fit(5), None, "not even the ids");
    }

    #[test]
    fn hostile_bytes_are_refused_never_a_panic() {
        let good = Probe::Answer(Box::new(report("s", 2))).encode();
        for cut in 0..good.len() {
            assert!(Probe::decode(&good[..cut]).is_err(), "cut at {cut}");
        }
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..20_000 {
            let mut b = good.clone();
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let at = (x as usize) % b.len();
            b[at] = (x >> 32) as u8;
            let _ = Probe::decode(&b);
        }
        // A count that claims more items than bytes remain.
        assert_eq!(Probe::decode(&[ANSWER, 1, 1, 1, 1, 1, 0xff, 0xff, 0x03]), Err(WireError::Truncated));
        assert_eq!(Probe::decode(&[9]), Err(WireError::BadTag));
    }

    #[test]
    fn answers_are_rate_limited() {
        let mut b = Budget::default();
        let t0 = Time::from_nanos(1_000_000_000);
        assert_eq!((0..100).filter(|_| b.take(t0)).count(), BURST as usize);
        assert!(!b.take(t0 + REFILL / 2));
        assert!(b.take(t0 + REFILL));
        assert!(!b.take(t0 + REFILL));
        assert_eq!(
            (0..100).filter(|_| b.take(t0 + REFILL * 1000)).count(),
            BURST as usize,
            "refilled to the burst, no more"
        );
    }
}
