//! The application's side of a driven endpoint: `spawn` starts the driver thread
//! ("thoth-driver") and returns a `Handle` — cloneable, `Send + Sync`, every clone talking to
//! the same driver — to cast, send, leave, answer a view change (`block_ok`, `send_state`),
//! take events, read the current view and statistics, and shut down.
//!
//! Commands go through a bounded queue (`UdpConfig::queue`, `UdpConfig::queue_bytes`: a
//! state counts its bytes like a cast) and events come back through another
//! (`UdpConfig::events`); see `queue` for how the driver is woken only when it sleeps.
//! What can be known at the handle is checked there, synchronously: a cast after `leave`
//! (`Cast(Left)`), a payload over `max_payload` (`Cast(TooLarge)`), a send to a member not in
//! the current view (`Cast(NotMember)`). The current view is the last one the endpoint
//! announced, which the driver publishes as it takes `Event::View` from the endpoint (before
//! the application sees the event); until then it is the endpoint's view at `spawn` — for a
//! joining endpoint (`Config::joining`) its provisional view, itself alone. Nothing here
//! takes the first view as final. `shutdown` stops and joins the driver; dropping the last
//! clone does the same, so a forgotten handle leaks no thread and no socket.
//!
//! Every call returns within a bound: `cast` (under `FlowPolicy::Block`) and `send` wait
//! at most `UdpConfig::block_timeout` for room; `leave`, `block_ok` and `send_state` never
//! wait (they go into the queue whatever its bound: a leave must not wait behind casts
//! that flow control holds, nor an answer behind the view change it ends); `recv_timeout`
//! and `recv_many` wait at most their timeout; `shutdown` and the drop of the last handle
//! return once the driver has ended, which it does within one turn of its loop whatever it
//! holds (casts held by flow control, a full event queue, a socket that refuses
//! datagrams), and at the latest after `SHUTDOWN_WAIT`. Only `recv` waits for as long as
//! the driver runs, as documented.
//!
//! Tested by the unit tests below (command weights), `stack/tests/udp.rs` (handle
//! semantics, shutdown promptness, blocked senders released with `Stopped`, drop without
//! shutdown frees the sockets), `stack/tests/udp_bounds.rs` (shutdown and drop while flow
//! control holds casts, the queue's bound counting held commands, `block_timeout`, `leave`
//! and answers on a full queue, the leave after the held casts, a driver stuck in a layer),
//! `layers/tests/flow_shutdown.rs` (the same with the real `flow` layer and a receiver
//! that stopped reading) and `stack/tests/udp_routes.rs` (the view follows `Event::View`,
//! `block_ok` / `send_state` reach the endpoint past held casts, a joining endpoint starts
//! provisional).

use super::config::FlowPolicy;
use super::driver::{Driver, DriverStats};
use super::queue::{PushError, Queue};
use super::routes::Routes;
use super::socket::Sockets;
use super::sys::Waker;
use crate::endpoint::{CastError, Endpoint};
use crate::event::Event;
use crate::ids::{EndpointId, View};
use crate::layer::Layer;
use bytes::Bytes;
use core::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Longest `Handle::shutdown` (or the drop of the last handle) waits for the driver thread
/// to end. The driver ends within one turn of its loop (milliseconds) whatever it holds; a
/// thread still running after this is stuck in a layer's code, and is left to end on its
/// own (its sockets close when it does).
pub const SHUTDOWN_WAIT: Duration = Duration::from_secs(1);

/// Why a handle call did not go through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandleError {
    /// The command queue is full, or flow control holds casts back (`try_cast`, and `cast`
    /// under `FlowPolicy::WouldBlock`; otherwise `cast` waits instead).
    WouldBlock,
    /// The driver has stopped (shutdown, last handle dropped, or the endpoint left).
    Stopped,
    /// The endpoint refuses the message.
    Cast(CastError),
}

impl fmt::Display for HandleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandleError::WouldBlock => f.write_str("the command queue is full or flow control holds casts back"),
            HandleError::Stopped => f.write_str("the driver has stopped"),
            HandleError::Cast(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for HandleError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HandleError::Cast(e) => Some(e),
            _ => None,
        }
    }
}

