//! The reliable layers together, built from a spec string as users build them, over the
//! simulator: casts of every size (some fragmented), point-to-point sends, loss,
//! duplication, reordering, jitter, corruption and asymmetric links, with `chk_fifo` on top.
//!
//! Properties, for every seed (N = 2..=7, loss 0..=30 %, chosen by the seed): every cast is
//! delivered exactly once to every member in per-sender order, payload intact; every send
//! exactly once to its target in per-pair order; `chk_fifo` never fires (no `Event::Error`);
//! after the traffic stops the group goes quiet and every buffer (nak, pt2pt, frag, pack) is
//! empty.
//!
//! `THOTH_SIM_SEEDS=N` runs more seeds; `THOTH_SIM_SEED=S` replays one.

use thoth_stack::sim::{Kind, Link, NodeId, Sim, check_seeds};
use thoth_stack::{Bytes, Config, Duration, Endpoint, EndpointId, Event, GroupId, Rng, View};

/// Timers scaled to the simulated network's sub-millisecond latencies.
const SPEC: &str = "chk_fifo:frag(size=600):stable(period_ms=5):\
                    nak(nak_delay_ms=1,nak_interval_ms=3,rtx_interval_ms=1,tail_ms=3):\
                    pt2pt(ack_delay_ms=1,rto_ms=10,max_rto_ms=100):pack(size=4000)";

/// `SPEC` with no sizes: `frag` and `pack` fill the room the endpoint's datagram leaves.
const ROOM_SPEC: &str = "chk_fifo:frag:stable(period_ms=5):\
                         nak(nak_delay_ms=1,nak_interval_ms=3,rtx_interval_ms=1,tail_ms=3):\
                         pt2pt(ack_delay_ms=1,rto_ms=10,max_rto_ms=100):pack";

fn payload(sender: usize, k: u32, len: usize) -> Bytes {
    let mut v = format!("{sender}:{k}:").into_bytes();
    v.extend((0..len).map(|i| (i as u8).wrapping_mul(13) ^ (k as u8).wrapping_add(sender as u8)));
    Bytes::from(v)
}

fn counter(sim: &Sim, n: NodeId, layer: &str, name: &str) -> Result<u64, String> {
    let ep = sim.endpoint(n).ok_or(format!("{n} is down"))?;
    ep.dump()
        .iter()
        .find(|d| d.layer == layer)
        .and_then(|d| d.counter(name))
        .ok_or(format!("no counter {layer}.{name}"))
}

/// With `max_datagram`, the endpoints send datagrams of at most that many bytes and the
/// stack is `ROOM_SPEC`, so every fragment and packed datagram is sized by the room.
fn scenario(seed: u64, max_datagram: Option<usize>) -> Result<(), String> {
    let mut rng = Rng::new(seed ^ 0x5eed);
    let n = 2 + rng.below(6) as usize;
    let loss = rng.below(31) as f64 / 100.0;
    let mut sim: Sim = Sim::new(seed);
    let link = Link {
        loss,
        dup: rng.below(5) as f64 / 100.0,
        reorder: rng.below(20) as f64 / 100.0,
        delay: Duration::from_micros(50 + rng.below(200)),
        jitter: Duration::from_micros(rng.below(500)),
        corrupt: rng.below(3) as f64 / 100.0,
    };
    sim.set_default_link(link);
    let ids: Vec<EndpointId> = (1..=n as u64).map(EndpointId).collect();
    let registry = thoth_layers::registry();
    let spec = if max_datagram.is_some() { ROOM_SPEC } else { SPEC };
    registry.build(spec).map_err(|e| e.to_string())?;
    let stack = move |_: &View| registry.build(spec).expect("checked");
    let nodes = match max_datagram {
        None => sim.add_group(GroupId::named("stack"), &ids, stack),
        Some(max_datagram) => ids
            .iter()
            .map(|&me| {
                let (ids, stack) = (ids.clone(), stack.clone());
                sim.add_node(move |spawn| {
                    let cfg = Config {
                        seed: spawn.seed,
                        max_datagram,
                        ..Config::new(GroupId::named("stack"), me, ids.clone())
                    };
                    Endpoint::new(cfg, stack.clone()).expect("a member of its own list")
                })
            })
            .collect(),
    };
    // An asymmetric link: one direction much worse.
    if n > 2 {
        sim.set_link(nodes[0], nodes[1], Link { loss: (loss * 2.0).min(0.5), ..link });
    }
    let casts = 10 + rng.below(20) as u32;
    let mut sends: Vec<Vec<Vec<Bytes>>> = vec![vec![Vec::new(); n]; n];
    for k in 0..casts {
        for (s, &node) in nodes.iter().enumerate() {
            // Mostly small, now and then several fragments.
            let len = if rng.chance(0.15) { 600 + rng.below(2500) as usize } else { rng.below(200) as usize };
            sim.cast(node, payload(s, k, len)).map_err(|e| format!("cast: {e:?}"))?;
            if rng.chance(0.3) {
                let t = rng.below(n as u64) as usize;
                let data = payload(100 + s, k, rng.below(800) as usize);
                sends[s][t].push(data.clone());
                sim.send(node, ids[t], data).map_err(|e| format!("send: {e:?}"))?;
            }
        }
        sim.run_for(Duration::from_micros(rng.below(400)));
    }
    sim.run_until_quiet(Duration::from_secs(10)).map_err(|e| format!("did not go quiet: {e:?}"))?;

    for (t, &node) in nodes.iter().enumerate() {
        let mut got_casts: Vec<Vec<Bytes>> = vec![Vec::new(); n];
        let mut got_sends: Vec<Vec<Bytes>> = vec![Vec::new(); n];
        for d in sim.delivered(node) {
            let s = ids.iter().position(|&i| i == d.from).ok_or(format!("{node} got from {:?}", d.from))?;
            match d.kind {
                Kind::Cast => got_casts[s].push(d.data.clone()),
                Kind::Send => got_sends[s].push(d.data.clone()),
            }
        }
        for s in 0..n {
            let want: Vec<Bytes> = (0..casts).map(|k| payload(s, k, 0)).collect();
            let got: Vec<Bytes> = got_casts[s]
                .iter()
                .map(|b| {
                    // Compare the `sender:k:` prefix and the full filler separately.
                    let cut = b.iter().enumerate().filter(|&(_, &c)| c == b':').nth(1).map_or(b.len(), |(i, _)| i + 1);
                    b.slice(..cut)
                })
                .collect();
            if got != want {
                return Err(format!("{node} got {} casts from {s}, want {casts}: {got:?}", got.len()));
            }
            for (k, b) in got_casts[s].iter().enumerate() {
                let len = b.len() - want[k].len();
                if *b != payload(s, k as u32, len) {
                    return Err(format!("{node}: cast {k} from {s} corrupted"));
                }
            }
            if got_sends[s] != sends[s][t] {
                return Err(format!("{node} got {} sends from {s}, want {}", got_sends[s].len(), sends[s][t].len()));
            }
        }
        if let Some(e) = sim.events(node).iter().find(|e| matches!(e.event, Event::Error { .. })) {
            return Err(format!("{node}: {:?}", e.event));
        }
        if sim.stats(node).tx_oversize != 0 {
            return Err(format!("{node}: {} datagrams too large to send", sim.stats(node).tx_oversize));
        }
        for (layer, name) in
            [("nak", "buffered"), ("nak", "held"), ("pt2pt", "unacked"), ("pt2pt", "buffered"), ("frag", "sets")]
        {
            let v = counter(&sim, node, layer, name)?;
            if v != 0 {
                return Err(format!("{node}: {layer}.{name} = {v} after quiescence"));
            }
        }
    }
    Ok(())
}

