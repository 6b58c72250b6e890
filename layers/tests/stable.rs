//! `stable` alone: exact outputs for one event at a time, bolero header round-trips and
//! arbitrary bytes.

use std::ops::{Deref, DerefMut};
use thoth_layers::stable::{Config, Stable, StableHdr};
use thoth_stack::testing::{Harness, at};
use thoth_stack::wire::{from_slice, to_vec};
use thoth_stack::*;

/// One layer, one event at a time (`Harness`), with this file's own views of its output.
struct H(Harness);

impl Deref for H {
    type Target = Harness;
    fn deref(&self) -> &Harness {
        &self.0
    }
}

impl DerefMut for H {
    fn deref_mut(&mut self) -> &mut Harness {
        &mut self.0
    }
}

impl H {
    fn new(n: u64, rank: u16) -> H {
        H(Harness::new(n, rank))
    }
}

fn wire(hdr: &StableHdr, body: &[u8]) -> Msg {
    Msg::from_wire(Bytes::from([&to_vec(hdr)[..], body].concat()))
}

fn cast(from: u16, body: &[u8]) -> Up {
    Up::Cast { from: Rank(from), msg: wire(&StableHdr::Cast, body) }
}

fn gossip(from: u16, recv: Vec<u64>, stable: Vec<u64>) -> Up {
    Up::Cast { from: Rank(from), msg: wire(&StableHdr::Gossip { recv, stable }, b"") }
}

fn bytes(ev: &Dn) -> (&'static str, Vec<u8>) {
    match ev {
        Dn::Cast(m) => ("cast", [m.head(), &m.body()[..]].concat()),
        Dn::CastUnrel(m) => ("cast_unrel", [m.head(), &m.body()[..]].concat()),
        Dn::Send(_, m) => ("send", [m.head(), &m.body()[..]].concat()),
        Dn::SendUnrel(_, m) => ("send_unrel", [m.head(), &m.body()[..]].concat()),
        other => panic!("unexpected {other:?}"),
    }
}

fn counter(l: &Stable, name: &str) -> u64 {
    let mut d = Vec::new();
    l.dump(&mut d);
    d[0].counter(name).unwrap()
}

fn period() -> Config {
    Config { period: Duration::from_millis(30) }
}

