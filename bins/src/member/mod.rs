//! `thoth-member`: one member of a dynamic group, for a person or a script to watch a group
//! form, split and heal. It joins (or forms) the group, prints every event as one JSON line
//! on stdout, casts each line read on stdin, and leaves cleanly on end of input or SIGTERM.
//! At the end of its input it casts every line, and only then leaves (on SIGTERM it stops
//! taking lines: the one in hand is cast, the rest of the input is not); the handle sends
//! the casts it accepted before the leave, so the others deliver every line before the view
//! without this member. Then it prints `exit` and ends with status 0 (1 if no exit came
//! within `LEAVE_WAIT`).
//!
//! It runs secured: `--key FILE` (a group key `--keygen` wrote), or, said loudly, `--insecure`;
//! without either it refuses to start and says how to make a key.
//!
//! Events: `start` (its id and address, its stack and the `order` it delivers casts in, and
//! whether it runs secured), `view` (id, members, primary, subgroups of a
//! merge), `deliver` (from, data), `send`, `block` (answered at once), `suspect`,
//! `state_request` (answered with the state: every line delivered so far), `state` (a
//! joiner's loaded state: bytes and lines, printed after its last piece), `error`, `exit`;
//! `metrics` (where `--metrics` serves them, `exporter`). Every line ends with `ts`: when it
//! was printed, in seconds since the Unix epoch (to the microsecond).
//! The application state is the log of delivered lines, so a late joiner starts from the
//! same log as everyone else and then follows the stream.
//!
//! Tested by `bins/tests/member.rs` (real processes on loopback multicast: formation, a
//! member killed with SIGKILL, a late joiner with state, two partitions merging, leave on
//! end of input and on SIGTERM, every line of a long input delivered before the leave; no
//! start without a key; a member with another key, or none, kept outside).

mod args;
pub mod deaf;
pub mod json;

use crate::exporter::Exporter;
use args::Opts;
use std::io::{BufRead, Write};
use std::sync::mpsc::{self, TryRecvError};
use std::time::{Duration, Instant};
use thoth::udp::{self, FlowPolicy, Handle, HandleError, Sockets, UdpConfig};
use thoth::{Bytes, Config, Endpoint, Event, GroupId, Props};

/// How long a leaving member waits, from the end of its input (or SIGTERM), for its exit
/// before giving up: the lines already accepted go first, then the leave's view change.
const LEAVE_WAIT: Duration = Duration::from_secs(5);
/// Lines read from stdin ahead of the casts, at most (the reader then waits, so a long
/// input is read as fast as the group takes it, not into memory).
const LINES_AHEAD: usize = 1024;
/// Longest sleep of the event loop (stdin lines and SIGTERM are seen this promptly).
const TICK: Duration = Duration::from_millis(20);

pub fn main(args: Vec<String>) -> i32 {
    let o = match args::parse(&args) {
        Ok(args::Cmd::Run(o)) => o,
        Ok(args::Cmd::Keygen) => {
            println!("{}", thoth::GroupSecret::generate().to_hex());
            return 0;
        }
        Ok(args::Cmd::NewIdentity(path)) => match crate::key::new_identity(&path) {
            Ok(public) => {
                println!("{public}");
                return 0;
            }
            Err(e) => {
                eprintln!("thoth-member: {e}");
                return 1;
            }
        },
        Err(stop) => return crate::cli::stop("thoth-member", stop),
    };
    match run(&o) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("thoth-member: {e}");
            1
        }
    }
}

/// Prints one event (a JSON object) with `ts`, when it was printed: seconds since the Unix
/// epoch, to the microsecond, as its last field.
fn out(line: &str) {
    let ts = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let body = line.strip_suffix('}').unwrap_or(line);
    let mut o = std::io::stdout().lock();
    // A reader that went away: nothing left to tell.
    let _ = writeln!(o, "{body},\"ts\":{}.{:06}}}", ts.as_secs(), ts.subsec_micros()).and_then(|()| o.flush());
}

