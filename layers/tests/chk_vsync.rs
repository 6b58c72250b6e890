//! The `chk_vsync` checker, driven by hand with `testing::Harness` (its memo carries what the
//! layer keeps across views; `install` moves a member to the next view as the endpoint does):
//! exact outputs of a clean view change between two members (no error, digests agree), and
//! of each violation planted on purpose — a delivery stamped with another view, a missing
//! own delivery at `Install`, a non-increasing `Install`, a stack whose view is not the one
//! announced, two members whose digests of the same view differ (the `Digest` cast carried
//! from one harness to the other by hand). bolero: header and memo round-trips, arbitrary
//! bytes as `Up::Cast` / `Up::Send` (and as the memo) never panic.

use thoth_layers::debug::chk_vsync::{ChkVsync, Hdr, History, KEY, Kept, Tally};
use thoth_stack::ids::Fnv;
use thoth_stack::testing::Harness;
use thoth_stack::wire::{from_slice, to_vec};
use thoth_stack::*;

const T0: Time = Time::ZERO;

fn vid(ltime: u64, coord: u64) -> ViewId {
    ViewId { ltime, coord: EndpointId(coord) }
}

fn view(ltime: u64, members: &[u64]) -> View {
    View {
        id: vid(ltime, members[0]),
        members: members.iter().copied().map(EndpointId).collect(),
        primary: true,
        subgroups: Vec::new(),
    }
}

/// What leaves the bottom of the layer as the bytes a receiver gets.
fn wire(m: Msg) -> Msg {
    thoth_stack::testing::over_wire(&m)
}

/// The one cast the layer emitted down, as received off the wire.
fn one_cast(h: &mut Harness) -> Msg {
    match h.take_dn().as_slice() {
        [Dn::Cast(m)] => wire(m.clone()),
        other => panic!("expected one cast down, got {other:?}"),
    }
}

/// A cast stamped by a `chk_vsync` in view `v`.
fn stamped(v: ViewId, body: &'static str) -> Msg {
    let mut m = Msg::new(Bytes::from_static(body.as_bytes()));
    m.push(&Hdr::Chk { view: v });
    m.seal(); // as the layer emits it
    wire(m)
}

fn cast_up(from: u16, msg: Msg) -> Up {
    Up::Cast { from: Rank(from), msg }
}

/// What went up, readable: casts as `from:payload`, errors as their detail, others as Debug.
fn ups(h: &mut Harness) -> Vec<String> {
    h.take_up()
        .into_iter()
        .map(|e| match e {
            Up::Cast { from, msg } => format!("{}:{}", from.0, String::from_utf8_lossy(&msg.into_payload())),
            Up::Error { layer: "chk_vsync", detail } => format!("error: {detail}"),
            other => format!("{other:?}"),
        })
        .collect()
}

fn counter(c: &ChkVsync, name: &str) -> u64 {
    let mut d = Vec::new();
    c.dump(&mut d);
    d[0].counter(name).unwrap_or_else(|| panic!("no counter {name}"))
}

/// The hash of one sender's deliveries, as the layer computes it.
/// The digest's hash of one sender's casts: a running hash of them (none asked for FIFO
/// order only) and the empty one of its FIFO-only casts, hashed together.
fn hash(payloads: &[&str]) -> u64 {
    let mut f = Fnv::new();
    for p in payloads {
        f.u64(p.len() as u64);
        f.bytes(p.as_bytes());
    }
    let mut both = Fnv::new();
    both.u64(f.finish());
    both.u64(Fnv::new().finish());
    both.finish()
}

/// Members e1, e2, e3 in view v1@e1; `me` of them is rank `rank`, its layer started.
fn member(rank: u16) -> (Harness, ChkVsync) {
    let (mut h, mut c) = (Harness::new(3, rank), ChkVsync::new());
    assert_eq!(c.poll_timeout(), None, "no timers");
    h.init(&mut c, T0);
    assert!(h.take_dn().is_empty() && h.take_up().is_empty(), "first view: nothing kept, nothing to say");
    (h, c)
}

/// Casts `body` down at `h`, checks the stamp, returns the message as it left the layer.
fn cast(h: &mut Harness, c: &mut ChkVsync, body: &'static str) -> Msg {
    h.dn(c, T0, Dn::Cast(Msg::new(Bytes::from_static(body.as_bytes()))));
    match h.take_dn().as_slice() {
        [Dn::Cast(m)] => {
            assert_eq!(m.head(), [1, 1, 1], "Chk {{ view: v1@e1 }}: tag, ltime, coord");
            m.clone()
        }
        other => panic!("expected one cast down, got {other:?}"),
    }
}

