//! `flow`: credit-based multicast flow control, so a fast sender cannot overrun slow receivers.
//!
//! **Protocol** (JGroups MFC, made loss-tolerant with cumulative counters). Credits are bytes.
//! Only reliable casts (`Dn::Cast`) are flow-controlled; they carry a `Data` header and cost
//! `msg.len()` measured before the header is pushed (the receiver measures after popping it,
//! so both agree). `CastUnrel`, `Send`, `SendUnrel` and control events get `NoHdr` and are
//! never held back, so the control traffic of the layers below (NAKs, acks, gossip) and this
//! layer's own grants always flow.
//!
//! *Sender.* `sent` counts the bytes cast so far; `consumed[r]` is the latest cumulative count
//! member `r` reported consuming from us. The outstanding bytes are `sent - min_r consumed[r]`
//! over the other members (own casts are not counted against oneself: a group of one never
//! blocks). A cast goes down at once if `outstanding + len <= credits`, or if nothing is
//! outstanding at all: that is how a message larger than `credits` still goes, alone, once
//! every receiver has consumed everything before it (the one documented overshoot: then up
//! to that message's length is outstanding). Otherwise it is held, `Up::Flow { ready: false }`
//! is emitted (the endpoint then refuses casts, so the queue holds about one message; it is
//! bounded by `max_held` anyway), and held casts are released in order as grants arrive.
//! Once the queue is empty and some credit is left (`outstanding < credits`), the layer emits
//! `Up::Flow { ready: true }`. The `ready` events strictly alternate, starting with `false`.
//! The layer tells its room (`Layer::cast_room`: `credits` less the outstanding bytes, none
//! while it holds casts), so that the endpoint hands it a run of casts in one input only as
//! far as they go at once.
//!
//! *Receiver.* `received[s]` counts the bytes of `Data` casts from `s` this layer delivered up.
//! When `received[s] - granted[s] >= threshold` it sends `Grant { consumed: received[s] }` to
//! `s` by `Dn::SendUnrel`. Grants are cumulative: a lost, duplicated or reordered grant is
//! covered by any later one, and older values are ignored. With `threshold <= credits - len`
//! a sender never waits for a grant that is not coming: once everything is delivered, less
//! than `threshold` is ungranted, so the next message fits.
//!
//! *End to end.* Credits are granted as the stack delivers to the application, so `flow`
//! belongs at the top. Over UDP the driver stops reading its sockets while the application's
//! event queue is full (`UdpConfig::events`), so a slow application stops deliveries, hence
//! grants, hence the senders: they see `Up::Flow { ready: false }`, and `Handle::cast` blocks
//! (`FlowPolicy::Block`) or returns `WouldBlock` (`FlowPolicy::WouldBlock`). Choose `credits`
//! below the receivers' socket buffer so a full window fits in the kernel.
//!
//! *Lost grants.* While blocked, every `req_interval` the sender sends `CreditReq` by
//! `Dn::SendUnrel` to exactly the members whose grant it needs (those that keep the head of
//! the queue from fitting, or keep `outstanding >= credits`); a receiver answers a `CreditReq`
//! at once with its current cumulative `Grant` (one small reply per request: no
//! amplification). That is also the only wait for a message larger than `credits - threshold`.
//! No timer is armed unless blocked, so a quiet group quiesces.
//!
//! **Failed members.** After `Dn::Failed(ranks)` (passed on down first; the set only grows)
//! failed members no longer constrain credit: `outstanding` is taken over the live others,
//! so held casts go out as the survivors allow and a sender blocked on a failed receiver's
//! grant unblocks (`Up::Flow { ready: true }`) at once if the survivors have consumed enough.
//! No `CreditReq` or `Grant` goes to a failed member, and grants and requests from one are
//! dropped and counted (`from_failed`).
//!
//! `Dn::Leave` first releases every held cast (ignoring credit: the member is going anyway),
//! then passes down; so does `Dn::BlockOk` (the membership layer's flush: no more casts come
//! from above in this view, and the flush counts the held ones, so they must go now).
//! Hostile input: an undecodable header, a variant on the wrong kind of message
//! (`bad_hdr`), a grant or request from this member's own rank or outside the view
//! (`bad_rank`) are dropped and counted; nothing panics, nothing is delivered. A grant for
//! more than we ever sent (`bad_grant`) counts as a grant for everything sent: a receiver
//! that took a forged cast longer than the real one it replaced reports more than we sent
//! from then on, and refusing its grants would block this sender for the rest of the view.
//! (A forged cast shorter than the one it replaced leaves the sender that many bytes of
//! credit short for the rest of the view, never more than the forged casts' difference.)
//!
//! **Parameters** (spec `flow(credits=2097152,threshold=0.25,req_ms=10,max_held=64)`):
//! `credits` bytes a sender may have outstanding to its slowest receiver (2 MiB, as JGroups'
//! `udp.xml` MFC: a window that fits in the 8 MiB socket buffer the UDP driver asks for, with
//! room for several senders); `threshold` the fraction of `credits` a receiver consumes before
//! it grants (0.25: four grants per window, so the sender rarely runs dry, and any message up
//! to 0.75 × credits never waits for a request); `req_ms` how long a blocked sender waits
//! before asking again (10 ms: loopback round trips are tens of µs, so a grant that has not
//! come in 10 ms is lost or the receiver is really slow; at most 100 small requests per second
//! per limiting member); `max_held` casts held while blocked before they are forced out
//! (counted `forced`; only a layer above that ignores `ready: false` can get there).
//!
//! **Properties:** requires `RELIABLE_CAST | FIFO_CAST` (a cast lost below would never be
//! counted, hence never granted); provides `FLOW`.
//!
//! **Events generated:** down `Cast` (`Data`, released casts), `SendUnrel` (`Grant`,
//! `CreditReq`), `Failed` (passed on); up `Flow { ready }`, `Cast` (deliveries, header popped).
//!
//! **Memory:** at most `max_held` held casts, plus three counters per member of the view.
//!
//! **Tests:** `layers/tests/batch.rs`: a batch of casts counted and handed on at once
//! (`handle_ups`) as one at a time; `layers/tests/flow.rs`: unit tests with exact outputs (credit, hold, release,
//! grants at the threshold, requests and their repeats, answers, hostile grants, unreliable
//! traffic never held, a failed receiver stops constraining credit), bolero (header
//! round-trip, arbitrary bytes, the sender against a reference model under arbitrary casts
//! and lost, duplicated, reordered grants), whole groups of `flow:stable:nak` in the
//! simulator under loss with a slow receiver (outstanding bytes sampled after every step; a
//! deliberately broken flow layer must be caught), and real UDP sockets with a member whose
//! application stops taking events. `layers/tests/failed.rs`: a sender blocked on a crashed
//! member unblocks once told it failed (a flow layer blind to the failure must be caught).

