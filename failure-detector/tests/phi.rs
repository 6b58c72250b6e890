//! The `phi` failure detector: exact outputs through a harness, bolero (header round-trip,
//! arbitrary bytes, a model of the suspicion state machine), and simulator runs of whole
//! groups (crash detection time, no false suspicion under 10 % loss, short and long pauses).
//!
//! `THOTH_SIM_SEEDS=N` runs more seeds in the simulator tests; `THOTH_SIM_SEED=S` replays one.

use thoth_failure_detector::phi::{Config, Phi, PhiHdr, default_period, mean_std, phi};
use thoth_stack::sim::{NodeId, Sim, check_seeds};
use thoth_stack::testing::{Harness, at};
use thoth_stack::wire::{from_slice, to_vec};
use thoth_stack::{
    Bytes, Dn, Duration, EndpointId, Event, GroupId, Layer, Msg, Rank, Registry, Rng, Stack, Time, Up, View,
};

const MS: Duration = Duration::from_millis(1);

fn cfg(period: u64, pause: u64, min_std: u64) -> Config {
    Config {
        period: Some(Duration::from_millis(period)),
        threshold: 8.0,
        window: 10,
        min_std: Some(Duration::from_millis(min_std)),
        pause: Some(Duration::from_millis(pause)),
    }
}

/// Fires the layer's timeouts up to `t`.
fn run_to(l: &mut Phi, h: &mut Harness, t: Time) {
    while let Some(d) = l.poll_timeout().filter(|&d| d <= t) {
        h.timeout(l, d);
    }
}

fn wire_msg(hdr: &[u8], body: &[u8]) -> Msg {
    Msg::from_wire(Bytes::from([hdr, body].concat()))
}

fn counter(l: &Phi, name: &str) -> u64 {
    let mut out = Vec::new();
    l.dump(&mut out);
    out[0].counter(name).unwrap()
}

fn suspects(ups: &[Up]) -> Vec<Vec<Rank>> {
    ups.iter().filter_map(|u| if let Up::Suspect(r) = u { Some(r.clone()) } else { None }).collect()
}

// ---- exact outputs ----

#[test]
fn the_start_of_the_view_beats() {
    let mut l = Phi::new(cfg(100, 0, 10));
    let mut h = Harness::new(3, 0);
    assert_eq!(l.poll_timeout(), None, "nothing is due before the view starts");
    h.init(&mut l, at(0));
    let dn = h.take_dn();
    assert_eq!(dn.len(), 1);
    let Dn::CastUnrel(m) = &dn[0] else { panic!("{dn:?}") };
    assert_eq!((m.head(), &m.body()[..]), (&[1u8][..], &b""[..]));
    assert_eq!(l.poll_timeout(), Some(at(25)), "first check after period/4");
    run_to(&mut l, &mut h, at(99));
    assert!(h.take_dn().is_empty());
    run_to(&mut l, &mut h, at(100));
    assert_eq!(h.take_dn().len(), 1, "the next beat one period later");
    assert_eq!(counter(&l, "beats_sent"), 2);
    for (k, v) in [("period_ms", 100), ("threshold_x1000", 8000), ("window", 10), ("min_std_ms", 10), ("pause_ms", 0)] {
        assert_eq!(counter(&l, k), v, "{k}");
    }
}

#[test]
fn messages_pass_with_no_header() {
    let mut l = Phi::default();
    let mut h = Harness::new(3, 0);
    h.init(&mut l, at(0));
    assert_eq!(h.take_dn().len(), 1, "the beat that starts the view");
    h.dn(&mut l, at(0), Dn::Cast(Msg::new(Bytes::from_static(b"x"))));
    h.dn(&mut l, at(0), Dn::Send(Rank(1), Msg::new(Bytes::from_static(b"y"))));
    h.dn(&mut l, at(0), Dn::Leave);
    let dn = h.take_dn();
    // `NoHdr`, the nothing, takes no bytes.
    assert!(matches!(&dn[0], Dn::Cast(m) if m.head().is_empty()));
    assert!(matches!(&dn[1], Dn::Send(Rank(1), m) if m.head().is_empty()));
    assert_eq!(dn[2], Dn::Leave);
    h.up(&mut l, at(1), Up::Cast { from: Rank(1), msg: wire_msg(&[0], b"hi") });
    h.up(&mut l, at(1), Up::Send { from: Rank(2), msg: wire_msg(&[0], b"yo") });
    h.up(&mut l, at(1), Up::Exit);
    let up = h.take_up();
    assert!(matches!(&up[0], Up::Cast { from: Rank(1), msg } if &msg.clone().into_payload()[..] == b"hi"));
    assert!(matches!(&up[1], Up::Send { from: Rank(2), msg } if &msg.clone().into_payload()[..] == b"yo"));
    assert_eq!(up[2], Up::Exit);
    // Defaults scale with the group: 3 members.
    assert_eq!(counter(&l, "period_ms"), 70);
    assert_eq!(counter(&l, "pause_ms"), 350);
    assert_eq!(counter(&l, "min_std_ms"), 35);
}

