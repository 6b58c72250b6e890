//! A small bounded MPMC queue (`Mutex<VecDeque>` + two `Condvar`s) between the application
//! threads and the driver thread, built for batches: the driver takes everything queued in one
//! lock (`drain_into`) and hands over a batch of events in one lock (`push_from`); the
//! application side blocks on condition variables (`push`, `pop`, `drain_wait`).
//!
//! The driver never blocks on a condition variable: it sleeps in `poll(2)`. Before sleeping
//! it *parks* on a queue under the queue's lock (`park_if_empty`: wake me when an item
//! arrives; `park_if_full`: wake me when room appears), and the first application call that
//! changes that condition clears the flag and runs the queue's `unpark` hook (which writes the
//! driver's eventfd) after releasing the lock. Since the flag lives under the lock every push
//! takes anyway, a busy stream costs no extra atomic and no system call per item, and no
//! wake-up can be lost between the driver's last look and its sleep.
//!
//! The bound is a number of items and, optionally, a number of bytes (each item weighed by a
//! function given at creation): the queue is full when either is reached, except that an
//! empty queue always takes one item, however large. Items the driver took with
//! `drain_into` still count until it `release`s them (it has handed them to the endpoint):
//! the driver keeps the commands that wait behind a cast flow control holds, and without
//! this the application could queue a full bound more behind them — twice the bound
//! accepted and not yet applied. `push_over` ignores the bound, for the few commands that
//! must never wait (a leave, the answers to a view change; at most one per call).
//!
//! Condition variables are signalled only when someone waits on them (a waiter count under
//! the lock), so an uncontended push or pop makes no futex call. `close` releases every
//! blocked producer (their item comes back) and lets consumers drain what is left, then see
//! the end. Every wait has a deadline if the caller gives one (`push_timeout`,
//! `pop_timeout`, `drain_wait`).
//!
//! Tested by the unit tests below and by the loom model `stack/tests/loom_queue.rs` (no lost
//! or duplicated item, FIFO per producer, blocked producers released by a consumer, by a
//! release of held items and by close, close seen after draining, no lost unpark).

use super::sync::{Condvar, Mutex, MutexGuard, lock, wait, wait_timeout};
use core::fmt;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Why `try_push` did not take an item (which it hands back).
#[derive(Clone, PartialEq, Eq)]
pub enum PushError<T> {
    /// The bound (items or bytes, held items included) was reached.
    Full(T),
    /// The queue was closed: nothing more goes in.
    Closed(T),
}

impl<T> PushError<T> {
    /// The item that was not taken.
    pub fn into_inner(self) -> T {
        match self {
            PushError::Full(t) | PushError::Closed(t) => t,
        }
    }
}

impl<T> fmt::Debug for PushError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PushError::Full(_) => "Full(..)",
            PushError::Closed(_) => "Closed(..)",
        })
    }
}

/// What `drain_into` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Drained {
    /// Items moved to `out` (now held against the bound until `release`d).
    pub taken: usize,
    /// The queue is closed (and, after this call, empty).
    pub closed: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Park {
    No,
    /// The driver sleeps until an item arrives.
    ForItems,
    /// The driver sleeps until room appears.
    ForRoom,
}

struct Inner<T> {
    items: VecDeque<T>,
    /// Total weight of `items`.
    bytes: usize,
    /// Items taken by `drain_into` and not yet `release`d, and their weight: they still
    /// count against the bound.
    held: usize,
    held_bytes: usize,
    closed: bool,
    producers_waiting: usize,
    consumers_waiting: usize,
    park: Park,
}

type Unpark = Box<dyn Fn() + Send + Sync>;

/// The bounded queue itself: items `T` in FIFO order, bounded in items and optionally bytes,
/// with a park flag and unpark hook for a driver that sleeps in `poll(2)` (see the module docs).
pub struct Queue<T> {
    inner: Mutex<Inner<T>>,
    not_empty: Condvar,
    not_full: Condvar,
    cap: usize,
    byte_cap: usize,
    weigh: fn(&T) -> usize,
    unpark: Unpark,
}

