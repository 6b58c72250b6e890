//! `flow` tests: one layer fed one event at a time with exact expected outputs; bolero (header
//! round-trip, arbitrary bytes into `handle_up`, the sender against a reference model under
//! arbitrary casts and lost, duplicated, reordered grants and timeouts); whole groups of
//! `flow:stable:nak` in the simulator under loss with a slow receiver, sampled after every
//! step, and a broken flow layer the simulator must catch; and real UDP sockets with a member
//! whose application stops taking events.
//!
//! `THOTH_SIM_SEEDS=N` runs more seeds in the simulator properties; `THOTH_SIM_SEED=S`
//! replays one.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::ops::{Deref, DerefMut};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;
use thoth_layers::flow::{Config, Flow, FlowHdr};
use thoth_layers::nak::{self, Nak};
use thoth_layers::stable::{self, Stable};
use thoth_stack::sim::{Link, NodeId, Sim, check_seeds};
use thoth_stack::testing::{Harness, at, random_group};
use thoth_stack::udp::{self, FlowPolicy, Handle, HandleError, Sockets, UdpConfig};
use thoth_stack::wire::{from_slice, to_vec};
use thoth_stack::*;

const MS: Duration = Duration::from_millis(1);

// ---------------------------------------------------------------------------------------
// Harness: one layer, one event at a time.

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
    fn cast(&mut self, l: &mut Flow, now: Time, len: usize, fill: u8) {
        self.dn(l, now, Dn::Cast(Msg::new(Bytes::from(vec![fill; len]))));
    }
    fn grant(&mut self, l: &mut Flow, now: Time, from: u16, consumed: u64) {
        self.up(l, now, Up::Send { from: Rank(from), msg: wire(&FlowHdr::Grant { consumed }, b"") });
    }
    fn take_dn(&mut self) -> Vec<Out> {
        self.dn.drain(..).map(out).collect()
    }
    fn take_up(&mut self) -> Vec<Up> {
        self.up.drain(..).collect()
    }
}

/// A down event as (kind, destination, wire bytes).
#[derive(Debug, PartialEq, Eq)]
enum Out {
    Cast(Vec<u8>),
    CastUnrel(Vec<u8>),
    Send(u16, Vec<u8>),
    SendUnrel(u16, Vec<u8>),
    Other(Dn),
}

fn bytes(m: &Msg) -> Vec<u8> {
    [m.head(), &m.body()[..]].concat()
}

fn out(ev: Dn) -> Out {
    match ev {
        Dn::Cast(m) => Out::Cast(bytes(&m)),
        Dn::CastUnrel(m) => Out::CastUnrel(bytes(&m)),
        Dn::Send(r, m) => Out::Send(r.0, bytes(&m)),
        Dn::SendUnrel(r, m) => Out::SendUnrel(r.0, bytes(&m)),
        other => Out::Other(other),
    }
}

fn wire(hdr: &FlowHdr, body: &[u8]) -> Msg {
    Msg::from_wire(Bytes::from([&to_vec(hdr)[..], body].concat()))
}

/// A flow-controlled cast on the wire: the body alone (`Data` is flow's nothing: no bytes).
fn data(len: usize, fill: u8) -> Vec<u8> {
    vec![fill; len]
}

fn grant_to(to: u16, consumed: u64) -> Out {
    Out::SendUnrel(to, to_vec(&FlowHdr::Grant { consumed }))
}

fn req_to(to: u16) -> Out {
    Out::SendUnrel(to, vec![3])
}

fn counter(l: &Flow, name: &str) -> u64 {
    let mut d = Vec::new();
    l.dump(&mut d);
    d[0].counter(name).unwrap_or_else(|| panic!("no counter {name}"))
}

fn cfg(credits: u64) -> Config {
    Config { credits, threshold: 0.25, req_interval: 10 * MS, ..Config::default() }
}

const READY: Up = Up::Flow { ready: true };
const NOT_READY: Up = Up::Flow { ready: false };

// ---------------------------------------------------------------------------------------
// Unit tests with exact outputs.

#[test]
fn casts_pass_while_credit_lasts_then_hold_and_release_on_grants() {
    let (mut h, mut l) = (H::new(3, 0), Flow::new(cfg(100)));
    h.cast(&mut l, at(0), 40, 1);
    h.cast(&mut l, at(0), 40, 2);
    assert_eq!(h.take_dn(), [Out::Cast(data(40, 1)), Out::Cast(data(40, 2))]);
    assert_eq!(h.take_up(), []);
    // 80 + 30 > 100: held, and the stack says so at once.
    h.cast(&mut l, at(0), 30, 3);
    assert_eq!(h.take_dn(), []);
    assert_eq!(h.take_up(), [NOT_READY]);
    assert_eq!((counter(&l, "held"), counter(&l, "held_bytes"), counter(&l, "outstanding")), (1, 30, 80));
    assert_eq!(l.poll_timeout(), Some(at(10)));
    // Rank 1 consumed everything, rank 2 nothing: still 80 outstanding to rank 2.
    h.grant(&mut l, at(1), 1, 80);
    assert_eq!((h.take_dn(), h.take_up()), (vec![], vec![]));
    // Rank 2 consumed 30: 50 + 30 fits; released; 80 outstanding < 100: ready again.
    h.grant(&mut l, at(2), 2, 30);
    assert_eq!(h.take_dn(), [Out::Cast(data(30, 3))]);
    assert_eq!(h.take_up(), [READY]);
    assert_eq!(l.poll_timeout(), None);
    assert_eq!((counter(&l, "sent_bytes"), counter(&l, "outstanding"), counter(&l, "blocks")), (110, 80, 1));
    assert_eq!(counter(&l, "peak_outstanding"), 80);
}

#[test]
fn exactly_full_credit_releases_but_stays_blocked_until_some_credit_is_back() {
    let (mut h, mut l) = (H::new(2, 0), Flow::new(cfg(100)));
    h.cast(&mut l, at(0), 60, 1);
    h.cast(&mut l, at(0), 60, 2);
    assert_eq!(h.take_dn(), [Out::Cast(data(60, 1))]);
    assert_eq!(h.take_up(), [NOT_READY]);
    // Consumed 20 leaves 40 outstanding; 40 + 60 = 100 fits exactly.
    h.grant(&mut l, at(1), 1, 20);
    assert_eq!(h.take_dn(), [Out::Cast(data(60, 2))]);
    assert_eq!(h.take_up(), [], "no credit left: still blocked");
    assert_eq!(counter(&l, "outstanding"), 100);
    h.grant(&mut l, at(2), 1, 21);
    assert_eq!((h.take_dn(), h.take_up()), (vec![], vec![READY]));
}

