//! `gms`: virtual-synchrony group membership — discovery and join, leave, failure-driven view
//! changes with a flush, coordinator failover, partition merge, primary partition, and state
//! transfer to joiners. One stack per view: this layer's state lives for one view; what must
//! outlive it (the installed view's provenance, the last primary view) goes through the memo.
//!
//! **Views.** Members are ranked oldest first; the coordinator is the lowest rank not known to
//! have failed. A view change is a flush run by the coordinator over the *participants* (every
//! member not failed, leavers included):
//! 1. `Block { attempt, failed }` to each participant. A participant tells every layer, in
//!    the order of the layer contract (`thoth_stack::layer`): `Dn::Block` / `Up::Block` at
//!    the first attempt, then `Dn::Failed(failed)` / `Up::Failed(failed)` at each (the
//!    reliable layer freezes the failed ranks' deliveries where they are and fetches their
//!    casts from whichever survivor has them); the application sees `Up::Block`,
//!    and once it answers (`Dn::BlockOk`, or at once with `block_ms=0`) stops taking casts
//!    (`Up::Flow { ready: false }`), passes `Dn::BlockOk` down (flow control lets go of what
//!    it holds), asks the reliable layer for its digest (`Dn::GetDigest`, which counts
//!    every cast this member issued as its own) and sends it as `Report { delivered[] }`.
//! 2. With every report in, the cut: for a participant, all of its own casts; for a failed rank, the most any participant delivered. `Cut` goes to
//!    every participant, which sends it down through every layer (`Dn::Cut`, turned back up
//!    at the bottom); once the reliable layer has delivered exactly up to it, and every layer
//!    between it and this one has delivered what it held of the view (`Up::CutReached`;
//!    anything beyond the cut stays held) the participant answers `Flushed` and passes
//!    `Up::CutReached` on up. From then on it is *committed*: it delivers nothing more
//!    in the view and follows no other coordinator unless it has itself verified that this
//!    one failed.
//!
//!    **Counting in one place.** Every count of the flush is the reliable layer's: its
//!    sequence numbers, below every layer that may drop a cast it cannot parse. A forged or
//!    corrupt cast that a layer above rejects took a sequence number at every member that
//!    received it, the sender's real cast with that number is a duplicate there, and the
//!    counts still agree: the flush reaches its cut. (Counting here, above, would wait
//!    forever for the real cast.)
//! 3. With every participant flushed, the coordinator builds the next view (participants
//!    less leavers, then merged sides, then joiners; logical time one past the largest) and
//!    gossips `Install { view, sides, joiners, last_primary, keys }` to each member and
//!    leaver (`keys`: what the endpoint hands out for members to read the view with,
//!    `Cx::key_table`; the view's key under member key pairs).
//!    A member installs a view only if `sides` names the flush it committed to, so members
//!    that install the same next view delivered the same casts in this one. The coordinator
//!    of the new view resends `Install` to members it has not heard from (`Ready`), and
//!    excludes those still silent after `ready_ms`.
//!
//! A failure during the flush restarts it (next attempt) with the larger failed set; a
//! participant that has not reported within `flush_ms`, or has not flushed when the
//! coordinator has, counts as failed. A failed coordinator is replaced by the next rank,
//! which restarts the flush with what the survivors report. Control messages are sent
//! again until answered: every `resend_ms` the coordinator repeats `Block` to participants
//! that have not reported and `Cut` to those that have not flushed, and a participant
//! answers a repeat with its report or `Flushed` again (a control message lost, or one whose
//! sequence number a forged message took, costs a resend, not an exclusion). A participant
//! that has heard nothing of its flush for two `flush_ms` was left out of it by a live
//! coordinator: it goes on alone (a view of its own, merged back by the beacons).
//!
//! **A cut the coordinator cannot reach** (it has not flushed within `flush_ms` itself —
//! a sender's casts do not reach it, or a forged report or cut set an impossible count)
//! ends the attempt without excluding anyone yet: the next attempt is *stalled*, and with its
//! fresh reports the coordinator's own counts are the measure. A participant whose casts it
//! lacks, or that delivered more of a failed member's casts than it has, is excluded; the cut
//! of the rest is within what the coordinator has delivered, and whoever still cannot reach
//! it in time is excluded. So no input can keep a flush from ending: within two `flush_ms`
//! the view changes, at worst without the members whose counts could not be met.
//!
//! **Suspicion** (`Up::Suspect` from a failure detector below) is verified before anyone is
//! excluded: the suspecting member pings the suspect (`verify_ms` apart, `verify_tries`
//! times); any message from it clears the suspicion. A verified failure goes to the
//! coordinator, which verifies it itself before it excludes. `Up::Suspect` also goes on up.
//!
//! **Discovery and join.** A new endpoint (provisional view, `Config::joining`) multicasts
//! `Hello` every `hello_ms`; coordinators answer with a `Beacon`, to whose sender it sends
//! `Join`; the coordinator adds joiners by a view change. With no coordinator found within
//! `discover_ms`, the endpoint whose id is the lowest among the new endpoints it heard forms
//! a view alone (the others then join it); after three times that, any endpoint forms its own
//! (merging settles the rest).
//!
//! **Merge.** Coordinators multicast a `Beacon` every `beacon_ms`. A coordinator that hears
//! one from another view (not from one of its own members) whose coordinator has a lower id
//! flushes its own view as a *side* and sends `MergeReady { members, attempt }` to it; the
//! leader (lowest id) gathers sides for `merge_window_ms`, flushes its own view, and installs
//! one view for all of them (an N-way merge in one round) with `View::subgroups` listing the
//! sides — the application's cue to reconcile. A side that hears nothing within `merge_ms`
//! installs its own view again.
//!
//! **Primary partition** (`primary=1`): each view carries the last primary view of every
//! history it descends from (one, unless it merged sides whose histories split while not
//! primary); a view is primary iff it holds a majority of each of them, and then it is the
//! one last primary view of its own history. Otherwise every view is primary. An endpoint
//! that forms a view alone starts a history (it cannot tell "no group" from "group out of
//! reach"), so a restarted endpoint cut off from the group is primary in a history of its own.
//!
//! **State transfer.** A view with joiners holds every member's casts until `Go`. Its
//! coordinator asks the application for the state (`Up::DumpState`, answered by `Dn::State`)
//! at the start of the view, before anything of it is delivered, and streams it to each
//! joiner in `chunk`-byte slices of the one buffer by reliable `Send` (fragmented and
//! window-limited below); the joiner passes each piece up (`Up::State`) and answers `StateOk`
//! after the last; when every joiner has, `Go`. A joiner cut off by a view change is listed
//! as a joiner again in the next view and gets the state anew.
//!
//! **Leave.** `Dn::Leave` asks the coordinator for a view without this member; the leaver
//! takes part in the flush and exits (`Dn::Leave` down, so `Up::Exit`) on the `Install` that
//! leaves it out, or after `leave_ms` regardless. A leaving coordinator installs the view
//! without it and resends it to that view's coordinator (every `hello_ms`) until it hears
//! that coordinator's beacon for it, then exits. A coordinator of rank `k` (ranks below it
//! failed or left) numbers its view `k` further on (`ltime + 1 + k`): a view the coordinator
//! before it installed but not everyone heard of then never shares an id with its own.
//!
//! **Parameters** (spec `gms(...)`, see `Config`): `discover_ms` 300, `hello_ms` 50,
//! `beacon_ms` 500, `block_ms` 0, `verify_ms` 50, `verify_tries` 4, `flush_ms` 3000,
//! `ready_ms` 2000, `merge_ms` 2000, `merge_window_ms` 100, `leave_ms` 2000, `primary` 0,
//! `chunk` 61440.
//!
//! **Properties:** requires reliable FIFO casts and reliable sends below, and a reliable
//! layer that counts for the flush (`FLUSH`: digest, freezing, cut); provides
//! `MEMBERSHIP | VSYNC`. A layer between this one and the reliable one may hold casts (an
//! ordering layer waiting for its decision): it delivers them before it passes
//! `Up::CutReached` up, so the flush counts them in this view.
//!
//! **Events generated:** down `Send`/`SendUnrel` (control), `Gossip` (discovery, beacons,
//! merge, install), `Block`, `Failed`, `BlockOk`, `GetDigest`, `Cut`, `Install`, `Leave`;
//! up `Block`, `Failed`, `Flow`, `CutReached`, `Install`, `DumpState`, `State`, and the
//! deliveries.
//!
//! **Hostile input:** control and gossip that do not decode, name ranks outside the view,
//! or arrive out of place are dropped and counted (`bad`); a gossip can make the coordinator
//! start a view change (that is what `Join` is for) but cannot make a member install a view
//! that does not name the flush it committed to.
//!
//! **Memory:** per rank a few counters, plus the casts held while joiners load the state
//! (the endpoint stops taking casts meanwhile), and at most `MAX_PENDING` joiners and merge
//! sides. Casts beyond the cut are held by the reliable layer, within its byte budget.
//!
//! **Tests:** `membership/tests/`: `wire.rs` (exact round trips, arbitrary bytes into the
//! decoders); `sim_scenarios.rs` (named simulated scenarios with exact views: formation,
//! joins with state transfer, leaves, coordinator crash mid-flush, partitions and merges,
//! primary partition, regressions of the fixes, measured view-change times); `sim_vsync.rs`
//! (chaos runs of 2 to 9 members checked for virtual synchrony and liveness over many seeds,
//! and planted bugs, `Config::test_*`, that the checker must catch); `sim_order.rs` (the
//! same chaos with an ordering layer: total or causal order across view changes);
//! `sim_lifecycle.rs` (the view change seen at every position of the stack, in the
//! contract's order); `sim_hostile.rs` (a hostile peer: membership progresses, memory stays
//! bounded).