#[test]
fn hostile_input_is_dropped_and_counted() {
    let mut l = Phi::default();
    let mut h = Harness::new(3, 0);
    h.up(&mut l, at(0), Up::Cast { from: Rank(1), msg: wire_msg(&[9], b"") });
    h.up(&mut l, at(0), Up::Cast { from: Rank(1), msg: wire_msg(&[], b"") });
    h.up(&mut l, at(0), Up::Send { from: Rank(1), msg: wire_msg(&[1], b"") });
    h.up(&mut l, at(0), Up::Cast { from: Rank(7), msg: wire_msg(&[0], b"x") });
    h.up(&mut l, at(0), Up::Cast { from: Rank(7), msg: wire_msg(&[1], b"") });
    assert!(h.take_up().is_empty());
    assert_eq!(counter(&l, "bad_hdr"), 3);
    assert_eq!(counter(&l, "bad_rank"), 2);
    assert_eq!(counter(&l, "beats_rcvd"), 0);
    // Own heartbeat looped back: consumed, not counted.
    h.up(&mut l, at(0), Up::Cast { from: Rank(0), msg: wire_msg(&[1], b"") });
    assert!(h.take_up().is_empty());
    assert_eq!(counter(&l, "beats_rcvd"), 0);
}

#[test]
fn a_silent_peer_is_suspected_once_at_the_computed_time() {
    // Bootstrap: mean = period = 100, std = period/4 = 25, no pause. phi(225) = 7.30,
    // phi(250) = 10.78: the check at 250 ms suspects the silent peer.
    assert!(phi(225.0, 100.0, 25.0) < 8.0 && phi(250.0, 100.0, 25.0) > 8.0);
    let mut l = Phi::new(cfg(100, 0, 10));
    let mut h = Harness::new(3, 0);
    h.timeout(&mut l, at(0));
    for t in (0..=1000).step_by(100) {
        run_to(&mut l, &mut h, at(t));
        h.up(&mut l, at(t), Up::Cast { from: Rank(1), msg: wire_msg(&[1], b"") });
        if t == 200 {
            assert!(suspects(&h.take_up()).is_empty(), "nobody by 200 ms");
            run_to(&mut l, &mut h, at(249));
            assert!(suspects(&h.take_up()).is_empty(), "nobody at 225 ms");
            run_to(&mut l, &mut h, at(250));
            assert_eq!(suspects(&h.take_up()), vec![vec![Rank(2)]]);
        }
    }
    assert!(suspects(&h.take_up()).is_empty(), "suspected once, not at every check");
    assert!(l.is_suspected(Rank(2)) && !l.is_suspected(Rank(1)));
    assert_eq!(counter(&l, "suspicions"), 1);
    assert_eq!(counter(&l, "beats_rcvd"), 11);
    let mut out = Vec::new();
    l.dump(&mut out);
    assert!(out[0].state.starts_with("phi r0=0.00 r1="), "{}", out[0].state);
    assert!(out[0].state.contains(" r2=inf!"), "{}", out[0].state);
    // Heard again (any message): no longer suspected.
    h.up(&mut l, at(1000), Up::Send { from: Rank(2), msg: wire_msg(&[0], b"back") });
    assert_eq!(h.take_up().len(), 1);
    assert!(!l.is_suspected(Rank(2)));
    assert_eq!(counter(&l, "unsuspected"), 1);
    let phis = l.phis(at(1000), Rank(0));
    assert_eq!(phis[2], phi(0.0, 100.0, 25.0));
    // Rank 1's samples are all exactly 100 ms: std 0, floored to min_std 10.
    assert_eq!(phis[1], phi(0.0, 100.0, 10.0));
    assert_eq!(l.phis(at(1100), Rank(0))[1], phi(100.0, 100.0, 10.0));
}

