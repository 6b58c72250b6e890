//! `nak` alone: exact outputs for one event at a time, bolero header round-trips and
//! arbitrary bytes, and a model test of the receive window against a reference.

use std::collections::BTreeSet;
use std::ops::{Deref, DerefMut};
use thoth_layers::nak::{Arrival, Config, MAX_RANGES, Nak, NakHdr, Window};
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
    /// What went down, as (kind, destination, wire bytes).
    fn sent(&mut self) -> Vec<(&'static str, Option<u16>, Vec<u8>)> {
        self.dn
            .drain(..)
            .map(|e| match e {
                Dn::Cast(m) => ("cast", None, bytes(&m)),
                Dn::CastUnrel(m) => ("cast_unrel", None, bytes(&m)),
                Dn::Send(r, m) => ("send", Some(r.0), bytes(&m)),
                Dn::SendUnrel(r, m) => ("send_unrel", Some(r.0), bytes(&m)),
                other => panic!("unexpected {other:?}"),
            })
            .collect()
    }
    /// What went up, as (from, payload).
    fn delivered(&mut self) -> Vec<(u16, Vec<u8>)> {
        self.up
            .drain(..)
            .map(|e| match e {
                Up::Cast { from, msg } => (from.0, msg.into_payload().to_vec()),
                other => panic!("unexpected {other:?}"),
            })
            .collect()
    }
    /// Hands the layer the flush's cut, which it must pass on down; then, as the bottom of
    /// the stack does, turns it back up.
    fn cut(&mut self, l: &mut Nak, now: Time, cut: Vec<u64>) {
        self.dn(l, now, Dn::Cut(cut.clone()));
        assert_eq!(self.take_dn(), [Dn::Cut(cut.clone())], "the cut goes on down");
        assert!(!self.up.contains(&Up::CutReached(cut.clone())), "not reached before it came back up");
        self.up(l, now, Up::CutReached(cut));
    }
}

fn bytes(m: &Msg) -> Vec<u8> {
    [m.head(), &m.body()[..]].concat()
}

/// A message as it arrives from the network: `hdr` then `body`.
fn wire(hdr: &NakHdr, body: &[u8]) -> Msg {
    Msg::from_wire(Bytes::from([&to_vec(hdr)[..], body].concat()))
}

fn data(from: u16, seq: u64, body: &[u8]) -> Up {
    Up::Cast { from: Rank(from), msg: wire(&NakHdr::Data { seq }, body) }
}

fn counter(l: &Nak, name: &str) -> u64 {
    let mut d = Vec::new();
    l.dump(&mut d);
    d[0].counter(name).unwrap()
}

/// The parameters the exact outputs below were worked out with.
fn cfg() -> Config {
    Config {
        nak_delay: Duration::from_millis(5),
        nak_interval: Duration::from_millis(20),
        rtx_interval: Duration::from_millis(10),
        tail_interval: Duration::from_millis(20),
        window: 256,
        max_rtx: 64,
        ..Config::default()
    }
}

#[test]
fn a_cast_is_numbered_and_delivered_here_as_it_is_sent() {
    let mut l = Nak::new(cfg());
    let mut h = H::new(3, 0);
    h.dn(&mut l, at(0), Dn::Cast(Msg::new(Bytes::from_static(b"a"))));
    h.dn(&mut l, at(0), Dn::Cast(Msg::new(Bytes::from_static(b"b"))));
    // Delivered at once, from this member's rank, in order.
    assert_eq!(h.delivered(), [(0, b"a".to_vec()), (0, b"b".to_vec())]);
    // Marked so that the bottom of the stack does not loop them back.
    assert!(h.dn.iter().all(|e| matches!(e, Dn::Cast(m) if m.delivered_here())));
    assert_eq!(h.sent(), [("cast", None, vec![1, 0, b'a']), ("cast", None, vec![1, 1, b'b'])]);
    // One that comes back up anyway (in a packed datagram) is not delivered again.
    h.up(&mut l, at(0), data(0, 0, b"a"));
    h.up(&mut l, at(0), data(0, 1, b"b"));
    assert_eq!(h.delivered(), []);
    assert_eq!((counter(&l, "own_back"), counter(&l, "dup")), (2, 0));
    // The flush counts them: the digest has both.
    h.dn(&mut l, at(0), Dn::GetDigest);
    assert_eq!(h.take_up(), [Up::Digest(vec![2, 0, 0])]);
    // Kept once each (as own casts), and no NAK timer: the tail timer only.
    assert_eq!(counter(&l, "buffered"), 2);
    assert_eq!(l.poll_timeout(), Some(at(20)));
}

