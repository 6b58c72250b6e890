//! `Dn::Failed` through the whole reliable stack (`frag:flow:stable:nak:pt2pt:pack`) in the
//! simulator, with no membership layer: a test-only layer on top (`Inject`) plays the
//! membership layer's flush — the application's `block_ok` becomes `Dn::Failed([crashed
//! rank])` and `Dn::GetDigest` (the digests are recorded), and `send_state(cut)` becomes
//! `Dn::Cut(cut)`, the cut the test computes as the membership layer would (for the crashed
//! member, the most any survivor had delivered when told; no limit for the others).
//!
//! The scenario, for every seed (N = 3..=7 members, links lossy, duplicating and reordering,
//! all chosen by the seed): members cast; one member (the crasher) casts a burst, its links
//! to some survivors are cut, it casts a few more (those reach only the others), and it
//! crashes. A survivor then casts until flow control blocks it (the crasher never grants
//! again), and must stay blocked for `BLOCKED_FOR`. Then every survivor is told the crasher
//! failed. Properties:
//! - after `Failed` no survivor delivers more of the crasher's casts until the cut, and its
//!   digest says what it had delivered;
//! - within `CONVERGE` of simulated time after the cut every survivor has delivered exactly
//!   the crasher's casts `0..cut`, in order (a test-only `Spy` under nak records what
//!   arrived: the cut is never beyond the first cast of the crasher no survivor received),
//!   and the blocked sender can cast again, its held cast delivered everywhere;
//! - after more casts from the survivors and `SETTLE` of simulated time, every survivor has
//!   delivered every survivor's casts exactly once in order, and stability over the survivors
//!   freed every buffer (`nak.buffered`, `stable.unstable` are 0) and nothing is held back
//!   by flow.
//!
//! Planted bugs must be caught, each with a seed that replays: a nak that never announces
//! `Have` (survivors cut off from the crasher's last casts never learn of them), and a flow
//! or stable layer that never sees `Dn::Failed` (`Blind`: the sender stays blocked; every
//! later cast stays unstable, hence buffered).
//!
//! `THOTH_SIM_SEEDS=N` runs more seeds; `THOTH_SIM_SEED=S` replays one;
//! `FAILED_SIM_VERBOSE=1` (with `--nocapture`) prints each seed's convergence time and counts.

use std::collections::BTreeSet;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex};
use thoth_layers::flow::{self, Flow};
use thoth_layers::frag::Frag;
use thoth_layers::nak::{self, Nak, NakHdr};
use thoth_layers::stable::{self, Stable};
use thoth_stack::sim::{CmdError, Link, NodeId, Sim, check_seeds, failed_seed};
use thoth_stack::{
    Bytes, CastError, Cx, Dn, Dump, Duration, EndpointId, GroupId, Layer, Props, Rank, Rng, Stack, Time, Up, View,
};

const MS: Duration = Duration::from_millis(1);
fn us(n: u64) -> Duration {
    Duration::from_micros(n)
}

/// Flow credits (bytes): small, so a survivor blocks on the crasher quickly.
const CREDITS: u64 = 3000;
/// How long the blocked survivor must stay blocked before `Failed` (it waits on the crasher).
const BLOCKED_FOR: Duration = Duration::from_millis(30);
/// Simulated time after `Failed` within which the survivors converge and the sender unblocks
/// (with these timers the slowest of 5000 seeds took 20 ms; most take 2 to 8 ms).
const CONVERGE: Duration = Duration::from_millis(100);
/// Simulated time for the final casts to settle and become stable.
const SETTLE: Duration = Duration::from_millis(1000);

/// Per survivor rank: its digest when told, and whether it reached the cut.
type Flushes = Arc<Mutex<Vec<(Option<Vec<u64>>, bool)>>>;

/// Test only, the flush of a membership layer: `Dn::BlockOk` becomes `Dn::Failed([failed])`
/// and `Dn::GetDigest`; `Dn::State(cut)` (little-endian u64s) becomes `Dn::Cut`; the digest
/// and `Up::CutReached` are recorded. Everything else passes untouched.
struct Inject {
    failed: Rank,
    flushes: Flushes,
}

