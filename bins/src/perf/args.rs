//! Command line: the options of a benchmark run, the hidden `member` subcommand the parent
//! re-invokes itself with, and `--help`.

use super::proto::HDR;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// Largest UDP payload over IPv4.
pub const MAX_SIZE: usize = 65_507;
/// `--driver` by default (the faster of the two on this machine class: see the README).
pub const DEFAULT_DRIVER: Driver = Driver::Inline;
const MAX_MEMBERS: usize = 64;

/// What to run.
pub enum Cmd {
    Help,
    Run(Opts),
    Member(MemberOpts),
}

/// How many members send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Senders {
    All,
    First(usize),
}

/// How much each sender sends.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Amount {
    /// Messages per sender; `None` picks a default from the message size.
    Count(Option<u64>),
    Duration(Duration),
}

/// A benchmark invocation.
#[derive(Clone, Debug)]
pub struct Opts {
    pub members: usize,
    pub senders: Senders,
    pub sizes: Vec<usize>,
    pub amount: Amount,
    /// Messages per second per sender; `None` sends as fast as the path takes them.
    pub rate: Option<f64>,
    pub stack: String,
    /// Also run raw UDP multicast for the ratio (off with `--no-raw`, and for `--stack raw`).
    pub raw: bool,
    pub json: bool,
    pub repeat: usize,
    pub rounds: u32,
    /// `None`: a random group and port for this invocation.
    pub group: Option<SocketAddr>,
    pub interface: IpAddr,
    pub fanout: bool,
    /// Test hook: this member exits in the middle of the first run.
    pub die_member: Option<usize>,
    /// How the stack path runs its endpoint.
    pub driver: Driver,
    /// Round trips instead of one-way streams: member 0 casts a ping, member 1 answers each
    /// with a cast, the others listen.
    pub rtt: bool,
    /// Inline members read their sockets this long before sleeping (`UdpConfig::busy_poll`).
    pub busy_poll: Duration,
    /// Many groups: every member holds this many groups of all the members (one `Groups`
    /// machine), idles for `idle` first (measured), then casts round-robin into them.
    pub groups: Option<usize>,
    pub idle: Duration,
    /// Raw UDP packs messages into datagrams of up to this many bytes.
    pub raw_datagram: Option<usize>,
    /// Datagrams sealed under a throwaway group key (off with `--insecure`).
    pub secure: bool,
    /// Each repeat also runs the stack unprotected, for the cost of protection
    /// (`--vs-insecure`).
    pub vs_insecure: bool,
}

impl Opts {
    /// Members that send: in a round-trip run, the pinger and the one that answers.
    pub fn sender_count(&self) -> usize {
        match self.senders {
            _ if self.rtt => 2,
            Senders::All => self.members,
            Senders::First(n) => n,
        }
    }

    /// Messages per sender for `size` (pings, in a round-trip run), if the run is count-based.
    pub fn count_for(&self, size: usize) -> Option<u64> {
        match self.amount {
            Amount::Count(Some(n)) => Some(n),
            Amount::Count(None) if self.rtt => Some(RTT_COUNT),
            Amount::Count(None) => Some(default_count(size)),
            Amount::Duration(_) => None,
        }
    }
}

/// Pings of a round-trip run by default.
pub const RTT_COUNT: u64 = 20_000;
/// `--groups` runs: the idle phase, each sender's rate over all its groups, and how long it
/// casts, by default.
pub const GROUPS_IDLE: Duration = Duration::from_secs(5);
pub const GROUPS_RATE: f64 = 100.0;
pub const GROUPS_DURATION: Duration = Duration::from_secs(5);

/// How the stack path runs its endpoint (`--driver`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Driver {
    /// `udp::inline`: the member's own thread runs the core.
    Inline,
    /// `udp::spawn`: a driver thread, the member talking to it through a handle.
    Thread,
}

impl Driver {
    pub fn name(self) -> &'static str {
        match self {
            Driver::Inline => "inline",
            Driver::Thread => "thread",
        }
    }

    fn parse(v: &str) -> Result<Driver, String> {
        match v {
            "inline" => Ok(Driver::Inline),
            "thread" => Ok(Driver::Thread),
            _ => Err(format!("--driver {v}: give `inline` or `thread`")),
        }
    }
}

