//! `thoth-probe`: asks the members of a running group, over the network, for their view and
//! what their layers counted, and prints a table or one JSON object per member (JGroups's
//! `probe`, typed: `thoth_stack::probe`).
//!
//! It is an endpoint of the group with no layers and no membership: its probe goes out as
//! the group's gossip does (to the multicast group, or with `--member` to those members
//! only), sealed under the group's key or its own listed key pair, so on a secured group it
//! needs the same `--key` (or an `--identity` on the members' allow-list) and only it can
//! read the answers. Members answer only when started with `--probe`. It waits `--wait-ms`
//! for answers (less when every `--member` asked has answered) and exits with status 0 if
//! any member answered, 1 if none did.
//!
//! Tested by `bins/tests/probe.rs` against three `thoth-member` processes.

use crate::cli::Stop;
use crate::iface;
use crate::key::{KeyArgs, Keying};
use crate::member::json;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use thoth::probe::{LayerReport, Report};
use thoth::udp::{self, DEFAULT_GROUP, Sockets, UdpConfig, endpoint_id};
use thoth::{Cmd, Config, Endpoint, EndpointId, Event, GroupId, Hist};

const ABOUT: &str = "\
Asks the members of the group NAME for their view and what their layers counted (members
answer only when started with --probe), and prints a table, or one JSON object per member
with --json. On a secured group it needs the group's key, or a key pair on the members'
allow-list.";

#[derive(clap::Parser, Debug)]
#[command(name = "thoth-probe", version, about = ABOUT, max_term_width = 100)]
#[command(override_usage = "thoth-probe (--key FILE | --identity FILE --allow FILE | --insecure) [OPTIONS]")]
struct Cli {
    // The group's keys, as its members have them (under key pairs, the probe's own key
    // must be on the members' allow-list).
    #[command(flatten)]
    keys: KeyArgs,
    /// The group to probe
    #[arg(long, value_name = "NAME", default_value = "thoth")]
    group: String,
    /// The group's multicast address
    #[arg(long, value_name = "ADDR", default_value_t = DEFAULT_GROUP)]
    addr: SocketAddr,
    /// Ask only these members, by their unicast addresses (comma-separated ip:port), not
    /// the whole group
    #[arg(long, value_name = "ADDRS", value_delimiter = ',')]
    member: Vec<SocketAddr>,
    /// The multicast interface, by one of its addresses (default 127.0.0.1, loopback)
    #[arg(long, value_name = "IP", value_parser = iface::parse)]
    interface: Option<IpAddr>,
    /// How long to wait for answers, in milliseconds
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    wait_ms: u64,
    /// One JSON object per member instead of a table
    #[arg(long)]
    json: bool,
}

pub fn main(args: Vec<String>) -> i32 {
    let cli: Cli = match crate::cli::parse("thoth-probe", &args) {
        Ok(c) => c,
        Err(stop) => return crate::cli::stop("thoth-probe", stop),
    };
    let keying = match choose(&cli) {
        Ok(k) => k,
        Err(e) => return crate::cli::stop("thoth-probe", Stop::Wrong(e)),
    };
    match run(&cli, &keying) {
        Ok(reports) if reports.is_empty() => {
            eprintln!(
                "thoth-probe: no member answered within {} ms (are they started with --probe, with this key, group and address?)",
                cli.wait_ms
            );
            1
        }
        Ok(reports) => {
            let out: String =
                if cli.json { reports.values().map(|r| to_json(r) + "\n").collect() } else { table(&reports) };
            print!("{out}");
            0
        }
        Err(e) => {
            eprintln!("thoth-probe: {e}");
            1
        }
    }
}

fn choose(cli: &Cli) -> Result<Keying, String> {
    cli.keys.keying("thoth-member --keygen")
}

/// Asks, waits, and returns the answers by member.
fn run(cli: &Cli, keying: &Keying) -> Result<BTreeMap<EndpointId, Report>, String> {
    let interface = cli.interface.unwrap_or_else(|| iface::loopback(cli.addr.is_ipv6()));
    iface::same_family(interface, cli.addr.ip(), "--addr")?;
    let cfg = UdpConfig {
        group: cli.addr,
        interface,
        bind: SocketAddr::new(interface, 0),
        fanout: !cli.member.is_empty(),
        ..UdpConfig::default()
    };
    let socks = Sockets::open(&cfg).map_err(|e| format!("cannot open sockets: {e}"))?;
    let me = socks.id();
    let config = Config::new(GroupId::named(&cli.group), me, vec![me]).secured(keying.security()?);
    let ep = Endpoint::from_spec(config, &thoth::registry(), "bare").map_err(|e| e.to_string())?;
    let handle = udp::spawn(socks, ep, &cli.member).map_err(|e| format!("cannot start the UDP driver: {e}"))?;
    let nonce = nonce();
    let asked: Vec<EndpointId> = cli.member.iter().map(|&a| endpoint_id(a)).collect();
    let sent = if asked.is_empty() {
        handle.command(Cmd::Probe { to: None, nonce })
    } else {
        asked.iter().try_for_each(|&to| handle.command(Cmd::Probe { to: Some(to), nonce }))
    };
    let mut reports = BTreeMap::new();
    if sent.is_ok() {
        let deadline = Instant::now() + Duration::from_millis(cli.wait_ms);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || (!asked.is_empty() && asked.iter().all(|a| reports.contains_key(a))) {
                break;
            }
            if let Some(Event::Probed(r)) = handle.recv_timeout(left)
                && r.nonce == nonce
            {
                reports.insert(r.me, *r);
            }
        }
    }
    handle.shutdown();
    sent.map_err(|e| format!("the probe did not go out: {e:?}"))?;
    Ok(reports)
}

