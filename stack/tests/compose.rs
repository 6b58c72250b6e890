//! Composition: static and dynamic stacks behave the same, keep FIFO between neighbours,
//! run timers, and reject ill-formed specs with errors that name the culprit.

mod common_layers;

use common_layers::{Log, Tag, Twice};
use std::collections::VecDeque;
use thoth_stack::testing::Harness;
use thoth_stack::*;

fn cast(body: &'static [u8]) -> Dn {
    Dn::Cast(Msg::new(Bytes::from_static(body)))
}

fn heads(dn: &VecDeque<Dn>) -> Vec<Vec<u8>> {
    dn.iter()
        .map(|e| match e {
            Dn::Cast(m) | Dn::CastUnrel(m) | Dn::Send(_, m) | Dn::SendUnrel(_, m) => {
                let mut v = m.head().to_vec();
                v.extend_from_slice(m.body());
                v
            }
            _ => format!("{e:?}").into_bytes(),
        })
        .collect()
}

fn period() -> Duration {
    Duration::from_millis(10)
}

#[test]
fn static_and_dynamic_stacks_emit_the_same_datagrams_in_the_same_order() {
    let log = Log::default();
    let mut stat = static_stack![
        Tag::new("a", 0xa, &log),
        Twice { period: period(), next: None, beats: 0 },
        Tag::new("b", 0xb, &log),
    ];
    let mut dynamic = Stack::builder()
        .push(Tag::new("a", 0xa, &log))
        .push(Twice { period: period(), next: None, beats: 0 })
        .push(Tag::new("b", 0xb, &log))
        .build()
        .unwrap();
    assert_eq!(dynamic.spec(), "a:twice:b");
    let (mut hs, mut hd) = (Harness::new(2, 0), Harness::new(2, 0));
    for body in [&b"one"[..], b"two"] {
        hs.dn(&mut stat, Time::ZERO, cast(body));
        hd.dn(&mut dynamic, Time::ZERO, cast(body));
    }
    // Bottom layer's header first on the wire; each cast doubled by `twice`, in order.
    let want: Vec<Vec<u8>> =
        [b"one", b"one", b"two", b"two"].iter().map(|b| [&[0xb, 0xa][..], &b[..]].concat()).collect();
    assert_eq!(heads(&hs.dn), want);
    assert_eq!(heads(&hd.dn), want);

    // And back up: each layer pops its own tag.
    for h in [&mut hs, &mut hd] {
        let sent: Vec<Dn> = h.dn.drain(..).collect();
        for d in sent {
            let Dn::Cast(m) = d else { panic!("not a cast") };
            let wire = thoth_stack::testing::over_wire(&m);
            h.up.push_back(Up::Cast { from: Rank(1), msg: wire });
        }
    }
    let ups: Vec<Up> = hs.up.drain(..).collect();
    hd.up.clear();
    for u in ups {
        hs.up(&mut stat, Time::ZERO, u.clone());
        hd.up(&mut dynamic, Time::ZERO, u);
    }
    let bodies = |q: &VecDeque<Up>| -> Vec<Bytes> {
        q.iter()
            .map(|u| match u {
                Up::Cast { msg, .. } => msg.clone().into_payload(),
                _ => panic!("unexpected {u:?}"),
            })
            .collect()
    };
    let want: Vec<Bytes> = ["one", "one", "two", "two"].map(Bytes::from).to_vec();
    assert_eq!(bodies(&hs.up), want);
    assert_eq!(bodies(&hd.up), want);
    let mut dumps = Vec::new();
    stat.dump(&mut dumps);
    assert_eq!(dumps.iter().map(|d| d.layer).collect::<Vec<_>>(), ["a", "twice", "b"]);
    assert!(dumps.iter().all(|d| d.counter("mismatches").unwrap_or(0) == 0));
}

#[test]
fn a_wrong_header_is_dropped_and_counted_not_delivered() {
    let log = Log::default();
    let mut s = Stack::builder().push(Tag::new("a", 1, &log)).build().unwrap();
    let mut h = Harness::new(2, 0);
    h.up(&mut s, Time::ZERO, Up::Cast { from: Rank(1), msg: Msg::from_wire(Bytes::from_static(&[2, 0])) });
    h.up(&mut s, Time::ZERO, Up::Cast { from: Rank(1), msg: Msg::from_wire(Bytes::new()) });
    assert!(h.up.is_empty());
    let mut d = Vec::new();
    s.dump(&mut d);
    assert_eq!(d[0].counter("mismatches"), Some(2));
}

