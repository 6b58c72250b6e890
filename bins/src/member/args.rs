//! `thoth-member`'s command line.

use crate::cli::Stop;
use crate::iface;
use crate::key::{KeyArgs, Keying};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use thoth::udp::{DEFAULT_GROUP, endpoint_id};

/// What `--help` prints before the options.
const ABOUT: &str = "\
Joins (or forms) the group NAME, prints every event as one JSON line on stdout, casts each
line read on stdin, and leaves on end of input or SIGTERM. Every datagram is authenticated
and encrypted under the group key in FILE (every member needs the same one), or, with
member key pairs, under keys each member shares with each other on the allow-list.";

/// The command line as clap parses it; `parse` checks what clap cannot and makes `Opts`.
#[derive(clap::Parser, Debug)]
#[command(name = "thoth-member", version, about = ABOUT, max_term_width = 100)]
#[command(override_usage = "thoth-member (--key FILE | --identity FILE --allow FILE | --insecure) [OPTIONS]
       thoth-member --keygen > FILE
       thoth-member --new-identity FILE >> ALLOW_FILE")]
struct Cli {
    /// Print a new group key (64 hex digits) and exit; keep it private
    #[arg(long)]
    keygen: bool,
    /// Write a new member key pair to FILE (readable by you only), print its public key and
    /// exit
    #[arg(long, value_name = "FILE")]
    new_identity: Option<PathBuf>,
    #[command(flatten)]
    keys: KeyArgs,
    /// The group to join
    #[arg(long, value_name = "NAME", default_value = "thoth")]
    group: String,
    /// The stack (`group` = gms:heartbeat:reliable; e.g. `chk_vsync:group` checks virtual
    /// synchrony on live traffic)
    #[arg(long, value_name = "SPEC", default_value = "group")]
    stack: String,
    /// Unicast mode: no multicast; find the group through these members' addresses
    /// (comma-separated ip:port)
    #[arg(long, value_name = "ADDRS", value_delimiter = ',')]
    seeds: Vec<SocketAddr>,
    /// The multicast interface, by one of its addresses (IPv4, or IPv6 with an IPv6
    /// --addr); the member binds its unicast socket to it (default 127.0.0.1, loopback; ::1
    /// with an IPv6 group). Give the address of a real interface for a group across hosts
    /// or network namespaces
    #[arg(long, value_name = "IP", value_parser = iface::parse)]
    interface: Option<IpAddr>,
    /// This member's unicast address (default the interface's, any port)
    #[arg(long, value_name = "ADDR")]
    bind: Option<SocketAddr>,
    /// The multicast group address (IPv6 groups, e.g. [ff15::7468]:47474, want an IPv6
    /// --interface)
    #[arg(long, value_name = "ADDR", default_value_t = DEFAULT_GROUP)]
    addr: SocketAddr,
    /// Tests and demos: hear nothing from these members' addresses ...
    #[arg(long, value_name = "ADDRS", value_delimiter = ',')]
    deaf_to: Vec<SocketAddr>,
    /// ... until MS milliseconds after start (start as separate partitions)
    #[arg(long, value_name = "MS", default_value_t = 0)]
    deaf_ms: u64,
    /// Serve live metrics for Prometheus at http://ADDR/metrics (port 0: any free port;
    /// the `metrics` event says which)
    #[arg(long, value_name = "ADDR")]
    metrics: Option<SocketAddr>,
    /// Answer `thoth-probe` (its view and metrics, to whoever holds the group's key)
    #[arg(long)]
    probe: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Opts {
    pub group: String,
    pub stack: String,
    pub seeds: Vec<SocketAddr>,
    /// The multicast interface, by one of its addresses (see `iface`).
    pub interface: IpAddr,
    pub bind: SocketAddr,
    pub addr: SocketAddr,
    pub deaf_to: Vec<SocketAddr>,
    pub deaf_ms: u64,
    pub keying: Keying,
    pub metrics: Option<SocketAddr>,
    pub probe: bool,
}

/// What the command line asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cmd {
    Keygen,
    NewIdentity(PathBuf),
    Run(Box<Opts>),
}

