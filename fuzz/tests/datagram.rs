//! Hostile datagrams into a full endpoint running the default stack.
//!
//! `cargo test -p thoth-fuzz` runs each target on random inputs; `cargo bolero test -p
//! thoth-fuzz --test datagram <target>` fuzzes it.

use thoth::*;

fn endpoint(me: u64) -> Endpoint {
    let members = vec![EndpointId(1), EndpointId(2), EndpointId(3)];
    let mut ep =
        Endpoint::from_spec(Config::new(GroupId::named("fuzz"), EndpointId(me), members), &registry(), DEFAULT_STACK)
            .expect("the default stack builds");
    assert!(matches!(ep.poll_event(), Some(Event::View(_))));
    ep
}

#[test]
fn arbitrary_bytes() {
    bolero::check!().for_each(|bytes: &[u8]| {
        let mut ep = endpoint(1);
        ep.handle_datagram(Time::ZERO, Bytes::copy_from_slice(bytes));
        assert_eq!(ep.stats().rx_datagrams, 1);
        assert_eq!(ep.stats().rx_accepted, 0, "random bytes passed the frame check");
        assert_eq!(ep.poll_event(), None);
    });
}

/// A real datagram from a peer, with arbitrary bytes changed: delivered intact or not at all.
#[test]
fn mutated_real_datagrams() {
    bolero::check!().with_type::<(Vec<u8>, Vec<(u16, u8)>)>().for_each(|(payload, edits)| {
        mutated(endpoint, payload, edits, 0);
    });
}

/// A cast of `payload` from member 2 of `make`'s group, with `edits` and then (by `cut`) cut
/// short or lengthened by a byte, into member 1: delivered intact or not at all.
fn mutated(make: fn(u64) -> Endpoint, payload: &[u8], edits: &[(u16, u8)], cut: u8) -> Endpoint {
    let mut sender = make(2);
    sender.cast(Time::ZERO, Bytes::copy_from_slice(payload)).unwrap();
    let original = sender.poll_transmit().expect("a cast transmits").to_bytes();
    let mut d = original.to_vec();
    for &(at, xor) in edits {
        let i = at as usize % d.len();
        d[i] ^= xor;
    }
    match cut % 4 {
        1 => d.truncate(d.len().saturating_sub(usize::from(cut))),
        2 => d.push(cut),
        _ => {}
    }
    let mut ep = make(1);
    ep.handle_datagram(Time::ZERO, Bytes::from(d.clone()));
    match ep.poll_event() {
        None => assert!(d != original, "an intact datagram was not delivered"),
        Some(Event::Cast { from, data }) => {
            assert_eq!(d, original, "a changed datagram was delivered");
            assert_eq!((from, &data[..]), (EndpointId(2), payload));
        }
        Some(other) => panic!("unexpected {other:?}"),
    }
    ep
}

/// A frame of `group` from `src` in view `view` with a sound CRC (flags: gossip, send, or a
/// cast).
fn sealed(flags: u8, group: GroupId, view: ViewId, src: EndpointId, body: &[u8]) -> Bytes {
    Bytes::from(thoth::frame::Frame { flags, group, view, src }.datagram(body))
}

/// Sound frames with arbitrary membership traffic (gossip from strangers, and in-view
/// control from a member) into a member of a dynamic group: nothing panics, nothing is
/// delivered to the application, and every view installed holds this member. (A `Join`
/// may well make it add the stranger: that is what a join is.)
#[test]
fn arbitrary_membership_traffic() {
    use thoth::frame::{FLAG_GOSSIP, FLAG_SEND};
    bolero::check!().with_type::<Vec<(u8, Vec<u8>)>>().for_each(|msgs| {
        let group = GroupId::named("fuzz-gms");
        let me = EndpointId(1);
        let mut ep = Endpoint::from_spec(Config::joining(group, me), &registry(), "group").expect("group builds");
        let mut now = Time::ZERO;
        while ep.view().id.ltime == 0 {
            now = ep.poll_timeout().expect("discovery has a timer");
            ep.handle_timeout(now);
        }
        for (i, (kind, body)) in msgs.iter().enumerate() {
            // Half the time the body starts with gms's own tags, so it gets past the header.
            let mut b = match kind % 4 {
                0 => vec![3u8], // Hdr::Gossip
                1 => vec![1u8], // Hdr::Ctl
                _ => Vec::new(),
            };
            b.extend_from_slice(body);
            let flags = if kind & 4 == 0 { FLAG_GOSSIP } else { FLAG_SEND };
            let src = EndpointId(2 + u64::from(*kind >> 6));
            let view = ep.view().id;
            ep.handle_datagram(now, sealed(flags, group, view, src, &b));
            now += std::time::Duration::from_millis(1 + i as u64 % 50);
            ep.handle_timeout(now);
            while ep.poll_transmit().is_some() {}
        }
        while let Some(ev) = ep.poll_event() {
            match ev {
                Event::View(v) => assert!(v.members.contains(&me), "a view without this member: {v:?}"),
                Event::Cast { .. } | Event::Send { .. } | Event::State { .. } => panic!("delivered {ev:?}"),
                _ => {}
            }
        }
    });
}

