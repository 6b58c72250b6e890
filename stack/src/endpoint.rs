//! The sans-IO endpoint: one member of one group, driven by a driver that owns the I/O.
//!
//! Inputs: `handle_datagram(now, bytes)`, `handle_timeout(now)` and the commands `cast`,
//! `send`, `leave`; after each batch of them, `end_turn(now)` (the layers' end-of-turn call:
//! `pack` sends what it gathered there). Outputs: `poll_transmit` (datagrams to put on the
//! wire), `poll_event` (what the application sees) and `poll_timeout` (when to call
//! `handle_timeout` next). The stack of each view is started (`Layer::init`) when the view
//! is installed; the first one at the endpoint's first input.
//! The endpoint frames every datagram (see `frame`), checks every one it receives, and runs
//! the stack for the current view; a view change builds a fresh stack from the factory.
//!
//! **Frame protection** (`Config::security`): a secured endpoint seals every datagram it
//! sends (`keyring`: the view's keys inside a view, the group's gossip keys outside one;
//! under member key pairs, gossip sealed for each listed member and each view's key handed
//! out in its `Install`) and opens every one it receives before anything past the frame's
//! header is read; a datagram that is not sealed, does not open (`rx_bad_tag`), comes from a
//! key not on the allow-list (`rx_not_allowed`) or was opened already (`rx_replay`,
//! `rx_stale`) is counted and dropped, and only what opened teaches the
//! driver a route (`Rx::Sound`). An insecure endpoint counts sealed datagrams as `rx_no_key`.
//!
//! The bottom of the stack is here: a `Cast` leaving the stack is transmitted to the group
//! and also looped back up the stack as this member's own delivery (the kernel's multicast
//! loopback copy is dropped as `rx_own`), unless a layer delivered it here already
//! (`Msg::delivered_here`: the reliable layer delivers its own casts as it numbers them); a `Send` to this member's own rank only loops
//! back; `Leave` returns up the stack as `Exit`; `Gossip` goes out flagged so that the
//! receiver passes it up whatever view it is in.
//!
//! **Dynamic membership.** With an empty `Config::members` the endpoint starts alone in a
//! provisional view (never announced) and its stack must hold a membership layer: that layer
//! finds or forms the group and emits `Up::Install(view)`, upon which the endpoint builds a
//! fresh stack for the new view once the current input is handled, announces it, and replays
//! the datagrams it held for it. `Memo` carries what layers keep across views.

use crate::event::{Dn, Event, Up};
use crate::frame::{
    FLAG_GOSSIP, FLAG_PROBE, FLAG_SEND, FRAME_LEN, Frame, FrameError, FrameView, SEAL_OVERHEAD, SEALED_LEN, Seal, seal,
};
use crate::ids::{EndpointId, GroupId, Rank, View};
use crate::keyring::Keyring;
use crate::layer::{Cx, Dump, Layer, Memo, Missing};
use crate::machine::{Command, Machine, Rx};
use crate::metrics::{Metrics, Tally};
use crate::msg::Msg;
use crate::probe::{Budget as ProbeBudget, Probe, Report};
use crate::props::Props;
use crate::registry::{Registry, SpecError};
use crate::rng::Rng;
use crate::secure::{Reject, Security};
use crate::time::Time;
use bytes::{Bytes, BytesMut};
use core::fmt;
use smallvec::SmallVec;
use std::collections::{BTreeMap, VecDeque};

/// An `info` event of the endpoint `$ep` (`&self`): its group, id and view, then the rest.
macro_rules! view_info {
    ($ep:expr, $($rest:tt)*) => {
        tracing::info!(group = ?$ep.cfg.group, me = %$ep.cfg.me, view = ?$ep.view.id, $($rest)*)
    };
}

/// Largest UDP payload over IPv4.
pub const MAX_UDP_PAYLOAD: usize = 65_507;

/// How an endpoint is set up: its group and identity, its first view (or none, to join),
/// its limits and its protection. `Config::new` gives the defaults.
#[derive(Clone, Debug)]
pub struct Config {
    /// The group this endpoint belongs to; datagrams of other groups are dropped
    /// (`Stats::rx_foreign_group`).
    pub group: GroupId,
    /// This endpoint's id, carried by every datagram it sends.
    pub me: EndpointId,
    /// The members of a fixed first view, in rank order, including `me`. Empty: join (or
    /// form) the group through the stack's membership layer.
    pub members: Vec<EndpointId>,
    /// Seeds the stack's random generator (default: `me`'s number).
    pub seed: u64,
    /// Largest datagram this endpoint sends (frame included; default `MAX_UDP_PAYLOAD`).
    pub max_datagram: usize,
    /// Bytes of datagrams from a later view kept until that view is installed, in all and
    /// per source (a forger using one member's name cannot crowd out the others' early
    /// datagrams; what is refused is counted in `Stats::rx_hold_overflow`). Default 4 MiB.
    pub hold_bytes: usize,
    /// Of `hold_bytes`, the most held from any one source. Default 1 MiB.
    pub hold_per_source: usize,
    /// The application takes part in state transfer (`Event::StateRequest`, `Event::State`).
    /// Without it the endpoint answers state requests with an empty state itself.
    pub transfer_state: bool,
    /// How datagrams are protected (`Security::Insecure` unless set: every member of a group
    /// must have the same secret, so there is nothing to default to).
    pub security: Security,
    /// Answer probes (`probe`): this endpoint's view and metrics to whoever can seal gossip
    /// of the group. Off unless set.
    pub probe: bool,
}

impl Config {
    /// A member of `group` whose first view is `members` (empty: join), with the defaults:
    /// seed `me`, `MAX_UDP_PAYLOAD` datagrams, 4 MiB held for later views (1 MiB per
    /// source), no state transfer, insecure, probes not answered.
    pub fn new(group: GroupId, me: EndpointId, members: Vec<EndpointId>) -> Config {
        Config {
            group,
            me,
            members,
            seed: me.0,
            max_datagram: MAX_UDP_PAYLOAD,
            hold_bytes: 4 << 20,
            hold_per_source: 1 << 20,
            transfer_state: false,
            security: Security::Insecure,
            probe: false,
        }
    }

    /// An endpoint that joins `group` through its stack's membership layer.
    pub fn joining(group: GroupId, me: EndpointId) -> Config {
        Config::new(group, me, Vec::new())
    }

    /// This configuration with `security`.
    pub fn secured(self, security: Security) -> Config {
        Config { security, ..self }
    }

    /// Bytes a datagram has past the frame at most: `max_datagram` less the frame and, for
    /// a secured endpoint, the seal.
    pub fn room(&self) -> usize {
        let seal = if self.security.is_secure() { SEAL_OVERHEAD } else { 0 };
        self.max_datagram.saturating_sub(FRAME_LEN + seal)
    }
}