/// Two members (ranks 0 and 1) of v1@e1 see: 0 casts "a", 1 casts "b", 2 casts "c" (which
/// rank 1 misses when `lose_c`); then both install v2 = [e1, e2] and start its stacks.
/// Returns the harnesses, the new layers and their `Digest` casts, as received.
fn view_change(lose_c: bool) -> [(Harness, ChkVsync, Msg); 2] {
    let (mut h0, mut c0) = member(0);
    let (mut h1, mut c1) = member(1);
    // Own casts come back as the endpoint loops them back (headers still inline), others'
    // off the wire: the digests must not care.
    let (a, b) = (cast(&mut h0, &mut c0, "a"), cast(&mut h1, &mut c1, "b"));
    h0.up(&mut c0, T0, cast_up(0, a.clone()));
    h0.up(&mut c0, T0, cast_up(1, wire(b.clone())));
    h1.up(&mut c1, T0, cast_up(0, wire(a)));
    h1.up(&mut c1, T0, cast_up(1, b));
    h0.up(&mut c0, T0, cast_up(2, stamped(vid(1, 1), "c")));
    if !lose_c {
        h1.up(&mut c1, T0, cast_up(2, stamped(vid(1, 1), "c")));
    }
    assert_eq!(ups(&mut h0), ["0:a", "1:b", "2:c"]);
    assert_eq!(ups(&mut h1), if lose_c { &["0:a", "1:b"][..] } else { &["0:a", "1:b", "2:c"][..] });
    let v2 = view(2, &[1, 2]);
    let mut out = Vec::new();
    for (h, c, me) in [(h0, c0, 1), (h1, c1, 2)] {
        let (mut h, mut c) = (h, c);
        h.up(&mut c, T0, Up::Install(v2.clone()));
        assert_eq!(h.take_up(), [Up::Install(v2.clone())], "a clean Install passes alone");
        assert_eq!(c.violations(), 0);
        h.install(v2.clone(), EndpointId(me));
        let mut c = ChkVsync::new(); // the next view's stack
        h.init(&mut c, T0);
        assert!(h.take_up().is_empty());
        let d = one_cast(&mut h);
        out.push((h, c, d));
    }
    let Ok(pair) = out.try_into() else { unreachable!("two members") };
    pair
}

#[test]
fn clean_view_change_reports_nothing_and_digests_agree() {
    let [(mut h0, mut c0, d0), (mut h1, mut c1, d1)] = view_change(false);
    let want = vec![
        Tally { sender: EndpointId(1), count: 1, hash: hash(&["a"]) },
        Tally { sender: EndpointId(2), count: 1, hash: hash(&["b"]) },
        Tally { sender: EndpointId(3), count: 1, hash: hash(&["c"]) },
    ];
    let kept =
        History { moves: vec![Kept { prev: vid(1, 1), next: vid(2, 1), digest: want.clone() }], reported: vec![] };
    assert_eq!(from_slice::<History>(&h0.memo[KEY]), Ok(kept.clone()));
    assert_eq!(from_slice::<History>(&h1.memo[KEY]), Ok(kept));
    let mut d = d0.clone();
    d.unseal(); // as the layer below hands it up
    assert_eq!(d.pop::<Hdr>(), Ok(Hdr::Digest { prev: vid(1, 1), next: vid(2, 1), digest: want }));
    assert!(d.is_empty());
    // Each gets its own digest back (ignored) and the other's (equal): nothing goes up.
    for (h, c) in [(&mut h0, &mut c0), (&mut h1, &mut c1)] {
        h.up(c, T0, cast_up(0, d0.clone()));
        h.up(c, T0, cast_up(1, d1.clone()));
        assert!(h.take_up().is_empty(), "digests are consumed");
        assert_eq!(c.violations(), 0);
        assert_eq!(counter(c, "digests_compared"), 1);
    }
}

