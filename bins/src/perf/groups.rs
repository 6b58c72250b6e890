//! `--groups N`: a member holding N groups of all the members on one socket pair (one
//! `Groups` machine, run inline or by a driver thread). It builds the groups (the memory
//! they take is measured), lets them idle for `--idle` seconds (the CPU time and the
//! datagrams they cost are measured: heartbeats, stability gossip, in bundles), reports
//! `IDLE`, then runs the usual rounds, each message cast into the group its number picks.

use super::args::MemberOpts;
use super::clock::{cpu_ns, now_ns, rss_kb};
use super::driven::Driven;
use super::member::{self, Control, emit};
use super::net::{Net, Tx};
use super::proto::Hdr;
use super::stack::{Payloads, udp_config};
use std::time::Duration;
use thoth::groups::{GroupCmd, GroupEvent, Groups, GroupsConfig};
use thoth::udp::{self, Sockets};
use thoth::{Cmd, Config, Endpoint, Event, GroupId};

/// The id of group `k` of a run named `name`.
fn group(name: &str, k: usize) -> GroupId {
    GroupId::named(&format!("{name}/{k}"))
}

/// What an idle phase cost one member (an `IDLE` line).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Idle {
    pub groups: u64,
    /// Resident memory before the groups were built and after.
    pub rss_before_kb: u64,
    pub rss_after_kb: u64,
    pub cpu_ns: u64,
    pub wall_ns: u64,
    /// Datagrams the socket took, and the datagrams the groups' endpoints sent (bundled
    /// into those).
    pub tx_sent: u64,
    pub tx_datagrams: u64,
}

impl Idle {
    pub fn line(&self) -> String {
        format!(
            "IDLE {} {} {} {} {} {} {}",
            self.groups,
            self.rss_before_kb,
            self.rss_after_kb,
            self.cpu_ns,
            self.wall_ns,
            self.tx_sent,
            self.tx_datagrams
        )
    }

    pub fn parse(line: &str) -> Option<Idle> {
        let v: Vec<u64> =
            line.strip_prefix("IDLE ")?.split_whitespace().map(|w| w.parse().ok()).collect::<Option<_>>()?;
        let [groups, rss_before_kb, rss_after_kb, cpu_ns, wall_ns, tx_sent, tx_datagrams] = v[..] else { return None };
        Some(Idle { groups, rss_before_kb, rss_after_kb, cpu_ns, wall_ns, tx_sent, tx_datagrams })
    }
}

pub fn serve(o: &MemberOpts, spec: &str, n: usize, ctl: &Control) -> Result<(), String> {
    let cfg = udp_config(o);
    let socks = Sockets::open(&cfg).map_err(|e| format!("cannot open sockets for {}: {e}", o.group))?;
    let granted = socks.granted();
    member::ready(socks.local_addr(), granted.recv_buffer, granted.send_buffer);
    let peers = member::wait_peers(o, ctl)?;
    let ids: Vec<_> = peers.iter().map(|a| udp::endpoint_id(*a)).collect();
    let rss_before_kb = rss_kb();
    let mut g = Groups::new(GroupsConfig { fanout: o.fanout, ..GroupsConfig::new(socks.id()) });
    let mut max = usize::MAX;
    let security = crate::key::security(o.key.as_deref())?;
    for k in 0..n {
        let config = Config::new(group(&o.name, k), socks.id(), ids.clone()).secured(security.clone());
        let ep = Endpoint::from_spec(config, &thoth::registry(), spec).map_err(|e| format!("stack `{spec}`: {e}"))?;
        max = max.min(ep.max_payload());
        g.add(ep).map_err(|e| format!("group {k}: {e}"))?;
    }
    let rss_after_kb = rss_kb();
    if max < o.size {
        return Err(format!("--size {} exceeds what stack `{spec}` carries in one message ({max} bytes)", o.size));
    }
    let driven = Driven::start(o, socks, g, &peers)?;
    let groups = (0..n).map(|k| group(&o.name, k)).collect();
    let mut net = GroupsNet { driven, groups, events: Vec::new(), payloads: Payloads::default() };
    emit(&format!("ARMED {max}"));
    let (s0, c0, t0) = (net.driven.stats(), cpu_ns(), now_ns());
    while now_ns() < t0 + o.idle.as_nanos() as u64 {
        net.recv(Duration::from_millis(10), &mut |_, _| {})?;
    }
    let (s1, c1, t1) = (net.driven.stats(), cpu_ns(), now_ns());
    let idle = Idle {
        groups: n as u64,
        rss_before_kb,
        rss_after_kb,
        cpu_ns: c1 - c0,
        wall_ns: t1 - t0,
        tx_sent: s1.tx_sent - s0.tx_sent,
        tx_datagrams: s1.endpoint.tx_datagrams - s0.endpoint.tx_datagrams,
    };
    emit(&idle.line());
    member::rounds(net, o, ctl)
}

struct GroupsNet {
    driven: Driven<Groups>,
    groups: Vec<GroupId>,
    events: Vec<GroupEvent>,
    payloads: Payloads,
}

/// No value: a `Groups` member sends from its receiving loop (`Net::send`).
pub enum NoTx {}

impl Tx for NoTx {
    fn send(&mut self, _: &[u8]) -> Result<(), String> {
        match *self {}
    }
}

impl Net for GroupsNet {
    type Tx = NoTx;

    fn tx(&self) -> Option<NoTx> {
        None
    }

    /// Casts into the group the message's number picks (round robin).
    fn send(&mut self, payload: &[u8]) -> Result<(), String> {
        let seq = Hdr::read(payload).map_or(0, |h| h.seq);
        let g = self.groups[(seq % self.groups.len() as u64) as usize];
        self.driven.command(GroupCmd::To(g, Cmd::Cast(self.payloads.take(payload))))
    }

    fn recv(&mut self, timeout: Duration, sink: &mut impl FnMut(&[u8], u64)) -> Result<usize, String> {
        self.events.clear();
        self.driven.recv_many(&mut self.events, timeout)?;
        let at = super::clock::now_ns();
        let mut n = 0;
        for ev in self.events.drain(..) {
            match ev.event {
                Event::Cast { data, .. } => {
                    sink(&data, at);
                    n += 1;
                }
                Event::Exit => return Err(format!("group {:?} left", ev.group)),
                Event::Error { layer, detail } => {
                    return Err(format!("group {:?}: layer `{layer}`: {detail}", ev.group));
                }
                _ => {}
            }
        }
        Ok(n)
    }

    fn can_send(&self) -> bool {
        self.driven.can_send()
    }

    fn own_copies_filtered(&mut self) -> u64 {
        self.driven.own_copies_filtered()
    }

    fn rx_rejected(&mut self) -> Option<u64> {
        Some(self.driven.stats().endpoint.rx_rejected())
    }

    fn close(self) -> Result<(), String> {
        self.driven.shutdown()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_lines_round_trip() {
        let i = Idle {
            groups: 1000,
            rss_before_kb: 1,
            rss_after_kb: 2,
            cpu_ns: 3,
            wall_ns: 4,
            tx_sent: 5,
            tx_datagrams: 6,
        };
        assert_eq!(Idle::parse(&i.line()), Some(i));
        assert_eq!(Idle::parse("IDLE 1 2"), None);
    }
}
