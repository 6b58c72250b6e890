//! `thoth-member`'s command line.

use std::net::SocketAddr;
use thoth::udp::{DEFAULT_GROUP, endpoint_id};

pub const USAGE: &str = "\
usage: thoth-member [--group NAME] [--stack SPEC] [--seeds ADDR,...] [--bind ADDR]
                    [--addr GROUP_ADDR] [--deaf-to ADDR,... --deaf-ms MS]

Joins (or forms) the group NAME, prints every event as one JSON line on stdout, casts each
line read on stdin, and leaves on end of input or SIGTERM.

  --group NAME      the group to join (default `thoth`)
  --stack SPEC      the stack (default `group` = gms:heartbeat:reliable; e.g.
                    `chk_vsync:group` checks virtual synchrony on live traffic)
  --seeds ADDRS     unicast mode: no multicast; find the group through these members'
                    addresses (comma-separated ip:port)
  --bind ADDR       this member's unicast address (default 127.0.0.1:0)
  --addr ADDR       the multicast group address (default 239.84.72.1:47474)
  --deaf-to ADDRS   tests and demos: hear nothing from these members' addresses ...
  --deaf-ms MS      ... until MS milliseconds after start (start as separate partitions)";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Opts {
    pub group: String,
    pub stack: String,
    pub seeds: Vec<SocketAddr>,
    pub bind: SocketAddr,
    pub addr: SocketAddr,
    pub deaf_to: Vec<SocketAddr>,
    pub deaf_ms: u64,
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

/// `Ok(None)` for `--help`.
pub fn parse(args: &[String]) -> Result<Option<Opts>, String> {
    let mut o = Opts {
        group: "thoth".into(),
        stack: "group".into(),
        seeds: Vec::new(),
        bind: "127.0.0.1:0".parse().expect("a valid address"),
        addr: DEFAULT_GROUP,
        deaf_to: Vec::new(),
        deaf_ms: 0,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--help" || a == "-h" {
            return Ok(None);
        }
        let v = it.next().ok_or_else(|| format!("{a} needs a value"))?;
        match a.as_str() {
            "--group" => o.group = v.clone(),
            "--stack" => o.stack = v.clone(),
            "--seeds" => o.seeds = addrs(v)?,
            "--bind" => o.bind = v.parse().map_err(|_| format!("bad address `{v}`"))?,
            "--addr" => o.addr = v.parse().map_err(|_| format!("bad address `{v}`"))?,
            "--deaf-to" => o.deaf_to = addrs(v)?,
            "--deaf-ms" => o.deaf_ms = v.parse().map_err(|_| format!("bad number `{v}`"))?,
            _ => return Err(format!("unknown option `{a}`")),
        }
    }
    if o.deaf_to.is_empty() != (o.deaf_ms == 0) {
        return Err("--deaf-to and --deaf-ms go together".into());
    }
    Ok(Some(o))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Option<Opts>, String> {
        parse(&s.split_whitespace().map(String::from).collect::<Vec<_>>())
    }

    #[test]
    fn defaults_and_options() {
        let o = p("").unwrap().unwrap();
        assert_eq!((o.group.as_str(), o.stack.as_str(), o.addr), ("thoth", "group", DEFAULT_GROUP));
        let o = p("--group g --seeds 127.0.0.1:5000,127.0.0.1:5001 --deaf-to 127.0.0.1:6000 --deaf-ms 300")
            .unwrap()
            .unwrap();
        assert_eq!(o.seeds.len(), 2);
        let id = endpoint_id("127.0.0.1:6000".parse().unwrap()).0;
        assert_eq!(o.spec(), format!("group:deaf(to={id},until_ms=300)"));
        assert_eq!(p("--help"), Ok(None));
        assert!(p("--group").is_err());
        assert!(p("--bogus x").is_err());
        assert!(p("--deaf-ms 5").is_err());
    }
}
