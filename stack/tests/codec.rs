//! bolero codec tests: the frame and every header codec round-trip, and arbitrary bytes
//! never panic a decoder or the endpoint. `cargo test` runs each with random inputs;
//! `cargo bolero test -p thoth-stack --test codec <name>` fuzzes one with coverage guidance.

use thoth_stack::frame::{FRAME_LEN, Frame, FrameView};
use thoth_stack::wire::{Reader, Writer, from_slice, to_vec, var_len};
use thoth_stack::*;

#[test]
fn frame_round_trips() {
    bolero::check!().with_type::<(bool, u64, u64, u64, u64, Vec<u8>)>().for_each(
        |(send, group, ltime, coord, src, payload)| {
            let f = Frame {
                flags: if *send { frame::FLAG_SEND } else { 0 },
                group: GroupId(*group),
                view: ViewId { ltime: *ltime, coord: EndpointId(*coord) },
                src: EndpointId(*src),
            };
            let d = f.datagram(payload);
            let v = FrameView::parse(&d).expect("a sealed frame parses");
            assert_eq!(*v.frame(), f);
            assert_eq!(v.payload(), &payload[..]);
        },
    );
}

#[test]
fn frame_parse_never_panics() {
    bolero::check!().for_each(|bytes: &[u8]| {
        if let Ok(v) = FrameView::parse(bytes) {
            assert_eq!(v.payload().len() + FRAME_LEN, bytes.len());
        }
    });
}

#[test]
fn varints_and_integers_round_trip() {
    bolero::check!().with_type::<(u64, u32, u16, u8)>().for_each(|&(a, b, c, d)| {
        let mut buf = vec![0u8; var_len(a) + 7];
        let mut w = Writer::new(&mut buf);
        w.put_var(a);
        w.put_u32(b);
        w.put_u16(c);
        w.put_u8(d);
        assert_eq!(w.written(), buf.len());
        let mut r = Reader::new(&buf);
        assert_eq!((r.var(), r.u32(), r.u16(), r.u8()), (Ok(a), Ok(b), Ok(c), Ok(d)));
        assert_eq!(r.remaining(), 0);
        assert_eq!(from_slice::<u32>(&to_vec(&b)), Ok(b));
    });
}

#[test]
fn readers_never_panic_on_arbitrary_bytes() {
    bolero::check!().for_each(|bytes: &[u8]| {
        let mut r = Reader::new(bytes);
        let before = r.remaining();
        if let Ok(v) = r.var() {
            let used = before - r.remaining();
            assert!((var_len(v)..=10).contains(&used), "{used} bytes for {v}");
        }
        let _ = r.u64();
        let _ = r.take(usize::MAX);
        let mut m = Msg::from_wire(Bytes::copy_from_slice(bytes));
        let _ = m.pop::<u32>();
        let _ = m.pop::<u64>();
        let _ = m.into_payload();
    });
}

/// Headers pushed by any sequence of layers (each pushing two, or nothing) pop back in
/// reverse, locally and off the wire.
#[test]
fn message_headers_round_trip() {
    bolero::check!().with_type::<(Vec<Option<(u8, u32)>>, Vec<u8>)>().for_each(|(hdrs, body)| {
        let hdrs = &hdrs[..hdrs.len().min(60)];
        let mut m = Msg::new(Bytes::copy_from_slice(body));
        for h in hdrs {
            if let Some((tag, v)) = h {
                m.push(tag);
                m.push(v);
            }
            m.seal();
        }
        let mut local = m.clone();
        let (head, b) = m.into_parts();
        let mut wire = Msg::from_frame(Bytes::from([&head[..], &b[..]].concat())).unwrap();
        for h in hdrs.iter().rev() {
            for m in [&mut local, &mut wire] {
                m.unseal();
                match h {
                    Some((tag, v)) => {
                        assert_eq!(m.pop::<u32>(), Ok(*v));
                        assert_eq!(m.pop::<u8>(), Ok(*tag));
                    }
                    None => assert_eq!(m.pop::<u8>(), Err(WireError::Absent)),
                }
            }
        }
        assert_eq!(local.into_payload(), &body[..]);
        assert_eq!(wire.into_payload(), &body[..]);
    });
}

/// Arbitrary bytes into an endpoint: never a panic, never a delivery, always counted.
#[test]
fn arbitrary_datagrams_never_panic_or_deliver() {
    let members = vec![EndpointId(1), EndpointId(2)];
    bolero::check!().for_each(|bytes: &[u8]| {
        let mut ep = Endpoint::new(Config::new(GroupId(3), EndpointId(1), members.clone()), |_: &View| Bare).unwrap();
        let _ = ep.poll_event();
        ep.handle_datagram(Time::ZERO, Bytes::copy_from_slice(bytes));
        let s = ep.stats().clone();
        assert_eq!(s.rx_datagrams, 1);
        if s.rx_accepted == 0 {
            assert_eq!(ep.poll_event(), None);
            assert_eq!(s.rx_rejected() + s.rx_own + s.rx_held, 1);
        }
    });
}
