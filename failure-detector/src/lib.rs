//! Failure detectors for Thoth: layers that watch the members of the view and raise
//! `Up::Suspect` for those that seem to have failed. Suspicion is not exclusion: the
//! membership layer (`gms`, in `thoth-membership`) verifies a suspicion and decides. Detection
//! traffic goes as unreliable casts and sends, which no reliable or flow-control layer holds
//! back. Each detector's file opens with its protocol, parameters, properties and tests.
//!
//! Three detectors, each a layer under its own name in a stack spec:
//! - [`heartbeat`]: every member casts a beat every period (its own traffic counts as one)
//!   and suspects a member silent for a timeout; the default in the `group` stack.
//! - [`phi`]: the phi-accrual detector, which learns each peer's heartbeat inter-arrival
//!   times and suspects by how unlikely the current silence is.
//! - [`swim`]: SWIM's direct and indirect probing, so that one broken link raises no
//!   suspicion while some other member reaches both ends.
//!
//! # Example
//!
//! Three members in the deterministic simulator, each running only the `heartbeat` detector
//! (beats every 20 ms, suspicion after 200 ms of silence); one crashes, and each survivor
//! raises `Event::Suspect` naming it, and no one else.
//!
//! ```
//! use thoth_stack::sim::Sim;
//! use thoth_stack::{Duration, EndpointId, Event, GroupId, Registry, View};
//!
//! let mut registry = Registry::new();
//! thoth_failure_detector::register(&mut registry);
//! let spec = "heartbeat(period_ms=20,timeout_ms=200)";
//! registry.build(spec)?; // checked once, before the simulator builds one per view
//!
//! let mut sim: Sim = Sim::new(3);
//! let ids: Vec<EndpointId> = (1..=3).map(EndpointId).collect();
//! let stack = move |_: &View| registry.build(spec).expect("checked");
//! let nodes = sim.add_group(GroupId::named("doc"), &ids, stack);
//! sim.run_for(Duration::from_millis(100));
//! let crash_at = sim.now();
//! sim.crash(nodes[2]);
//! sim.run_for(Duration::from_millis(400));
//!
//! for &n in &nodes[..2] {
//!     let suspicions: Vec<_> = sim
//!         .events(n)
//!         .iter()
//!         .filter_map(|e| match &e.event {
//!             Event::Suspect(who) => Some((e.at, who.clone())),
//!             _ => None,
//!         })
//!         .collect();
//!     assert_eq!(suspicions.len(), 1, "once, not at every check");
//!     let (at, who) = &suspicions[0];
//!     assert_eq!(who, &[ids[2]]);
//!     assert!(at.since(crash_at) <= Duration::from_millis(220), "within the timeout and a period");
//! }
//! Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use thoth_stack::Registry;

// Detector modules, one line each.
pub mod heartbeat;
pub mod phi;
pub mod swim;

/// Registers every detector of this crate.
pub fn register(r: &mut Registry) {
    // Registrations, one line each.
    swim::register(r);
    heartbeat::register(r);
    phi::register(r);
}
