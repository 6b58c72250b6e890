//! Many groups behind one `Groups` machine per process, in the simulator: a thousand groups
//! of three members, each with its own view and deliveries; the periodic datagrams of idle
//! groups leaving in bundles; groups added and removed; hostile bundles; fan-out. Every run
//! is deterministic (same seed, same trace).

use std::collections::BTreeMap;
use thoth_stack::bundle::{Builder, HEAD};
use thoth_stack::frame::{FRAME_LEN, Frame, seal};
use thoth_stack::groups::{GroupCmd, GroupEvent, Groups, GroupsConfig};
use thoth_stack::sim::{CmdError, Link, NodeId, Sim};
use thoth_stack::{
    Bytes, CastError, Cmd, Config, Cx, Dn, Dump, Duration, Endpoint, EndpointId, Event, GroupId, Layer, Machine, Msg,
    Time, Up, View,
};

const MS: Duration = Duration::from_millis(1);

/// Casts a small unreliable "beat" every `period` and swallows the others' beats: the
/// traffic of an idle group (a heartbeat), without the failure detector's crate.
struct Beat {
    period: Duration,
    next: Option<Time>,
    heard: u64,
}

impl Layer for Beat {
    fn name(&self) -> &'static str {
        "beat"
    }
    fn init(&mut self, cx: &mut Cx<'_>) {
        self.next = Some(cx.now + self.period);
    }
    fn handle_dn(&mut self, ev: Dn, cx: &mut Cx<'_>) {
        cx.dn(ev)
    }
    fn handle_up(&mut self, ev: Up, cx: &mut Cx<'_>) {
        match ev {
            Up::Cast { msg, .. } if &msg.body()[..] == b"beat" => self.heard += 1,
            ev => cx.up(ev),
        }
    }
    fn poll_timeout(&self) -> Option<Time> {
        self.next
    }
    fn handle_timeout(&mut self, cx: &mut Cx<'_>) {
        cx.dn(Dn::CastUnrel(Msg::new(Bytes::from_static(b"beat"))));
        self.next = Some(cx.now + self.period);
    }
    fn dump(&self, out: &mut Vec<Dump>) {
        out.push(Dump { layer: "beat", counters: vec![("heard", self.heard)], ..Dump::default() });
    }
}

fn group_id(k: u64) -> GroupId {
    GroupId(1000 + k)
}

/// Three nodes, each a `Groups` machine holding `groups` groups of all three (ids 1..=3),
/// each group's stack a `Beat` every `period`.
fn world(
    seed: u64,
    groups: u64,
    period: Duration,
    cfg: impl Fn(EndpointId) -> GroupsConfig,
) -> (Sim<Groups<Endpoint<Beat>>>, Vec<NodeId>) {
    let mut sim: Sim<Groups<Endpoint<Beat>>> = Sim::new(seed);
    sim.set_default_link(Link { delay: 100 * Duration::from_micros(1), ..Link::default() });
    let ids: Vec<EndpointId> = (1..=3).map(EndpointId).collect();
    let nodes = ids
        .iter()
        .map(|&me| {
            let (ids, cfg) = (ids.clone(), cfg(me));
            sim.add_node(move |spawn| {
                let mut g = Groups::new(cfg.clone());
                for k in 0..groups {
                    let c = Config { seed: spawn.seed ^ k, ..Config::new(group_id(k), me, ids.clone()) };
                    let beat = move |_: &View| Beat { period, next: None, heard: 0 };
                    g.add(Endpoint::new(c, beat).expect("a member")).expect("a new group");
                }
                g
            })
        })
        .collect();
    (sim, nodes)
}

/// The casts each node delivered, by group, in order.
fn casts_by_group(sim: &Sim<Groups<Endpoint<Beat>>>, n: NodeId) -> BTreeMap<GroupId, Vec<(EndpointId, Bytes)>> {
    let mut out: BTreeMap<GroupId, Vec<(EndpointId, Bytes)>> = BTreeMap::new();
    for e in sim.events(n) {
        if let GroupEvent { group, event: Event::Cast { from, data } } = &e.event {
            out.entry(*group).or_default().push((*from, data.clone()));
        }
    }
    out
}

