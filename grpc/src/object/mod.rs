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
//!   an `abcast` call too, answered once a majority of the replicas reached it in the order
//!   (`Mode::Majority`): reads and writes are linearizable. Writes handed over together
//!   (`Machine::handle_commands`, a driver's `command_batch`) go as one call, a batch
//!   every replica applies write after write (`BATCH`).
//! - `Cached` (read-local, write-all): writes as `Active`; a read runs on the local replica
//!   at once, with no message: it sees every write this member made and every write any
//!   member had completed before it read (a write completes once every replica applied
//!   it), but not those in flight (sequential consistency, single-writer multiple-reader
//!   coherence).
//! - `PrimaryBackup`: the view's first member (the primary) runs every write and read; the
//!   others call it point to point. After a write it sends the state update
//!   (`Semantics::update`, by default the whole state) to every backup (a FIFO-only cast:
//!   one sender, no order to wait for) and answers only once every backup has absorbed it
//!   (`Semantics::absorb`); a read at the primary waits for the updates in flight when it
//!   came. So no acknowledged write is lost, and none is seen before it is safe, when the
//!   primary fails: the
//!   next first member takes over with every update the old primary acknowledged (virtual
//!   synchrony: the survivors absorbed the same updates of the old view). A write whose
//!   primary fails is made again to the next one under the same key (at most `TRIES` times
//!   in all); every replica keeps the latest results by key (`applied.rs`, dumped with the
//!   state), so the new primary answers a write its predecessor ran from there, and runs it
//!   only if its update reached nobody (then nobody saw its result). Writes need not be
//!   deterministic here.
//! - `ClientServer`: one copy, at the view's first member (the server); every other member
//!   calls it point to point. A server that fails takes the state with it: the next first
//!   member serves the state it has (nothing, unless it was restored).
//!
//! Each object is a group of its own; a process holds many in one `Groups` machine
//! (`thoth_stack::groups`: one socket pair and one driver for all, datagrams demultiplexed
//! by group), a `Replica` being a `GroupMember`.
//!
//! An object whose view has one member pays no replication cost: writes and reads run
//! locally, with no message.
//!
//! **State transfer** (E1's dump / undump): a member that joins the object's group gets the
//! state through the membership's state transfer: the member that provides it answers
//! `Event::StateRequest` with `Semantics::dump` (and the applied results), and the joiner
//! applies the chunks with `Semantics::undump` before anything of its first view (neither
//! event reaches the application). A state that does not undump is reported as
//! `Event::Error`.
//!
//! **Partitions**: in a view that is not primary (the group runs in primary-partition mode,
//! `gms(primary=1)`; otherwise every view is primary and each side of a partition serves on
//! its own) the object serves nothing: operations end `Unavailable`, and so does one that
//! ends there whatever its outcome. When sides merge (a view with `subgroups`), every
//! member offers its side's state; every replica takes the highest-ranked one in the one
//! order (a primary view's history first, then the most state changes) and runs no
//! operation, its own or another's, until it has had every member's offer.
//!
//! **Persistence** (Electra's object server): `checkpoint` gives the replica's whole state
//! with its version (state changes applied, the same at every replica of the same state);
//! a process keeps it in an embedded store (`durable`), and `restore` makes a replica
//! start from it, so a group that stopped entirely restarts with its last state: a joiner
//! whose checkpoint is newer than the state transferred offers it, and every replica takes
//! it in the one order (see `restore`).
//!
//! **Liveness** (Electra's `are_you_alive`): every replica answers a probe
//! (`ObjCmd::Probe`), whatever its strategy or capabilities; a member that does not within
//! the timeout, or is not in the view, is reported unavailable.
//!
//! **Capabilities** (`capability.rs`, Amoeba's): with a secret (`ObjConfig::secret`) a
//! member runs only calls whose capability grants the rights they need (`READ`, `WRITE`),
//! its own included; every call carries the member's capability (`ObjConfig::cap`). A
//! forged or widened one is refused and counted. A backup absorbs updates from the
//! primary only.
//!
//! Files: this one (the machine, calls and strategies), `state.rs` (snapshots, restores,
//! offers at restarts and merges, what waits meanwhile), `batch.rs`, `applied.rs`,
//! `capability.rs`, `durable.rs` (checkpoints in redb), `trader.rs`, `typed.rs` (`#[object]`).
//!
//! Requests arrive as Group RPC requests and are applied in the order the stack delivers
//! them, in the machine itself (never on another thread): one order at every replica. Each
//! member runs each call at most once (Group RPC's reply cache). The replica's Group RPC
//! calls have ids of its own, apart from the application's.
//!
//! Tested in `grpc/tests/objects.rs` (the simulator: every strategy's reads and writes from
//! every member, one order at every replica, a replica crashing during writes, the primary
//! crashing during writes with no acknowledged write lost and none applied twice, state
//! transfer to a member that joins late, a one-member object sending nothing, a group that
//! stopped restarting from the newest of its members' checkpoints; histories under loss
//! and crashes, and under partitions that heal, checked for linearizability).