#[test]
fn statistics_use_the_last_window_of_heartbeat_gaps_only() {
    let mut l = Phi::new(Config { window: 3, ..cfg(100, 50, 1) });
    let mut h = Harness::new(2, 0);
    h.timeout(&mut l, at(0));
    // Gaps 10, 20, 30, 40: the window keeps 20, 30, 40. Data messages in between refresh
    // "last heard" but add no gap.
    for (t, beat) in [(0, true), (10, true), (15, false), (30, true), (45, false), (60, true), (100, true)] {
        h.up(&mut l, at(t), Up::Cast { from: Rank(1), msg: wire_msg(&[beat as u8], b"") });
    }
    let (mean, std) = mean_std([20.0, 30.0, 40.0].into_iter()).unwrap();
    assert_eq!(l.phis(at(130), Rank(0))[1], phi(30.0, mean + 50.0, std));
    h.up(&mut l, at(140), Up::Cast { from: Rank(1), msg: wire_msg(&[0], b"") });
    assert_eq!(l.phis(at(150), Rank(0))[1], phi(10.0, mean + 50.0, std), "last heard moved, the stats did not");
}

#[test]
fn registry_builds_and_checks_parameters() {
    let mut r = Registry::new();
    thoth_failure_detector::register(&mut r);
    let s = r.build("phi(period_ms=50,threshold=6.5,window=20,min_std_ms=5,pause_ms=100)").unwrap();
    assert_eq!(s.spec(), "phi");
    assert!(r.build("phi").is_ok());
    for bad in [
        "phi(period_ms=0)",
        "phi(threshold=0)",
        "phi(threshold=x)",
        "phi(window=1)",
        "phi(min_std_ms=0)",
        "phi(pause=1)",
    ] {
        assert!(r.build(bad).is_err(), "{bad}");
    }
    assert!(Phi::default().provides().contains(thoth_stack::Props::SUSPECT));
}

// ---- bolero ----

#[test]
fn header_round_trips() {
    bolero::check!().with_type::<bool>().for_each(|&b| {
        let h = if b { PhiHdr::Beat } else { PhiHdr::NoHdr };
        assert_eq!(from_slice::<PhiHdr>(&to_vec(&h)), Ok(h));
    });
}

#[test]
fn arbitrary_bytes_never_panic() {
    bolero::check!().with_type::<Vec<(u8, bool, Vec<u8>)>>().for_each(|input| {
        let mut l = Phi::new(cfg(10, 0, 1));
        let mut h = Harness::new(4, 1);
        for (i, (rank, cast, bytes)) in input.iter().enumerate() {
            let (from, msg) = (Rank(*rank as u16 % 6), Msg::from_wire(Bytes::from(bytes.clone())));
            let t = at(i as u64 * 7);
            h.up(&mut l, t, if *cast { Up::Cast { from, msg } } else { Up::Send { from, msg } });
            run_to(&mut l, &mut h, t);
        }
        let _ = (h.take_up(), h.take_dn());
    });
}

/// The reference: the suspicion automaton written plainly, all gaps kept.
struct Model {
    last_heard: Vec<u64>,
    last_beat: Vec<Option<u64>>,
    gaps: Vec<Vec<f64>>,
    suspected: Vec<bool>,
}

#[test]
fn model_of_suspicion() {
    const N: usize = 4;
    const PERIOD: u64 = 40;
    const WINDOW: usize = 5;
    bolero::check!().with_type::<Vec<(u8, u8)>>().for_each(|ops| {
        let c = Config { window: WINDOW, ..cfg(PERIOD, 20, 3) };
        let mut l = Phi::new(c);
        let mut h = Harness::new(N as u64, 0);
        h.timeout(&mut l, at(0));
        let mut m = Model {
            last_heard: vec![0; N],
            last_beat: vec![None; N],
            gaps: vec![Vec::new(); N],
            suspected: vec![false; N],
        };
        let mut now = 0u64;
        let mut next_check = PERIOD / 4;
        for &(op, arg) in ops {
            let peer = 1 + arg as usize % (N - 1);
            match op % 3 {
                // Time passes: every check the model makes must match the layer's output.
                0 => {
                    let until = now + arg as u64 * 3;
                    while next_check <= until {
                        run_to(&mut l, &mut h, at(next_check));
                        let mut newly = Vec::new();
                        for p in 1..N {
                            let g = &m.gaps[p];
                            let (mean, std) = mean_std(g[g.len().saturating_sub(WINDOW)..].iter().copied())
                                .unwrap_or((PERIOD as f64, PERIOD as f64 / 4.0));
                            let v = phi((next_check - m.last_heard[p]) as f64, mean + 20.0, std.max(3.0));
                            if v > 8.0 && !m.suspected[p] {
                                m.suspected[p] = true;
                                newly.push(Rank(p as u16));
                            }
                        }
                        let got = suspects(&h.take_up());
                        let want = if newly.is_empty() { vec![] } else { vec![newly] };
                        assert_eq!(got, want, "at {next_check} ms");
                        next_check += PERIOD / 4;
                    }
                    run_to(&mut l, &mut h, at(until));
                    now = until;
                }
                // A heartbeat or a data message from a peer.
                k => {
                    let beat = k == 1;
                    h.up(&mut l, at(now), Up::Cast { from: Rank(peer as u16), msg: wire_msg(&[beat as u8], b"") });
                    let was = m.suspected[peer];
                    m.suspected[peer] = false;
                    m.last_heard[peer] = now;
                    if beat {
                        if let (Some(prev), false) = (m.last_beat[peer], was) {
                            m.gaps[peer].push((now - prev) as f64);
                        }
                        m.last_beat[peer] = Some(now);
                    }
                    assert!(suspects(&h.take_up()).is_empty());
                }
            }
            for p in 1..N {
                assert_eq!(l.is_suspected(Rank(p as u16)), m.suspected[p], "peer {p} at {now} ms");
            }
        }
    });
}