fn run(o: &Opts) -> Result<(), String> {
    crate::term::install(false);
    crate::iface::check_host(o.interface)?;
    let cfg = UdpConfig {
        group: o.addr,
        interface: o.interface,
        bind: o.bind,
        fanout: !o.seeds.is_empty(),
        flow: FlowPolicy::WouldBlock,
        ..UdpConfig::default()
    };
    let socks = Sockets::open(&cfg).map_err(|e| format!("cannot open sockets: {e}"))?;
    let me = socks.id();
    let mut registry = thoth::registry();
    deaf::register(&mut registry);
    let spec = o.spec();
    let security = o.keying.security()?;
    if !security.is_secure() {
        crate::key::warn_insecure("thoth-member");
    }
    let config = Config { transfer_state: true, probe: o.probe, ..Config::joining(GroupId::named(&o.group), me) }
        .secured(security);
    let ep = Endpoint::from_spec(config, &registry, &spec).map_err(|e| format!("stack `{spec}`: {e}"))?;
    out(&format!(
        r#"{{"event":"start","me":{},"addr":{},"group":{},"stack":{},"order":"{}","secure":{},"keys":"{}"}}"#,
        json::id(me),
        json::string(&socks.local_addr().to_string()),
        json::string(&o.group),
        json::string(&spec),
        order(ep.props()),
        o.keying != crate::key::Keying::Insecure,
        match o.keying {
            crate::key::Keying::Insecure => "none",
            crate::key::Keying::Shared(_) => "shared",
            crate::key::Keying::Pairs { .. } => "pairs",
        }
    ));
    let handle = udp::spawn(socks, ep, &o.seeds).map_err(|e| format!("cannot start the UDP driver: {e}"))?;
    let exporter = match o.metrics {
        Some(addr) => match Exporter::start(addr, handle.clone()) {
            Ok(e) => Some(e),
            Err(e) => {
                handle.shutdown();
                return Err(e);
            }
        },
        None => None,
    };
    if let Some(e) = &exporter {
        out(&format!(r#"{{"event":"metrics","addr":{}}}"#, json::string(&format!("http://{}/metrics", e.addr()))));
    }
    let r = serve(&handle);
    drop(exporter);
    handle.shutdown();
    r
}

/// The order in which members deliver casts under a stack with `props`: `total` (one order
/// at every member), `causal` (a cast after every cast its sender had delivered before it),
/// `fifo` (each sender's casts in the order it cast them; no order between senders), or
/// `none`.
fn order(props: Props) -> &'static str {
    if props.contains(Props::TOTAL) {
        "total"
    } else if props.contains(Props::CAUSAL) {
        "causal"
    } else if props.contains(Props::FIFO_CAST) {
        "fifo"
    } else {
        "none"
    }
}

/// Reads stdin on a thread of its own: each line, then `None` at the end.
fn stdin_lines() -> mpsc::Receiver<Option<String>> {
    let (tx, rx) = mpsc::sync_channel(LINES_AHEAD);
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(Some(line)).is_err() {
                return;
            }
        }
        let _ = tx.send(None);
    });
    rx
}

/// The member's state: every line delivered, in order.
#[derive(Default)]
struct Log {
    bytes: Vec<u8>,
    /// A state transfer is under way: its pieces replace the log.
    loading: Option<Vec<u8>>,
}

fn serve(h: &Handle) -> Result<(), String> {
    let lines = stdin_lines();
    let mut log = Log::default();
    let mut input = Input { next: None, closed: None };
    let mut left = false;
    let mut events = Vec::new();
    loop {
        if input.closed.is_none() && crate::term::asked() {
            input.closed = Some(Instant::now());
        }
        if !left {
            input.cast(h, &lines)?;
        }
        if let Some(t) = input.closed {
            // Every line read is with the handle: the leave goes after them.
            if !left && input.next.is_none() {
                h.leave();
                left = true;
            }
            if t.elapsed() > LEAVE_WAIT {
                return Err(format!("no exit within {LEAVE_WAIT:?} of the end of input"));
            }
        }
        events.clear();
        h.recv_many(&mut events, TICK);
        for ev in events.drain(..) {
            if handle_event(h, ev, &mut log)? {
                return Ok(());
            }
        }
        if h.is_stopped() {
            return Err("the driver stopped".into());
        }
    }
}