impl<T> Queue<T> {
    /// A queue of at most `cap` items (at least one) with no unpark hook.
    pub fn new(cap: usize) -> Queue<T> {
        Queue::with_unpark(cap, || {})
    }

    /// A queue whose parked driver is woken by `unpark` (called outside the lock).
    pub fn with_unpark(cap: usize, unpark: impl Fn() + Send + Sync + 'static) -> Queue<T> {
        Queue {
            inner: Mutex::new(Inner {
                items: VecDeque::new(),
                bytes: 0,
                held: 0,
                held_bytes: 0,
                closed: false,
                producers_waiting: 0,
                consumers_waiting: 0,
                park: Park::No,
            }),
            not_empty: Condvar::new(),
            not_full: Condvar::new(),
            cap: cap.max(1),
            byte_cap: usize::MAX,
            weigh: |_| 0,
            unpark: Box::new(unpark),
        }
    }

    /// Also bounds the queue to `byte_cap` bytes, each item weighing `weigh(item)`.
    pub fn with_byte_cap(mut self, byte_cap: usize, weigh: fn(&T) -> usize) -> Queue<T> {
        self.byte_cap = byte_cap;
        self.weigh = weigh;
        self
    }

    fn has_room(&self, g: &Inner<T>) -> bool {
        let n = g.items.len() + g.held;
        n == 0 || (n < self.cap && g.bytes + g.held_bytes < self.byte_cap)
    }

    /// The weight of `item` in the byte bound (what `release` is told).
    pub fn weigh(&self, item: &T) -> usize {
        (self.weigh)(item)
    }

    fn put(&self, g: &mut Inner<T>, item: T) {
        g.bytes += (self.weigh)(&item);
        g.items.push_back(item);
    }

    fn take(&self, g: &mut Inner<T>) -> Option<T> {
        let item = g.items.pop_front()?;
        g.bytes -= (self.weigh)(&item);
        Some(item)
    }

    /// Moves every item to `out`.
    fn take_all(&self, g: &mut Inner<T>, out: &mut impl Extend<T>) -> usize {
        let n = g.items.len();
        out.extend(g.items.drain(..));
        g.bytes = 0;
        n
    }

    /// The bound in items (`cap` as given, but at least 1).
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Items queued now; not counting those the driver took and has not `release`d yet.
    pub fn len(&self) -> usize {
        lock(&self.inner).items.len()
    }

    /// Nothing is queued (held items aside).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The queue was closed (`close`, `close_with`); items may still be queued for consumers.
    pub fn is_closed(&self) -> bool {
        lock(&self.inner).closed
    }

    /// Adds `item` if there is room and the queue is open.
    pub fn try_push(&self, item: T) -> Result<(), PushError<T>> {
        let mut g = lock(&self.inner);
        if g.closed {
            return Err(PushError::Closed(item));
        }
        if !self.has_room(&g) {
            return Err(PushError::Full(item));
        }
        self.put(&mut g, item);
        self.pushed(g, 1);
        Ok(())
    }

    /// Adds `item`, waiting while the queue is full; hands it back if the queue is closed.
    pub fn push(&self, item: T) -> Result<(), T> {
        self.push_until(item, None).map_err(PushError::into_inner)
    }

    /// Adds `item`, waiting at most `timeout` while the queue is full (`Full` then, the item
    /// handed back); a timeout too large to represent waits as long as it takes.
    pub fn push_timeout(&self, item: T, timeout: Duration) -> Result<(), PushError<T>> {
        self.push_until(item, Instant::now().checked_add(timeout))
    }

