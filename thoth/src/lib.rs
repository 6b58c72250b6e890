//! Thoth: group communication in the line of Isis, Horus, Ensemble and JGroups.
//!
//! One dependency for applications: the core (`thoth_stack`) and the layers
//! (`thoth_layers`) re-exported.
#![forbid(unsafe_code)]

pub use thoth_layers as layers;
pub use thoth_layers::{DEFAULT_STACK, RELIABLE, registry};
pub use thoth_stack::*;

/// The README's Rust examples, compiled and run as doctests so the README stays true.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
