//! Loom model of the UDP driver's bounded queue (`thoth_stack::udp::queue`), the edge where
//! the application threads meet the driver thread. The crate built with `--cfg loom` runs the
//! queue on loom's Mutex / Condvar, and loom explores the thread interleavings.
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test -p thoth-stack --test loom_queue --release`
//!
//! Properties: no item lost or duplicated and FIFO per producer; a producer blocked on a full
//! queue is released by a consumer, by the driver releasing the items it took, and by close; a consumer sees the end only after draining;
//! a driver that parks (on an empty command queue, or a full event queue) is always unparked
//! by the change it waits for — a lost wake-up would leave it waiting forever, which loom
//! reports as a deadlock.
#![cfg(loom)]

use loom::sync::{Arc, Condvar, Mutex};
use loom::thread;
use std::collections::VecDeque;
use thoth_stack::udp::queue::{Drained, Queue};

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(3);
    b.check(f);
}

/// The driver's eventfd, modelled: `wake` sets a flag, `sleep` waits for it and clears it.
#[derive(Default)]
struct Wake {
    set: Mutex<bool>,
    cv: Condvar,
}

impl Wake {
    fn wake(&self) {
        *self.set.lock().unwrap() = true;
        self.cv.notify_one();
    }
    fn sleep(&self) {
        let mut g = self.set.lock().unwrap();
        while !*g {
            g = self.cv.wait(g).unwrap();
        }
        *g = false;
    }
}

fn queue_with_wake<T>(cap: usize) -> (Arc<Queue<T>>, Arc<Wake>) {
    let wake = Arc::new(Wake::default());
    let w = wake.clone();
    (Arc::new(Queue::with_unpark(cap, move || w.wake())), wake)
}

#[test]
fn two_producers_no_loss_no_dup_fifo_per_producer() {
    model(|| {
        // Room for two: batches of more than one item form, and producers still block.
        let q = Arc::new(Queue::new(2));
        let producers: Vec<_> = (0..2u32)
            .map(|p| {
                let q = q.clone();
                thread::spawn(move || {
                    for i in 0..2u32 {
                        q.push((p, i)).expect("open queue");
                    }
                })
            })
            .collect();
        let mut got = Vec::new();
        while got.len() < 4 {
            q.drain_wait(&mut got, None);
        }
        for p in producers {
            p.join().unwrap();
        }
        assert_eq!(got.len(), 4);
        for p in 0..2 {
            let mine: Vec<u32> = got.iter().filter(|(q, _)| *q == p).map(|&(_, i)| i).collect();
            assert_eq!(mine, vec![0, 1], "producer {p}: lost, duplicated or reordered in {got:?}");
        }
        assert!(q.try_pop().is_none());
    });
}

#[test]
fn blocked_producer_released_by_consumer() {
    model(|| {
        let q = Arc::new(Queue::new(1));
        q.try_push(0u32).unwrap();
        let p = {
            let q = q.clone();
            thread::spawn(move || q.push(1))
        };
        assert_eq!(q.pop(), Some(0));
        assert_eq!(q.pop(), Some(1));
        assert_eq!(p.join().unwrap(), Ok(()));
    });
}

/// The driver holds what it took (a cast flow control holds): a producer waits until the
/// driver releases it, and must then be woken.
#[test]
fn blocked_producer_released_by_a_release() {
    model(|| {
        let q = Arc::new(Queue::new(1));
        q.try_push(0u32).unwrap();
        let mut held = VecDeque::new();
        assert_eq!(q.drain_into(&mut held).taken, 1);
        let p = {
            let q = q.clone();
            thread::spawn(move || q.push(1))
        };
        q.release(1, 0);
        assert_eq!(p.join().unwrap(), Ok(()));
        assert_eq!(q.try_pop(), Some(1));
    });
}

#[test]
fn blocked_producer_released_by_close() {
    model(|| {
        let q = Arc::new(Queue::new(1));
        q.try_push(0u32).unwrap();
        let p = {
            let q = q.clone();
            thread::spawn(move || q.push(1))
        };
        q.close();
        assert_eq!(p.join().unwrap(), Err(1), "a closed queue hands the item back");
        assert_eq!(q.pop(), Some(0), "what was queued before close is still drained");
        assert_eq!(q.pop(), None);
    });
}

#[test]
fn consumer_sees_close_only_after_draining() {
    model(|| {
        let q = Arc::new(Queue::new(2));
        let p = {
            let q = q.clone();
            thread::spawn(move || {
                q.try_push(1u32).unwrap();
                q.try_push(2u32).unwrap();
                q.close();
            })
        };
        let mut got = Vec::new();
        while let Some(x) = q.pop() {
            got.push(x);
        }
        assert_eq!(got, vec![1, 2], "the end came before the items");
        p.join().unwrap();
    });
}

/// The command queue: application threads push, the driver drains and, when it finds
/// nothing, parks and sleeps until unparked.
#[test]
fn driver_parked_on_empty_commands_is_woken() {
    model(|| {
        let (q, wake) = queue_with_wake::<u32>(2);
        let producers: Vec<_> = (0..2u32)
            .map(|p| {
                let q = q.clone();
                thread::spawn(move || q.push(p).unwrap())
            })
            .collect();
        let mut got = VecDeque::new();
        while got.len() < 2 {
            let Drained { taken, closed } = q.drain_into(&mut got);
            assert!(!closed);
            // Applied at once: their room goes back (a producer may be waiting for it).
            q.release(taken, 0);
            if taken == 0 && q.park_if_empty() {
                wake.sleep();
            }
        }
        for p in producers {
            p.join().unwrap();
        }
        let mut got: Vec<u32> = got.into();
        got.sort_unstable();
        assert_eq!(got, vec![0, 1]);
    });
}

/// The event queue: the driver hands over a batch and, when the queue is full, parks until
/// the application takes some.
#[test]
fn driver_parked_on_full_events_is_woken() {
    model(|| {
        let (q, wake) = queue_with_wake::<u32>(1);
        let consumer = {
            let q = q.clone();
            thread::spawn(move || {
                let mut got = Vec::new();
                while got.len() < 3 {
                    q.drain_wait(&mut got, None);
                }
                got
            })
        };
        let mut pending: VecDeque<u32> = (0..3).collect();
        while !pending.is_empty() {
            q.push_from(&mut pending);
            if !pending.is_empty() && q.park_if_full() {
                wake.sleep();
            }
        }
        assert_eq!(consumer.join().unwrap(), vec![0, 1, 2], "events in order, none lost");
    });
}

/// Shutdown: the driver is parked, the application closes the command queue; the driver
/// must wake and see the close.
#[test]
fn close_wakes_a_parked_driver() {
    model(|| {
        let (q, wake) = queue_with_wake::<u32>(1);
        let closer = {
            let q = q.clone();
            thread::spawn(move || q.close())
        };
        let mut sink = VecDeque::new();
        loop {
            if q.drain_into(&mut sink).closed {
                break;
            }
            if q.park_if_empty() {
                wake.sleep();
            }
        }
        closer.join().unwrap();
        assert!(sink.is_empty());
    });
}
