//! SIGTERM (and SIGINT) as a flag the binaries' event loops poll, so they stop cleanly
//! (leave their groups, save what they must) instead of dying in the middle of a turn.

use std::sync::atomic::{AtomicBool, Ordering};

static TERM: AtomicBool = AtomicBool::new(false);

extern "C" fn on_term(_: libc::c_int) {
    TERM.store(true, Ordering::Relaxed);
}

/// Installs the handler for SIGTERM, and for SIGINT too if `interrupt`.
pub fn install(interrupt: bool) {
    let handler: extern "C" fn(libc::c_int) = on_term;
    let signals: &[libc::c_int] = if interrupt { &[libc::SIGTERM, libc::SIGINT] } else { &[libc::SIGTERM] };
    for &s in signals {
        // SAFETY: `on_term` is async-signal-safe (one relaxed atomic store).
        unsafe {
            libc::signal(s, handler as libc::sighandler_t);
        }
    }
}

/// Whether a signal asked the process to stop.
pub fn asked() -> bool {
    TERM.load(Ordering::Relaxed)
}
