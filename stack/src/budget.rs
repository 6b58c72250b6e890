//! `Budget`: the bytes a member holds for others, bounded per sender and in all.
//!
//! A layer that keeps other members' messages (for reordering, retransmission, reassembly)
//! takes bytes from its budget before it keeps one and gives them back when it lets go; a
//! message that would take a sender past `per_sender`, or everyone past `all`, is refused,
//! and the layer drops it (counting it) as it would drop one it never received (a reliable
//! layer asks for it again later). Nothing from the network, forged or not, can then make a member
//! hold more than `all` bytes in that layer, nor one sender crowd out the others beyond
//! `per_sender`. A message is charged `Msg::len() + MSG_OVERHEAD` after `Msg::compact`, so
//! the charge covers what it really keeps alive.
//!
//! Tested by the unit tests below and through the layers that use it (`nak`, `pt2pt`).

use crate::msg::Msg;

/// Charged per message on top of its bytes: its handle, map entry and bookkeeping.
pub const MSG_OVERHEAD: usize = 64;

/// Bytes held per sender and in all.
#[derive(Clone, Debug)]
pub struct Budget {
    per_sender: usize,
    all: usize,
    used: Vec<usize>,
    total: usize,
}

impl Budget {
    /// A budget for `senders` senders.
    pub fn new(senders: usize, per_sender: usize, all: usize) -> Budget {
        Budget { per_sender, all, used: vec![0; senders], total: 0 }
    }

    /// What keeping `msg` costs.
    pub fn cost(msg: &Msg) -> usize {
        msg.len() + MSG_OVERHEAD
    }

    /// Takes `bytes` for `sender` if both bounds allow it.
    pub fn take(&mut self, sender: usize, bytes: usize) -> bool {
        let Some(used) = self.used.get_mut(sender) else { return false };
        if *used + bytes > self.per_sender || self.total + bytes > self.all {
            return false;
        }
        *used += bytes;
        self.total += bytes;
        true
    }

    /// Gives back `bytes` taken for `sender`.
    pub fn give(&mut self, sender: usize, bytes: usize) {
        if let Some(used) = self.used.get_mut(sender) {
            debug_assert!(*used >= bytes && self.total >= bytes, "gave back more than was taken");
            *used -= bytes.min(*used);
            self.total -= bytes.min(self.total);
        }
    }

    /// Bytes held for `sender`.
    pub fn used(&self, sender: usize) -> usize {
        self.used.get(sender).copied().unwrap_or(0)
    }

    /// Bytes held in all.
    pub fn total(&self) -> usize {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_per_sender_and_in_all() {
        let mut b = Budget::new(3, 100, 150);
        assert!(b.take(0, 60));
        assert!(!b.take(0, 41), "past the sender's bound");
        assert!(b.take(0, 40));
        assert!(b.take(1, 50));
        assert!(!b.take(2, 1), "past the bound in all");
        assert!(!b.take(7, 1), "no such sender");
        assert_eq!((b.used(0), b.used(1), b.total()), (100, 50, 150));
        b.give(0, 60);
        assert!(b.take(2, 60));
        assert_eq!((b.used(0), b.used(2), b.total()), (40, 60, 150));
    }
}
