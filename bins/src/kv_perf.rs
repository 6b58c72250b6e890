//! `thoth-kv-perf`: writes and reads per second, and their latency, of the replicated
//! key-value store (`kv::Store`) under each replication strategy, 3 replicas.
//!
//! The parent starts `--replicas` member processes of this executable (`peers`); each runs
//! a `thoth_grpc::Replica` of the store on its one thread (the inline driver, spinning on its
//! sockets), over the `total` stack in fan-out mode on 127.0.0.1. Member 1 (not the first
//! member: under primary-backup and client-server the first member runs the calls, so its
//! own would be local) drives: a warm-up, then `--ops` puts of `--size`-byte values over
//! 1,024 keys with `--outstanding` in flight (each refill handed over together, as an
//! application with many operations to make does: active and cached writes then go as
//! batches), then as many gets the same way (per second:
//! the whole run); then a quarter as many of each one at a time (latency: from the command
//! to its outcome). Where the strategy lets reads run on the local replica (`cached`), the
//! gets are `Replica::read_local` calls, as an application makes them.
//!
//! Without `--strategy` it runs all four. `--json` prints one object per strategy with
//! `strategy, replicas, outstanding, ops, size, writes_per_sec, reads_per_sec, write_p50_us,
//! write_p99_us, read_p50_us, read_p99_us`.

use crate::kv::{Op, Store};
use crate::peers::{self, Joined};
use hdrhistogram::Histogram;
use std::time::{Duration, Instant};
use thoth::udp::{Inline, inline};
use thoth::{Bytes, Config, Endpoint};
use thoth_grpc::{CallId, ObjCmd, ObjConfig, ObjEvent, Replica, Rpc, RpcConfig, Strategy};

const WARMUP: usize = 2_000;
const KEYS: usize = 1_024;
/// How long a member reads its sockets before it sleeps.
const BUSY_POLL: Duration = Duration::from_millis(2);
/// The member that drives.
const DRIVER: usize = 1;

const STRATEGIES: [(&str, Strategy); 4] = [
    ("active", Strategy::Active),
    ("primary-backup", Strategy::PrimaryBackup),
    ("client-server", Strategy::ClientServer),
    ("cached", Strategy::Cached),
];

/// The command line as clap parses it.
#[derive(clap::Parser, Debug)]
#[command(name = "thoth-kv-perf", version, max_term_width = 100)]
#[command(about = "Throughput and latency of the replicated key-value store, per replication strategy")]
struct Cli {
    /// active, primary-backup, client-server or cached (default: all four, one after another)
    #[arg(long, value_name = "STRATEGY", value_parser = strategy)]
    strategy: Option<(&'static str, Strategy)>,
    /// Replicas, each a process of its own (2 to 8)
    #[arg(long, value_name = "N", default_value_t = 3)]
    replicas: usize,
    /// Operations measured
    #[arg(long, value_name = "N", default_value_t = 20_000)]
    ops: usize,
    /// Bytes per value
    #[arg(long, value_name = "BYTES", default_value_t = 1024)]
    size: usize,
    /// Operations in flight
    #[arg(long, value_name = "K", default_value_t = 32)]
    outstanding: usize,
    /// One JSON object per strategy instead of the table
    #[arg(long)]
    json: bool,
    /// A replica process (the parent starts them)
    #[arg(long, hide = true, value_name = "STRATEGY", value_parser = strategy)]
    member: Option<(&'static str, Strategy)>,
}

pub fn main(args: Vec<String>) -> i32 {
    let cli = match crate::cli::parse::<Cli>("thoth-kv-perf", &args) {
        Ok(cli) => cli,
        Err(stop) => return crate::cli::stop("thoth-kv-perf", stop),
    };
    match run(cli) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("thoth-kv-perf: {e}");
            1
        }
    }
}

struct Row {
    name: &'static str,
    replicas: usize,
    ops: usize,
    size: usize,
    outstanding: usize,
}

fn strategy(name: &str) -> Result<(&'static str, Strategy), String> {
    let names: Vec<&str> = STRATEGIES.iter().map(|(n, _)| *n).collect();
    STRATEGIES.iter().copied().find(|(n, _)| *n == name).ok_or(format!("one of {}", names.join(", ")))
}

