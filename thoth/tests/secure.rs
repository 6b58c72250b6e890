//! Frame protection end to end: secured groups form and deliver, and every datagram crafted
//! outside the stack to get past it — forged, altered, cut, replayed within a view or from
//! an earlier one, sealed under another group's key, unsealed — is dropped, counted under
//! its reason, and never delivered.
//!
//! `THOTH_SIM_SEEDS=N` runs more seeds; `THOTH_SIM_SEED=S` replays one.

use thoth::frame::{FLAG_GOSSIP, FLAG_SEND, FRAME_LEN, Frame, SEALED_LEN, Seal, write_sealed};
use thoth::secure::{TAG_LEN, ViewKeys, seal};
use thoth::sim::{Link, Sim, Spawn, check_seeds};
use thoth::*;

const SECRET: [u8; 32] = [7; 32];
const G: GroupId = GroupId(0x5ec);

fn shared(secret: [u8; 32], incarnation: u64) -> Security {
    Security::Shared { secret: GroupSecret::new(secret), incarnation }
}

/// A datagram sealed outside the stack under `secret`'s keys: `flags` (gossip: the group's
/// gossip keys; else the view's), from `src` in its `incarnation`, packet number `pn`, with
/// `plain` (layer headers and payload) inside.
#[allow(clippy::too_many_arguments)]
fn forge(
    secret: [u8; 32],
    group: GroupId,
    flags: u8,
    view: ViewId,
    src: EndpointId,
    incarnation: u64,
    pn: u64,
    plain: &[u8],
) -> Bytes {
    let secret = GroupSecret::new(secret);
    let keys = if flags & FLAG_GOSSIP != 0 {
        ViewKeys::gossip(&secret, group)
    } else {
        ViewKeys::derive(&secret, group, view)
    };
    let mut head = [0u8; SEALED_LEN];
    write_sealed(&Frame { flags, group, view, src }, Seal { incarnation, pn }, &mut head);
    let mut body = plain.to_vec();
    let tag = seal(&keys.sender(src, incarnation), pn, &head, &mut body);
    Bytes::from([&head[..], &body, &tag].concat())
}

/// An unsealed datagram with a correct CRC, as a forger builds one.
fn unsealed(flags: u8, view: ViewId, src: EndpointId, plain: &[u8]) -> Bytes {
    Bytes::from(Frame { flags, group: G, view, src }.datagram(plain))
}

/// A member of the fixed view {1, 2, 3} with no layers (what opens is delivered as is).
fn bare(me: u64, security: Security) -> Endpoint<Bare> {
    let members = vec![EndpointId(1), EndpointId(2), EndpointId(3)];
    let mut ep = Endpoint::new(Config::new(G, EndpointId(me), members).secured(security), |_: &View| Bare).unwrap();
    assert!(matches!(ep.poll_event(), Some(Event::View(_))));
    ep
}

/// The reason counters of a receiver, in one line.
fn reasons(s: &Stats) -> [u64; 9] {
    [
        s.rx_truncated,
        s.rx_unsealed,
        s.rx_no_key,
        s.rx_bad_tag,
        s.rx_replay,
        s.rx_stale,
        s.rx_other_view,
        s.rx_own,
        s.rx_unknown_src,
    ]
}

