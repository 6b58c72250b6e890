//! `Machine`: what a driver runs. A sans-IO state machine that takes datagrams, timeouts and
//! the application's commands, and gives datagrams to send (`Transmit`), events for the
//! application and the instant of its next timeout. `Endpoint` is one; a layer above an
//! endpoint (Group RPC) is one by wrapping an endpoint; a process's many groups on one
//! socket are one by holding many endpoints. The simulator (`sim`) and both ways of running
//! the UDP driver (`udp`: its own thread, or the caller's) drive this trait and nothing else
//! of the machine.
//!
//! A turn: any number of inputs (`handle_command`, `handle_datagram`, `handle_timeout`),
//! then `end_turn` (a layer that gathers, `pack` say, sends there), then the outputs are
//! drained. `handle_datagram` says what became of the datagram (`Rx`), which is how a driver
//! learns where a member lives without parsing frames itself. Flow control: a command for
//! which `ready` is false waits (in the driver, or in the caller) until a later input makes
//! it ready; answers to a view change (`Command::is_answer`) never wait behind it.
//!
//! Tested through its implementations: `stack/tests/endpoint.rs` and `stack/tests/sim.rs`
//! (the endpoint under the simulator), `stack/tests/udp*.rs` (under both driver modes).

use crate::endpoint::{Stats, Transmit};
use crate::ids::{EndpointId, View};
use crate::time::Time;
use bytes::Bytes;
use std::collections::VecDeque;

/// What became of a datagram handed to `Machine::handle_datagram`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rx {
    /// Malformed, or of no group this machine runs: counted and dropped. It teaches nothing
    /// about its sender.
    Unsound,
    /// A sound frame (CRC, group) claiming to come from `src` — a claim, not a proof: a
    /// driver may learn a route from it only when the source address agrees with the id.
    /// `accepted`: the stack took it in its view (not gossip, not held, not stale, not own).
    Sound {
        /// The endpoint the frame names as its sender.
        src: EndpointId,
        /// The stack took it in its view (see above).
        accepted: bool,
    },
}

/// An application command as a driver sees it: what it weighs in a bounded queue and
/// whether it may overtake commands that flow control holds.
pub trait Command {
    /// Payload bytes, for a queue's byte bound.
    fn weight(&self) -> usize;
    /// An answer to a view change (`block_ok`, a state): never waits behind commands that
    /// the view change itself holds back.
    fn is_answer(&self) -> bool;
    /// Subject to flow control: waits while `Machine::held` is true.
    fn is_flow_controlled(&self) -> bool;
    /// The commands of one lane keep their order: one that waits holds back the later ones
    /// of its lane, not the others' (a `Groups` machine's lanes are its groups). One lane
    /// by default.
    fn lane(&self) -> u64 {
        0
    }
}

/// An event for the application as a driver sees it.
pub trait Announce {
    /// Payload bytes, for a queue's byte bound.
    fn weight(&self) -> usize;
    /// The view it announces, if any: routes follow it (casts go to its members).
    fn view(&self) -> Option<&View>;
    /// The machine is done (it left): the driver flushes and stops.
    fn is_exit(&self) -> bool;
}

/// A sans-IO state machine a driver runs (see the module doc for a turn).
pub trait Machine {
    /// The application's commands (an endpoint's: `Cmd`).
    type Cmd: Command;
    /// What the application is told (an endpoint's: `Event`).
    type Event: Announce;
    /// Why a command was refused.
    type Refused;

    /// This member's id (every datagram it sends carries it).
    fn me(&self) -> EndpointId;
    /// Largest datagram it sends or accepts, frame included (a driver sizes its receive
    /// slots by it).
    fn max_datagram(&self) -> usize;
    /// Largest payload a command may carry.
    fn max_payload(&self) -> usize;
    /// The current view (before the first is announced, the provisional one).
    fn view(&self) -> &View;
    /// Whether it has left (an endpoint: its `Event::Exit` is out); a machine of many groups
    /// never has.
    fn has_left(&self) -> bool;
    /// Flow control holds commands back now (`Command::is_flow_controlled`).
    fn held(&self) -> bool;
    /// What the machine counted.
    fn stats(&self) -> Stats;
    /// What its layers counted, and its counters (`metrics`): read on demand, never on the
    /// data path.
    fn metrics(&self) -> crate::metrics::Metrics;

    /// Applies one application command (one the caller found `ready`), or refuses it.
    fn handle_command(&mut self, now: Time, cmd: Self::Cmd) -> Result<(), Self::Refused>;
    /// Applies the command at the front of `cmds` (one the caller found `ready`) and may
    /// apply the ones after it with it, as one input; returns how many it applied from the
    /// front (at least one, unless `cmds` is empty), or the first command's refusal (it is
    /// consumed, as `handle_command` consumes it). The default applies the first alone. An
    /// endpoint takes a run of casts together, as far as its flow control has room for
    /// them, and its stack runs once for all of them.
    fn handle_commands(&mut self, now: Time, cmds: &mut VecDeque<Self::Cmd>) -> Result<usize, Self::Refused> {
        match cmds.pop_front() {
            Some(cmd) => self.handle_command(now, cmd).map(|()| 1),
            None => Ok(0),
        }
    }
    /// One datagram from the network, whatever its source or content: anything that does
    /// not check out is counted and dropped, never a panic.
    fn handle_datagram(&mut self, now: Time, data: Bytes) -> Rx;
    /// Runs the timers due at `now` (the driver calls it at `poll_timeout`, or later).
    fn handle_timeout(&mut self, now: Time);
    /// Ends a batch of inputs.
    fn end_turn(&mut self, now: Time);

    /// The next datagram to send, oldest first.
    fn poll_transmit(&mut self) -> Option<Transmit>;
    /// The next event for the application, in order.
    fn poll_event(&mut self) -> Option<Self::Event>;
    /// When `handle_timeout` should next be called.
    fn poll_timeout(&self) -> Option<Time>;

    /// Whether `cmd` can go in now.
    fn ready(&self, cmd: &Self::Cmd) -> bool {
        !cmd.is_flow_controlled() || !self.held()
    }
}
