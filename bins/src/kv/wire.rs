//! How a `thoth-kv` client that is not a member of the store's group talks to a replica
//! that is (its contact): one UDP datagram each way.
//!
//! A request is `TKV1`, its kind (0 bind: the trader's offers of a name, the body; 1 write
//! and 2 read: the store operation, the body), the client's nonce and the request's number
//! (u64 each, little-endian), then the body. A reply is `TKV1`, the kind with the top bit
//! set, the same nonce and number, a status (0 done, 1 failed: the body says why, 2
//! unavailable: ask another contact), then the body (a bind's offers, as the trader answers
//! them; the store's result). A client sends a request again, under the same number, until
//! it has the reply; a contact runs each (nonce, number) once and sends the reply again to
//! a repeat (`serve`). What does not decode is dropped, and counted by the contact.
//! Tested below (round trips, every truncation, garbage).

use thoth::Bytes;

const MAGIC: &[u8; 4] = b"TKV1";
/// Bytes before the body.
const HEAD: usize = 4 + 1 + 8 + 8;
/// Largest datagram either side sends or reads.
pub const MAX_DATAGRAM: usize = 60_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Bind,
    Write,
    Read,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub kind: Kind,
    pub nonce: u64,
    pub seq: u64,
    pub body: Bytes,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    Done(Bytes),
    Failed(String),
    Unavailable(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub kind: Kind,
    pub nonce: u64,
    pub seq: u64,
    pub status: Status,
}

fn kind_tag(k: Kind) -> u8 {
    match k {
        Kind::Bind => 0,
        Kind::Write => 1,
        Kind::Read => 2,
    }
}

fn kind_of(tag: u8) -> Result<Kind, String> {
    Ok(match tag {
        0 => Kind::Bind,
        1 => Kind::Write,
        2 => Kind::Read,
        t => return Err(format!("no request kind {t}")),
    })
}

fn head(tag: u8, nonce: u64, seq: u64, body: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(HEAD + 1 + body);
    v.extend_from_slice(MAGIC);
    v.push(tag);
    v.extend_from_slice(&nonce.to_le_bytes());
    v.extend_from_slice(&seq.to_le_bytes());
    v
}

/// The tag, nonce, number and the rest.
fn take_head(b: &[u8]) -> Result<(u8, u64, u64, &[u8]), String> {
    if b.len() < HEAD || &b[..4] != MAGIC {
        return Err("not a thoth-kv datagram".into());
    }
    let n = |r: &[u8]| u64::from_le_bytes(r.try_into().expect("8 bytes"));
    Ok((b[4], n(&b[5..13]), n(&b[13..21]), &b[HEAD..]))
}

impl Request {
    pub fn encode(&self) -> Vec<u8> {
        let mut v = head(kind_tag(self.kind), self.nonce, self.seq, self.body.len());
        v.extend_from_slice(&self.body);
        v
    }

    pub fn decode(b: &[u8]) -> Result<Request, String> {
        let (tag, nonce, seq, body) = take_head(b)?;
        Ok(Request { kind: kind_of(tag)?, nonce, seq, body: Bytes::copy_from_slice(body) })
    }
}

impl Reply {
    pub fn encode(&self) -> Vec<u8> {
        let (status, body): (u8, &[u8]) = match &self.status {
            Status::Done(b) => (0, b),
            Status::Failed(why) => (1, why.as_bytes()),
            Status::Unavailable(why) => (2, why.as_bytes()),
        };
        let mut v = head(0x80 | kind_tag(self.kind), self.nonce, self.seq, body.len());
        v.push(status);
        v.extend_from_slice(body);
        v
    }

    pub fn decode(b: &[u8]) -> Result<Reply, String> {
        let (tag, nonce, seq, rest) = take_head(b)?;
        if tag & 0x80 == 0 {
            return Err("a request, not a reply".into());
        }
        let (&status, body) = rest.split_first().ok_or("a reply without its status")?;
        let text = || String::from_utf8_lossy(body).into_owned();
        let status = match status {
            0 => Status::Done(Bytes::copy_from_slice(body)),
            1 => Status::Failed(text()),
            2 => Status::Unavailable(text()),
            s => return Err(format!("no status {s}")),
        };
        Ok(Reply { kind: kind_of(tag & 0x7f)?, nonce, seq, status })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_replies_round_trip_and_garbage_is_refused() {
        let r = Request { kind: Kind::Write, nonce: 7, seq: 9, body: Bytes::from_static(b"op") };
        assert_eq!(Request::decode(&r.encode()), Ok(r.clone()));
        let replies = [
            Status::Done(Bytes::from_static(b"v")),
            Status::Failed("no".into()),
            Status::Unavailable("gone".into()),
            Status::Done(Bytes::new()),
        ];
        for status in replies {
            let p = Reply { kind: Kind::Read, nonce: 1, seq: u64::MAX, status };
            let b = p.encode();
            assert_eq!(Reply::decode(&b), Ok(p));
            assert!(Request::decode(&b).is_err(), "a reply is no request");
            for cut in 0..HEAD + 1 {
                assert!(Reply::decode(&b[..cut]).is_err(), "cut at {cut}");
            }
        }
        let e = r.encode();
        for cut in 0..HEAD {
            assert!(Request::decode(&e[..cut]).is_err(), "cut at {cut}");
        }
        assert!(Reply::decode(&e).is_err(), "a request is no reply");
        let mut bad = e.clone();
        bad[4] = 9;
        assert!(Request::decode(&bad).is_err());
        bad[0] = b'X';
        assert!(Request::decode(&bad).is_err());
    }
}
