//! Services from a trait (`#[service]`), over real sockets: three members in this process.
//! Typed calls to the group and to one member, read-only and mutating methods, a stub of
//! another version (the same trait, `version = 2`) refused as `NoSuchMethod`, and
//! arguments that do not decode answered as a failure.

mod common;

use std::sync::{Arc, RwLock};
use thoth_grpc::{Fault, Mode, Request, service};
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
