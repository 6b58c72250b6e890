//! The `thoth-kv` client: not a member of any group. It finds the store's replicas by
//! asking the rendezvous address (a multicast group on loopback every replica listens on)
//! for the trader's offers of the store's name, then sends the operation to one replica's
//! contact (`wire`), sending it again under the same number until the reply comes; a
//! contact that does not answer within the timeout, or says it is unavailable, makes the
//! client try the next. A write retried at another contact may run twice (a put or a delete
//! does the same the second time).

use super::wire::{Kind, MAX_DATAGRAM, Reply, Request, Status};
use socket2::{Domain, Protocol, Socket, Type};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};
use thoth::Bytes;
use thoth_grpc::object::trader::{Entry, decode_bind};

/// How often a request is sent again while its reply has not come.
const RESEND: Duration = Duration::from_millis(250);
/// How long a bind collects the replicas' answers after the first.
const GATHER: Duration = Duration::from_millis(200);

pub struct Client {
    sock: UdpSocket,
    rendezvous: SocketAddr,
    nonce: u64,
    seq: u64,
    /// How long one contact (or the rendezvous) may take to answer.
    timeout: Duration,
}

impl Client {
    pub fn new(rendezvous: SocketAddr, interface: IpAddr, timeout: Duration) -> Result<Client, String> {
        let (SocketAddr::V4(_), IpAddr::V4(iface)) = (rendezvous, interface) else {
            return Err("the rendezvous is IPv4 only".into());
        };
        let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).map_err(|e| e.to_string())?;
        let bind = SocketAddr::new(interface, 0);
        s.bind(&bind.into()).map_err(|e| format!("bind {bind}: {e}"))?;
        s.set_multicast_if_v4(&iface).map_err(|e| format!("IP_MULTICAST_IF {iface}: {e}"))?;
        s.set_multicast_ttl_v4(1).map_err(|e| e.to_string())?;
        s.set_multicast_loop_v4(true).map_err(|e| e.to_string())?;
        let nonce = thoth::secure::random_u64();
        Ok(Client { sock: s.into(), rendezvous, nonce, seq: 0, timeout })
    }

    /// Every replica's offer of `name` that answered the rendezvous (by owner).
    pub fn bind(&mut self, name: &str) -> Result<Vec<Entry>, String> {
        let req = self.request(Kind::Bind, Bytes::copy_from_slice(name.as_bytes()));
        let until = Instant::now() + self.timeout;
        let mut offers: Vec<Entry> = Vec::new();
        let mut gather_until = None;
        let mut buf = vec![0u8; MAX_DATAGRAM];
        let mut next_send = Instant::now();
        loop {
            let now = Instant::now();
            let end = gather_until.unwrap_or(until);
            if now >= end {
                break;
            }
            if gather_until.is_none() && now >= next_send {
                self.sock.send_to(&req.encode(), self.rendezvous).map_err(|e| format!("{}: {e}", self.rendezvous))?;
                next_send = now + RESEND;
            }
            let wait = end.min(next_send).saturating_duration_since(now).max(Duration::from_millis(1));
            let Some(reply) = self.receive(&req, wait, &mut buf)? else { continue };
            if let Status::Done(body) = reply.status {
                for e in decode_bind(&body)? {
                    if !offers.iter().any(|o| o.owner == e.owner) {
                        offers.push(e);
                    }
                }
                gather_until.get_or_insert(Instant::now() + GATHER);
            }
        }
        offers.sort_by_key(|e| e.owner);
        Ok(offers)
    }

    /// Runs a store operation (`kind` Write or Read) at one of `name`'s replicas; its result.
    pub fn call(&mut self, name: &str, kind: Kind, op: Bytes) -> Result<Bytes, String> {
        let offers = self.bind(name)?;
        if offers.is_empty() {
            return Err(format!("no replica offers `{name}` (is one running? `thoth-kv serve`)"));
        }
        let req = self.request(kind, op);
        let mut buf = vec![0u8; MAX_DATAGRAM];
        let mut why = String::new();
        // Spread clients over the contacts; each in turn if one does not answer.
        let first = (self.nonce % offers.len() as u64) as usize;
        for k in 0..offers.len() {
            let e = &offers[(first + k) % offers.len()];
            let Ok(to) = e.contact.parse::<SocketAddr>() else {
                why = format!("a contact that is not an address: {}", e.contact);
                continue;
            };
            let until = Instant::now() + self.timeout;
            while Instant::now() < until {
                self.sock.send_to(&req.encode(), to).map_err(|e| format!("{to}: {e}"))?;
                let wait = RESEND.min(until.saturating_duration_since(Instant::now())).max(Duration::from_millis(1));
                match self.receive(&req, wait, &mut buf)?.map(|r| r.status) {
                    Some(Status::Done(v)) => return Ok(v),
                    Some(Status::Failed(w)) => return Err(w),
                    Some(Status::Unavailable(w)) => {
                        why = format!("{to}: {w}");
                        break;
                    }
                    None => why = format!("{to} did not answer within {:?}", self.timeout),
                }
            }
        }
        Err(why)
    }

    fn request(&mut self, kind: Kind, body: Bytes) -> Request {
        self.seq += 1;
        Request { kind, nonce: self.nonce, seq: self.seq, body }
    }

    /// The reply to `req` if one comes within `wait` (others are skipped).
    fn receive(&self, req: &Request, wait: Duration, buf: &mut [u8]) -> Result<Option<Reply>, String> {
        let until = Instant::now() + wait;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.sock.set_read_timeout(Some(left)).map_err(|e| e.to_string())?;
            match self.sock.recv_from(buf) {
                Ok((n, _)) => match Reply::decode(&buf[..n]) {
                    Ok(r) if (r.nonce, r.seq, r.kind) == (req.nonce, req.seq, req.kind) => return Ok(Some(r)),
                    _ => continue,
                },
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                    return Ok(None);
                }
                // An ICMP port-unreachable from a contact that is gone: as no answer.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => continue,
                Err(e) => return Err(e.to_string()),
            }
        }
    }
}
