//! Inline mode: the application's own thread runs the I/O core, with no driver thread and
//! no queue between them. A cast seals the datagram and hands it to `sendmmsg` before it
//! returns; a receive reads the sockets, runs the stack and returns what it delivered — one
//! thread hand-off fewer each way than `spawn`'s driver thread, which is what a
//! request / answer round trip pays twice.
//!
//! `Inline` is owned by one thread (`Send`, not `Sync`, `&mut self`): the machine's timers
//! run only while that thread is in one of its calls, so an application in inline mode
//! calls a receive (`poll`, `recv_timeout`, `recv_many`) at least as often as the stack's
//! shortest timer (a heartbeat, a retransmission), or its peers will suspect it. An
//! application with many threads, or one that cannot promise that, uses the driver thread.
//!
//! The calls mirror `Handle`'s, with the same bounds: a cast under flow control waits (under
//! `FlowPolicy::Block`) at most `UdpConfig::block_timeout` — running the core meanwhile, so
//! credit can arrive — then fails with `WouldBlock`; so does any command while the socket
//! refuses datagrams; `leave`, `block_ok` and `send_state` never wait; events wait in the
//! member up to `UdpConfig::events` / `events_bytes`, past which the sockets are not read
//! (the kernel buffers, then drops, as for raw UDP); a receive waits at most its timeout,
//! spinning on the sockets for `UdpConfig::busy_poll` first; `shutdown` (and the drop)
//! make one non-blocking attempt to send what is left, and an exit flushes for at most
//! `EXIT_FLUSH`.
//!
//! Tested by `stack/tests/udp.rs`, `udp_routes.rs` and `udp_bounds.rs`: the same tests as
//! the driver thread, through the `Member` trait of `stack/tests/common`.

use super::config::{FlowPolicy, UdpConfig};
use super::core::{Core, DriverStats, EXIT_FLUSH, SEND_ROUNDS};
use super::handle::{HandleError, admit, check_spawn};
use super::socket::Sockets;
use crate::endpoint::{Cmd, Endpoint};
use crate::ids::{EndpointId, View};
use crate::layer::Layer;
use crate::machine::{Announce, Command, Machine};
use crate::metrics::Metrics;
use bytes::Bytes;
use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest single sleep: a wait past it goes round the loop again (and looks at the clock).
const MAX_SLEEP: Duration = Duration::from_secs(1);

/// A machine run by the thread that owns it (see the module's documentation).
pub struct Inline<M: Machine = Endpoint> {
    m: M,
    core: Core,
    events: VecDeque<M::Event>,
    /// Weight of `events`.
    event_bytes: usize,
    cfg: UdpConfig,
    view: Arc<View>,
    /// The application asked to leave: commands from now on are refused.
    left: bool,
    /// The machine exited (and what it sent was flushed), or `shutdown` ran.
    stopped: bool,
}

/// Runs `machine` over `sockets` on the calling thread from now on; `peers` as for `spawn`.
pub fn inline<M: Machine>(sockets: Sockets, machine: M, peers: &[SocketAddr]) -> io::Result<Inline<M>> {
    check_spawn(&sockets, &machine, peers)?;
    let cfg = sockets.config().clone();
    let core = Core::new(sockets, peers, machine.me(), machine.max_datagram(), machine.view());
    let view = Arc::new(machine.view().clone());
    let left = machine.has_left();
    Ok(Inline { m: machine, core, events: VecDeque::new(), event_bytes: 0, cfg, view, left, stopped: false })
}