use std::collections::VecDeque;
use thoth_stack::wire::var_len;
use thoth_stack::{
    Args, Bytes, Cx, Dn, Dump, Duration, Layer, Msg, Props, Rank, Reader, Registry, Time, Up, Wire, WireError, Writer,
};

/// The layer's header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowHdr {
    /// Not flow-controlled: passes through.
    NoHdr,
    /// A flow-controlled cast; its bytes count.
    Data,
    /// The receiver has consumed `consumed` bytes of the destination's casts in all.
    Grant {
        /// Cumulative bytes of the destination's `Data` casts delivered up by the receiver.
        consumed: u64,
    },
    /// A blocked sender asks for the receiver's current grant.
    CreditReq,
}

const TAG_NOHDR: u8 = 0;
const TAG_DATA: u8 = 1;
const TAG_GRANT: u8 = 2;
const TAG_REQ: u8 = 3;

impl Wire for FlowHdr {
    thoth_stack::nothing!(FlowHdr::Data);
    fn encoded_len(&self) -> usize {
        1 + match *self {
            FlowHdr::Grant { consumed } => var_len(consumed),
            _ => 0,
        }
    }
    fn encode(&self, w: &mut Writer<'_>) {
        match *self {
            FlowHdr::NoHdr => w.put_u8(TAG_NOHDR),
            FlowHdr::Data => w.put_u8(TAG_DATA),
            FlowHdr::Grant { consumed } => {
                w.put_u8(TAG_GRANT);
                w.put_var(consumed);
            }
            FlowHdr::CreditReq => w.put_u8(TAG_REQ),
        }
    }
    fn decode(r: &mut Reader<'_>) -> Result<FlowHdr, WireError> {
        match r.u8()? {
            TAG_NOHDR => Ok(FlowHdr::NoHdr),
            TAG_DATA => Ok(FlowHdr::Data),
            TAG_GRANT => Ok(FlowHdr::Grant { consumed: r.var()? }),
            TAG_REQ => Ok(FlowHdr::CreditReq),
            _ => Err(WireError::BadTag),
        }
    }
}

/// Parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Bytes a sender may have outstanding to its slowest receiver (at least 1).
    pub credits: u64,
    /// Fraction of `credits` a receiver consumes before it grants, in `(0, 1]`.
    pub threshold: f64,
    /// How long a blocked sender waits before (re)sending `CreditReq`.
    pub req_interval: Duration,
    /// Casts held while blocked before they are forced out regardless of credit (at least 1).
    pub max_held: usize,
    /// Tests only: ignore credit entirely (a bug the simulator must catch).
    #[doc(hidden)]
    pub test_ignore_credit: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            credits: 2 << 20,
            threshold: 0.25,
            req_interval: Duration::from_millis(10),
            max_held: 64,
            test_ignore_credit: false,
        }
    }
}

#[derive(Default, Debug, Clone, Copy)]
struct Counters {
    casts: u64,
    blocks: u64,
    forced: u64,
    grants_sent: u64,
    grants_recv: u64,
    stale_grants: u64,
    reqs_sent: u64,
    reqs_recv: u64,
    bad_hdr: u64,
    bad_rank: u64,
    bad_grant: u64,
    from_failed: u64,
}

/// The layer.
pub struct Flow {
    cfg: Config,
    /// Ungranted bytes that make a receiver grant.
    threshold: u64,
    /// This member's rank, learned from the first event.
    me: usize,
    /// Bytes cast (released down) so far.
    sent: u64,
    /// Per rank: cumulative bytes of our casts that member reported consuming.
    consumed: Vec<u64>,
    /// Casts waiting for credit, in order, and their total bytes.
    held: VecDeque<Msg>,
    held_bytes: u64,
    /// Between `Flow { ready: false }` and `Flow { ready: true }`.
    blocked: bool,
    /// When to send the next `CreditReq` (only while blocked).
    req_at: Option<Time>,
    /// Per rank: bytes of its casts delivered up, and the last value granted to it.
    received: Vec<u64>,
    granted: Vec<u64>,
    /// Per rank: named by `Dn::Failed` (no longer constrains credit).
    failed: Vec<bool>,
    /// Highest `outstanding` ever reached.
    peak: u64,
    c: Counters,
}

impl Default for Flow {
    fn default() -> Self {
        Flow::new(Config::default())
    }
}

impl Flow {
    /// A flow layer. Out-of-range parameters are clamped rather than refused: `credits` and
    /// `max_held` to at least 1, and a `threshold` outside `(0, 1]` (or NaN) to 1.
    pub fn new(mut cfg: Config) -> Flow {
        cfg.credits = cfg.credits.max(1);
        cfg.max_held = cfg.max_held.max(1);
        let t = if cfg.threshold.is_finite() && cfg.threshold > 0.0 { cfg.threshold.min(1.0) } else { 1.0 };
        let threshold = ((cfg.credits as f64 * t).ceil() as u64).clamp(1, cfg.credits);
        Flow {
            cfg,
            threshold,
            me: 0,
            sent: 0,
            consumed: Vec::new(),
            held: VecDeque::new(),
            held_bytes: 0,
            blocked: false,
            req_at: None,
            received: Vec::new(),
            granted: Vec::new(),
            failed: Vec::new(),
            peak: 0,
            c: Counters::default(),
        }
    }

    /// Ungranted bytes after which a receiver grants.
    pub fn threshold(&self) -> u64 {
        self.threshold
    }

    /// Bytes sent and not yet consumed by the slowest other live member.
    fn outstanding(&self) -> u64 {
        let me = self.me;
        let live = self.consumed.iter().zip(&self.failed).enumerate().filter(|&(r, (_, &f))| r != me && !f);
        live.map(|(_, (&c, _))| self.sent - c).max().unwrap_or(0)
    }

    /// Whether member `r` lets a cast of `len` bytes go (`None`: whether it leaves credit).
    fn lets_go(&self, r: usize, len: Option<u64>) -> bool {
        let out = self.sent - self.consumed[r];
        match len {
            Some(len) => out + len <= self.cfg.credits || out == 0,
            None => out < self.cfg.credits,
        }
    }

    fn fits(&self, len: u64) -> bool {
        let out = self.outstanding();
        self.cfg.test_ignore_credit || out + len <= self.cfg.credits || out == 0
    }

