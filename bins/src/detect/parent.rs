//! The parent process: checks multicast, starts the CPU load, then for each detector runs a
//! fresh group of member processes (`perf::procs::Procs`, which kills and reaps them on
//! every path), kills the last member at `duration - after`, stops the rest `after` later,
//! and reports.

use super::args::{MemberOpts, Opts};
use super::load::Load;
use super::report::{self, Figures, Run, Suspicion};
use crate::perf::clock::now_ns;
use crate::perf::parent::Groups;
use crate::perf::procs::Procs;
use crate::perf::proto::Ctl;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How long members may take to start, to set up, and to finish after `QUIT`.
const START_WAIT: Duration = Duration::from_secs(10);
const FINISH_WAIT: Duration = Duration::from_secs(10);
/// Progress goes to stderr this often during a run.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);
/// The load threads stop by themselves this long after the runs should have ended.
const LOAD_SLACK: Duration = Duration::from_secs(60);

pub fn main(o: Opts) -> i32 {
    match run(&o) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("thoth-detect: error: {e}");
            1
        }
    }
}

fn run(o: &Opts) -> Result<(), String> {
    // A random group per invocation and a fresh one per detector, so no run sees another's
    // stragglers.
    let group = || Groups::new(None).peek();
    let iface = o.interface;
    let setup = crate::perf::stack::probe_setup(group(), iface)?;
    crate::perf::raw::self_test(&setup, Duration::from_secs(1))?;
    eprintln!(
        "thoth-detect: {} members on a random multicast group 239.84.x.y on {iface}, {} s per detector ({}), member \
         {} killed {} s before the end, {} CPU-burning thread(s)",
        o.members,
        o.duration.as_secs_f64(),
        o.detectors.join(", "),
        o.members - 1,
        o.after.as_secs_f64(),
        o.load
    );
    let bound = (o.duration + START_WAIT * 2 + FINISH_WAIT) * o.detectors.len() as u32 + LOAD_SLACK;
    let load = Load::start(o.load, bound);
    let mut rows = Vec::new();
    for d in &o.detectors {
        let run = run_once(o, d, group()).map_err(|e| format!("{d}: {e}"))?;
        let f = Figures::of(&run);
        eprintln!(
            "thoth-detect: {d}: {} false suspicion(s), {}/{} survivors detected the crash (median {} ms)",
            f.false_total(),
            f.detect_ms.len(),
            o.members - 1,
            f.median().map_or("-".into(), |m| format!("{m:.0}"))
        );
        if o.json {
            println!("{}", report::json(o, &run, &f));
        }
        rows.push((run, f));
    }
    load.stop();
    if !o.json {
        print!("{}", report::table(o, &rows));
    }
    Ok(())
}

/// One detector in a fresh group of member processes.
fn run_once(o: &Opts, detector: &str, group: SocketAddr) -> Result<Run, String> {
    let n = o.members;
    let key = crate::key::KeyFile::throwaway("thoth-detect")?;
    let plan = |index| MemberOpts {
        index,
        members: n,
        detector: detector.to_string(),
        group,
        name: format!("thoth-detect-{}-{group}", std::process::id()),
        rate: o.rate,
        size: o.size,
        interface: o.interface,
        key: Some(key.path().to_path_buf()),
    };
    let procs = Procs::spawn((0..n).map(|i| plan(i).to_args()).collect())?;
    let mut w = Watch { procs, victim: n - 1, killed: false, suspicions: Vec::new() };
    let all: Vec<usize> = (0..n).collect();
    let ready = w.gather(&all, "READY", START_WAIT, |l| {
        let mut it = l.strip_prefix("READY ")?.split_whitespace();
        it.next()?.parse::<SocketAddr>().ok()
    })?;
    w.procs.send_all(&Ctl::Peers(ready).line())?;
    w.gather(&all, "ARMED", START_WAIT, |l| (l == "ARMED").then_some(()))?;
    let start = Instant::now();
    w.until(start + (o.duration - o.after), detector, start)?;
    let kill_ns = now_ns();
    // SIGKILL and reap at once (`reap` with no grace kills what has not exited).
    w.procs.expect_end(w.victim);
    w.procs.reap(w.victim, Duration::ZERO);
    w.killed = true;
    w.until(Instant::now() + o.after, detector, start)?;
    let stop_ns = now_ns();
    let survivors: Vec<usize> = (0..n).filter(|&i| i != w.victim).collect();
    for &i in &survivors {
        w.procs.send(i, &Ctl::Quit.line())?;
    }
    let done = w.gather(&survivors, "DONE", FINISH_WAIT, |l| {
        let v: Vec<u64> = l.strip_prefix("DONE ")?.split_whitespace().filter_map(|x| x.parse().ok()).collect();
        <[u64; 3]>::try_from(v).ok()
    })?;
    let until = Instant::now() + FINISH_WAIT;
    for &i in &survivors {
        match w.procs.reap(i, until.saturating_duration_since(Instant::now())) {
            Some(s) if s.success() => {}
            Some(s) => return Err(format!("member {i} exited with {s}")),
            None => return Err(format!("member {i} did not exit after QUIT and was killed")),
        }
    }
    let sum = |k: usize| done.iter().map(|d| d[k]).sum();
    Ok(Run {
        detector: detector.to_string(),
        members: n,
        victim: w.victim,
        kill_ns,
        stop_ns,
        suspicions: w.suspicions,
        delivered: sum(0),
        cast: sum(1),
        skipped: sum(2),
    })
}

