//! The replicated key-value store of the demo and of `thoth-kv-perf`: `Store` is its
//! semantics object (plain local state, a map; `thoth_grpc::Semantics`), the operations'
//! wire form (`Op`), and nothing of replication: a strategy chosen when the store is created
//! (`thoth_grpc::Strategy`) replicates it.
//!
//! Under primary-backup a write's update is the operation itself (`update`, `absorb`).
//!
//! Operations: `put(key, value)` and `delete(key)` (mutating; their result: whether the key
//! was there), `get(key)` (read-only; the value or nothing). On the wire: a tag (0 put, 1
//! delete, 2 get), the key's length (u16, little-endian), the key, then a put's value. A
//! dump is a count (u64), then per entry the key and the value, each after its length (u32).
//! What does not decode is refused with why, never a panic. Tested below.
//!
//! `thoth-kv`, the demo, is here too: `serve` (a replica), `client`, their datagrams
//! (`wire`), and the command line (`cli`).

pub mod cli;
pub mod client;
pub mod serve;
pub mod wire;

use std::collections::BTreeMap;
use thoth::Bytes;
use thoth_grpc::Semantics;

/// An operation on the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Put(Bytes, Bytes),
    Delete(Bytes),
    Get(Bytes),
}

impl Op {
    pub fn encode(&self) -> Bytes {
        let (tag, key, value): (u8, &[u8], &[u8]) = match self {
            Op::Put(k, v) => (0, k, v),
            Op::Delete(k) => (1, k, &[]),
            Op::Get(k) => (2, k, &[]),
        };
        let mut out = Vec::with_capacity(3 + key.len() + value.len());
        out.push(tag);
        out.extend_from_slice(&(key.len().min(u16::MAX as usize) as u16).to_le_bytes());
        out.extend_from_slice(&key[..key.len().min(u16::MAX as usize)]);
        out.extend_from_slice(value);
        Bytes::from(out)
    }

    pub fn decode(b: &[u8]) -> Result<Op, String> {
        let (&tag, rest) = b.split_first().ok_or("an empty operation")?;
        let (len, rest) = rest.split_first_chunk::<2>().ok_or("an operation without its key's length")?;
        let len = u16::from_le_bytes(*len) as usize;
        if rest.len() < len {
            return Err("an operation's key is cut short".into());
        }
        let (key, value) = rest.split_at(len);
        let key = Bytes::copy_from_slice(key);
        match (tag, value.is_empty()) {
            (0, _) => Ok(Op::Put(key, Bytes::copy_from_slice(value))),
            (1, true) => Ok(Op::Delete(key)),
            (2, true) => Ok(Op::Get(key)),
            (1 | 2, false) => Err("bytes after a key".into()),
            (t, _) => Err(format!("no operation {t}")),
        }
    }
}

/// The store's state: a map from keys to values.
#[derive(Default, Debug, PartialEq, Eq)]
pub struct Store {
    map: BTreeMap<Bytes, Bytes>,
}

impl Store {
    pub fn len(&self) -> usize {
        self.map.len()
    }
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

fn put_blob(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

fn take_blob(r: &mut &[u8]) -> Result<Bytes, String> {
    let (len, rest) = r.split_first_chunk::<4>().ok_or("a dump is cut short")?;
    let len = u32::from_le_bytes(*len) as usize;
    if rest.len() < len {
        return Err("a dump is cut short".into());
    }
    let (b, rest) = rest.split_at(len);
    *r = rest;
    Ok(Bytes::copy_from_slice(b))
}

impl Semantics for Store {
    fn apply(&mut self, op: &[u8]) -> Result<Bytes, String> {
        let had = match Op::decode(op)? {
            Op::Put(k, v) => self.map.insert(k, v).is_some(),
            Op::Delete(k) => self.map.remove(&k).is_some(),
            Op::Get(_) => return Err("a get is read-only".into()),
        };
        Ok(Bytes::from_static(if had { &[1] } else { &[0] }))
    }
    fn read(&self, op: &[u8]) -> Result<Bytes, String> {
        match Op::decode(op)? {
            Op::Get(k) => Ok(self.map.get(&k).cloned().unwrap_or_default()),
            _ => Err("only a get is read-only".into()),
        }
    }
    fn dump(&self) -> Bytes {
        let mut out = Vec::new();
        out.extend_from_slice(&(self.map.len() as u64).to_le_bytes());
        for (k, v) in &self.map {
            put_blob(&mut out, k);
            put_blob(&mut out, v);
        }
        Bytes::from(out)
    }
    /// Primary-backup ships the operation, not the state: a put or delete does the same
    /// at a backup as at the primary (a megabyte of dump per write otherwise).
    fn update(&self, op: &[u8]) -> Bytes {
        Bytes::copy_from_slice(op)
    }
    fn absorb(&mut self, update: &[u8]) -> Result<(), String> {
        self.apply(update).map(drop)
    }
    fn undump(&mut self, state: &[u8]) -> Result<(), String> {
        let (n, mut r) = state.split_first_chunk::<8>().ok_or("a dump without its count")?;
        let mut map = BTreeMap::new();
        for _ in 0..u64::from_le_bytes(*n) {
            let k = take_blob(&mut r)?;
            map.insert(k, take_blob(&mut r)?);
        }
        if !r.is_empty() {
            return Err("bytes after a dump".into());
        }
        self.map = map;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn operations_round_trip_and_apply() {
        let mut s = Store::default();
        for op in [Op::Put(b("k"), b("v")), Op::Delete(b("k")), Op::Get(b("k")), Op::Put(b(""), b(""))] {
            assert_eq!(Op::decode(&op.encode()), Ok(op));
        }
        assert_eq!(s.apply(&Op::Put(b("a"), b("1")).encode()), Ok(Bytes::from_static(&[0])));
        assert_eq!(s.apply(&Op::Put(b("a"), b("2")).encode()), Ok(Bytes::from_static(&[1])));
        assert_eq!(s.read(&Op::Get(b("a")).encode()), Ok(b("2")));
        assert_eq!(s.read(&Op::Get(b("zz")).encode()), Ok(Bytes::new()));
        assert!(s.apply(&Op::Get(b("a")).encode()).is_err() && s.read(&Op::Put(b("a"), b("")).encode()).is_err());
        let mut t = Store::default();
        t.undump(&s.dump()).expect("undumps");
        assert_eq!(t, s);
        assert_eq!(s.apply(&Op::Delete(b("a")).encode()), Ok(Bytes::from_static(&[1])));
        assert!(s.is_empty());
    }

    #[test]
    fn garbage_is_refused() {
        for bad in [&[][..], &[0], &[0, 5, 0, 1], &[7, 0, 0], &[2, 1, 0, b'k', b'x']] {
            assert!(Op::decode(bad).is_err(), "{bad:?}");
        }
        let mut s = Store::default();
        s.apply(&Op::Put(b("k"), b("v")).encode()).expect("a put");
        let d = s.dump();
        for cut in 0..d.len() {
            assert!(Store::default().undump(&d[..cut]).is_err(), "cut at {cut}");
        }
        assert!(Store::default().undump(&[d.to_vec(), vec![1]].concat()).is_err());
    }
}
