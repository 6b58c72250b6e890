//! Hot-path micro-benchmarks: the cost the stack adds per message, without sockets.
//!
//! `cargo bench -p thoth-benches` prints ns per operation, the median of several rounds:
//! frame seal and check of a 1 KB datagram, and a 1 KB message through a bare endpoint on
//! the way out (`cast` to `poll_transmit`) and on the way in (`handle_datagram` to
//! `poll_event`). Throughput claims come from `thoth-perf`, not from here.

use std::hint::black_box;
use std::time::Instant;
use thoth::frame::{FRAME_LEN, Frame, FrameView, seal};
use thoth::*;

const ROUNDS: usize = 7;

fn bench(name: &str, iters: u64, mut f: impl FnMut()) {
    let mut per_op: Vec<f64> = (0..ROUNDS)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..iters {
                f();
            }
            t.elapsed().as_nanos() as f64 / iters as f64
        })
        .collect();
    per_op.sort_by(f64::total_cmp);
    println!("{name:<40} {:>9.1} ns/op (median of {ROUNDS} x {iters})", per_op[ROUNDS / 2]);
}

fn endpoint(me: u64) -> Endpoint {
    let members = vec![EndpointId(1), EndpointId(2), EndpointId(3)];
    let mut ep =
        Endpoint::from_spec(Config::new(GroupId::named("bench"), EndpointId(me), members), &registry(), "bare")
            .expect("bare builds");
    while ep.poll_event().is_some() {}
    ep
}

fn main() {
    let payload = Bytes::from(vec![7u8; 1024]);
    let frame = Frame {
        flags: 0,
        group: GroupId::named("bench"),
        view: ViewId { ltime: 1, coord: EndpointId(1) },
        src: EndpointId(2),
    };
    let mut datagram = vec![0u8; FRAME_LEN];
    frame.write((&mut datagram[..]).try_into().expect("frame-sized"));
    seal(&mut datagram, &payload);
    datagram.extend_from_slice(&payload);

    bench("frame seal (1 KB)", 200_000, || {
        let mut head = [0u8; FRAME_LEN];
        frame.write(&mut head);
        seal(&mut head, black_box(&payload));
        black_box(head);
    });
    bench("frame check (1 KB)", 200_000, || {
        black_box(FrameView::parse(black_box(&datagram)).is_ok());
    });

    let mut tx = endpoint(2);
    bench("bare endpoint: cast -> transmit (1 KB)", 200_000, || {
        tx.cast(Time::ZERO, payload.clone()).expect("cast");
        black_box(tx.poll_transmit());
        black_box(tx.poll_event());
    });

    let mut rx = endpoint(1);
    let wire = Bytes::from(datagram);
    bench("bare endpoint: datagram -> event (1 KB)", 200_000, || {
        rx.handle_datagram(Time::ZERO, wire.clone());
        black_box(rx.poll_event());
    });
    assert_eq!(rx.stats().rx_accepted, rx.stats().rx_datagrams, "benchmark datagrams were rejected");
}
