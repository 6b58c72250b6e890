//! Group RPC in the simulator: members of one group, each an `Rpc` over a named stack, whose
//! applications answer requests as each test says (at once, later, or never).
//!
//! Checked: every response mode over the reliable stack, and a call to one member; each
//! member runs each call once; a call ends at its timeout with what it has; a member that
//! fails mid-call is a fault as soon as the view excludes it, and one that answers only
//! after the view change is asked again and runs the call once; requests duplicated on the
//! wire run once and are answered from the cache; hostile payloads are dropped and counted;
//! per-call order on one stack (`abcast` calls run in one order everywhere, `ubcast` ones
//! are not held for it, an order the stack does not give is refused).

use std::collections::BTreeMap;
use thoth_grpc::wire::{self, Hdr, Status};
use thoth_grpc::{
    Bounds, CallId, Caller, Fault, Mode, Order, Outcome, Request, Rpc, RpcCmd, RpcConfig, RpcError, RpcEvent, Target,
};
use thoth_stack::frame::{FRAME_LEN, Frame};
use thoth_stack::sim::{CmdError, Link, NodeId, Sim};
use thoth_stack::{Bytes, Config, Duration, Endpoint, EndpointId, GroupId, Msg, Time, ViewId};

const G: GroupId = GroupId(42);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// `n` members of a fixed group over the stack `spec`.
fn world(seed: u64, n: u64, spec: &'static str) -> (Sim<Rpc>, Vec<NodeId>) {
    let mut sim = Sim::new(seed);
    let ids: Vec<EndpointId> = (1..=n).map(EndpointId).collect();
    let nodes = ids
        .iter()
        .map(|&me| {
            let ids = ids.clone();
            sim.add_node(move |spawn| {
                let cfg = Config { seed: spawn.seed, ..Config::new(G, me, ids.clone()) };
                let ep = Endpoint::from_spec(cfg, &thoth::registry(), spec).expect("the stack builds");
                Rpc::new(ep, RpcConfig { nonce: spawn.seed | 1, cache: Bounds::default() })
            })
        })
        .collect();
    (sim, nodes)
}

/// What a member's application does with a request.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// Answers `method:args@member` at once.
    Now,
    /// Keeps it; `Servers::answer_held` answers later.
    Hold,
}

/// The applications: they take each node's new events and answer requests.
struct Servers {
    answer: Vec<Answer>,
    seen: Vec<usize>,
    /// (node, caller, call) -> times the request reached the application.
    runs: BTreeMap<(usize, EndpointId, CallId), u32>,
    /// Per node, the requests in the order they reached its application.
    log: Vec<Vec<(EndpointId, CallId)>>,
    held: Vec<(usize, Caller, u64, Bytes)>,
}

impl Servers {
    fn new(answer: Vec<Answer>) -> Servers {
        let n = answer.len();
        Servers { answer, seen: vec![0; n], runs: BTreeMap::new(), log: vec![Vec::new(); n], held: Vec::new() }
    }

    /// Takes every node's new events, answering requests by policy.
    fn serve(&mut self, sim: &mut Sim<Rpc>, nodes: &[NodeId]) {
        for (i, &n) in nodes.iter().enumerate() {
            let evs: Vec<RpcEvent> = sim.events(n)[self.seen[i]..].iter().map(|e| e.event.clone()).collect();
            self.seen[i] += evs.len();
            for ev in evs {
                if let RpcEvent::Request { caller, method, args, reply } = ev {
                    *self.runs.entry((i, caller.member, caller.call)).or_default() += 1;
                    self.log[i].push((caller.member, caller.call));
                    if !reply {
                        continue;
                    }
                    match self.answer[i] {
                        Answer::Now => {
                            let r = Bytes::from(format!("{method}:{}@{i}", String::from_utf8_lossy(&args)));
                            let _ = sim.command(n, RpcCmd::Reply { to: caller, result: Ok(r) });
                        }
                        Answer::Hold => self.held.push((i, caller, method, args)),
                    }
                }
            }
        }
    }

