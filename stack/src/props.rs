//! Properties that layers require from below and provide above (Horus's well-formedness).
//!
//! Walking a stack bottom up, the properties provided so far accumulate; a layer whose
//! requirements are not all in that set makes the stack ill-formed, and the error names the
//! layer and what is missing.

use core::fmt;
use core::ops::{BitOr, BitOrAssign, Sub};

#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Props(u32);

macro_rules! props {
    ($($name:ident = $bit:expr, $text:expr;)*) => {
        impl Props {
            $(pub const $name: Props = Props(1 << $bit);)*
            const NAMES: &'static [(Props, &'static str)] = &[$((Props::$name, $text),)*];
        }
    };
}

props! {
    RELIABLE_CAST = 0, "reliable-cast";
    FIFO_CAST = 1, "fifo-cast";
    RELIABLE_SEND = 2, "reliable-send";
    FIFO_SEND = 3, "fifo-send";
    FRAG = 4, "fragmentation";
    FLOW = 5, "flow-control";
    STABLE = 6, "stability";
    PACK = 7, "packing";
    CAUSAL = 8, "causal-order";
    TOTAL = 9, "total-order";
    MEMBERSHIP = 10, "membership";
    VSYNC = 11, "virtual-synchrony";
    SUSPECT = 12, "failure-detection";
    FLUSH = 13, "flush-counts";
}

impl Props {
    pub const NONE: Props = Props(0);

    pub fn contains(self, other: Props) -> bool {
        self.0 & other.0 == other.0
    }
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
