//! The ordering layers against reference models (bolero), through their real header
//! encoding: every message a member gets is what a real instance of the layer put on the
//! wire at its sender (`over_wire`).
//!
//! `sequencer`: a group of three. The fuzzer picks the order in which casts reach the
//! sequencer (rank 0) and where its turns end (so how its decisions are cut into `Order`
//! messages), and a real rank-0 instance makes the decisions from that; then it picks the
//! order in which member 1 gets the three senders' streams (each in FIFO order, as the
//! reliable layer below delivers them: rank 0's own casts and decisions in the order it sent
//! them), whether delivery is safe and when stability reports come, and whether the view
//! ends (`Up::CutReached`) after some prefix of the arrivals. The model:
//! - the sequencer delivers exactly its decision order, and so does member 1 once everything
//!   has arrived (with safe delivery: once all is stable);
//! - before the end, member 1 has delivered a prefix of the decision order, and with safe
//!   delivery only stable casts;
//! - at a cut, member 1 applies the decisions it got, passing over casts that never came,
//!   then delivers the rest by rank and FIFO order, then passes the cut up.
//!
//! `causal` and `token`: three real instances over a network the fuzzer schedules (see
//! each test).
//!
//! Duplicates and retransmissions reach an ordering layer only through the reliable layer
//! below it, which turns them into exactly-once FIFO delivery: the three total orders also
//! run with the real `nak` and `pt2pt` below them over a network that loses and duplicates
//! what the fuzzer says (`total_orders_over_the_reliable_layers_and_a_lossy_network_...`).
//! The same model without the reliable layers fails there, as it should.

use thoth_layers::order::sequencer::{Config, Sequencer};
use thoth_stack::testing::{Harness, over_wire};
use thoth_stack::*;

const T: Time = Time::ZERO;
const N: usize = 3;

fn body(r: usize, j: usize) -> Bytes {
    Bytes::from(vec![r as u8, j as u8, (j >> 8) as u8])
}

fn who(b: &[u8]) -> (usize, usize) {
    (b[0] as usize, b[1] as usize | (b[2] as usize) << 8)
}

/// What a member's layer puts on the wire when its application casts `b`.
fn data(rank: u16, b: Bytes) -> Msg {
    let (mut h, mut s) = (Harness::new(N as u64, rank), Sequencer::new(Config::default()));
    h.dn(&mut s, T, Dn::Cast(Msg::new(b)));
    match h.take_dn().pop() {
        Some(Dn::Cast(m)) => over_wire(&m),
        other => panic!("a cast goes down as one cast: {other:?}"),
    }
}

/// Casts delivered (sender, index), and whether a `CutReached` followed them.
fn delivered(h: &mut Harness) -> (Vec<(usize, usize)>, bool) {
    let (mut out, mut cut) = (Vec::new(), false);
    for e in h.take_up() {
        match e {
            Up::Cast { from, msg } => {
                assert!(!cut, "nothing after the cut");
                let (r, j) = who(&msg.into_payload());
                assert_eq!(r, from.index(), "delivered as from its sender");
                out.push((r, j));
            }
            Up::CutReached(_) => cut = true,
            _ => {}
        }
    }
    (out, cut)
}

#[derive(Debug, bolero::generator::TypeGenerator)]
struct Run {
    /// Senders in the order their casts reach the sequencer (the decision order).
    arrivals: Vec<u8>,
    /// Where the sequencer's turns end (a byte per arrival: odd ends the turn).
    turns: Vec<u8>,
    /// Which stream member 1 takes its next message from.
    pick: Vec<u8>,
    safe: bool,
    /// Per arrival at member 1: a stability report of how much (in 1/256ths) of what it
    /// holds, or none.
    stable: Vec<Option<u8>>,
    /// The view ends after this many arrivals at member 1 (none: everything arrives).
    cut_after: Option<u16>,
}

