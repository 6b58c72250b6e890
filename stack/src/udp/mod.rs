//! The UDP driver: runs one sans-IO `Machine` (an `Endpoint`, or a layer above one) over
//! UDP multicast (IPv4 or IPv6, any interface, loopback by default) or unicast fan-out, in
//! one of two ways over the same I/O core:
//!
//! ```text
//! thread (spawn):  app threads ── Handle::cast ──▶ command queue ──▶ driver thread ── sendmmsg ──▶
//!                  app threads ◀── Handle::recv ◀── event queue ◀──  (core, machine) ◀── recvmmsg ──
//! inline (inline): app thread ── Inline::cast ── machine ── sendmmsg ──▶
//!                  app thread ◀── Inline::recv ── machine ◀── recvmmsg ──
//! ```
//!
//! The driver thread suits applications with many threads, or that cannot call in often;
//! inline mode saves a thread hand-off each way (the latency of a round trip) and a thread,
//! but the owning thread must call a receive at least as often as the stack's timers fire.
//!
//! Use: `Sockets::open(&cfg)` binds and joins; build the endpoint with
//! `Config::new(group, sockets.id(), ids_of_all_members)` (ids from `endpoint_id` of each
//! member's unicast address), or `Config::joining(group, sockets.id())` with a membership
//! layer in the stack; `spawn(sockets, endpoint, &peer_addresses)` starts the driver thread,
//! `inline(sockets, endpoint, &peer_addresses)` returns the inline member (every member's
//! address for a fixed group, the seeds for a joining one: the core reaches the others at
//! the addresses their ids carry (IPv4, `endpoint_addr`) or learns them from their
//! datagrams).
//!
//! Files: `config` (settings, member ids), `socket` (opening the sockets), `sys` (the only
//! `unsafe`: sendmmsg / recvmmsg / ppoll / eventfd / forced buffers / own-copy BPF filter /
//! interface lookup), `routes` (where datagrams go, routes learned), `core` (sockets,
//! routes, outbox and batches, with no loop), `driver` (the driver thread's loop),
//! `queue`, `sync` and `shared` (what the handles and the driver thread share: the bounded
//! queues and their loom facade), `handle` (spawn and the application's handle), `inline`
//! (the caller's thread). Linux only.
//!
//! Tested by the unit tests of each file, `stack/tests/udp.rs` (real sockets on loopback, and
//! IPv6 inside a network namespace the test creates when the host's `lo` cannot carry IPv6
//! multicast), `stack/tests/udp_routes.rs` (learned and decoded routes, the view, view-change
//! answers, joining), `stack/tests/udp_bounds.rs` (every call and the shutdown return within
//! a bound, under back-pressure too) — each in both modes through `stack/tests/common` —
//! and `stack/tests/loom_queue.rs` (the queue under loom).

mod config;
mod core;
mod driver;
mod handle;
mod inline;
pub mod queue;
mod routes;
mod shared;
mod socket;
mod sync;
mod sys;

pub use config::{DEFAULT_GROUP, FlowPolicy, UdpConfig, endpoint_addr, endpoint_id};
pub use core::DriverStats;
pub use handle::{Handle, HandleError, SHUTDOWN_WAIT, spawn};
pub use inline::{Inline, inline};
pub use socket::{Granted, Sockets};

/// The index of the network interface that holds `addr` (`::1`, `127.0.0.1`: `lo`); 0 for
/// the unspecified address (the kernel chooses); `NotFound` if no interface holds it. This
/// is how `UdpConfig::interface` is resolved for IPv6.
pub fn interface_index(addr: std::net::IpAddr) -> std::io::Result<u32> {
    sys::interface_index(addr)
}
