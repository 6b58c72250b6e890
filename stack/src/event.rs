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
    Gossip {
        /// The endpoint to send it to; `None`: the discovery address.
        to: Option<EndpointId>,
        /// The datagram's message.
        msg: Msg,
    },
    /// A view change has begun (once per view, before its first `Failed`): the membership
    /// layer tells the layers below, as `Up::Block` tells those above. See the layer
    /// contract (`layer.rs`) for the whole sequence.
    Block,
    /// The membership layer's flush begins, or starts over: these members have failed and
    /// will not be in the next view (the list may be empty; the set only grows; the layers
    /// above the membership layer get it as `Up::Failed`). Survivors
    /// must end up with the same casts of each; a layer that can fetch a failed sender's
    /// casts from the other survivors does (nak), one that waits on every member stops
    /// waiting on these (flow). The reliable layer that counts for the flush (`Props::FLUSH`)
    /// delivers no more casts of a failed member until the next `Cut`, and drops the cut of
    /// an earlier attempt.
    Failed(Vec<Rank>),
    /// The application's answer to `Up::Block`: it has stopped casting in this view. The
    /// membership layer passes it on down once it has stopped taking casts, so a layer that
    /// holds casts (flow control) lets them go: they belong to this view and the flush
    /// counts them.
    BlockOk,
    /// The flush asks the reliable layer (`Props::FLUSH`) how many casts of each rank it has
    /// delivered, this member's own included: answered by `Up::Digest`, in order.
    GetDigest,
    /// The flush's cut: for each rank, how many of its casts this member delivers in this
    /// view, in the reliable layer's own count. It travels down through every layer to the
    /// bottom of the stack, where the endpoint turns it back up as `Up::CutReached(cut)`:
    /// the reliable layer delivers exactly up to it (what lies beyond is held and dropped
    /// with the stack) and passes `Up::CutReached` on up only once it has, and so does every
    /// layer above it that holds casts (see `Up::CutReached`).
    /// Counting in one place, below every layer that may reject a cast, is what makes every
    /// member's count mean the same thing: a forged or corrupt cast that a layer above drops
    /// still took its sequence number here, at every member that received it.
    Cut(Vec<u64>),
    /// The application's state, answering `Up::DumpState`.
    State(Bytes),
    /// The next view is installed (for the layers below the membership layer, as
    /// `Up::Install` is for those above): nothing more happens in this stack.
    Install(View),
}

impl Dn {
    /// The message any event carries, `Gossip` included (what the presence bits follow).
    pub fn carried_mut(&mut self) -> Option<&mut Msg> {
        match self {
            Dn::Gossip { msg, .. } => Some(msg),
            other => other.msg_mut(),
        }
    }

    /// The message this event carries (`Cast`, `Send` and their unreliable twins), so a
    /// layer that only pushes a header can do it once for all four.
    pub fn msg_mut(&mut self) -> Option<&mut Msg> {
        match self {
            Dn::Cast(m) | Dn::Send(_, m) | Dn::CastUnrel(m) | Dn::SendUnrel(_, m) => Some(m),
            Dn::Leave
            | Dn::Stable(_)
            | Dn::Gossip { .. }
            | Dn::Failed(_)
            | Dn::BlockOk
            | Dn::State(_)
            | Dn::GetDigest
            | Dn::Cut(_)
            | Dn::Block
            | Dn::Install(_) => None,
        }
    }
}

