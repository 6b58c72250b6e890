//! Command line (clap, derived): the options of a benchmark run, the hidden `member`
//! subcommand the parent re-invokes itself with, and `--help`.

use super::proto::HDR;
use crate::cli::{Stop, secs};
use crate::iface::parse_ipv4;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// Largest UDP payload over IPv4.
pub const MAX_SIZE: usize = 65_507;
/// `--driver` by default (the faster of the two on this machine class: see the README).
pub const DEFAULT_DRIVER: Driver = Driver::Inline;
const MAX_MEMBERS: usize = 64;

/// What to run.
pub enum Cmd {
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
    /// Write an SVG plot of throughput against message size here.
    pub plot: Option<PathBuf>,
    /// Run JGroups 2.12 with the same workload in each repeat, through this script.
    pub jgroups: Option<PathBuf>,
    /// How a run's progress shows on stderr.
    pub progress: Show,
}

/// How a run's progress shows on stderr: a bar on a terminal; a line every few seconds of a
/// long run in a log; nothing with `--json`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Show {
    Bar,
    Lines,
    Quiet,
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
/// `--groups` runs: each sender's rate over all its groups, and how long it casts, by default
/// (the idle phase is `--idle`'s default).
pub const GROUPS_RATE: f64 = 100.0;
pub const GROUPS_DURATION: Duration = Duration::from_secs(5);

/// `--sweep`: message sizes from small messages to nearly a whole datagram.
pub const SWEEP: [usize; 6] = [64, 256, 1024, 4096, 16_384, 60_000];
/// `--jgroups` without a script: the project's own JGroups 2.12 reference.
pub const JGROUPS_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/jgroups/jgroups-perf.sh");