fn run(cli: Cli) -> Result<(), String> {
    let Cli { strategy: only, replicas, ops, size, outstanding, json, member } = cli;
    let outstanding = outstanding.max(1);
    if let Some((_, s)) = member {
        return serve(s);
    }
    if !(2..=8).contains(&replicas) {
        return Err("--replicas is 2 to 8".into());
    }
    if !json {
        println!(
            "{:>15} {:>8} {:>11} {:>10} {:>9} {:>9} {:>10} {:>9} {:>9}",
            "strategy",
            "replicas",
            "outstanding",
            "writes/s",
            "w_p50_us",
            "w_p99_us",
            "reads/s",
            "r_p50_us",
            "r_p99_us"
        );
    }
    for (name, _) in only.map_or(STRATEGIES.to_vec(), |s| vec![s]) {
        let row = Row { name, replicas, ops, size, outstanding };
        let [wps, rps, w50, w99, r50, r99] = measure(&row)?;
        if json {
            println!(
                "{{\"system\":\"thoth\",\"strategy\":\"{name}\",\"replicas\":{replicas},\"outstanding\":{outstanding},\
                 \"ops\":{ops},\"size\":{size},\"writes_per_sec\":{wps:.0},\"reads_per_sec\":{rps:.0},\
                 \"write_p50_us\":{w50:.2},\"write_p99_us\":{w99:.2},\"read_p50_us\":{r50:.3},\"read_p99_us\":{r99:.3}}}"
            );
        } else {
            println!(
                "{name:>15} {replicas:>8} {outstanding:>11} {wps:>10.0} {w50:>9.1} {w99:>9.1} {rps:>10.0} {r50:>9.3} {r99:>9.3}"
            );
        }
    }
    if !json {
        println!(
            "member processes on 127.0.0.1, stack `total`, inline driver; member {DRIVER} drives; per second with `outstanding` in flight, latency one operation at a time, from the command to its outcome"
        );
    }
    Ok(())
}

/// One strategy's row: starts the replicas, has the driver measure, stops them.
fn measure(row: &Row) -> Result<[f64; 6], String> {
    let args = (0..row.replicas).map(|_| vec!["--member".into(), row.name.into()]).collect();
    let mut procs = peers::start(args)?;
    procs.send(DRIVER, &format!("GO {} {} {}", row.ops, row.size, row.outstanding))?;
    let v = peers::result(&mut procs, DRIVER)?;
    procs.send_all("QUIT")?;
    procs.finish(Duration::from_secs(10))?;
    v.try_into().map_err(|v| format!("bad result {v:?}"))
}

/// A replica process: serves until `QUIT`; on `GO ops size outstanding`, measures.
fn serve(strategy: Strategy) -> Result<(), String> {
    let joined = Joined::meet(BUSY_POLL, "-")?;
    let cfg = Config { transfer_state: true, ..joined.config("thoth-kv-perf") };
    let ep = Endpoint::from_spec(cfg, &thoth::registry(), "total").map_err(|e| format!("stack: {e}"))?;
    let rpc = Rpc::new(ep, RpcConfig::fresh());
    let replica = Replica::new(rpc, Store::default(), ObjConfig::new(strategy));
    let Joined { socks, lines, addrs, .. } = joined;
    let mut m = inline(socks, replica, &addrs).map_err(|e| format!("inline: {e}"))?;
    println!("ARMED");
    loop {
        let line = loop {
            match lines.try_recv() {
                Ok(line) => break line?,
                Err(std::sync::mpsc::TryRecvError::Disconnected) => return Err("the parent went away".into()),
                Err(std::sync::mpsc::TryRecvError::Empty) => step(&mut m, Duration::from_millis(10), &mut Vec::new())?,
            }
        };
        if line == "QUIT" {
            break;
        }
        if let Some(go) = line.strip_prefix("GO ") {
            let f: Vec<usize> =
                go.split(' ').map(|x| x.parse().map_err(|e| format!("{x}: {e}"))).collect::<Result<_, String>>()?;
            let [ops, size, outstanding] = f[..] else { return Err(format!("bad GO line {go}")) };
            let value = Bytes::from(vec![7u8; size]);
            let put = |k: usize| Op::Put(Bytes::from(format!("key{}", k % KEYS)), value.clone()).encode();
            let get = |k: usize| Op::Get(Bytes::from(format!("key{}", k % KEYS))).encode();
            let (write, read) = (|k| ObjCmd::Write { id: 0, op: put(k) }, |k| ObjCmd::Read { id: 0, op: get(k) });
            run_ops(&mut m, &write, outstanding, WARMUP)?;
            // Per second: `outstanding` in flight; latency: one at a time.
            let rate = |m: &mut Inline<Replica<Store>>, f: &dyn Fn(usize) -> ObjCmd| {
                let t = Instant::now();
                run_ops(m, f, outstanding, ops).map(|_| ops as f64 / t.elapsed().as_secs_f64())
            };
            let wps = rate(&mut m, &write)?;
            let w = run_ops(&mut m, &write, 1, ops / 4)?;
            // Where the strategy lets reads run on the local replica, they do so, as an
            // application would (`Replica::read_local`); elsewhere they are operations.
            let (rps, r) = if m.machine().read_local(&get(0)).is_some() {
                let t = Instant::now();
                local_reads(&m, &get, ops)?;
                (ops as f64 / t.elapsed().as_secs_f64(), local_reads(&m, &get, ops / 4)?)
            } else {
                (rate(&mut m, &read)?, run_ops(&mut m, &read, 1, ops / 4)?)
            };
            let us = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
            println!("RESULT {wps} {rps} {} {} {} {}", us(&w, 0.5), us(&w, 0.99), us(&r, 0.5), us(&r, 0.99));
        }
    }
    m.shutdown();
    Ok(())
}