    fn push_until(&self, item: T, deadline: Option<Instant>) -> Result<(), PushError<T>> {
        let mut g = lock(&self.inner);
        loop {
            if g.closed {
                return Err(PushError::Closed(item));
            }
            if self.has_room(&g) {
                break;
            }
            g.producers_waiting += 1;
            g = match left(deadline) {
                Some(d) if d.is_zero() => {
                    g.producers_waiting -= 1;
                    return Err(PushError::Full(item));
                }
                Some(d) => wait_timeout(&self.not_full, g, d),
                None => wait(&self.not_full, g),
            };
            g.producers_waiting -= 1;
        }
        self.put(&mut g, item);
        self.pushed(g, 1);
        Ok(())
    }

    /// Adds `item` whatever the bound (never waits); hands it back if the queue is closed.
    /// For commands that must not wait behind the ones they are meant to overtake or follow.
    pub fn push_over(&self, item: T) -> Result<(), T> {
        let mut g = lock(&self.inner);
        if g.closed {
            return Err(item);
        }
        self.put(&mut g, item);
        self.pushed(g, 1);
        Ok(())
    }

    /// Moves as many items from the front of `src` as fit; returns how many, and how many
    /// the queue holds now. Never waits. Clears the driver's room park (the driver is awake:
    /// it is the one pushing).
    pub fn push_from(&self, src: &mut VecDeque<T>) -> (usize, usize) {
        let mut g = lock(&self.inner);
        if g.park == Park::ForRoom {
            g.park = Park::No;
        }
        if g.closed {
            return (0, g.items.len());
        }
        let mut n = 0;
        while self.has_room(&g) {
            let Some(item) = src.pop_front() else { break };
            self.put(&mut g, item);
            n += 1;
        }
        let len = g.items.len();
        self.pushed(g, n);
        (n, len)
    }

    /// Appends all of `src` whatever the bound, then closes: the driver's last word, so that
    /// the final events (`Exit` among them) are never dropped.
    pub fn close_with(&self, src: &mut VecDeque<T>) {
        let mut g = lock(&self.inner);
        for item in src.drain(..) {
            self.put(&mut g, item);
        }
        self.close_locked(g);
    }

    /// Closes the queue: producers get their items back, consumers drain what is left.
    pub fn close(&self) {
        self.close_locked(lock(&self.inner));
    }

    fn close_locked(&self, mut g: MutexGuard<'_, Inner<T>>) {
        g.closed = true;
        let unpark = core::mem::replace(&mut g.park, Park::No) != Park::No;
        drop(g);
        self.not_full.notify_all();
        self.not_empty.notify_all();
        if unpark {
            (self.unpark)();
        }
    }

    /// Takes every queued item into `out` in one lock. Never waits. Clears the driver's item
    /// park (the driver is awake: it is the one draining). The items taken still count
    /// against the bound until `release`d: no room appears here.
    pub fn drain_into(&self, out: &mut VecDeque<T>) -> Drained {
        let mut g = lock(&self.inner);
        if g.park == Park::ForItems {
            g.park = Park::No;
        }
        g.held_bytes += g.bytes;
        let taken = self.take_all(&mut g, out);
        g.held += taken;
        Drained { taken, closed: g.closed }
    }

    /// The driver is done with `items` of the items it took by `drain_into`, weighing
    /// `bytes` (`weigh`): their room goes back to the producers.
    pub fn release(&self, items: usize, bytes: usize) {
        if items == 0 {
            return;
        }
        let mut g = lock(&self.inner);
        debug_assert!(items <= g.held && bytes <= g.held_bytes, "released more than was taken");
        g.held = g.held.saturating_sub(items);
        g.held_bytes = g.held_bytes.saturating_sub(bytes);
        self.popped(g, items);
    }

    /// Takes the oldest item if there is one; never waits (`None` whether open or closed).
    pub fn try_pop(&self) -> Option<T> {
        let mut g = lock(&self.inner);
        let item = self.take(&mut g)?;
        self.popped(g, 1);
        Some(item)
    }

    /// Takes the oldest item, waiting for one; `None` once the queue is closed and empty.
    pub fn pop(&self) -> Option<T> {
        let mut g = lock(&self.inner);
        loop {
            if let Some(item) = self.take(&mut g) {
                self.popped(g, 1);
                return Some(item);
            }
            if g.closed {
                return None;
            }
            g.consumers_waiting += 1;
            g = wait(&self.not_empty, g);
            g.consumers_waiting -= 1;
        }
    }

