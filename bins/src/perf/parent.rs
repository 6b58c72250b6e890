//! The parent process: checks multicast, then for every row runs the stack workload and the
//! raw workload back to back with the same parameters (alternating which goes first across
//! repeats; with `--vs-insecure` the stack unprotected too, with `--jgroups` JGroups 2.12),
//! each in a fresh set of member processes, and reports (and plots, with `--plot`). The
//! stack's datagrams are sealed under a key made for the invocation, which the members read
//! from a private file (`key::KeyFile`) removed at the end.

use super::args::{Amount, MemberOpts, Mode, Opts, Show};
use super::clock::now_ns;
use super::groups::Idle;
use super::member::FINISH_CAP;
use super::procs::Procs;
use super::proto::{Ctl, MemberResult};
use super::report::{self, Pair, Stats};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

/// How long members may take to start and to set up.
const START_WAIT: Duration = Duration::from_secs(10);
/// How far in the future the senders' common start is set.
const START_LEAD: Duration = Duration::from_millis(50);
/// Progress goes to stderr once a run is longer than this, this often.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);
/// How often the parent looks at the clock while it waits.
const TICK: Duration = Duration::from_secs(1);
/// A run in which no member sends or receives anything for this long has stalled.
const STALL: Duration = Duration::from_secs(10);

pub fn main(o: Opts) -> i32 {
    match run(&o) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("thoth-perf: error: {e}");
            1
        }
    }
}

fn run(o: &Opts) -> Result<(), String> {
    let mut groups = Groups::new(o.group);
    let key = if o.secure { Some(crate::key::KeyFile::throwaway("thoth-perf")?) } else { None };
    if !o.secure {
        crate::key::warn_insecure("thoth-perf");
    }
    if !o.fanout {
        let setup = super::stack::probe_setup(groups.peek(), o.interface)?;
        super::raw::self_test(&setup, Duration::from_secs(1))?;
    }
    let amount = match o.amount {
        Amount::Duration(d) => format!("for {} s", d.as_secs_f64()),
        Amount::Count(_) => {
            let c: Vec<String> = o.sizes.iter().map(|&s| o.count_for(s).unwrap_or(0).to_string()).collect();
            format!("{} messages each", c.join("/"))
        }
    };
    let who = if o.rtt {
        "member 0 pinging, member 1 answering".to_string()
    } else {
        format!("{} sending", o.sender_count())
    };
    eprintln!(
        "thoth-perf: {} members ({who} {amount}{}), {} {} on {}, stack `{}` ({} driver, {}){}",
        o.members,
        o.rate.map_or(String::new(), |r| format!(" at {r} msgs/s")),
        if o.fanout { "unicast fan-out, ports from" } else { "multicast group" },
        groups.peek(),
        o.interface,
        o.stack,
        o.driver.name(),
        if o.secure { "sealed" } else { "INSECURE" },
        match (o.raw, o.vs_insecure) {
            (true, true) => " vs raw UDP and unprotected",
            (true, false) => " vs raw UDP",
            (false, true) => " vs unprotected",
            (false, false) => "",
        },
    );
    // Every size's repeats, for the table and the plot.
    let mut runs = Vec::new();
    let mut die_member = o.die_member;
    for &size in &o.sizes {
        let mut pairs = Vec::new();
        for k in 0..o.repeat {
            let stack_mode = if o.stack == "raw" { Mode::Raw } else { Mode::Stack(o.stack.clone()) };
            let sealed = key.as_ref().map(|k| k.path());
            let mut runs = vec![(stack_mode.clone(), sealed, Run::Stack)];
            if o.raw {
                runs.insert(usize::from(k % 2 == 0), (Mode::Raw, None, Run::Raw));
            }
            if o.vs_insecure {
                // Before the secured run half the time, as raw is.
                runs.insert(if k % 2 == 0 { 0 } else { runs.len() }, (stack_mode, None, Run::Insecure));
            }
            let (mut stack, mut raw, mut insecure) = (None, None, None);
            for (mode, key, run) in runs {
                let stats = run_once(o, size, mode, key, groups.next(), die_member.take())?;
                *match run {
                    Run::Stack => &mut stack,
                    Run::Raw => &mut raw,
                    Run::Insecure => &mut insecure,
                } = Some(stats);
            }
            // The reference failing is not Thoth failing: said, and this repeat has no figure.
            let jgroups = o.jgroups.as_ref().and_then(|script| {
                super::jgroups::run(o, script, size, o.count_for(size).unwrap_or(0))
                    .map_err(|e| eprintln!("thoth-perf: {size} B run {}: no JGroups figure: {e}", k + 1))
                    .ok()
            });
            let pair = Pair { stack: stack.expect("the stack run is always made"), raw, insecure, jgroups };
            if o.repeat > 1 {
                eprintln!("thoth-perf: {size} B run {}/{}: {}", k + 1, o.repeat, pair.summary());
                if o.json {
                    println!("{}", report::json(o, size, &pair, Some(k + 1)));
                }
            }
            pairs.push(pair);
        }
        if o.json {
            println!("{}", report::json(o, size, &report::median(&pairs), (o.repeat == 1).then_some(1)));
        }
        runs.push((size, pairs));
    }
    if !o.json {
        let rows: Vec<_> = runs.iter().map(|(size, pairs)| (*size, report::median(pairs))).collect();
        print!("{}", report::table(o, &rows));
    }
    if let Some(path) = &o.plot {
        super::plot::write(path, &title(o), &runs)?;
        eprintln!("thoth-perf: plot written to {}", path.display());
    }
    Ok(())
}