impl<M: Machine> Inline<M>
where
    HandleError: From<M::Refused>,
{
    /// The machine's endpoint id (`endpoint_id` of the unicast address).
    pub fn me(&self) -> EndpointId {
        self.m.me()
    }

    /// Largest payload a command may carry.
    pub fn max_payload(&self) -> usize {
        self.m.max_payload()
    }

    /// The current view: the last one the machine announced (it may be ahead of the events
    /// taken), or the view it started with.
    pub fn view(&self) -> Arc<View> {
        self.view.clone()
    }

    /// The members of the current view, in rank order.
    pub fn members(&self) -> Vec<EndpointId> {
        self.view.members.clone()
    }

    /// The machine itself (its counters, its layers' state).
    pub fn machine(&self) -> &M {
        &self.m
    }

    /// Hands `cmd` to the machine and sends what it caused before returning. A command
    /// under flow control waits while flow control holds (not at all under
    /// `FlowPolicy::WouldBlock`), and any command while the socket refuses datagrams, at
    /// most `block_timeout`, the core running meanwhile; then `WouldBlock`. Answers
    /// (`Command::is_answer`) never wait.
    pub fn command(&mut self, cmd: M::Cmd) -> Result<(), HandleError> {
        let wait = self.wait_for(&cmd);
        self.apply(cmd, wait)
    }

    /// Like `command`, but `WouldBlock` at once instead of waiting.
    pub fn try_command(&mut self, cmd: M::Cmd) -> Result<(), HandleError> {
        let wait = if cmd.is_answer() { None } else { Some(Duration::ZERO) };
        self.apply(cmd, wait)
    }

    /// Hands the commands at the front of `cmds` to the machine in one turn, so that the
    /// stack packs what they cause into as few datagrams as it can (a run of casts goes down
    /// it as one input, `Machine::handle_commands`), and sends them before it returns: the
    /// first waits as `command` would, the others go only while they need not wait (the rest
    /// stay in `cmds`). Returns how many went in; an error if the first cannot
    /// go (it stays in `cmds`), or if the machine refused one (the ones before it went in,
    /// the refused one is dropped).
    pub fn command_batch(&mut self, cmds: &mut VecDeque<M::Cmd>) -> Result<usize, HandleError> {
        self.batch(cmds, false)
    }

    /// Like `command_batch`, but `WouldBlock` at once (the commands left in `cmds`) instead
    /// of waiting for the first: for an application that takes its events meanwhile. One
    /// that waits in a cast takes none, and once they fill `UdpConfig::events` the member
    /// reads no more, credit included: the cast then waits its whole `block_timeout`.
    pub fn try_command_batch(&mut self, cmds: &mut VecDeque<M::Cmd>) -> Result<usize, HandleError> {
        self.batch(cmds, true)
    }

    fn batch(&mut self, cmds: &mut VecDeque<M::Cmd>, at_once: bool) -> Result<usize, HandleError> {
        let mut n = 0;
        let mut r = Ok(());
        while let Some(cmd) = cmds.front() {
            if n > 0 && !cmd.is_answer() && !self.takes(cmd) {
                break;
            }
            let wait = if at_once && !cmd.is_answer() { Some(Duration::ZERO) } else { self.wait_for(cmd) };
            if n == 0 {
                self.wait_ready(cmd, wait)?;
            }
            // It goes in, maybe with a run of the ones after it.
            match self.m.handle_commands(self.core.now(), cmds) {
                Ok(k) => n += k,
                Err(e) => {
                    r = Err(HandleError::from(e));
                    break;
                }
            }
        }
        if n > 0 || r.is_err() {
            self.end_turn();
        }
        r.map(|()| n)
    }

    /// How long `command` lets `cmd` wait.
    fn wait_for(&self, cmd: &M::Cmd) -> Option<Duration> {
        if cmd.is_answer() {
            None
        } else if cmd.is_flow_controlled() && self.cfg.flow == FlowPolicy::WouldBlock {
            Some(Duration::ZERO)
        } else {
            Some(self.cfg.block_timeout)
        }
    }

    /// Whether `cmd` can go in now: the socket takes datagrams and flow control lets it.
    fn takes(&self, cmd: &M::Cmd) -> bool {
        self.core.takes_commands() && self.m.ready(cmd)
    }

    /// Waits for `cmd` to be ready (at most `wait`; `None`: not at all), then applies it.
    fn apply(&mut self, cmd: M::Cmd, wait: Option<Duration>) -> Result<(), HandleError> {
        self.wait_ready(&cmd, wait)?;
        let r = self.m.handle_command(self.core.now(), cmd);
        self.end_turn();
        r.map_err(HandleError::from)
    }

    /// Runs the core until `cmd` can go in (at most `wait`; `None`: at once), or fails.
    fn wait_ready(&mut self, cmd: &M::Cmd, wait: Option<Duration>) -> Result<(), HandleError> {
        if self.stopped {
            return Err(HandleError::Stopped);
        }
        let Some(wait) = wait else { return Ok(()) };
        let until = Instant::now().checked_add(wait);
        while !self.takes(cmd) {
            if self.stopped {
                return Err(HandleError::Stopped);
            }
            if until.is_some_and(|u| Instant::now() >= u) {
                return Err(HandleError::WouldBlock);
            }
            if !self.turn() {
                self.sleep(until);
            }
        }
        Ok(())
    }

    /// Runs the core (one turn at least) until an event is ready, the machine has stopped,
    /// or `timeout` has passed (reading the sockets without sleeping for
    /// `UdpConfig::busy_poll` first); returns how many events are ready.
    pub fn poll(&mut self, timeout: Duration) -> usize {
        let start = Instant::now();
        let until = start.checked_add(timeout);
        let spin_until = start + self.cfg.busy_poll.min(timeout);
        // At least one turn, events waiting or not: a caller that leaves events in the
        // member still has its sockets read and its timers run.
        while !self.stopped {
            let busy = self.turn();
            if !self.events.is_empty() {
                break;
            }
            let now = Instant::now();
            if until.is_some_and(|u| now >= u) {
                break;
            }
            if !busy {
                if now >= spin_until {
                    self.sleep(until);
                } else {
                    // Spinning processes that share cores take turns at once rather than
                    // each waiting out the others' time slices.
                    std::thread::yield_now();
                }
            }
        }
        self.events.len()
    }

    /// The next event, waiting for it; `None` once the machine has stopped and every event
    /// was taken.
    pub fn recv(&mut self) -> Option<M::Event> {
        while self.poll(MAX_SLEEP) == 0 && !self.stopped {}
        self.pop()
    }

    /// The next event if one is ready after a turn of the core that does not wait.
    pub fn try_recv(&mut self) -> Option<M::Event> {
        self.poll(Duration::ZERO);
        self.pop()
    }

    /// The next event, waiting at most `timeout`.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Option<M::Event> {
        self.poll(timeout);
        self.pop()
    }

    /// Appends every ready event to `out`, waiting up to `timeout` for the first; returns
    /// how many.
    pub fn recv_many(&mut self, out: &mut Vec<M::Event>, timeout: Duration) -> usize {
        self.poll(timeout);
        let n = self.events.len();
        out.extend(self.events.drain(..));
        self.event_bytes = 0;
        n
    }

    /// The machine has stopped and every event was taken.
    pub fn is_stopped(&self) -> bool {
        self.stopped && self.events.is_empty()
    }

    /// The counters as of now.
    pub fn stats(&mut self) -> DriverStats {
        self.core.snapshot(&self.m).clone()
    }

    /// What the machine's layers counted (`Endpoint::metrics`), as of now.
    pub fn metrics(&self) -> Metrics {
        self.m.metrics()
    }

    /// Stops: one non-blocking attempt to send what is left, then the final counters.
    pub fn shutdown(mut self) -> DriverStats {
        self.stop();
        self.stats()
    }

    fn pop(&mut self) -> Option<M::Event> {
        let ev = self.events.pop_front()?;
        self.event_bytes -= ev.weight();
        Some(ev)
    }

    /// Whether events have room (one is always taken).
    fn has_room(&self) -> bool {
        self.events.is_empty() || (self.events.len() < self.cfg.events && self.event_bytes < self.cfg.events_bytes)
    }

    /// One turn of the core: due timers, the sockets (while events have room), then
    /// `end_turn`; true if anything happened.
    fn turn(&mut self) -> bool {
        let mut busy = self.core.timers(&mut self.m);
        if self.has_room() {
            busy |= self.core.receive(&mut self.m);
        } else {
            self.core.stats.events_full += 1;
        }
        busy | self.end_turn()
    }

    /// The machine's end of turn, its events taken, its transmits sent; true if a datagram
    /// left. An exit flushes what is left (at most `EXIT_FLUSH`) and stops.
    fn end_turn(&mut self) -> bool {
        self.m.end_turn(self.core.now());
        let (events, bytes, view) = (&mut self.events, &mut self.event_bytes, &mut self.view);
        let mut exit = false;
        self.core.take_events(&mut self.m, |ev| {
            exit |= ev.is_exit();
            if let Some(v) = ev.view() {
                *view = Arc::new(v.clone());
            }
            *bytes += ev.weight();
            events.push_back(ev);
        });
        self.core.route(&mut self.m);
        let sent = self.core.flush(SEND_ROUNDS);
        if exit {
            self.left = true;
            self.core.drain_outbox(Some(EXIT_FLUSH), None, || false);
            self.stopped = true;
        }
        sent
    }

    /// Sleeps until a socket is ready, the machine's next deadline, or `until`.
    fn sleep(&mut self, until: Option<Instant>) {
        let cap = Instant::now() + MAX_SLEEP;
        let deadline = [self.core.deadline(&self.m), until].into_iter().flatten().fold(cap, Instant::min);
        let read = self.has_room();
        self.core.wait(None, read, Some(deadline));
    }
}

