//! What the application's handles and the driver thread share: the two bounded queues, the
//! driver's eventfd, the published statistics and view, and the flags that stop it.

use super::config::{FlowPolicy, UdpConfig};
use super::core::DriverStats;
use super::queue::Queue;
use super::sys::Waker;
use crate::ids::{EndpointId, View};
use crate::machine::{Announce, Command, Machine};
use crate::metrics::Metrics;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The driver's eventfd and a count of how often it was written.
pub(crate) struct WakeSignal {
    waker: Waker,
    signals: AtomicU64,
}

impl WakeSignal {
    pub(crate) fn new() -> std::io::Result<WakeSignal> {
        Ok(WakeSignal { waker: Waker::new()?, signals: AtomicU64::new(0) })
    }
    pub(crate) fn wake(&self) {
        self.signals.fetch_add(1, Ordering::Relaxed);
        self.waker.wake();
    }
    pub(crate) fn waker(&self) -> &Waker {
        &self.waker
    }
    pub(crate) fn signals(&self) -> u64 {
        self.signals.load(Ordering::Relaxed)
    }
}

/// What the handles and the driver share, for commands `C` and events `E`.
pub(crate) struct Shared<C, E> {
    /// Commands, bounded by `UdpConfig::queue` / `queue_bytes` counting those the driver
    /// took and has not applied yet (see `queue`).
    pub(crate) cmds: Queue<C>,
    pub(crate) events: Queue<E>,
    pub(crate) wake: Arc<WakeSignal>,
    /// The driver's last published statistics.
    pub(crate) stats: Mutex<DriverStats>,
    pub(crate) left: AtomicBool,
    /// Flow control holds commands back for now (`Machine::held`); published by the driver.
    pub(crate) flow_blocked: AtomicBool,
    pub(crate) policy: FlowPolicy,
    pub(crate) block_timeout: Duration,
    /// Set by `stop`; the driver looks at it every turn, whatever it holds.
    stopping: AtomicBool,
    /// The driver thread has ended (set by its last guard, even after a panic).
    ended: Mutex<bool>,
    ended_cv: Condvar,
    pub(crate) me: EndpointId,
    pub(crate) max_payload: usize,
    /// The machine's current view, published by the driver when the machine announces one.
    view: Mutex<Arc<View>>,
    /// Requests for the machine's metrics (`Handle::metrics`), counted; the driver answers
    /// at its next turn when this is ahead of what it answered.
    metrics_asked: AtomicU64,
    /// The last answer and how many requests it answers.
    metrics: Mutex<(u64, Option<Metrics>)>,
    metrics_cv: Condvar,
}

impl<C, E> Shared<C, E> {
    /// What the handles of a driver running `m` share, sized by `cfg`.
    pub(crate) fn new<M>(m: &M, cfg: &UdpConfig, stats: DriverStats) -> std::io::Result<Shared<C, E>>
    where
        M: Machine<Cmd = C, Event = E>,
        C: Command,
        E: Announce,
    {
        let wake = Arc::new(WakeSignal::new()?);
        let (w1, w2) = (wake.clone(), wake.clone());
        Ok(Shared {
            cmds: Queue::with_unpark(cfg.queue, move || w1.wake()).with_byte_cap(cfg.queue_bytes, C::weight),
            events: Queue::with_unpark(cfg.events, move || w2.wake()).with_byte_cap(cfg.events_bytes, E::weight),
            wake,
            stats: Mutex::new(stats),
            left: AtomicBool::new(m.has_left()),
            flow_blocked: AtomicBool::new(m.held()),
            policy: cfg.flow,
            block_timeout: cfg.block_timeout,
            stopping: AtomicBool::new(false),
            ended: Mutex::new(false),
            ended_cv: Condvar::new(),
            me: m.me(),
            max_payload: m.max_payload(),
            view: Mutex::new(Arc::new(m.view().clone())),
            metrics_asked: AtomicU64::new(0),
            metrics: Mutex::new((0, None)),
            metrics_cv: Condvar::new(),
        })
    }

    pub(crate) fn set_view(&self, view: View) {
        *self.view.lock().unwrap_or_else(PoisonError::into_inner) = Arc::new(view);
    }

    pub(crate) fn view(&self) -> Arc<View> {
        self.view.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    pub(crate) fn publish(&self, s: &DriverStats) {
        self.stats.lock().unwrap_or_else(PoisonError::into_inner).clone_from(s);
    }

    pub(crate) fn snapshot(&self) -> DriverStats {
        let mut s = self.stats.lock().unwrap_or_else(PoisonError::into_inner).clone();
        s.wake_signals = self.wake.signals();
        s
    }

    /// For the driver, each turn: how many requests for metrics handles have made.
    pub(crate) fn metrics_asked(&self) -> u64 {
        self.metrics_asked.load(Ordering::Acquire)
    }

    /// For the driver: metrics that answer every request up to `asked`.
    pub(crate) fn publish_metrics(&self, asked: u64, m: Metrics) {
        *self.metrics.lock().unwrap_or_else(PoisonError::into_inner) = (asked, Some(m));
        self.metrics_cv.notify_all();
    }

    /// Asks the driver for the machine's metrics and waits up to `limit` for them; once the
    /// driver has ended, its final ones.
    pub(crate) fn metrics(&self, limit: Duration) -> Option<Metrics> {
        let want = self.metrics_asked.fetch_add(1, Ordering::AcqRel) + 1;
        self.wake.wake();
        let deadline = Instant::now() + limit;
        let mut m = self.metrics.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if m.0 >= want || *self.ended.lock().unwrap_or_else(PoisonError::into_inner) {
                return m.1.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            m = self.metrics_cv.wait_timeout(m, left).unwrap_or_else(PoisonError::into_inner).0;
        }
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

    /// Marks the driver thread's end (its last guard calls this, after a panic too).
    pub(crate) fn set_ended(&self) {
        *self.ended.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.ended_cv.notify_all();
        let _held = self.metrics.lock().unwrap_or_else(PoisonError::into_inner);
        self.metrics_cv.notify_all();
    }

    /// Waits up to `limit` for the driver thread to end; true if it has.
    pub(crate) fn wait_ended(&self, limit: Duration) -> bool {
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