#[test]
fn a_thousand_groups_deliver_each_its_own_and_idle_ones_share_datagrams() {
    const GROUPS: u64 = 1000;
    let run = |seed| {
        let (mut sim, nodes) = world(seed, GROUPS, 100 * MS, GroupsConfig::new);
        // Every group has its own first view, announced with its group.
        for &n in &nodes {
            let views = sim.events(n).iter().filter(|e| matches!(e.event.event, Event::View(_))).count();
            assert_eq!(views as u64, GROUPS, "one view per group at node {n}");
        }
        // Member k % 3 of group k casts into it, twice.
        for k in 0..GROUPS {
            let n = nodes[(k % 3) as usize];
            for i in 0..2u8 {
                sim.command(n, GroupCmd::To(group_id(k), Cmd::Cast(Bytes::from(vec![k as u8, i])))).unwrap();
            }
        }
        sim.run_for(10 * MS);
        for &n in &nodes {
            let got = casts_by_group(&sim, n);
            assert_eq!(got.len() as u64, GROUPS, "every group delivered at node {n}");
            for (g, casts) in &got {
                let k = g.0 - 1000;
                let from = EndpointId(k % 3 + 1);
                let want = vec![(from, Bytes::from(vec![k as u8, 0])), (from, Bytes::from(vec![k as u8, 1]))];
                assert_eq!(casts, &want, "group {k} at node {n}: its own casts, in order, nothing else");
            }
        }
        // One idle second: 3 members x 1000 groups x 10 beats, in bundles.
        let before = sim.net_stats().transmits;
        sim.run_for(Duration::from_secs(1));
        let transmits = sim.net_stats().transmits - before;
        let beats: u64 = nodes.iter().map(|&n| sim.stats(n).tx_datagrams).sum();
        let bundled: u64 = nodes.iter().map(|&n| sim.stats(n).tx_bundled).sum();
        assert!(beats >= 3 * GROUPS * 10, "{beats} beats");
        assert!(bundled * 10 >= beats * 9, "most beats travel in bundles: {bundled} of {beats}");
        assert!(transmits * 20 <= beats, "{transmits} datagrams for {beats} beats");
        let heard: u64 = nodes.iter().map(|&n| sim.stats(n).rx_bundles).sum();
        assert!(heard > 0 && nodes.iter().all(|&n| sim.stats(n).rx_bad_bundle == 0));
        // Each member heard the others' beats in every group.
        let e = sim.endpoint(nodes[0]).unwrap().member(group_id(7)).unwrap();
        let heard_beats = e.dump()[0].counter("heard").unwrap();
        assert!(heard_beats >= 2 * 10, "group 7 at node 0 heard {heard_beats} beats");
        println!("1000 idle groups x 3, 1 s: {beats} beats in {transmits} datagrams ({bundled} bundled)");
        sim.trace_hash()
    };
    assert_eq!(run(3), run(3), "same seed, same run");
}