mod applied;
mod batch;
pub mod capability;
pub mod durable;
mod state;
pub mod trader;
pub mod typed;

use crate::call::{Fault, Mode, Order, Outcome, Request, Target};
use crate::machine::{CallId, Caller, Rpc, RpcCmd, RpcError, RpcEvent};
use applied::{Applied, OpKey, put_key, put_result, take_key, take_result};
use capability::{Capability, Secret};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;
use thoth_stack::sim::{Fnv, Kind, Observed, Simulated};
use thoth_stack::{
    Announce, Bytes, Cmd, Command, EndpointId, Event, GroupId, Layer, Machine, Metrics, Rx, Stack, Stats, Time,
    Transmit, View,
};

pub use applied::APPLIED;

/// The object's own state and methods, as if it were not replicated (E1's semantics
/// object). Operations and results are bytes: `#[object]` (`typed.rs`) writes this for a
/// trait of plain methods.
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
    /// `PrimaryBackup`: what a backup needs to follow the write just applied (`op`): by
    /// default the whole state; an object can send a smaller delta.
    fn update(&self, _op: &[u8]) -> Bytes {
        self.dump()
    }
    /// `PrimaryBackup`: applies an `update` at a backup.
    fn absorb(&mut self, update: &[u8]) -> Result<(), String> {
        self.undump(update)
    }
}

/// Where a call runs and how the state moves (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// Every replica runs every write and read in the one order: linearizable.
    Active,
    /// Writes as `Active`, reads on the local replica with no message.
    Cached,
    /// The view's first member runs every operation and updates the backups before it
    /// answers a write.
    PrimaryBackup,
    /// One copy, at the view's first member; lost if that member fails.
    ClientServer,
}

/// Group RPC methods of a replica.
const WRITE: u64 = 1;
const READ: u64 = 2;
/// `PrimaryBackup`: a write with its key, to the primary.
const KEYED: u64 = 3;
/// `PrimaryBackup`: the primary's update, to every backup.
const UPDATE: u64 = 4;
/// Electra's `are_you_alive`: every replica answers it, whatever its strategy or secret.
const ALIVE: u64 = 5;
/// A replica restored from a checkpoint newer than the group's state offers it: every
/// replica takes it if it is newer than its own.
const RESTORE: u64 = 6;
/// `Active` and `Cached`: writes handed over together, as one call (a batch).
const WRITES: u64 = 7;

/// Writes in one batch, at most, and their operations' bytes.
pub const BATCH: usize = 64;
const BATCH_BYTES: usize = 32 * 1024;

/// Tries of a `PrimaryBackup` write in all: the first and the ones after its primary failed.
pub const TRIES: u32 = 3;

/// The refusal of a member that does not run the calls.
const NOT_FIRST: &str = "this member does not run the object's calls (no copy, or not the primary)";
/// The refusal of a call whose capability does not grant what it needs.
pub const REFUSED: &str = "the call's capability does not grant it";

/// What the application hands a replica.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ObjCmd {
    /// Run the mutating operation `op` (`id`: the caller's, unique among its calls pending).
    Write {
        /// The caller's operation id, named again in `ObjEvent::Done`.
        id: CallId,
        /// The operation, as `Semantics::apply` reads it.
        op: Bytes,
    },
    /// Run the read-only operation `op`.
    Read {
        /// The caller's operation id, named again in `ObjEvent::Done`.
        id: CallId,
        /// The operation, as `Semantics::read` reads it.
        op: Bytes,
    },
    /// Ask `member` whether it is alive (Electra's `are_you_alive`): `Done` with an empty
    /// result if it answers within the timeout, `ObjError::Unavailable` if not (it failed,
    /// is not in the view, or does not answer).
    Probe {
        /// The caller's operation id, named again in `ObjEvent::Done`.
        id: CallId,
        /// The member asked.
        member: EndpointId,
    },
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
    Done {
        /// The operation's id, as the command gave it.
        id: CallId,
        /// The semantics object's result, or why there is none.
        result: Result<Bytes, ObjError>,
    },
    /// The endpoint's events but casts, sends and state transfer (views, blocks, exit).
    Endpoint(Event),
}