    /// Runs the simulation for `d`, serving after every step.
    fn run(&mut self, sim: &mut Sim<Rpc>, nodes: &[NodeId], d: Duration) {
        let until = sim.now() + d;
        self.serve(sim, nodes);
        while sim.now() < until {
            if !sim.step() {
                break;
            }
            self.serve(sim, nodes);
        }
    }

    /// Answers what node `i` held.
    fn answer_held(&mut self, sim: &mut Sim<Rpc>, nodes: &[NodeId], i: usize) {
        for (j, caller, method, args) in std::mem::take(&mut self.held) {
            if j != i {
                self.held.push((j, caller, method, args));
                continue;
            }
            let r = Bytes::from(format!("{method}:{}@{i}", String::from_utf8_lossy(&args)));
            sim.command(nodes[i], RpcCmd::Reply { to: caller, result: Ok(r) }).expect("a held request is running");
        }
    }

    fn runs(&self, node: usize, caller: EndpointId, call: CallId) -> u32 {
        self.runs.get(&(node, caller, call)).copied().unwrap_or(0)
    }
}

fn call(id: CallId, target: Target, mode: Mode, timeout: Duration) -> RpcCmd {
    let req = Request {
        target,
        method: 7,
        args: Bytes::from(format!("a{id}")),
        mode,
        timeout,
        filter: None,
        order: Order::Stack,
    };
    RpcCmd::Call { id, req }
}

/// A group call in `order`, waiting for every member.
fn ordered(id: CallId, order: Order) -> RpcCmd {
    RpcCmd::Call { id, req: Request::group(7, format!("a{id}")).order(order).timeout(Duration::from_secs(10)) }
}

/// Call `id`'s outcome at `n`, and when it ended.
fn done(sim: &Sim<Rpc>, n: NodeId, id: CallId) -> Option<(Time, Outcome)> {
    sim.events(n).iter().find_map(|e| match &e.event {
        RpcEvent::Done { id: i, outcome } if *i == id => Some((e.at, outcome.clone())),
        _ => None,
    })
}

fn value(id: CallId, member: usize) -> Option<Result<Bytes, Fault>> {
    Some(Ok(Bytes::from(format!("7:a{id}@{member}"))))
}

#[test]
fn every_mode_ends_as_it_should_and_each_member_runs_each_call_once() {
    let (mut sim, nodes) = world(1, 3, "reliable");
    let mut apps = Servers::new(vec![Answer::Now; 3]);
    let me = sim.id(nodes[0]);
    let long = Duration::from_secs(10);
    for (id, mode) in [(1, Mode::All), (2, Mode::First), (3, Mode::Majority), (4, Mode::None)] {
        sim.command(nodes[0], call(id, Target::Group, mode, long)).expect("call");
    }
    sim.command(nodes[0], call(5, Target::Member(sim.id(nodes[2])), Mode::All, long)).expect("call");
    apps.run(&mut sim, &nodes, ms(200));

    let all = done(&sim, nodes[0], 1).expect("call 1 ended").1;
    assert_eq!(all.answers, (0..3).map(|i| (EndpointId(i as u64 + 1), value(1, i))).collect::<Vec<_>>());
    assert!(!all.timed_out);
    let first = done(&sim, nodes[0], 2).expect("call 2 ended").1;
    assert!(first.values().count() >= 1);
    let majority = done(&sim, nodes[0], 3).expect("call 3 ended").1;
    assert!(majority.values().count() >= 2);
    let none = done(&sim, nodes[0], 4).expect("call 4 ended").1;
    assert!(none.answers.is_empty() && !none.timed_out);
    let member = done(&sim, nodes[0], 5).expect("call 5 ended").1;
    assert_eq!(member.answers, vec![(EndpointId(3), value(5, 2))]);
    for i in 0..3 {
        for id in 1..=4 {
            assert_eq!(apps.runs(i, me, id), 1, "member {i} ran call {id} once");
        }
        assert_eq!(apps.runs(i, me, 5), (i == 2) as u32);
    }
    let s = sim.endpoint(nodes[0]).expect("up").rpc_stats().clone();
    assert_eq!((s.calls, s.done, s.timed_out, s.bad), (5, 5, 0, 0));
    // The caller refuses a second call under a pending id, and a call to a stranger.
    sim.command(nodes[0], call(9, Target::Group, Mode::All, long)).expect("call");
    assert!(sim.command(nodes[0], call(9, Target::Group, Mode::All, long)).is_err());
    assert!(sim.command(nodes[0], call(10, Target::Member(EndpointId(99)), Mode::All, long)).is_err());
}

