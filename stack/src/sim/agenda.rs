//! The simulator's agenda: a priority queue of future actions ordered by (time, sequence
//! number). The sequence number is the order of scheduling, so actions due at the same
//! instant run in the order they were scheduled and a run never depends on heap internals.
//!
//! Tested by the unit tests below (ties keep scheduling order, earlier times first, `len`
//! and `peek_time` track pushes and pops).

use crate::time::Time;
use core::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

/// Future actions, earliest first; ties broken by scheduling order.
pub(crate) struct Agenda<T> {
    heap: BinaryHeap<Reverse<Slot<T>>>,
    next_seq: u64,
}

struct Slot<T> {
    at: Time,
    seq: u64,
    item: T,
}

impl<T> PartialEq for Slot<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl<T> Eq for Slot<T> {}
impl<T> PartialOrd for Slot<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Slot<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

impl<T> Agenda<T> {
    pub(crate) fn new() -> Self {
        Agenda { heap: BinaryHeap::new(), next_seq: 0 }
    }

    /// Schedules `item` at `at`, after everything already scheduled for the same instant.
    pub(crate) fn push(&mut self, at: Time, item: T) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.heap.push(Reverse(Slot { at, seq, item }));
    }

    /// The earliest action and its time.
    pub(crate) fn pop(&mut self) -> Option<(Time, T)> {
        self.heap.pop().map(|Reverse(s)| (s.at, s.item))
    }

    /// When the earliest action is due.
    pub(crate) fn peek_time(&self) -> Option<Time> {
        self.heap.peek().map(|Reverse(s)| s.at)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earliest_first_and_ties_in_scheduling_order() {
        let mut a = Agenda::new();
        let t = |n| Time::from_nanos(n);
        for (at, item) in [(5, "e"), (1, "a"), (3, "b"), (3, "c"), (1, "a2"), (3, "d")] {
            a.push(t(at), item);
        }
        assert_eq!(a.len(), 6);
        assert_eq!(a.peek_time(), Some(t(1)));
        let order: Vec<_> = core::iter::from_fn(|| a.pop()).collect();
        assert_eq!(order, vec![(t(1), "a"), (t(1), "a2"), (t(3), "b"), (t(3), "c"), (t(3), "d"), (t(5), "e")]);
        assert_eq!(a.len(), 0);
        assert_eq!(a.peek_time(), None);
    }

    #[test]
    fn ties_stay_ordered_across_interleaved_pops() {
        let mut a = Agenda::new();
        let t0 = Time::from_nanos(7);
        for i in 0..100u32 {
            a.push(t0, i);
            if i % 3 == 0 {
                a.pop();
            }
        }
        let rest: Vec<u32> = core::iter::from_fn(|| a.pop().map(|(_, i)| i)).collect();
        let mut sorted = rest.clone();
        sorted.sort_unstable();
        assert_eq!(rest, sorted, "same-time actions must come out in scheduling order");
    }
}
