//! The receive window of one sender: the delivered prefix and the out-of-order arrivals
//! held until the gap before them fills, at most `size` sequence numbers ahead.

use std::collections::BTreeMap;

/// What became of one arrival.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arrival {
    /// It is the next one: take it (and what follows) with `pop_ready`.
    Ready,
    /// Held until the gap before it fills.
    Held,
    /// Already delivered or already held.
    Duplicate,
    /// Too far ahead of the delivered prefix: dropped (it will be asked for again).
    Overflow,
}

/// Sequence numbers `0..next` are delivered; `held` keeps arrivals in `next .. next+size`.
/// The arrival at `next` itself, the common case of casts coming in order, waits in `front`
/// instead: no map entry made and removed per cast.
#[derive(Clone, Debug)]
pub struct Window<T> {
    next: u64,
    size: u64,
    front: Option<T>,
    held: BTreeMap<u64, T>,
}

impl<T> Window<T> {
    /// A window that holds arrivals less than `size` ahead of the next one (`size >= 1`).
    pub fn new(size: u64) -> Window<T> {
        Window { next: 0, size: size.max(1), front: None, held: BTreeMap::new() }
    }

    /// The next sequence number to deliver: everything below it is delivered.
    pub fn next(&self) -> u64 {
        self.next
    }

    /// Arrivals held out of order.
    pub fn held(&self) -> usize {
        self.held.len() + self.front.is_some() as usize
    }

    /// Offers arrival `seq`; it is kept unless the result is `Duplicate` or `Overflow`.
    pub fn insert(&mut self, seq: u64, item: T) -> Arrival {
        if seq < self.next || (seq == self.next && self.front.is_some()) || self.held.contains_key(&seq) {
            Arrival::Duplicate
        } else if seq - self.next >= self.size {
            Arrival::Overflow
        } else if seq == self.next {
            self.front = Some(item);
            Arrival::Ready
        } else {
            self.held.insert(seq, item);
            Arrival::Held
        }
    }

    /// Takes back an arrival held at `seq` (one the caller decided not to keep after all).
    pub fn remove(&mut self, seq: u64) -> Option<T> {
        if seq == self.next && self.front.is_some() { self.front.take() } else { self.held.remove(&seq) }
    }

    /// The next arrival in order, if it is here; it counts as delivered.
    pub fn pop_ready(&mut self) -> Option<(u64, T)> {
        let item = self.front.take().or_else(|| self.held.remove(&self.next))?;
        self.next += 1;
        Some((self.next - 1, item))
    }

    /// The missing runs `[lo, hi)` below `known` (one past the highest sequence number known
    /// to exist) and inside the window, at most `max` of them, lowest first.
    pub fn missing(&self, known: u64, max: usize) -> Vec<(u64, u64)> {
        let end = known.min(self.next.saturating_add(self.size));
        let mut out = Vec::new();
        let mut lo = self.next + self.front.is_some() as u64;
        for &s in self.held.range(lo..end.max(lo)).map(|(s, _)| s) {
            if s > lo {
                if out.len() == max {
                    return out;
                }
                out.push((lo, s));
            }
            lo = s + 1;
        }
        if lo < end && out.len() < max {
            out.push((lo, end));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_inside_the_window_and_names_missing_runs() {
        let mut w = Window::new(6);
        assert_eq!(w.insert(2, 'c'), Arrival::Held);
        assert_eq!(w.insert(4, 'e'), Arrival::Held);
        assert_eq!(w.insert(6, 'g'), Arrival::Overflow);
        assert_eq!(w.insert(2, 'c'), Arrival::Duplicate);
        assert_eq!(w.missing(9, 16), [(0, 2), (3, 4), (5, 6)]);
        assert_eq!(w.missing(9, 2), [(0, 2), (3, 4)]);
        assert_eq!(w.missing(1, 16), [(0, 1)]);
        assert_eq!(w.insert(0, 'a'), Arrival::Ready);
        assert_eq!(w.pop_ready(), Some((0, 'a')));
        assert_eq!(w.pop_ready(), None);
        assert_eq!(w.insert(1, 'b'), Arrival::Ready);
        assert_eq!([w.pop_ready(), w.pop_ready(), w.pop_ready()], [Some((1, 'b')), Some((2, 'c')), None]);
        assert_eq!((w.next(), w.held()), (3, 1));
    }
}
