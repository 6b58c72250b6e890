//! The sans-IO endpoint: three members wired in memory, bad input counted and dropped,
//! leave, size limits.

mod common_layers;

use common_layers::{Log, Tag};
use thoth_stack::frame::{FLAG_SEND, FRAME_LEN, Frame, seal};
use thoth_stack::*;

const G: GroupId = GroupId(0x7407);

fn ids() -> Vec<EndpointId> {
    vec![EndpointId(11), EndpointId(22), EndpointId(33)]
}

fn tagged(log: &Log) -> impl FnMut(&View) -> Stack + Send + 'static {
    let log = log.clone();
    move |_| Stack::builder().push(Tag::new("t1", 0x51, &log)).push(Tag::new("t2", 0x52, &log)).build().unwrap()
}

fn group(log: &Log) -> Vec<Endpoint> {
    ids().into_iter().map(|me| Endpoint::new(Config::new(G, me, ids()), tagged(log)).unwrap()).collect()
}

/// Moves every pending transmit to its destinations until the network is quiet.
fn pump(eps: &mut [Endpoint], now: Time) {
    loop {
        let mut moved = false;
        for i in 0..eps.len() {
            while let Some(t) = eps[i].poll_transmit() {
                moved = true;
                let data = t.to_bytes();
                for (j, ep) in eps.iter_mut().enumerate() {
                    let to_me = match t.dst {
                        Dest::All | Dest::Everyone => j != i,
                        Dest::One(id) => ep.me() == id,
                    };
                    if to_me {
                        ep.handle_datagram(now, data.clone());
                    }
                }
            }
        }
        if !moved {
            return;
        }
    }
}

fn events<L: Layer>(ep: &mut Endpoint<L>) -> Vec<Event> {
    std::iter::from_fn(|| ep.poll_event()).collect()
}

