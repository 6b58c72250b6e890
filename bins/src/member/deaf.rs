//! `deaf`: a test and demo layer of `thoth-member` (`--deaf-to`): until a given time this
//! member hears nothing from the listed endpoints — neither their traffic in the view nor
//! their gossip — so processes on one host can start as separate partitions and heal, the
//! way a network split would. It goes at the bottom of the stack, drops on receive only (as
//! the `partition` debug layer does), has no header, and counts what it dropped.
//!
//! Spec: `deaf(to=ID+ID+...,until_ms=T)`, ids in decimal, `T` in the driver's time (since the
//! member started).

use thoth::{Args, Cx, Dn, Dump, Duration, EndpointId, Layer, Registry, Time, Up};

pub struct Deaf {
    to: Vec<EndpointId>,
    until: Time,
    dropped: u64,
}

impl Deaf {
    pub fn new(to: Vec<EndpointId>, until: Time) -> Deaf {
        Deaf { to, until, dropped: 0 }
    }

    fn deaf(&self, from: Option<EndpointId>, cx: &Cx<'_>) -> bool {
        cx.now < self.until && from.is_some_and(|f| self.to.contains(&f))
    }
}

impl Layer for Deaf {
    fn name(&self) -> &'static str {
        "deaf"
    }
    fn max_header(&self, _: &thoth::View) -> usize {
        0
    }
    fn handle_dn(&mut self, ev: Dn, cx: &mut Cx<'_>) {
        cx.dn(ev)
    }
    fn handle_up(&mut self, ev: Up, cx: &mut Cx<'_>) {
        let from = match &ev {
            Up::Cast { from, .. } | Up::Send { from, .. } => cx.view.member(*from),
            Up::Gossip { from, .. } => Some(*from),
            _ => None,
        };
        if self.deaf(from, cx) {
            self.dropped += 1;
        } else {
            cx.up(ev)
        }
    }
    fn dump(&self, out: &mut Vec<Dump>) {
        out.push(Dump { layer: "deaf", counters: vec![("dropped", self.dropped)], ..Dump::default() });
    }
}

/// Registers `deaf` (only `thoth-member` knows it).
pub fn register(r: &mut Registry) {
    r.register("deaf", "thoth-member: hear nothing from the listed endpoints until a time", |a: &mut Args| {
        let to: String = a.get("to", String::new())?;
        let to = to
            .split('+')
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().map(EndpointId).map_err(|_| format!("bad endpoint id `{s}`")))
            .collect::<Result<Vec<_>, _>>()?;
        let until = Time::ZERO + Duration::from_millis(a.get("until_ms", 0u64)?);
        Ok(Box::new(Deaf::new(to, until)))
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use thoth::testing::Harness;
    use thoth::{Bytes, Msg, Rank};

    #[test]
    fn deaf_until_the_time_then_hears() {
        let mut h = Harness::new(3, 0);
        let mut d = Deaf::new(vec![EndpointId(2)], Time::ZERO + Duration::from_millis(10));
        let cast = |r| Up::Cast { from: Rank(r), msg: Msg::new(Bytes::from_static(b"x")) };
        h.up(&mut d, Time::ZERO, cast(1));
        h.up(&mut d, Time::ZERO, cast(2));
        h.up(&mut d, Time::ZERO, Up::Gossip { from: EndpointId(2), msg: Msg::new(Bytes::new()) });
        assert_eq!(h.take_up().len(), 1, "rank 1 is endpoint 2, unheard; rank 2 is heard");
        h.up(&mut d, Time::ZERO + Duration::from_millis(10), cast(1));
        assert_eq!(h.take_up().len(), 1);
        assert_eq!(d.dropped, 2);
    }
}
