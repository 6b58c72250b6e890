//! Many replicated objects in one process over real sockets: three members on 127.0.0.1
//! (unicast fan-out), each a `Groups` of 20 active replicas (one group per object) behind
//! one socket pair and one driver thread, every object with a secret. Every member writes
//! to every object, then reads each back: the third member's capability grants reading
//! only, so its writes are refused everywhere, and every object holds the other two's
//! writes, in the one order at every member.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use thoth_grpc::object::capability::{self, Capability, Secret};
use thoth_grpc::{Bounds, ObjCmd, ObjConfig, ObjError, ObjEvent, Replica, Rpc, RpcConfig, Semantics, Strategy};
use thoth_stack::groups::{GroupCmd, GroupEvent, Groups, GroupsConfig};
use thoth_stack::udp::{self, Sockets, UdpConfig};
use thoth_stack::{Bytes, Config, Endpoint, EndpointId, GroupId};

/// A log of numbers, little-endian u64s.
#[derive(Default)]
struct Log(Vec<u8>);

impl Semantics for Log {
    fn apply(&mut self, op: &[u8]) -> Result<Bytes, String> {
        self.0.extend_from_slice(op);
        Ok(Bytes::new())
    }
    fn read(&self, _op: &[u8]) -> Result<Bytes, String> {
        Ok(Bytes::copy_from_slice(&self.0))
    }
    fn dump(&self) -> Bytes {
        Bytes::copy_from_slice(&self.0)
    }
    fn undump(&mut self, state: &[u8]) -> Result<(), String> {
        self.0 = state.to_vec();
        Ok(())
    }
}

/// Runs until `want` operations ended at this member; their results by object and id.
fn results(
    h: &udp::Handle<GroupCmd<Replica<Log>>, GroupEvent<ObjEvent>>,
    want: usize,
) -> BTreeMap<(GroupId, u64), Result<Bytes, ObjError>> {
    let until = Instant::now() + Duration::from_secs(20);
    let mut out = BTreeMap::new();
    let mut events = Vec::new();
    while out.len() < want && Instant::now() < until {
        events.clear();
        h.recv_many(&mut events, Duration::from_millis(20));
        for e in events.drain(..) {
            if let ObjEvent::Done { id, result } = e.event {
                out.insert((e.group, id), result);
            }
        }
    }
    assert_eq!(out.len(), want, "every operation ended in time");
    out
}

#[test]
fn many_objects_share_one_socket_pair_and_one_driver() {
    let cfg = UdpConfig { fanout: true, ..UdpConfig::default() };
    let socks: Vec<Sockets> = (0..3).map(|_| Sockets::open(&cfg).expect("sockets")).collect();
    let peers: Vec<_> = socks.iter().map(|s| s.local_addr()).collect();
    let ids: Vec<EndpointId> = socks.iter().map(|s| s.id()).collect();
    let objects: Vec<GroupId> =
        (0..20).map(|k| GroupId::named(&format!("objects-udp-{}-{k}", std::process::id()))).collect();
    let secret = Secret([9; 32]);
    let members: Vec<_> = socks
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            let mut g: Groups<Replica<Log>> = Groups::new(GroupsConfig { fanout: true, ..GroupsConfig::new(s.id()) });
            for &obj in &objects {
                let rights = if i == 2 { capability::READ } else { capability::READ | capability::WRITE };
                let cap = Capability::mint(&secret, obj.0, rights);
                let cfg = ObjConfig { secret: Some(secret), cap: Some(cap), ..ObjConfig::new(Strategy::Active) };
                let c = Config { transfer_state: true, ..Config::new(obj, s.id(), ids.clone()) };
                let ep = Endpoint::from_spec(c, &thoth::registry(), "total").expect("the stack builds");
                let rpc =
                    Rpc::new(ep, RpcConfig { nonce: thoth_stack::testing::random_u64(), cache: Bounds::default() });
                g.add(Replica::new(rpc, Log::default(), cfg)).expect("added");
            }
            udp::spawn(s, g, &peers).expect("the driver starts")
        })
        .collect();
    for (i, h) in members.iter().enumerate() {
        for &obj in &objects {
            let op = Bytes::copy_from_slice(&(i as u64).to_le_bytes());
            h.command(GroupCmd::To(obj, ObjCmd::Write { id: 1, op })).expect("write");
        }
    }
    for (i, h) in members.iter().enumerate() {
        for (key, r) in results(h, objects.len()) {
            match i {
                2 => assert_eq!(r, Err(ObjError::Failed(thoth_grpc::object::REFUSED.into())), "{key:?}: read-only"),
                _ => assert!(r.is_ok(), "{key:?}: {r:?}"),
            }
        }
    }
    for h in &members {
        for &obj in &objects {
            h.command(GroupCmd::To(obj, ObjCmd::Read { id: 2, op: Bytes::new() })).expect("read");
        }
    }
    let reads: Vec<_> = members.iter().map(|h| results(h, objects.len())).collect();
    for &obj in &objects {
        let logs: Vec<&Bytes> =
            reads.iter().map(|r| r[&(obj, 2)].as_ref().expect("a read-only capability reads")).collect();
        assert!(logs.iter().all(|l| *l == logs[0]), "one order at every member");
        let mut got: Vec<u64> = logs[0].chunks(8).map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes"))).collect();
        got.sort();
        assert_eq!(got, [0, 1], "the object's own writes, the refused one's not among them");
    }
    for h in members {
        h.shutdown();
    }
}