/// `n` operations made by `op` (its id replaced), `outstanding` in flight; their latencies.
fn run_ops(
    m: &mut Inline<Replica<Store>>,
    op: &dyn Fn(usize) -> ObjCmd,
    outstanding: usize,
    n: usize,
) -> Result<Histogram<u64>, String> {
    let mut lat = Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds");
    let mut started: Vec<(CallId, Instant)> = Vec::new();
    let (mut next, mut sent, mut done) = (0 as CallId, 0, 0);
    let mut ended = Vec::new();
    let mut refill = std::collections::VecDeque::new();
    let mut progress = Instant::now();
    while done < n {
        // The operations that fit go in together, as an application with many to make
        // hands them over (writes then go as batches where the strategy makes them).
        while sent < n && started.len() + refill.len() < outstanding {
            next += 1;
            refill.push_back(match op(sent) {
                ObjCmd::Write { op, .. } => ObjCmd::Write { id: next, op },
                ObjCmd::Read { op, .. } => ObjCmd::Read { id: next, op },
                other => other,
            });
            started.push((next, Instant::now()));
            sent += 1;
        }
        while !refill.is_empty() {
            m.command_batch(&mut refill).map_err(|e| format!("an operation: {e}"))?;
        }
        step(m, Duration::from_millis(100), &mut ended)?;
        for (id, ok) in ended.drain(..) {
            let at = started.iter().position(|s| s.0 == id).ok_or(format!("operation {id} ended twice"))?;
            let (_, t) = started.swap_remove(at);
            if !ok {
                return Err(format!("operation {id} failed"));
            }
            lat.record(t.elapsed().as_nanos().max(1) as u64).ok();
            done += 1;
            progress = Instant::now();
        }
        if progress.elapsed() > Duration::from_secs(10) {
            return Err("no operation ended in 10 s".into());
        }
    }
    Ok(lat)
}

/// `n` reads on the local replica, each timed.
fn local_reads(m: &Inline<Replica<Store>>, get: &dyn Fn(usize) -> Bytes, n: usize) -> Result<Histogram<u64>, String> {
    let mut lat = Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds");
    for k in 0..n {
        let op = get(k);
        let t = Instant::now();
        let r = m.machine().read_local(&op).ok_or("no local read here")?;
        let d = t.elapsed();
        r?;
        lat.record(d.as_nanos().max(1) as u64).ok();
    }
    Ok(lat)
}

/// One receive of the replica (waiting up to `timeout`): the operations that ended, and
/// whether each succeeded.
fn step(m: &mut Inline<Replica<Store>>, timeout: Duration, ended: &mut Vec<(CallId, bool)>) -> Result<(), String> {
    let mut evs = Vec::new();
    m.recv_many(&mut evs, timeout);
    for ev in evs {
        match ev {
            ObjEvent::Done { id, result } => ended.push((id, result.is_ok())),
            ObjEvent::Endpoint(thoth::Event::Error { layer, detail }) => return Err(format!("{layer}: {detail}")),
            ObjEvent::Endpoint(_) => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Stop;

    fn parse(line: &str) -> Result<Cli, Stop> {
        crate::cli::parse_line("thoth-kv-perf", line)
    }

    #[test]
    fn options_help_and_refusals() {
        let c = parse("--strategy cached --replicas 4 --ops 10 --size 8 --outstanding 2 --json").unwrap();
        assert_eq!(
            (c.strategy.map(|s| s.0), c.replicas, c.ops, c.size, c.outstanding, c.json),
            (Some("cached"), 4, 10, 8, 2, true)
        );
        let d = parse("").unwrap();
        assert_eq!((d.strategy, d.replicas, d.ops, d.size, d.outstanding), (None, 3, 20_000, 1024, 32));
        let Err(Stop::Help(help)) = parse("--help") else { panic!("no help") };
        for o in ["--strategy", "--replicas", "--ops", "--size", "--outstanding", "--json", "--version"] {
            assert!(help.contains(o), "{o} is not in --help:\n{help}");
        }
        assert!(!help.contains("--member"), "the replica processes' option is hidden");
        assert!(matches!(parse("--strategy x"), Err(Stop::Wrong(w)) if w.contains("primary-backup")));
        assert!(matches!(parse("--bogus"), Err(Stop::Wrong(w)) if w.contains("unknown option `--bogus`")));
    }
}
