//! Thoth's protocol layers, one file per layer, and the registry that names them.
//!
//! Each layer's file opens with its protocol, parameters, the properties it requires and
//! provides, the events it generates, and how it is tested. `registry()` holds every layer
//! a stack spec may name; `bare` (frame and CRC, no layers) is always there.
//!
//! # Example
//!
//! A group of three on the `reliable` stack, in the deterministic simulator over links that
//! lose a fifth of the datagrams: every member delivers every cast, once, in its sender's order.
//!
//! ```
//! use thoth_stack::sim::{Kind, Link, Sim};
//! use thoth_stack::{Duration, EndpointId, GroupId, View};
//!
//! let registry = thoth_layers::registry();
//! // A named stack stands for its spec, alone or inside a longer one ("chk_fifo:reliable").
//! assert_eq!(registry.stack_spec("reliable"), Some(thoth_layers::RELIABLE));
//!
//! let mut sim = Sim::new(42);
//! sim.set_default_link(Link { loss: 0.2, ..Link::default() });
//! let ids: Vec<EndpointId> = (1..=3).map(EndpointId).collect();
//! let stack = move |_: &View| registry.build("reliable").expect("the stack builds");
//! let nodes = sim.add_group(GroupId::named("doc"), &ids, stack);
//!
//! for k in 0..10u8 {
//!     sim.cast(nodes[0], vec![k]).unwrap();
//! }
//! sim.run_until_quiet(Duration::from_secs(10)).expect("the group goes quiet");
//!
//! for &n in &nodes {
//!     let got: Vec<u8> = sim.delivered(n).iter().filter(|d| d.kind == Kind::Cast).map(|d| d.data[0]).collect();
//!     assert_eq!(got, (0..10).collect::<Vec<u8>>(), "{n}");
//! }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use thoth_stack::Registry;

// Layer modules, one line each.
pub mod debug;
pub mod flow;
pub mod frag;
pub mod nak;
pub mod order;
pub mod pack;
pub mod pt2pt;
pub mod stable;

/// The registry of every layer in this crate.
pub fn registry() -> Registry {
    #[allow(unused_mut)]
    let mut r = Registry::new();
    // Registrations, one line each.
    flow::register(&mut r);
    pack::register(&mut r);
    nak::register(&mut r);
    stable::register(&mut r);
    debug::register(&mut r);
    frag::register(&mut r);
    pt2pt::register(&mut r);
    order::register(&mut r);
    r.register_stack("reliable", "the default reliable stack", RELIABLE);
    r.register_stack("reliable_total", "the reliable stack with total order by a sequencer", RELIABLE_TOTAL);
    r.register_stack("reliable_token", "the reliable stack with total order by a rotating token", RELIABLE_TOKEN);
    r.register_stack("reliable_lamport", "the reliable stack with total order by Lamport timestamps", RELIABLE_LAMPORT);
    r.register_stack("reliable_causal", "the reliable stack with causal order", RELIABLE_CAUSAL);
    r
}

/// The reliable stack with total order, top first: the ordering layer goes right above
/// `stable` (its count of casts is the reliable layer's, see `order`) and below flow control,
/// which then grants credit for what it delivered. Registered as `reliable_total`.
pub const RELIABLE_TOTAL: &str = "frag:flow:sequencer:stable:nak:pt2pt:pack";

/// The reliable stack with total order by a rotating token, top first (the ordering layer
/// where `RELIABLE_TOTAL` has it). Registered as `reliable_token`.
pub const RELIABLE_TOKEN: &str = "frag:flow:token:stable:nak:pt2pt:pack";

/// The reliable stack with total order by Lamport timestamps, top first (the ordering
/// layer where `RELIABLE_TOTAL` has it). Registered as `reliable_lamport`.
pub const RELIABLE_LAMPORT: &str = "frag:flow:lamport:stable:nak:pt2pt:pack";

/// The reliable stack with causal order, top first (the ordering layer where
/// `RELIABLE_TOTAL` has it). Registered as `reliable_causal`.
pub const RELIABLE_CAUSAL: &str = "frag:flow:causal:stable:nak:pt2pt:pack";

/// The default reliable stack, top first: fragmentation, flow control, stability, reliable
/// FIFO multicast, reliable FIFO point-to-point, packing. Registered as `reliable`.
pub const RELIABLE: &str = "frag:flow:stable:nak:pt2pt:pack";

/// The stack `thoth-perf` and the examples use when none is named.
pub const DEFAULT_STACK: &str = "reliable";