#[test]
fn sequencer_matches_the_model() {
    bolero::check!().with_type::<Run>().for_each(|run| {
        let decided: Vec<(usize, usize)> = {
            let mut n = [0usize; N];
            run.arrivals
                .iter()
                .take(200)
                .map(|&r| {
                    let r = r as usize % N;
                    n[r] += 1;
                    (r, n[r] - 1)
                })
                .collect()
        };
        let cfg = Config { safe: run.safe, ..Config::default() };

        // The sequencer: its application's casts and the others' arrive in decision order.
        let (mut h0, mut s0) = (Harness::new(N as u64, 0), Sequencer::new(cfg.clone()));
        let mut stream0: Vec<Msg> = Vec::new();
        // What it sends loops back to it at once, in order, as it goes to everyone.
        let send = |h0: &mut Harness, s0: &mut Sequencer, stream0: &mut Vec<Msg>| {
            for e in h0.take_dn() {
                let Dn::Cast(m) = e else { panic!("only casts: {e:?}") };
                let m = over_wire(&m);
                stream0.push(m.clone());
                h0.up(s0, T, Up::Cast { from: Rank(0), msg: m });
            }
        };
        for (i, &(r, j)) in decided.iter().enumerate() {
            if r == 0 {
                h0.dn(&mut s0, T, Dn::Cast(Msg::new(body(0, j))));
                send(&mut h0, &mut s0, &mut stream0);
            } else {
                h0.up(&mut s0, T, Up::Cast { from: Rank(r as u16), msg: data(r as u16, body(r, j)) });
            }
            if run.turns.get(i).is_some_and(|t| t % 2 == 1) || i + 1 == decided.len() {
                h0.end_turn(&mut s0, T);
                send(&mut h0, &mut s0, &mut stream0);
            }
        }
        assert_eq!(
            stream0_kinds(&decided, &run.turns).len(),
            stream0.len(),
            "the model of rank 0's stream has its messages"
        );
        if run.safe {
            h0.up(&mut s0, T, Up::Stable(vec![stream0.len() as u64, u64::MAX, u64::MAX]));
        }
        assert_eq!(delivered(&mut h0).0, decided, "the sequencer delivers its decision order");

        // Member 1: three FIFO streams, interleaved as the fuzzer picks.
        let mut streams: Vec<std::collections::VecDeque<Msg>> = vec![stream0.into()];
        for r in 1..N {
            let mine = decided.iter().filter(|&&(s, _)| s == r).map(|&(_, j)| data(r as u16, body(r, j)));
            streams.push(mine.collect());
        }
        let total: usize = streams.iter().map(|s| s.len()).sum();
        let stop = run.cut_after.map_or(total, |c| (c as usize).min(total));
        let (mut h1, mut s1) = (Harness::new(N as u64, 1), Sequencer::new(cfg));
        let mut got = [0u64; N];
        let mut stable = [0u64; N];
        let mut out: Vec<(usize, usize)> = Vec::new();
        for k in 0..stop {
            let p = run.pick.get(k).copied().unwrap_or(0) as usize;
            let r = (0..N).map(|i| (p + i) % N).find(|&i| !streams[i].is_empty()).expect("something left");
            let m = streams[r].pop_front().expect("not empty");
            got[r] += 1;
            h1.up(&mut s1, T, Up::Cast { from: Rank(r as u16), msg: m });
            if let Some(Some(f)) = run.stable.get(k) {
                let v: Vec<u64> = got.iter().map(|&g| g * (*f as u64) / 255).collect();
                for (s, &x) in stable.iter_mut().zip(&v) {
                    *s = (*s).max(x);
                }
                h1.up(&mut s1, T, Up::Stable(v));
            }
            let (d, _) = delivered(&mut h1);
            if run.safe {
                // Indexes of data casts of rank 0 in its stream are not its cast indexes:
                // only the other ranks' are checked directly (their streams are data only).
                for &(r, j) in &d {
                    assert!(r == 0 || (j as u64) < stable[r], "safe: ({r}, {j}) delivered before stable {stable:?}");
                }
            }
            out.extend(d);
            assert_eq!(out[..], decided[..out.len()], "a prefix of the decision order");
        }
        if stop == total {
            if run.safe {
                h1.up(&mut s1, T, Up::Stable(got.to_vec()));
                out.extend(delivered(&mut h1).0);
            }
            assert_eq!(out, decided, "everything arrived: the decision order");
            return;
        }

        // The view ends here: the decisions member 1 got, then the rest by rank.
        h1.up(&mut s1, T, Up::CutReached(got.to_vec()));
        let (rest, cut) = delivered(&mut h1);
        assert!(cut, "the cut goes up after the last delivery");
        out.extend(rest);
        let arrived = |r: usize, j: usize| -> bool {
            if r == 0 { own_arrived(&decided, &run.turns, got[0] as usize, j) } else { (j as u64) < got[r] }
        };
        let known = decisions_known(&decided, &run.turns, got[0] as usize);
        let mut want: Vec<(usize, usize)> = decided[..known].iter().copied().filter(|&(r, j)| arrived(r, j)).collect();
        for r in 0..N {
            let mut rest: Vec<_> = decided.iter().copied().filter(|&(s, j)| s == r && arrived(s, j)).collect();
            rest.retain(|c| !want.contains(c));
            want.extend(rest);
        }
        assert_eq!(out, want, "at the cut: the decisions got, then the rest by rank and FIFO order");
    });
}

