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
    /// Stability (see `Stability`), from the layer that detects it to the layers below that
    /// hold messages until they are stable.
    Stable(Stability),
    /// A datagram outside the view (discovery, merge, view installation): to one endpoint,
    /// or with `to: None` to the group's discovery address (the multicast group, or the
    /// seeds in unicast mode). Unreliable; every layer passes it through untouched.
    Gossip { to: Option<EndpointId>, msg: Msg },
    /// The membership layer's flush: these members have failed and will not be in the next
    /// view. Survivors must end up with the same casts of each; a layer that can fetch a
    /// failed sender's casts from the other survivors does (nak), one that waits on every
    /// member stops waiting on these (flow).
    Failed(Vec<Rank>),
    /// The application's answer to `Up::Block`: it has stopped casting in this view.
    BlockOk,
    /// The application's state, answering `Up::DumpState`.
    State(Bytes),
}

impl Dn {
    /// The message this event carries (`Cast`, `Send` and their unreliable twins), so a
    /// layer that only pushes a header can do it once for all four.
    pub fn msg_mut(&mut self) -> Option<&mut Msg> {
        match self {
            Dn::Cast(m) | Dn::Send(_, m) | Dn::CastUnrel(m) | Dn::SendUnrel(_, m) => Some(m),
            Dn::Leave | Dn::Stable(_) | Dn::Gossip { .. } | Dn::Failed(_) | Dn::BlockOk | Dn::State(_) => None,
        }
    }
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
    /// Stability, for the layers above the one that detects it.
    Stable(Stability),
    /// Flow control: whether the stack takes more casts now. A flow-control layer says
    /// `ready: false` when it holds a cast for lack of credit and `ready: true` once it can
    /// send again; the endpoint refuses casts in between (`CastError::WouldBlock`).
    Flow { ready: bool },
    /// A layer found a broken guarantee or an unrecoverable condition (a checker layer
    /// saw a FIFO violation, say). Delivered to the application as `Event::Error`.
    Error { layer: &'static str, detail: String },
    /// A failure detector suspects these members of the view have failed. Suspicion is not
    /// exclusion: the membership layers verify it and decide.
    Suspect(Vec<Rank>),
    /// A datagram from outside the view (see `Dn::Gossip`); `from` is its sender.
    Gossip { from: EndpointId, msg: Msg },
    /// A view change has begun: the application should stop casting in this view and answer
    /// `Dn::BlockOk` (the membership layer answers for it after a timeout).
    Block,
    /// The membership layer installs the next view: the endpoint builds a fresh stack for it
    /// once the current input has been handled.
    Install(View),
    /// The membership layer needs the application's state for a joining member: answered
    /// by `Dn::State`.
    DumpState,
    /// A piece of the group's state for this joining member; `last` ends it.
    State { chunk: Bytes, last: bool },
}

/// For each rank of the view, how many of its casts every member has received: those are
/// stable, and whoever holds them for retransmission may let them go.
pub type Stability = Vec<u64>;

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
    /// A layer reports a broken guarantee or an unrecoverable condition.
    Error { layer: &'static str, detail: String },
    /// A failure detector suspects these members have failed (not yet excluded).
    Suspect(Vec<EndpointId>),
    /// A view change has begun: stop casting and call `Endpoint::block_ok` (or wait for the
    /// membership layer's timeout); casts are refused until the next view.
    Block,
    /// A member is joining and this endpoint provides the state: answer with
    /// `Endpoint::send_state` with the state as of now (no message is delivered until then).
    StateRequest,
    /// A piece of the group's state, for this joining member, before anything of its first
    /// view is delivered; `last` ends it. Large states arrive in many pieces.
    State { chunk: Bytes, last: bool },
}
