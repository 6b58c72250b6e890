//! The `chk_fifo` checker: bolero (header round-trip, arbitrary bytes into `handle_up`, the
//! `Fifo` checker against a set-based model) and simulated groups of three: silent over a
//! clean `bare` stack, and loud (gaps, duplicates, reorders) over the fault layers and a
//! lossy simulated network, which is what proves the checker catches what it should.
//!
//! `THOTH_SIM_SEEDS=N` runs more seeds in the simulated tests; `THOTH_SIM_SEED=S` replays one.

use std::collections::{BTreeSet, VecDeque};
use thoth_layers::debug::chk_fifo::{ChkFifo, Fifo, Hdr};
use thoth_layers::debug::{self, Checker};
use thoth_stack::sim::{Link, Sim, check_seeds};
use thoth_stack::wire::{from_slice, to_vec};
use thoth_stack::*;

const MS: Duration = Duration::from_millis(1);

#[test]
fn header_round_trips() {
    bolero::check!().with_type::<(bool, u64)>().for_each(|&(chk, seq)| {
        let h = if chk { Hdr::Chk { seq } } else { Hdr::NoHdr };
        let b = to_vec(&h);
        assert_eq!(from_slice::<Hdr>(&b), Ok(h));
        // Every strict prefix is truncated, never misread.
        for n in 0..b.len() {
            assert!(from_slice::<Hdr>(&b[..n]).is_err());
        }
    });
}

#[test]
fn arbitrary_bytes_into_handle_up_never_panic() {
    let view = View::initial((1..=3).map(EndpointId).collect());
    bolero::check!().with_type::<(u16, bool, Vec<Vec<u8>>)>().for_each(|(from, send, datagrams)| {
        let (mut rng, mut up, mut dn) = (Rng::new(0), VecDeque::new(), VecDeque::new());
        let mut c = ChkFifo::new();
        for d in datagrams {
            let msg = Msg::from_wire(Bytes::from(d.clone()));
            let from = Rank(*from % 5);
            let ev = if *send { Up::Send { from, msg } } else { Up::Cast { from, msg } };
            c.handle_up(ev, &mut Cx::new(Time::ZERO, &view, Rank(0), &mut rng, &mut up, &mut dn));
        }
        let mut d = Vec::new();
        c.dump(&mut d);
        let delivered = up.iter().filter(|e| matches!(e, Up::Cast { .. } | Up::Send { .. })).count() as u64;
        let dropped = d[0].counter("bad_hdr").unwrap() + d[0].counter("bad_rank").unwrap();
        assert_eq!(delivered + dropped, datagrams.len() as u64, "every input delivered or counted");
        assert!(dn.is_empty());
    });
}

/// The reference: per sender, the set of numbers seen and the next one expected.
#[derive(Default)]
struct Model {
    seen: [BTreeSet<u64>; 3],
    next: [u64; 3],
}

impl Model {
    fn arrive(&mut self, r: usize, seq: u64) -> Option<&'static str> {
        let fresh = self.seen[r].insert(seq);
        let next = self.next[r];
        if seq >= next {
            self.next[r] = seq + 1;
        }
        match () {
            _ if !fresh => Some("duplicate"),
            _ if seq == next => None,
            _ if seq > next => Some("gap"),
            _ => Some("reorder"),
        }
    }
    fn missing(&self) -> u64 {
        (0..3).map(|r| self.next[r] - self.seen[r].len() as u64).sum()
    }
}

#[test]
fn fifo_checker_matches_the_model() {
    bolero::check!().with_type::<Vec<(u8, u8)>>().for_each(|arrivals| {
        let (mut f, mut m) = (Fifo::default(), Model::default());
        for &(r, seq) in arrivals {
            let (r, seq) = ((r % 3) as usize, (seq % 40) as u64);
            let got: Vec<&str> = f.arrive(Rank(r as u16), &seq).iter().map(|v| v.kind).collect();
            let want: Vec<&str> = m.arrive(r, seq).into_iter().collect();
            assert_eq!(got, want, "rank {r} seq {seq}");
            assert_eq!(f.missing(), m.missing());
        }
    });
}

// ---------------------------------------------------------------- simulated groups

fn reg() -> Registry {
    let mut r = Registry::new();
    debug::register(&mut r);
    r
}