/// The lines of stdin on their way to the group.
struct Input {
    /// The line read and not yet taken by the handle (it asked to wait).
    next: Option<Bytes>,
    /// When the input ended (end of stdin, or SIGTERM: no more lines are read).
    closed: Option<Instant>,
}

impl Input {
    /// Casts the lines read, in order, until the handle asks to wait or no line is ready.
    fn cast(&mut self, h: &Handle, lines: &mpsc::Receiver<Option<String>>) -> Result<(), String> {
        loop {
            let data = match self.next.take() {
                Some(d) => d,
                None if self.closed.is_some() => return Ok(()),
                None => match lines.try_recv() {
                    Ok(Some(l)) => Bytes::from(l),
                    Ok(None) | Err(TryRecvError::Disconnected) => {
                        self.closed = Some(Instant::now());
                        return Ok(());
                    }
                    Err(TryRecvError::Empty) => return Ok(()),
                },
            };
            match h.try_cast(data.clone()) {
                Ok(()) => {}
                Err(HandleError::WouldBlock) => {
                    self.next = Some(data);
                    return Ok(());
                }
                // The driver ended: its last events (an `exit`, or not) tell what happened.
                Err(HandleError::Stopped) => return Ok(()),
                Err(e) => return Err(format!("cast: {e}")),
            }
        }
    }
}

/// Prints one event and does what it asks; true once the member has exited.
fn handle_event(h: &Handle, ev: Event, log: &mut Log) -> Result<bool, String> {
    match ev {
        Event::View(v) => {
            // A transfer cut short by a view change starts over in the next view.
            log.loading = None;
            out(&json::view(&v));
        }
        Event::Cast { from, data } => {
            out(&format!(
                r#"{{"event":"deliver","from":{},"data":{}}}"#,
                json::id(from),
                json::string(&String::from_utf8_lossy(&data))
            ));
            log.bytes.extend_from_slice(&data);
            log.bytes.push(b'\n');
        }
        Event::Send { from, data } => out(&format!(
            r#"{{"event":"send","from":{},"data":{}}}"#,
            json::id(from),
            json::string(&String::from_utf8_lossy(&data))
        )),
        Event::Block => {
            out(r#"{"event":"block"}"#);
            let _ = h.block_ok();
        }
        Event::Suspect(who) => out(&format!(r#"{{"event":"suspect","members":{}}}"#, json::ids(&who))),
        Event::StateRequest => {
            out(&format!(r#"{{"event":"state_request","bytes":{}}}"#, log.bytes.len()));
            let _ = h.send_state(Bytes::from(log.bytes.clone()));
        }
        Event::State { chunk, last } => {
            log.loading.get_or_insert_with(Vec::new).extend_from_slice(&chunk);
            if last {
                log.bytes = log.loading.take().unwrap_or_default();
                let lines = log.bytes.iter().filter(|&&b| b == b'\n').count();
                out(&format!(r#"{{"event":"state","bytes":{},"lines":{}}}"#, log.bytes.len(), lines));
            }
        }
        Event::Error { layer, detail } => {
            out(&format!(r#"{{"event":"error","layer":{},"detail":{}}}"#, json::string(layer), json::string(&detail)))
        }
        // It asks no probe (`thoth-probe` does), so an answer is never taken here.
        Event::Probed(_) => {}
        Event::Exit => {
            out(r#"{"event":"exit"}"#);
            return Ok(true);
        }
    }
    Ok(false)
}