#[test]
fn a_gap_is_naked_after_the_delay_then_every_interval() {
    let mut l = Nak::new(cfg());
    let mut h = H::new(3, 0);
    h.up(&mut l, at(0), data(1, 0, b"a"));
    h.up(&mut l, at(1), data(1, 3, b"d"));
    h.up(&mut l, at(1), data(1, 5, b"f"));
    assert_eq!(h.delivered(), [(1, b"a".to_vec())]);
    assert_eq!(l.poll_timeout(), Some(at(6)), "nak_delay after the gap was seen");
    h.timeout(&mut l, at(6));
    // Two coalesced ranges, [1,3) and [4,5), to the sender: tag, origin, count, (lo, len)*.
    assert_eq!(h.sent(), [("send_unrel", Some(1), vec![3, 1, 2, 1, 2, 4, 1])]);
    assert_eq!(l.poll_timeout(), Some(at(26)));
    h.timeout(&mut l, at(26));
    assert_eq!(h.sent(), [("send_unrel", Some(1), vec![3, 1, 2, 1, 2, 4, 1])]);
    // The sender stays silent: the third NAK goes to another member, then they alternate.
    let mut targets = Vec::new();
    for t in [46, 66, 86] {
        h.timeout(&mut l, at(t));
        targets.extend(h.sent().into_iter().map(|(_, to, _)| to.unwrap()));
    }
    assert_eq!(targets, [2, 1, 2]);
    assert_eq!(counter(&l, "naks_sent"), 5);
}

#[test]
fn a_retransmission_fills_the_gap_in_order_and_stops_the_naks() {
    let mut l = Nak::new(cfg());
    let mut h = H::new(3, 0);
    h.up(&mut l, at(0), data(1, 1, b"b"));
    assert_eq!(h.delivered(), []);
    // From a third member, on behalf of rank 1.
    let rtx = Up::Send { from: Rank(2), msg: wire(&NakHdr::Retrans { origin: Rank(1), seq: 0 }, b"a") };
    h.up(&mut l, at(2), rtx.clone());
    assert_eq!(h.delivered(), [(1, b"a".to_vec()), (1, b"b".to_vec())]);
    assert_eq!(l.poll_timeout(), None);
    // A second copy is a duplicate.
    h.up(&mut l, at(3), rtx);
    h.up(&mut l, at(3), data(1, 1, b"b"));
    assert_eq!(h.delivered(), []);
    assert_eq!(counter(&l, "dup"), 2);
    assert_eq!(counter(&l, "buffered"), 2, "delivered casts are kept until stable");
}

#[test]
fn a_nak_is_served_then_rate_limited_per_requester() {
    let mut l = Nak::new(cfg());
    let mut h = H::new(3, 0);
    for b in [b"a", b"b", b"c"] {
        h.dn(&mut l, at(0), Dn::Cast(Msg::new(Bytes::from_static(b))));
    }
    h.sent();
    let nak =
        |from| Up::Send { from: Rank(from), msg: wire(&NakHdr::Nak { origin: Rank(0), ranges: vec![(1, 3)] }, b"") };
    h.up(&mut l, at(1), nak(2));
    assert_eq!(h.sent(), [("send_unrel", Some(2), vec![2, 0, 1, b'b']), ("send_unrel", Some(2), vec![2, 0, 2, b'c'])]);
    // The same requester again within rtx_interval: refused; another requester: served.
    h.up(&mut l, at(5), nak(2));
    assert_eq!(h.sent(), []);
    assert_eq!(counter(&l, "rtx_limited"), 1);
    h.up(&mut l, at(5), nak(1));
    assert_eq!(h.sent().len(), 2);
    h.up(&mut l, at(11), nak(2));
    assert_eq!(h.sent().len(), 2, "served again after rtx_interval");
    // What it does not hold it does not send.
    let far = Up::Send { from: Rank(1), msg: wire(&NakHdr::Nak { origin: Rank(0), ranges: vec![(3, 9)] }, b"") };
    h.up(&mut l, at(30), far);
    assert_eq!(h.sent(), []);
}

#[test]
fn a_member_retransmits_another_senders_casts_it_delivered() {
    let mut l = Nak::new(cfg());
    let mut h = H::new(3, 0);
    h.up(&mut l, at(0), data(1, 0, b"a"));
    h.delivered();
    let nak = Up::Send { from: Rank(2), msg: wire(&NakHdr::Nak { origin: Rank(1), ranges: vec![(0, 1)] }, b"") };
    h.up(&mut l, at(1), nak);
    assert_eq!(h.sent(), [("send_unrel", Some(2), vec![2, 1, 0, b'a'])]);
}

#[test]
fn arrivals_beyond_the_window_are_dropped_and_counted() {
    let mut l = Nak::new(Config { window: 4, ..cfg() });
    let mut h = H::new(2, 0);
    h.up(&mut l, at(0), data(1, 4, b"e"));
    assert_eq!(counter(&l, "window_drop"), 1);
    h.up(&mut l, at(0), data(1, 3, b"d"));
    assert_eq!((counter(&l, "window_drop"), counter(&l, "held")), (1, 1));
    // The NAK asks for what is missing inside the window only: [0, 3).
    h.timeout(&mut l, at(5));
    assert_eq!(h.sent(), [("send_unrel", Some(1), vec![3, 1, 1, 0, 3])]);
}

