//! `thoth-rpc-perf`: round-trip latency and calls per second of Group RPC (`thoth_grpc::Node`)
//! calling a no-op method, with a raw UDP request / reply measured in the same run.
//!
//! The parent starts `--members` processes of this executable (`Procs`), hands them each
//! other's addresses, and has member 0 call the group (the others, and member 0 itself,
//! serve a no-op) `--calls` times after a warm-up: one call at a time (`--outstanding 1`:
//! sync calls, each timed from the call to its outcome) or with a window of outstanding
//! calls (answer handlers; calls/s is what counts there). Then member 0 times as many raw
//! UDP request / reply exchanges with member 1 (a thread echoing on a plain socket). The
//! members run in fan-out mode on 127.0.0.1 (a group call is a send to each other member),
//! over the `reliable` stack, in one of two ways (`--driver`):
//! - `thread`: a `thoth_grpc::Node` (the driver on a thread of its own, an event thread
//!   running the no-op inline, the caller on the main thread: the API for many threads);
//! - `inline`: the `Rpc` machine run by the process's one thread (`thoth::udp::inline`),
//!   which calls, answers and reads the sockets itself, spinning on them for `BUSY_POLL`
//!   before it sleeps: no thread hand-off anywhere on a call's path.
//!
//! Without options it runs the table: 2 and 3 members, modes `first` and `all`, one and 32
//! calls outstanding, both drivers. `--json` prints one object per row with `driver, mode,
//! members, outstanding, calls, p50_us, p99_us, p999_us, calls_per_sec, raw_p50_us,
//! raw_p99_us`.
//!
//! Every wait is bounded (a member that does not answer in time fails the run), and every
//! process the parent starts is stopped by it (`Procs`).

use crate::peers::{self, Joined, Lines};
use hdrhistogram::Histogram;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant};
use thoth::udp::{Inline, inline};
use thoth::{Bytes, Endpoint};
use thoth_grpc::{CallId, Mode, Node, Outcome, Request, Rpc, RpcCmd, RpcConfig, RpcEvent};

const NOOP: u64 = 1;
const WARMUP: usize = 2_000;
/// How long an inline member reads its sockets before it sleeps (`UdpConfig::busy_poll`).
const BUSY_POLL: Duration = Duration::from_millis(2);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Driver {
    Thread,
    Inline,
}

impl Driver {
    fn name(self) -> &'static str {
        match self {
            Driver::Thread => "thread",
            Driver::Inline => "inline",
        }
    }
    fn parse(s: &str) -> Result<Driver, String> {
        match s {
            "thread" => Ok(Driver::Thread),
            "inline" => Ok(Driver::Inline),
            _ => Err("thread or inline".into()),
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Row {
    driver: Driver,
    members: usize,
    mode: Mode,
    outstanding: usize,
    calls: usize,
}

fn mode_name(m: Mode) -> &'static str {
    match m {
        Mode::First => "first",
        Mode::All => "all",
        Mode::Majority => "majority",
        Mode::None => "none",
    }
}

/// What `--help` prints before the options.
const ABOUT: &str = "\
Group RPC calls per second and their latency, members as processes of their own. Without
--members / --mode / --outstanding: the table (2 and 3 members, first and all, 1 and 32
outstanding), with both drivers unless --driver says one.";

/// The command line as clap parses it.
#[derive(clap::Parser, Debug)]
#[command(name = "thoth-rpc-perf", version, about = ABOUT, max_term_width = 100)]
struct Cli {
    /// thread or inline (default: both, one after another)
    #[arg(long, value_name = "DRIVER", value_parser = Driver::parse)]
    driver: Option<Driver>,
    /// Members, each a process of its own (2 to 8)
    #[arg(long, value_name = "N")]
    members: Option<usize>,
    /// Responses a call waits for: first, all or majority
    #[arg(long, value_name = "MODE", value_parser = mode)]
    mode: Option<Mode>,
    /// Calls in flight
    #[arg(long, value_name = "K")]
    outstanding: Option<usize>,
    /// Calls measured
    #[arg(long, value_name = "N", default_value_t = 20_000)]
    calls: usize,
    /// One JSON object per row instead of the table
    #[arg(long)]
    json: bool,
    /// A member process (the parent starts them)
    #[arg(long, hide = true, value_name = "RANK")]
    member: Option<usize>,
}

fn mode(s: &str) -> Result<Mode, String> {
    match s {
        "first" => Ok(Mode::First),
        "all" => Ok(Mode::All),
        "majority" => Ok(Mode::Majority),
        _ => Err("one of first, all, majority".into()),
    }
}

pub fn main(args: Vec<String>) -> i32 {
    let cli = match crate::cli::parse::<Cli>("thoth-rpc-perf", &args) {
        Ok(cli) => cli,
        Err(stop) => return crate::cli::stop("thoth-rpc-perf", stop),
    };
    match run(cli) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("thoth-rpc-perf: {e}");
            1
        }
    }
}

