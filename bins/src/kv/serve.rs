//! `thoth-kv serve`: one replica of the store, and its part of the trader.
//!
//! The process is a member of two groups, each on its own sockets and its own inline driver,
//! both run by its one thread: the store's object group (`thoth-kv/NAME`, a
//! `Replica<Store>` under the strategy chosen) and the trader's (`thoth-kv/trader`, a
//! `Trader` over a `Cached` directory, so a bind is a local read). Both join by multicast
//! discovery on loopback (`Config::joining`): the first to start forms each group, the
//! others join it, and a joiner gets the store's state by transfer.
//!
//! It offers the store at the trader under NAME, with its client address as the contact
//! (and offers again whenever its offer is missing: the trader drops the offers of a member
//! that stopped answering probes). Clients that are not members (`client`) find the
//! replicas through a multicast rendezvous on loopback (every replica answers a bind there
//! from its trader replica) and then send each operation to a contact (`wire`): the contact
//! runs it as its own operation on the store and sends back the outcome. A contact runs each
//! (nonce, number) of a client once, answering a repeat from the outcome it kept (the last
//! `SEEN`); operations wait for the replica in a queue of at most `WAITING`, beyond which
//! they are refused as unavailable.
//!
//! Persistence: the replica's checkpoint (`Replica::checkpoint`) is saved to
//! `DIR/checkpoints.redb` (`thoth_grpc::object::durable`) at most every `CHECKPOINT_EVERY`
//! while it changes, and when the process stops; a process started on a directory that holds
//! one restores the replica from it (`Replica::restore`).
//!
//! SIGTERM or SIGINT stops it cleanly: it withdraws its offer, leaves both groups (within
//! `LEAVE_WAIT`), saves a last checkpoint and ends with status 0. Each step prints one line
//! on stdout (`listening ADDR`, `restored VERSION`, `view GROUP LTIME MEMBERS RANK`, with
//! this replica's rank in the view: 0 runs the calls under primary-backup and client-server;
//! `offered`, `exit`), for a person or a script.
//!
//! Tested by `bins/tests/kv.rs` (the README's walk-through: three replicas, clients,
//! `kill -9`, a fresh replica catching up, every replica stopped and restarted).

use super::Store;
use super::wire::{Kind, MAX_DATAGRAM, Reply, Request, Status};
use crate::perf::raw;
use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use thoth::udp::{HandleError, Inline, Sockets, UdpConfig, inline};
use thoth::{Cmd, Config, Endpoint, Event, GroupId};
use thoth_grpc::object::durable::Checkpoints;
use thoth_grpc::object::trader::{Directory, Entry, Trader, TraderOp};
use thoth_grpc::{CallId, ObjCmd, ObjConfig, ObjError, ObjEvent, Replica, Rpc, RpcConfig, Strategy};

/// How long each group's driver may wait for input in one round of the loop.
const TICK: Duration = Duration::from_millis(2);
/// Checkpoints are saved at most this often while the state changes.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);
/// How often the replica checks that its offer is at the trader (and offers again).
const OFFER_EVERY: Duration = Duration::from_secs(1);
/// The trader's probes: their period, and the misses in a row that drop an offer.
const PROBE_PERIOD: Duration = Duration::from_millis(500);
const MISSES: u32 = 3;
/// Clients' requests kept for repeats, and operations waiting for the replica, at most.
const SEEN: usize = 4096;
const WAITING: usize = 1024;
/// How long a stop may take: the offer withdrawn, both groups left.
const LEAVE_WAIT: Duration = Duration::from_secs(5);

/// The trader group's name, and the stack of both groups.
pub const TRADER: &str = "thoth-kv/trader";
const STACK: &str = "total";

pub struct Opts {
    pub dir: PathBuf,
    pub name: String,
    pub strategy: Strategy,
    /// The multicast group the two groups' members meet on.
    pub group_addr: SocketAddr,
    /// The multicast address clients ask for the trader's offers.
    pub rendezvous: SocketAddr,
    pub interface: std::net::IpAddr,
    /// How the replicas' datagrams (both groups') are protected.
    pub security: thoth::Security,
}

fn say(line: &str) {
    let mut o = std::io::stdout().lock();
    // A reader that went away: nothing left to tell.
    let _ = writeln!(o, "{line}").and_then(|()| o.flush());
}

