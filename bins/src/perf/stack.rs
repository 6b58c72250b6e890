//! The measured path: a Thoth endpoint with the chosen stack, run by the UDP driver on a
//! thread of its own or inline on the member's thread (`--driver`). Also the socket setup
//! the raw path copies, so both use the driver's configuration.

use super::args::MemberOpts;
use super::clock::sysctl;
use super::driven::Driven;
use super::member::{self, Control, emit};
use super::net::{Net, Tx};
use super::proto::HDR;
use super::raw;
use std::collections::VecDeque;
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
    let config = Config::new(GroupId::named(&o.name), socks.id(), ids).secured(crate::key::security(o.key.as_deref())?);
    let ep = Endpoint::from_spec(config, &thoth::registry(), spec).map_err(|e| format!("stack `{spec}`: {e}"))?;
    let max = ep.max_payload();
    if max < o.size {
        return Err(format!("--size {} exceeds what stack `{spec}` carries in one message ({max} bytes)", o.size));
    }
    let driven = Driven::start(o, socks, ep, &peers)?;
    emit(&format!("ARMED {max}"));
    member::rounds(StackNet { driven, events: Vec::new(), payloads: Payloads::default() }, o, ctl)
}

struct StackNet {
    driven: Driven<Endpoint>,
    events: Vec<Event>,
    payloads: Payloads,
}

/// The buffers a member casts its payloads in. Every payload of a run is
/// `proto::payload(size)` with its own stamp in the first `HDR` bytes (`Tx::send`), so a
/// large payload's buffer, once the stack has let go of it (it keeps each cast until every
/// member has it), is cast again with only its stamp rewritten, as the raw path rewrites its
/// one buffer: the payload is copied once per buffer, not once per message (a buffer still
/// held is not waited for: a new one is made). Small payloads are copied one after another
/// into a shared chunk instead, each cast taking its slice: copying them costs less than
/// keeping track of a buffer each, whose reference counts would be cold by the time it is
/// reused.
#[derive(Default)]
pub struct Payloads {
    kept: VecDeque<Bytes>,
    chunk: BytesMut,
}

/// Payloads from this size on reuse buffers; smaller ones are copied into a chunk.
const REUSE_FROM: usize = 8 << 10;
/// Bytes of payload buffers kept for reuse, at most (and at least `MIN_KEPT` buffers).
const KEPT_BYTES: usize = 256 << 20;
const MIN_KEPT: usize = 64;
/// Bytes per chunk of small payloads.
const CHUNK: usize = 128 << 10;

impl Payloads {
    pub fn take(&mut self, payload: &[u8]) -> Bytes {
        if payload.len() < REUSE_FROM {
            if self.chunk.capacity() - self.chunk.len() < payload.len() {
                // Reclaims the chunk's allocation once every payload in it is let go of.
                self.chunk.reserve(CHUNK);
            }
            self.chunk.extend_from_slice(payload);
            return self.chunk.split().freeze();
        }
        let stamp = HDR.min(payload.len());
        let reused = match self.kept.front() {
            Some(b) if b.len() == payload.len() && b.is_unique() => {
                self.kept.pop_front().and_then(|b| b.try_into_mut().ok())
            }
            _ => None,
        };
        let buf = match reused {
            Some(mut buf) => {
                debug_assert!(buf[stamp..] == payload[stamp..], "payloads differ past their stamp");
                buf[..stamp].copy_from_slice(&payload[..stamp]);
                buf
            }
            // Split off, it is shared from the start (its header allocated once): keeping a
            // clone and taking the buffer back then allocate nothing.
            None => BytesMut::from(payload).split(),
        }
        .freeze();
        if self.kept.len() >= MIN_KEPT.max(KEPT_BYTES / payload.len()) {
            self.kept.pop_front();
        }
        self.kept.push_back(buf.clone());
        buf
    }
}

/// The sending side of a member with a driver thread: casts through the handle.
struct StackTx {
    handle: Handle,
    payloads: Payloads,
}

impl Tx for StackTx {
    fn send(&mut self, payload: &[u8]) -> Result<(), String> {
        self.handle.cast(self.payloads.take(payload)).map_err(|e| format!("cast: {e}"))
    }
}

impl Net for StackNet {
    type Tx = StackTx;

    fn tx(&self) -> Option<StackTx> {
        self.driven.handle().map(|h| StackTx { handle: h.clone(), payloads: Payloads::default() })
    }

    fn send(&mut self, payload: &[u8]) -> Result<(), String> {
        self.driven.command(Cmd::Cast(self.payloads.take(payload)))
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
                | Event::State { .. }
                | Event::Probed(_) => {}
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

#[cfg(test)]
mod tests {
    use super::*;

    fn stamped(stamp: u8) -> Vec<u8> {
        let mut p = crate::perf::proto::payload(REUSE_FROM);
        p[..HDR].fill(stamp);
        p
    }

    /// A buffer is cast again only once nothing else holds it, and then with its new stamp.
    #[test]
    fn payload_buffers_are_reused_only_once_let_go() {
        let mut pool = Payloads::default();
        let first = pool.take(&stamped(1));
        let second = pool.take(&stamped(2));
        assert_ne!(first.as_ptr(), second.as_ptr(), "a held buffer is not reused");
        assert_eq!((&first[..], &second[..]), (&stamped(1)[..], &stamped(2)[..]));
        let at = first.as_ptr();
        drop(first);
        let third = pool.take(&stamped(3));
        assert_eq!(third.as_ptr(), at, "the buffer let go of is reused");
        assert_eq!((&third[..], &second[..]), (&stamped(3)[..], &stamped(2)[..]));
        // Another size: a fresh buffer, whatever is free; a small one: a copy.
        drop(third);
        assert_eq!(&pool.take(&[7; REUSE_FROM + 1])[..], &[7; REUSE_FROM + 1]);
        assert_eq!(&pool.take(&[7; 10])[..], &[7; 10]);
    }
}
