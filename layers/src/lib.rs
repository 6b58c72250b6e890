//! Thoth's protocol layers, one file per layer, and the registry that names them.
//!
//! What will live here (the reliable multicast path is the next piece of work): `nak`
//! (reliable FIFO multicast by negative acknowledgement), `pt2pt` (reliable FIFO
//! point-to-point), `stable` (stability detection), `frag` (fragmentation), `flow`
//! (credit-based flow control), `pack` (packing small messages under backlog), the ordering
//! layers (causal, total), security, and the debug layers (`drop`, `dup`, `delay`,
//! `shuffle`, `partition`, and the checkers `chk_fifo`, `chk_causal`, `chk_total`,
//! `chk_vsync`).
//!
//! `registry()` is the registry of every layer a stack spec may name. It holds no layer yet,
//! so the only stack it builds is `bare` (frame and CRC, no layers).
#![forbid(unsafe_code)]

use thoth_stack::Registry;

/// The registry of every layer in this crate.
pub fn registry() -> Registry {
    Registry::new()
}

/// The stack `thoth-perf` and the examples use when none is named.
pub const DEFAULT_STACK: &str = "bare";
