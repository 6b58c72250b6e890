//! Group RPC for Thoth: calls to the members of a group, with a response mode, over a group
//! endpoint. (Group RPC, as in Isis, E1 and Electra, and JGroups's `RpcDispatcher`; not
//! gRPC.)
//!
//! `Rpc` wraps an endpoint and is a sans-IO machine like it, so the simulator and both UDP
//! drivers run it: the application hands it calls (`RpcCmd::Call`: a call id of its own, a
//! target — the group or one member —, a method number, the arguments as bytes, a response
//! mode, the order of a group call's request (`Order`: `abcast`, `cbcast`, `ubcast`, or the
//! stack's own, per call on one stack), a timeout and an optional filter) and replies (`RpcCmd::Reply`, whenever its handler
//! is done), and gets requests to run (`RpcEvent::Request`) and ended calls
//! (`RpcEvent::Done`, every member's answer or fault). Each member runs a call at most once
//! (`cache.rs`: duplicates and calls asked again are answered from a bounded reply cache that
//! survives view changes).
//!
//! `Node` runs an `Rpc` on the UDP driver thread for any number of application threads, with
//! Electra's call types: `call` (sync), `call_then` (an answer handler), `promise` (wait
//! later; one node's promises complete in call order); and `serve`, whose handlers run on
//! worker threads and answer through a `Responder`, at once or later.
//!
//! `#[service(version = N)]` on a trait generates a typed client stub and a server
//! dispatcher (`service.rs`: serde and postcard; a stub and a server that disagree on the
//! version, a method or a type disagree on the method's number, answered `NoSuchMethod`).
//! `#[object(version = N)]` on a trait generates a replicated object's semantics and its
//! typed operations (`object/typed.rs`).
//!
#![forbid(unsafe_code)]

pub mod cache;
pub mod call;
pub mod client;
pub mod linear;
pub mod machine;
pub mod object;
pub mod service;
pub mod wire;

pub use cache::Bounds;
pub use call::{Answer, Fault, Filter, Mode, Order, Outcome, Request, Target};
pub use client::{CallError, CallResult, Incoming, Node, Promise, Responder};
pub use machine::{CallId, Caller, Rpc, RpcCmd, RpcConfig, RpcError, RpcEvent, RpcStats};
pub use object::capability::{Capability, Secret};
pub use object::{APPLIED, ObjCmd, ObjConfig, ObjError, ObjEvent, ObjStats, Replica, Semantics, Strategy, TRIES};
pub use thoth_grpc_macros::{object, service};
pub use thoth_stack::EndpointId;