#[test]
fn held_casts_are_released_in_order() {
    let (mut h, mut l) = (H::new(2, 0), Flow::new(cfg(100)));
    h.cast(&mut l, at(0), 90, 1);
    // A layer above that ignores `ready: false` may cast more: they queue in order.
    for k in 2..=4 {
        h.cast(&mut l, at(0), 30, k);
    }
    assert_eq!(h.take_dn(), [Out::Cast(data(90, 1))]);
    assert_eq!(h.take_up(), [NOT_READY]);
    h.grant(&mut l, at(1), 1, 90);
    assert_eq!(h.take_dn(), [Out::Cast(data(30, 2)), Out::Cast(data(30, 3)), Out::Cast(data(30, 4))]);
    assert_eq!(h.take_up(), [READY]);
}

#[test]
fn a_full_hold_queue_is_forced_out_in_order() {
    let (mut h, mut l) = (H::new(2, 0), Flow::new(Config { max_held: 2, ..cfg(100) }));
    h.cast(&mut l, at(0), 100, 1);
    h.cast(&mut l, at(0), 10, 2);
    h.cast(&mut l, at(0), 10, 3);
    assert_eq!(h.take_dn(), [Out::Cast(data(100, 1))]);
    h.cast(&mut l, at(0), 10, 4);
    assert_eq!(h.take_dn(), [Out::Cast(data(10, 2)), Out::Cast(data(10, 3)), Out::Cast(data(10, 4))]);
    assert_eq!((counter(&l, "forced"), counter(&l, "held")), (3, 0));
    assert_eq!(h.take_up(), [NOT_READY]);
    h.grant(&mut l, at(1), 1, 130);
    assert_eq!(h.take_up(), [READY]);
}

#[test]
fn an_oversize_message_goes_alone_when_nothing_is_outstanding() {
    let (mut h, mut l) = (H::new(3, 1), Flow::new(cfg(100)));
    h.cast(&mut l, at(0), 10, 1);
    h.cast(&mut l, at(0), 150, 2);
    assert_eq!(h.take_dn(), [Out::Cast(data(10, 1))]);
    assert_eq!(h.take_up(), [NOT_READY]);
    h.grant(&mut l, at(1), 0, 10);
    assert_eq!((h.take_dn(), h.take_up()), (vec![], vec![]), "rank 2 has not consumed yet");
    h.grant(&mut l, at(1), 2, 10);
    assert_eq!(h.take_dn(), [Out::Cast(data(150, 2))]);
    assert_eq!(h.take_up(), [], "150 outstanding: no credit");
    h.cast(&mut l, at(1), 1, 3);
    assert_eq!(h.take_dn(), []);
    h.grant(&mut l, at(2), 0, 160);
    h.grant(&mut l, at(2), 2, 100);
    assert_eq!(h.take_dn(), [Out::Cast(data(1, 3))]);
    assert_eq!(h.take_up(), [READY]);
    assert_eq!(counter(&l, "peak_outstanding"), 150);
}

#[test]
fn a_group_of_one_never_blocks_and_own_casts_are_not_counted() {
    let (mut h, mut l) = (H::new(1, 0), Flow::new(cfg(100)));
    for k in 0..20 {
        h.cast(&mut l, at(0), 60, k);
    }
    assert_eq!(h.take_dn().len(), 20);
    assert_eq!(h.take_up(), []);
    assert_eq!(l.poll_timeout(), None);
    // Own casts coming back up are delivered, never granted.
    let (mut h, mut l) = (H::new(2, 0), Flow::new(cfg(100)));
    h.up(&mut l, at(0), Up::Cast { from: Rank(0), msg: wire(&FlowHdr::Data, &[7; 90]) });
    assert_eq!(h.take_up().len(), 1);
    assert_eq!(h.take_dn(), []);
}

#[test]
fn receiver_grants_cumulatively_at_the_threshold() {
    let (mut h, mut l) = (H::new(3, 0), Flow::new(cfg(100)));
    assert_eq!(l.threshold(), 25);
    let from1 = |len| Up::Cast { from: Rank(1), msg: wire(&FlowHdr::Data, &vec![9; len]) };
    h.up(&mut l, at(0), from1(10));
    h.up(&mut l, at(0), from1(10));
    assert_eq!(h.take_dn(), []);
    h.up(&mut l, at(0), from1(10));
    assert_eq!(h.take_dn(), [grant_to(1, 30)]);
    let ups = h.take_up();
    assert_eq!(ups.len(), 3);
    for u in ups {
        match u {
            Up::Cast { from, msg } => assert_eq!((from, bytes(&msg)), (Rank(1), vec![9; 10])),
            other => panic!("unexpected {other:?}"),
        }
    }
    h.up(&mut l, at(1), from1(20));
    assert_eq!(h.take_dn(), []);
    h.up(&mut l, at(1), from1(5));
    assert_eq!(h.take_dn(), [grant_to(1, 55)]);
    // Unreliable casts are neither counted nor granted.
    h.up(&mut l, at(1), Up::Cast { from: Rank(2), msg: wire(&FlowHdr::NoHdr, &[1; 99]) });
    assert_eq!(h.take_dn(), []);
    assert_eq!(h.take_up().len(), 3);
    assert_eq!(counter(&l, "grants_sent"), 2);
}

#[test]
fn blocked_sender_asks_the_members_it_waits_for_and_repeats() {
    let (mut h, mut l) = (H::new(4, 0), Flow::new(cfg(100)));
    h.cast(&mut l, at(0), 70, 1);
    h.cast(&mut l, at(0), 40, 2);
    h.take_dn();
    assert_eq!(h.take_up(), [NOT_READY]);
    // Rank 1 consumed enough for the held cast (70 - 40 + 40 <= 100); ranks 2, 3 did not.
    h.grant(&mut l, at(3), 1, 40);
    assert_eq!(l.poll_timeout(), Some(at(10)));
    h.timeout(&mut l, at(9));
    assert_eq!(h.take_dn(), [], "not due yet");
    h.timeout(&mut l, at(10));
    assert_eq!(h.take_dn(), [req_to(2), req_to(3)]);
    assert_eq!(l.poll_timeout(), Some(at(20)));
    h.grant(&mut l, at(12), 3, 30);
    h.timeout(&mut l, at(20));
    assert_eq!(h.take_dn(), [req_to(2)]);
    assert_eq!(l.poll_timeout(), Some(at(30)));
    h.grant(&mut l, at(25), 2, 70);
    assert_eq!(h.take_dn(), [Out::Cast(data(40, 2))]);
    assert_eq!(h.take_up(), [READY]);
    assert_eq!(l.poll_timeout(), None, "no timer unless blocked");
    assert_eq!(counter(&l, "reqs_sent"), 3);
}