fn run(cli: Cli) -> Result<(), String> {
    let Cli { driver, members, mode, outstanding, calls, json, member: me } = cli;
    let outstanding = outstanding.map(|k| k.max(1));
    if let Some(i) = me {
        return member(i, driver.unwrap_or(Driver::Thread));
    }
    let drivers = driver.map_or(vec![Driver::Thread, Driver::Inline], |d| vec![d]);
    if members.is_some_and(|n| !(2..=8).contains(&n)) {
        return Err("--members is 2 to 8".into());
    }
    let rows: Vec<Row> = if members.is_none() && mode.is_none() && outstanding.is_none() {
        let mut v = Vec::new();
        for &driver in &drivers {
            for members in [2, 3] {
                for mode in [Mode::First, Mode::All] {
                    for outstanding in [1, 32] {
                        v.push(Row { driver, members, mode, outstanding, calls });
                    }
                }
            }
        }
        v
    } else {
        let (members, mode, outstanding) = (members.unwrap_or(3), mode.unwrap_or(Mode::All), outstanding.unwrap_or(1));
        drivers.iter().map(|&driver| Row { driver, members, mode, outstanding, calls }).collect()
    };
    if !json {
        let heads: Vec<String> = FIGURES.iter().map(|(_, head, _)| format!("{head:>11}")).collect();
        println!("{:>6} {:>7} {:>5} {:>11} {}", "driver", "members", "mode", "outstanding", heads.join(" "));
    }
    for row in rows {
        let r = measure(row)?;
        let (driver, mode, n, k) = (row.driver.name(), mode_name(row.mode), row.members, row.outstanding);
        if json {
            let figures: Vec<String> =
                FIGURES.iter().zip(r).map(|((key, _, d), v)| format!("\"{key}\":{v:.d$}")).collect();
            let head = format!(
                "\"system\":\"thoth\",\"driver\":\"{driver}\",\"mode\":\"{mode}\",\"members\":{n},\"outstanding\":{k},\"calls\":{}",
                row.calls
            );
            println!("{{{head},{}}}", figures.join(","));
        } else {
            let figures: Vec<String> = FIGURES.iter().zip(r).map(|((_, _, d), v)| format!("{v:>11.d$}")).collect();
            println!("{driver:>6} {n:>7} {mode:>5} {k:>11} {}", figures.join(" "));
        }
    }
    if !json {
        println!(
            "fan-out on 127.0.0.1, stack `reliable`; thread: a Node per member (driver and event threads), inline: the \
             machine on each member's one thread, spinning on its sockets; latency from the call to its outcome"
        );
    }
    Ok(())
}

/// What a row reports, in the order member 0 prints it: JSON key, table heading, decimals.
const FIGURES: [(&str, &str, usize); 6] = [
    ("p50_us", "p50_us", 1),
    ("p99_us", "p99_us", 1),
    ("p999_us", "p999_us", 1),
    ("calls_per_sec", "calls/s", 0),
    ("raw_p50_us", "raw_p50", 1),
    ("raw_p99_us", "raw_p99", 1),
];

/// One row's figures, as `FIGURES` lists them.
type Figures = [f64; 6];