/// Where a datagram goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Dest {
    /// Every member of the view (the group address, or each member in fan-out mode).
    All,
    /// Gossip (discovery, merge): every member of the view and every host this member
    /// knows of outside it (the seeds, routes learned; in multicast mode the group address).
    Everyone,
    /// One member.
    One(EndpointId),
}

/// Bytes of frame and layer headers kept inline in a transmit.
pub const INLINE_TX_HEAD: usize = 96;

/// A datagram to send: `head` followed by `body`. Unsealed, the body is the payload, shared
/// with the application and never copied; sealed, it is the encrypted headers and payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Where it goes.
    pub dst: Dest,
    /// Unsealed: the frame and the layer headers. Sealed: the frame and the seal.
    pub head: SmallVec<[u8; INLINE_TX_HEAD]>,
    /// Unsealed: the payload, shared, not copied. Sealed: the layer headers and payload,
    /// encrypted, then the tag (and, for gossip under member key pairs, what opening needs).
    pub body: Bytes,
}

impl Transmit {
    /// Bytes of the whole datagram.
    pub fn len(&self) -> usize {
        self.head.len() + self.body.len()
    }
    /// Whether the datagram has no bytes (never so for one an endpoint made: it has a frame).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The datagram in one buffer (a copy; for the simulator and tests).
    pub fn to_bytes(&self) -> Bytes {
        let mut v = Vec::with_capacity(self.len());
        v.extend_from_slice(&self.head);
        v.extend_from_slice(&self.body);
        Bytes::from(v)
    }
}

/// What the endpoint counted. Every datagram received lands in exactly one `rx_*` bucket.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Datagrams received (each part of a bundle counts as one).
    pub rx_datagrams: u64,
    /// Bytes of the datagrams received.
    pub rx_bytes: u64,
    /// Passed to the stack.
    pub rx_accepted: u64,
    /// Shorter than a frame (`FrameError::Truncated`), or a sealed one too short to open.
    pub rx_truncated: u64,
    /// Not a Thoth frame (`FrameError::BadMagic`).
    pub rx_bad_magic: u64,
    /// Another wire version (`FrameError::BadVersion`).
    pub rx_bad_version: u64,
    /// Unknown flags (`FrameError::BadFlags`).
    pub rx_bad_flags: u64,
    /// CRC mismatch (`FrameError::BadCrc`): corrupted, or forged without the CRC.
    pub rx_bad_crc: u64,
    /// Not sealed, at a secured endpoint.
    pub rx_unsealed: u64,
    /// Sealed, at an endpoint without keys.
    pub rx_no_key: u64,
    /// Sealed, and its tag does not verify (forged, altered, another key).
    pub rx_bad_tag: u64,
    /// Sealed, and its packet number was opened already.
    pub rx_replay: u64,
    /// Sealed, and its packet number is below its sender's replay window.
    pub rx_stale: u64,
    /// Member key pairs: gossip from a key not on the allow-list, or with nothing for this
    /// endpoint's key.
    pub rx_not_allowed: u64,
    /// The layers' presence bits past the frame do not decode.
    pub rx_bad_layers: u64,
    /// A frame of another group.
    pub rx_foreign_group: u64,
    /// From a source not in the current view.
    pub rx_unknown_src: u64,
    /// Sent in an earlier (or a concurrent) view.
    pub rx_other_view: u64,
    /// Sent in a later view: held until it is installed.
    pub rx_held: u64,
    /// Held ones dropped for lack of room.
    pub rx_hold_overflow: u64,
    /// This endpoint's own multicasts, looped back by the kernel.
    pub rx_own: u64,
    /// Arrived after this endpoint left.
    pub rx_after_exit: u64,
    /// Gossip from outside the view, passed to the stack.
    pub rx_gossip: u64,
    /// Gossip no layer took (it reached the application's side): dropped.
    pub gossip_unclaimed: u64,
    /// Bundles received (`Groups`; each part is then counted as a datagram of its group).
    pub rx_bundles: u64,
    /// Bundles that did not split into whole datagrams: dropped whole.
    pub rx_bad_bundle: u64,
    /// Datagrams sent (a multicast counts once, whatever its fan-out).
    pub tx_datagrams: u64,
    /// Bytes of the datagrams sent, frames included.
    pub tx_bytes: u64,
    /// Larger than `max_datagram`: not sent.
    pub tx_oversize: u64,
    /// A `Send` to a rank not in the view.
    pub tx_bad_rank: u64,
    /// Bundles sent (`Groups`).
    pub tx_bundles: u64,
    /// Datagrams that went out in bundles (`Groups`).
    pub tx_bundled: u64,
    /// Casts delivered to the application (`Event::Cast`), this member's own included.
    pub delivered_casts: u64,
    /// Point-to-point messages delivered to the application (`Event::Send`).
    pub delivered_sends: u64,
    /// `Event::Error`s the layers raised.
    pub layer_errors: u64,
    /// `Event::Suspect`s the failure detectors raised.
    pub suspicions: u64,
    /// Views installed, the first one included.
    pub views: u64,
    /// `Up::Install`s refused: a view without this endpoint, or not later than the current.
    pub installs_refused: u64,
    /// Member key pairs: views installed without their key (the `Install`'s key table had
    /// none for this endpoint), where it can neither read nor be read.
    pub views_unkeyed: u64,
    /// Probes answered, and answers taken (`Event::Probed`).
    pub rx_probe: u64,
    /// Probes not answered: `Config::probe` is off.
    pub rx_probe_refused: u64,
    /// Probes not answered: more than the rate limit allows (`probe::BURST`).
    pub rx_probe_limited: u64,
    /// Probe datagrams that do not decode.
    pub rx_probe_bad: u64,
}

/// Calls `$m!` with every field of `Stats`, in order.
macro_rules! each_stat {
    ($m:ident) => {
        $m!(
            rx_datagrams,
            rx_bytes,
            rx_accepted,
            rx_truncated,
            rx_bad_magic,
            rx_bad_version,
            rx_bad_flags,
            rx_bad_crc,
            rx_unsealed,
            rx_no_key,
            rx_bad_tag,
            rx_replay,
            rx_stale,
            rx_not_allowed,
            rx_bad_layers,
            rx_foreign_group,
            rx_unknown_src,
            rx_other_view,
            rx_held,
            rx_hold_overflow,
            rx_own,
            rx_after_exit,
            rx_gossip,
            gossip_unclaimed,
            rx_bundles,
            rx_bad_bundle,
            tx_datagrams,
            tx_bytes,
            tx_oversize,
            tx_bad_rank,
            tx_bundles,
            tx_bundled,
            delivered_casts,
            delivered_sends,
            layer_errors,
            suspicions,
            views,
            installs_refused,
            views_unkeyed,
            rx_probe,
            rx_probe_refused,
            rx_probe_limited,
            rx_probe_bad,
        )
    };
}

