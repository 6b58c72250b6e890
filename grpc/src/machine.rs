//! `Rpc`: a group endpoint with calls on top, itself a sans-IO machine (`Machine`) that the
//! simulator and both UDP drivers run as they run an endpoint.
//!
//! **Calls.** `RpcCmd::Call` casts a request to the view (or sends it to one member) with a
//! call id the caller chose, and files a `Tally` of the members asked. Replies come back as
//! sends; when the call's mode or filter is satisfied, or its timeout passes (timers are
//! data: `poll_timeout`), the caller gets `RpcEvent::Done` with every member's answer. A
//! view without a member asked counts as that member's fault (`Fault::Left`); the members
//! still there that have not answered are asked again point to point, and answer from
//! their reply cache if the call ran (a reply in flight at a view change may be lost with
//! the old view's point-to-point state; a cast request is not, by virtual synchrony).
//!
//! **Requests.** A request that arrives goes to the application as `RpcEvent::Request`,
//! unless the reply cache knows it (`cache.rs`: a duplicate is answered from there, never
//! run twice). The application answers when it likes (`RpcCmd::Reply`: a slow handler holds
//! up nothing, and a reply may come much later); the reply is kept in the cache and sent to
//! the caller if it is in the view.
//!
//! **Hostile input.** A payload whose RPC header does not decode, a reply to no pending call
//! or from a member not asked, and a second answer from one member are dropped and counted
//! (`RpcStats`); nothing is delivered that no caller asked for. What the machine holds for
//! others is the cache's bounds; what it holds for its own calls is bounded by the caller.
//!
//! Tested in `grpc/tests/sim.rs`: every mode, one-way and point-to-point calls, timeouts, a
//! member crashing mid-call, duplicated requests and requests asked again after a view
//! change answered from the cache, hostile payloads; and in `grpc/tests/at_most_once.rs`
//! against a model, on a network that duplicates, loses and reorders anything (bolero).

use crate::cache::{Bounds, Cache, CallerKey, Seen};
use crate::call::{Answer, Fault, Mode, Order, Outcome, Request, Tally, Target};
use crate::wire::{self, Hdr, Status};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use thoth_stack::sim::{Fnv, Kind, Observed, Simulated};
use thoth_stack::udp::HandleError;
use thoth_stack::{
    Announce, Bytes, CastError, Cmd, Command, Endpoint, EndpointId, Event, GroupId, Layer, Machine, Metrics, Rx, Stack,
    Stats, Time, Transmit, View,
};

/// A call's number, chosen by its caller; unique among its calls pending.
pub type CallId = u64;

/// Who asked for a call this member runs: what `RpcCmd::Reply` answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Caller {
    /// The calling member.
    pub member: EndpointId,
    nonce: u64,
    /// Its call id.
    pub call: CallId,
}

/// What the application hands the machine.
pub enum RpcCmd {
    /// Call `req` under `id`, a number of the caller's, unique among its calls pending.
    Call {
        /// The caller's number for the call, named again in `RpcEvent::Done`.
        id: CallId,
        /// Whom to call, what, and how.
        req: Request,
    },
    /// The answer to a request: a value, or `Fault::Failed` (the handler failed, saying
    /// why) or `Fault::NoSuchMethod` (the other faults are the machine's to give; sent as
    /// `Failed`).
    Reply {
        /// The request answered, as `RpcEvent::Request` named it.
        to: Caller,
        /// The handler's answer.
        result: Answer,
    },
    /// An endpoint command other than a cast or a send (leave, block_ok, state).
    Endpoint(Cmd),
}

/// What the machine hands the application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RpcEvent {
    /// Run `method` on `args`, and answer with `RpcCmd::Reply { to: caller, .. }` (a one-way
    /// call, `reply` false, wants no answer).
    Request {
        /// Who asked: what the reply names.
        caller: Caller,
        /// The method's number.
        method: u64,
        /// The call's arguments.
        args: Bytes,
        /// Whether the caller waits for an answer (false: a one-way call).
        reply: bool,
    },
    /// This member's call `id` ended.
    Done {
        /// The call's id, as `RpcCmd::Call` gave it.
        id: CallId,
        /// Every member's answer, and whether the timeout ended the call.
        outcome: Outcome,
    },
    /// This member's call `id` was refused and did not go (announced besides the command's
    /// error, for a driver that does not report it).
    Refused {
        /// The call's id, as `RpcCmd::Call` gave it.
        id: CallId,
        /// Why it did not go.
        why: RpcError,
    },
    /// The endpoint's events but casts and sends (views, blocks, state transfer, exit).
    Endpoint(Event),
}

