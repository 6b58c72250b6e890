//! The view change travels through every layer of the `group` stack, in the contract's order
//! (`thoth_stack::layer`): a recording layer at every position of
//! `gms:heartbeat:frag:flow:stable:nak:pt2pt:pack` (above the first, between each two,
//! below the last) logs what it sees, and every view a member leaves by a flush must show,
//! at every position, Block, Failed, BlockOk (below gms), the cut going down and coming back
//! up (below gms: each `CutReached` for the latest `Cut`), then Install last; a provisional
//! view is left by Install alone. The harness is trusted because it catches the old contract
//! put back: a layer that keeps `Dn::Block` to itself, as every layer but gms once did.

use std::sync::{Arc, Mutex};
use thoth_failure_detector::heartbeat::Heartbeat;
use thoth_layers::{flow::Flow, frag::Frag, nak::Nak, pack::Pack, pt2pt::Pt2pt, stable::Stable};
use thoth_membership::gms::{self, Gms};
use thoth_stack::sim::{Link, NodeId, Sim, check_seeds, failed_seed};
use thoth_stack::{Config, Cx, Dn, Dump, Duration, Endpoint, EndpointId, GroupId, Layer, Rng, Stack, Up, View, ViewId};

/// What a recorder saw of a view change.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Step {
    Block,
    Failed,
    BlockOk,
    Cut(Vec<u64>),
    CutReached(Vec<u64>),
    Install,
}

/// (member, view of the stack, position, step), in the order the recorders saw them.
type Log = Arc<Mutex<Vec<(EndpointId, ViewId, usize, Step)>>>;

/// Passes everything on; logs the steps of the view change.
struct Rec {
    pos: usize,
    log: Log,
}

impl Rec {
    fn note(&self, step: Option<Step>, cx: &Cx<'_>) {
        if let Some(step) = step {
            let me = cx.view.member(cx.rank).unwrap_or_default();
            self.log.lock().unwrap().push((me, cx.view.id, self.pos, step));
        }
    }
}

impl Layer for Rec {
    fn name(&self) -> &'static str {
        "rec"
    }
    fn handle_dn(&mut self, ev: Dn, cx: &mut Cx<'_>) {
        let step = match &ev {
            Dn::Block => Some(Step::Block),
            Dn::Failed(_) => Some(Step::Failed),
            Dn::BlockOk => Some(Step::BlockOk),
            Dn::Cut(c) => Some(Step::Cut(c.clone())),
            Dn::Install(_) => Some(Step::Install),
            _ => None,
        };
        self.note(step, cx);
        cx.dn(ev)
    }
    fn handle_up(&mut self, ev: Up, cx: &mut Cx<'_>) {
        let step = match &ev {
            Up::Block => Some(Step::Block),
            Up::Failed(_) => Some(Step::Failed),
            Up::CutReached(c) => Some(Step::CutReached(c.clone())),
            Up::Install(_) => Some(Step::Install),
            _ => None,
        };
        self.note(step, cx);
        cx.up(ev)
    }
    fn dump(&self, _: &mut Vec<Dump>) {}
}

/// The planted bug: a layer that keeps `Dn::Block` to itself.
struct KeepsBlock;

impl Layer for KeepsBlock {
    fn name(&self) -> &'static str {
        "keeps_block"
    }
    fn handle_dn(&mut self, ev: Dn, cx: &mut Cx<'_>) {
        if ev != Dn::Block {
            cx.dn(ev)
        }
    }
    fn handle_up(&mut self, ev: Up, cx: &mut Cx<'_>) {
        cx.up(ev)
    }
    fn dump(&self, _: &mut Vec<Dump>) {}
}

/// The layers of `group` below gms, top first.
fn below_gms() -> Vec<Box<dyn Layer>> {
    vec![
        Box::new(Heartbeat::default()),
        Box::new(Frag::default()),
        Box::new(Flow::default()),
        Box::new(Stable::default()),
        Box::new(Nak::default()),
        Box::new(Pt2pt::default()),
        Box::new(Pack::default()),
    ]
}

/// Recorders: one above gms and one below each layer.
const POSITIONS: usize = 9;

fn stack(log: &Log, plant: bool) -> Stack {
    let rec = |pos| Rec { pos, log: log.clone() };
    let mut b = Stack::builder().push(rec(0)).push(Gms::new(gms::Config::default())).push(rec(1));
    for (i, layer) in below_gms().into_iter().enumerate() {
        if plant && i == 2 {
            b = b.push(KeepsBlock);
        }
        b = b.push_boxed(layer).push(rec(i + 2));
    }
    b.build().expect("the recorded group stack is well formed")
}

