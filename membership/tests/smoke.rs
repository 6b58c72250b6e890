use thoth_stack::sim::Sim;
use thoth_stack::{Config, Duration, Endpoint, EndpointId, Event, GroupId, Registry, Stack, Time};

fn registry() -> Registry {
    let mut r = thoth_layers::registry();
    thoth_failure_detector::register(&mut r);
    thoth_membership::register(&mut r);
    r
}

fn add(sim: &mut Sim<Stack>, id: u64, spec: &'static str) -> thoth_stack::sim::NodeId {
    let reg = registry();
    sim.add_node(move |spawn| {
        let me = EndpointId(id * 100 + spawn.incarnation as u64);
        let cfg = Config { seed: spawn.seed, ..Config::joining(GroupId(7), me) };
        Endpoint::from_spec(cfg, &reg, spec).unwrap()
    })
}

fn views(sim: &Sim<Stack>, n: thoth_stack::sim::NodeId) -> Vec<String> {
    sim.events(n)
        .iter()
        .filter_map(|e| match &e.event {
            Event::View(v) => Some(format!("{:?}@{:?} {:?}", v.id, e.at, v.members)),
            Event::Exit => Some("exit".into()),
            _ => None,
        })
        .collect()
}

#[test]
fn five_concurrent_starters_form_one_group() {
    let mut sim: Sim<Stack> = Sim::new(1);
    let spec = "gms:heartbeat:reliable";
    let nodes: Vec<_> = (1..=5).map(|i| add(&mut sim, i, spec)).collect();
    sim.run_until(Time::ZERO + Duration::from_secs(3));
    for &n in &nodes {
        eprintln!("{n:?}: {:?}", views(&sim, n));
    }
    let last: Vec<_> = nodes.iter().map(|&n| sim.endpoint(n).unwrap().view().clone()).collect();
    assert!(last.iter().all(|v| v == &last[0] && v.len() == 5), "{last:?}");
    for &n in &nodes {
        sim.cast(n, format!("m{n:?}")).unwrap();
    }
    sim.run_for(Duration::from_secs(1));
    sim.crash(nodes[2]);
    sim.run_for(Duration::from_secs(3));
    for &n in &nodes {
        eprintln!(
            "{n:?}: {:?} {:?}",
            views(&sim, n),
            sim.endpoint(n).map(|e| e.dump().into_iter().find(|d| d.layer == "gms"))
        );
    }
    let last: Vec<_> = [0, 1, 3, 4].iter().map(|&i| sim.endpoint(nodes[i]).unwrap().view().clone()).collect();
    assert!(last.iter().all(|v| v == &last[0] && v.len() == 4), "{last:?}");
    sim.leave(nodes[4]).unwrap();
    sim.run_for(Duration::from_secs(1));
    let last: Vec<_> = [0, 1, 3].iter().map(|&i| sim.endpoint(nodes[i]).unwrap().view().clone()).collect();
    assert!(last.iter().all(|v| v == &last[0] && v.len() == 3), "{last:?}");
    assert_eq!(views(&sim, nodes[4]).last().map(|s| s.as_str()), Some("exit"));
}