// ---- simulator ----

fn ids(n: u64) -> Vec<EndpointId> {
    (1..=n).map(EndpointId).collect()
}

fn group(seed: u64, n: u64, cfg: Config, link: thoth_stack::sim::Link) -> (Sim, Vec<NodeId>) {
    let mut sim = Sim::new(seed);
    sim.set_default_link(link);
    let nodes = sim.add_group(GroupId::named("phi"), &ids(n), move |_: &View| {
        Stack::builder().push(Phi::new(cfg.clone())).build().expect("phi builds")
    });
    (sim, nodes)
}

/// When each node first suspected `who` at or after `since`.
fn first_suspicion(sim: &Sim, n: NodeId, who: EndpointId, since: Time) -> Option<Time> {
    sim.events(n).iter().find_map(|e| match &e.event {
        Event::Suspect(ids) if e.at >= since && ids.contains(&who) => Some(e.at),
        _ => None,
    })
}

fn any_suspicion(sim: &Sim, nodes: &[NodeId]) -> Option<(NodeId, Time, Vec<EndpointId>)> {
    nodes.iter().find_map(|&n| {
        sim.events(n).iter().find_map(|e| match &e.event {
            Event::Suspect(ids) => Some((n, e.at, ids.clone())),
            _ => None,
        })
    })
}

fn jittery(loss: f64) -> thoth_stack::sim::Link {
    thoth_stack::sim::Link { loss, delay: MS, jitter: 2 * MS, ..Default::default() }
}

/// Crash detection: every live member suspects a crashed one within 10 periods (the defaults
/// put phi = 8 about 8.6 periods after the last heartbeat, which comes up to a period before
/// the crash; plus a check interval and jitter). Prints the distribution.
#[test]
fn a_crashed_member_is_suspected_by_every_live_member_in_time() {
    let mut times: Vec<(f64, f64)> = Vec::new();
    check_seeds("a_crashed_member_is_suspected_by_every_live_member_in_time", 0..24, |seed| {
        let n = 2 + seed % 8;
        let (mut sim, nodes) = group(seed, n, Config::default(), jittery(0.01));
        let mut rng = Rng::new(seed);
        sim.run_for(Duration::from_millis(2000 + rng.below(1000)));
        if let Some(s) = any_suspicion(&sim, &nodes) {
            return Err(format!("suspicion before the crash: {s:?}"));
        }
        let victim = nodes[rng.below(n) as usize];
        let crashed_at = sim.now();
        sim.crash(victim);
        let period = default_period(n as usize);
        sim.run_for(period * 14);
        for &m in nodes.iter().filter(|&&m| m != victim) {
            let Some(t) = first_suspicion(&sim, m, sim.id(victim), crashed_at) else {
                return Err(format!("node {m:?} never suspected the crashed {victim:?}"));
            };
            let d = t.since(crashed_at);
            if d > period * 10 {
                return Err(format!("node {m:?} took {d:?} (> 10 periods of {period:?})"));
            }
            times.push((d.as_secs_f64() / period.as_secs_f64(), d.as_secs_f64() * 1e3));
            let others: Vec<_> = sim.events(m).iter().filter(|e| matches!(e.event, Event::Suspect(_))).collect();
            if others.len() != 1 {
                return Err(format!("node {m:?}: {} suspicions, want 1: {others:?}", others.len()));
            }
        }
        Ok(())
    });
    for (unit, k) in [("periods", 0), ("ms", 1)] {
        let mut v: Vec<f64> = times.iter().map(|t| if k == 0 { t.0 } else { t.1 }).collect();
        v.sort_by(f64::total_cmp);
        let q = |f: f64| v[((v.len() - 1) as f64 * f) as usize];
        eprintln!(
            "phi detection time ({unit}) over {} (seed, observer) pairs: min {:.2} median {:.2} p90 {:.2} max {:.2}",
            v.len(),
            q(0.0),
            q(0.5),
            q(0.9),
            q(1.0)
        );
    }
}