/// Every rejection reason, each with datagrams crafted outside the stack, at a member whose
/// view the forger knows in full; a correctly sealed one (the harness's control) is
/// delivered, so what is refused is refused for its reason. Only what was delivered is
/// sound (`Rx::Sound`: what the driver learns routes from).
#[test]
fn every_crafted_datagram_is_refused_for_its_reason() {
    let mut rx = bare(1, shared(SECRET, 11));
    let view = rx.view().id;
    let (two, inc) = (EndpointId(2), 22);
    // Payloads past the frame: presence bits 1 (no layer headers), then the payload.
    let plain = |text: &str| [&[1u8][..], text.as_bytes()].concat();
    let mut expect = [0u64; 9];
    let mut deliver = |rx: &mut Endpoint<Bare>, d: Bytes, reason: Option<usize>, what: &str| {
        // Only a datagram that opened may teach the driver where its sender lives.
        let sound = rx.handle_datagram(Time::ZERO, d) != Rx::Unsound;
        assert_eq!(sound, reason.is_none(), "{what}: sound {sound}");
        match reason {
            None => match rx.poll_event() {
                Some(Event::Cast { from, .. } | Event::Send { from, .. }) => assert_eq!(from, two, "{what}"),
                other => panic!("{what}: not delivered ({other:?})"),
            },
            Some(i) => {
                expect[i] += 1;
                assert_eq!(rx.poll_event(), None, "{what}: delivered");
            }
        }
        assert_eq!(reasons(rx.stats()), expect, "{what}: counted under its reason");
    };
    let good = forge(SECRET, G, 0, view, two, inc, 5, &plain("control"));
    deliver(&mut rx, good.clone(), None, "a correctly sealed cast");
    deliver(&mut rx, forge(SECRET, G, FLAG_SEND, view, two, inc, 6, &plain("send")), None, "a correctly sealed send");
    // Forged source with a recomputed CRC: not sealed.
    deliver(&mut rx, unsealed(0, view, two, &plain("forged")), Some(1), "an unsealed cast with a good CRC");
    deliver(&mut rx, unsealed(FLAG_GOSSIP, view, two, &[0]), Some(1), "unsealed gossip");
    // Every single bit of a sealed datagram past the magic, version and flags (those fail
    // the frame check, or change what the frame is): a bad tag.
    let fresh = forge(SECRET, G, 0, view, two, inc, 7, &plain("bits"));
    for bit in 32..fresh.len() * 8 {
        let mut d = fresh.to_vec();
        d[bit / 8] ^= 1 << (bit % 8);
        let field = |at: usize| u64::from_le_bytes(d[at..at + 8].try_into().unwrap());
        let (ltime, coord, src, pn) = (field(16), EndpointId(field(24)), EndpointId(field(32)), field(48));
        let reason = match bit / 8 {
            // Another group's: counted as such, below.
            8..16 => None,
            // An earlier view's, or a concurrent one's: not opened.
            16..32 if ltime < view.ltime || (ltime == view.ltime && coord != view.coord) => Some(6),
            32..40 if src == EndpointId(1) => Some(7),
            32..40 if rx.view().rank_of(src).is_none() => Some(8),
            // A number opened already: refused by the window before the tag is looked at.
            48..56 if pn == 5 || pn == 6 => Some(4),
            // A later view's (checked before it would be held), another member's, another
            // incarnation's, another number's, or the body's or tag's: the tag.
            _ => Some(3),
        };
        match reason {
            Some(r) => deliver(&mut rx, Bytes::from(d), Some(r), &format!("bit {bit} flipped")),
            None => {
                rx.handle_datagram(Time::ZERO, Bytes::from(d));
                assert_eq!(rx.poll_event(), None, "bit {bit} flipped");
            }
        }
    }
    assert_eq!(rx.stats().rx_foreign_group, 64, "each flip of the group's bytes");
    assert_eq!(rx.held_bytes(), 0, "nothing held for a later view that did not verify");
    // Cut short: below a header and tag it is no frame at all; above, a bad tag.
    for cut in FRAME_LEN..fresh.len() {
        let reason = if cut < SEALED_LEN + TAG_LEN { 0 } else { 3 };
        deliver(&mut rx, fresh.slice(..cut), Some(reason), &format!("cut at {cut}"));
    }
    // Another group's key (another secret, same group id), another view's key, another
    // incarnation's or member's key.
    deliver(&mut rx, forge([8; 32], G, 0, view, two, inc, 8, &plain("other secret")), Some(3), "another secret");
    let later = ViewId { ltime: view.ltime + 1, ..view };
    let mut d = forge(SECRET, G, 0, later, two, inc, 8, &plain("later")).to_vec();
    d[16..24].copy_from_slice(&view.ltime.to_le_bytes());
    deliver(&mut rx, Bytes::from(d), Some(3), "another view's key");
    let mut d = forge(SECRET, G, 0, view, two, inc + 1, 8, &plain("x")).to_vec();
    d[40..48].copy_from_slice(&inc.to_le_bytes());
    deliver(&mut rx, Bytes::from(d), Some(3), "another incarnation's key");
    let mut d = forge(SECRET, G, 0, view, EndpointId(3), inc, 8, &plain("x")).to_vec();
    d[32..40].copy_from_slice(&two.0.to_le_bytes());
    deliver(&mut rx, Bytes::from(d), Some(3), "another member's key");
    // The gossip key inside the view, and the view's key for gossip.
    let mut d = forge(SECRET, G, FLAG_GOSSIP, view, two, inc, 8, &[0]).to_vec();
    d[3] &= !FLAG_GOSSIP;
    deliver(&mut rx, Bytes::from(d), Some(3), "gossip's key in the view");
    // Replays within the view, in and out of order; then a number below the window.
    deliver(&mut rx, good.clone(), Some(4), "the control, replayed");
    deliver(&mut rx, forge(SECRET, G, 0, view, two, inc, 5000, &plain("far ahead")), None, "a jump ahead");
    deliver(&mut rx, forge(SECRET, G, 0, view, two, inc, 5000, &plain("again")), Some(4), "its number again");
    deliver(&mut rx, forge(SECRET, G, 0, view, two, inc, 904, &plain("old")), Some(5), "a number below the window");
    deliver(&mut rx, forge(SECRET, G, 0, view, two, inc, 905, &plain("in")), None, "the window's last number");
    // A concurrent view's (its own key), and a later view's under this view's key.
    let concurrent = ViewId { coord: EndpointId(2), ..view };
    deliver(&mut rx, forge(SECRET, G, 0, concurrent, two, inc, 9000, &plain("other")), Some(6), "a concurrent view");
    let mut d = forge(SECRET, G, 0, view, two, inc, 9001, &plain("later")).to_vec();
    d[16..24].copy_from_slice(&later.ltime.to_le_bytes());
    deliver(&mut rx, Bytes::from(d), Some(3), "a later view, this view's key");
    assert_eq!(rx.held_bytes(), 0);
    // Claiming to be the receiver, or a stranger.
    deliver(&mut rx, forge(SECRET, G, 0, view, EndpointId(1), inc, 1, &plain("me")), Some(7), "the receiver's own id");
    deliver(&mut rx, forge(SECRET, G, 0, view, EndpointId(9), inc, 1, &plain("who")), Some(8), "a stranger");
    // Sealed, at an insecure endpoint.
    let mut open_rx = bare(1, Security::Insecure);
    open_rx.handle_datagram(Time::ZERO, good);
    assert_eq!((open_rx.stats().rx_no_key, open_rx.poll_event()), (1, None));
    // Every datagram in one bucket; the refused ones are the rejected.
    let s = rx.stats();
    assert_eq!(s.rx_datagrams, s.rx_accepted + s.rx_rejected() + s.rx_own, "{s:?}");
}

