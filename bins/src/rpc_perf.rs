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
//! over the `reliable` stack, the driver on a thread of its own.
//!
//! Without options it runs the table: 2 and 3 members, modes `first` and `all`, one and 32
//! calls outstanding. `--json` prints one object per row with `mode, members, outstanding,
//! calls, p50_us, p99_us, p999_us, calls_per_sec, raw_p50_us, raw_p99_us`.
//!
//! Every wait is bounded (a member that does not answer in time fails the run), and every
//! process the parent starts is stopped by it (`Procs`).

use crate::perf::procs::Procs;
use hdrhistogram::Histogram;
use std::io::BufRead;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant};
use thoth::udp::{Sockets, UdpConfig, endpoint_id};
use thoth::{Bytes, Config, Endpoint, GroupId};
use thoth_grpc::{Bounds, Mode, Node, Request, RpcConfig};

const NOOP: u64 = 1;
/// How long a member may take to answer the parent at each stage.
const STAGE: Duration = Duration::from_secs(60);
const WARMUP: usize = 2_000;

#[derive(Clone, Copy, Debug)]
struct Row {
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

const USAGE: &str = "thoth-rpc-perf [--members N] [--mode first|all|majority] [--outstanding K] [--calls N] [--json]
  Without --members / --mode / --outstanding: the table (2 and 3 members, first and all, 1 and 32 outstanding).";

pub fn main(args: Vec<String>) -> i32 {
    match run(args) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("thoth-rpc-perf: {e}");
            1
        }
    }
}