/// Runs one row: starts the members, has member 0 measure, stops them.
fn measure(row: Row) -> Result<Figures, String> {
    let args = (0..row.members)
        .map(|i| vec!["--member".to_string(), i.to_string(), "--driver".to_string(), row.driver.name().to_string()])
        .collect();
    let mut procs = peers::start(args)?;
    let mode = mode_name(row.mode);
    procs.send(0, &format!("GO {mode} {} {}", row.outstanding, row.calls))?;
    let v = peers::result(&mut procs, 0)?;
    let figures = Figures::try_from(v).map_err(|v| format!("bad result {v:?}"))?;
    procs.finish(Duration::from_secs(10))?;
    Ok(figures)
}

/// A member process: a node serving the no-op, and (not member 0) a raw UDP echo; member 0
/// measures on `GO`. Lines on stdout: `READY node_addr/raw_addr`, `ARMED`, `RESULT ...`.
fn member(me: usize, driver: Driver) -> Result<(), String> {
    let busy_poll = if driver == Driver::Inline { BUSY_POLL } else { Duration::ZERO };
    let raw = UdpSocket::bind("127.0.0.1:0").map_err(|e| format!("raw socket: {e}"))?;
    let raw_addr = raw.local_addr().map_err(|e| e.to_string())?;
    let joined = Joined::meet(busy_poll, &raw_addr.to_string())?;
    let raw_peers: Vec<SocketAddr> =
        joined.extra.iter().map(|a| a.parse().map_err(|e| format!("{a}: {e}"))).collect::<Result<_, String>>()?;
    let ep = Endpoint::from_spec(joined.config("thoth-rpc-perf"), &thoth::registry(), "reliable")
        .map_err(|e| format!("stack: {e}"))?;
    let Joined { socks, lines, addrs, .. } = joined;
    let rpc_cfg = RpcConfig::fresh();
    let mut runner = match driver {
        Driver::Thread => {
            let node = Node::start(socks, ep, &addrs, rpc_cfg, 2).map_err(|e| format!("node: {e}"))?;
            node.serve_inline(NOOP, |inc| inc.responder.reply(Ok(Bytes::new())));
            Runner::Thread(node)
        }
        Driver::Inline => {
            let rpc = inline(socks, Rpc::new(ep, rpc_cfg), &addrs).map_err(|e| format!("inline: {e}"))?;
            Runner::Inline(Box::new(rpc))
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    let echo = (me != 0).then(|| {
        let stop = stop.clone();
        raw.set_read_timeout(Some(Duration::from_millis(50))).ok();
        thread::spawn(move || {
            let mut buf = [0u8; 64];
            while !stop.load(Ordering::Relaxed) {
                if let Ok((n, from)) = raw.recv_from(&mut buf) {
                    let _ = raw.send_to(&buf[..n], from);
                }
            }
        })
    });
    println!("ARMED");
    loop {
        let line = runner.next_line(&lines)?;
        if line == "QUIT" {
            break;
        }
        if let Some(go) = line.strip_prefix("GO ") {
            let f: Vec<&str> = go.split(' ').collect();
            let [mode, outstanding, calls] = f[..] else { return Err(format!("bad GO line {go}")) };
            let mode = match mode {
                "first" => Mode::First,
                "majority" => Mode::Majority,
                _ => Mode::All,
            };
            let outstanding: usize = outstanding.parse().map_err(|e| format!("{e}"))?;
            let calls: usize = calls.parse().map_err(|e| format!("{e}"))?;
            let want = if mode == Mode::All { addrs.len() } else { 1 };
            let (lat, rate) = runner.calls_timed(mode, outstanding, calls, want)?;
            let raw_lat = raw_timed(raw_peers[1], calls)?;
            let us = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
            println!(
                "RESULT {} {} {} {} {} {}",
                us(&lat, 0.5),
                us(&lat, 0.99),
                us(&lat, 0.999),
                rate,
                us(&raw_lat, 0.5),
                us(&raw_lat, 0.99)
            );
        }
    }
    stop.store(true, Ordering::Relaxed);
    runner.shutdown();
    if let Some(t) = echo {
        let _ = t.join();
    }
    Ok(())
}

/// A member's Group RPC, run either way (`Driver`).
enum Runner {
    Thread(Node),
    Inline(Box<Inline<Rpc>>),
}

impl Runner {
    /// The parent's next line; an inline member serves requests while it waits.
    fn next_line(&mut self, lines: &Lines) -> Result<String, String> {
        let gone = || "the parent went away".to_string();
        match self {
            Runner::Thread(_) => lines.recv().map_err(|_| gone())?,
            Runner::Inline(rpc) => loop {
                match lines.try_recv() {
                    Ok(line) => return line,
                    Err(mpsc::TryRecvError::Disconnected) => return Err(gone()),
                    Err(mpsc::TryRecvError::Empty) => step(rpc, Duration::from_millis(10), &mut Vec::new())?,
                }
            },
        }
    }

    /// Times `calls` calls (after a warm-up) with `outstanding` in flight; each must end
    /// with at least `want` good answers. Returns the latencies (ns) and calls per second.
    fn calls_timed(
        &mut self,
        mode: Mode,
        outstanding: usize,
        calls: usize,
        want: usize,
    ) -> Result<(Histogram<u64>, f64), String> {
        let req = || Request::group(NOOP, Bytes::new()).mode(mode).timeout(Duration::from_secs(5));
        let check = move |out: &Outcome| {
            if out.values().count() >= want { Ok(()) } else { Err(format!("a call ended with {out:?}")) }
        };
        let run = |r: &mut Runner, n: usize| match r {
            Runner::Thread(node) => node_calls(node, &req, &check, outstanding, n),
            Runner::Inline(rpc) => inline_calls(rpc, &req, &check, outstanding, n),
        };
        run(self, WARMUP)?;
        let t0 = Instant::now();
        let lat = run(self, calls)?;
        Ok((lat, calls as f64 / t0.elapsed().as_secs_f64()))
    }

    fn shutdown(self) {
        match self {
            Runner::Thread(node) => node.shutdown(),
            Runner::Inline(rpc) => drop(rpc.shutdown()),
        }
    }
}

/// `n` calls through a node, `outstanding` in flight (sync calls when one); their latencies.
fn node_calls(
    node: &Node,
    req: &dyn Fn() -> Request,
    check: &dyn Fn(&Outcome) -> Result<(), String>,
    outstanding: usize,
    n: usize,
) -> Result<Histogram<u64>, String> {
    let mut lat = histogram();
    if outstanding <= 1 {
        for _ in 0..n {
            let t = Instant::now();
            check(&node.call(req()).map_err(|e| format!("{e:?}"))?)?;
            lat.record(t.elapsed().as_nanos() as u64).ok();
        }
        return Ok(lat);
    }
    let (tx, rx) = mpsc::channel();
    let (mut sent, mut done) = (0, 0);
    while done < n {
        while sent < n && sent - done < outstanding {
            let (tx, t) = (tx.clone(), Instant::now());
            node.call_then(req(), move |r| {
                let _ = tx.send(r.map(|o| (o, t.elapsed())));
            })
            .map_err(|e| format!("{e:?}"))?;
            sent += 1;
        }
        let r = rx.recv_timeout(Duration::from_secs(10)).map_err(|_| "no call ended in 10 s")?;
        let (out, d) = r.map_err(|e| format!("{e:?}"))?;
        check(&out)?;
        lat.record(d.as_nanos() as u64).ok();
        done += 1;
    }
    Ok(lat)
}

/// `n` calls through the inline machine, `outstanding` in flight, answering requests
/// meanwhile; their latencies.
fn inline_calls(
    rpc: &mut Inline<Rpc>,
    req: &dyn Fn() -> Request,
    check: &dyn Fn(&Outcome) -> Result<(), String>,
    outstanding: usize,
    n: usize,
) -> Result<Histogram<u64>, String> {
    let mut lat = histogram();
    let mut started: Vec<(CallId, Instant)> = Vec::new();
    let (mut next, mut sent, mut done) = (0 as CallId, 0, 0);
    let mut ended = Vec::new();
    let mut progress = Instant::now();
    while done < n {
        while sent < n && started.len() < outstanding.max(1) {
            next += 1;
            rpc.command(RpcCmd::Call { id: next, req: req() }).map_err(|e| format!("call: {e:?}"))?;
            started.push((next, Instant::now()));
            sent += 1;
        }
        step(rpc, Duration::from_millis(100), &mut ended)?;
        for (id, out) in ended.drain(..) {
            let at = started.iter().position(|s| s.0 == id).ok_or(format!("call {id} ended twice"))?;
            let (_, t) = started.swap_remove(at);
            check(&out)?;
            lat.record(t.elapsed().as_nanos() as u64).ok();
            done += 1;
            progress = Instant::now();
        }
        if progress.elapsed() > Duration::from_secs(10) {
            return Err("no call ended in 10 s".into());
        }
    }
    Ok(lat)
}

/// One receive of the inline machine (waiting up to `timeout`): answers requests with the
/// no-op's empty result, adds the calls that ended to `ended`.
fn step(rpc: &mut Inline<Rpc>, timeout: Duration, ended: &mut Vec<(CallId, Outcome)>) -> Result<(), String> {
    let mut evs = Vec::new();
    rpc.recv_many(&mut evs, timeout);
    for ev in evs {
        match ev {
            RpcEvent::Request { caller, reply: true, .. } => {
                let reply = RpcCmd::Reply { to: caller, result: Ok(Bytes::new()) };
                rpc.command(reply).map_err(|e| format!("reply: {e:?}"))?;
            }
            RpcEvent::Done { id, outcome } => ended.push((id, outcome)),
            RpcEvent::Refused { id, why } => return Err(format!("call {id} refused: {why:?}")),
            _ => {}
        }
    }
    Ok(())
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds")
}

/// Times `n` raw UDP request / reply exchanges with the echo at `to`.
fn raw_timed(to: SocketAddr, n: usize) -> Result<Histogram<u64>, String> {
    let s = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_millis(200))).map_err(|e| e.to_string())?;
    let mut lat = histogram();
    let mut buf = [0u8; 64];
    let (mut ok, mut tries) = (0, 0);
    while ok < n + WARMUP {
        tries += 1;
        if tries > 2 * (n + WARMUP) {
            return Err("the raw echo lost too many requests".into());
        }
        let t = Instant::now();
        s.send_to(&(ok as u64).to_le_bytes(), to).map_err(|e| e.to_string())?;
        // A reply lost or late is asked again; a stale one is skipped.
        if let Ok((8, _)) = s.recv_from(&mut buf)
            && buf[..8] == (ok as u64).to_le_bytes()
        {
            if ok >= WARMUP {
                lat.record(t.elapsed().as_nanos() as u64).ok();
            }
            ok += 1;
        }
    }
    Ok(lat)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Stop;

    fn parse(line: &str) -> Result<Cli, Stop> {
        crate::cli::parse_line("thoth-rpc-perf", line)
    }

    #[test]
    fn options_help_and_refusals() {
        let c = parse("--driver inline --members 3 --mode majority --outstanding 4 --calls 10 --json").unwrap();
        assert!(matches!(
            (c.driver, c.members, c.mode, c.outstanding, c.calls, c.json),
            (Some(Driver::Inline), Some(3), Some(Mode::Majority), Some(4), 10, true)
        ));
        let d = parse("").unwrap();
        assert!(matches!((d.driver, d.members, d.mode, d.outstanding, d.calls), (None, None, None, None, 20_000)));
        let Err(Stop::Help(help)) = parse("--help") else { panic!("no help") };
        for o in ["--driver", "--members", "--mode", "--outstanding", "--calls", "--json", "--version"] {
            assert!(help.contains(o), "{o} is not in --help:\n{help}");
        }
        assert!(!help.contains("--member "), "the member processes' option is hidden");
        assert!(matches!(parse("--mode none"), Err(Stop::Wrong(w)) if w.contains("majority")));
        assert!(matches!(parse("--driver x"), Err(Stop::Wrong(w)) if w.contains("inline")));
        assert!(matches!(parse("--bogus"), Err(Stop::Wrong(w)) if w.contains("unknown option `--bogus`")));
    }
}
