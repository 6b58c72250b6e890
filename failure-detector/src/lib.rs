//! Failure detectors for Thoth (a later piece of work; nothing here yet).
//!
//! What will live here: layers that emit suspicions for the membership layers — a
//! heartbeat detector with a timeout, a phi-accrual detector (suspicion level from the
//! heartbeat inter-arrival distribution), and SWIM-style indirect probing — with defaults
//! that scale with the group's size. Their traffic is never held back by flow control.
#![forbid(unsafe_code)]