/// A replica's parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObjConfig {
    /// How the object is replicated; every member of its group must use the same.
    pub strategy: Strategy,
    /// How long a write or read waits for the replicas it asked.
    pub timeout: Duration,
    /// The object's secret: with it, this member runs only calls whose capability grants
    /// what they need (`capability`); without it, any call.
    pub secret: Option<Secret>,
    /// The capability this member's calls carry.
    pub cap: Option<Capability>,
    /// Planted bug (tests only): `Active` and `Cached` writes go as FIFO-only casts, in no
    /// order across callers; the consistency checks must catch it.
    pub test_fifo_writes: bool,
}

impl ObjConfig {
    /// `strategy` with a 5 s timeout and no capabilities.
    pub fn new(strategy: Strategy) -> ObjConfig {
        ObjConfig { strategy, timeout: Duration::from_secs(5), secret: None, cap: None, test_fifo_writes: false }
    }
}

/// What a replica counted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObjStats {
    /// Operations run here without a message (local reads, a one-member view, the first
    /// member's own).
    pub local: u64,
    /// Operations sent to other members.
    pub remote: u64,
    /// Writes applied here (for a member's call, or as the primary).
    pub applied: u64,
    /// Reads run here for a member's call.
    pub read: u64,
    /// Requests to a member that does not run the calls.
    pub not_first: u64,
    /// States dumped for a joiner (state transfer).
    pub dumps: u64,
    /// States transferred and loaded here, as a joiner.
    pub undumps: u64,
    /// `PrimaryBackup`: the primary's updates absorbed here.
    pub absorbed: u64,
    /// `PrimaryBackup`: writes answered from the applied results (run by this or an earlier
    /// primary).
    pub replayed: u64,
    /// `PrimaryBackup`: writes of this member's made again after their primary failed.
    pub retried: u64,
    /// `PrimaryBackup`: updates that waited for flow control.
    pub held_back: u64,
    /// Calls refused for their capability (forged, widened, missing, another object's).
    pub refused: u64,
    /// States offered to the group: a checkpoint newer than the group's state, or this
    /// member's side's state at a merge.
    pub offered: u64,
    /// Offers taken here (they ranked above this replica's state).
    pub restored: u64,
    /// Updates from a member that is not the primary, and requests that do not decode.
    pub bad: u64,
}

/// What a Group RPC call of the replica is for.
enum Purpose {
    /// The application's operation `id` (`PrimaryBackup` writes carry their key and tries).
    App { id: CallId, write: bool, op: Bytes, key: Option<OpKey>, tries: u32 },
    /// The application's liveness probe `id`.
    Probe { id: CallId },
    /// This member's checkpoint, offered to the group.
    Restore,
    /// The application's writes `ids`, as one call.
    Batch { ids: Vec<CallId> },
    /// The primary's update for a write; then its result goes to `to`.
    Update { to: Answer, result: applied::Outcome, seq: u64 },
}

/// What waits for a merge to end: an operation of this member's, or a request.
enum Deferred {
    Own(ObjCmd),
    Request { caller: Caller, method: u64, args: Bytes, reply: bool },
}

/// Who waits for a primary's write.
enum Answer {
    /// This member's application, operation `id`.
    Local(CallId),
    /// A member's call.
    Remote(Caller),
}

