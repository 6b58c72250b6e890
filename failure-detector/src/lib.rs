//! Failure detectors for Thoth: layers that watch the members of the view and raise
//! `Up::Suspect` for those that seem to have failed. Suspicion is not exclusion: the
//! membership layers (a later piece of work) verify a suspicion and decide. Detection
//! traffic goes as unreliable casts and sends, which no reliable or flow-control layer holds
//! back. Each detector's file opens with its protocol, parameters, properties and tests.
//!
//! Still to come with membership: exclusion of suspected members by a view change.
#![forbid(unsafe_code)]

use thoth_stack::Registry;

// Detector modules, one line each.
pub mod heartbeat;
pub mod phi;
pub mod swim;

/// Registers every detector of this crate.
pub fn register(r: &mut Registry) {
    // Registrations, one line each.
    swim::register(r);
    heartbeat::register(r);
    phi::register(r);
}