#[test]
fn groups_come_and_go() {
    let (mut sim, nodes) = world(1, 2, 100 * MS, GroupsConfig::new);
    let a = nodes[0];
    assert_eq!(
        sim.command(a, GroupCmd::To(group_id(9), Cmd::Cast(Bytes::new()))),
        Err(CmdError::Refused(CastError::UnknownGroup))
    );
    // A group added at run time, at every member.
    let ids: Vec<EndpointId> = (1..=3).map(EndpointId).collect();
    for (&n, &me) in nodes.iter().zip(&ids) {
        let ep = Endpoint::new(Config::new(group_id(9), me, ids.clone()), |_: &View| Beat {
            period: 100 * MS,
            next: None,
            heard: 0,
        })
        .unwrap();
        sim.command(n, GroupCmd::Add(Box::new(ep))).unwrap();
    }
    let dup = Endpoint::new(Config::new(group_id(9), ids[0], ids.clone()), |_: &View| Beat {
        period: 100 * MS,
        next: None,
        heard: 0,
    })
    .unwrap();
    assert_eq!(sim.command(a, GroupCmd::Add(Box::new(dup))), Err(CmdError::Refused(CastError::GroupExists)));
    sim.command(a, GroupCmd::To(group_id(9), Cmd::Cast(Bytes::from_static(b"new")))).unwrap();
    sim.run_for(5 * MS);
    assert_eq!(casts_by_group(&sim, nodes[2])[&group_id(9)], vec![(ids[0], Bytes::from_static(b"new"))]);
    // Removed at one member: its datagrams for the group are foreign there from now on.
    sim.command(nodes[2], GroupCmd::Remove(group_id(9))).unwrap();
    assert_eq!(sim.endpoint(nodes[2]).unwrap().len(), 2);
    let foreign = sim.stats(nodes[2]).rx_foreign_group;
    sim.command(a, GroupCmd::To(group_id(9), Cmd::Cast(Bytes::from_static(b"gone")))).unwrap();
    sim.run_for(5 * MS);
    assert!(sim.stats(nodes[2]).rx_foreign_group > foreign, "a datagram of a removed group is foreign");
    // A leave ends the group at that member once its endpoint exits.
    sim.command(nodes[1], GroupCmd::To(group_id(0), Cmd::Leave)).unwrap();
    sim.run_for(5 * MS);
    assert!(sim.endpoint(nodes[1]).unwrap().member(group_id(0)).is_none());
    assert!(sim.events(nodes[1]).iter().any(|e| e.event == GroupEvent { group: group_id(0), event: Event::Exit }));
}

/// A framed datagram of group `g` from `src` in the first view of 1..=3.
fn datagram(g: GroupId, src: EndpointId, payload: &[u8]) -> Vec<u8> {
    let view = View::initial((1..=3).map(EndpointId).collect());
    let body = [&[1u8][..], payload].concat(); // presence bits 1: no layer header
    let mut head = [0u8; FRAME_LEN];
    Frame { flags: 0, group: g, view: view.id, src }.write(&mut head);
    seal(&mut head, &body);
    [&head[..], &body].concat()
}

#[test]
fn hostile_bundles_are_counted_and_dropped_whole() {
    let (mut sim, nodes) = world(2, 3, Duration::from_secs(3600), GroupsConfig::new);
    let a = nodes[0];
    let good = datagram(group_id(1), EndpointId(2), b"from 2");
    let foreign = datagram(GroupId(77), EndpointId(2), b"elsewhere");
    let bundle = |parts: &[&[u8]]| {
        let mut b = Builder::new(65_000);
        for p in parts {
            b.push(p, &[]);
        }
        b.finish()
    };
    // A well-formed bundle: the good part is delivered, the foreign one counted.
    sim.inject(a, bundle(&[&good, &foreign]));
    // Malformed: a length past the end, and a bundle with a trailing byte: dropped whole.
    let mut past = bundle(&[&good]).to_vec();
    past[HEAD] = 0xff;
    past[HEAD + 1] = 0xff;
    sim.inject(a, Bytes::from(past));
    let mut trailing = bundle(&[&good]).to_vec();
    trailing.push(0);
    sim.inject(a, Bytes::from(trailing));
    // A part whose CRC fails is its group's to reject.
    let mut corrupt = good.clone();
    *corrupt.last_mut().unwrap() ^= 1;
    sim.inject(a, bundle(&[&corrupt]));
    let s = sim.stats(a);
    assert_eq!((s.rx_bundles, s.rx_bad_bundle, s.rx_foreign_group, s.rx_bad_crc), (2, 2, 1, 1), "{s:?}");
    let got = casts_by_group(&sim, a);
    assert_eq!(got.get(&group_id(1)), Some(&vec![(EndpointId(2), Bytes::from_static(b"from 2"))]));
    assert_eq!(got.len(), 1, "nothing else delivered");
}

