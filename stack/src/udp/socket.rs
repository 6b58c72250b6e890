//! Opening a member's sockets (`Sockets::open`): the unicast socket, bound to
//! `UdpConfig::bind`, which sends everything (multicast included, so a member's multicast
//! source address is its unicast address) and receives point-to-point traffic; and, unless in
//! fan-out mode, the multicast socket, bound to the group address and port with SO_REUSEADDR
//! and SO_REUSEPORT (every member on the host binds the same port) and joined on the chosen
//! interface. IP_MULTICAST_IF / IPV6_MULTICAST_IF, the TTL / hop limit and multicast loopback
//! (other members on this host must hear us) are set on the unicast socket. Both sockets are
//! nonblocking and get the requested buffers, forced if the kernel caps them and we may.
//!
//! Binding the multicast socket to the group address (not the wildcard) and turning off
//! IP_MULTICAST_ALL means it only hears its own group, even when other groups on the host
//! share the port. With `UdpConfig::filter_own` a BPF filter on it drops the loopback copies
//! of this member's own casts in the kernel (the endpoint delivers its own casts locally).
//!
//! Tested through `stack/tests/udp.rs` (IPv4 and IPv6 groups, fan-out, buffer sizes granted)
//! and the unit tests below (argument checks).

use super::config::{UdpConfig, endpoint_id};
use super::sys;
use crate::ids::EndpointId;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io;
use std::net::{IpAddr, SocketAddr, SocketAddrV6};
use std::os::fd::AsFd;

/// Socket buffer sizes as the kernel reports them (Linux reports, and accounts, twice the
/// value set, to cover its bookkeeping).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Granted {
    /// The smaller receive buffer of the sockets that receive.
    pub recv_buffer: usize,
    /// The send buffer of the unicast socket, which sends everything.
    pub send_buffer: usize,
}

/// A member's bound (and, for multicast, joined) sockets, not yet driven.
#[derive(Debug)]
pub struct Sockets {
    pub(crate) uni: Socket,
    pub(crate) mc: Option<Socket>,
    /// Where casts go: the group, with the interface as scope for a link-local-scoped group.
    pub(crate) group_dst: Option<SocketAddr>,
    local: SocketAddr,
    granted: Granted,
    pub(crate) cfg: UdpConfig,
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg.into())
}

fn with_context(e: io::Error, what: &str) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

impl Sockets {
    /// Binds the unicast socket and, unless `UdpConfig::fanout`, binds and joins the multicast
    /// one, both nonblocking with the buffers sized (see the module docs). `InvalidInput` if
    /// `batch`, `queue` or `events` is 0 or the group and addresses do not fit together; the
    /// OS error otherwise, naming the step that failed (bind, join, ...).
    pub fn open(cfg: &UdpConfig) -> io::Result<Sockets> {
        if cfg.batch == 0 || cfg.queue == 0 || cfg.events == 0 {
            return Err(invalid("batch, queue and events must be at least 1"));
        }
        if !cfg.fanout {
            if !cfg.group.ip().is_multicast() {
                return Err(invalid(format!("group {} is not a multicast address", cfg.group)));
            }
            if cfg.group.is_ipv4() != cfg.bind.is_ipv4() {
                return Err(invalid(format!("bind address {} and group {} differ in family", cfg.bind, cfg.group)));
            }
        }
        let uni = Socket::new(Domain::for_address(cfg.bind), Type::DGRAM, Some(Protocol::UDP))?;
        if cfg.bind.is_ipv6() {
            uni.set_only_v6(true)?;
        }
        uni.bind(&cfg.bind.into()).map_err(|e| with_context(e, &format!("bind {}", cfg.bind)))?;
        uni.set_nonblocking(true)?;
        let (mut recv, send) = size_buffers(&uni, cfg)?;
        let (mc, group_dst) = if cfg.fanout {
            (None, None)
        } else {
            let (mc, dst) = open_multicast(&uni, cfg)?;
            let (r, _) = size_buffers(&mc, cfg)?;
            recv = recv.min(r);
            (Some(mc), Some(dst))
        };
        let local =
            uni.local_addr()?.as_socket().ok_or_else(|| io::Error::other("the unicast socket has no IP address"))?;
        if let Some(mc) = mc.as_ref().filter(|_| cfg.filter_own) {
            sys::attach_own_filter(mc.as_fd(), local).map_err(|e| with_context(e, "own-copy filter"))?;
        }
        Ok(Sockets {
            uni,
            mc,
            group_dst,
            local,
            granted: Granted { recv_buffer: recv, send_buffer: send },
            cfg: cfg.clone(),
        })
    }

    /// The unicast address (port resolved).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// `endpoint_id(local_addr())`.
    pub fn id(&self) -> EndpointId {
        endpoint_id(self.local)
    }

    /// The socket buffer sizes the kernel granted (maybe less than asked for).
    pub fn granted(&self) -> Granted {
        self.granted
    }

