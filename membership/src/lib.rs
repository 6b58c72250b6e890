//! Virtual-synchrony membership for Thoth: the `gms` layer (discovery and join, leave,
//! failure-driven view changes with a flush, coordinator failover, N-way merge after a
//! partition, opt-in primary partition, state transfer to joiners). It sits above the
//! reliable layers and below the application (or a checker such as `chk_vsync`); each view it
//! installs makes the endpoint build a fresh stack (see `thoth_stack::endpoint`).
#![forbid(unsafe_code)]

use thoth_stack::Registry;

pub mod gms;

/// Registers every layer of this crate.
pub fn register(r: &mut Registry) {
    gms::register(r);
}
