//! Raw UDP multicast: the baseline. The same socket setup as the UDP driver (a socket bound
//! to the group port and joined on the interface, a unicast socket that sends with the
//! multicast interface, TTL, loopback and buffer sizes set), one datagram per message, no
//! header but the benchmark's own, no reliability. With `--raw-datagram BYTES` a sender
//! packs as many whole messages as fit into datagrams of that size (raw UDP at its best
//! datagram size; messages are all of one size, so a receiver splits a datagram by it).

use super::net::{Net, Tx};
use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Largest UDP payload over IPv4.
pub const MAX_PAYLOAD: usize = 65_507;

/// How the sockets are set up; the member fills it from the driver's `UdpConfig`.
#[derive(Clone, Debug)]
pub struct Setup {
    pub group: SocketAddrV4,
    pub interface: Ipv4Addr,
    pub ttl: u32,
    pub recv_buffer: usize,
    pub send_buffer: usize,
}

impl Setup {
    pub fn new(
        group: SocketAddr,
        interface: IpAddr,
        ttl: u32,
        recv_buffer: usize,
        send_buffer: usize,
    ) -> io::Result<Setup> {
        let (SocketAddr::V4(group), IpAddr::V4(interface)) = (group, interface) else {
            return Err(io::Error::new(io::ErrorKind::Unsupported, "raw UDP multicast is IPv4 only"));
        };
        Ok(Setup { group, interface, ttl, recv_buffer, send_buffer })
    }
}

/// The two sockets of a member.
pub struct Sockets {
    /// Bound to the group's address and port, joined on the interface.
    pub group: UdpSocket,
    /// Bound to the interface, any port; sends to the group.
    pub unicast: UdpSocket,
    /// Buffer sizes the kernel granted: (receive on the group socket, send on the unicast one).
    pub granted: (usize, usize),
}

pub fn open(s: &Setup) -> io::Result<Sockets> {
    let ctx = |what: String| move |e: io::Error| io::Error::new(e.kind(), format!("{what}: {e}"));
    let unicast = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    let bind = SocketAddr::V4(SocketAddrV4::new(s.interface, 0));
    unicast.bind(&bind.into()).map_err(ctx(format!("bind {bind}")))?;
    unicast.set_recv_buffer_size(s.recv_buffer)?;
    unicast.set_send_buffer_size(s.send_buffer)?;
    unicast.set_multicast_if_v4(&s.interface).map_err(ctx(format!("IP_MULTICAST_IF {}", s.interface)))?;
    unicast.set_multicast_ttl_v4(s.ttl)?;
    unicast.set_multicast_loop_v4(true)?;
    let group = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    group.set_reuse_address(true)?;
    group.set_reuse_port(true)?;
    group.bind(&SocketAddr::V4(s.group).into()).map_err(ctx(format!("bind {}", s.group)))?;
    group.join_multicast_v4(s.group.ip(), &s.interface).map_err(ctx(format!(
        "join {} on {}",
        s.group.ip(),
        s.interface
    )))?;
    // As in the driver: hear only this group even if another shares the port.
    let _ = group.set_multicast_all_v4(false);
    group.set_recv_buffer_size(s.recv_buffer)?;
    group.set_send_buffer_size(s.send_buffer)?;
    let granted = (group.recv_buffer_size()?.min(unicast.recv_buffer_size()?), unicast.send_buffer_size()?);
    Ok(Sockets { group: group.into(), unicast: unicast.into(), granted })
}

/// Checks that multicast works on the interface: a probe sent to the group must come back
/// on a socket joined to it within `wait`.
pub fn self_test(s: &Setup, wait: Duration) -> Result<(), String> {
    let what = format!("multicast group {} on interface {}", s.group, s.interface);
    let socks = open(s).map_err(|e| format!("cannot join {what}: {e}"))?;
    let probe = format!("thoth-perf probe {} {}", std::process::id(), super::clock::now_ns());
    socks.unicast.send_to(probe.as_bytes(), s.group).map_err(|e| format!("cannot send to {what}: {e}"))?;
    let deadline = Instant::now() + wait;
    let mut buf = [0u8; 256];
    for _ in 0..1000 {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        socks.group.set_read_timeout(Some(left)).map_err(|e| e.to_string())?;
        match socks.group.recv_from(&mut buf) {
            Ok((n, _)) if buf[..n] == *probe.as_bytes() => return Ok(()),
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                break;
            }
            Err(e) => return Err(format!("multicast self-test on {what} failed: {e}")),
        }
    }
    Err(format!(
        "multicast does not work: a probe sent to {what} did not come back within {} ms \
         (is multicast routed to that interface? try --fanout for unicast fan-out)",
        wait.as_millis()
    ))
}

/// The raw path of one member.
pub struct RawNet {
    rx: UdpSocket,
    tx: RawTx,
    buf: Vec<u8>,
    timeout: Option<Duration>,
    /// The size of every message (a datagram longer than it holds several).
    size: usize,
}

