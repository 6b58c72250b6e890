//! `Replica`: one member of a replicated object (E1's split): a **semantics object** — plain
//! local state and methods, knowing nothing of distribution (`Semantics`) — run under a
//! **replication strategy** chosen when the object is created (`Strategy`), on a group of
//! its own. The same semantics object runs under any strategy. `Replica` is a sans-IO
//! machine over Group RPC (`Rpc`), so the simulator and both UDP drivers run it.
//!
//! **Strategies** (what a write and a read do; the order is the stack's, so an object group
//! runs a stack with total order, `total`):
//! - `Active`: every member holds a replica; a write is an `abcast` call to the group that
//!   every replica applies in the one order, answered when all have (`Mode::All`); a read is
//!   an `abcast` call too, answered by the first replica to reach it in the order: reads and
//!   writes are linearizable in a view.
//! - `Cached` (read-local, write-all): writes as `Active`; a read runs on the local replica
//!   at once, with no message: it sees every write this member made and every write any
//!   member had completed before it read (a write completes once every replica applied
//!   it), but not those in flight (sequential consistency, single-writer multiple-reader
//!   coherence).
//! - `ClientServer`: one copy, at the view's first member (the server); every other member
//!   calls it point to point. A server that fails takes the state with it: the next first
//!   member serves the state it has (nothing, unless it was restored).
//!
//! An object whose view has one member pays no replication cost: writes and reads run
//! locally, with no message.
//!
//! **State transfer** (E1's dump / undump): a member that joins the object's group gets the
//! state through the membership's state transfer: the member that provides it answers
//! `Event::StateRequest` with `Semantics::dump`, and the joiner applies the chunks with
//! `Semantics::undump` before anything of its first view (neither event reaches the
//! application). A state that does not undump is reported as `Event::Error`.
//!
//! Requests for a write or read arrive as Group RPC requests and are applied in the order
//! the stack delivers them, in the machine itself (never on another thread): one order at
//! every replica. Each member runs each call at most once (Group RPC's reply cache).
//!
//! Tested in `grpc/tests/objects.rs` (the simulator: every strategy's reads and writes from
//! every member, one order at every replica, a replica crashing during writes, state
//! transfer to a member that joins late, a one-member object sending nothing).

use crate::call::{Fault, Mode, Order, Outcome, Request, Target};
use crate::machine::{CallId, Rpc, RpcCmd, RpcError, RpcEvent};
use std::collections::VecDeque;
use std::time::Duration;
use thoth_stack::sim::{Fnv, Kind, Observed, Simulated};
use thoth_stack::{
    Announce, Bytes, Cmd, Command, EndpointId, Event, GroupId, Layer, Machine, Rx, Stack, Stats, Time, Transmit, View,
};

/// The object's own state and methods, as if it were not replicated (E1's semantics
/// object). Operations and results are bytes: a typed front end encodes them.
pub trait Semantics {
    /// Runs a mutating operation; its result. Under `Active` and `Cached` every replica runs
    /// it, so it must be deterministic (the same state and operation, the same outcome).
    fn apply(&mut self, op: &[u8]) -> Result<Bytes, String>;
    /// Runs a read-only operation.
    fn read(&self, op: &[u8]) -> Result<Bytes, String>;
    /// The whole state, for a member that joins (E1's `ISerializable`, Electra's dump).
    fn dump(&self) -> Bytes;
    /// Replaces the state with one `dump` made.
    fn undump(&mut self, state: &[u8]) -> Result<(), String>;
}

/// Where a call runs and how the state moves (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    Active,
    Cached,
    ClientServer,
}

/// Group RPC methods of a replica.
const WRITE: u64 = 1;
const READ: u64 = 2;

/// What the application hands a replica.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ObjCmd {
    /// Run the mutating operation `op` (`id`: the caller's, unique among its calls pending).
    Write { id: CallId, op: Bytes },
    /// Run the read-only operation `op`.
    Read { id: CallId, op: Bytes },
    /// An endpoint command other than a cast or a send (leave, block_ok).
    Endpoint(Cmd),
}

/// Why an operation has no result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ObjError {
    /// The semantics object refused it, saying why (at every replica alike).
    Failed(String),
    /// No replica that was asked answered: they left, or the call timed out.
    Unavailable,
    /// Group RPC refused the call (the stack does not give total order, say).
    Refused(RpcError),
}

/// What a replica hands the application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ObjEvent {
    /// Operation `id` ended.
    Done { id: CallId, result: Result<Bytes, ObjError> },
    /// The endpoint's events but casts, sends and state transfer (views, blocks, exit).
    Endpoint(Event),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObjConfig {
    pub strategy: Strategy,
    /// How long a write or read waits for the replicas it asked.
    pub timeout: Duration,
}

impl ObjConfig {
    pub fn new(strategy: Strategy) -> ObjConfig {
        ObjConfig { strategy, timeout: Duration::from_secs(5) }
    }
}

