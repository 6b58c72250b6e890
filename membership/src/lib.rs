//! Virtual-synchrony membership for Thoth (a later piece of work; nothing here yet).
//!
//! What will live here: discovery and join, graceful leave, coordinator election, the
//! block / flush / install view change, merge after partition (N-way, with a reconcile
//! hook), opt-in primary partition, and state transfer to joiners at the flush cut. These
//! are layers high in the stack that talk to their peers through the reliable layers below;
//! each installed view makes the endpoint build a fresh stack (see
//! `thoth_stack::endpoint`).
#![forbid(unsafe_code)]