/// How the stack path runs its endpoint (`--driver`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
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
#[derive(Clone, Debug, clap::Args)]
pub struct MemberOpts {
    #[arg(long)]
    pub index: usize,
    #[arg(long)]
    pub members: usize,
    #[arg(long)]
    pub senders: usize,
    #[arg(long, value_parser = size)]
    pub size: usize,
    #[arg(long)]
    pub count: Option<u64>,
    #[arg(long, value_parser = secs)]
    pub duration: Option<Duration>,
    #[arg(long)]
    pub rate: Option<f64>,
    #[arg(long = "stack", value_parser = mode)]
    pub mode: Mode,
    #[arg(long, value_parser = group)]
    pub group: SocketAddr,
    #[arg(long, value_parser = parse_ipv4)]
    pub interface: IpAddr,
    #[arg(long)]
    pub fanout: bool,
    #[arg(long)]
    pub rounds: u32,
    /// The group's name (the endpoint's `GroupId`).
    #[arg(long)]
    pub name: String,
    /// Longest a round may take before the member gives up.
    #[arg(long, value_parser = secs)]
    pub cap: Duration,
    #[arg(long)]
    pub die: bool,
    #[arg(long, value_enum)]
    pub driver: Driver,
    #[arg(long)]
    pub rtt: bool,
    #[arg(long, value_parser = micros)]
    pub busy_poll: Duration,
    #[arg(long)]
    pub groups: Option<usize>,
    #[arg(long, value_parser = secs)]
    pub idle: Duration,
    #[arg(long)]
    pub raw_datagram: Option<usize>,
    /// The group key's file; none: unprotected.
    #[arg(long)]
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
        kv("--idle", self.idle.as_secs_f64().to_string());
        if let Some(n) = self.groups {
            kv("--groups", n.to_string());
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

/// Microseconds, at most a second.
fn micros(v: &str) -> Result<Duration, String> {
    match v.parse::<u64>() {
        Ok(us) if us <= 1_000_000 => Ok(Duration::from_micros(us)),
        _ => Err("give microseconds up to 1000000".into()),
    }
}

fn size(v: &str) -> Result<usize, String> {
    match v.trim().parse::<usize>() {
        Ok(size) if size < HDR => {
            Err(format!("{size} is too small: every message carries a {HDR}-byte benchmark header"))
        }
        Ok(size) if size > MAX_SIZE => {
            Err(format!("{size} is too large: a UDP datagram holds at most {MAX_SIZE} bytes"))
        }
        Ok(size) => Ok(size),
        Err(_) => Err(format!("`{v}` is not a size in bytes")),
    }
}

fn group(v: &str) -> Result<SocketAddr, String> {
    let g: SocketAddr = v.parse().map_err(|_| format!("`{v}` is not an ADDR:PORT"))?;
    match g.ip() {
        IpAddr::V4(_) if g.port() == 0 => Err(format!("{g}: give the group's port (members must share it)")),
        IpAddr::V4(ip) if ip.is_multicast() => Ok(g),
        IpAddr::V4(_) => Err(format!("{g}: {} is not an IPv4 multicast address (224.0.0.0/4)", g.ip())),
        IpAddr::V6(_) => Err(format!("{g}: thoth-perf measures IPv4 multicast only")),
    }
}

fn senders(v: &str) -> Result<Senders, String> {
    match v {
        "all" => Ok(Senders::All),
        n => n.parse().map(Senders::First).map_err(|_| format!("`{n}`: give a number or `all`")),
    }
}

fn rate(v: &str) -> Result<f64, String> {
    match v.parse::<f64>() {
        Ok(r) if r > 0.0 && r <= 1e9 => Ok(r),
        _ => Err("give messages per second per sender, above 0".into()),
    }
}

fn mode(v: &str) -> Result<Mode, String> {
    Ok(if v == "raw" { Mode::Raw } else { Mode::Stack(v.to_string()) })
}

const ABOUT: &str = "Multicast throughput and latency of a Thoth stack, side by side with raw UDP multicast";

const LONG_ABOUT: &str = "\
Multicast throughput and latency of a Thoth stack, side by side with raw UDP multicast.

With no options: 3 members on loopback multicast (one OS process each), all sending 1024-byte
messages, through the default stack, then the same workload over raw UDP multicast. Every
datagram of the stack is sealed (authenticated and encrypted) under a group key made for the
run: the members read it from a private file the parent writes and removes.";

/// What `--help` prints after the options: how the figures are taken, and the layers.
fn after_long_help() -> String {
    let mut layers = String::new();
    for (name, about) in thoth::registry().known() {
        layers.push_str(&format!("  {name:<12} {about}\n"));
    }
    format!(
        "\
What is measured:
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

Layers the registry knows:
{layers}"
    )
}

/// The command line as clap parses it; `checked` makes the checks clap cannot.
#[derive(clap::Parser, Debug)]
#[command(name = "thoth-perf", version, about = ABOUT, long_about = LONG_ABOUT, max_term_width = 100)]
#[command(args_conflicts_with_subcommands = true, after_long_help = after_long_help())]
struct Cli {
    #[command(subcommand)]
    member: Option<Member>,
    /// Group members, one process each
    #[arg(long, value_name = "N", default_value_t = 3)]
    members: usize,
    /// The first N members send
    #[arg(long, value_name = "N|all", default_value = "all", value_parser = senders)]
    senders: Senders,
    /// Message size; a list gives one row per size (default 1024)
    #[arg(long, value_name = "BYTES[,..]", value_delimiter = ',', value_parser = size)]
    size: Vec<usize>,
    /// One row per message size from 64 B to 60,000 B (64,256,1024,4096,16384,60000); with
    /// --plot, a chart of them
    #[arg(long, conflicts_with = "size")]
    sweep: bool,
    /// Write an SVG chart of msgs/s and MB/s against message size (Thoth, raw UDP and, with
    /// --jgroups, JGroups), medians with their range over --repeat
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
    /// Each repeat also runs JGroups 2.12 with the same members, senders, size and count,
    /// through bins/jgroups/jgroups-perf.sh or SCRIPT (installs JGroups and a JDK with apt-get
    /// when missing; with a total-order stack, JGroups's SEQUENCER)
    #[arg(long, value_name = "SCRIPT", num_args = 0..=1, default_missing_value = JGROUPS_SCRIPT)]
    jgroups: Option<PathBuf>,
    /// Messages per sender (default about 200 MB per sender, 2000..200000)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    count: Option<u64>,
    /// Send for this long instead of a count
    #[arg(long, value_name = "SECS", value_parser = secs, conflicts_with = "count")]
    duration: Option<Duration>,
    /// Pace each sender at this rate (latency runs); default unpaced
    #[arg(long, value_name = "MSGS_PER_SEC", value_parser = rate)]
    rate: Option<f64>,
    /// Stack spec, top layer first (default the reliable stack; `group` with --groups); `raw`
    /// = no stack, `bare` = the frame alone (sealed; with --insecure, a CRC)
    #[arg(long, value_name = "SPEC")]
    stack: Option<String>,
    /// Skip the raw UDP multicast comparison run
    #[arg(long)]
    no_raw: bool,
    /// Raw UDP packs as many whole messages as fit into datagrams of this size (raw UDP at
    /// its best datagram size; default one per message)
    #[arg(long, value_name = "BYTES", value_parser = size)]
    raw_datagram: Option<usize>,
    /// Run the stack/raw pair K times (alternating which goes first) and report the medians;
    /// with --json every run is printed too
    #[arg(long, value_name = "K", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=1000))]
    repeat: u16,
    /// R rounds per run in the same processes; the first R-1 are warm-up and only the last
    /// is reported
    #[arg(long, value_name = "R", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    rounds: u32,
    /// IPv4 multicast group (default a random 239.84.x.y:40000-49999 per run)
    #[arg(long, value_name = "ADDR:PORT", value_parser = group)]
    group: Option<SocketAddr>,
    /// The multicast interface, by one of its addresses (IPv4); the members bind their
    /// unicast sockets to it
    #[arg(long, value_name = "IP", default_value = "127.0.0.1", value_parser = parse_ipv4)]
    interface: IpAddr,
    /// Unicast fan-out to every member instead of multicast
    #[arg(long)]
    fanout: bool,
    /// How a member runs its endpoint: on its own thread (`inline`) or through a driver
    /// thread (`thread`); raw UDP is unchanged
    #[arg(long, value_enum, default_value_t = DEFAULT_DRIVER)]
    driver: Driver,
    /// Round trips: member 0 casts a ping, member 1 answers it with a cast, member 0 pings
    /// again (default 20000 pings, or --count / --duration); raw UDP does the same ping-pong
    #[arg(long)]
    rtt: bool,
    /// Inline members read their sockets this long before they sleep (0: they sleep at
    /// once); trades a core for wake-up latency
    #[arg(long, value_name = "MICROS", default_value = "0", value_parser = micros)]
    busy_poll: Duration,
    /// Many groups: each member holds N groups of all the members on one socket pair (stack
    /// `group` unless --stack), idles for --idle seconds (CPU, datagrams and memory per idle
    /// group are measured), then each sender casts round-robin into its groups at --rate
    /// (default 100 msgs/s per sender, for 5 s); no raw twin
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    groups: Option<u32>,
    /// The idle phase of --groups
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = secs)]
    idle: Duration,
    /// Run the stack without frame protection (said loudly on stderr)
    #[arg(long)]
    insecure: bool,
    /// Each repeat also runs the stack without protection: the cost of protection
    /// (`secured/insecure`), in the same invocation
    #[arg(long, conflicts_with = "insecure")]
    vs_insecure: bool,
    /// One JSON object per result line instead of the table (and no progress bars)
    #[arg(long)]
    json: bool,
    /// Tests: member N exits in the middle of the first run
    #[arg(long, value_name = "N", hide = true)]
    debug_die_member: Option<usize>,
}