/// Rank 0's stream, as kinds: for each message, `Some(j)` for its own cast `j` or `None` for
/// a decision message, with the number of decisions it carries; built the way the sequencer
/// sends them (its own casts when its application casts them, decisions at each turn's end,
/// at most `MAX_RUNS` runs a message).
fn stream0_kinds(decided: &[(usize, usize)], turns: &[u8]) -> Vec<(Option<usize>, usize)> {
    use thoth_layers::order::sequencer::MAX_RUNS;
    let mut out = Vec::new();
    let mut pending: Vec<(usize, usize)> = Vec::new(); // runs: (rank, count)
    for (i, &(r, j)) in decided.iter().enumerate() {
        if r == 0 {
            out.push((Some(j), 0));
        }
        match pending.last_mut() {
            Some((last, n)) if *last == r => *n += 1,
            _ => pending.push((r, 1)),
        }
        if turns.get(i).is_some_and(|t| t % 2 == 1) || i + 1 == decided.len() {
            for chunk in pending.chunks(MAX_RUNS) {
                out.push((None, chunk.iter().map(|&(_, n)| n).sum()));
            }
            pending.clear();
        }
    }
    out
}

/// Whether rank 0's cast `j` is among the first `k` messages of its stream.
fn own_arrived(decided: &[(usize, usize)], turns: &[u8], k: usize, j: usize) -> bool {
    stream0_kinds(decided, turns).iter().take(k).any(|&(c, _)| c == Some(j))
}

/// How many decisions the first `k` messages of rank 0's stream carry.
fn decisions_known(decided: &[(usize, usize)], turns: &[u8], k: usize) -> usize {
    stream0_kinds(decided, turns).iter().take(k).map(|&(_, n)| n).sum()
}

/// One step of the causal model: member `a % 3` casts (`cast`), or takes the next message
/// from member `b % 3` that the network holds for it.
#[derive(Debug, bolero::generator::TypeGenerator)]
struct Step {
    cast: bool,
    a: u8,
    b: u8,
}