mod config;
mod coord;
mod discovery;
mod member;
mod verify;
pub mod wire;
mod xfer;

pub use config::Config;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use thoth_stack::{Cx, Dn, Dump, EndpointId, Hist, Layer, Msg, Props, Rank, Registry, Time, Up, View};
use wire::{Ctl, Gossip, Hdr, Install, Primary, Side};

/// Joiners and merge sides a coordinator keeps at most (more are dropped and counted).
pub const MAX_PENDING: usize = 1024;
/// The memo key.
const MEMO: &str = "gms";

/// A participant's view of the flush it takes part in.
#[derive(Debug)]
struct Flush {
    coord: Rank,
    attempt: u32,
    /// The application answered Block: no more casts in this view.
    answered: bool,
    block_until: Option<Time>,
    /// The number of the digest request whose answer is this attempt's report.
    asked: Option<u64>,
    /// The report sent, for a repeated Block.
    report: Option<Ctl>,
    /// The last Block or Cut of this flush from its coordinator.
    heard: Time,
    /// The first Block of this view change (kept across attempts).
    began: Time,
    cut: Option<Vec<u64>>,
    /// The reliable layer delivered up to `cut`.
    reached: bool,
    flushed: bool,
}

/// The coordinator's view change in progress.
#[derive(Debug)]
struct Change {
    attempt: u32,
    /// The ranks this attempt's Block named failed.
    failed: Vec<Rank>,
    participants: Vec<Rank>,
    leavers: Vec<Rank>,
    /// A merge side: flushed for this leader, not installed here.
    side_of: Option<EndpointId>,
    reports: Vec<Option<Report>>,
    cut: Option<Vec<u64>>,
    flushed: Vec<bool>,
    deadline: Time,
    /// When to send Block (or Cut) again to the participants that have not answered.
    resend_at: Time,
    /// An earlier attempt's cut was out of the coordinator's own reach: this attempt measures
    /// everyone against the coordinator's counts (see the module doc).
    stalled: bool,
}

