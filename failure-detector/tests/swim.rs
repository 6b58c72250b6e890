//! `swim` tests: the layer alone fed one event at a time with exact expected outputs; bolero
//! (header round-trip, arbitrary bytes into `handle_up`, suspicion state against a reference
//! model); and whole groups in the simulator (crash detection within the bound, no false
//! suspicion under 10 % loss, short and long pauses, a one-pair cut, and the same cut with
//! indirect probing disabled, which must raise a suspicion).

use std::collections::BTreeSet;
use thoth_failure_detector::swim::{Config, Effective, Hdr, Swim};
use thoth_stack::sim::{NodeId, Sim, check_seeds};
use thoth_stack::testing::{Harness, at};
use thoth_stack::wire::{from_slice, to_vec};
use thoth_stack::{Bytes, Dn, Duration, EndpointId, Event, GroupId, Layer, Msg, Rank, Registry, Stack, Time, Up, View};

fn out(h: Hdr) -> Msg {
    let mut m = Msg::default();
    m.push(&h);
    m
}

fn wire(h: Hdr) -> Msg {
    Msg::from_wire(Bytes::from(to_vec(&h)))
}

fn counter(l: &Swim, name: &str) -> u64 {
    let mut d = Vec::new();
    l.dump(&mut d);
    d[0].counter(name).unwrap_or_else(|| panic!("no counter {name}"))
}

/// A three-member view, this member rank 0.
fn three(cfg: Config) -> (Harness, Swim) {
    (Harness::new(3, 0), Swim::new(cfg))
}

/// Starts the layer.
fn start(h: &mut Harness, l: &mut Swim) {
    assert_eq!(l.poll_timeout(), None, "nothing is due before the view starts");
    h.init(l, Time::ZERO);
    assert!(h.take_dn().is_empty() && h.take_up().is_empty());
}

fn fixed() -> Config {
    Config {
        period: Some(Duration::from_millis(80)),
        ack_timeout: Some(Duration::from_millis(20)),
        ..Config::default()
    }
}

/// Fires the first probe; returns its target.
fn first_probe(h: &mut Harness, l: &mut Swim) -> Rank {
    let t0 = l.poll_timeout().expect("first probe scheduled");
    assert!(t0 < at(80), "first probe within one period: {t0:?}");
    h.timeout(l, t0);
    let dn = h.take_dn();
    let Some(Dn::SendUnrel(target, _)) = dn.first() else { panic!("expected a ping, got {dn:?}") };
    assert_eq!(dn, vec![Dn::SendUnrel(*target, out(Hdr::Ping { nonce: 1 }))]);
    assert_eq!(l.poll_timeout(), Some(t0 + Duration::from_millis(20)));
    *target
}

#[test]
fn defaults_scale_with_group_size() {
    let c = Config::default();
    let e = |n| c.effective(n);
    let ms = Duration::from_millis;
    assert_eq!(e(2), Effective { period: ms(500), ack_timeout: Duration::from_micros(62_500), k: 0 });
    assert_eq!(e(3), Effective { period: ms(500), ack_timeout: Duration::from_micros(62_500), k: 1 });
    assert_eq!(e(4), Effective { period: ms(333), ack_timeout: Duration::from_micros(41_625), k: 2 });
    assert_eq!(e(9), Effective { period: ms(125), ack_timeout: Duration::from_micros(15_625), k: 3 });
    assert_eq!(e(100).period, ms(50));
    let given = Config { k: Some(5), ..fixed() };
    assert_eq!(given.effective(4), Effective { period: ms(80), ack_timeout: ms(20), k: 2 });
}

#[test]
fn registry_parameters_and_dump() {
    let mut r = Registry::new();
    thoth_failure_detector::swim::register(&mut r);
    assert!(r.build("swim").is_ok());
    assert!(r.build("swim(period_ms=100,ack_timeout_ms=10,k=2)").is_ok());
    assert!(r.build("swim(period_ms=0)").is_err());
    assert!(r.build("swim(period_ms=10,ack_timeout_ms=10)").is_err());
    assert!(r.build("swim(k=x)").is_err());
    assert!(r.build("swim(bogus=1)").is_err());
    let (mut h, mut l) = three(Config::default());
    start(&mut h, &mut l);
    assert_eq!(counter(&l, "period_ms"), 500);
    assert_eq!(counter(&l, "ack_timeout_ms"), 62);
    assert_eq!(counter(&l, "k"), 1);
    assert_eq!(l.provides(), thoth_stack::Props::SUSPECT);
}

