//! The command line of `thoth-detect` and of its member processes, and `--help`.

use crate::cli::{Stop, secs};
use crate::iface::parse_ipv4 as interface;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// The failure detectors measured, in the order they run by default.
pub const DETECTORS: [&str; 3] = ["heartbeat", "phi", "swim"];

/// The stack of every member: the reliable layers busy with traffic, the detector just above
/// `pack`, as the failure-detector crate recommends.
pub fn stack(detector: &str) -> String {
    format!("frag:flow:stable:nak:pt2pt:{detector}:pack")
}

/// What the parent measures.
#[derive(Clone, Debug, PartialEq)]
pub struct Opts {
    pub members: usize,
    pub detectors: Vec<String>,
    /// Length of one detector's run, from the moment every member is armed.
    pub duration: Duration,
    /// How long before the end of the run the victim is killed.
    pub after: Duration,
    /// CPU-burning threads in the parent for the whole invocation.
    pub load: usize,
    /// Casts per second of each member.
    pub rate: f64,
    pub size: usize,
    /// The multicast interface, by one of its addresses (see `iface`).
    pub interface: IpAddr,
    pub json: bool,
}

/// The options of one member process (`thoth-detect member ...`, written by the parent).
#[derive(Clone, Debug, PartialEq)]
pub struct MemberOpts {
    pub index: usize,
    pub members: usize,
    pub detector: String,
    pub group: SocketAddr,
    /// The group's name (the endpoint's `GroupId`); it carries the parent's pid, so the
    /// member processes of one parent can be found in `/proc`.
    pub name: String,
    pub rate: f64,
    pub size: usize,
    pub interface: IpAddr,
    /// The group key's file (the parent's throwaway key).
    pub key: Option<std::path::PathBuf>,
}

impl MemberOpts {
    /// The arguments that make a member process with these options.
    pub fn to_args(&self) -> Vec<String> {
        let kv: [(&str, String); 8] = [
            ("--index", self.index.to_string()),
            ("--members", self.members.to_string()),
            ("--detector", self.detector.clone()),
            ("--group", self.group.to_string()),
            ("--name", self.name.clone()),
            ("--rate", self.rate.to_string()),
            ("--size", self.size.to_string()),
            ("--interface", self.interface.to_string()),
        ];
        let mut a = vec!["member".to_string()];
        for (k, v) in kv {
            a.push(k.to_string());
            a.push(v);
        }
        if let Some(key) = &self.key {
            a.push("--key".into());
            a.push(key.display().to_string());
        }
        a
    }
}

pub enum Cmd {
    Run(Opts),
    Member(MemberOpts),
}

/// The command line as clap parses it (`parse` makes the checks clap does not).
#[derive(clap::Parser, Debug)]
#[command(name = "thoth-detect", version, about = ABOUT, long_about = long_about(), max_term_width = 100)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    member: Option<Member>,
    /// Member processes
    #[arg(long, value_name = "N", default_value_t = 5)]
    members: usize,
    /// heartbeat, phi or swim (default: all three, one after another)
    #[arg(long, value_name = "NAME", value_parser = detector)]
    detector: Option<String>,
    /// Length of each detector's run, in seconds
    #[arg(long, value_name = "SECS", default_value = "120", value_parser = secs)]
    duration: Duration,
    /// Time from the crash to the end of the run, in seconds
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = secs)]
    after: Duration,
    /// CPU-burning threads in this process during the runs
    #[arg(long, value_name = "K", default_value_t = 2)]
    load: usize,
    /// Casts per second of each member
    #[arg(long, value_name = "R", default_value_t = 200.0)]
    rate: f64,
    /// Bytes per cast
    #[arg(long, value_name = "BYTES", default_value_t = 100)]
    size: usize,
    /// The multicast interface, by one of its addresses (IPv4); the members bind their
    /// unicast sockets to it
    #[arg(long, value_name = "IP", default_value = "127.0.0.1", value_parser = interface)]
    interface: IpAddr,
    /// One JSON object per detector instead of the table
    #[arg(long)]
    json: bool,
}

#[derive(clap::Subcommand, Debug)]
enum Member {
    /// One member process (the parent starts them)
    #[command(hide = true)]
    Member {
        #[arg(long)]
        index: usize,
        #[arg(long)]
        members: usize,
        #[arg(long, value_parser = detector)]
        detector: String,
        #[arg(long)]
        group: SocketAddr,
        #[arg(long)]
        name: String,
        #[arg(long)]
        rate: f64,
        #[arg(long)]
        size: usize,
        #[arg(long, value_parser = interface)]
        interface: IpAddr,
        #[arg(long)]
        key: Option<std::path::PathBuf>,
    },
}

fn detector(v: &str) -> Result<String, String> {
    match DETECTORS.contains(&v) {
        true => Ok(v.to_string()),
        false => Err(format!("one of {}", DETECTORS.join(", "))),
    }
}