    /// The settings the sockets were opened with.
    pub fn config(&self) -> &UdpConfig {
        &self.cfg
    }

    /// Whether a multicast socket was opened (false in fan-out mode).
    pub fn is_multicast(&self) -> bool {
        self.mc.is_some()
    }
}

/// Sets the multicast options on the sending socket and opens the receiving one; returns it
/// and the address casts are sent to.
fn open_multicast(uni: &Socket, cfg: &UdpConfig) -> io::Result<(Socket, SocketAddr)> {
    let group = cfg.group;
    let mc = Socket::new(Domain::for_address(group), Type::DGRAM, Some(Protocol::UDP))?;
    mc.set_reuse_address(true)?;
    mc.set_reuse_port(true)?;
    let dst = match group.ip() {
        IpAddr::V4(g) => {
            let IpAddr::V4(iface) = cfg.interface else {
                return Err(invalid(format!("interface {} is not IPv4 like the group {group}", cfg.interface)));
            };
            uni.set_multicast_if_v4(&iface).map_err(|e| with_context(e, &format!("IP_MULTICAST_IF {iface}")))?;
            uni.set_multicast_ttl_v4(cfg.ttl)?;
            uni.set_multicast_loop_v4(true)?;
            mc.bind(&SockAddr::from(group)).map_err(|e| with_context(e, &format!("bind {group}")))?;
            mc.join_multicast_v4(&g, &iface).map_err(|e| with_context(e, &format!("join {g} on {iface}")))?;
            // Older kernels lack the option; the group-address bind filters anyway.
            let _ = mc.set_multicast_all_v4(false);
            group
        }
        IpAddr::V6(g) => {
            let index = sys::interface_index(cfg.interface)
                .map_err(|e| with_context(e, &format!("interface {}", cfg.interface)))?;
            uni.set_multicast_if_v6(index).map_err(|e| with_context(e, &format!("IPV6_MULTICAST_IF {index}")))?;
            uni.set_multicast_hops_v6(cfg.ttl)?;
            uni.set_multicast_loop_v6(true)?;
            mc.set_only_v6(true)?;
            // Link-local-scoped groups (ff?2::) need the interface as scope to bind.
            let scope = if g.segments()[0] & 0x000f <= 2 { index } else { 0 };
            let at = SocketAddrV6::new(g, group.port(), 0, scope);
            mc.bind(&SockAddr::from(at)).map_err(|e| with_context(e, &format!("bind {group}")))?;
            mc.join_multicast_v6(&g, index).map_err(|e| with_context(e, &format!("join {g} on interface {index}")))?;
            let _ = mc.set_multicast_all_v6(false);
            SocketAddr::V6(at)
        }
    };
    mc.set_nonblocking(true)?;
    Ok((mc, dst))
}

/// Requests the configured buffers, forcing them past the system cap if allowed; returns
/// what the kernel reports.
fn size_buffers(s: &Socket, cfg: &UdpConfig) -> io::Result<(usize, usize)> {
    s.set_recv_buffer_size(cfg.recv_buffer)?;
    if s.recv_buffer_size()? < cfg.recv_buffer {
        // Without CAP_NET_ADMIN this fails with EPERM; the capped size stands.
        let _ = sys::set_buffer_force(s.as_fd(), true, cfg.recv_buffer);
    }
    s.set_send_buffer_size(cfg.send_buffer)?;
    if s.send_buffer_size()? < cfg.send_buffer {
        let _ = sys::set_buffer_force(s.as_fd(), false, cfg.send_buffer);
    }
    Ok((s.recv_buffer_size()?, s.send_buffer_size()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_inconsistent_configs() {
        let bad = |cfg: UdpConfig| Sockets::open(&cfg).unwrap_err().kind();
        let unicast_group = UdpConfig { group: "127.0.0.1:4000".parse().unwrap(), ..UdpConfig::default() };
        assert_eq!(bad(unicast_group), io::ErrorKind::InvalidInput);
        let mixed = UdpConfig { group: "[ff15::1]:4000".parse().unwrap(), ..UdpConfig::default() };
        assert_eq!(bad(mixed), io::ErrorKind::InvalidInput);
        assert_eq!(bad(UdpConfig { batch: 0, ..UdpConfig::default() }), io::ErrorKind::InvalidInput);
        let v6_iface = UdpConfig { interface: "::1".parse().unwrap(), ..UdpConfig::default() };
        assert_eq!(bad(v6_iface), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn fanout_opens_one_socket() {
        let s = Sockets::open(&UdpConfig { fanout: true, ..UdpConfig::default() }).unwrap();
        assert!(!s.is_multicast());
        assert_eq!(s.local_addr().ip(), IpAddr::from([127, 0, 0, 1]));
        assert_ne!(s.local_addr().port(), 0);
        assert_eq!(s.id(), endpoint_id(s.local_addr()));
    }
}
