//! Figures of a run (from the members' results), medians over repeats, and the two output
//! forms: a table for people and one JSON object per row for scripts.

use super::args::{Amount, Opts};
use super::groups::Idle;
use super::proto::{MemberResult, new_hist};

/// The figures of one workload run.
#[derive(Clone, Debug)]
pub struct Stats {
    pub label: String,
    /// At the slowest receiver.
    pub msgs_per_sec: f64,
    pub mb_per_sec: f64,
    /// Messages sent but not delivered, summed over receivers.
    pub lost: u64,
    /// Deliveries expected, summed over receivers.
    pub expected: u64,
    pub dups: u64,
    pub fifo_violations: u64,
    /// How many different delivery orders the members' order hashes show (1: one order, a
    /// total order; a stack that does not order usually shows one per member).
    pub orders: u64,
    pub bad: u64,
    pub udp_drops: Option<u64>,
    pub rx_rejected: Option<u64>,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    /// Round trips at the pinger (p50, p99, p99.9 in µs), in a round-trip run.
    pub rtt_us: Option<[u64; 3]>,
    /// Peak RSS of each member in kB.
    pub rss_kb: Vec<u64>,
    /// Messages sent per sender (mean).
    pub count: u64,
    /// Socket buffers the kernel granted (smallest over members): receive, send.
    pub granted: (usize, usize),
    /// `--groups`: what each member's idle phase cost.
    pub idle: Vec<Idle>,
    /// CPU time all members spent over the round per message sent, in µs.
    pub cpu_us_per_msg: Option<f64>,
}

fn sum_opt(v: impl Iterator<Item = Option<u64>>) -> Option<u64> {
    v.sum()
}

impl Stats {
    /// This run's msgs/s over `other`'s.
    fn ratio_to(&self, other: Option<&Stats>) -> Option<f64> {
        other.filter(|r| r.msgs_per_sec > 0.0).map(|r| self.msgs_per_sec / r.msgs_per_sec)
    }

    /// In a round-trip run (`rtt`) member 0's histogram holds round trips: the one-way
    /// latencies are the other members'.
    pub fn new(label: &str, size: usize, senders: usize, t0: u64, results: &[MemberResult], rtt: bool) -> Stats {
        let mut hist = new_hist();
        for r in results.iter().skip(usize::from(rtt)) {
            hist.add(&r.hist).expect("histograms share their bounds");
        }
        let q = |h: &hdrhistogram::Histogram<u64>| [0.5, 0.99, 0.999].map(|x| h.value_at_quantile(x));
        let rtt_us = results.first().filter(|_| rtt).map(|r| q(&r.hist));
        let rate = |r: &MemberResult| {
            let secs = r.last_ns.saturating_sub(t0) as f64 / 1e9;
            if r.received == 0 || secs <= 0.0 { 0.0 } else { r.received as f64 / secs }
        };
        let slowest = results.iter().map(rate).fold(f64::INFINITY, f64::min);
        let slowest = if slowest.is_finite() { slowest } else { 0.0 };
        let sent_total = results.first().map_or(0, |r| r.expected);
        Stats {
            label: label.to_string(),
            msgs_per_sec: slowest,
            mb_per_sec: slowest * size as f64 / 1e6,
            lost: results.iter().map(MemberResult::lost).sum(),
            expected: results.iter().map(|r| r.expected).sum(),
            dups: results.iter().map(|r| r.dups).sum(),
            fifo_violations: results.iter().map(|r| r.fifo_violations).sum(),
            orders: results.iter().map(|r| r.order).collect::<std::collections::BTreeSet<_>>().len() as u64,
            bad: results.iter().map(|r| r.bad).sum(),
            udp_drops: sum_opt(results.iter().map(|r| r.udp_drops)),
            rx_rejected: sum_opt(results.iter().map(|r| r.rx_rejected)),
            p50_us: hist.value_at_quantile(0.5),
            p99_us: hist.value_at_quantile(0.99),
            p999_us: hist.value_at_quantile(0.999),
            rtt_us,
            rss_kb: results.iter().map(|r| r.peak_rss_kb).collect(),
            count: sent_total / senders.max(1) as u64,
            granted: (0, 0),
            idle: Vec::new(),
            cpu_us_per_msg: sum_opt(results.iter().map(|r| r.cpu_ns))
                .filter(|_| sent_total > 0)
                .map(|ns| ns as f64 / 1e3 / sent_total as f64),
        }
    }

