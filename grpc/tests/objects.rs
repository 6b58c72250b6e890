//! Replicated objects in the simulator: members of one object group, each a `Replica` of a
//! log (`Log`: append a number, read the whole log) over the `total` stack (membership,
//! heartbeat detection, the reliable layers with a sequencer), on links that jitter and
//! reorder.
//!
//! Checked: under every strategy, writes from every member all complete and every member
//! reads the whole log afterwards; under `Active`, `Cached` and `PrimaryBackup` every
//! replica holds the same log (one order), under `ClientServer` only the server does;
//! `Cached` reads send nothing, `Active` reads go through the order, the others go to the
//! first member; a replica crashing during writes leaves the others agreeing, every write
//! completed; the primary crashing during writes loses no acknowledged write and applies
//! none twice (writes made again under their key); a member that joins late gets the state
//! by dump / undump; an object with one member sends no request at all. Under loss and a
//! crash (a chaos run per seed, three members each a client), `Active` and `PrimaryBackup`
//! histories are linearizable (`thoth_grpc::linear`) and `Cached` reads keep their weaker
//! promise; `Active` with writes in no order across callers (planted) fails the check.
//! Capabilities: read-only, widened and forged ones refused as they should be, and counted.
//! Liveness probes: answered by the live, unavailable for the crashed and for strangers. The
//! location trader: install, bind, and services of crashed owners dropped by its duty.

use thoth_grpc::linear::{self, Model, Op};
use thoth_grpc::object::capability;
use thoth_grpc::{
    Bounds, Capability, ObjCmd, ObjConfig, ObjError, ObjEvent, ObjStats, Replica, Rpc, RpcConfig, Secret, Semantics,
    Strategy,
};
use thoth_stack::sim::{Link, NodeId, Sim, Simulated, check_seeds};
use thoth_stack::{Bytes, Config, Duration, Endpoint, EndpointId, GroupId};

const G: GroupId = GroupId(77);
const EVERY: [Strategy; 4] = [Strategy::Active, Strategy::Cached, Strategy::PrimaryBackup, Strategy::ClientServer];

/// The semantics object: a log of numbers, knowing nothing of replication.
#[derive(Default, Debug, PartialEq, Eq)]
struct Log(Vec<u64>);

fn encode(v: &[u64]) -> Bytes {
    Bytes::from(v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>())
}

fn decode(b: &[u8]) -> Result<Vec<u64>, String> {
    if !b.len().is_multiple_of(8) {
        return Err(format!("{} bytes are not whole numbers", b.len()));
    }
    Ok(b.chunks(8).map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes"))).collect())
}

impl Semantics for Log {
    fn apply(&mut self, op: &[u8]) -> Result<Bytes, String> {
        let [x] = decode(op)?[..] else { return Err("append takes one number".into()) };
        self.0.push(x);
        Ok(encode(&[self.0.len() as u64]))
    }
    fn read(&self, _op: &[u8]) -> Result<Bytes, String> {
        Ok(encode(&self.0))
    }
    fn dump(&self) -> Bytes {
        encode(&self.0)
    }
    fn undump(&mut self, state: &[u8]) -> Result<(), String> {
        self.0 = decode(state)?;
        Ok(())
    }
}

type Member = Replica<Log>;

fn replica(cfg: Config, seed: u64, strategy: Strategy) -> Member {
    replica_on(cfg, seed, strategy, "total")
}

fn replica_on(cfg: Config, seed: u64, strategy: Strategy, spec: &str) -> Member {
    Replica::new(rpc_on(cfg, seed, spec), Log::default(), ObjConfig::new(strategy))
}

/// Group RPC for the endpoint `cfg` over the stack `spec`, with state transfer.
fn rpc_on(cfg: Config, seed: u64, spec: &str) -> Rpc {
    let cfg = Config { transfer_state: true, ..cfg };
    let ep = Endpoint::from_spec(cfg, &thoth::registry(), spec).expect("the stack builds");
    Rpc::new(ep, RpcConfig { nonce: seed | 1, cache: Bounds::default() })
}

/// Members 1..=`n` of the object's group from the start, each `make` over its Group RPC
/// (stack `spec`).
fn group_of<M: Simulated + 'static>(
    sim: &mut Sim<M>,
    n: u64,
    spec: &'static str,
    make: impl Fn(Rpc) -> M + Clone + Send + 'static,
) -> Vec<NodeId> {
    let ids: Vec<EndpointId> = (1..=n).map(EndpointId).collect();
    ids.iter()
        .map(|&me| {
            let (ids, make) = (ids.clone(), make.clone());
            sim.add_node(move |spawn| {
                make(rpc_on(Config { seed: spawn.seed, ..Config::new(G, me, ids.clone()) }, spawn.seed, spec))
            })
        })
        .collect()
}

/// `n` members of the object's group from the start, on jittery links.
fn world(seed: u64, n: u64, strategy: Strategy) -> (Sim<Member>, Vec<NodeId>) {
    world_on(seed, n, strategy, "total")
}

/// The same over the stack `spec`.
fn world_on(seed: u64, n: u64, strategy: Strategy, spec: &'static str) -> (Sim<Member>, Vec<NodeId>) {
    let mut sim = Sim::new(seed);
    sim.set_default_link(Link {
        delay: Duration::from_micros(200),
        jitter: Duration::from_micros(400),
        reorder: 0.1,
        ..Link::default()
    });
    let nodes = group_of(&mut sim, n, spec, move |rpc| Replica::new(rpc, Log::default(), ObjConfig::new(strategy)));
    (sim, nodes)
}

fn write(id: u64, x: u64) -> ObjCmd {
    ObjCmd::Write { id, op: encode(&[x]) }
}

fn read(id: u64) -> ObjCmd {
    ObjCmd::Read { id, op: Bytes::new() }
}

fn done(sim: &Sim<Member>, n: NodeId, id: u64) -> Option<Result<Bytes, ObjError>> {
    sim.events(n).iter().find_map(|e| match &e.event {
        ObjEvent::Done { id: i, result } if *i == id => Some(result.clone()),
        _ => None,
    })
}

