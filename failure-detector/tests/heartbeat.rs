//! `heartbeat` tests: one layer fed one event at a time with exact expected outputs; bolero
//! (header round-trip, arbitrary bytes into `handle_up`, the layer against a millisecond-by-
//! millisecond reference model); whole groups of 2 to 9 in the simulator: crash detection
//! within the timeout (the distribution of detection times is printed, `--nocapture`), no false
//! suspicion in 60 s at 10 % loss, a short pause unsuspected and a long one suspected, and a
//! receiver that ignores traffic as evidence caught suspecting a busy member.
//!
//! `THOTH_SIM_SEEDS=N` runs more seeds in the simulator properties; `THOTH_SIM_SEED=S`
//! replays one.

use thoth_failure_detector::heartbeat::{Config, Hdr, Heartbeat};
use thoth_stack::sim::{Link, NodeId, Sim, check_seeds};
use thoth_stack::testing::{Harness, at};
use thoth_stack::wire::{from_slice, to_vec};
use thoth_stack::{
    Bytes, Dn, Duration, EndpointId, Event, GroupId, Layer, Msg, Props, Rank, Registry, Rng, Stack, Time, Up, View,
};

const MS: Duration = Duration::from_millis(1);

fn wire(head: &[u8], body: &[u8]) -> Msg {
    Msg::from_wire(Bytes::from([head, body].concat()))
}

fn bytes_of(m: &Msg) -> Vec<u8> {
    [m.head(), &m.body()[..]].concat()
}

fn beat() -> Msg {
    wire(&[1], b"")
}

fn counter(l: &Heartbeat, name: &str) -> u64 {
    let mut d = Vec::new();
    l.dump(&mut d);
    d[0].counter(name).unwrap_or_else(|| panic!("no counter {name}"))
}

/// Fires the layer's timer, which must be due exactly at `t`.
fn fire(h: &mut Harness, l: &mut Heartbeat, t: Time) {
    assert_eq!(l.poll_timeout(), Some(t));
    h.timeout(l, t);
}