#[derive(Clone, Debug)]
struct Report {
    delivered: Vec<u64>,
}

/// A side that asked this coordinator (its merge leader) to merge it.
#[derive(Clone, Debug)]
struct SideReady {
    side: Side,
    members: Vec<EndpointId>,
    last_primary: Vec<Primary>,
    at: Time,
}

/// A side coordinator waiting for its leader's view.
#[derive(Debug)]
struct MergeOut {
    leader: EndpointId,
    attempt: u32,
    participants: Vec<Rank>,
    resend: Time,
    deadline: Time,
}

/// A provisional endpoint looking for its group.
#[derive(Debug)]
struct Discovery {
    next_hello: Time,
    form_at: Time,
    give_up: Time,
    /// Other new endpoints heard.
    others: BTreeSet<EndpointId>,
    /// The coordinator to join: (members, coordinator), the largest view, then the lowest id.
    best: Option<(usize, EndpointId)>,
    best_since: Time,
}

#[derive(Debug)]
struct Verify {
    nonce: u32,
    tries: u32,
    next: Time,
}

#[derive(Debug, Default)]
struct Counters {
    bad: u64,
    changes: u64,
    restarts: u64,
    verified: u64,
    cleared: u64,
    merges: u64,
    joins: u64,
    refused_installs: u64,
    refused_blocks: u64,
    dropped_pending: u64,
    state_bytes: u64,
    stalls: u64,
    blamed: u64,
    resent: u64,
    repeats: u64,
    dropped: u64,
    /// Views left because their coordinator's beacon named the same view id with other
    /// members (see `discovery::disown`).
    disowned: u64,
    /// At each member: from the first Block of a view change to the next view's install.
    flush_us: Hist,
    /// Where a view change began (its coordinator, or a merge side's): from the first
    /// attempt's Block to the install, restarts included.
    view_change_us: Hist,
}