#[test]
fn ping_is_answered_and_ack_completes_the_probe() {
    let (mut h, mut l) = three(fixed());
    start(&mut h, &mut l);
    h.up(&mut l, at(1), Up::Send { from: Rank(2), msg: wire(Hdr::Ping { nonce: 7 }) });
    assert_eq!(h.take_dn(), vec![Dn::SendUnrel(Rank(2), out(Hdr::Ack { nonce: 7 }))]);
    assert!(h.take_up().is_empty());
    let t = first_probe(&mut h, &mut l);
    let t0 = l.poll_timeout().unwrap() - Duration::from_millis(20);
    h.up(&mut l, t0 + Duration::from_millis(1), Up::Send { from: t, msg: wire(Hdr::Ack { nonce: 1 }) });
    assert!(h.take_dn().is_empty());
    // Acked: no more attempts, the next event is the end of the period.
    assert_eq!(l.poll_timeout(), Some(t0 + Duration::from_millis(80)));
    h.timeout(&mut l, t0 + Duration::from_millis(80));
    assert!(h.take_up().is_empty());
    let other = Rank(3 - t.0);
    assert_eq!(h.take_dn(), vec![Dn::SendUnrel(other, out(Hdr::Ping { nonce: 2 }))]);
    assert_eq!(counter(&l, "stale_acks"), 0);
    // An ack with the wrong nonce is stale (and still evidence its sender is alive).
    h.up(&mut l, t0 + Duration::from_millis(81), Up::Send { from: other, msg: wire(Hdr::Ack { nonce: 1 }) });
    assert_eq!(counter(&l, "stale_acks"), 1);
}

#[test]
fn no_ack_means_ping_again_and_ping_req_then_one_suspicion() {
    let (mut h, mut l) = three(fixed());
    start(&mut h, &mut l);
    let t = first_probe(&mut h, &mut l);
    let helper = Rank(3 - t.0);
    let t0 = l.poll_timeout().unwrap() - Duration::from_millis(20);
    for i in 1..4u64 {
        let now = t0 + Duration::from_millis(20 * i);
        assert_eq!(l.poll_timeout(), Some(now));
        h.timeout(&mut l, now);
        assert_eq!(
            h.take_dn(),
            vec![
                Dn::SendUnrel(t, out(Hdr::Ping { nonce: 1 })),
                Dn::SendUnrel(helper, out(Hdr::PingReq { target: t.0, nonce: 1 })),
            ]
        );
    }
    let end = t0 + Duration::from_millis(80);
    assert_eq!(l.poll_timeout(), Some(end));
    h.timeout(&mut l, end);
    assert_eq!(h.take_up(), vec![Up::Suspect(vec![t])]);
    assert_eq!(h.take_dn(), vec![Dn::SendUnrel(helper, out(Hdr::Ping { nonce: 2 }))]);
    assert_eq!(l.suspected(), vec![t]);
    // Two more rounds with nobody answering: each member is suspected once, not every probe.
    let mut now = end;
    let mut ups = Vec::new();
    while now < end + Duration::from_millis(320) {
        now = l.poll_timeout().unwrap();
        h.timeout(&mut l, now);
        ups.extend(h.take_up());
    }
    assert_eq!(ups, vec![Up::Suspect(vec![helper])]);
    assert_eq!(counter(&l, "suspicions"), 2);
    // Hearing from a suspected member (any message) lifts the suspicion; no event.
    h.up(&mut l, now, Up::Cast { from: t, msg: wire(Hdr::NoHdr) });
    assert!(matches!(h.take_up().as_slice(), [Up::Cast { from, .. }] if *from == t));
    assert_eq!(l.suspected(), vec![helper]);
    assert_eq!(counter(&l, "unsuspected"), 1);
}