/// `causal`: three real instances, each cast encoded by its sender's layer and decoded by
/// each receiver's; the network delivers each sender's casts in FIFO order to each member
/// (itself included) whenever the fuzzer says. The model knows each cast's causes (what its
/// sender had delivered when it cast) and checks after every step that each member has
/// delivered every cast after its causes, and holds only casts whose causes it lacks (no
/// cast waits longer than it must); at the end, with the network drained, every member has
/// delivered every cast.
#[test]
fn causal_matches_the_model() {
    use std::collections::{BTreeSet, VecDeque};
    use thoth_layers::order::causal::{Causal, Config};
    bolero::check!().with_type::<(bool, Vec<Step>)>().for_each(|(safe, steps)| {
        let cfg = Config { safe: *safe, ..Config::default() };
        let mut hs: Vec<Harness> = (0..N as u16).map(|r| Harness::new(N as u64, r)).collect();
        let mut ls: Vec<Causal> = (0..N).map(|_| Causal::new(cfg.clone())).collect();
        // net[to][from]: what `from` cast that `to` has not taken yet.
        let mut net: Vec<Vec<VecDeque<Msg>>> = (0..N).map(|_| (0..N).map(|_| VecDeque::new()).collect()).collect();
        let mut causes: Vec<BTreeSet<usize>> = Vec::new(); // by cast id
        let mut ids: Vec<Vec<usize>> = vec![Vec::new(); N]; // per sender, cast ids in order
        let mut taken: Vec<Vec<usize>> = vec![vec![0; N]; N]; // taken[to][from]
        let mut delivered: Vec<Vec<usize>> = vec![Vec::new(); N];
        let mut done: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); N]; // delivered and checked
        let take = |to: usize,
                    from: usize,
                    hs: &mut [Harness],
                    ls: &mut [Causal],
                    net: &mut [Vec<VecDeque<Msg>>],
                    taken: &mut [Vec<usize>],
                    delivered: &mut [Vec<usize>],
                    ids: &[Vec<usize>]| {
            let Some(m) = net[to][from].pop_front() else { return };
            taken[to][from] += 1;
            hs[to].up(&mut ls[to], T, Up::Cast { from: Rank(from as u16), msg: m });
            if *safe {
                // Stability as the layer below would report it: what every member has taken.
                let v: Vec<u64> = (0..N).map(|f| (0..N).map(|t| taken[t][f]).min().unwrap_or(0) as u64).collect();
                for (h, l) in hs.iter_mut().zip(ls.iter_mut()) {
                    h.up(l, T, Up::Stable(v.clone()));
                }
            }
            for (r, h) in hs.iter_mut().enumerate() {
                for e in h.take_up() {
                    if let Up::Cast { from, msg } = e {
                        let (s, j) = who(&msg.into_payload());
                        assert_eq!(s, from.index());
                        delivered[r].push(ids[s][j]);
                    }
                }
            }
        };
        for st in steps.iter().take(300) {
            let (a, b) = (st.a as usize % N, st.b as usize % N);
            if st.cast {
                let id = causes.len();
                let j = ids[a].len();
                causes.push(delivered[a].iter().copied().collect());
                ids[a].push(id);
                hs[a].dn(&mut ls[a], T, Dn::Cast(Msg::new(body(a, j))));
                let Some(Dn::Cast(m)) = hs[a].take_dn().pop() else { panic!("one cast down") };
                let m = over_wire(&m);
                for q in net.iter_mut() {
                    q[a].push_back(m.clone());
                }
            } else {
                take(a, b, &mut hs, &mut ls, &mut net, &mut taken, &mut delivered, &ids);
            }
            // Every member: causes first, and nothing held that could go up.
            for r in 0..N {
                for &c in &delivered[r][done[r].len()..] {
                    assert!(causes[c].is_subset(&done[r]), "member {r} delivered cast {c} before one of its causes");
                    done[r].insert(c);
                }
                if *safe {
                    continue; // stability may lag what the causes allow
                }
                for (s, sent) in ids.iter().enumerate() {
                    // The oldest cast of `s` not delivered here, if it has arrived.
                    let next = sent.iter().position(|c| !done[r].contains(c)).unwrap_or(sent.len());
                    if next < taken[r][s] {
                        let c = sent[next];
                        assert!(!causes[c].is_subset(&done[r]), "member {r} holds cast {c} though its causes are in");
                    }
                }
            }
        }
        // Drain the network: every member delivers every cast.
        for to in 0..N {
            for from in 0..N {
                while !net[to][from].is_empty() {
                    take(to, from, &mut hs, &mut ls, &mut net, &mut taken, &mut delivered, &ids);
                }
            }
        }
        for (r, d) in delivered.iter().enumerate() {
            assert_eq!(d.len(), causes.len(), "member {r} delivered every cast once");
        }
    });
}