#[test]
fn layers_run_one_event_at_a_time_in_fifo_order() {
    let log = Log::default();
    let mut s = Stack::builder()
        .push(Twice { period: period(), next: None, beats: 0 })
        .push(Tag::new("low", 1, &log))
        .build()
        .unwrap();
    let mut h = Harness::new(2, 0);
    h.dn(&mut s, Time::ZERO, cast(b"x"));
    // `twice` emits two casts; `low` sees both only after `twice` returned.
    assert_eq!(*log.lock().unwrap(), ["low:dn", "low:dn"]);
    assert_eq!(h.dn.len(), 2);
}

#[test]
fn timers_fire_only_when_due_in_both_forms() {
    let t0 = Time::ZERO;
    let log = Log::default();
    let mut stat = static_stack![Tag::new("a", 1, &log), Twice { period: period(), next: None, beats: 0 }];
    let mut dynamic = Stack::builder()
        .push(Tag::new("a", 1, &log))
        .push(Twice { period: period(), next: None, beats: 0 })
        .build()
        .unwrap();
    let mut h = Harness::new(2, 0);
    assert_eq!(stat.poll_timeout(), None);
    h.dn(&mut stat, t0, cast(b"x"));
    h.dn(&mut dynamic, t0, cast(b"x"));
    assert_eq!(stat.poll_timeout(), Some(t0 + period()));
    assert_eq!(dynamic.poll_timeout(), Some(t0 + period()));
    h.dn.clear();
    for l in [&mut stat as &mut dyn Layer, &mut dynamic] {
        let due = l.poll_timeout().unwrap();
        h.timeout(l, due);
        assert_eq!(l.poll_timeout(), Some(due + period()));
    }
    // Each heartbeat passes below `a`: it carries no tag.
    assert_eq!(heads(&h.dn), [b"beat".to_vec(), b"beat".to_vec()]);
}

#[test]
fn requirements_are_checked_bottom_up_and_named() {
    let log = Log::default();
    let ok = Stack::builder()
        .push(Tag::new("total", 1, &log).needs(Props::RELIABLE_CAST))
        .push(Tag::new("nak", 2, &log).gives(Props::RELIABLE_CAST | Props::FIFO_CAST))
        .build();
    assert!(ok.is_ok());
    let err = Stack::builder()
        .push(Tag::new("nak", 2, &log).gives(Props::RELIABLE_CAST))
        .push(Tag::new("total", 1, &log).needs(Props::RELIABLE_CAST | Props::FIFO_CAST))
        .build()
        .err()
        .unwrap();
    assert_eq!(err, Missing { layer: "total", missing: Props::RELIABLE_CAST | Props::FIFO_CAST });
    assert_eq!(err.to_string(), "layer `total` requires reliable-cast, fifo-cast, which no layer below it provides");
    // The static form checks the same way.
    let stat = static_stack![
        Tag::new("total", 1, &log).needs(Props::FIFO_CAST),
        Tag::new("nak", 2, &log).gives(Props::RELIABLE_CAST)
    ];
    assert_eq!(stat.check(Props::NONE), Err(Missing { layer: "total", missing: Props::FIFO_CAST }));
    assert_eq!(stat.check(Props::FIFO_CAST), Ok(Props::FIFO_CAST | Props::RELIABLE_CAST));
}

fn registry() -> Registry {
    let mut r = Registry::new();
    r.register("tag", "pushes a tag byte", |a| {
        let tag: u8 = a.get("tag", 7)?;
        Ok(Box::new(Tag::new("tag", tag, &Log::default())))
    });
    r.register("rel", "claims reliable casts", |_| {
        Ok(Box::new(Tag::new("rel", 2, &Log::default()).gives(Props::RELIABLE_CAST)))
    });
    r.register("total", "needs reliable casts", |_| {
        Ok(Box::new(Tag::new("total", 3, &Log::default()).needs(Props::RELIABLE_CAST)))
    });
    r
}

#[test]
fn specs_build_in_horus_order_with_parameters() {
    let r = registry();
    let s = r.build("total:tag(tag=9):rel").unwrap();
    assert_eq!(s.spec(), "total:tag:rel");
    let mut h = Harness::new(2, 0);
    let mut s = s;
    h.dn(&mut s, Time::ZERO, cast(b"p"));
    assert_eq!(heads(&h.dn), [vec![2, 9, 3, b'p']]);
    assert!(r.build("bare").unwrap().is_empty());
    assert!(r.build("  ").unwrap().is_empty());
}