#[test]
fn indirect_ack_completes_the_probe() {
    let (mut h, mut l) = three(fixed());
    start(&mut h, &mut l);
    let t = first_probe(&mut h, &mut l);
    let helper = Rank(3 - t.0);
    let t0 = l.poll_timeout().unwrap() - Duration::from_millis(20);
    h.timeout(&mut l, t0 + Duration::from_millis(20));
    h.take_dn();
    h.up(
        &mut l,
        t0 + Duration::from_millis(21),
        Up::Send { from: helper, msg: wire(Hdr::IndirectAck { target: t.0, nonce: 1 }) },
    );
    assert!(h.take_dn().is_empty());
    assert_eq!(counter(&l, "indirect_acks"), 1);
    assert_eq!(l.poll_timeout(), Some(t0 + Duration::from_millis(80)));
    h.timeout(&mut l, t0 + Duration::from_millis(80));
    assert!(h.take_up().is_empty());
}

#[test]
fn relaying_is_stateless_and_exact() {
    let (mut h, mut l) = three(fixed());
    start(&mut h, &mut l);
    h.up(&mut l, at(1), Up::Send { from: Rank(1), msg: wire(Hdr::PingReq { target: 2, nonce: 5 }) });
    assert_eq!(h.take_dn(), vec![Dn::SendUnrel(Rank(2), out(Hdr::RelayPing { origin: 1, nonce: 5 }))]);
    h.up(&mut l, at(1), Up::Send { from: Rank(2), msg: wire(Hdr::RelayPing { origin: 1, nonce: 9 }) });
    assert_eq!(h.take_dn(), vec![Dn::SendUnrel(Rank(2), out(Hdr::RelayAck { origin: 1, nonce: 9 }))]);
    h.up(&mut l, at(1), Up::Send { from: Rank(2), msg: wire(Hdr::RelayAck { origin: 1, nonce: 5 }) });
    assert_eq!(h.take_dn(), vec![Dn::SendUnrel(Rank(1), out(Hdr::IndirectAck { target: 2, nonce: 5 }))]);
    assert!(h.take_up().is_empty());
    assert_eq!(counter(&l, "relayed"), 1);
}

#[test]
fn messages_get_nohdr_and_hostile_input_is_counted() {
    let (mut h, mut l) = three(fixed());
    start(&mut h, &mut l);
    let body = Bytes::from_static(b"app");
    h.dn(&mut l, at(1), Dn::Cast(Msg::new(body.clone())));
    h.dn(&mut l, at(1), Dn::Leave);
    let mut expect = Msg::new(body.clone());
    expect.push(&Hdr::NoHdr);
    assert_eq!(h.take_dn(), vec![Dn::Cast(expect.clone()), Dn::Leave]);
    // Own cast looped back: delivered, header popped.
    h.up(&mut l, at(1), Up::Cast { from: Rank(0), msg: expect });
    match h.take_up().as_slice() {
        [Up::Cast { from: Rank(0), msg }] => assert_eq!(msg.clone().into_payload(), body),
        other => panic!("expected the looped-back cast, got {other:?}"),
    }
    let bad = [
        (Up::Send { from: Rank(1), msg: Msg::from_wire(Bytes::from_static(&[99])) }, "bad_hdr"),
        (Up::Send { from: Rank(1), msg: Msg::from_wire(Bytes::new()) }, "bad_hdr"),
        (Up::Cast { from: Rank(1), msg: wire(Hdr::Ping { nonce: 1 }) }, "bad_hdr"),
        (Up::Send { from: Rank(7), msg: wire(Hdr::NoHdr) }, "bad_rank"),
        (Up::Send { from: Rank(0), msg: wire(Hdr::Ping { nonce: 1 }) }, "bad_rank"),
        (Up::Send { from: Rank(1), msg: wire(Hdr::PingReq { target: 9, nonce: 1 }) }, "bad_rank"),
        (Up::Send { from: Rank(1), msg: wire(Hdr::PingReq { target: 1, nonce: 1 }) }, "bad_rank"),
        (Up::Send { from: Rank(1), msg: wire(Hdr::RelayAck { origin: 0, nonce: 1 }) }, "bad_rank"),
        (Up::Send { from: Rank(1), msg: wire(Hdr::IndirectAck { target: 0, nonce: 1 }) }, "bad_rank"),
    ];
    for (i, (ev, name)) in bad.into_iter().enumerate() {
        let before = counter(&l, name);
        h.up(&mut l, at(2), ev);
        assert_eq!(counter(&l, name), before + 1, "case {i}");
        assert!(h.take_up().is_empty() && h.take_dn().is_empty(), "case {i}");
    }
    h.up(&mut l, at(3), Up::Exit);
    assert_eq!(h.take_up(), vec![Up::Exit]);
}