/// The `gms` layer for one view (the endpoint builds a fresh one per view; what must outlive
/// the view goes through the memo). See the module doc for the protocol.
pub struct Gms {
    cfg: Config,
    exited: bool,
    me: EndpointId,
    /// Where this view came from (the memo), or a default for a fixed first view.
    info: Option<Install>,
    // Knowledge about members.
    failed: Vec<bool>,
    verify: BTreeMap<Rank, Verify>,
    nonce: u32,
    // This view's traffic: casts this layer passed down, and every rank's casts it passed up
    // (these serve only `Config::test_count_in_gms`).
    issued: u64,
    delivered: Vec<u64>,
    /// Digest requests sent down, and answers received (they come back in order).
    asks: u64,
    answers: u64,
    // Participant side of a flush.
    flush: Option<Flush>,
    committed: Option<(EndpointId, u32)>,
    /// Per rank: named failed by a flush of this view.
    frozen: Vec<bool>,
    // Coordinator side.
    change: Option<Change>,
    /// When this view's change began here (see `Counters::view_change_us`).
    change_since: Option<Time>,
    attempts: u32,
    leavers: BTreeSet<Rank>,
    joiners: Vec<EndpointId>,
    sides: Vec<SideReady>,
    merge_at: Option<Time>,
    merging: Option<MergeOut>,
    next_beacon: Option<Time>,
    ready: Vec<bool>,
    resend_at: Option<Time>,
    ready_until: Option<Time>,
    // Casts held back (state transfer), and the flow signal shown above.
    hold: bool,
    held_dn: VecDeque<Msg>,
    below_ready: bool,
    shown_ready: Option<bool>,
    /// Coordinator: joiners still loading the state; `None` until the state was sent.
    xfer: Option<BTreeSet<Rank>>,
    /// Coordinator: asked the application for the state, not answered yet.
    awaiting_state: bool,
    /// Joiner: still loading.
    loading: bool,
    disc: Option<Discovery>,
    leaving: Option<Time>,
    /// A leaving coordinator's view without it, resent to its coordinator at the time.
    handoff: Option<(Install, Time)>,
    /// Control messages to this member itself, handled after the current event.
    inbox: VecDeque<Ctl>,
    n: Counters,
}

