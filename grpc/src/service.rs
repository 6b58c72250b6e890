//! Services from a Rust trait: what the `#[service]` attribute macro (`thoth-grpc-macros`)
//! generates code against.
//!
//! ```no_run
//! use std::sync::{Arc, RwLock};
//!
//! #[thoth_grpc::service(version = 1)]
//! pub trait Counter {
//!     #[rpc(mode = "all", order = "abcast")] // every replica adds in one order
//!     fn add(&mut self, n: u64) -> u64;
//!     fn get(&self) -> u64; // read-only: served under the read lock
//! }
//!
//! struct Total(u64);
//! impl Counter for Total {
//!     fn add(&mut self, n: u64) -> u64 { self.0 += n; self.0 }
//!     fn get(&self) -> u64 { self.0 }
//! }
//!
//! fn use_it(node: &thoth_grpc::Node) -> Result<(), thoth_grpc::CallError> {
//!     // Generated: the dispatcher and the stub.
//!     serve_counter(node, Arc::new(RwLock::new(Total(0))));
//!     for (member, answer) in CounterClient::new(node).add(5)? {
//!         println!("{member}: {answer:?}"); // Some(Ok(total)), or its fault
//!     }
//!     Ok(())
//! }
//! ```
//!
//! **Serialization.** Arguments (as a tuple) and results are encoded with serde and
//! postcard: compact (varint integers, no field names or type tags), a specified wire format
//! that is stable across its 1.x releases, no_std and well kept; a derive of our own would
//! have been another format to specify and test. A type needs `Serialize` and
//! `DeserializeOwned`.
//!
//! **Mismatches.** A method's number is a hash of the service's name and version, the
//! method's name, and the text of its argument and result types, so a stub and a server that
//! disagree on any of them disagree on the number: the server answers `Fault::NoSuchMethod`
//! instead of reading bytes as the wrong types. Bytes that do not decode as the types both
//! sides agreed on (a forged request) are answered `Fault::Failed`, and an answer that does
//! not decode is taken as that member's fault.
//!
//! **Order.** A method's `order` (`thoth_grpc::Order`; the stack's own if absent) is the
//! order of its group calls, and its handler runs in it: the dispatcher serves a method in an
//! order on the node's ordered lane (`Node::serve_ordered`: one request at a time, as
//! delivered, so every replica applies `abcast` calls in one order) and a `ubcast` one on the
//! workers (concurrently). Over a stack that does not give a method's order its calls are
//! refused (`RpcError::Unordered`), never run out of order.
//!
//! Tested in `grpc/tests/service.rs` (typed calls over real sockets, read-only and mutating
//! methods, a stub of another version refused, undecodable arguments, an `abcast` method
//! applied in one order by three replicas under concurrent callers and refused over the
//! reliable stack).

use crate::call::{Fault, Outcome};
use serde::Serialize;
use serde::de::DeserializeOwned;
use thoth_stack::{Bytes, EndpointId};

#[doc(hidden)]
pub use postcard;
#[doc(hidden)]
pub use serde;

/// Encodes a value (a method's arguments as a tuple, or its result).
pub fn encode<T: Serialize>(v: &T) -> Bytes {
    // Encoding into a growable buffer fails only for types serde cannot describe to
    // postcard (a map or sequence of unknown length), which a service's types must not be.
    Bytes::from(postcard::to_allocvec(v).expect("a service's types encode with postcard"))
}

/// Decodes what `encode` made.
pub fn decode<T: DeserializeOwned>(b: &[u8]) -> Result<T, String> {
    postcard::from_bytes(b).map_err(|e| format!("undecodable: {e}"))
}

/// Each member's answer to a typed call, decoded (`None`: no answer before the call ended).
pub type Answers<T> = Vec<(EndpointId, Option<Result<T, Fault>>)>;

/// A call's outcome with its good answers decoded as `T`.
pub fn typed<T: DeserializeOwned>(out: Outcome) -> Answers<T> {
    out.answers.into_iter().map(|(m, a)| (m, a.map(|a| a.and_then(|v| decode(&v).map_err(Fault::Failed))))).collect()
}

/// The number of a method: FNV-1a of `service/version/method(args)->result` (what the macro
/// computes at compile time; here for tests and hand-written stubs).
pub const fn method_id(signature: &str) -> u64 {
    let b = signature.as_bytes();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < b.len() {
        h ^= b[i] as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_garbage_is_refused() {
        let b = encode(&(5u64, String::from("x"), vec![1u8, 2]));
        assert_eq!(decode::<(u64, String, Vec<u8>)>(&b), Ok((5, "x".into(), vec![1, 2])));
        assert!(decode::<(u64, String)>(&b[..2]).is_err());
        assert_eq!(method_id("a"), 0xaf63_dc4c_8601_ec8c);
        assert_ne!(method_id("S/1/m(u64)->u64"), method_id("S/1/m(u32)->u64"));
    }
}