/// The key modes a group is tested under.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Shared,
    KeyPairs,
}

/// A member's key pair in the tests: key `k`.
fn identity(k: u64) -> Identity {
    Identity::new([k as u8; 32])
}

/// Member `me` of a group under `mode`: the tests' secret, or its key pair with keys
/// 1..=`listed` allowed; an outsider has another secret, or a key nobody else lists. Its
/// incarnation and seed come from the run's seed, so the run replays.
fn security(mode: Mode, me: u64, listed: u64, outsider: bool) -> impl Fn(u64) -> Security + Send + 'static {
    move |seed| match mode {
        Mode::Shared => shared(if outsider { [9; 32] } else { SECRET }, seed),
        Mode::KeyPairs => Security::KeyPairs {
            identity: identity(me),
            allow: AllowList::new((1..=listed).map(|k| identity(k).public())).expect("a list"),
            incarnation: seed,
            seed: GroupSecret::new([seed as u8; 32]),
        },
    }
}

/// A secured member of the dynamic group `G`.
fn joiner(
    security: impl Fn(u64) -> Security + Send + 'static,
    me: EndpointId,
) -> impl FnMut(Spawn) -> Endpoint + Send + 'static {
    move |spawn: Spawn| {
        let cfg = Config { seed: spawn.seed, ..Config::joining(G, me) }.secured(security(spawn.seed));
        Endpoint::from_spec(cfg, &registry(), "group").expect("the group stack builds")
    }
}