#[test]
fn blocked_without_a_held_cast_still_asks() {
    let (mut h, mut l) = (H::new(2, 0), Flow::new(cfg(100)));
    h.cast(&mut l, at(0), 50, 1);
    h.cast(&mut l, at(0), 50, 2);
    h.cast(&mut l, at(0), 10, 3);
    h.grant(&mut l, at(1), 1, 10);
    assert_eq!(h.take_dn().len(), 3);
    assert_eq!(h.take_up(), [NOT_READY]);
    assert_eq!(counter(&l, "outstanding"), 100);
    h.timeout(&mut l, at(10));
    assert_eq!(h.take_dn(), [req_to(1)]);
}

#[test]
fn receiver_answers_a_credit_request_at_once() {
    let (mut h, mut l) = (H::new(3, 1), Flow::new(cfg(1000)));
    let req = |from| Up::Send { from: Rank(from), msg: wire(&FlowHdr::CreditReq, b"") };
    h.up(&mut l, at(0), req(2));
    assert_eq!(h.take_dn(), [grant_to(2, 0)]);
    h.up(&mut l, at(0), Up::Cast { from: Rank(2), msg: wire(&FlowHdr::Data, &[0; 17]) });
    h.up(&mut l, at(0), Up::Cast { from: Rank(0), msg: wire(&FlowHdr::Data, &[0; 5]) });
    h.take_up();
    assert_eq!(h.take_dn(), []);
    h.up(&mut l, at(1), req(2));
    h.up(&mut l, at(1), req(0));
    assert_eq!(h.take_dn(), [grant_to(2, 17), grant_to(0, 5)]);
    assert_eq!(counter(&l, "reqs_recv"), 3);
    assert_eq!(l.poll_timeout(), None);
}

#[test]
fn hostile_input_is_dropped_and_counted() {
    let (mut h, mut l) = (H::new(3, 0), Flow::new(cfg(100)));
    h.cast(&mut l, at(0), 60, 1);
    h.cast(&mut l, at(0), 60, 2);
    h.take_dn();
    assert_eq!(h.take_up(), [NOT_READY]);
    h.grant(&mut l, at(1), 1, 61); // more than we ever sent: counted, taken as all 60 sent
    h.grant(&mut l, at(1), 0, 60); // from ourselves
    h.grant(&mut l, at(1), 7, 60); // not in the view
    h.up(&mut l, at(1), Up::Send { from: Rank(9), msg: wire(&FlowHdr::CreditReq, b"") });
    h.up(&mut l, at(1), Up::Send { from: Rank(1), msg: Msg::from_wire(Bytes::from_static(&[9, 1])) });
    h.up(&mut l, at(1), Up::Send { from: Rank(1), msg: Msg::from_wire(Bytes::from_static(&[2])) });
    h.up(&mut l, at(1), Up::Send { from: Rank(1), msg: wire(&FlowHdr::Data, b"x") });
    h.up(&mut l, at(1), Up::Cast { from: Rank(1), msg: wire(&FlowHdr::Grant { consumed: 60 }, b"") });
    h.up(&mut l, at(1), Up::Cast { from: Rank(1), msg: wire(&FlowHdr::CreditReq, b"") });
    h.up(&mut l, at(1), Up::Cast { from: Rank(5), msg: wire(&FlowHdr::Data, b"x") });
    h.up(&mut l, at(1), Up::Cast { from: Rank(1), msg: Msg::from_wire(Bytes::new()) });
    assert_eq!((h.take_dn(), h.take_up()), (vec![], vec![]));
    assert_eq!(counter(&l, "bad_grant"), 1);
    assert_eq!(counter(&l, "bad_rank"), 4);
    assert_eq!(counter(&l, "bad_hdr"), 6);
    assert_eq!(counter(&l, "held"), 1);
    // Old and duplicate grants change nothing (rank 1 already counts as having consumed 60).
    h.grant(&mut l, at(2), 1, 60);
    h.grant(&mut l, at(2), 1, 60);
    h.grant(&mut l, at(2), 1, 30);
    assert_eq!((counter(&l, "stale_grants"), counter(&l, "grants_recv")), (3, 4));
    h.grant(&mut l, at(2), 2, 60);
    assert_eq!(h.take_dn(), [Out::Cast(data(60, 2))]);
    assert_eq!(h.take_up(), [READY]);
}

#[test]
fn unreliable_traffic_sends_and_control_are_never_held() {
    let (mut h, mut l) = (H::new(2, 0), Flow::new(cfg(10)));
    h.cast(&mut l, at(0), 10, 1);
    h.cast(&mut l, at(0), 10, 2);
    h.take_dn();
    assert_eq!(h.take_up(), [NOT_READY]);
    let m = || Msg::new(Bytes::from_static(b"ctl"));
    h.dn(&mut l, at(0), Dn::CastUnrel(m()));
    h.dn(&mut l, at(0), Dn::Send(Rank(1), m()));
    h.dn(&mut l, at(0), Dn::SendUnrel(Rank(1), m()));
    h.dn(&mut l, at(0), Dn::Stable(vec![1, 2]));
    let nohdr = b"\0ctl".to_vec();
    assert_eq!(
        h.take_dn(),
        [
            Out::CastUnrel(nohdr.clone()),
            Out::Send(1, nohdr.clone()),
            Out::SendUnrel(1, nohdr),
            Out::Other(Dn::Stable(vec![1, 2]))
        ]
    );
    h.up(&mut l, at(0), Up::Send { from: Rank(1), msg: wire(&FlowHdr::NoHdr, b"s") });
    h.up(&mut l, at(0), Up::Stable(vec![3]));
    h.up(&mut l, at(0), Up::Exit);
    let ups = h.take_up();
    assert!(matches!(&ups[0], Up::Send { from: Rank(1), msg } if bytes(msg) == b"s"));
    assert_eq!(ups[1..], [Up::Stable(vec![3]), Up::Exit]);
    // Leaving releases what is held first.
    h.dn(&mut l, at(1), Dn::Leave);
    assert_eq!(h.take_dn(), [Out::Cast(data(10, 2)), Out::Other(Dn::Leave)]);
    assert_eq!(l.poll_timeout(), None);
}

