//! What a UDP member is configured with (`UdpConfig`), and how members are named from their
//! unicast addresses (`endpoint_id`), so that every member computes the same ids for the same
//! peer list without any exchange, and the driver can tell where an id lives.
//!
//! An IPv4 member's id *is* its address: `endpoint_id` packs the address and the port into
//! the id and `endpoint_addr` unpacks them, so any member can reach any other whose id it
//! holds (a view lists them), whether or not it was configured with its address or ever
//! heard from it (see `driver`). An IPv6 address does not fit in 64 bits: its id is a hash,
//! and an IPv6 member is reached only through a configured address or a route learned from
//! its datagrams: in IPv6 fan-out a member that joined through a seed and an older member
//! that never heard from it cannot reach each other (the gap that IPv4 ids close; multicast
//! casts are not affected).
//!
//! Tested by the unit tests below (ids deterministic, distinct, never 0, IPv4 ids round-trip
//! and IPv4-mapped IPv6 equal to IPv4, IPv6 ids never decode; defaults as documented).

use crate::ids::{EndpointId, fnv1a};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

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
    /// a specific address: the member's id is computed from the bound address, and for IPv4
    /// it is how the others reach the member (an unspecified address cannot be sent to).
    pub bind: SocketAddr,
    /// Unicast fan-out: no multicast socket; a cast goes to every other member of the
    /// current view, at its configured address, else the route learned from its datagrams,
    /// else (IPv4) the address its id carries (`endpoint_addr`); gossip to the group goes to
    /// the configured peers (the seeds, with a changing membership), every learned route and
    /// the view's members (see `driver`).
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
    /// blocks and `try_cast` fails with `WouldBlock` when it is full. It counts every
    /// command accepted and not yet handed to the endpoint, those the driver keeps behind a
    /// cast that flow control holds included.
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
    /// Longest wait of `Handle::cast` (under `FlowPolicy::Block`) and `Handle::send` for
    /// room in the command queue (default 5 s, JGroups' `max_block_time`); then they fail
    /// with `HandleError::WouldBlock` and the message is not taken. A receiver that stopped
    /// reading holds the sender's casts for as long as it stays in the view: this bounds
    /// how long an application thread waits for it. `Duration::MAX`: as long as it takes
    /// (until `shutdown`).
    pub block_timeout: Duration,
    /// Drop the multicast loopback copies of this member's own casts in the kernel (a BPF
    /// filter on the multicast socket matching this member's unicast source address), instead
    /// of reading, checking and discarding each one as `rx_own` (default true). The endpoint
    /// delivers its own casts locally either way.
    pub filter_own: bool,
    /// Inline mode (`Inline`): how long a receive keeps reading the sockets before it sleeps
    /// in `ppoll` (default zero: it sleeps at once). Spinning trades a core for the wake-up
    /// latency of a sleeping thread; it is bounded by the receive's own timeout. Between reads
    /// the spinning thread yields its core (`sched_yield`), so that processes spinning on
    /// fewer cores than they are take turns at once instead of by time slices (three inline
    /// members on two cores: a round trip's p99 of milliseconds without it).
    pub busy_poll: Duration,
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
            block_timeout: Duration::from_secs(5),
            filter_own: true,
            busy_poll: Duration::ZERO,
        }
    }
}

/// The tag of an IPv4 id: bit 63 set, bits 48 to 62 clear; the address is in bits 16..48 and
/// the port in bits 0..16. An IPv6 id always has bit 63 clear, so it never looks like one.
const V4_TAG: u64 = 1 << 63;
/// The bits that must equal `V4_TAG` for an id to carry an IPv4 address.
const V4_MASK: u64 = 0xffff << 48;

/// The id of the member whose unicast socket is `addr`. Never 0 (0 is the "nobody" default
/// of `EndpointId`), and the same for an IPv4-mapped IPv6 address as for the IPv4 one.
///
/// - IPv4: `1 << 63 | address << 16 | port` (the address as a big-endian `u32`): distinct
///   for distinct socket addresses, and reversible (`endpoint_addr`).
/// - IPv6: FNV-1a over the 16 address bytes followed by the port, big-endian, with bit 63
///   cleared (so no IPv6 id equals an IPv4 one; 1 if that leaves 0). Not reversible; scope
///   and flow label are not part of it.
pub fn endpoint_id(addr: SocketAddr) -> EndpointId {
    match addr.ip().to_canonical() {
        IpAddr::V4(a) => EndpointId(V4_TAG | u64::from(a.to_bits()) << 16 | u64::from(addr.port())),
        IpAddr::V6(a) => {
            let mut buf = [0u8; 18];
            buf[..16].copy_from_slice(&a.octets());
            buf[16..].copy_from_slice(&addr.port().to_be_bytes());
            match fnv1a(&buf) & !V4_TAG {
                0 => EndpointId(1),
                h => EndpointId(h),
            }
        }
    }
}