/// The member processes of a run and the suspicions they printed so far.
struct Watch {
    procs: Procs,
    victim: usize,
    killed: bool,
    suspicions: Vec<Suspicion>,
}

impl Watch {
    /// The next line that is not a `SUSPECT` (those are recorded), before `deadline`;
    /// `Ok(None)` at the deadline.
    fn next(&mut self, deadline: Instant) -> Result<Option<(usize, String)>, String> {
        loop {
            match self.procs.next(deadline) {
                Ok(Some((i, line))) => match line.strip_prefix("SUSPECT ") {
                    Some(rest) => self.record(i, rest)?,
                    None => return Ok(Some((i, line))),
                },
                Ok(None) => return Ok(None),
                Err(e) => return Err(e),
            }
        }
    }

    fn record(&mut self, by: usize, rest: &str) -> Result<(), String> {
        let mut w = rest.split_whitespace();
        let at = w.next().and_then(|t| t.parse().ok()).ok_or_else(|| format!("member {by}: bad SUSPECT {rest}"))?;
        for r in w {
            self.suspicions.push(Suspicion { by, at, whom: r.parse().ok() });
        }
        Ok(())
    }

    /// Waits until every member in `who` printed a line `parse` accepts.
    fn gather<T>(
        &mut self,
        who: &[usize],
        what: &str,
        wait: Duration,
        mut parse: impl FnMut(&str) -> Option<T>,
    ) -> Result<Vec<T>, String> {
        let deadline = Instant::now() + wait;
        let mut got: Vec<Option<T>> = (0..self.procs.len()).map(|_| None).collect();
        while who.iter().any(|&i| got[i].is_none()) {
            let Some((i, line)) = self.next(deadline)? else {
                let missing: Vec<String> = who.iter().filter(|&&i| got[i].is_none()).map(|i| i.to_string()).collect();
                return Err(format!(
                    "member(s) {} did not report {what} within {} s",
                    missing.join(", "),
                    wait.as_secs()
                ));
            };
            match parse(&line) {
                Some(v) if who.contains(&i) && got[i].is_none() => {
                    got[i] = Some(v);
                    if what == "DONE" {
                        self.procs.expect_end(i);
                    }
                }
                _ => return Err(format!("member {i} printed `{line}` while {what} was expected")),
            }
        }
        Ok(who.iter().filter_map(|&i| got[i].take()).collect())
    }

    /// Records suspicions until `deadline`; any other line is an error. Progress on stderr.
    fn until(&mut self, deadline: Instant, detector: &str, start: Instant) -> Result<(), String> {
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Ok(());
            }
            let next_note = start
                + PROGRESS_EVERY
                    * (now.duration_since(start).as_secs_f64() / PROGRESS_EVERY.as_secs_f64()).ceil() as u32;
            let tick = deadline.min(next_note.max(now + Duration::from_millis(1)));
            if let Some((i, line)) = self.next(tick)? {
                return Err(format!("member {i} printed `{line}` during the run"));
            }
            if tick == next_note && tick < deadline {
                eprintln!(
                    "thoth-detect: {detector}: {:.0} s, {} suspicion(s) so far{}",
                    start.elapsed().as_secs_f64(),
                    self.suspicions.len(),
                    if self.killed { " (victim killed)" } else { "" }
                );
            }
        }
    }
}