    /// Bytes of casts that would go at once, one after another (`Layer::cast_room`).
    fn room(&self) -> u64 {
        if self.blocked || !self.held.is_empty() {
            0
        } else if self.cfg.test_ignore_credit {
            u64::MAX
        } else {
            self.cfg.credits.saturating_sub(self.outstanding())
        }
    }

    fn release(&mut self, mut msg: Msg, len: u64, cx: &mut Cx<'_>) {
        self.sent += len;
        self.c.casts += 1;
        self.peak = self.peak.max(self.outstanding());
        msg.push(&FlowHdr::Data);
        cx.dn(Dn::Cast(msg));
    }

    fn pop_held(&mut self) -> Option<(Msg, u64)> {
        let m = self.held.pop_front()?;
        let len = m.len() as u64;
        self.held_bytes -= len;
        Some((m, len))
    }

    /// Releases held casts in order while they fit; unblocks once none is left and credit is.
    fn drain(&mut self, cx: &mut Cx<'_>) {
        while let Some(len) = self.held.front().map(|m| m.len() as u64) {
            if !self.fits(len) {
                break;
            }
            let (m, len) = self.pop_held().expect("front exists");
            self.release(m, len, cx);
        }
        if self.blocked && self.held.is_empty() && self.outstanding() < self.cfg.credits {
            self.blocked = false;
            self.req_at = None;
            cx.up(Up::Flow { ready: true });
        }
    }

    fn on_cast(&mut self, msg: Msg, cx: &mut Cx<'_>) {
        let len = msg.len() as u64;
        if !self.blocked && self.fits(len) {
            return self.release(msg, len, cx);
        }
        if self.held.len() >= self.cfg.max_held {
            // Something above ignores `ready: false`: keep order and memory bounded.
            while let Some((m, l)) = self.pop_held() {
                self.c.forced += 1;
                self.release(m, l, cx);
            }
            self.c.forced += 1;
            return self.release(msg, len, cx);
        }
        self.held_bytes += len;
        self.held.push_back(msg);
        if !self.blocked {
            self.blocked = true;
            self.c.blocks += 1;
            self.req_at = Some(cx.now + self.cfg.req_interval);
            cx.up(Up::Flow { ready: false });
        }
    }

    fn on_grant(&mut self, r: usize, consumed: u64, cx: &mut Cx<'_>) {
        if consumed > self.sent {
            self.c.bad_grant += 1;
        }
        let consumed = consumed.min(self.sent);
        self.c.grants_recv += 1;
        if consumed <= self.consumed[r] {
            self.c.stale_grants += 1;
            return;
        }
        self.consumed[r] = consumed;
        self.drain(cx);
    }

    /// A cast of `len` bytes from rank `s` of the view went up: credit for it is granted
    /// once enough has gone up since the last grant.
    fn received_data(&mut self, s: usize, len: u64, cx: &mut Cx<'_>) {
        if s != self.me {
            self.received[s] += len;
            if self.received[s] - self.granted[s] >= self.threshold && !self.failed[s] {
                self.grant(s, cx);
            }
        }
    }

    fn grant(&mut self, to: usize, cx: &mut Cx<'_>) {
        self.granted[to] = self.received[to];
        self.c.grants_sent += 1;
        let mut m = Msg::new(Bytes::new());
        m.push(&FlowHdr::Grant { consumed: self.received[to] });
        cx.dn(Dn::SendUnrel(Rank(to as u16), m));
    }

    /// The rank index of a real other member, for grants and requests.
    fn peer(&self, from: Rank, cx: &Cx<'_>) -> Option<usize> {
        let i = from.index();
        (i != self.me && i < cx.view.len() && i < self.consumed.len()).then_some(i)
    }

    fn no_hdr(ev: Dn) -> Dn {
        let push = |mut m: Msg| {
            m.push(&FlowHdr::NoHdr);
            m
        };
        match ev {
            Dn::Cast(m) => Dn::Cast(push(m)),
            Dn::CastUnrel(m) => Dn::CastUnrel(push(m)),
            Dn::Send(r, m) => Dn::Send(r, push(m)),
            Dn::SendUnrel(r, m) => Dn::SendUnrel(r, push(m)),
            other => other,
        }
    }
}

