//! What travels between the processes: the header at the front of every benchmark payload,
//! and the line protocol on the members' stdin (parent to member) and stdout (member to
//! parent).
//!
//! Parent to member: `PEERS addr...`, `GO round t0_ns`, `FINISH round sent_0 sent_1 ...`,
//! `QUIT`. Member to parent: `READY addr recv_buffer send_buffer`, `ARMED max_payload`,
//! `PROG round sent received`, `SENT round n`, `RESULT round key=value...`, `ERROR text`.

use hdrhistogram::Histogram;
use std::net::SocketAddr;

/// Bytes of the payload header: round u32, sender u32, seq u64, send time u64 (ns on the
/// host's monotonic clock), little endian.
pub const HDR: usize = 24;

/// A payload of `size` bytes as every sender builds it: room for the stamp (`Hdr`), then a
/// fixed pattern. Senders rewrite only the stamp (`Tx::send`).
pub fn payload(size: usize) -> Vec<u8> {
    (0..size).map(|i| i as u8).collect()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hdr {
    pub round: u32,
    pub sender: u32,
    pub seq: u64,
    pub sent_ns: u64,
}

impl Hdr {
    pub fn write(&self, buf: &mut [u8]) {
        buf[0..4].copy_from_slice(&self.round.to_le_bytes());
        buf[4..8].copy_from_slice(&self.sender.to_le_bytes());
        buf[8..16].copy_from_slice(&self.seq.to_le_bytes());
        buf[16..24].copy_from_slice(&self.sent_ns.to_le_bytes());
    }

    pub fn read(buf: &[u8]) -> Option<Hdr> {
        let b = buf.get(..HDR)?;
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let u64_at = |i: usize| u64::from(u32_at(i)) | (u64::from(u32_at(i + 4)) << 32);
        Some(Hdr { round: u32_at(0), sender: u32_at(4), seq: u64_at(8), sent_ns: u64_at(16) })
    }
}

/// A control line from the parent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ctl {
    Peers(Vec<SocketAddr>),
    Go { round: u32, t0: u64 },
    Finish { round: u32, sent: Vec<u64> },
    Quit,
}

impl Ctl {
    pub fn parse(line: &str) -> Result<Ctl, String> {
        let mut w = line.split_whitespace();
        let bad = || format!("bad control line `{line}`");
        let num = |s: Option<&str>| s.and_then(|s| s.parse::<u64>().ok()).ok_or_else(bad);
        match w.next() {
            Some("PEERS") => w.map(|a| a.parse().map_err(|_| bad())).collect::<Result<_, _>>().map(Ctl::Peers),
            Some("GO") => Ok(Ctl::Go { round: num(w.next())? as u32, t0: num(w.next())? }),
            Some("FINISH") => {
                let round = num(w.next())? as u32;
                let sent = w.map(|s| num(Some(s))).collect::<Result<_, _>>()?;
                Ok(Ctl::Finish { round, sent })
            }
            Some("QUIT") => Ok(Ctl::Quit),
            _ => Err(bad()),
        }
    }

    pub fn line(&self) -> String {
        let join = |v: &mut dyn Iterator<Item = String>| v.collect::<Vec<_>>().join(" ");
        match self {
            Ctl::Peers(p) => format!("PEERS {}", join(&mut p.iter().map(|a| a.to_string()))),
            Ctl::Go { round, t0 } => format!("GO {round} {t0}"),
            Ctl::Finish { round, sent } => format!("FINISH {round} {}", join(&mut sent.iter().map(|n| n.to_string()))),
            Ctl::Quit => "QUIT".into(),
        }
    }
}

/// What one member measured as a receiver in one round.
#[derive(Clone, Debug)]
pub struct MemberResult {
    /// Distinct messages received.
    pub received: u64,
    /// Messages the senders said they sent.
    pub expected: u64,
    pub dups: u64,
    /// Messages delivered after a later message of the same sender.
    pub fifo_violations: u64,
    /// Payloads that were not this round's benchmark messages of the right size.
    pub bad: u64,
    pub bytes: u64,
    pub first_ns: u64,
    pub last_ns: u64,
    pub peak_rss_kb: u64,
    /// Datagrams the kernel dropped on the member's sockets during the round, if known.
    pub udp_drops: Option<u64>,
    /// Datagrams the endpoint rejected as malformed or misaddressed (stack runs only).
    pub rx_rejected: Option<u64>,
    /// Cast-to-delivery latency in µs of every message received.
    pub hist: Histogram<u64>,
    /// A hash of the order of the distinct messages received: members that delivered the
    /// same messages in one order (a total order) have the same.
    pub order: u64,
    /// CPU time the member process spent over the round, all its threads.
    pub cpu_ns: Option<u64>,
}

/// A latency histogram in µs: 1 µs to 1000 s, 3 significant figures.
pub fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 1_000_000_000, 3).expect("fixed, valid bounds")
}

