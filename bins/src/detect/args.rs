//! The command line of `thoth-detect` and of its member processes, and `--help`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
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
    Help,
    Run(Opts),
    Member(MemberOpts),
}

fn value<'a>(it: &mut impl Iterator<Item = &'a String>, flag: &str) -> Result<&'a str, String> {
    it.next().map(String::as_str).ok_or_else(|| format!("{flag} needs a value"))
}

fn num<T: std::str::FromStr>(v: &str, flag: &str) -> Result<T, String> {
    v.parse().map_err(|_| format!("{flag}: `{v}` is not a valid value"))
}

fn secs(v: &str, flag: &str) -> Result<Duration, String> {
    let s: f64 = num(v, flag)?;
    if !(s.is_finite() && s > 0.0 && s <= 86_400.0) {
        return Err(format!("{flag}: give seconds, more than 0 and at most a day"));
    }
    Ok(Duration::from_secs_f64(s))
}

/// `--interface`, as every binary reads it (`iface`); IPv4, as the groups measured here.
fn interface(v: &str) -> Result<IpAddr, String> {
    crate::iface::parse(v).and_then(crate::iface::ipv4_only)
}

fn detector(v: &str) -> Result<String, String> {
    match DETECTORS.contains(&v) {
        true => Ok(v.to_string()),
        false => Err(format!("--detector {v}: one of {}", DETECTORS.join(", "))),
    }
}

/// Parses the arguments (program name excluded).
pub fn parse(args: &[String]) -> Result<Cmd, String> {
    if args.first().map(String::as_str) == Some("member") {
        return parse_member(&args[1..]).map(Cmd::Member);
    }
    let mut o = Opts {
        members: 5,
        detectors: DETECTORS.iter().map(|d| d.to_string()).collect(),
        duration: Duration::from_secs(120),
        after: Duration::from_secs(5),
        load: 2,
        rate: 200.0,
        size: 100,
        interface: IpAddr::V4(Ipv4Addr::LOCALHOST),
        json: false,
    };
    let mut it = args.iter();
    while let Some(f) = it.next() {
        let f = f.as_str();
        match f {
            "-h" | "--help" => return Ok(Cmd::Help),
            "--members" => o.members = num(value(&mut it, f)?, f)?,
            "--detector" => o.detectors = vec![detector(value(&mut it, f)?)?],
            "--duration" => o.duration = secs(value(&mut it, f)?, f)?,
            "--after" => o.after = secs(value(&mut it, f)?, f)?,
            "--load" => o.load = num(value(&mut it, f)?, f)?,
            "--rate" => o.rate = num(value(&mut it, f)?, f)?,
            "--size" => o.size = num(value(&mut it, f)?, f)?,
            "--interface" => o.interface = interface(value(&mut it, f)?)?,
            "--json" => o.json = true,
            _ => return Err(format!("unknown option `{f}` (see --help)")),
        }
    }
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

fn parse_member(args: &[String]) -> Result<MemberOpts, String> {
    let mut m = MemberOpts {
        index: 0,
        members: 0,
        detector: String::new(),
        group: SocketAddr::from(([239, 84, 72, 1], 47474)),
        name: String::new(),
        rate: 200.0,
        size: 100,
        interface: IpAddr::V4(Ipv4Addr::LOCALHOST),
        key: None,
    };
    let mut it = args.iter();
    while let Some(f) = it.next() {
        let f = f.as_str();
        match f {
            "--key" => m.key = Some(value(&mut it, f)?.into()),
            "--index" => m.index = num(value(&mut it, f)?, f)?,
            "--members" => m.members = num(value(&mut it, f)?, f)?,
            "--detector" => m.detector = detector(value(&mut it, f)?)?,
            "--group" => m.group = num(value(&mut it, f)?, f)?,
            "--name" => m.name = value(&mut it, f)?.to_string(),
            "--rate" => m.rate = num(value(&mut it, f)?, f)?,
            "--size" => m.size = num(value(&mut it, f)?, f)?,
            "--interface" => m.interface = interface(value(&mut it, f)?)?,
            _ => return Err(format!("member: unknown option `{f}`")),
        }
    }
    if m.index >= m.members || m.detector.is_empty() || m.name.is_empty() {
        return Err("member: --index below --members, --detector and --name are required".into());
    }
    Ok(m)
}

pub fn help() -> String {
    format!(
        "\
thoth-detect: crash detection by Thoth's failure detectors over real sockets.

Starts N member processes on a random multicast group (239.84.x.y) on the interface
(loopback by default), each an endpoint with the stack `{}` over the UDP driver, each
casting a steady stream, every datagram sealed under a key made for the run. After DURATION - AFTER seconds the last member is killed with
SIGKILL; AFTER seconds later the run ends. Every `Event::Suspect` is time-stamped on
CLOCK_MONOTONIC by the member that raised it. Reported per detector: false suspicions (of
live members at any time, of the victim before the crash), the time each survivor took to
suspect the victim (min / median / max) and the survivors that never did.

Options:
  --members N      member processes (default 5)
  --detector NAME  heartbeat, phi or swim (default: all three, one after another)
  --duration SECS  length of each detector's run (default 120)
  --after SECS     time from the crash to the end of the run (default 5)
  --load K         CPU-burning threads in this process during the runs (default 2)
  --rate R         casts per second of each member (default 200)
  --size BYTES     bytes per cast (default 100)
  --interface IP   the multicast interface, by one of its addresses (IPv4); the members
                   bind their unicast sockets to it (default 127.0.0.1, loopback)
  --json           one JSON object per detector instead of the table
  -h, --help       this text
",
        stack("<detector>")
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
        match parse(&m.to_args()).unwrap() {
            Cmd::Member(back) => assert_eq!(back, m),
            _ => panic!("not a member"),
        }
    }
}