/// Why a command was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RpcError {
    /// The endpoint refused to send the request (flow control: try again when ready).
    Endpoint(CastError),
    /// A call with this id is pending.
    DuplicateId,
    /// A call to a member not in the view.
    NotMember,
    /// A reply to no request running here.
    NoSuchRequest,
    /// An endpoint command that is a cast or a send (calls are the way to send here).
    NotACommand,
    /// A group call in an order the stack does not give (`Order::given_by`).
    Unordered(Order),
}

impl std::fmt::Display for RpcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RpcError::Endpoint(e) => write!(f, "the endpoint refused the request: {e}"),
            RpcError::DuplicateId => f.write_str("a call with this id is pending"),
            RpcError::NotMember => f.write_str("the call's target is not a member of the view"),
            RpcError::NoSuchRequest => f.write_str("a reply to no request running here"),
            RpcError::NotACommand => f.write_str("casts and sends go as calls here"),
            RpcError::Unordered(o) => write!(f, "the stack does not give the order {o:?} a call asked for"),
        }
    }
}

impl std::error::Error for RpcError {}

impl From<CastError> for RpcError {
    fn from(e: CastError) -> Self {
        RpcError::Endpoint(e)
    }
}

/// For the inline driver (`thoth_stack::udp::Inline<Rpc>`), whose commands fail with a
/// `HandleError`: the endpoint's refusals as they are, the machine's own as `Refused` (a
/// refused call is also announced, with its reason, as `RpcEvent::Refused`).
impl From<RpcError> for HandleError {
    fn from(e: RpcError) -> Self {
        match e {
            RpcError::Endpoint(c) => HandleError::Cast(c),
            RpcError::NotMember => HandleError::Cast(CastError::NotMember),
            _ => HandleError::Refused,
        }
    }
}

/// What the machine counted (the endpoint counts its own).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RpcStats {
    /// Calls this member made (that went).
    pub calls: u64,
    /// Calls of this member's that ended, however.
    pub done: u64,
    /// Calls of this member's that ended at their timeout.
    pub timed_out: u64,
    /// Requests asked again after a view change.
    pub asked_again: u64,
    /// Requests that arrived here, duplicates included.
    pub requests: u64,
    /// Requests seen again: answered from the cache, or waiting for their handler.
    pub duplicates: u64,
    /// Requests answered `Expired`: forgotten by the reply cache, maybe run, not run again.
    pub expired: u64,
    /// Requests answered `Busy`: no room in the reply cache to run them.
    pub busy: u64,
    /// Replies sent (from a handler or from the cache).
    pub replies: u64,
    /// Replies to no pending call, from a member not asked, or a second from one member.
    pub stray_replies: u64,
    /// Payloads without a well-formed RPC header.
    pub bad: u64,
}

/// A Group RPC machine's parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RpcConfig {
    /// Drawn when the machine starts (a restarted caller must draw another): with the
    /// endpoint's id, it tells this incarnation's calls from an earlier one's.
    pub nonce: u64,
    /// The reply cache's bounds.
    pub cache: Bounds,
}

impl RpcConfig {
    /// A new incarnation's parameters: a nonce from the operating system's random source,
    /// the reply cache's default bounds.
    pub fn fresh() -> RpcConfig {
        RpcConfig { nonce: thoth_stack::secure::random_u64(), cache: Bounds::default() }
    }
}

struct Pending {
    method: u64,
    args: Bytes,
    tally: Tally,
    deadline: Time,
}

/// A group endpoint with Group RPC on top: a `Machine` whose commands are calls and replies
/// and whose events are requests and ended calls (see the module doc).
pub struct Rpc<L: Layer = Stack> {
    ep: Endpoint<L>,
    cfg: RpcConfig,
    pending: BTreeMap<CallId, Pending>,
    deadlines: BTreeSet<(Time, CallId)>,
    cache: Cache,
    events: VecDeque<RpcEvent>,
    stats: RpcStats,
}

impl<L: Layer> Rpc<L> {
    /// Group RPC over `ep`, a fresh reply cache and no calls.
    pub fn new(ep: Endpoint<L>, cfg: RpcConfig) -> Rpc<L> {
        let mut rpc = Rpc {
            ep,
            cfg,
            pending: BTreeMap::new(),
            deadlines: BTreeSet::new(),
            cache: Cache::new(cfg.cache),
            events: VecDeque::new(),
            stats: RpcStats::default(),
        };
        rpc.collect(Time::ZERO);
        rpc
    }

