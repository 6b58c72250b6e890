//! A flood of forged datagrams at a secured group over real sockets: three members of a
//! dynamic group (the `group` stack, sealed under one key, each behind its own UDP driver
//! on loopback multicast) cast a stream while a forger who overhears the group sends
//! 200,000 datagrams in 10 s — to the group and to each member — of four kinds: unsealed
//! frames with a member's source, the view's id and a correct CRC; real sealed datagrams
//! with a byte changed; real sealed datagrams replayed (never to their own sender); and
//! random bytes. The members keep delivering every real cast and nothing else, the view
//! stays, the process's memory stays within a bound, and at each member the datagrams
//! refused add up to at least what the forger sent it (the kernel may drop some under the
//! load, never the endpoint let one through).

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};
use thoth::frame::{Frame, FrameView};
use thoth::udp::{self, Handle, Sockets, UdpConfig, endpoint_addr};
use thoth::*;

const FORGED: u64 = 200_000;
const FLOOD: Duration = Duration::from_secs(10);
const CASTS: u64 = 1000;

fn rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// A member of the group on loopback multicast.
fn member(group: SocketAddr, name: &str, secret: &GroupSecret) -> Handle {
    let cfg = UdpConfig {
        group,
        interface: Ipv4Addr::LOCALHOST.into(),
        bind: "127.0.0.1:0".parse().unwrap(),
        ..UdpConfig::default()
    };
    let socks = Sockets::open(&cfg).expect("sockets");
    let config = Config::joining(GroupId::named(name), socks.id()).secured(Security::shared(secret.clone()));
    let ep = Endpoint::from_spec(config, &registry(), "group").expect("the group stack builds");
    udp::spawn(socks, ep, &[]).expect("driver")
}

/// A socket that hears the group's multicast, as any host on the segment can.
fn sniffer(group: SocketAddr) -> UdpSocket {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
    s.set_reuse_address(true).unwrap();
    s.set_reuse_port(true).unwrap();
    s.bind(&SockAddr::from(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, group.port()))).unwrap();
    let SocketAddr::V4(g) = group else { unreachable!() };
    s.join_multicast_v4(g.ip(), &Ipv4Addr::LOCALHOST).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    s.into()
}