#[test]
fn block_ok_releases_what_is_held_like_a_leave() {
    // The flush counts every cast issued in the view: the membership layer's BlockOk lets
    // the held ones go, credit or not, before the digest is taken.
    let (mut h, mut l) = (H::new(2, 0), Flow::new(cfg(10)));
    h.cast(&mut l, at(0), 10, 1);
    h.cast(&mut l, at(0), 10, 2);
    h.take_dn();
    assert_eq!(h.take_up(), [NOT_READY]);
    h.dn(&mut l, at(1), Dn::BlockOk);
    assert_eq!(h.take_dn(), [Out::Cast(data(10, 2)), Out::Other(Dn::BlockOk)]);
    assert_eq!((counter(&l, "held"), counter(&l, "forced")), (0, 1));
    assert_eq!(l.poll_timeout(), None, "no credit request once nothing is held");
}

#[test]
fn the_registry_builds_flow_over_a_reliable_stack_only() {
    let r = thoth_layers::registry();
    let s = r.build("flow(credits=4096,threshold=0.5,req_ms=3,max_held=8):stable:nak").unwrap();
    assert_eq!(s.spec(), "flow:stable:nak");
    assert!(s.check(Props::NONE).unwrap().contains(Props::FLOW));
    assert!(matches!(r.build("flow"), Err(SpecError::Missing(_))));
}

// ---------------------------------------------------------------------------------------
// bolero.

#[test]
fn header_round_trips() {
    bolero::check!().with_type::<(u8, u64, Vec<u8>)>().for_each(|&(tag, v, ref body)| {
        let h = match tag % 4 {
            0 => FlowHdr::NoHdr,
            1 => FlowHdr::Data,
            2 => FlowHdr::Grant { consumed: v },
            _ => FlowHdr::CreditReq,
        };
        assert_eq!(from_slice::<FlowHdr>(&to_vec(&h)), Ok(h));
        let mut m = Msg::new(Bytes::copy_from_slice(body));
        m.push(&h);
        m.seal(); // as the layer emits it, and over the wire
        let mut rx = thoth_stack::testing::over_wire(&m);
        rx.unseal();
        assert_eq!(rx.pop::<FlowHdr>(), Ok(h));
        assert_eq!(rx.into_payload(), &body[..]);
    });
}

/// Arbitrary bytes from any rank, as casts or sends, to a sender with casts held: no panic;
/// only `NoHdr`/`Data` casts and `NoHdr` sends are delivered; a release only as far as
/// grants within what was sent allow.
#[test]
fn arbitrary_bytes_never_panic() {
    bolero::check!().with_type::<Vec<(bool, u8, Vec<u8>)>>().for_each(|datagrams| {
        let (mut h, mut l) = (H::new(3, 0), Flow::new(cfg(100)));
        h.cast(&mut l, at(0), 100, 0);
        h.cast(&mut l, at(0), 1, 1);
        h.take_dn();
        h.take_up();
        for (cast, from, w) in datagrams {
            let from = Rank(u16::from(*from % 5));
            let msg = Msg::from_wire(Bytes::copy_from_slice(w));
            let hdr = from_slice::<FlowHdr>(w.get(..1).unwrap_or_default());
            if *cast {
                h.up(&mut l, at(1), Up::Cast { from, msg });
                let delivered = hdr == Ok(FlowHdr::NoHdr) || (hdr == Ok(FlowHdr::Data) && from.0 < 3);
                assert_eq!(h.take_up().len(), delivered as usize);
            } else {
                h.up(&mut l, at(1), Up::Send { from, msg });
                let ups = h.take_up();
                assert!(ups.iter().all(|u| matches!(u, Up::Send { .. } | Up::Flow { ready: true })), "{ups:?}");
            }
            for d in h.take_dn() {
                assert!(matches!(d, Out::SendUnrel(..) | Out::Cast(..)), "{d:?}");
            }
        }
        assert!(counter(&l, "outstanding") <= 101);
    });
}