/// One step of the network models (`token`, `lamport`).
#[derive(Debug, bolero::generator::TypeGenerator)]
enum NetStep {
    /// Member `.0 % 3`'s application casts.
    Cast(u8),
    /// Member `to % 3` takes the next message `from % 3` sent it.
    Take { to: u8, from: u8 },
    /// Member `.0 % 3` ends its turn (the token moves on, if it holds it).
    EndTurn(u8),
    /// A millisecond passes (a member waiting for the token asks again after `want_ms`).
    Tick,
    /// The network loses the next message `from % 3` sent `to % 3` (lossy models only; a
    /// member's own casts come back to it in memory, never lost).
    Drop { to: u8, from: u8 },
    /// The network duplicates it (lossy models only; not a member's own).
    Dup { to: u8, from: u8 },
}

/// `token`: see `total_order_model`.
#[test]
fn token_matches_the_model() {
    use thoth_layers::order::token::{Config, Token};
    bolero::check!().with_type::<(bool, Vec<NetStep>)>().for_each(|(safe, steps)| {
        total_order_model(*safe, false, steps, || Token::new(Config { safe: *safe, ..Config::default() }))
    });
}

/// `lamport`: see `total_order_model`.
#[test]
fn lamport_matches_the_model() {
    use thoth_layers::order::lamport::{Config, Lamport};
    bolero::check!().with_type::<(bool, Vec<NetStep>)>().for_each(|(safe, steps)| {
        total_order_model(*safe, false, steps, || Lamport::new(Config { safe: *safe, ..Config::default() }))
    });
}

/// The three total orders with the real reliable layers below them (`nak`, and `pt2pt` for
/// the token's sends) over a network that also loses and duplicates what the fuzzer says:
/// duplicates and retransmissions reach the reliable layers, arbitrary arrival orders the
/// ordering layer, every message through the real encodings of both; see
/// `total_order_model`.
#[test]
fn total_orders_over_the_reliable_layers_and_a_lossy_network_match_the_model() {
    let registry = thoth_layers::registry();
    bolero::check!().with_type::<(u8, Vec<NetStep>)>().for_each(|(which, steps)| {
        let spec = ["sequencer:nak:pt2pt", "token:nak:pt2pt", "lamport:nak:pt2pt"][*which as usize % 3];
        total_order_model(false, true, steps, || registry.build(spec).expect("a well-formed stack"))
    });
}

