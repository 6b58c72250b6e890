//! Thoth core.
//!
//! The sans-IO part — vocabulary (`ids`, `time`), messages and their wire codec (`msg`,
//! `wire`, `frame`), events, the layer contract and its composition (`layer`, `compose`,
//! `registry`, `props`), the `Endpoint`, what its layers counted (`metrics`) and how an
//! outsider asks for it (`probe`) — touches no socket, thread, clock or OS random
//! source: time and randomness come in as arguments, output goes out as data. The drivers
//! at the edge do the I/O: `udp` runs an endpoint over UDP multicast (or unicast fan-out)
//! on a thread of its own; `sim` runs many endpoints on a virtual clock over a seeded,
//! faulty network.
//!
//! # Example
//!
//! Three members of a group with a fixed first view, each an `Endpoint` whose stack is
//! built from a spec string by a `Registry`, run by the simulator on its virtual clock over
//! a lossless network: one member casts, another sends to a third, and each application
//! gets what it should. The stack here is `bare` (frame and CRC only); the layers that make
//! a stack reliable, ordered or dynamic live in other crates (`thoth_layers::registry()`
//! knows them) and a spec names them the same way, top first: `"frag:nak"`.
//!
//! ```
//! use thoth_stack::sim::{Kind, Sim};
//! use thoth_stack::{Duration, EndpointId, GroupId, Registry};
//!
//! let registry = Registry::new();
//! let mut sim = Sim::new(1); // the seed: the same seed, the same run
//! let ids: Vec<EndpointId> = (1..=3).map(EndpointId).collect();
//! // One endpoint per id; the stack of each view is built from the spec.
//! let nodes = sim.add_group(GroupId::named("example"), &ids, move |_view| registry.build("bare").unwrap());
//!
//! sim.cast(nodes[0], &b"hello"[..]).unwrap();
//! sim.send(nodes[1], ids[2], &b"psst"[..]).unwrap();
//! sim.run_until_quiet(Duration::from_millis(10)).unwrap();
//!
//! // Every member delivers the cast, its sender included.
//! for &n in &nodes {
//!     let casts: Vec<_> = sim.delivered(n).iter().filter(|d| d.kind == Kind::Cast).collect();
//!     assert_eq!(casts.len(), 1);
//!     assert_eq!((casts[0].from, &casts[0].data[..]), (ids[0], &b"hello"[..]));
//! }
//! // Only its destination delivers the send.
//! let sends = |n| sim.delivered(n).iter().filter(|d| d.kind == Kind::Send).count();
//! assert_eq!((sends(nodes[0]), sends(nodes[1]), sends(nodes[2])), (0, 0, 1));
//! ```
#![deny(unsafe_code)]
#![deny(missing_docs)]

pub mod budget;
pub mod bundle;
pub mod compose;
pub mod endpoint;
pub mod event;
pub mod frame;
pub mod groups;
pub mod ids;
mod keyring;
pub mod layer;
pub mod machine;
pub mod metrics;
pub mod msg;
pub mod probe;
pub mod props;
pub mod registry;
pub mod rng;
pub mod secure;
pub mod sim;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod time;
pub mod udp;
pub mod wire;

pub use budget::Budget;
pub use bytes::{Bytes, BytesMut};
pub use compose::{Bare, Compose, Stack, StackBuilder};
pub use endpoint::{CastError, Cmd, Config, Dest, Endpoint, EndpointError, Stats, Transmit};
pub use event::{Dn, Event, Up};
pub use ids::{EndpointId, GroupId, Rank, View, ViewId};
pub use layer::{Cx, Dump, Layer, Missing};
pub use machine::{Announce, Command, Machine, Rx};
pub use metrics::{Hist, Metrics};
pub use msg::Msg;
pub use props::Props;
pub use registry::{Args, Registry, SpecError};
pub use rng::Rng;
pub use secure::{AllowList, GroupSecret, Identity, PublicKey, Security};
pub use time::{Duration, Time};
pub use wire::{Reader, Wire, WireError, Writer};