impl From<CastError> for HandleError {
    fn from(e: CastError) -> Self {
        HandleError::Cast(e)
    }
}

/// What the application asks of the driver.
#[derive(Debug)]
pub(crate) enum Cmd {
    Cast(Bytes),
    Send(EndpointId, Bytes),
    Leave,
    /// The answer to `Event::Block`.
    BlockOk,
    /// The answer to `Event::StateRequest`.
    State(Bytes),
}

impl Cmd {
    /// Payload bytes, for the command queue's byte bound.
    fn weight(&self) -> usize {
        match self {
            Cmd::Cast(data) | Cmd::Send(_, data) | Cmd::State(data) => data.len(),
            Cmd::Leave | Cmd::BlockOk => 0,
        }
    }

    /// An answer to an event of a view change, which must not wait behind casts that the
    /// view change holds back.
    pub(crate) fn is_answer(&self) -> bool {
        matches!(self, Cmd::BlockOk | Cmd::State(_))
    }
}

/// Payload bytes, for the event queue's byte bound.
fn event_weight(ev: &Event) -> usize {
    match ev {
        Event::Cast { data, .. } | Event::Send { data, .. } | Event::State { chunk: data, .. } => data.len(),
        Event::View(_) | Event::Exit | Event::Error { .. } | Event::Suspect(_) | Event::Block | Event::StateRequest => {
            0
        }
    }
}

/// The driver's eventfd and a count of how often it was written.
pub(crate) struct WakeSignal {
    waker: Waker,
    signals: AtomicU64,
}

impl WakeSignal {
    pub(crate) fn wake(&self) {
        self.signals.fetch_add(1, Ordering::Relaxed);
        self.waker.wake();
    }
    pub(crate) fn waker(&self) -> &Waker {
        &self.waker
    }
}

/// What the handles and the driver share.
pub(crate) struct Shared {
    /// Commands, bounded by `UdpConfig::queue` / `queue_bytes` counting those the driver
    /// took and has not applied yet (see `queue`).
    pub(crate) cmds: Queue<Cmd>,
    pub(crate) events: Queue<Event>,
    pub(crate) wake: Arc<WakeSignal>,
    /// The driver's last published statistics.
    pub(crate) stats: Mutex<DriverStats>,
    left: AtomicBool,
    /// The endpoint refuses casts for now (flow control); published by the driver.
    pub(crate) flow_blocked: AtomicBool,
    /// Answers (`Cmd::is_answer`) pushed and not yet applied by the driver: while there are
    /// any, the driver fetches commands past a held cast.
    pub(crate) answers: AtomicUsize,
    policy: FlowPolicy,
    block_timeout: Duration,
    /// Set by `stop`; the driver looks at it every turn, whatever it holds.
    stopping: AtomicBool,
    /// The driver thread has ended (set by its last guard, even after a panic).
    ended: Mutex<bool>,
    ended_cv: Condvar,
    me: EndpointId,
    max_payload: usize,
    /// The endpoint's current view, published by the driver when the endpoint announces one.
    view: Mutex<Arc<View>>,
}

impl Shared {
    pub(crate) fn set_view(&self, view: View) {
        *self.view.lock().unwrap_or_else(PoisonError::into_inner) = Arc::new(view);
    }

    fn view(&self) -> Arc<View> {
        self.view.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    pub(crate) fn publish(&self, s: &DriverStats) {
        self.stats.lock().unwrap_or_else(PoisonError::into_inner).clone_from(s);
    }

    fn snapshot(&self) -> DriverStats {
        let mut s = self.stats.lock().unwrap_or_else(PoisonError::into_inner).clone();
        s.wake_signals = self.wake.signals.load(Ordering::Relaxed);
        s
    }

    /// Ends the driver's work: flagged for the driver's next turn, command queue closed
    /// (blocked callers released), driver woken.
    pub(crate) fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
        self.cmds.close();
        self.wake.wake();
    }

    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// Waits up to `limit` for the driver thread to end; true if it has.
    fn wait_ended(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let mut ended = self.ended.lock().unwrap_or_else(PoisonError::into_inner);
        while !*ended {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            ended = self.ended_cv.wait_timeout(ended, left).unwrap_or_else(PoisonError::into_inner).0;
        }
        true
    }
}

