//! A machine run either way (`--driver`): by a driver thread, through a handle, or inline on
//! the member's own thread; what the benchmark's Thoth paths (`stack`, `groups`) need of it,
//! the same for both ways.

use super::args::{Driver, MemberOpts};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;
use thoth::Machine;
use thoth::udp::{self, DriverStats, Handle, HandleError, Inline, Sockets};

/// Most commands an inline member hands over in one batch.
const BATCH: usize = 64;
/// Most commands an inline member keeps waiting for flow control; a sender waits (taking
/// its events) while this many wait.
const MAX_PENDING: usize = 4 * BATCH;

pub struct Driven<M: Machine> {
    run: Run<M>,
    /// Inline: commands not yet handed over, given as one batch (one turn of the stack, so
    /// casts are packed as the driver thread packs what it takes in one turn) when `BATCH`
    /// wait or at the next receive.
    pending: VecDeque<M::Cmd>,
    /// The driver's own-copy filter is on (multicast, `UdpConfig::filter_own`).
    filter_own: bool,
}

enum Run<M: Machine> {
    Thread(Handle<M::Cmd, M::Event>),
    Inline(Box<Inline<M>>),
}

impl<M> Driven<M>
where
    M: Machine + Send + 'static,
    M::Cmd: Send + 'static,
    M::Event: Send + 'static,
    HandleError: From<M::Refused>,
{
    /// Starts running `m` over `socks` the way `--driver` says.
    pub fn start(o: &MemberOpts, socks: Sockets, m: M, peers: &[SocketAddr]) -> Result<Driven<M>, String> {
        let filter_own = socks.config().filter_own && !socks.config().fanout;
        let start = |e: std::io::Error| format!("cannot start the UDP driver: {e}");
        let run = match o.driver {
            Driver::Thread => Run::Thread(udp::spawn(socks, m, peers).map_err(start)?),
            Driver::Inline => Run::Inline(Box::new(udp::inline(socks, m, peers).map_err(start)?)),
        };
        Ok(Driven { run, pending: VecDeque::new(), filter_own })
    }

    /// The handle of a driver thread (a sender thread gets a clone).
    pub fn handle(&self) -> Option<&Handle<M::Cmd, M::Event>> {
        match &self.run {
            Run::Thread(h) => Some(h),
            Run::Inline(_) => None,
        }
    }

    /// Hands `cmd` over: at once to a driver thread, in batches inline.
    pub fn command(&mut self, cmd: M::Cmd) -> Result<(), String> {
        match &mut self.run {
            Run::Thread(h) => h.command(cmd).map_err(|e| format!("cast: {e}")),
            Run::Inline(_) => {
                self.pending.push_back(cmd);
                if self.pending.len() >= BATCH { self.flush() } else { Ok(()) }
            }
        }
    }

    /// Whether a sender may hand more over now (inline: not while `MAX_PENDING` wait for
    /// flow control; the member takes its events meanwhile, so credit can come).
    pub fn can_send(&self) -> bool {
        self.pending.len() < MAX_PENDING
    }

    /// Inline: hands over what waits, as far as flow control lets it now (never waits for
    /// it: the events must be taken meanwhile, or credit cannot come).
    fn flush(&mut self) -> Result<(), String> {
        if let Run::Inline(m) = &mut self.run {
            while !self.pending.is_empty() {
                match m.try_command_batch(&mut self.pending) {
                    Ok(_) => {}
                    Err(HandleError::WouldBlock) => break,
                    Err(e) => return Err(format!("cast: {e}")),
                }
            }
        }
        Ok(())
    }

    /// Hands the pending commands over, then takes the events, waiting up to `timeout`.
    pub fn recv_many(&mut self, out: &mut Vec<M::Event>, timeout: Duration) -> Result<(), String> {
        self.flush()?;
        match &mut self.run {
            Run::Thread(h) => h.recv_many(out, timeout),
            Run::Inline(m) => m.recv_many(out, timeout),
        };
        Ok(())
    }

    pub fn stats(&mut self) -> DriverStats {
        match &mut self.run {
            Run::Thread(h) => h.stats(),
            Run::Inline(m) => m.stats(),
        }
    }

    /// This member's own multicast copies the own-copy filter dropped so far.
    pub fn own_copies_filtered(&mut self) -> u64 {
        if self.filter_own { self.stats().tx_to_group } else { 0 }
    }

    pub fn shutdown(mut self) -> Result<(), String> {
        self.flush()?;
        if !self.pending.is_empty() {
            return Err(format!("{} casts still held by flow control at the end", self.pending.len()));
        }
        match self.run {
            Run::Thread(h) => h.shutdown(),
            Run::Inline(m) => m.shutdown(),
        };
        Ok(())
    }
}