/// The chart's title: the workload, and what a point is.
fn title(o: &Opts) -> String {
    format!(
        "thoth-perf: {} members, {} sending, {} on {}, {}; {}",
        o.members,
        o.sender_count(),
        if o.fanout { "unicast fan-out" } else { "multicast" },
        o.interface,
        if o.secure { "Thoth sealed (AES-GCM)" } else { "Thoth INSECURE" },
        if o.repeat > 1 {
            format!("medians of {} runs, bars from slowest to fastest", o.repeat)
        } else {
            "one run".into()
        },
    )
}

/// Which of a repeat's runs.
enum Run {
    Stack,
    Raw,
    Insecure,
}

/// Multicast groups for the runs: the one given, or a random group and port per invocation,
/// the port moving on by one per run so runs never see each other's stragglers.
pub struct Groups {
    fixed: Option<SocketAddr>,
    ip: Ipv4Addr,
    port: u16,
}

impl Groups {
    pub fn new(fixed: Option<SocketAddr>) -> Groups {
        let mut x = now_ns() ^ (u64::from(std::process::id()) << 32);
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^= x >> 31;
        let ip = Ipv4Addr::new(239, 84, (x >> 8) as u8, ((x & 0xff) as u8).max(1));
        Groups { fixed, ip, port: 40_000 + ((x >> 16) % 10_000) as u16 }
    }

    pub fn peek(&self) -> SocketAddr {
        self.fixed.unwrap_or(SocketAddr::new(IpAddr::V4(self.ip), self.port))
    }

    fn next(&mut self) -> SocketAddr {
        let g = self.peek();
        self.port = 40_000 + (self.port - 40_000 + 1) % 10_000;
        g
    }
}

/// How long the senders may take, from the start of a round.
fn send_cap(o: &Opts, count: Option<u64>) -> Duration {
    let secs = match (o.amount, count, o.rate) {
        (Amount::Duration(d), _, _) => d.as_secs_f64(),
        (_, Some(c), Some(r)) => c as f64 / r * 1.5,
        (_, Some(c), None) => (c * o.sender_count() as u64) as f64 / 10_000.0,
        (_, None, _) => 0.0,
    };
    Duration::from_secs_f64(30.0 + secs.min(86_400.0))
}

