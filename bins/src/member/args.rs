//! `thoth-member`'s command line.

use crate::iface;
use crate::key::Keying;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use thoth::udp::{DEFAULT_GROUP, endpoint_id};

pub const USAGE: &str = "\
usage: thoth-member (--key FILE | --identity FILE --allow FILE | --insecure)
                    [--group NAME] [--stack SPEC] [--seeds ADDR,...] [--interface IP]
                    [--bind ADDR] [--addr GROUP_ADDR] [--deaf-to ADDR,... --deaf-ms MS]
       thoth-member --keygen > FILE
       thoth-member --new-identity FILE >> ALLOW_FILE

Joins (or forms) the group NAME, prints every event as one JSON line on stdout, casts each
line read on stdin, and leaves on end of input or SIGTERM. Every datagram is authenticated
and encrypted under the group key in FILE (every member needs the same one), or, with
member key pairs, under keys each member shares with each other on the allow-list.

  --keygen          print a new group key (64 hex digits) and exit; keep it private
  --key FILE        the group key, as --keygen wrote it
  --new-identity FILE  write a new member key pair to FILE (readable by you only), print
                    its public key and exit
  --identity FILE   member key pairs: this member's key, as --new-identity wrote it ...
  --allow FILE      ... and the public keys of the members the group admits, one per line
                    (`#` comments); a fresh key per view goes to the view's members only
  --insecure        no key: datagrams neither authenticated nor encrypted, and anyone who
                    reaches the group can speak for any member (said loudly on stderr)

  --group NAME      the group to join (default `thoth`)
  --stack SPEC      the stack (default `group` = gms:heartbeat:reliable; e.g.
                    `chk_vsync:group` checks virtual synchrony on live traffic)
  --seeds ADDRS     unicast mode: no multicast; find the group through these members'
                    addresses (comma-separated ip:port)
  --interface IP    the multicast interface, by one of its addresses (IPv4, or IPv6 with
                    an IPv6 --addr); the member binds its unicast socket to it (default
                    127.0.0.1, loopback; ::1 with an IPv6 group). Give the address of a
                    real interface for a group across hosts or network namespaces
  --bind ADDR       this member's unicast address (default the interface's, any port)
  --addr ADDR       the multicast group address (default 239.84.72.1:47474; IPv6 groups,
                    e.g. [ff15::7468]:47474, want an IPv6 --interface)
  --deaf-to ADDRS   tests and demos: hear nothing from these members' addresses ...
  --deaf-ms MS      ... until MS milliseconds after start (start as separate partitions)";

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
}

/// What the command line asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cmd {
    Help,
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

fn addrs(v: &str) -> Result<Vec<SocketAddr>, String> {
    v.split(',').filter(|s| !s.is_empty()).map(|s| s.parse().map_err(|_| format!("bad address `{s}`"))).collect()
}

pub fn parse(args: &[String]) -> Result<Cmd, String> {
    let (mut interface, mut bind, mut insecure) = (None, None, false);
    let (mut key, mut identity, mut allow) = (None, None, None);
    let mut o = Opts {
        group: "thoth".into(),
        stack: "group".into(),
        seeds: Vec::new(),
        interface: iface::loopback(false),
        bind: SocketAddr::new(iface::loopback(false), 0),
        addr: DEFAULT_GROUP,
        deaf_to: Vec::new(),
        deaf_ms: 0,
        keying: Keying::Insecure,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--help" | "-h" => return Ok(Cmd::Help),
            "--keygen" => return Ok(Cmd::Keygen),
            "--insecure" => {
                insecure = true;
                continue;
            }
            _ => {}
        }
        let v = it.next().ok_or_else(|| format!("{a} needs a value"))?;
        match a.as_str() {
            "--group" => o.group = v.clone(),
            "--stack" => o.stack = v.clone(),
            "--seeds" => o.seeds = addrs(v)?,
            "--interface" => interface = Some(iface::parse(v)?),
            "--bind" => bind = Some(v.parse().map_err(|_| format!("bad address `{v}`"))?),
            "--addr" => o.addr = v.parse().map_err(|_| format!("bad address `{v}`"))?,
            "--deaf-to" => o.deaf_to = addrs(v)?,
            "--deaf-ms" => o.deaf_ms = v.parse().map_err(|_| format!("bad number `{v}`"))?,
            "--key" => key = Some(PathBuf::from(v)),
            "--identity" => identity = Some(PathBuf::from(v)),
            "--allow" => allow = Some(PathBuf::from(v)),
            "--new-identity" => return Ok(Cmd::NewIdentity(PathBuf::from(v))),
            _ => return Err(format!("unknown option `{a}`")),
        }
    }
    if o.deaf_to.is_empty() != (o.deaf_ms == 0) {
        return Err("--deaf-to and --deaf-ms go together".into());
    }
    o.keying =
        crate::key::choice(key.as_deref(), [identity.as_deref(), allow.as_deref()], insecure, "thoth-member --keygen")?;
    // The family the member speaks: its group's, or in unicast mode its seeds'.
    let (family, what) = match o.seeds.first() {
        Some(s) => (s.ip(), "--seeds"),
        None => (o.addr.ip(), "--addr"),
    };
    if let Some(s) = o.seeds.iter().find(|s| s.is_ipv4() != family.is_ipv4()) {
        return Err(format!("--seeds: {s} and {family} are of different families"));
    }
    o.interface = interface.unwrap_or_else(|| iface::loopback(family.is_ipv6()));
    iface::same_family(o.interface, family, what)?;
    o.bind = bind.unwrap_or(SocketAddr::new(o.interface, 0));
    if o.bind.is_ipv4() != family.is_ipv4() {
        return Err(format!("--bind {} and {what} {family} are of different families", o.bind));
    }
    Ok(Cmd::Run(Box::new(o)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The options of a run (with `--insecure` unless a key is given).
    fn p(s: &str) -> Result<Opts, String> {
        let s = if s.contains("--key") || s.contains("--identity") { s.to_string() } else { format!("--insecure {s}") };
        match parse(&s.split_whitespace().map(String::from).collect::<Vec<_>>())? {
            Cmd::Run(o) => Ok(*o),
            other => Err(format!("{other:?}")),
        }
    }

    fn cmd(s: &str) -> Result<Cmd, String> {
        parse(&s.split_whitespace().map(String::from).collect::<Vec<_>>())
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
        assert_eq!(cmd("--group g --help"), Ok(Cmd::Help));
    }

    #[test]
    fn defaults_and_options() {
        let o = p("").unwrap();
        assert_eq!((o.group.as_str(), o.stack.as_str(), o.addr), ("thoth", "group", DEFAULT_GROUP));
        let o = p("--group g --seeds 127.0.0.1:5000,127.0.0.1:5001 --deaf-to 127.0.0.1:6000 --deaf-ms 300").unwrap();
        assert_eq!(o.seeds.len(), 2);
        let id = endpoint_id("127.0.0.1:6000".parse().unwrap()).0;
        assert_eq!(o.spec(), format!("group:deaf(to={id},until_ms=300)"));
        assert_eq!(cmd("--help"), Ok(Cmd::Help));
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