#[derive(clap::Subcommand, Debug)]
enum Member {
    /// One member process (the parent starts them)
    #[command(hide = true)]
    Member(MemberOpts),
}

/// Parses the arguments after the program name.
pub fn parse(args: &[String]) -> Result<Cmd, Stop> {
    let cli: Cli = crate::cli::parse("thoth-perf", args)?;
    checked(cli).map_err(Stop::Wrong)
}

fn checked(cli: Cli) -> Result<Cmd, String> {
    if let Some(Member::Member(m)) = cli.member {
        if m.members == 0 || m.index >= m.members || m.senders > m.members {
            return Err("member: --index, --members and --senders do not fit together".into());
        }
        if m.count.is_some() == m.duration.is_some() {
            return Err("member: give exactly one of --count and --duration".into());
        }
        return Ok(Cmd::Member(m));
    }
    let groups = cli.groups.map(|n| n as usize);
    let mut o = Opts {
        members: cli.members,
        senders: cli.senders,
        sizes: match (cli.sweep, cli.size.is_empty()) {
            (true, _) => SWEEP.to_vec(),
            (false, true) => vec![1024],
            (false, false) => cli.size,
        },
        amount: match cli.duration {
            Some(d) => Amount::Duration(d),
            None => Amount::Count(cli.count),
        },
        rate: cli.rate,
        stack: cli.stack.unwrap_or_else(|| if groups.is_some() { thoth::GROUP } else { thoth::DEFAULT_STACK }.into()),
        raw: !cli.no_raw,
        json: cli.json,
        repeat: cli.repeat.into(),
        rounds: cli.rounds,
        group: cli.group,
        interface: cli.interface,
        fanout: cli.fanout,
        die_member: cli.debug_die_member,
        driver: cli.driver,
        rtt: cli.rtt,
        busy_poll: cli.busy_poll,
        groups,
        idle: cli.idle,
        raw_datagram: cli.raw_datagram,
        secure: !cli.insecure,
        vs_insecure: cli.vs_insecure,
        plot: cli.plot,
        jgroups: cli.jgroups,
        progress: match (cli.json, std::io::IsTerminal::is_terminal(&std::io::stderr())) {
            (true, _) => Show::Quiet,
            (false, true) => Show::Bar,
            (false, false) => Show::Lines,
        },
    };
    if o.groups.is_some() {
        if o.rtt {
            return Err("--groups and --rtt do not go together".into());
        }
        // Groups with heartbeats and membership, casting now and then, no raw twin.
        o.raw = false;
        o.rate = o.rate.or(Some(GROUPS_RATE));
        if o.amount == Amount::Count(None) {
            o.amount = Amount::Duration(GROUPS_DURATION);
        }
    }
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
    if o.die_member.is_some_and(|m| m >= o.members) {
        return Err("--debug-die-member: no such member".into());
    }
    if o.plot.is_some() && (o.rtt || o.groups.is_some()) {
        return Err("--plot charts throughput against size: not with --rtt or --groups".into());
    }
    if o.jgroups.is_some() {
        let why = [
            (o.rtt, "--rtt"),
            (o.groups.is_some(), "--groups"),
            (o.fanout, "--fanout"),
            (o.rate.is_some(), "--rate"),
            (matches!(o.amount, Amount::Duration(_)), "--duration"),
            (o.stack == "raw", "--stack raw"),
        ];
        if let Some((_, what)) = why.iter().find(|w| w.0) {
            return Err(format!("--jgroups runs JGroups's own one-way workload by count: not with {what}"));
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn run(args: &[&str]) -> Result<Opts, String> {
        match parse(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>()) {
            Ok(Cmd::Run(o)) => Ok(o),
            Ok(Cmd::Member(_)) => Err("not a run".into()),
            Err(stop) => Err(format!("{stop:?}")),
        }
    }

    #[test]
    fn defaults_and_options() {
        let o = run(&[]).unwrap();
        assert_eq!((o.members, o.sender_count(), o.sizes.clone(), o.raw), (3, 3, vec![1024], true));
        assert_eq!((o.repeat, o.rounds, o.secure, o.json, o.stack.as_str()), (1, 1, true, false, thoth::DEFAULT_STACK));
        assert_eq!(o.count_for(1024), Some(195_312));
        let o = run(&["--members", "4", "--senders", "1", "--size", "100,64000", "--duration", "2"]).unwrap();
        assert_eq!((o.sender_count(), o.sizes.clone(), o.count_for(100)), (1, vec![100, 64000], None));
        assert!(!run(&["--stack", "raw"]).unwrap().raw);
        assert_eq!(o.interface, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(run(&["--interface", "10.9.8.7"]).unwrap().interface, IpAddr::V4(Ipv4Addr::new(10, 9, 8, 7)));
        assert_eq!(o.driver, DEFAULT_DRIVER);
        assert_eq!(run(&["--driver", "thread"]).unwrap().driver, Driver::Thread);
        assert_eq!(run(&["--busy-poll", "50"]).unwrap().busy_poll, Duration::from_micros(50));
        let g = run(&["--groups", "1000"]).unwrap();
        assert_eq!((g.groups, g.stack.as_str(), g.raw, g.rate), (Some(1000), thoth::GROUP, false, Some(GROUPS_RATE)));
        assert_eq!((g.amount, g.idle), (Amount::Duration(GROUPS_DURATION), Duration::from_secs(5)));
        let r = run(&["--rtt"]).unwrap();
        assert_eq!((r.rtt, r.sender_count(), r.count_for(1024)), (true, 2, Some(RTT_COUNT)));
        let s = run(&["--sweep", "--plot", "x.svg", "--jgroups", "--repeat", "3", "--json"]).unwrap();
        assert_eq!((s.sizes.as_slice(), s.plot.as_deref(), s.repeat), (&SWEEP[..], Some("x.svg".as_ref()), 3));
        assert_eq!(s.jgroups.as_deref(), Some(JGROUPS_SCRIPT.as_ref()));
        assert_eq!(s.progress, Show::Quiet, "no progress with --json");
        let j = run(&["--jgroups", "/tmp/ref.sh", "--count", "10"]).unwrap();
        assert_eq!((j.jgroups.as_deref(), j.amount), (Some("/tmp/ref.sh".as_ref()), Amount::Count(Some(10))));
        assert!(std::path::Path::new(JGROUPS_SCRIPT).is_file(), "the JGroups reference moved");
    }

    #[test]
    fn rejects_what_cannot_run() {
        for (bad, why) in [
            (&["--size", "10"][..], "too small"),
            (&["--size", "70000"], "too large"),
            (&["--size", "100,x"], "not a size"),
            (&["--senders", "4"], "--senders 4"),
            (&["--count", "5", "--duration", "1"], "cannot be used with"),
            (&["--count", "0"], "--count"),
            (&["--sweep", "--size", "100"], "cannot be used with"),
            (&["--group", "127.0.0.1:5000"], "not an IPv4 multicast address"),
            (&["--group", "239.1.2.3:0"], "port"),
            (&["--interface", "::1"], "IPv4"),
            (&["--interface", "0.0.0.0"], "interface"),
            (&["--interface", "eth0"], "interface"),
            (&["--stack", "no-such-layer"], "unknown layer"),
            (&["--driver", "fibre"], "fibre"),
            (&["--busy-poll", "2000000"], "microseconds"),
            (&["--rate", "0"], "above 0"),
            (&["--rtt", "--members", "1"], "at least 2"),
            (&["--groups", "0"], "--groups"),
            (&["--groups", "10", "--stack", "raw"], "not raw"),
            (&["--groups", "10", "--rtt"], "do not go together"),
            (&["--plot", "x.svg", "--rtt"], "--plot"),
            (&["--jgroups", "--rtt"], "--rtt"),
            (&["--jgroups", "--duration", "2"], "--duration"),
            (&["--jgroups", "--stack", "raw"], "--stack raw"),
            (&["--insecure", "--vs-insecure"], "cannot be used with"),
            (&["--repeat", "0"], "--repeat"),
            (&["--bogus"], "unknown option `--bogus`"),
        ] {
            let e = run(bad).expect_err(&format!("{bad:?} accepted"));
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }

    #[test]
    fn help_and_version() {
        let Err(Stop::Help(help)) = parse(&["--help".to_string()]) else { panic!("no help") };
        for w in ["--members", "--sweep", "--plot", "--jgroups", "--repeat", "--json", "What is measured", "chk_fifo"] {
            assert!(help.contains(w), "--help lacks {w}:\n{help}");
        }
        assert!(!help.contains("debug-die-member") && !help.contains("Commands:"), "{help}");
        let Err(Stop::Version(v)) = parse(&["--version".to_string()]) else { panic!("no version") };
        assert_eq!(v, format!("thoth-perf {}", env!("CARGO_PKG_VERSION")));
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
        let raw = MemberOpts { mode: Mode::Raw, key: None, groups: None, count: None, duration: Some(m.cap), ..m };
        let Ok(Cmd::Member(back)) = parse(&raw.to_args()) else { panic!("member args do not parse") };
        assert_eq!(format!("{back:?}"), format!("{raw:?}"));
    }
}
