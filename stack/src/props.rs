//! Properties that layers require from below and provide above (Horus's well-formedness).
//!
//! Walking a stack bottom up, the properties provided so far accumulate; a layer whose
//! requirements are not all in that set makes the stack ill-formed, and the error names the
//! layer and what is missing.

use core::fmt;
use core::ops::{BitOr, BitOrAssign, Sub};

/// A set of properties (a bit set): what a layer requires from the layers below it, or
/// provides to those above.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Props(u32);

macro_rules! props {
    ($($(#[$doc:meta])* $name:ident = $bit:expr, $text:expr;)*) => {
        impl Props {
            $($(#[$doc])* pub const $name: Props = Props(1 << $bit);)*
            const NAMES: &'static [(Props, &'static str)] = &[$((Props::$name, $text),)*];
        }
    };
}

props! {
    /// Lost casts are recovered (retransmission): a member delivers a sender's casts without
    /// gaps.
    RELIABLE_CAST = 0, "reliable-cast";
    /// Casts are delivered in each sender's order.
    FIFO_CAST = 1, "fifo-cast";
    /// Lost point-to-point messages are recovered (retransmission).
    RELIABLE_SEND = 2, "reliable-send";
    /// Point-to-point messages are delivered in their sender's order.
    FIFO_SEND = 3, "fifo-send";
    /// Messages larger than a datagram are cut into pieces and put back together.
    FRAG = 4, "fragmentation";
    /// Flow control: a sender's casts are held (`Up::Flow`) while receivers lag.
    FLOW = 5, "flow-control";
    /// Stability is detected and announced (`Up::Stable` / `Dn::Stable`).
    STABLE = 6, "stability";
    /// Small messages are packed together into one datagram.
    PACK = 7, "packing";
    /// Casts are delivered in causal order.
    CAUSAL = 8, "causal-order";
    /// Casts are delivered in one order at every member.
    TOTAL = 9, "total-order";
    /// A membership layer installs views (joins, leaves, failures, merges).
    MEMBERSHIP = 10, "membership";
    /// Virtual synchrony: members that go through two views together deliver the same casts
    /// in the first.
    VSYNC = 11, "virtual-synchrony";
    /// A failure detector reports suspected members (`Up::Suspect`).
    SUSPECT = 12, "failure-detection";
    /// The reliable layer counts delivered casts for the flush: answers `Dn::GetDigest`
    /// and delivers up to `Dn::Cut` (see `Dn::Failed`).
    FLUSH = 13, "flush-counts";
}

impl Props {
    /// The empty set.
    pub const NONE: Props = Props(0);

    /// Whether every property of `other` is in this set.
    pub fn contains(self, other: Props) -> bool {
        self.0 & other.0 == other.0
    }
    /// Whether the set has no property.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// The names of the properties in this set.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        Props::NAMES.iter().filter(move |(p, _)| self.contains(*p)).map(|(_, n)| *n)
    }
}

impl BitOr for Props {
    type Output = Props;
    fn bitor(self, o: Props) -> Props {
        Props(self.0 | o.0)
    }
}
impl BitOrAssign for Props {
    fn bitor_assign(&mut self, o: Props) {
        self.0 |= o.0
    }
}
/// Set difference: what is in `self` and not in `o`.
impl Sub for Props {
    type Output = Props;
    fn sub(self, o: Props) -> Props {
        Props(self.0 & !o.0)
    }
}

impl fmt::Display for Props {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("(none)");
        }
        for (i, n) in self.names().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(n)?;
        }
        Ok(())
    }
}
impl fmt::Debug for Props {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{{self}}}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_operations_and_names() {
        let p = Props::RELIABLE_CAST | Props::FIFO_CAST;
        assert!(p.contains(Props::FIFO_CAST));
        assert!(!p.contains(Props::TOTAL));
        assert_eq!((Props::TOTAL | Props::FIFO_CAST) - p, Props::TOTAL);
        assert_eq!(p.to_string(), "reliable-cast, fifo-cast");
        assert_eq!(Props::NONE.to_string(), "(none)");
    }
}