fn log_of(sim: &Sim<Member>, n: NodeId) -> Vec<u64> {
    sim.endpoint(n).expect("up").object().0.clone()
}

/// Every member writes 10 numbers at once; then every member reads.
fn writes_then_reads(sim: &mut Sim<Member>, nodes: &[NodeId]) -> Vec<Vec<u64>> {
    for k in 0..10 {
        for (i, &n) in nodes.iter().enumerate() {
            sim.command(n, write(k, i as u64 * 100 + k)).expect("write");
        }
    }
    sim.run_for(Duration::from_secs(2));
    for (i, &n) in nodes.iter().enumerate() {
        for k in 0..10 {
            let r = done(sim, n, k).unwrap_or_else(|| panic!("member {i}'s write {k} ended"));
            assert!(r.is_ok(), "member {i}'s write {k}: {r:?}");
        }
        sim.command(n, read(100)).expect("read");
    }
    sim.run_for(Duration::from_secs(1));
    nodes
        .iter()
        .map(|&n| decode(&done(sim, n, 100).expect("the read ended").expect("a log")).expect("decodes"))
        .collect()
}

#[test]
fn every_strategy_serves_reads_and_writes_from_every_member() {
    for strategy in EVERY {
        let (mut sim, nodes) = world(1, 3, strategy);
        let reads = writes_then_reads(&mut sim, &nodes);
        let server = log_of(&sim, nodes[0]);
        assert_eq!(server.len(), 30, "{strategy:?}: every write, once");
        let mut sorted = server.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 30, "{strategy:?}: no write twice");
        for (i, &n) in nodes.iter().enumerate() {
            assert_eq!(reads[i], server, "{strategy:?}: member {i} reads the whole log");
            let held = log_of(&sim, n);
            let stats = sim.endpoint(n).expect("up").obj_stats().clone();
            match strategy {
                Strategy::Active | Strategy::Cached => {
                    assert_eq!(held, server, "{strategy:?}: one order at member {i}")
                }
                Strategy::PrimaryBackup if i > 0 => {
                    assert_eq!(held, server, "a backup follows the primary");
                    assert_eq!((stats.applied, stats.absorbed), (0, 30), "a backup absorbs, runs nothing");
                }
                Strategy::PrimaryBackup => assert_eq!((stats.applied, stats.read), (30, 2), "the primary runs it all"),
                Strategy::ClientServer if i > 0 => {
                    assert!(held.is_empty(), "a client holds no copy");
                    assert_eq!(stats.applied + stats.read, 0, "a client serves nothing");
                }
                Strategy::ClientServer => {
                    assert_eq!(stats.applied + stats.read, 22, "the server ran the others' calls")
                }
            }
            // Cached reads run here with no message; Active reads go through the order; the
            // first member of the others runs its own at once.
            let remote = match strategy {
                Strategy::Cached => 10,
                Strategy::Active => 11,
                _ if i > 0 => 11,
                _ => 0,
            };
            assert_eq!(stats.remote, remote, "{strategy:?} member {i}: {stats:?}");
            // Reads on the local replica, where the strategy lets them run there.
            let local =
                sim.endpoint(n).expect("up").read_local(&[]).map(|r| decode(&r.expect("a log")).expect("decodes"));
            let allowed = strategy == Strategy::Cached || (i == 0 && strategy != Strategy::Active);
            assert_eq!(local, allowed.then(|| server.clone()), "{strategy:?} member {i}: a local read");
        }
    }
}

#[test]
fn active_replicas_agree_after_one_crashes_during_writes() {
    let (mut sim, nodes) = world(2, 3, Strategy::Active);
    for k in 0..30 {
        sim.command(nodes[0], write(k, k)).expect("write");
        sim.command(nodes[1], write(k, 1000 + k)).expect("write");
    }
    sim.run_for(Duration::from_millis(3));
    sim.crash(nodes[2]);
    sim.run_for(Duration::from_secs(5));
    for &n in &nodes[..2] {
        for k in 0..30 {
            let r = done(&sim, n, k).unwrap_or_else(|| panic!("write {k} ended"));
            assert!(r.is_ok(), "write {k}: {r:?}");
        }
    }
    let (a, b) = (log_of(&sim, nodes[0]), log_of(&sim, nodes[1]));
    assert_eq!(a.len(), 60);
    assert_eq!(a, b, "the survivors hold one log");
    let view = sim.endpoint(nodes[0]).expect("up").rpc().endpoint().view().clone();
    assert_eq!(view.len(), 2, "the crashed replica is out of the view");
}

#[test]
fn the_primary_crashing_during_writes_loses_no_acknowledged_write() {
    let (mut sim, nodes) = world(6, 3, Strategy::PrimaryBackup);
    sim.run_for(Duration::from_millis(100));
    for k in 0..30 {
        sim.command(nodes[1], write(k, k)).expect("write");
        sim.command(nodes[2], write(k, 1000 + k)).expect("write");
    }
    sim.run_for(Duration::from_millis(2));
    sim.crash(nodes[0]);
    sim.run_for(Duration::from_secs(5));
    let (a, b) = (log_of(&sim, nodes[1]), log_of(&sim, nodes[2]));
    assert_eq!(a, b, "the survivors hold one log");
    let mut once = a.clone();
    once.sort();
    once.dedup();
    assert_eq!(once.len(), a.len(), "no write applied twice: {a:?}");
    for (j, &n) in nodes[1..].iter().enumerate() {
        for k in 0..30 {
            let r = done(&sim, n, k).unwrap_or_else(|| panic!("write {k} of member {} ended", j + 1));
            assert!(r.is_ok(), "write {k}: {r:?}");
            let x = if j == 0 { k } else { 1000 + k };
            assert!(a.contains(&x), "acknowledged write {x} is in the log");
        }
    }
    assert_eq!(a.len(), 60);
    let retried: u64 = nodes[1..].iter().map(|&n| sim.endpoint(n).expect("up").obj_stats().retried).sum();
    let replayed: u64 = nodes[1..].iter().map(|&n| sim.endpoint(n).expect("up").obj_stats().replayed).sum();
    assert!(retried > 0, "the crash caught writes in flight: the test shows nothing otherwise");
    assert!(replayed > 0, "some writes the old primary ran were answered from the results: {retried} retried");
}