impl Stats {
    /// Every counter, by its field's name, in order.
    pub fn counters(&self) -> Vec<(&'static str, u64)> {
        // Destructured whole: a field added to the struct and not to `each_stat!` does not
        // compile.
        macro_rules! list {
            ($($f:ident,)*) => {{
                let Stats { $($f),* } = self;
                vec![$((stringify!($f), *$f)),*]
            }};
        }
        each_stat!(list)
    }

    /// Adds the counters of `s` to these.
    pub fn add(&mut self, s: &Stats) {
        macro_rules! sum {
            ($($f:ident,)*) => {{ $(self.$f += s.$f;)* }};
        }
        each_stat!(sum);
    }

    /// Datagrams dropped as malformed or misaddressed.
    pub fn rx_rejected(&self) -> u64 {
        self.rx_truncated
            + self.rx_bad_magic
            + self.rx_bad_version
            + self.rx_bad_flags
            + self.rx_bad_crc
            + self.rx_unsealed
            + self.rx_no_key
            + self.rx_bad_tag
            + self.rx_replay
            + self.rx_stale
            + self.rx_not_allowed
            + self.rx_bad_layers
            + self.rx_foreign_group
            + self.rx_unknown_src
            + self.rx_other_view
            + self.rx_bad_bundle
            + self.rx_probe_bad
    }
}

/// Why an endpoint could not be created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EndpointError {
    /// `Config::members` does not include `Config::me`.
    NotMember,
    /// `Config::members` is empty (join) but no layer of the stack provides membership.
    NoMembership,
    /// `max_datagram` leaves no room past the frame.
    DatagramTooSmall,
    /// Member key pairs in a fixed group: its views' keys come with the membership layer's
    /// installs, so it has to join (a fixed group shares a secret).
    FixedKeyPairs,
    /// The stack is ill-formed: a layer lacks a property it requires from below.
    Stack(Missing),
    /// The stack's spec string does not build (`Endpoint::from_spec`).
    Spec(SpecError),
}

impl fmt::Display for EndpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EndpointError::NotMember => f.write_str("this endpoint is not in its initial member list"),
            EndpointError::NoMembership => f.write_str("joining a group needs a membership layer in the stack"),
            EndpointError::DatagramTooSmall => f.write_str("max_datagram leaves no room past the frame (and seal)"),
            EndpointError::FixedKeyPairs => {
                f.write_str("member key pairs need a joining endpoint (a fixed group uses a shared secret)")
            }
            EndpointError::Stack(m) => m.fmt(f),
            EndpointError::Spec(s) => s.fmt(f),
        }
    }
}

impl std::error::Error for EndpointError {}

/// Why a cast or send was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CastError {
    /// The endpoint has left the group.
    Left,
    /// The message does not fit in a datagram and no layer fragments.
    TooLarge,
    /// `send` to an endpoint that is not in the view.
    NotMember,
    /// Flow control holds casts back until receivers catch up, or a view change is under
    /// way; try again after `can_cast()` turns true (a later input: a credit grant, a
    /// timeout, the next view).
    WouldBlock,
    /// A command for a group this process does not hold (`Groups`).
    UnknownGroup,
    /// An endpoint for a group held already, or with another process's id (`Groups`).
    GroupExists,
}

impl fmt::Display for CastError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CastError::Left => "the endpoint has left the group",
            CastError::TooLarge => "message larger than a datagram and no fragmentation layer",
            CastError::NotMember => "destination is not a member of the view",
            CastError::WouldBlock => "flow control holds casts until receivers catch up",
            CastError::UnknownGroup => "no such group in this process",
            CastError::GroupExists => "the group is held already, or the endpoint is another process's",
        })
    }
}

impl std::error::Error for CastError {}

/// What the application asks of an endpoint, as a driver carries it (`Machine::Cmd`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cmd {
    /// A multicast to the view (`Endpoint::cast`).
    Cast(Bytes),
    /// A cast in its sender's FIFO order only (`Endpoint::cast_fifo`).
    CastFifo(Bytes),
    /// A point-to-point message to one member (`Endpoint::send`).
    Send(EndpointId, Bytes),
    /// Leave the group (`Endpoint::leave`).
    Leave,
    /// The answer to `Event::Block`.
    BlockOk,
    /// The answer to `Event::StateRequest`.
    State(Bytes),
    /// A probe (`Endpoint::probe`).
    Probe {
        /// The member to ask; `None`: the whole group, as gossip goes.
        to: Option<EndpointId>,
        /// Echoed in the answers (`Event::Probed`), which are taken only for the last probe.
        nonce: u64,
    },
}

impl Command for Cmd {
    fn weight(&self) -> usize {
        match self {
            Cmd::Cast(data) | Cmd::CastFifo(data) | Cmd::Send(_, data) | Cmd::State(data) => data.len(),
            Cmd::Leave | Cmd::BlockOk | Cmd::Probe { .. } => 0,
        }
    }
    fn is_answer(&self) -> bool {
        matches!(self, Cmd::BlockOk | Cmd::State(_))
    }
    fn is_flow_controlled(&self) -> bool {
        matches!(self, Cmd::Cast(_) | Cmd::CastFifo(_))
    }
}

type Factory<L> = Box<dyn FnMut(&View) -> L + Send>;

/// One member of one group: the sans-IO state machine a driver runs (see the module doc).
/// `L` is the stack; by default one composed at run time (`compose::Stack`).
pub struct Endpoint<L: Layer = crate::compose::Stack> {
    cfg: Config,
    factory: Factory<L>,
    stack: L,
    /// Properties the stack provides (decides, for one, whether large casts are refused).
    props: Props,
    view: View,
    rank: Rank,
    rng: Rng,
    up: VecDeque<Up>,
    dn: VecDeque<Dn>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    held: VecDeque<Bytes>,
    held_bytes: usize,
    /// Bytes held per source (sources of the held datagrams only).
    held_from: BTreeMap<EndpointId, usize>,
    /// The number of the last datagram passed to the stack.
    datagram: u32,
    memo: Memo,
    /// The view the membership layer asked for, installed once the current input is handled.
    next_view: Option<View>,
    /// Events for the top of the stack that the endpoint itself answers (an empty state).
    answers: VecDeque<Dn>,
    /// Where a batch of casts is gathered for the stack (`handle_commands`); kept for its
    /// allocation.
    casts: VecDeque<Dn>,
    left: bool,
    /// The first view's stack has had its `init`.
    started: bool,
    /// Messages that left the bottom of the stack (`end_turn` repeats while a pass sends).
    bottom_events: u64,
    /// False while a flow-control layer holds casts back.
    cast_ready: bool,
    /// A secured endpoint's keys.
    keyring: Option<Keyring>,
    stats: Stats,
    /// What the stacks of earlier views counted (`metrics`).
    tally: Tally,
    /// The rate limit on answers to probes.
    probe_budget: ProbeBudget,
    /// The nonce of this endpoint's last probe: answers to it are taken.
    probing: Option<u64>,
}