#[test]
fn bad_specs_say_what_is_wrong() {
    let r = registry();
    let e = r.build("tag:nak").err().unwrap();
    assert_eq!(e.to_string(), "unknown layer `nak`; known layers: bare, rel, tag, total");
    let e = r.build("rel:total").err().unwrap();
    assert_eq!(e, SpecError::Missing(Missing { layer: "total", missing: Props::RELIABLE_CAST }));
    let e = r.build("tag(speed=3)").err().unwrap();
    assert_eq!(e.to_string(), "layer `tag`: unknown parameter `speed`");
    let e = r.build("tag(tag=300)").err().unwrap();
    assert_eq!(e.to_string(), "layer `tag`: bad value `300` for `tag`");
    for bad in ["tag::rel", ":tag", "tag(tag=1", "tag)(", "tag(tag)", "tag(tag=1)x"] {
        assert!(matches!(r.build(bad), Err(SpecError::Syntax { .. })), "{bad} accepted");
    }
}

#[test]
fn named_stacks_expand_where_they_appear() {
    let mut r = registry();
    r.register_stack("safe", "a reliable pair", "total:rel");
    r.register_stack("outer", "nests a named stack", "tag(tag=1):safe");
    assert_eq!(r.build("tag(tag=5):safe").unwrap().spec(), "tag:total:rel");
    assert_eq!(r.build("outer").unwrap().spec(), "tag:total:rel");
    assert_eq!(r.stack_spec("safe"), Some("total:rel"));
    assert!(r.known().any(|(n, about)| n == "safe" && about == "a reliable pair"));
    // Requirements are checked on the expanded stack: the lowest `total` has nothing below.
    assert_eq!(
        r.build("safe:total").err(),
        Some(SpecError::Missing(Missing { layer: "total", missing: Props::RELIABLE_CAST }))
    );
    r.register_stack("loop", "refers to itself", "tag:loop");
    assert!(matches!(r.build("loop"), Err(SpecError::Syntax { .. })));
}

/// Cuts a cast into one-byte casts, in order, going down and going up (as `pack` unpacks a
/// datagram into its messages): the layer above or below gets them as one batch.
struct Split;

impl Layer for Split {
    fn name(&self) -> &'static str {
        "split"
    }
    fn handle_dn(&mut self, ev: Dn, cx: &mut Cx<'_>) {
        match ev {
            Dn::Cast(m) => {
                let body = m.into_payload();
                (0..body.len()).for_each(|i| cx.dn(Dn::Cast(Msg::new(body.slice(i..i + 1)))));
            }
            other => cx.dn(other),
        }
    }
    fn handle_up(&mut self, ev: Up, cx: &mut Cx<'_>) {
        match ev {
            Up::Cast { from, msg } => {
                let body = msg.into_payload();
                (0..body.len()).for_each(|i| cx.up(Up::Cast { from, msg: Msg::new(body.slice(i..i + 1)) }));
            }
            other => cx.up(other),
        }
    }
    fn dump(&self, _: &mut Vec<Dump>) {}
}

#[test]
fn a_batch_keeps_its_order_through_every_layer_both_ways() {
    // A pass-through layer on each side of the split: each has a batch to keep in order.
    let mut stat = static_stack![compose::Bare, Split, compose::Bare];
    let mut dynamic = Stack::builder().push(compose::Bare).push(Split).push(compose::Bare).build().unwrap();
    let (mut hs, mut hd) = (Harness::new(2, 0), Harness::new(2, 0));
    for body in [&b"abc"[..], b"de"] {
        hs.dn(&mut stat, Time::ZERO, cast(body));
        hd.dn(&mut dynamic, Time::ZERO, cast(body));
        let up = |b: &'static [u8]| Up::Cast { from: Rank(1), msg: Msg::new(Bytes::from_static(b)) };
        hs.up(&mut stat, Time::ZERO, up(body));
        hd.up(&mut dynamic, Time::ZERO, up(body));
    }
    let dn = |q: &VecDeque<Dn>| -> Vec<u8> { heads(q).concat() };
    let up = |q: &VecDeque<Up>| -> Vec<u8> {
        q.iter()
            .flat_map(|u| match u {
                Up::Cast { msg, .. } => msg.clone().into_payload().to_vec(),
                other => panic!("unexpected {other:?}"),
            })
            .collect()
    };
    for (d, u) in [(dn(&hs.dn), up(&hs.up)), (dn(&hd.dn), up(&hd.up))] {
        assert_eq!((d, u), (b"abcde".to_vec(), b"abcde".to_vec()));
    }
}