#[test]
fn three_members_deliver_every_cast_to_everyone_including_the_sender() {
    let log = Log::default();
    let mut eps = group(&log);
    for ep in eps.iter_mut() {
        assert_eq!(events(ep), [Event::View(View::initial(ids()))]);
    }
    for (i, ep) in eps.iter_mut().enumerate() {
        for k in 0..3u8 {
            ep.cast(Time::ZERO, Bytes::from(vec![i as u8, k])).unwrap();
        }
    }
    pump(&mut eps, Time::ZERO);
    for ep in eps.iter_mut() {
        let mut got: Vec<(EndpointId, Vec<u8>)> = events(ep)
            .into_iter()
            .map(|e| match e {
                Event::Cast { from, data } => (from, data.to_vec()),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        // Per sender, in order.
        got.sort_by_key(|(from, _)| *from);
        let want: Vec<(EndpointId, Vec<u8>)> =
            (0..3u8).flat_map(|i| (0..3u8).map(move |k| (ids()[i as usize], vec![i, k]))).collect();
        assert_eq!(got, want);
        assert_eq!(ep.stats().delivered_casts, 9);
        assert_eq!(ep.stats().rx_accepted, 6);
        assert_eq!(ep.stats().tx_datagrams, 3);
        assert!(ep.dump().iter().all(|d| d.counter("mismatches") == Some(0)));
    }
}

#[test]
fn sends_reach_only_their_target_and_self_sends_loop_back() {
    let log = Log::default();
    let mut eps = group(&log);
    for ep in eps.iter_mut() {
        events(ep);
    }
    eps[0].send(Time::ZERO, EndpointId(33), Bytes::from_static(b"to 33")).unwrap();
    eps[0].send(Time::ZERO, EndpointId(11), Bytes::from_static(b"to me")).unwrap();
    assert_eq!(eps[0].send(Time::ZERO, EndpointId(99), Bytes::new()), Err(CastError::NotMember));
    pump(&mut eps, Time::ZERO);
    assert_eq!(events(&mut eps[0]), [Event::Send { from: EndpointId(11), data: Bytes::from_static(b"to me") }]);
    assert_eq!(events(&mut eps[1]), []);
    assert_eq!(events(&mut eps[2]), [Event::Send { from: EndpointId(11), data: Bytes::from_static(b"to 33") }]);
}

/// A well-formed datagram as member `src` would send it through the two tag layers: the
/// presence bits (sentinel, both layers pushed), the tags bottom first, the payload.
fn datagram(f: Frame, payload: &[u8]) -> Vec<u8> {
    let mut d = [0u8; FRAME_LEN].to_vec();
    f.write((&mut d[..FRAME_LEN]).try_into().unwrap());
    d.extend_from_slice(&[0b111, 0x52, 0x51]);
    d.extend_from_slice(payload);
    let (head, rest) = d.split_at_mut(FRAME_LEN + 3);
    let rest = rest.to_vec();
    seal(head, &rest);
    d
}

#[test]
fn malformed_and_misaddressed_datagrams_are_counted_never_delivered() {
    let log = Log::default();
    let mut ep = Endpoint::new(Config::new(G, EndpointId(22), ids()), tagged(&log)).unwrap();
    events(&mut ep);
    let view = View::initial(ids()).id;
    let good = Frame { flags: 0, group: G, view, src: EndpointId(11) };
    let ok = datagram(good, b"fine");
    let feed = |ep: &mut Endpoint, d: Vec<u8>| ep.handle_datagram(Time::ZERO, Bytes::from(d));

    feed(&mut ep, ok.clone());
    assert_eq!(events(&mut ep), [Event::Cast { from: EndpointId(11), data: Bytes::from_static(b"fine") }]);

    feed(&mut ep, ok[..FRAME_LEN - 3].to_vec());
    let mut c = ok.clone();
    c[0] ^= 0xff;
    feed(&mut ep, c);
    let mut c = ok.clone();
    c[2] = 9;
    feed(&mut ep, c);
    let mut c = ok.clone();
    c[FRAME_LEN + 3] ^= 1;
    feed(&mut ep, c);
    feed(&mut ep, datagram(Frame { group: GroupId(1), ..good }, b"x"));
    feed(&mut ep, datagram(Frame { src: EndpointId(99), ..good }, b"x"));
    feed(&mut ep, datagram(Frame { src: EndpointId(22), ..good }, b"x"));
    feed(&mut ep, datagram(Frame { view: ViewId { ltime: 0, ..view }, ..good }, b"x"));
    feed(&mut ep, datagram(Frame { view: ViewId { ltime: 1, coord: EndpointId(22) }, ..good }, b"x"));
    feed(&mut ep, datagram(Frame { view: ViewId { ltime: 5, ..view }, ..good }, b"x"));
    feed(&mut ep, b"random garbage that is long enough to look like a frame..".to_vec());
    // A frame the layers cannot parse: the tag layer drops and counts it.
    let mut bad_hdr = datagram(good, b"y");
    bad_hdr[FRAME_LEN] = 0x99;
    let (h, r) = bad_hdr.split_at_mut(FRAME_LEN);
    let r = r.to_vec();
    seal(h, &r);
    feed(&mut ep, bad_hdr);

    assert_eq!(events(&mut ep), []);
    let s = ep.stats();
    assert_eq!(s.rx_datagrams, 13);
    assert_eq!((s.rx_truncated, s.rx_bad_magic, s.rx_bad_version, s.rx_bad_crc, s.rx_foreign_group), (1, 2, 1, 1, 1));
    assert_eq!((s.rx_unknown_src, s.rx_own, s.rx_other_view, s.rx_held), (1, 1, 2, 1));
    assert_eq!(s.rx_accepted, 2);
    assert_eq!(s.delivered_casts, 1);
    assert_eq!(ep.dump().iter().map(|d| d.counter("mismatches").unwrap()).sum::<u64>(), 1);

    // Point-to-point flag is honoured.
    feed(&mut ep, datagram(Frame { flags: FLAG_SEND, ..good }, b"p2p"));
    assert_eq!(events(&mut ep), [Event::Send { from: EndpointId(11), data: Bytes::from_static(b"p2p") }]);
}

#[test]
fn leave_exits_and_refuses_further_traffic() {
    let mut ep = Endpoint::new(Config::new(G, EndpointId(11), ids()), |_: &View| Bare).unwrap();
    events(&mut ep);
    ep.leave(Time::ZERO);
    assert_eq!(events(&mut ep), [Event::Exit]);
    assert!(ep.has_left());
    assert_eq!(ep.cast(Time::ZERO, Bytes::new()), Err(CastError::Left));
    let d = datagram(Frame { flags: 0, group: G, view: ep.view().id, src: EndpointId(22) }, b"");
    ep.handle_datagram(Time::ZERO, Bytes::from(d));
    assert_eq!(ep.stats().rx_after_exit, 1);
    assert_eq!(ep.poll_timeout(), None);
}

#[test]
fn size_limits() {
    let mut cfg = Config::new(G, EndpointId(11), ids());
    cfg.max_datagram = FRAME_LEN + 10;
    let log = Log::default();
    let mut ep = Endpoint::new(cfg.clone(), tagged(&log)).unwrap();
    assert_eq!(ep.max_payload(), 9, "past the frame, one byte of presence bits");
    assert_eq!(ep.cast(Time::ZERO, Bytes::from(vec![0; 10])), Err(CastError::TooLarge));
    // Fits the payload limit, but the two tag headers push it over: dropped and counted.
    ep.cast(Time::ZERO, Bytes::from(vec![0; 9])).unwrap();
    assert_eq!(ep.stats().tx_oversize, 1);
    assert!(ep.poll_transmit().is_none());
    cfg.max_datagram = FRAME_LEN;
    assert!(matches!(Endpoint::new(cfg, |_: &View| Bare), Err(EndpointError::DatagramTooSmall)));
    let cfg = Config::new(G, EndpointId(5), ids());
    assert!(matches!(Endpoint::new(cfg, |_: &View| Bare), Err(EndpointError::NotMember)));
}

#[test]
fn an_ill_formed_stack_is_refused_at_creation() {
    let log = Log::default();
    let l = log.clone();
    let r = Endpoint::new(Config::new(G, EndpointId(11), ids()), move |_: &View| {
        Tag::new("total", 1, &l).needs(Props::TOTAL)
    });
    assert!(matches!(r, Err(EndpointError::Stack(Missing { layer: "total", .. }))));
    let r = Endpoint::from_spec(Config::new(G, EndpointId(11), ids()), &Registry::new(), "nak");
    assert!(matches!(r, Err(EndpointError::Spec(SpecError::Unknown { .. }))));
}

/// A layer that reports every cast it sees coming up as a broken guarantee.
struct Alarm;

impl Layer for Alarm {
    fn name(&self) -> &'static str {
        "alarm"
    }
    fn handle_dn(&mut self, ev: Dn, cx: &mut Cx<'_>) {
        cx.dn(ev)
    }
    fn handle_up(&mut self, ev: Up, cx: &mut Cx<'_>) {
        if let Up::Cast { from, .. } = &ev {
            cx.up(Up::Error { layer: "alarm", detail: format!("cast from {from}") });
        }
        cx.up(ev)
    }
    fn dump(&self, _: &mut Vec<Dump>) {}
}

#[test]
fn layer_errors_reach_the_application_and_are_counted() {
    let mut ep = Endpoint::new(Config::new(G, EndpointId(11), ids()), |_: &View| Alarm).unwrap();
    events(&mut ep);
    ep.cast(Time::ZERO, Bytes::from_static(b"x")).unwrap();
    assert_eq!(
        events(&mut ep),
        [
            Event::Error { layer: "alarm", detail: "cast from r0".into() },
            Event::Cast { from: EndpointId(11), data: Bytes::from_static(b"x") }
        ]
    );
    assert_eq!(ep.stats().layer_errors, 1);
}

/// Lets one cast through, then holds casts until a message arrives (a toy flow control).
struct Gate;

impl Layer for Gate {
    fn name(&self) -> &'static str {
        "gate"
    }
    /// Every cast may close it: none goes with another.
    fn cast_room(&self) -> usize {
        0
    }
    fn handle_dn(&mut self, ev: Dn, cx: &mut Cx<'_>) {
        if matches!(ev, Dn::Cast(_)) {
            cx.up(Up::Flow { ready: false });
        }
        cx.dn(ev)
    }
    fn handle_up(&mut self, ev: Up, cx: &mut Cx<'_>) {
        if matches!(&ev, Up::Cast { from, .. } if *from != cx.rank) {
            cx.up(Up::Flow { ready: true });
        }
        cx.up(ev)
    }
    fn dump(&self, _: &mut Vec<Dump>) {}
}