/// Secured endpoints find each other, form one view and deliver each other's casts over a
/// lossy network; nothing on the wire shows a payload or (gossip) a member list; an endpoint with another secret
/// (another group's key), or with a key not on the members' allow-list, never gets into the
/// view, and what it sends is refused (by tag, or as not allowed). Then every multicast
/// overheard in that view, replayed from outside after the next view, changes nothing:
/// refused as of an earlier view, or (gossip) as replays. Last, a member cut off from the
/// others is excluded and goes on sending: nothing it sends gets in.
fn secured_group(seed: u64, mode: Mode) -> Result<(), String> {
    let mut sim: Sim = Sim::new(seed);
    sim.set_default_link(Link { loss: 0.02, jitter: Duration::from_micros(200), ..Link::default() });
    sim.tap(100_000);
    let ids: Vec<EndpointId> = (1..=4).map(EndpointId).collect();
    let nodes: Vec<_> = ids.iter().map(|&id| sim.add_node(joiner(security(mode, id.0, 4, false), id))).collect();
    let outsider = sim.add_node(joiner(security(mode, 5, 5, true), EndpointId(5)));
    let members = |sim: &Sim, n| {
        let mut m = sim.endpoint(n).map(|ep| ep.view().members.clone()).unwrap_or_default();
        m.sort();
        m
    };
    let all_in = |sim: &Sim| nodes.iter().all(|&n| members(sim, n) == ids);
    for _ in 0..200 {
        if all_in(&sim) {
            break;
        }
        sim.run_for(Duration::from_millis(50));
    }
    if !all_in(&sim) {
        return Err(format!("no view of the four: {:?}", sim.endpoint(nodes[0]).map(|ep| ep.view().clone())));
    }
    let secret_text = b"a payload no one outside may read";
    for (k, &n) in nodes.iter().enumerate() {
        cast_soon(&mut sim, n, Bytes::from([&secret_text[..], &[k as u8]].concat()))?;
    }
    sim.run_for(Duration::from_millis(500));
    for &n in &nodes {
        let got = sim.delivered(n).iter().filter(|d| d.data.starts_with(secret_text)).count();
        if got != 4 {
            return Err(format!("{n} delivered {got} of the 4 casts"));
        }
        let s = sim.stats(n);
        if s.rx_unsealed + s.rx_replay + s.rx_stale + s.rx_no_key != 0 {
            return Err(format!("{n} refused a member's datagram: {s:?}"));
        }
    }
    let heard = sim.overheard();
    if heard.iter().any(|d| d.windows(secret_text.len()).any(|w| w == secret_text)) {
        return Err("a payload went out in clear".into());
    }
    if heard.iter().any(|d| d[3] & thoth::frame::FLAG_SEALED == 0) {
        return Err("an unsealed datagram went out".into());
    }
    // Gossip (beacons, joins, installs: member lists) encrypted too: no member's id past a
    // header.
    let shows = |d: &Bytes, id: &EndpointId| d[SEALED_LEN..].windows(8).any(|w| w == id.0.to_le_bytes());
    if let Some(d) = heard.iter().find(|d| ids.iter().any(|id| shows(d, id))) {
        return Err(format!("a member's id in clear: {:?}", &d[..]));
    }
    let outside = sim.endpoint(outsider).expect("up").view().clone();
    let s = sim.stats(nodes[0]);
    let refused = if mode == Mode::Shared { s.rx_bad_tag } else { s.rx_not_allowed };
    if outside.members.len() != 1 || refused == 0 {
        return Err(format!("the outsider: {outside:?}; refused at 1: {s:?}"));
    }
    // The view's datagrams (heartbeats, gossip, casts) from a second of lossless traffic, so
    // that member 1 received each one before; the next view, then those replayed.
    sim.set_default_link(Link { jitter: Duration::from_micros(200), ..Link::default() });
    sim.run_for(Duration::from_millis(10));
    sim.overheard();
    for (k, &n) in nodes.iter().enumerate() {
        cast_soon(&mut sim, n, Bytes::from(vec![k as u8]))?;
    }
    sim.run_for(Duration::from_secs(1));
    let heard = sim.overheard();
    sim.crash(nodes[3]);
    let three = &ids[..3];
    for _ in 0..200 {
        if members(&sim, nodes[0]) == three {
            break;
        }
        sim.run_for(Duration::from_millis(50));
    }
    sim.run_for(Duration::from_millis(500));
    let view = sim.endpoint(nodes[0]).expect("up").view().clone();
    if members(&sim, nodes[0]) != three {
        return Err(format!("no view without the crashed member: {view:?}"));
    }
    let ours: Vec<Bytes> = heard.into_iter().filter(|d| thoth::frame::peek_group(d) == Some(G)).collect();
    // At the coordinator and at another member (the coordinator's beacons are gossip, whose
    // keys outlive the view).
    let mut replays = 0;
    for &n in &nodes[..2] {
        let (delivered, was) = (sim.delivered(n).len(), sim.stats(n));
        for d in &ours {
            sim.inject(n, d.clone());
        }
        let s = sim.stats(n);
        if sim.delivered(n).len() != delivered || s.rx_accepted != was.rx_accepted {
            return Err(format!("{n}: a replayed datagram was delivered or accepted"));
        }
        // Each counted where it belongs: the crashed member's and the survivors' as of an
        // earlier view or as replays, the outsider's by tag, this member's own as its own.
        let d = |f: fn(&Stats) -> u64| f(&s) - f(&was);
        let refused = d(|s| s.rx_other_view)
            + d(|s| s.rx_replay)
            + d(|s| s.rx_stale)
            + d(|s| s.rx_bad_tag)
            + d(|s| s.rx_not_allowed);
        if refused + d(|s| s.rx_own) != ours.len() as u64 || d(|s| s.rx_gossip) != 0 || d(|s| s.rx_other_view) == 0 {
            return Err(format!("{n}: {} replayed; before {was:?}, after {s:?}", ours.len()));
        }
        replays += d(|s| s.rx_replay);
    }
    if replays == 0 {
        return Err("no gossip was replayed".into());
    }
    if sim.endpoint(nodes[0]).expect("up").view() != &view {
        return Err("the replays changed the view".into());
    }
    // Member 3 cut off: the other two go on without it, while it keeps sending (beacons,
    // heartbeats, casts) with the keys it has.
    sim.partition(&nodes[..2], &nodes[2..3]);
    let two = &ids[..2];
    for _ in 0..200 {
        if members(&sim, nodes[0]) == two {
            break;
        }
        sim.run_for(Duration::from_millis(50));
    }
    if members(&sim, nodes[0]) != two {
        return Err(format!("no view without the cut-off member: {:?}", sim.endpoint(nodes[0]).map(|e| e.view())));
    }
    sim.overheard();
    for k in 0..5u8 {
        sim.cast(nodes[2], Bytes::from(vec![0xee, k])).map_err(|e| format!("{e:?}"))?;
        sim.run_for(Duration::from_millis(200));
    }
    let excluded = sim.id(nodes[2]);
    let sent: Vec<Bytes> = sim
        .overheard()
        .into_iter()
        .filter(|d| thoth::frame::FrameView::parse(d).is_ok_and(|v| v.frame().src == excluded))
        .collect();
    let (delivered, was) = (sim.delivered(nodes[0]).len(), sim.stats(nodes[0]));
    for d in &sent {
        sim.inject(nodes[0], d.clone());
    }
    let s = sim.stats(nodes[0]);
    if sent.is_empty() || sim.delivered(nodes[0]).len() != delivered || s.rx_accepted != was.rx_accepted {
        return Err(format!("the excluded member's {} datagrams: before {was:?}, after {s:?}", sent.len()));
    }
    for &n in &nodes[..2] {
        if sim.stats(n).views_unkeyed != 0 {
            return Err(format!("{n} installed a view without its key: {:?}", sim.stats(n)));
        }
    }
    Ok(())
}

