//! A `thoth-member` process driven by a test: started with piped stdin and stdout, its
//! JSON lines collected with the moment each was read, killed and reaped when dropped; and
//! the waits the member tests share (bounded polls, one common view).

use super::field;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_thoth-member");

/// `args` with `--key` of the tests' group key (written by `thoth-member --keygen` once per
/// test process), unless they give a key, an identity or `--insecure` themselves: members run secured,
/// as a user's do.
pub fn keyed(args: &[String]) -> Vec<String> {
    static KEY: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    if args.iter().any(|a| a == "--key" || a == "--insecure" || a == "--identity") {
        return args.to_vec();
    }
    let key = KEY.get_or_init(|| {
        let out = Command::new(BIN).arg("--keygen").output().expect("thoth-member --keygen");
        assert!(out.status.success(), "--keygen failed");
        let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("member-{}.key", std::process::id()));
        std::fs::write(&path, &out.stdout).expect("write the tests' key");
        path
    });
    [&["--key".to_string(), key.display().to_string()][..], args].concat()
}

/// One line printed by a member, and when the test read it.
#[derive(Clone, Debug)]
pub struct Line {
    pub at: Instant,
    pub text: String,
}

pub struct Member {
    pub child: Child,
    pub stdin: Option<ChildStdin>,
    lines: Arc<Mutex<Vec<Line>>>,
    /// The thread reading stdout: it ends at the end of the output.
    reader: std::thread::JoinHandle<()>,
    pub name: String,
}

impl Member {
    /// `thoth-member` with `args` (and the tests' group key unless they say otherwise).
    pub fn start(name: &str, args: &[String]) -> Member {
        let mut cmd = Command::new(BIN);
        cmd.args(keyed(args));
        Member::spawn(name, cmd)
    }

    /// `cmd` (which runs `thoth-member`, possibly through a wrapper that execs it, so that
    /// the child is the member process itself).
    pub fn spawn(name: &str, mut cmd: Command) -> Member {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("start {cmd:?}: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let reader = std::thread::spawn(move || {
            for text in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(Line { at: Instant::now(), text });
            }
        });
        Member { stdin: child.stdin.take(), child, lines, reader, name: name.into() }
    }

    pub fn cast(&mut self, line: &str) {
        if let Some(s) = self.stdin.as_mut() {
            // A member that already exited: the test sees it in its events.
            let _ = writeln!(s, "{line}");
        }
    }

    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    pub fn lines(&self) -> Vec<Line> {
        self.lines.lock().unwrap().clone()
    }

    /// How many events of `kind` were printed (without copying the lines).
    pub fn count(&self, kind: &str) -> usize {
        let tag = format!("\"event\":\"{kind}\"");
        self.lines.lock().unwrap().iter().filter(|l| l.text.contains(&tag)).count()
    }

    pub fn events(&self, kind: &str) -> Vec<Line> {
        let tag = format!("\"event\":\"{kind}\"");
        self.lines().into_iter().filter(|l| l.text.contains(&tag)).collect()
    }

    pub fn me(&self) -> String {
        wait(Duration::from_secs(10), &format!("{} started", self.name), || self.events("start").first().cloned())
            .map(|l| field(&l.text, "me").to_string())
            .unwrap_or_default()
    }

    /// The members of the last view printed.
    pub fn view(&self) -> Vec<String> {
        self.events("view").last().map(|l| members(&l.text)).unwrap_or_default()
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill").args([sig, &self.child.id().to_string()]).status().is_ok_and(|s| s.success());
        assert!(ok, "kill {sig} {}", self.child.id());
    }

    pub fn wait_exit(&mut self, limit: Duration) -> bool {
        self.exit_status(limit).is_some()
    }

    /// The process's exit status, once it has exited and every line it printed has been
    /// read (the reader may lag behind the exit), waiting up to `limit` for both.
    pub fn exit_status(&mut self, limit: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().expect("poll")
                && self.reader.is_finished()
            {
                return Some(s);
            }
            if start.elapsed() >= limit {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `f` every 10 ms until it gives a value or `limit` passes.
pub fn wait<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if start.elapsed() > limit {
            eprintln!("gave up waiting for {what} after {limit:?}");
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub fn members(line: &str) -> Vec<String> {
    let Some(at) = line.find("\"members\":[").map(|i| i + 11) else { return Vec::new() };
    let rest = &line[at..];
    rest[..rest.find(']').unwrap_or(0)]
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_matches('"').to_string())
        .collect()
}

/// Waits until every member's last view has exactly `n` members, the same for all.
pub fn converge(ms: &[&Member], n: usize, limit: Duration) -> Vec<String> {
    wait(limit, &format!("one view of {n}"), || {
        let v = ms[0].view();
        (v.len() == n && ms.iter().all(|m| m.view() == v)).then_some(v)
    })
    .unwrap_or_else(|| panic!("no common view of {n}: {:?}", ms.iter().map(|m| m.view()).collect::<Vec<_>>()))
}

/// The deliveries of `m` between its line of the view `view_line` announces (a view line of
/// any member: the same view id) and the next view.
pub fn delivered_in(m: &Member, view_line: &str) -> Vec<String> {
    let id = field(view_line, "view_id");
    let lines = m.lines();
    let start = lines
        .iter()
        .position(|l| l.text.contains("\"event\":\"view\"") && field(&l.text, "view_id") == id)
        .expect("the member printed this view");
    lines[start + 1..]
        .iter()
        .take_while(|l| !l.text.contains("\"event\":\"view\""))
        .filter(|l| l.text.contains("\"event\":\"deliver\""))
        .map(|l| untimed(&l.text))
        .collect()
}

/// A line without its `ts` (when it was printed), to compare what two members printed.
pub fn untimed(line: &str) -> String {
    line.rsplit_once(",\"ts\":").map_or_else(|| line.to_string(), |(event, _)| format!("{event}}}"))
}

pub fn no_errors(ms: &[&Member]) {
    for m in ms {
        assert_eq!(m.events("error").iter().map(|l| &l.text).collect::<Vec<_>>(), Vec::<&String>::new(), "{}", m.name);
    }
}