fn dn_bytes(dn: Vec<Dn>) -> Vec<(&'static str, Vec<u8>)> {
    dn.into_iter()
        .map(|e| match e {
            Dn::Cast(m) => ("cast", bytes_of(&m)),
            Dn::CastUnrel(m) => ("cast_unrel", bytes_of(&m)),
            Dn::Send(_, m) => ("send", bytes_of(&m)),
            Dn::SendUnrel(_, m) => ("send_unrel", bytes_of(&m)),
            other => panic!("unexpected {other:?}"),
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// One layer, one event.

#[test]
fn first_run_beats_at_once_then_every_period() {
    let (mut h, mut l) = (Harness::new(3, 0), Heartbeat::default());
    assert_eq!(l.provides(), Props::SUSPECT);
    assert_eq!(l.poll_timeout(), None, "nothing is due before the view starts");
    h.init(&mut l, at(0)); // the start of the view beats at once
    assert_eq!(dn_bytes(h.take_dn()), vec![("cast_unrel", vec![1])]);
    fire(&mut h, &mut l, at(100));
    assert_eq!(dn_bytes(h.take_dn()), vec![("cast_unrel", vec![1])]);
    assert_eq!(l.poll_timeout(), Some(at(200)));
    assert_eq!(counter(&l, "beats_sent"), 2);
    assert_eq!(counter(&l, "period_ms"), 100);
    assert_eq!(counter(&l, "timeout_ms"), 1000);
}

#[test]
fn a_cast_stands_for_a_beat_and_a_send_does_not() {
    let (mut h, mut l) = (Harness::new(3, 0), Heartbeat::default());
    h.init(&mut l, at(0));
    h.take_dn();
    h.dn(&mut l, at(50), Dn::Cast(Msg::new(Bytes::from_static(b"x"))));
    h.dn(&mut l, at(60), Dn::Send(Rank(1), Msg::new(Bytes::from_static(b"y"))));
    h.dn(&mut l, at(60), Dn::SendUnrel(Rank(2), Msg::new(Bytes::from_static(b"z"))));
    assert_eq!(
        dn_bytes(h.take_dn()),
        // `NoHdr`, the nothing, takes no bytes.
        vec![("cast", vec![b'x']), ("send", vec![b'y']), ("send_unrel", vec![b'z'])]
    );
    assert_eq!(l.poll_timeout(), Some(at(150)), "the cast at 50 ms moved the beat");
    h.dn(&mut l, at(140), Dn::CastUnrel(Msg::new(Bytes::from_static(b"g"))));
    assert_eq!(dn_bytes(h.take_dn()), vec![("cast_unrel", vec![b'g'])]);
    fire(&mut h, &mut l, at(240));
    assert_eq!(dn_bytes(h.take_dn()), vec![("cast_unrel", vec![1])]);
    // Control events pass through untouched.
    h.dn(&mut l, at(241), Dn::Leave);
    assert_eq!(h.take_dn(), vec![Dn::Leave]);
}

#[test]
fn traffic_passes_up_beats_are_consumed() {
    let (mut h, mut l) = (Harness::new(3, 0), Heartbeat::default());
    h.up(&mut l, at(0), Up::Cast { from: Rank(1), msg: wire(&[0], b"hi") });
    h.up(&mut l, at(0), Up::Send { from: Rank(2), msg: wire(&[0], b"yo") });
    h.up(&mut l, at(0), Up::Cast { from: Rank(1), msg: beat() });
    h.up(&mut l, at(0), Up::Cast { from: Rank(0), msg: beat() }); // own loopback
    h.up(&mut l, at(0), Up::Stable(vec![1, 2, 3]));
    let up = h.take_up();
    assert_eq!(up.len(), 3);
    assert!(matches!(&up[0], Up::Cast { from: Rank(1), msg } if msg.clone().into_payload() == b"hi"[..]));
    assert!(matches!(&up[1], Up::Send { from: Rank(2), msg } if msg.clone().into_payload() == b"yo"[..]));
    assert_eq!(up[2], Up::Stable(vec![1, 2, 3]));
    assert_eq!(counter(&l, "beats_recv"), 1);
}

#[test]
fn suspects_once_per_member_after_timeout_and_unsuspects_when_heard() {
    let (mut h, mut l) = (Harness::new(3, 0), Heartbeat::default());
    h.init(&mut l, at(0));
    // Rank 1 speaks at 500 ms (traffic, not a beat); rank 2 stays silent.
    h.up(&mut l, at(500), Up::Cast { from: Rank(1), msg: wire(&[0], b"x") });
    h.take_up();
    for t in (100..1000).step_by(100) {
        fire(&mut h, &mut l, at(t));
    }
    assert!(h.take_up().is_empty());
    fire(&mut h, &mut l, at(1000));
    assert_eq!(h.take_up(), vec![Up::Suspect(vec![Rank(2)])]);
    for t in (1100..1500).step_by(100) {
        fire(&mut h, &mut l, at(t));
    }
    assert!(h.take_up().is_empty(), "rank 2 is not suspected again at every tick");
    fire(&mut h, &mut l, at(1500));
    assert_eq!(h.take_up(), vec![Up::Suspect(vec![Rank(1)])]);
    assert_eq!(l.suspects(), vec![Rank(1), Rank(2)]);
    assert_eq!(l.poll_timeout(), Some(at(1600)), "only beats are due");
    // Rank 2 comes back: no longer suspected, counted; its silence clock restarts.
    h.up(&mut l, at(1550), Up::Cast { from: Rank(2), msg: beat() });
    assert_eq!(l.suspects(), vec![Rank(1)]);
    assert_eq!(counter(&l, "unsuspected"), 1);
    assert_eq!(counter(&l, "suspected"), 2);
    assert_eq!(counter(&l, "suspected_now"), 1);
    for t in (1600..2600).step_by(100) {
        fire(&mut h, &mut l, at(t));
    }
    assert!(h.take_up().is_empty());
    assert_eq!(l.poll_timeout(), Some(at(2550)), "the silence deadline comes before the beat at 2600");
    fire(&mut h, &mut l, at(2550));
    assert_eq!(h.take_up(), vec![Up::Suspect(vec![Rank(2)])]);
}

#[test]
fn simultaneous_suspicions_come_in_one_event() {
    let (mut h, mut l) = (Harness::new(4, 2), Heartbeat::new(Config { timeout: Some(300 * MS), ..Config::default() }));
    h.init(&mut l, at(0));
    for t in [100, 200] {
        fire(&mut h, &mut l, at(t));
    }
    fire(&mut h, &mut l, at(300));
    assert_eq!(h.take_up(), vec![Up::Suspect(vec![Rank(0), Rank(1), Rank(3)])]);
}

#[test]
fn hostile_input_is_dropped_counted_and_no_evidence() {
    let (mut h, mut l) = (Harness::new(3, 0), Heartbeat::default());
    h.init(&mut l, at(0));
    h.up(&mut l, at(10), Up::Cast { from: Rank(1), msg: wire(&[7], b"x") });
    h.up(&mut l, at(10), Up::Cast { from: Rank(1), msg: wire(&[], b"") });
    h.up(&mut l, at(10), Up::Send { from: Rank(1), msg: beat() });
    h.up(&mut l, at(10), Up::Cast { from: Rank(9), msg: wire(&[0], b"x") });
    assert!(h.take_up().is_empty());
    assert_eq!(counter(&l, "bad_hdr"), 3);
    assert_eq!(counter(&l, "bad_rank"), 1);
    for t in (100..1000).step_by(100) {
        fire(&mut h, &mut l, at(t));
    }
    fire(&mut h, &mut l, at(1000));
    assert_eq!(h.take_up(), vec![Up::Suspect(vec![Rank(1), Rank(2)])], "bad messages were not evidence");
}

#[test]
fn exit_stops_the_detector_and_a_lone_member_has_no_timer() {
    let (mut h, mut l) = (Harness::new(2, 0), Heartbeat::default());
    h.init(&mut l, at(0));
    h.up(&mut l, at(5), Up::Exit);
    assert_eq!(h.take_up(), vec![Up::Exit]);
    assert_eq!(l.poll_timeout(), None);
    let (mut h, mut l) = (Harness::new(1, 0), Heartbeat::default());
    h.init(&mut l, at(0));
    assert!(h.take_dn().is_empty());
    assert_eq!(l.poll_timeout(), None);
}

#[test]
fn spec_parameters() {
    let mut r = Registry::new();
    thoth_failure_detector::register(&mut r);
    let s = r.build("heartbeat(period_ms=50,timeout_ms=400)").expect("builds");
    let mut h = Harness::new(3, 0);
    let mut s = s;
    h.timeout(&mut s, at(0));
    let d = s.dump_all();
    assert_eq!(d.counter("period_ms"), Some(50));
    assert_eq!(d.counter("timeout_ms"), Some(400));
    assert!(r.build("heartbeat(period_ms=50,timeout_ms=40)").is_err());
    assert!(r.build("heartbeat(period_ms=0)").is_err());
    assert!(r.build("heartbeat(period_ms=x)").is_err());
    assert!(r.build("heartbeat(bogus=1)").is_err());
    // Only a period: the timeout is ten of them.
    let (mut h, mut s) = (Harness::new(3, 0), r.build("heartbeat(period_ms=30)").expect("builds"));
    h.timeout(&mut s, at(0));
    assert_eq!(s.dump_all().counter("timeout_ms"), Some(300));
}

trait DumpAll {
    fn dump_all(&self) -> thoth_stack::Dump;
}
impl DumpAll for Stack {
    fn dump_all(&self) -> thoth_stack::Dump {
        let mut d = Vec::new();
        self.dump(&mut d);
        d.into_iter().find(|d| d.layer == "heartbeat").expect("heartbeat dump")
    }
}

// ---------------------------------------------------------------------------------------
// bolero.

#[test]
fn bolero_header_round_trips() {
    bolero::check!().with_type::<bool>().for_each(|&b| {
        let h = if b { Hdr::Beat } else { Hdr::NoHdr };
        let v = to_vec(&h);
        assert_eq!(v.len(), 1);
        assert_eq!(from_slice::<Hdr>(&v), Ok(h));
    });
}

#[test]
fn bolero_arbitrary_bytes_never_panic() {
    bolero::check!().with_type::<Vec<(u8, bool, Vec<u8>)>>().for_each(|msgs| {
        let (mut h, mut l) = (Harness::new(4, 1), Heartbeat::default());
        for (i, (rank, cast, bytes)) in msgs.iter().enumerate() {
            let msg = Msg::from_wire(Bytes::from(bytes.clone()));
            let from = Rank(u16::from(*rank % 6));
            let now = at(i as u64 * 37);
            h.up(&mut l, now, if *cast { Up::Cast { from, msg } } else { Up::Send { from, msg } });
            if l.poll_timeout().is_some_and(|t| t <= now) {
                h.timeout(&mut l, now);
            }
        }
        // Nothing undecodable or from outside the view was delivered.
        for u in h.take_up() {
            if let Up::Cast { from, .. } | Up::Send { from, .. } = u {
                assert!(from.index() < 4);
            }
        }
    });
}

/// The layer against a reference that checks every millisecond: a beat is due when a period
/// has passed since this member's last cast; a peer is suspected once its silence reaches the
/// timeout, once, until it is heard again.
#[test]
fn bolero_model() {
    const N: usize = 4;
    const PERIOD: u64 = 10;
    const TIMEOUT: u64 = 50;
    bolero::check!().with_type::<Vec<(u8, u8)>>().for_each(|ops| {
        let cfg = Config {
            period: Some(Duration::from_millis(PERIOD)),
            timeout: Some(Duration::from_millis(TIMEOUT)),
            ..Config::default()
        };
        let (mut h, mut l) = (Harness::new(N as u64, 0), Heartbeat::new(cfg));
        let (mut heard, mut suspected, mut last_cast) = ([0u64; N], [false; N], None::<u64>);
        let mut now = 0u64;
        h.init(&mut l, at(0));
        let tick = |t: u64,
                    h: &mut Harness,
                    l: &mut Heartbeat,
                    heard: &[u64; N],
                    sus: &mut [bool; N],
                    lc: &mut Option<u64>| {
            let due = l.poll_timeout().expect("always a timer");
            assert!(due >= at(t), "missed deadline {due:?} at {t}");
            if due == at(t) {
                h.timeout(l, at(t));
            }
            let beat = lc.is_none_or(|c| t >= c + PERIOD);
            if beat {
                *lc = Some(t);
            }
            let mut newly = Vec::new();
            for r in 1..N {
                if !sus[r] && t >= heard[r] + TIMEOUT {
                    sus[r] = true;
                    newly.push(Rank(r as u16));
                }
            }
            let want_dn: Vec<(&str, Vec<u8>)> = if beat { vec![("cast_unrel", vec![1])] } else { vec![] };
            assert_eq!(dn_bytes(h.take_dn()), want_dn, "at {t}");
            let want_up = if newly.is_empty() { vec![] } else { vec![Up::Suspect(newly)] };
            assert_eq!(h.take_up(), want_up, "at {t}");
        };
        tick(0, &mut h, &mut l, &heard, &mut suspected, &mut last_cast);
        for &(kind, arg) in ops {
            match kind % 4 {
                0 => {
                    for t in now + 1..=now + u64::from(arg % 80) {
                        tick(t, &mut h, &mut l, &heard, &mut suspected, &mut last_cast);
                    }
                    now += u64::from(arg % 80);
                }
                1 | 2 => {
                    let r = usize::from(arg) % N;
                    let msg = if kind % 4 == 1 { wire(&[0], b"m") } else { beat() };
                    h.up(&mut l, at(now), Up::Cast { from: Rank(r as u16), msg });
                    h.take_up();
                    if r != 0 {
                        heard[r] = now;
                        suspected[r] = false;
                    }
                }
                _ => {
                    h.dn(&mut l, at(now), Dn::Cast(Msg::new(Bytes::from_static(b"c"))));
                    assert_eq!(dn_bytes(h.take_dn()), vec![("cast", vec![b'c'])]);
                    last_cast = Some(now);
                }
            }
            let want: Vec<Rank> = (0..N).filter(|&r| suspected[r]).map(|r| Rank(r as u16)).collect();
            assert_eq!(l.suspects(), want);
        }
    });
}

// ---------------------------------------------------------------------------------------
// Whole groups in the simulator.

fn group(seed: u64, n: u64, link: Link, cfg: Config) -> (Sim, Vec<NodeId>) {
    let mut sim = Sim::new(seed);
    sim.set_default_link(link);
    let ids: Vec<EndpointId> = (1..=n).map(EndpointId).collect();
    let nodes = sim.add_group(GroupId::named("heartbeat"), &ids, move |_: &View| {
        Stack::builder().push(Heartbeat::new(cfg.clone())).build().expect("builds")
    });
    (sim, nodes)
}

/// (time, suspected id) for every suspicion node `n` raised.
fn suspicions(sim: &Sim, n: NodeId) -> Vec<(Time, EndpointId)> {
    sim.events(n)
        .iter()
        .flat_map(|e| match &e.event {
            Event::Suspect(ids) => ids.iter().map(|&id| (e.at, id)).collect(),
            _ => Vec::new(),
        })
        .collect()
}

fn hb_counter(sim: &Sim, n: NodeId, name: &str) -> u64 {
    let ep = sim.endpoint(n).expect("up");
    ep.dump().into_iter().find(|d| d.layer == "heartbeat").and_then(|d| d.counter(name)).expect("counter")
}

fn lossy(loss: f64) -> Link {
    Link { loss, delay: 200 * Duration::from_micros(1), jitter: 2 * MS, ..Link::default() }
}

#[test]
fn sim_crash_is_suspected_by_every_live_member_within_the_timeout() {
    let timeout = 1000 * MS;
    let bound = timeout + 3 * MS;
    let mut times: Vec<Duration> = Vec::new();
    check_seeds("sim_crash_is_suspected_by_every_live_member_within_the_timeout", 0..40, |seed| {
        let n = 2 + seed % 8;
        let (mut sim, nodes) = group(seed, n, lossy(0.05), Config::default());
        let mut rng = Rng::new(seed);
        sim.run_for(Duration::from_millis(2000 + rng.below(500)));
        let victim = nodes[rng.below(n) as usize];
        let crashed_at = sim.now();
        sim.crash(victim);
        sim.run_for(timeout + 500 * MS);
        for &m in &nodes {
            if m == victim {
                continue;
            }
            let s = suspicions(&sim, m);
            if let Some(&(t, id)) = s.iter().find(|&&(_, id)| id != sim.id(victim)) {
                return Err(format!("{m} suspected live {id:?} at {t:?}"));
            }
            let Some(&(t, _)) = s.first() else { return Err(format!("{m} never suspected the crashed {victim}")) };
            // A beat in flight at the crash still arrives: the bound is the timeout plus the
            // longest one-way latency (delay + jitter = 2.2 ms).
            let d = t.since(crashed_at);
            if d > bound {
                return Err(format!("{m} took {d:?} to suspect {victim}, more than {bound:?}"));
            }
            if s.len() != 1 {
                return Err(format!("{m} suspected {victim} {} times", s.len()));
            }
            times.push(d);
        }
        Ok(())
    });
    times.sort();
    let pct = |p: usize| times[(times.len() - 1) * p / 100];
    eprintln!(
        "heartbeat crash detection over {} (member, seed) pairs: min {:?} p10 {:?} median {:?} p90 {:?} max {:?}",
        times.len(),
        pct(0),
        pct(10),
        pct(50),
        pct(90),
        pct(100)
    );
}

#[test]
fn sim_no_live_member_is_suspected_in_60s_at_10_percent_loss() {
    check_seeds("sim_no_live_member_is_suspected_in_60s_at_10_percent_loss", 0..8, |seed| {
        let n = 2 + seed % 8;
        let (mut sim, nodes) = group(seed, n, lossy(0.10), Config::default());
        // Node 0 is busy for the first 20 s (its casts stand for beats), then quiet.
        for k in 0..400u32 {
            sim.cast(nodes[0], Bytes::from(k.to_string())).map_err(|e| format!("{e:?}"))?;
            sim.run_for(50 * MS);
        }
        sim.run_for(Duration::from_secs(40));
        if sim.net_stats().lost == 0 {
            return Err("no loss happened".into());
        }
        for &m in &nodes {
            let s = suspicions(&sim, m);
            if !s.is_empty() {
                return Err(format!("{m} suspected {s:?}"));
            }
            // The run really beat for the quiet 40 s (10 a second from each of n - 1 peers, 10 % lost).
            let beats = hb_counter(&sim, m, "beats_recv");
            if beats < (n - 1) * 40 * 10 * 8 / 10 {
                return Err(format!("{m} received only {beats} beats"));
            }
        }
        Ok(())
    });
}

#[test]
fn sim_a_short_pause_goes_unsuspected_a_long_one_does_not() {
    check_seeds("sim_a_short_pause_goes_unsuspected_a_long_one_does_not", 0..16, |seed| {
        let n = 2 + seed % 8;
        let (mut sim, nodes) = group(seed, n, lossy(0.0), Config::default());
        let slow = nodes[(seed % n) as usize];
        let others: Vec<NodeId> = nodes.iter().copied().filter(|&m| m != slow).collect();
        sim.run_for(Duration::from_millis(1500 + seed * 7));
        // Shorter than the threshold: silence = pause + at most a period + latency < 1 s.
        sim.cut(&[slow], &others);
        sim.run_for(700 * MS);
        sim.heal_all();
        sim.run_for(2000 * MS);
        for &m in &nodes {
            let s = suspicions(&sim, m);
            if !s.is_empty() {
                return Err(format!("after a 700 ms pause, {m} suspected {s:?}"));
            }
        }
        // Longer than the threshold: every other member suspects it, within the timeout (plus
        // the latency of a beat in flight at the cut).
        let cut_at = sim.now();
        sim.cut(&[slow], &others);
        sim.run_for(1500 * MS);
        sim.heal_all();
        sim.run_for(500 * MS);
        if !suspicions(&sim, slow).is_empty() {
            return Err(format!("the slow member (which still hears) suspected {:?}", suspicions(&sim, slow)));
        }
        for &m in &others {
            let s = suspicions(&sim, m);
            match s.as_slice() {
                [(t, id)] if *id == sim.id(slow) && t.since(cut_at) <= 1003 * MS => {}
                _ => return Err(format!("after a 1.5 s pause, {m} suspected {s:?} (cut at {cut_at:?})")),
            }
            if hb_counter(&sim, m, "unsuspected") != 1 || hb_counter(&sim, m, "suspected_now") != 0 {
                return Err(format!("{m} did not unsuspect {slow} after the pause"));
            }
        }
        Ok(())
    });
}

/// The bug put back: receivers that take only beats as evidence. Node 0 casts every 50 ms, so
/// it sends no beats; the broken receivers suspect it, the real ones do not.
#[test]
fn sim_catches_a_receiver_that_ignores_traffic() {
    let busy = |cfg: Config| {
        let (mut sim, nodes) = group(3, 3, lossy(0.0), cfg);
        for k in 0..60u32 {
            sim.cast(nodes[0], Bytes::from(k.to_string())).expect("cast");
            sim.run_for(50 * MS);
        }
        let beats = hb_counter(&sim, nodes[0], "beats_sent");
        (nodes[1..].iter().map(|&m| suspicions(&sim, m).len()).sum::<usize>(), beats)
    };
    let (ok, beats) = busy(Config::default());
    assert_eq!(ok, 0, "a busy member is alive");
    assert_eq!(beats, 1, "a busy member sends no beats but the one that starts its view");
    let (broken, _) = busy(Config { test_ignore_traffic: true, ..Config::default() });
    assert_eq!(broken, 2, "both broken receivers suspect the busy member");
}
