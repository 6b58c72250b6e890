//! Shutting down under flow control over real UDP sockets (loopback multicast): a member
//! whose application stopped reading holds a sender's casts (`flow:stable:nak`), a thread of
//! the sender waits in `Handle::cast` (`FlowPolicy::Block`), and both the sender's
//! `shutdown` and the drop of the stalled reader's last handle must return promptly, with
//! the driver really ended (its socket closed) and the waiting thread released with
//! `Stopped`. The same inline: a member that is not called holds the sender's casts, a cast
//! gives up after `block_timeout`, and shutdown and the drop are prompt. Every wait is
//! bounded; every driver is stopped.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};
use thoth_layers::flow::{Config, Flow};
use thoth_layers::nak::{self, Nak};
use thoth_layers::stable::{self, Stable};
use thoth_stack::testing::random_group;
use thoth_stack::udp::{self, FlowPolicy, Handle, HandleError, Sockets, UdpConfig};
use thoth_stack::*;

const MS: Duration = Duration::from_millis(1);
/// Far above one turn of a driver under any load, below `udp::SHUTDOWN_WAIT`: a driver that
/// did not end by itself (and was given up on) fails the test.
const PROMPT: Duration = Duration::from_millis(500);

/// Two members of one group (`tag` tells it apart) on sockets opened with `cfg`, with flow
/// control of 16 KiB of credit, each run by `run` (a driver thread, or inline); and their
/// unicast addresses, which are free again once the member has ended.
fn members<T>(
    cfg: &UdpConfig,
    tag: u64,
    run: impl Fn(Sockets, Endpoint, &[SocketAddr]) -> T,
) -> (Vec<T>, Vec<SocketAddr>) {
    let socks: Vec<Sockets> = (0..2).map(|_| Sockets::open(cfg).expect("open sockets")).collect();
    let addrs: Vec<SocketAddr> = socks.iter().map(|s| s.local_addr()).collect();
    let ids: Vec<EndpointId> = socks.iter().map(|s| s.id()).collect();
    let group = GroupId(u64::from(addrs[0].port()) << 16 | tag);
    let fc = Config { credits: 16 * 1024, threshold: 0.25, req_interval: 5 * MS, ..Config::default() };
    let ms = socks
        .into_iter()
        .map(|s| {
            let ep = Endpoint::new(thoth_stack::Config::new(group, s.id(), ids.clone()), stack(fc.clone()))
                .expect("endpoint");
            run(s, ep, &addrs)
        })
        .collect();
    (ms, addrs)
}

fn stack(fc: Config) -> impl Fn(&View) -> Stack + Clone + Send + 'static {
    move |_view: &View| {
        let nc = nak::Config { nak_delay: MS, nak_interval: 3 * MS, rtx_interval: MS, ..nak::Config::default() };
        Stack::builder()
            .push(Flow::new(fc.clone()))
            .push(Stable::new(stable::Config { period: 3 * MS }))
            .push(Nak::new(nc))
            .build()
            .expect("stack")
    }
}

#[test]
fn shutdown_and_drop_are_prompt_while_a_stalled_reader_holds_the_casts() {
    let cfg = UdpConfig {
        group: random_group(),
        flow: FlowPolicy::Block,
        block_timeout: Duration::MAX,
        events: 32,
        queue: 64,
        ..UdpConfig::default()
    };
    let (mut handles, addrs): (Vec<Handle>, _) =
        members(&cfg, 9, |s, ep, addrs| udp::spawn(s, ep, addrs).expect("spawn"));
    let (reader, sender) = (handles.pop().unwrap(), handles.pop().unwrap());

    // The reader's application takes nothing; the sender casts until it waits for good.
    let accepted = Arc::new(AtomicUsize::new(0));
    let casting = {
        let (h, accepted) = (sender.clone(), accepted.clone());
        thread::spawn(move || {
            for k in 0..1_000_000u32 {
                if let Err(e) = h.cast(Bytes::from(vec![k as u8; 500])) {
                    return e;
                }
                accepted.fetch_add(1, Ordering::SeqCst);
            }
            panic!("a million casts accepted while the reader read nothing");
        })
    };
    let (start, mut last, mut since) = (Instant::now(), 0, Instant::now());
    let stalled = loop {
        while sender.try_recv().is_some() {} // the sender's own application keeps reading
        let now = accepted.load(Ordering::SeqCst);
        if now != last {
            (last, since) = (now, Instant::now());
        } else if since.elapsed() > Duration::from_millis(300) {
            break true;
        }
        if start.elapsed() > Duration::from_secs(10) {
            break false;
        }
        thread::sleep(MS);
    };
    assert!(stalled, "the sender was never held back: {last} casts accepted in 10 s");
    assert!(!casting.is_finished(), "the casting thread gave up: {:?}", casting.join());
    assert_eq!(sender.try_cast(Bytes::new()), Err(HandleError::WouldBlock), "flow control holds the casts");
    println!("held after {last} casts accepted");

    let t = Instant::now();
    sender.shutdown();
    let took = t.elapsed();
    println!("the sender's shutdown took {took:?}");
    assert!(took < PROMPT, "shutdown while flow control holds casts took {took:?}");
    assert!(UdpSocket::bind(addrs[0]).is_ok(), "shutdown returned before the driver ended");
    assert_eq!(casting.join().expect("casting thread"), HandleError::Stopped, "the waiting cast is released");

    // The stalled reader: its event queue is full and its driver has stopped reading.
    assert!(reader.stats().events_full > 0, "the reader's event queue never filled: {:?}", reader.stats());
    let t = Instant::now();
    drop(reader);
    let took = t.elapsed();
    println!("dropping the stalled reader took {took:?}");
    assert!(took < PROMPT, "dropping a handle whose application stopped reading took {took:?}");
    assert!(UdpSocket::bind(addrs[1]).is_ok(), "the drop returned before the driver ended");
}

#[test]
fn inline_a_cast_gives_up_and_shutdown_and_drop_are_prompt_while_a_member_not_called_holds_the_casts() {
    const LIMIT: Duration = Duration::from_millis(200);
    let cfg =
        UdpConfig { group: random_group(), flow: FlowPolicy::Block, block_timeout: LIMIT, ..UdpConfig::default() };
    let (mut ms, addrs) = members(&cfg, 10, |s, ep, addrs| udp::inline(s, ep, addrs).expect("inline"));
    let (reader, mut sender) = (ms.pop().unwrap(), ms.pop().unwrap());
    // The reader is never called. The sender casts until a cast waits its full bound.
    let mut accepted = 0;
    let refused = loop {
        let t = Instant::now();
        match sender.cast(Bytes::from(vec![accepted as u8; 500])) {
            Ok(()) => accepted += 1,
            Err(e) => break (e, t.elapsed()),
        }
        assert!(accepted < 1_000_000, "a million casts accepted while the reader was not called");
    };
    println!("held after {accepted} casts accepted; the next gave up after {:?}", refused.1);
    assert_eq!(refused.0, HandleError::WouldBlock);
    assert!(refused.1 >= LIMIT && refused.1 < LIMIT + PROMPT, "the cast gave up after {:?}", refused.1);
    let t = Instant::now();
    sender.shutdown();
    assert!(t.elapsed() < PROMPT && UdpSocket::bind(addrs[0]).is_ok(), "the sender's shutdown");
    let t = Instant::now();
    drop(reader);
    assert!(t.elapsed() < PROMPT && UdpSocket::bind(addrs[1]).is_ok(), "the reader's drop");
}