/// About 200 MB per sender, between 2,000 and 200,000 messages.
pub fn default_count(size: usize) -> u64 {
    (200_000_000 / size.max(1) as u64).clamp(2_000, 200_000)
}

/// Which path a member measures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// A Thoth endpoint with this stack spec, over the UDP driver.
    Stack(String),
    /// One datagram per message on plain sockets.
    Raw,
}

/// The options of one member process (`thoth-perf member ...`, written by the parent).
#[derive(Clone, Debug)]
pub struct MemberOpts {
    pub index: usize,
    pub members: usize,
    pub senders: usize,
    pub size: usize,
    pub count: Option<u64>,
    pub duration: Option<Duration>,
    pub rate: Option<f64>,
    pub mode: Mode,
    pub group: SocketAddr,
    pub interface: IpAddr,
    pub fanout: bool,
    pub rounds: u32,
    /// The group's name (the endpoint's `GroupId`).
    pub name: String,
    /// Longest a round may take before the member gives up.
    pub cap: Duration,
    pub die: bool,
    pub driver: Driver,
    pub rtt: bool,
    pub busy_poll: Duration,
    pub groups: Option<usize>,
    pub idle: Duration,
    pub raw_datagram: Option<usize>,
    /// The group key's file; none: unprotected.
    pub key: Option<PathBuf>,
}

impl MemberOpts {
    /// The arguments that make a member process with these options.
    pub fn to_args(&self) -> Vec<String> {
        let mut a: Vec<String> = vec!["member".into()];
        let mut kv = |k: &str, v: String| {
            a.push(k.into());
            a.push(v);
        };
        kv("--index", self.index.to_string());
        kv("--members", self.members.to_string());
        kv("--senders", self.senders.to_string());
        kv("--size", self.size.to_string());
        if let Some(c) = self.count {
            kv("--count", c.to_string());
        }
        if let Some(d) = self.duration {
            kv("--duration", d.as_secs_f64().to_string());
        }
        if let Some(r) = self.rate {
            kv("--rate", r.to_string());
        }
        kv(
            "--stack",
            match &self.mode {
                Mode::Stack(s) => s.clone(),
                Mode::Raw => "raw".into(),
            },
        );
        kv("--group", self.group.to_string());
        kv("--interface", self.interface.to_string());
        kv("--rounds", self.rounds.to_string());
        kv("--name", self.name.clone());
        kv("--cap", self.cap.as_secs_f64().to_string());
        kv("--driver", self.driver.name().into());
        kv("--busy-poll", self.busy_poll.as_micros().to_string());
        if let Some(n) = self.raw_datagram {
            kv("--raw-datagram", n.to_string());
        }
        if let Some(key) = &self.key {
            kv("--key", key.display().to_string());
        }
        if let Some(n) = self.groups {
            kv("--groups", n.to_string());
            kv("--idle", self.idle.as_secs_f64().to_string());
        }
        if self.fanout {
            a.push("--fanout".into());
        }
        if self.die {
            a.push("--die".into());
        }
        if self.rtt {
            a.push("--rtt".into());
        }
        a
    }
}

fn value<'a>(it: &mut impl Iterator<Item = &'a String>, flag: &str) -> Result<&'a str, String> {
    it.next().map(String::as_str).ok_or_else(|| format!("{flag} needs a value"))
}

fn num<T: std::str::FromStr>(v: &str, flag: &str) -> Result<T, String> {
    v.parse().map_err(|_| format!("{flag}: `{v}` is not a valid number"))
}

fn secs(v: &str, flag: &str) -> Result<Duration, String> {
    let s: f64 = num(v, flag)?;
    if !(s > 0.0 && s <= 86_400.0) {
        return Err(format!("{flag}: give seconds between 0 and 86400, not `{v}`"));
    }
    Ok(Duration::from_secs_f64(s))
}

/// Microseconds, at most a second.
fn micros(v: &str, flag: &str) -> Result<Duration, String> {
    let us: u64 = num(v, flag)?;
    if us > 1_000_000 {
        return Err(format!("{flag}: give microseconds up to 1000000, not `{v}`"));
    }
    Ok(Duration::from_micros(us))
}