#[test]
fn a_call_ends_at_its_timeout_with_what_it_has() {
    let (mut sim, nodes) = world(2, 3, "reliable");
    let mut apps = Servers::new(vec![Answer::Now, Answer::Now, Answer::Hold]);
    let t0 = sim.now();
    sim.command(nodes[0], call(1, Target::Group, Mode::All, ms(50))).expect("call");
    sim.command(nodes[0], call(2, Target::Group, Mode::First, ms(50))).expect("call");
    apps.run(&mut sim, &nodes, ms(200));
    let (at, all) = done(&sim, nodes[0], 1).expect("call 1 ended");
    assert!(all.timed_out);
    assert_eq!(at, t0 + ms(50), "at its timeout, not later");
    assert_eq!(all.answers[2], (EndpointId(3), None));
    assert_eq!(all.values().count(), 2);
    let (at, first) = done(&sim, nodes[0], 2).expect("call 2 ended");
    assert!(!first.timed_out && at < t0 + ms(50));
    // Answers after their call ended are strays, counted: call 2's second good answer, and
    // the two held requests answered now.
    apps.answer_held(&mut sim, &nodes, 2);
    apps.run(&mut sim, &nodes, ms(200));
    assert_eq!(sim.endpoint(nodes[0]).expect("up").rpc_stats().stray_replies, 3);
}

#[test]
fn a_member_failing_mid_call_is_a_fault_and_one_answering_late_runs_once() {
    let (mut sim, nodes) = world(3, 4, "group");
    let mut apps = Servers::new(vec![Answer::Now, Answer::Hold, Answer::Now, Answer::Hold]);
    let me = sim.id(nodes[0]);
    apps.run(&mut sim, &nodes, ms(100));
    let t0 = sim.now();
    let timeout = Duration::from_secs(30);
    sim.command(nodes[0], call(1, Target::Group, Mode::All, timeout)).expect("call");
    apps.run(&mut sim, &nodes, ms(20));
    assert_eq!((apps.runs(1, me, 1), apps.runs(3, me, 1)), (1, 1), "members 1 and 3 hold the request");
    // Member 3 fails before it answers; member 1 answers only after the view without 3.
    sim.crash(nodes[3]);
    let mut excluded = None;
    while excluded.is_none() && sim.now() < t0 + Duration::from_secs(20) {
        apps.run(&mut sim, &nodes, ms(10));
        excluded = sim.events(nodes[0]).iter().find_map(|e| match &e.event {
            RpcEvent::Endpoint(thoth_stack::Event::View(v)) if v.members.len() == 3 => Some(e.at),
            _ => None,
        });
    }
    let excluded = excluded.expect("a view without the failed member");
    assert!(done(&sim, nodes[0], 1).is_none(), "member 1 has not answered yet");
    apps.run(&mut sim, &nodes, ms(50));
    let s = sim.endpoint(nodes[0]).expect("up").rpc_stats().clone();
    assert!(s.asked_again >= 1, "member 1 is asked again in the new view: {s:?}");
    apps.answer_held(&mut sim, &nodes, 1);
    apps.run(&mut sim, &nodes, ms(200));
    let (at, out) = done(&sim, nodes[0], 1).expect("call 1 ended");
    assert!(!out.timed_out && at >= excluded && at < t0 + timeout);
    assert_eq!(out.answers[3], (EndpointId(4), Some(Err(Fault::Left))));
    assert_eq!(out.values().count(), 3);
    assert_eq!(apps.runs(1, me, 1), 1, "asked again, member 1 ran the call once");
    assert!(sim.endpoint(nodes[1]).expect("up").rpc_stats().duplicates >= 1);
}