    /// Like `pop`, waiting at most `timeout`.
    pub fn pop_timeout(&self, timeout: Duration) -> Option<T> {
        let deadline = Instant::now().checked_add(timeout);
        let mut g = lock(&self.inner);
        loop {
            if let Some(item) = self.take(&mut g) {
                self.popped(g, 1);
                return Some(item);
            }
            if g.closed {
                return None;
            }
            g = match left(deadline) {
                Some(d) if d.is_zero() => return None,
                Some(d) => {
                    g.consumers_waiting += 1;
                    let mut g = wait_timeout(&self.not_empty, g, d);
                    g.consumers_waiting -= 1;
                    g
                }
                None => {
                    g.consumers_waiting += 1;
                    let mut g = wait(&self.not_empty, g);
                    g.consumers_waiting -= 1;
                    g
                }
            };
        }
    }

    /// Waits up to `timeout` (forever if `None`) for a first item, then appends every queued
    /// item to `out` in the same lock; returns how many. 0: timed out, or closed and empty.
    pub fn drain_wait(&self, out: &mut Vec<T>, timeout: Option<Duration>) -> usize {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let mut g = lock(&self.inner);
        loop {
            if !g.items.is_empty() {
                let n = self.take_all(&mut g, out);
                self.popped(g, n);
                return n;
            }
            if g.closed {
                return 0;
            }
            let d = match timeout {
                Some(_) => match left(deadline) {
                    Some(d) if d.is_zero() => return 0,
                    d => d,
                },
                None => None,
            };
            g.consumers_waiting += 1;
            g = match d {
                Some(d) => wait_timeout(&self.not_empty, g, d),
                None => wait(&self.not_empty, g),
            };
            g.consumers_waiting -= 1;
        }
    }

    /// The driver, about to sleep, asks to be unparked when an item arrives. `false` (and no
    /// park) if an item is already there or the queue is closed: do not sleep.
    pub fn park_if_empty(&self) -> bool {
        let mut g = lock(&self.inner);
        if g.items.is_empty() && !g.closed {
            g.park = Park::ForItems;
            true
        } else {
            false
        }
    }

    /// The driver, about to sleep, asks to be unparked when room appears. `false` (and no
    /// park) if there is room already or the queue is closed: do not sleep on it.
    pub fn park_if_full(&self) -> bool {
        let mut g = lock(&self.inner);
        if !self.has_room(&g) && !g.closed {
            g.park = Park::ForRoom;
            true
        } else {
            false
        }
    }

    /// After `n` items went in: signal waiting consumers and a driver parked for items.
    fn pushed(&self, g: MutexGuard<'_, Inner<T>>, n: usize) {
        let waiting = g.consumers_waiting;
        self.signal(g, n, waiting, Park::ForItems, &self.not_empty);
    }

    /// After `n` items came out: signal waiting producers and a driver parked for room.
    fn popped(&self, g: MutexGuard<'_, Inner<T>>, n: usize) {
        let waiting = g.producers_waiting;
        self.signal(g, n, waiting, Park::ForRoom, &self.not_full);
    }

    /// Wakes `waiting` threads on `cv` (all of them if several items moved) and, outside the
    /// lock, a driver parked for `park`.
    fn signal(&self, mut g: MutexGuard<'_, Inner<T>>, n: usize, waiting: usize, park: Park, cv: &Condvar) {
        if n == 0 {
            return;
        }
        let unpark = g.park == park;
        if unpark {
            g.park = Park::No;
        }
        drop(g);
        if waiting > 1 && n > 1 {
            cv.notify_all();
        } else if waiting > 0 {
            cv.notify_one();
        }
        if unpark {
            (self.unpark)();
        }
    }
}

