//! A member process (`thoth-detect member ...`): opens its sockets and says `READY <addr>
//! <pid>`, learns the group from the parent (`PEERS`), starts its endpoint and says `ARMED`,
//! then casts at its rate and reads every event until `QUIT`, printing each suspicion as
//! `SUSPECT <CLOCK_MONOTONIC ns> <rank>...` and at the end `DONE <delivered> <cast>
//! <skipped>`. Its stdin is a dead-man switch (`perf::member::Control`).

use super::args::{MemberOpts, stack};
use crate::perf::clock::{now_ns, sysctl};
use crate::perf::member::{Control, emit};
use crate::perf::proto::Ctl;
use std::net::SocketAddr;
use std::time::Duration;
use thoth::udp::{self, Handle, HandleError, Sockets, UdpConfig};
use thoth::{Bytes, Config, Endpoint, Event, GroupId};

/// Longest wait for the parent's `PEERS`.
const PEERS_WAIT: Duration = Duration::from_secs(30);
/// Longest sleep of the member loop, so control lines are seen promptly.
const TICK: Duration = Duration::from_millis(10);

/// Runs a member process; returns its exit status.
pub fn main(o: MemberOpts) -> i32 {
    match serve(&o) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("thoth-detect member {}: {e}", o.index);
            emit(&format!("ERROR {e}"));
            1
        }
    }
}

fn serve(o: &MemberOpts) -> Result<(), String> {
    let ctl = Control::start();
    let d = UdpConfig::default();
    let cap = |want: usize, path: &str| sysctl(path).map_or(want, |max| want.min(max));
    let cfg = UdpConfig {
        group: o.group,
        interface: o.interface,
        bind: SocketAddr::new(o.interface, 0),
        recv_buffer: cap(d.recv_buffer, "/proc/sys/net/core/rmem_max"),
        send_buffer: cap(d.send_buffer, "/proc/sys/net/core/wmem_max"),
        ..d
    };
    let socks = Sockets::open(&cfg).map_err(|e| format!("cannot open sockets for {}: {e}", o.group))?;
    emit(&format!("READY {} {}", socks.local_addr(), std::process::id()));
    let peers = match ctl.wait(PEERS_WAIT, "PEERS")? {
        Ctl::Peers(p) if p.len() == o.members => p,
        other => return Err(format!("expected PEERS with {} addresses, got `{}`", o.members, other.line())),
    };
    let ids: Vec<_> = peers.iter().map(|a| udp::endpoint_id(*a)).collect();
    let spec = stack(&o.detector);
    let config =
        Config::new(GroupId::named(&o.name), socks.id(), ids.clone()).secured(crate::key::security(o.key.as_deref())?);
    let ep = Endpoint::from_spec(config, &thoth::registry(), &spec).map_err(|e| format!("stack `{spec}`: {e}"))?;
    let handle = udp::spawn(socks, ep, &peers).map_err(|e| format!("cannot start the UDP driver: {e}"))?;
    if handle.max_payload() < o.size {
        let max = handle.max_payload();
        handle.shutdown();
        return Err(format!("--size {} exceeds what one message carries ({max} bytes)", o.size));
    }
    emit("ARMED");
    let r = run(&handle, o, &ids, &ctl);
    handle.shutdown();
    let (delivered, cast, skipped) = r?;
    emit(&format!("DONE {delivered} {cast} {skipped}"));
    Ok(())
}

/// Casts at the member's rate and reads events until `QUIT`; returns the messages
/// delivered, cast, and skipped because flow control held casts back.
fn run(handle: &Handle, o: &MemberOpts, ids: &[thoth::EndpointId], ctl: &Control) -> Result<(u64, u64, u64), String> {
    let payload = Bytes::from(vec![0x5a; o.size]);
    let gap = (1e9 / o.rate) as u64;
    let (mut delivered, mut cast, mut skipped) = (0u64, 0u64, 0u64);
    let mut due = now_ns();
    let mut events = Vec::new();
    loop {
        let mut now = now_ns();
        while due <= now {
            match handle.try_cast(payload.clone()) {
                Ok(()) => cast += 1,
                Err(HandleError::WouldBlock) => skipped += 1,
                Err(e) => return Err(format!("cast: {e}")),
            }
            due += gap;
            now = now_ns();
            // After a long pause (a loaded machine), skip the missed slots rather than burst.
            if now.saturating_sub(due) > 100 * gap {
                due = now;
            }
        }
        events.clear();
        handle.recv_many(&mut events, Duration::from_nanos(due - now).min(TICK));
        for ev in events.drain(..) {
            match ev {
                Event::Cast { .. } => delivered += 1,
                Event::Suspect(who) => {
                    let at = now_ns();
                    let ranks: Vec<String> = who
                        .iter()
                        .map(|id| ids.iter().position(|x| x == id).map_or_else(|| "?".into(), |r| r.to_string()))
                        .collect();
                    emit(&format!("SUSPECT {at} {}", ranks.join(" ")));
                }
                Event::Exit => return Err("the endpoint left the group".into()),
                Event::Error { layer, detail } => return Err(format!("layer `{layer}` reported: {detail}")),
                // Fixed membership: no view changes, so no block and no state transfer.
                // (Nor probes: this member asks none.)
                Event::View(_)
                | Event::Send { .. }
                | Event::Block
                | Event::StateRequest
                | Event::State { .. }
                | Event::Probed(_) => {}
            }
        }
        match ctl.try_next()? {
            Some(Ctl::Quit) => return Ok((delivered, cast, skipped)),
            Some(other) => return Err(format!("unexpected `{}` while running", other.line())),
            None => {}
        }
    }
}
