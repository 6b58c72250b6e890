//! `Node` over real sockets: three members in this process, in fan-out mode on 127.0.0.1,
//! over the reliable stack. Every call type (sync, with an answer handler, promise), every
//! mode, promises completing in call order behind a slow call, many threads calling at once,
//! a deferred reply from another thread, a method nobody serves, a call to a stranger. Every
//! wait is bounded; every node is shut down.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};
use thoth_grpc::{CallError, Fault, Mode, Node, Request, Responder, RpcError};
use thoth_stack::{Bytes, EndpointId};

const ECHO: u64 = 1;
const LATER: u64 = 3;

mod common;

/// `n` members of a fresh group, each echoing `ECHO` as `args@index`; `runs` counts the
/// handlers run.
fn nodes(n: usize, runs: &Arc<AtomicU32>) -> Vec<Node> {
    let nodes = common::start(n);
    for (i, node) in nodes.iter().enumerate() {
        let r = runs.clone();
        node.serve(ECHO, move |inc| {
            r.fetch_add(1, Ordering::SeqCst);
            let v = format!("{}@{i}", String::from_utf8_lossy(&inc.args));
            inc.responder.reply(Ok(Bytes::from(v)));
        });
    }
    nodes
}

/// Serves `LATER` on every node by keeping the responders, for the test to answer.
fn park(ns: &[Node]) -> Arc<Mutex<Vec<Responder>>> {
    let parked = Arc::new(Mutex::new(Vec::new()));
    for n in ns {
        let p = parked.clone();
        n.serve(LATER, move |inc| p.lock().expect("parked").push(inc.responder));
    }
    parked
}

/// The good answers, sorted (answers come in member id order, not in start order).
fn values(o: &thoth_grpc::Outcome) -> Vec<String> {
    let mut v: Vec<String> = o.values().map(|(_, v)| String::from_utf8_lossy(v).into_owned()).collect();
    v.sort();
    v
}

#[test]
fn every_call_type_and_mode() {
    let runs = Arc::new(AtomicU32::new(0));
    let ns = nodes(3, &runs);
    let out = ns[0].call(Request::group(ECHO, "x")).expect("sync call");
    assert_eq!(values(&out), ["x@0", "x@1", "x@2"]);
    assert!(!out.timed_out);
    let first = ns[1].call(Request::group(ECHO, "f").mode(Mode::First)).expect("first");
    assert!(!values(&first).is_empty());
    let maj = ns[2].call(Request::group(ECHO, "m").mode(Mode::Majority)).expect("majority");
    assert!(values(&maj).len() >= 2);
    let one = ns[0].call(Request::member(ns[2].me(), ECHO, "o")).expect("to one member");
    assert_eq!(values(&one), ["o@2"]);
    let none = ns[0].call(Request::group(ECHO, "n").mode(Mode::None)).expect("one way");
    assert!(none.answers.is_empty());
    // With an answer handler.
    let (tx, rx) = mpsc::channel();
    ns[1].call_then(Request::group(ECHO, "a"), move |r| tx.send(r).expect("test waits")).expect("async call");
    let out = rx.recv_timeout(Duration::from_secs(10)).expect("the handler ran").expect("an outcome");
    assert_eq!(values(&out), ["a@0", "a@1", "a@2"]);
    // Served on the event thread.
    for n in &ns {
        n.serve_inline(7, |inc| inc.responder.reply(Ok(inc.args.clone())));
    }
    let out = ns[2].call(Request::group(7, "i")).expect("inline");
    assert_eq!(values(&out), ["i"; 3]);
    // A method nobody serves, and a stranger.
    let out = ns[0].call(Request::group(99, "?")).expect("an outcome");
    assert!(out.answers.iter().all(|(_, a)| a == &Some(Err(Fault::NoSuchMethod))), "{out:?}");
    assert_eq!(ns[0].call(Request::member(EndpointId(1), ECHO, "?")), Err(CallError::Refused(RpcError::NotMember)));
    // Each member ran each echo it was asked for once (the one-way call's runs may lag).
    let want = 3 + 3 + 3 + 1 + 3 + 3;
    let deadline = Instant::now() + Duration::from_secs(5);
    while runs.load(Ordering::SeqCst) < want && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(runs.load(Ordering::SeqCst), want);
    for n in ns {
        n.shutdown();
    }
}