impl<L: Layer> Endpoint<L> {
    /// An endpoint whose stack for each view comes from `factory`. The first event it
    /// returns is the initial view.
    pub fn new(cfg: Config, factory: impl FnMut(&View) -> L + Send + 'static) -> Result<Self, EndpointError> {
        if cfg.room() == 0 {
            return Err(EndpointError::DatagramTooSmall);
        }
        let joining = cfg.members.is_empty();
        let view = if joining { View::provisional(cfg.me) } else { View::initial(cfg.members.clone()) };
        let rank = view.rank_of(cfg.me).ok_or(EndpointError::NotMember)?;
        let mut factory: Factory<L> = Box::new(factory);
        let stack = factory(&view);
        let props = stack.check(Props::NONE).map_err(EndpointError::Stack)?;
        if joining && !props.contains(Props::MEMBERSHIP) {
            return Err(EndpointError::NoMembership);
        }
        if matches!(cfg.security, Security::KeyPairs { .. }) && view.len() > 1 {
            return Err(EndpointError::FixedKeyPairs);
        }
        let keyring = Keyring::new(&cfg.security, cfg.group, cfg.me, &view);
        let mut ep = Endpoint {
            keyring,
            rng: Rng::new(cfg.seed),
            cfg,
            factory,
            stack,
            props,
            view: view.clone(),
            rank,
            up: VecDeque::new(),
            dn: VecDeque::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            held: VecDeque::new(),
            held_bytes: 0,
            held_from: BTreeMap::new(),
            datagram: 0,
            memo: Memo::new(),
            next_view: None,
            answers: VecDeque::new(),
            casts: VecDeque::new(),
            left: false,
            started: false,
            bottom_events: 0,
            // A joining endpoint has no view to cast to until its first one is installed.
            cast_ready: !joining,
            stats: Stats::default(),
            tally: Tally::default(),
            probe_budget: ProbeBudget::default(),
            probing: None,
        };
        if !joining {
            ep.stats.views = 1;
            ep.events.push_back(Event::View(view));
        }
        Ok(ep)
    }

    /// This endpoint's id (`Config::me`).
    pub fn me(&self) -> EndpointId {
        self.cfg.me
    }
    /// Its group (`Config::group`).
    pub fn group(&self) -> GroupId {
        self.cfg.group
    }
    /// The current view (before a joining endpoint's first view: the provisional one).
    pub fn view(&self) -> &View {
        &self.view
    }
    /// This endpoint's rank in the current view.
    pub fn rank(&self) -> Rank {
        self.rank
    }
    /// Whether it has left the group (`Event::Exit` delivered).
    pub fn has_left(&self) -> bool {
        self.left
    }
    /// What the endpoint counted so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }
    /// The configuration it was created with.
    pub fn config(&self) -> &Config {
        &self.cfg
    }
    /// Bytes of datagrams held for a later view (at most `Config::hold_bytes`).
    pub fn held_bytes(&self) -> usize {
        self.held_bytes
    }

    /// Bytes this endpoint holds for other members: datagrams of a later view, and what the
    /// layers report as `held_bytes` (each bounded by its own budget).
    pub fn held_for_others(&self) -> u64 {
        let layers: u64 = self.dump().iter().filter_map(|d| d.counter("held_bytes")).sum();
        self.held_bytes as u64 + layers
    }

    /// Every layer's state, top first.
    pub fn dump(&self) -> Vec<Dump> {
        let mut out = Vec::new();
        self.stack.dump(&mut out);
        out
    }

    /// What every layer instance counted since this endpoint started (the stacks of earlier
    /// views included), with the layers' gauges now, and the endpoint's own counters.
    pub fn metrics(&self) -> Metrics {
        Metrics { layers: self.tally.with_live(self.cfg.group, self.dump()), endpoint: self.stats.clone() }
    }

    /// Largest payload `cast` and `send` accept: what a datagram holds past the frame and the
    /// presence bits of a stack with no layers (one byte).
    pub fn max_payload(&self) -> usize {
        if self.props.contains(Props::FRAG) { usize::MAX } else { self.cfg.room() - 1 }
    }

    /// Whether `cast` takes a message now (false while flow control holds casts back).
    pub fn can_cast(&self) -> bool {
        self.cast_ready && !self.left
    }

    /// Multicasts `data` to the view.
    pub fn cast(&mut self, now: Time, data: Bytes) -> Result<(), CastError> {
        self.cast_msg(now, Msg::new(data))
    }

    /// Multicasts `data` to the view in its sender's FIFO order only, whatever order the
    /// stack gives other casts (`Msg::set_fifo`): on an ordered stack every member delivers
    /// it as it arrives, not held for the order (Isis's `fbcast` beside `abcast`). On a
    /// stack without an ordering layer, the same as `cast`.
    pub fn cast_fifo(&mut self, now: Time, data: Bytes) -> Result<(), CastError> {
        let mut msg = Msg::new(data);
        msg.set_fifo();
        self.cast_msg(now, msg)
    }

    fn cast_msg(&mut self, now: Time, msg: Msg) -> Result<(), CastError> {
        self.start(now);
        self.admit(msg.body())?;
        if !self.cast_ready {
            return Err(CastError::WouldBlock);
        }
        self.run(now, Input::Dn(Dn::Cast(msg)));
        Ok(())
    }

    /// Properties the stack provides (`Props::TOTAL`, `Props::CAUSAL`: the order its casts
    /// are delivered in).
    pub fn props(&self) -> Props {
        self.props
    }