fn run(args: Vec<String>) -> Result<(), String> {
    let mut a = args.into_iter();
    let (mut members, mut mode, mut outstanding, mut calls, mut json, mut me) = (None, None, None, 20_000, false, None);
    while let Some(k) = a.next() {
        let mut val = || a.next().ok_or(format!("{k} needs a value"));
        match k.as_str() {
            "--members" => members = Some(val()?.parse::<usize>().map_err(|e| e.to_string())?),
            "--mode" => {
                mode = Some(match val()?.as_str() {
                    "first" => Mode::First,
                    "all" => Mode::All,
                    "majority" => Mode::Majority,
                    m => return Err(format!("unknown mode {m}")),
                })
            }
            "--outstanding" => outstanding = Some(val()?.parse::<usize>().map_err(|e| e.to_string())?.max(1)),
            "--calls" => calls = val()?.parse::<usize>().map_err(|e| e.to_string())?,
            "--json" => json = true,
            "--member" => me = Some(val()?.parse::<usize>().map_err(|e| e.to_string())?),
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => return Err(format!("unknown option {other}\n{USAGE}")),
        }
    }
    if let Some(i) = me {
        return member(i);
    }
    if members.is_some_and(|n| !(2..=8).contains(&n)) {
        return Err("--members is 2 to 8".into());
    }
    let rows: Vec<Row> = if members.is_none() && mode.is_none() && outstanding.is_none() {
        let mut v = Vec::new();
        for members in [2, 3] {
            for mode in [Mode::First, Mode::All] {
                for outstanding in [1, 32] {
                    v.push(Row { members, mode, outstanding, calls });
                }
            }
        }
        v
    } else {
        vec![Row {
            members: members.unwrap_or(3),
            mode: mode.unwrap_or(Mode::All),
            outstanding: outstanding.unwrap_or(1),
            calls,
        }]
    };
    if !json {
        let heads: Vec<String> = FIGURES.iter().map(|(_, head, _)| format!("{head:>11}")).collect();
        println!("{:>7} {:>5} {:>11} {}", "members", "mode", "outstanding", heads.join(" "));
    }
    for row in rows {
        let r = measure(row)?;
        let (mode, n, k) = (mode_name(row.mode), row.members, row.outstanding);
        if json {
            let figures: Vec<String> =
                FIGURES.iter().zip(r).map(|((key, _, d), v)| format!("\"{key}\":{v:.d$}")).collect();
            let head = format!(
                "\"system\":\"thoth\",\"mode\":\"{mode}\",\"members\":{n},\"outstanding\":{k},\"calls\":{}",
                row.calls
            );
            println!("{{{head},{}}}", figures.join(","));
        } else {
            let figures: Vec<String> = FIGURES.iter().zip(r).map(|((_, _, d), v)| format!("{v:>11.d$}")).collect();
            println!("{n:>7} {mode:>5} {k:>11} {}", figures.join(" "));
        }
    }
    if !json {
        println!(
            "fan-out on 127.0.0.1, stack `reliable`, a driver thread per member; latency from the call to its outcome"
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
    let args = (0..row.members).map(|i| vec!["--member".to_string(), i.to_string()]).collect();
    let mut procs = Procs::spawn(args)?;
    let until = Instant::now() + STAGE;
    let mut ready = vec![String::new(); row.members];
    let mut got = 0;
    while got < row.members {
        let (i, line) = procs.next(until)?.ok_or("members did not start in time")?;
        if let Some(addrs) = line.strip_prefix("READY ") {
            ready[i] = addrs.to_string();
            got += 1;
        }
    }
    procs.send_all(&format!("PEERS {}", ready.join(" ")))?;
    let mut armed = 0;
    while armed < row.members {
        let (_, line) = procs.next(until)?.ok_or("members did not arm in time")?;
        armed += (line == "ARMED") as usize;
    }
    let mode = mode_name(row.mode);
    procs.send(0, &format!("GO {mode} {} {}", row.outstanding, row.calls))?;
    let until = Instant::now() + STAGE;
    let figures = loop {
        let (i, line) = procs.next(until)?.ok_or("member 0 did not finish in time")?;
        if let (0, Some(r)) = (i, line.strip_prefix("RESULT ")) {
            let v: Vec<f64> =
                r.split(' ').map(|x| x.parse::<f64>().map_err(|e| e.to_string())).collect::<Result<_, _>>()?;
            break Figures::try_from(v).map_err(|_| format!("bad result line {r}"))?;
        }
    };
    procs.finish(Duration::from_secs(10))?;
    Ok(figures)
}

/// A member process: a node serving the no-op, and (not member 0) a raw UDP echo; member 0
/// measures on `GO`. Lines on stdout: `READY node_addr/raw_addr`, `ARMED`, `RESULT ...`.
fn member(me: usize) -> Result<(), String> {
    let cfg = UdpConfig { fanout: true, ..UdpConfig::default() };
    let socks = Sockets::open(&cfg).map_err(|e| format!("sockets: {e}"))?;
    let raw = UdpSocket::bind("127.0.0.1:0").map_err(|e| format!("raw socket: {e}"))?;
    let raw_addr = raw.local_addr().map_err(|e| e.to_string())?;
    println!("READY {}/{}", socks.local_addr(), raw_addr);
    let mut stdin = std::io::stdin().lock().lines();
    let mut next_line =
        || -> Result<String, String> { stdin.next().ok_or("the parent went away")?.map_err(|e| e.to_string()) };
    let peers_line = next_line()?;
    let pairs: Vec<(SocketAddr, SocketAddr)> = peers_line
        .strip_prefix("PEERS ")
        .ok_or("expected PEERS")?
        .split(' ')
        .map(|p| {
            let (a, b) = p.split_once('/').ok_or("a peer is node/raw")?;
            Ok((a.parse().map_err(|e| format!("{a}: {e}"))?, b.parse().map_err(|e| format!("{b}: {e}"))?))
        })
        .collect::<Result<_, String>>()?;
    let addrs: Vec<SocketAddr> = pairs.iter().map(|p| p.0).collect();
    let ids = addrs.iter().map(|&a| endpoint_id(a)).collect();
    let group = GroupId::named("thoth-rpc-perf");
    let ep = Endpoint::from_spec(Config::new(group, socks.id(), ids), &thoth::registry(), "reliable")
        .map_err(|e| format!("stack: {e}"))?;
    let nonce = thoth::testing::random_u64();
    let node = Node::start(socks, ep, &addrs, RpcConfig { nonce, cache: Bounds::default() }, 2)
        .map_err(|e| format!("node: {e}"))?;
    node.serve_inline(NOOP, |inc| inc.responder.reply(Ok(Bytes::new())));
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
        let line = next_line()?;
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
            let (lat, rate) = calls_timed(&node, mode, outstanding, calls, want)?;
            let raw_lat = raw_timed(pairs[1].1, calls)?;
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
    node.shutdown();
    if let Some(t) = echo {
        let _ = t.join();
    }
    Ok(())
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds")
}

/// Times `calls` calls (after a warm-up) with `outstanding` in flight; each must end with
/// at least `want` good answers. Returns the latencies (ns) and calls per second.
fn calls_timed(
    node: &Node,
    mode: Mode,
    outstanding: usize,
    calls: usize,
    want: usize,
) -> Result<(Histogram<u64>, f64), String> {
    let req = || Request::group(NOOP, Bytes::new()).mode(mode).timeout(Duration::from_secs(5));
    let check = |out: &thoth_grpc::Outcome| {
        if out.values().count() >= want { Ok(()) } else { Err(format!("a call ended with {out:?}")) }
    };
    for _ in 0..WARMUP {
        check(&node.call(req()).map_err(|e| format!("{e:?}"))?)?;
    }
    let mut lat = histogram();
    let t0 = Instant::now();
    if outstanding <= 1 {
        for _ in 0..calls {
            let t = Instant::now();
            check(&node.call(req()).map_err(|e| format!("{e:?}"))?)?;
            lat.record(t.elapsed().as_nanos() as u64).ok();
        }
    } else {
        let (tx, rx) = mpsc::channel();
        let (mut sent, mut done) = (0, 0);
        while done < calls {
            while sent < calls && sent - done < outstanding {
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
    }
    let rate = calls as f64 / t0.elapsed().as_secs_f64();
    Ok((lat, rate))
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
