//! Thoth's protocol layers, one file per layer, and the registry that names them.
//!
//! Each layer's file opens with its protocol, parameters, the properties it requires and
//! provides, the events it generates, and how it is tested. `registry()` holds every layer
//! a stack spec may name; `bare` (frame and CRC, no layers) is always there.
//!
//! Still to come (see the README): the ordering layers (causal, total), security, and the
//! checkers `chk_causal` and `chk_total`.
#![forbid(unsafe_code)]

use thoth_stack::Registry;

// Layer modules, one line each.
pub mod debug;
pub mod flow;
pub mod frag;
pub mod nak;
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
    r.register_stack("reliable", "the default reliable stack", RELIABLE);
    r
}

/// The default reliable stack, top first: fragmentation, flow control, stability, reliable
/// FIFO multicast, reliable FIFO point-to-point, packing. Registered as `reliable`.
pub const RELIABLE: &str = "frag:flow:stable:nak:pt2pt:pack";

/// The stack `thoth-perf` and the examples use when none is named.
pub const DEFAULT_STACK: &str = "reliable";