    /// Applies the commands at the front of `cmds` as `Machine::handle_commands` says: a run
    /// of casts goes down the stack as one input (at most `CAST_BATCH`, and after the first
    /// only as many bytes as the stack has room for, `Layer::cast_room`, so that flow control
    /// holds back none of them but the first, as it would one at a time); anything else, or
    /// a cast the endpoint refuses, alone.
    pub fn handle_commands(&mut self, now: Time, cmds: &mut VecDeque<Cmd>) -> Result<usize, CastError> {
        self.start(now);
        let mut casts = std::mem::take(&mut self.casts);
        let (room, mut bytes) = (self.stack.cast_room(), 0usize);
        while casts.len() < CAST_BATCH
            && let Some(Cmd::Cast(data) | Cmd::CastFifo(data)) = cmds.front()
            && (if casts.is_empty() { self.cast_ready } else { bytes.saturating_add(data.len()) <= room })
            && self.admit(data).is_ok()
        {
            let msg = match cmds.pop_front() {
                Some(Cmd::Cast(data)) => Msg::new(data),
                Some(Cmd::CastFifo(data)) => {
                    let mut m = Msg::new(data);
                    m.set_fifo();
                    m
                }
                _ => unreachable!("looked at"),
            };
            bytes += msg.len();
            casts.push_back(Dn::Cast(msg));
        }
        if casts.is_empty() {
            self.casts = casts;
            return match cmds.pop_front() {
                Some(cmd) => Machine::handle_command(self, now, cmd).map(|()| 1),
                None => Ok(0),
            };
        }
        let n = casts.len();
        self.run(now, Input::Dns(casts));
        Ok(n)
    }

    /// Sends `data` to one member of the view.
    pub fn send(&mut self, now: Time, to: EndpointId, data: Bytes) -> Result<(), CastError> {
        self.start(now);
        self.admit(&data)?;
        let rank = self.view.rank_of(to).ok_or(CastError::NotMember)?;
        self.run(now, Input::Dn(Dn::Send(rank, Msg::new(data))));
        Ok(())
    }

    /// Leaves the group; `Event::Exit` follows once the stack has let go (with a membership
    /// layer: once the group has installed a view without this endpoint).
    pub fn leave(&mut self, now: Time) {
        self.start(now);
        if !self.left {
            self.run(now, Input::Dn(Dn::Leave));
        }
    }

    /// Asks the members of the group (`to: None`: as gossip goes, to the multicast group or
    /// every host known) or one of them for their view and metrics; each that answers
    /// (`Config::probe`) comes back as `Event::Probed` with `nonce`. See `probe`.
    pub fn probe(&mut self, now: Time, to: Option<EndpointId>, nonce: u64) {
        self.start(now);
        self.probing = Some(nonce);
        let dst = to.map_or(Dest::Everyone, Dest::One);
        let send = if to.is_some() { FLAG_SEND } else { 0 };
        self.transmit(dst, FLAG_GOSSIP | FLAG_PROBE | send, Msg::new(Probe::Request { nonce }.encode().into()));
    }

    /// A probe or an answer from `from`, opened.
    fn on_probe(&mut self, now: Time, from: EndpointId, body: Bytes) {
        let s = &mut self.stats;
        match Probe::decode(&body) {
            Err(_) => s.rx_probe_bad += 1,
            Ok(Probe::Answer(r)) if Some(r.nonce) == self.probing => {
                s.rx_probe += 1;
                self.events.push_back(Event::Probed(r));
            }
            // An answer to no question of this endpoint's.
            Ok(Probe::Answer(_)) => s.rx_probe_bad += 1,
            Ok(Probe::Request { .. }) if !self.cfg.probe => s.rx_probe_refused += 1,
            Ok(Probe::Request { .. }) if !self.probe_budget.take(now) => s.rx_probe_limited += 1,
            Ok(Probe::Request { nonce }) => {
                s.rx_probe += 1;
                let report = Report::new(nonce, self.cfg.me, &self.view, &self.metrics());
                // The presence bits of a message with no headers take one byte.
                match report.fit(self.cfg.room() - 1) {
                    Some(body) => {
                        self.transmit(Dest::One(from), FLAG_GOSSIP | FLAG_PROBE | FLAG_SEND, Msg::new(body.into()))
                    }
                    None => self.stats.tx_oversize += 1,
                }
            }
        }
    }

    /// Answers `Event::Block`: the application has stopped casting in this view.
    pub fn block_ok(&mut self, now: Time) {
        self.start(now);
        if !self.left {
            self.run(now, Input::Dn(Dn::BlockOk));
        }
    }

    /// Answers `Event::StateRequest` with the application's state as of now.
    pub fn send_state(&mut self, now: Time, state: Bytes) {
        self.start(now);
        if !self.left {
            self.run(now, Input::Dn(Dn::State(state)));
        }
    }

    fn admit(&self, data: &Bytes) -> Result<(), CastError> {
        if self.left {
            Err(CastError::Left)
        } else if data.len() > self.max_payload() {
            Err(CastError::TooLarge)
        } else {
            Ok(())
        }
    }

    /// One datagram from the network. Anything that does not check out is counted and
    /// dropped; what became of it is returned (a driver learns routes from sound frames,
    /// and at a secured endpoint only from those that opened).
    pub fn handle_datagram(&mut self, now: Time, data: Bytes) -> Rx {
        self.start(now);
        let s = &mut self.stats;
        s.rx_datagrams += 1;
        s.rx_bytes += data.len() as u64;
        let (frame, seal) = match FrameView::parse(&data) {
            Ok(v) => (*v.frame(), v.seal()),
            Err(e) => {
                *match e {
                    FrameError::Truncated => &mut s.rx_truncated,
                    FrameError::BadMagic => &mut s.rx_bad_magic,
                    FrameError::BadVersion => &mut s.rx_bad_version,
                    FrameError::BadFlags => &mut s.rx_bad_flags,
                    FrameError::BadCrc => &mut s.rx_bad_crc,
                } += 1;
                return Rx::Unsound;
            }
        };
        if frame.group != self.cfg.group {
            s.rx_foreign_group += 1;
            return Rx::Unsound;
        }
        match (&self.keyring, seal) {
            (Some(_), None) => s.rx_unsealed += 1,
            (None, Some(_)) => s.rx_no_key += 1,
            _ => return self.take(now, frame, seal, data),
        }
        Rx::Unsound
    }

