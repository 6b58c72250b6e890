//! The layer contract.
//!
//! A layer is an automaton: it handles one event at a time with `&mut self` and emits events
//! through its context, up towards the application or down towards the network. It is never
//! re-entered: what it emits is queued and handed to its neighbours after it returns, and
//! each direction between two layers is FIFO. Timers are data: `poll_timeout` says when the
//! layer next wants `handle_timeout`, and the driver sleeps until the earliest deadline.
//!
//! **Life of a layer.** A layer is built for one view (one stack per view) and lives until
//! the next view's stack replaces it. `init` comes first, once, with the view in `cx` and the
//! time the view starts; then events, timeouts, and an `end_turn` after each batch of input
//! the endpoint handled (a layer that gathers output sends it there). The view change itself
//! travels through every layer as a sequence of events, always in this order:
//!
//! 1. `Dn::Block` then `Up::Block` — a view change has begun (once per view);
//! 2. `Dn::Failed` then `Up::Failed` — the members that will not be in the next view (at the
//!    start of each attempt of the flush; the set only grows, and may be empty);
//! 3. `Dn::BlockOk` — the application stopped casting (once);
//! 4. `Dn::Cut`, answered from below by `Up::CutReached` — the flush's cut. A layer that
//!    holds messages of this view delivers them before it passes `Up::CutReached` up (in an
//!    order every survivor computes alike: the cut is the same at all of them); after it, it
//!    delivers nothing more of this view;
//! 5. `Dn::Install` then `Up::Install` — the next view; the stack is replaced after it.
//!
//! Steps 2 and 4 repeat when the flush starts over (a member failed during it). A member
//! that leaves, or is left out, may see the sequence cut short; the first view a joining
//! member installs from its provisional one is announced by step 5 alone.

use crate::event::{Dn, Up};
use crate::ids::{Rank, View};
use crate::props::Props;
use crate::rng::Rng;
use crate::time::Time;
use bytes::Bytes;
use core::fmt;
use std::collections::{BTreeMap, VecDeque};

/// What layers keep across view changes (one stack per view: a layer's own state dies with
/// its stack). Keyed by layer name; the endpoint owns it. Ensemble's view state plays this
/// part.
pub type Memo = BTreeMap<&'static str, Bytes>;

/// `Layer::max_header` of a layer that does not say.
pub const DEFAULT_MAX_HEADER: usize = 256;

/// `Cx::room` until the endpoint sets it: that of a largest UDP datagram.
pub const DEFAULT_ROOM: usize = room(crate::endpoint::MAX_UDP_PAYLOAD - crate::frame::FRAME_LEN);

/// The room for a message's headers and body in a datagram that has `past_frame` bytes past
/// its frame (and seal: `Config::room`): less the message's presence bits (a varint, at most
/// 10 bytes).
pub const fn room(past_frame: usize) -> usize {
    past_frame.saturating_sub(10)
}

/// What a layer sees of the world while it handles one event.
pub struct Cx<'a> {
    /// The time of the input being handled (the driver's clock; a layer reads no other).
    pub now: Time,
    /// The view this stack was built for.
    pub view: &'a View,
    /// This member's rank in `view`.
    pub rank: Rank,
    /// The endpoint's seeded generator: a layer's only source of randomness.
    pub rng: &'a mut Rng,
    /// Bytes a message this layer sends down may take, its headers and those of the layers
    /// above included, and still fit one datagram once the layers below have put theirs on
    /// (each at most its `Layer::max_header`): the endpoint's datagram less its frame, less
    /// what the layers below this one may add.
    pub room: usize,
    up: &'a mut VecDeque<Up>,
    dn: &'a mut VecDeque<Dn>,
    memo: Option<&'a mut Memo>,
    keys: Option<&'a mut crate::keyring::Keyring>,
}

