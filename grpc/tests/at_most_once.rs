//! At most once, against a model (bolero): three `Rpc` members over the bare stack (no
//! reliability, no duplicate suppression: every copy of a datagram reaches the machine), on
//! a network the input drives step by step: calls from any member to the group or to one
//! member, and any datagram in flight delivered, duplicated (delivered and kept) or dropped,
//! in any order. The applications answer every request at once.
//!
//! Properties: a member runs each call at most once, however often its request arrives;
//! every good answer a call ends with is the answer that member's application gave to that
//! call (no reply taken for another call or from another member); each call ends exactly
//! once, by its timeout at the latest; no member runs a call nobody made.

use std::collections::BTreeMap;
use thoth_grpc::{Bounds, Mode, Order, Request, Rpc, RpcCmd, RpcConfig, RpcEvent, Target};
use thoth_stack::{Bytes, Config, Dest, Duration, Endpoint, EndpointId, GroupId, Machine, Time};

const N: usize = 3;
const TIMEOUT: Duration = Duration::from_millis(100);

#[derive(Clone, Copy, Debug, bolero::TypeGenerator)]
enum Step {
    /// Member `from` calls the group (`to` >= N) or member `to`, in mode `mode % 4`.
    Call { from: u8, to: u8, mode: u8 },
    /// The datagram in flight at `i % len` reaches its destinations and is gone.
    Deliver(u16),
    /// It reaches them and stays in flight (a duplicate to come).
    Dup(u16),
    /// It is lost.
    Drop(u16),
}

struct Flight {
    from: usize,
    dst: Dest,
    data: Bytes,
}

fn members() -> Vec<EndpointId> {
    (1..=N as u64).map(EndpointId).collect()
}

fn machine(i: usize) -> Rpc {
    let cfg = Config::new(GroupId(9), members()[i], members());
    let ep = Endpoint::from_spec(cfg, &thoth::registry(), "bare").expect("bare builds");
    Rpc::new(ep, RpcConfig { nonce: 1000 + i as u64, cache: Bounds::default() })
}

fn answer(member: usize, method: u64, args: &[u8]) -> Bytes {
    Bytes::from(format!("{method}:{}@{member}", String::from_utf8_lossy(args)))
}

/// The network and what the applications saw.
#[derive(Default)]
struct World {
    net: Vec<Flight>,
    /// (member, caller, call) -> times the member's application ran it.
    runs: BTreeMap<(usize, u64, u64), u32>,
    /// Calls ended: the caller and its `Done`.
    ends: Vec<(usize, RpcEvent)>,
}

impl World {
    /// Moves what member `i` sent into the network and answers the requests it got, at once.
    fn settle(&mut self, i: usize, m: &mut Rpc, now: Time) {
        loop {
            m.end_turn(now);
            let mut quiet = true;
            while let Some(t) = m.poll_transmit() {
                quiet = false;
                self.net.push(Flight { from: i, dst: t.dst, data: Bytes::from([&t.head[..], &t.body[..]].concat()) });
            }
            while let Some(ev) = m.poll_event() {
                quiet = false;
                match ev {
                    RpcEvent::Request { caller, method, args, reply } => {
                        *self.runs.entry((i, caller.member.0, caller.call)).or_default() += 1;
                        if reply {
                            let r = answer(i, method, &args);
                            m.handle_command(now, RpcCmd::Reply { to: caller, result: Ok(r) }).expect("running");
                        }
                    }
                    done @ RpcEvent::Done { .. } => self.ends.push((i, done)),
                    RpcEvent::Endpoint(_) | RpcEvent::Refused { .. } => {}
                }
            }
            if quiet {
                return;
            }
        }
    }
}

