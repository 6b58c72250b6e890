//! The layers that hand a batch of casts on at once (`Layer::handle_ups`: `pt2pt`, `frag`,
//! `flow`, `stable`) against themselves one event at a time (`handle_up`), on arbitrary
//! batches (bolero): bare casts (the data path), casts and sends with headers that may not
//! decode, ranks outside the view, and other events mixed in. The same events must come out
//! in the same order both ways, with the same counters, a member failed or not; `stable` alone may announce
//! stability later in a batch (once, after the casts that made it), never earlier.

use thoth_layers::{flow::Flow, frag::Frag, pt2pt::Pt2pt, stable::Stable};
use thoth_stack::testing::{Harness, at};
use thoth_stack::{Bytes, Dn, Dump, Layer, Msg, Rank, Up};

/// One arbitrary event: (kind, sender rank, bare, bytes).
type Spec = (u8, u8, bool, Vec<u8>);

fn event(&(kind, from, bare, ref bytes): &Spec) -> Up {
    let from = Rank(from as u16 % 4); // some outside the view
    let msg = if bare { Msg::new(Bytes::from(bytes.clone())) } else { Msg::from_wire(Bytes::from(bytes.clone())) };
    match kind % 8 {
        0 => Up::Send { from, msg },
        1 => Up::Suspect(vec![from]),
        _ => Up::Cast { from, msg },
    }
}

fn dump(l: &impl Layer) -> Vec<Dump> {
    let mut d = Vec::new();
    l.dump(&mut d);
    d
}

/// Runs `batches` through `make()` twice in a view of `n`, as batches and one event at a
/// time, the last rank failed first if `fail`; returns both outputs (up; down as debug
/// strings) and dumps.
fn both<L: Layer>(
    make: fn() -> L,
    n: u64,
    fail: bool,
    batches: &[Vec<Spec>],
) -> [(Vec<Up>, Vec<String>, Vec<Dump>); 2] {
    let (mut a, mut b) = (make(), make());
    let (mut ha, mut hb) = (Harness::new(n, 0), Harness::new(n, 0));
    ha.init(&mut a, at(0));
    hb.init(&mut b, at(0));
    if fail {
        let last = Rank(n as u16 - 1);
        ha.dn(&mut a, at(0), Dn::Failed(vec![last]));
        hb.dn(&mut b, at(0), Dn::Failed(vec![last]));
    }
    for (t, batch) in batches.iter().enumerate() {
        let now = at(t as u64);
        ha.ups(&mut a, now, batch.iter().map(event));
        for s in batch {
            hb.up(&mut b, now, event(s));
        }
    }
    let out = |h: &mut Harness, l: &L| {
        let ups = h.take_up();
        let dns = h.take_dn().iter().map(|e| format!("{e:?}")).collect();
        (ups, dns, dump(l))
    };
    [out(&mut ha, &a), out(&mut hb, &b)]
}

fn check_same<L: Layer>(make: fn() -> L) {
    bolero::check!().with_type::<(bool, Vec<Vec<Spec>>)>().for_each(|(fail, batches)| {
        let [a, b] = both(make, 3, *fail, batches);
        assert_eq!(a, b);
    });
}

#[test]
fn pt2pt_batches_as_one_at_a_time() {
    check_same(Pt2pt::default);
}

#[test]
fn frag_batches_as_one_at_a_time() {
    check_same(Frag::default);
}

#[test]
fn flow_batches_as_one_at_a_time() {
    check_same(Flow::default);
}

#[test]
fn stable_batches_as_one_at_a_time_but_announces_once_per_batch() {
    bolero::check!().with_type::<(bool, Vec<Vec<Spec>>)>().for_each(|(fail, batches)| {
        // Alone in its view, a member's every cast grows stability (one at a time: an
        // announcement per cast).
        let [(ups_a, dns_a, dump_a), (ups_b, dns_b, dump_b)] = both(Stable::default, 1, *fail, batches);
        // Everything but the announcements, in the same order; the same final stability.
        let strip = |v: &[Up]| v.iter().filter(|e| !matches!(e, Up::Stable(_))).cloned().collect::<Vec<_>>();
        assert_eq!(strip(&ups_a), strip(&ups_b));
        let strip_dn = |v: &[String]| v.iter().filter(|e| !e.starts_with("Stable(")).cloned().collect::<Vec<_>>();
        assert_eq!(strip_dn(&dns_a), strip_dn(&dns_b));
        let last = |v: &[Up]| v.iter().rev().find(|e| matches!(e, Up::Stable(_))).cloned();
        assert_eq!(last(&ups_a), last(&ups_b));
        assert_eq!(
            dns_a.iter().rev().find(|e| e.starts_with("Stable(")),
            dns_b.iter().rev().find(|e| e.starts_with("Stable("))
        );
        // Never earlier: what the batch announces after `c` events went up was announced one
        // at a time after at most `c` (each announcement, one at a time, at its own place).
        let announced = |v: &[Up]| -> Vec<(usize, Vec<u64>)> {
            let mut c = 0;
            v.iter()
                .filter_map(|e| match e {
                    Up::Stable(s) => Some((c, s.clone())),
                    _ => {
                        c += 1;
                        None
                    }
                })
                .collect()
        };
        let one_at_a_time = announced(&ups_b);
        for (c, s) in announced(&ups_a) {
            let known = one_at_a_time.iter().rev().find(|(cb, _)| *cb <= c).map(|(_, s)| s.clone());
            assert!(known.is_some_and(|k| k.iter().zip(&s).all(|(k, s)| k >= s)), "{s:?} announced early");
        }
        let counters = |d: &[Dump]| -> Vec<(&'static str, u64)> {
            d.iter()
                .flat_map(|d| d.counters.iter().chain(&d.gauges).copied())
                .filter(|(n, _)| *n != "announced")
                .collect()
        };
        assert_eq!(counters(&dump_a), counters(&dump_b));
    });
}