/// A primary whose updates outrun flow control (32 KiB of credit; 400 writes at once, each
/// update the whole log) holds them back in order and sends them as credit comes: every write is
/// acknowledged, and every backup follows.
#[test]
fn a_primary_holds_back_updates_that_flow_control_refuses() {
    let spec = "gms:heartbeat:frag:flow(credits=32768):sequencer:stable:nak:pt2pt:pack";
    let (mut sim, nodes) = world_on(9, 3, Strategy::PrimaryBackup, spec);
    sim.run_for(Duration::from_millis(100));
    for k in 0..400 {
        sim.command(nodes[1], write(k, k)).expect("write");
    }
    sim.run_for(Duration::from_secs(4));
    for k in 0..400 {
        assert!(matches!(done(&sim, nodes[1], k), Some(Ok(_))), "write {k}: {:?}", done(&sim, nodes[1], k));
    }
    let log = log_of(&sim, nodes[0]);
    assert_eq!(log, (0..400).collect::<Vec<_>>());
    assert!(nodes.iter().all(|&n| log_of(&sim, n) == log), "every backup follows");
    assert!(sim.endpoint(nodes[0]).expect("up").obj_stats().held_back > 0, "flow control held updates back");
    assert_eq!(sim.endpoint(nodes[1]).expect("up").obj_stats().retried, 0, "no write waited out its timeout");
}

#[test]
fn a_member_that_joins_late_gets_the_state() {
    for strategy in [Strategy::Active, Strategy::Cached, Strategy::PrimaryBackup] {
        let (mut sim, mut nodes) = world(3, 2, strategy);
        let _ = writes_then_reads(&mut sim, &nodes);
        let late = sim.add_node(move |spawn| {
            replica(Config { seed: spawn.seed, ..Config::joining(G, EndpointId(9)) }, spawn.seed, strategy)
        });
        nodes.push(late);
        sim.run_for(Duration::from_secs(5));
        let view = sim.endpoint(late).expect("up").rpc().endpoint().view().clone();
        assert_eq!(view.len(), 3, "{strategy:?}: the late member joined: {view:?}");
        let want = log_of(&sim, nodes[0]);
        assert_eq!(want.len(), 20);
        assert_eq!(log_of(&sim, late), want, "{strategy:?}: undumped what was dumped");
        assert_eq!(sim.endpoint(late).expect("up").obj_stats().undumps, 1);
        // And it takes part from there on.
        sim.command(nodes[0], write(50, 7)).expect("write");
        sim.run_for(Duration::from_secs(1));
        assert!(matches!(done(&sim, nodes[0], 50), Some(Ok(_))));
        assert_eq!(log_of(&sim, late).last(), Some(&7));
    }
}

/// A group that stops entirely restarts from its members' checkpoints: the member with
/// the oldest checkpoint starts first and forms the group with it; the one with the newest
/// joins, gets the older state by transfer and offers its own, which every replica takes;
/// the last joins with a checkpoint as new as the group's and offers nothing.
#[test]
fn a_group_that_stopped_restarts_from_the_newest_checkpoint() {
    for strategy in [Strategy::Active, Strategy::Cached, Strategy::PrimaryBackup] {
        let (mut sim, nodes) = world(12, 3, strategy);
        let _ = writes_then_reads(&mut sim, &nodes);
        let oldest = sim.endpoint(nodes[0]).expect("up").checkpoint();
        sim.crash(nodes[0]);
        sim.run_for(Duration::from_secs(3));
        for k in 0..5 {
            sim.command(nodes[1], write(200 + k, 1000 + k)).expect("write");
        }
        sim.run_for(Duration::from_secs(2));
        assert!((0..5).all(|k| matches!(done(&sim, nodes[1], 200 + k), Some(Ok(_)))), "{strategy:?}");
        let want = log_of(&sim, nodes[1]);
        assert_eq!(want.len(), 35, "{strategy:?}");
        let newest: Vec<Bytes> = nodes[1..].iter().map(|&n| sim.endpoint(n).expect("up").checkpoint()).collect();
        let version = sim.endpoint(nodes[1]).expect("up").version();
        assert!(version > 30, "{strategy:?}: {version}");
        drop(sim);

        let mut sim: Sim<Member> = Sim::new(13);
        let mut again = Vec::new();
        for (i, cp) in [oldest, newest[0].clone(), newest[1].clone()].into_iter().enumerate() {
            let me = EndpointId(i as u64 + 1);
            again.push(sim.add_node(move |spawn| {
                let rpc = rpc_on(Config { seed: spawn.seed, ..Config::joining(G, me) }, spawn.seed, "total");
                Replica::restore(rpc, Log::default(), ObjConfig::new(strategy), &cp).expect("restores")
            }));
            sim.run_for(Duration::from_secs(3));
        }
        let view = sim.endpoint(again[0]).expect("up").rpc().endpoint().view().clone();
        assert_eq!(view.len(), 3, "{strategy:?}: {view:?}");
        for (i, &n) in again.iter().enumerate() {
            assert_eq!(log_of(&sim, n), want, "{strategy:?}: member {i}");
            assert_eq!(sim.endpoint(n).expect("up").version(), version, "{strategy:?}: member {i}");
        }
        let stats: Vec<_> = again.iter().map(|&n| sim.endpoint(n).expect("up").obj_stats().clone()).collect();
        assert_eq!(stats.iter().map(|s| s.offered).collect::<Vec<_>>(), [0, 1, 0], "{strategy:?}");
        // The offer replaces the older state the offering member got by transfer too.
        assert_eq!(stats.iter().map(|s| s.restored).collect::<Vec<_>>(), [1, 1, 0], "{strategy:?}");
        // And the group goes on from there.
        sim.command(again[2], write(1, 5)).expect("write");
        sim.run_for(Duration::from_secs(1));
        assert!(matches!(done(&sim, again[2], 1), Some(Ok(_))), "{strategy:?}");
        assert!(again.iter().all(|&n| log_of(&sim, n).last() == Some(&5)), "{strategy:?}");
    }
}