/// A nonce that another probe running at the same time does not share.
fn nonce() -> u64 {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    (t.as_nanos() as u64) ^ (u64::from(std::process::id()) << 40)
}

/// The reports as a table: per member its view, then per layer its counters.
fn table(reports: &BTreeMap<EndpointId, Report>) -> String {
    let mut o = String::new();
    for r in reports.values() {
        let v = &r.view;
        let _ = writeln!(
            o,
            "member {}  view {:?} of {} ({}){}",
            r.me,
            v.id,
            v.members.len(),
            if v.primary { "primary" } else { "not primary" },
            if r.truncated { "  [truncated to fit a datagram]" } else { "" }
        );
        let nonzero =
            |v: &[(String, u64)]| v.iter().filter(|(_, x)| *x > 0).map(|(n, x)| format!("{n}={x}")).collect::<Vec<_>>();
        let _ = writeln!(o, "  {:<14} {}", "endpoint", nonzero(&r.endpoint).join(" "));
        for l in &r.layers {
            let mut parts = nonzero(&l.counters);
            parts.extend(l.gauges.iter().map(|(n, x)| format!("{n}={x}")));
            parts.extend(l.hists.iter().filter(|(_, h)| h.count() > 0).map(|(n, h)| hist_brief(n, h)));
            let _ = writeln!(o, "  {:<14} {}", name(l), parts.join(" "));
            if !l.state.is_empty() {
                let _ = writeln!(o, "  {:<14} {}", "", l.state);
            }
        }
        o.push('\n');
    }
    o
}

fn name(l: &LayerReport) -> String {
    if l.instance == 0 { l.layer.clone() } else { format!("{}#{}", l.layer, l.instance) }
}

fn hist_brief(name: &str, h: &Hist) -> String {
    let q = |p| h.quantile(p).map_or("-".to_string(), |v| v.to_string());
    format!("{name}[n={} p50<={} p99<={}]", h.count(), q(0.5), q(0.99))
}

fn to_json(r: &Report) -> String {
    let obj = |v: &[(String, u64)]| {
        let fields: Vec<String> = v.iter().map(|(n, x)| format!("{}:{x}", json::string(n))).collect();
        format!("{{{}}}", fields.join(","))
    };
    let layers: Vec<String> = r
        .layers
        .iter()
        .map(|l| {
            let hists: Vec<String> = l
                .hists
                .iter()
                .map(|(n, h)| {
                    let q = |p| h.quantile(p).map_or("null".to_string(), |v| v.to_string());
                    format!(
                        r#"{}:{{"count":{},"sum":{},"p50":{},"p99":{}}}"#,
                        json::string(n),
                        h.count(),
                        h.sum(),
                        q(0.5),
                        q(0.99)
                    )
                })
                .collect();
            format!(
                r#"{{"layer":{},"instance":{},"counters":{},"gauges":{},"hists":{{{}}},"state":{}}}"#,
                json::string(&l.layer),
                l.instance,
                obj(&l.counters),
                obj(&l.gauges),
                hists.join(","),
                json::string(&l.state)
            )
        })
        .collect();
    let v = &r.view;
    format!(
        r#"{{"member":{},"view":{{"ltime":{},"coord":{},"members":{},"primary":{}}},"truncated":{},"endpoint":{},"layers":[{}]}}"#,
        json::id(r.me),
        v.id.ltime,
        json::id(v.id.coord),
        json::ids(&v.members),
        v.primary,
        r.truncated,
        obj(&r.endpoint),
        layers.join(",")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn cmd(s: &str) -> Result<Cli, String> {
        crate::cli::parse_line::<Cli>("thoth-probe", s).map_err(Stop::text)
    }

    #[test]
    fn help_lists_every_option_and_a_key_is_chosen() {
        let help = cmd("--help").unwrap_err();
        for o in [
            "--key",
            "--identity",
            "--allow",
            "--insecure",
            "--group",
            "--addr",
            "--member",
            "--interface",
            "--wait-ms",
            "--json",
        ] {
            assert!(help.contains(o), "{o} is not in --help:\n{help}");
        }
        assert_eq!(cmd("--version").unwrap_err(), format!("thoth-probe {}", env!("CARGO_PKG_VERSION")));
        assert_eq!(cmd("--bogus").unwrap_err(), "unknown option `--bogus` (see thoth-probe --help)");
        assert!(choose(&cmd("--group g").unwrap()).is_err(), "a key or --insecure");
        assert_eq!(choose(&cmd("--insecure").unwrap()), Ok(Keying::Insecure));
        let c = cmd("--insecure --member 127.0.0.1:5,127.0.0.1:6 --wait-ms 50").unwrap();
        assert_eq!((c.member.len(), c.wait_ms), (2, 50));
        assert!(Cli::try_parse_from(["thoth-probe", "--member", "nowhere"]).is_err());
    }
}
