//! What the UDP tests share: one `Member` interface over the two ways of running an
//! endpoint (`udp::spawn`'s driver thread, `udp::inline` on the caller's thread), so that
//! the same tests run against both (`Mode`). A member used from several threads at once is
//! a thread-mode test of its own; everything else goes through here.
#![allow(dead_code)]

use std::io;
use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};
use thoth_stack::udp::{self, DriverStats, Handle, HandleError, Inline, Sockets};
use thoth_stack::{Bytes, Endpoint, EndpointId, Event, Layer, View};

/// `fn $name<Mo: Mode>()` run as the tests `$name::thread` and `$name::inline`.
macro_rules! both_modes {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn thread() {
                super::$name::<super::Threaded>()
            }
            #[test]
            fn inline() {
                super::$name::<super::Inlined>()
            }
        }
    )*};
}

/// A running member, either way.
pub trait Member: Send + 'static {
    fn me(&self) -> EndpointId;
    fn max_payload(&self) -> usize;
    fn view(&self) -> std::sync::Arc<View>;
    fn cast(&mut self, data: Bytes) -> Result<(), HandleError>;
    fn try_cast(&mut self, data: Bytes) -> Result<(), HandleError>;
    fn send(&mut self, to: EndpointId, data: Bytes) -> Result<(), HandleError>;
    fn leave(&mut self);
    fn block_ok(&mut self) -> Result<(), HandleError>;
    fn send_state(&mut self, state: Bytes) -> Result<(), HandleError>;
    fn recv_timeout(&mut self, timeout: Duration) -> Option<Event>;
    fn recv_many(&mut self, out: &mut Vec<Event>, timeout: Duration) -> usize;
    fn is_stopped(&self) -> bool;
    /// The counters: as last published (thread), as of now (inline).
    fn stats(&mut self) -> DriverStats;
    /// Lets the member work for `d` without taking its events (inline: runs its core).
    fn pump(&mut self, d: Duration);
    fn shutdown(self) -> DriverStats;
}

/// How members are started.
pub trait Mode: 'static {
    type M<L: Layer + 'static>: Member;
    const NAME: &'static str;
    fn start<L: Layer + 'static>(s: Sockets, ep: Endpoint<L>, peers: &[SocketAddr]) -> io::Result<Self::M<L>>;
    fn run<L: Layer + 'static>(s: Sockets, ep: Endpoint<L>, peers: &[SocketAddr]) -> Self::M<L> {
        Self::start(s, ep, peers).expect("start a member")
    }
}

/// The driver thread (`udp::spawn`).
pub struct Threaded;
/// The caller's thread (`udp::inline`).
pub struct Inlined;

impl Mode for Threaded {
    type M<L: Layer + 'static> = Handle;
    const NAME: &'static str = "thread";
    fn start<L: Layer + 'static>(s: Sockets, ep: Endpoint<L>, peers: &[SocketAddr]) -> io::Result<Handle> {
        udp::spawn(s, ep, peers)
    }
}

impl Mode for Inlined {
    type M<L: Layer + 'static> = Inline<Endpoint<L>>;
    const NAME: &'static str = "inline";
    fn start<L: Layer + 'static>(s: Sockets, ep: Endpoint<L>, peers: &[SocketAddr]) -> io::Result<Self::M<L>> {
        udp::inline(s, ep, peers)
    }
}

impl Member for Handle {
    fn me(&self) -> EndpointId {
        Handle::me(self)
    }
    fn max_payload(&self) -> usize {
        Handle::max_payload(self)
    }
    fn view(&self) -> std::sync::Arc<View> {
        Handle::view(self)
    }
    fn cast(&mut self, data: Bytes) -> Result<(), HandleError> {
        Handle::cast(self, data)
    }
    fn try_cast(&mut self, data: Bytes) -> Result<(), HandleError> {
        Handle::try_cast(self, data)
    }
    fn send(&mut self, to: EndpointId, data: Bytes) -> Result<(), HandleError> {
        Handle::send(self, to, data)
    }
    fn leave(&mut self) {
        Handle::leave(self)
    }
    fn block_ok(&mut self) -> Result<(), HandleError> {
        Handle::block_ok(self)
    }
    fn send_state(&mut self, state: Bytes) -> Result<(), HandleError> {
        Handle::send_state(self, state)
    }
    fn recv_timeout(&mut self, timeout: Duration) -> Option<Event> {
        Handle::recv_timeout(self, timeout)
    }
    fn recv_many(&mut self, out: &mut Vec<Event>, timeout: Duration) -> usize {
        Handle::recv_many(self, out, timeout)
    }
    fn is_stopped(&self) -> bool {
        Handle::is_stopped(self)
    }
    fn stats(&mut self) -> DriverStats {
        Handle::stats(self)
    }
    fn pump(&mut self, d: Duration) {
        thread::sleep(d)
    }
    fn shutdown(self) -> DriverStats {
        Handle::shutdown(self)
    }
}

