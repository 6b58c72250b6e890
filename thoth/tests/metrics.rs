//! Live metrics read from a running group: three members of a dynamic group, each behind its
//! own UDP driver on loopback multicast, with two instances of one layer in their stack.
//! Read through the handle while a member casts, the counters move from read to read (the
//! driver answers between its turns, traffic goes on); each layer instance has its own
//! counts; a view change does not reset them (the ended stack's are kept); the flush and
//! view-change histograms and the driver's queue depths record; and once the driver has
//! stopped, its final metrics are still there to read.

use std::time::{Duration, Instant};
use thoth::udp::{self, Handle, Sockets, UdpConfig};
use thoth::*;

/// The group stack with the FIFO checker twice above the reliable stack: two instances of
/// one layer, each counting the same casts.
const SPEC: &str = "gms:heartbeat:chk_fifo:chk_fifo:reliable";
const CASTS: u64 = 3000;
const READ: Duration = Duration::from_secs(2);

fn member(group: std::net::SocketAddr, name: &str) -> Handle {
    let cfg = UdpConfig {
        group,
        interface: std::net::Ipv4Addr::LOCALHOST.into(),
        bind: "127.0.0.1:0".parse().unwrap(),
        ..UdpConfig::default()
    };
    let socks = Sockets::open(&cfg).expect("sockets");
    let ep = Endpoint::from_spec(Config::joining(GroupId::named(name), socks.id()), &registry(), SPEC).expect("spec");
    udp::spawn(socks, ep, &[]).expect("driver")
}

/// Waits (bounded) until every handle's view has `n` members, draining their events.
fn settle(hs: &[&Handle], n: usize) {
    let start = Instant::now();
    while !hs.iter().all(|h| h.members().len() == n) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no view of {n}: {:?}",
            hs.iter().map(|h| h.members()).collect::<Vec<_>>()
        );
        for h in hs {
            while let Some(ev) = h.try_recv() {
                if let Event::Block = ev {
                    h.block_ok().unwrap();
                }
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn counter(m: &Metrics, layer: &str, instance: u32, name: &str) -> u64 {
    m.layer(layer, instance)
        .and_then(|l| l.counter(name))
        .unwrap_or_else(|| panic!("no {layer}#{instance} {name}: {m:?}"))
}

#[test]
fn metrics_are_read_from_a_running_group_while_it_casts() {
    let group = thoth::testing::random_group();
    let name = format!("metrics-{}", std::process::id());
    let mut hs: Vec<Handle> = (0..3).map(|_| member(group, &name)).collect();
    settle(&hs.iter().collect::<Vec<_>>(), 3);
    // In rank order: member 0 coordinates, and stays coordinator when member 2 leaves.
    let view = hs[0].view();
    hs.sort_by_key(|h| view.rank_of(h.me()));

    // Member 0 casts on a thread of its own while this one reads member 1's metrics.
    let caster = {
        let h = hs[0].clone();
        std::thread::spawn(move || {
            for k in 0..CASTS {
                let start = Instant::now();
                while h.cast(Bytes::from(format!("cast {k}"))).is_err() {
                    assert!(start.elapsed() < Duration::from_secs(10), "cast {k} refused for 10 s");
                    std::thread::sleep(Duration::from_millis(1));
                }
                if k % 20 == 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        })
    };
    let mut seen = Vec::new();
    let start = Instant::now();
    while !caster.is_finished() && start.elapsed() < Duration::from_secs(30) {
        let m = hs[1].metrics(READ).expect("the driver answers within its bound");
        seen.push(counter(&m, "nak", 0, "delivered"));
        while hs[1].try_recv().is_some() {}
        std::thread::sleep(Duration::from_millis(5));
    }
    caster.join().unwrap();
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "a counter went back: {seen:?}");
    let moved = seen.windows(2).filter(|w| w[0] < w[1]).count();
    assert!(moved >= 3, "the counters did not move while the group cast: {seen:?}");
    assert!(seen.iter().any(|&d| d > 0 && d < CASTS), "no read caught the casts under way: {seen:?}");

    // Every cast delivered at member 1 (the read above drained its events).
    let start = Instant::now();
    loop {
        let m = hs[1].metrics(READ).unwrap();
        if counter(&m, "chk_fifo", 1, "checked") >= CASTS {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "not all delivered: {m:?}");
        while hs[1].try_recv().is_some() {}
        std::thread::sleep(Duration::from_millis(10));
    }

    // Two instances of one layer, each with its own key and its own counts.
    let m0 = hs[0].metrics(READ).unwrap();
    let mut keys: Vec<_> = m0.layers.iter().map(|l| l.key).collect();
    let n = keys.len();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), n, "two layer instances share a key");
    assert_eq!(counter(&m0, "chk_fifo", 0, "sent"), CASTS, "instance 0 counts its own casts only");
    assert_eq!(counter(&m0, "chk_fifo", 1, "sent"), CASTS, "instance 1 counts its own casts only");
    assert!(m0.layer("chk_fifo", 2).is_none());
    assert_eq!(counter(&m0, "nak", 0, "casts"), CASTS);
    assert!(m0.endpoint.delivered_casts >= CASTS);

    // A view change: member 2 leaves. The counters go on from where they were.
    hs[2].leave();
    settle(&[&hs[0], &hs[1]], 2);
    let m0 = hs[0].metrics(READ).unwrap();
    assert_eq!(counter(&m0, "nak", 0, "casts"), CASTS, "the last view's counts were kept");
    assert_eq!(counter(&m0, "chk_fifo", 1, "sent"), CASTS);
    assert!(m0.endpoint.views >= 2);
    for h in &hs[..2] {
        let m = h.metrics(READ).unwrap();
        let gms = m.layer("gms", 0).expect("gms");
        let flushes = gms.hist("flush_us").map_or(0, Hist::count);
        assert!(flushes >= 1, "no flush recorded at {}: {gms:?}", h.me());
        let coordinated = gms.hist("view_change_us").map_or(0, Hist::count);
        if h.me() == hs[0].me() {
            assert!(coordinated >= 1, "the coordinator recorded no view change: {gms:?}");
            assert!(counter(&m, "gms", 0, "changes") >= 1);
        }
    }
    let s = hs[0].stats();
    assert!(s.cmd_depth.count() > 0, "the driver recorded no command queue depth");
    assert!(s.event_depth.count() > 0, "the driver recorded no event queue depth");

    // After the driver stopped: its final metrics.
    let last = hs[1].clone();
    for h in hs.drain(..) {
        h.shutdown();
    }
    let m = last.metrics(READ).expect("the final metrics");
    assert!(counter(&m, "nak", 0, "delivered") >= CASTS);
}