/// A total-order layer in three real instances; the network carries each member's casts
/// to every member (itself included) and its sends to their target, each sender's in FIFO
/// order, whenever the fuzzer says, while the fuzzer also picks when members cast, end their
/// turns and when time passes. The model: at every step every member's deliveries are a
/// prefix of one sequence (the total order), each sender's casts in its order; once the
/// network is drained and the turns run out, every member has delivered every cast.
/// With `lossy`, the network also loses and duplicates (`Drop`, `Dup`), which only layers
/// over a reliable layer survive.
fn total_order_model<L: Layer>(safe: bool, lossy: bool, steps: &[NetStep], make: impl Fn() -> L) {
    use std::collections::VecDeque;
    {
        let mut hs: Vec<Harness> = (0..N as u16).map(|r| Harness::new(N as u64, r)).collect();
        let mut ls: Vec<L> = (0..N).map(|_| make()).collect();
        // net[to][from]: what `from` sent `to`, each with whether it is a reliable cast.
        let mut net: Vec<Vec<VecDeque<(Up, bool)>>> =
            (0..N).map(|_| (0..N).map(|_| VecDeque::new()).collect()).collect();
        let mut taken = vec![vec![0u64; N]; N]; // casts taken[to][from], for stability
        let mut cast = [0usize; N];
        let mut got: Vec<Vec<(usize, usize)>> = vec![Vec::new(); N];
        let mut now = T;
        // Routes what member `r` emitted; records what it delivered.
        let route =
            |r: usize, hs: &mut [Harness], net: &mut [Vec<VecDeque<(Up, bool)>>], got: &mut [Vec<(usize, usize)>]| {
                let from = Rank(r as u16);
                for e in hs[r].take_dn() {
                    match e {
                        Dn::Cast(m) => {
                            for q in net.iter_mut() {
                                q[r].push_back((Up::Cast { from, msg: over_wire(&m) }, true));
                            }
                        }
                        Dn::CastUnrel(m) => {
                            for q in net.iter_mut() {
                                q[r].push_back((Up::Cast { from, msg: over_wire(&m) }, false));
                            }
                        }
                        Dn::Send(to, m) | Dn::SendUnrel(to, m) => {
                            net[to.index()][r].push_back((Up::Send { from, msg: over_wire(&m) }, false))
                        }
                        other => panic!("unexpected {other:?}"),
                    }
                }
                for e in hs[r].take_up() {
                    if let Up::Cast { from, msg } = e {
                        let (s, j) = who(&msg.into_payload());
                        assert_eq!(s, from.index());
                        got[r].push((s, j));
                    }
                }
            };
        for r in 0..N {
            hs[r].init(&mut ls[r], now);
            route(r, &mut hs, &mut net, &mut got);
        }
        let mut take = |to: usize,
                        from: usize,
                        now: Time,
                        hs: &mut [Harness],
                        ls: &mut [L],
                        net: &mut [Vec<VecDeque<(Up, bool)>>],
                        got: &mut [Vec<(usize, usize)>]| {
            let Some((ev, reliable_cast)) = net[to][from].pop_front() else { return };
            hs[to].up(&mut ls[to], now, ev);
            if reliable_cast && safe {
                // Stability as the layer below would report it: what every member has taken.
                taken[to][from] += 1;
                let v: Vec<u64> = (0..N).map(|f| (0..N).map(|t| taken[t][f]).min().unwrap_or(0)).collect();
                for (h, l) in hs.iter_mut().zip(ls.iter_mut()) {
                    h.up(l, now, Up::Stable(v.clone()));
                }
                for r in 0..N {
                    route(r, hs, net, got);
                }
            } else {
                route(to, hs, net, got);
            }
        };
        let consistent = |got: &[Vec<(usize, usize)>]| {
            let longest = got.iter().max_by_key(|g| g.len()).expect("three members");
            for (r, g) in got.iter().enumerate() {
                assert_eq!(g[..], longest[..g.len()], "member {r}'s deliveries are not a prefix of one order");
                for s in 0..N {
                    let mine: Vec<usize> = g.iter().filter(|d| d.0 == s).map(|d| d.1).collect();
                    assert!(mine.iter().enumerate().all(|(i, &j)| i == j), "member {r}: sender {s} out of FIFO order");
                }
            }
        };
        for st in steps.iter().take(300) {
            match *st {
                NetStep::Cast(a) => {
                    let a = a as usize % N;
                    hs[a].dn(&mut ls[a], now, Dn::Cast(Msg::new(body(a, cast[a]))));
                    cast[a] += 1;
                    route(a, &mut hs, &mut net, &mut got);
                }
                NetStep::Take { to, from } => {
                    take(to as usize % N, from as usize % N, now, &mut hs, &mut ls, &mut net, &mut got)
                }
                NetStep::EndTurn(a) => {
                    let a = a as usize % N;
                    hs[a].end_turn(&mut ls[a], now);
                    route(a, &mut hs, &mut net, &mut got);
                }
                NetStep::Drop { to, from } if lossy && to % 3 != from % 3 => {
                    net[to as usize % N][from as usize % N].pop_front();
                }
                NetStep::Dup { to, from } if lossy && to % 3 != from % 3 => {
                    let q = &mut net[to as usize % N][from as usize % N];
                    if let Some(head) = q.front().cloned() {
                        q.push_front(head);
                    }
                }
                NetStep::Drop { .. } | NetStep::Dup { .. } => {}
                NetStep::Tick => {
                    now += Duration::from_millis(1);
                    for r in 0..N {
                        if ls[r].poll_timeout().is_some_and(|t| t <= now) {
                            hs[r].timeout(&mut ls[r], now);
                            route(r, &mut hs, &mut net, &mut got);
                        }
                    }
                }
            }
            consistent(&got);
        }
        // Drain: turns, timers and the network until nothing moves (bounded).
        let total: usize = cast.iter().sum();
        for _ in 0..10_000 {
            if got.iter().all(|g| g.len() == total) {
                break;
            }
            now += Duration::from_millis(5);
            for r in 0..N {
                hs[r].end_turn(&mut ls[r], now);
                if ls[r].poll_timeout().is_some_and(|t| t <= now) {
                    hs[r].timeout(&mut ls[r], now);
                }
                route(r, &mut hs, &mut net, &mut got);
            }
            for to in 0..N {
                for from in 0..N {
                    while !net[to][from].is_empty() {
                        take(to, from, now, &mut hs, &mut ls, &mut net, &mut got);
                    }
                }
            }
        }
        consistent(&got);
        if got.iter().any(|g| g.len() != total) && std::env::var("THOTH_DEBUG").is_ok() {
            for (r, l) in ls.iter().enumerate() {
                let mut d = Vec::new();
                l.dump(&mut d);
                eprintln!("member {r} got {} of {total}: {d:?}", got[r].len());
            }
        }
        for (r, g) in got.iter().enumerate() {
            assert_eq!(g.len(), total, "member {r} delivered every cast once the network drained");
        }
    }
}