#[test]
fn fan_out_sends_each_cast_to_its_groups_members() {
    let cfg = |me| GroupsConfig { fanout: true, ..GroupsConfig::new(me) };
    let (mut sim, nodes) = world(4, 20, Duration::from_secs(3600), cfg);
    for k in 0..20 {
        sim.command(nodes[0], GroupCmd::To(group_id(k), Cmd::Cast(Bytes::from(vec![k as u8])))).unwrap();
    }
    sim.run_for(5 * MS);
    for &n in &nodes {
        assert_eq!(casts_by_group(&sim, n).len(), 20, "node {n}");
    }
    // Twenty casts, each to the two others, in one turn: one bundle per destination.
    let s = sim.stats(nodes[0]);
    assert_eq!((s.tx_datagrams, s.tx_bundles, s.tx_bundled), (20, 2, 40), "{s:?}");
}

// ---------------------------------------------------------------------------------------
// Over real sockets: three processes' worth of members on loopback multicast, each a
// `Groups` machine of fifty groups, run by a driver thread or inline.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;
use thoth_stack::testing::random_u64;
use thoth_stack::udp::{self, Sockets, UdpConfig};

const UDP_GROUPS: u64 = 50;

/// A member's sockets and its machine, not yet driven.
type UdpMember = (Sockets, Groups<Endpoint<Beat>>);

/// Opens three members' sockets on a fresh multicast group; their `Groups` machines, each
/// holding `UDP_GROUPS` groups of all three (group ids drawn fresh), and their addresses.
fn udp_members(fanout: bool) -> (Vec<UdpMember>, Vec<SocketAddr>, u64) {
    let r = random_u64();
    let ip = Ipv4Addr::new(239, 128 + (r % 100) as u8, (r >> 8) as u8, 1 + ((r >> 16) % 254) as u8);
    let cfg = UdpConfig {
        group: SocketAddr::new(IpAddr::V4(ip), 20_000 + ((r >> 24) % 40_000) as u16),
        fanout,
        ..UdpConfig::default()
    };
    let socks: Vec<Sockets> = (0..3).map(|_| Sockets::open(&cfg).expect("open")).collect();
    let ids: Vec<EndpointId> = socks.iter().map(|s| s.id()).collect();
    let addrs = socks.iter().map(|s| s.local_addr()).collect();
    let base = random_u64() >> 16;
    let members = socks
        .into_iter()
        .map(|s| {
            let mut g = Groups::new(GroupsConfig { fanout, ..GroupsConfig::new(s.id()) });
            for k in 0..UDP_GROUPS {
                let c = Config::new(GroupId(base + k), s.id(), ids.clone());
                let beat = |_: &View| Beat { period: 50 * MS, next: None, heard: 0 };
                g.add(Endpoint::new(c, beat).unwrap()).unwrap();
            }
            (s, g)
        })
        .collect();
    (members, addrs, base)
}

/// What member `i` casts: three casts into each group `k` with `k % 3 == i`.
fn udp_casts(i: usize, base: u64) -> Vec<GroupCmd<Endpoint<Beat>>> {
    (0..UDP_GROUPS)
        .filter(|k| k % 3 == i as u64)
        .flat_map(|k| (0..3u8).map(move |j| GroupCmd::To(GroupId(base + k), Cmd::Cast(Bytes::from(vec![k as u8, j])))))
        .collect()
}

/// Checks one member's events: every group's casts from its caster, in order, exactly.
fn check_udp(me: usize, evs: &[GroupEvent], ids: &[EndpointId], base: u64) {
    let mut got: BTreeMap<GroupId, Vec<(EndpointId, Bytes)>> = BTreeMap::new();
    for e in evs {
        if let Event::Cast { from, data } = &e.event {
            got.entry(e.group).or_default().push((*from, data.clone()));
        }
    }
    assert_eq!(got.len() as u64, UDP_GROUPS, "member {me}: every group delivered");
    for (g, casts) in got {
        let k = g.0 - base;
        let from = ids[(k % 3) as usize];
        let want: Vec<_> = (0..3u8).map(|j| (from, Bytes::from(vec![k as u8, j]))).collect();
        assert_eq!(casts, want, "member {me}, group {k}");
    }
}

fn casts_in(evs: &[GroupEvent]) -> u64 {
    evs.iter().filter(|e| matches!(e.event, Event::Cast { .. })).count() as u64
}