fn check_size(size: usize) -> Result<usize, String> {
    if size < HDR {
        Err(format!("--size {size} is too small: every message carries a {HDR}-byte benchmark header"))
    } else if size > MAX_SIZE {
        Err(format!("--size {size} is too large: a UDP datagram holds at most {MAX_SIZE} bytes"))
    } else {
        Ok(size)
    }
}

fn check_group(g: SocketAddr) -> Result<SocketAddr, String> {
    match g.ip() {
        IpAddr::V4(_) if g.port() == 0 => Err(format!("--group {g}: give the group's port (members must share it)")),
        IpAddr::V4(ip) if ip.is_multicast() => Ok(g),
        IpAddr::V4(_) => Err(format!("--group {g}: {} is not an IPv4 multicast address (224.0.0.0/4)", g.ip())),
        IpAddr::V6(_) => Err(format!("--group {g}: thoth-perf measures IPv4 multicast only")),
    }
}

/// `--interface`, as every binary reads it (`iface`); IPv4, as the groups measured here.
fn interface(v: &str) -> Result<IpAddr, String> {
    crate::iface::parse(v).and_then(crate::iface::ipv4_only)
}

/// Parses the arguments after the program name.
pub fn parse(args: &[String]) -> Result<Cmd, String> {
    if args.first().map(String::as_str) == Some("member") {
        return parse_member(&args[1..]).map(Cmd::Member);
    }
    let mut o = Opts {
        members: 3,
        senders: Senders::All,
        sizes: vec![1024],
        amount: Amount::Count(None),
        rate: None,
        stack: thoth::DEFAULT_STACK.to_string(),
        raw: true,
        json: false,
        repeat: 1,
        rounds: 1,
        group: None,
        interface: IpAddr::V4(Ipv4Addr::LOCALHOST),
        fanout: false,
        die_member: None,
        driver: DEFAULT_DRIVER,
        rtt: false,
        busy_poll: Duration::ZERO,
        groups: None,
        idle: GROUPS_IDLE,
        raw_datagram: None,
        secure: true,
        vs_insecure: false,
    };
    let (mut count, mut duration, mut stack) = (None, None, None);
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let f = flag.as_str();
        match f {
            "-h" | "--help" => return Ok(Cmd::Help),
            "--members" => o.members = num(value(&mut it, f)?, f)?,
            "--senders" => {
                o.senders = match value(&mut it, f)? {
                    "all" => Senders::All,
                    v => Senders::First(num(v, f)?),
                }
            }
            "--size" => {
                o.sizes = value(&mut it, f)?
                    .split(',')
                    .map(|s| num(s.trim(), f).and_then(check_size))
                    .collect::<Result<_, _>>()?
            }
            "--count" => count = Some(num::<u64>(value(&mut it, f)?, f)?),
            "--duration" => duration = Some(secs(value(&mut it, f)?, f)?),
            "--rate" => {
                let r: f64 = num(value(&mut it, f)?, f)?;
                if !(r > 0.0 && r <= 1e9) {
                    return Err(format!("--rate {r}: give messages per second per sender, above 0"));
                }
                o.rate = Some(r);
            }
            "--stack" => stack = Some(value(&mut it, f)?.to_string()),
            "--no-raw" => o.raw = false,
            "--json" => o.json = true,
            "--repeat" => o.repeat = num(value(&mut it, f)?, f)?,
            "--rounds" => o.rounds = num(value(&mut it, f)?, f)?,
            "--group" => o.group = Some(check_group(num(value(&mut it, f)?, f)?)?),
            "--interface" => o.interface = interface(value(&mut it, f)?)?,
            "--fanout" => o.fanout = true,
            "--debug-die-member" => o.die_member = Some(num(value(&mut it, f)?, f)?),
            "--driver" => o.driver = Driver::parse(value(&mut it, f)?)?,
            "--rtt" => o.rtt = true,
            "--busy-poll" => o.busy_poll = micros(value(&mut it, f)?, f)?,
            "--groups" => o.groups = Some(num(value(&mut it, f)?, f)?),
            "--idle" => o.idle = secs(value(&mut it, f)?, f)?,
            "--raw-datagram" => o.raw_datagram = Some(check_size(num(value(&mut it, f)?, f)?)?),
            "--insecure" => o.secure = false,
            "--vs-insecure" => o.vs_insecure = true,
            _ => return Err(format!("unknown option `{f}` (see --help)")),
        }
    }
    if let Some(n) = o.groups {
        if !(1..=100_000).contains(&n) {
            return Err(format!("--groups {n}: give 1 to 100000"));
        }
        if o.rtt {
            return Err("--groups and --rtt do not go together".into());
        }
        // Groups with heartbeats and membership, casting now and then, no raw twin.
        o.raw = false;
        o.rate = o.rate.or(Some(GROUPS_RATE));
        if count.is_none() && duration.is_none() {
            duration = Some(GROUPS_DURATION);
        }
    }
    o.stack = stack.unwrap_or_else(|| if o.groups.is_some() { thoth::GROUP } else { thoth::DEFAULT_STACK }.to_string());
    o.amount = match (count, duration) {
        (Some(_), Some(_)) => return Err("give --count or --duration, not both".into()),
        (Some(0), None) => return Err("--count must be at least 1".into()),
        (c, None) => Amount::Count(c),
        (None, Some(d)) => Amount::Duration(d),
    };
    if !(1..=MAX_MEMBERS).contains(&o.members) {
        return Err(format!("--members {}: give 1 to {MAX_MEMBERS}", o.members));
    }
    if o.rtt && o.members < 2 {
        return Err("--rtt needs at least 2 members (one pings, one answers)".into());
    }
    if let Senders::First(n) = o.senders
        && !(1..=o.members).contains(&n)
    {
        return Err(format!("--senders {n}: give 1 to --members ({}) or `all`", o.members));
    }
    if !(1..=1000).contains(&o.repeat) {
        return Err("--repeat: give 1 to 1000".into());
    }
    if !(1..=100).contains(&o.rounds) {
        return Err("--rounds: give 1 to 100".into());
    }
    if o.vs_insecure && !o.secure {
        return Err("--vs-insecure compares a secured stack with an insecure one: leave out --insecure".into());
    }
    if o.die_member.is_some_and(|m| m >= o.members) {
        return Err("--debug-die-member: no such member".into());
    }
    if o.stack == "raw" {
        if o.groups.is_some() {
            return Err("--groups runs a stack, not raw UDP".into());
        }
        o.raw = false;
    } else if let Err(e) = thoth::registry().build(&o.stack) {
        return Err(format!("--stack {}: {e}", o.stack));
    }
    Ok(Cmd::Run(o))
}

