//! A replicated counter: every member holds the same count, however many add to it at once.
//! Increments are cast on the `total` stack (a sequencer orders every cast), so every member
//! applies them in one order and goes through the same values; a member that joins later
//! gets the count from the group (state transfer) before the increments that follow.
//!
//! ```sh
//! cargo run -p thoth-examples --example counter -- 5     # adds 1 to 5 every second
//! cargo run -p thoth-examples --example counter -- 2     # in another terminal
//! ```

use std::time::Duration;
use thoth::udp::Handle;
use thoth::{Bytes, Event};

/// A member's replica of the counter.
#[derive(Default)]
struct Counter {
    value: i64,
    /// Every value it went through, in order (what the test compares across members).
    history: Vec<i64>,
}

impl Counter {
    /// Applies one event; the answers the group expects (a view change's, a joiner's state)
    /// go back through `h`.
    fn apply(&mut self, h: &Handle, ev: Event) {
        match ev {
            Event::Cast { data, .. } => {
                if let Some(n) = std::str::from_utf8(&data).ok().and_then(|s| s.parse::<i64>().ok()) {
                    self.value += n;
                    self.history.push(self.value);
                }
            }
            Event::StateRequest => {
                let _ = h.send_state(Bytes::from(self.value.to_string()));
            }
            Event::State { chunk, last: true } => {
                self.value = std::str::from_utf8(&chunk).ok().and_then(|s| s.parse().ok()).unwrap_or(0);
            }
            Event::Block => {
                let _ = h.block_ok();
            }
            _ => {}
        }
    }
}

/// Joins the counter's group at `addr`, taking part in state transfer.
fn join(addr: std::net::SocketAddr, group: &str) -> Result<Handle, String> {
    thoth_examples::join_at(addr, group, thoth::TOTAL, |c| thoth::Config { transfer_state: true, ..c })
}

fn main() {
    let step: i64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(1);
    let h = join(thoth_examples::ADDR, "counter").unwrap_or_else(|e| {
        eprintln!("counter: {e}");
        std::process::exit(1)
    });
    let mut c = Counter::default();
    loop {
        let _ = h.cast(Bytes::from(step.to_string()));
        let until = std::time::Instant::now() + Duration::from_secs(1);
        while let Some(ev) = h.recv_timeout(until.saturating_duration_since(std::time::Instant::now())) {
            c.apply(&h, ev);
        }
        println!("count {} (members {})", c.value, h.members().len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// Applies every member's events to its counter, round robin, until `done` holds (at
    /// most 20 s): each member answers what the group asks of it meanwhile.
    fn until(hs: &[Handle], cs: &mut [Counter], done: impl Fn(&[Handle], &[Counter]) -> bool) {
        let start = Instant::now();
        while !done(hs, cs) {
            let values: Vec<i64> = cs.iter().map(|c| c.value).collect();
            assert!(start.elapsed() < Duration::from_secs(20), "stuck at {values:?}");
            for (h, c) in hs.iter().zip(cs.iter_mut()) {
                while let Some(ev) = h.try_recv() {
                    c.apply(h, ev);
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    #[test]
    fn every_member_goes_through_the_same_values_and_a_joiner_starts_from_the_count() {
        let addr = thoth_examples::test_addr();
        let group = format!("counter-{}", std::process::id());
        let mut hs: Vec<Handle> = (0..3).map(|_| join(addr, &group).unwrap()).collect();
        let mut cs: Vec<Counter> = (0..3).map(|_| Counter::default()).collect();
        until(&hs, &mut cs, |hs, _| hs.iter().all(|h| h.members().len() == 3));
        // All three add at once, each its own step, 20 times.
        for k in 0..20 {
            for (i, h) in hs.iter().enumerate() {
                let step = (i as i64 + 1) * if k % 2 == 0 { 1 } else { -2 };
                h.cast(Bytes::from(step.to_string())).unwrap();
            }
        }
        let total: i64 = (0..20).map(|k| if k % 2 == 0 { 6 } else { -12 }).sum();
        until(&hs, &mut cs, |_, cs| cs.iter().all(|c| c.history.len() == 60));
        for c in &cs {
            assert_eq!(c.value, total);
            assert_eq!(c.history, cs[0].history, "one order of increments everywhere");
        }
        // A late joiner starts from the count, then follows.
        hs.push(join(addr, &group).unwrap());
        cs.push(Counter::default());
        until(&hs, &mut cs, |hs, _| hs.iter().all(|h| h.members().len() == 4));
        hs[0].cast(Bytes::from("100")).unwrap();
        until(&hs, &mut cs, |_, cs| cs.iter().all(|c| c.value == total + 100));
        assert_eq!(cs[3].history, [total + 100], "the state, then the increment after it");
        for h in hs {
            h.shutdown();
        }
    }
}