/// Checks the steps one position saw of one view.
fn check_view(pos: usize, steps: &[Step], provisional: bool) -> Result<(), String> {
    if provisional {
        return if steps == [Step::Install] { Ok(()) } else { Err(format!("provisional view: {steps:?}")) };
    }
    let below_gms = pos > 0;
    if steps.first() != Some(&Step::Block) || steps.get(1) != Some(&Step::Failed) {
        return Err(format!("does not start with Block, Failed: {steps:?}"));
    }
    if steps.last() != Some(&Step::Install) || steps.iter().filter(|s| **s == Step::Install).count() != 1 {
        return Err(format!("Install is not last and once: {steps:?}"));
    }
    if steps.iter().filter(|s| **s == Step::Block).count() != 1 {
        return Err(format!("Block more than once: {steps:?}"));
    }
    let block_ok = steps.iter().position(|s| *s == Step::BlockOk);
    if below_gms && (block_ok.is_none() || steps.iter().filter(|s| **s == Step::BlockOk).count() != 1) {
        return Err(format!("BlockOk not exactly once: {steps:?}"));
    }
    let mut cut: Option<&Vec<u64>> = None;
    let (mut reached_since_failed, mut failed_seen) = (false, false);
    for (i, s) in steps.iter().enumerate() {
        match s {
            Step::Failed => {
                failed_seen = true;
                reached_since_failed = false;
            }
            Step::Cut(c) if below_gms && block_ok.is_some_and(|b| b < i) => cut = Some(c),
            Step::Cut(_) => return Err(format!("Cut before BlockOk, or above gms: {steps:?}")),
            Step::CutReached(c) if below_gms && cut != Some(c) => {
                return Err(format!("CutReached for another cut than the last: {steps:?}"));
            }
            Step::CutReached(_) if failed_seen => reached_since_failed = true,
            _ => {}
        }
    }
    if !reached_since_failed {
        return Err(format!("the last attempt's cut was not reached before Install: {steps:?}"));
    }
    Ok(())
}

/// Checks every view some member left by Install; returns how many (member, view) moves.
fn check_log(log: &Log) -> Result<usize, String> {
    let log = log.lock().unwrap();
    let mut views: Vec<(EndpointId, ViewId)> = log.iter().map(|(m, v, _, _)| (*m, *v)).collect();
    views.sort();
    views.dedup();
    let mut moves = 0;
    for (m, v) in views {
        let at = |pos: usize| -> Vec<Step> {
            log.iter().filter(|e| e.0 == m && e.1 == v && e.2 == pos).map(|e| e.3.clone()).collect()
        };
        if !at(0).contains(&Step::Install) {
            continue; // left without a next view (crashed, left, or the run ended)
        }
        moves += 1;
        for pos in 0..POSITIONS {
            check_view(pos, &at(pos), v.ltime == 0)
                .map_err(|e| format!("member {m:?} view {v:?} position {pos}: {e}"))?;
        }
    }
    Ok(moves)
}

/// Four members form a group, cast, lose one to a crash, let one leave, take one in; every
/// view change is checked at every position.
fn run(seed: u64, plant: bool) -> Result<(), String> {
    let mut plan = Rng::new(seed ^ 0x6c69_6665);
    let mut sim: Sim = Sim::new(seed);
    sim.set_default_link(Link { loss: plan.unit() * 0.05, ..Link::default() });
    let log: Log = Arc::new(Mutex::new(Vec::new()));
    let add = |sim: &mut Sim, k: u64| -> NodeId {
        let log = log.clone();
        sim.add_node(move |spawn| {
            let cfg = Config { seed: spawn.seed, ..Config::joining(GroupId(9), EndpointId(k)) };
            let log = log.clone();
            Endpoint::new(cfg, move |_: &View| stack(&log, plant)).expect("a joining endpoint")
        })
    };
    let nodes: Vec<NodeId> = (1..=4).map(|k| add(&mut sim, k)).collect();
    let settle = |sim: &mut Sim| {
        for _ in 0..40 {
            for &n in &nodes {
                let _ = sim.cast(n, "x");
            }
            sim.run_for(Duration::from_millis(50));
        }
    };
    settle(&mut sim);
    sim.crash(nodes[1 + plan.below(3) as usize]);
    settle(&mut sim);
    let live: Vec<NodeId> = nodes.iter().copied().filter(|&n| sim.is_up(n)).collect();
    let _ = sim.leave(live[live.len() - 1]);
    settle(&mut sim);
    add(&mut sim, 5);
    settle(&mut sim);
    let moves = check_log(&log)?;
    // Four first views, the crash's change at three, the leave's at two, the join's at two.
    if moves < 4 + 3 + 2 + 2 {
        return Err(format!("only {moves} view changes were seen whole"));
    }
    Ok(())
}

#[test]
fn every_layer_sees_the_whole_view_change_in_order() {
    check_seeds("every_layer_sees_the_whole_view_change_in_order", 0..20, |seed| run(seed, false));
}

#[test]
fn a_layer_that_keeps_block_to_itself_is_caught() {
    let caught = std::panic::catch_unwind(|| {
        check_seeds("a_layer_that_keeps_block_to_itself_is_caught", 0..1, |seed| run(seed, true));
    });
    let msg = caught.err().and_then(|e| e.downcast_ref::<String>().cloned()).expect("the planted bug is caught");
    assert!(failed_seed(&msg).is_some() && msg.contains("does not start with Block"), "{msg}");
}