/// Casts once flow control or a view change lets it (within a second).
fn cast_soon(sim: &mut Sim, n: thoth::sim::NodeId, data: Bytes) -> Result<(), String> {
    for _ in 0..100 {
        match sim.cast(n, data.clone()) {
            Err(thoth::sim::CmdError::Refused(CastError::WouldBlock)) => sim.run_for(Duration::from_millis(10)),
            r => return r.map_err(|e| format!("{n}: {e:?}")),
        }
    }
    Err(format!("{n} could not cast for a second"))
}

#[test]
fn a_secured_group_forms_delivers_and_shrugs_off_replays() {
    check_seeds("a_secured_group_forms_delivers_and_shrugs_off_replays", 0..4, |seed| {
        secured_group(seed, Mode::Shared)
    });
}

#[test]
fn a_group_of_key_pairs_forms_delivers_and_keeps_out_the_unlisted_and_the_excluded() {
    check_seeds("a_group_of_key_pairs_forms_delivers_and_keeps_out_the_unlisted_and_the_excluded", 0..4, |seed| {
        secured_group(seed, Mode::KeyPairs)
    });
}

/// Endpoints wired straight to each other (no loss, no delay) and every datagram recorded
/// with its sender, unicast included: what a sniffer on the segment has.
struct Wire {
    eps: Vec<Option<Endpoint>>,
    now: Time,
    log: Vec<(EndpointId, Bytes)>,
}

