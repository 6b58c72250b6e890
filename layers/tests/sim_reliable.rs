//! `stable:nak` over the simulator: whole groups under loss, duplication, reordering, delay
//! jitter and asymmetric links.
//!
//! Properties, for every seed (N = 2..=7 members, loss 0..30 %, chosen by the seed):
//! every cast is delivered exactly once to every member (its sender included), in
//! per-sender FIFO order, payload intact; after the casts stop the run goes quiet within
//! `QUIET` of simulated time, and then every retransmission buffer and every out-of-order
//! window is empty (stability freed them). Under steady load the buffers stay under
//! `STEADY_BOUND`. Two deliberately broken configurations (a skipped retransmission, a
//! delivered duplicate) must be caught, with the seed in the message; a seed replays exactly.
//!
//! `THOTH_SIM_SEEDS=N` runs more seeds; `THOTH_SIM_SEED=S` replays one.

use std::panic::{AssertUnwindSafe, catch_unwind};
use thoth_layers::nak::{self, Nak};
use thoth_layers::stable::{self, Stable};
use thoth_stack::sim::{Link, NodeId, Sim, check_seeds, failed_seed};
use thoth_stack::{Bytes, Duration, EndpointId, GroupId, Rng, Stack, View};

fn us(n: u64) -> Duration {
    Duration::from_micros(n)
}
const MS: Duration = Duration::from_millis(1);
/// Simulated time the group gets to go quiet after the last cast.
const QUIET: Duration = Duration::from_secs(5);
/// Messages one member may keep (retransmission buffers plus held arrivals) under the
/// steady load of `steady_load`: 4 members casting 5 per ms in all at up to 20 % loss,
/// gossip every 3 ms (the peak seen over 40 seeds is 100).
const STEADY_BOUND: u64 = 250;

fn nak_cfg() -> nak::Config {
    nak::Config {
        nak_delay: MS,
        nak_interval: 3 * MS,
        rtx_interval: MS,
        tail_interval: 3 * MS,
        window: 64,
        ..nak::Config::default()
    }
}

fn stack(cfg: nak::Config, period: Duration) -> impl Fn(&View) -> Stack + Clone + Send + 'static {
    move |_view: &View| {
        Stack::builder().push(Stable::new(stable::Config { period })).push(Nak::new(cfg.clone())).build().unwrap()
    }
}

/// `sender:k:` then filler that depends on both, so a mixed-up payload shows.
fn payload(sender: usize, k: u32) -> Bytes {
    let mut v = format!("{sender}:{k}:").into_bytes();
    v.extend((0..(sender as u32 * 7 + k) % 40).map(|i| (i as u8).wrapping_mul(31) ^ k as u8));
    Bytes::from(v)
}

fn counter(sim: &Sim, n: NodeId, layer: &str, name: &str) -> Result<u64, String> {
    let ep = sim.endpoint(n).ok_or(format!("node {n} is down"))?;
    ep.dump()
        .iter()
        .find(|d| d.layer == layer)
        .and_then(|d| d.counter(name))
        .ok_or(format!("no counter {layer}.{name}"))
}

/// Checks that every node delivered, from each sender `s`, exactly `payload(s, 0..sent[s])`.
fn check_deliveries(sim: &Sim, nodes: &[NodeId], sent: &[u32]) -> Result<(), String> {
    for &n in nodes {
        let mut got: Vec<Vec<Bytes>> = vec![Vec::new(); nodes.len()];
        for d in sim.delivered(n) {
            let s = (d.from.0 as usize).checked_sub(1).filter(|&s| s < nodes.len());
            let s = s.ok_or(format!("{n} delivered from unknown {:?}", d.from))?;
            got[s].push(d.data.clone());
        }
        for (s, got) in got.iter().enumerate() {
            let want: Vec<Bytes> = (0..sent[s]).map(|k| payload(s, k)).collect();
            if *got != want {
                let pos = got.iter().zip(&want).position(|(a, b)| a != b).unwrap_or(got.len().min(want.len()));
                return Err(format!(
                    "node {n} got {} casts from sender {s}, want {} (first difference at #{pos}: {:?} vs {:?})",
                    got.len(),
                    want.len(),
                    got.get(pos),
                    want.get(pos)
                ));
            }
        }
    }
    Ok(())
}

