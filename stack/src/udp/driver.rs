//! The driver thread: a loop that runs a `Machine` over the I/O core (`core`) and moves
//! commands and events between it and the handles' queues. Each turn it
//!
//! 0. stops at once if the handles asked it to (`Handle::shutdown`, the last handle
//!    dropped), whatever it holds;
//! 1. takes every queued command in one lock and feeds them to the machine (not while the
//!    socket refuses datagrams or the outbox is long: then commands wait and `cast` feels
//!    the backpressure), in order; one that flow control holds (`Machine::ready` false)
//!    and the commands of its lane behind it (a leave among them) wait for credit, still
//!    counted in the command queue's bound until applied, and `Shared::flow_blocked` tells
//!    the handles (`FlowPolicy::WouldBlock`); other lanes go on (`Command::lane`: the
//!    groups of a `Groups` machine). The answers to a view change (`Command::is_answer`)
//!    do not wait behind a held command — the view change is what holds it;
//! 2. runs the core's turn: due timers, the sockets read into the machine — unless the
//!    event queue is full, in which case the sockets are left alone and the kernel buffers,
//!    then drops, as it would for raw UDP —, the machine's `end_turn`;
//! 3. moves the machine's events into the event queue in one lock, publishing each view it
//!    announces to the handles (`Handle::view`) first;
//! 4. routes and sends the machine's transmits.
//!
//! With nothing to do it parks on the queues (see `queue`) and sleeps in `ppoll` on its
//! sockets and its eventfd until the machine's next deadline. An exit event ends the loop
//! after the remaining transmits are flushed (for at most a second); a stop (shutdown, last
//! handle dropped) ends it at the start of the next turn, whatever it holds — commands held
//! by flow control, events the application does not take, datagrams the socket refuses —
//! after one non-blocking attempt to send what the outbox holds. Either way the event queue
//! is closed with every event still pending appended, so none is lost.
//!
//! Tested end to end by `stack/tests/udp.rs`, `udp_routes.rs` and `udp_bounds.rs` (handle
//! semantics, bounds, shutdown) and `layers/tests/flow_shutdown.rs`.

use super::core::{Core, EXIT_FLUSH, SEND_ROUNDS};
use super::shared::Shared;
use crate::machine::{Announce, Command, Machine};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Statistics are published at least this often while the driver is busy.
const PUBLISH_EVERY: Duration = Duration::from_millis(10);

pub(crate) struct Driver<M: Machine> {
    m: M,
    core: Core,
    shared: Arc<Shared<M::Cmd, M::Event>>,
    /// Commands just taken from the queue.
    fresh: VecDeque<M::Cmd>,
    /// Commands flow control holds, by lane, each lane in order (still counted in the
    /// queue's bound).
    held: BTreeMap<u64, VecDeque<M::Cmd>>,
    events: VecDeque<M::Event>,
    exiting: bool,
    /// What was last published as `Shared::flow_blocked`.
    flow_blocked: bool,
    last_publish: Instant,
    /// Requests for metrics answered (`Shared::metrics_asked`).
    metrics_answered: u64,
}

/// Closes the queues when the driver thread ends, even by a panic in a layer, so no handle
/// waits forever.
struct CloseOnDrop<C, E>(Arc<Shared<C, E>>);

impl<C, E> Drop for CloseOnDrop<C, E> {
    fn drop(&mut self) {
        self.0.events.close();
        self.0.cmds.close();
    }
}

impl<M: Machine> Driver<M> {
    pub(crate) fn new(m: M, core: Core, shared: Arc<Shared<M::Cmd, M::Event>>) -> Driver<M> {
        Driver {
            m,
            core,
            shared,
            fresh: VecDeque::new(),
            held: BTreeMap::new(),
            events: VecDeque::new(),
            exiting: false,
            flow_blocked: false,
            last_publish: Instant::now(),
            metrics_answered: 0,
        }
    }

    pub(crate) fn run(mut self) {
        let _guard = CloseOnDrop(self.shared.clone());
        loop {
            if self.shared.is_stopping() {
                self.finish(false);
                return;
            }
            let asked = self.shared.metrics_asked();
            if asked > self.metrics_answered {
                self.shared.publish_metrics(asked, self.m.metrics());
                self.metrics_answered = asked;
            }
            let mut busy = false;
            if self.core.takes_commands() {
                // What flow control holds stays here, counted in the queue's bound until
                // applied; new commands come in behind it (other lanes may go, answers do).
                let d = self.shared.cmds.drain_into(&mut self.fresh);
                if d.taken > 0 {
                    self.core.stats.cmd_depth.record(d.taken as u64);
                }
                if d.closed {
                    self.finish(false);
                    return;
                }
                busy |= self.apply_commands();
            }
            busy |= self.core.timers(&mut self.m);
            if self.events.is_empty() {
                busy |= self.core.receive(&mut self.m);
            }
            // The batch is in: the layers' end of turn (pack sends what it gathered).
            self.m.end_turn(self.core.now());
            self.collect_events();
            self.core.route(&mut self.m);
            busy |= self.core.flush(SEND_ROUNDS);
            if self.exiting {
                self.finish(true);
                return;
            }
            if busy {
                if self.last_publish.elapsed() >= PUBLISH_EVERY {
                    self.publish();
                }
            } else {
                self.sleep();
            }
        }
    }