impl Layer for Inject {
    fn name(&self) -> &'static str {
        "inject_failed"
    }
    fn handle_dn(&mut self, ev: Dn, cx: &mut Cx<'_>) {
        match ev {
            Dn::BlockOk => {
                cx.dn(Dn::Failed(vec![self.failed]));
                cx.dn(Dn::GetDigest);
            }
            Dn::State(b) => cx.dn(Dn::Cut(b.chunks(8).map(|c| u64::from_le_bytes(c.try_into().unwrap())).collect())),
            ev => cx.dn(ev),
        }
    }
    fn handle_up(&mut self, ev: Up, cx: &mut Cx<'_>) {
        let mut f = self.flushes.lock().unwrap();
        match ev {
            Up::Digest(d) => f[cx.rank.index()].0 = Some(d),
            Up::CutReached(_) => f[cx.rank.index()].1 = true,
            ev => cx.up(ev),
        }
    }
    fn dump(&self, out: &mut Vec<Dump>) {
        out.push(Dump { layer: "inject_failed", ..Dump::default() })
    }
}

fn nak_cfg() -> nak::Config {
    nak::Config {
        nak_delay: MS,
        nak_interval: 3 * MS,
        rtx_interval: MS,
        tail_interval: 3 * MS,
        window: 64,
        ..nak::Config::default()
    }
}

/// Test only, under nak: records the sequence numbers of the failed member's casts that
/// reach a survivor (first copies and retransmissions), held or delivered. Passes all
/// untouched. The crasher casts at most 42 times, under nak's window of 64, so nothing that
/// arrives is dropped for overflow.
struct Spy {
    failed: Rank,
    seen: Arc<Mutex<BTreeSet<u64>>>,
}

impl Layer for Spy {
    fn name(&self) -> &'static str {
        "spy"
    }
    fn handle_dn(&mut self, ev: Dn, cx: &mut Cx<'_>) {
        cx.dn(ev)
    }
    fn handle_up(&mut self, ev: Up, cx: &mut Cx<'_>) {
        if let Up::Cast { from, msg } | Up::Send { from, msg } = &ev
            && cx.rank != self.failed
        {
            // nak's header, as nak above will see it.
            let mut m = msg.clone();
            m.unseal();
            let seq = match m.pop::<NakHdr>() {
                Ok(NakHdr::Data { seq }) if *from == self.failed => Some(seq),
                Ok(NakHdr::Retrans { origin, seq }) if origin == self.failed => Some(seq),
                _ => None,
            };
            self.seen.lock().unwrap().extend(seq);
        }
        cx.up(ev)
    }
    fn dump(&self, out: &mut Vec<Dump>) {
        out.push(Dump { layer: "spy", ..Dump::default() })
    }
}

/// Test only, a planted bug: the wrapped layer never sees `Dn::Failed` (it still goes down).
struct Blind<L>(L);

impl<L: Layer> Layer for Blind<L> {
    fn name(&self) -> &'static str {
        self.0.name()
    }
    fn requires(&self) -> Props {
        self.0.requires()
    }
    fn provides(&self) -> Props {
        self.0.provides()
    }
    fn init(&mut self, cx: &mut Cx<'_>) {
        self.0.init(cx)
    }
    fn end_turn(&mut self, cx: &mut Cx<'_>) {
        self.0.end_turn(cx)
    }
    fn handle_dn(&mut self, ev: Dn, cx: &mut Cx<'_>) {
        match ev {
            Dn::Failed(_) => cx.dn(ev),
            ev => self.0.handle_dn(ev, cx),
        }
    }
    fn handle_up(&mut self, ev: Up, cx: &mut Cx<'_>) {
        self.0.handle_up(ev, cx)
    }
    fn poll_timeout(&self) -> Option<Time> {
        self.0.poll_timeout()
    }
    fn handle_timeout(&mut self, cx: &mut Cx<'_>) {
        self.0.handle_timeout(cx)
    }
    fn dump(&self, out: &mut Vec<Dump>) {
        self.0.dump(out)
    }
}

/// What a run breaks on purpose (nothing, normally).
#[derive(Clone, Default)]
struct Bugs {
    nak: nak::Config,
    /// The layer that never learns of the failure (`flow` or `stable`).
    blind: Option<&'static str>,
}

fn boxed<L: Layer + 'static>(l: L, blind: bool) -> Box<dyn Layer> {
    if blind { Box::new(Blind(l)) } else { Box::new(l) }
}