/// One workload in a fresh set of member processes (a stack's sealed under the key in
/// `key`, if any); the last round's figures.
fn run_once(
    o: &Opts,
    size: usize,
    mode: Mode,
    key: Option<&Path>,
    group: SocketAddr,
    die: Option<usize>,
) -> Result<Stats, String> {
    let label = match &mode {
        Mode::Stack(s) if key.is_none() && o.secure => format!("{s} (insecure)"),
        Mode::Stack(s) => s.clone(),
        Mode::Raw => "raw".to_string(),
    };
    let count = o.count_for(size);
    let cap = send_cap(o, count);
    let senders = o.sender_count();
    let plan = |index: usize| MemberOpts {
        index,
        members: o.members,
        senders,
        size,
        count,
        duration: match o.amount {
            Amount::Duration(d) => Some(d),
            Amount::Count(_) => None,
        },
        rate: o.rate,
        mode: mode.clone(),
        group,
        interface: o.interface,
        fanout: o.fanout,
        rounds: o.rounds,
        name: format!("thoth-perf-{}-{group}", std::process::id()),
        cap: cap + FINISH_CAP + Duration::from_secs(10),
        die: die == Some(index),
        driver: o.driver,
        rtt: o.rtt,
        busy_poll: o.busy_poll,
        groups: o.groups,
        idle: o.idle,
        raw_datagram: o.raw_datagram,
        key: key.map(Path::to_path_buf),
    };
    let ctx = |e: String| format!("{label} run ({size} B, group {group}): {e}");
    let mut procs = Procs::spawn((0..o.members).map(|i| plan(i).to_args()).collect()).map_err(ctx)?;
    let all: Vec<usize> = (0..o.members).collect();
    let mut quiet = |_: Option<(usize, &str)>| Ok(false);
    let ready = gather(&mut procs, &all, "READY", START_WAIT, &mut quiet, |_, l| {
        let mut w = l.strip_prefix("READY ")?.split_whitespace();
        let addr = w.next()?.parse::<SocketAddr>().ok()?;
        Some((addr, w.next()?.parse::<usize>().ok()?, w.next()?.parse::<usize>().ok()?))
    })
    .map_err(ctx)?;
    let granted = ready.iter().fold((usize::MAX, usize::MAX), |g, r| (g.0.min(r.1), g.1.min(r.2)));
    procs.send_all(&Ctl::Peers(ready.iter().map(|r| r.0).collect()).line()).map_err(ctx)?;
    // Building many groups takes a while.
    let armed_wait = START_WAIT + Duration::from_millis(o.groups.unwrap_or(0) as u64 * 5);
    gather(&mut procs, &all, "ARMED", armed_wait, &mut quiet, |_, l| l.strip_prefix("ARMED ").map(|_| ()))
        .map_err(ctx)?;
    let idle = match o.groups {
        Some(_) => {
            gather(&mut procs, &all, "IDLE", o.idle + START_WAIT, &mut quiet, |_, l| Idle::parse(l)).map_err(ctx)?
        }
        None => Vec::new(),
    };
    let mut last = None;
    for round in 1..=o.rounds {
        let t0 = now_ns() + START_LEAD.as_nanos() as u64;
        procs.send_all(&Ctl::Go { round, t0 }.line()).map_err(ctx)?;
        let expected = count.map(|c| c * senders as u64);
        let stall = Duration::from_secs_f64(o.rate.map_or(0.0, |r| 3.0 / r).clamp(STALL.as_secs_f64(), 3600.0));
        let mut progress = Progress::new(&label, size, o.members, expected, stall, o.progress);
        let mut on_prog = |line: Option<(usize, &str)>| progress.line(line);
        // In a round-trip run the pinger alone says how many it sent: one answer each.
        let senders_idx: Vec<usize> = (0..if o.rtt { 1 } else { senders }).collect();
        let mut sent = gather(&mut procs, &senders_idx, "SENT", cap, &mut on_prog, |_, l| {
            let mut w = l.strip_prefix("SENT ")?.split_whitespace();
            (w.next()?.parse::<u32>().ok()? == round).then_some(())?;
            w.next()?.parse::<u64>().ok()
        })
        .map_err(ctx)?;
        if o.rtt {
            sent.push(sent[0]);
        }
        procs.send_all(&Ctl::Finish { round, sent }.line()).map_err(ctx)?;
        let wait = FINISH_CAP + Duration::from_secs(10);
        let results = gather(&mut procs, &all, "RESULT", wait, &mut on_prog, |_, l| {
            let rest = l.strip_prefix("RESULT ")?;
            let (r, fields) = rest.split_once(' ')?;
            (r.parse::<u32>().ok()? == round).then_some(())?;
            MemberResult::parse(fields).ok()
        })
        .map_err(ctx)?;
        last = Some((t0, results));
    }
    procs.finish(Duration::from_secs(5)).map_err(ctx)?;
    let (t0, results) = last.expect("at least one round");
    Ok(Stats { granted, idle, ..Stats::new(&label, size, senders, t0, &results, o.rtt) })
}