impl Layer for Flow {
    fn name(&self) -> &'static str {
        "flow"
    }
    fn requires(&self) -> Props {
        Props::RELIABLE_CAST | Props::FIFO_CAST
    }
    fn provides(&self) -> Props {
        Props::FLOW
    }

    fn init(&mut self, cx: &mut Cx<'_>) {
        let n = cx.view.len();
        self.me = cx.rank.index();
        self.consumed = vec![0; n];
        self.received = vec![0; n];
        self.granted = vec![0; n];
        self.failed = vec![false; n];
    }

    fn max_header(&self, _: &thoth_stack::View) -> usize {
        FlowHdr::Data.encoded_len()
    }
    fn cast_room(&self) -> usize {
        usize::try_from(self.room()).unwrap_or(usize::MAX)
    }
    fn handle_dn(&mut self, ev: Dn, cx: &mut Cx<'_>) {
        match ev {
            Dn::Cast(msg) => self.on_cast(msg, cx),
            Dn::Failed(ranks) => {
                cx.dn(Dn::Failed(ranks.clone()));
                for r in ranks {
                    if let Some(f) = self.failed.get_mut(r.index()) {
                        *f = true;
                    }
                }
                self.drain(cx);
            }
            Dn::Leave | Dn::BlockOk => {
                while let Some((m, l)) = self.pop_held() {
                    self.c.forced += 1;
                    self.release(m, l, cx);
                }
                self.req_at = None;
                cx.dn(ev);
            }
            ev => cx.dn(Self::no_hdr(ev)),
        }
    }

    fn handle_ups(&mut self, evs: &mut VecDeque<Up>, cx: &mut Cx<'_>) {
        // The data path: casts of members of the view (flow's nothing is `Data`) are
        // counted, granting credit where it is due, in order, and pass on all at once.
        let n = cx.view.len().min(self.received.len());
        if !evs.iter().all(|e| e.is_bare_cast() && matches!(e, Up::Cast { from, .. } if from.index() < n)) {
            return thoth_stack::layer::each_up(self, evs, cx);
        }
        for e in evs.iter() {
            if let Up::Cast { from, msg } = e {
                self.received_data(from.index(), msg.len() as u64, cx);
            }
        }
        cx.up_all(evs)
    }
    fn handle_up(&mut self, ev: Up, cx: &mut Cx<'_>) {
        match ev {
            Up::Cast { from, mut msg } => match msg.pop::<FlowHdr>() {
                Ok(FlowHdr::NoHdr) => cx.up(Up::Cast { from, msg }),
                Ok(FlowHdr::Data) => {
                    let s = from.index();
                    if s >= cx.view.len() || s >= self.received.len() {
                        self.c.bad_rank += 1;
                        return;
                    }
                    let len = msg.len() as u64;
                    cx.up(Up::Cast { from, msg });
                    self.received_data(s, len, cx);
                }
                Ok(_) | Err(_) => self.c.bad_hdr += 1,
            },
            Up::Send { from, mut msg } => match msg.pop::<FlowHdr>() {
                Ok(FlowHdr::NoHdr) => cx.up(Up::Send { from, msg }),
                Ok(FlowHdr::Grant { .. } | FlowHdr::CreditReq) if self.failed.get(from.index()) == Some(&true) => {
                    self.c.from_failed += 1
                }
                Ok(FlowHdr::Grant { consumed }) => match self.peer(from, cx) {
                    Some(r) => self.on_grant(r, consumed, cx),
                    None => self.c.bad_rank += 1,
                },
                Ok(FlowHdr::CreditReq) => match self.peer(from, cx) {
                    Some(r) => {
                        self.c.reqs_recv += 1;
                        self.grant(r, cx);
                    }
                    None => self.c.bad_rank += 1,
                },
                Ok(FlowHdr::Data) | Err(_) => self.c.bad_hdr += 1,
            },
            other => cx.up(other),
        }
    }

    fn poll_timeout(&self) -> Option<Time> {
        self.req_at
    }

    fn handle_timeout(&mut self, cx: &mut Cx<'_>) {
        if !self.blocked || self.req_at.is_none_or(|t| t > cx.now) {
            return;
        }
        let head = self.held.front().map(|m| m.len() as u64);
        for r in 0..self.consumed.len().min(cx.view.len()) {
            if r != self.me && !self.failed[r] && !self.lets_go(r, head) {
                self.c.reqs_sent += 1;
                let mut m = Msg::new(Bytes::new());
                m.push(&FlowHdr::CreditReq);
                cx.dn(Dn::SendUnrel(Rank(r as u16), m));
            }
        }
        self.req_at = Some(cx.now + self.cfg.req_interval);
    }

    fn dump(&self, out: &mut Vec<Dump>) {
        let c = &self.c;
        let per: Vec<String> = self
            .consumed
            .iter()
            .zip(&self.received)
            .enumerate()
            .map(|(r, (c, rx))| format!("r{r}: consumed={c} received={rx}"))
            .collect();
        out.push(Dump {
            layer: "flow",
            counters: vec![
                ("casts", c.casts),
                ("sent_bytes", self.sent),
                ("blocks", c.blocks),
                ("forced", c.forced),
                ("grants_sent", c.grants_sent),
                ("grants_recv", c.grants_recv),
                ("stale_grants", c.stale_grants),
                ("reqs_sent", c.reqs_sent),
                ("reqs_recv", c.reqs_recv),
                ("bad_hdr", c.bad_hdr),
                ("bad_rank", c.bad_rank),
                ("bad_grant", c.bad_grant),
                ("from_failed", c.from_failed),
            ],
            gauges: vec![
                ("outstanding", self.outstanding()),
                ("peak_outstanding", self.peak),
                ("held", self.held.len() as u64),
                ("held_bytes", self.held_bytes),
                ("blocked", self.blocked as u64),
            ],
            state: format!("sent={} blocked={} {}", self.sent, self.blocked, per.join("; ")),
            ..Dump::default()
        });
    }
}

