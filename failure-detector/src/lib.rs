//! Failure detectors for Thoth: layers that watch the members of the view and raise
//! `Up::Suspect` for those that seem to have failed. Suspicion is not exclusion: the
//! membership layer (`gms`, in `thoth-membership`) verifies a suspicion and decides. Detection
//! traffic goes as unreliable casts and sends, which no reliable or flow-control layer holds
//! back. Each detector's file opens with its protocol, parameters, properties and tests.
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