#[test]
fn different_deliveries_in_the_same_view_are_reported_at_both_members_once() {
    let [(mut h0, mut c0, d0), (mut h1, mut c1, d1)] = view_change(true);
    let (with, without) = (hash(&["c"]), hash(&[]));
    h1.up(&mut c1, T0, cast_up(0, d0.clone()));
    assert_eq!(
        ups(&mut h1),
        [format!(
            "error: agreement from rank 0 at rank 1: e2 and e1 both came from view v1@e1 with different \
             deliveries: from e3, 0 casts (hash {without:016x}) at e2 vs 1 (hash {with:016x}) at e1"
        )]
    );
    h0.up(&mut c0, T0, cast_up(1, d1.clone()));
    assert_eq!(
        ups(&mut h0),
        [format!(
            "error: agreement from rank 1 at rank 0: e1 and e2 both came from view v1@e1 with different \
             deliveries: from e3, 1 casts (hash {with:016x}) at e1 vs 0 (hash {without:016x}) at e2"
        )]
    );
    // The same digest again: reported once.
    h1.up(&mut c1, T0, cast_up(0, d0));
    h0.up(&mut c0, T0, cast_up(1, d1));
    assert!(h0.take_up().is_empty() && h1.take_up().is_empty());
    assert_eq!((c0.reporter().count("agreement"), c1.reporter().count("agreement")), (1, 1));
}

#[test]
fn a_comparison_lost_with_its_view_is_made_in_the_next_one() {
    // The two members disagree on v1; their digests cast in v2 are never delivered (v2 is
    // replaced before its casts are: held for a joiner that never loads the state, say).
    let [(h0, c0, _), (h1, c1, _)] = view_change(true);
    let v3 = view(3, &[1, 2]);
    let mut next = Vec::new();
    for (mut h, mut c, me) in [(h0, c0, 1), (h1, c1, 2)] {
        h.up(&mut c, T0, Up::Install(v3.clone()));
        assert_eq!(h.take_up(), [Up::Install(v3.clone())]);
        h.install(v3.clone(), EndpointId(me));
        let mut c = ChkVsync::new(); // v3's stack
        h.init(&mut c, T0);
        // It casts the digests of both moves, the older first.
        let casts: Vec<Msg> = h
            .take_dn()
            .into_iter()
            .map(|e| match e {
                Dn::Cast(m) => wire(m),
                other => panic!("expected casts, got {other:?}"),
            })
            .collect();
        let moves: Vec<(ViewId, ViewId)> = casts
            .iter()
            .map(|m| {
                let mut m = m.clone();
                m.unseal();
                match m.pop::<Hdr>() {
                    Ok(Hdr::Digest { prev, next, .. }) => (prev, next),
                    other => panic!("expected a digest, got {other:?}"),
                }
            })
            .collect();
        assert_eq!(moves, [(vid(1, 1), vid(2, 1)), (vid(2, 1), vid(3, 1))]);
        next.push((h, c, casts));
    }
    let (mut h1, mut c1, _) = next.pop().expect("two members");
    let (_, _, from0) = next.pop().expect("two members");
    for m in from0.clone() {
        h1.up(&mut c1, T0, cast_up(0, m));
    }
    let errors = ups(&mut h1);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].starts_with("error: agreement from rank 0 at rank 1: e2 and e1 both came from view v1@e1"));
    assert_eq!((counter(&c1, "digests_compared"), c1.reporter().count("agreement")), (2, 1));
    // In the view after, the same comparison comes again: not reported twice.
    let v4 = view(4, &[1, 2]);
    h1.up(&mut c1, T0, Up::Install(v4.clone()));
    h1.take_up();
    h1.install(v4, EndpointId(2));
    let mut c1 = ChkVsync::new();
    h1.timeout(&mut c1, T0);
    h1.take_dn();
    for m in from0 {
        h1.up(&mut c1, T0, cast_up(0, m));
    }
    assert!(ups(&mut h1).is_empty());
    assert_eq!((counter(&c1, "digests_compared"), c1.violations()), (2, 0));
}

#[test]
fn digests_from_members_of_another_view_are_ignored() {
    let [(mut h0, mut c0, _), _] = view_change(true);
    // A member that came from the other side of a merge, with a different digest.
    let mut m = Msg::new(Bytes::new());
    let digest = vec![Tally { sender: EndpointId(7), count: 9, hash: 1 }];
    m.push(&Hdr::Digest { prev: vid(1, 7), next: vid(2, 1), digest: digest.clone() });
    m.seal();
    h0.up(&mut c0, T0, cast_up(1, wire(m)));
    // Or from the same view, but to another one (the other side of a split): not compared.
    let mut m = Msg::new(Bytes::new());
    m.push(&Hdr::Digest { prev: vid(1, 1), next: vid(2, 9), digest });
    m.seal();
    h0.up(&mut c0, T0, cast_up(1, wire(m)));
    assert!(h0.take_up().is_empty());
    assert_eq!((c0.violations(), counter(&c0, "digests_other"), counter(&c0, "digests_compared")), (0, 2, 0));
}