    /// A datagram of this group, sealed if this endpoint is secured: where it goes.
    fn take(&mut self, now: Time, frame: Frame, seal: Option<Seal>, data: Bytes) -> Rx {
        let src = frame.src;
        let (mut accepted, mut opened) = (false, false);
        let s = &mut self.stats;
        if frame.src == self.cfg.me {
            s.rx_own += 1;
        } else if self.left {
            s.rx_after_exit += 1;
        } else if frame.is_probe() {
            if let Some(msg) = self.arrived(frame, seal, data) {
                opened = true;
                self.on_probe(now, frame.src, msg.into_payload());
            }
        } else if frame.is_gossip() {
            if let Some(msg) = self.arrived(frame, seal, data) {
                opened = true;
                self.stats.rx_gossip += 1;
                self.run(now, Input::Up(Up::Gossip { from: frame.src, msg }));
            }
        } else if frame.view != self.view.id {
            if frame.view.ltime <= self.view.id.ltime {
                s.rx_other_view += 1;
            } else {
                let checked = match (seal, &self.keyring) {
                    (Some(seal), Some(keys)) => keys.verify_later(&frame, seal, &data),
                    _ => Ok(false),
                };
                match checked {
                    Err(r) => self.count(r),
                    Ok(verified) => {
                        opened = verified;
                        self.hold(frame.src, data);
                    }
                }
            }
        } else if let Some(from) = self.view.rank_of(frame.src) {
            if let Some(msg) = self.arrived(frame, seal, data) {
                self.stats.rx_accepted += 1;
                (accepted, opened) = (true, true);
                let ev = if frame.is_send() { Up::Send { from, msg } } else { Up::Cast { from, msg } };
                self.run(now, Input::Up(ev));
            }
        } else {
            s.rx_unknown_src += 1;
        }
        if opened || self.keyring.is_none() { Rx::Sound { src, accepted } } else { Rx::Unsound }
    }

    fn count(&mut self, r: Reject) {
        let s = &mut self.stats;
        *match r {
            Reject::Truncated => &mut s.rx_truncated,
            Reject::BadTag => &mut s.rx_bad_tag,
            Reject::Replay => &mut s.rx_replay,
            Reject::Stale => &mut s.rx_stale,
            Reject::NotAllowed => &mut s.rx_not_allowed,
        } += 1;
    }

    /// The message past the frame (opened, if sealed), as the bottom layer takes it; `None`
    /// (counted) if it does not open or the layers' presence bits do not decode.
    fn arrived(&mut self, frame: Frame, seal: Option<Seal>, data: Bytes) -> Option<Msg> {
        let len = data.len();
        let (data, head) = match (seal, self.keyring.as_mut()) {
            (Some(seal), Some(keys)) => {
                // In place when the driver's buffer is this datagram's alone.
                let mut buf = data.try_into_mut().unwrap_or_else(|d| BytesMut::from(&d[..]));
                match keys.open(&frame, seal, &mut buf) {
                    Ok(n) => buf.truncate(SEALED_LEN + n),
                    Err(r) => {
                        self.count(r);
                        return None;
                    }
                }
                (buf.freeze(), SEALED_LEN)
            }
            _ => (data, FRAME_LEN),
        };
        let Ok(msg) = Msg::from_frame(data.slice(head..)) else {
            self.stats.rx_bad_layers += 1;
            return None;
        };
        let mut msg = msg.within(self.number_datagram(), len);
        msg.unseal();
        Some(msg)
    }

    /// The next datagram's number, never 0 (what `Msg::datagram` tells the layers).
    fn number_datagram(&mut self) -> u32 {
        self.datagram = self.datagram.checked_add(1).unwrap_or(1);
        self.datagram
    }

    fn hold(&mut self, src: EndpointId, data: Bytes) {
        let from = self.held_from.get(&src).copied().unwrap_or(0);
        if self.held_bytes + data.len() > self.cfg.hold_bytes || from + data.len() > self.cfg.hold_per_source {
            self.stats.rx_hold_overflow += 1;
            return;
        }
        self.stats.rx_held += 1;
        self.held_bytes += data.len();
        self.held_from.insert(src, from + data.len());
        self.held.push_back(data);
    }

    /// Installs the next view: a fresh stack, `Event::View`, the stack's `init`, then the
    /// datagrams held for the view.
    pub(crate) fn install_view(&mut self, now: Time, view: View) -> Result<(), EndpointError> {
        debug_assert!(view.id > self.view.id, "views are installed in increasing order");
        let rank = view.rank_of(self.cfg.me).ok_or(EndpointError::NotMember)?;
        if let Some(keys) = &mut self.keyring
            && !keys.install(&view)
        {
            self.stats.views_unkeyed += 1;
        }
        let stack = (self.factory)(&view);
        self.props = stack.check(Props::NONE).map_err(EndpointError::Stack)?;
        self.tally.fold(self.cfg.group, self.dump());
        tracing::info!(
            group = ?self.cfg.group,
            me = %self.cfg.me,
            view = ?view.id,
            members = view.members.len(),
            primary = view.primary,
            "view installed"
        );
        self.stack = stack;
        self.cast_ready = true;
        self.view = view.clone();
        self.rank = rank;
        self.stats.views += 1;
        self.events.push_back(Event::View(view));
        self.started = true;
        self.run_one(now, Input::Init);
        self.held_bytes = 0;
        self.held_from.clear();
        for d in core::mem::take(&mut self.held) {
            self.stats.rx_datagrams -= 1; // counted again on replay
            self.stats.rx_bytes -= d.len() as u64;
            self.handle_datagram(now, d);
        }
        Ok(())
    }

    /// Starts the first view's stack (`Layer::init`) at the endpoint's first input.
    fn start(&mut self, now: Time) {
        if !self.started {
            self.started = true;
            self.run(now, Input::Init);
        }
    }

    /// Advances timers to `now`.
    pub fn handle_timeout(&mut self, now: Time) {
        self.start(now);
        if !self.left && self.stack.poll_timeout().is_some_and(|t| t <= now) {
            self.run(now, Input::Timeout);
        }
    }

    /// When `handle_timeout` should next be called (at once for an endpoint that has had no
    /// input yet: that call starts its stack).
    pub fn poll_timeout(&self) -> Option<Time> {
        if self.left {
            None
        } else if !self.started {
            Some(Time::ZERO)
        } else {
            self.stack.poll_timeout()
        }
    }

    /// Ends a batch of input: every layer's `end_turn`, top first. What a layer sends then
    /// can come back up (this member's own casts) and make the layers above it send again;
    /// the call repeats while a pass sent anything, at most `END_TURN_PASSES` times.
    pub fn end_turn(&mut self, now: Time) {
        self.start(now);
        for _ in 0..END_TURN_PASSES {
            let before = self.bottom_events;
            if self.left {
                return;
            }
            self.run(now, Input::EndTurn);
            if self.bottom_events == before {
                return;
            }
        }
    }

    /// The next datagram to send, oldest first; `None` once all are taken.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// Datagrams waiting to be sent.
    pub fn pending_transmits(&self) -> usize {
        self.transmits.len()
    }

    /// The next event for the application, in order; `None` once all are taken.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Runs one input through the stack and everything it causes; then installs the view the
    /// membership layer asked for, and feeds the stack the answers the endpoint gives itself.
    fn run(&mut self, now: Time, input: Input) {
        let mut next = Some(input);
        while let Some(input) = next.take() {
            self.run_one(now, input);
            while let Some(view) = self.next_view.take() {
                // Checked when it was asked for; the factory builds the same stack every view.
                if self.install_view(now, view).is_err() {
                    self.stats.installs_refused += 1;
                }
            }
            next = if self.left { None } else { self.answers.pop_front().map(Input::Dn) };
        }
    }