/// Marks the driver thread's end when dropped: after the driver (its sockets closed), on
/// return and on a panic alike.
struct Ended(Arc<Shared>);

impl Drop for Ended {
    fn drop(&mut self) {
        *self.0.ended.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.0.ended_cv.notify_all();
    }
}

/// Stops and joins the driver when the last handle goes.
struct Owner {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Owner {
    /// Stops the driver and joins it, waiting at most `SHUTDOWN_WAIT` (a thread still
    /// running then is detached: it ends by itself once the layer that holds it returns).
    fn stop(&self) -> DriverStats {
        self.shared.stop();
        let t = self.thread.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(t) = t
            && self.shared.wait_ended(SHUTDOWN_WAIT)
        {
            // Ended: the join is immediate. A panic in a layer ended the thread; its guard
            // closed the queues already.
            let _ = t.join();
        }
        self.shared.snapshot()
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The application's handle on a running driver. Clones share the driver; it stops when
/// `shutdown` is called or the last clone is dropped.
#[derive(Clone)]
pub struct Handle {
    shared: Arc<Shared>,
    owner: Arc<Owner>,
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle").field("me", &self.shared.me).finish_non_exhaustive()
    }
}

/// Starts the driver thread for `endpoint` over `sockets`. `peers` are unicast addresses the
/// driver knows from the start (this member's may be among them): with a fixed membership,
/// every member's; with a changing one, the seeds a joining member first talks to.
/// `Dest::One(id)` goes to the peer with `endpoint_id(peer) == id`, else to the route learned
/// from `id`'s datagrams, else (IPv4) to the address `id` carries (`endpoint_addr`); in
/// fan-out mode a cast goes to every other member of the view by the same routes, gossip to
/// every peer but this one, every learned route and those members (see `driver`). The
/// endpoint's id must be `sockets.id()`; it may be joining (`Config::joining`).
pub fn spawn<L: Layer + 'static>(sockets: Sockets, endpoint: Endpoint<L>, peers: &[SocketAddr]) -> io::Result<Handle> {
    let invalid = |m: String| io::Error::new(io::ErrorKind::InvalidInput, m);
    if endpoint.me() != sockets.id() {
        return Err(invalid(format!(
            "the endpoint's id {} is not endpoint_id({}) = {}",
            endpoint.me(),
            sockets.local_addr(),
            sockets.id()
        )));
    }
    if let Some(p) = peers.iter().find(|p| p.is_ipv4() != sockets.local_addr().is_ipv4()) {
        return Err(invalid(format!("peer {p} is not of the family of {}", sockets.local_addr())));
    }
    let cfg = sockets.config().clone();
    let routes = Routes::new(&sockets, endpoint.me(), peers);
    let wake = Arc::new(WakeSignal { waker: Waker::new()?, signals: AtomicU64::new(0) });
    let (w1, w2) = (wake.clone(), wake.clone());
    let mut stats = DriverStats { granted: sockets.granted(), ..DriverStats::default() };
    stats.endpoint = endpoint.stats().clone();
    let shared = Arc::new(Shared {
        cmds: Queue::with_unpark(cfg.queue, move || w1.wake()).with_byte_cap(cfg.queue_bytes, Cmd::weight),
        events: Queue::with_unpark(cfg.events, move || w2.wake()).with_byte_cap(cfg.events_bytes, event_weight),
        wake,
        stats: Mutex::new(stats),
        left: AtomicBool::new(endpoint.has_left()),
        flow_blocked: AtomicBool::new(!endpoint.can_cast()),
        answers: AtomicUsize::new(0),
        policy: cfg.flow,
        block_timeout: cfg.block_timeout,
        stopping: AtomicBool::new(false),
        ended: Mutex::new(false),
        ended_cv: Condvar::new(),
        me: endpoint.me(),
        max_payload: endpoint.max_payload(),
        view: Mutex::new(Arc::new(endpoint.view().clone())),
    });
    let for_driver = shared.clone();
    let thread = thread::Builder::new().name("thoth-driver".into()).spawn(move || {
        let _ended = Ended(for_driver.clone());
        Driver::new(endpoint, sockets, routes, for_driver).run()
    })?;
    let owner = Arc::new(Owner { shared: shared.clone(), thread: Mutex::new(Some(thread)) });
    Ok(Handle { shared, owner })
}

impl Handle {
    pub fn me(&self) -> EndpointId {
        self.shared.me
    }