// ---- bolero ----

#[test]
fn bolero_header_round_trips() {
    bolero::check!().with_type::<(u8, u16, u64)>().for_each(|&(tag, x, nonce)| {
        let h = match tag % 7 {
            0 => Hdr::NoHdr,
            1 => Hdr::Ping { nonce },
            2 => Hdr::Ack { nonce },
            3 => Hdr::PingReq { target: x, nonce },
            4 => Hdr::RelayPing { origin: x, nonce },
            5 => Hdr::RelayAck { origin: x, nonce },
            _ => Hdr::IndirectAck { target: x, nonce },
        };
        let b = to_vec(&h);
        assert_eq!(b.len(), thoth_stack::Wire::encoded_len(&h));
        assert_eq!(from_slice::<Hdr>(&b), Ok(h));
    });
}

#[test]
fn bolero_arbitrary_bytes_never_panic() {
    bolero::check!().with_type::<Vec<(bool, u8, u16, Vec<u8>)>>().for_each(|evs| {
        let (mut h, mut l) = three(fixed());
        start(&mut h, &mut l);
        for (i, (cast, from, dt, bytes)) in evs.iter().enumerate() {
            let msg = Msg::from_wire(Bytes::from(bytes.clone()));
            let from = Rank(*from as u16 % 5);
            let now = at(i as u64 * 3 + *dt as u64 % 50);
            h.up(&mut l, now, if *cast { Up::Cast { from, msg } } else { Up::Send { from, msg } });
            if l.poll_timeout().is_some_and(|t| t <= now) {
                h.timeout(&mut l, now);
            }
            // Probe traffic only goes to other members of the view.
            for d in h.take_dn() {
                assert!(matches!(d, Dn::SendUnrel(r, _) if r.0 < 3 && r.0 != 0), "{d:?}");
            }
        }
    });
}

/// Reference: a probe fails iff nothing came from its target (directly, or an indirect ack
/// for it) during its period; a failed probe of an unsuspected member suspects it; any
/// evidence lifts the suspicion.
#[test]
fn bolero_suspicion_matches_reference_model() {
    bolero::check!().with_type::<Vec<(u8, u8)>>().for_each(|ops| {
        let n = 4u16;
        let mut h = Harness::new(n as u64, 0);
        let mut l = Swim::new(fixed());
        h.timeout(&mut l, Time::ZERO);
        let mut now = Time::ZERO;
        let mut suspected = BTreeSet::new();
        let mut probe: Option<(Rank, u64, bool)> = None;
        let mut round = Vec::new();
        for &(op, x) in ops {
            let r = Rank(1 + (x as u16 % (n - 1)));
            let mut expect_up = Vec::new();
            match op % 4 {
                0 | 1 => {
                    now = l.poll_timeout().expect("always a deadline");
                    h.timeout(&mut l, now);
                    for d in h.take_dn() {
                        if let Dn::SendUnrel(to, mut m) = d
                            && let Ok(Hdr::Ping { nonce }) = {
                                m.unseal(); // as it arrives at the target's swim
                                m.pop::<Hdr>()
                            }
                            && probe.is_none_or(|p| p.1 != nonce)
                        {
                            if let Some((t, _, false)) = probe
                                && suspected.insert(t)
                            {
                                expect_up.push(Up::Suspect(vec![t]));
                            }
                            probe = Some((to, nonce, false));
                            // Round robin: no member twice in a round.
                            if round.len() == (n - 1) as usize {
                                round.clear();
                            }
                            assert!(!round.contains(&to), "{to:?} twice in a round {round:?}");
                            round.push(to);
                        }
                    }
                }
                2 => {
                    h.up(&mut l, now, Up::Send { from: r, msg: wire(Hdr::NoHdr) });
                    h.take_up();
                    suspected.remove(&r);
                    if let Some(p) = probe.as_mut().filter(|p| p.0 == r) {
                        p.2 = true;
                    }
                }
                _ => {
                    if let Some((t, nonce, _)) = probe
                        && r != t
                    {
                        h.up(&mut l, now, Up::Send { from: r, msg: wire(Hdr::IndirectAck { target: t.0, nonce }) });
                        suspected.remove(&r);
                        suspected.remove(&t);
                        probe = Some((t, nonce, true));
                    }
                }
            }
            assert_eq!(h.take_up(), expect_up);
            assert_eq!(l.suspected(), suspected.iter().copied().collect::<Vec<_>>());
            h.take_dn();
        }
    });
}