impl RawNet {
    /// Multicast: sends to the group, receives on the group socket. Fan-out: sends to every
    /// peer (itself included, as multicast loopback would) and receives on the unicast socket.
    /// `size`: every message's size; `datagram`: pack messages into datagrams of up to
    /// this many bytes (0: one datagram per message).
    pub fn new(
        socks: Sockets,
        group: SocketAddr,
        fanout: bool,
        peers: &[SocketAddr],
        size: usize,
        datagram: usize,
    ) -> io::Result<RawNet> {
        let tx = Arc::new(socks.unicast);
        let (rx, dests): (UdpSocket, Arc<[SocketAddr]>) =
            if fanout { (tx.try_clone()?, peers.into()) } else { (socks.group, Arc::new([group])) };
        let tx = RawTx { sock: tx, dests, datagram, packed: Vec::new() };
        Ok(RawNet { rx, tx, buf: vec![0; 65_536], timeout: None, size })
    }
}

pub struct RawTx {
    sock: Arc<UdpSocket>,
    dests: Arc<[SocketAddr]>,
    /// Pack messages into datagrams of up to this many bytes (0: one per message).
    datagram: usize,
    packed: Vec<u8>,
}

impl RawTx {
    fn send_datagram(&self, data: &[u8]) -> Result<(), String> {
        for d in self.dests.iter() {
            match self.sock.send_to(data, d) {
                Ok(_) => {}
                // No buffer in the kernel: the message is lost, as on a real network, and
                // shows up as loss at the receivers.
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) || e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(format!("send to {d}: {e}")),
            }
        }
        Ok(())
    }
}

impl Tx for RawTx {
    fn send(&mut self, payload: &[u8]) -> Result<(), String> {
        if payload.len() * 2 > self.datagram {
            return self.send_datagram(payload);
        }
        if self.packed.len() + payload.len() > self.datagram {
            self.flush()?;
        }
        self.packed.extend_from_slice(payload);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), String> {
        if !self.packed.is_empty() {
            let r = self.send_datagram(&self.packed);
            self.packed.clear();
            r?;
        }
        Ok(())
    }
}

impl Net for RawNet {
    type Tx = RawTx;

    fn tx(&self) -> Option<RawTx> {
        let t = &self.tx;
        Some(RawTx { sock: t.sock.clone(), dests: t.dests.clone(), datagram: t.datagram, packed: Vec::new() })
    }

    /// At once, never packed (a ping waits for nothing).
    fn send(&mut self, payload: &[u8]) -> Result<(), String> {
        self.tx.send_datagram(payload)
    }

    /// The first datagram waits up to `timeout` (a blocking read with a read timeout); the
    /// ones already queued behind it are taken without waiting (non-blocking reads), so the
    /// call returns as soon as what arrived is passed on.
    fn recv(&mut self, timeout: Duration, sink: &mut impl FnMut(&[u8], u64)) -> Result<usize, String> {
        // A zero read timeout means "none" to the kernel: wait at least a microsecond.
        let timeout = timeout.max(Duration::from_micros(1));
        if self.timeout != Some(timeout) {
            self.rx.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
            self.timeout = Some(timeout);
        }
        let (mut n, mut msgs) = (0, 0);
        let mut r = Ok(());
        while n < 256 {
            match self.rx.recv_from(&mut self.buf) {
                Ok((len, _)) => {
                    // A datagram of several messages of `size` bytes each (`--raw-datagram`).
                    let k = if len > self.size && len % self.size == 0 { len / self.size } else { 1 };
                    let at = super::clock::now_ns();
                    for m in self.buf[..len].chunks(len / k) {
                        sink(m, at);
                    }
                    msgs += k;
                    n += 1;
                    if n == 1 {
                        self.rx.set_nonblocking(true).map_err(|e| e.to_string())?;
                    }
                }
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    r = Err(format!("receive: {e}"));
                    break;
                }
            }
        }
        if n > 0 {
            self.rx.set_nonblocking(false).map_err(|e| e.to_string())?;
        }
        r.map(|()| msgs)
    }

    fn rx_rejected(&mut self) -> Option<u64> {
        None
    }

    fn close(self) -> Result<(), String> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(port: u16) -> Setup {
        Setup::new(SocketAddr::from(([239, 84, 251, 7], port)), IpAddr::V4(Ipv4Addr::LOCALHOST), 0, 1 << 20, 1 << 20)
            .unwrap()
    }

    #[test]
    fn loopback_multicast_round_trip() {
        let port = 40_000 + (std::process::id() % 10_000) as u16;
        self_test(&setup(port), Duration::from_secs(1)).unwrap();
        let s = setup(port);
        let mut net = RawNet::new(open(&s).unwrap(), SocketAddr::V4(s.group), false, &[], 5, 0).unwrap();
        net.tx().expect("raw UDP has a sending side").send(b"hello").unwrap();
        let mut got = Vec::new();
        for _ in 0..50 {
            net.recv(Duration::from_millis(20), &mut |p, _| got.push(p.to_vec())).unwrap();
            if !got.is_empty() {
                break;
            }
        }
        assert_eq!(got, vec![b"hello".to_vec()]);
    }

    #[test]
    fn a_missing_interface_is_a_clear_error() {
        let mut s = setup(40_001);
        s.interface = Ipv4Addr::new(203, 0, 113, 77);
        let e = self_test(&s, Duration::from_millis(200)).unwrap_err();
        assert!(e.contains("203.0.113.77") && e.contains("239.84.251.7"), "{e}");
    }
}