    /// Feeds queued commands to the machine, in order. One that flow control holds
    /// (`Machine::ready` false) stays, and so does every later one of its lane
    /// (`Command::lane`: an endpoint's commands are all of one lane, a `Groups` machine's
    /// lane is the group), while the other lanes' commands go on, and the answers to a view
    /// change go whatever their lane — the view change is what holds the casts before them.
    /// A run of commands may go in as one input (`Machine::handle_commands`). True if any
    /// went in; what went in gives its room in the command queue back.
    fn apply_commands(&mut self) -> bool {
        // What went in from `fresh` is all of it less what was held back; a run of commands
        // may go in together (`Machine::handle_commands`).
        let (mut items, mut bytes) = (self.fresh.len(), self.fresh.iter().map(Command::weight).sum::<usize>());
        while let Some(cmd) = self.fresh.front() {
            let lane = cmd.lane();
            if cmd.is_answer() || (!self.held.contains_key(&lane) && self.m.ready(cmd)) {
                if self.m.handle_commands(self.core.now(), &mut self.fresh).is_err() {
                    self.core.stats.rejected_commands += 1;
                }
            } else {
                let cmd = self.fresh.pop_front().expect("looked at");
                (items, bytes) = (items - 1, bytes - cmd.weight());
                self.held.entry(lane).or_default().push_back(cmd);
            }
        }
        // What was held may go now (credit came, an answer ended a view change).
        self.held.retain(|_, q| {
            while q.front().is_some_and(|c| self.m.ready(c)) {
                let cmd = q.pop_front().expect("looked at");
                (items, bytes) = (items + 1, bytes + cmd.weight());
                if self.m.handle_command(self.core.now(), cmd).is_err() {
                    self.core.stats.rejected_commands += 1;
                }
            }
            !q.is_empty()
        });
        self.shared.cmds.release(items, bytes);
        items > 0
    }

    fn collect_events(&mut self) {
        let blocked = self.m.held();
        if blocked != self.flow_blocked {
            self.flow_blocked = blocked;
            self.shared.flow_blocked.store(blocked, Ordering::Relaxed);
        }
        let (shared, events, exiting) = (&self.shared, &mut self.events, &mut self.exiting);
        self.core.take_events(&mut self.m, |ev| {
            *exiting |= ev.is_exit();
            if let Some(v) = ev.view() {
                shared.set_view(v.clone());
            }
            events.push_back(ev);
        });
        if !self.events.is_empty() {
            let (_, waiting) = self.shared.events.push_from(&mut self.events);
            self.core.stats.event_depth.record(waiting as u64);
        }
    }

    fn publish(&mut self) {
        self.shared.publish(self.core.snapshot(&self.m));
        self.last_publish = Instant::now();
    }

    /// Parks on the queues and sleeps until a socket, the eventfd or a deadline wakes it.
    fn sleep(&mut self) {
        let reading = self.events.is_empty();
        if !reading {
            if !self.shared.events.park_if_full() {
                return; // room appeared: go on
            }
            self.core.stats.events_full += 1;
        }
        // Commands matter only when they can go in: not while the socket refuses datagrams.
        // New ones wake the driver even while it holds some (they may be of another lane,
        // or the answer that releases them).
        if !self.core.is_blocked() && !self.shared.cmds.park_if_empty() {
            return; // a command arrived: go on
        }
        self.publish();
        let deadline = self.core.deadline(&self.m);
        self.core.wait(Some(self.shared.wake.waker()), reading, deadline);
    }

    /// Ends the loop: flushes (waiting up to `EXIT_FLUSH` if `wait`), publishes the final
    /// statistics, closes the queues with every pending event delivered.
    fn finish(&mut self, wait: bool) {
        self.core.route(&mut self.m);
        let shared = self.shared.clone();
        self.core.drain_outbox(wait.then_some(EXIT_FLUSH), Some(shared.wake.waker()), || shared.is_stopping());
        self.collect_events();
        self.publish();
        self.shared.publish_metrics(u64::MAX, self.m.metrics());
        self.shared.events.close_with(&mut self.events);
        self.shared.cmds.close();
    }
}
