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
//! On top of Group RPC, replicated objects (`object`): a semantics object of plain state and
//! methods run under a replication strategy (`Strategy`) on a group of its own (`Replica`),
//! with capabilities, checkpoints and a location trader; and a linearizability checker
//! (`linear`) that the objects' tests run over simulated histories.
//!
//! # Example
//!
//! Three members of a fixed group in the deterministic simulator, each an [`Rpc`] over the
//! `reliable` stack: the first calls the whole group, every member's application answers
//! the request it gets, and the call ends with every member's answer. Over UDP the same
//! machine goes to `thoth_stack::udp::spawn`, or [`Node`] runs it with handlers on threads
//! (`grpc/tests/node.rs`); typed services come from [`service`](macro@service).
//!
//! ```
//! use thoth_grpc::{Bounds, Mode, Request, Rpc, RpcCmd, RpcConfig, RpcEvent};
//! use thoth_stack::sim::Sim;
//! use thoth_stack::{Bytes, Config, Duration, Endpoint, EndpointId, GroupId};
//!
//! const ECHO: u64 = 1; // a method number, the application's to choose
//!
//! let ids: Vec<EndpointId> = (1..=3).map(EndpointId).collect();
//! let mut sim: Sim<Rpc> = Sim::new(7);
//! let nodes: Vec<_> = ids
//!     .iter()
//!     .map(|&me| {
//!         let ids = ids.clone();
//!         sim.add_node(move |spawn| {
//!             let cfg = Config { seed: spawn.seed, ..Config::new(GroupId::named("echo"), me, ids.clone()) };
//!             let ep = Endpoint::from_spec(cfg, &thoth::registry(), "reliable").expect("the stack builds");
//!             Rpc::new(ep, RpcConfig { nonce: spawn.seed | 1, cache: Bounds::default() })
//!         })
//!     })
//!     .collect();
//!
//! let req = Request::group(ECHO, Bytes::from_static(b"hi")).mode(Mode::All);
//! sim.command(nodes[0], RpcCmd::Call { id: 1, req })?;
//! sim.run_for(Duration::from_millis(20));
//!
//! // Each member's application runs the request it got and answers it.
//! for &n in &nodes {
//!     let requests: Vec<_> = sim
//!         .events(n)
//!         .iter()
//!         .filter_map(|e| match &e.event {
//!             RpcEvent::Request { caller, method: ECHO, args, .. } => Some((*caller, args.clone())),
//!             _ => None,
//!         })
//!         .collect();
//!     assert_eq!(requests.len(), 1, "each member runs the call once");
//!     for (caller, args) in requests {
//!         sim.command(n, RpcCmd::Reply { to: caller, result: Ok(args) })?;
//!     }
//! }
//! sim.run_for(Duration::from_millis(20));
//!
//! let outcome = sim
//!     .events(nodes[0])
//!     .iter()
//!     .find_map(|e| match &e.event {
//!         RpcEvent::Done { id: 1, outcome } => Some(outcome.clone()),
//!         _ => None,
//!     })
//!     .expect("the call ended");
//! assert!(!outcome.timed_out);
//! let answers: Vec<_> = outcome.values().collect();
//! assert_eq!(answers.len(), 3);
//! assert!(answers.iter().all(|(_, v)| &v[..] == b"hi"));
//! Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

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
