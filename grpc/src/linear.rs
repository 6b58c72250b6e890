//! A linearizability checker for recorded histories (Wing and Gong's search with Lowe's
//! memoization, as Knossos and Porcupine do it): is there one order of the operations,
//! each taking effect at some instant between its call and its return, in which every
//! operation's output is what a sequential `Model` gives? Used by the replicated objects'
//! consistency tests, over histories recorded in the simulator.
//!
//! An operation that never returned (its caller crashed, it timed out) may have taken effect
//! at any instant after its call, or never: it is linearized with any output, or left out.
//!
//! The search goes through the history's events (calls and returns) in time order as a
//! linked list: at a call it tries to linearize that operation next (the model accepts its
//! output from the current state) and, if so, lifts its call and return out of the list and
//! starts over from the first event left; at a return of an operation not linearized yet,
//! the last choice was wrong: it is undone and the search goes on from the call after it. A
//! (set of operations linearized, model state) pair seen before is not explored again.
//! Exponential in the worst case (the problem is NP-complete), so bounded (`MAX_SEEN`);
//! histories of a few hundred operations with a few concurrent clients check in
//! milliseconds.
//!
//! Tested below: linearizable and non-linearizable histories of a register, pending
//! operations either way.

use std::collections::HashSet;
use std::hash::Hash;

/// A sequential specification.
pub trait Model {
    /// The object's state (hashed to remember what the search has seen).
    type State: Clone + Eq + Hash;
    /// An operation as called.
    type Input;
    /// What an operation returns.
    type Output;
    /// The state before any operation.
    fn init(&self) -> Self::State;
    /// The state after `input` from `state` if it may give `output` there (`None` for the
    /// output: the operation never returned, any output will do).
    fn step(&self, state: &Self::State, input: &Self::Input, output: Option<&Self::Output>) -> Option<Self::State>;
}

/// One operation as recorded: when it was called and when it returned (`None`: never), in
/// any one clock, and what it was given and gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Op<I, O> {
    /// When it was called.
    pub call: u64,
    /// When it returned (`None`: never; it may have taken effect at any time after `call`).
    pub ret: Option<u64>,
    /// The operation.
    pub input: I,
    /// What it returned (`None` when it never did).
    pub output: Option<O>,
}

/// The most (operations linearized, state) pairs a search keeps: past them it gives up (an
/// error: not shown linearizable), rather than take the machine's memory.
pub const MAX_SEEN: usize = 200_000;