fn parse_member(args: &[String]) -> Result<MemberOpts, String> {
    let mut m = MemberOpts {
        index: 0,
        members: 0,
        senders: 0,
        size: 0,
        count: None,
        duration: None,
        rate: None,
        mode: Mode::Raw,
        group: SocketAddr::from(([239, 84, 72, 1], 47474)),
        interface: IpAddr::V4(Ipv4Addr::LOCALHOST),
        fanout: false,
        rounds: 1,
        name: String::new(),
        cap: Duration::from_secs(60),
        die: false,
        driver: DEFAULT_DRIVER,
        rtt: false,
        busy_poll: Duration::ZERO,
        groups: None,
        idle: GROUPS_IDLE,
        raw_datagram: None,
        key: None,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let f = flag.as_str();
        match f {
            "--index" => m.index = num(value(&mut it, f)?, f)?,
            "--members" => m.members = num(value(&mut it, f)?, f)?,
            "--senders" => m.senders = num(value(&mut it, f)?, f)?,
            "--size" => m.size = check_size(num(value(&mut it, f)?, f)?)?,
            "--count" => m.count = Some(num(value(&mut it, f)?, f)?),
            "--duration" => m.duration = Some(secs(value(&mut it, f)?, f)?),
            "--rate" => m.rate = Some(num(value(&mut it, f)?, f)?),
            "--stack" => {
                m.mode = match value(&mut it, f)? {
                    "raw" => Mode::Raw,
                    s => Mode::Stack(s.to_string()),
                }
            }
            "--group" => m.group = check_group(num(value(&mut it, f)?, f)?)?,
            "--interface" => m.interface = interface(value(&mut it, f)?)?,
            "--fanout" => m.fanout = true,
            "--rounds" => m.rounds = num(value(&mut it, f)?, f)?,
            "--name" => m.name = value(&mut it, f)?.to_string(),
            "--cap" => m.cap = secs(value(&mut it, f)?, f)?,
            "--die" => m.die = true,
            "--driver" => m.driver = Driver::parse(value(&mut it, f)?)?,
            "--rtt" => m.rtt = true,
            "--busy-poll" => m.busy_poll = micros(value(&mut it, f)?, f)?,
            "--groups" => m.groups = Some(num(value(&mut it, f)?, f)?),
            "--idle" => m.idle = secs(value(&mut it, f)?, f)?,
            "--raw-datagram" => m.raw_datagram = Some(num(value(&mut it, f)?, f)?),
            "--key" => m.key = Some(PathBuf::from(value(&mut it, f)?)),
            _ => return Err(format!("member: unknown option `{f}`")),
        }
    }
    if m.members == 0 || m.index >= m.members || m.senders > m.members {
        return Err("member: --index, --members and --senders do not fit together".into());
    }
    if m.count.is_some() == m.duration.is_some() {
        return Err("member: give exactly one of --count and --duration".into());
    }
    Ok(m)
}

