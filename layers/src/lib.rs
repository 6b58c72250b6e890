//! Thoth's protocol layers, one file per layer, and the registry that names them.
//!
//! Each layer's file opens with its protocol, parameters, the properties it requires and
//! provides, the events it generates, and how it is tested. `registry()` holds every layer
//! a stack spec may name; `bare` (frame and CRC, no layers) is always there.
#![forbid(unsafe_code)]

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
