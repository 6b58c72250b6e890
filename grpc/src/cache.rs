//! The callee's memory of calls, so that each runs at most once: a request seen again (a
//! duplicate, or the caller asking again after a view change) is answered from here, never
//! run twice. It belongs to the RPC machine, not to a view's stack, so it survives view
//! changes.
//!
//! Per caller (endpoint id and nonce): the calls running (their handler has not answered)
//! and the replies of calls done, in a map by call id, and a `floor`: the highest id it
//! forgot. Bounded: at most `max_running` calls running, `max_replies` replies and
//! `max_bytes` of them kept (the oldest done are forgotten first, raising their caller's
//! floor), at most `max_callers` callers remembered (one that has nothing running or kept
//! is forgotten first). A request at or below its caller's floor that is not remembered is
//! `Expired`: it may have run, so it does not run again. A forgotten caller's floor goes
//! with it; what protects a caller's old calls then is only the size of the bounds.
//!
//! Tested below (duplicates, bounds, floors) and through the machine in `grpc/tests/sim.rs`.

use crate::wire::Status;
use std::collections::{BTreeMap, VecDeque};
use thoth_stack::{Bytes, EndpointId};

/// Who called: its endpoint, and the nonce it drew when it started.
pub type CallerKey = (EndpointId, u64);

/// How much the reply cache holds at most (`RpcConfig::cache`); see the module doc for what
/// gives way when one is reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounds {
    /// Calls running at once (waiting for their handler); a request beyond is answered `Busy`.
    pub max_running: usize,
    /// Replies of calls done kept for duplicates (the oldest forgotten first).
    pub max_replies: usize,
    /// Bytes of those replies kept.
    pub max_bytes: usize,
    /// Callers (endpoint and nonce) remembered; one with nothing running is forgotten for a
    /// new one, else the new one's request is `Busy`.
    pub max_callers: usize,
}

impl Default for Bounds {
    fn default() -> Self {
        Bounds { max_running: 4096, max_replies: 65_536, max_bytes: 16 << 20, max_callers: 4096 }
    }
}

/// What the cache says of a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seen {
    /// New: it is now running (or, with no room, refused `Busy`).
    Run,
    /// Running: its reply will go when its handler answers.
    Running,
    /// Done: this was its reply.
    Done(Status, Bytes),
    /// Forgotten, maybe run: not run again.
    Expired,
    /// No room for another running call.
    Busy,
}

enum Slot {
    Running,
    Done(Status, Bytes),
}

#[derive(Default)]
struct Caller {
    floor: Option<u64>,
    calls: BTreeMap<u64, Slot>,
}

/// The reply cache: what each caller's calls came to, within `Bounds`.
pub struct Cache {
    bounds: Bounds,
    callers: BTreeMap<CallerKey, Caller>,
    /// Done calls, oldest first: the order they are forgotten in.
    done: VecDeque<(CallerKey, u64)>,
    running: usize,
    bytes: usize,
}

impl Cache {
    /// An empty cache within `bounds`.
    pub fn new(bounds: Bounds) -> Cache {
        Cache { bounds, callers: BTreeMap::new(), done: VecDeque::new(), running: 0, bytes: 0 }
    }

    /// A request for call `id` of `caller` arrived: what to do with it.
    pub fn arrive(&mut self, caller: CallerKey, id: u64) -> Seen {
        if let Some(c) = self.callers.get(&caller) {
            match c.calls.get(&id) {
                Some(Slot::Running) => return Seen::Running,
                Some(Slot::Done(s, b)) => return Seen::Done(*s, b.clone()),
                None if c.floor.is_some_and(|f| id <= f) => return Seen::Expired,
                None => {}
            }
        }
        if self.running >= self.bounds.max_running {
            return Seen::Busy;
        }
        if !self.callers.contains_key(&caller)
            && self.callers.len() >= self.bounds.max_callers
            && !self.forget_a_caller()
        {
            return Seen::Busy;
        }
        self.callers.entry(caller).or_default().calls.insert(id, Slot::Running);
        self.running += 1;
        Seen::Run
    }