/// A faulty group: N, the links and the casts all come from the seed.
fn reliable_run(seed: u64, cfg: nak::Config) -> Result<(), String> {
    let mut plan = Rng::new(seed ^ 0x6e61_6b21);
    let n = 2 + plan.below(6) as usize;
    let link = |plan: &mut Rng| Link {
        loss: plan.unit() * 0.3,
        dup: plan.unit() * 0.1,
        reorder: plan.unit() * 0.3,
        delay: us(50 + plan.below(250)),
        jitter: us(plan.below(500)),
        corrupt: plan.unit() * 0.02,
    };
    let mut sim = Sim::new(seed);
    sim.set_default_link(link(&mut plan));
    let ids: Vec<EndpointId> = (1..=n as u64).map(EndpointId).collect();
    let nodes = sim.add_group(GroupId::named("reliable"), &ids, stack(cfg, 3 * MS));
    // Asymmetric links: some directions get faults of their own.
    for &a in &nodes {
        for &b in &nodes {
            if a != b && plan.chance(0.2) {
                let l = link(&mut plan);
                sim.set_link(a, b, l);
            }
        }
    }
    let mut sent = vec![0u32; n];
    let casts = 1 + plan.below(12 * n as u64);
    for _ in 0..casts {
        let s = plan.below(n as u64) as usize;
        sim.cast(nodes[s], payload(s, sent[s])).map_err(|e| e.to_string())?;
        sent[s] += 1;
        sim.run_for(us(plan.below(400)));
    }
    let quiet = sim.run_until_quiet(QUIET);
    check_deliveries(&sim, &nodes, &sent)?;
    quiet.map_err(|e| e.to_string())?;
    if std::env::var_os("NAK_SIM_VERBOSE").is_some() {
        let sum = |name| nodes.iter().map(|&m| counter(&sim, m, "nak", name).unwrap_or(0)).sum::<u64>();
        eprintln!(
            "seed {seed}: n {n} casts {casts} quiet at {:?} lost {} naks {} rtx {} limited {} tails {} window_drop {}",
            sim.now(),
            sim.net_stats().lost,
            sum("naks_sent"),
            sum("rtx_sent"),
            sum("rtx_limited"),
            sum("tails_sent"),
            sum("window_drop")
        );
    }
    for &m in &nodes {
        for (layer, name) in [("nak", "buffered"), ("nak", "held"), ("stable", "unstable")] {
            let v = counter(&sim, m, layer, name)?;
            if v != 0 {
                return Err(format!("after quiet, node {m} has {layer}.{name} = {v}"));
            }
        }
    }
    Ok(())
}

#[test]
fn every_cast_delivered_once_in_order_and_buffers_freed() {
    check_seeds("every_cast_delivered_once_in_order_and_buffers_freed", 0..2000, |seed| reliable_run(seed, nak_cfg()));
}

/// A small window: arrivals beyond it are dropped and must be NAKed again.
#[test]
fn a_tiny_window_still_delivers_everything() {
    check_seeds("a_tiny_window_still_delivers_everything", 0..200, |seed| {
        reliable_run(seed, nak::Config { window: 2, ..nak_cfg() })
    });
}