#[test]
fn reliable_casts_are_marked_and_counted_others_pass() {
    let mut l = Stable::new(period());
    let mut h = H::new(3, 1);
    h.dn(&mut l, at(0), Dn::Cast(Msg::new(Bytes::from_static(b"c"))));
    h.dn(&mut l, at(0), Dn::CastUnrel(Msg::new(Bytes::from_static(b"u"))));
    h.dn(&mut l, at(0), Dn::SendUnrel(Rank(0), Msg::new(Bytes::from_static(b"s"))));
    let sent: Vec<_> = h.take_dn().iter().map(bytes).collect();
    // A reliable cast's `Cast` is stable's nothing: no bytes; the others say `NoHdr`.
    assert_eq!(sent, [("cast", vec![b'c']), ("cast_unrel", vec![0, b'u']), ("send_unrel", vec![0, b's'])]);
    h.up(&mut l, at(0), cast(0, b"x"));
    h.up(&mut l, at(0), Up::Cast { from: Rank(2), msg: wire(&StableHdr::NoHdr, b"y") });
    h.up(&mut l, at(0), Up::Send { from: Rank(2), msg: wire(&StableHdr::NoHdr, b"z") });
    let got: Vec<(u16, Vec<u8>)> = h
        .take_up()
        .into_iter()
        .map(|u| match u {
            Up::Cast { from, msg } | Up::Send { from, msg } => (from.0, msg.into_payload().to_vec()),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(got, [(0, b"x".to_vec()), (2, b"y".to_vec()), (2, b"z".to_vec())]);
    assert_eq!(l.received(), [1, 0, 0], "only the reliable cast counts");
}

#[test]
fn gossip_deadlines_are_staggered_by_rank() {
    // Period 30 ms, 3 members: slots at 0, 10 and 20 ms past each multiple of 30 ms.
    let mut deadlines = Vec::new();
    for rank in 0..3 {
        let mut l = Stable::new(period());
        let mut h = H::new(3, rank);
        assert_eq!(l.poll_timeout(), None, "idle: no timer");
        h.up(&mut l, at(1), cast(0, b"x"));
        deadlines.push(l.poll_timeout());
    }
    assert_eq!(deadlines, [Some(at(30)), Some(at(10)), Some(at(20))]);
}

#[test]
fn gossip_builds_stability_which_is_announced_both_ways_then_it_goes_quiet() {
    let mut l = Stable::new(period());
    let mut h = H::new(3, 1);
    h.up(&mut l, at(1), cast(0, b"x"));
    h.take_up();
    h.timeout(&mut l, at(10));
    // Tag, n, recv [1,0,0], stable [0,0,0].
    let sent: Vec<_> = h.take_dn().iter().map(bytes).collect();
    assert_eq!(sent, [("cast_unrel", vec![2, 3, 1, 0, 0, 0, 0, 0])]);
    assert_eq!(l.poll_timeout(), Some(at(40)), "still unstable: next slot");
    h.up(&mut l, at(12), gossip(0, vec![1, 0, 0], vec![0, 0, 0]));
    assert_eq!(h.take_up(), []);
    h.up(&mut l, at(13), gossip(2, vec![1, 0, 0], vec![1, 0, 0]));
    assert_eq!(h.take_up(), [Up::Stable(vec![1, 0, 0])]);
    assert_eq!(h.take_dn(), [Dn::Stable(vec![1, 0, 0])]);
    assert_eq!(l.stability(), [1, 0, 0]);
    // Rank 0 had not learned that this member has its cast: one more gossip, then quiet.
    assert_eq!(l.poll_timeout(), Some(at(40)));
    h.timeout(&mut l, at(40));
    assert_eq!(h.take_dn().iter().map(bytes).collect::<Vec<_>>(), [("cast_unrel", vec![2, 3, 1, 0, 0, 1, 0, 0])]);
    assert_eq!(l.poll_timeout(), None);
    assert_eq!(counter(&l, "unstable"), 0);
    // Stale or reordered gossip never lowers what is known.
    h.up(&mut l, at(41), gossip(2, vec![0, 0, 0], vec![1, 0, 0]));
    assert_eq!((h.take_up(), h.take_dn(), l.poll_timeout()), (vec![], vec![], None));
}

#[test]
fn a_single_member_is_stable_at_once_and_never_gossips() {
    let mut l = Stable::new(period());
    let mut h = H::new(1, 0);
    h.up(&mut l, at(0), cast(0, b"x"));
    assert_eq!(h.take_dn(), [Dn::Stable(vec![1])]);
    assert_eq!(l.poll_timeout(), None);
}

#[test]
fn own_gossip_and_bad_input_deliver_nothing() {
    let mut l = Stable::new(period());
    let mut h = H::new(3, 1);
    h.up(&mut l, at(0), gossip(1, vec![5, 5, 5], vec![5, 5, 5]));
    assert_eq!(counter(&l, "gossip_rcvd"), 0);
    for bad in [
        gossip(0, vec![1, 2], vec![1, 2]),
        Up::Cast { from: Rank(0), msg: Msg::from_wire(Bytes::from_static(&[2, 3, 1])) },
        Up::Cast { from: Rank(0), msg: Msg::from_wire(Bytes::from_static(&[7])) },
        Up::Cast { from: Rank(9), msg: wire(&StableHdr::Cast, b"") },
        Up::Send { from: Rank(0), msg: wire(&StableHdr::Cast, b"") },
    ] {
        h.up(&mut l, at(0), bad);
    }
    assert_eq!((h.up.len(), h.dn.len(), counter(&l, "bad")), (0, 0, 5));
    assert_eq!(l.received(), [0, 0, 0]);
    // Stability from above or below passes through.
    h.dn(&mut l, at(0), Dn::Stable(vec![1]));
    h.up(&mut l, at(0), Up::Stable(vec![2]));
    assert_eq!((h.take_dn(), h.take_up()), (vec![Dn::Stable(vec![1])], vec![Up::Stable(vec![2])]));
}

#[test]
fn header_round_trips() {
    bolero::check!().with_type::<(u8, Vec<(u64, u64)>)>().for_each(|(tag, pairs)| {
        let h = match tag % 3 {
            0 => StableHdr::NoHdr,
            1 => StableHdr::Cast,
            _ => StableHdr::Gossip {
                recv: pairs.iter().map(|p| p.0).collect(),
                stable: pairs.iter().map(|p| p.1).collect(),
            },
        };
        let b = to_vec(&h);
        assert_eq!(b.len(), h.encoded_len());
        assert_eq!(from_slice::<StableHdr>(&b), Ok(h));
    });
}

#[test]
fn arbitrary_bytes_never_panic() {
    bolero::check!().for_each(|bytes: &[u8]| {
        let mut l = Stable::new(period());
        let mut h = H::new(3, 0);
        for (i, chunk) in bytes.chunks(12).enumerate() {
            let (from, body) = chunk.split_first().map_or((0, &[][..]), |(f, b)| (*f as u16 % 4, b));
            let msg = Msg::from_wire(Bytes::copy_from_slice(body));
            let ev = if i % 3 == 2 { Up::Send { from: Rank(from), msg } } else { Up::Cast { from: Rank(from), msg } };
            h.up(&mut l, at(i as u64), ev);
            if let Some(t) = l.poll_timeout() {
                h.timeout(&mut l, t);
            }
        }
        // Stability never passes what this member itself received.
        assert!(l.stability().iter().zip(l.received()).all(|(s, r)| s <= r));
    });
}

#[test]
fn failed_members_no_longer_hold_stability_back_and_their_gossip_is_dropped() {
    let mut l = Stable::new(period());
    let mut h = H::new(3, 1);
    h.up(&mut l, at(1), cast(0, b"x"));
    h.up(&mut l, at(1), cast(0, b"y"));
    h.take_up();
    h.up(&mut l, at(2), gossip(2, vec![2, 0, 0], vec![0, 0, 0]));
    // Rank 0 said it had one of its own casts, then fell silent: its row holds the minimum.
    h.up(&mut l, at(2), gossip(0, vec![1, 0, 0], vec![0, 0, 0]));
    assert_eq!(l.stability(), [1, 0, 0]);
    h.take_up();
    h.take_dn();
    // Own rank and ranks outside the view are ignored; the event passes on unchanged.
    h.dn(&mut l, at(3), Dn::Failed(vec![Rank(1), Rank(7)]));
    assert_eq!((h.take_dn(), h.take_up()), (vec![Dn::Failed(vec![Rank(1), Rank(7)])], vec![]));
    // Rank 0 failed: the minimum is over ranks 1 and 2 only, announced both ways.
    h.dn(&mut l, at(3), Dn::Failed(vec![Rank(0)]));
    assert_eq!(h.take_dn(), [Dn::Failed(vec![Rank(0)]), Dn::Stable(vec![2, 0, 0])]);
    assert_eq!(h.take_up(), [Up::Stable(vec![2, 0, 0])]);
    h.up(&mut l, at(4), gossip(0, vec![5, 5, 5], vec![0, 0, 0]));
    assert_eq!((h.take_dn(), h.take_up()), (vec![], vec![]));
    assert_eq!((counter(&l, "from_failed"), counter(&l, "gossip_rcvd")), (1, 2));
    // Rank 2 had not learned that: one gossip at this member's slot, then quiet.
    h.timeout(&mut l, at(10));
    assert_eq!(h.take_dn().iter().map(bytes).collect::<Vec<_>>(), [("cast_unrel", vec![2, 3, 2, 0, 0, 2, 0, 0])]);
    assert_eq!((l.poll_timeout(), counter(&l, "unstable")), (None, 0));
    // A cast of the failed member fetched later (nak) counts, and becomes stable with rank 2.
    h.up(&mut l, at(11), cast(0, b"z"));
    h.take_up();
    h.up(&mut l, at(12), gossip(2, vec![3, 0, 0], vec![2, 0, 0]));
    assert_eq!(h.take_up(), [Up::Stable(vec![3, 0, 0])]);
}
