//! The measured path: a Thoth endpoint with the chosen stack, run by the UDP driver on a
//! thread of its own or inline on the member's thread (`--driver`). Also the socket setup
//! the raw path copies, so both use the driver's configuration.

use super::args::MemberOpts;
use super::clock::sysctl;
use super::driven::Driven;
use super::member::{self, Control, emit};
use super::net::{Net, Tx};
use super::raw;
use std::net::SocketAddr;
use std::time::Duration;
use thoth::udp::{self, Handle, Sockets, UdpConfig};
use thoth::{Bytes, BytesMut, Cmd, Config, Endpoint, Event, GroupId};

/// The driver configuration of a member: the driver's defaults, with socket buffers no
/// larger than the kernel grants without privilege (`net.core.rmem_max` / `wmem_max`). The
/// driver forces larger buffers when it may (CAP_NET_ADMIN), plain sockets cannot; capping
/// the request keeps the two paths on equal buffers.
pub fn udp_config(o: &MemberOpts) -> UdpConfig {
    let d = UdpConfig::default();
    let cap = |want: usize, path: &str| sysctl(path).map_or(want, |max| want.min(max));
    UdpConfig {
        group: o.group,
        interface: o.interface,
        bind: SocketAddr::new(o.interface, 0),
        fanout: o.fanout,
        recv_buffer: cap(d.recv_buffer, "/proc/sys/net/core/rmem_max"),
        send_buffer: cap(d.send_buffer, "/proc/sys/net/core/wmem_max"),
        busy_poll: o.busy_poll,
        ..d
    }
}

/// The raw path's sockets, set up as the driver sets up its own.
pub fn raw_setup(o: &MemberOpts) -> Result<raw::Setup, String> {
    let c = udp_config(o);
    raw::Setup::new(c.group, c.interface, c.ttl, c.recv_buffer, c.send_buffer).map_err(|e| e.to_string())
}

/// A member on the stack path: sockets, endpoint, driver (a thread, or this one), then the
/// rounds.
pub fn serve(o: &MemberOpts, spec: &str, ctl: &Control) -> Result<(), String> {
    let cfg = udp_config(o);
    let socks = Sockets::open(&cfg).map_err(|e| format!("cannot open sockets for {}: {e}", o.group))?;
    let granted = socks.granted();
    member::ready(socks.local_addr(), granted.recv_buffer, granted.send_buffer);
    let peers = member::wait_peers(o, ctl)?;
    let ids = peers.iter().map(|a| udp::endpoint_id(*a)).collect();
    let config = Config::new(GroupId::named(&o.name), socks.id(), ids);
    let ep = Endpoint::from_spec(config, &thoth::registry(), spec).map_err(|e| format!("stack `{spec}`: {e}"))?;
    let max = ep.max_payload();
    if max < o.size {
        return Err(format!("--size {} exceeds what stack `{spec}` carries in one message ({max} bytes)", o.size));
    }
    let driven = Driven::start(o, socks, ep, &peers)?;
    emit(&format!("ARMED {max}"));
    member::rounds(StackNet { driven, events: Vec::new(), chunk: Chunk::default() }, o, ctl)
}

struct StackNet {
    driven: Driven<Endpoint>,
    events: Vec<Event>,
    chunk: Chunk,
}

/// Payloads are written one after another into a shared chunk and each cast takes its
/// slice: a copy and a reference count per message, as an application would pay, but no
/// allocation per message.
#[derive(Default)]
pub struct Chunk(BytesMut);

/// Bytes per payload chunk.
const CHUNK: usize = 128 << 10;

impl Chunk {
    pub fn take(&mut self, payload: &[u8]) -> Bytes {
        if self.0.capacity() - self.0.len() < payload.len() {
            // Reuses the chunk's allocation once the driver has let go of every payload in it.
            self.0.reserve(CHUNK.max(payload.len()));
        }
        self.0.extend_from_slice(payload);
        self.0.split().freeze()
    }
}

/// The sending side of a member with a driver thread: casts through the handle.
struct StackTx {
    handle: Handle,
    chunk: Chunk,
}

impl Tx for StackTx {
    fn send(&mut self, payload: &[u8]) -> Result<(), String> {
        self.handle.cast(self.chunk.take(payload)).map_err(|e| format!("cast: {e}"))
    }
}

impl Net for StackNet {
    type Tx = StackTx;

    fn tx(&self) -> Option<StackTx> {
        self.driven.handle().map(|h| StackTx { handle: h.clone(), chunk: Chunk::default() })
    }

    fn send(&mut self, payload: &[u8]) -> Result<(), String> {
        self.driven.command(Cmd::Cast(self.chunk.take(payload)))
    }

    fn recv(&mut self, timeout: Duration, sink: &mut impl FnMut(&[u8], u64)) -> Result<usize, String> {
        self.events.clear();
        self.driven.recv_many(&mut self.events, timeout)?;
        let at = super::clock::now_ns();
        let mut n = 0;
        for ev in self.events.drain(..) {
            match ev {
                Event::Cast { data, .. } => {
                    sink(&data, at);
                    n += 1;
                }
                Event::Exit => return Err("the endpoint left the group".into()),
                Event::Error { layer, detail } => return Err(format!("layer `{layer}` reported: {detail}")),
                Event::View(_)
                | Event::Send { .. }
                | Event::Suspect(_)
                | Event::Block
                | Event::StateRequest
                | Event::State { .. } => {}
            }
        }
        Ok(n)
    }

    fn can_send(&self) -> bool {
        self.driven.can_send()
    }

    fn own_copies_filtered(&mut self) -> u64 {
        self.driven.own_copies_filtered()
    }

    fn rx_rejected(&mut self) -> Option<u64> {
        Some(self.driven.stats().endpoint.rx_rejected())
    }

    fn close(self) -> Result<(), String> {
        self.driven.shutdown()
    }
}

/// The socket setup of the multicast self-test: the driver's defaults on `group`.
pub fn probe_setup(group: SocketAddr, interface: std::net::IpAddr) -> Result<raw::Setup, String> {
    let c = UdpConfig::default();
    raw::Setup::new(group, interface, c.ttl, c.recv_buffer, c.send_buffer).map_err(|e| e.to_string())
}