#[test]
fn stability_frees_the_buffers_and_passes_down() {
    let mut l = Nak::new(cfg());
    let mut h = H::new(3, 0);
    h.dn(&mut l, at(0), Dn::Cast(Msg::new(Bytes::from_static(b"x"))));
    h.up(&mut l, at(0), data(0, 0, b"x"));
    h.up(&mut l, at(0), data(1, 0, b"a"));
    h.up(&mut l, at(0), data(1, 1, b"b"));
    h.sent();
    assert_eq!(counter(&l, "buffered"), 3);
    // A vector beyond what was delivered frees only what was delivered.
    h.dn(&mut l, at(1), Dn::Stable(vec![0, 1, 9]));
    assert_eq!(h.dn, [Dn::Stable(vec![0, 1, 9])]);
    h.dn.clear();
    assert_eq!(counter(&l, "buffered"), 2);
    assert_eq!(l.poll_timeout(), Some(at(20)), "own cast still unstable: tail timer armed");
    h.dn(&mut l, at(2), Dn::Stable(vec![1, 2, 0]));
    h.dn.clear();
    assert_eq!((counter(&l, "buffered"), counter(&l, "freed")), (0, 3));
    assert_eq!(l.poll_timeout(), None, "nothing unstable: quiet");
    // A freed cast is not retransmitted.
    let nak = Up::Send { from: Rank(2), msg: wire(&NakHdr::Nak { origin: Rank(1), ranges: vec![(0, 2)] }, b"") };
    h.up(&mut l, at(3), nak);
    assert_eq!(h.sent(), []);
}

#[test]
fn the_tail_is_announced_while_unstable_and_reveals_a_lost_tail() {
    let mut l = Nak::new(cfg());
    let mut h = H::new(2, 0);
    h.dn(&mut l, at(0), Dn::Cast(Msg::new(Bytes::from_static(b"x"))));
    h.sent();
    h.timeout(&mut l, at(20));
    assert_eq!(h.sent(), [("cast_unrel", None, vec![4, 1])]);
    assert_eq!(l.poll_timeout(), Some(at(40)));
    // The receiver side: a tail of 2 from rank 1 that it never heard from.
    let mut r = Nak::new(cfg());
    let mut hr = H::new(2, 0);
    hr.up(&mut r, at(0), Up::Cast { from: Rank(1), msg: wire(&NakHdr::Tail { sent: 2 }, b"") });
    assert_eq!(r.poll_timeout(), Some(at(5)));
    hr.timeout(&mut r, at(5));
    assert_eq!(hr.sent(), [("send_unrel", Some(1), vec![3, 1, 1, 0, 2])]);
}

#[test]
fn unsequenced_traffic_passes_through_and_bad_input_is_counted() {
    let mut l = Nak::new(cfg());
    let mut h = H::new(3, 1);
    h.dn(&mut l, at(0), Dn::Send(Rank(0), Msg::new(Bytes::from_static(b"s"))));
    h.dn(&mut l, at(0), Dn::CastUnrel(Msg::new(Bytes::from_static(b"u"))));
    // `NoHdr`, nak's nothing, takes no bytes.
    assert_eq!(h.sent(), [("send", Some(0), vec![b's']), ("cast_unrel", None, vec![b'u'])]);
    h.up(&mut l, at(0), Up::Cast { from: Rank(2), msg: wire(&NakHdr::NoHdr, b"u") });
    assert_eq!(h.delivered(), [(2, b"u".to_vec())]);
    h.dn(&mut l, at(0), Dn::Leave);
    assert_eq!(h.dn.drain(..).collect::<Vec<_>>(), [Dn::Leave]);
    for bad in [
        Up::Cast { from: Rank(0), msg: Msg::from_wire(Bytes::from_static(&[9])) },
        Up::Cast { from: Rank(0), msg: Msg::from_wire(Bytes::new()) },
        Up::Send { from: Rank(0), msg: wire(&NakHdr::Data { seq: 0 }, b"") },
        Up::Send { from: Rank(0), msg: wire(&NakHdr::Retrans { origin: Rank(3), seq: 0 }, b"") },
        Up::Send { from: Rank(0), msg: wire(&NakHdr::Nak { origin: Rank(7), ranges: vec![(0, 1)] }, b"") },
        Up::Cast { from: Rank(5), msg: wire(&NakHdr::Data { seq: 0 }, b"") },
    ] {
        h.up(&mut l, at(0), bad);
    }
    assert_eq!((h.up.len(), h.dn.len(), counter(&l, "bad")), (0, 0, 6));
}