/// Hostile input: arbitrary bytes as casts and sends from any rank, stability vectors and
/// cuts of any shape, timers and turn ends, into each ordering layer (with a small budget):
/// it never panics, and what it holds stays within its budget.
#[test]
fn arbitrary_input_into_each_ordering_layer_never_panics_and_stays_bounded() {
    let registry = thoth_layers::registry();
    bolero::check!().with_type::<(u8, Vec<(u8, u16, Vec<u8>)>)>().for_each(|(which, inputs)| {
        let spec = [
            "sequencer(mem=4096,mem_all=8192)",
            "token(mem=4096,mem_all=8192)",
            "lamport(mem=4096,mem_all=8192)",
            "causal(mem=4096,mem_all=8192)",
            "sequencer(safe=1,mem=4096,mem_all=8192)",
            "lamport(safe=1,mem=4096,mem_all=8192)",
        ][*which as usize % 6];
        let mut l = registry.layers(spec).expect("a layer").remove(0);
        let mut h = Harness::new(3, 1);
        let mut now = T;
        for (kind, n, bytes) in inputs.iter().take(200) {
            let from = Rank(*n % 5);
            let msg = Msg::from_wire(Bytes::from(bytes.clone()));
            let v: Vec<u64> = bytes.iter().take(4).map(|&b| b as u64).collect();
            match kind % 8 {
                0..=2 => h.up(&mut *l, now, Up::Cast { from, msg }),
                3 => h.up(&mut *l, now, Up::Send { from, msg }),
                4 => h.up(&mut *l, now, Up::Stable(v)),
                5 => h.up(&mut *l, now, Up::CutReached(v)),
                6 => h.end_turn(&mut *l, now),
                _ => {
                    now += Duration::from_millis(*n as u64 % 100);
                    h.timeout(&mut *l, now);
                }
            }
            h.take_up();
            h.take_dn();
        }
        let mut d = Vec::new();
        l.dump(&mut d);
        let held = d[0].counter("held").expect("every ordering layer counts what it holds");
        // 8 KiB in all, each held cast costing at least its overhead (64 bytes).
        assert!(held <= 8192 / 64, "{spec}: {held} casts held");
    });
}