/// One member of a replicated object; see the module doc.
pub struct Replica<S: Semantics, L: Layer = Stack> {
    rpc: Rpc<L>,
    obj: S,
    cfg: ObjConfig,
    /// The replica's Group RPC calls, by their ids.
    calls: BTreeMap<CallId, Purpose>,
    /// The primary's updates (and a checkpoint offered) that flow control held back, in
    /// order: they go as it lets them, and the replica takes no operation of its own
    /// meanwhile (`Machine::held`).
    queued: VecDeque<(Request, Purpose)>,
    next_call: CallId,
    applied: Applied,
    /// State changes applied so far (writes run, updates absorbed, in the one order, so the
    /// same at every replica with the same state); carried by dumps and checkpoints, so the
    /// newest of two states is the one with more.
    version: u64,
    /// The checkpoint this replica was restored from (`restore`), until it forms a group
    /// alone or gets the group's state: a joiner offers it if the group's is older.
    restored: Option<(u64, Bytes)>,
    /// Whether the state comes from a primary view's history: at a merge, a side's state
    /// ranks by this first, then by its version (`take_offer`).
    primary: bool,
    /// A merge under way: the members whose state this replica has not had yet (each
    /// offers its own); meanwhile operations wait in `deferred`, its own and others'.
    merging: BTreeSet<EndpointId>,
    deferred: VecDeque<Deferred>,
    /// `PrimaryBackup`: reads at the primary that wait for the updates in flight when they
    /// came (the number of the last one), so no read sees a write before the backups have
    /// it (a write seen and then lost with the primary, or with the side of a partition it
    /// was on, would not be linearizable); the primary's updates in flight by number, and
    /// the last number given.
    reads: VecDeque<(u64, Deferred)>,
    in_flight: BTreeSet<u64>,
    last_update: u64,
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
        let mut r = Replica {
            rpc,
            obj,
            cfg,
            calls: BTreeMap::new(),
            queued: VecDeque::new(),
            next_call: 0,
            applied: Applied::default(),
            version: 0,
            restored: None,
            primary: true,
            merging: BTreeSet::new(),
            deferred: VecDeque::new(),
            reads: VecDeque::new(),
            in_flight: BTreeSet::new(),
            last_update: 0,
            incoming: Vec::new(),
            events: VecDeque::new(),
            stats: ObjStats::default(),
        };
        r.collect(Time::ZERO);
        r
    }

    /// The local semantics object (its state is a replica's only under a strategy that
    /// keeps one here).
    pub fn object(&self) -> &S {
        &self.obj
    }
    /// The Group RPC machine underneath (its endpoint, its counters).
    pub fn rpc(&self) -> &Rpc<L> {
        &self.rpc
    }
    /// What this replica counted.
    pub fn obj_stats(&self) -> &ObjStats {
        &self.stats
    }

    /// A read-only operation on this member's replica, at once and with no message, where
    /// the strategy lets reads run locally: `Cached`, a one-member view, and the member that
    /// runs the calls under `PrimaryBackup` and `ClientServer` (`None` elsewhere, and under
    /// `Active`, whose reads go through the order). What `ObjCmd::Read` gives there, without
    /// a turn of the machine (a driver's owner calls it on the machine it holds).
    /// None too in a view that is not primary, and while a merge is under way.
    pub fn read_local(&self, op: &[u8]) -> Option<Result<Bytes, String>> {
        if !self.rpc.view().primary || !self.merging.is_empty() {
            return None;
        }
        let local = self.rpc.view().len() == 1
            || match self.cfg.strategy {
                Strategy::Cached => true,
                Strategy::Active => false,
                Strategy::PrimaryBackup | Strategy::ClientServer => self.is_first(),
            };
        if !local {
            return None;
        }
        let granted =
            self.cfg.secret.as_ref().is_none_or(|s| {
                self.cfg.cap.is_some_and(|c| c.grants(s, self.rpc.endpoint().group().0, capability::READ))
            });
        Some(if granted { self.obj.read(op) } else { Err(REFUSED.into()) })
    }

    /// The view's first member: `PrimaryBackup`'s primary, `ClientServer`'s server.
    fn first(&self) -> Option<EndpointId> {
        self.rpc.view().members.first().copied()
    }

    fn is_first(&self) -> bool {
        self.first() == Some(self.rpc.me())
    }

    /// Whether this member runs calls of others: every replica of `Active` and `Cached`,
    /// the first member of the others.
    fn runs_calls(&self) -> bool {
        matches!(self.cfg.strategy, Strategy::Active | Strategy::Cached) || self.is_first()
    }

    fn invoke(&mut self, now: Time, id: CallId, write: bool, op: Bytes) -> Result<(), RpcError> {
        if self.pending(id) {
            return Err(RpcError::DuplicateId);
        }
        // Outside a primary view (the group runs in primary-partition mode, `gms(primary=1)`)
        // the object serves nothing: the primary side may be writing.
        if !self.rpc.view().primary {
            self.events.push_back(ObjEvent::Done { id, result: Err(ObjError::Unavailable) });
            return Ok(());
        }
        let pb = self.cfg.strategy == Strategy::PrimaryBackup;
        let key = (pb && write).then(|| (self.rpc.me(), self.rpc.nonce(), id));
        let here = self.rpc.view().len() == 1
            || (self.cfg.strategy == Strategy::Cached && !write)
            || (matches!(self.cfg.strategy, Strategy::PrimaryBackup | Strategy::ClientServer) && self.is_first());
        let cap = self.cfg.cap;
        if here && !self.allowed(cap.as_ref(), write) {
            self.events.push_back(ObjEvent::Done { id, result: Err(ObjError::Failed(REFUSED.into())) });
            return Ok(());
        }
        match key {
            Some(key) if here => self.primary_write(now, key, &op, Answer::Local(id)),
            _ if here && !write && !self.in_flight.is_empty() => self.hold_read(Deferred::Own(ObjCmd::Read { id, op })),
            _ if here => self.local(id, write, &op),
            _ => return self.call(now, Purpose::App { id, write, op, key, tries: 1 }),
        }
        Ok(())
    }

    /// Runs a command, or keeps it for the end of a merge (operations wait for it;
    /// endpoint commands do not).
    fn run_or_defer(&mut self, now: Time, cmd: ObjCmd) -> Result<(), RpcError> {
        match cmd {
            ObjCmd::Write { .. } | ObjCmd::Read { .. } | ObjCmd::Probe { .. } if !self.merging.is_empty() => {
                if cmd.id().is_some_and(|id| self.pending(id)) {
                    return Err(RpcError::DuplicateId);
                }
                self.deferred.push_back(Deferred::Own(cmd));
                Ok(())
            }
            cmd => self.run(now, cmd),
        }
    }

    fn run(&mut self, now: Time, cmd: ObjCmd) -> Result<(), RpcError> {
        match cmd {
            ObjCmd::Write { id, op } => self.invoke(now, id, true, op),
            ObjCmd::Read { id, op } => self.invoke(now, id, false, op),
            ObjCmd::Probe { id, member } => self.probe(now, id, member),
            ObjCmd::Endpoint(c) => self.rpc.handle_command(now, RpcCmd::Endpoint(c)),
        }
    }

    /// An operation that ends in a view that is not primary is unavailable, whatever its
    /// outcome: it ran on the side that was cut off, whose state the merge discards.
    fn unless_cut_off(&self, r: Result<Bytes, ObjError>) -> Result<Bytes, ObjError> {
        if self.rpc.view().primary { r } else { Err(ObjError::Unavailable) }
    }

    /// Whether a call carrying `cap` may run here: always without a secret, else if `cap`
    /// grants what it needs (counted when not).
    fn allowed(&mut self, cap: Option<&Capability>, write: bool) -> bool {
        let Some(secret) = &self.cfg.secret else { return true };
        let need = if write { capability::WRITE } else { capability::READ };
        let ok = cap.is_some_and(|c| c.grants(secret, self.rpc.endpoint().group().0, need));
        self.stats.refused += u64::from(!ok);
        ok
    }

    /// A request's operation, once its capability is checked (`write`: it mutates): what
    /// does not decode and what is not granted are refused, and counted.
    fn granted<'a>(&mut self, args: &'a [u8], write: bool) -> Result<&'a [u8], Fault> {
        match capability::unwrap(args) {
            Err(why) => {
                self.stats.bad += 1;
                Err(Fault::Failed(why))
            }
            Ok((cap, _)) if !self.allowed(cap.as_ref(), write) => Err(Fault::Failed(REFUSED.into())),
            Ok((_, op)) => Ok(op),
        }
    }

    /// A call of the replica's own: the object's timeout, no filter.
    fn request(&self, target: Target, method: u64, args: Bytes, mode: Mode, order: Order) -> Request {
        Request { target, method, args, mode, order, timeout: self.cfg.timeout, filter: None }
    }

    fn probe(&mut self, now: Time, id: CallId, member: EndpointId) -> Result<(), RpcError> {
        if self.pending(id) {
            return Err(RpcError::DuplicateId);
        }
        if self.rpc.view().rank_of(member).is_none() {
            self.events.push_back(ObjEvent::Done { id, result: Err(ObjError::Unavailable) });
            return Ok(());
        }
        let req = self.request(Target::Member(member), ALIVE, Bytes::new(), Mode::All, Order::Stack);
        self.send(now, req, Purpose::Probe { id })
    }

    /// Whether the application's operation `id` is pending: called, or waiting (for a merge,
    /// or for the primary's updates).
    fn pending(&self, id: CallId) -> bool {
        let mut waiting = self.deferred.iter().chain(self.reads.iter().map(|(_, d)| d));
        self.calls.values().any(|p| match p {
            Purpose::App { id: i, .. } | Purpose::Probe { id: i } => *i == id,
            Purpose::Batch { ids } => ids.contains(&id),
            _ => false,
        }) || waiting.any(|d| matches!(d, Deferred::Own(c) if c.id() == Some(id)))
    }

    fn local(&mut self, id: CallId, write: bool, op: &[u8]) {
        self.stats.local += 1;
        self.version += u64::from(write);
        let result = if write { self.obj.apply(op) } else { self.obj.read(op) };
        let result = self.unless_cut_off(result.map_err(ObjError::Failed));
        self.events.push_back(ObjEvent::Done { id, result });
    }

    /// Calls the members an application's operation goes to (see the strategies).
    fn call(&mut self, now: Time, p: Purpose) -> Result<(), RpcError> {
        let Purpose::App { write, ref op, key, .. } = p else { unreachable!("an application's operation") };
        let (target, order, mode, method) = match self.cfg.strategy {
            Strategy::Active | Strategy::Cached => {
                // A write waits for every replica, this member's own included: answered by the
                // first alone, it could be acknowledged by a replica that then fails with the
                // sequencer before any other has it, and be lost with the caller alive (its
                // own delivery makes the flush keep it). A read is ordered after every write
                // acknowledged before it, and waits for a majority: a side cut off from the
                // rest could otherwise answer it from writes the other side never gets (the
                // minority's own sequencer ordered them), which the merge then discards.
                let mode = if write { Mode::All } else { Mode::Majority };
                let order = if write && self.cfg.test_fifo_writes { Order::Ubcast } else { Order::Abcast };
                (Target::Group, order, mode, if write { WRITE } else { READ })
            }
            Strategy::PrimaryBackup | Strategy::ClientServer => {
                let first = self.first().ok_or(RpcError::NotMember)?;
                let method = if key.is_some() {
                    KEYED
                } else if write {
                    WRITE
                } else {
                    READ
                };
                (Target::Member(first), Order::Stack, Mode::All, method)
            }
        };
        let mut payload = Vec::with_capacity(24 + op.len());
        if let Some(k) = key {
            put_key(&mut payload, &k);
        }
        payload.extend_from_slice(op);
        let args = capability::wrap(self.cfg.cap.as_ref(), &payload);
        self.stats.remote += 1;
        let req = self.request(target, method, args, mode, order);
        self.send(now, req, p)
    }

    /// Makes a Group RPC call for `p` under an id of the replica's own.
    fn send(&mut self, now: Time, req: Request, p: Purpose) -> Result<(), RpcError> {
        self.next_call += 1;
        let id = self.next_call;
        self.calls.insert(id, p);
        let r = self.rpc.handle_command(now, RpcCmd::Call { id, req });
        if r.is_err() {
            self.calls.remove(&id);
        }
        r
    }

    /// The primary runs a write (once per key) and sends its update to the backups; the
    /// answer goes to `to` once they have all absorbed it.
    fn primary_write(&mut self, now: Time, key: OpKey, op: &[u8], to: Answer) {
        if let Some(r) = self.applied.get(&key).cloned() {
            self.stats.replayed += 1;
            return self.answer(now, to, r);
        }
        self.stats.applied += 1;
        self.version += 1;
        let result = self.obj.apply(op);
        self.applied.insert(key, result.clone());
        if self.rpc.view().len() == 1 {
            self.stats.local += 1;
            return self.answer(now, to, result);
        }
        let mut v = Vec::new();
        put_key(&mut v, &key);
        put_result(&mut v, &result);
        v.extend_from_slice(&self.obj.update(op));
        let req = self.request(Target::Group, UPDATE, Bytes::from(v), Mode::All, Order::Ubcast);
        self.last_update += 1;
        self.in_flight.insert(self.last_update);
        self.queued.push_back((req, Purpose::Update { to, result, seq: self.last_update }));
        self.send_queued(now);
        self.stats.held_back += u64::from(!self.queued.is_empty());
    }

    /// Sends the updates flow control held back, in order, as far as it lets them.
    fn send_queued(&mut self, now: Time) {
        while !self.rpc.held()
            && let Some((req, p)) = self.queued.pop_front()
        {
            let update = if let Purpose::Update { seq, .. } = p { Some(seq) } else { None };
            if let Err(why) = self.send(now, req, p) {
                if let Some(seq) = update {
                    self.in_flight.remove(&seq);
                }
                // The endpoint left: nothing will acknowledge the write (or take the offer).
                let detail = format!("an update (or a checkpoint offered) did not go: {why}");
                self.events.push_back(ObjEvent::Endpoint(Event::Error { layer: "object", detail }));
            }
        }
    }

    fn answer(&mut self, now: Time, to: Answer, result: applied::Outcome) {
        match to {
            Answer::Local(id) => {
                let result = self.unless_cut_off(result.map_err(ObjError::Failed));
                self.events.push_back(ObjEvent::Done { id, result })
            }
            Answer::Remote(caller) => {
                let reply = RpcCmd::Reply { to: caller, result: result.map_err(Fault::Failed) };
                // Refused only when the call is not running here any more (it cannot be).
                let _ = self.rpc.handle_command(now, reply);
            }
        }
    }

    /// Runs a request of another member's (or this one's) call and answers it.
    fn serve(&mut self, now: Time, caller: Caller, method: u64, args: &[u8], reply: bool) {
        if !self.merging.is_empty() && !matches!(method, ALIVE | RESTORE) {
            let args = Bytes::copy_from_slice(args);
            return self.deferred.push_back(Deferred::Request { caller, method, args, reply });
        }
        if method == READ && self.is_first() && !self.in_flight.is_empty() {
            let args = Bytes::copy_from_slice(args);
            return self.hold_read(Deferred::Request { caller, method, args, reply });
        }
        let result = match method {
            ALIVE => Ok(Bytes::new()),
            UPDATE if self.cfg.strategy == Strategy::PrimaryBackup => self.absorb(caller.member, args),
            // Every member takes a newer checkpoint, whatever the strategy.
            RESTORE => self.granted(args, true).and_then(|offer| self.take_offer(now, caller.member, offer)),
            WRITES if matches!(self.cfg.strategy, Strategy::Active | Strategy::Cached) => {
                self.granted(args, true).and_then(|ops| self.apply_batch(ops))
            }
            WRITE | READ | KEYED if !self.runs_calls() => {
                self.stats.not_first += 1;
                Err(Fault::Failed(NOT_FIRST.into()))
            }
            WRITE | READ | KEYED => match self.granted(args, method != READ) {
                Err(f) => Err(f),
                Ok(op) => match method {
                    KEYED if self.cfg.strategy == Strategy::PrimaryBackup => {
                        let mut r = op;
                        match take_key(&mut r) {
                            // Answered once the backups have the update.
                            Ok(key) => return self.primary_write(now, key, r, Answer::Remote(caller)),
                            Err(why) => Err(Fault::Failed(why)),
                        }
                    }
                    WRITE => {
                        self.stats.applied += 1;
                        self.version += 1;
                        self.obj.apply(op).map_err(Fault::Failed)
                    }
                    READ => {
                        self.stats.read += 1;
                        self.obj.read(op).map_err(Fault::Failed)
                    }
                    _ => Err(Fault::NoSuchMethod),
                },
            },
            _ => Err(Fault::NoSuchMethod),
        };
        if reply {
            let _ = self.rpc.handle_command(now, RpcCmd::Reply { to: caller, result });
        }
    }

    /// A backup absorbs the primary's update (the primary has it already).
    fn absorb(&mut self, from: EndpointId, args: &[u8]) -> Result<Bytes, Fault> {
        if from == self.rpc.me() {
            return Ok(Bytes::new());
        }
        if self.first() != Some(from) {
            self.stats.bad += 1;
            return Err(Fault::Failed("an update from a member that is not the primary".into()));
        }
        let mut r = args;
        let key = take_key(&mut r).map_err(Fault::Failed)?;
        let result = take_result(&mut r).map_err(Fault::Failed)?;
        self.obj.absorb(r).map_err(Fault::Failed)?;
        self.version += 1;
        self.applied.insert(key, result);
        self.stats.absorbed += 1;
        Ok(Bytes::new())
    }

    /// One of the replica's Group RPC calls ended.
    fn ended(&mut self, now: Time, call: CallId, outcome: &Outcome) {
        match self.calls.remove(&call) {
            Some(Purpose::Update { to, result, seq }) => {
                self.in_flight.remove(&seq);
                self.answer(now, to, result);
            }
            Some(Purpose::App { id, write, op, key: Some(key), tries }) if tries < TRIES && Self::gone(outcome) => {
                // Its primary failed (or was not the primary yet): again, to the view's
                // first member, under the same key.
                self.stats.retried += 1;
                let r = if self.is_first() {
                    self.primary_write(now, key, &op, Answer::Local(id));
                    Ok(())
                } else {
                    self.call(now, Purpose::App { id, write, op, key: Some(key), tries: tries + 1 })
                };
                if let Err(why) = r {
                    self.events.push_back(ObjEvent::Done { id, result: Err(ObjError::Refused(why)) });
                }
            }
            Some(Purpose::App { id, .. }) => {
                let result = self.unless_cut_off(Self::result(outcome));
                self.events.push_back(ObjEvent::Done { id, result })
            }
            Some(Purpose::Batch { ids }) => self.batch_ended(ids, outcome),
            Some(Purpose::Restore) | None => {}
            Some(Purpose::Probe { id }) => {
                let alive = outcome.values().next().is_some();
                let result = if alive { Ok(Bytes::new()) } else { Err(ObjError::Unavailable) };
                self.events.push_back(ObjEvent::Done { id, result });
            }
        }
    }

    /// Whether a call to one member ended without its answer because it was gone or did
    /// not run the calls (any more).
    fn gone(outcome: &Outcome) -> bool {
        outcome.values().next().is_none()
            && outcome.answers.iter().all(|(_, a)| match a {
                None | Some(Err(Fault::Left)) => true,
                Some(Err(Fault::Failed(why))) => why == NOT_FIRST,
                _ => false,
            })
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

    /// Takes what Group RPC output (serves requests, ends operations, transfers state), and
    /// sends the updates held back if flow control lets them now.
    fn collect(&mut self, now: Time) {
        self.send_queued(now);
        while let Some(ev) = self.rpc.poll_event() {
            match ev {
                RpcEvent::Request { caller, method, args, reply } => self.serve(now, caller, method, &args, reply),
                RpcEvent::Done { id, outcome } => self.ended(now, id, &outcome),
                RpcEvent::Refused { id, why } => match self.calls.remove(&id) {
                    Some(Purpose::App { id, .. }) => {
                        self.events.push_back(ObjEvent::Done { id, result: Err(ObjError::Refused(why)) })
                    }
                    Some(Purpose::Probe { id }) => {
                        self.events.push_back(ObjEvent::Done { id, result: Err(ObjError::Unavailable) })
                    }
                    Some(Purpose::Restore) => {
                        let detail = format!("the checkpoint offered was refused: {why}");
                        self.events.push_back(ObjEvent::Endpoint(Event::Error { layer: "object", detail }));
                    }
                    Some(Purpose::Update { seq, .. }) => {
                        self.in_flight.remove(&seq);
                    }
                    Some(Purpose::Batch { ids }) => {
                        for id in ids {
                            self.events.push_back(ObjEvent::Done { id, result: Err(ObjError::Refused(why.clone())) });
                        }
                    }
                    None => {}
                },
                RpcEvent::Endpoint(Event::StateRequest) => {
                    self.stats.dumps += 1;
                    let state = Bytes::from(self.snapshot());
                    let _ = self.rpc.handle_command(now, RpcCmd::Endpoint(Cmd::State(state)));
                }
                RpcEvent::Endpoint(Event::State { chunk, last }) => {
                    self.incoming.extend_from_slice(&chunk);
                    if last {
                        self.stats.undumps += 1;
                        let state = std::mem::take(&mut self.incoming);
                        if let Err(why) = self.load(&state) {
                            let detail = format!("the state transferred does not undump: {why}");
                            self.events.push_back(ObjEvent::Endpoint(Event::Error { layer: "object", detail }));
                        }
                        // The joiner is in the view already: a checkpoint newer than the
                        // group's state goes to the group.
                        if let Some((v, snapshot)) = self.restored.take()
                            && v > self.version
                        {
                            self.offer_restore(now, self.primary, &snapshot);
                        }
                    }
                }
                RpcEvent::Endpoint(Event::View(v)) if v.id.ltime > 0 => {
                    // A founder's first view (itself alone, not a joiner's provisional one):
                    // it keeps the checkpoint it started from.
                    if v.len() == 1 {
                        self.restored = None;
                    }
                    self.on_view(now, &v);
                    self.events.push_back(ObjEvent::Endpoint(Event::View(v)));
                }
                RpcEvent::Endpoint(e) => self.events.push_back(ObjEvent::Endpoint(e)),
            }
        }
        self.release_reads(now);
    }
}

