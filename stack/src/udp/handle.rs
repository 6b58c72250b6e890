//! The application's side of a driven endpoint: `spawn` starts the driver thread
//! ("thoth-driver") and returns a `Handle` — cloneable, `Send + Sync`, every clone talking to
//! the same driver — to cast, send, leave, answer a view change (`block_ok`, `send_state`),
//! take events, read the current view and statistics, and shut down. The driver runs any
//! `Machine`: `Handle<C, E>` carries its commands and events (`command`, `recv*`); the
//! endpoint's commands have their names (`cast`, `send`, ...) on `Handle<Cmd, Event>`, the
//! default.
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
use super::core::{Core, DriverStats};
use super::driver::Driver;
use super::queue::PushError;
#[cfg(test)]
use super::queue::Queue;
use super::shared::Shared;
use super::socket::Sockets;
use crate::endpoint::{CastError, Cmd};
use crate::event::Event;
use crate::ids::{EndpointId, View};
use crate::machine::{Announce, Command, Machine};
use crate::metrics::Metrics;
use bytes::Bytes;
use core::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

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
    /// A machine on top of the endpoint refused the command for a reason of its own (it says
    /// which in its own terms: Group RPC announces a refused call as an event).
    Refused,
}

impl fmt::Display for HandleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandleError::WouldBlock => f.write_str("the command queue is full or flow control holds casts back"),
            HandleError::Stopped => f.write_str("the driver has stopped"),
            HandleError::Cast(e) => e.fmt(f),
            HandleError::Refused => f.write_str("the machine refused the command"),
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

/// Marks the driver thread's end when dropped: after the driver (its sockets closed), on
/// return and on a panic alike.
struct Ended<C, E>(Arc<Shared<C, E>>);

impl<C, E> Drop for Ended<C, E> {
    fn drop(&mut self) {
        self.0.set_ended();
    }
}