/// The sender against a reference: three members (this one rank 0), casts only while the
/// stack says ready (as the endpoint does), receivers consuming at their own pace, grants of
/// any value they ever reported (lost ones are never picked; old ones are duplicates or
/// reordered), hostile grants, and request timeouts. Checked after every operation: exactly
/// the casts the reference releases go down, in order; the `ready` events alternate as the
/// reference says; requests go exactly to the members that block the sender; a timer is
/// armed exactly while blocked; outstanding bytes never exceed `credits` except for one
/// oversize message sent alone. At the end, grants covering everything release every cast.
#[test]
fn sender_matches_a_reference_model() {
    bolero::check!().with_type::<(u8, Vec<(u8, u8, u8)>)>().for_each(|(c, ops)| {
        let credits = 1 + u64::from(*c % 64);
        let (mut h, mut l) = (H::new(3, 0), Flow::new(cfg(credits)));
        // Reference.
        let mut ready = true;
        let mut held: VecDeque<(u8, u64)> = VecDeque::new();
        let (mut sent, mut next_id) = (0u64, 0u8);
        let mut consumed = [0u64; 3];
        let mut delivered = [0u64; 3];
        let mut reported: [Vec<u64>; 3] = [vec![0], vec![0], vec![0]];
        let mut zero_release = 0u64; // length of the last message released with nothing outstanding
        let mut now = Time::ZERO;
        let mut bad = 0u64;
        let outstanding = |sent: u64, consumed: &[u64; 3]| sent - consumed[1].min(consumed[2]);
        let fits = |sent: u64, consumed: &[u64; 3], len: u64| {
            let o = outstanding(sent, consumed);
            o + len <= credits || o == 0
        };

        // Releases from the reference queue; returns the expected down and up events.
        let drain = |held: &mut VecDeque<(u8, u64)>,
                     sent: &mut u64,
                     consumed: &[u64; 3],
                     ready: &mut bool,
                     zero: &mut u64,
                     want: &mut Vec<Out>,
                     want_up: &mut Vec<Up>| {
            while let Some(&(id, len)) = held.front() {
                if !fits(*sent, consumed, len) {
                    break;
                }
                if outstanding(*sent, consumed) == 0 {
                    *zero = len;
                }
                held.pop_front();
                *sent += len;
                want.push(Out::Cast(data(len as usize, id)));
            }
            if !*ready && held.is_empty() && outstanding(*sent, consumed) < credits {
                *ready = true;
                want_up.push(READY);
            }
        };

        for &(op, a, b) in ops {
            let (mut want, mut want_up) = (Vec::new(), Vec::new());
            match op % 5 {
                0 if ready => {
                    let len = u64::from(a) % (2 * credits);
                    let id = next_id;
                    next_id = next_id.wrapping_add(1);
                    h.cast(&mut l, now, len as usize, id);
                    if fits(sent, &consumed, len) {
                        if outstanding(sent, &consumed) == 0 {
                            zero_release = len;
                        }
                        sent += len;
                        want.push(Out::Cast(data(len as usize, id)));
                    } else {
                        held.push_back((id, len));
                        ready = false;
                        want_up.push(NOT_READY);
                    }
                }
                0 => {} // the endpoint refuses casts while not ready
                1 => {
                    let r = 1 + usize::from(a % 2);
                    delivered[r] = (delivered[r] + u64::from(b)).min(sent);
                    reported[r].push(delivered[r]);
                }
                2 => {
                    let r = 1 + usize::from(a % 2);
                    let v = reported[r][usize::from(b) % reported[r].len()];
                    h.grant(&mut l, now, r as u16, v);
                    if v > consumed[r] {
                        consumed[r] = v;
                        drain(&mut held, &mut sent, &consumed, &mut ready, &mut zero_release, &mut want, &mut want_up);
                    }
                }
                3 => {
                    now += Duration::from_millis(u64::from(a % 16));
                    let due = l.poll_timeout().is_some_and(|t| t <= now);
                    h.timeout(&mut l, now);
                    if due {
                        assert!(!ready, "a timer fired while ready");
                        let head = held.front().map(|&(_, len)| len);
                        for r in 1..3u16 {
                            let o = sent - consumed[r as usize];
                            let lets_go = match head {
                                Some(len) => o + len <= credits || o == 0,
                                None => o < credits,
                            };
                            if !lets_go {
                                want.push(req_to(r));
                            }
                        }
                    }
                }
                _ => {
                    // More than was ever sent: counted, and taken as a grant for all of it.
                    let r = 1 + usize::from(a % 2);
                    h.grant(&mut l, now, r as u16, sent + 1 + u64::from(b));
                    bad += 1;
                    if sent > consumed[r] {
                        consumed[r] = sent;
                        drain(&mut held, &mut sent, &consumed, &mut ready, &mut zero_release, &mut want, &mut want_up);
                    }
                }
            }
            assert_eq!(h.take_dn(), want, "op {op} {a} {b}");
            assert_eq!(h.take_up(), want_up, "op {op} {a} {b}");
            assert_eq!(l.poll_timeout().is_some(), !ready);
            let o = outstanding(sent, &consumed);
            assert_eq!(counter(&l, "outstanding"), o);
            assert!(o <= credits || o <= zero_release, "outstanding {o} > credits {credits}");
            assert_eq!(counter(&l, "bad_grant"), bad);
        }
        // Grants covering everything release every held cast, in order, then ready.
        for _ in 0..=held.len() {
            for r in 1..3u16 {
                h.grant(&mut l, now, r, sent);
            }
            consumed = [0, sent, sent];
            let (mut want, mut want_up) = (Vec::new(), Vec::new());
            drain(&mut held, &mut sent, &consumed, &mut ready, &mut zero_release, &mut want, &mut want_up);
            assert_eq!(h.take_dn(), want);
            assert_eq!(h.take_up(), want_up);
        }
        assert!(held.is_empty() && ready && l.poll_timeout().is_none());
        assert_eq!(counter(&l, "held"), 0);
    });
}

// ---------------------------------------------------------------------------------------
// Simulator: `flow:stable:nak` groups of three under loss, with a slow receiver.

const CREDITS: u64 = 4096;
/// Casts each sender makes (node 0 is the heavy one).
const QUOTA: [u32; 3] = [300, 80, 0];
/// Simulated time the group gets to go quiet after the last cast.
const QUIET: Duration = Duration::from_secs(5);

fn flow_cfg() -> Config {
    Config { credits: CREDITS, threshold: 0.25, req_interval: 5 * MS, ..Config::default() }
}

fn group_stack(fc: Config) -> impl Fn(&View) -> Stack + Clone + Send + 'static {
    move |_view: &View| {
        let nc = nak::Config {
            nak_delay: MS,
            nak_interval: 3 * MS,
            rtx_interval: MS,
            tail_interval: 3 * MS,
            window: 64,
            ..nak::Config::default()
        };
        Stack::builder()
            .push(Flow::new(fc.clone()))
            .push(Stable::new(stable::Config { period: 3 * MS }))
            .push(Nak::new(nc))
            .build()
            .unwrap()
    }
}

/// `sender:k:` then filler to `len` bytes, a function of both.
fn payload(sender: usize, k: u32, len: usize) -> Bytes {
    let mut v = format!("{sender}:{k}:").into_bytes();
    let fill = len.saturating_sub(v.len());
    v.extend((0..fill).map(|i| (i as u8).wrapping_mul(31) ^ k as u8));
    Bytes::from(v)
}

fn sim_counter(sim: &Sim, n: NodeId, name: &str) -> Result<u64, String> {
    let ep = sim.endpoint(n).ok_or(format!("node {n} is down"))?;
    ep.dump().iter().find(|d| d.layer == "flow").and_then(|d| d.counter(name)).ok_or(format!("no flow.{name}"))
}

/// What one run saw.
struct Seen {
    /// Largest `sent - delivered` from node 0 to the slow node 2, sampled after every step.
    max_gap_to_slow: u64,
    would_block: [u64; 3],
    /// Most casts taken in one hand-over.
    most_taken: usize,
}