/// Many objects in one process, each its own group, over one socket pair (`Groups`): 3
/// processes hold the same 40 objects, every other one active and the rest primary-backup;
/// each process writes to every object at once; every object's replicas agree on its own
/// writes and nothing else, and every write ended.
#[test]
fn many_objects_in_one_process_each_its_own_group() {
    use thoth_stack::groups::{GroupCmd, Groups, GroupsConfig};
    let ids: Vec<EndpointId> = (1..=3).map(EndpointId).collect();
    let objects: Vec<GroupId> = (0..40).map(|k| GroupId(1000 + k)).collect();
    let mut sim: Sim<Groups<Member>> = Sim::new(14);
    let nodes: Vec<NodeId> = ids
        .iter()
        .map(|&me| {
            let (ids, objects) = (ids.clone(), objects.clone());
            sim.add_node(move |spawn| {
                let mut g = Groups::new(GroupsConfig::new(me));
                for (k, &obj) in objects.iter().enumerate() {
                    let strategy = if k % 2 == 0 { Strategy::Active } else { Strategy::PrimaryBackup };
                    let seed = spawn.seed ^ (k as u64) << 32;
                    g.add(replica(Config { seed, ..Config::new(obj, me, ids.clone()) }, seed, strategy))
                        .expect("a group of its own");
                }
                g
            })
        })
        .collect();
    sim.run_for(Duration::from_millis(100));
    for (i, &n) in nodes.iter().enumerate() {
        for (k, &obj) in objects.iter().enumerate() {
            let x = k as u64 * 100 + i as u64;
            sim.command(n, GroupCmd::To(obj, write(x, x))).expect("write");
        }
    }
    sim.run_for(Duration::from_secs(2));
    for (i, &n) in nodes.iter().enumerate() {
        let ok = sim.events(n).iter().filter(|e| matches!(e.event.event, ObjEvent::Done { result: Ok(_), .. })).count();
        assert_eq!(ok, objects.len(), "member {i}: every write ended");
    }
    for (k, &obj) in objects.iter().enumerate() {
        let logs: Vec<Vec<u64>> =
            nodes.iter().map(|&n| sim.endpoint(n).expect("up").member(obj).expect("held").object().0.clone()).collect();
        let mut mine = logs[0].clone();
        mine.sort();
        assert_eq!(mine, (0..3).map(|i| k as u64 * 100 + i).collect::<Vec<_>>(), "object {k}: its own writes");
        assert!(logs.windows(2).all(|w| w[0] == w[1]), "object {k}: the replicas agree: {logs:?}");
    }
}

/// The typed front end (`#[object]`): a trait of plain methods replicated under every
/// strategy; its writes apply at every replica holding state, its reads answer from there,
/// and an operation of another version is refused with why.
#[thoth_grpc::object(version = 1)]
trait Ledger {
    fn deposit(&mut self, who: String, amount: u64) -> u64;
    fn balance(&self, who: String) -> u64;
}

#[derive(Default, serde::Serialize, serde::Deserialize)]
struct Accounts(std::collections::BTreeMap<String, u64>);

impl Ledger for Accounts {
    fn deposit(&mut self, who: String, amount: u64) -> u64 {
        let b = self.0.entry(who).or_default();
        *b += amount;
        *b
    }
    fn balance(&self, who: String) -> u64 {
        self.0.get(&who).copied().unwrap_or(0)
    }
}

#[test]
fn a_typed_object_runs_under_every_strategy() {
    for strategy in EVERY {
        let mut sim: Sim<Replica<LedgerObject<Accounts>>> = Sim::new(15);
        let nodes = group_of(&mut sim, 3, "total", move |rpc| {
            Replica::new(rpc, LedgerObject(Accounts::default()), ObjConfig::new(strategy))
        });
        sim.run_for(Duration::from_millis(100));
        for (i, &n) in nodes.iter().enumerate() {
            sim.command(n, LedgerOps::deposit(1, "ada".into(), 10 + i as u64)).expect("deposit");
        }
        sim.run_for(Duration::from_secs(1));
        sim.command(nodes[2], LedgerOps::balance(2, "ada".into())).expect("balance");
        // An operation of another version (or another object) is refused.
        let alien = thoth_grpc::object::typed::op(12345, &("ada".to_string(), 1u64));
        sim.command(nodes[1], ObjCmd::Write { id: 3, op: alien }).expect("sent");
        sim.run_for(Duration::from_secs(1));
        let end = |n: NodeId, id: u64| {
            sim.events(n).iter().find_map(|e| match &e.event {
                ObjEvent::Done { id: i, result } if *i == id => Some(result.clone()),
                _ => None,
            })
        };
        let balance = end(nodes[2], 2).expect("a balance").expect("answered");
        assert_eq!(LedgerOps::balance_result(&balance), Ok(33), "{strategy:?}");
        assert!(
            matches!(end(nodes[1], 3), Some(Err(ObjError::Failed(why))) if why.contains("no write method")),
            "{strategy:?}: {:?}",
            end(nodes[1], 3)
        );
        let holders = if matches!(strategy, Strategy::ClientServer) { &nodes[..1] } else { &nodes[..] };
        for &n in holders {
            assert_eq!(sim.endpoint(n).expect("up").object().0.balance("ada".into()), 33, "{strategy:?}");
        }
    }
}

/// At most once under duplicated requests: a `dup` layer above the stack hands a third of
/// the messages on twice, requests and updates included; every strategy still applies each
/// write once (Group RPC's reply cache, the applied results by key) and its replicas agree.
#[test]
fn duplicated_requests_run_once_under_every_strategy() {
    for strategy in EVERY {
        let (mut sim, nodes) = world_on(16, 3, strategy, "dup(p=0.3):total");
        let reads = writes_then_reads(&mut sim, &nodes);
        let log = log_of(&sim, nodes[0]);
        let mut once = log.clone();
        once.sort();
        once.dedup();
        assert_eq!((log.len(), once.len()), (30, 30), "{strategy:?}: every write once: {log:?}");
        assert!(reads.iter().all(|r| *r == log), "{strategy:?}: every member reads the one log");
        let dups: u64 = nodes.iter().map(|&n| sim.endpoint(n).expect("up").rpc().rpc_stats().duplicates).sum();
        assert!(dups > 0, "{strategy:?}: requests did arrive twice");
    }
}

