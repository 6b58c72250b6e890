//! Each failure detector inside the default reliable stack, over the simulator: members keep
//! casting under loss, one crashes, every live member suspects it (and nobody else) in time,
//! and the reliable traffic among the survivors goes on.
//!
//! `THOTH_SIM_SEEDS=N` runs more seeds; `THOTH_SIM_SEED=S` replays one.

use thoth::sim::{Link, Sim, check_seeds};
use thoth::{Bytes, Duration, EndpointId, Event, GroupId, Time, View};

/// Simulated time from the crash until every live member must suspect the crashed one: the
/// slowest default detector (swim, 4 members: 2·(n−1)·period = 2 s) with room to spare.
const DETECT: Duration = Duration::from_secs(3);

fn scenario(detector: &'static str, seed: u64) -> Result<(), String> {
    let spec = format!("frag:flow:stable:nak:pt2pt:{detector}:pack");
    let registry = thoth::registry();
    registry.build(&spec).map_err(|e| e.to_string())?;
    let mut sim: Sim = Sim::new(seed);
    sim.set_default_link(Link { loss: 0.05, jitter: Duration::from_micros(300), ..Link::default() });
    let ids: Vec<EndpointId> = (1..=4).map(EndpointId).collect();
    let nodes = sim.add_group(GroupId::named(detector), &ids, move |_: &View| registry.build(&spec).expect("checked"));
    let cast_round = |sim: &mut Sim, k: u32| {
        for &n in &nodes {
            if sim.is_up(n) {
                // Flow control may refuse a cast; the test needs traffic, not every cast.
                let _ = sim.cast(n, Bytes::from(format!("{k}")));
            }
        }
    };
    for k in 0..200 {
        cast_round(&mut sim, k);
        sim.run_for(Duration::from_millis(5));
    }
    let crash_at = sim.now();
    sim.crash(nodes[3]);
    // Past the detection bound, so deliveries after it can be checked.
    for k in 200..1200 {
        cast_round(&mut sim, k);
        sim.run_for(Duration::from_millis(5));
    }
    for &n in &nodes[..3] {
        let mut suspected_at: Option<Time> = None;
        for e in sim.events(n) {
            if let Event::Suspect(who) = &e.event {
                if who.iter().any(|&w| w != ids[3]) || e.at < crash_at {
                    return Err(format!("{n} suspected {who:?} at {:?} (crash at {crash_at:?})", e.at));
                }
                suspected_at.get_or_insert(e.at);
            }
        }
        let at = suspected_at.ok_or(format!("{n} never suspected the crashed member"))?;
        if at.since(crash_at) > DETECT {
            return Err(format!("{n} took {:?} to suspect", at.since(crash_at)));
        }
        // Survivors keep delivering each other's casts after the crash.
        let late = sim.delivered(n).iter().filter(|d| d.at > crash_at + DETECT && d.from != ids[3]).count();
        if late == 0 {
            return Err(format!("{n} delivered nothing after the crash"));
        }
    }
    Ok(())
}

#[test]
fn heartbeat_in_the_reliable_stack() {
    check_seeds("heartbeat_in_the_reliable_stack", 0..20, |s| scenario("heartbeat", s));
}

#[test]
fn phi_in_the_reliable_stack() {
    check_seeds("phi_in_the_reliable_stack", 0..20, |s| scenario("phi", s));
}

#[test]
fn swim_in_the_reliable_stack() {
    check_seeds("swim_in_the_reliable_stack", 0..20, |s| scenario("swim", s));
}