/// The IPv4 socket address an id carries: the inverse of `endpoint_id` for IPv4 (an
/// IPv4-mapped IPv6 address comes back as IPv4). `None` for an IPv6 member's id and for any
/// id `endpoint_id` does not make from an IPv4 address (`EndpointId(7)`, say).
pub fn endpoint_addr(id: EndpointId) -> Option<SocketAddr> {
    if id.0 & V4_MASK != V4_TAG {
        return None;
    }
    let ip = Ipv4Addr::from_bits((id.0 >> 16) as u32);
    Some(SocketAddr::V4(SocketAddrV4::new(ip, id.0 as u16)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::net::Ipv6Addr;

    #[test]
    fn ipv4_ids_carry_the_address() {
        let a: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        assert_eq!(endpoint_id(a), endpoint_id(a));
        // Tag, 7f 00 00 01, 13 88: the layout, by hand.
        assert_eq!(endpoint_id(a), EndpointId(0x8000_7f00_0001_1388));
        assert_eq!(endpoint_addr(EndpointId(0x8000_7f00_0001_1388)), Some(a));
        let b: SocketAddr = "255.255.255.255:65535".parse().unwrap();
        assert_eq!(endpoint_id(b), EndpointId(0x8000_ffff_ffff_ffff));
        let c: SocketAddr = "0.0.0.0:0".parse().unwrap();
        assert_eq!(endpoint_id(c), EndpointId(1 << 63), "never 0, even for the unspecified address");
    }

    #[test]
    fn ipv6_ids_are_the_hash_without_the_tag() {
        let a: SocketAddr = "[fe80::1]:5000".parse().unwrap();
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut bytes = "fe80::1".parse::<Ipv6Addr>().unwrap().octets().to_vec();
        bytes.extend_from_slice(&[0x13, 0x88]);
        for b in bytes {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        assert_eq!(endpoint_id(a), EndpointId(h & !(1 << 63)));
        // Scope ids do not count.
        let scoped = SocketAddr::V6(std::net::SocketAddrV6::new("fe80::1".parse().unwrap(), 5000, 0, 2));
        assert_eq!(endpoint_id(scoped), endpoint_id(a));
    }

    #[test]
    fn ids_differ_by_port_and_address_and_round_trip() {
        let mut seen = HashSet::new();
        let v4 = ["127.0.0.1", "127.0.0.2", "10.0.0.1", "0.0.0.0", "255.255.255.255", "192.168.1.1", "1.0.0.0"];
        let v6 = ["::1", "fe80::1", "ff02::1", "2001:db8::1", "::2"];
        for ip in v4.iter().chain(&v6) {
            for port in [0u16, 1, 2, 256, 47474, 65535] {
                let addr = SocketAddr::new(ip.parse().unwrap(), port);
                let id = endpoint_id(addr);
                assert_ne!(id, EndpointId(0));
                assert!(seen.insert(id), "collision for {addr}");
                if addr.is_ipv4() {
                    assert_eq!(endpoint_addr(id), Some(addr), "round trip");
                    assert_eq!(id.0 >> 48, 0x8000, "{addr}");
                } else {
                    assert_eq!(endpoint_addr(id), None, "an IPv6 id carries no address: {addr}");
                    assert_eq!(id.0 >> 63, 0, "{addr}");
                }
            }
        }
        // Neighbours in address or port, and every port of one address: all distinct.
        let ids: HashSet<EndpointId> =
            (0..=u16::MAX).map(|p| endpoint_id(SocketAddr::from(([10, 1, 2, 3], p)))).collect();
        assert_eq!(ids.len(), 1 << 16);
        assert_ne!(endpoint_id("10.1.2.3:5".parse().unwrap()), endpoint_id("10.1.2.4:5".parse().unwrap()));
    }

    #[test]
    fn only_ipv4_ids_decode() {
        for id in [0, 1, 7, 777, 1 << 62, u64::MAX, (1 << 63) | (1 << 48), 0x5eed_0000_0000_0001] {
            assert_eq!(endpoint_addr(EndpointId(id)), None, "{id:#x}");
        }
        assert_eq!(endpoint_addr(EndpointId(1 << 63)), Some("0.0.0.0:0".parse().unwrap()));
    }

    #[test]
    fn mapped_ipv6_is_ipv4() {
        let v4: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let mapped = SocketAddr::new(IpAddr::V6(Ipv4Addr::LOCALHOST.to_ipv6_mapped()), 9);
        assert_eq!(endpoint_id(v4), endpoint_id(mapped));
        assert_eq!(endpoint_addr(endpoint_id(mapped)), Some(v4), "comes back as IPv4");
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
        assert_eq!((c.flow, c.block_timeout), (FlowPolicy::Block, Duration::from_secs(5)));
        assert!(c.filter_own);
        assert_eq!(c.busy_poll, Duration::ZERO);
    }
}