/// A client's request the contact has taken: running, or done with its reply.
enum Seen {
    Running,
    Done(Vec<u8>),
}

/// A client's operation: whom to answer.
struct Asker {
    from: SocketAddr,
    req: Request,
}

struct Server {
    kv: Inline<Replica<Store>>,
    trader: Inline<Trader>,
    store: Checkpoints,
    name: String,
    /// Clients' traffic: requests in, replies out.
    clients: UdpSocket,
    /// Bind requests sent to the rendezvous address.
    rendezvous: UdpSocket,
    contact: SocketAddr,
    seen: BTreeMap<(u64, u64), Seen>,
    seen_order: VecDeque<(u64, u64)>,
    waiting: VecDeque<Asker>,
    running: BTreeMap<CallId, Asker>,
    next_id: CallId,
    saved: Option<u64>,
    last_save: Instant,
    last_offer: Option<Instant>,
    /// Where datagrams from clients are read into.
    buf: Vec<u8>,
    /// Datagrams from clients that did not decode.
    bad: u64,
}

pub fn run(o: &Opts) -> Result<(), String> {
    crate::term::install(true);
    std::fs::create_dir_all(&o.dir).map_err(|e| format!("{}: {e}", o.dir.display()))?;
    let store = Checkpoints::open(&o.dir.join("checkpoints.redb"))?;
    let udp = UdpConfig { group: o.group_addr, interface: o.interface, ..UdpConfig::default() };
    let open = || Sockets::open(&udp).map_err(|e| format!("cannot open sockets: {e}"));
    let (kv_socks, trader_socks) = (open()?, open()?);
    let endpoint = |socks: &Sockets, group: &str| {
        let cfg = Config { transfer_state: true, ..Config::joining(GroupId::named(group), socks.id()) }
            .secured(o.security.clone());
        let ep = Endpoint::from_spec(cfg, &thoth::registry(), STACK).map_err(|e| format!("stack: {e}"))?;
        Ok::<_, String>(Rpc::new(ep, RpcConfig::fresh()))
    };
    let rpc = endpoint(&kv_socks, &format!("thoth-kv/{}", o.name))?;
    let cfg = ObjConfig::new(o.strategy);
    let replica = match store.load(&o.name)? {
        Some(cp) => {
            let r = Replica::restore(rpc, Store::default(), cfg, &cp).map_err(|e| format!("the checkpoint: {e}"))?;
            say(&format!("restored {}", r.version()));
            r
        }
        None => Replica::new(rpc, Store::default(), cfg),
    };
    let directory =
        Replica::new(endpoint(&trader_socks, TRADER)?, Directory::default(), ObjConfig::new(Strategy::Cached));
    let trader = Trader::new(directory, PROBE_PERIOD, MISSES);
    let setup = raw::Setup::new(o.rendezvous, o.interface, 1, 1 << 20, 1 << 20).map_err(|e| e.to_string())?;
    let socks = raw::open(&setup).map_err(|e| format!("the rendezvous {}: {e}", o.rendezvous))?;
    for s in [&socks.group, &socks.unicast] {
        s.set_nonblocking(true).map_err(|e| e.to_string())?;
    }
    let contact = socks.unicast.local_addr().map_err(|e| e.to_string())?;
    let mut s = Server {
        kv: inline(kv_socks, replica, &[]).map_err(|e| format!("the store's driver: {e}"))?,
        trader: inline(trader_socks, trader, &[]).map_err(|e| format!("the trader's driver: {e}"))?,
        store,
        name: o.name.clone(),
        clients: socks.unicast,
        rendezvous: socks.group,
        contact,
        seen: BTreeMap::new(),
        seen_order: VecDeque::new(),
        waiting: VecDeque::new(),
        running: BTreeMap::new(),
        next_id: 0,
        saved: None,
        last_save: Instant::now(),
        last_offer: None,
        buf: vec![0u8; MAX_DATAGRAM],
        bad: 0,
    };
    say(&format!("listening {contact}"));
    while !crate::term::asked() {
        s.round()?;
    }
    s.stop()
}