    /// The endpoint underneath (its view, its stats).
    pub fn endpoint(&self) -> &Endpoint<L> {
        &self.ep
    }
    /// This incarnation's nonce (`RpcConfig::nonce`).
    pub fn nonce(&self) -> u64 {
        self.cfg.nonce
    }
    /// What the machine counted.
    pub fn rpc_stats(&self) -> &RpcStats {
        &self.stats
    }
    /// Calls running here, replies kept and their bytes, callers remembered.
    pub fn cache_sizes(&self) -> (usize, usize, usize, usize) {
        self.cache.sizes()
    }

    fn call(&mut self, now: Time, id: CallId, c: Request) -> Result<(), RpcError> {
        if self.pending.contains_key(&id) {
            return Err(RpcError::DuplicateId);
        }
        let reply = c.mode != Mode::None;
        let hdr = Hdr::Request { nonce: self.cfg.nonce, id, method: c.method, reply };
        let data = wire::join(&hdr, &c.args);
        let asked: Vec<EndpointId> = match c.target {
            Target::Group => {
                match c.order {
                    o if !o.given_by(self.ep.props()) => return Err(RpcError::Unordered(o)),
                    Order::Ubcast => self.ep.cast_fifo(now, data)?,
                    _ => self.ep.cast(now, data)?,
                }
                self.ep.view().members.clone()
            }
            Target::Member(m) => {
                if self.ep.view().rank_of(m).is_none() {
                    return Err(RpcError::NotMember);
                }
                self.ep.send(now, m, data)?;
                vec![m]
            }
        };
        self.stats.calls += 1;
        let tally = Tally::new(c.mode, c.filter, if reply { asked } else { Vec::new() });
        let deadline = now + c.timeout;
        self.pending.insert(id, Pending { method: c.method, args: c.args, tally, deadline });
        self.deadlines.insert((deadline, id));
        self.check(id);
        self.collect(now);
        Ok(())
    }

    fn reply(&mut self, now: Time, to: Caller, result: Answer) -> Result<(), RpcError> {
        let (status, body) = match result {
            Ok(b) => (Status::Ok, b),
            Err(Fault::NoSuchMethod) => (Status::NoSuchMethod, Bytes::new()),
            Err(Fault::Failed(why)) => (Status::Failed, Bytes::from(why.into_bytes())),
            Err(other) => (Status::Failed, Bytes::from(format!("{other:?}").into_bytes())),
        };
        if !self.cache.finish((to.member, to.nonce), to.call, status, body.clone()) {
            return Err(RpcError::NoSuchRequest);
        }
        self.answer(now, to.member, to.nonce, to.call, status, &body);
        self.collect(now);
        Ok(())
    }

    /// Sends a reply to `member` if it is in the view (else it waits in the cache for the
    /// caller to ask again).
    fn answer(&mut self, now: Time, member: EndpointId, nonce: u64, id: CallId, status: Status, body: &[u8]) {
        if self.ep.view().rank_of(member).is_some() {
            let data = wire::join(&Hdr::Reply { nonce, id, status }, body);
            if self.ep.send(now, member, data).is_ok() {
                self.stats.replies += 1;
            }
        }
    }

    /// Takes what the endpoint output: requests and replies, view changes, the rest as is.
    fn collect(&mut self, now: Time) {
        while let Some(ev) = self.ep.poll_event() {
            match ev {
                Event::Cast { from, data } | Event::Send { from, data } => self.arrived(now, from, data),
                Event::View(v) => {
                    self.view_changed(now, &v);
                    self.events.push_back(RpcEvent::Endpoint(Event::View(v)));
                }
                other => self.events.push_back(RpcEvent::Endpoint(other)),
            }
        }
    }

    fn arrived(&mut self, now: Time, from: EndpointId, data: Bytes) {
        let Ok((hdr, body)) = wire::split(&data) else {
            self.stats.bad += 1;
            return;
        };
        match hdr {
            Hdr::Request { nonce, id, method, reply } => self.request(now, (from, nonce), id, method, reply, body),
            Hdr::Reply { nonce, id, status } => {
                let answer = match status {
                    Status::Ok => Ok(body),
                    Status::Failed => Err(Fault::Failed(String::from_utf8_lossy(&body).into_owned())),
                    Status::NoSuchMethod => Err(Fault::NoSuchMethod),
                    Status::Busy => Err(Fault::Busy),
                    Status::Expired => Err(Fault::Expired),
                };
                let ours = nonce == self.cfg.nonce;
                let taken = ours && self.pending.get_mut(&id).is_some_and(|p| p.tally.answer(from, answer));
                if taken {
                    self.check(id);
                } else {
                    self.stats.stray_replies += 1;
                }
            }
        }
    }