/// The request datagram of a group call, overheard on the bare stack.
fn request_datagram(sim: &mut Sim<Rpc>) -> Bytes {
    sim.overheard()
        .into_iter()
        .find(|d| {
            let m = Msg::from_frame(d.slice(FRAME_LEN..)).expect("a message");
            matches!(wire::split(&m.into_payload()), Ok((Hdr::Request { .. }, _)))
        })
        .expect("the request went out")
}

#[test]
fn requests_duplicated_on_the_wire_run_once() {
    // The bare stack delivers every copy: the cache is all that stands between a duplicate
    // and a second run.
    let (mut sim, nodes) = world(4, 3, "bare");
    let mut apps = Servers::new(vec![Answer::Now; 3]);
    let me = sim.id(nodes[0]);
    sim.tap(16);
    sim.command(nodes[0], call(1, Target::Group, Mode::All, Duration::from_secs(1))).expect("call");
    apps.run(&mut sim, &nodes, ms(50));
    assert!(done(&sim, nodes[0], 1).is_some());
    let dup = request_datagram(&mut sim);
    for _ in 0..3 {
        sim.inject(nodes[1], dup.clone());
    }
    apps.run(&mut sim, &nodes, ms(50));
    assert_eq!(apps.runs(1, me, 1), 1, "run once");
    assert_eq!(sim.endpoint(nodes[1]).expect("up").rpc_stats().duplicates, 3);
    // Answered from the cache each time: the caller, done, counts them as strays.
    assert_eq!(sim.endpoint(nodes[0]).expect("up").rpc_stats().stray_replies, 3);
}

/// A frame for the bare stack's group from `src`, carrying `payload`.
fn forged(src: EndpointId, view: ViewId, unicast: bool, payload: &[u8]) -> Bytes {
    let (head, body) = Msg::new(Bytes::copy_from_slice(payload)).into_parts();
    let rest = [&head[..], &body[..]].concat();
    let flags = if unicast { thoth_stack::frame::FLAG_SEND } else { 0 };
    Bytes::from(Frame { flags, group: G, view, src }.datagram(&rest))
}

#[test]
fn hostile_payloads_are_dropped_and_counted() {
    let (mut sim, nodes) = world(5, 3, "bare");
    let mut apps = Servers::new(vec![Answer::Now; 3]);
    let view = sim.endpoint(nodes[0]).expect("up").endpoint().view().id;
    let (a, b) = (sim.id(nodes[1]), sim.id(nodes[2]));
    sim.command(nodes[0], call(1, Target::Member(a), Mode::All, Duration::from_secs(1))).expect("call");
    // Before member 1's answer: garbage, a reply from a member not asked, one to a call that
    // is not pending, and one for another incarnation of the caller.
    let nonce = sim.endpoint(nodes[0]).expect("up").nonce();
    let reply = |id, n| wire::join(&Hdr::Reply { nonce: n, id, status: Status::Ok }, b"forged");
    for (src, payload) in
        [(a, Bytes::from_static(&[0xff, 1, 2])), (b, reply(1, nonce)), (a, reply(77, nonce)), (a, reply(1, nonce ^ 1))]
    {
        sim.inject(nodes[0], forged(src, view, true, &payload));
    }
    apps.run(&mut sim, &nodes, ms(50));
    let s = sim.endpoint(nodes[0]).expect("up").rpc_stats().clone();
    assert_eq!((s.bad, s.stray_replies), (1, 3), "{s:?}");
    let out = done(&sim, nodes[0], 1).expect("call 1 ended").1;
    assert_eq!(out.answers, vec![(a, value(1, 1))], "only member 1's real answer counts");
    assert!(sim.events(nodes[0]).iter().all(|e| !matches!(e.event, RpcEvent::Request { .. })), "nobody asked it");
}