/// `inject:frag:flow:stable:nak:spy:pt2pt:pack`, nak built in code so tests can break it.
fn stack(
    failed: Rank,
    bugs: Bugs,
    seen: Arc<Mutex<BTreeSet<u64>>>,
    flushes: Flushes,
) -> impl Fn(&View) -> Stack + Clone + Send + 'static {
    move |_view: &View| {
        let lower = thoth_layers::registry().build("pt2pt(ack_delay_ms=1,rto_ms=10,max_rto_ms=40):pack").unwrap();
        let flow = Flow::new(flow::Config { credits: CREDITS, req_interval: 5 * MS, ..flow::Config::default() });
        let stable = Stable::new(stable::Config { period: 3 * MS });
        Stack::builder()
            .push(Inject { failed, flushes: flushes.clone() })
            .push(Frag::default())
            .push_boxed(boxed(flow, bugs.blind == Some("flow")))
            .push_boxed(boxed(stable, bugs.blind == Some("stable")))
            .push(Nak::new(bugs.nak.clone()))
            .push(Spy { failed, seen: seen.clone() })
            .push(lower)
            .build()
            .unwrap()
    }
}

/// `sender:k:` then filler that depends on both, so a mixed-up payload shows.
fn payload(sender: usize, k: u32) -> Bytes {
    let mut v = format!("{sender}:{k}:").into_bytes();
    v.extend((0..20 + (sender as u32 * 7 + k) % 40).map(|i| (i as u8).wrapping_mul(31) ^ k as u8));
    Bytes::from(v)
}

fn counter(sim: &Sim, n: NodeId, layer: &str, name: &str) -> Result<u64, String> {
    let ep = sim.endpoint(n).ok_or(format!("node {n} is down"))?;
    let dumps = ep.dump();
    let d = dumps.iter().find(|d| d.layer == layer).ok_or(format!("no layer {layer}"))?;
    d.counter(name).ok_or(format!("no counter {layer}.{name}"))
}

/// What node `n` delivered from each sender, by sender index.
fn by_sender(sim: &Sim, n: NodeId, members: usize) -> Result<Vec<Vec<Bytes>>, String> {
    let mut got = vec![Vec::new(); members];
    for d in sim.delivered(n) {
        let s = (d.from.0 as usize).checked_sub(1).filter(|&s| s < members);
        got[s.ok_or(format!("{n} delivered from unknown {:?}", d.from))?].push(d.data.clone());
    }
    Ok(got)
}

/// `got` is exactly `payload(s, 0..want)`.
fn exactly(got: &[Bytes], s: usize, want: u32, who: NodeId, when: &str) -> Result<(), String> {
    let expect: Vec<Bytes> = (0..want).map(|k| payload(s, k)).collect();
    if got == expect {
        return Ok(());
    }
    let pos = got.iter().zip(&expect).position(|(a, b)| a != b).unwrap_or(got.len().min(expect.len()));
    Err(format!("{when}: node {who} got {} casts from sender {s}, want {want} (first difference at #{pos})", got.len()))
}

/// Casts from `n` and counts it; false if flow control refused it.
fn cast(sim: &mut Sim, n: NodeId, s: usize, sent: &mut [u32]) -> Result<bool, String> {
    match sim.cast(n, payload(s, sent[s])) {
        Ok(()) => {
            sent[s] += 1;
            Ok(true)
        }
        Err(CmdError::Refused(CastError::WouldBlock)) => Ok(false),
        Err(e) => Err(format!("cast from {n}: {e}")),
    }
}