impl Gms {
    /// A layer with these parameters.
    pub fn new(cfg: Config) -> Gms {
        Gms {
            cfg,
            exited: false,
            me: EndpointId::default(),
            info: None,
            failed: Vec::new(),
            verify: BTreeMap::new(),
            nonce: 0,
            issued: 0,
            delivered: Vec::new(),
            asks: 0,
            answers: 0,
            flush: None,
            committed: None,
            frozen: Vec::new(),
            change: None,
            change_since: None,
            attempts: 0,
            leavers: BTreeSet::new(),
            joiners: Vec::new(),
            sides: Vec::new(),
            merge_at: None,
            merging: None,
            next_beacon: None,
            ready: Vec::new(),
            resend_at: None,
            ready_until: None,
            hold: false,
            held_dn: VecDeque::new(),
            below_ready: true,
            shown_ready: None,
            xfer: None,
            awaiting_state: false,
            loading: false,
            disc: None,
            leaving: None,
            handoff: None,
            inbox: VecDeque::new(),
            n: Counters::default(),
        }
    }

    fn provisional(cx: &Cx<'_>) -> bool {
        cx.view.id.ltime == 0
    }

    /// The coordinator: the lowest rank not known to have failed.
    fn coord(&self) -> Rank {
        Rank(self.failed.iter().position(|f| !f).unwrap_or(0) as u16)
    }

    /// Coordinating this view (not any more once a leaving coordinator has installed the
    /// view without it: it must not beacon, answer joiners or lead merges for a view
    /// its members have left).
    fn am_coord(&self, cx: &Cx<'_>) -> bool {
        !Self::provisional(cx) && self.coord() == cx.rank && self.handoff.is_none()
    }

    fn rank_ok(&self, r: Rank) -> bool {
        r.index() < self.failed.len()
    }

    fn start(&mut self, cx: &mut Cx<'_>) {
        let n = cx.view.len();
        self.me = cx.view.member(cx.rank).unwrap_or_default();
        self.failed = vec![false; n];
        self.delivered = vec![0; n];
        self.frozen = vec![false; n];
        self.ready = vec![false; n];
        if Self::provisional(cx) {
            self.hold = true; // nothing to cast to before the first view
            self.start_discovery(cx);
        } else {
            self.start_view(cx);
        }
        self.show_flow(cx);
    }

    /// What `Up::Flow` says above: casts are taken unless a layer below holds them, a flush
    /// has blocked this member, or casts are held for a state transfer.
    fn show_flow(&mut self, cx: &mut Cx<'_>) {
        let blocked = self.flush.as_ref().is_some_and(|f| f.answered);
        let ready = self.below_ready && !self.hold && !blocked && self.leaving.is_none();
        if self.shown_ready != Some(ready) {
            self.shown_ready = Some(ready);
            cx.up(Up::Flow { ready });
        }
    }

    /// Sends a control message to a member (to itself: handled after the current event).
    fn ctl(&mut self, to: Rank, c: Ctl, cx: &mut Cx<'_>) {
        if to == cx.rank {
            self.inbox.push_back(c);
        } else {
            let mut m = Msg::new(c.encode());
            m.push(&Hdr::Ctl);
            cx.dn(Dn::Send(to, m));
        }
    }

    fn ctl_unrel(&mut self, to: Rank, c: Ctl, cx: &mut Cx<'_>) {
        let mut m = Msg::new(c.encode());
        m.push(&Hdr::Ctl);
        cx.dn(Dn::SendUnrel(to, m));
    }