    /// CPU time per idle group per second of idling, in µs (median over members).
    pub fn idle_cpu_us_per_group(&self) -> Option<f64> {
        self.idle_median(|i| i.cpu_ns as f64 / 1e3 / (i.wall_ns as f64 / 1e9) / i.groups as f64)
    }

    /// Resident memory a group takes, in bytes (median over members).
    pub fn bytes_per_group(&self) -> Option<f64> {
        self.idle_median(|i| i.rss_after_kb.saturating_sub(i.rss_before_kb) as f64 * 1024.0 / i.groups as f64)
    }

    /// Datagrams per second all members sent while idle: on the wire, and as the groups'
    /// endpoints made them (before bundling).
    pub fn idle_datagrams_per_sec(&self) -> Option<(f64, f64)> {
        let rate = |f: fn(&Idle) -> u64| self.idle.iter().map(|i| f(i) as f64 / (i.wall_ns as f64 / 1e9)).sum();
        (!self.idle.is_empty()).then(|| (rate(|i| i.tx_sent), rate(|i| i.tx_datagrams)))
    }

    fn idle_median(&self, f: impl Fn(&Idle) -> f64) -> Option<f64> {
        let v: Vec<f64> = self.idle.iter().filter(|i| i.groups > 0 && i.wall_ns > 0).map(f).collect();
        (!v.is_empty()).then(|| median_f(v))
    }

    pub fn loss_pct(&self) -> f64 {
        if self.expected == 0 { 0.0 } else { 100.0 * self.lost as f64 / self.expected as f64 }
    }
}

/// A stack run and the raw run made next to it.
#[derive(Clone, Debug)]
pub struct Pair {
    pub stack: Stats,
    pub raw: Option<Stats>,
    /// The stack unprotected (`--vs-insecure`).
    pub insecure: Option<Stats>,
    /// JGroups 2.12's msgs/s with the same workload (`--jgroups`).
    pub jgroups: Option<f64>,
}

impl Pair {
    pub fn ratio(&self) -> Option<f64> {
        self.stack.ratio_to(self.raw.as_ref())
    }

    /// Secured msgs/s over insecure msgs/s (`--vs-insecure`).
    pub fn secure_ratio(&self) -> Option<f64> {
        self.stack.ratio_to(self.insecure.as_ref())
    }

    /// The stack's msgs/s over JGroups's (`--jgroups`).
    pub fn jgroups_ratio(&self) -> Option<f64> {
        self.jgroups.filter(|&j| j > 0.0).map(|j| self.stack.msgs_per_sec / j)
    }

    /// One line for progress output.
    pub fn summary(&self) -> String {
        let mut s = format!("{} {} msgs/s", self.stack.label, thousands(self.stack.msgs_per_sec as u64));
        if let (Some(r), Some(q)) = (&self.raw, self.ratio()) {
            s.push_str(&format!(", raw {} msgs/s, ratio {q:.3}", thousands(r.msgs_per_sec as u64)));
        }
        if let (Some(i), Some(q)) = (&self.insecure, self.secure_ratio()) {
            s.push_str(&format!(", insecure {} msgs/s, secured/insecure {q:.3}", thousands(i.msgs_per_sec as u64)));
        }
        if let (Some(j), Some(q)) = (self.jgroups, self.jgroups_ratio()) {
            s.push_str(&format!(", JGroups {} msgs/s, stack/JGroups {q:.3}", thousands(j as u64)));
        }
        s
    }
}