/// Whether `history` is linearizable under `model`; if not, how far the search got.
pub fn check<M: Model>(model: &M, history: &[Op<M::Input, M::Output>]) -> Result<(), String> {
    let n = history.len();
    // Events in time order, as a doubly linked list over `events` (index n.. is the head):
    // (instant, is a return, op). A pending op returns after everything (it may take effect
    // last, which changes nothing anyone saw). At one instant calls go first: operations
    // that touch at an instant overlap.
    let mut events: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * n);
    for (i, op) in history.iter().enumerate() {
        let ret = op.ret.unwrap_or(u64::MAX);
        if ret < op.call {
            return Err(format!("operation {i} returned before it was called"));
        }
        events.push((op.call, false, i));
        events.push((ret, true, i));
    }
    events.sort_by_key(|&(t, ret, i)| (t, ret, i));
    if events.is_empty() {
        return Ok(());
    }
    // Nodes 0..m are the events, m the head, m + 1 the end.
    let m = events.len();
    let (head, end) = (m, m + 1);
    let mut next: Vec<usize> = (1..=m).chain([0, usize::MAX]).collect();
    next[m - 1] = end;
    let mut prev: Vec<usize> = std::iter::once(head).chain(0..m - 1).chain([usize::MAX, m - 1]).collect();
    prev[head] = usize::MAX;
    // Where each op's return event is.
    let mut ret_at = vec![0; n];
    for (k, &(_, r, i)) in events.iter().enumerate() {
        if r {
            ret_at[i] = k;
        }
    }
    let unlink = |next: &mut [usize], prev: &mut [usize], k: usize| {
        let (p, q) = (prev[k], next[k]);
        next[p] = q;
        prev[q] = p;
    };
    let relink = |next: &mut [usize], prev: &mut [usize], k: usize| {
        let (p, q) = (prev[k], next[k]);
        next[p] = k;
        prev[q] = k;
    };
    let mut done = vec![0u64; n.div_ceil(64)];
    let mut state = model.init();
    let mut seen: HashSet<(Vec<u64>, M::State)> = HashSet::new();
    // The ops linearized, in order: (call event, the state before it).
    let mut stack: Vec<(usize, M::State)> = Vec::new();
    let mut deepest = 0;
    let mut at = next[head];
    while next[head] != end {
        if at == end {
            return Err("the search ran past the last event".into());
        }
        let (_, is_ret, op) = events[at];
        if !is_ret {
            if seen.len() > MAX_SEEN {
                return Err(format!("gave up after {MAX_SEEN} states ({deepest} of {n} operations placed at most)"));
            }
            let h = &history[op];
            let stepped = model.step(&state, &h.input, h.output.as_ref()).filter(|s| {
                let mut key = done.clone();
                key[op / 64] |= 1 << (op % 64);
                seen.insert((key, s.clone()))
            });
            if let Some(s) = stepped {
                done[op / 64] |= 1 << (op % 64);
                stack.push((at, std::mem::replace(&mut state, s)));
                deepest = deepest.max(stack.len());
                // Lift the op (its call and its return) out of the list; start over.
                unlink(&mut next, &mut prev, at);
                unlink(&mut next, &mut prev, ret_at[op]);
                at = next[head];
                continue;
            }
            at = next[at];
            continue;
        }
        // A return of an op not linearized: the last choice was wrong.
        let Some((call, before)) = stack.pop() else {
            return Err(format!("not linearizable: no order fits ({deepest} of {n} operations placed at most)"));
        };
        let op = events[call].2;
        done[op / 64] &= !(1 << (op % 64));
        state = before;
        relink(&mut next, &mut prev, ret_at[op]);
        relink(&mut next, &mut prev, call);
        at = next[call];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A register: writes return nothing, reads return the value.
    struct Register;

    #[derive(Clone, Debug)]
    enum In {
        Write(u64),
        Read,
    }

    impl Model for Register {
        type State = u64;
        type Input = In;
        type Output = u64;
        fn init(&self) -> u64 {
            0
        }
        fn step(&self, s: &u64, i: &In, o: Option<&u64>) -> Option<u64> {
            match i {
                In::Write(x) => Some(*x),
                In::Read => o.is_none_or(|o| o == s).then_some(*s),
            }
        }
    }

    fn op(call: u64, ret: Option<u64>, input: In, output: Option<u64>) -> Op<In, u64> {
        Op { call, ret, input, output }
    }

    #[test]
    fn overlapping_operations_may_go_either_way() {
        // write 1 [0,10] overlaps a read [5,6] that saw 1 and a read [2,3] that saw 0.
        let h = [
            op(0, Some(10), In::Write(1), Some(0)),
            op(2, Some(3), In::Read, Some(0)),
            op(5, Some(6), In::Read, Some(1)),
        ];
        assert_eq!(check(&Register, &h), Ok(()));
    }

    #[test]
    fn a_stale_read_after_a_write_returned_is_caught() {
        let h = [op(0, Some(1), In::Write(1), Some(0)), op(2, Some(3), In::Read, Some(0))];
        assert!(check(&Register, &h).is_err());
        // Two reads that disagree on the order of two concurrent writes' effects.
        let h = [
            op(0, Some(10), In::Write(1), Some(0)),
            op(0, Some(10), In::Write(2), Some(0)),
            op(11, Some(12), In::Read, Some(1)),
            op(13, Some(14), In::Read, Some(2)),
        ];
        assert!(check(&Register, &h).is_err(), "a value cannot come back after it was overwritten");
        let h = [
            op(0, Some(10), In::Write(1), Some(0)),
            op(0, Some(10), In::Write(2), Some(0)),
            op(11, Some(12), In::Read, Some(2)),
            op(13, Some(14), In::Read, Some(2)),
        ];
        assert_eq!(check(&Register, &h), Ok(()));
    }

    /// The definition itself, for small histories: some order of the returned operations
    /// and some of the pending ones that respects real time and every output.
    fn brute(h: &[Op<In, u64>]) -> bool {
        let n = h.len();
        // `pick`: which pending operations took effect.
        (0u32..1 << n).any(|pick| {
            let chosen: Vec<usize> = (0..n).filter(|&i| h[i].ret.is_some() || pick & (1 << i) != 0).collect();
            permutations(&chosen).into_iter().any(|order| {
                let before = |a: usize, b: usize| h[a].ret.is_some_and(|r| r < h[b].call);
                let timely = order.iter().enumerate().all(|(x, &a)| order[x + 1..].iter().all(|&b| !before(b, a)));
                let mut s = Register.init();
                timely
                    && order.iter().all(|&i| match Register.step(&s, &h[i].input, h[i].output.as_ref()) {
                        Some(t) => {
                            s = t;
                            true
                        }
                        None => false,
                    })
            })
        })
    }

    fn permutations(v: &[usize]) -> Vec<Vec<usize>> {
        if v.is_empty() {
            return vec![Vec::new()];
        }
        let mut out = Vec::new();
        for i in 0..v.len() {
            let mut rest = v.to_vec();
            let x = rest.remove(i);
            for mut p in permutations(&rest) {
                p.insert(0, x);
                out.push(p);
            }
        }
        out
    }

    /// The search agrees with the definition on thousands of random small histories (both
    /// verdicts occur).
    #[test]
    fn agrees_with_the_definition() {
        let mut rng = thoth_stack::Rng::new(7);
        let (mut yes, mut no) = (0, 0);
        for _ in 0..3000 {
            let n = 1 + rng.below(5) as usize;
            let h: Vec<Op<In, u64>> = (0..n)
                .map(|_| {
                    let call = rng.below(10);
                    let ret = (rng.below(8) != 0).then(|| call + rng.below(6));
                    let input = if rng.below(2) == 0 { In::Write(1 + rng.below(2)) } else { In::Read };
                    let output = match (&input, ret) {
                        (In::Read, Some(_)) => Some(rng.below(3)),
                        _ => None,
                    };
                    op(call, ret, input, output)
                })
                .collect();
            let want = brute(&h);
            assert_eq!(check(&Register, &h).is_ok(), want, "{h:?}");
            if want { yes += 1 } else { no += 1 }
        }
        assert!(yes > 300 && no > 300, "{yes} linearizable, {no} not");
    }

    #[test]
    fn a_pending_operation_may_or_may_not_have_taken_effect() {
        let took = [op(0, None, In::Write(5), None), op(3, Some(4), In::Read, Some(5))];
        assert_eq!(check(&Register, &took), Ok(()));
        let not = [op(0, None, In::Write(5), None), op(3, Some(4), In::Read, Some(0))];
        assert_eq!(check(&Register, &not), Ok(()));
        let before = [op(3, Some(4), In::Read, Some(5)), op(5, None, In::Write(5), None)];
        assert!(check(&Register, &before).is_err(), "not before it was called");
    }
}