    /// Runs one input through the stack, then everything it causes, until the stack is quiet.
    fn run_one(&mut self, now: Time, input: Input) {
        let mut input = Some(input);
        loop {
            {
                let mut cx = Cx::new(now, &self.view, self.rank, &mut self.rng, &mut self.up, &mut self.dn)
                    .with_memo(&mut self.memo)
                    .with_keys(self.keyring.as_mut())
                    .with_room(crate::layer::room(self.cfg.room()));
                match input.take() {
                    Some(Input::Dn(ev)) => self.stack.handle_dn(ev, &mut cx),
                    Some(Input::Dns(mut evs)) => {
                        self.stack.handle_dns(&mut evs, &mut cx);
                        self.casts = evs;
                    }
                    Some(Input::Up(ev)) => self.stack.handle_up(ev, &mut cx),
                    Some(Input::Timeout) => self.stack.handle_timeout(&mut cx),
                    Some(Input::Init) => self.stack.init(&mut cx),
                    Some(Input::EndTurn) => self.stack.end_turn(&mut cx),
                    None => {}
                }
            }
            while let Some(ev) = self.up.pop_front() {
                self.deliver(ev);
            }
            match self.dn.pop_front() {
                Some(ev) => input = self.bottom(ev).map(Input::Up),
                None => return,
            }
        }
    }

    /// An event leaving the bottom of the stack; returns what loops back up.
    fn bottom(&mut self, ev: Dn) -> Option<Up> {
        match ev {
            Dn::Cast(msg) | Dn::CastUnrel(msg) if msg.delivered_here() => {
                self.transmit(Dest::All, 0, msg);
                None
            }
            Dn::Cast(mut msg) | Dn::CastUnrel(mut msg) => {
                self.transmit(Dest::All, 0, msg.clone());
                msg.unseal();
                Some(Up::Cast { from: self.rank, msg })
            }
            Dn::Send(to, mut msg) | Dn::SendUnrel(to, mut msg) => {
                if to == self.rank {
                    self.bottom_events += 1;
                    msg.unseal();
                    return Some(Up::Send { from: to, msg });
                }
                match self.view.member(to) {
                    Some(id) => self.transmit(Dest::One(id), FLAG_SEND, msg),
                    None => self.stats.tx_bad_rank += 1,
                }
                None
            }
            Dn::Gossip { to, msg } => {
                let dst = to.map_or(Dest::Everyone, Dest::One);
                let flags = if to.is_some() { FLAG_GOSSIP | FLAG_SEND } else { FLAG_GOSSIP };
                self.transmit(dst, flags, msg);
                None
            }
            Dn::Leave => Some(Up::Exit),
            // Nothing below the stack holds messages or waits on members; the cut comes back
            // up as reached (every layer sees it go down and come back up). The flush's steps
            // are what an operator follows a view change by.
            Dn::Stable(_) => None,
            Dn::Block => {
                view_info!(self, "flush: blocked");
                None
            }
            Dn::Failed(failed) => {
                view_info!(self, ?failed, "flush: failed");
                None
            }
            Dn::Install(next) => {
                view_info!(self, next = ?next.id, "flush: install");
                None
            }
            Dn::Cut(cut) => {
                view_info!(self, ?cut, "flush: cut");
                Some(Up::CutReached(cut))
            }
            // Meant for a membership layer (or passed on by one once handled); without one
            // there is nothing to answer.
            Dn::BlockOk | Dn::State(_) => None,
            // The flush's question to a reliable layer; a stack with membership has one
            // (`gms` requires `Props::FLUSH`).
            Dn::GetDigest => None,
        }
    }

    /// An event leaving the top of the stack: to the application.
    fn deliver(&mut self, ev: Up) {
        let ev = match ev {
            Up::Cast { from, msg } => {
                self.stats.delivered_casts += 1;
                Event::Cast { from: self.view.member(from).unwrap_or_default(), data: msg.into_payload() }
            }
            Up::Send { from, msg } => {
                self.stats.delivered_sends += 1;
                Event::Send { from: self.view.member(from).unwrap_or_default(), data: msg.into_payload() }
            }
            Up::Exit => {
                self.left = true;
                Event::Exit
            }
            Up::Error { layer, detail } => {
                self.stats.layer_errors += 1;
                Event::Error { layer, detail }
            }
            // Stability and the flush's counts are for layers; the application has no use
            // for them.
            Up::Stable(_) | Up::Digest(_) | Up::CutReached(_) | Up::Failed(_) => return,
            Up::Flow { ready } => {
                self.cast_ready = ready;
                return;
            }
            Up::Suspect(ranks) => {
                self.stats.suspicions += 1;
                view_info!(self, ?ranks, "suspect");
                Event::Suspect(ranks.into_iter().filter_map(|r| self.view.member(r)).collect())
            }
            Up::Gossip { .. } => {
                self.stats.gossip_unclaimed += 1;
                return;
            }
            Up::Block => Event::Block,
            Up::Install(view) => {
                if view.id > self.view.id && view.rank_of(self.cfg.me).is_some() {
                    self.next_view = Some(view);
                } else {
                    self.stats.installs_refused += 1;
                }
                return;
            }
            Up::DumpState if self.cfg.transfer_state => Event::StateRequest,
            Up::DumpState => {
                self.answers.push_back(Dn::State(Bytes::new()));
                return;
            }
            Up::State { chunk, last } if self.cfg.transfer_state => Event::State { chunk, last },
            Up::State { .. } => return,
        };
        self.events.push_back(ev);
    }

    fn transmit(&mut self, dst: Dest, flags: u8, msg: Msg) {
        self.bottom_events += 1;
        let (layers, body) = msg.into_parts();
        let frame = Frame { flags, group: self.cfg.group, view: self.view.id, src: self.cfg.me };
        if layers.len() + body.len() > self.cfg.room() {
            self.stats.tx_oversize += 1;
            return;
        }
        let mut head = SmallVec::<[u8; INLINE_TX_HEAD]>::new();
        let body = if let Some(keys) = &mut self.keyring {
            let (header, sealed) = keys.seal(&frame, [&layers, &body]);
            head.extend_from_slice(&header);
            sealed
        } else {
            let mut fixed = [0u8; FRAME_LEN];
            frame.write(&mut fixed);
            head.extend_from_slice(&fixed);
            head.extend_from_slice(&layers);
            seal(&mut head, &body);
            body
        };
        self.stats.tx_datagrams += 1;
        self.stats.tx_bytes += (head.len() + body.len()) as u64;
        self.transmits.push_back(Transmit { dst, head, body });
    }
}

