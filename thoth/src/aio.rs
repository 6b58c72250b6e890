//! An async front end over the UDP driver (feature `tokio`): `AsyncHandle` beside the
//! blocking `udp::Handle` — `cast(..).await`, `send(..).await` — and the events as a
//! `Stream` (`Events`).
//!
//! The driver thread is the one `udp::spawn` starts; what differs is how the application
//! waits. A cast or send that goes into the command queue at once (the common case) goes in
//! without a hand-off; one that flow control or a full queue holds back waits on tokio's blocking
//! pool, never on a runtime thread, and within `UdpConfig::block_timeout` as the blocking
//! call does. Events cross from the driver's queue into a bounded tokio channel on a thread
//! of their own, which looks every `PUMP_TICK` whether the stream or the driver has gone:
//! dropping `Events` or shutting the handle down ends it within that bound.
//!
//! Tested by `examples/async_chat.rs` (two members under the tokio runtime, casts awaited,
//! deliveries read from the stream, bounded shutdown), which `cargo test` runs.

use crate::udp::{Handle, HandleError};
use crate::{Bytes, EndpointId, Event, View};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::mpsc;
pub use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;

/// How often the event pump looks whether it should stop.
pub const PUMP_TICK: Duration = Duration::from_millis(20);
/// Events the pump moves ahead of the application, at most (then it waits, and the driver's
/// own bounded event queue fills, as with the blocking handle).
pub const PUMP_AHEAD: usize = 1024;

/// The events of a driven endpoint, in order, as a `Stream`; it ends when the driver stops.
pub type Events = ReceiverStream<Event>;

/// The async side of a driven endpoint. Cloneable; every clone talks to the same driver.
#[derive(Clone)]
pub struct AsyncHandle {
    h: Handle,
    pump: Arc<Pump>,
}

struct Pump(std::sync::Mutex<Option<JoinHandle<()>>>);

impl Drop for Pump {
    fn drop(&mut self) {
        let t = self.0.get_mut().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        if let Some(t) = t {
            // It ends within `PUMP_TICK` of the driver's end or of the stream's drop.
            let _ = t.join();
        }
    }
}

/// Splits a running endpoint's handle into its async side and its events. Call it from
/// anywhere (it starts a thread, not a task).
pub fn split(h: Handle) -> std::io::Result<(AsyncHandle, Events)> {
    let (tx, rx) = mpsc::channel(PUMP_AHEAD);
    let src = h.clone();
    let t = std::thread::Builder::new().name("thoth-events".into()).spawn(move || {
        loop {
            let gone = match src.recv_timeout(PUMP_TICK) {
                // `Err`: the stream was dropped.
                Some(ev) => tx.blocking_send(ev).is_err(),
                None => src.is_stopped() || tx.is_closed(),
            };
            if gone {
                return;
            }
        }
    })?;
    Ok((AsyncHandle { h, pump: Arc::new(Pump(std::sync::Mutex::new(Some(t)))) }, ReceiverStream::new(rx)))
}

impl AsyncHandle {
    /// This member's endpoint id.
    pub fn me(&self) -> EndpointId {
        self.h.me()
    }

    /// The current view (`Handle::view`).
    pub fn view(&self) -> Arc<View> {
        self.h.view()
    }

    /// The members of the current view (`Handle::members`).
    pub fn members(&self) -> Vec<EndpointId> {
        self.h.members()
    }

    /// Multicasts `data` to the view: at once when the queue has room, else waiting (off
    /// the runtime's threads) as `Handle::cast` does.
    pub async fn cast(&self, data: Bytes) -> Result<(), HandleError> {
        let d = data.clone();
        self.submit(|h| h.try_cast(d), move |h| h.cast(data)).await
    }

    /// Sends `data` to the member `to`, at once or waiting as `cast` does.
    pub async fn send(&self, to: EndpointId, data: Bytes) -> Result<(), HandleError> {
        let d = data.clone();
        self.submit(|h| h.try_send(to, d), move |h| h.send(to, data)).await
    }

    /// `now` on this thread; if the queue had no room, `wait` on the blocking pool.
    async fn submit(
        &self,
        now: impl FnOnce(&Handle) -> Result<(), HandleError>,
        wait: impl FnOnce(Handle) -> Result<(), HandleError> + Send + 'static,
    ) -> Result<(), HandleError> {
        match now(&self.h) {
            Err(HandleError::WouldBlock) => self.blocking(wait).await.unwrap_or(Err(HandleError::Stopped)),
            r => r,
        }
    }

    /// Leaves the group (`Handle::leave`; never waits). `Event::Exit` ends the events.
    pub fn leave(&self) {
        self.h.leave()
    }

    /// Answers `Event::Block` (never waits).
    pub fn block_ok(&self) -> Result<(), HandleError> {
        self.h.block_ok()
    }

    /// Answers `Event::StateRequest` (never waits).
    pub fn send_state(&self, state: Bytes) -> Result<(), HandleError> {
        self.h.send_state(state)
    }

    /// The live metrics (`Handle::metrics`), waiting at most `limit`.
    pub async fn metrics(&self, limit: Duration) -> Option<crate::Metrics> {
        self.blocking(move |h| h.metrics(limit)).await.flatten()
    }

    /// Stops the driver (`Handle::shutdown`) and the event pump; returns once both ended
    /// (within `udp::SHUTDOWN_WAIT` and `PUMP_TICK`).
    pub async fn shutdown(self) {
        let AsyncHandle { h, pump } = self;
        let _ = tokio::task::spawn_blocking(move || {
            h.shutdown();
            drop(pump);
        })
        .await;
    }

    /// `f` on the blocking pool with a clone of the handle; `None` if the runtime cancelled
    /// it (it is shutting down).
    async fn blocking<T: Send + 'static>(&self, f: impl FnOnce(Handle) -> T + Send + 'static) -> Option<T> {
        let h = self.h.clone();
        tokio::task::spawn_blocking(move || f(h)).await.ok()
    }
}
