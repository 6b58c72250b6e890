//! Probes, endpoint to endpoint (sans I/O, datagrams handed over by the test): members of a
//! secured group that allow probes answer with their view and their layers' metrics, one
//! that does not counts the probe as refused; a probe under another key, or unsealed, is
//! refused before anything reads it; answers are rate-limited; an answer to no question is
//! counted and dropped; an unsecured group answers an unsecured probe.

use thoth::frame::FrameView;
use thoth::probe::{BURST, REFILL, Report};
use thoth::*;

const G: GroupId = GroupId(0x9b0be);
const NOW: Time = Time::from_nanos(1_000_000_000);

fn shared(secret: u8) -> Security {
    Security::shared(GroupSecret::new([secret; 32]))
}

/// Member `me` of the fixed view {1, 2, 3} over the reliable stack, answering probes or not.
fn member(me: u64, probe: bool, security: Security) -> Endpoint {
    let ids = vec![EndpointId(1), EndpointId(2), EndpointId(3)];
    let cfg = Config { probe, ..Config::new(G, EndpointId(me), ids) }.secured(security);
    let mut ep = Endpoint::from_spec(cfg, &registry(), "reliable").unwrap();
    while ep.poll_event().is_some() {}
    ep
}

/// A prober: an endpoint of the group with no layers, alone in its view.
fn prober(security: Security) -> Endpoint {
    let me = EndpointId(9);
    let mut ep = Endpoint::from_spec(Config::new(G, me, vec![me]).secured(security), &registry(), "bare").unwrap();
    while ep.poll_event().is_some() {}
    ep
}

/// The probe datagrams `ep` sends (others dropped), as bytes.
fn probes_out(ep: &mut Endpoint) -> Vec<Bytes> {
    std::iter::from_fn(|| ep.poll_transmit())
        .map(|t| Bytes::from([&t.head[..], &t.body].concat()))
        .filter(|d| FrameView::parse(d).is_ok_and(|v| v.frame().is_probe()))
        .collect()
}

/// The prober's probe to every member, and their answers back: the reports it took.
fn ask(p: &mut Endpoint, ms: &mut [Endpoint], nonce: u64) -> Vec<Report> {
    p.probe(NOW, None, nonce);
    let out = probes_out(p);
    assert_eq!(out.len(), 1, "one probe, to the group");
    for m in ms.iter_mut() {
        m.handle_datagram(NOW, out[0].clone());
        for a in probes_out(m) {
            p.handle_datagram(NOW, a);
        }
    }
    std::iter::from_fn(|| p.poll_event())
        .filter_map(|e| match e {
            Event::Probed(r) => Some(*r),
            _ => None,
        })
        .collect()
}

#[test]
fn members_that_allow_it_answer_with_their_view_and_metrics() {
    let mut ms = vec![member(1, true, shared(7)), member(2, true, shared(7)), member(3, false, shared(7))];
    ms[0].cast(NOW, Bytes::from_static(b"one")).unwrap();
    let mut p = prober(shared(7));
    let reports = ask(&mut p, &mut ms, 77);
    let from: Vec<EndpointId> = reports.iter().map(|r| r.me).collect();
    assert_eq!(from, [EndpointId(1), EndpointId(2)], "the member with probes off does not answer");
    for r in &reports {
        assert_eq!(r.nonce, 77);
        assert_eq!(r.view.members, [EndpointId(1), EndpointId(2), EndpointId(3)]);
        assert!(!r.truncated);
        for layer in ["frag", "nak", "stable", "pack"] {
            assert!(r.layer(layer, 0).is_some(), "no {layer} in {r:?}");
        }
    }
    assert_eq!(reports[0].layer("nak", 0).and_then(|l| l.counter("casts")), Some(1), "member 1's own cast");
    assert_eq!(ms[2].stats().rx_probe_refused, 1);
    assert_eq!((ms[0].stats().rx_probe, p.stats().rx_probe), (1, 2));

    // An answer to no question of its own, at member 2: counted, no event.
    let mut q = prober(shared(7));
    q.probe(NOW, Some(EndpointId(1)), 5);
    ms[0].handle_datagram(NOW, probes_out(&mut q).remove(0));
    let answer = probes_out(&mut ms[0]).remove(0);
    ms[1].handle_datagram(NOW, answer.clone());
    assert_eq!(ms[1].stats().rx_probe_bad, 1);
    assert!(std::iter::from_fn(|| ms[1].poll_event()).all(|e| !matches!(e, Event::Probed(_))));
    // The prober with another nonce outstanding: the same.
    p.handle_datagram(NOW, answer);
    assert_eq!(p.stats().rx_probe_bad, 1);
}

#[test]
fn a_probe_under_another_key_or_none_is_refused_unread() {
    let mut ms = vec![member(1, true, shared(7)), member(2, true, shared(7))];
    let mut wrong = prober(shared(8));
    assert!(ask(&mut wrong, &mut ms, 1).is_empty());
    let mut open = prober(Security::Insecure);
    assert!(ask(&mut open, &mut ms, 2).is_empty());
    for m in &ms {
        let s = m.stats();
        assert_eq!((s.rx_bad_tag, s.rx_unsealed, s.rx_probe, s.rx_probe_refused), (1, 1, 0, 0), "{s:?}");
    }
    // An unsecured group answers an unsecured probe.
    let mut ms = vec![member(1, true, Security::Insecure)];
    assert_eq!(ask(&mut open, &mut ms, 3).len(), 1);
}

#[test]
fn answers_are_rate_limited() {
    let mut m = member(1, true, shared(7));
    let mut p = prober(shared(7));
    let answered = |m: &mut Endpoint, p: &mut Endpoint, at: Time, n: u64| {
        for k in 0..n {
            p.probe(at, Some(EndpointId(1)), k);
            for d in probes_out(p) {
                m.handle_datagram(at, d);
            }
        }
        probes_out(m).len()
    };
    assert_eq!(answered(&mut m, &mut p, NOW, 40), BURST as usize);
    assert_eq!(m.stats().rx_probe_limited, 40 - u64::from(BURST));
    assert_eq!(answered(&mut m, &mut p, NOW + REFILL * 2, 5), 2, "one more per REFILL");
}
