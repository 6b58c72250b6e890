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
#![deny(unsafe_code)]

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