#[test]
fn registry_builds_with_parameters() {
    let r = thoth_layers::registry();
    let s = r.build("stable(period_ms=5):nak(nak_delay_ms=2,window=8)").unwrap();
    assert_eq!(s.spec(), "stable:nak");
    assert!(r.build("nak(window=0)").is_err());
    assert!(r.build("nak(bogus=1)").is_err());
    assert!(r.build("stable").is_err(), "stable requires reliable casts below");
}

// ---- bolero ----

fn make_hdr(&(tag, origin, seq, ref ranges): &(u8, u16, u64, Vec<(u64, u64)>)) -> NakHdr {
    match tag % 5 {
        0 => NakHdr::NoHdr,
        1 => NakHdr::Data { seq },
        2 => NakHdr::Retrans { origin: Rank(origin), seq },
        3 => {
            let mut r: Vec<(u64, u64)> = ranges
                .iter()
                .take(MAX_RANGES)
                .filter_map(|&(lo, len)| lo.checked_add(len.max(1)).map(|hi| (lo, hi)))
                .collect();
            if r.is_empty() {
                let lo = seq.min(u64::MAX - 1);
                r.push((lo, lo + 1));
            }
            NakHdr::Nak { origin: Rank(origin), ranges: r }
        }
        _ => NakHdr::Tail { sent: seq },
    }
}

#[test]
fn header_round_trips() {
    bolero::check!().with_type::<(u8, u16, u64, Vec<(u64, u64)>)>().for_each(|t| {
        let h = make_hdr(t);
        let b = to_vec(&h);
        assert_eq!(b.len(), h.encoded_len());
        assert_eq!(from_slice::<NakHdr>(&b), Ok(h));
    });
}

#[test]
fn arbitrary_bytes_never_panic() {
    bolero::check!().for_each(|bytes: &[u8]| {
        let mut l = Nak::new(Config { window: 4, ..cfg() });
        let mut h = H::new(3, 0);
        h.dn(&mut l, at(0), Dn::Cast(Msg::new(Bytes::from_static(b"x"))));
        h.up(&mut l, at(0), data(1, 1, b"b"));
        for (i, chunk) in bytes.chunks(9).enumerate() {
            let (from, body) = chunk.split_first().map_or((0, &[][..]), |(f, b)| (*f as u16 % 4, b));
            let msg = Msg::from_wire(Bytes::copy_from_slice(body));
            let ev = if i % 2 == 0 { Up::Cast { from: Rank(from), msg } } else { Up::Send { from: Rank(from), msg } };
            h.up(&mut l, at(i as u64), ev);
            if let Some(t) = l.poll_timeout() {
                h.timeout(&mut l, t);
            }
        }
        assert!(counter(&l, "held") <= 3 * 4);
    });
}

/// The window against a reference: a set of received sequence numbers and a delivered prefix.
#[test]
fn window_matches_a_reference_model() {
    bolero::check!().with_type::<(u8, Vec<u8>)>().for_each(|(size, ops)| {
        let size = 1 + (*size as u64 % 12);
        let mut w: Window<u64> = Window::new(size);
        let (mut got, mut next, mut known) = (BTreeSet::new(), 0u64, 0u64);
        let mut delivered = Vec::new();
        for &op in ops {
            // Arrivals out of order, duplicates, and (by never arriving) losses.
            let seq = ((op & 0x7f) % 40) as u64;
            known = known.max(seq + 1);
            let want = if seq < next || got.contains(&seq) {
                Arrival::Duplicate
            } else if seq >= next + size {
                Arrival::Overflow
            } else {
                got.insert(seq);
                if seq == next { Arrival::Ready } else { Arrival::Held }
            };
            assert_eq!(w.insert(seq, seq * 10), want, "seq {seq}");
            // Now and then what is ready stays a while (nak stops at the flush's limit).
            if op & 0x80 == 0 {
                while got.remove(&next) {
                    next += 1;
                }
                while let Some((s, item)) = w.pop_ready() {
                    assert_eq!(item, s * 10);
                    delivered.push(s);
                }
            }
            assert_eq!(w.next(), next);
            assert_eq!(w.held(), got.len());
            // Missing runs inside the window, below what is known to exist, at most 3.
            let end = known.min(next + size);
            let mut runs: Vec<(u64, u64)> = Vec::new();
            for s in next..end {
                if !got.contains(&s) {
                    match runs.last_mut() {
                        Some(r) if r.1 == s => r.1 = s + 1,
                        _ => runs.push((s, s + 1)),
                    }
                }
            }
            runs.truncate(3);
            assert_eq!(w.missing(known, 3), runs);
        }
        assert_eq!(delivered, (0..next).collect::<Vec<_>>(), "delivered prefix, in order, once each");
    });
}