/// Stops and joins the driver when the last handle goes.
struct Owner<C, E> {
    shared: Arc<Shared<C, E>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl<C, E> Owner<C, E> {
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

impl<C, E> Drop for Owner<C, E> {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The application's handle on a running driver, for commands `C` and events `E` (an
/// endpoint's by default). Clones share the driver; it stops when `shutdown` is called or
/// the last clone is dropped.
pub struct Handle<C = Cmd, E = Event> {
    shared: Arc<Shared<C, E>>,
    owner: Arc<Owner<C, E>>,
}

impl<C, E> Clone for Handle<C, E> {
    fn clone(&self) -> Self {
        Handle { shared: self.shared.clone(), owner: self.owner.clone() }
    }
}

impl<C, E> fmt::Debug for Handle<C, E> {
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
pub fn spawn<M>(sockets: Sockets, machine: M, peers: &[SocketAddr]) -> io::Result<Handle<M::Cmd, M::Event>>
where
    M: Machine + Send + 'static,
    M::Cmd: Send + 'static,
    M::Event: Send + 'static,
{
    check_spawn(&sockets, &machine, peers)?;
    let stats = DriverStats { endpoint: machine.stats(), granted: sockets.granted(), ..DriverStats::default() };
    let shared = Arc::new(Shared::new(&machine, sockets.config(), stats)?);
    let for_driver = shared.clone();
    let peers = peers.to_vec();
    let thread = thread::Builder::new().name("thoth-driver".into()).spawn(move || {
        let _ended = Ended(for_driver.clone());
        let core = Core::new(sockets, &peers, machine.me(), machine.max_datagram(), machine.view());
        Driver::new(machine, core, for_driver).run()
    })?;
    let owner = Arc::new(Owner { shared: shared.clone(), thread: Mutex::new(Some(thread)) });
    Ok(Handle { shared, owner })
}

/// Refuses what cannot work: a machine whose id is not the socket's, a peer of the other
/// address family.
pub(crate) fn check_spawn<M: Machine>(sockets: &Sockets, machine: &M, peers: &[SocketAddr]) -> io::Result<()> {
    let invalid = |m: String| io::Error::new(io::ErrorKind::InvalidInput, m);
    if machine.me() != sockets.id() {
        return Err(invalid(format!(
            "the endpoint's id {} is not endpoint_id({}) = {}",
            machine.me(),
            sockets.local_addr(),
            sockets.id()
        )));
    }
    if let Some(p) = peers.iter().find(|p| p.is_ipv4() != sockets.local_addr().is_ipv4()) {
        return Err(invalid(format!("peer {p} is not of the family of {}", sockets.local_addr())));
    }
    Ok(())
}

impl<C: Command, E: Announce> Handle<C, E> {
    /// The machine's endpoint id (`endpoint_id` of the unicast address).
    pub fn me(&self) -> EndpointId {
        self.shared.me
    }

    /// Largest payload a command may carry.
    pub fn max_payload(&self) -> usize {
        self.shared.max_payload
    }

    /// The machine's current view: the last one it announced, published by the driver
    /// before the event is queued, so it may be ahead of the events the application has
    /// taken. Before the first announcement: the view at `spawn` (for a joining endpoint,
    /// its provisional view: itself alone, logical time 0).
    pub fn view(&self) -> Arc<View> {
        self.shared.view()
    }

    /// The members of the current view (`view`), in rank order.
    pub fn members(&self) -> Vec<EndpointId> {
        self.shared.view().members.clone()
    }

    /// Queues an answer to a view-change event, whatever the queue's bound (never waits):
    /// the commands that fill the queue are held by the very view change it answers. It
    /// overtakes them in the driver. Not refused after a leave: a leaving member takes part
    /// in the view change that excludes it.
    fn answer(&self, cmd: C) -> Result<(), HandleError> {
        self.shared.cmds.push_over(cmd).map_err(|_| HandleError::Stopped)
    }

    /// Hands `cmd` to the machine. An answer (`Command::is_answer`) never waits; a command
    /// under flow control fails with `WouldBlock` at once while flow control holds under
    /// `FlowPolicy::WouldBlock`; otherwise it waits while the queue is full, at most
    /// `UdpConfig::block_timeout` (then `WouldBlock`).
    pub fn command(&self, cmd: C) -> Result<(), HandleError> {
        if cmd.is_answer() {
            return self.answer(cmd);
        }
        if cmd.is_flow_controlled() && self.shared.policy == FlowPolicy::WouldBlock {
            return self.try_command(cmd);
        }
        self.shared.cmds.push_timeout(cmd, self.shared.block_timeout).map_err(push_error)
    }

    /// Like `command`, but `WouldBlock` instead of waiting when the queue is full or flow
    /// control holds the command back.
    pub fn try_command(&self, cmd: C) -> Result<(), HandleError> {
        if cmd.is_flow_controlled() && self.shared.flow_blocked.load(Ordering::Relaxed) {
            return Err(HandleError::WouldBlock);
        }
        self.shared.cmds.try_push(cmd).map_err(push_error)
    }

    /// The next event, waiting for it; `None` once the driver has stopped and every event
    /// was taken.
    pub fn recv(&self) -> Option<E> {
        self.shared.events.pop()
    }

    /// The next event if one is queued, without waiting; `None` if there is none yet or
    /// the driver has stopped (`is_stopped` tells which).
    pub fn try_recv(&self) -> Option<E> {
        self.shared.events.try_pop()
    }

    /// The next event, waiting at most `timeout`; `None` on timeout, or once the driver has
    /// stopped and every event was taken.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<E> {
        self.shared.events.pop_timeout(timeout)
    }

    /// Appends every queued event to `out` in one lock, waiting up to `timeout` for the
    /// first; returns how many. 0 on timeout, or when the driver has stopped and every
    /// event was taken (`is_stopped` tells which).
    pub fn recv_many(&self, out: &mut Vec<E>, timeout: Duration) -> usize {
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

    /// What the machine's layers counted since it started, their gauges now, and the
    /// endpoint's counters (`Endpoint::metrics`), taken by the driver between two turns of
    /// its loop: traffic goes on, and nothing on the data path takes a lock for it. Waits
    /// at most `limit` (`None` after it: the driver is stuck in a layer); once the driver
    /// has stopped, its final metrics.
    pub fn metrics(&self, limit: Duration) -> Option<Metrics> {
        self.shared.metrics(limit)
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

fn push_error<T>(e: PushError<T>) -> HandleError {
    match e {
        PushError::Full(_) => HandleError::WouldBlock,
        PushError::Closed(_) => HandleError::Stopped,
    }
}

/// The endpoint's commands, checked at the handle where that can be done synchronously.
impl Handle<Cmd, Event> {
    fn admit(&self, len: usize, to: Option<EndpointId>) -> Result<(), HandleError> {
        admit(self.shared.left.load(Ordering::Relaxed), self.shared.max_payload, len, || {
            to.filter(|&id| self.shared.view().rank_of(id).is_none())
        })
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
        self.admit(data.len(), None)?;
        self.command(Cmd::Cast(data))
    }

    /// Like `cast`, but `WouldBlock` instead of waiting when the command queue is full or
    /// flow control holds casts back.
    pub fn try_cast(&self, data: Bytes) -> Result<(), HandleError> {
        self.admit(data.len(), None)?;
        self.try_command(Cmd::Cast(data))
    }

    /// Like `cast`, in this member's FIFO order only (`Endpoint::cast_fifo`): on an ordered
    /// stack it is delivered as it arrives, not held for the order.
    pub fn cast_fifo(&self, data: Bytes) -> Result<(), HandleError> {
        self.admit(data.len(), None)?;
        self.command(Cmd::CastFifo(data))
    }

    /// Sends `data` to the member `to` (which may be this one); waits while the queue is
    /// full, at most `UdpConfig::block_timeout` (then `WouldBlock`).
    pub fn send(&self, to: EndpointId, data: Bytes) -> Result<(), HandleError> {
        self.admit(data.len(), Some(to))?;
        self.command(Cmd::Send(to, data))
    }

    /// Like `send`, but `WouldBlock` instead of waiting when the command queue is full.
    pub fn try_send(&self, to: EndpointId, data: Bytes) -> Result<(), HandleError> {
        self.admit(data.len(), Some(to))?;
        self.try_command(Cmd::Send(to, data))
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
}

/// What can be refused before a command reaches the endpoint: anything after a leave
/// (`Left`), a payload over `max_payload` (`TooLarge`), a send to a member not in the view
/// (`not_member` names it: `NotMember`).
pub(crate) fn admit(
    left: bool,
    max_payload: usize,
    len: usize,
    not_member: impl FnOnce() -> Option<EndpointId>,
) -> Result<(), HandleError> {
    if left {
        Err(CastError::Left.into())
    } else if len > max_payload {
        Err(CastError::TooLarge.into())
    } else if not_member().is_some() {
        Err(CastError::NotMember.into())
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::Command;

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
        assert!(Cmd::Cast(ten()).is_flow_controlled() && !Cmd::Send(EndpointId(1), ten()).is_flow_controlled());
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
