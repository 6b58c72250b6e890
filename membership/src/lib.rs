//! Virtual-synchrony membership for Thoth: the `gms` layer (discovery and join, leave,
//! failure-driven view changes with a flush, coordinator failover, N-way merge after a
//! partition, opt-in primary partition, state transfer to joiners). It sits above the
//! reliable layers and below the application (or a checker such as `chk_vsync`); each view it
//! installs makes the endpoint build a fresh stack (see `thoth_stack::endpoint`).
//!
//! The protocol, its parameters (spec `gms(key=value,...)`, [`gms::Config`]), properties
//! and tests are in the [`gms`] module's doc. The usual stack is `gms:heartbeat:reliable`,
//! which the `thoth` crate names `group` (and `total` with the sequencer's total order).
//!
//! # Example
//!
//! Three endpoints started with no member list (`Config::joining`) in the deterministic
//! simulator find each other and end in one view of three; a cast in that view reaches
//! every member.
//!
//! ```
//! use thoth_stack::sim::{Kind, Sim};
//! use thoth_stack::{Config, Duration, Endpoint, EndpointId, Event, GroupId};
//!
//! let mut registry = thoth_layers::registry();
//! thoth_failure_detector::register(&mut registry);
//! thoth_membership::register(&mut registry);
//! // Membership over heartbeat failure detection over the reliable stack; a new endpoint
//! // looks for its group for 100 ms (default 300) before it forms one.
//! let spec = "gms(discover_ms=100):heartbeat:reliable";
//!
//! let mut sim: Sim = Sim::new(1);
//! let group = GroupId::named("doc");
//! let nodes: Vec<_> = (1..=3)
//!     .map(|k| {
//!         let registry = registry.clone();
//!         sim.add_node(move |spawn| {
//!             let cfg = Config { seed: spawn.seed, ..Config::joining(group, EndpointId(k)) };
//!             Endpoint::from_spec(cfg, &registry, spec).expect("the stack builds")
//!         })
//!     })
//!     .collect();
//! sim.run_for(Duration::from_millis(300));
//!
//! // Every member's latest view: the same one, of all three (ranked oldest first: the
//! // lowest id formed the group, the others joined it).
//! let latest = |sim: &Sim, n| {
//!     sim.events(n).iter().rev().find_map(|e| match &e.event {
//!         Event::View(v) => Some(v.clone()),
//!         _ => None,
//!     })
//! };
//! let view = latest(&sim, nodes[0]).expect("a view");
//! assert_eq!(view.members, [EndpointId(1), EndpointId(2), EndpointId(3)]);
//! assert!(nodes.iter().all(|&n| latest(&sim, n).map(|v| v.id) == Some(view.id)));
//!
//! sim.cast(nodes[2], &b"hello"[..])?;
//! sim.run_for(Duration::from_millis(20));
//! for &n in &nodes {
//!     assert!(sim.delivered(n).iter().any(|d| d.kind == Kind::Cast && &d.data[..] == b"hello"));
//! }
//! Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use thoth_stack::Registry;

pub mod gms;

/// Registers every layer of this crate.
pub fn register(r: &mut Registry) {
    gms::register(r);
}
