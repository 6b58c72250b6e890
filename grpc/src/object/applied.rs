//! The results of the latest operations by key (`PrimaryBackup`'s failover): every replica
//! keeps the same table (the primary's updates carry each write's key and result, in the
//! primary's order), and dumps it with the state, so a new primary answers a write its
//! predecessor ran instead of running it again. Bounded to the `APPLIED` newest, dropped in
//! the order they came (the same at every replica). Its wire form (in a dump and an update)
//! is plain: little-endian u64 counts and lengths; what does not decode is an error, never
//! a panic. Tested below (bounds, round trip, truncations).

use crate::machine::CallId;
use std::collections::{BTreeMap, VecDeque};
use thoth_stack::{Bytes, EndpointId};

/// Results kept per replica: the most recent operations'.
pub const APPLIED: usize = 4096;

/// An operation's key, the same across its tries: (caller, caller's nonce, its id).
pub type OpKey = (EndpointId, u64, CallId);

/// What a write came to: its result, or the semantics object's refusal.
pub type Outcome = Result<Bytes, String>;

#[derive(Default, Debug, PartialEq, Eq)]
pub struct Applied {
    results: BTreeMap<OpKey, Outcome>,
    order: VecDeque<OpKey>,
}

impl Applied {
    pub fn get(&self, key: &OpKey) -> Option<&Outcome> {
        self.results.get(key)
    }

    pub fn insert(&mut self, key: OpKey, result: Outcome) {
        if self.results.insert(key, result).is_none() {
            self.order.push_back(key);
        }
        while self.order.len() > APPLIED {
            let old = self.order.pop_front().expect("not empty");
            self.results.remove(&old);
        }
    }

    /// A count, then per operation its key and result, oldest first.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.order.len() as u64).to_le_bytes());
        for key in &self.order {
            put_key(out, key);
            put_result(out, &self.results[key]);
        }
    }

    /// Reads what `encode` wrote from the front of `r`, leaving the rest.
    pub fn decode(r: &mut &[u8]) -> Result<Applied, String> {
        let mut a = Applied::default();
        let n = take_u64(r)?;
        if n > APPLIED as u64 {
            return Err(format!("{n} results, more than {APPLIED}"));
        }
        for _ in 0..n {
            let key = take_key(r)?;
            a.insert(key, take_result(r)?);
        }
        Ok(a)
    }
}

pub fn put_key(out: &mut Vec<u8>, &(m, nonce, id): &OpKey) {
    for v in [m.0, nonce, id] {
        out.extend_from_slice(&v.to_le_bytes());
    }
}

pub fn put_result(out: &mut Vec<u8>, r: &Outcome) {
    let (tag, b) = match r {
        Ok(b) => (0u8, &b[..]),
        Err(e) => (1, e.as_bytes()),
    };
    out.push(tag);
    put_blob(out, b);
}

/// Bytes after their length (u64).
pub fn put_blob(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u64).to_le_bytes());
    out.extend_from_slice(b);
}

pub fn take_blob<'a>(r: &mut &'a [u8]) -> Result<&'a [u8], String> {
    let n = take_u64(r)?;
    let n = usize::try_from(n).ok().filter(|&n| n <= r.len()).ok_or("truncated")?;
    let (b, rest) = r.split_at(n);
    *r = rest;
    Ok(b)
}

pub fn take_u64(r: &mut &[u8]) -> Result<u64, String> {
    let (head, rest) = r.split_first_chunk::<8>().ok_or("truncated")?;
    *r = rest;
    Ok(u64::from_le_bytes(*head))
}

pub fn take_key(r: &mut &[u8]) -> Result<OpKey, String> {
    Ok((EndpointId(take_u64(r)?), take_u64(r)?, take_u64(r)?))
}

pub fn take_result(r: &mut &[u8]) -> Result<Outcome, String> {
    let (&tag, rest) = r.split_first().ok_or("truncated")?;
    *r = rest;
    let b = take_blob(r)?;
    match tag {
        0 => Ok(Ok(Bytes::copy_from_slice(b))),
        1 => Ok(Err(String::from_utf8_lossy(b).into_owned())),
        _ => Err(format!("a result's tag is 0 or 1, not {tag}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u64) -> OpKey {
        (EndpointId(7), 99, i)
    }

    #[test]
    fn keeps_the_newest_and_round_trips() {
        let mut a = Applied::default();
        for i in 0..APPLIED as u64 + 10 {
            a.insert(
                key(i),
                if i % 2 == 0 { Ok(Bytes::from(i.to_le_bytes().to_vec())) } else { Err(format!("no {i}")) },
            );
        }
        assert_eq!(a.order.len(), APPLIED);
        assert!(a.get(&key(9)).is_none(), "the oldest went first");
        assert_eq!(a.get(&key(10)), Some(&Ok(Bytes::from(10u64.to_le_bytes().to_vec()))));
        a.insert(key(11), Ok(Bytes::new()));
        assert_eq!(a.order.len(), APPLIED, "a key again replaces its result, in its place");
        let mut out = Vec::new();
        a.encode(&mut out);
        out.extend_from_slice(b"rest");
        let mut r = &out[..];
        assert_eq!(Applied::decode(&mut r), Ok(a));
        assert_eq!(r, b"rest", "the rest is left");
    }

    #[test]
    fn what_does_not_decode_is_an_error() {
        let mut a = Applied::default();
        a.insert(key(1), Ok(Bytes::from_static(b"xyz")));
        let mut out = Vec::new();
        a.encode(&mut out);
        for cut in 0..out.len() {
            assert!(Applied::decode(&mut &out[..cut]).is_err(), "cut at {cut}");
        }
        let mut bad = out.clone();
        bad[8 + 24] = 5; // the result's tag
        assert!(Applied::decode(&mut &bad[..]).is_err());
        let huge = (APPLIED as u64 + 1).to_le_bytes();
        assert!(Applied::decode(&mut &huge[..]).is_err());
    }
}