    fn gossip(&mut self, to: Option<EndpointId>, kind: wire::Kind, cx: &mut Cx<'_>) {
        let mut m = Msg::new(Gossip { view: cx.view.id, kind }.encode());
        m.push(&Hdr::Gossip);
        cx.dn(Dn::Gossip { to, msg: m });
    }

    /// The next view, to every layer: down, then up (the endpoint installs it once the
    /// current input is handled, with the key its `Install` carried).
    fn install(&mut self, inst: &Install, cx: &mut Cx<'_>) {
        if let Some(since) = self.change_since.take() {
            self.n.view_change_us.record_duration(cx.now.since(since));
        }
        if let Some(f) = &self.flush {
            self.n.flush_us.record_duration(cx.now.since(f.began));
        }
        cx.take_key_table(&inst.view, &inst.keys);
        cx.dn(Dn::Install(inst.view.clone()));
        cx.up(Up::Install(inst.view.clone()));
    }

    /// Leaves the stack for good (the endpoint answers with `Up::Exit`).
    fn exit(&mut self, cx: &mut Cx<'_>) {
        if !self.exited {
            self.exited = true;
            cx.dn(Dn::Leave);
        }
    }

    fn settle(&mut self, cx: &mut Cx<'_>) {
        while let Some(c) = self.inbox.pop_front() {
            self.on_ctl(cx.rank, c, cx);
        }
        self.show_flow(cx);
    }

    fn on_up(&mut self, ev: Up, cx: &mut Cx<'_>) {
        match ev {
            Up::Cast { from, mut msg } => match msg.pop::<Hdr>() {
                Ok(Hdr::NoHdr) if self.rank_ok(from) => {
                    self.alive(from);
                    self.on_cast(from, msg, cx);
                }
                _ => self.n.bad += 1,
            },
            Up::Send { from, mut msg } => match msg.pop::<Hdr>() {
                Ok(_) if !self.rank_ok(from) => self.n.bad += 1,
                Ok(Hdr::NoHdr) => {
                    self.alive(from);
                    cx.up(Up::Send { from, msg });
                }
                Ok(Hdr::Ctl) => match Ctl::decode(msg.body()) {
                    Ok(c) => {
                        self.alive(from);
                        self.on_ctl(from, c, cx);
                    }
                    Err(_) => self.n.bad += 1,
                },
                Ok(Hdr::Chunk { last }) => self.on_chunk(from, msg.into_payload(), last, cx),
                Ok(Hdr::Gossip) | Err(_) => self.n.bad += 1,
            },
            Up::Gossip { from, mut msg } => match msg.pop::<Hdr>() {
                Ok(Hdr::Gossip) => match Gossip::decode(msg.body()) {
                    Ok(g) => self.on_gossip(from, g, cx),
                    Err(_) => self.n.bad += 1,
                },
                _ => self.n.bad += 1,
            },
            Up::Suspect(ranks) => {
                for &r in &ranks {
                    if self.rank_ok(r) {
                        self.start_verify(r, cx);
                    }
                }
                cx.up(Up::Suspect(ranks));
            }
            Up::Flow { ready } => self.below_ready = ready,
            Up::Digest(d) => self.on_digest(d, cx),
            Up::CutReached(cut) => {
                self.on_cut_reached(cut.clone(), cx);
                cx.up(Up::CutReached(cut));
            }
            Up::Exit => {
                self.exited = true;
                cx.up(Up::Exit);
            }
            other => cx.up(other),
        }
    }