#[test]
fn promises_complete_in_call_order() {
    let runs = Arc::new(AtomicU32::new(0));
    let ns = nodes(3, &runs);
    // The first call's handlers wait until the test answers them.
    let parked = park(&ns);
    let slow = ns[0].promise(Request::group(LATER, "")).expect("promise");
    let fast = ns[0].promise(Request::group(ECHO, "p")).expect("promise");
    // The fast call ends first at the machine (its handlers ran; a little while for the
    // answers), but its promise waits for the slow one's, which cannot end yet.
    let deadline = Instant::now() + Duration::from_secs(5);
    while (runs.load(Ordering::SeqCst) < 3 || parked.lock().expect("parked").len() < 3) && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(5));
    }
    thread::sleep(Duration::from_millis(50));
    assert!(fast.try_wait().is_none(), "completed before the promise made before it");
    for r in parked.lock().expect("parked").drain(..) {
        r.reply(Ok(Bytes::from_static(b"slow")));
    }
    let out = fast.wait().expect("fast");
    assert_eq!(values(&out), ["p@0", "p@1", "p@2"]);
    let slow = slow.try_wait().expect("complete by the time the later one is").expect("slow");
    assert_eq!(values(&slow), ["slow"; 3]);
    for n in ns {
        n.shutdown();
    }
}

#[test]
fn many_threads_call_at_once() {
    let runs = Arc::new(AtomicU32::new(0));
    let ns = Arc::new(nodes(3, &runs));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let ns = ns.clone();
            thread::spawn(move || {
                for k in 0..40 {
                    let args = format!("{t}.{k}");
                    let out = ns[t % 3].call(Request::group(ECHO, args.clone())).expect("call");
                    let want: Vec<String> = (0..3).map(|i| format!("{args}@{i}")).collect();
                    assert_eq!(values(&out), want);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a calling thread");
    }
    assert_eq!(runs.load(Ordering::SeqCst), 8 * 40 * 3);
    match Arc::try_unwrap(ns) {
        Ok(ns) => ns.into_iter().for_each(Node::shutdown),
        Err(_) => panic!("the threads are done"),
    }
}

#[test]
fn a_handler_answers_later_from_another_thread() {
    let runs = Arc::new(AtomicU32::new(0));
    let ns = nodes(2, &runs);
    let parked = park(&ns);
    let answerer = {
        let p = parked.clone();
        thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(5);
            while p.lock().expect("parked").len() < 2 && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(5));
            }
            thread::sleep(Duration::from_millis(50));
            for r in p.lock().expect("parked").drain(..) {
                r.reply(Ok(Bytes::from_static(b"later")));
            }
        })
    };
    let t = Instant::now();
    let out = ns[0].call(Request::group(LATER, "")).expect("call");
    assert!(t.elapsed() >= Duration::from_millis(50));
    assert_eq!(values(&out), ["later"; 2]);
    answerer.join().expect("answerer");
    // A responder dropped without an answer answers that the handler failed.
    ns[1].serve(LATER, drop);
    ns[0].serve(LATER, |inc| inc.responder.reply(Err("no".into())));
    let out = ns[0].call(Request::group(LATER, "")).expect("call");
    assert!(
        matches!(&out.answers[..], [(_, Some(Err(Fault::Failed(_)))), (_, Some(Err(Fault::Failed(_))))]),
        "{out:?}"
    );
    for n in ns {
        n.shutdown();
    }
}