/// Parses the arguments (program name excluded).
pub fn parse(args: &[String]) -> Result<Cmd, Stop> {
    let cli: Cli = crate::cli::parse("thoth-detect", args)?;
    checked(cli).map_err(Stop::Wrong)
}

fn checked(cli: Cli) -> Result<Cmd, String> {
    if let Some(Member::Member { index, members, detector, group, name, rate, size, interface, key }) = cli.member {
        if index >= members {
            return Err("member: --index below --members".into());
        }
        return Ok(Cmd::Member(MemberOpts { index, members, detector, group, name, rate, size, interface, key }));
    }
    let detectors = match cli.detector {
        Some(d) => vec![d],
        None => DETECTORS.iter().map(|d| d.to_string()).collect(),
    };
    let o = Opts {
        members: cli.members,
        detectors,
        duration: cli.duration,
        after: cli.after,
        load: cli.load,
        rate: cli.rate,
        size: cli.size,
        interface: cli.interface,
        json: cli.json,
    };
    if !(2..=32).contains(&o.members) {
        return Err("--members: between 2 and 32 (one is crashed, at least one must watch)".into());
    }
    if o.after >= o.duration {
        return Err(format!(
            "--after {} s must be shorter than --duration {} s (the crash comes at duration - after)",
            o.after.as_secs_f64(),
            o.duration.as_secs_f64()
        ));
    }
    if o.load > 64 {
        return Err("--load: at most 64 threads".into());
    }
    if !(o.rate.is_finite() && o.rate > 0.0 && o.rate <= 100_000.0) {
        return Err("--rate: more than 0 and at most 100000 messages per second".into());
    }
    if !(8..=65_536).contains(&o.size) {
        return Err("--size: between 8 and 65536 bytes".into());
    }
    Ok(Cmd::Run(o))
}

const ABOUT: &str = "Crash detection by Thoth's failure detectors over real sockets";

fn long_about() -> String {
    format!(
        "\
Crash detection by Thoth's failure detectors over real sockets.

Starts N member processes on a random multicast group (239.84.x.y) on the interface
(loopback by default), each an endpoint over the UDP driver with the stack
`{}`, each casting a steady stream, every datagram sealed under a key made
for the run. After DURATION - AFTER seconds the last member is killed with SIGKILL; AFTER
seconds later the run ends. Every `Event::Suspect` is time-stamped on CLOCK_MONOTONIC by
the member that raised it. Reported per detector: false suspicions (of live members at any
time, of the victim before the crash), the time each survivor took to suspect the victim
(min / median / max) and the survivors that never did.",
        stack("<detector>")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::net::Ipv4Addr;

    fn run(args: &[&str]) -> Result<Opts, String> {
        match parse(&crate::cli::words(&args.join(" "))) {
            Ok(Cmd::Run(o)) => Ok(o),
            Ok(Cmd::Member(_)) => Err("not a run".into()),
            Err(stop) => Err(format!("{stop:?}")),
        }
    }

    #[test]
    fn defaults_options_and_refusals() {
        let d = run(&[]).unwrap();
        assert_eq!((d.members, d.detectors.len(), d.duration.as_secs(), d.after.as_secs(), d.load), (5, 3, 120, 5, 2));
        assert_eq!(d.interface, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(run(&["--interface", "10.1.2.3"]).unwrap().interface, IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)));
        let o = run(&["--members", "3", "--detector", "swim", "--duration", "4", "--after", "3", "--json"]).unwrap();
        assert_eq!((o.members, o.detectors.clone(), o.duration.as_secs(), o.json), (3, vec!["swim".into()], 4, true));
        for bad in [
            &["--members", "1"][..],
            &["--detector", "x"],
            &["--duration", "3", "--after", "3"],
            &["--bogus"],
            &["--interface", "::1"],
            &["--interface", "0.0.0.0"],
            &["--interface"],
        ] {
            assert!(run(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn member_options_round_trip() {
        let m = MemberOpts {
            index: 2,
            members: 5,
            detector: "phi".into(),
            group: "239.84.1.2:45000".parse().unwrap(),
            name: "thoth-detect-1-x".into(),
            rate: 150.0,
            size: 64,
            interface: "10.1.2.3".parse().unwrap(),
            key: Some("/tmp/k.key".into()),
        };
        match parse(&m.to_args()) {
            Ok(Cmd::Member(back)) => assert_eq!(back, m),
            _ => panic!("not a member"),
        }
        let Err(Stop::Help(help)) = parse(&["--help".to_string()]) else { panic!("no help") };
        for o in
            ["--members", "--detector", "--duration", "--after", "--load", "--rate", "--size", "--interface", "--json"]
        {
            assert!(help.contains(o), "{o} is not in --help:\n{help}");
        }
        assert!(!help.contains("Commands:"), "the member processes' command is hidden:\n{help}");
    }
}