/// A member of the fixed view {1, 2, 3} running the default stack, sealed under one key.
fn secured(me: u64) -> Endpoint {
    let members = vec![EndpointId(1), EndpointId(2), EndpointId(3)];
    let cfg = Config::new(GroupId::named("fuzz"), EndpointId(me), members)
        .secured(Security::Shared { secret: GroupSecret::new([3; 32]), incarnation: me });
    let mut ep = Endpoint::from_spec(cfg, &registry(), DEFAULT_STACK).expect("the default stack builds");
    assert!(matches!(ep.poll_event(), Some(Event::View(_))));
    ep
}

/// Arbitrary bytes into a secured endpoint, alone and behind a real sealed header (so that
/// they reach the tag check): nothing delivered, nothing accepted, no panic.
#[test]
fn secured_arbitrary_bytes() {
    let mut sender = secured(2);
    sender.cast(Time::ZERO, Bytes::from_static(b"real")).unwrap();
    let real = sender.poll_transmit().expect("a cast transmits").to_bytes();
    let header = &real[..thoth::frame::SEALED_LEN];
    bolero::check!().for_each(|bytes: &[u8]| {
        let mut ep = secured(1);
        ep.handle_datagram(Time::ZERO, Bytes::copy_from_slice(bytes));
        ep.handle_datagram(Time::ZERO, Bytes::from([header, bytes].concat()));
        assert_eq!(ep.stats().rx_datagrams, 2);
        assert_eq!(ep.stats().rx_accepted, 0, "random bytes opened");
        assert_eq!(ep.stats().rx_bad_layers, 0, "random bytes got past the tag to the layers");
        assert_eq!(ep.poll_event(), None);
    });
}

/// A real sealed datagram with arbitrary bytes changed, cut or lengthened: delivered intact
/// or not at all (every byte is authenticated, so a changed one is never delivered).
#[test]
fn secured_mutated_datagrams() {
    bolero::check!().with_type::<(Vec<u8>, Vec<(u16, u8)>, u8)>().for_each(|(payload, edits, cut)| {
        let ep = mutated(secured, payload, edits, *cut);
        // Refused before the layers saw it: the tag, not the layers' parsing, stops it.
        assert_eq!(ep.stats().rx_bad_layers, 0, "a changed datagram reached the layers");
    });
}

/// A joining member of the group under member key pairs, keys 1 and 2 listed (so that a
/// datagram's one tag is for the other: every byte of it is authenticated for its receiver).
fn paired(me: u64) -> Endpoint {
    let identity = |k: u64| Identity::new([k as u8; 32]);
    let allow = AllowList::new([identity(1).public(), identity(2).public()]).expect("a list");
    let security =
        Security::KeyPairs { identity: identity(me), allow, incarnation: me, seed: GroupSecret::new([me as u8; 32]) };
    let cfg = Config::joining(GroupId::named("fuzz"), EndpointId(me)).secured(security);
    Endpoint::from_spec(cfg, &registry(), "group").expect("the group stack builds")
}

/// Member key pairs: a real gossip datagram (a joiner's hello, authenticated for the other
/// key) with arbitrary bytes changed, cut or lengthened is taken intact or not at all; and
/// arbitrary bytes behind its header are never taken.
#[test]
fn key_pair_gossip_mutated_or_arbitrary() {
    let mut sender = paired(2);
    let mut hello = None;
    for _ in 0..10 {
        let t = sender.poll_timeout().unwrap_or(Time::ZERO);
        sender.handle_timeout(t);
        sender.end_turn(t);
        if let Some(tx) = sender.poll_transmit() {
            hello = Some(tx.to_bytes());
            break;
        }
    }
    let hello = hello.expect("a joiner says hello");
    let header = &hello[..thoth::frame::SEALED_LEN];
    bolero::check!().with_type::<(Vec<(u16, u8)>, u8, Vec<u8>)>().for_each(|(edits, cut, bytes)| {
        let mut d = hello.to_vec();
        for &(at, xor) in edits {
            let i = at as usize % d.len();
            d[i] ^= xor;
        }
        match cut % 4 {
            1 => d.truncate(d.len().saturating_sub(usize::from(*cut))),
            2 => d.push(*cut),
            _ => {}
        }
        let mut ep = paired(1);
        ep.handle_datagram(Time::ZERO, Bytes::from(d.clone()));
        assert_eq!(ep.stats().rx_gossip, u64::from(d[..] == hello[..]), "taken: {}", d[..] == hello[..]);
        ep.handle_datagram(Time::ZERO, Bytes::from([header, bytes].concat()));
        assert!(ep.stats().rx_gossip <= 1, "arbitrary bytes taken");
        assert_eq!(ep.stats().rx_bad_layers, 0, "a changed datagram reached the layers");
    });
}