impl<L: Layer> Machine for Endpoint<L> {
    type Cmd = Cmd;
    type Event = Event;
    type Refused = CastError;

    fn me(&self) -> EndpointId {
        self.cfg.me
    }
    fn max_datagram(&self) -> usize {
        self.cfg.max_datagram
    }
    fn max_payload(&self) -> usize {
        Endpoint::max_payload(self)
    }
    fn view(&self) -> &View {
        &self.view
    }
    fn has_left(&self) -> bool {
        self.left
    }
    fn held(&self) -> bool {
        !self.cast_ready && !self.left
    }
    fn stats(&self) -> Stats {
        self.stats.clone()
    }
    fn metrics(&self) -> Metrics {
        Endpoint::metrics(self)
    }
    fn handle_commands(&mut self, now: Time, cmds: &mut VecDeque<Cmd>) -> Result<usize, CastError> {
        Endpoint::handle_commands(self, now, cmds)
    }
    fn handle_command(&mut self, now: Time, cmd: Cmd) -> Result<(), CastError> {
        match cmd {
            Cmd::Cast(data) => self.cast(now, data),
            Cmd::CastFifo(data) => self.cast_fifo(now, data),
            Cmd::Send(to, data) => self.send(now, to, data),
            Cmd::Leave => {
                self.leave(now);
                Ok(())
            }
            Cmd::BlockOk => {
                self.block_ok(now);
                Ok(())
            }
            Cmd::State(state) => {
                self.send_state(now, state);
                Ok(())
            }
            Cmd::Probe { to, nonce } => {
                self.probe(now, to, nonce);
                Ok(())
            }
        }
    }
    fn handle_datagram(&mut self, now: Time, data: Bytes) -> Rx {
        Endpoint::handle_datagram(self, now, data)
    }
    fn handle_timeout(&mut self, now: Time) {
        Endpoint::handle_timeout(self, now)
    }
    fn end_turn(&mut self, now: Time) {
        Endpoint::end_turn(self, now)
    }
    fn poll_transmit(&mut self) -> Option<Transmit> {
        Endpoint::poll_transmit(self)
    }
    fn poll_event(&mut self) -> Option<Event> {
        Endpoint::poll_event(self)
    }
    fn poll_timeout(&self) -> Option<Time> {
        Endpoint::poll_timeout(self)
    }
}

impl Endpoint<crate::compose::Stack> {
    /// An endpoint whose stack is built from a spec string for every view.
    pub fn from_spec(cfg: Config, registry: &Registry, spec: &str) -> Result<Self, EndpointError> {
        registry.build(spec).map_err(EndpointError::Spec)?;
        let (registry, spec) = (registry.clone(), spec.to_string());
        Endpoint::new(cfg, move |_view: &View| {
            registry.build(&spec).expect("the spec was checked when the endpoint was created")
        })
    }
}

enum Input {
    Dn(Dn),
    /// A batch from above, handed on in order (`Layer::handle_dns`).
    Dns(VecDeque<Dn>),
    Up(Up),
    Timeout,
    Init,
    EndTurn,
}

/// Most casts `Endpoint::handle_commands` hands the stack as one input.
pub const CAST_BATCH: usize = 32;

/// Most passes of `Endpoint::end_turn` (each pass is a layer's answer to the one before:
/// a few suffice; the bound only keeps a faulty layer from looping).
const END_TURN_PASSES: usize = 16;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::Bare;
    use crate::ids::ViewId;

    #[test]
    fn stats_add_field_by_field() {
        let mut s = Stats { rx_stale: 2, views_unkeyed: 1, ..Stats::default() };
        s.add(&s.clone());
        assert_eq!((s.rx_stale, s.views_unkeyed), (4, 2));
        assert_eq!(s.counters().iter().map(|(_, v)| v).sum::<u64>(), 6);
    }

    /// A datagram of a stack with no layers: the frame, presence bits 1, the payload.
    fn frame_bytes(view: ViewId, src: EndpointId, payload: &[u8]) -> Bytes {
        Bytes::from(Frame { flags: 0, group: GroupId(1), view, src }.datagram(&[&[1u8][..], payload].concat()))
    }

    #[test]
    fn datagrams_of_a_later_view_wait_for_it() {
        let members = vec![EndpointId(1), EndpointId(2)];
        let mut cfg = Config::new(GroupId(1), EndpointId(1), members.clone());
        cfg.hold_bytes = FRAME_LEN + 3;
        let mut ep = Endpoint::new(cfg, |_: &View| Bare).unwrap();
        assert!(matches!(ep.poll_event(), Some(Event::View(_))));
        let next = View { id: ViewId { ltime: 2, coord: EndpointId(1) }, members, primary: true, subgroups: vec![] };
        ep.handle_datagram(Time::ZERO, frame_bytes(next.id, EndpointId(2), b"a"));
        ep.handle_datagram(Time::ZERO, frame_bytes(next.id, EndpointId(2), b"bb"));
        assert_eq!((ep.stats().rx_held, ep.stats().rx_hold_overflow), (1, 1));
        assert_eq!(ep.poll_event(), None);
        ep.install_view(Time::ZERO, next.clone()).unwrap();
        assert_eq!(ep.poll_event(), Some(Event::View(next)));
        assert_eq!(ep.poll_event(), Some(Event::Cast { from: EndpointId(2), data: Bytes::from_static(b"a") }));
        assert_eq!(ep.stats().rx_datagrams, 2);
        assert_eq!(ep.stats().rx_accepted, 1);
    }

    #[test]
    fn one_source_cannot_take_all_the_room_held_for_a_later_view() {
        let members = vec![EndpointId(1), EndpointId(2), EndpointId(3)];
        let mut cfg = Config::new(GroupId(1), EndpointId(1), members.clone());
        cfg.hold_bytes = 4 * (FRAME_LEN + 2);
        cfg.hold_per_source = 2 * (FRAME_LEN + 2);
        let mut ep = Endpoint::new(cfg, |_: &View| Bare).unwrap();
        let next = ViewId { ltime: 2, coord: EndpointId(1) };
        for b in [b"a", b"b", b"c"] {
            ep.handle_datagram(Time::ZERO, frame_bytes(next, EndpointId(2), b));
        }
        ep.handle_datagram(Time::ZERO, frame_bytes(next, EndpointId(3), b"x"));
        assert_eq!((ep.stats().rx_held, ep.stats().rx_hold_overflow), (3, 1), "the third from e2 is refused");
        assert_eq!(ep.held_bytes(), 3 * (FRAME_LEN + 2));
    }
}
