//! What the `#[object]` attribute macro (`thoth-grpc-macros`) generates code against: a
//! replicated object's semantics written as a Rust trait of plain methods.
//!
//! ```
//! use serde::{Deserialize, Serialize};
//!
//! #[thoth_grpc::object(version = 1)]
//! pub trait Counter {
//!     fn add(&mut self, n: u64) -> u64; // `&mut self`: a write, run by every replica
//!     fn get(&self) -> u64; // `&self`: read-only, on the local replica where allowed
//! }
//!
//! #[derive(Default, Serialize, Deserialize)]
//! struct Total(u64);
//! impl Counter for Total {
//!     fn add(&mut self, n: u64) -> u64 { self.0 += n; self.0 }
//!     fn get(&self) -> u64 { self.0 }
//! }
//!
//! // Generated: `CounterObject<T>`, the semantics object (`thoth_grpc::Semantics`) of any
//! // `T: Counter` that serde can dump, and `CounterOps`, each method as an operation
//! // (`CounterOps::add(id, 5)` is the `ObjCmd::Write`) and its result's decoder.
//! let mut obj = CounterObject(Total(0));
//! use thoth_grpc::Semantics;
//! let r = obj.apply(&CounterOps::add_op(5)).unwrap();
//! assert_eq!(CounterOps::add_result(&r), Ok(5));
//! assert_eq!(CounterOps::get_result(&obj.read(&CounterOps::get_op()).unwrap()), Ok(5));
//! ```
//!
//! An operation is its method's number (u64, little-endian: the FNV-1a hash of
//! `Trait/version/method(argument types)->result type`, as services have) and then its
//! arguments as a tuple, in postcard (`service::encode`); a result is postcard too, and so
//! is the state a replica dumps (the type implements serde's `Serialize` and
//! `Deserialize`). A write sent to a replica of another version, or as a read, or bytes
//! that do not decode, are refused with why, never a panic. A method's `&mut self` makes it
//! a write, `&self` a read.
//!
//! Tested below and in `grpc/tests/objects.rs` (a typed object under every strategy).

pub use crate::service::{decode, encode};
pub use thoth_stack::Bytes;

/// An operation: the method's number, then its arguments (a tuple).
pub fn op<A: serde::Serialize>(method: u64, args: &A) -> Bytes {
    let mut v = method.to_le_bytes().to_vec();
    v.extend_from_slice(&encode(args));
    Bytes::from(v)
}

/// An operation's method number and arguments.
pub fn split(op: &[u8]) -> Result<(u64, &[u8]), String> {
    let (m, args) = op.split_first_chunk::<8>().ok_or("an operation without its method")?;
    Ok((u64::from_le_bytes(*m), args))
}

/// Why an operation was refused: its number is no method of this kind here.
pub fn no_such(method: u64, kind: &str) -> String {
    format!("no {kind} method {method:#x} (another version, or the wrong kind of operation)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_split_back() {
        let o = op(7, &(5u64, String::from("x")));
        let (m, args) = split(&o).expect("splits");
        assert_eq!((m, decode::<(u64, String)>(args)), (7, Ok((5, "x".into()))));
        assert!(split(&o[..7]).is_err());
        assert!(decode::<(u64, String)>(split(&o[..9]).expect("a method").1).is_err());
    }
}