fn crash_run(seed: u64, bugs: Bugs) -> Result<(), String> {
    let mut plan = Rng::new(seed ^ 0x6661_696c);
    let n = 3 + plan.below(5) as usize;
    let c = plan.below(n as u64) as usize;
    let mut sim = Sim::new(seed);
    sim.set_default_link(Link {
        loss: plan.unit() * 0.15,
        dup: plan.unit() * 0.05,
        reorder: plan.unit() * 0.2,
        delay: us(50 + plan.below(250)),
        jitter: us(plan.below(300)),
        corrupt: 0.0,
    });
    let ids: Vec<EndpointId> = (1..=n as u64).map(EndpointId).collect();
    let seen = Arc::new(Mutex::new(BTreeSet::new()));
    let flushes: Flushes = Arc::new(Mutex::new(vec![(None, false); n]));
    let nodes =
        sim.add_group(GroupId::named("failed"), &ids, stack(Rank(c as u16), bugs, seen.clone(), flushes.clone()));
    let survivors: Vec<usize> = (0..n).filter(|&s| s != c).collect();
    let mut sent = vec![0u32; n];

    // Everyone casts, the crasher most.
    for _ in 0..5 + plan.below(30) {
        let s = if plan.chance(0.5) { c } else { plan.below(n as u64) as usize };
        cast(&mut sim, nodes[s], s, &mut sent)?;
        sim.run_for(us(plan.below(300)));
    }
    // Its last casts reach only some survivors: at least one is cut off, at least one is not.
    let mut cut: Vec<usize> = survivors.iter().copied().filter(|_| plan.chance(0.5)).collect();
    if cut.is_empty() {
        cut.push(survivors[0]);
    }
    if cut.len() == survivors.len() {
        cut.pop();
    }
    let cut_nodes: Vec<NodeId> = cut.iter().map(|&s| nodes[s]).collect();
    sim.cut(&[nodes[c]], &cut_nodes);
    for _ in 0..1 + plan.below(8) {
        cast(&mut sim, nodes[c], c, &mut sent)?;
        sim.run_for(us(plan.below(200)));
    }
    sim.run_for(us(plan.below(2000)));
    sim.crash(nodes[c]);

    // A survivor casts until flow control blocks it: the crasher never grants again.
    let b = survivors[plan.below(survivors.len() as u64) as usize];
    let mut refused = false;
    for _ in 0..1000 {
        if !cast(&mut sim, nodes[b], b, &mut sent)? {
            refused = true;
            break;
        }
        sim.run_for(us(100));
    }
    if !refused {
        return Err(format!("node {} was never blocked by flow control", nodes[b]));
    }
    sim.run_for(BLOCKED_FOR);
    if sim.endpoint(nodes[b]).is_none_or(|ep| ep.can_cast()) {
        return Err(format!("node {} unblocked while its credit waits on the crashed member", nodes[b]));
    }

    // What survivors delivered of the crasher's casts is a prefix of them; the most any of
    // them delivered is the cut. What they had (delivered, or held past a gap) bounds it.
    let mut delivered = vec![0; n];
    for &s in &survivors {
        let got = by_sender(&sim, nodes[s], n)?;
        delivered[s] = got[c].len() as u32;
        exactly(&got[c], c, delivered[s], nodes[s], "before Failed")?;
    }
    let had = {
        let seen = seen.lock().unwrap();
        (0..).find(|k| !seen.contains(k)).unwrap() as u32
    };
    let max = delivered.iter().copied().max().unwrap_or(0);
    if had < max || had > sent[c] {
        return Err(format!("spy: survivors had {had} casts of {c}, delivered {max}, it sent {}", sent[c]));
    }
    for &s in &survivors {
        sim.with(nodes[s], |ep, now| ep.block_ok(now)).map_err(|e| e.to_string())?;
    }
    // Frozen: nothing more of the crasher is delivered before the cut, and the digests say
    // what each survivor had.
    sim.run_for(CONVERGE);
    for &s in &survivors {
        let got = by_sender(&sim, nodes[s], n)?.remove(c).len() as u32;
        let digest = flushes.lock().unwrap()[s].0.clone();
        if got != delivered[s] || digest.as_ref().map(|d| d[c]) != Some(u64::from(delivered[s])) {
            return Err(format!(
                "node {} delivered {got} casts of the failed {c} after Failed (had {}), digest {digest:?}",
                nodes[s], delivered[s]
            ));
        }
    }
    let cut: Vec<u64> = (0..n).map(|s| if s == c { u64::from(max) } else { u64::MAX }).collect();
    let cut_bytes = Bytes::from(cut.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>());
    for &s in &survivors {
        sim.with(nodes[s], |ep, now| ep.send_state(now, cut_bytes.clone())).map_err(|e| e.to_string())?;
    }
    let told = sim.now();

    // Converge within the bound.
    loop {
        let mut done = sim.endpoint(nodes[b]).is_some_and(|ep| ep.can_cast());
        for &s in &survivors {
            let got = by_sender(&sim, nodes[s], n)?;
            done &= got[c].len() as u32 == max && got[b].len() as u32 == sent[b];
        }
        if done {
            if std::env::var_os("FAILED_SIM_VERBOSE").is_some() {
                eprintln!("seed {seed}: converged {} us after Failed", (sim.now().as_nanos() - told.as_nanos()) / 1000);
            }
            break;
        }
        if sim.now() >= told + CONVERGE {
            let counts: Vec<usize> =
                survivors.iter().map(|&s| by_sender(&sim, nodes[s], n).map_or(0, |g| g[c].len())).collect();
            return Err(format!(
                "not converged {CONVERGE:?} after the cut: survivors {survivors:?} have {counts:?} casts of \
                 crashed {c} (cut {max}); sender {b} can cast: {}",
                sim.endpoint(nodes[b]).is_some_and(|ep| ep.can_cast())
            ));
        }
        sim.run_for(MS);
    }

    // Life goes on among the survivors, and everything becomes stable.
    for _ in 0..plan.below(10) {
        let s = survivors[plan.below(survivors.len() as u64) as usize];
        cast(&mut sim, nodes[s], s, &mut sent)?;
        sim.run_for(us(plan.below(300)));
    }
    sim.run_for(SETTLE);
    for &r in &survivors {
        let got = by_sender(&sim, nodes[r], n)?;
        for s in 0..n {
            exactly(&got[s], s, if s == c { max } else { sent[s] }, nodes[r], "at the end")?;
        }
        for (layer, name) in [("nak", "buffered"), ("stable", "unstable"), ("flow", "held"), ("flow", "blocked")] {
            let v = counter(&sim, nodes[r], layer, name)?;
            if v != 0 {
                return Err(format!("at the end, node {} has {layer}.{name} = {v}", nodes[r]));
            }
        }
    }
    if std::env::var_os("FAILED_SIM_VERBOSE").is_some() {
        let sum = |name| survivors.iter().map(|&s| counter(&sim, nodes[s], "nak", name).unwrap_or(0)).sum::<u64>();
        eprintln!(
            "seed {seed}: n {n} crashed {c} cut off {cut_nodes:?} delivered {delivered:?} had {had} of {} haves {} \
             naks {} from_failed {}",
            sent[c],
            sum("haves_sent"),
            sum("naks_sent"),
            sum("from_failed")
        );
    }
    Ok(())
}