impl Wire {
    fn add(&mut self, security: Security, me: EndpointId) -> usize {
        let cfg = Config::joining(G, me).secured(security);
        self.eps.push(Some(Endpoint::from_spec(cfg, &registry(), "group").expect("the group stack builds")));
        self.eps.len() - 1
    }

    /// Delivers what is on the wire until it is quiet, then fires due timers, for `d`.
    fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        for _ in 0..1_000_000 {
            for _ in 0..1000 {
                let mut out = Vec::new();
                for ep in self.eps.iter_mut().flatten() {
                    ep.end_turn(self.now);
                    while let Some(tx) = ep.poll_transmit() {
                        out.push((ep.me(), tx));
                    }
                    while ep.poll_event().is_some() {}
                }
                if out.is_empty() {
                    break;
                }
                for (from, tx) in out {
                    let data = tx.to_bytes();
                    self.log.push((from, data.clone()));
                    for ep in self.eps.iter_mut().flatten().filter(|ep| ep.me() != from) {
                        if matches!(tx.dst, Dest::All | Dest::Everyone) || tx.dst == Dest::One(ep.me()) {
                            ep.handle_datagram(self.now, data.clone());
                        }
                    }
                }
            }
            let Some(next) = self.eps.iter().flatten().filter_map(|ep| ep.poll_timeout()).min() else { break };
            if next > until {
                break;
            }
            self.now = self.now.max(next);
            for ep in self.eps.iter_mut().flatten() {
                ep.handle_timeout(self.now);
            }
        }
        self.now = until;
    }

    fn view(&self, i: usize) -> View {
        self.eps[i].as_ref().expect("up").view().clone()
    }
}