impl Server {
    /// One round: both groups' input, clients' requests, operations to the replica, the
    /// offer, a checkpoint.
    fn round(&mut self) -> Result<(), String> {
        let mut events = Vec::new();
        self.kv.recv_many(&mut events, TICK);
        for ev in events.drain(..) {
            self.on_store_event(ev);
        }
        let mut events = Vec::new();
        self.trader.recv_many(&mut events, TICK);
        for ev in events {
            match ev {
                ObjEvent::Endpoint(Event::View(v)) => say(&format!("view trader {} {}", v.id.ltime, v.len())),
                ObjEvent::Endpoint(Event::Block) => {
                    let _ = self.trader.command(ObjCmd::Endpoint(Cmd::BlockOk));
                }
                _ => {}
            }
        }
        if self.kv.is_stopped() || self.trader.is_stopped() {
            return Err("a group's driver stopped".into());
        }
        self.take_requests();
        self.issue();
        self.offer();
        self.checkpoint(false)
    }

    /// Whether the store's group (the trader's) has a view of its own yet, not a joiner's
    /// provisional one.
    fn kv_ready(&self) -> bool {
        self.kv.view().id.ltime > 0
    }
    fn trader_ready(&self) -> bool {
        self.trader.view().id.ltime > 0
    }

    fn on_store_event(&mut self, ev: ObjEvent) {
        match ev {
            ObjEvent::Done { id, result } => {
                if let Some(a) = self.running.remove(&id) {
                    let status = match result {
                        Ok(v) => Status::Done(v),
                        Err(ObjError::Failed(why)) => Status::Failed(why),
                        Err(e) => Status::Unavailable(format!("{e:?}")),
                    };
                    self.answer(&a, status);
                }
            }
            ObjEvent::Endpoint(Event::View(v)) => {
                let rank = v.rank_of(self.kv.me()).map_or(-1, |r| i64::from(r.0));
                say(&format!("view {} {} {} {rank}", self.name, v.id.ltime, v.len()))
            }
            ObjEvent::Endpoint(Event::Error { layer, detail }) => say(&format!("error {layer}: {detail}")),
            ObjEvent::Endpoint(Event::Block) => {
                let _ = self.kv.command(ObjCmd::Endpoint(Cmd::BlockOk));
            }
            ObjEvent::Endpoint(_) => {}
        }
    }

    /// Reads what clients sent (binds on the rendezvous socket, operations on the contact's).
    fn take_requests(&mut self) {
        for _ in 0..256 {
            let got = self.rendezvous.recv_from(&mut self.buf).or_else(|_| self.clients.recv_from(&mut self.buf));
            let Ok((n, from)) = got else { return };
            match Request::decode(&self.buf[..n]) {
                Ok(req) => self.request(from, req),
                Err(_) => self.bad += 1,
            }
        }
    }

    fn request(&mut self, from: SocketAddr, req: Request) {
        let a = Asker { from, req };
        match a.req.kind {
            // Answered from this member's trader replica at once; repeats cost nothing.
            Kind::Bind => {
                let Ok(name) = std::str::from_utf8(&a.req.body) else { return self.bad += 1 };
                let op = TraderOp::Bind { name: name.into() }.encode();
                let status = match self.trader.machine().replica().read_local(&op) {
                    Some(Ok(offers)) => Status::Done(offers),
                    Some(Err(why)) => Status::Failed(why),
                    None => Status::Unavailable("the trader is not ready".into()),
                };
                self.answer(&a, status);
            }
            Kind::Write | Kind::Read => {
                let key = (a.req.nonce, a.req.seq);
                match self.seen.get(&key) {
                    Some(Seen::Done(reply)) => {
                        let _ = self.clients.send_to(reply, from);
                    }
                    Some(Seen::Running) => {}
                    None if self.waiting.len() >= WAITING => {
                        self.answer(&a, Status::Unavailable("this contact is busy".into()))
                    }
                    None => {
                        self.remember(key, Seen::Running);
                        self.waiting.push_back(a);
                    }
                }
            }
        }
    }

    /// Keeps a request for repeats, the oldest forgotten past `SEEN`.
    fn remember(&mut self, key: (u64, u64), s: Seen) {
        if self.seen.insert(key, s).is_none() {
            self.seen_order.push_back(key);
        }
        while self.seen_order.len() > SEEN {
            let old = self.seen_order.pop_front().expect("not empty");
            self.seen.remove(&old);
        }
    }