/// Writes handed over together (`Machine::handle_commands`) go as one batch under
/// `Active` and `Cached` (one Group RPC call for twenty writes), one at a time under the
/// others; either way each write ends with its own result (the log's length after it, so
/// every result tells the write's place), once, in the one order at every replica.
#[test]
fn writes_handed_over_together_go_as_one_batch() {
    use thoth_stack::Machine;
    for strategy in EVERY {
        let (mut sim, nodes) = world(17, 3, strategy);
        sim.run_for(Duration::from_millis(100));
        for (i, &n) in nodes.iter().enumerate() {
            let mut cmds: std::collections::VecDeque<ObjCmd> = (0..20).map(|k| write(k, i as u64 * 100 + k)).collect();
            sim.with(n, |m, now| {
                while !cmds.is_empty() {
                    m.handle_commands(now, &mut cmds).expect("taken");
                }
            })
            .expect("up");
        }
        sim.run_for(Duration::from_secs(2));
        let log = log_of(&sim, nodes[0]);
        assert_eq!(log.len(), 60, "{strategy:?}");
        for (i, &n) in nodes.iter().enumerate() {
            for k in 0..20 {
                let r = done(&sim, n, k).unwrap_or_else(|| panic!("{strategy:?}: member {i}'s write {k} ended"));
                let place = decode(&r.expect("a write succeeds")).expect("a length")[0] as usize;
                assert_eq!(log[place - 1], i as u64 * 100 + k, "{strategy:?}: the result tells the write's place");
            }
            if strategy != Strategy::ClientServer {
                assert_eq!(log_of(&sim, n), log, "{strategy:?}: one order at member {i}");
            }
            let calls = sim.endpoint(n).expect("up").rpc().rpc_stats().calls;
            let batched = matches!(strategy, Strategy::Active | Strategy::Cached);
            match (batched, i) {
                (true, _) => assert_eq!(calls, 1, "{strategy:?}: member {i}'s twenty writes, one call"),
                // The first member runs its own writes under primary-backup and client-server.
                (false, 0) => {}
                (false, _) => assert_eq!(calls, 20, "{strategy:?}: member {i}'s writes one at a time"),
            }
        }
    }
}

/// A read at the primary waits for the update of a write before it; while it waits its id
/// is pending (a second operation under it is refused), and it ends after the write, seeing
/// it.
#[test]
fn a_read_at_the_primary_waits_for_the_updates_before_it() {
    let (mut sim, nodes) = world(18, 3, Strategy::PrimaryBackup);
    sim.run_for(Duration::from_millis(100));
    sim.command(nodes[0], write(1, 42)).expect("write");
    sim.command(nodes[0], read(2)).expect("read");
    assert_eq!(done(&sim, nodes[0], 2), None, "the read waits for the write's update");
    let again = sim.command(nodes[0], read(2));
    assert!(matches!(again, Err(thoth_stack::sim::CmdError::Refused(thoth_grpc::RpcError::DuplicateId))), "{again:?}");
    sim.run_for(Duration::from_secs(1));
    assert!(matches!(done(&sim, nodes[0], 1), Some(Ok(_))));
    let seen = decode(&done(&sim, nodes[0], 2).expect("the read ended").expect("a log")).expect("decodes");
    assert_eq!(seen, [42], "the read sees the write it waited for");
}

#[test]
fn an_object_with_one_member_sends_no_request() {
    for strategy in EVERY {
        let (mut sim, nodes) = world(4, 1, strategy);
        let reads = writes_then_reads(&mut sim, &nodes);
        assert_eq!(reads[0], (0..10).collect::<Vec<_>>());
        let r = sim.endpoint(nodes[0]).expect("up");
        assert_eq!((r.obj_stats().local, r.obj_stats().remote, r.rpc().rpc_stats().calls), (11, 0, 0), "{strategy:?}");
    }
}

#[test]
fn a_refused_operation_is_the_semantics_error_at_every_strategy() {
    for strategy in EVERY {
        let (mut sim, nodes) = world(5, 3, strategy);
        sim.run_for(Duration::from_millis(100));
        sim.command(nodes[1], ObjCmd::Write { id: 1, op: Bytes::from_static(b"odd") }).expect("write");
        sim.run_for(Duration::from_secs(1));
        assert_eq!(
            done(&sim, nodes[1], 1),
            Some(Err(ObjError::Failed("3 bytes are not whole numbers".into()))),
            "{strategy:?}"
        );
    }
}

/// Capabilities: with the object's secret every replica runs only calls whose capability
/// grants what they need. A read-only capability reads but does not write; one whose rights
/// were widened without the secret, and a forged one, do neither; each refusal is counted
/// where it happened; only the genuine write is in the log.
#[test]
fn capabilities_refuse_forged_and_widened_calls() {
    let secret = Secret([3; 32]);
    for strategy in [Strategy::Active, Strategy::PrimaryBackup] {
        let all = Capability::mint(&secret, G.0, capability::READ | capability::WRITE);
        let read_only = Capability::mint(&secret, G.0, capability::READ);
        let widened = Capability { rights: capability::READ | capability::WRITE, ..read_only };
        let mut forged = all;
        forged.check[5] ^= 0x40;
        let caps = [all, read_only, widened, forged];
        let mut sim = Sim::new(8);
        let ids: Vec<EndpointId> = (1..=4).map(EndpointId).collect();
        let nodes: Vec<NodeId> = ids
            .iter()
            .zip(caps)
            .map(|(&me, cap)| {
                let ids = ids.clone();
                let cfg = ObjConfig { secret: Some(secret), cap: Some(cap), ..ObjConfig::new(strategy) };
                sim.add_node(move |spawn| {
                    let rpc =
                        rpc_on(Config { seed: spawn.seed, ..Config::new(G, me, ids.clone()) }, spawn.seed, "total");
                    Replica::new(rpc, Log::default(), cfg)
                })
            })
            .collect();
        sim.run_for(Duration::from_millis(100));
        for (i, &n) in nodes.iter().enumerate() {
            sim.command(n, write(1, 10 + i as u64)).expect("write");
            sim.command(n, read(2)).expect("read");
        }
        sim.run_for(Duration::from_secs(2));
        let refused = Some(Err(ObjError::Failed(thoth_grpc::object::REFUSED.into())));
        assert!(matches!(done(&sim, nodes[0], 1), Some(Ok(_))), "{strategy:?}: the genuine write");
        assert_eq!(done(&sim, nodes[1], 1), refused, "{strategy:?}: a read-only capability writes");
        assert!(matches!(done(&sim, nodes[1], 2), Some(Ok(_))), "{strategy:?}: a read-only capability reads");
        for i in [2, 3] {
            assert_eq!(done(&sim, nodes[i], 1), refused, "{strategy:?}: member {i}'s write");
            assert_eq!(done(&sim, nodes[i], 2), refused, "{strategy:?}: member {i}'s read");
        }
        for &n in &nodes {
            assert_eq!(log_of(&sim, n), [10], "{strategy:?}: only the genuine write");
        }
        let refusals: u64 = nodes.iter().map(|&n| sim.endpoint(n).expect("up").obj_stats().refused).sum();
        assert!(refusals >= 5, "{strategy:?}: every refusal counted ({refusals})");
    }
}