/// Time left until `deadline`; `None` for no deadline (a timeout too large to represent).
fn left(deadline: Option<Instant>) -> Option<Duration> {
    deadline.map(|d| d.saturating_duration_since(Instant::now()))
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::thread;

    #[test]
    fn bounded_fifo_with_batch_drain() {
        let q = Queue::new(3);
        for i in 0..3 {
            q.try_push(i).unwrap();
        }
        assert_eq!(q.try_push(3), Err(PushError::Full(3)));
        let mut out = VecDeque::new();
        assert_eq!(q.drain_into(&mut out), Drained { taken: 3, closed: false });
        assert_eq!(out, [0, 1, 2]);
        assert!(q.is_empty());
        assert_eq!(q.try_push(3), Err(PushError::Full(3)), "taken, not released: still counted");
        q.release(3, 0);
        let mut src: VecDeque<i32> = (10..15).collect();
        assert_eq!(q.push_from(&mut src), (3, 3));
        assert_eq!(src, [13, 14]);
        let mut v = Vec::new();
        assert_eq!(q.drain_wait(&mut v, Some(Duration::ZERO)), 3);
        assert_eq!(v, [10, 11, 12]);
    }

    #[test]
    fn byte_bound_counts_weights_and_always_takes_one_item() {
        let q = Queue::new(100).with_byte_cap(10, |v: &Vec<u8>| v.len());
        q.try_push(vec![0; 25]).unwrap(); // an empty queue takes one item, however large
        assert_eq!(q.try_push(vec![1]), Err(PushError::Full(vec![1])));
        assert!(q.park_if_full());
        assert_eq!(q.try_pop(), Some(vec![0; 25]));
        for _ in 0..3 {
            q.try_push(vec![2; 4]).unwrap();
        }
        assert!(matches!(q.try_push(vec![3]), Err(PushError::Full(_))), "12 bytes >= 10");
        let mut out = VecDeque::new();
        assert_eq!(q.drain_into(&mut out).taken, 3);
        assert!(matches!(q.try_push(vec![3]), Err(PushError::Full(_))), "12 bytes taken, not released");
        q.release(3, out.iter().map(|v| q.weigh(v)).sum());
        let mut src: VecDeque<Vec<u8>> = (0..5).map(|_| vec![4; 6]).collect();
        assert_eq!(q.push_from(&mut src).0, 2, "6 bytes < 10 takes a second, 12 stops");
        assert_eq!(q.pop(), Some(vec![4; 6]));
        q.try_push(vec![5; 3]).unwrap(); // 6 + 3 = 9 bytes
        q.try_push(vec![5]).unwrap(); // 9 < 10: room for one more; now 10
        assert!(q.try_push(vec![5]).is_err());
    }

    #[test]
    fn close_hands_items_back_and_lets_consumers_drain() {
        let q = Queue::new(2);
        q.try_push(1).unwrap();
        q.close();
        assert_eq!(q.try_push(2), Err(PushError::Closed(2)));
        assert_eq!(q.push(3), Err(3));
        assert_eq!(q.pop(), Some(1));
        assert_eq!(q.pop(), None);
        assert_eq!(q.pop_timeout(Duration::from_secs(5)), None);
        let mut src = VecDeque::from([7, 8, 9]);
        let q2 = Queue::new(1);
        q2.close_with(&mut src);
        assert!(src.is_empty());
        let mut v = Vec::new();
        assert_eq!(q2.drain_wait(&mut v, None), 3, "close_with ignores the bound");
        assert_eq!(q2.drain_wait(&mut v, None), 0);
    }

    #[test]
    fn timeouts_expire() {
        let q: Queue<u8> = Queue::new(1);
        let t = Instant::now();
        assert_eq!(q.pop_timeout(Duration::from_millis(30)), None);
        let mut v = Vec::new();
        assert_eq!(q.drain_wait(&mut v, Some(Duration::from_millis(30))), 0);
        let e = t.elapsed();
        assert!(e >= Duration::from_millis(60) && e < Duration::from_secs(5), "{e:?}");
    }

    #[test]
    fn park_and_unpark() {
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        let q = Queue::with_unpark(1, move || {
            h.fetch_add(1, Ordering::SeqCst);
        });
        assert!(q.park_if_empty());
        q.try_push(1).unwrap();
        assert_eq!(hits.load(Ordering::SeqCst), 1, "a push unparks a driver parked for items");
        assert_eq!(q.try_push(2), Err(PushError::Full(2)));
        assert!(!q.park_if_empty(), "not empty: no park");
        assert!(q.park_if_full());
        assert_eq!(q.try_pop(), Some(1));
        assert_eq!(hits.load(Ordering::SeqCst), 2, "a pop unparks a driver parked for room");
        q.try_push(3).unwrap();
        assert_eq!(hits.load(Ordering::SeqCst), 2, "no park, no unpark");
        assert!(q.park_if_full());
        let mut src = VecDeque::new();
        q.push_from(&mut src); // the driver itself clears its park
        assert_eq!(q.try_pop(), Some(3));
        assert_eq!(hits.load(Ordering::SeqCst), 2);
        assert!(q.park_if_empty());
        q.close();
        assert_eq!(hits.load(Ordering::SeqCst), 3, "close unparks");
    }

    #[test]
    fn taken_items_count_until_released() {
        let q = Queue::new(4).with_byte_cap(100, |v: &Vec<u8>| v.len());
        let mut held = VecDeque::new();
        q.try_push(vec![1; 30]).unwrap();
        q.try_push(vec![2; 30]).unwrap();
        assert_eq!(q.drain_into(&mut held).taken, 2);
        q.try_push(vec![3; 30]).unwrap();
        q.try_push(vec![4; 30]).unwrap(); // 4 items, 120 bytes: queued and taken together
        assert!(matches!(q.try_push(vec![5]), Err(PushError::Full(_))), "two queued plus two held");
        assert_eq!(q.push_timeout(vec![5], Duration::from_millis(20)), Err(PushError::Full(vec![5])));
        // One applied: still 90 bytes of 100 and 3 items of 4 counted, room for one.
        let first = held.pop_front().unwrap();
        q.release(1, q.weigh(&first));
        q.try_push(vec![5; 10]).unwrap();
        assert!(matches!(q.try_push(vec![6]), Err(PushError::Full(_))));
        // push_over ignores the bound, and a closed queue hands everything back.
        q.push_over(vec![7]).unwrap();
        assert_eq!(q.len(), 4);
        q.close();
        assert_eq!(q.push_over(vec![8]), Err(vec![8]));
        assert_eq!(q.push_timeout(vec![9], Duration::from_secs(5)), Err(PushError::Closed(vec![9])));
    }

    #[test]
    fn a_release_frees_a_blocked_producer() {
        let q = Arc::new(Queue::new(1));
        q.try_push(0u32).unwrap();
        let mut held = VecDeque::new();
        assert_eq!(q.drain_into(&mut held).taken, 1);
        let p = {
            let q = q.clone();
            thread::spawn(move || q.push_timeout(1, Duration::from_secs(10)))
        };
        // The producer waits: the taken item still fills the queue.
        thread::sleep(Duration::from_millis(20));
        assert!(q.is_empty() && !p.is_finished());
        q.release(1, 0);
        assert_eq!(p.join().unwrap(), Ok(()));
        assert_eq!(q.try_pop(), Some(1));
    }

    #[test]
    fn blocked_producer_released_by_consumer() {
        let q = Arc::new(Queue::new(1));
        q.try_push(0u32).unwrap();
        let p = {
            let q = q.clone();
            thread::spawn(move || q.push(1))
        };
        // The producer blocks until the consumer takes the first item.
        thread::sleep(Duration::from_millis(20));
        assert_eq!(q.pop(), Some(0));
        assert_eq!(p.join().unwrap(), Ok(()));
        assert_eq!(q.pop(), Some(1));
    }
}
