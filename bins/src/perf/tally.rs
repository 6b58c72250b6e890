//! A receiver's accounting for one round, the same for the stack and the raw path: distinct
//! messages per sender, duplicates, FIFO violations, first and last receive time, delivered
//! bytes, a histogram of cast-to-delivery latency, and a hash of the delivery order.

use super::proto::{Hdr, MemberResult, new_hist};
use hdrhistogram::Histogram;

/// Sequence numbers above this are not ours (they would need an absurd bitmap).
const MAX_SEQ: u64 = 1 << 32;

#[derive(Default)]
struct PerSender {
    seen: Vec<u64>,
    /// One past the highest sequence number delivered so far.
    next: u64,
    distinct: u64,
}

pub struct Tally {
    round: u32,
    size: usize,
    senders: Vec<PerSender>,
    received: u64,
    dups: u64,
    fifo: u64,
    bad: u64,
    bytes: u64,
    first_ns: u64,
    last_ns: u64,
    hist: Histogram<u64>,
    /// A running hash of (sender, seq) over the distinct messages, in delivery order.
    order: u64,
    /// Only this sender's messages go into the histogram (`None`: every sender's).
    latency_of: Option<u32>,
}

impl Tally {
    /// `expect_each` sizes the per-sender bitmaps up front (they grow if more arrive).
    pub fn new(round: u32, size: usize, senders: usize, expect_each: u64) -> Tally {
        let words = expect_each.min(MAX_SEQ).div_ceil(64) as usize;
        let senders = (0..senders).map(|_| PerSender { seen: vec![0; words], ..PerSender::default() }).collect();
        Tally {
            round,
            size,
            senders,
            received: 0,
            dups: 0,
            fifo: 0,
            bad: 0,
            bytes: 0,
            first_ns: 0,
            last_ns: 0,
            hist: new_hist(),
            order: 0,
            latency_of: None,
        }
    }

    /// Records the latency of `sender`'s messages only (the answers, at a pinger: their send
    /// time is the ping's, so the latency is a round trip).
    pub fn latency_of(self, sender: Option<u32>) -> Tally {
        Tally { latency_of: sender, ..self }
    }

    /// Distinct messages received so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Receive time of the latest distinct message (0 before the first).
    pub fn last_ns(&self) -> u64 {
        self.last_ns
    }

    /// Accounts one delivered payload, received at `now` (ns, host monotonic clock).
    pub fn on_payload(&mut self, data: &[u8], now: u64) {
        let Some(h) = Hdr::read(data) else {
            self.bad += 1;
            return;
        };
        let Some(s) = self.senders.get_mut(h.sender as usize) else {
            self.bad += 1;
            return;
        };
        if h.round != self.round || data.len() != self.size || h.seq >= MAX_SEQ {
            self.bad += 1;
            return;
        }
        let (word, bit) = ((h.seq / 64) as usize, 1u64 << (h.seq % 64));
        if word >= s.seen.len() {
            s.seen.resize((word + 1).next_power_of_two(), 0);
        }
        if s.seen[word] & bit != 0 {
            self.dups += 1;
            return;
        }
        s.seen[word] |= bit;
        s.distinct += 1;
        if h.seq < s.next {
            self.fifo += 1;
        }
        s.next = s.next.max(h.seq + 1);
        self.order =
            (self.order.rotate_left(7) ^ ((h.sender as u64) << 40) ^ h.seq).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.received += 1;
        self.bytes += data.len() as u64;
        if self.first_ns == 0 {
            self.first_ns = now;
        }
        self.last_ns = now;
        if self.latency_of.is_none_or(|s| s == h.sender) {
            let us = now.saturating_sub(h.sent_ns) / 1_000;
            self.hist.saturating_record(us.max(1));
        }
    }

    /// The round's result, given what each sender said it sent.
    pub fn finish(self, sent: &[u64], udp_drops: Option<u64>, rx_rejected: Option<u64>) -> MemberResult {
        MemberResult {
            received: self.received,
            expected: sent.iter().sum(),
            dups: self.dups,
            fifo_violations: self.fifo,
            bad: self.bad,
            bytes: self.bytes,
            first_ns: self.first_ns,
            last_ns: self.last_ns,
            peak_rss_kb: super::clock::peak_rss_kb(),
            udp_drops,
            rx_rejected,
            hist: self.hist,
            order: self.order,
            cpu_ns: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(round: u32, sender: u32, seq: u64, sent_ns: u64, size: usize) -> Vec<u8> {
        let mut b = vec![0u8; size];
        Hdr { round, sender, seq, sent_ns }.write(&mut b);
        b
    }

    #[test]
    fn counts_distinct_dups_reorders_and_junk() {
        let mut t = Tally::new(1, 32, 2, 4);
        for (sender, seq) in [(0, 0), (0, 2), (0, 1), (1, 0), (0, 2), (1, 200)] {
            t.on_payload(&payload(1, sender, seq, 1_000, 32), 11_000);
        }
        t.on_payload(&payload(2, 0, 3, 0, 32), 0); // another round
        t.on_payload(&payload(1, 5, 3, 0, 32), 0); // no such sender
        t.on_payload(&payload(1, 0, 3, 0, 31), 0); // wrong size
        t.on_payload(&[1, 2, 3], 0);
        let r = t.finish(&[4, 201], None, None);
        assert_eq!((r.received, r.expected, r.lost()), (5, 205, 200));
        assert_eq!((r.dups, r.fifo_violations, r.bad, r.bytes), (1, 1, 4, 5 * 32));
        assert_eq!(r.hist.len(), 5);
        assert_eq!(r.hist.value_at_quantile(0.5), 10);
        // The order hash: the same messages in another order differ, in the same order not.
        let order = |seqs: &[(u32, u64)]| {
            let mut t = Tally::new(1, 32, 2, 4);
            for &(sender, seq) in seqs {
                t.on_payload(&payload(1, sender, seq, 0, 32), 1);
            }
            t.finish(&[2, 2], None, None).order
        };
        assert_eq!(order(&[(0, 0), (1, 0), (0, 1)]), order(&[(0, 0), (1, 0), (1, 0), (0, 1)]));
        assert_ne!(order(&[(0, 0), (1, 0), (0, 1)]), order(&[(1, 0), (0, 0), (0, 1)]));
        // A pinger's histogram: the answers' latencies only.
        let mut t = Tally::new(1, 32, 2, 4).latency_of(Some(1));
        t.on_payload(&payload(1, 0, 0, 1_000, 32), 2_000);
        t.on_payload(&payload(1, 1, 0, 1_000, 32), 51_000);
        let r = t.finish(&[1, 1], None, None);
        assert_eq!((r.received, r.hist.len(), r.hist.value_at_quantile(0.5)), (2, 1, 50));
    }
}
