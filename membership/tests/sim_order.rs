//! Chaos property runs of groups with an ordering layer in the simulator
//! (`chk_vsync:chk_total:gms:heartbeat:` the reliable layers with `sequencer`, `token` or
//! `lamport` above `stable`; the same with `chk_causal` and `causal`): total or causal
//! order, FIFO, exactly once, no loss among survivors, virtual synchrony, across crashes of
//! the sequencer, of the token's holder and of any member, partitions, cuts, leaves and
//! joins during traffic.
//!
//! Each seed: 2 to 8 endpoints join one group; for 4 to 7 s of simulated time they cast at a
//! per-seed rate (every node at each 20 ms tick for 300 ms after a fault) while faults come
//! about every 500 ms (`World::fault`, with joins: crashes, restarts, partitions, one-way
//! cuts, heals, leaves, new members), and a third of the faults crash the member that orders
//! (the token's holder, else the view's rank 0: the sequencer); every directed link has its own loss (0–10 %), duplication,
//! reordering and jitter. A third of the runs use safe (uniform) delivery, a fifth cast
//! 2000-byte payloads (fragmented above the ordering layer), a third make every third cast
//! one that asks for FIFO order only (`Endpoint::cast_fifo`: delivered as it comes, FIFO
//! per sender and kind, in no order, never held, and still exactly once and virtually
//! synchronous; the checks of an order leave them out). Then everything heals, and:
//! - the live nodes converge to one view (`BOUND`, as in `sim_vsync.rs`) and each delivers a
//!   cast from every live node;
//! - over the whole run, `World::check`: (a)–(e) and (g) as for any group (no `chk_vsync`,
//!   `chk_total` or `chk_causal` error), and (h) total order (any two members of a view
//!   deliver what they delivered before its change began in one relative order; members
//!   that move together deliver one sequence) or (i) causal order (every member delivers a
//!   cast after the casts its sender had delivered before casting it); with safe delivery,
//!   what any member delivered in a view before its change, every member that went on
//!   delivered too.
//!
//! Seeds: `CHAOS_SEEDS` in CI; `THOTH_SIM_SEEDS=N` runs more, `THOTH_SIM_SEED=S` one (with
//! `THOTH_DEBUG=1` a failing seed prints every node's events but deliveries). The planted-bug
//! tests put back a sequencer and a token layer that deliver what is unordered at the flush
//! in each member's own arrival order (`test_leftovers_by_arrival`, `test_cut_by_arrival`),
//! a Lamport layer that delivers without waiting for the clocks (`test_deliver_early`) and a
//! causal layer that ignores causes (`test_ignore_deps`), and expect both the harness's
//! check and the checker layer to catch each.

mod common;

use common::*;
use thoth_layers::order::{causal, lamport, sequencer, token};
use thoth_membership::gms;
use thoth_stack::sim::check_seeds;
use thoth_stack::{Duration, EndpointId, Event, Rng};

const BOUND: Duration = Duration::from_secs(10);
const CHAOS_SEEDS: u64 = 600;

/// Crashes the member that orders (if another node stays up): the token's holder when one
/// says it holds it, else the rank 0 (the sequencer) of the view the first live node is in.
fn crash_orderer(w: &mut World) {
    let live = w.live();
    if live.len() < 2 {
        return;
    }
    let holds = |w: &World, n| {
        let dump = w.sim.endpoint(n).map(|e| e.dump()).unwrap_or_default();
        dump.iter().any(|d| d.layer == "token" && d.state.starts_with("holding true"))
    };
    if let Some(&n) = live.iter().find(|&&n| holds(w, n)) {
        return w.crash(n);
    }
    let Some(v) = live.first().and_then(|&n| w.view(n)) else { return };
    let Some(&EndpointId(id)) = v.members.first() else { return };
    if let Some(&n) = live.iter().find(|&&n| w.id(n).0 == id) {
        w.crash(n);
    }
}

/// One chaos run; the world, for a closer look, and the verdict.
fn chaos(seed: u64, order: Order) -> (World, Result<(), String>) {
    let mut r = Rng::new(seed ^ 0x70_7a1);
    let n = 2 + (seed % 7) as usize;
    let mut w = World::new(seed, gms::Config::default());
    let safe = r.chance(0.33);
    w.order = Some(match order {
        Order::Total(c) => Order::Total(sequencer::Config { safe: c.safe || safe, ..c }),
        Order::Token(c) => Order::Token(token::Config { safe: c.safe || safe, ..c }),
        Order::Lamport(c) => Order::Lamport(lamport::Config { safe: c.safe || safe, ..c }),
        Order::Causal(c) => Order::Causal(causal::Config { safe: c.safe || safe, ..c }),
    });
    if r.chance(0.2) {
        // Fragments of at most 700 bytes (frag's own default is the datagram's room).
        w.pad = 2000;
        w.reliable = "frag(size=700):flow:stable:nak:pt2pt:pack".to_string();
    }
    // A third of the runs mix in casts that ask for FIFO order only (every third cast).
    if seed % 3 == 1 {
        w.fifo_every = 3;
    }
    let mut nodes = w.add_many(n);
    let end = w.chaos(&mut r, &mut nodes, (4000, 3000), |w, r, nodes| {
        if r.chance(0.33) {
            crash_orderer(w);
        } else {
            w.fault(r, nodes, true);
        }
    });
    w.heal(&nodes);
    let debug = std::env::var("THOTH_DEBUG").is_ok();
    let verdict = (|| {
        if w.settle(BOUND, ms(2500)).is_none() {
            return Err(format!(
                "seed {seed}: no single view of the live nodes {BOUND:?} after healing{}",
                w.describe()
            ));
        }
        w.check_all_deliver(ms(3000))?;
        w.check()
    })();
    if verdict.is_err() && debug {
        eprintln!("healed at {end:?}{}", w.history());
    }
    (w, verdict)
}