// ---- simulator ----

fn stack(cfg: Config) -> impl Fn(&View) -> Stack + Clone + Send + 'static {
    move |_: &View| Stack::builder().push(Swim::new(cfg.clone())).build().expect("swim needs nothing")
}

fn group(seed: u64, n: u64, cfg: Config) -> (Sim, Vec<NodeId>) {
    let mut sim = Sim::new(seed);
    let ids: Vec<EndpointId> = (1..=n).map(EndpointId).collect();
    let nodes = sim.add_group(GroupId::named("swim-test"), &ids, stack(cfg));
    (sim, nodes)
}

/// Every suspicion raised: (time, suspecting node, suspected id).
fn suspicions(sim: &Sim, nodes: &[NodeId]) -> Vec<(Time, NodeId, EndpointId)> {
    let mut v = Vec::new();
    for &n in nodes {
        for e in sim.events(n) {
            if let Event::Suspect(ids) = &e.event {
                v.extend(ids.iter().map(|&id| (e.at, n, id)));
            }
        }
    }
    v
}

fn period(n: u64) -> Duration {
    Config::default().effective(n as usize).period
}

/// The stated bound: every live member suspects a crashed one within `2 (n - 1)` periods.
fn bound(n: u64) -> Duration {
    period(n) * (2 * (n as u32 - 1)) + Duration::from_millis(1)
}

#[test]
fn sim_crashed_member_suspected_by_every_live_member_within_bound() {
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); 10];
    check_seeds("sim_crashed_member_suspected_by_every_live_member_within_bound", 0..48, |seed| {
        let n = 2 + seed % 8;
        let (mut sim, nodes) = group(seed, n, Config::default());
        sim.run_for(Duration::from_millis(2000 + seed * 37 % 1000));
        let victim = nodes[(seed / 8 % n) as usize];
        let vid = sim.id(victim);
        let crash = sim.now();
        sim.crash(victim);
        sim.run_for(bound(n) + Duration::from_millis(500));
        let s = suspicions(&sim, &nodes);
        if let Some(x) = s.iter().find(|x| x.2 != vid || x.0 < crash) {
            return Err(format!("n={n}: false suspicion {x:?}"));
        }
        for &m in nodes.iter().filter(|&&m| m != victim) {
            let Some(&(t, _, _)) = s.iter().find(|x| x.1 == m) else {
                return Err(format!("n={n}: {m} never suspected the crashed {victim}"));
            };
            let d = t.since(crash);
            if d > bound(n) {
                return Err(format!("n={n}: {m} took {d:?} > bound {:?}", bound(n)));
            }
            times[n as usize].push(d.as_secs_f64() * 1000.0);
        }
        Ok(())
    });
    for (n, t) in times.iter_mut().enumerate().filter(|(_, t)| !t.is_empty()) {
        t.sort_by(f64::total_cmp);
        eprintln!(
            "swim detection n={n}: {} samples, min {:.0} ms, median {:.0} ms, max {:.0} ms (bound {:?})",
            t.len(),
            t[0],
            t[t.len() / 2],
            t[t.len() - 1],
            bound(n as u64)
        );
    }
}