    /// Call `id` of `caller` is done with `reply`; false if it was not running.
    pub fn finish(&mut self, caller: CallerKey, id: u64, status: Status, reply: Bytes) -> bool {
        let Some(slot) = self.callers.get_mut(&caller).and_then(|c| c.calls.get_mut(&id)) else { return false };
        if !matches!(slot, Slot::Running) {
            return false;
        }
        self.running -= 1;
        self.bytes += reply.len();
        *slot = Slot::Done(status, reply);
        self.done.push_back((caller, id));
        while self.done.len() > self.bounds.max_replies || self.bytes > self.bounds.max_bytes {
            self.forget_oldest();
        }
        true
    }

    /// Calls running, replies kept and their bytes, callers remembered.
    pub fn sizes(&self) -> (usize, usize, usize, usize) {
        (self.running, self.done.len(), self.bytes, self.callers.len())
    }

    fn forget_oldest(&mut self) {
        let Some((caller, id)) = self.done.pop_front() else { return };
        if let Some(c) = self.callers.get_mut(&caller) {
            if let Some(Slot::Done(_, b)) = c.calls.remove(&id) {
                self.bytes -= b.len();
            }
            c.floor = c.floor.max(Some(id));
        }
    }

    /// Forgets a caller with nothing running (its replies first); false if every caller has
    /// a call running.
    fn forget_a_caller(&mut self) -> bool {
        let Some(key) =
            self.callers.iter().find(|(_, c)| !c.calls.values().any(|s| matches!(s, Slot::Running))).map(|(k, _)| *k)
        else {
            return false;
        };
        let c = self.callers.remove(&key).expect("found");
        for s in c.calls.into_values() {
            if let Slot::Done(_, b) = s {
                self.bytes -= b.len();
            }
        }
        self.done.retain(|(k, _)| *k != key);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: CallerKey = (EndpointId(1), 7);
    const B: CallerKey = (EndpointId(2), 7);

    fn bounds() -> Bounds {
        Bounds { max_running: 2, max_replies: 2, max_bytes: 100, max_callers: 2 }
    }

    #[test]
    fn a_call_runs_once_and_its_duplicates_get_its_reply() {
        let mut c = Cache::new(bounds());
        assert_eq!(c.arrive(A, 1), Seen::Run);
        assert_eq!(c.arrive(A, 1), Seen::Running);
        assert!(c.finish(A, 1, Status::Ok, Bytes::from_static(b"r")));
        assert!(!c.finish(A, 1, Status::Ok, Bytes::new()), "finished once");
        assert_eq!(c.arrive(A, 1), Seen::Done(Status::Ok, Bytes::from_static(b"r")));
        assert_eq!(c.arrive((EndpointId(1), 8), 1), Seen::Run, "another incarnation's call 1 is another call");
    }

    #[test]
    fn forgotten_calls_expire_and_bounds_hold() {
        let mut c = Cache::new(bounds());
        for id in 1..=3 {
            assert_eq!(c.arrive(A, id), Seen::Run);
            c.finish(A, id, Status::Ok, Bytes::from_static(b"x"));
        }
        assert_eq!(c.sizes(), (0, 2, 2, 1), "two replies kept");
        assert_eq!(c.arrive(A, 1), Seen::Expired, "forgotten: never run again");
        assert_eq!(c.arrive(A, 3), Seen::Done(Status::Ok, Bytes::from_static(b"x")));
        // Bytes: one reply of 100 pushes the others out.
        assert_eq!(c.arrive(A, 10), Seen::Run);
        c.finish(A, 10, Status::Ok, Bytes::from(vec![0; 100]));
        assert_eq!(c.sizes(), (0, 1, 100, 1));
        assert_eq!(c.arrive(A, 3), Seen::Expired);
        // Running calls are bounded.
        assert_eq!(c.arrive(A, 11), Seen::Run);
        assert_eq!(c.arrive(B, 1), Seen::Run);
        assert_eq!(c.arrive(B, 2), Seen::Busy);
        // No room for a third caller's call while two run.
        assert_eq!(c.arrive((EndpointId(3), 1), 1), Seen::Busy);
        c.finish(B, 1, Status::Ok, Bytes::new());
        assert_eq!(c.arrive((EndpointId(3), 1), 1), Seen::Run, "B, idle, is forgotten for it");
        assert_eq!(c.sizes().3, 2);
    }
}