#[test]
fn chaos_total_order_holds_across_view_changes() {
    check_seeds("chaos_total_order_holds_across_view_changes", 0..CHAOS_SEEDS, |seed| {
        chaos(seed, Order::Total(sequencer::Config::default())).1
    });
}

#[test]
fn chaos_total_order_with_safe_delivery_is_uniform() {
    let safe = sequencer::Config { safe: true, ..sequencer::Config::default() };
    check_seeds("chaos_total_order_with_safe_delivery_is_uniform", 0..CHAOS_SEEDS / 3, |seed| {
        chaos(seed, Order::Total(safe.clone())).1
    });
}

#[test]
fn chaos_token_total_order_holds_across_view_changes() {
    check_seeds("chaos_token_total_order_holds_across_view_changes", 0..CHAOS_SEEDS, |seed| {
        chaos(seed, Order::Token(token::Config::default())).1
    });
}

#[test]
fn chaos_lamport_total_order_holds_across_view_changes() {
    check_seeds("chaos_lamport_total_order_holds_across_view_changes", 0..CHAOS_SEEDS, |seed| {
        chaos(seed, Order::Lamport(lamport::Config::default())).1
    });
}

#[test]
fn chaos_causal_order_holds_across_view_changes() {
    check_seeds("chaos_causal_order_holds_across_view_changes", 0..CHAOS_SEEDS, |seed| {
        chaos(seed, Order::Causal(causal::Config::default())).1
    });
}

/// Runs seeds with a planted bug until one fails where the harness's own check (`check`,
/// over the run's segments) and the checker layer (`layer`, by its `Event::Error`s) both saw
/// it; that seed and the harness's first complaint.
fn expect_caught(order: Order, check: fn(u64, &[Seg], &World) -> Vec<String>, layer: &str) -> (u64, String) {
    let caught = (0..CHAOS_SEEDS).find_map(|seed| {
        let (w, verdict) = chaos(seed, order.clone());
        verdict.err()?;
        let mut errs = Vec::new();
        let segs = w.segments(&mut errs);
        let found = check(seed, &segs, &w);
        let by_layer = w
            .nodes
            .iter()
            .any(|&n| w.sim.events(n).iter().any(|e| matches!(&e.event, Event::Error { layer: l, .. } if *l == layer)));
        (!found.is_empty() && by_layer).then(|| (seed, found[0].clone()))
    });
    caught.unwrap_or_else(|| panic!("the planted bug went unnoticed by the harness and {layer} together"))
}

#[test]
fn planted_leftovers_by_arrival_is_caught_by_the_harness_and_by_chk_total() {
    let bug = sequencer::Config { test_leftovers_by_arrival: true, ..sequencer::Config::default() };
    let check = |seed: u64, segs: &[Seg], _: &World| {
        let mut errs = Vec::new();
        check_total(seed, segs, &mut errs);
        errs
    };
    let (seed, first) = expect_caught(Order::Total(bug), check, "chk_total");
    eprintln!("planted bug caught at seed {seed}: {first}");
}

#[test]
fn planted_token_cut_by_arrival_is_caught_by_the_harness_and_by_chk_total() {
    let bug = token::Config { test_cut_by_arrival: true, ..token::Config::default() };
    let check = |seed: u64, segs: &[Seg], _: &World| {
        let mut errs = Vec::new();
        check_total(seed, segs, &mut errs);
        errs
    };
    let (seed, first) = expect_caught(Order::Token(bug), check, "chk_total");
    eprintln!("planted bug caught at seed {seed}: {first}");
}

#[test]
fn planted_lamport_deliver_early_is_caught_by_the_harness_and_by_chk_total() {
    let bug = lamport::Config { test_deliver_early: true, ..lamport::Config::default() };
    let check = |seed: u64, segs: &[Seg], _: &World| {
        let mut errs = Vec::new();
        check_total(seed, segs, &mut errs);
        errs
    };
    let (seed, first) = expect_caught(Order::Lamport(bug), check, "chk_total");
    eprintln!("planted bug caught at seed {seed}: {first}");
}

#[test]
fn planted_ignore_causes_is_caught_by_the_harness_and_by_chk_causal() {
    let bug = causal::Config { test_ignore_deps: true, ..causal::Config::default() };
    let check = |seed: u64, segs: &[Seg], w: &World| {
        let mut errs = Vec::new();
        check_causal(seed, segs, &w.causes_of_all(), &mut errs);
        errs
    };
    let (seed, first) = expect_caught(Order::Causal(bug), check, "chk_causal");
    eprintln!("planted bug caught at seed {seed}: {first}");
}