/// Liveness (`are_you_alive`): a live member answers a probe, one that crashed is reported
/// unavailable (once the view excludes it, or its probe times out), and so is a stranger,
/// at once; a member answers whatever the strategy.
#[test]
fn liveness_probes_tell_the_live_from_the_failed() {
    for strategy in EVERY {
        let (mut sim, nodes) = world(10, 3, strategy);
        sim.run_for(Duration::from_millis(100));
        let probe = |id, member| ObjCmd::Probe { id, member };
        sim.command(nodes[0], probe(1, sim.id(nodes[1]))).expect("probe");
        sim.command(nodes[1], probe(2, sim.id(nodes[0]))).expect("probe");
        sim.command(nodes[0], probe(3, EndpointId(99))).expect("probe");
        sim.run_for(Duration::from_millis(100));
        assert_eq!(done(&sim, nodes[0], 1), Some(Ok(Bytes::new())), "{strategy:?}: a live member answers");
        assert_eq!(done(&sim, nodes[1], 2), Some(Ok(Bytes::new())), "{strategy:?}: the first member answers");
        assert_eq!(done(&sim, nodes[0], 3), Some(Err(ObjError::Unavailable)), "{strategy:?}: a stranger");
        let gone = sim.id(nodes[2]);
        sim.crash(nodes[2]);
        sim.command(nodes[0], probe(4, gone)).expect("probe");
        sim.run_for(Duration::from_secs(6));
        assert_eq!(done(&sim, nodes[0], 4), Some(Err(ObjError::Unavailable)), "{strategy:?}: a crashed member");
    }
}

/// The location trader: members install services and bind names (a `Cached` directory:
/// binds are local reads); the services of a member that crashes are dropped by the
/// trader's duty (its probes go unanswered), those of the live stay; when the first member,
/// which carries the duty, crashes, the next first member takes it over.
#[test]
fn the_trader_binds_names_and_drops_services_that_stop_answering() {
    use thoth_grpc::object::trader::{Directory, Entry, Trader, TraderOp, decode_bind};
    let mut sim: Sim<Trader> = Sim::new(11);
    let ids: Vec<EndpointId> = (1..=4).map(EndpointId).collect();
    let nodes = group_of(&mut sim, 4, "total", |rpc| {
        let replica = Replica::new(rpc, Directory::default(), ObjConfig::new(Strategy::Cached));
        Trader::new(replica, Duration::from_millis(200), 2)
    });
    sim.run_for(Duration::from_millis(100));
    for (i, name) in [(1, "kv"), (2, "files"), (3, "docs")] {
        let entry = Entry { group: 1000 + i as u64, owner: ids[i], contact: format!("at {i}") };
        sim.command(nodes[i], ObjCmd::Write { id: 1, op: TraderOp::Install { name: name.into(), entry }.encode() })
            .expect("install");
    }
    sim.run_for(Duration::from_millis(500));
    let bind = |sim: &mut Sim<Trader>, n: NodeId, id: u64, name: &str| {
        sim.command(n, ObjCmd::Read { id, op: TraderOp::Bind { name: name.into() }.encode() }).expect("bind");
        let r = sim.events(n).iter().rev().find_map(|e| match &e.event {
            ObjEvent::Done { id: i, result } if *i == id => Some(result.clone()),
            _ => None,
        });
        decode_bind(&r.expect("a local bind ends at once").expect("a bind")).expect("decodes")
    };
    // A second offer of "kv", by another member.
    let other = Entry { group: 1001, owner: ids[3], contact: "at 3".into() };
    sim.command(
        nodes[3],
        ObjCmd::Write { id: 2, op: TraderOp::Install { name: "kv".into(), entry: other.clone() }.encode() },
    )
    .expect("install");
    sim.run_for(Duration::from_millis(500));
    let kv = Entry { group: 1001, owner: ids[1], contact: "at 1".into() };
    assert_eq!(bind(&mut sim, nodes[0], 10, "kv"), vec![kv.clone(), other.clone()]);
    assert_eq!(
        bind(&mut sim, nodes[3], 11, "files"),
        vec![Entry { group: 1002, owner: ids[2], contact: "at 2".into() }]
    );
    assert_eq!(bind(&mut sim, nodes[1], 12, "nothing"), vec![]);
    // The owner of "files" crashes: the duty drops it, and nothing else.
    sim.crash(nodes[2]);
    sim.run_for(Duration::from_secs(5));
    for &n in [nodes[0], nodes[1], nodes[3]].iter() {
        let d = sim.endpoint(n).expect("up").replica().object();
        assert_eq!((d.get("files"), d.get("kv").len(), d.get("docs").len()), (vec![], 2, 1));
    }
    assert_eq!(sim.endpoint(nodes[0]).expect("up").dropped, 1);
    // The first member, which carried the duty, crashes; then the owner of "docs": the
    // next first member drops it.
    sim.crash(nodes[0]);
    sim.run_for(Duration::from_secs(5));
    sim.crash(nodes[3]);
    sim.run_for(Duration::from_secs(5));
    let d = sim.endpoint(nodes[1]).expect("up").replica().object();
    // The owner of "docs" also offered "kv": only its offer of "kv" goes.
    assert_eq!((d.get("docs"), d.get("kv")), (vec![], vec![kv]));
    assert_eq!(sim.endpoint(nodes[1]).expect("up").dropped, 2, "the duty moved to the next first member");
}