    fn request(&mut self, now: Time, caller: CallerKey, id: CallId, method: u64, reply: bool, args: Bytes) {
        self.stats.requests += 1;
        match self.cache.arrive(caller, id) {
            Seen::Run if reply => {
                let caller = Caller { member: caller.0, nonce: caller.1, call: id };
                self.events.push_back(RpcEvent::Request { caller, method, args, reply });
            }
            Seen::Run => {
                // One way: run, and remembered as done at once (no reply will come).
                self.cache.finish(caller, id, Status::Ok, Bytes::new());
                let caller = Caller { member: caller.0, nonce: caller.1, call: id };
                self.events.push_back(RpcEvent::Request { caller, method, args, reply });
            }
            Seen::Running => self.stats.duplicates += 1,
            Seen::Done(status, body) => {
                self.stats.duplicates += 1;
                if reply {
                    self.answer(now, caller.0, caller.1, id, status, &body);
                }
            }
            Seen::Expired => {
                self.stats.expired += 1;
                if reply {
                    self.answer(now, caller.0, caller.1, id, Status::Expired, &[]);
                }
            }
            Seen::Busy => {
                self.stats.busy += 1;
                if reply {
                    self.answer(now, caller.0, caller.1, id, Status::Busy, &[]);
                }
            }
        }
    }

    /// A new view: members asked that are gone count as faults; the others still waited
    /// for are asked again, point to point.
    fn view_changed(&mut self, now: Time, v: &View) {
        let ids: Vec<CallId> = self.pending.keys().copied().collect();
        for id in ids {
            let p = self.pending.get_mut(&id).expect("listed");
            let waiting: Vec<EndpointId> = p.tally.waiting().collect();
            let mut again = Vec::new();
            for m in waiting {
                if v.rank_of(m).is_some() {
                    again.push(m);
                } else {
                    p.tally.answer(m, Err(Fault::Left));
                }
            }
            let hdr = Hdr::Request { nonce: self.cfg.nonce, id, method: p.method, reply: true };
            let data = wire::join(&hdr, &p.args);
            for m in again {
                if self.ep.send(now, m, data.clone()).is_ok() {
                    self.stats.asked_again += 1;
                }
            }
            self.check(id);
        }
    }

    /// Ends call `id` if it is done.
    fn check(&mut self, id: CallId) {
        if self.pending.get_mut(&id).is_some_and(|p| p.tally.done()) {
            self.end(id, false);
        }
    }

    fn end(&mut self, id: CallId, timed_out: bool) {
        let Some(p) = self.pending.remove(&id) else { return };
        self.deadlines.remove(&(p.deadline, id));
        self.stats.done += 1;
        self.stats.timed_out += timed_out as u64;
        self.events.push_back(RpcEvent::Done { id, outcome: p.tally.into_outcome(timed_out) });
    }
}

impl Command for RpcCmd {
    fn weight(&self) -> usize {
        match self {
            RpcCmd::Call { req, .. } => req.args.len(),
            RpcCmd::Reply { result: Ok(b), .. } => b.len(),
            RpcCmd::Reply { result: Err(_), .. } => 0,
            RpcCmd::Endpoint(c) => c.weight(),
        }
    }
    fn is_answer(&self) -> bool {
        matches!(self, RpcCmd::Endpoint(c) if c.is_answer())
    }
    /// A group call is a cast; replies and calls to one member are sends, which flow
    /// control does not hold.
    fn is_flow_controlled(&self) -> bool {
        matches!(self, RpcCmd::Call { req: Request { target: Target::Group, .. }, .. })
    }
}

impl Announce for RpcEvent {
    fn weight(&self) -> usize {
        match self {
            RpcEvent::Request { args, .. } => args.len(),
            RpcEvent::Done { outcome, .. } => outcome.values().map(|(_, v)| v.len()).sum(),
            RpcEvent::Refused { .. } => 0,
            RpcEvent::Endpoint(e) => e.weight(),
        }
    }
    fn view(&self) -> Option<&View> {
        match self {
            RpcEvent::Endpoint(e) => e.view(),
            _ => None,
        }
    }
    fn is_exit(&self) -> bool {
        matches!(self, RpcEvent::Endpoint(e) if e.is_exit())
    }
}