#[test]
fn survivors_converge_on_a_crashed_members_casts_and_flow_unblocks() {
    check_seeds("survivors_converge_on_a_crashed_members_casts_and_flow_unblocks", 0..1000, |seed| {
        crash_run(seed, Bugs { nak: nak_cfg(), blind: None })
    });
}

fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default()
}

/// Runs `check_seeds` with a planted bug; it must fail with `expect` in the message, naming
/// a seed that fails again alike.
fn must_catch(test: &str, bugs: Bugs, expect: &str) {
    let failed = catch_unwind(AssertUnwindSafe(|| check_seeds(test, 0..1000, |seed| crash_run(seed, bugs.clone()))));
    let msg = panic_text(failed.expect_err("the simulator must catch the planted bug"));
    let seed: u64 = failed_seed(&msg).unwrap_or_else(|| panic!("no seed in: {msg}"));
    assert!(msg.contains(&format!("THOTH_SIM_SEED={seed} cargo test -p thoth-layers --test failed")), "{msg}");
    assert!(msg.contains(expect), "{msg}");
    let again = crash_run(seed, bugs).expect_err("the reported seed fails again");
    assert!(msg.contains(&again), "replay differs: {again} vs {msg}");
    eprintln!("caught as expected: {msg}");
}

/// Survivors cut off from the crasher's last casts never learn they exist.
#[test]
fn harness_catches_a_nak_that_never_announces_have() {
    let bugs = Bugs { nak: nak::Config { test_skip_have: true, ..nak_cfg() }, blind: None };
    must_catch("harness_catches_a_nak_that_never_announces_have", bugs, "not converged");
}

/// The blocked sender keeps waiting for the crasher's grant.
#[test]
fn harness_catches_a_flow_layer_blind_to_failed() {
    let bugs = Bugs { nak: nak_cfg(), blind: Some("flow") };
    must_catch("harness_catches_a_flow_layer_blind_to_failed", bugs, "can cast: false");
}

/// The crasher's frozen counts keep every later cast unstable, hence buffered.
#[test]
fn harness_catches_a_stable_layer_blind_to_failed() {
    let bugs = Bugs { nak: nak_cfg(), blind: Some("stable") };
    must_catch("harness_catches_a_stable_layer_blind_to_failed", bugs, "at the end");
}
