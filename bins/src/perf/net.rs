//! The seam between the benchmark harness and the path it measures: the Thoth stack over the
//! UDP driver (`stack.rs`) or raw UDP multicast (`raw.rs`). The harness around both — payload
//! building, time stamps, pacing, accounting — is the same code, so the two compare.

use std::time::Duration;

/// The sending side, moved to a sender thread.
pub trait Tx: Send + 'static {
    /// Multicasts one message; may block (backpressure). The path copies what it keeps:
    /// the sender rewrites the same buffer for the next message. Every payload of a run is
    /// `proto::payload(size)` with a stamp of its own in the first `proto::HDR` bytes, so a
    /// path may keep the rest from an earlier payload of the same length.
    fn send(&mut self, payload: &[u8]) -> Result<(), String>;
    /// Sends what `send` gathered (a path that packs messages into datagrams); the sender
    /// calls it before it waits and when it is done.
    fn flush(&mut self) -> Result<(), String> {
        Ok(())
    }
}

/// One member's view of the path.
pub trait Net {
    type Tx: Tx;
    /// A sending side for a sender thread; `None` for a path that one thread runs (the
    /// member then sends from its receiving loop, with `send`).
    fn tx(&self) -> Option<Self::Tx>;
    /// Whether `send` may take another message now (a path one thread runs may hold too
    /// many already: the member takes its events first).
    fn can_send(&self) -> bool {
        true
    }
    /// Multicasts one message from the member's own thread (as `Tx::send`). A path one
    /// thread runs may hold it until the next `recv` (or a batch is full), to send many in
    /// one turn as a sender thread's path does.
    fn send(&mut self, payload: &[u8]) -> Result<(), String>;
    /// Waits up to `timeout` for messages and passes each payload to `sink` with the moment
    /// it reached the application (ns, host monotonic clock: one reading for what one
    /// receive hands over together); returns how many. Returns as soon as what arrived is
    /// passed on.
    fn recv(&mut self, timeout: Duration, sink: &mut impl FnMut(&[u8], u64)) -> Result<usize, String>;
    /// Datagrams the endpoint rejected so far (`None` where there is no endpoint).
    fn rx_rejected(&mut self) -> Option<u64>;
    /// This member's own multicast copies the kernel dropped on purpose so far (the
    /// driver's own-copy filter): the socket counts them among its drops.
    fn own_copies_filtered(&mut self) -> u64 {
        0
    }
    /// Stops the path and releases its sockets.
    fn close(self) -> Result<(), String>;
}