/// What a replica counted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObjStats {
    /// Operations run here without a message (local reads, a one-member view, the server's own).
    pub local: u64,
    /// Operations sent to other members.
    pub remote: u64,
    /// Writes and reads applied here for a member's call.
    pub applied: u64,
    pub read: u64,
    /// Requests for a state this member does not hold (a client of `ClientServer`).
    pub not_held: u64,
    pub dumps: u64,
    pub undumps: u64,
}

/// One member of a replicated object; see the module doc.
pub struct Replica<S: Semantics, L: Layer = Stack> {
    rpc: Rpc<L>,
    obj: S,
    cfg: ObjConfig,
    /// State transfer chunks received so far.
    incoming: Vec<u8>,
    events: VecDeque<ObjEvent>,
    stats: ObjStats,
}

impl<S: Semantics, L: Layer> Replica<S, L> {
    /// A member of the object over `rpc`, starting from `obj` (a joining member's state is
    /// replaced by the group's). The endpoint must take part in state transfer
    /// (`Config::transfer_state`): the replica answers the requests (panics otherwise).
    pub fn new(rpc: Rpc<L>, obj: S, cfg: ObjConfig) -> Replica<S, L> {
        assert!(rpc.endpoint().config().transfer_state, "a replica's endpoint needs Config::transfer_state");
        let mut r =
            Replica { rpc, obj, cfg, incoming: Vec::new(), events: VecDeque::new(), stats: ObjStats::default() };
        r.collect(Time::ZERO);
        r
    }

    /// The local semantics object (its state is a replica's only under a strategy that
    /// keeps one here).
    pub fn object(&self) -> &S {
        &self.obj
    }
    pub fn rpc(&self) -> &Rpc<L> {
        &self.rpc
    }
    pub fn obj_stats(&self) -> &ObjStats {
        &self.stats
    }

    /// Whether this member holds the object's state now.
    fn holds(&self) -> bool {
        match self.cfg.strategy {
            Strategy::Active | Strategy::Cached => true,
            Strategy::ClientServer => self.server() == Some(self.rpc.me()),
        }
    }

    fn server(&self) -> Option<EndpointId> {
        self.rpc.view().members.first().copied()
    }

    fn local(&mut self, id: CallId, write: bool, op: &[u8]) {
        self.stats.local += 1;
        let result = if write { self.obj.apply(op) } else { self.obj.read(op) };
        self.events.push_back(ObjEvent::Done { id, result: result.map_err(ObjError::Failed) });
    }

    fn invoke(&mut self, now: Time, id: CallId, write: bool, op: Bytes) -> Result<(), RpcError> {
        let alone = self.rpc.view().len() == 1;
        let remote = match self.cfg.strategy {
            _ if alone && self.holds() => None,
            Strategy::Cached if !write => None,
            Strategy::Active | Strategy::Cached => {
                Some((Target::Group, Order::Abcast, if write { Mode::All } else { Mode::First }))
            }
            Strategy::ClientServer => match self.server() {
                Some(s) if s == self.rpc.me() => None,
                Some(s) => Some((Target::Member(s), Order::Stack, Mode::All)),
                None => return Err(RpcError::NotMember),
            },
        };
        let Some((target, order, mode)) = remote else {
            self.local(id, write, &op);
            return Ok(());
        };
        let method = if write { WRITE } else { READ };
        let req = Request { target, method, args: op, mode, order, timeout: self.cfg.timeout, filter: None };
        self.stats.remote += 1;
        let r = self.rpc.handle_command(now, RpcCmd::Call { id, req });
        self.collect(now);
        r
    }

    /// Runs a request of another member's (or this one's) call and answers it.
    fn serve(&mut self, now: Time, caller: crate::Caller, method: u64, op: &[u8], reply: bool) {
        let result = match method {
            _ if !self.holds() => {
                self.stats.not_held += 1;
                Err(Fault::Failed("this member holds no copy of the object".into()))
            }
            WRITE => {
                self.stats.applied += 1;
                self.obj.apply(op).map_err(Fault::Failed)
            }
            READ => {
                self.stats.read += 1;
                self.obj.read(op).map_err(Fault::Failed)
            }
            _ => Err(Fault::NoSuchMethod),
        };
        if reply {
            // Refused only when the call is not running here any more (it cannot be).
            let _ = self.rpc.handle_command(now, RpcCmd::Reply { to: caller, result });
        }
    }

    /// A call's outcome as the operation's result: the first good answer (every replica
    /// answers alike), else the semantics' refusal, else unavailable.
    fn result(outcome: &Outcome) -> Result<Bytes, ObjError> {
        if let Some((_, v)) = outcome.values().next() {
            return Ok(v.clone());
        }
        let failed = outcome.answers.iter().find_map(|(_, a)| match a {
            Some(Err(Fault::Failed(why))) => Some(why.clone()),
            _ => None,
        });
        Err(failed.map_or(ObjError::Unavailable, ObjError::Failed))
    }