    /// Largest payload `cast` and `send` accept.
    pub fn max_payload(&self) -> usize {
        self.shared.max_payload
    }

    /// The endpoint's current view: the last one it announced (`Event::View`), published by
    /// the driver before the event is queued, so it may be ahead of the events the
    /// application has taken. Before the first announcement: the endpoint's view at `spawn`
    /// (for a joining endpoint, its provisional view: itself alone, logical time 0).
    pub fn view(&self) -> Arc<View> {
        self.shared.view()
    }

    /// The members of the current view (`view`), in rank order.
    pub fn members(&self) -> Vec<EndpointId> {
        self.shared.view().members.clone()
    }

    fn admit(&self, len: usize, to: Option<EndpointId>) -> Result<(), HandleError> {
        if self.shared.left.load(Ordering::Relaxed) {
            Err(CastError::Left.into())
        } else if len > self.shared.max_payload {
            Err(CastError::TooLarge.into())
        } else if to.is_some_and(|id| self.shared.view().rank_of(id).is_none()) {
            Err(CastError::NotMember.into())
        } else {
            Ok(())
        }
    }

    /// Queues an answer to a view-change event, whatever the queue's bound (never waits):
    /// the casts that fill the queue are held by the very view change it answers. It
    /// overtakes those casts in the driver. Not refused after `leave`: a leaving member
    /// takes part in the view change that excludes it (the endpoint ignores answers once it
    /// has exited).
    fn answer(&self, cmd: Cmd) -> Result<(), HandleError> {
        // Counted before it is queued (the driver's count must not go below zero), and the
        // driver woken after: one holding a cast fetches commands only while answers wait.
        self.shared.answers.fetch_add(1, Ordering::Relaxed);
        match self.shared.cmds.push_over(cmd) {
            Ok(()) => {
                self.shared.wake.wake();
                Ok(())
            }
            Err(_) => {
                self.shared.answers.fetch_sub(1, Ordering::Relaxed);
                Err(HandleError::Stopped)
            }
        }
    }

    /// Answers `Event::Block`: the application has stopped casting in this view (see
    /// `Endpoint::block_ok`). Goes ahead of casts the view change holds back.
    pub fn block_ok(&self) -> Result<(), HandleError> {
        self.answer(Cmd::BlockOk)
    }

    /// Answers `Event::StateRequest` with the application's state as of now (see
    /// `Endpoint::send_state`). Its bytes count in the command queue's byte bound
    /// (`UdpConfig::queue_bytes`) like a cast's, but it never waits for room, and goes ahead
    /// of casts the view change holds back.
    pub fn send_state(&self, state: Bytes) -> Result<(), HandleError> {
        self.answer(Cmd::State(state))
    }

    /// Multicasts `data` to the view. Under `FlowPolicy::Block` (the default) it waits while
    /// the command queue is full (which it becomes while flow control holds casts back), at
    /// most `UdpConfig::block_timeout`, then fails with `WouldBlock`; under
    /// `FlowPolicy::WouldBlock` it is `try_cast`.
    pub fn cast(&self, data: Bytes) -> Result<(), HandleError> {
        if self.shared.policy == FlowPolicy::WouldBlock {
            return self.try_cast(data);
        }
        self.admit(data.len(), None)?;
        self.push(Cmd::Cast(data))
    }

    /// Queues `cmd`, waiting at most `block_timeout` for room.
    fn push(&self, cmd: Cmd) -> Result<(), HandleError> {
        self.shared.cmds.push_timeout(cmd, self.shared.block_timeout).map_err(|e| match e {
            PushError::Full(_) => HandleError::WouldBlock,
            PushError::Closed(_) => HandleError::Stopped,
        })
    }

    /// Like `cast`, but `WouldBlock` instead of waiting when the command queue is full or
    /// flow control holds casts back.
    pub fn try_cast(&self, data: Bytes) -> Result<(), HandleError> {
        self.admit(data.len(), None)?;
        if self.shared.flow_blocked.load(Ordering::Relaxed) {
            return Err(HandleError::WouldBlock);
        }
        self.shared.cmds.try_push(Cmd::Cast(data)).map_err(|e| match e {
            PushError::Full(_) => HandleError::WouldBlock,
            PushError::Closed(_) => HandleError::Stopped,
        })
    }