pub fn median_f(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn median_u(v: impl Iterator<Item = u64>) -> u64 {
    median_f(v.map(|x| x as f64).collect()).round() as u64
}

fn median_stats(runs: &[&Stats]) -> Stats {
    let f = |g: fn(&Stats) -> f64| median_f(runs.iter().map(|s| g(s)).collect());
    let u = |g: fn(&Stats) -> u64| median_u(runs.iter().map(|s| g(s)));
    let o = |g: fn(&Stats) -> Option<u64>| {
        let v: Vec<u64> = runs.iter().filter_map(|s| g(s)).collect();
        (!v.is_empty()).then(|| median_u(v.into_iter()))
    };
    let members = runs.iter().map(|s| s.rss_kb.len()).max().unwrap_or(0);
    Stats {
        label: runs[0].label.clone(),
        msgs_per_sec: f(|s| s.msgs_per_sec),
        mb_per_sec: f(|s| s.mb_per_sec),
        lost: u(|s| s.lost),
        expected: u(|s| s.expected),
        dups: u(|s| s.dups),
        fifo_violations: u(|s| s.fifo_violations),
        orders: runs.iter().map(|s| s.orders).max().unwrap_or(0),
        bad: u(|s| s.bad),
        udp_drops: o(|s| s.udp_drops),
        rx_rejected: o(|s| s.rx_rejected),
        p50_us: u(|s| s.p50_us),
        p99_us: u(|s| s.p99_us),
        p999_us: u(|s| s.p999_us),
        rtt_us: runs[0].rtt_us.map(|_| [0, 1, 2].map(|k| median_u(runs.iter().filter_map(|s| s.rtt_us.map(|r| r[k]))))),
        rss_kb: (0..members).map(|i| runs.iter().filter_map(|s| s.rss_kb.get(i)).copied().max().unwrap_or(0)).collect(),
        count: u(|s| s.count),
        granted: runs[0].granted,
        idle: runs[0].idle.clone(),
        cpu_us_per_msg: {
            let v: Vec<f64> = runs.iter().filter_map(|s| s.cpu_us_per_msg).collect();
            (!v.is_empty()).then(|| median_f(v))
        },
    }
}

/// The medians of repeated pairs (each figure on its own; the ratio is the median of the
/// pairs' ratios, which cancels noise shared by the two runs of a pair). Peak RSS is the
/// largest seen.
pub struct Row {
    pub pair: Pair,
    pub ratio: Option<f64>,
    pub secure_ratio: Option<f64>,
    pub jgroups_ratio: Option<f64>,
    pub runs: usize,
}

pub fn median(pairs: &[Pair]) -> Row {
    let stack = median_stats(&pairs.iter().map(|p| &p.stack).collect::<Vec<_>>());
    let twin = |f: fn(&Pair) -> Option<&Stats>| {
        let runs: Vec<&Stats> = pairs.iter().filter_map(f).collect();
        (!runs.is_empty()).then(|| median_stats(&runs))
    };
    let ratio = |f: fn(&Pair) -> Option<f64>| {
        let ratios: Vec<f64> = pairs.iter().filter_map(f).collect();
        (!ratios.is_empty()).then(|| median_f(ratios))
    };
    let jgroups: Vec<f64> = pairs.iter().filter_map(|p| p.jgroups).collect();
    Row {
        pair: Pair {
            stack,
            raw: twin(|p| p.raw.as_ref()),
            insecure: twin(|p| p.insecure.as_ref()),
            jgroups: (!jgroups.is_empty()).then(|| median_f(jgroups)),
        },
        ratio: ratio(Pair::ratio),
        secure_ratio: ratio(Pair::secure_ratio),
        jgroups_ratio: ratio(Pair::jgroups_ratio),
        runs: pairs.len(),
    }
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_f(x: Option<f64>, decimals: usize) -> String {
    match x {
        Some(x) if x.is_finite() => format!("{x:.decimals$}"),
        _ => "null".into(),
    }
}

fn json_u(x: Option<u64>) -> String {
    x.map_or("null".into(), |x| x.to_string())
}

fn json_list(v: &[u64]) -> String {
    format!("[{}]", v.iter().map(u64::to_string).collect::<Vec<_>>().join(","))
}

/// The keys of one stats block, with a prefix (`""` or `"raw_"`).
fn json_stats(p: &str, s: Option<&Stats>) -> Vec<(String, String)> {
    let u = |f: fn(&Stats) -> u64| json_u(s.map(f));
    vec![
        (format!("{p}msgs_per_sec"), json_f(s.map(|s| s.msgs_per_sec), 1)),
        (format!("{p}mb_per_sec"), json_f(s.map(|s| s.mb_per_sec), 3)),
        (format!("{p}lost"), u(|s| s.lost)),
        (format!("{p}loss_pct"), json_f(s.map(Stats::loss_pct), 4)),
        (format!("{p}dups"), u(|s| s.dups)),
        (format!("{p}fifo_violations"), u(|s| s.fifo_violations)),
        (format!("{p}orders"), u(|s| s.orders)),
        (format!("{p}udp_drops"), json_u(s.and_then(|s| s.udp_drops))),
        (format!("{p}p50_us"), u(|s| s.p50_us)),
        (format!("{p}p99_us"), u(|s| s.p99_us)),
        (format!("{p}p999_us"), u(|s| s.p999_us)),
        (format!("{p}cpu_us_per_msg"), json_f(s.and_then(|s| s.cpu_us_per_msg), 3)),
        (format!("{p}rtt_p50_us"), json_u(s.and_then(|s| s.rtt_us).map(|r| r[0]))),
        (format!("{p}rtt_p99_us"), json_u(s.and_then(|s| s.rtt_us).map(|r| r[1]))),
        (format!("{p}rtt_p999_us"), json_u(s.and_then(|s| s.rtt_us).map(|r| r[2]))),
        (format!("{p}peak_rss_kb"), s.map_or("null".into(), |s| json_list(&s.rss_kb))),
        (format!("{p}recv_buffer"), json_u(s.map(|s| s.granted.0 as u64))),
        (format!("{p}send_buffer"), json_u(s.map(|s| s.granted.1 as u64))),
    ]
}

/// One JSON object: a single run (`run` = its number) or the medians (`run` = "median").
pub fn json(o: &Opts, size: usize, row: &impl AsRow, run: Option<usize>) -> String {
    let (pair, ratio) = (row.pair(), row.ratio());
    let s = &pair.stack;
    let mut kv: Vec<(String, String)> = vec![
        ("run".into(), run.map_or_else(|| json_str("median"), |r| r.to_string())),
        ("runs".into(), row.runs().to_string()),
        ("stack".into(), json_str(&s.label)),
        ("driver".into(), json_str(o.driver.name())),
        ("busy_poll_us".into(), o.busy_poll.as_micros().to_string()),
        ("raw_datagram".into(), json_u(o.raw_datagram.map(|n| n as u64))),
        ("members".into(), o.members.to_string()),
        ("senders".into(), o.sender_count().to_string()),
        ("size".into(), size.to_string()),
        ("count".into(), s.count.to_string()),
        (
            "duration_s".into(),
            json_f(
                match o.amount {
                    Amount::Duration(d) => Some(d.as_secs_f64()),
                    Amount::Count(_) => None,
                },
                3,
            ),
        ),
        ("rate".into(), json_f(o.rate, 1)),
        ("rounds".into(), o.rounds.to_string()),
        ("fanout".into(), o.fanout.to_string()),
        ("rx_rejected".into(), json_u(s.rx_rejected)),
        ("bad".into(), s.bad.to_string()),
    ];
    kv.extend(json_stats("", Some(s)));
    kv.extend(json_stats("raw_", pair.raw.as_ref()));
    kv.push(("ratio".into(), json_f(ratio, 4)));
    kv.push(("secure".into(), (o.secure && o.stack != "raw").to_string()));
    kv.extend(json_stats("insecure_", pair.insecure.as_ref()));
    kv.push(("secure_ratio".into(), json_f(row.secure_ratio(), 4)));
    kv.push(("jgroups_msgs_per_sec".into(), json_f(pair.jgroups, 1)));
    kv.push(("jgroups_ratio".into(), json_f(row.jgroups_ratio(), 4)));
    let rtt_ratio = match (s.rtt_us, pair.raw.as_ref().and_then(|r| r.rtt_us)) {
        (Some(a), Some(b)) if b[0] > 0 => Some(a[0] as f64 / b[0] as f64),
        _ => None,
    };
    kv.push(("rtt_ratio".into(), json_f(rtt_ratio, 3)));
    let dg = s.idle_datagrams_per_sec();
    kv.extend([
        ("groups".into(), json_u(o.groups.map(|n| n as u64))),
        ("idle_s".into(), json_f(o.groups.map(|_| o.idle.as_secs_f64()), 1)),
        ("idle_cpu_us_per_group_s".into(), json_f(s.idle_cpu_us_per_group(), 3)),
        ("idle_cpu_pct".into(), {
            let v: Vec<u64> =
                s.idle.iter().map(|i| (100.0 * i.cpu_ns as f64 / i.wall_ns.max(1) as f64).round() as u64).collect();
            if v.is_empty() { "null".into() } else { json_list(&v) }
        }),
        ("bytes_per_group".into(), json_f(s.bytes_per_group(), 0)),
        ("idle_datagrams_per_s".into(), json_f(dg.map(|d| d.0), 1)),
        ("idle_endpoint_datagrams_per_s".into(), json_f(dg.map(|d| d.1), 1)),
    ]);
    let body: Vec<String> = kv.iter().map(|(k, v)| format!("{}:{v}", json_str(k))).collect();
    format!("{{{}}}", body.join(","))
}

/// A single pair or the medians of several, for `json`.
pub trait AsRow {
    fn pair(&self) -> &Pair;
    fn ratio(&self) -> Option<f64>;
    fn secure_ratio(&self) -> Option<f64>;
    fn jgroups_ratio(&self) -> Option<f64>;
    fn runs(&self) -> usize;
}

impl AsRow for Pair {
    fn pair(&self) -> &Pair {
        self
    }
    fn ratio(&self) -> Option<f64> {
        Pair::ratio(self)
    }
    fn secure_ratio(&self) -> Option<f64> {
        Pair::secure_ratio(self)
    }
    fn jgroups_ratio(&self) -> Option<f64> {
        Pair::jgroups_ratio(self)
    }
    fn runs(&self) -> usize {
        1
    }
}

impl AsRow for Row {
    fn pair(&self) -> &Pair {
        &self.pair
    }
    fn ratio(&self) -> Option<f64> {
        self.ratio
    }
    fn secure_ratio(&self) -> Option<f64> {
        self.secure_ratio
    }
    fn jgroups_ratio(&self) -> Option<f64> {
        self.jgroups_ratio
    }
    fn runs(&self) -> usize {
        self.runs
    }
}

/// The human table: a line per stack row and one for its raw twin, then notes.
pub fn table(o: &Opts, rows: &[(usize, Row)]) -> String {
    let head = [
        "stack",
        "members",
        "senders",
        "size",
        "msgs/s",
        "MB/s",
        "loss",
        "p50 µs",
        "p99 µs",
        "p99.9 µs",
        "raw msgs/s",
        "ratio",
    ];
    let mut cells: Vec<Vec<String>> = vec![
        head.iter().map(|h| if o.rtt && h.starts_with('p') { format!("rtt {h}") } else { h.to_string() }).collect(),
    ];
    let line = |s: &Stats, size: usize, raw: String, ratio: String| {
        let lat = s.rtt_us.unwrap_or([s.p50_us, s.p99_us, s.p999_us]);
        vec![
            s.label.clone(),
            o.members.to_string(),
            o.sender_count().to_string(),
            size.to_string(),
            thousands(s.msgs_per_sec.round() as u64),
            format!("{:.1}", s.mb_per_sec),
            format!("{} ({:.2}%)", thousands(s.lost), s.loss_pct()),
            lat[0].to_string(),
            lat[1].to_string(),
            lat[2].to_string(),
            raw,
            ratio,
        ]
    };
    for (size, row) in rows {
        let p = &row.pair;
        let raw = p.raw.as_ref().map_or("-".into(), |r| thousands(r.msgs_per_sec.round() as u64));
        cells.push(line(&p.stack, *size, raw, row.ratio.map_or("-".into(), |q| format!("{q:.3}"))));
        if let Some(r) = &p.raw {
            cells.push(line(r, *size, String::new(), String::new()));
        }
        if let Some(i) = &p.insecure {
            let q = row.secure_ratio.map_or("-".into(), |q| format!("secured/insecure {q:.3}"));
            cells.push(line(i, *size, String::new(), q));
        }
    }
    let widths: Vec<usize> =
        (0..head.len()).map(|c| cells.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for (i, r) in cells.iter().enumerate() {
        let mut l = String::new();
        for (c, cell) in r.iter().enumerate() {
            let pad = widths[c] - cell.chars().count();
            if c == 0 {
                l.push_str(cell);
                l.push_str(&" ".repeat(pad));
            } else {
                l.push_str("  ");
                l.push_str(&" ".repeat(pad));
                l.push_str(cell);
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
        if i == 0 {
            out.push_str(&"-".repeat(widths.iter().sum::<usize>() + 2 * (widths.len() - 1)));
            out.push('\n');
        }
    }
    let runs = rows.first().map_or(1, |(_, r)| r.runs);
    out.push('\n');
    if runs > 1 {
        out.push_str(&format!("medians of {runs} runs per row; ratio = median of the per-run ratios\n"));
    }
    out.push_str(if o.secure && o.stack != "raw" {
        "the stack's datagrams sealed (authenticated and encrypted) under a key made for the run\n"
    } else {
        "INSECURE: the stack's datagrams neither authenticated nor encrypted (--insecure)\n"
    });
    out.push_str(&format!(
        "driver: {}; msgs/s and MB/s (10^6 B) at the slowest receiver; loss = sent but not delivered, \
         summed over receivers;\n{}\n",
        o.driver.name(),
        if o.rtt {
            "rtt = a ping's cast to the delivery of its answer at the pinger"
        } else {
            "latency = cast to delivery over all receivers' messages (merged histograms)"
        }
    ));
    for (size, row) in rows {
        let p = &row.pair;
        if let (Some(j), Some(q)) = (p.jgroups, row.jgroups_ratio) {
            let mb = j * *size as f64 / 1e6;
            out.push_str(&format!(
                "{size} B JGroups 2.12: {} msgs/s ({mb:.1} MB/s); stack/JGroups {q:.3}\n",
                thousands(j as u64)
            ));
        }
        for s in [Some(&p.stack), p.raw.as_ref(), p.insecure.as_ref()].into_iter().flatten() {
            let rss: Vec<String> = s.rss_kb.iter().map(u64::to_string).collect();
            let mut l = format!(
                "{size} B {}: delivery orders {}; peak RSS per member {} kB; kernel UDP drops {}; socket buffers {}/{} KiB (recv/send)",
                s.label,
                s.orders,
                rss.join(" "),
                s.udp_drops.map_or("?".into(), thousands),
                s.granted.0 >> 10,
                s.granted.1 >> 10,
            );
            if let Some(c) = s.cpu_us_per_msg {
                l.push_str(&format!("; CPU {c:.2} µs per message (all members)"));
            }
            if let Some(n) = s.rx_rejected.filter(|&n| n > 0) {
                l.push_str(&format!("; datagrams the endpoints rejected: {n}"));
            }
            if let (Some(n), Some(cpu), Some(mem), Some((wire, made))) =
                (o.groups, s.idle_cpu_us_per_group(), s.bytes_per_group(), s.idle_datagrams_per_sec())
            {
                l.push_str(&format!(
                    "\n  {n} groups per member, idle {:.0} s: {cpu:.2} µs of CPU per group per second, {:.1} KiB per group; \
                     {wire:.0} datagrams/s on the wire for {made:.0} the groups sent (bundles)",
                    o.idle.as_secs_f64(),
                    mem / 1024.0
                ));
            }
            out.push_str(&l);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(rate: f64, lost: u64) -> Stats {
        Stats {
            label: "bare".into(),
            msgs_per_sec: rate,
            mb_per_sec: rate / 1000.0,
            lost,
            expected: 100,
            dups: 0,
            fifo_violations: 0,
            orders: 1,
            bad: 0,
            udp_drops: Some(lost),
            rx_rejected: None,
            p50_us: 10,
            p99_us: 20,
            p999_us: 30,
            rtt_us: None,
            rss_kb: vec![1, 2],
            count: 50,
            granted: (1, 1),
            idle: Vec::new(),
            cpu_us_per_msg: Some(2.0),
        }
    }

    #[test]
    fn medians_and_ratio() {
        let pairs: Vec<Pair> = [(90.0, 100.0, 80.0), (50.0, 100.0, 100.0), (95.0, 100.0, 95.0)]
            .iter()
            .map(|&(s, r, i)| Pair {
                stack: stats(s, 1),
                raw: Some(stats(r, 3)),
                insecure: Some(stats(i, 1)),
                jgroups: Some(r / 2.0),
            })
            .collect();
        let row = median(&pairs);
        assert_eq!(row.pair.stack.msgs_per_sec, 90.0);
        assert_eq!(row.ratio, Some(0.9));
        assert_eq!(row.secure_ratio, Some(1.0), "the median of 1.125, 0.5 and 1.0");
        assert_eq!(row.pair.insecure.as_ref().map(|s| s.msgs_per_sec), Some(95.0));
        assert_eq!((row.pair.jgroups, row.jgroups_ratio), (Some(50.0), Some(1.8)));
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(12), "12");
        assert_eq!(json_str("a\"b\\\n"), "\"a\\\"b\\\\\\u000a\"");
    }
}