/// The `--help` text, with the layers the registry knows.
pub fn help() -> String {
    let mut layers = String::new();
    for (name, about) in thoth::registry().known() {
        layers.push_str(&format!("    {name:<12} {about}\n"));
    }
    format!(
        "thoth-perf: multicast throughput and latency of a Thoth stack, side by side with raw UDP multicast

USAGE: thoth-perf [OPTIONS]

With no options: 3 members on loopback multicast (one OS process each), all sending 1024-byte
messages, through the default stack `{default}`, then the same workload over raw UDP multicast.
Every datagram of the stack is sealed (authenticated and encrypted) under a group key made for
the run: the members read it from a private file the parent writes and removes.

OPTIONS
  --members N          group members, one process each (default 3)
  --senders N|all      the first N members send (default all)
  --size BYTES[,..]    message size, {HDR}..{MAX_SIZE}; a list gives one row per size (default 1024)
  --count N            messages per sender (default about 200 MB per sender, 2000..200000)
  --duration SECS      send for this long instead of a count
  --rate MSGS_PER_SEC  pace each sender at this rate (latency runs); default unpaced
  --stack SPEC         stack spec, top layer first (default `{default}`); `raw` = no stack,
                       `bare` = the frame alone (sealed; with --insecure, a CRC)
  --no-raw             skip the raw UDP multicast comparison run
  --raw-datagram BYTES raw UDP packs as many whole messages as fit into datagrams of this
                       size (raw UDP at its best datagram size; default one per message)
  --repeat K           run the stack/raw pair K times (alternating which goes first) and
                       report the medians; with --json every run is printed too
  --rounds R           R rounds per run in the same processes; the first R-1 are warm-up and
                       only the last is reported (default 1)
  --group ADDR:PORT    IPv4 multicast group (default a random 239.84.x.y:40000-49999 per run)
  --interface IP       the multicast interface, by one of its addresses (IPv4); the members
                       bind their unicast sockets to it (default 127.0.0.1, loopback)
  --fanout             unicast fan-out to every member instead of multicast
  --driver inline|thread
                       how a member runs its endpoint: on its own thread (`inline`, the
                       default) or through a driver thread (`thread`); raw UDP is unchanged
  --rtt                round trips: member 0 casts a ping, member 1 answers it with a cast,
                       member 0 pings again (default {rtt_count} pings, or --count / --duration);
                       raw UDP does the same ping-pong
  --busy-poll MICROS   inline members read their sockets this long before they sleep
                       (default 0: they sleep at once); trades a core for wake-up latency
  --groups N           many groups: each member holds N groups of all the members on one
                       socket pair (stack `group` unless --stack), idles for --idle seconds
                       (default {idle}: CPU, datagrams and memory per idle group are measured),
                       then each sender casts round-robin into its groups at --rate (default
                       {grate} msgs/s per sender, for {gdur} s); no raw twin
  --insecure           run the stack without frame protection (said loudly on stderr)
  --vs-insecure        each repeat also runs the stack without protection: the cost of
                       protection (`secured/insecure`), in the same invocation
  --json               one JSON object per result line instead of the table
  -h, --help           this text

WHAT IS MEASURED
  Every member receives every message, its own included. msgs/s is taken at the slowest
  receiver: distinct messages received / (last receive - start), start being the moment all
  senders begin (one host clock, CLOCK_MONOTONIC). MB/s = msgs/s x size / 10^6. loss is
  application-level: messages sent but never delivered, summed over receivers (raw UDP and
  unreliable stacks can lose under overload; the kernel's socket drops are reported too).
  Latency is cast to delivery over all messages at all receivers (the members' histograms
  are merged): p50 / p99 / p99.9 in microseconds. ratio = stack msgs/s / raw msgs/s from the
  same invocation (with --repeat, the median of the per-pair ratios). Delivery orders: how
  many different orders the members delivered the messages in (each member hashes the
  order; 1 = one total order, as `reliable_total` gives; FIFO stacks give one per member).
  With --rtt: rtt = from a ping's cast to the delivery of its answer at the pinger, p50 /
  p99 / p99.9 in microseconds; the one-way latencies are those of the other members.

LAYERS THE REGISTRY KNOWS
{layers}",
        default = thoth::DEFAULT_STACK,
        rtt_count = RTT_COUNT,
        idle = GROUPS_IDLE.as_secs(),
        grate = GROUPS_RATE,
        gdur = GROUPS_DURATION.as_secs(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Opts, String> {
        match parse(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())? {
            Cmd::Run(o) => Ok(o),
            _ => Err("not a run".into()),
        }
    }

    #[test]
    fn defaults_and_options() {
        let o = run(&[]).unwrap();
        assert_eq!((o.members, o.sender_count(), o.sizes.clone(), o.raw), (3, 3, vec![1024], true));
        assert_eq!(o.count_for(1024), Some(195_312));
        let o = run(&["--members", "4", "--senders", "1", "--size", "100,64000", "--duration", "2"]).unwrap();
        assert_eq!((o.sender_count(), o.sizes.clone(), o.count_for(100)), (1, vec![100, 64000], None));
        assert!(!run(&["--stack", "raw"]).unwrap().raw);
        assert_eq!(o.interface, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(run(&["--interface", "10.9.8.7"]).unwrap().interface, IpAddr::V4(Ipv4Addr::new(10, 9, 8, 7)));
        assert_eq!(o.driver, DEFAULT_DRIVER);
        assert_eq!(run(&["--driver", "thread"]).unwrap().driver, Driver::Thread);
        let g = run(&["--groups", "1000"]).unwrap();
        assert_eq!((g.groups, g.stack.as_str(), g.raw, g.rate), (Some(1000), thoth::GROUP, false, Some(GROUPS_RATE)));
        assert_eq!(g.amount, Amount::Duration(GROUPS_DURATION));
        let r = run(&["--rtt"]).unwrap();
        assert_eq!((r.rtt, r.sender_count(), r.count_for(1024)), (true, 2, Some(RTT_COUNT)));
    }

    #[test]
    fn rejects_what_cannot_run() {
        for bad in [
            &["--size", "10"][..],
            &["--size", "70000"],
            &["--senders", "4"],
            &["--count", "5", "--duration", "1"],
            &["--group", "127.0.0.1:5000"],
            &["--interface", "::1"],
            &["--interface", "0.0.0.0"],
            &["--interface", "eth0"],
            &["--stack", "no-such-layer"],
            &["--driver", "fibre"],
            &["--busy-poll", "2000000"],
            &["--rtt", "--members", "1"],
            &["--groups", "0"],
            &["--groups", "10", "--stack", "raw"],
            &["--groups", "10", "--rtt"],
            &["--bogus"],
        ] {
            assert!(run(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn member_options_round_trip() {
        let m = MemberOpts {
            index: 1,
            members: 3,
            senders: 2,
            size: 100,
            count: Some(10),
            duration: None,
            rate: Some(50.0),
            mode: Mode::Stack("bare".into()),
            group: "239.84.1.2:45000".parse().unwrap(),
            interface: "127.0.0.1".parse().unwrap(),
            fanout: true,
            rounds: 2,
            name: "g".into(),
            cap: Duration::from_secs(9),
            die: true,
            driver: Driver::Thread,
            rtt: true,
            busy_poll: Duration::from_micros(50),
            groups: Some(1000),
            idle: Duration::from_secs(2),
            raw_datagram: Some(60_000),
            key: Some("/tmp/k.key".into()),
        };
        let Ok(Cmd::Member(back)) = parse(&m.to_args()) else { panic!("member args do not parse") };
        assert_eq!(format!("{back:?}"), format!("{m:?}"));
    }
}
