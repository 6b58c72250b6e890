//! Deterministic network simulator: many endpoints (or any `Simulated` machine: one built on
//! endpoints, a Group RPC member) in one process on a virtual clock, over
//! a seeded network that loses, duplicates, reorders, delays and corrupts datagrams, cuts
//! links (in one direction or both), and crashes and restarts endpoints.
//!
//! The simulator speaks the real wire format: every `Transmit` an endpoint outputs becomes
//! bytes and reaches its destinations through `handle_datagram`, so the frame check, the
//! layers' header codecs and the view filter all run as they do over UDP. Nothing in a run
//! depends on the wall clock, the OS or hash-map order: a run is a function of its seed and
//! its scenario, and `Sim::trace_hash` proves it.
//!
//! ```
//! use thoth_stack::sim::{Link, Sim};
//! use thoth_stack::{Duration, EndpointId, GroupId, Registry};
//!
//! let mut sim = Sim::new(7);
//! sim.set_default_link(Link { loss: 0.1, ..Link::default() });
//! let ids: Vec<EndpointId> = (1..=3).map(EndpointId).collect();
//! let nodes = sim.add_group(GroupId::named("demo"), &ids, |_view| Registry::new().build("bare").unwrap());
//! sim.cast(nodes[0], &b"hello"[..]).unwrap();
//! sim.run_for(Duration::from_millis(1));
//! assert_eq!(sim.delivered(nodes[0]).len(), 1); // a member delivers its own cast
//! ```
//!
//! Files: `world` (the `Sim` and its event loop), `net` (links, faults, partitions, the
//! datagram accounting), `node` (node slots, incarnations, what each application saw),
//! `agenda` (the (time, sequence) priority queue), `trace` (typed records and the stable
//! hash), `seed` (independent random streams per purpose), `replay` (seeded property checks
//! with a replay command). Each is unit-tested in place; `tests/sim.rs` tests the whole.

mod agenda;
mod net;
mod node;
mod replay;
mod seed;
mod trace;
mod world;

pub use net::{Link, NetStats};
pub use node::{Delivery, Factory, Kind, NodeEvent, NodeId, Simulated, Spawn};
pub use replay::{SEED_VAR, SEEDS_VAR, check_seeds, failed_seed, replay_command, seeds};
pub use trace::{Entry, Fate, Fnv, Observed, Record, digest};
pub use world::{CmdError, Limits, NotQuiet, Sim};
