//! The member processes of one run, owned by the parent: spawned from the current executable,
//! driven through stdin, read through stdout, their stderr tail kept for error reports. Every
//! child is killed and reaped when the group is dropped, whatever path got there.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// Lines of a member's stderr kept for an error report.
const TAIL: usize = 12;

struct Kid {
    child: Child,
    stdin: Option<ChildStdin>,
    tail: Arc<Mutex<VecDeque<String>>>,
    stderr_done: Arc<AtomicBool>,
    reaped: Option<ExitStatus>,
    /// The end of this member's output is expected (it was killed, or it said goodbye).
    may_end: bool,
}

/// A group of member processes.
pub struct Procs {
    kids: Vec<Kid>,
    lines: mpsc::Receiver<(usize, Option<String>)>,
    tx: mpsc::Sender<(usize, Option<String>)>,
}

impl Procs {
    /// Starts one process per argument list: this executable, re-invoked.
    pub fn spawn(args: Vec<Vec<String>>) -> Result<Procs, String> {
        let exe = std::env::current_exe().map_err(|e| format!("cannot find this executable: {e}"))?;
        let (tx, lines) = mpsc::channel();
        let mut procs = Procs { kids: Vec::new(), lines, tx };
        for (i, a) in args.into_iter().enumerate() {
            let mut child = Command::new(&exe)
                .args(&a)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .map_err(|e| format!("cannot start member {i} ({}): {e}", exe.display()))?;
            let (stdout, stderr, stdin) = (child.stdout.take(), child.stderr.take(), child.stdin.take());
            let tail = Arc::new(Mutex::new(VecDeque::new()));
            let stderr_done = Arc::new(AtomicBool::new(false));
            procs.kids.push(Kid {
                child,
                stdin,
                tail: tail.clone(),
                stderr_done: stderr_done.clone(),
                reaped: None,
                may_end: false,
            });
            let out_tx = procs.tx.clone();
            if let Some(out) = stdout {
                std::thread::spawn(move || {
                    for line in BufReader::new(out).lines() {
                        let Ok(line) = line else { break };
                        if out_tx.send((i, Some(line))).is_err() {
                            return;
                        }
                    }
                    let _ = out_tx.send((i, None));
                });
            }
            if let Some(err) = stderr {
                std::thread::spawn(move || {
                    for line in BufReader::new(err).lines() {
                        let Ok(line) = line else { break };
                        let mut t = tail.lock().unwrap_or_else(|p| p.into_inner());
                        if t.len() == TAIL {
                            t.pop_front();
                        }
                        t.push_back(line);
                    }
                    stderr_done.store(true, Ordering::Release);
                });
            }
        }
        Ok(procs)
    }

    pub fn len(&self) -> usize {
        self.kids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.kids.is_empty()
    }

    /// Writes one control line to member `i`.
    pub fn send(&mut self, i: usize, line: &str) -> Result<(), String> {
        let ok = match self.kids[i].stdin.as_mut() {
            Some(s) => writeln!(s, "{line}").and_then(|()| s.flush()).is_ok(),
            None => false,
        };
        if ok { Ok(()) } else { Err(self.death(i)) }
    }

    pub fn send_all(&mut self, line: &str) -> Result<(), String> {
        (0..self.kids.len()).try_for_each(|i| self.send(i, line))
    }

    /// From now on the end of member `i`'s output is not an error (it was killed on purpose,
    /// or it said it is done).
    pub fn expect_end(&mut self, i: usize) {
        self.kids[i].may_end = true;
    }

    /// The next line any member printed, before `deadline`. A member that exits (unless
    /// `expect_end` said it may), or prints `ERROR`, is an error naming it; `Ok(None)` is a
    /// timeout.
    pub fn next(&mut self, deadline: Instant) -> Result<Option<(usize, String)>, String> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            return match self.lines.recv_timeout(left) {
                Ok((i, Some(line))) => match line.strip_prefix("ERROR ") {
                    Some(e) => Err(format!("member {i} failed: {e}")),
                    None => Ok(Some((i, line))),
                },
                Ok((i, None)) if self.kids[i].may_end => continue,
                Ok((i, None)) => Err(self.death(i)),
                Err(_) => Ok(None),
            };
        }
    }

    /// Describes how member `i` went away: exit status and the tail of its stderr.
    fn death(&mut self, i: usize) -> String {
        let pid = self.kids[i].child.id();
        let status = self.reap(i, Duration::from_secs(2));
        let kid = &self.kids[i];
        let until = Instant::now() + Duration::from_millis(500);
        while !kid.stderr_done.load(Ordering::Acquire) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(5));
        }
        let tail = kid.tail.lock().unwrap_or_else(|p| p.into_inner());
        let how = match status {
            Some(s) => format!("exited ({s})"),
            None => "stopped answering and was killed".to_string(),
        };
        let mut msg = format!("member {i} (pid {pid}) {how} before the run finished");
        if tail.is_empty() {
            msg.push_str("; it wrote nothing on stderr");
        } else {
            msg.push_str("; its last stderr lines:");
            for l in tail.iter() {
                msg.push_str("\n    ");
                msg.push_str(l);
            }
        }
        msg
    }

    /// Waits up to `wait` for member `i` to exit; kills it if it does not. Returns its own
    /// exit status (`None` if it had to be killed).
    pub fn reap(&mut self, i: usize, wait: Duration) -> Option<ExitStatus> {
        let kid = &mut self.kids[i];
        if let Some(s) = kid.reaped {
            return Some(s);
        }
        let until = Instant::now() + wait;
        loop {
            match kid.child.try_wait() {
                Ok(Some(s)) => {
                    kid.reaped = Some(s);
                    return Some(s);
                }
                Ok(None) if Instant::now() < until => std::thread::sleep(Duration::from_millis(5)),
                _ => {
                    let _ = kid.child.kill();
                    kid.reaped = kid.child.wait().ok();
                    return None;
                }
            }
        }
    }

    /// Tells every member to quit and reaps them all; an error names a member that did not
    /// exit cleanly.
    pub fn finish(mut self, wait: Duration) -> Result<(), String> {
        for i in 0..self.kids.len() {
            let _ = self.send(i, "QUIT");
            self.kids[i].stdin = None;
        }
        let until = Instant::now() + wait;
        let mut bad = Vec::new();
        for i in 0..self.kids.len() {
            match self.reap(i, until.saturating_duration_since(Instant::now())) {
                Some(s) if s.success() => {}
                Some(s) => bad.push(format!("member {i} exited with {s}")),
                None => bad.push(format!("member {i} did not exit within {} s and was killed", wait.as_secs())),
            }
        }
        if bad.is_empty() { Ok(()) } else { Err(bad.join("; ")) }
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        for kid in &mut self.kids {
            kid.stdin = None;
            if kid.reaped.is_none() {
                let _ = kid.child.kill();
                kid.reaped = kid.child.wait().ok();
            }
        }
    }
}