// ---------------------------------------------------------------- consistency under faults

/// The log's sequential specification: an append's output is the log's new length, a
/// read's the whole log.
struct LogModel;

#[derive(Clone, Debug)]
enum LogIn {
    Append(u64),
    Read,
}

impl Model for LogModel {
    type State = Vec<u64>;
    type Input = LogIn;
    type Output = Vec<u64>;
    fn init(&self) -> Vec<u64> {
        Vec::new()
    }
    fn step(&self, s: &Vec<u64>, input: &LogIn, out: Option<&Vec<u64>>) -> Option<Vec<u64>> {
        match input {
            LogIn::Append(x) => {
                let mut t = s.clone();
                t.push(*x);
                out.is_none_or(|o| *o == [t.len() as u64]).then_some(t)
            }
            LogIn::Read => out.is_none_or(|o| o == s).then(|| s.clone()),
        }
    }
}

type History = Vec<Op<LogIn, Vec<u64>>>;

/// The fault a chaos run injects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Chaos {
    /// 3 members; one crashes (under `PrimaryBackup` the primary, half the time).
    Crash,
    /// 5 members in primary-partition mode; two of them are cut off from the other three
    /// for a while, then the partition heals and the sides merge.
    Partition,
}

/// One chaos run: each member a client making operations one at a time (two appends of
/// numbers never used before for one read) for a while (2.5 s; under partitions until 6 s
/// after the heal) at random moments, over links that
/// lose up to 3 % and jitter, with the fault `chaos` at a random instant; a client makes
/// none while its member is outside a primary view. Returns the history (simulated time,
/// ns; an operation that ended unavailable or whose member crashed never returned: it may
/// or may not have taken effect), each surviving member's log at the end, and their stats.
fn chaos_history(seed: u64, cfg: ObjConfig, chaos: Chaos) -> (History, Vec<Vec<u64>>, Vec<ObjStats>) {
    let mut r = thoth_stack::Rng::new(seed ^ 0x0b1ec7);
    let mut sim = Sim::new(seed);
    sim.set_default_link(Link {
        loss: r.unit() * 0.03,
        delay: Duration::from_micros(200),
        jitter: Duration::from_micros(400),
        reorder: 0.1,
        ..Link::default()
    });
    let fault_at = 100 + r.below(if chaos == Chaos::Crash { 1300 } else { 600 });
    // Long enough for the sides to suspect each other (a heartbeat's timeout and more).
    let heal_at = fault_at + 3000 + r.below(1500);
    // Members, stack, operations' chance per client and millisecond, until when, the end
    // (time for the sides to find each other and merge after the heal, then operations).
    let (n, spec, rate, ops_until, run_ms) = match chaos {
        // Operations go on for a second after the last crash instant: one that stalls the
        // group until the view change (a write waits for every replica, a read at the
        // primary for the updates before it) leaves time for more.
        Chaos::Crash => (3, "total", 0.3, 2500, 4000),
        Chaos::Partition => (5, "gms(primary=1):heartbeat:reliable_total", 0.02, heal_at + 6000, heal_at + 8000),
    };
    let nodes = group_of(&mut sim, n, spec, move |rpc| Replica::new(rpc, Log::default(), cfg));
    sim.run_for(Duration::from_millis(100));
    let victim = if cfg.strategy == Strategy::PrimaryBackup && r.chance(0.5) { 0 } else { r.below(3) as usize };
    // The minority side: two members at random.
    let mut minority = vec![r.below(5) as usize];
    minority.push((minority[0] + 1 + r.below(4) as usize) % 5);
    let sides: (Vec<NodeId>, Vec<NodeId>) = (0..nodes.len()).map(|i| nodes[i]).partition(|n| {
        let i = nodes.iter().position(|m| m == n).expect("a node");
        minority.contains(&i)
    });
    let mut history: History = Vec::new();
    // Per node: the op it waits for (its id and index in the history), events read so far.
    let mut waiting: Vec<Vec<(u64, usize)>> = vec![Vec::new(); nodes.len()];
    let mut read_upto = vec![0usize; nodes.len()];
    let mut next_x = 0u64;
    for ms in 0..run_ms {
        match chaos {
            Chaos::Crash if ms == fault_at => sim.crash(nodes[victim]),
            Chaos::Partition if ms == fault_at => sim.partition(&sides.0, &sides.1),
            Chaos::Partition if ms == heal_at => sim.heal(&sides.0, &sides.1),
            _ => {}
        }
        for (i, &n) in nodes.iter().enumerate() {
            if !sim.is_up(n) {
                continue;
            }
            let evs = &sim.events(n)[read_upto[i]..];
            read_upto[i] += evs.len();
            for e in evs {
                if let ObjEvent::Done { id, result } = &e.event
                    && let Some(k) = waiting[i].iter().position(|(w, _)| w == id)
                {
                    let (_, at) = waiting[i].swap_remove(k);
                    if let Ok(out) = result {
                        history[at].ret = Some(e.at.as_nanos());
                        history[at].output = Some(decode(out).expect("a log"));
                    }
                }
            }
            let primary = sim.endpoint(n).expect("up").rpc().endpoint().view().primary;
            if ms < ops_until && waiting[i].is_empty() && primary && r.chance(rate) {
                // A read, an append, or (one time in four) two to four appends handed over
                // together (a batch, under the strategies that make one).
                let n_ops = match r.below(4) {
                    0 => 0,
                    1 => 2 + r.below(3) as usize,
                    _ => 1,
                };
                let mut cmds = std::collections::VecDeque::new();
                for _ in 0..n_ops.max(1) {
                    let id = history.len() as u64;
                    let (input, cmd) = if n_ops == 0 {
                        (LogIn::Read, read(id))
                    } else {
                        next_x += 1;
                        (LogIn::Append(next_x), write(id, next_x))
                    };
                    history.push(Op { call: sim.now().as_nanos(), ret: None, input, output: None });
                    waiting[i].push((id, history.len() - 1));
                    cmds.push_back(cmd);
                }
                let taken = sim.with(n, |m, now| {
                    use thoth_stack::Machine;
                    let mut taken = 0;
                    while !cmds.is_empty() {
                        match m.handle_commands(now, &mut cmds) {
                            Ok(k) => taken += k,
                            Err(_) => break,
                        }
                    }
                    taken
                });
                // Those refused never went out (the history keeps them as never returned).
                let taken = taken.unwrap_or(0);
                waiting[i].truncate(taken);
            }
        }
        sim.run_for(Duration::from_millis(1));
    }
    let up: Vec<NodeId> = nodes.iter().copied().filter(|&n| sim.is_up(n)).collect();
    let logs = up.iter().map(|&n| log_of(&sim, n)).collect();
    (history, logs, up.iter().map(|&n| sim.endpoint(n).expect("up").obj_stats().clone()).collect())
}