// ---- failed members (Dn::Failed, Have) ----

fn have(from: u16, origin: u16, count: u64) -> Up {
    Up::Cast { from: Rank(from), msg: wire(&NakHdr::Have { origin: Rank(origin), count }, b"") }
}

fn rtx(from: u16, origin: u16, seq: u64, body: &[u8]) -> Up {
    Up::Send { from: Rank(from), msg: wire(&NakHdr::Retrans { origin: Rank(origin), seq }, body) }
}

/// Takes the `Dn::Failed` passed on (first thing out), then what was sent.
fn failed_then_sent(h: &mut H, ranks: &[u16]) -> Vec<(&'static str, Option<u16>, Vec<u8>)> {
    assert_eq!(h.dn.pop_front(), Some(Dn::Failed(ranks.iter().map(|&r| Rank(r)).collect())));
    h.sent()
}

#[test]
fn failed_sender_is_announced_fetched_from_announcers_never_from_itself() {
    let mut l = Nak::new(cfg());
    let mut h = H::new(4, 0);
    h.up(&mut l, at(0), data(1, 0, b"a"));
    h.up(&mut l, at(0), data(1, 1, b"b"));
    h.up(&mut l, at(0), data(1, 3, b"d"));
    assert_eq!(h.delivered(), [(1, b"a".to_vec()), (1, b"b".to_vec())]);
    h.dn(&mut l, at(1), Dn::Failed(vec![Rank(1)]));
    // Passed on, then Have { origin 1, count 2 } multicast at once: tag 5, origin, count.
    assert_eq!(failed_then_sent(&mut h, &[1]), [("cast_unrel", None, vec![5, 1, 2])]);
    assert_eq!(l.poll_timeout(), Some(at(5)), "the NAK timer armed by the gap");
    // Nobody announced yet: the first NAK goes to the next live member after the origin.
    h.timeout(&mut l, at(5));
    assert_eq!(h.sent(), [("send_unrel", Some(2), vec![3, 1, 1, 2, 1])]);
    // Rank 3 has six of rank 1's casts: two more exist, and rank 3 is asked first.
    h.up(&mut l, at(6), have(3, 1, 6));
    assert_eq!((h.sent(), h.delivered()), (vec![], vec![]));
    h.timeout(&mut l, at(21));
    assert_eq!(h.sent(), [("cast_unrel", None, vec![5, 1, 2])], "announced again every tail_ms");
    h.timeout(&mut l, at(25));
    assert_eq!(h.sent(), [("send_unrel", Some(3), vec![3, 1, 2, 2, 1, 4, 2])]);
    // Rank 2 announces too: announcers in turn, in the order they announced; never rank 1.
    h.up(&mut l, at(26), have(2, 1, 6));
    let mut targets = Vec::new();
    for t in [41, 45, 61, 65] {
        h.timeout(&mut l, at(t));
        targets.extend(h.sent().into_iter().filter(|(k, ..)| *k == "send_unrel").map(|(_, to, _)| to.unwrap()));
    }
    assert_eq!(targets, [3, 2]);
    // Retransmissions from a survivor fill the gap; the NAKs stop. Rank 1 is frozen since
    // Failed: its casts are held, and the digest says two.
    for (seq, b) in [(2, b"c"), (4, b"e"), (5, b"f")] {
        h.up(&mut l, at(70), rtx(3, 1, seq, b));
    }
    assert_eq!(h.delivered(), []);
    h.dn(&mut l, at(70), Dn::GetDigest);
    assert_eq!(h.take_up(), [Up::Digest(vec![0, 2, 0, 0])]);
    // The cut lets them go, then says it was reached.
    h.cut(&mut l, at(70), vec![0, 6, 0, 0]);
    let up = h.take_up();
    let got: Vec<&[u8]> = up
        .iter()
        .filter_map(|e| match e {
            Up::Cast { from: Rank(1), msg } => Some(&msg.body()[..]),
            _ => None,
        })
        .collect();
    assert_eq!(got, [b"c", b"d", b"e", b"f"]);
    assert_eq!(up.last(), Some(&Up::CutReached(vec![0, 6, 0, 0])));
    assert_eq!(l.poll_timeout(), Some(at(81)), "only the Have timer is left");
    h.timeout(&mut l, at(81));
    assert_eq!(h.sent(), [("cast_unrel", None, vec![5, 1, 6])]);
    // Once every survivor holds the six, the announcements stop.
    h.dn(&mut l, at(82), Dn::Stable(vec![0, 6, 0, 0]));
    assert_eq!(h.take_dn(), [Dn::Stable(vec![0, 6, 0, 0])]);
    assert_eq!((l.poll_timeout(), counter(&l, "buffered")), (None, 0));
    assert_eq!((counter(&l, "haves_sent"), counter(&l, "haves_rcvd")), (5, 2));
}

