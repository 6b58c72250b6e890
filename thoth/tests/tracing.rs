//! Tracing: a simulated group of three (`group` stack) forms, casts and loses a member
//! that leaves, under a `tracing` subscriber. View changes and each flush step are events
//! at `info` (with the group, the member and the view); every event handed to a layer is an
//! event at `trace` (with the layer, its place in the stack and the direction), present in
//! this (debug) build; and with the subscriber at `info`, no `trace` event is written.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use thoth::sim::Sim;
use thoth::*;
use tracing_subscriber::filter::LevelFilter;

/// What the subscriber wrote, shared with the test.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Three members form a group, cast, and one leaves, with the subscriber at `level`: what
/// it wrote.
fn run(level: LevelFilter) -> String {
    let out = Captured::default();
    let writer = out.clone();
    let subscriber =
        tracing_subscriber::fmt().with_max_level(level).with_ansi(false).with_writer(move || writer.clone()).finish();
    tracing::subscriber::with_default(subscriber, || {
        let mut sim: Sim = Sim::new(7);
        let nodes: Vec<_> = (1..=3)
            .map(|k| {
                sim.add_node(move |spawn: thoth::sim::Spawn| {
                    let cfg = Config { seed: spawn.seed, ..Config::joining(GroupId(0x7ace), EndpointId(k)) };
                    Endpoint::from_spec(cfg, &registry(), "group").unwrap()
                })
            })
            .collect();
        let view_of = |sim: &Sim, n| sim.endpoint(n).map_or(0, |ep| ep.view().len());
        for _ in 0..200 {
            if nodes.iter().all(|&n| view_of(&sim, n) == 3) {
                break;
            }
            sim.run_for(Duration::from_millis(50));
        }
        assert!(nodes.iter().all(|&n| view_of(&sim, n) == 3), "no view of three");
        sim.cast(nodes[0], Bytes::from_static(b"traced")).unwrap();
        sim.run_for(Duration::from_millis(200));
        sim.leave(nodes[2]).unwrap();
        for _ in 0..100 {
            if view_of(&sim, nodes[0]) == 2 {
                break;
            }
            sim.run_for(Duration::from_millis(50));
        }
        assert_eq!(view_of(&sim, nodes[0]), 2, "the leave did not change the view");
    });
    String::from_utf8(out.0.lock().unwrap().clone()).unwrap()
}

#[test]
fn view_changes_at_info_and_the_layer_boundary_at_trace() {
    let info = run(LevelFilter::INFO);
    for step in ["view installed", "flush: blocked", "flush: cut", "flush: install"] {
        assert!(info.lines().any(|l| l.contains(" INFO ") && l.contains(step)), "no `{step}` at info:\n{info}");
    }
    let installed = info.lines().find(|l| l.contains("view installed")).unwrap();
    for field in ["group=", "me=", "view=", "members="] {
        assert!(installed.contains(field), "{field} missing: {installed}");
    }
    assert!(!info.contains(" TRACE "), "trace events written at info");

    let trace = run(LevelFilter::TRACE);
    let boundary: Vec<&str> = trace.lines().filter(|l| l.contains(" TRACE ") && l.contains("layer=")).collect();
    for layer in ["gms", "heartbeat", "nak", "frag", "pack"] {
        assert!(boundary.iter().any(|l| l.contains(&format!("layer=\"{layer}\""))), "no trace at {layer}");
    }
    assert!(boundary.iter().any(|l| l.contains("dir=\"dn\"") && l.contains("Cast")), "no cast going down");
    assert!(boundary.iter().any(|l| l.contains("dir=\"up\"") && l.contains("Cast")), "no cast coming up");
}