    fn on_ctl(&mut self, from: Rank, c: Ctl, cx: &mut Cx<'_>) {
        match c {
            Ctl::Suspect(ranks) => self.on_suspect_report(ranks, cx),
            Ctl::Leave => self.on_leave_request(from, cx),
            Ctl::Block { attempt, failed } => self.on_block(from, attempt, failed, cx),
            Ctl::Report { attempt, delivered } => self.on_report(from, attempt, Report { delivered }, cx),
            Ctl::Cut { attempt, cut } => self.on_cut(from, attempt, cut, cx),
            Ctl::Flushed { attempt } => self.on_flushed(from, attempt, cx),
            Ctl::Ready => {}
            Ctl::StateOk => self.on_state_ok(from, cx),
            Ctl::Go => self.on_go(from, cx),
            Ctl::Ping(n) => self.ctl_unrel(from, Ctl::Pong(n), cx),
            Ctl::Pong(_) => {}
        }
    }

    fn on_dn(&mut self, ev: Dn, cx: &mut Cx<'_>) {
        match ev {
            Dn::Cast(mut msg) => {
                if self.hold || self.flush.as_ref().is_some_and(|f| f.answered) || self.leaving.is_some() {
                    // Taken before the endpoint saw Flow{ready: false}: sent when released
                    // in this view, or dropped with the stack at the view change.
                    self.held_dn.push_back(msg);
                } else {
                    self.issued += 1;
                    msg.push(&Hdr::NoHdr);
                    cx.dn(Dn::Cast(msg));
                }
            }
            Dn::Leave => self.on_leave(cx),
            Dn::BlockOk => self.answer_block(cx),
            Dn::State(state) => self.on_state(state, cx),
            other => cx.dn(other),
        }
    }

    /// Between this layer's `Dn::Leave` and the `Up::Exit` it causes, the layers below may
    /// still deliver (a singleton leaving flushes its own casts out of them). Headers are
    /// still pushed and popped (passing a message up with this layer's header on would hand
    /// the layer above a header it did not push), casts are still gated by the cut, and
    /// control traffic is dropped: the protocol is over for this member.
    fn after_exit_up(&mut self, ev: Up, cx: &mut Cx<'_>) {
        match ev {
            Up::Cast { from, mut msg } => match msg.pop::<Hdr>() {
                Ok(Hdr::NoHdr) if self.rank_ok(from) => self.on_cast(from, msg, cx),
                _ => {}
            },
            Up::Send { from, mut msg } => {
                if let Ok(Hdr::NoHdr) = msg.pop::<Hdr>() {
                    cx.up(Up::Send { from, msg });
                }
            }
            Up::Gossip { .. } => {}
            other => cx.up(other),
        }
    }

    /// When a participant that has heard nothing of its flush counts itself left out of it
    /// (never with the planted old flush, which had no such way out).
    fn dropped_at(&self) -> Option<Time> {
        self.flush.as_ref().filter(|_| !self.cfg.test_count_in_gms).map(|f| f.heard + self.cfg.flush * 2)
    }

    fn deadlines(&self) -> impl Iterator<Item = Time> + '_ {
        let d = self.disc.as_ref();
        [
            d.map(|d| d.next_hello),
            d.map(|d| d.form_at),
            self.flush.as_ref().and_then(|f| f.block_until),
            self.dropped_at(),
            self.change.as_ref().map(|c| c.deadline.min(c.resend_at)),
            self.merge_at,
            self.merging.as_ref().map(|m| m.resend.min(m.deadline)),
            self.next_beacon,
            self.resend_at,
            self.ready_until,
            self.leaving,
            self.handoff.as_ref().map(|h| h.1),
        ]
        .into_iter()
        .flatten()
        .chain(self.verify.values().map(|v| v.next))
    }

    fn on_timeout(&mut self, cx: &mut Cx<'_>) {
        let now = cx.now;
        if self.disc.is_some() {
            self.discovery_timeout(cx);
            return;
        }
        if self.leaving.is_some_and(|t| t <= now) {
            self.leaving = None;
            return self.exit(cx);
        }
        if self.flush.as_ref().and_then(|f| f.block_until).is_some_and(|t| t <= now) {
            self.answer_block(cx);
        }
        if self.dropped_at().is_some_and(|t| t <= now) {
            self.dropped(cx);
        }
        self.verify_timeout(cx);
        if self.change.as_ref().is_some_and(|c| c.deadline <= now) {
            self.change_timeout(cx);
        } else if self.change.as_ref().is_some_and(|c| c.resend_at <= now) {
            self.resend(cx);
        }
        if self.merge_at.is_some_and(|t| t <= now) {
            self.merge_at = None;
            self.maybe_change(cx);
        }
        self.merging_timeout(cx);
        self.handoff_timeout(cx);
        if self.next_beacon.is_some_and(|t| t <= now) {
            self.beacon(cx);
        }
        self.ready_timeout(cx);
    }
}

