//! Events between layers (`Dn` going down, `Up` going up) and events to the application.

use crate::ids::{EndpointId, Rank, View};
use crate::msg::Msg;
use bytes::Bytes;

/// Events travelling down the stack, from the application towards the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dn {
    /// Multicast to the view, with whatever guarantees the layers below provide.
    Cast(Msg),
    /// Point-to-point to one member of the view.
    Send(Rank, Msg),
    /// Multicast that reliable layers pass through untouched (gossip, heartbeats).
    CastUnrel(Msg),
    /// Point-to-point that reliable layers pass through untouched.
    SendUnrel(Rank, Msg),
    /// This member leaves the group.
    Leave,
}

/// Events travelling up the stack, from the network towards the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Up {
    /// A multicast from the member of rank `from`.
    Cast { from: Rank, msg: Msg },
    /// A point-to-point message from the member of rank `from`.
    Send { from: Rank, msg: Msg },
    /// This member has left: nothing more will be delivered in this stack.
    Exit,
}

/// What an endpoint tells its application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A view is installed; deliveries that follow belong to it.
    View(View),
    /// A multicast delivered from `from`.
    Cast { from: EndpointId, data: Bytes },
    /// A point-to-point message delivered from `from`.
    Send { from: EndpointId, data: Bytes },
    /// The endpoint has left the group; it delivers nothing more.
    Exit,
}