#[test]
fn groups_over_udp_with_a_driver_thread() {
    for fanout in [false, true] {
        let (members, addrs, base) = udp_members(fanout);
        let ids: Vec<EndpointId> = addrs.iter().map(|&a| udp::endpoint_id(a)).collect();
        let handles: Vec<_> = members.into_iter().map(|(s, g)| udp::spawn(s, g, &addrs).expect("spawn")).collect();
        for (i, h) in handles.iter().enumerate() {
            for c in udp_casts(i, base) {
                h.command(c).unwrap();
            }
        }
        for (i, h) in handles.iter().enumerate() {
            let deadline = Instant::now() + std::time::Duration::from_secs(10);
            let mut evs = Vec::new();
            while casts_in(&evs) < 3 * UDP_GROUPS && Instant::now() < deadline {
                h.recv_many(&mut evs, std::time::Duration::from_millis(20));
            }
            check_udp(i, &evs, &ids, base);
        }
        for h in handles {
            let s = h.shutdown();
            assert_eq!((s.endpoint.rx_bad_bundle, s.endpoint.rx_foreign_group), (0, 0), "fanout {fanout}: {s:?}");
            assert!(s.endpoint.tx_bundles > 0, "fanout {fanout}: casts and beats went in bundles: {s:?}");
        }
    }
}

#[test]
fn groups_over_udp_inline() {
    let (members, addrs, base) = udp_members(false);
    let ids: Vec<EndpointId> = addrs.iter().map(|&a| udp::endpoint_id(a)).collect();
    std::thread::scope(|s| {
        let runs: Vec<_> = members
            .into_iter()
            .enumerate()
            .map(|(i, (socks, g))| {
                let (addrs, ids) = (addrs.clone(), ids.clone());
                s.spawn(move || {
                    let mut m = udp::inline(socks, g, &addrs).expect("inline");
                    let mut batch: std::collections::VecDeque<_> = udp_casts(i, base).into();
                    while !batch.is_empty() {
                        m.command_batch(&mut batch).unwrap();
                    }
                    let deadline = Instant::now() + std::time::Duration::from_secs(10);
                    let mut evs = Vec::new();
                    while casts_in(&evs) < 3 * UDP_GROUPS && Instant::now() < deadline {
                        m.recv_many(&mut evs, std::time::Duration::from_millis(20));
                    }
                    // Keep answering the others until they are done too (an inline member
                    // works only while called).
                    m.poll(std::time::Duration::from_millis(300));
                    check_udp(i, &evs, &ids, base);
                    m.shutdown()
                })
            })
            .collect();
        for r in runs {
            let s = r.join().expect("member thread");
            assert!(s.endpoint.tx_bundles > 0, "{s:?}");
        }
    });
}

// ---------------------------------------------------------------------------------------
// Hostile input, arbitrary: datagrams and bundles of any bytes, and of frames of the groups
// held with any body, never panic the machine, and every datagram is counted once.

/// One datagram of the fuzzer's: any bytes, or a bundle of parts that are any bytes or
/// frames of group `k % 3` (held) with any body.
#[derive(Debug, bolero::generator::TypeGenerator)]
enum Input {
    Raw(Vec<u8>),
    Bundle(Vec<(Option<u8>, Vec<u8>)>),
}