#[test]
fn after_failed_nothing_sequenced_from_the_failed_member_is_taken() {
    let mut l = Nak::new(cfg());
    let mut h = H::new(3, 0);
    h.dn(&mut l, at(0), Dn::Failed(vec![Rank(1)]));
    assert_eq!(failed_then_sent(&mut h, &[1]), [], "nothing delivered from rank 1: nothing to announce");
    assert_eq!(l.poll_timeout(), None);
    h.up(&mut l, at(1), data(1, 0, b"a"));
    h.up(&mut l, at(1), Up::Cast { from: Rank(1), msg: wire(&NakHdr::Tail { sent: 4 }, b"") });
    h.up(&mut l, at(1), rtx(1, 2, 0, b"x"));
    h.up(
        &mut l,
        at(1),
        Up::Send { from: Rank(1), msg: wire(&NakHdr::Nak { origin: Rank(0), ranges: vec![(0, 1)] }, b"") },
    );
    h.up(&mut l, at(1), have(1, 2, 3));
    assert_eq!((h.delivered(), h.sent(), l.poll_timeout()), (vec![], vec![], None));
    assert_eq!((counter(&l, "from_failed"), counter(&l, "bad")), (5, 0));
    // Unsequenced traffic from it still passes (the layers above decide).
    h.up(&mut l, at(2), Up::Cast { from: Rank(1), msg: wire(&NakHdr::NoHdr, b"u") });
    assert_eq!(h.delivered(), [(1, b"u".to_vec())]);
}

#[test]
fn failed_sets_accumulate_and_naks_skip_failed_members() {
    let mut l = Nak::new(cfg());
    let mut h = H::new(4, 0);
    h.up(&mut l, at(0), data(1, 0, b"a"));
    h.up(&mut l, at(0), data(2, 0, b"b"));
    h.dn(&mut l, at(0), Dn::Failed(vec![Rank(1)]));
    assert_eq!(failed_then_sent(&mut h, &[1]), [("cast_unrel", None, vec![5, 1, 1])]);
    // Rank 1 again with rank 2: only the new one is announced; own and out-of-view ranks ignored.
    h.dn(&mut l, at(1), Dn::Failed(vec![Rank(2), Rank(1), Rank(0), Rank(9)]));
    assert_eq!(failed_then_sent(&mut h, &[2, 1, 0, 9]), [("cast_unrel", None, vec![5, 2, 1])]);
    // A gap from live rank 3: its origin twice, then the rotation skips ranks 1 and 2 (and
    // this member), leaving rank 3 itself.
    h.up(&mut l, at(2), data(3, 1, b"y"));
    let mut targets = Vec::new();
    for t in [7, 27, 47, 67] {
        h.timeout(&mut l, at(t));
        targets.extend(h.sent().into_iter().filter(|(k, ..)| *k == "send_unrel").map(|(_, to, _)| to.unwrap()));
    }
    assert_eq!(targets, [3, 3, 3, 3]);
}

#[test]
fn a_gap_of_a_failed_member_with_nobody_left_to_ask_arms_no_timer() {
    let mut l = Nak::new(cfg());
    let mut h = H::new(2, 0);
    h.up(&mut l, at(0), data(1, 1, b"b"));
    assert_eq!(l.poll_timeout(), Some(at(5)));
    h.dn(&mut l, at(1), Dn::Failed(vec![Rank(1)]));
    assert_eq!(failed_then_sent(&mut h, &[1]), []);
    h.timeout(&mut l, at(5));
    assert_eq!((h.sent(), l.poll_timeout()), (vec![], None));
}

#[test]
fn hostile_haves_cost_no_memory_and_one_nak_per_interval() {
    let mut l = Nak::new(Config { window: 4, ..cfg() });
    let mut h = H::new(3, 0);
    h.dn(&mut l, at(0), Dn::Failed(vec![Rank(1)]));
    h.dn.clear();
    for bad in [have(2, 7, 1), have(2, 2, 1), have(5, 1, 1)] {
        h.up(&mut l, at(0), bad);
    }
    assert_eq!(counter(&l, "bad"), 3);
    // Own casts: nothing to fetch.
    h.up(&mut l, at(0), have(2, 0, 100));
    assert_eq!(l.poll_timeout(), None);
    // An absurd count: NAKs inside the window only, one per interval, nothing held.
    h.up(&mut l, at(0), have(2, 1, u64::MAX));
    for t in [5, 25, 45] {
        assert_eq!(l.poll_timeout(), Some(at(t)));
        h.timeout(&mut l, at(t));
        assert_eq!(h.sent(), [("send_unrel", Some(2), vec![3, 1, 1, 0, 4])]);
    }
    assert_eq!(counter(&l, "held"), 0);
}

