//! What a UDP member is configured with (`UdpConfig`), and how members are named from their
//! unicast addresses (`endpoint_id`), so that every member computes the same ids for the same
//! peer list without any exchange, and the driver can tell where an id lives from the source
//! address of its datagrams (learned routes: a member that joins through a few seeds is
//! reached by everyone it has talked to; see `driver`).
//!
//! Tested by the unit tests below (ids deterministic, distinct, never 0, IPv4-mapped IPv6
//! equal to IPv4; defaults as documented).

use crate::ids::{EndpointId, fnv1a};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// The default group: 239.84.72.1:47474 ("T", "H" in the organisation-local scope).
pub const DEFAULT_GROUP: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(239, 84, 72, 1)), 47474);

/// How a member's sockets are set up and how its driver is sized.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UdpConfig {
    /// The multicast group and port. IPv4 (default 239.84.72.1:47474) or IPv6
    /// (e.g. `[ff15::7468]:47474`, with `interface` and `bind` IPv6 too).
    pub group: SocketAddr,
    /// The multicast interface, named by one of its local addresses: `127.0.0.1` (default,
    /// loopback) or `::1` (IPv6: resolved to the index of the interface that holds it, `lo`;
    /// see `interface_index`). The unspecified address lets the kernel choose.
    pub interface: IpAddr,
    /// This member's unicast socket (default 127.0.0.1:0; `[::1]:0` with an IPv6 group). Use
    /// a specific address: the member's id is computed from the bound address.
    pub bind: SocketAddr,
    /// Unicast fan-out: no multicast socket; a cast goes to every configured peer's unicast
    /// address (the seeds, with a changing membership) and to the routes learned from the
    /// view's members' datagrams; gossip to the group goes to the configured peers and every
    /// learned route (see `driver`).
    pub fanout: bool,
    /// Multicast TTL (IPv4) / hop limit (IPv6). Default 1: the local link. On the loopback
    /// interface nothing leaves the host anyway; 0 would keep datagrams on the host everywhere.
    pub ttl: u32,
    /// Requested SO_RCVBUF (default 8 MiB). If the kernel grants less, SO_RCVBUFFORCE is
    /// tried (it needs CAP_NET_ADMIN); `Sockets::granted` reports the outcome.
    pub recv_buffer: usize,
    /// Requested SO_SNDBUF (default 4 MiB), same treatment with SO_SNDBUFFORCE.
    pub send_buffer: usize,
    /// Most datagrams per sendmmsg / recvmmsg (default 64).
    pub batch: usize,
    /// Bound of the application → driver command queue (default 8192 commands): `cast`
    /// blocks and `try_cast` fails with `WouldBlock` when it is full.
    pub queue: usize,
    /// Bound of the same queue in payload bytes (default 4 MiB), so large messages do not
    /// pile up by the thousand; one command is always taken, however large.
    pub queue_bytes: usize,
    /// Bound of the driver → application event queue (default 65536). While it is full the
    /// driver stops reading its sockets (the kernel then drops, as it would for raw UDP);
    /// the driver itself never drops an event. Commands are still taken meanwhile, so the
    /// local deliveries of this member's own casts wait in the driver behind the full queue:
    /// an application that casts must also take its events.
    pub events: usize,
    /// Bound of the same queue in payload bytes (default 32 MiB); one event is always taken.
    pub events_bytes: usize,
    /// What `Handle::cast` does while flow control holds casts back: wait (`Block`, the
    /// default) or fail at once with `HandleError::WouldBlock`.
    pub flow: FlowPolicy,
    /// Drop the multicast loopback copies of this member's own casts in the kernel (a BPF
    /// filter on the multicast socket matching this member's unicast source address), instead
    /// of reading, checking and discarding each one as `rx_own` (default true). The endpoint
    /// delivers its own casts locally either way.
    pub filter_own: bool,
}

/// What a cast does when flow control (or a full command queue) holds it back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FlowPolicy {
    /// `Handle::cast` waits.
    #[default]
    Block,
    /// `Handle::cast` returns `HandleError::WouldBlock`.
    WouldBlock,
}

impl Default for UdpConfig {
    fn default() -> Self {
        UdpConfig {
            group: DEFAULT_GROUP,
            interface: IpAddr::V4(Ipv4Addr::LOCALHOST),
            bind: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            fanout: false,
            ttl: 1,
            recv_buffer: 8 << 20,
            send_buffer: 4 << 20,
            batch: 64,
            queue: 8192,
            queue_bytes: 4 << 20,
            events: 65536,
            events_bytes: 32 << 20,
            flow: FlowPolicy::Block,
            filter_own: true,
        }
    }
}

/// The id of the member whose unicast socket is `addr`: FNV-1a over the address bytes
/// (4 for IPv4, 16 for IPv6; an IPv4-mapped IPv6 address counts as IPv4) followed by the
/// port, big-endian. Never 0 (0 is the "nobody" default of `EndpointId`).
pub fn endpoint_id(addr: SocketAddr) -> EndpointId {
    let mut buf = [0u8; 18];
    let n = match addr.ip().to_canonical() {
        IpAddr::V4(a) => {
            buf[..4].copy_from_slice(&a.octets());
            4
        }
        IpAddr::V6(a) => {
            buf[..16].copy_from_slice(&a.octets());
            16
        }
    };
    buf[n..n + 2].copy_from_slice(&addr.port().to_be_bytes());
    match fnv1a(&buf[..n + 2]) {
        0 => EndpointId(1),
        h => EndpointId(h),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::net::Ipv6Addr;

    #[test]
    fn ids_are_deterministic_and_follow_the_bytes() {
        let a: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        assert_eq!(endpoint_id(a), endpoint_id(a));
        // FNV-1a of 7f 00 00 01 13 88, computed by hand from the definition.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in [0x7f, 0, 0, 1, 0x13, 0x88] {
            h = (h ^ b).wrapping_mul(0x0100_0000_01b3);
        }
        assert_eq!(endpoint_id(a), EndpointId(h));
    }

    #[test]
    fn ids_differ_by_port_and_address() {
        let mut seen = HashSet::new();
        for ip in ["127.0.0.1", "127.0.0.2", "10.0.0.1", "::1", "fe80::1"] {
            for port in [0u16, 1, 47474, 65535] {
                let id = endpoint_id(SocketAddr::new(ip.parse().unwrap(), port));
                assert_ne!(id, EndpointId(0));
                assert!(seen.insert(id), "collision for {ip}:{port}");
            }
        }
    }

    #[test]
    fn mapped_ipv6_is_ipv4() {
        let v4: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let mapped = SocketAddr::new(IpAddr::V6(Ipv4Addr::LOCALHOST.to_ipv6_mapped()), 9);
        assert_eq!(endpoint_id(v4), endpoint_id(mapped));
        let v6 = SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 9);
        assert_ne!(endpoint_id(v4), endpoint_id(v6));
    }

    #[test]
    fn defaults() {
        let c = UdpConfig::default();
        assert_eq!(c.group, "239.84.72.1:47474".parse().unwrap());
        assert!(c.group.ip().is_multicast());
        assert_eq!(c.interface, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(c.bind, "127.0.0.1:0".parse().unwrap());
        assert_eq!((c.fanout, c.ttl, c.batch, c.queue, c.events), (false, 1, 64, 8192, 65536));
        assert_eq!((c.recv_buffer, c.send_buffer), (8 << 20, 4 << 20));
        assert!(c.filter_own);
    }
}