/// The attacks, each tried against an insecure pair first (where it works: the
/// harness's control) and then against a secured one: a killed member's datagrams — its
/// `Join` among them — replayed to the coordinator put it back into a view, and a forged
/// `Beacon` claiming a lower id makes the coordinator flush towards a view that does not
/// exist.
#[test]
fn a_killed_members_join_replayed_and_a_forged_beacon_change_nothing() {
    // The body of a real beacon, as the insecure run puts it on the wire in clear.
    let mut beacon_body = Vec::new();
    for secure in [false, true] {
        let security = |inc| if secure { shared(SECRET, inc) } else { Security::Insecure };
        let mut w = Wire { eps: Vec::new(), now: Time::ZERO, log: Vec::new() };
        let c = w.add(security(1), EndpointId(10));
        w.run_for(Duration::from_secs(1));
        let j = w.add(security(2), EndpointId(5));
        w.run_for(Duration::from_secs(2));
        let joined = w.view(c);
        assert_eq!(joined.members, [EndpointId(10), EndpointId(5)], "secure {secure}: joined");
        // Killed; excluded by the next view.
        w.eps[j] = None;
        w.run_for(Duration::from_secs(6));
        let alone = w.view(c);
        assert_eq!(alone.members, [EndpointId(10)], "secure {secure}: excluded");
        // A beacon from a lower id (one the coordinator sent in the view of two, with another
        // source), its CRC right.
        if !secure {
            let of_two = |d: &Bytes| thoth::frame::FrameView::parse(d).is_ok_and(|v| v.frame().view == joined.id);
            let (_, beacon) = w
                .log
                .iter()
                .find(|(from, d)| *from == EndpointId(10) && d[3] & FLAG_GOSSIP != 0 && of_two(d))
                .expect("a beacon");
            beacon_body = beacon[FRAME_LEN..].to_vec();
        }
        let lower = ViewId { ltime: alone.id.ltime + 1, coord: EndpointId(1) };
        let ep = w.eps[c].as_mut().expect("up");
        ep.handle_datagram(w.now, unsealed(FLAG_GOSSIP, lower, EndpointId(1), &beacon_body));
        w.run_for(Duration::from_secs(3));
        let after = w.view(c);
        if !secure {
            assert!(
                after.id != alone.id,
                "the control: unprotected, the forged beacon moved the coordinator ({after:?})"
            );
        } else {
            assert_eq!(after, alone, "a forged beacon moved the coordinator");
        }
        // Everything the killed member sent, its join among them, replayed.
        let sent: Vec<Bytes> =
            w.log.iter().filter(|(from, _)| *from == EndpointId(5)).map(|(_, d)| d.clone()).collect();
        let ep = w.eps[c].as_mut().expect("up");
        let was = ep.stats().clone();
        for d in &sent {
            ep.handle_datagram(w.now, d.clone());
        }
        w.run_for(Duration::from_millis(300));
        let last = w.view(c);
        if !secure {
            assert!(
                last.members.contains(&EndpointId(5)),
                "the control: unprotected, the replayed join is taken ({last:?})"
            );
            continue;
        }
        assert_eq!(last, alone, "replays changed the view");
        let s = w.eps[c].as_ref().expect("up").stats().clone();
        assert!(s.rx_replay > 0 && s.rx_other_view > 0 && s.rx_unsealed == 1, "{s:?}");
        assert_eq!((s.rx_accepted, s.rx_gossip), (was.rx_accepted, was.rx_gossip), "nothing replayed got in");
    }
}