#[test]
fn sim_no_suspicion_under_ten_percent_loss_for_60s() {
    check_seeds("sim_no_suspicion_under_ten_percent_loss_for_60s", 0..16, |seed| {
        let n = 2 + seed % 8;
        let (mut sim, nodes) = group(seed, n, Config::default());
        sim.set_default_link(thoth_stack::sim::Link { loss: 0.1, ..Default::default() });
        sim.run_for(Duration::from_secs(60));
        let lost = sim.net_stats().lost as f64 / sim.net_stats().sent.max(1) as f64;
        if !(0.05..0.15).contains(&lost) {
            return Err(format!(
                "n={n}: the network lost {lost:.3} of {} datagrams, not about 10 %",
                sim.net_stats().sent
            ));
        }
        match suspicions(&sim, &nodes).first() {
            Some(x) => Err(format!("n={n}: live member suspected {x:?}")),
            None => Ok(()),
        }
    });
}

/// Cuts every outgoing link of one member for `pause`, then heals; returns the suspicions
/// of that member.
fn pause(seed: u64, n: u64, pause: Duration) -> (Vec<NodeId>, Vec<(Time, NodeId, EndpointId)>, NodeId) {
    let (mut sim, nodes) = group(seed, n, Config::default());
    sim.run_for(Duration::from_millis(1500 + seed * 53 % 700));
    let slow = nodes[(seed % n) as usize];
    let others: Vec<NodeId> = nodes.iter().copied().filter(|&m| m != slow).collect();
    sim.cut(&[slow], &others);
    sim.run_for(pause);
    sim.heal_all();
    sim.run_for(Duration::from_secs(3));
    let id = sim.id(slow);
    let s = suspicions(&sim, &others).into_iter().filter(|x| x.2 == id).collect();
    (others, s, slow)
}

#[test]
fn sim_short_pause_not_suspected_long_pause_is() {
    check_seeds("sim_short_pause_not_suspected_long_pause_is", 0..24, |seed| {
        let n = 2 + seed % 8;
        let e = Config::default().effective(n as usize);
        let short = e.period - e.ack_timeout - Duration::from_millis(1);
        let (_, s, slow) = pause(seed, n, short);
        if let Some(x) = s.first() {
            return Err(format!("n={n}: pause of {short:?} made {slow} suspected: {x:?}"));
        }
        let long = bound(n) + e.period;
        let (others, s, slow) = pause(seed, n, long);
        for m in others {
            if !s.iter().any(|x| x.1 == m) {
                return Err(format!("n={n}: pause of {long:?}: {m} did not suspect {slow}"));
            }
        }
        Ok(())
    });
}

/// Cuts both directions between nodes 0 and 1 for 20 s; returns every suspicion.
fn one_pair_cut(seed: u64, n: u64, cfg: Config) -> Vec<(Time, NodeId, EndpointId)> {
    let (mut sim, nodes) = group(seed, n, cfg);
    sim.run_for(Duration::from_millis(500));
    sim.partition(&[nodes[0]], &[nodes[1]]);
    sim.run_for(Duration::from_secs(20));
    suspicions(&sim, &nodes)
}

#[test]
fn sim_one_pair_cut_raises_no_suspicion() {
    check_seeds("sim_one_pair_cut_raises_no_suspicion", 0..14, |seed| {
        let n = 3 + seed % 7;
        match one_pair_cut(seed, n, Config::default()).first() {
            Some(x) => Err(format!("n={n}: suspicion across a one-pair cut: {x:?}")),
            None => Ok(()),
        }
    });
}

#[test]
fn sim_harness_catches_missing_indirect_probe() {
    for seed in 0..7 {
        let n = 3 + seed % 7;
        let s = one_pair_cut(seed, n, Config { test_no_indirect: true, ..Config::default() });
        assert!(
            s.iter().any(|x| x.1 == NodeId(0) && x.2 == EndpointId(2)),
            "seed {seed} n={n}: without indirect probing node 0 must suspect member 2, got {s:?}"
        );
    }
}
