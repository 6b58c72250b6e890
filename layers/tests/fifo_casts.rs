//! Casts that ask for FIFO order only, handed to a driver (`Cmd::CastFifo`, `cast_fifo`):
//! two inline members of a `reliable_total` group on 127.0.0.1 in fan-out mode. A run of
//! commands mixing both kinds goes down the stack as one input (`Endpoint::handle_commands`)
//! and each cast keeps its kind: both members deliver everything, and their sequencers
//! ordered the ordered casts only and passed the others as they came. Every wait is
//! bounded; the members are stopped when dropped.

use std::collections::VecDeque;
use std::time::{Duration, Instant};
use thoth_stack::testing::random_u64;
use thoth_stack::udp::{self, Inline, Sockets, UdpConfig};
use thoth_stack::{Bytes, Cmd, Config, Endpoint, Event, GroupId};

/// The sequencer's (ordered casts, FIFO-only casts) received.
fn counters(m: &Inline<Endpoint>) -> (u64, u64) {
    let dump = m.machine().dump();
    let s = dump.iter().find(|d| d.layer == "sequencer").expect("a sequencer");
    (s.counter("data").expect("data"), s.counter("fifo").expect("fifo"))
}

#[test]
fn fifo_only_casts_keep_their_kind_through_a_run_of_commands() {
    let cfg = UdpConfig { fanout: true, ..UdpConfig::default() };
    let socks: Vec<Sockets> = (0..2).map(|_| Sockets::open(&cfg).expect("open sockets")).collect();
    let addrs: Vec<_> = socks.iter().map(|s| s.local_addr()).collect();
    let ids: Vec<_> = socks.iter().map(|s| s.id()).collect();
    let group = GroupId(random_u64());
    let mut ms: Vec<Inline<Endpoint>> = socks
        .into_iter()
        .map(|s| {
            let c = Config::new(group, s.id(), ids.clone());
            let ep = Endpoint::from_spec(c, &thoth_layers::registry(), "reliable_total").expect("the stack");
            udp::inline(s, ep, &addrs).expect("inline")
        })
        .collect();
    let mut run: VecDeque<Cmd> = ["a", "b", "c", "d"]
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let b = Bytes::from_static(s.as_bytes());
            if i % 2 == 1 { Cmd::CastFifo(b) } else { Cmd::Cast(b) }
        })
        .collect();
    while !run.is_empty() {
        ms[0].command_batch(&mut run).expect("a run of casts");
    }
    ms[0].cast_fifo(Bytes::from_static(b"e")).expect("one more, alone");
    let until = Instant::now() + Duration::from_secs(10);
    let mut got = [0usize; 2];
    while got.iter().any(|&g| g < 5) && Instant::now() < until {
        for (i, m) in ms.iter_mut().enumerate() {
            while let Some(ev) = m.recv_timeout(Duration::from_millis(5)) {
                got[i] += matches!(ev, Event::Cast { .. }) as usize;
            }
        }
    }
    assert_eq!(got, [5, 5], "every cast delivered at both");
    for m in &ms {
        assert_eq!(counters(m), (2, 3), "ordered: a, c; FIFO-only: b, d, e");
    }
}