impl Default for Gms {
    fn default() -> Self {
        Gms::new(Config::default())
    }
}

impl Layer for Gms {
    fn name(&self) -> &'static str {
        "gms"
    }
    fn requires(&self) -> Props {
        Props::RELIABLE_CAST | Props::FIFO_CAST | Props::RELIABLE_SEND | Props::FLUSH
    }
    fn provides(&self) -> Props {
        Props::MEMBERSHIP | Props::VSYNC
    }

    fn init(&mut self, cx: &mut Cx<'_>) {
        self.start(cx);
        self.settle(cx);
    }

    fn max_header(&self, _: &View) -> usize {
        thoth_stack::Wire::encoded_len(&Hdr::Chunk { last: false })
    }
    fn handle_dn(&mut self, ev: Dn, cx: &mut Cx<'_>) {
        if self.exited {
            return cx.dn(ev);
        }
        self.on_dn(ev, cx);
        self.settle(cx);
    }

    fn handle_up(&mut self, ev: Up, cx: &mut Cx<'_>) {
        if self.exited {
            return self.after_exit_up(ev, cx);
        }
        self.on_up(ev, cx);
        self.settle(cx);
    }

    fn poll_timeout(&self) -> Option<Time> {
        if self.exited {
            return None;
        }
        self.deadlines().min()
    }

    fn handle_timeout(&mut self, cx: &mut Cx<'_>) {
        if !self.exited {
            self.on_timeout(cx);
        }
        self.settle(cx);
    }

    fn dump(&self, out: &mut Vec<Dump>) {
        let n = &self.n;
        out.push(Dump {
            layer: "gms",
            counters: vec![
                ("bad", n.bad),
                ("changes", n.changes),
                ("restarts", n.restarts),
                ("verified", n.verified),
                ("cleared", n.cleared),
                ("merges", n.merges),
                ("joins", n.joins),
                ("refused_installs", n.refused_installs),
                ("refused_blocks", n.refused_blocks),
                ("dropped_pending", n.dropped_pending),
                ("state_bytes", n.state_bytes),
                ("stalls", n.stalls),
                ("blamed", n.blamed),
                ("resent", n.resent),
                ("repeats", n.repeats),
                ("dropped", n.dropped),
                ("disowned", n.disowned),
                ("issued", self.issued),
            ],
            gauges: Vec::new(),
            hists: vec![("flush_us", n.flush_us), ("view_change_us", n.view_change_us)],
            state: format!(
                "failed={:?} flush={:?} change={:?} committed={:?} hold={} leaving={:?}",
                self.failed.iter().enumerate().filter(|(_, f)| **f).map(|(r, _)| r).collect::<Vec<_>>(),
                self.flush.as_ref().map(|f| (f.coord, f.attempt, f.answered, f.reached, f.flushed)),
                self.change.as_ref().map(|c| (c.attempt, &c.participants, c.stalled)),
                self.committed,
                self.hold,
                self.leaving,
            ),
        });
    }
}

/// Registers `gms`.
pub fn register(r: &mut Registry) {
    r.register(
        "gms",
        "virtual-synchrony membership: join, leave, flush, merge, primary partition, state transfer",
        |a| Ok(Box::new(Gms::new(Config::from_args(a)?))),
    );
}