impl<'a> Cx<'a> {
    /// A context whose output goes to `up` and `dn`, with `DEFAULT_ROOM`, no memo and no
    /// keys (the endpoint adds its own; tests and harnesses use it as it is).
    pub fn new(
        now: Time,
        view: &'a View,
        rank: Rank,
        rng: &'a mut Rng,
        up: &'a mut VecDeque<Up>,
        dn: &'a mut VecDeque<Dn>,
    ) -> Cx<'a> {
        Cx { now, view, rank, rng, room: DEFAULT_ROOM, up, dn, memo: None, keys: None }
    }

    /// The same context with `room` bytes for a message (the endpoint's: `room` of its
    /// `max_datagram`; `DEFAULT_ROOM` until set).
    pub fn with_room(self, room: usize) -> Cx<'a> {
        Cx { room, ..self }
    }

    /// The same context for a layer above others whose headers take at most `headers`
    /// bytes (their `Layer::max_header`): `room` shrinks by as much.
    pub fn above(self, headers: usize) -> Cx<'a> {
        Cx { room: self.room.saturating_sub(headers), ..self }
    }

    /// The same context with a memo that outlives the stack (the endpoint's).
    pub fn with_memo(self, memo: &'a mut Memo) -> Cx<'a> {
        Cx { memo: Some(memo), ..self }
    }

    /// The same context with the endpoint's keys (a secured endpoint's).
    pub(crate) fn with_keys(self, keys: Option<&'a mut crate::keyring::Keyring>) -> Cx<'a> {
        Cx { keys, ..self }
    }

    /// For the membership layer, at the coordinator of `view`: what its `Install` carries
    /// (opaque) for each member to read the view with: under member key pairs, a fresh key
    /// sealed for each member (`keyring`); empty otherwise.
    pub fn key_table(&mut self, view: &View) -> Bytes {
        self.keys.as_deref_mut().map(|k| k.key_table(view)).unwrap_or_default()
    }

    /// For the membership layer, as it installs `view`: the key table its `Install` carried.
    pub fn take_key_table(&mut self, view: &View, table: &[u8]) {
        if let Some(k) = self.keys.as_deref_mut() {
            k.take_key_table(view, table);
        }
    }

    /// What a layer of this name kept in an earlier view (see `Memo`).
    pub fn kept(&self, key: &'static str) -> Option<Bytes> {
        self.memo.as_ref().and_then(|m| m.get(key).cloned())
    }

    /// Keeps `value` for the stacks of later views (dropped when there is no memo).
    pub fn keep(&mut self, key: &'static str, value: Bytes) {
        if let Some(m) = self.memo.as_deref_mut() {
            m.insert(key, value);
        }
    }

    /// Emits an event towards the application; the message it carries says whether the
    /// next layer's header is there (`Msg::unseal`).
    pub fn up(&mut self, mut ev: Up) {
        if let Some(m) = ev.carried_mut() {
            m.unseal();
        }
        self.up.push_back(ev)
    }

    /// Emits an event towards the network; the message it carries records whether this
    /// layer pushed a header (`Msg::seal`).
    pub fn dn(&mut self, mut ev: Dn) {
        if let Some(m) = ev.carried_mut() {
            m.seal();
        }
        self.dn.push_back(ev)
    }

    /// Emits every event of `evs` towards the application, in order, leaving `evs` empty: as
    /// `up` on each, but moving none of them when nothing else is queued above yet (the
    /// queues are swapped).
    pub fn up_all(&mut self, evs: &mut VecDeque<Up>) {
        for ev in evs.iter_mut() {
            if let Some(m) = ev.carried_mut() {
                m.unseal();
            }
        }
        if self.up.is_empty() {
            core::mem::swap(self.up, evs);
        } else {
            self.up.append(evs);
        }
    }

    /// Hands on an event a layer inside a composite emitted (already sealed or unsealed).
    pub fn pass_up(&mut self, ev: Up) {
        self.up.push_back(ev)
    }

    /// Hands on an event a layer inside a composite emitted (already sealed or unsealed).
    pub fn pass_dn(&mut self, ev: Dn) {
        self.dn.push_back(ev)
    }

    /// The same context with other output queues (for a composite's inner layers).
    pub fn redirect<'b>(&'b mut self, up: &'b mut VecDeque<Up>, dn: &'b mut VecDeque<Dn>) -> Cx<'b> {
        Cx {
            now: self.now,
            view: self.view,
            rank: self.rank,
            rng: &mut *self.rng,
            room: self.room,
            up,
            dn,
            memo: self.memo.as_deref_mut(),
            keys: self.keys.as_deref_mut(),
        }
    }

    /// Keeps this context's up queue, with another down queue.
    pub fn with_dn<'b>(&'b mut self, dn: &'b mut VecDeque<Dn>) -> Cx<'b> {
        Cx {
            now: self.now,
            view: self.view,
            rank: self.rank,
            rng: &mut *self.rng,
            room: self.room,
            up: &mut *self.up,
            dn,
            memo: self.memo.as_deref_mut(),
            keys: self.keys.as_deref_mut(),
        }
    }

    /// Keeps this context's down queue, with another up queue.
    pub fn with_up<'b>(&'b mut self, up: &'b mut VecDeque<Up>) -> Cx<'b> {
        Cx {
            now: self.now,
            view: self.view,
            rank: self.rank,
            rng: &mut *self.rng,
            room: self.room,
            up,
            dn: &mut *self.dn,
            memo: self.memo.as_deref_mut(),
            keys: self.keys.as_deref_mut(),
        }
    }
}