impl<M: Machine> Inline<M> {
    fn stop(&mut self) {
        if !self.stopped {
            self.stopped = true;
            self.core.route(&mut self.m);
            self.core.drain_outbox(None, None, || true);
        }
    }
}

impl<M: Machine> Drop for Inline<M> {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The endpoint's commands, as `Handle` has them.
impl<L: Layer> Inline<Endpoint<L>> {
    fn admit(&self, len: usize, to: Option<EndpointId>) -> Result<(), HandleError> {
        admit(self.left, self.m.max_payload(), len, || to.filter(|&id| self.view.rank_of(id).is_none()))
    }

    /// Multicasts `data` to the view (see `command` for when it waits).
    pub fn cast(&mut self, data: Bytes) -> Result<(), HandleError> {
        self.admit(data.len(), None)?;
        self.command(Cmd::Cast(data))
    }

    /// Like `cast`, but `WouldBlock` at once while flow control holds casts back.
    pub fn try_cast(&mut self, data: Bytes) -> Result<(), HandleError> {
        self.admit(data.len(), None)?;
        self.try_command(Cmd::Cast(data))
    }

    /// Like `cast`, in this member's FIFO order only (`Endpoint::cast_fifo`).
    pub fn cast_fifo(&mut self, data: Bytes) -> Result<(), HandleError> {
        self.admit(data.len(), None)?;
        self.command(Cmd::CastFifo(data))
    }

    /// Sends `data` to the member `to` (which may be this one).
    pub fn send(&mut self, to: EndpointId, data: Bytes) -> Result<(), HandleError> {
        self.admit(data.len(), Some(to))?;
        self.command(Cmd::Send(to, data))
    }

    /// Leaves the group: casts and sends from now on fail with `Cast(Left)`; `Event::Exit`
    /// follows (once the group has installed a view without this member, with a membership
    /// layer), then the member stops. Never waits.
    pub fn leave(&mut self) {
        if !std::mem::replace(&mut self.left, true) && !self.stopped {
            let _ = self.apply(Cmd::Leave, None);
        }
    }

    /// Answers `Event::Block` (see `Endpoint::block_ok`). Never waits.
    pub fn block_ok(&mut self) -> Result<(), HandleError> {
        self.command(Cmd::BlockOk)
    }

    /// Answers `Event::StateRequest` with the application's state as of now. Never waits.
    pub fn send_state(&mut self, state: Bytes) -> Result<(), HandleError> {
        self.command(Cmd::State(state))
    }
}