/// `Active` and `PrimaryBackup` are linearizable under loss and a crash (every seed's
/// history has a linearization), and the surviving replicas agree.
#[test]
fn active_and_primary_backup_are_linearizable_under_faults() {
    for strategy in [Strategy::Active, Strategy::PrimaryBackup] {
        check_seeds("active_and_primary_backup_are_linearizable_under_faults", 0..12, |seed| {
            let (h, logs, _) = chaos_history(seed, ObjConfig::new(strategy), Chaos::Crash);
            linearizable(h, &logs).map_err(|e| format!("{strategy:?}: {e}"))
        });
    }
}

/// Under partitions, in primary-partition mode: only the side with the majority serves,
/// the other refuses; once the partition heals and the sides merge, every replica takes
/// the primary side's state (the minority's offer ranks below it) and the histories are
/// linearizable, for `Active` and `PrimaryBackup`.
#[test]
fn active_and_primary_backup_are_linearizable_across_partitions() {
    for strategy in [Strategy::Active, Strategy::PrimaryBackup] {
        check_seeds("active_and_primary_backup_are_linearizable_across_partitions", 0..8, |seed| {
            let (h, logs, stats) = chaos_history(seed, ObjConfig::new(strategy), Chaos::Partition);
            // The sides merged: every member offered its side's state, and the minority's
            // two took the primary side's.
            let offered: Vec<u64> = stats.iter().map(|s| s.offered).collect();
            let restored: u64 = stats.iter().map(|s| s.restored).sum();
            if offered.contains(&0) || restored < 2 {
                return Err(format!("{strategy:?}: no merge? offered {offered:?}, restored {restored}"));
            }
            if logs.len() != 5 {
                return Err(format!("{strategy:?}: {} replicas up after the merge", logs.len()));
            }
            linearizable(h, &logs).map_err(|e| format!("{strategy:?}: {e}"))
        });
    }
}

/// A chaos run's verdict: enough operations returned, the replicas up at the end agree,
/// and the history (`settled`) is linearizable.
fn linearizable(h: History, logs: &[Vec<u64>]) -> Result<(), String> {
    let returned = h.iter().filter(|o| o.ret.is_some()).count();
    if returned < 100 {
        return Err(format!("only {returned} operations returned"));
    }
    if logs.windows(2).any(|w| w[0] != w[1]) {
        return Err(format!("the replicas up at the end disagree: {logs:?}"));
    }
    linear::check(&LogModel, &settled(h, &logs[0]))
}

/// The history with what the final state settles taken out: an append that never returned
/// and is not in the final log (every replica's, at the end) never took effect, and a read
/// that never returned constrains nothing. What is left of the operations that never
/// returned took effect at some instant after their call. (A partition leaves many
/// appends unanswered; each kept would multiply the orders the search tries.)
fn settled(h: History, last: &[u64]) -> History {
    h.into_iter()
        .filter(|o| {
            o.ret.is_some()
                || match o.input {
                    LogIn::Append(x) => last.contains(&x),
                    LogIn::Read => false,
                }
        })
        .collect()
}

/// `Cached` promises less (its reads are local): a read gives a prefix of the one order
/// that holds every write completed before the read began, and a member's reads never go
/// back. Writes and reads of the other strategies' checks would not all hold here.
#[test]
fn cached_reads_are_prefixes_that_hold_every_completed_write() {
    check_seeds("cached_reads_are_prefixes_that_hold_every_completed_write", 0..12, |seed| {
        let (h, logs, _) = chaos_history(seed, ObjConfig::new(Strategy::Cached), Chaos::Crash);
        if logs.windows(2).any(|w| w[0] != w[1]) {
            return Err("the survivors disagree".into());
        }
        let order = logs.first().ok_or("no survivor")?;
        for (k, op) in h.iter().enumerate() {
            let (LogIn::Read, Some(seen), Some(_)) = (&op.input, &op.output, op.ret) else { continue };
            if !order.starts_with(seen) {
                return Err(format!("read {k} saw {seen:?}, not a prefix of the order"));
            }
            for w in &h {
                if let (LogIn::Append(x), Some(ret), Some(_)) = (&w.input, w.ret, &w.output)
                    && ret < op.call
                    && !seen.contains(x)
                {
                    return Err(format!("read {k} missed {x}, completed before it began"));
                }
            }
        }
        Ok(())
    });
}

/// The linearizability check catches a broken strategy by itself (the replicas' logs not
/// compared): `Active` writes sent in no order across callers.
#[test]
fn planted_unordered_writes_are_caught_by_the_linearizability_check() {
    let cfg = ObjConfig { test_fifo_writes: true, ..ObjConfig::new(Strategy::Active) };
    let caught = (0..12).find(|&seed| linear::check(&LogModel, &chaos_history(seed, cfg, Chaos::Crash).0).is_err());
    assert!(caught.is_some(), "no seed of twelve caught writes in no order");
}