#[test]
fn flow_control_refuses_casts_until_the_stack_is_ready() {
    let mut eps: Vec<Endpoint<Gate>> = ids()
        .into_iter()
        .take(2)
        .map(|me| Endpoint::new(Config::new(G, me, ids()), |_: &View| Gate).unwrap())
        .collect();
    assert!(eps[0].can_cast());
    eps[0].cast(Time::ZERO, Bytes::from_static(b"one")).unwrap();
    assert!(!eps[0].can_cast());
    assert_eq!(eps[0].cast(Time::ZERO, Bytes::from_static(b"two")), Err(CastError::WouldBlock));
    // Sends are not flow-controlled.
    eps[0].send(Time::ZERO, EndpointId(22), Bytes::from_static(b"p2p")).unwrap();
    eps[1].cast(Time::ZERO, Bytes::from_static(b"credit")).unwrap();
    let t = eps[1].poll_transmit().unwrap();
    eps[0].handle_datagram(Time::ZERO, t.to_bytes());
    assert!(eps[0].can_cast());
    eps[0].cast(Time::ZERO, Bytes::from_static(b"two")).unwrap();
}

/// Suspects the sender of every cast it sees coming up (a toy detector).
struct Accuser;

impl Layer for Accuser {
    fn name(&self) -> &'static str {
        "accuser"
    }
    fn handle_dn(&mut self, ev: Dn, cx: &mut Cx<'_>) {
        cx.dn(ev)
    }
    fn handle_up(&mut self, ev: Up, cx: &mut Cx<'_>) {
        if let Up::Cast { from, .. } = &ev {
            cx.up(Up::Suspect(vec![*from, Rank(9)]));
        }
    }
    fn dump(&self, _: &mut Vec<Dump>) {}
}

#[test]
fn suspicions_reach_the_application_as_member_ids() {
    let mut eps: Vec<Endpoint<Accuser>> = ids()
        .into_iter()
        .take(2)
        .map(|me| Endpoint::new(Config::new(G, me, ids()), |_: &View| Accuser).unwrap())
        .collect();
    events(&mut eps[0]);
    eps[1].cast(Time::ZERO, Bytes::from_static(b"x")).unwrap();
    let t = eps[1].poll_transmit().unwrap();
    eps[0].handle_datagram(Time::ZERO, t.to_bytes());
    // Rank 9 is not in the view: left out.
    assert_eq!(events(&mut eps[0]), [Event::Suspect(vec![EndpointId(22)])]);
    assert_eq!(eps[0].stats().suspicions, 1);
}