#[test]
fn the_reliable_stack_delivers_everything_once_in_order() {
    check_seeds("the_reliable_stack_delivers_everything_once_in_order", 0..1000, |seed| scenario(seed, None));
}

/// The same with datagrams of 150 to 1,500 bytes and nothing sized in the spec: what `frag`
/// and `pack` send always fits, retransmissions and point-to-point headers included.
#[test]
fn the_reliable_stack_fills_small_datagrams_by_their_room() {
    check_seeds("the_reliable_stack_fills_small_datagrams_by_their_room", 0..300, |seed| {
        scenario(seed, Some(150 + (seed as usize * 7919) % 1351))
    });
}

/// A member's own casts are delivered by `nak` as it numbers them, and the bottom of the stack
/// sends them without looping them back (no unpacking, no layer below `nak` on the way up):
/// with nothing else in the turn, `nak` never sees one come back (`own_back`); large ones
/// come back to `frag` as sent (`rx_own`). Each is still delivered once, in order.
#[test]
fn own_casts_are_delivered_once_without_coming_back_up() {
    let ids: Vec<EndpointId> = (1..=3).map(EndpointId).collect();
    let mut sim: Sim = Sim::new(7);
    let registry = thoth_layers::registry();
    let nodes = sim.add_group(GroupId::named("own"), &ids, move |_: &View| registry.build(SPEC).expect("valid"));
    for k in 0..20 {
        // A cast alone in its turn, then a burst that `pack` puts in one datagram.
        let len = if k % 4 == 0 { 1500 } else { 50 };
        sim.cast(nodes[0], payload(0, k, len)).expect("cast");
        sim.run_for(Duration::from_micros(300));
    }
    for k in 20..30 {
        sim.cast(nodes[0], payload(0, k, 50)).expect("cast");
    }
    sim.run_until_quiet(Duration::from_secs(10)).expect("quiet");
    for &node in &nodes {
        let got: Vec<Bytes> = sim.delivered(node).iter().map(|d| d.data.clone()).collect();
        let want: Vec<Bytes> = (0..30).map(|k| payload(0, k, if k < 20 && k % 4 == 0 { 1500 } else { 50 })).collect();
        assert_eq!(got, want, "{node}: every cast once, in order");
    }
    assert_eq!(counter(&sim, nodes[0], "nak", "own_back"), Ok(0), "nothing came back up to nak");
    assert_eq!(counter(&sim, nodes[0], "frag", "rx_own"), Ok(5), "the fragmented ones delivered as sent");
}