/// Registers `flow` and its parameters.
pub fn register(r: &mut Registry) {
    r.register("flow", "credit-based multicast flow control: receivers grant bytes as they consume", |a: &mut Args| {
        let d = Config::default();
        let cfg = Config {
            credits: a.get("credits", d.credits)?,
            threshold: a.get("threshold", d.threshold)?,
            req_interval: Duration::from_millis(a.get("req_ms", d.req_interval.as_millis() as u64)?),
            max_held: a.get("max_held", d.max_held)?,
            test_ignore_credit: false,
        };
        if cfg.credits == 0 {
            return Err("credits must be at least 1".into());
        }
        if !(cfg.threshold > 0.0 && cfg.threshold <= 1.0) {
            return Err("threshold must be in (0, 1]".into());
        }
        if cfg.req_interval.is_zero() {
            return Err("req_ms must be at least 1".into());
        }
        if cfg.max_held == 0 {
            return Err("max_held must be at least 1".into());
        }
        Ok(Box::new(Flow::new(cfg)))
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use thoth_stack::wire::{from_slice, to_vec};

    #[test]
    fn header_bytes() {
        assert_eq!(to_vec(&FlowHdr::NoHdr), [0]);
        assert_eq!(to_vec(&FlowHdr::Data), [1]);
        assert_eq!(to_vec(&FlowHdr::Grant { consumed: 300 }), [2, 0xac, 0x02]);
        assert_eq!(to_vec(&FlowHdr::CreditReq), [3]);
        assert_eq!(from_slice::<FlowHdr>(&[4]), Err(WireError::BadTag));
        assert_eq!(from_slice::<FlowHdr>(&[2]), Err(WireError::Truncated));
    }

    #[test]
    fn threshold_is_a_fraction_of_credits_within_bounds() {
        assert_eq!(Flow::new(Config { credits: 1000, threshold: 0.25, ..Config::default() }).threshold(), 250);
        assert_eq!(Flow::new(Config { credits: 3, threshold: 0.01, ..Config::default() }).threshold(), 1);
        assert_eq!(Flow::new(Config { credits: 10, threshold: f64::NAN, ..Config::default() }).threshold(), 10);
        assert_eq!(Flow::new(Config { credits: 0, ..Config::default() }).threshold(), 1);
    }

    #[test]
    fn registry_reads_parameters() {
        let mut r = Registry::new();
        register(&mut r);
        // Nothing below provides reliable casts here: the spec parses, the stack is refused.
        assert!(matches!(r.build("flow"), Err(thoth_stack::SpecError::Missing(_))));
        for bad in ["flow(credits=0)", "flow(threshold=0)", "flow(threshold=1.5)", "flow(req_ms=0)", "flow(bogus=1)"] {
            assert!(matches!(r.build(bad), Err(thoth_stack::SpecError::BadArgs { .. })), "{bad}");
        }
    }
}