/// A layer's state for inspection: what it counted, what it holds now, and a free-form
/// state line (see `metrics` for how these are read from a running member).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Dump {
    /// The layer's name (`Layer::name`).
    pub layer: &'static str,
    /// Counts that only grow while the layer lives (it lives for one view).
    pub counters: Vec<(&'static str, u64)>,
    /// Levels now: bytes or messages held, a window, a setting.
    pub gauges: Vec<(&'static str, u64)>,
    /// Distributions (durations in microseconds, named `..._us`).
    pub hists: Vec<(&'static str, crate::metrics::Hist)>,
    /// Free-form, for a human: what the layer is doing now.
    pub state: String,
}

impl Dump {
    /// A counter's or a gauge's value.
    pub fn counter(&self, name: &str) -> Option<u64> {
        self.counters.iter().chain(&self.gauges).find(|(n, _)| *n == name).map(|&(_, v)| v)
    }
}

/// A stack that does not meet a layer's requirements.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Missing {
    /// The layer whose requirements are not met.
    pub layer: &'static str,
    /// What it requires and no layer below it provides.
    pub missing: Props,
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "layer `{}` requires {}, which no layer below it provides", self.layer, self.missing)
    }
}

impl std::error::Error for Missing {}

/// A protocol layer: an automaton that handles events from above (`Dn`) and below (`Up`)
/// and emits events through its `Cx` (see the module doc for the contract).
pub trait Layer: Send {
    /// The layer's name, as dumps, metrics and `Missing` report it.
    fn name(&self) -> &'static str;
    /// Properties this layer needs from the layers below it.
    fn requires(&self) -> Props {
        Props::NONE
    }
    /// Properties this layer adds for the layers above it.
    fn provides(&self) -> Props {
        Props::NONE
    }
    /// The most bytes of header this layer puts on a message from above going down, on any
    /// path it may take (a retransmission, a forward to another member, a packed entry), in a
    /// stack built for `view`. A stack sums it over the layers below a layer to give that
    /// layer its `Cx::room`, which is how `frag` cuts fragments that fit a datagram. The
    /// default, `DEFAULT_MAX_HEADER`, is for a layer that does not say; one whose header can be
    /// longer must say so, or a fragment cut to the room would not fit and be dropped.
    fn max_header(&self, _view: &View) -> usize {
        DEFAULT_MAX_HEADER
    }
    /// Bytes of casts this layer would take now and pass on at once, holding none back (flow
    /// control's credit); `usize::MAX`, the default, for a layer that never holds casts back.
    /// The endpoint hands the stack a run of casts as one input only as far as every layer
    /// has room for them (`Endpoint::handle_commands`), so a layer that answers a cast with
    /// `Up::Flow { ready: false }` must say its room, or the casts handed over with that
    /// one would pass it.
    fn cast_room(&self) -> usize {
        usize::MAX
    }
    /// Called once before anything else, with `cx.view` the view this layer's stack was built
    /// for and `cx.now` the time that view starts: a layer sizes its state for the view, arms
    /// its first timers and may emit its first messages here.
    fn init(&mut self, _cx: &mut Cx<'_>) {}
    /// Handles one event from above (towards the network).
    fn handle_dn(&mut self, ev: Dn, cx: &mut Cx<'_>);
    /// Handles events from above, oldest first, leaving `evs` empty: `handle_dn` on each,
    /// which is what the default does. A composite overrides it to run its layers once for
    /// the whole batch (each layer then handles the batch's events one after another).
    fn handle_dns(&mut self, evs: &mut VecDeque<Dn>, cx: &mut Cx<'_>) {
        while let Some(ev) = evs.pop_front() {
            self.handle_dn(ev, cx);
        }
    }
    /// Handles one event from below (towards the application).
    fn handle_up(&mut self, ev: Up, cx: &mut Cx<'_>);
    /// Handles the events queued from below, oldest first, leaving `evs` empty: `handle_up`
    /// on each, which is what the default does (`each_up`). A layer whose data path passes
    /// a message on as it came may override it to hand a whole batch of such messages on at
    /// once (`Cx::up_all`, which moves no event); it must do for each what `handle_up` would,
    /// in order, and may only delay what it emits besides (never emit anything earlier).
    fn handle_ups(&mut self, evs: &mut VecDeque<Up>, cx: &mut Cx<'_>) {
        each_up(self, evs, cx)
    }
    /// Called after each batch of input the endpoint handled (datagrams received together,
    /// commands, timeouts): a layer that gathers messages into datagrams sends them here.
    fn end_turn(&mut self, _cx: &mut Cx<'_>) {}
    /// The earliest time this layer wants `handle_timeout`, if any.
    fn poll_timeout(&self) -> Option<Time> {
        None
    }
    /// Called when `cx.now` has reached the deadline from `poll_timeout`.
    fn handle_timeout(&mut self, _cx: &mut Cx<'_>) {}
    /// Appends this layer's state (a composite: each of its layers', top first).
    fn dump(&self, out: &mut Vec<Dump>);

    /// Checks this layer (a composite: each of its layers, bottom up) against the properties
    /// provided below it; returns what holds above it.
    fn check(&self, below: Props) -> Result<Props, Missing> {
        let missing = self.requires() - below;
        if missing.is_empty() { Ok(below | self.provides()) } else { Err(Missing { layer: self.name(), missing }) }
    }
}

/// `handle_up` on each event of `evs`, oldest first (`Layer::handle_ups`'s default, for an
/// override to fall back on).
pub fn each_up<L: Layer + ?Sized>(layer: &mut L, evs: &mut VecDeque<Up>, cx: &mut Cx<'_>) {
    while let Some(ev) = evs.pop_front() {
        layer.handle_up(ev, cx);
    }
}

impl<L: Layer + ?Sized> Layer for Box<L> {
    fn name(&self) -> &'static str {
        (**self).name()
    }
    fn requires(&self) -> Props {
        (**self).requires()
    }
    fn provides(&self) -> Props {
        (**self).provides()
    }
    fn max_header(&self, view: &View) -> usize {
        (**self).max_header(view)
    }
    fn cast_room(&self) -> usize {
        (**self).cast_room()
    }
    fn init(&mut self, cx: &mut Cx<'_>) {
        (**self).init(cx)
    }
    fn handle_dn(&mut self, ev: Dn, cx: &mut Cx<'_>) {
        (**self).handle_dn(ev, cx)
    }
    fn handle_dns(&mut self, evs: &mut VecDeque<Dn>, cx: &mut Cx<'_>) {
        (**self).handle_dns(evs, cx)
    }
    fn end_turn(&mut self, cx: &mut Cx<'_>) {
        (**self).end_turn(cx)
    }
    fn handle_up(&mut self, ev: Up, cx: &mut Cx<'_>) {
        (**self).handle_up(ev, cx)
    }
    fn handle_ups(&mut self, evs: &mut VecDeque<Up>, cx: &mut Cx<'_>) {
        (**self).handle_ups(evs, cx)
    }
    fn poll_timeout(&self) -> Option<Time> {
        (**self).poll_timeout()
    }
    fn handle_timeout(&mut self, cx: &mut Cx<'_>) {
        (**self).handle_timeout(cx)
    }
    fn dump(&self, out: &mut Vec<Dump>) {
        (**self).dump(out)
    }
    fn check(&self, below: Props) -> Result<Props, Missing> {
        (**self).check(below)
    }
}