impl Observed for RpcEvent {
    fn hash_into(&self, h: &mut Fnv) {
        match self {
            RpcEvent::Request { caller, method, args, reply } => {
                h.u8(0);
                h.u64(caller.member.0);
                h.u64(caller.nonce);
                h.u64(caller.call);
                h.u64(*method);
                h.blob(args);
                h.u8(*reply as u8);
            }
            RpcEvent::Done { id, outcome } => {
                h.u8(1);
                h.u64(*id);
                h.u8(outcome.timed_out as u8);
                for (m, a) in &outcome.answers {
                    h.u64(m.0);
                    match a {
                        None => h.u8(0),
                        Some(Ok(v)) => {
                            h.u8(1);
                            h.blob(v);
                        }
                        Some(Err(f)) => {
                            h.u8(2);
                            match f {
                                Fault::Left => h.u8(0),
                                Fault::Failed(why) => h.blob(why.as_bytes()),
                                Fault::NoSuchMethod => h.u8(1),
                                Fault::Busy => h.u8(2),
                                Fault::Expired => h.u8(3),
                            }
                        }
                    }
                }
            }
            RpcEvent::Endpoint(e) => {
                h.u8(2);
                e.hash_into(h);
            }
            RpcEvent::Refused { id, why } => {
                h.u8(3);
                h.u64(*id);
                h.blob(format!("{why:?}").as_bytes());
            }
        }
    }
    /// Requests are what the application receives: as deliveries, cast or send alike.
    fn delivery(&self) -> Option<(EndpointId, Kind, &Bytes)> {
        match self {
            RpcEvent::Request { caller, args, .. } => Some((caller.member, Kind::Cast, args)),
            _ => None,
        }
    }
}

impl<L: Layer> Machine for Rpc<L> {
    type Cmd = RpcCmd;
    type Event = RpcEvent;
    type Refused = RpcError;

    fn me(&self) -> EndpointId {
        self.ep.me()
    }
    fn max_datagram(&self) -> usize {
        Machine::max_datagram(&self.ep)
    }
    fn max_payload(&self) -> usize {
        // The longest request header.
        let most = Hdr::Request { nonce: 0, id: u64::MAX, method: u64::MAX, reply: true };
        self.ep.max_payload().saturating_sub(thoth_stack::Wire::encoded_len(&most))
    }
    fn view(&self) -> &View {
        self.ep.view()
    }
    fn has_left(&self) -> bool {
        self.ep.has_left()
    }
    fn held(&self) -> bool {
        Machine::held(&self.ep)
    }
    fn stats(&self) -> Stats {
        self.ep.stats().clone()
    }
    fn metrics(&self) -> Metrics {
        self.ep.metrics()
    }

    fn handle_command(&mut self, now: Time, cmd: RpcCmd) -> Result<(), RpcError> {
        match cmd {
            RpcCmd::Call { id, req } => self
                .call(now, id, req)
                .inspect_err(|why| self.events.push_back(RpcEvent::Refused { id, why: why.clone() })),
            RpcCmd::Reply { to, result } => self.reply(now, to, result),
            RpcCmd::Endpoint(Cmd::Cast(_) | Cmd::CastFifo(_) | Cmd::Send(..)) => Err(RpcError::NotACommand),
            RpcCmd::Endpoint(c) => {
                let r = Machine::handle_command(&mut self.ep, now, c);
                self.collect(now);
                r.map_err(RpcError::from)
            }
        }
    }
    fn handle_datagram(&mut self, now: Time, data: Bytes) -> Rx {
        let rx = self.ep.handle_datagram(now, data);
        self.collect(now);
        rx
    }
    fn handle_timeout(&mut self, now: Time) {
        if self.ep.poll_timeout().is_some_and(|t| t <= now) {
            self.ep.handle_timeout(now);
            self.collect(now);
        }
        while let Some(&(t, id)) = self.deadlines.first() {
            if t > now {
                break;
            }
            self.end(id, true);
        }
    }
    fn end_turn(&mut self, now: Time) {
        self.ep.end_turn(now);
        self.collect(now);
    }
    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.ep.poll_transmit()
    }
    fn poll_event(&mut self) -> Option<RpcEvent> {
        self.events.pop_front()
    }
    fn poll_timeout(&self) -> Option<Time> {
        thoth_stack::time::earliest(self.ep.poll_timeout(), self.deadlines.first().map(|&(t, _)| t))
    }
}

impl<L: Layer> Simulated for Rpc<L> {
    fn segment(&self) -> GroupId {
        self.ep.group()
    }
}

impl<L: Layer> thoth_stack::groups::GroupMember for Rpc<L> {
    fn group(&self) -> GroupId {
        self.ep.group()
    }
}