/// One seeded run: node 0 and node 1 cast as fast as the stack takes casts (one at a time,
/// or with `batched` in runs handed over together, `Endpoint::handle_commands`); the links
/// lose, duplicate and reorder; node 2 is far (its inbound links are slow). After every
/// simulator step, for every sender `s` and receiver `r`, the bytes `s` has put on the wire
/// minus the bytes `r`'s application has received from `s` must stay within `credits`;
/// after every hand-over, flow holds at most the one cast that found no credit (the endpoint
/// hands it no more than its room). At the end every cast is delivered everywhere in order
/// and the group goes quiet with nothing held.
fn flow_run(seed: u64, fc: Config, batched: bool) -> Result<Seen, String> {
    let credits = fc.credits;
    let mut plan = Rng::new(seed ^ 0x666c_6f77);
    let mut sim = Sim::new(seed);
    sim.set_default_link(Link {
        loss: plan.unit() * 0.2,
        dup: plan.unit() * 0.05,
        reorder: plan.unit() * 0.2,
        delay: Duration::from_micros(50 + plan.below(200)),
        jitter: Duration::from_micros(plan.below(200)),
        corrupt: 0.0,
    });
    let ids: Vec<EndpointId> = (1..=3).map(EndpointId).collect();
    let nodes = sim.add_group(GroupId::named("flow"), &ids, group_stack(fc));
    let slow = Link { delay: Duration::from_millis(2 + plan.below(4)), ..sim.link(nodes[0], nodes[2]) };
    sim.set_link(nodes[0], nodes[2], slow);
    sim.set_link(nodes[1], nodes[2], slow);

    let mut accepted_bytes = [0u64; 3];
    let mut cast = [0u32; 3];
    // The casts made so far (`sizes`), of which the first `cast` are accepted.
    let mut sizes: Vec<Vec<usize>> = vec![Vec::new(); 3];
    // delivered[r][s]: bytes r's application received from s; cursor[r]: deliveries seen.
    let mut delivered = [[0u64; 3]; 3];
    let mut cursor = [0usize; 3];
    let mut seen = Seen { max_gap_to_slow: 0, would_block: [0; 3], most_taken: 0 };
    let limit = Time::ZERO + Duration::from_secs(60);

    while (0..3).any(|s| cast[s] < QUOTA[s]) {
        for s in 0..3 {
            while cast[s] < QUOTA[s] {
                // Up to 40 casts handed over together (1 at a time unless `batched`).
                let mut cmds = VecDeque::new();
                for k in cast[s]..QUOTA[s].min(cast[s] + if batched { 40 } else { 1 }) {
                    if k as usize == sizes[s].len() {
                        sizes[s].push(1 + plan.below(600) as usize);
                    }
                    cmds.push_back(Cmd::Cast(payload(s, k, sizes[s][k as usize])));
                }
                let offered = cmds.len();
                let taken = sim
                    .with(nodes[s], |ep, now| if ep.can_cast() { ep.handle_commands(now, &mut cmds) } else { Ok(0) })
                    .map_err(|e| e.to_string())?
                    .map_err(|e| format!("node {s} cast refused: {e}"))?;
                if taken == 0 {
                    seen.would_block[s] += 1;
                    break;
                }
                if taken != offered - cmds.len() {
                    return Err(format!("node {s}: {taken} casts taken, {} gone", offered - cmds.len()));
                }
                let k = cast[s] as usize;
                accepted_bytes[s] +=
                    (k..k + taken).map(|k| payload(s, k as u32, sizes[s][k]).len() as u64).sum::<u64>();
                cast[s] += taken as u32;
                seen.most_taken = seen.most_taken.max(taken);
                let held = sim_counter(&sim, nodes[s], "held")?;
                if held > 1 {
                    return Err(format!("node {s}: flow holds {held} casts of {taken} handed over together"));
                }
            }
        }
        let until = sim.now() + Duration::from_micros(300);
        while sim.now() < until {
            if !sim.step() {
                if (0..3).any(|s| cast[s] < QUOTA[s] && !sim.endpoint(nodes[s]).is_some_and(|e| e.can_cast())) {
                    return Err(format!("stalled at {:?}: a sender is blocked and nothing is pending", sim.now()));
                }
                break;
            }
            if sim.now() > limit {
                return Err("no progress in 60 s of simulated time".into());
            }
            for r in 0..3 {
                let d = sim.delivered(nodes[r]);
                for x in &d[cursor[r]..] {
                    if let Some(s) = ids.iter().position(|&id| id == x.from) {
                        delivered[r][s] += x.data.len() as u64;
                    }
                }
                cursor[r] = d.len();
            }
            for s in 0..3 {
                let on_wire = accepted_bytes[s] - sim_counter(&sim, nodes[s], "held_bytes")?;
                for r in (0..3).filter(|&r| r != s) {
                    let gap = on_wire - delivered[r][s].min(on_wire);
                    if gap > credits {
                        return Err(format!(
                            "at {:?}: node {s} has {gap} bytes outstanding to node {r}, over its {credits} credits",
                            sim.now()
                        ));
                    }
                    if s == 0 && r == 2 {
                        seen.max_gap_to_slow = seen.max_gap_to_slow.max(gap);
                    }
                }
            }
        }
    }
    sim.run_until_quiet(QUIET).map_err(|e| e.to_string())?;
    for (r, &node) in nodes.iter().enumerate() {
        let mut got: Vec<Vec<Bytes>> = vec![Vec::new(); 3];
        for d in sim.delivered(node) {
            let s = ids.iter().position(|&id| id == d.from).ok_or("delivery from a stranger")?;
            got[s].push(d.data.clone());
        }
        for s in 0..3 {
            let want: Vec<Bytes> = (0..cast[s]).map(|k| payload(s, k, sizes[s][k as usize])).collect();
            if got[s] != want {
                return Err(format!(
                    "node {r} got {} casts from {s}, want {} (or out of order)",
                    got[s].len(),
                    want.len()
                ));
            }
        }
        for name in ["held", "blocked", "bad_hdr", "bad_rank", "bad_grant"] {
            let v = sim_counter(&sim, node, name)?;
            if v != 0 {
                return Err(format!("node {r}: flow.{name} = {v} after the run"));
            }
        }
        if sim_counter(&sim, node, "peak_outstanding")? > credits {
            return Err(format!("node {r}: peak outstanding over credits"));
        }
    }
    Ok(seen)
}

#[test]
fn sim_slow_receiver_throttles_the_sender_and_everything_is_delivered() {
    check_seeds("sim_slow_receiver_throttles_the_sender_and_everything_is_delivered", 0..8, |seed| {
        let seen = flow_run(seed, flow_cfg(), false)?;
        println!(
            "seed {seed}: {:?} WouldBlock, largest gap to the slow node {}",
            seen.would_block, seen.max_gap_to_slow
        );
        // The bound was reached, not merely respected: the slow receiver set the pace.
        if seen.would_block[0] == 0 || seen.max_gap_to_slow < CREDITS / 2 {
            return Err(format!(
                "the sender was not throttled: {} WouldBlock, largest gap to the slow node {}",
                seen.would_block[0], seen.max_gap_to_slow
            ));
        }
        Ok(())
    });
}

/// The same with casts handed over in runs: the endpoint takes as many as flow has room
/// for, in one input, and the bound holds as one at a time.
#[test]
fn sim_runs_of_casts_go_in_together_as_far_as_credit_goes() {
    check_seeds("sim_runs_of_casts_go_in_together_as_far_as_credit_goes", 0..8, |seed| {
        let seen = flow_run(seed, flow_cfg(), true)?;
        if seen.would_block[0] == 0 || seen.max_gap_to_slow < CREDITS / 2 || seen.most_taken < 2 {
            return Err(format!(
                "not throttled in runs: {} WouldBlock, largest gap to the slow node {}, at most {} taken at once",
                seen.would_block[0], seen.max_gap_to_slow, seen.most_taken
            ));
        }
        Ok(())
    });
}

