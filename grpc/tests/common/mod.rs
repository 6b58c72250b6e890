//! Members of a fresh group in this process, each a `Node` over the reliable stack (or
//! another named stack), in fan-out mode on 127.0.0.1.

use thoth_grpc::{Bounds, Node, RpcConfig};
use thoth_stack::testing::random_u64;
use thoth_stack::udp::{Sockets, UdpConfig};
use thoth_stack::{Config, Endpoint, EndpointId, GroupId};

pub fn start(n: usize) -> Vec<Node> {
    start_on(n, "reliable")
}

pub fn start_on(n: usize, spec: &str) -> Vec<Node> {
    let cfg = UdpConfig { fanout: true, ..UdpConfig::default() };
    let socks: Vec<Sockets> = (0..n).map(|_| Sockets::open(&cfg).expect("open")).collect();
    let addrs: Vec<_> = socks.iter().map(|s| s.local_addr()).collect();
    let ids: Vec<EndpointId> = socks.iter().map(|s| s.id()).collect();
    let group = GroupId(random_u64());
    socks
        .into_iter()
        .map(|s| {
            let c = Config::new(group, s.id(), ids.clone());
            let ep = Endpoint::from_spec(c, &thoth::registry(), spec).expect("stack");
            Node::start(s, ep, &addrs, RpcConfig { nonce: random_u64(), cache: Bounds::default() }, 4).expect("start")
        })
        .collect()
}
