//! Test support for layer authors: drive one layer one event at a time, as the stack would,
//! and look at what it emitted.
//!
//! ```
//! use thoth_stack::testing::Harness;
//! use thoth_stack::{Bare, Bytes, Dn, Msg, Time};
//!
//! let mut h = Harness::new(3, 0); // a view of three members, this one rank 0
//! h.dn(&mut Bare, Time::ZERO, Dn::Cast(Msg::new(Bytes::from_static(b"x"))));
//! assert_eq!(h.take_dn().len(), 1);
//! ```

use crate::event::{Dn, Up};
use crate::ids::{EndpointId, Rank, View};
use crate::layer::{Cx, DEFAULT_ROOM, Layer, Memo};
use crate::rng::Rng;
use crate::time::{Duration, Time};
use std::collections::{BTreeSet, VecDeque};

/// A layer's surroundings: the view (members `EndpointId(1..=n)`), its rank, a seeded RNG,
/// and the queues of what it emitted up and down. As the endpoint does, the harness starts a
/// layer (`Layer::init`, at the time of that first call) before the first event, timeout or
/// end of turn it hands it. It knows a layer by its name (one layer of a name per harness
/// and view), so a layer may move between calls; `install` forgets them all (a view's
/// layers are fresh ones).
pub struct Harness {
    /// The view the layer runs in (`Cx::view`).
    pub view: View,
    /// The layer's member's rank in `view` (`Cx::rank`).
    pub rank: Rank,
    /// The layer's generator (`Cx::rng`), seeded with 1.
    pub rng: Rng,
    /// What the layer emitted towards the application, oldest first (see `take_up`).
    pub up: VecDeque<Up>,
    /// What the layer emitted towards the network, oldest first (see `take_dn`).
    pub dn: VecDeque<Dn>,
    /// `Cx::room` for the layer (`DEFAULT_ROOM` unless set).
    pub room: usize,
    /// What layers keep across views (see `Memo`); survives `install`.
    pub memo: Memo,
    /// The layers started in this view, by name.
    started: BTreeSet<&'static str>,
}

impl Harness {
    /// A harness for the member of rank `rank` in the initial view of `members` members
    /// (`EndpointId(1..=members)`).
    pub fn new(members: u64, rank: u16) -> Harness {
        let view = View::initial((1..=members).map(EndpointId).collect());
        Harness {
            view,
            rank: Rank(rank),
            rng: Rng::new(1),
            up: VecDeque::new(),
            dn: VecDeque::new(),
            room: DEFAULT_ROOM,
            memo: Memo::new(),
            started: BTreeSet::new(),
        }
    }

    /// Moves to `view` as the endpoint would for a fresh stack: same memo, empty queues.
    pub fn install(&mut self, view: View, me: EndpointId) {
        self.rank = view.rank_of(me).expect("the harness's member is in the view");
        self.view = view;
        self.up.clear();
        self.dn.clear();
        self.started.clear();
    }

    fn cx(&mut self, now: Time) -> Cx<'_> {
        Cx::new(now, &self.view, self.rank, &mut self.rng, &mut self.up, &mut self.dn)
            .with_memo(&mut self.memo)
            .with_room(self.room)
    }

    /// Starts `l` (`Layer::init`) unless it was started in this view.
    pub fn init<L: Layer + ?Sized>(&mut self, l: &mut L, now: Time) {
        if self.started.insert(l.name()) {
            l.init(&mut self.cx(now));
        }
    }

    /// Hands `ev` to `l` going down, as the layer above would (starting `l` first if need be).
    pub fn dn<L: Layer + ?Sized>(&mut self, l: &mut L, now: Time, ev: Dn) {
        self.init(l, now);
        l.handle_dn(ev, &mut self.cx(now));
    }

    /// Hands `ev` to `l` going up, as the layer below would (`Cx::up`: the message says
    /// whether `l`'s header is there).
    pub fn up<L: Layer + ?Sized>(&mut self, l: &mut L, now: Time, mut ev: Up) {
        self.init(l, now);
        if let Some(m) = ev.carried_mut() {
            m.unseal();
        }
        l.handle_up(ev, &mut self.cx(now));
    }

    /// Hands `evs` to `l` going up as one batch (`Layer::handle_ups`), as the stack does with
    /// what the layer below emitted together.
    pub fn ups<L: Layer + ?Sized>(&mut self, l: &mut L, now: Time, evs: impl IntoIterator<Item = Up>) {
        self.init(l, now);
        let mut batch: VecDeque<Up> = evs
            .into_iter()
            .map(|mut ev| {
                if let Some(m) = ev.carried_mut() {
                    m.unseal();
                }
                ev
            })
            .collect();
        l.handle_ups(&mut batch, &mut self.cx(now));
        debug_assert!(batch.is_empty(), "handle_ups leaves its batch empty");
    }

    /// Calls `l`'s `handle_timeout` at `now` (whether or not its deadline has come: the
    /// test decides).
    pub fn timeout<L: Layer + ?Sized>(&mut self, l: &mut L, now: Time) {
        self.init(l, now);
        l.handle_timeout(&mut self.cx(now));
    }

    /// Ends a turn for `l` (`Layer::end_turn`), as the endpoint does after each batch of input.
    pub fn end_turn<L: Layer + ?Sized>(&mut self, l: &mut L, now: Time) {
        self.init(l, now);
        l.end_turn(&mut self.cx(now));
    }

    /// Everything emitted down so far, oldest first.
    pub fn take_dn(&mut self) -> Vec<Dn> {
        self.dn.drain(..).collect()
    }

    /// Everything emitted up so far, oldest first.
    pub fn take_up(&mut self) -> Vec<Up> {
        self.up.drain(..).collect()
    }
}

/// What arrives of `m` at the other end of the wire: its wire form (presence bits, headers,
/// payload) read back, as a member's own datagram would be.
pub fn over_wire(m: &crate::msg::Msg) -> crate::msg::Msg {
    let (head, body) = m.clone().into_parts();
    crate::msg::Msg::from_frame([&head[..], &body[..]].concat().into()).expect("a message's own wire form reads back")
}

/// `ms` milliseconds after `Time::ZERO`.
pub fn at(ms: u64) -> Time {
    Time::ZERO + Duration::from_millis(ms)
}

/// Events from a real endpoint's handle until `done` holds or `within` passes (for tests
/// over sockets; every wait is bounded).
pub fn collect(
    h: &crate::udp::Handle,
    within: std::time::Duration,
    done: impl Fn(&[crate::event::Event]) -> bool,
) -> Vec<crate::event::Event> {
    let deadline = std::time::Instant::now() + within;
    let mut evs = Vec::new();
    while !done(&evs) && std::time::Instant::now() < deadline {
        h.recv_many(&mut evs, std::time::Duration::from_millis(20));
    }
    evs
}

/// A number drawn anew at each call (different across calls, threads and processes), for
/// addresses and ports of real-socket tests that run at the same time on one host.
pub fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    h.write_u32(std::process::id());
    h.finish()
}

/// A multicast group (239.128.0.1 to 239.227.255.254, port 20000 to 59999) drawn anew at each
/// call, so that tests running at the same time on one host do not share a group.
pub fn random_group() -> std::net::SocketAddr {
    let r = random_u64();
    let ip = std::net::Ipv4Addr::new(239, 128 + (r % 100) as u8, (r >> 8) as u8, 1 + ((r >> 16) % 254) as u8);
    std::net::SocketAddr::new(ip.into(), 20_000 + ((r >> 24) % 40_000) as u16)
}