#[test]
fn arbitrary_datagrams_and_bundles_are_counted_never_panic() {
    bolero::check!().with_type::<Vec<Input>>().for_each(|inputs| {
        let ids: Vec<EndpointId> = (1..=3).map(EndpointId).collect();
        let mut g: Groups<Endpoint<thoth_stack::Bare>> = Groups::new(GroupsConfig::new(ids[0]));
        for k in 0..3 {
            g.add(Endpoint::new(Config::new(group_id(k), ids[0], ids.clone()), |_: &View| thoth_stack::Bare).unwrap())
                .unwrap();
        }
        let mut expect = 0u64;
        for input in inputs.iter().take(64) {
            let data = match input {
                Input::Raw(b) => Bytes::from(b.clone()),
                Input::Bundle(parts) => {
                    let mut b = Builder::new(65_000);
                    for (k, body) in parts.iter().take(32) {
                        let part = match k {
                            Some(k) => datagram(group_id(u64::from(*k % 3)), EndpointId(2), body),
                            None => body.clone(),
                        };
                        if b.fits(part.len()) {
                            b.push(&part, &[]);
                        }
                    }
                    b.finish()
                }
            };
            expect += match thoth_stack::bundle::split(&data) {
                Some(parts) => 1 + parts.len() as u64,
                None => 1,
            };
            g.handle_datagram(Time::ZERO, data);
            g.end_turn(Time::ZERO);
            while g.poll_transmit().is_some() {}
            while g.poll_event().is_some() {}
        }
        let s = g.stats();
        let counted = s.rx_datagrams + s.rx_bundles + s.rx_bad_bundle;
        assert_eq!(counted, expect, "every datagram and part counted once: {s:?}");
        assert_eq!(g.len(), 3, "no datagram adds or removes a group");
    });
}

/// In group `held`, says `ready: false` after its first cast, for good: flow control that
/// never lets go.
struct HoldAfterOne {
    held: bool,
    armed: bool,
}

impl Layer for HoldAfterOne {
    fn name(&self) -> &'static str {
        "hold"
    }
    /// Armed, its next cast is its last: none goes with it.
    fn cast_room(&self) -> usize {
        if self.armed && !self.held { 0 } else { usize::MAX }
    }
    fn handle_dn(&mut self, ev: Dn, cx: &mut Cx<'_>) {
        let cast = matches!(ev, Dn::Cast(_));
        cx.dn(ev);
        if cast && self.armed && !self.held {
            self.held = true;
            cx.up(Up::Flow { ready: false });
        }
    }
    fn handle_up(&mut self, ev: Up, cx: &mut Cx<'_>) {
        cx.up(ev)
    }
    fn dump(&self, _: &mut Vec<Dump>) {}
}

/// A driver thread holds a group's commands behind its held cast, and only that group's:
/// the other group's casts go on (commands keep their order per group, `Command::lane`).
#[test]
fn a_held_group_holds_back_no_other_group() {
    let cfg = UdpConfig { fanout: true, ..UdpConfig::default() };
    let s = Sockets::open(&cfg).expect("open");
    let (me, addr) = (s.id(), s.local_addr());
    let (a, b) = (GroupId(random_u64()), GroupId(random_u64()));
    let mut g: Groups<Endpoint<HoldAfterOne>> = Groups::new(GroupsConfig::new(me));
    for (group, armed) in [(a, true), (b, false)] {
        let hold = move |_: &View| HoldAfterOne { held: false, armed };
        g.add(Endpoint::new(Config::new(group, me, vec![me]), hold).unwrap()).unwrap();
    }
    let h = udp::spawn(s, g, &[addr]).expect("spawn");
    let cast = |group, data: &'static [u8]| GroupCmd::To(group, Cmd::Cast(Bytes::from_static(data)));
    for c in [cast(a, b"a1"), cast(a, b"a2 held"), cast(a, b"a3 held"), cast(b, b"b1"), cast(b, b"b2")] {
        h.command(c).unwrap();
    }
    let deadline = Instant::now() + std::time::Duration::from_secs(5);
    let mut evs = Vec::new();
    while casts_in(&evs) < 3 && Instant::now() < deadline {
        h.recv_many(&mut evs, std::time::Duration::from_millis(20));
    }
    h.recv_many(&mut evs, std::time::Duration::from_millis(100));
    let got: Vec<(GroupId, Bytes)> = evs
        .iter()
        .filter_map(|e| match &e.event {
            Event::Cast { data, .. } => Some((e.group, data.clone())),
            _ => None,
        })
        .collect();
    let want = [(a, &b"a1"[..]), (b, b"b1"), (b, b"b2")].map(|(g, d)| (g, Bytes::from_static(d))).to_vec();
    assert_eq!(got, want, "group b's casts went past group a's held ones");
    h.shutdown();
}
