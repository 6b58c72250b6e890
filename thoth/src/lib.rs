//! Thoth: group communication in the line of Isis, Horus, Ensemble and JGroups.
//!
//! One dependency for applications: the core (`thoth_stack`), the layers (`thoth_layers`),
//! the failure detectors (`thoth_failure_detector`) and membership (`thoth_membership`)
//! re-exported, and one registry that knows every layer.
#![forbid(unsafe_code)]

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
