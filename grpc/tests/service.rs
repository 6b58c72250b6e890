//! Services from a trait (`#[service]`), over real sockets: three members in this process.
//! Typed calls to the group and to one member, read-only and mutating methods, a stub of
//! another version (the same trait, `version = 2`) refused as `NoSuchMethod`, arguments
//! that do not decode answered as a failure, and a method whose calls are `abcast`: every
//! replica applies concurrent callers' calls in one order over a total stack, and the call
//! is refused over a stack that has no total order.

mod common;

use std::sync::{Arc, RwLock};
use thoth_grpc::{CallError, Fault, Mode, Order, Request, RpcError, service};
use thoth_stack::Bytes;

#[service(version = 1)]
pub trait Counter {
    /// Adds `n`; returns the new total.
    fn add(&mut self, n: u64) -> u64;
    #[rpc(mode = "first")]
    fn get(&self) -> u64;
    fn label(&self, prefix: String, times: u8) -> String;
}

struct Total(u64);

impl Counter for Total {
    fn add(&mut self, n: u64) -> u64 {
        self.0 += n;
        self.0
    }
    fn get(&self) -> u64 {
        self.0
    }
    fn label(&self, prefix: String, times: u8) -> String {
        format!("{}{}", prefix.repeat(times as usize), self.0)
    }
}

#[allow(dead_code)] // only its stub is used
mod v2 {
    /// The same service as another version: its methods have other numbers.
    #[thoth_grpc::service(version = 2)]
    pub trait Counter {
        fn add(&mut self, n: u64) -> u64;
    }
}

/// A log that every replica appends to: its state depends on the order of the calls.
#[service(version = 1)]
pub trait Journal {
    #[rpc(order = "abcast")]
    fn append(&mut self, entry: u64) -> u64;
    #[rpc(mode = "first", order = "ubcast")]
    fn count(&self) -> u64;
}

struct Entries(Vec<u64>);

impl Journal for Entries {
    fn append(&mut self, entry: u64) -> u64 {
        self.0.push(entry);
        self.0.len() as u64
    }
    fn count(&self) -> u64 {
        self.0.len() as u64
    }
}

fn good<T: Clone>(a: &thoth_grpc::service::Answers<T>) -> Vec<T> {
    a.iter().filter_map(|(_, x)| x.clone().and_then(Result::ok)).collect()
}

#[test]
fn typed_calls_reach_the_object_of_every_member() {
    let nodes = common::start(3);
    let objs: Vec<Arc<RwLock<Total>>> = (0..3).map(|_| Arc::new(RwLock::new(Total(0)))).collect();
    for (n, o) in nodes.iter().zip(&objs) {
        serve_counter(n, o.clone());
    }
    let c = CounterClient::new(&nodes[0]);
    assert_eq!(good(&c.add(5).expect("add")), [5, 5, 5]);
    assert_eq!(good(&c.add(2).expect("add")), [7, 7, 7]);
    // `get` defaults to the first answer.
    assert!(good(&c.get().expect("get")).contains(&7));
    assert_eq!(good(&c.label("ab".into(), 2).expect("label")), ["abab7"; 3]);
    // To one member only.
    let one = CounterClient::new(&nodes[1]).to(nodes[2].me());
    assert_eq!(good(&one.add(1).expect("add")), [8]);
    assert_eq!((objs[0].read().unwrap().0, objs[1].read().unwrap().0, objs[2].read().unwrap().0), (7, 7, 8));
    for n in nodes {
        n.shutdown();
    }
}

#[test]
fn a_mismatched_stub_or_undecodable_arguments_are_clear_errors() {
    let nodes = common::start(2);
    for n in &nodes {
        serve_counter(n, Arc::new(RwLock::new(Total(0))));
    }
    let old = v2::CounterClient::new(&nodes[0]);
    let out = old.add(1).expect("a call");
    assert!(out.iter().all(|(_, a)| a == &Some(Err(Fault::NoSuchMethod))), "{out:?}");
    // Arguments that do not decode as a (u64,): the method's number, bytes of nothing.
    let add = thoth_grpc::service::method_id("Counter/1/add(u64)->u64");
    let out = nodes[0].call(Request::group(add, Bytes::new()).mode(Mode::All)).expect("a call");
    assert!(out.answers.iter().all(|(_, a)| matches!(a, Some(Err(Fault::Failed(_))))), "{out:?}");
    for n in nodes {
        n.shutdown();
    }
}

#[test]
fn abcast_methods_apply_concurrent_calls_in_one_order_at_every_replica() {
    let nodes = common::start_on(3, "reliable_total");
    let objs: Vec<Arc<RwLock<Entries>>> = (0..3).map(|_| Arc::new(RwLock::new(Entries(Vec::new())))).collect();
    for (n, o) in nodes.iter().zip(&objs) {
        serve_journal(n, o.clone());
    }
    std::thread::scope(|s| {
        for (i, n) in nodes.iter().enumerate() {
            s.spawn(move || {
                let c = JournalClient::new(n);
                for k in 0..50 {
                    assert_eq!(good(&c.append(i as u64 * 1000 + k).expect("append")).len(), 3);
                }
            });
        }
    });
    assert_eq!(good(&JournalClient::new(&nodes[1]).count().expect("len")), [150]);
    let logs: Vec<Vec<u64>> = objs.iter().map(|o| o.read().unwrap().0.clone()).collect();
    assert_eq!(logs[0].len(), 150);
    assert!(logs.iter().all(|l| *l == logs[0]), "one order at every replica");
    for n in nodes {
        n.shutdown();
    }
    // Over a stack without total order, the call is refused, not run out of order.
    let nodes = common::start(2);
    for n in &nodes {
        serve_journal(n, Arc::new(RwLock::new(Entries(Vec::new()))));
    }
    let refused = JournalClient::new(&nodes[0]).append(1).map(|_| ());
    assert_eq!(refused, Err(CallError::Refused(RpcError::Unordered(Order::Abcast))));
    let why = refused.unwrap_err().to_string();
    assert_eq!(why, "refused: the stack does not give the order Abcast a call asked for");
    assert_eq!(good(&JournalClient::new(&nodes[0]).count().expect("ubcast is given by any stack")), [0]);
    for n in nodes {
        n.shutdown();
    }
}