#[test]
fn have_header_round_trips() {
    bolero::check!().with_type::<(u16, u64)>().for_each(|&(origin, count)| {
        let h = NakHdr::Have { origin: Rank(origin), count };
        let b = to_vec(&h);
        assert_eq!(b.len(), h.encoded_len());
        assert_eq!(from_slice::<NakHdr>(&b), Ok(h));
    });
    assert_eq!(to_vec(&NakHdr::Have { origin: Rank(2), count: 300 }), [5, 2, 0xac, 0x02]);
    assert_eq!(from_slice::<NakHdr>(&[5, 2]), Err(WireError::Truncated));
}

/// What went up, as (from, payload) for casts and the flush's answers as they are.
fn flush_out(h: &mut H) -> (Vec<(u16, Vec<u8>)>, Vec<Up>) {
    let (mut casts, mut other) = (Vec::new(), Vec::new());
    for e in h.take_up() {
        match e {
            Up::Cast { from, msg } => casts.push((from.0, msg.into_payload().to_vec())),
            e => other.push(e),
        }
    }
    (casts, other)
}

#[test]
fn the_flush_freezes_failed_members_counts_and_delivers_exactly_to_the_cut() {
    let mut l = Nak::new(cfg());
    let mut h = H::new(3, 0);
    for (from, seq, b) in [(1, 0, b"a"), (2, 0, b"x"), (2, 1, b"y")] {
        h.up(&mut l, at(0), data(from, seq, b));
    }
    h.dn(&mut l, at(0), Dn::Cast(Msg::new(Bytes::from_static(b"m"))));
    h.up(&mut l, at(0), data(0, 0, b"m")); // own loopback
    h.take_up();
    h.take_dn();
    // A flush begins with rank 2 failed: its deliveries freeze where they are (its casts
    // still come, from the survivors, and are held).
    h.dn(&mut l, at(1), Dn::Failed(vec![Rank(2)]));
    h.take_dn();
    h.up(&mut l, at(1), rtx(1, 2, 2, b"z"));
    h.up(&mut l, at(1), rtx(1, 2, 3, b"w"));
    h.up(&mut l, at(1), data(1, 1, b"b"));
    assert_eq!(flush_out(&mut h), (vec![(1, b"b".to_vec())], vec![]), "rank 2 frozen, rank 1 not");
    h.dn(&mut l, at(1), Dn::GetDigest);
    assert_eq!(h.take_up(), [Up::Digest(vec![1, 2, 2])], "own casts count as looped back");
    // The cut: one more of rank 2, and exactly what rank 1 sent. Delivered, then reached.
    h.cut(&mut l, at(2), vec![1, 2, 3]);
    assert_eq!(flush_out(&mut h), (vec![(2, b"z".to_vec())], vec![Up::CutReached(vec![1, 2, 3])]));
    // Beyond the cut nothing goes up, from anyone, and the cut is reached once only.
    h.up(&mut l, at(2), data(1, 2, b"c"));
    assert_eq!(flush_out(&mut h), (vec![], vec![]));
    assert_eq!(counter(&l, "held"), 2, "rank 2's fourth and rank 1's third held");
    // The flush starts over (another failure): the cut is dropped, the failed freeze where
    // they are, and the others flow again at once, what the cut held first.
    h.dn(&mut l, at(3), Dn::Failed(vec![Rank(2)]));
    h.take_dn();
    assert_eq!(flush_out(&mut h), (vec![(1, b"c".to_vec())], vec![]));
    // The dropped cut coming back up late is not for the current one: dropped.
    h.up(&mut l, at(3), Up::CutReached(vec![1, 2, 3]));
    assert_eq!(flush_out(&mut h), (vec![], vec![]));
    h.up(&mut l, at(3), data(1, 3, b"d"));
    assert_eq!(flush_out(&mut h), (vec![(1, b"d".to_vec())], vec![]));
    h.dn(&mut l, at(3), Dn::GetDigest);
    assert_eq!(h.take_up(), [Up::Digest(vec![1, 4, 3])]);
    // A cut already reached is said at once; a cut of the wrong length is bad.
    h.dn(&mut l, at(4), Dn::Cut(vec![1, 4]));
    assert_eq!((flush_out(&mut h), counter(&l, "bad"), h.take_dn()), ((vec![], vec![]), 1, vec![]));
    h.cut(&mut l, at(4), vec![1, 4, 3]);
    assert_eq!(flush_out(&mut h), (vec![], vec![Up::CutReached(vec![1, 4, 3])]));
    assert_eq!((counter(&l, "digests"), counter(&l, "cuts")), (2, 2));
}