impl Opts {
    /// The stack spec, with the `deaf` layer at the bottom when asked for.
    pub fn spec(&self) -> String {
        if self.deaf_to.is_empty() {
            return self.stack.clone();
        }
        let ids: Vec<String> = self.deaf_to.iter().map(|a| endpoint_id(*a).0.to_string()).collect();
        format!("{}:deaf(to={},until_ms={})", self.stack, ids.join("+"), self.deaf_ms)
    }
}

/// What the command line asks for, or why it makes no run.
pub fn parse(args: &[String]) -> Result<Cmd, Stop> {
    let cli: Cli = crate::cli::parse("thoth-member", args)?;
    checked(cli).map_err(Stop::Wrong)
}

/// The checks clap does not make, and the options of a run.
fn checked(cli: Cli) -> Result<Cmd, String> {
    if cli.keygen {
        return Ok(Cmd::Keygen);
    }
    if let Some(path) = cli.new_identity {
        return Ok(Cmd::NewIdentity(path));
    }
    if cli.deaf_to.is_empty() != (cli.deaf_ms == 0) {
        return Err("--deaf-to and --deaf-ms go together".into());
    }
    let keying = cli.keys.keying("thoth-member --keygen")?;
    // The family the member speaks: its group's, or in unicast mode its seeds'.
    let (family, what) = match cli.seeds.first() {
        Some(s) => (s.ip(), "--seeds"),
        None => (cli.addr.ip(), "--addr"),
    };
    if let Some(s) = cli.seeds.iter().find(|s| s.is_ipv4() != family.is_ipv4()) {
        return Err(format!("--seeds: {s} and {family} are of different families"));
    }
    let interface = cli.interface.unwrap_or_else(|| iface::loopback(family.is_ipv6()));
    iface::same_family(interface, family, what)?;
    let bind = cli.bind.unwrap_or(SocketAddr::new(interface, 0));
    if bind.is_ipv4() != family.is_ipv4() {
        return Err(format!("--bind {bind} and {what} {family} are of different families"));
    }
    Ok(Cmd::Run(Box::new(Opts {
        group: cli.group,
        stack: cli.stack,
        seeds: cli.seeds,
        interface,
        bind,
        addr: cli.addr,
        deaf_to: cli.deaf_to,
        deaf_ms: cli.deaf_ms,
        keying,
        metrics: cli.metrics,
        probe: cli.probe,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The options of a run (with `--insecure` unless a key is given).
    fn p(s: &str) -> Result<Opts, String> {
        let s = if s.contains("--key") || s.contains("--identity") { s.to_string() } else { format!("--insecure {s}") };
        match cmd(&s)? {
            Cmd::Run(o) => Ok(*o),
            other => Err(format!("{other:?}")),
        }
    }

    /// What the command line `s` asks for, or (help, version, error) what it says.
    fn cmd(s: &str) -> Result<Cmd, String> {
        parse(&crate::cli::words(s)).map_err(Stop::text)
    }

    #[test]
    fn a_key_or_an_explicit_insecure_run() {
        let err = cmd("--group g").unwrap_err();
        assert!(err.contains("--keygen") && err.contains("--insecure"), "{err}");
        assert_eq!(p("--key /k").map(|o| o.keying), Ok(Keying::Shared(PathBuf::from("/k"))));
        let pairs = Keying::Pairs { identity: "/i".into(), allow: "/a".into() };
        assert_eq!(p("--identity /i --allow /a").map(|o| o.keying), Ok(pairs));
        assert!(p("--identity /i").is_err() && p("--key /k --identity /i --allow /a").is_err());
        assert_eq!(p("").map(|o| o.keying), Ok(Keying::Insecure), "--insecure");
        assert!(cmd("--key /k --insecure").is_err());
        assert_eq!(cmd("--keygen"), Ok(Cmd::Keygen));
        assert_eq!(cmd("--new-identity /n"), Ok(Cmd::NewIdentity("/n".into())));
        assert!(cmd("--group g --help").unwrap_err().starts_with("Joins (or forms)"));
    }

    #[test]
    fn help_lists_every_option_and_an_unknown_one_is_named() {
        let help = cmd("--help").unwrap_err();
        for o in [
            "--keygen",
            "--new-identity",
            "--key",
            "--identity",
            "--allow",
            "--insecure",
            "--group",
            "--stack",
            "--seeds",
            "--interface",
            "--bind",
            "--addr",
            "--deaf-to",
            "--deaf-ms",
            "--metrics",
            "--probe",
            "--help",
            "--version",
        ] {
            assert!(help.contains(o), "{o} is not in --help:\n{help}");
        }
        assert_eq!(cmd("--version"), Err(format!("thoth-member {}", env!("CARGO_PKG_VERSION"))));
        assert_eq!(cmd("--insecure --bogus"), Err("unknown option `--bogus` (see thoth-member --help)".into()));
        assert!(cmd("--insecure --deaf-ms x").unwrap_err().contains("--deaf-ms"));
    }

    #[test]
    fn defaults_and_options() {
        let o = p("").unwrap();
        assert_eq!((o.group.as_str(), o.stack.as_str(), o.addr), ("thoth", "group", DEFAULT_GROUP));
        let o = p("--group g --seeds 127.0.0.1:5000,127.0.0.1:5001 --deaf-to 127.0.0.1:6000 --deaf-ms 300").unwrap();
        assert_eq!(o.seeds.len(), 2);
        let id = endpoint_id("127.0.0.1:6000".parse().unwrap()).0;
        assert_eq!(o.spec(), format!("group:deaf(to={id},until_ms=300)"));
        assert!(p("--group").is_err());
        assert!(p("--bogus x").is_err());
        assert!(p("--deaf-ms 5").is_err());
    }

    #[test]
    fn the_interface_names_where_multicast_goes_and_the_default_bind() {
        let o = p("").unwrap();
        assert_eq!((o.interface, o.bind), (iface::loopback(false), "127.0.0.1:0".parse().unwrap()));
        let o = p("--interface 10.7.0.2").unwrap();
        assert_eq!((o.interface, o.bind), ("10.7.0.2".parse().unwrap(), "10.7.0.2:0".parse().unwrap()));
        let o = p("--interface 10.7.0.2 --bind 10.7.0.2:4000").unwrap();
        assert_eq!(o.bind, "10.7.0.2:4000".parse().unwrap());
        // IPv6: the interface follows the group's family, by default loopback.
        let o = p("--addr [ff15::7468]:47474").unwrap();
        assert_eq!((o.interface, o.bind), (iface::loopback(true), "[::1]:0".parse().unwrap()));
        let o = p("--addr [ff15::7468]:47474 --interface fd00::2").unwrap();
        assert_eq!((o.interface, o.bind), ("fd00::2".parse().unwrap(), "[fd00::2]:0".parse().unwrap()));
        // Unicast mode: the seeds' family.
        let o = p("--seeds [::1]:5000").unwrap();
        assert_eq!(o.bind, "[::1]:0".parse().unwrap());
        for bad in [
            "--interface",
            "--interface eth0",
            "--interface 0.0.0.0",
            "--interface 239.84.72.1",
            "--interface ::1",
            "--addr [ff15::7468]:47474 --interface 127.0.0.1",
            "--interface 10.7.0.2 --bind [::1]:0",
            "--seeds 127.0.0.1:5000 --interface ::1",
            "--seeds 127.0.0.1:5000,[::1]:5000",
        ] {
            assert!(p(bad).is_err(), "{bad} accepted");
        }
    }
}