impl ObjCmd {
    /// The caller's id of an operation (none for an endpoint command).
    fn id(&self) -> Option<CallId> {
        match self {
            ObjCmd::Write { id, .. } | ObjCmd::Read { id, .. } | ObjCmd::Probe { id, .. } => Some(*id),
            ObjCmd::Endpoint(_) => None,
        }
    }
}

impl Command for ObjCmd {
    fn weight(&self) -> usize {
        match self {
            ObjCmd::Write { op, .. } | ObjCmd::Read { op, .. } => op.len(),
            ObjCmd::Probe { .. } => 0,
            ObjCmd::Endpoint(c) => c.weight(),
        }
    }
    fn is_answer(&self) -> bool {
        matches!(self, ObjCmd::Endpoint(c) if c.is_answer())
    }
    /// Every operation may be a group call (a cast), which flow control may hold; a probe is
    /// a send.
    fn is_flow_controlled(&self) -> bool {
        !matches!(self, ObjCmd::Endpoint(_) | ObjCmd::Probe { .. })
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
        self.rpc.held() || !self.queued.is_empty() || !self.merging.is_empty()
    }
    fn stats(&self) -> Stats {
        self.rpc.stats()
    }
    fn metrics(&self) -> Metrics {
        self.rpc.metrics()
    }

    fn handle_command(&mut self, now: Time, cmd: ObjCmd) -> Result<(), RpcError> {
        let r = self.run_or_defer(now, cmd);
        self.collect(now);
        r
    }
    /// A run of writes goes as one batch where the strategy allows (`batch`); anything
    /// else one at a time.
    fn handle_commands(&mut self, now: Time, cmds: &mut VecDeque<ObjCmd>) -> Result<usize, RpcError> {
        let r = match self.batch(now, cmds) {
            Ok(0) => match cmds.pop_front() {
                Some(cmd) => self.run_or_defer(now, cmd).map(|()| 1),
                None => Ok(0),
            },
            r => r,
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

/// Many objects in one process, each its own group, over one socket pair: a `Groups` of
/// replicas (`thoth_stack::groups`).
impl<S: Semantics, L: Layer> thoth_stack::groups::GroupMember for Replica<S, L> {
    fn group(&self) -> GroupId {
        self.rpc.segment()
    }
}
