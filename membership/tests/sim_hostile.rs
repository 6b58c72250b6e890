//! A hostile peer among the members, in the simulator: membership keeps making progress and
//! memory stays bounded whatever it sends.
//!
//! Each seed: 3 to 6 endpoints form a group (`chk_vsync:gms:heartbeat:` over the reliable
//! layers with small byte budgets, `RELIABLE`, so a layer that holds without bound shows
//! within one run), over links with some loss, duplication and reordering. Then for 3 to 6 s
//! of simulated time, while the members cast and faults come (crashes, restarts, partitions,
//! one-way cuts, heals, joins of new endpoints, leaves), a hostile peer (`common/hostile.rs`)
//! that hears the group's multicast sends it 1 to 20 frames every 20 ms, with valid CRCs and
//! members' sources: replays, bit flips, forged casts at next / near / far / stale / absurd
//! sequence numbers with headers every layer parses or bytes none does, every layer's control
//! traffic with plausible and absurd values, `gms` control, phantom joiners, forged beacons,
//! merges and installs. Its payloads are small, or up to 1, 8 or 60 kB, as the seed says.
//! Then the peer stops, the partitions heal and the links turn perfect, and:
//! - **memory**: what every live member holds for others (`Endpoint::held_for_others`: the
//!   datagrams held for a later view and every layer's `held_bytes`) stays within the sum of
//!   the configured budgets, `MEM_BOUND`, sampled every 100 ms throughout;
//! - **liveness**: within `BOUND` every live member is in one view whose members are exactly
//!   the live members (no phantom left); then a new endpoint joins and, within `BOUND`
//!   again, every live member is in one view with it: membership still makes progress;
//! - **no crash**: nothing panics (a panic fails the seed, with its replay command).
//!
//! Virtual synchrony is not checked here, nor that a given cast is delivered: until frames
//! are authenticated a forged cast is delivered like any other and takes the number of the
//! real one it replaces, so members can disagree on what a view carried (that is the
//! security layer's to stop). That holds even after the peer stops: a frame it forged for a
//! view the group installs later (its id is predictable) is held like an early real one and
//! replayed into that view. The forged casts' numbers are what the flush counts must
//! survive: the reliable layer counts them, so the flush still reaches its cut.
//!
//! `BOUND` (30 s): what the peer leaves behind when it stops is repaired by the protocol's
//! own timeouts, one after another in the worst case: a flush whose casts or control it
//! damaged runs out (`flush_ms` 3 s), the next attempt is stalled and measured against the
//! coordinator (up to another 3 s), a member left out of it goes on alone after two
//! `flush_ms` of silence (6 s) or once its detector notices (1.2 s), the sides merge at the
//! next beacon (0.5 s, plus a flush), and phantom members a forged merge or join brought
//! in are dropped after `ready_ms` (2 s, plus a flush): ≈ 16 s. A forged `Block` naming a
//! live member failed makes the layers below of whoever took it deaf to that member for the
//! rest of the view (`Dn::Failed` only grows), which can cost one more such round while
//! successive coordinators of the damaged view are found gone: ≈ 25 s. Measured over
//! 10,000 seeds: median 2.8 s, slowest 19.4 s (the test prints both for the seeds it ran),
//! at most 1.2 MB held for others by any member (the bound: 1.5 MB). Seeds: `HOSTILE_SEEDS` in CI; `THOTH_SIM_SEEDS=N` runs more,
//! `THOTH_SIM_SEED=S` one (`THOTH_DEBUG=1` prints the history of a failing seed). The
//! planted-bug tests put back the flush as it was before it counted in the reliable layer
//! (`gms::Config::test_count_in_gms`, with forged casts multicast as in the report that
//! found it), and budgets far above the bound checked: the harness must catch both (it does
//! on the first seed). The counting alone, with the rest of today's flush around it, is
//! caught by the named scenario in `sim_scenarios.rs` (a join held up for seconds instead of
//! a millisecond).

mod common;