/// Continuous casting: what one member keeps stays bounded, and all is freed at the end.
fn steady_load(seed: u64) -> Result<u64, String> {
    let mut plan = Rng::new(seed ^ 0x5374_6561);
    let n = 4;
    let mut sim = Sim::new(seed);
    sim.set_default_link(Link {
        loss: plan.unit() * 0.2,
        dup: plan.unit() * 0.05,
        reorder: plan.unit() * 0.2,
        delay: us(50 + plan.below(200)),
        jitter: us(plan.below(300)),
        corrupt: 0.0,
    });
    let ids: Vec<EndpointId> = (1..=n as u64).map(EndpointId).collect();
    let nodes = sim.add_group(GroupId::named("steady"), &ids, stack(nak_cfg(), 3 * MS));
    let mut sent = vec![0u32; n];
    let mut peak = 0;
    for i in 0..1000 {
        let s = plan.below(n as u64) as usize;
        sim.cast(nodes[s], payload(s, sent[s])).map_err(|e| e.to_string())?;
        sent[s] += 1;
        sim.run_for(us(200));
        if i % 5 == 0 {
            for &m in &nodes {
                let kept = counter(&sim, m, "nak", "buffered")? + counter(&sim, m, "nak", "held")?;
                peak = peak.max(kept);
                if kept > STEADY_BOUND {
                    return Err(format!("node {m} keeps {kept} messages after {i} casts (bound {STEADY_BOUND})"));
                }
            }
        }
    }
    sim.run_until_quiet(QUIET).map_err(|e| e.to_string())?;
    check_deliveries(&sim, &nodes, &sent)?;
    for &m in &nodes {
        let kept = counter(&sim, m, "nak", "buffered")?;
        if kept != 0 {
            return Err(format!("node {m} still keeps {kept} messages after quiet"));
        }
    }
    Ok(peak)
}

#[test]
fn memory_stays_bounded_under_steady_load() {
    check_seeds("memory_stays_bounded_under_steady_load", 0..40, |seed| {
        let peak = steady_load(seed)?;
        if std::env::var_os("NAK_SIM_VERBOSE").is_some() {
            eprintln!("seed {seed}: peak kept {peak}");
        }
        Ok(())
    });
}

fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default()
}

/// Runs `check_seeds` on a broken configuration; it must fail, naming a seed that replays.
fn must_catch(test: &str, cfg: nak::Config) -> String {
    let run = |seed| reliable_run(seed, cfg.clone());
    let failed = catch_unwind(AssertUnwindSafe(|| check_seeds(test, 0..2000, run)));
    let msg = panic_text(failed.expect_err("the simulator must catch the planted bug"));
    let seed: u64 = failed_seed(&msg).unwrap_or_else(|| panic!("no seed in: {msg}"));
    assert!(msg.contains(&format!("THOTH_SIM_SEED={seed} cargo test -p thoth-layers --test sim_reliable")), "{msg}");
    let again = reliable_run(seed, cfg).expect_err("the reported seed fails again");
    assert!(msg.contains(&again), "replay differs: {again} vs {msg}");
    eprintln!("caught as expected: {msg}");
    msg
}

#[test]
fn harness_catches_a_skipped_retransmission() {
    let msg =
        must_catch("harness_catches_a_skipped_retransmission", nak::Config { test_skip_retransmit: true, ..nak_cfg() });
    assert!(msg.contains("casts from sender"), "{msg}");
}

#[test]
fn harness_catches_a_delivered_duplicate() {
    let msg =
        must_catch("harness_catches_a_delivered_duplicate", nak::Config { test_deliver_duplicate: true, ..nak_cfg() });
    assert!(msg.contains("casts from sender"), "{msg}");
}

/// Same seed, same run: the trace hash and every delivery replay bit for bit.
#[test]
fn a_seed_replays_exactly() {
    let run = |seed: u64| {
        let mut sim = Sim::new(seed);
        sim.set_default_link(Link { loss: 0.2, dup: 0.05, reorder: 0.2, jitter: us(300), ..Link::default() });
        let ids: Vec<EndpointId> = (1..=4).map(EndpointId).collect();
        let nodes = sim.add_group(GroupId::named("replay"), &ids, stack(nak_cfg(), 3 * MS));
        for k in 0..20 {
            let s = k as usize % 4;
            sim.cast(nodes[s], payload(s, k / 4)).unwrap();
            sim.run_for(us(100));
        }
        sim.run_until_quiet(QUIET).unwrap();
        let delivered: Vec<_> = nodes.iter().map(|&n| sim.delivered(n).to_vec()).collect();
        (sim.trace_hash(), delivered)
    };
    assert_eq!(run(7), run(7));
    assert_ne!(run(7).0, run(8).0);
}
