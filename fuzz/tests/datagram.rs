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
        let mut sender = endpoint(2);
        sender.cast(Time::ZERO, Bytes::copy_from_slice(payload)).unwrap();
        let original = sender.poll_transmit().expect("a cast transmits").to_bytes();
        let mut d = original.to_vec();
        for &(at, xor) in edits {
            let i = at as usize % d.len();
            d[i] ^= xor;
        }
        let mut ep = endpoint(1);
        ep.handle_datagram(Time::ZERO, Bytes::from(d.clone()));
        match ep.poll_event() {
            None => assert!(d != original, "an intact datagram was not delivered"),
            Some(Event::Cast { from, data }) => {
                assert_eq!(d, original, "a changed datagram was delivered");
                assert_eq!((from, &data[..]), (EndpointId(2), &payload[..]));
            }
            Some(other) => panic!("unexpected {other:?}"),
        }
    });
}