use common::hostile::{Attack, Hostile, Style};
use common::*;
use std::sync::Mutex;
use thoth_membership::gms;
use thoth_stack::sim::{Link, NodeId, check_seeds};
use thoth_stack::{Duration, Rng};

const HOSTILE_SEEDS: u64 = 2000;
const BOUND: Duration = Duration::from_secs(30);
/// The reliable layers with small budgets.
const RELIABLE: &str = "frag(mem=262144,mem_all=524288):flow:stable:nak(mem=262144,mem_all=524288):\
                        pt2pt(mem=131072,mem_all=262144):pack";
/// The endpoint's bytes of datagrams held for a later view.
const HOLD: usize = 262_144;
/// What a member may hold for others: the sum of the budgets above.
const MEM_BOUND: u64 = 524_288 + 524_288 + 262_144 + HOLD as u64;

/// Every seed's convergence time, the most memory seen and the frames sent (for the test's
/// output).
static SEEN: Mutex<(Vec<Duration>, u64, u64)> = Mutex::new((Vec::new(), 0, 0));

struct Setup {
    cfg: gms::Config,
    reliable: &'static str,
    style: Option<Style>,
}

impl Setup {
    fn honest() -> Setup {
        Setup { cfg: gms::Config::default(), reliable: RELIABLE, style: None }
    }
}

fn debug(w: &World, what: &str) {
    if std::env::var("THOTH_DEBUG").is_ok() {
        eprintln!("{what}{}", w.history());
        for &x in &w.nodes {
            eprintln!("{x:?} {:?}", w.sim.endpoint(x).map(|e| e.dump()));
        }
    }
}

/// Checks what every live member holds for others; the most any holds.
fn memory(w: &World) -> Result<u64, String> {
    let mut most = 0;
    for n in w.live() {
        let held = w.sim.endpoint(n).map_or(0, |e| e.held_for_others());
        if held > MEM_BOUND {
            let layers: Vec<_> = w
                .sim
                .endpoint(n)
                .map(|e| e.dump().into_iter().filter_map(|d| Some((d.layer, d.counter("held_bytes")?))).collect())
                .unwrap_or_default();
            return Err(format!(
                "seed {}: memory: {n:?} holds {held} bytes for others at {:?}, over the bound {MEM_BOUND} \
                 (held for a later view {}, layers {layers:?})",
                w.seed(),
                w.now(),
                w.sim.endpoint(n).map_or(0, |e| e.held_bytes())
            ));
        }
        most = most.max(held);
    }
    Ok(most)
}

