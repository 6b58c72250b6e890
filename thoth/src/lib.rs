//! Thoth: group communication in the line of Isis, Horus, Ensemble and JGroups.
//!
//! The members of a group cast messages to each other, and every member delivers them with
//! the guarantees of the stack the group runs: a stack of small protocol layers, each one
//! automaton with one job (fragmentation, flow control, reliable FIFO multicast, total or
//! causal order, failure detection, virtual-synchrony membership), composed by name. The
//! stack runs inside a group endpoint ([`Endpoint`]) that is *sans-IO*: time, randomness and
//! datagrams come in as arguments and go out as data, so the same endpoint runs over UDP
//! multicast or, whole groups at once, in a seeded simulator that replays any run from its
//! seed.
//!
//! This crate is the one dependency for applications: it re-exports the crates below and
//! offers one [`registry()`] that knows every layer and named stack. The repository's README
//! walks through more (a layer of your own, sealed groups, many groups on one socket,
//! replicated objects), and `examples/` holds small programs (a chat, a replicated counter,
//! a custom layer, the chat on tokio).
//!
//! # The crates
//!
//! - [`thoth_stack`], re-exported at the root of this crate: the core. Events and the layer
//!   contract ([`Layer`], [`Up`], [`Dn`]), stacks and their composition ([`Stack`],
//!   [`Registry`]), the [`Endpoint`] and its [`Config`] and [`Event`]s, security
//!   ([`Security`]: a shared group secret, or member key pairs), [`Metrics`], many groups
//!   behind one socket pair ([`groups`]), and the two drivers, [`udp`] and [`sim`].
//! - [`layers`] (`thoth-layers`): the protocol layers — `frag`, `flow`, `stable`, `nak`,
//!   `pt2pt`, `pack`, the orders (`sequencer`, `token`, `lamport`, `causal`) — and layers for
//!   tests (fault injectors such as `drop(p=..)`, checkers such as `chk_fifo`, `chk_vsync`).
//! - [`failure_detector`] (`thoth-failure-detector`): `heartbeat`, `phi` (phi accrual) and
//!   `swim` (indirect probing), layers that raise suspicions.
//! - [`membership`] (`thoth-membership`): `gms`, virtual-synchrony membership: join, leave,
//!   view changes with a flush, partition merge, primary partition, state transfer.
//!
//! Group RPC and replicated objects are `thoth-grpc`, a crate of its own over the same core.
//!
//! # Composing a stack
//!
//! A stack is a spec, top layer first, as Horus wrote them: `"frag:flow:stable:nak:pt2pt:pack"`,
//! with parameters where a layer takes some (`"gms(primary=1):heartbeat:reliable"`). A named
//! stack stands for its spec, alone or inside a longer one. [`registry()`] names these:
//!
//! - `reliable` ([`RELIABLE`]): reliable FIFO multicast and point to point, with flow
//!   control, fragmentation and packing, for a fixed member list.
//! - `reliable_total`: `reliable` with the sequencer's total order (`reliable_token`,
//!   `reliable_lamport` and `reliable_causal` choose another order).
//! - `group` ([`GROUP`]): a dynamic group: membership over heartbeat failure detection over
//!   `reliable`.
//! - `total` ([`TOTAL`]): `group` whose casts every member delivers in one order.
//!
//! [`Endpoint::from_spec`] builds an endpoint from a spec (checked once, then built afresh
//! for every view); [`Registry::build`] builds a stack, and [`Registry::known`] lists every
//! name with a line about it. A layer of your own goes into a registry with
//! [`Registry::register`], or into a stack in code with [`Stack::builder`]. A layer that
//! needs a property no layer below it provides is refused when the stack is built.
//!
//! # Running it
//!
//! - [`udp`]: [`udp::spawn`] runs an endpoint on a driver thread of its own over UDP
//!   multicast (or unicast fan-out), and hands back a [`udp::Handle`] any thread casts
//!   through and receives events from; [`udp::inline`] runs it on the caller's thread.
//!   With the `tokio` feature, `aio` puts an async face on the same driver: `aio::split`
//!   gives an `AsyncHandle` whose casts are awaited and the events as a `Stream`.
//! - [`sim`]: [`sim::Sim`] runs many endpoints (or any machine built on them) on a virtual
//!   clock over a seeded network that loses, duplicates, reorders, delays and corrupts
//!   datagrams, cuts links and crashes members; a run is a function of its seed.
//!
//! A member over UDP in a dynamic group looks like this (a sketch: see the README for
//! complete programs):
//!
//! ```no_run
//! use thoth::udp::{self, Sockets, UdpConfig};
//! use thoth::{Bytes, Config, Endpoint, Event, GroupId};
//!
//! let sockets = Sockets::open(&UdpConfig::default())?;
//! let config = Config::joining(GroupId::named("chat"), sockets.id());
//! let member = udp::spawn(sockets, Endpoint::from_spec(config, &thoth::registry(), "group")?, &[])?;
//! member.cast(Bytes::from_static(b"hello"))?;
//! while let Some(event) = member.recv() {
//!     match event {
//!         Event::View(v) => println!("{} members", v.len()),
//!         Event::Cast { from, data } => println!("{from}: {data:?}"),
//!         _ => {}
//!     }
//! }
//! Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Features
//!
//! - `tokio`: the async front end, `thoth::aio`.
//! - `trace`: per-event tracing (`tracing`, at `trace` level) at the layer boundary in
//!   release builds too; debug builds always have it. View changes, flush steps and
//!   suspicions are traced at `info` in every build.
//! - `testing`: `thoth::testing`, the harness that drives one layer an event at a time as
//!   the stack would, for a layer's unit tests (take it as a dev-dependency).
//!
//! # Example
//!
//! Three members of a fixed group in the simulator, on the named stack `total`: each casts
//! once, and every member delivers the three casts in one order.
//!
//! ```
//! use thoth::sim::{Kind, Sim};
//! use thoth::{Bytes, Duration, EndpointId, GroupId, View};
//!
//! let registry = thoth::registry();
//! assert_eq!(registry.stack_spec("total"), Some(thoth::TOTAL));
//!
//! let mut sim: Sim = Sim::new(11);
//! let ids: Vec<EndpointId> = (1..=3).map(EndpointId).collect();
//! let stack = move |_: &View| registry.build("total").expect("the stack builds");
//! let nodes = sim.add_group(GroupId::named("doc"), &ids, stack);
//! for (k, &n) in nodes.iter().enumerate() {
//!     sim.cast(n, format!("cast {k}"))?;
//! }
//! sim.run_for(Duration::from_millis(50));
//!
//! let casts = |n| -> Vec<Bytes> {
//!     sim.delivered(n).iter().filter(|d| d.kind == Kind::Cast).map(|d| d.data.clone()).collect()
//! };
//! let order = casts(nodes[0]);
//! assert_eq!(order.len(), 3);
//! assert!(nodes.iter().all(|&n| casts(n) == order), "one order at every member");
//! Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub use thoth_failure_detector as failure_detector;
pub use thoth_layers as layers;
pub use thoth_layers::{DEFAULT_STACK, RELIABLE};
pub use thoth_membership as membership;
pub use thoth_stack::*;

#[cfg(feature = "tokio")]
pub mod aio;

/// The stack of a dynamic group: membership over the heartbeat detector over the reliable
/// stack. Registered as the named stack `group`.
pub const GROUP: &str = "gms:heartbeat:reliable";

/// The stack of a dynamic group with total order: `group` with the sequencer's total order
/// in its reliable stack. Registered as the named stack `total`.
pub const TOTAL: &str = "gms:heartbeat:reliable_total";

/// The registry of every layer and failure detector a stack spec may name, and the named
/// stacks `reliable`, `reliable_total`, `group` and `total`.
pub fn registry() -> Registry {
    let mut r = thoth_layers::registry();
    thoth_failure_detector::register(&mut r);
    thoth_membership::register(&mut r);
    r.register_stack("group", "membership, heartbeat detection, the reliable stack", GROUP);
    r.register_stack("total", "a group with total order (sequencer)", TOTAL);
    r
}

/// The README's Rust examples, compiled and run as doctests so the README stays true.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