/// Events travelling up the stack, from the network towards the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Up {
    /// A multicast from the member of rank `from`.
    Cast {
        /// The sender's rank in the current view.
        from: Rank,
        /// The message, still carrying the headers of the receiving layer and those above it.
        msg: Msg,
    },
    /// A point-to-point message from the member of rank `from`.
    Send {
        /// The sender's rank in the current view.
        from: Rank,
        /// The message, still carrying the headers of the receiving layer and those above it.
        msg: Msg,
    },
    /// This member has left: nothing more will be delivered in this stack.
    Exit,
    /// Stability, for the layers above the one that detects it.
    Stable(Stability),
    /// Flow control: whether the stack takes more casts now. A flow-control layer says
    /// `ready: false` when it holds a cast for lack of credit and `ready: true` once it can
    /// send again; the endpoint refuses casts in between (`CastError::WouldBlock`).
    Flow {
        /// `true`: casts are taken again; `false`: hold them.
        ready: bool,
    },
    /// A layer found a broken guarantee or an unrecoverable condition (a checker layer
    /// saw a FIFO violation, say). Delivered to the application as `Event::Error`.
    Error {
        /// The name of the layer that found it.
        layer: &'static str,
        /// What went wrong, for a human.
        detail: String,
    },
    /// A failure detector suspects these members of the view have failed. Suspicion is not
    /// exclusion: the membership layers verify it and decide.
    Suspect(Vec<Rank>),
    /// A datagram from outside the view (see `Dn::Gossip`); `from` is its sender.
    Gossip {
        /// The sending endpoint (it need not be in the view).
        from: EndpointId,
        /// The datagram's message.
        msg: Msg,
    },
    /// A view change has begun: the application should stop casting in this view and answer
    /// `Dn::BlockOk` (the membership layer answers for it after a timeout).
    Block,
    /// The members that will not be in the next view, at the start of each attempt of the
    /// flush (`Dn::Failed` for the layers below the membership layer; the application does
    /// not see it).
    Failed(Vec<Rank>),
    /// The membership layer installs the next view: the endpoint builds a fresh stack for it
    /// once the current input has been handled.
    Install(View),
    /// The membership layer needs the application's state for a joining member: answered
    /// by `Dn::State`.
    DumpState,
    /// A piece of the group's state for this joining member; `last` ends it.
    State {
        /// The next bytes of the state, in order.
        chunk: Bytes,
        /// This is the final piece.
        last: bool,
    },
    /// The reliable layer's answer to `Dn::GetDigest`: for each rank, how many of its casts
    /// this member has delivered.
    Digest(Vec<u64>),
    /// The cut (`Dn::Cut`) has been reached below: everything of the view that the layers
    /// below will deliver has gone up before this event. A layer that holds messages of the
    /// view delivers them (in an order every member computes alike) before it passes this
    /// on up, and nothing of the view after it.
    CutReached(Vec<u64>),
}

impl Up {
    /// A cast without a header of the layer handling it: the data path's common case, which
    /// a layer whose header's nothing is its data variant passes on as it came.
    pub fn is_bare_cast(&self) -> bool {
        matches!(self, Up::Cast { msg, .. } if !msg.has_header())
    }

    /// The message this event carries (`Cast`, `Send`, `Gossip`).
    pub fn carried_mut(&mut self) -> Option<&mut Msg> {
        match self {
            Up::Cast { msg, .. } | Up::Send { msg, .. } | Up::Gossip { msg, .. } => Some(msg),
            _ => None,
        }
    }
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
    Cast {
        /// The sender.
        from: EndpointId,
        /// The payload, as the sender cast it.
        data: Bytes,
    },
    /// A point-to-point message delivered from `from`.
    Send {
        /// The sender.
        from: EndpointId,
        /// The payload, as the sender sent it.
        data: Bytes,
    },
    /// The endpoint has left the group; it delivers nothing more.
    Exit,
    /// A layer reports a broken guarantee or an unrecoverable condition.
    Error {
        /// The name of the layer that reports it.
        layer: &'static str,
        /// What went wrong, for a human.
        detail: String,
    },
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
    State {
        /// The next bytes of the state, in order.
        chunk: Bytes,
        /// This is the final piece: the state is complete.
        last: bool,
    },
    /// A member's answer to this endpoint's probe (`Endpoint::probe`).
    Probed(Box<crate::probe::Report>),
}

impl crate::machine::Announce for Event {
    fn weight(&self) -> usize {
        match self {
            Event::Cast { data, .. } | Event::Send { data, .. } | Event::State { chunk: data, .. } => data.len(),
            Event::View(_)
            | Event::Exit
            | Event::Error { .. }
            | Event::Suspect(_)
            | Event::Block
            | Event::StateRequest
            | Event::Probed(_) => 0,
        }
    }
    fn view(&self) -> Option<&View> {
        match self {
            Event::View(v) => Some(v),
            _ => None,
        }
    }
    fn is_exit(&self) -> bool {
        matches!(self, Event::Exit)
    }
}