#[test]
fn each_call_runs_at_most_once_and_ends_once_with_true_answers() {
    bolero::check!().with_type::<Vec<Step>>().for_each(|steps| {
        let ids = members();
        let mut ms: Vec<Rpc> = (0..N).map(machine).collect();
        let mut w = World::default();
        // (caller, id) -> (args, mode, members asked).
        let mut made: BTreeMap<(usize, u64), (Bytes, Mode, Vec<usize>)> = BTreeMap::new();
        let mut next = [0u64; N];
        let now = Time::ZERO + Duration::from_millis(1);
        for (i, m) in ms.iter_mut().enumerate() {
            w.settle(i, m, now);
        }
        for step in steps.iter().take(300) {
            match *step {
                Step::Call { from, to, mode } => {
                    let from = from as usize % N;
                    let mode = [Mode::First, Mode::All, Mode::Majority, Mode::None][mode as usize % 4];
                    let (target, asked) = match to as usize {
                        t if t < N => (Target::Member(ids[t]), vec![t]),
                        _ => (Target::Group, (0..N).collect()),
                    };
                    let id = next[from];
                    next[from] += 1;
                    let args = Bytes::from(format!("c{from}.{id}"));
                    let req = Request {
                        target,
                        method: 5,
                        args: args.clone(),
                        mode,
                        timeout: TIMEOUT,
                        filter: None,
                        order: Order::Stack,
                    };
                    ms[from].handle_command(now, RpcCmd::Call { id, req }).expect("a call goes");
                    made.insert((from, id), (args, mode, asked));
                    w.settle(from, &mut ms[from], now);
                }
                Step::Deliver(i) | Step::Dup(i) | Step::Drop(i) if !w.net.is_empty() => {
                    let k = i as usize % w.net.len();
                    let f = if matches!(step, Step::Dup(_)) {
                        let f = &w.net[k];
                        Flight { from: f.from, dst: f.dst, data: f.data.clone() }
                    } else {
                        w.net.remove(k)
                    };
                    if matches!(step, Step::Drop(_)) {
                        continue;
                    }
                    let to: Vec<usize> = match f.dst {
                        Dest::One(id) => ids.iter().position(|&x| x == id).into_iter().collect(),
                        Dest::All | Dest::Everyone => (0..N).filter(|&j| j != f.from).collect(),
                    };
                    for j in to {
                        ms[j].handle_datagram(now, f.data.clone());
                        w.settle(j, &mut ms[j], now);
                    }
                }
                _ => {}
            }
        }
        // Past every timeout: whatever is pending ends.
        let later = now + TIMEOUT + Duration::from_millis(1);
        for (i, m) in ms.iter_mut().enumerate() {
            m.handle_timeout(later);
            w.settle(i, m, later);
        }

        for (&(member, caller, call), &n) in &w.runs {
            assert_eq!(n, 1, "member {member} ran call {call} of {caller} {n} times");
            let from = ids.iter().position(|x| x.0 == caller).expect("a member called");
            let (_, _, asked) = made.get(&(from, call)).expect("nobody runs a call nobody made");
            assert!(asked.contains(&member), "member {member} ran a call not asked of it");
        }
        let mut ended: BTreeMap<(usize, u64), u32> = BTreeMap::new();
        for (i, ev) in &w.ends {
            let RpcEvent::Done { id, outcome } = ev else { unreachable!() };
            *ended.entry((*i, *id)).or_default() += 1;
            let (args, mode, asked) = made.get(&(*i, *id)).expect("a call that was made ends");
            if *mode == Mode::None {
                assert!(outcome.answers.is_empty());
            } else {
                assert_eq!(
                    outcome.answers.iter().map(|(m, _)| *m).collect::<Vec<_>>(),
                    asked.iter().map(|&a| ids[a]).collect::<Vec<_>>()
                );
            }
            for (m, a) in &outcome.answers {
                let j = ids.iter().position(|x| x == m).expect("a member");
                if let Some(Ok(v)) = a {
                    assert_eq!(v, &answer(j, 5, args), "call {id} of {i}: member {j}'s answer");
                }
            }
        }
        assert_eq!(ended.len(), made.len(), "every call ends");
        assert!(ended.values().all(|&n| n == 1), "and ends once");
    });
}