/// xorshift, for the forger's choices.
fn next(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

#[test]
fn a_flood_of_forgeries_changes_nothing_a_member_delivers() {
    let group = thoth::testing::random_group();
    let name = format!("flood-{}", std::process::id());
    let secret = GroupSecret::generate();
    let hs: Vec<Handle> = (0..3).map(|_| member(group, &name, &secret)).collect();
    let start = Instant::now();
    while !hs.iter().all(|h| h.members().len() == 3) {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "no view of three: {:?}",
            hs.iter().map(|h| h.members()).collect::<Vec<_>>()
        );
        for h in &hs {
            while h.try_recv().is_some() {}
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let view = hs[0].view();
    let ids: Vec<EndpointId> = hs.iter().map(Handle::me).collect();
    // Overhear real datagrams while the members cast a little.
    let ear = sniffer(group);
    for (i, h) in hs.iter().enumerate() {
        for k in 0..20 {
            h.cast(Bytes::from(format!("warm {i} {k}"))).unwrap();
        }
    }
    let mut heard: Vec<(EndpointId, Vec<u8>)> = Vec::new();
    let mut buf = vec![0u8; 65_536];
    let listen = Instant::now();
    while heard.len() < 200 && listen.elapsed() < Duration::from_secs(5) {
        if let Ok(n) = ear.recv(&mut buf)
            && let Ok(v) = FrameView::parse(&buf[..n])
            && v.frame().group == GroupId::named(&name)
            && v.frame().is_sealed()
        {
            heard.push((v.frame().src, buf[..n].to_vec()));
        }
    }
    assert!(heard.len() >= 50, "overheard only {}", heard.len());
    let before: Vec<Stats> = hs.iter().map(|h| h.stats().endpoint).collect();
    let rss_before = rss_kb();
    // The stream, on threads of their own, while the forger floods.
    let casters: Vec<_> = hs
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let h = h.clone();
            std::thread::spawn(move || {
                for k in 0..CASTS {
                    // Flow control may hold a cast back a while: wait, do not drop it.
                    while h.cast(Bytes::from(format!("real {i} {k}"))).is_err() {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    std::thread::sleep(FLOOD / CASTS as u32);
                }
            })
        })
        .collect();
    let out = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addrs: Vec<SocketAddr> = ids.iter().map(|&id| endpoint_addr(id).expect("an IPv4 member")).collect();
    let mut to_member = [0u64; 3];
    let mut to_group = 0u64;
    let mut seed = 0x9e37_79b9_7f4a_7c15u64 ^ u64::from(std::process::id());
    let flood_start = Instant::now();
    for n in 0..FORGED {
        // Paced: n datagrams by n/FORGED of the flood's time.
        let due = FLOOD.mul_f64(n as f64 / FORGED as f64);
        if let Some(wait) = due.checked_sub(flood_start.elapsed()) {
            std::thread::sleep(wait);
        }
        let r = next(&mut seed);
        let (src, real) = &heard[(r >> 8) as usize % heard.len()];
        let d: Vec<u8> = match r % 4 {
            0 => {
                // Unsealed, from a member, in the view, its CRC right.
                let f =
                    Frame { flags: 0, group: GroupId::named(&name), view: view.id, src: ids[(r >> 40) as usize % 3] };
                f.datagram(&[&[1u8][..], b"FORGED"].concat())
            }
            1 => {
                let mut d = real.clone();
                // A bit flipped past the magic, version and flags (which keep it sealed).
                let at = 4 + (r >> 16) as usize % (d.len() - 4);
                d[at] ^= 1 << ((r >> 32) % 8);
                d
            }
            2 => real.clone(),
            _ => (0..(r >> 20) % 1500).map(|_| next(&mut seed) as u8).collect(),
        };
        // Half to the group, half to one member; one made from a real datagram never to its
        // own sender (it would count it as its own, looped back), so to the two others.
        let from_real = r % 4 == 1 || r % 4 == 2;
        let pick = (r >> 48) as usize % 3;
        if r & (1 << 62) != 0 && !(from_real && ids[pick] == *src) {
            out.send_to(&d, addrs[pick]).unwrap();
            to_member[pick] += 1;
        } else if from_real {
            for (m, a) in addrs.iter().enumerate().filter(|&(m, _)| ids[m] != *src) {
                out.send_to(&d, a).unwrap();
                to_member[m] += 1;
            }
        } else {
            out.send_to(&d, group).unwrap();
            to_group += 1;
        }
    }
    for c in casters {
        c.join().unwrap();
    }
    // Every real cast delivered at every member, and nothing else.
    let want: BTreeSet<String> = (0..3).flat_map(|i| (0..CASTS).map(move |k| format!("real {i} {k}"))).collect();
    let mut got: Vec<BTreeSet<String>> = vec![BTreeSet::new(); 3];
    let deadline = Instant::now() + Duration::from_secs(20);
    while got.iter().any(|g| g.len() < want.len()) && Instant::now() < deadline {
        for (i, h) in hs.iter().enumerate() {
            while let Some(e) = h.try_recv() {
                if let Event::Cast { data, .. } = e {
                    let text = String::from_utf8_lossy(&data).to_string();
                    assert!(!text.contains("FORGED"), "member {i} delivered a forgery");
                    if text.starts_with("real") {
                        got[i].insert(text);
                    }
                }
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let rss_growth = rss_kb().saturating_sub(rss_before);
    for (i, h) in hs.iter().enumerate() {
        assert_eq!(got[i].len(), want.len(), "member {i} delivered {} of {} real casts", got[i].len(), want.len());
        assert_eq!(*h.view(), *view, "member {i}: the view changed under the flood");
        let s = h.stats().endpoint;
        let b = &before[i];
        let refused = s.rx_rejected() - b.rx_rejected();
        let sent = to_group + to_member[i];
        eprintln!(
            "member {i}: {sent} forged sent to it, {refused} refused (unsealed {}, bad tag {}, replay {}, stale {}, other view {}, malformed {})",
            s.rx_unsealed - b.rx_unsealed,
            s.rx_bad_tag - b.rx_bad_tag,
            s.rx_replay - b.rx_replay,
            s.rx_stale - b.rx_stale,
            s.rx_other_view - b.rx_other_view,
            (s.rx_truncated + s.rx_bad_magic + s.rx_bad_version + s.rx_bad_flags + s.rx_bad_crc)
                - (b.rx_truncated + b.rx_bad_magic + b.rx_bad_version + b.rx_bad_flags + b.rx_bad_crc),
        );
        assert!(refused <= sent, "member {i} refused {refused} of {sent}: it refused real datagrams");
        assert!(refused as f64 >= 0.99 * sent as f64, "member {i} refused {refused} of {sent} forged");
        // Every datagram in one bucket (one held for a later view, in a second when that
        // view came and it was taken).
        let buckets =
            s.rx_accepted + s.rx_rejected() + s.rx_own + s.rx_after_exit + s.rx_gossip + s.rx_held + s.rx_hold_overflow;
        assert!((s.rx_datagrams..=s.rx_datagrams + s.rx_held).contains(&buckets), "member {i}: {s:?}");
    }
    eprintln!("RSS grew {rss_growth} kB under the flood");
    assert!(rss_growth < 64 << 10, "RSS grew {rss_growth} kB");
    for h in hs {
        h.shutdown();
    }
}