/// The harness catches a flow layer that ignores credit: the slow receiver is overrun.
#[test]
fn sim_catches_a_flow_layer_that_ignores_credit() {
    let r = catch_unwind(AssertUnwindSafe(|| {
        check_seeds("sim_catches_a_flow_layer_that_ignores_credit", 0..2, |seed| {
            flow_run(seed, Config { test_ignore_credit: true, ..flow_cfg() }, false).map(|_| ())
        })
    }));
    let msg = r.expect_err("overrunning the slow receiver must fail");
    let msg = msg.downcast_ref::<String>().expect("a message");
    assert!(msg.contains("over its 4096 credits") && msg.contains("THOTH_SIM_SEED="), "{msg}");
}

#[test]
fn sim_quiet_group_quiesces() {
    let mut sim = Sim::new(3);
    let ids: Vec<EndpointId> = (1..=3).map(EndpointId).collect();
    let nodes = sim.add_group(GroupId::named("quiet"), &ids, group_stack(flow_cfg()));
    assert_eq!(sim.run_until_quiet(Duration::from_millis(1)), Ok(Time::ZERO));
    // A burst that blocks the sender, then nothing: every timer stops.
    let mut blocked = false;
    for k in 0..40 {
        blocked |= sim.cast(nodes[0], payload(0, k, 500)).is_err();
    }
    assert!(blocked, "4096 credits cannot take 20 kB at once");
    sim.run_until_quiet(QUIET).unwrap();
    assert!(sim.endpoint(nodes[0]).unwrap().can_cast());
    assert_eq!(sim.endpoint(nodes[0]).unwrap().poll_timeout(), None);
}

// ---------------------------------------------------------------------------------------
// Real sockets: a member whose application stops taking events throttles the sender.

/// Three members of one group (`tag` tells it apart) on sockets opened with `cfg`, each
/// with flow control `fc` and run by `run` (a driver thread, or inline).
fn udp_members<T>(
    cfg: &UdpConfig,
    tag: u64,
    fc: &Config,
    run: impl Fn(Sockets, Endpoint, &[SocketAddr]) -> T,
) -> Vec<T> {
    let socks: Vec<Sockets> = (0..3).map(|_| Sockets::open(cfg).expect("open sockets")).collect();
    let addrs: Vec<SocketAddr> = socks.iter().map(|s| s.local_addr()).collect();
    let ids: Vec<EndpointId> = socks.iter().map(|s| s.id()).collect();
    let group = GroupId(u64::from(addrs[0].port()) << 16 | tag);
    socks
        .into_iter()
        .map(|s| {
            let ep = Endpoint::new(thoth_stack::Config::new(group, s.id(), ids.clone()), group_stack(fc.clone()))
                .expect("endpoint");
            run(s, ep, &addrs)
        })
        .collect()
}

/// The three members A, B, C of a real-socket test, however they are run.
trait Three {
    /// A casts, never waiting.
    fn try_cast(&mut self, data: Bytes) -> Result<(), HandleError>;
    /// Takes what member `i` has delivered, appending the casts' payloads.
    fn take(&mut self, i: usize, out: &mut Vec<Bytes>);
}

impl Three for Vec<Handle> {
    fn try_cast(&mut self, data: Bytes) -> Result<(), HandleError> {
        self[0].try_cast(data)
    }
    fn take(&mut self, i: usize, out: &mut Vec<Bytes>) {
        while let Some(ev) = self[i].try_recv() {
            if let Event::Cast { data, .. } = ev {
                out.push(data);
            }
        }
    }
}

impl Three for Vec<udp::Inline<Endpoint>> {
    fn try_cast(&mut self, data: Bytes) -> Result<(), HandleError> {
        self[0].try_cast(data)
    }
    fn take(&mut self, i: usize, out: &mut Vec<Bytes>) {
        let mut evs = Vec::new();
        self[i].recv_many(&mut evs, std::time::Duration::ZERO);
        out.extend(evs.into_iter().filter_map(|e| match e {
            Event::Cast { data, .. } => Some(data),
            _ => None,
        }));
    }
}

const THROTTLE_LEN: usize = 500;

fn throttle_msg(k: u32) -> Bytes {
    payload(0, k, THROTTLE_LEN)
}

/// Casts A's next message, or waits a little if it is refused.
fn cast_next(m: &mut impl Three, k: &mut u32) -> bool {
    match m.try_cast(throttle_msg(*k)) {
        Ok(()) => {
            *k += 1;
            true
        }
        Err(HandleError::WouldBlock) => {
            std::thread::sleep(std::time::Duration::from_micros(200));
            false
        }
        Err(e) => panic!("cast failed: {e:?}"),
    }
}

/// Phase 1: only A and B are read. A casts until it stays refused for 300 ms (true) or
/// 10 s pass (false).
fn cast_until_held(m: &mut impl Three, got: &mut [Vec<Bytes>], k: &mut u32) -> bool {
    let (start, mut last_ok) = (Instant::now(), Instant::now());
    loop {
        for (i, out) in got.iter_mut().enumerate().take(2) {
            m.take(i, out);
        }
        if cast_next(m, k) {
            last_ok = Instant::now();
        }
        if last_ok.elapsed() > std::time::Duration::from_millis(300) {
            return true;
        }
        if start.elapsed() > std::time::Duration::from_secs(10) {
            return false;
        }
    }
}