#[test]
fn a_delivery_stamped_with_another_view_is_reported_and_still_delivered() {
    let (mut h, mut c) = member(0);
    h.up(&mut c, T0, cast_up(1, stamped(vid(1, 1), "ok")));
    h.up(&mut c, T0, cast_up(1, stamped(vid(7, 1), "x")));
    assert_eq!(
        ups(&mut h),
        ["1:ok", "error: wrong_view from rank 1 at rank 0: delivered in view v1@e1, sent in view v7@e1", "1:x"]
    );
    assert_eq!((counter(&c, "wrong_view"), counter(&c, "checked")), (1, 2));
}

#[test]
fn a_missing_own_delivery_is_reported_at_install() {
    let (mut h, mut c) = member(0);
    let first = cast(&mut h, &mut c, "one");
    cast(&mut h, &mut c, "two"); // never comes back
    h.up(&mut c, T0, cast_up(0, first));
    assert_eq!(ups(&mut h), ["0:one"]);
    let v2 = view(2, &[1, 2, 3]);
    h.up(&mut c, T0, Up::Install(v2.clone()));
    assert_eq!(
        ups(&mut h),
        [
            "error: self_delivery from rank 0 at rank 0: sent 2 casts in view v1@e1, delivered 1 of them",
            &format!("{:?}", Up::Install(v2))
        ]
    );
}

#[test]
fn own_casts_all_delivered_pass_install() {
    let (mut h, mut c) = member(2);
    let m = cast(&mut h, &mut c, "one");
    h.up(&mut c, T0, cast_up(2, m));
    h.up(&mut c, T0, Up::Install(view(2, &[1, 2, 3])));
    assert_eq!(c.violations(), 0);
    assert_eq!((counter(&c, "sent"), counter(&c, "own_delivered")), (1, 1));
}

#[test]
fn a_non_increasing_install_is_reported() {
    let (mut h, mut c) = member(0);
    let same = view(1, &[1, 2, 3]);
    h.up(&mut c, T0, Up::Install(same.clone()));
    assert_eq!(
        ups(&mut h),
        [
            "error: view_order from rank 0 at rank 0: Install of view v1@e1 in view v1@e1: view ids must increase",
            &format!("{:?}", Up::Install(same))
        ]
    );
}

#[test]
fn a_view_other_than_the_one_announced_is_reported_by_the_next_stack() {
    let (mut h, mut c) = member(0);
    h.up(&mut c, T0, Up::Install(view(2, &[1, 2, 3])));
    assert_eq!(c.violations(), 0);
    h.install(view(3, &[1, 2, 3]), EndpointId(1)); // not what Install announced
    let mut c = ChkVsync::new();
    h.up(&mut c, T0, Up::Block); // the first event starts the view, as a timeout would
    assert_eq!(
        ups(&mut h),
        ["error: view_order from rank 0 at rank 0: installed view v3@e1, but Install announced v2@e1", "Block"]
    );
    assert_eq!(h.take_dn().len(), 1, "the digest is still cast");
}