impl MemberResult {
    pub fn lost(&self) -> u64 {
        self.expected.saturating_sub(self.received)
    }

    pub fn line(&self, round: u32) -> String {
        let opt = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
        let hist: Vec<String> =
            self.hist.iter_recorded().map(|v| format!("{}*{}", v.value_iterated_to(), v.count_at_value())).collect();
        format!(
            "RESULT {round} received={} expected={} dups={} fifo={} bad={} bytes={} first_ns={} last_ns={} \
             rss_kb={} udp_drops={} rx_rejected={} order={:016x} cpu_ns={} hist={}",
            self.received,
            self.expected,
            self.dups,
            self.fifo_violations,
            self.bad,
            self.bytes,
            self.first_ns,
            self.last_ns,
            self.peak_rss_kb,
            opt(self.udp_drops),
            opt(self.rx_rejected),
            self.order,
            opt(self.cpu_ns),
            if hist.is_empty() { "-".to_string() } else { hist.join(",") },
        )
    }

    /// Parses the part of a `RESULT` line after `RESULT round`.
    pub fn parse(fields: &str) -> Result<MemberResult, String> {
        let mut kv = std::collections::BTreeMap::new();
        for f in fields.split_whitespace() {
            let (k, v) = f.split_once('=').ok_or_else(|| format!("field `{f}` is not key=value"))?;
            kv.insert(k, v);
        }
        let raw = |k: &str| kv.get(k).copied().ok_or_else(|| format!("missing `{k}`"));
        let num = |k: &str| raw(k)?.parse::<u64>().map_err(|_| format!("bad `{k}`"));
        let opt = |k: &str| match raw(k)? {
            "-" => Ok(None),
            v => v.parse::<u64>().map(Some).map_err(|_| format!("bad `{k}`")),
        };
        let mut hist = new_hist();
        let h = raw("hist")?;
        if h != "-" {
            for pair in h.split(',') {
                let (v, c) = pair.split_once('*').ok_or("bad `hist`")?;
                let (v, c) = (v.parse::<u64>(), c.parse::<u64>());
                let (Ok(v), Ok(c)) = (v, c) else {
                    return Err("bad `hist`".into());
                };
                hist.record_n(v.clamp(1, 1_000_000_000), c).map_err(|_| "bad `hist`")?;
            }
        }
        Ok(MemberResult {
            received: num("received")?,
            expected: num("expected")?,
            dups: num("dups")?,
            fifo_violations: num("fifo")?,
            bad: num("bad")?,
            bytes: num("bytes")?,
            first_ns: num("first_ns")?,
            last_ns: num("last_ns")?,
            peak_rss_kb: num("rss_kb")?,
            udp_drops: opt("udp_drops")?,
            rx_rejected: opt("rx_rejected")?,
            hist,
            order: u64::from_str_radix(raw("order")?, 16).map_err(|_| "bad `order`")?,
            cpu_ns: opt("cpu_ns")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips() {
        let h = Hdr { round: 3, sender: 2, seq: 1 << 40, sent_ns: u64::MAX - 5 };
        let mut b = [0u8; HDR + 3];
        h.write(&mut b);
        assert_eq!(Hdr::read(&b), Some(h));
        assert_eq!(Hdr::read(&b[..HDR - 1]), None);
    }

    #[test]
    fn control_lines_round_trip() {
        for c in [
            Ctl::Peers(vec!["127.0.0.1:4000".parse().unwrap(), "127.0.0.1:4001".parse().unwrap()]),
            Ctl::Go { round: 1, t0: 123 },
            Ctl::Finish { round: 2, sent: vec![5, 0, 7] },
            Ctl::Quit,
        ] {
            assert_eq!(Ctl::parse(&c.line()), Ok(c));
        }
        assert!(Ctl::parse("GO x").is_err());
    }

    #[test]
    fn result_round_trips_with_histogram() {
        let mut hist = new_hist();
        for v in [3, 3, 40, 1_000, 123_456] {
            hist.record(v).unwrap();
        }
        let r = MemberResult {
            received: 9,
            expected: 10,
            dups: 1,
            fifo_violations: 2,
            bad: 0,
            bytes: 9216,
            first_ns: 5,
            last_ns: 9,
            peak_rss_kb: 4000,
            udp_drops: None,
            rx_rejected: Some(3),
            hist,
            order: 0xfeed,
            cpu_ns: Some(77),
        };
        let line = r.line(4);
        let rest = line.strip_prefix("RESULT 4 ").unwrap();
        let back = MemberResult::parse(rest).unwrap();
        assert_eq!((back.received, back.lost(), back.udp_drops, back.rx_rejected), (9, 1, None, Some(3)));
        assert_eq!(back.hist.len(), 5);
        assert_eq!(back.hist.value_at_quantile(0.5), r.hist.value_at_quantile(0.5));
        assert_eq!(back.hist.max(), r.hist.max());
        assert_eq!((back.order, back.cpu_ns), (0xfeed, Some(77)));
    }
}