/// Runs a group of three with `spec`: each member casts `n` times, 1 ms apart. Returns, per
/// node, the deliveries and the chk_fifo errors (their details).
fn run(seed: u64, spec: &str, link: Link, n: u32) -> Result<Vec<(usize, Vec<String>)>, String> {
    let mut sim = Sim::new(seed);
    sim.set_default_link(link);
    let ids: Vec<EndpointId> = (1..=3).map(EndpointId).collect();
    let (r, spec) = (reg(), spec.to_string());
    let nodes = sim.add_group(GroupId::named("chk"), &ids, move |_| r.build(&spec).expect("spec builds"));
    for k in 0..n {
        for &node in &nodes {
            sim.cast(node, format!("{node}:{k}")).map_err(|e| e.to_string())?;
        }
        sim.run_for(MS);
    }
    sim.run_until_quiet(Duration::from_secs(1)).map_err(|e| e.to_string())?;
    Ok(nodes
        .iter()
        .map(|&node| {
            let errors = sim
                .events(node)
                .iter()
                .filter_map(|e| match &e.event {
                    Event::Error { layer: "chk_fifo", detail } => Some(detail.clone()),
                    _ => None,
                })
                .collect::<Vec<_>>();
            assert_eq!(sim.stats(node).layer_errors, errors.len() as u64);
            (sim.delivered(node).len(), errors)
        })
        .collect())
}

fn errors_of(kind: &str, out: &[(usize, Vec<String>)]) -> usize {
    out.iter().flat_map(|(_, e)| e).filter(|d| d.starts_with(kind)).count()
}

#[test]
fn silent_over_a_clean_bare_stack() {
    check_seeds("silent_over_a_clean_bare_stack", 0..8, |seed| {
        let out = run(seed, "chk_fifo", Link::default(), 20)?;
        for (i, (delivered, errors)) in out.iter().enumerate() {
            if *delivered != 60 || !errors.is_empty() {
                return Err(format!("node {i}: {delivered} of 60 delivered, errors {errors:?}"));
            }
        }
        Ok(())
    });
}

#[test]
fn reports_gaps_under_drop_and_under_network_loss() {
    check_seeds("reports_gaps_under_drop_and_under_network_loss", 0..8, |seed| {
        let out = run(seed, "chk_fifo:drop(p=0.2)", Link::default(), 20)?;
        let gaps = errors_of("gap", &out);
        // Own casts are never dropped (loopback), so only gaps and nothing else is possible.
        if gaps == 0 || errors_of("duplicate", &out) + errors_of("reorder", &out) > 0 {
            return Err(format!("drop(p=0.2): {gaps} gaps, errors {out:?}"));
        }
        let lossy = Link { loss: 0.2, ..Link::default() };
        let out = run(seed, "chk_fifo", lossy, 20)?;
        if errors_of("gap", &out) == 0 {
            return Err(format!("20% network loss: no gap reported: {out:?}"));
        }
        Ok(())
    });
}

#[test]
fn reports_duplicates_under_dup() {
    check_seeds("reports_duplicates_under_dup", 0..8, |seed| {
        let out = run(seed, "chk_fifo:dup(p=0.2)", Link::default(), 20)?;
        let dups = errors_of("duplicate", &out);
        let extra: usize = out.iter().map(|(d, _)| d - 60).sum();
        // Every extra delivery is one duplicate report, and nothing else is reported.
        if dups == 0 || dups != extra || errors_of("gap", &out) + errors_of("reorder", &out) > 0 {
            return Err(format!("dup(p=0.2): {dups} duplicates for {extra} extra deliveries: {out:?}"));
        }
        Ok(())
    });
}

#[test]
fn reports_reorders_under_shuffle() {
    check_seeds("reports_reorders_under_shuffle", 0..8, |seed| {
        // Casts from a sender are 1 ms apart: hold up to 5 ms so windows span several.
        let out = run(seed, "chk_fifo:shuffle(window=4,ms=5)", Link::default(), 20)?;
        let (gaps, reorders) = (errors_of("gap", &out), errors_of("reorder", &out));
        // A late message first shows as a gap when its successor overtakes it, then as a
        // reorder when it arrives; nothing is lost or duplicated, so each gap's holes fill.
        if reorders == 0 || gaps == 0 || errors_of("duplicate", &out) > 0 {
            return Err(format!("shuffle: {gaps} gaps, {reorders} reorders: {out:?}"));
        }
        if out.iter().any(|(d, _)| *d != 60) {
            return Err(format!("shuffle lost or added deliveries: {out:?}"));
        }
        Ok(())
    });
}

#[test]
fn the_checker_sees_what_a_member_received_not_what_it_sent() {
    // A scripted loss of rank 1's 5th cast (number 4) at every receiver: one gap per receiver,
    // each naming rank 1 and the missing number.
    let out = run(0, "chk_fifo:drop(nth=5,from=1)", Link::default(), 6).unwrap();
    let all: Vec<&String> = out.iter().flat_map(|(_, e)| e).collect();
    assert_eq!(all.len(), 2, "{all:?}");
    for d in all {
        assert!(d.starts_with("gap from rank 1 at rank ") && d.ends_with("expected cast 4, got 5 (1 missing)"), "{d}");
    }
}
