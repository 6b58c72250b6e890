//! The locks the driver's queues use, through one door (tokio's `src/loom` pattern): std's
//! normally, loom's when the crate is built with `RUSTFLAGS="--cfg loom"`, so the model test
//! `stack/tests/loom_queue.rs` explores the very code the driver runs.
//!
//! Poisoning is ignored: every critical section in `queue` is a few field updates and
//! `VecDeque` moves with no user code, so a panic elsewhere cannot leave the state torn.

#[cfg(loom)]
pub(crate) use loom::sync::{Condvar, Mutex, MutexGuard};
#[cfg(not(loom))]
pub(crate) use std::sync::{Condvar, Mutex, MutexGuard};

use std::time::Duration;

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn wait<'a, T>(cv: &Condvar, g: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
    cv.wait(g).unwrap_or_else(|e| e.into_inner())
}

/// Waits at most `d` (loom does not model time: there it waits for a notification).
pub(crate) fn wait_timeout<'a, T>(cv: &Condvar, g: MutexGuard<'a, T>, d: Duration) -> MutexGuard<'a, T> {
    match cv.wait_timeout(g, d) {
        Ok((g, _)) => g,
        Err(e) => e.into_inner().0,
    }
}
