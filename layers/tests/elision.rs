//! What a cast costs on the wire through the `reliable` stack: a layer with nothing to say
//! costs nothing (presence bits instead of a tag per layer). Exact bytes, so a layer that
//! starts pushing a tag again shows here.

use thoth_layers::{RELIABLE, registry};
use thoth_stack::frame::FRAME_LEN;
use thoth_stack::{Bytes, Config, Endpoint, EndpointId, Event, GroupId, Time};

fn pair() -> (Endpoint, Endpoint) {
    let ids = vec![EndpointId(1), EndpointId(2)];
    let ep = |me| Endpoint::from_spec(Config::new(GroupId(3), me, ids.clone()), &registry(), RELIABLE).unwrap();
    (ep(EndpointId(1)), ep(EndpointId(2)))
}

/// Casts `n` payloads of `len` bytes in one turn; returns the bytes past the frame of each
/// datagram, after checking the other member delivers them all.
fn turn(n: usize, len: usize) -> Vec<usize> {
    let (mut a, mut b) = pair();
    for k in 0..n {
        a.cast(Time::ZERO, Bytes::from(vec![k as u8; len])).unwrap();
    }
    a.end_turn(Time::ZERO);
    let mut sizes = Vec::new();
    while let Some(t) = a.poll_transmit() {
        sizes.push(t.len() - FRAME_LEN);
        b.handle_datagram(Time::ZERO, t.to_bytes());
    }
    let got = core::iter::from_fn(|| b.poll_event()).filter(|e| matches!(e, Event::Cast { .. })).count();
    assert_eq!(got, n, "every cast delivered");
    sizes
}

#[test]
fn a_cast_alone_carries_three_bytes_of_headers() {
    // Presence bits (one byte: six layers and the sentinel), then nak's `Data { seq: 0 }`
    // (tag and varint). frag, flow, stable, pt2pt and pack say nothing. Before elision every
    // layer wrote a tag: seven bytes.
    assert_eq!(turn(1, 100), [3 + 100]);
}

#[test]
fn a_packed_cast_carries_three_bytes_of_headers_and_its_length() {
    // The first cast of the turn goes alone; the nine after it are packed: `Many { count: 9 }`
    // (two bytes) and the datagram's presence bits (one), then per cast its length (one
    // byte under 128), its presence bits (one) and nak's `Data { seq }` (two). Before elision:
    // length, five tags and the sequence number, seven bytes per cast.
    let sizes = turn(10, 100);
    assert_eq!(sizes, [3 + 100, 1 + 2 + 9 * (1 + 1 + 2 + 100)]);
}