    /// Takes what Group RPC output: serves requests, ends operations, transfers state.
    fn collect(&mut self, now: Time) {
        while let Some(ev) = self.rpc.poll_event() {
            match ev {
                RpcEvent::Request { caller, method, args, reply } => self.serve(now, caller, method, &args, reply),
                RpcEvent::Done { id, outcome } => {
                    self.events.push_back(ObjEvent::Done { id, result: Self::result(&outcome) })
                }
                RpcEvent::Refused { id, why } => {
                    self.events.push_back(ObjEvent::Done { id, result: Err(ObjError::Refused(why)) })
                }
                RpcEvent::Endpoint(Event::StateRequest) => {
                    self.stats.dumps += 1;
                    let state = self.obj.dump();
                    let _ = self.rpc.handle_command(now, RpcCmd::Endpoint(Cmd::State(state)));
                }
                RpcEvent::Endpoint(Event::State { chunk, last }) => {
                    self.incoming.extend_from_slice(&chunk);
                    if last {
                        self.stats.undumps += 1;
                        let state = std::mem::take(&mut self.incoming);
                        if let Err(why) = self.obj.undump(&state) {
                            let detail = format!("the state transferred does not undump: {why}");
                            self.events.push_back(ObjEvent::Endpoint(Event::Error { layer: "object", detail }));
                        }
                    }
                }
                RpcEvent::Endpoint(e) => self.events.push_back(ObjEvent::Endpoint(e)),
            }
        }
    }
}

impl Command for ObjCmd {
    fn weight(&self) -> usize {
        match self {
            ObjCmd::Write { op, .. } | ObjCmd::Read { op, .. } => op.len(),
            ObjCmd::Endpoint(c) => c.weight(),
        }
    }
    fn is_answer(&self) -> bool {
        matches!(self, ObjCmd::Endpoint(c) if c.is_answer())
    }
    /// Every operation may be a group call (a cast), which flow control may hold.
    fn is_flow_controlled(&self) -> bool {
        !matches!(self, ObjCmd::Endpoint(_))
    }
}

impl Announce for ObjEvent {
    fn weight(&self) -> usize {
        match self {
            ObjEvent::Done { result: Ok(b), .. } => b.len(),
            ObjEvent::Done { .. } => 0,
            ObjEvent::Endpoint(e) => e.weight(),
        }
    }
    fn view(&self) -> Option<&View> {
        match self {
            ObjEvent::Endpoint(e) => e.view(),
            ObjEvent::Done { .. } => None,
        }
    }
    fn is_exit(&self) -> bool {
        matches!(self, ObjEvent::Endpoint(e) if e.is_exit())
    }
}

impl Observed for ObjEvent {
    fn hash_into(&self, h: &mut Fnv) {
        match self {
            ObjEvent::Done { id, result } => {
                h.u8(0);
                h.u64(*id);
                match result {
                    Ok(v) => {
                        h.u8(1);
                        h.blob(v);
                    }
                    Err(e) => {
                        h.u8(2);
                        h.blob(format!("{e:?}").as_bytes());
                    }
                }
            }
            ObjEvent::Endpoint(e) => {
                h.u8(1);
                e.hash_into(h);
            }
        }
    }
    fn delivery(&self) -> Option<(EndpointId, Kind, &Bytes)> {
        None
    }
}

impl<S: Semantics, L: Layer> Machine for Replica<S, L> {
    type Cmd = ObjCmd;
    type Event = ObjEvent;
    type Refused = RpcError;

    fn me(&self) -> EndpointId {
        self.rpc.me()
    }
    fn max_datagram(&self) -> usize {
        self.rpc.max_datagram()
    }
    fn max_payload(&self) -> usize {
        self.rpc.max_payload()
    }
    fn view(&self) -> &View {
        self.rpc.view()
    }
    fn has_left(&self) -> bool {
        self.rpc.has_left()
    }
    fn held(&self) -> bool {
        self.rpc.held()
    }
    fn stats(&self) -> Stats {
        self.rpc.stats()
    }

    fn handle_command(&mut self, now: Time, cmd: ObjCmd) -> Result<(), RpcError> {
        let r = match cmd {
            ObjCmd::Write { id, op } => self.invoke(now, id, true, op),
            ObjCmd::Read { id, op } => self.invoke(now, id, false, op),
            ObjCmd::Endpoint(c) => self.rpc.handle_command(now, RpcCmd::Endpoint(c)),
        };
        self.collect(now);
        r
    }
    fn handle_datagram(&mut self, now: Time, data: Bytes) -> Rx {
        let rx = self.rpc.handle_datagram(now, data);
        self.collect(now);
        rx
    }
    fn handle_timeout(&mut self, now: Time) {
        self.rpc.handle_timeout(now);
        self.collect(now);
    }
    fn end_turn(&mut self, now: Time) {
        self.rpc.end_turn(now);
        self.collect(now);
    }
    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.rpc.poll_transmit()
    }
    fn poll_event(&mut self) -> Option<ObjEvent> {
        self.events.pop_front()
    }
    fn poll_timeout(&self) -> Option<Time> {
        self.rpc.poll_timeout()
    }
}

impl<S: Semantics, L: Layer> Simulated for Replica<S, L> {
    fn segment(&self) -> GroupId {
        self.rpc.segment()
    }
}