/// Waits until every member in `who` printed a line `parse` accepts; lines `other` accepts
/// are passed over, anything else is an error naming the member. `other` also sees a `None`
/// every second without a line, and may end the wait with an error.
fn gather<T>(
    procs: &mut Procs,
    who: &[usize],
    what: &str,
    wait: Duration,
    other: &mut impl FnMut(Option<(usize, &str)>) -> Result<bool, String>,
    mut parse: impl FnMut(usize, &str) -> Option<T>,
) -> Result<Vec<T>, String> {
    let deadline = Instant::now() + wait;
    let mut got: Vec<Option<T>> = (0..procs.len()).map(|_| None).collect();
    while who.iter().any(|&i| got[i].is_none()) {
        let tick = deadline.min(Instant::now() + TICK);
        let next = procs.next(tick)?;
        if next.is_none() && Instant::now() < deadline {
            other(None)?;
            continue;
        }
        let Some((i, line)) = next else {
            let missing: Vec<String> = who.iter().filter(|&&i| got[i].is_none()).map(|i| i.to_string()).collect();
            return Err(format!("member(s) {} did not report {what} within {} s", missing.join(", "), wait.as_secs()));
        };
        if who.contains(&i)
            && got[i].is_none()
            && let Some(v) = parse(i, &line)
        {
            got[i] = Some(v);
        } else if !other(Some((i, &line)))? {
            return Err(format!("member {i} printed `{line}` while {what} was expected"));
        }
    }
    Ok(who.iter().filter_map(|&i| got[i].take()).collect())
}

/// Progress of a round on stderr, as `Opts::progress` says, and the stall watch.
struct Progress<'a> {
    label: &'a str,
    size: usize,
    expected: Option<u64>,
    started: Instant,
    printed: Instant,
    moved: Instant,
    stall: Duration,
    sent: Vec<u64>,
    received: Vec<u64>,
    show: Show,
    bar: Option<indicatif::ProgressBar>,
}

impl<'a> Progress<'a> {
    fn new(
        label: &'a str,
        size: usize,
        members: usize,
        expected: Option<u64>,
        stall: Duration,
        show: Show,
    ) -> Progress<'a> {
        let now = Instant::now();
        let (sent, received) = (vec![0; members], vec![0; members]);
        let bar = (show == Show::Bar).then(|| {
            let (bar, template) = match expected {
                Some(n) => (indicatif::ProgressBar::new(n), "{prefix} [{bar:30}] {human_pos}/{human_len} sent, {msg}"),
                None => {
                    (indicatif::ProgressBar::new_spinner(), "{prefix} {spinner} {elapsed}, {human_pos} sent, {msg}")
                }
            };
            let style = indicatif::ProgressStyle::with_template(template).expect("a valid template");
            bar.set_style(style.progress_chars("=> "));
            bar.set_prefix(format!("thoth-perf: {label} {size} B"));
            bar.set_message("slowest receiver has 0");
            bar.enable_steady_tick(Duration::from_millis(250));
            bar
        });
        Progress { label, size, expected, started: now, printed: now, moved: now, stall, sent, received, show, bar }
    }

    /// Takes a `PROG` line (`Ok(false)` for any other line) or a tick (`None`); an error if
    /// nothing has moved for the stall time.
    fn line(&mut self, line: Option<(usize, &str)>) -> Result<bool, String> {
        let mut taken = false;
        if let Some((i, line)) = line {
            let Some(rest) = line.strip_prefix("PROG ") else {
                return Ok(false);
            };
            let v: Vec<u64> = rest.split_whitespace().filter_map(|w| w.parse().ok()).collect();
            let [_, sent, received] = v[..] else {
                return Ok(false);
            };
            if (sent, received) != (self.sent[i], self.received[i]) {
                self.moved = Instant::now();
            }
            self.sent[i] = sent;
            self.received[i] = received;
            taken = true;
        }
        if self.moved.elapsed() >= self.stall {
            return Err(format!(
                "stalled: no member sent or received anything for {} s (sent per member {:?}, received {:?})",
                self.stall.as_secs(),
                self.sent,
                self.received
            ));
        }
        let slowest = self.received.iter().copied().min().unwrap_or(0);
        if let Some(bar) = &self.bar {
            bar.set_position(self.sent.iter().sum());
            bar.set_message(format!("slowest receiver has {}", report::thousands(slowest)));
        } else if self.show == Show::Lines
            && self.started.elapsed() >= PROGRESS_EVERY
            && self.printed.elapsed() >= PROGRESS_EVERY
        {
            self.printed = Instant::now();
            let total: u64 = self.sent.iter().sum();
            let of = self.expected.map_or(String::new(), |e| format!(" of {}", report::thousands(e)));
            eprintln!(
                "thoth-perf: {} {} B: {:.0} s, sent {}{of}, slowest receiver has {}",
                self.label,
                self.size,
                self.started.elapsed().as_secs_f64(),
                report::thousands(total),
                report::thousands(slowest),
            );
        }
        Ok(taken)
    }
}

impl Drop for Progress<'_> {
    fn drop(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