impl<L: Layer + 'static> Member for Inline<Endpoint<L>> {
    fn me(&self) -> EndpointId {
        Inline::me(self)
    }
    fn max_payload(&self) -> usize {
        Inline::max_payload(self)
    }
    fn view(&self) -> std::sync::Arc<View> {
        Inline::view(self)
    }
    fn cast(&mut self, data: Bytes) -> Result<(), HandleError> {
        Inline::cast(self, data)
    }
    fn try_cast(&mut self, data: Bytes) -> Result<(), HandleError> {
        Inline::try_cast(self, data)
    }
    fn send(&mut self, to: EndpointId, data: Bytes) -> Result<(), HandleError> {
        Inline::send(self, to, data)
    }
    fn leave(&mut self) {
        Inline::leave(self)
    }
    fn block_ok(&mut self) -> Result<(), HandleError> {
        Inline::block_ok(self)
    }
    fn send_state(&mut self, state: Bytes) -> Result<(), HandleError> {
        Inline::send_state(self, state)
    }
    fn recv_timeout(&mut self, timeout: Duration) -> Option<Event> {
        Inline::recv_timeout(self, timeout)
    }
    fn recv_many(&mut self, out: &mut Vec<Event>, timeout: Duration) -> usize {
        Inline::recv_many(self, out, timeout)
    }
    fn is_stopped(&self) -> bool {
        Inline::is_stopped(self)
    }
    fn stats(&mut self) -> DriverStats {
        Inline::stats(self)
    }
    fn pump(&mut self, d: Duration) {
        let until = Instant::now() + d;
        while Instant::now() < until {
            if self.poll(until - Instant::now()) > 0 {
                // Events wait to be taken; the core ran. Do not spin on them.
                thread::sleep(Duration::from_millis(1));
            }
        }
    }
    fn shutdown(self) -> DriverStats {
        Inline::shutdown(self)
    }
}

/// Events of `m` until `done` holds or `within` has passed.
pub fn collect<M: Member + ?Sized>(m: &mut M, within: Duration, done: impl Fn(&[Event]) -> bool) -> Vec<Event> {
    let deadline = Instant::now() + within;
    let mut evs = Vec::new();
    while !done(&evs) && Instant::now() < deadline {
        m.recv_many(&mut evs, Duration::from_millis(20));
    }
    evs
}

/// Events of each member of `ms`, all of them kept working (an inline member works only
/// while called), until `done` holds for the member at `who` or `within` has passed.
pub fn collect_among<M: Member>(
    ms: &mut [&mut M],
    who: usize,
    within: Duration,
    done: impl Fn(&[Event]) -> bool,
) -> Vec<Vec<Event>> {
    let deadline = Instant::now() + within;
    let mut evs = vec![Vec::new(); ms.len()];
    while !done(&evs[who]) && Instant::now() < deadline {
        for (k, m) in ms.iter_mut().enumerate() {
            m.recv_many(&mut evs[k], Duration::from_millis(2));
        }
    }
    evs
}

/// The member's counters once `done` holds, or after `within`.
pub fn wait_stats<M: Member + ?Sized>(m: &mut M, within: Duration, done: impl Fn(&DriverStats) -> bool) -> DriverStats {
    let deadline = Instant::now() + within;
    loop {
        let s = m.stats();
        if done(&s) || Instant::now() >= deadline {
            return s;
        }
        m.pump(Duration::from_millis(5));
    }
}
