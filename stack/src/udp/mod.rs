//! The UDP driver: runs one sans-IO `Endpoint` over UDP multicast (IPv4 or IPv6, any
//! interface, loopback by default) or unicast fan-out, on a thread of its own, and gives the
//! application a thread-safe `Handle`.
//!
//! ```text
//!  app threads ── Handle::cast/send ──▶ command queue ──▶ driver thread ── sendmmsg ──▶ socket
//!  app threads ◀── Handle::recv_many ◀── event queue ◀──   (Endpoint)   ◀── recvmmsg ── sockets
//! ```
//!
//! Use: `Sockets::open(&cfg)` binds and joins; build the endpoint with
//! `Config::new(group, sockets.id(), ids_of_all_members)` (ids from `endpoint_id` of each
//! member's unicast address), or `Config::joining(group, sockets.id())` with a membership
//! layer in the stack; `spawn(sockets, endpoint, &peer_addresses)` starts the driver (every
//! member's address for a fixed group, the seeds for a joining one: the driver reaches the
//! others at the addresses their ids carry (IPv4, `endpoint_addr`) or learns them from their
//! datagrams).
//!
//! Files: `config` (settings, member ids), `socket` (opening the sockets), `sys` (the only
//! `unsafe`: sendmmsg / recvmmsg / ppoll / eventfd / forced buffers / own-copy BPF filter /
//! interface lookup), `queue` and `sync` (the bounded queues and their loom facade),
//! `routes` (where datagrams go, routes learned), `driver` (the loop), `handle` (spawn and the application's handle). Linux only.
//!
//! Tested by the unit tests of each file, `stack/tests/udp.rs` (real sockets on loopback, and
//! IPv6 inside a network namespace the test creates when the host's `lo` cannot carry IPv6
//! multicast), `stack/tests/udp_routes.rs` (learned and decoded routes, the handle's view,
//! view-change answers, joining), `stack/tests/udp_bounds.rs` (every handle call and the
//! shutdown return within a bound, under back-pressure too) and `stack/tests/loom_queue.rs`
//! (the queue under loom).

mod config;
mod core;
mod driver;
mod handle;
pub mod queue;
mod routes;
mod shared;
mod socket;
mod sync;
mod sys;

pub use config::{DEFAULT_GROUP, FlowPolicy, UdpConfig, endpoint_addr, endpoint_id};
pub use core::DriverStats;
pub use handle::{Handle, HandleError, SHUTDOWN_WAIT, spawn};
pub use socket::{Granted, Sockets};

/// The index of the network interface that holds `addr` (`::1`, `127.0.0.1`: `lo`); 0 for
/// the unspecified address (the kernel chooses); `NotFound` if no interface holds it. This
/// is how `UdpConfig::interface` is resolved for IPv6.
pub fn interface_index(addr: std::net::IpAddr) -> std::io::Result<u32> {
    sys::interface_index(addr)
}