/// No live member is suspected in 60 s of simulated time under `loss`.
fn no_false_suspicion(seed: u64, cfg: Config, loss: f64) -> Result<(), String> {
    let n = 2 + seed % 8;
    let (mut sim, nodes) = group(seed, n, cfg, jittery(loss));
    sim.run_for(Duration::from_secs(60));
    match any_suspicion(&sim, &nodes) {
        Some((m, at, who)) => Err(format!("n={n}: node {m:?} suspected {who:?} at {at:?}")),
        None => Ok(()),
    }
}

#[test]
fn no_live_member_is_suspected_under_ten_percent_loss() {
    check_seeds("no_live_member_is_suspected_under_ten_percent_loss", 0..16, |seed| {
        no_false_suspicion(seed, Config::default(), 0.10)
    });
}

/// The harness catches false suspicions: without the pause margin and with a tiny std floor
/// the detector is trigger-happy under the same loss, and the property fails.
#[test]
fn the_false_suspicion_check_can_fail() {
    let aggressive = Config { pause: Some(Duration::ZERO), min_std: Some(MS), ..Config::default() };
    let failed = (0..4).filter(|&seed| no_false_suspicion(seed, aggressive.clone(), 0.10).is_err()).count();
    assert_eq!(failed, 4, "every seed must see a false suspicion");
}

/// Cuts every outgoing link of one member for `pause`, then heals; returns whether anybody
/// suspected it.
fn pause_is_suspected(seed: u64, pause_periods: u32) -> Result<bool, String> {
    let n = 2 + seed % 8;
    let (mut sim, nodes) = group(seed, n, Config::default(), jittery(0.0));
    let period = default_period(n as usize);
    sim.run_for(period * 20);
    let slow = nodes[(seed % n) as usize];
    let others: Vec<NodeId> = nodes.iter().copied().filter(|&m| m != slow).collect();
    sim.cut(&[slow], &others);
    sim.run_for(period * pause_periods);
    sim.heal_all();
    sim.run_for(period * 20);
    let suspected = others.iter().filter(|&&m| first_suspicion(&sim, m, sim.id(slow), Time::ZERO).is_some()).count();
    if suspected != 0 && suspected != others.len() {
        return Err(format!("{suspected} of {} suspected the slow member", others.len()));
    }
    if let Some((m, at, who)) = any_suspicion(&sim, &[slow]) {
        return Err(format!("the slow member {m:?} suspected {who:?} at {at:?}"));
    }
    Ok(suspected != 0)
}

#[test]
fn a_pause_shorter_than_the_threshold_is_not_suspected() {
    // phi reaches 8 about 8.6 periods after the last beat; a 6-period cut stays below it.
    check_seeds("a_pause_shorter_than_the_threshold_is_not_suspected", 0..16, |seed| {
        match pause_is_suspected(seed, 6)? {
            false => Ok(()),
            true => Err("a 6-period pause was suspected".into()),
        }
    });
}

#[test]
fn a_pause_longer_than_the_threshold_is_suspected() {
    check_seeds("a_pause_longer_than_the_threshold_is_suspected", 0..16, |seed| match pause_is_suspected(seed, 12)? {
        true => Ok(()),
        false => Err("a 12-period pause was not suspected".into()),
    });
}

#[test]
fn whole_runs_are_deterministic() {
    let run = || {
        let (mut sim, nodes) = group(5, 5, Config::default(), jittery(0.1));
        sim.run_for(Duration::from_secs(2));
        sim.crash(nodes[2]);
        sim.run_for(Duration::from_secs(2));
        (sim.trace_hash(), sim.events(nodes[0]).to_vec())
    };
    assert_eq!(run(), run());
}
