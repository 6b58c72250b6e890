//! Loom model of total order across the thread boundary: application threads cast through
//! the UDP driver's command queue while the driver thread runs the ordering layer and hands
//! deliveries to the application through the event queue (`thoth_stack::udp::queue`, the
//! queues the driver uses, on loom's locks when built with `--cfg loom`).
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test -p thoth-layers --test loom_order --release`
//!
//! The driver runs a group of two real `sequencer` layers: member 1 (this process's endpoint,
//! whose application casts) and member 0 (the sequencer, standing for the rest of the group),
//! each message passing through its real header encoding. Two application threads each cast
//! two messages; the application's own thread takes the deliveries. Covered: each thread's
//! casts keep their order inside the total order; nothing is lost or duplicated across the
//! two queues; both members deliver one sequence; a driver parked on an empty command queue
//! is always woken (a lost wake-up is a deadlock, which loom reports). Not covered: the
//! sockets (the driver's batches are its own thread's affair), flow control, view changes.
//! Two casts per thread and a preemption bound of 3 keep the model under a minute here; it
//! catches a driver that takes a batch in reverse, and one that sleeps without parking.
#![cfg(loom)]

use loom::sync::{Arc, Condvar, Mutex};
use loom::thread;
use std::collections::VecDeque;
use thoth_layers::order::sequencer::{Config, Sequencer};
use thoth_stack::testing::{Harness, over_wire};
use thoth_stack::udp::queue::{Drained, Queue};
use thoth_stack::{Bytes, Dn, Msg, Rank, Time, Up};

const T: Time = Time::ZERO;

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

/// Two members, each a real `sequencer`; member 1 casts for the application.
struct Group {
    h: Vec<Harness>,
    s: Vec<Sequencer>,
    /// What each member delivered, in order.
    got: Vec<Vec<(u8, u8)>>,
}

impl Group {
    fn new() -> Group {
        Group {
            h: vec![Harness::new(2, 0), Harness::new(2, 1)],
            s: vec![Sequencer::new(Config::default()), Sequencer::new(Config::default())],
            got: vec![Vec::new(), Vec::new()],
        }
    }

    /// Hands `m`, cast by `from`, to both members (its sender included, as the loopback).
    fn multicast(&mut self, from: u16, m: &Msg) {
        for (h, s) in self.h.iter_mut().zip(&mut self.s) {
            h.up(s, T, Up::Cast { from: Rank(from), msg: over_wire(m) });
        }
    }

    /// Member 1 casts `(thread, i)`; the sequencer's turn ends; what member 1 delivered.
    fn cast(&mut self, item: (u8, u8)) -> Vec<(u8, u8)> {
        self.h[1].dn(&mut self.s[1], T, Dn::Cast(Msg::new(Bytes::from(vec![item.0, item.1]))));
        for e in self.h[1].take_dn() {
            let Dn::Cast(m) = e else { panic!("a cast goes down as a cast") };
            self.multicast(1, &m);
        }
        self.h[0].end_turn(&mut self.s[0], T);
        for e in self.h[0].take_dn() {
            let Dn::Cast(m) = e else { panic!("decisions go down as casts") };
            self.multicast(0, &m);
        }
        let mut mine = Vec::new();
        for (r, h) in self.h.iter_mut().enumerate() {
            for e in h.take_up() {
                if let Up::Cast { msg, .. } = e {
                    let b = msg.into_payload();
                    self.got[r].push((b[0], b[1]));
                    if r == 1 {
                        mine.push((b[0], b[1]));
                    }
                }
            }
        }
        mine
    }
}

#[test]
fn loom_casts_from_two_threads_keep_their_order_in_the_total_order() {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(3);
    b.check(|| {
        let wake = Arc::new(Wake::default());
        let cmds = {
            let w = wake.clone();
            Arc::new(Queue::with_unpark(2, move || w.wake()))
        };
        let events = Arc::new(Queue::new(2));
        let apps: Vec<_> = (0..2u8)
            .map(|t| {
                let cmds = cmds.clone();
                thread::spawn(move || {
                    for i in 0..2u8 {
                        cmds.push((t, i)).expect("open queue");
                    }
                })
            })
            .collect();
        let driver = {
            let (cmds, events) = (cmds.clone(), events.clone());
            thread::spawn(move || {
                let mut group = Group::new();
                let mut batch = VecDeque::new();
                loop {
                    let Drained { taken, closed } = cmds.drain_into(&mut batch);
                    for item in batch.drain(..) {
                        for d in group.cast(item) {
                            events.push(d).expect("the application keeps its event queue open");
                        }
                    }
                    cmds.release(taken, 0);
                    if taken == 0 {
                        if closed {
                            break;
                        }
                        if cmds.park_if_empty() {
                            wake.sleep();
                        }
                    }
                }
                events.close();
                group.got
            })
        };
        let mut got = Vec::new();
        while got.len() < 4 {
            got.push(events.pop().expect("the driver closes only after the application's casts"));
        }
        for a in apps {
            a.join().unwrap();
        }
        cmds.close();
        let members = driver.join().unwrap();
        assert_eq!(events.pop(), None, "nothing more than was cast");
        for t in 0..2u8 {
            let mine: Vec<u8> = got.iter().filter(|d| d.0 == t).map(|d| d.1).collect();
            assert_eq!(mine, [0, 1], "thread {t}'s casts lost, duplicated or reordered in {got:?}");
        }
        assert_eq!(members[0], got, "the sequencer delivered the same sequence");
        assert_eq!(members[1], got);
    });
}
