//! Thoth: group communication in the line of Isis, Horus, Ensemble and JGroups.
//!
//! One dependency for applications: the core (`thoth_stack`), the layers (`thoth_layers`)
//! and the failure detectors (`thoth_failure_detector`) re-exported, and one registry that
//! knows every layer.
#![forbid(unsafe_code)]

pub use thoth_failure_detector as failure_detector;
pub use thoth_layers as layers;
pub use thoth_layers::{DEFAULT_STACK, RELIABLE};
pub use thoth_stack::*;

/// The registry of every layer and failure detector a stack spec may name.
pub fn registry() -> Registry {
    let mut r = thoth_layers::registry();
    thoth_failure_detector::register(&mut r);
    r
}

/// The README's Rust examples, compiled and run as doctests so the README stays true.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