/// Phases 2 and 3: every member is read again; A must get credit back and cast 100 more,
/// and every member must deliver all of A's casts, in order (nak repairs any loss).
fn credit_back_and_all_delivered(m: &mut impl Three, got: &mut [Vec<Bytes>], k: &mut u32) {
    let stalled_at = *k;
    let deadline = Instant::now() + std::time::Duration::from_secs(10);
    while *k < stalled_at + 100 && Instant::now() < deadline {
        for (i, out) in got.iter_mut().enumerate() {
            m.take(i, out);
        }
        cast_next(m, k);
    }
    assert_eq!(*k, stalled_at + 100, "A did not get credit back once C was read again");

    let want: Vec<Bytes> = (0..*k).map(throttle_msg).collect();
    let deadline = Instant::now() + std::time::Duration::from_secs(10);
    while got.iter().any(|v| v.len() < want.len()) && Instant::now() < deadline {
        for (i, out) in got.iter_mut().enumerate() {
            m.take(i, out);
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    for (name, g) in ["A", "B", "C"].iter().zip(got.iter()) {
        assert!(*g == want, "{name} delivered {} of {} casts, or out of order", g.len(), want.len());
    }
}

#[test]
fn udp_an_application_that_stops_reading_throttles_the_sender() {
    const CR: u64 = 16 * 1024;
    const EVENTS: usize = 32;
    const QUEUE: usize = 64;
    let cfg = UdpConfig {
        group: random_group(),
        flow: FlowPolicy::WouldBlock,
        events: EVENTS,
        queue: QUEUE,
        ..UdpConfig::default()
    };
    let fc = Config { credits: CR, threshold: 0.25, req_interval: 5 * MS, ..Config::default() };
    let mut handles: Vec<Handle> = udp_members(&cfg, 7, &fc, |s, ep, addrs| udp::spawn(s, ep, addrs).expect("spawn"));
    let mut got: Vec<Vec<Bytes>> = vec![Vec::new(); 3];

    // Phase 1: C's application takes nothing. A casts until it stays refused for 300 ms.
    let mut k = 0u32;
    let stuck = cast_until_held(&mut handles, &mut got, &mut k);
    // A delivers its own casts as they leave the stack: those are the ones on the wire. Of
    // the rest, one is held by A's flow layer (it took it while it still had credit, then
    // said `ready: false`, and the driver gives it no more) and the others wait in A's
    // command queue, whose bound counts those the driver took and keeps behind that cast.
    std::thread::sleep(std::time::Duration::from_millis(20));
    handles.take(0, &mut got[0]);
    let wire = got[0].len() * THROTTLE_LEN;
    println!("A was held after {k} casts accepted, {} on the wire ({wire} bytes)", got[0].len());
    assert!(stuck, "A was never held back: {k} casts accepted in 10 s while C read nothing");
    // On the wire: the window to C, plus what C's driver took in before its event queue
    // filled (the queue, and one last socket read of at most the window).
    let bound = 2 * CR as usize + (EVENTS + 8) * THROTTLE_LEN;
    assert!(wire <= bound, "A put {wire} bytes on the wire, over {bound}");
    assert!(
        k as usize <= got[0].len() + 1 + QUEUE,
        "A accepted more than its command queue holds: {k} accepted, {} on the wire, queue {QUEUE}",
        got[0].len()
    );

    // Phases 2 and 3: C reads again.
    credit_back_and_all_delivered(&mut handles, &mut got, &mut k);
    for h in handles {
        h.shutdown();
    }
}

/// The same inline (`udp::inline`): the three members on this one thread, C not called at
/// all in phase 1 (an inline member works only while called: it reads nothing, grants
/// nothing). Nothing queues between the application and the stack: at most one cast beyond
/// what went on the wire is accepted (the one flow control took before it said stop).
#[test]
fn udp_inline_a_member_that_is_not_called_throttles_the_sender() {
    const CR: u64 = 16 * 1024;
    let cfg = UdpConfig { group: random_group(), flow: FlowPolicy::WouldBlock, ..UdpConfig::default() };
    let fc = Config { credits: CR, threshold: 0.25, req_interval: 5 * MS, ..Config::default() };
    let mut ms = udp_members(&cfg, 8, &fc, |s, ep, addrs| udp::inline(s, ep, addrs).expect("inline"));
    let mut got: Vec<Vec<Bytes>> = vec![Vec::new(); 3];

    // Phase 1: C is not called. A casts until it stays refused for 300 ms.
    let mut k = 0u32;
    let stuck = cast_until_held(&mut ms, &mut got, &mut k);
    let wire = got[0].len() * THROTTLE_LEN;
    println!("A was held after {k} casts accepted, {} on the wire ({wire} bytes)", got[0].len());
    assert!(stuck, "A was never held back: {k} casts accepted in 10 s while C was not called");
    assert!(wire <= 2 * CR as usize, "A put {wire} bytes on the wire, over twice its credit");
    assert!(k as usize <= got[0].len() + 1, "A accepted {k} casts, {} on the wire", got[0].len());

    // Phases 2 and 3: C is called again (nak repairs what its socket dropped meanwhile).
    credit_back_and_all_delivered(&mut ms, &mut got, &mut k);
    for m in ms {
        m.shutdown();
    }
}

#[test]
fn a_failed_receiver_stops_constraining_credit() {
    let (mut h, mut l) = (H::new(3, 0), Flow::new(cfg(100)));
    h.cast(&mut l, at(0), 60, 1);
    h.cast(&mut l, at(0), 60, 2);
    assert_eq!(h.take_dn(), [Out::Cast(data(60, 1))]);
    assert_eq!(h.take_up(), [NOT_READY]);
    // Rank 1 consumed everything; rank 2 never will.
    h.grant(&mut l, at(1), 1, 60);
    assert_eq!((h.take_dn(), h.take_up()), (vec![], vec![]));
    h.timeout(&mut l, at(10));
    assert_eq!(h.take_dn(), [req_to(2)]);
    // Rank 2 failed: only rank 1 counts, the held cast goes and the sender is ready again.
    h.dn(&mut l, at(11), Dn::Failed(vec![Rank(2)]));
    assert_eq!(h.take_dn(), [Out::Other(Dn::Failed(vec![Rank(2)])), Out::Cast(data(60, 2))]);
    assert_eq!(h.take_up(), [READY]);
    assert_eq!((counter(&l, "outstanding"), l.poll_timeout()), (60, None));
    // Rank 1 alone limits now: blocked again at 100, and asked alone.
    h.cast(&mut l, at(12), 50, 3);
    assert_eq!(h.take_up(), [NOT_READY]);
    h.timeout(&mut l, at(22));
    assert_eq!(h.take_dn(), [req_to(1)]);
    // Grants and requests from the failed member are dropped; none go to it.
    h.grant(&mut l, at(23), 2, 120);
    h.up(&mut l, at(23), Up::Send { from: Rank(2), msg: wire(&FlowHdr::CreditReq, b"") });
    assert_eq!((h.take_dn(), h.take_up()), (vec![], vec![]));
    h.up(&mut l, at(24), Up::Cast { from: Rank(2), msg: wire(&FlowHdr::Data, &[7; 30]) });
    assert_eq!(h.take_up().len(), 1, "its casts are still delivered");
    assert_eq!(h.take_dn(), [], "no grant to a failed member");
    assert_eq!(counter(&l, "from_failed"), 2);
    // Everyone else failed: a group of one never blocks.
    h.dn(&mut l, at(25), Dn::Failed(vec![Rank(1)]));
    assert_eq!(h.take_dn(), [Out::Other(Dn::Failed(vec![Rank(1)])), Out::Cast(data(50, 3))]);
    assert_eq!(h.take_up(), [READY]);
    assert_eq!(counter(&l, "outstanding"), 0);
}