/// Per-call order on one stack (`reliable_total`, over links that jitter and reorder, so that
/// requests reach the members in different orders): three members each make 20 calls at
/// once, every other one `abcast` and the rest `ubcast`. Every member runs every call once;
/// the `abcast` calls in one order at every member; the `ubcast` calls are not held for
/// the order: the sequencer passes each up as it arrives (counted `fifo`) and decides only
/// the others. `cbcast` is given by a total stack and by a causal one; an order the stack
/// does not give is refused.
#[test]
fn per_call_order_on_one_stack() {
    let (mut sim, nodes) = world(5, 3, "reliable_total");
    let jitter =
        Link { delay: Duration::from_micros(200), jitter: Duration::from_micros(400), reorder: 0.2, ..Link::default() };
    for &a in &nodes {
        for &b in &nodes {
            sim.set_link(a, b, jitter);
        }
    }
    let mut apps = Servers::new(vec![Answer::Now; 3]);
    let is_ab = |id: CallId| id.is_multiple_of(2);
    for k in 0..20 {
        for (i, &n) in nodes.iter().enumerate() {
            let id = i as CallId * 100 + k;
            let order = if is_ab(id) { Order::Abcast } else { Order::Ubcast };
            sim.command(n, ordered(id, order)).expect("call");
        }
    }
    apps.run(&mut sim, &nodes, ms(2000));
    for (i, &n) in nodes.iter().enumerate() {
        for k in 0..20 {
            let id = i as CallId * 100 + k;
            let out = done(&sim, n, id).unwrap_or_else(|| panic!("call {id} of member {i} ended")).1;
            assert_eq!(out.values().count(), 3, "call {id}: {out:?}");
        }
    }
    let ab: Vec<Vec<(EndpointId, CallId)>> =
        apps.log.iter().map(|l| l.iter().copied().filter(|&(_, id)| is_ab(id)).collect()).collect();
    for (i, log) in apps.log.iter().enumerate() {
        assert_eq!(log.len(), 60, "member {i} ran every call once");
        assert_eq!(ab[i], ab[0], "member {i} ran the abcast calls in member 0's order");
    }
    let orders: Vec<_> = apps.log.iter().map(|l| l.iter().map(|&(c, id)| (c.0, id)).collect::<Vec<_>>()).collect();
    assert!(orders.windows(2).any(|w| w[0] != w[1]), "the links reordered nothing: the test shows nothing");
    for &n in &nodes {
        let dump = sim.endpoint(n).expect("up").endpoint().dump();
        let seq = dump.iter().find(|d| d.layer == "sequencer").expect("a sequencer");
        assert_eq!(seq.counter("fifo"), Some(30), "every ubcast request passed as it came");
        assert_eq!(seq.counter("decided").map(|d| d > 0), Some(n == nodes[0]), "rank 0 decides");
    }
    // What each stack gives.
    for (spec, refused) in [
        ("reliable", &[Order::Cbcast, Order::Abcast][..]),
        ("reliable_causal", &[Order::Abcast][..]),
        ("reliable_total", &[][..]),
    ] {
        let (mut sim, nodes) = world(6, 2, spec);
        for (id, order) in [Order::Stack, Order::Ubcast, Order::Cbcast, Order::Abcast].into_iter().enumerate() {
            let r = sim.command(nodes[0], ordered(id as CallId, order));
            match r {
                Err(CmdError::Refused(RpcError::Unordered(o))) => assert!(refused.contains(&o) && o == order, "{spec}"),
                Ok(()) => assert!(!refused.contains(&order), "{spec} does not give {order:?}"),
                Err(e) => panic!("{spec}: {e:?}"),
            }
        }
    }
}