#[test]
fn a_forged_cast_that_a_layer_above_rejects_still_takes_its_number() {
    // What the flush counts is this layer's: a cast whose body no layer above can parse is
    // delivered here like any other, and the sender's real cast of that number is a duplicate.
    let mut l = Nak::new(cfg());
    let mut h = H::new(2, 0);
    h.up(&mut l, at(0), data(1, 0, b"\xff\xff garbage for the layers above"));
    h.up(&mut l, at(0), data(1, 0, b"the real one"));
    assert_eq!(h.delivered().len(), 1);
    assert_eq!(counter(&l, "dup"), 1);
    h.dn(&mut l, at(1), Dn::GetDigest);
    assert_eq!(h.take_up(), [Up::Digest(vec![0, 1])], "the count agrees with the sender's");
}

#[test]
fn what_is_held_for_others_is_bounded_in_bytes_per_sender_and_in_all() {
    // Forged casts far ahead of each sender's next one, 1000 bytes each: held past the gap,
    // at most `mem` per sender and `mem_all` together; the rest dropped and counted.
    let per = 1064 * 5; // five casts of 1000 bytes (each charged 64 more)
    let mut l = Nak::new(Config { mem: per, mem_all: per + 1064 * 3, ..cfg() });
    let mut h = H::new(3, 0);
    let big = vec![7u8; 1000];
    for seq in 10..30 {
        h.up(&mut l, at(0), data(1, seq, &big));
    }
    assert_eq!((counter(&l, "held"), counter(&l, "held_bytes"), counter(&l, "mem_drop")), (5, per as u64, 15));
    for seq in 10..30 {
        h.up(&mut l, at(0), data(2, seq, &big));
    }
    assert_eq!((counter(&l, "held"), counter(&l, "held_bytes")), (8, (per + 1064 * 3) as u64), "bound in all");
    // Delivered casts are kept until stable, and charged: room comes back only with stability.
    let (mut l, mut h) = (Nak::new(Config { mem: per, ..cfg() }), H::new(3, 0));
    for seq in 0..7 {
        h.up(&mut l, at(0), data(1, seq, &big));
    }
    assert_eq!((h.delivered().len(), counter(&l, "mem_drop")), (5, 2));
    h.dn(&mut l, at(1), Dn::Stable(vec![0, 5, 0]));
    assert_eq!(counter(&l, "held_bytes"), 0);
    for seq in 5..7 {
        h.up(&mut l, at(1), data(1, seq, &big));
    }
    assert_eq!(h.delivered().len(), 2, "asked for again, taken once there is room");
}

#[test]
fn a_small_cast_from_a_large_datagram_is_charged_for_itself_only_once_compacted() {
    let mut l = Nak::new(cfg());
    let mut h = H::new(2, 0);
    let datagram = Bytes::from([&to_vec(&NakHdr::Data { seq: 1 })[..], b"tiny", &[0u8; 60_000][..]].concat());
    let msg = Msg::from_wire(datagram.slice(0..6)).within(1, datagram.len());
    h.up(&mut l, at(0), Up::Cast { from: Rank(1), msg });
    assert_eq!(counter(&l, "held_bytes"), 4 + 64, "held out of order: a copy of its 4 bytes");
}

#[test]
fn kept_casts_are_charged_their_datagram_once() {
    // Two casts in one 60 kB datagram (the second after 60 kB of padding), delivered in
    // order: each is charged 4 + 64, and the datagram once.
    let mut l = Nak::new(cfg());
    let mut h = H::new(2, 0);
    let part = |seq: u64| [&to_vec(&NakHdr::Data { seq })[..], b"cast"].concat();
    let datagram = Bytes::from([&part(0)[..], &[0u8; 60_000], &part(1)[..]].concat());
    let len = datagram.len();
    let (a, b) = (datagram.slice(0..6), datagram.slice(len - 6..));
    h.up(&mut l, at(0), Up::Cast { from: Rank(1), msg: Msg::from_wire(a).within(3, len) });
    h.up(&mut l, at(0), Up::Cast { from: Rank(1), msg: Msg::from_wire(b).within(3, len) });
    assert_eq!(h.delivered().len(), 2);
    assert_eq!(counter(&l, "held_bytes"), (2 * (4 + 64) + len) as u64);
    // Freed when the newest of them is stable, not before.
    h.dn(&mut l, at(1), Dn::Stable(vec![0, 1]));
    assert_eq!(counter(&l, "held_bytes"), (4 + 64 + len) as u64);
    h.dn(&mut l, at(1), Dn::Stable(vec![0, 2]));
    assert_eq!(counter(&l, "held_bytes"), 0);
    // With no room for the datagram, the cast is kept alone, copied.
    let (mut l, mut h) = (Nak::new(Config { mem: 1000, ..cfg() }), H::new(h.view.len() as u64, h.rank.0));
    let msg = Msg::from_wire(datagram.slice(0..6)).within(4, len);
    h.up(&mut l, at(2), Up::Cast { from: Rank(1), msg });
    assert_eq!((h.delivered().len(), counter(&l, "held_bytes")), (1, 4 + 64));
}