    fn answer(&mut self, a: &Asker, status: Status) {
        let reply = Reply { kind: a.req.kind, nonce: a.req.nonce, seq: a.req.seq, status }.encode();
        let _ = self.clients.send_to(&reply, a.from);
        if a.req.kind != Kind::Bind {
            self.remember((a.req.nonce, a.req.seq), Seen::Done(reply));
        }
    }

    /// Hands the waiting operations to the replica while it takes them (a read runs on the
    /// local replica where the strategy lets it).
    fn issue(&mut self) {
        while self.kv_ready()
            && let Some(a) = self.waiting.pop_front()
        {
            let op = a.req.body.clone();
            if a.req.kind == Kind::Read
                && let Some(r) = self.kv.machine().read_local(&op)
            {
                self.answer(&a, r.map_or_else(Status::Failed, Status::Done));
                continue;
            }
            self.next_id += 1;
            let id = self.next_id;
            let cmd = match a.req.kind {
                Kind::Write => ObjCmd::Write { id, op },
                _ => ObjCmd::Read { id, op },
            };
            match self.kv.try_command(cmd) {
                Ok(()) => {
                    self.running.insert(id, a);
                }
                Err(HandleError::WouldBlock) => {
                    self.waiting.push_front(a);
                    return;
                }
                Err(e) => self.answer(&a, Status::Unavailable(format!("{e:?}"))),
            }
        }
    }

    /// Offers the store at the trader if this member's offer is not there.
    fn offer(&mut self) {
        if !(self.kv_ready() && self.trader_ready()) || self.last_offer.is_some_and(|t| t.elapsed() < OFFER_EVERY) {
            return;
        }
        self.last_offer = Some(Instant::now());
        let me = self.trader.me();
        if self.trader.machine().replica().object().get(&self.name).iter().any(|e| e.owner == me) {
            return;
        }
        let entry = Entry {
            group: GroupId::named(&format!("thoth-kv/{}", self.name)).0,
            owner: me,
            contact: self.contact.to_string(),
        };
        let op = TraderOp::Install { name: self.name.clone(), entry }.encode();
        if self.trader.try_command(ObjCmd::Write { id: 1, op }).is_ok() {
            say("offered");
        }
    }

    /// Saves the replica's checkpoint if it changed (at most every `CHECKPOINT_EVERY`
    /// unless `now`).
    fn checkpoint(&mut self, now: bool) -> Result<(), String> {
        let m = self.kv.machine();
        if self.saved == Some(m.version()) || (!now && self.last_save.elapsed() < CHECKPOINT_EVERY) {
            return Ok(());
        }
        let (version, cp) = (m.version(), m.checkpoint());
        self.store.save(&self.name, &cp)?;
        self.saved = Some(version);
        self.last_save = Instant::now();
        Ok(())
    }

    /// Withdraws the offer, leaves both groups, saves a last checkpoint.
    fn stop(mut self) -> Result<(), String> {
        let until = Instant::now() + LEAVE_WAIT;
        let me = self.trader.me();
        let op = TraderOp::Remove { name: self.name.clone(), owner: me }.encode();
        if self.trader_ready() && self.trader.try_command(ObjCmd::Write { id: 2, op }).is_ok() {
            let mut events = Vec::new();
            while Instant::now() < until && !events.iter().any(|e| matches!(e, ObjEvent::Done { id: 2, .. })) {
                self.trader.recv_many(&mut events, TICK);
                self.kv.poll(Duration::ZERO);
            }
        }
        let _ = self.kv.command(ObjCmd::Endpoint(Cmd::Leave));
        let _ = self.trader.command(ObjCmd::Endpoint(Cmd::Leave));
        let (mut kv_out, mut trader_out) = (false, false);
        let mut events = Vec::new();
        while !(kv_out && trader_out) && Instant::now() < until {
            events.clear();
            self.kv.recv_many(&mut events, TICK);
            kv_out |= self.kv.is_stopped() || events.iter().any(|e| matches!(e, ObjEvent::Endpoint(Event::Exit)));
            events.clear();
            self.trader.recv_many(&mut events, TICK);
            trader_out |=
                self.trader.is_stopped() || events.iter().any(|e| matches!(e, ObjEvent::Endpoint(Event::Exit)));
        }
        self.checkpoint(true)?;
        if self.bad > 0 {
            say(&format!("dropped {} datagrams from clients that did not decode", self.bad));
        }
        say("exit");
        self.kv.shutdown();
        self.trader.shutdown();
        Ok(())
    }
}