#[test]
fn sends_and_unreliable_casts_are_not_checked_and_bad_input_is_dropped() {
    let (mut h, mut c) = member(0);
    h.dn(&mut c, T0, Dn::Send(Rank(1), Msg::new(Bytes::from_static(b"s"))));
    h.dn(&mut c, T0, Dn::CastUnrel(Msg::new(Bytes::from_static(b"u"))));
    let heads: Vec<Vec<u8>> = h
        .take_dn()
        .into_iter()
        .map(|e| match e {
            Dn::Send(_, m) | Dn::CastUnrel(m) => m.head().to_vec(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(heads, [[], []], "`NoHdr`, the nothing, takes no bytes");
    h.up(&mut c, T0, Up::Send { from: Rank(1), msg: Msg::from_wire(Bytes::from_static(b"\0s")) });
    h.up(&mut c, T0, cast_up(1, Msg::from_wire(Bytes::from_static(b"\0u"))));
    h.up(&mut c, T0, cast_up(1, Msg::from_wire(Bytes::from_static(b"\x09"))));
    h.up(&mut c, T0, cast_up(5, stamped(vid(1, 1), "far")));
    h.up(&mut c, T0, Up::Send { from: Rank(1), msg: stamped(vid(1, 1), "stamped send") });
    let out = h.take_up();
    assert_eq!(out.len(), 2);
    assert!(matches!(&out[0], Up::Send { from: Rank(1), .. }));
    assert!(matches!(&out[1], Up::Cast { from: Rank(1), .. }));
    assert_eq!((counter(&c, "bad_hdr"), counter(&c, "bad_rank"), counter(&c, "checked")), (2, 1, 0));
    assert_eq!(c.violations(), 0);
}

#[test]
fn properties_and_spec() {
    assert!(ChkVsync::new().check(Props::NONE).is_err(), "needs membership below");
    assert_eq!(ChkVsync::new().check(Props::MEMBERSHIP), Ok(Props::MEMBERSHIP));
    let mut r = Registry::new();
    thoth_layers::debug::register(&mut r);
    assert!(r.build("chk_vsync").is_err(), "ill-formed alone");
}

#[test]
fn header_and_memo_round_trip() {
    bolero::check!().with_type::<(u8, u64, u64, u64, Vec<(u64, u64, u64)>)>().for_each(|(tag, lt, co, lt2, ts)| {
        let digest: Vec<Tally> =
            ts.iter().map(|&(s, count, hash)| Tally { sender: EndpointId(s), count, hash }).collect();
        let h = match tag % 3 {
            0 => Hdr::NoHdr,
            1 => Hdr::Chk { view: vid(*lt, *co) },
            _ => Hdr::Digest { prev: vid(*lt, *co), next: vid(*lt2, *co), digest: digest.clone() },
        };
        let b = to_vec(&h);
        assert_eq!(from_slice::<Hdr>(&b), Ok(h));
        for n in 0..b.len() {
            assert!(from_slice::<Hdr>(&b[..n]).is_err(), "a strict prefix is never misread");
        }
        let k = Kept { prev: vid(*lt, *co), next: vid(*lt2, *co), digest };
        assert_eq!(from_slice::<Kept>(&to_vec(&k)), Ok(k.clone()));
        let reported = vec![(vid(*lt2, *co), EndpointId(*co)); usize::from(*tag % 3)];
        let h = History { moves: vec![k; usize::from(*tag % 4)], reported };
        assert_eq!(from_slice::<History>(&to_vec(&h)), Ok(h));
    });
}

#[test]
fn arbitrary_bytes_into_handle_up_never_panic() {
    bolero::check!().with_type::<(Option<Vec<u8>>, Vec<(u16, bool, Vec<u8>)>)>().for_each(|(memo, inputs)| {
        let mut h = Harness::new(3, 0);
        if let Some(m) = memo {
            h.memo.insert(KEY, Bytes::from(m.clone()));
        }
        let mut c = ChkVsync::new();
        for (from, send, d) in inputs {
            let msg = Msg::from_wire(Bytes::from(d.clone()));
            let from = Rank(*from % 5);
            h.up(&mut c, T0, if *send { Up::Send { from, msg } } else { Up::Cast { from, msg } });
        }
        let delivered = h.take_up().iter().filter(|e| matches!(e, Up::Cast { .. } | Up::Send { .. })).count() as u64;
        let (bad, digests) = (counter(&c, "bad_hdr") + counter(&c, "bad_rank"), counter(&c, "digests"));
        assert_eq!(delivered + bad + digests, inputs.len() as u64, "every input delivered, dropped or consumed");
        assert!(h.take_dn().len() <= thoth_layers::debug::chk_vsync::KEEP_VIEWS, "at most the digests of the memo");
    });
}

#[test]
fn loopback_and_wire_copies_of_a_cast_hash_the_same() {
    // A layer above chk_vsync has pushed a header: the looped-back copy still holds it inline,
    // the wire copy in its body. Both members must keep the same digest.
    let (mut h0, mut c0) = member(0);
    let (mut h1, mut c1) = member(1);
    let mut m = Msg::new(Bytes::from_static(b"p"));
    m.push(&7u8);
    h0.dn(&mut c0, T0, Dn::Cast(m));
    let sent = match h0.take_dn().as_slice() {
        [Dn::Cast(m)] => m.clone(),
        other => panic!("expected one cast down, got {other:?}"),
    };
    h0.up(&mut c0, T0, cast_up(0, sent.clone()));
    h1.up(&mut c1, T0, cast_up(0, wire(sent)));
    for (h, c) in [(&mut h0, &mut c0), (&mut h1, &mut c1)] {
        h.up(c, T0, Up::Install(view(2, &[1, 2, 3])));
    }
    let digest = |h: &Harness| from_slice::<History>(&h.memo[KEY]).unwrap().moves.pop().unwrap().digest;
    assert_eq!(digest(&h0), digest(&h1));
    assert_eq!(digest(&h0)[0].count, 1);
}
