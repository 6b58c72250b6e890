//! `pack`: bolero models (any sequence of messages and flushes arrives per destination in
//! order and intact, in no more datagrams than messages; arbitrary bytes never panic) and a
//! simulated group in which a burst travels in a few datagrams.

use std::collections::VecDeque;
use thoth_layers::pack::{Config, Pack};
use thoth_stack::sim::{Kind, Sim};
use thoth_stack::{Bytes, Cx, Dn, Duration, EndpointId, GroupId, Layer, Msg, Rank, Rng, Stack, Time, Up, View};

struct Side {
    view: View,
    rank: Rank,
    rng: Rng,
    up: VecDeque<Up>,
    dn: VecDeque<Dn>,
}

impl Side {
    fn new(rank: u16) -> Side {
        let view = View::initial((1..=3).map(EndpointId).collect());
        Side { view, rank: Rank(rank), rng: Rng::new(3), up: VecDeque::new(), dn: VecDeque::new() }
    }
    fn cx(&mut self) -> Cx<'_> {
        Cx::new(Time::ZERO, &self.view, self.rank, &mut self.rng, &mut self.up, &mut self.dn)
    }
}

/// A message pack emitted, as the pack of another member takes it: off the wire, with its
/// presence bit for pack.
fn arrive(m: Msg) -> Msg {
    let mut m = thoth_stack::testing::over_wire(&m);
    m.unseal();
    m
}

#[derive(Debug, Clone, bolero::TypeGenerator)]
enum Op {
    /// A message to the group (`to` 0) or to rank `to % 3`.
    Msg { to: u8, reliable: bool, body: Vec<u8> },
    /// The driver serves the flush deadline.
    Flush,
}

#[test]
fn any_sequence_arrives_in_order_intact_and_packed() {
    bolero::check!().with_type::<(u16, Vec<Op>)>().for_each(|(size, ops)| {
        let size = 64 + *size as usize % 2000;
        let mut tx = Pack::new(Config { size });
        let mut rx = Pack::default();
        let (mut a, mut b) = (Side::new(0), Side::new(1));
        // What each destination (0 = group, 1..=3 = rank + 1) must receive, in order.
        let mut want: Vec<Vec<Vec<u8>>> = vec![Vec::new(); 4];
        let mut messages = 0;
        for op in ops.iter().chain([&Op::Flush]) {
            match op {
                Op::Msg { to, reliable, body } => {
                    messages += 1;
                    let m = Msg::new(Bytes::copy_from_slice(body));
                    let (dest, ev) = match (to % 4, reliable) {
                        (0, true) => (0, Dn::Cast(m)),
                        (0, false) => (0, Dn::CastUnrel(m)),
                        (r, true) => (r as usize, Dn::Send(Rank(r as u16 - 1), m)),
                        (r, false) => (r as usize, Dn::SendUnrel(Rank(r as u16 - 1), m)),
                    };
                    want[dest].push(body.clone());
                    tx.handle_dn(ev, &mut a.cx());
                }
                Op::Flush => tx.end_turn(&mut a.cx()),
            }
        }
        let mut left = Vec::new();
        tx.dump(&mut left);
        assert_eq!(left[0].counter("waiting"), Some(0), "the end of the turn left something waiting");
        let datagrams = a.dn.len();
        assert!(datagrams <= messages);
        // Replay every datagram into a receiver; sort deliveries back by destination.
        let mut got: Vec<Vec<Vec<u8>>> = vec![Vec::new(); 4];
        for ev in a.dn.drain(..) {
            let (dest, up) = match ev {
                Dn::Cast(m) | Dn::CastUnrel(m) => (0, Up::Cast { from: Rank(0), msg: arrive(m) }),
                Dn::Send(r, m) | Dn::SendUnrel(r, m) => (r.index() + 1, Up::Send { from: Rank(0), msg: arrive(m) }),
                other => panic!("unexpected {other:?}"),
            };
            rx.handle_up(up, &mut b.cx());
            for u in b.up.drain(..) {
                match u {
                    Up::Cast { msg, .. } | Up::Send { msg, .. } => got[dest].push(msg.into_payload().to_vec()),
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
        assert_eq!(got, want);
    });
}

#[test]
fn arbitrary_bytes_never_panic() {
    bolero::check!().for_each(|bytes: &[u8]| {
        let mut rx = Pack::default();
        let mut s = Side::new(1);
        rx.handle_up(Up::Cast { from: Rank(0), msg: Msg::from_wire(Bytes::copy_from_slice(bytes)) }, &mut s.cx());
        let delivered: usize =
            s.up.drain(..)
                .map(|u| match u {
                    Up::Cast { msg, .. } => msg.len(),
                    other => panic!("unexpected {other:?}"),
                })
                .sum();
        assert!(delivered <= bytes.len());
    });
}

#[test]
fn a_burst_travels_in_few_datagrams_and_arrives_once_in_order() {
    let mut sim: Sim = Sim::new(11);
    let ids: Vec<EndpointId> = (1..=3).map(EndpointId).collect();
    let nodes = sim.add_group(GroupId::named("pack-test"), &ids, |_: &View| {
        Stack::builder().push(Pack::new(Config { size: 8000 })).build().expect("pack builds")
    });
    for &n in &nodes {
        for k in 0..200u32 {
            sim.cast(n, Bytes::from(format!("{n:?}/{k:03}/{}", "x".repeat(k as usize % 50)))).unwrap();
        }
    }
    sim.run_for(Duration::from_millis(10));
    for &n in &nodes {
        // 1 alone, then 199 packed into datagrams of at most 8000 bytes (under 80 bytes each).
        let sent = sim.stats(n).tx_datagrams;
        assert!(sent <= 4, "{n:?} sent {sent} datagrams for 200 casts");
        for &from in &nodes {
            let got: Vec<String> = sim
                .delivered(n)
                .iter()
                .filter(|d| d.kind == Kind::Cast && d.from == sim.id(from))
                .map(|d| String::from_utf8_lossy(&d.data).into_owned())
                .collect();
            let want: Vec<String> =
                (0..200u32).map(|k| format!("{from:?}/{k:03}/{}", "x".repeat(k as usize % 50))).collect();
            assert_eq!(got, want, "{n:?} from {from:?}");
        }
    }
}
