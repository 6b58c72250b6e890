//! What the RPC machine puts in front of every payload it casts or sends: a request (a call
//! to run) or a reply (the answer to one).
//!
//! A call is named by its caller's endpoint id (the frame's source), the caller's `nonce` (a
//! number drawn when the caller's machine started, so a restarted caller's calls are never
//! taken for its old ones) and the call's `id` (increasing per caller). Layout, after a tag
//! byte: request `nonce` (8 bytes), `id` (varint), `method` (varint), `reply` (1 byte), then
//! the arguments; reply `nonce`, `id`, a status byte, then the result (or the fault's text).
//!
//! Tested here (round trips, every truncation refused) and by `grpc/tests/sim.rs` (hostile
//! payloads dropped and counted).

use thoth_stack::{Bytes, BytesMut, Reader, Wire, WireError, Writer};

/// The header of an RPC payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hdr {
    /// Run `method` with the arguments that follow; answer unless `reply` is false.
    Request {
        /// The caller's incarnation (`RpcConfig::nonce`).
        nonce: u64,
        /// The caller's call id.
        id: u64,
        /// The method's number (for a `#[service]`, a hash of its signature).
        method: u64,
        /// Whether the caller waits for an answer (false for a one-way call, `Mode::None`).
        reply: bool,
    },
    /// The answer to call `id` of the caller incarnation `nonce`.
    Reply {
        /// The caller's incarnation, from the request.
        nonce: u64,
        /// The call id, from the request.
        id: u64,
        /// How the call went here; the body is the result or the fault's text.
        status: Status,
    },
}

/// How a call went at one member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// The handler answered; the result follows.
    Ok,
    /// The handler failed; its text follows.
    Failed,
    /// No handler for the method here.
    NoSuchMethod,
    /// Too many of this member's calls wait for their handlers: not run.
    Busy,
    /// Older than what this member remembers of its caller: it may have run, and is not run
    /// again (at most once).
    Expired,
}

const TAG_REQUEST: u8 = 1;
const TAG_REPLY: u8 = 2;

impl Status {
    fn code(self) -> u8 {
        match self {
            Status::Ok => 0,
            Status::Failed => 1,
            Status::NoSuchMethod => 2,
            Status::Busy => 3,
            Status::Expired => 4,
        }
    }
    fn from_code(c: u8) -> Result<Status, WireError> {
        Ok(match c {
            0 => Status::Ok,
            1 => Status::Failed,
            2 => Status::NoSuchMethod,
            3 => Status::Busy,
            4 => Status::Expired,
            _ => return Err(WireError::BadTag),
        })
    }
}

impl Wire for Hdr {
    fn encoded_len(&self) -> usize {
        use thoth_stack::wire::var_len;
        match *self {
            Hdr::Request { id, method, .. } => 1 + 8 + var_len(id) + var_len(method) + 1,
            Hdr::Reply { id, .. } => 1 + 8 + var_len(id) + 1,
        }
    }
    fn encode(&self, w: &mut Writer<'_>) {
        match *self {
            Hdr::Request { nonce, id, method, reply } => {
                w.put_u8(TAG_REQUEST);
                w.put_u64(nonce);
                w.put_var(id);
                w.put_var(method);
                w.put_u8(reply as u8);
            }
            Hdr::Reply { nonce, id, status } => {
                w.put_u8(TAG_REPLY);
                w.put_u64(nonce);
                w.put_var(id);
                w.put_u8(status.code());
            }
        }
    }
    fn decode(r: &mut Reader<'_>) -> Result<Hdr, WireError> {
        match r.u8()? {
            TAG_REQUEST => {
                let (nonce, id, method) = (r.u64()?, r.var()?, r.var()?);
                let reply = match r.u8()? {
                    0 => false,
                    1 => true,
                    _ => return Err(WireError::BadValue),
                };
                Ok(Hdr::Request { nonce, id, method, reply })
            }
            TAG_REPLY => Ok(Hdr::Reply { nonce: r.u64()?, id: r.var()?, status: Status::from_code(r.u8()?)? }),
            _ => Err(WireError::BadTag),
        }
    }
}

/// `hdr` then `body`, as one payload.
pub fn join(hdr: &Hdr, body: &[u8]) -> Bytes {
    let n = hdr.encoded_len();
    let mut b = BytesMut::zeroed(n + body.len());
    hdr.encode(&mut Writer::new(&mut b[..n]));
    b[n..].copy_from_slice(body);
    b.freeze()
}

/// The header and what follows it.
pub fn split(data: &Bytes) -> Result<(Hdr, Bytes), WireError> {
    let mut r = Reader::new(data);
    let hdr = Hdr::decode(&mut r)?;
    Ok((hdr, data.slice(data.len() - r.remaining()..)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_and_every_truncation_is_refused() {
        let hdrs = [
            Hdr::Request { nonce: 7, id: 0, method: 3, reply: true },
            Hdr::Request { nonce: u64::MAX, id: u64::MAX, method: u64::MAX, reply: false },
            Hdr::Reply { nonce: 1, id: 300, status: Status::Ok },
            Hdr::Reply { nonce: 2, id: 5, status: Status::Expired },
        ];
        for h in hdrs {
            let p = join(&h, b"args");
            assert_eq!(split(&p), Ok((h, Bytes::from_static(b"args"))));
            let n = h.encoded_len();
            for cut in 0..n {
                assert!(split(&p.slice(..cut)).is_err(), "{h:?} cut at {cut}");
            }
        }
        assert_eq!(split(&Bytes::from_static(&[9])), Err(WireError::BadTag));
        let mut bad = join(&hdrs[0], b"").to_vec();
        *bad.last_mut().unwrap() = 2;
        assert_eq!(split(&Bytes::from(bad)), Err(WireError::BadValue));
        let mut bad = join(&hdrs[2], b"").to_vec();
        *bad.last_mut().unwrap() = 99;
        assert_eq!(split(&Bytes::from(bad)), Err(WireError::BadTag));
    }
}