    /// Sends `data` to the member `to` (which may be this one); waits while the queue is
    /// full, at most `UdpConfig::block_timeout` (then `WouldBlock`).
    pub fn send(&self, to: EndpointId, data: Bytes) -> Result<(), HandleError> {
        self.admit(data.len(), Some(to))?;
        self.push(Cmd::Send(to, data))
    }

    /// Leaves the group, after the casts and sends accepted before (they go first, in
    /// order, held ones included as flow control releases them): casts and sends from now
    /// on fail with `Cast(Left)`; `Event::Exit` follows the events already on their way,
    /// then the driver stops. Never waits: the leave is queued whatever the queue's bound.
    pub fn leave(&self) {
        if !self.shared.left.swap(true, Ordering::Relaxed) {
            // Closed: the driver is gone already; nothing to leave.
            let _ = self.shared.cmds.push_over(Cmd::Leave);
        }
    }

    /// The next event, waiting for it; `None` once the driver has stopped and every event
    /// was taken.
    pub fn recv(&self) -> Option<Event> {
        self.shared.events.pop()
    }

    pub fn try_recv(&self) -> Option<Event> {
        self.shared.events.try_pop()
    }

    pub fn recv_timeout(&self, timeout: Duration) -> Option<Event> {
        self.shared.events.pop_timeout(timeout)
    }

    /// Appends every queued event to `out` in one lock, waiting up to `timeout` for the
    /// first; returns how many. 0 on timeout, or when the driver has stopped and every
    /// event was taken (`is_stopped` tells which).
    pub fn recv_many(&self, out: &mut Vec<Event>, timeout: Duration) -> usize {
        self.shared.events.drain_wait(out, Some(timeout))
    }

    /// The driver has stopped and every event was taken.
    pub fn is_stopped(&self) -> bool {
        self.shared.events.is_closed() && self.shared.events.is_empty()
    }

    /// The driver's statistics as last published (before each sleep, and at least every
    /// 10 ms while busy).
    pub fn stats(&self) -> DriverStats {
        self.shared.snapshot()
    }

    /// Stops the driver (promptly: it is woken; blocked senders get `Stopped`), joins its
    /// thread and returns its final statistics. Commands not yet applied are dropped (casts
    /// held by flow control among them; `leave` first to have them go). The driver ends
    /// within one turn of its loop whatever it holds; this returns at the latest after
    /// `SHUTDOWN_WAIT`. Other clones then get `Stopped` from commands and, once they have
    /// taken the events still queued, `None` from `recv`.
    pub fn shutdown(self) -> DriverStats {
        self.owner.stop()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_weights() {
        let ten = || Bytes::from(vec![7u8; 10]);
        assert_eq!(Cmd::State(ten()).weight(), 10, "a state counts in the byte bound like a cast");
        assert_eq!(Cmd::Cast(ten()).weight(), 10);
        assert_eq!(Cmd::Send(EndpointId(1), ten()).weight(), 10);
        assert_eq!((Cmd::BlockOk.weight(), Cmd::Leave.weight()), (0, 0));
        assert!(Cmd::BlockOk.is_answer() && Cmd::State(ten()).is_answer());
        assert!(
            !Cmd::Cast(ten()).is_answer() && !Cmd::Send(EndpointId(1), ten()).is_answer() && !Cmd::Leave.is_answer()
        );
    }

    #[test]
    fn a_full_queue_counts_state_bytes() {
        let q: Queue<Cmd> = Queue::new(100).with_byte_cap(15, Cmd::weight);
        q.try_push(Cmd::State(Bytes::from(vec![0u8; 10]))).unwrap();
        q.try_push(Cmd::BlockOk).unwrap();
        q.try_push(Cmd::Cast(Bytes::from(vec![0u8; 10]))).unwrap();
        assert!(matches!(q.try_push(Cmd::BlockOk), Err(PushError::Full(_))), "20 bytes queued, over 15");
    }
}
