//! The seam between the benchmark harness and the path it measures: the Thoth stack over the
//! UDP driver (`stack.rs`) or raw UDP multicast (`raw.rs`). The harness around both — payload
//! building, time stamps, pacing, accounting — is the same code, so the two compare.

use std::time::Duration;

/// The sending side, moved to the sender thread.
pub trait Tx: Send + 'static {
    /// Multicasts one message; may block (backpressure). The path copies what it keeps:
    /// the sender rewrites the same buffer for the next message.
    fn send(&mut self, payload: &[u8]) -> Result<(), String>;
}

/// One member's view of the path.
pub trait Net {
    type Tx: Tx;
    /// A sending side for a sender thread.
    fn tx(&self) -> Self::Tx;
    /// Waits up to `timeout` for messages and passes each payload to `sink`; returns how many.
    fn recv(&mut self, timeout: Duration, sink: &mut impl FnMut(&[u8])) -> Result<usize, String>;
    /// Datagrams the endpoint rejected so far (`None` where there is no endpoint).
    fn rx_rejected(&self) -> Option<u64>;
    /// Stops the path and releases its sockets.
    fn close(self) -> Result<(), String>;
}
