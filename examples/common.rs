//! What the examples share: joining a group on loopback multicast.
//!
//! The examples run unprotected on loopback unless `THOTH_KEY_FILE` names a group key file
//! (`thoth-member --keygen > FILE`): then every datagram is authenticated and encrypted
//! under it, and only members with the same file get in.

use std::net::{Ipv4Addr, SocketAddr};
use thoth::udp::{self, Handle, Sockets, UdpConfig};
use thoth::{Config, Endpoint, GroupId, GroupSecret, Security};

/// The multicast address the examples meet on (loopback; any other process on this host
/// with the same group name and key can join).
pub const ADDR: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::new(239, 84, 72, 9)), 47_472);

/// Joins (or forms) the group `name` over `stack` at `addr` (`ADDR` for the programs; the
/// tests use addresses of their own), with `config` applied to the endpoint's configuration.
pub fn join_at(
    addr: SocketAddr,
    name: &str,
    stack: &str,
    config: impl FnOnce(Config) -> Config,
) -> Result<Handle, String> {
    let cfg = UdpConfig {
        group: addr,
        interface: Ipv4Addr::LOCALHOST.into(),
        bind: "127.0.0.1:0".parse().unwrap(),
        ..UdpConfig::default()
    };
    let socks = Sockets::open(&cfg).map_err(|e| format!("sockets: {e}"))?;
    let endpoint = config(Config::joining(GroupId::named(name), socks.id())).secured(security()?);
    let ep = Endpoint::from_spec(endpoint, &thoth::registry(), stack).map_err(|e| e.to_string())?;
    udp::spawn(socks, ep, &[]).map_err(|e| format!("driver: {e}"))
}

/// The group key from `THOTH_KEY_FILE`, or none (said on stderr).
fn security() -> Result<Security, String> {
    match std::env::var_os("THOTH_KEY_FILE") {
        Some(path) => GroupSecret::read(path.as_ref())
            .map(Security::shared)
            .map_err(|e| format!("{}: {e}", path.to_string_lossy())),
        None => Ok(Security::Insecure),
    }
}

/// For the tests: a multicast address of this process's own.
pub fn test_addr() -> SocketAddr {
    thoth::testing::random_group()
}

/// For the tests: takes each handle's events (answering view changes) up to its first view
/// of `n` members, waiting at most 20 s; what follows stays queued.
pub fn settle(hs: &[&Handle], n: usize) {
    let start = std::time::Instant::now();
    let mut seen = vec![false; hs.len()];
    while seen.contains(&false) {
        assert!(start.elapsed() < std::time::Duration::from_secs(20), "no view of {n}");
        for (h, seen) in hs.iter().zip(&mut seen) {
            while !*seen && let Some(ev) = h.recv_timeout(std::time::Duration::from_millis(5)) {
                match ev {
                    thoth::Event::Block => {
                        let _ = h.block_ok();
                    }
                    thoth::Event::View(v) => *seen = v.members.len() == n,
                    _ => {}
                }
            }
        }
    }
}