fn run(seed: u64, s: &Setup) -> Result<(), String> {
    let mut r = Rng::new(seed ^ 0x0bad_9ee5);
    let n = 3 + (seed % 4) as usize;
    let mut w = World::new(seed, s.cfg.clone());
    // The hostile peer forges frames: this is about what the layers withstand in a group
    // without frame protection (sealed, its frames are refused before any layer sees them).
    w.secure = Protect::Off;
    w.reliable = s.reliable.to_string();
    w.hold_bytes = HOLD;
    if r.chance(0.2) {
        w.pad = 2000; // honest casts fragmented below
    }
    let mut nodes = w.add_many(n);
    let link = |r: &mut Rng| Link { loss: r.unit() * 0.05, ..faulty_link(r, 0.0) };
    for &a in &nodes {
        for &b in &nodes {
            if a != b {
                let l = link(&mut r);
                w.sim.set_link(a, b, l);
            }
        }
    }
    if w.settle(BOUND, ms(300)).is_none() {
        return Err(format!("seed {seed}: the group never formed{}", w.describe()));
    }
    w.sim.tap(256);
    let style = s.style.unwrap_or_else(|| Style {
        max_payload: [1000, 8000, 60_000][r.below(3) as usize],
        large: r.unit() * 0.3,
        focus: None,
        to_all: 0.3,
    });
    let mut peer = Hostile::new(seed, style);
    let intensity = 1 + r.below(20) as usize;
    let rate = 0.05 + r.unit() * 0.4;
    let end = w.now() + ms(3000 + r.below(3000));
    let mut most = 0;
    let mut tick = 0u64;
    while w.now() < end {
        for &x in &nodes {
            if r.chance(rate) {
                w.cast(x);
            }
        }
        if r.chance(0.02) {
            w.fault(&mut r, &mut nodes, true);
        }
        peer.listen(&mut w.sim);
        let targets: Vec<NodeId> = w.live();
        peer.strike(&mut w.sim, &targets, intensity);
        w.run_for(ms(20));
        tick += 1;
        if tick.is_multiple_of(5) {
            most = most.max(memory(&w)?);
        }
    }
    most = most.max(memory(&w)?);
    // The peer stops; the faults heal.
    w.sim.tap(0);
    w.heal(&nodes);
    let Some(took) = w.settle(BOUND, ms(2500)) else {
        debug(&w, "after the attack");
        return Err(format!(
            "seed {seed}: liveness: no single view of the live members {BOUND:?} after the peer stopped \
             ({} frames: {:?}){}",
            peer.total(),
            peer.sent,
            w.describe()
        ));
    };
    // Membership still makes progress: a new endpoint joins.
    let late = w.add();
    if w.settle(BOUND, ms(500)).is_none() || w.view(late).is_none_or(|v| v.len() != w.live().len()) {
        debug(&w, "after the join");
        return Err(format!("seed {seed}: liveness: a join after the attack did not complete{}", w.describe()));
    }
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    seen.0.push(took);
    seen.1 = seen.1.max(most);
    seen.2 += peer.total();
    Ok(())
}

#[test]
fn membership_progresses_and_memory_stays_bounded_under_a_hostile_peer() {
    check_seeds("membership_progresses_and_memory_stays_bounded_under_a_hostile_peer", 0..HOSTILE_SEEDS, |seed| {
        run(seed, &Setup::honest())
    });
    let (took, most, frames) = SEEN.lock().unwrap().clone();
    eprintln!(
        "hostile: {} seeds; convergence after the peer stopped: median {:?}, slowest {:?} (bound {BOUND:?}); \
         most held for others {most} bytes (bound {MEM_BOUND}); {frames} hostile frames",
        took.len(),
        median(took.clone()),
        took.iter().max().copied().unwrap_or_default()
    );
}

/// Runs the property with something broken; returns the failure message.
fn expect_caught(test: &str, s: Setup, seeds: u64) -> String {
    let r = std::panic::catch_unwind(|| check_seeds(test, 0..seeds, |seed| run(seed, &s)));
    let e = r.expect_err("the planted bug went unnoticed");
    let msg = e.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("failed for seed") && msg.contains("THOTH_SIM_SEED="), "{msg}");
    msg
}

/// The bug behind the wedge this test was written for: the flush counted casts above the
/// reliable layer, so a forged cast no layer above could parse left a member one short of
/// its cut for good.
#[test]
fn planted_count_above_the_reliable_layer_is_caught() {
    let s = Setup {
        cfg: gms::Config { test_count_in_gms: true, ..gms::Config::default() },
        reliable: RELIABLE,
        style: Some(Style { max_payload: 64, large: 0.0, focus: Some(Attack::Cast), to_all: 1.0 }),
    };
    let msg = expect_caught("planted_count_above_the_reliable_layer_is_caught", s, 50);
    assert!(msg.contains("liveness"), "{msg}");
    eprintln!("{msg}");
}

/// Budgets far above the bound checked: a flood of large forged casts must show.
#[test]
fn planted_unbounded_memory_is_caught() {
    let s = Setup {
        cfg: gms::Config::default(),
        reliable: "frag:flow:stable:nak(mem=1073741824,mem_all=1073741824):pt2pt:pack",
        style: Some(Style { max_payload: 60_000, large: 1.0, focus: Some(Attack::Cast), to_all: 0.3 }),
    };
    let msg = expect_caught("planted_unbounded_memory_is_caught", s, 50);
    assert!(msg.contains("memory"), "{msg}");
    eprintln!("{msg}");
}
