//! A call's side of the caller: who is asked, what each answered, and when the call's
//! response mode is satisfied (`Tally`). Pure bookkeeping, tested below answer by answer;
//! the machine (`machine.rs`) feeds it replies, view changes and its deadline.

use std::time::Duration;
use thoth_stack::{Bytes, EndpointId, Props};

/// Whom a call asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// Every member of the view, this one included, by one cast.
    Group,
    /// One member, by a send.
    Member(EndpointId),
}

/// The order a group call's request is delivered in, among the group's other requests (the
/// broadcasts of Isis, which E1 and Electra give each method): chosen per call, on the one
/// stack the group runs. A call to one member is point to point: the order does not apply.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Order {
    /// Whatever order the stack's layers give its casts (total under `reliable_total`,
    /// causal under `reliable_causal`, its caller's FIFO order under `reliable`).
    #[default]
    Stack,
    /// Reliable, in its caller's FIFO order only, in no order with other callers' requests
    /// (nor with its caller's ordered ones): on an ordered stack every member runs it as it
    /// arrives, never held for the order (`Endpoint::cast_fifo`), so it costs what a call on
    /// the reliable stack costs. Any stack.
    Ubcast,
    /// Causal: every member runs it after every request its caller had run before calling.
    /// Needs a stack that provides `CAUSAL`, or `TOTAL` (each total order here is causal as
    /// well: a request cast after another was delivered is ordered after it).
    Cbcast,
    /// Total: every member runs the group's `abcast` requests in one order. Needs `TOTAL`.
    Abcast,
}

impl Order {
    /// Whether a stack that provides `props` gives this order.
    pub fn given_by(self, props: Props) -> bool {
        match self {
            Order::Stack | Order::Ubcast => true,
            Order::Cbcast => props.contains(Props::CAUSAL) || props.contains(Props::TOTAL),
            Order::Abcast => props.contains(Props::TOTAL),
        }
    }
}

/// A call to make: whom, what, how many answers to wait for, and for how long.
pub struct Request {
    /// The group or one member.
    pub target: Target,
    /// The method's number, the callee's to interpret (a `#[service]` hashes its signature).
    pub method: u64,
    /// The arguments, encoded as the callee expects.
    pub args: Bytes,
    /// How many answers end the call.
    pub mode: Mode,
    /// For a group call: the order its request is delivered in (`Order`).
    pub order: Order,
    /// How long the call may take: then it ends with what came (`Outcome::timed_out`).
    pub timeout: Duration,
    /// Ends the call early once the answers so far satisfy it (checked after each answer).
    pub filter: Option<Box<dyn Filter>>,
}

impl Request {
    /// A call of `method` to the whole group, waiting for every member, within 5 s.
    pub fn group(method: u64, args: impl Into<Bytes>) -> Request {
        Request {
            target: Target::Group,
            method,
            args: args.into(),
            mode: Mode::All,
            order: Order::Stack,
            timeout: Duration::from_secs(5),
            filter: None,
        }
    }
    /// The same call to one member.
    pub fn member(member: EndpointId, method: u64, args: impl Into<Bytes>) -> Request {
        Request { target: Target::Member(member), ..Request::group(method, args) }
    }
    /// With this response mode instead of `Mode::All`.
    pub fn mode(self, mode: Mode) -> Request {
        Request { mode, ..self }
    }
    /// With this order for a group call instead of `Order::Stack`.
    pub fn order(self, order: Order) -> Request {
        Request { order, ..self }
    }
    /// With this timeout instead of 5 s.
    pub fn timeout(self, timeout: Duration) -> Request {
        Request { timeout, ..self }
    }
    /// With a filter that may end the call before its mode would.
    pub fn filter(self, filter: impl Filter + 'static) -> Request {
        Request { filter: Some(Box::new(filter)), ..self }
    }
}

/// How many answers a call waits for (E1's and JGroups's response modes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The first good answer (or every member's fault).
    First,
    /// Every member asked: an answer or a fault from each.
    All,
    /// Good answers from more than half of the members asked (or too many faults for that).
    Majority,
    /// None: the call is done once sent (a one-way call; nothing is answered).
    None,
}

/// What went wrong at one member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// It left the view, or failed, before it answered.
    Left,
    /// Its handler failed, saying why.
    Failed(String),
    /// It has no handler for the method.
    NoSuchMethod,
    /// It had too many calls waiting for their handlers: the call did not run there.
    Busy,
    /// It had forgotten the call's caller up to past this call: the call may have run there
    /// before and did not run again.
    Expired,
}

/// One member's answer.
pub type Answer = Result<Bytes, Fault>;

/// A predicate over the answers so far that ends a call before its mode would (JGroups's
/// `RspFilter`): asked after every answer.
pub trait Filter: Send {
    /// Whether the call is done, given every member asked and its answer so far (`None`: not
    /// yet), in id order.
    fn done(&mut self, answers: &[(EndpointId, Option<Answer>)]) -> bool;
}

impl<F: FnMut(&[(EndpointId, Option<Answer>)]) -> bool + Send> Filter for F {
    fn done(&mut self, answers: &[(EndpointId, Option<Answer>)]) -> bool {
        self(answers)
    }
}

/// How a call ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Every member asked, in id order, and its answer (`None`: none before the call ended).
    pub answers: Vec<(EndpointId, Option<Answer>)>,
    /// The call's timeout passed before its mode (or filter) was satisfied.
    pub timed_out: bool,
}

impl Outcome {
    /// The good answers, in member order.
    pub fn values(&self) -> impl Iterator<Item = (EndpointId, &Bytes)> {
        self.answers.iter().filter_map(|(m, a)| match a {
            Some(Ok(v)) => Some((*m, v)),
            _ => None,
        })
    }
}

/// The answers of one call so far.
pub struct Tally {
    mode: Mode,
    filter: Option<Box<dyn Filter>>,
    answers: Vec<(EndpointId, Option<Answer>)>,
}

impl Tally {
    /// A call to `members` (each once; kept in id order).
    pub fn new(mode: Mode, filter: Option<Box<dyn Filter>>, members: impl IntoIterator<Item = EndpointId>) -> Tally {
        let mut answers: Vec<_> = members.into_iter().map(|m| (m, None)).collect();
        answers.sort_by_key(|&(m, _)| m);
        answers.dedup_by_key(|(m, _)| *m);
        Tally { mode, filter, answers }
    }

    /// Records `m`'s answer; false if `m` was not asked or had answered (a duplicate).
    pub fn answer(&mut self, m: EndpointId, a: Answer) -> bool {
        match self.answers.binary_search_by_key(&m, |&(x, _)| x) {
            Ok(i) if self.answers[i].1.is_none() => {
                self.answers[i].1 = Some(a);
                true
            }
            _ => false,
        }
    }

    /// The members asked that have not answered.
    pub fn waiting(&self) -> impl Iterator<Item = EndpointId> + '_ {
        self.answers.iter().filter(|(_, a)| a.is_none()).map(|&(m, _)| m)
    }

    /// Whether the call is done: its mode is satisfied (or can no longer be), or its filter
    /// says so, or nobody is left to answer.
    pub fn done(&mut self) -> bool {
        let asked = self.answers.len();
        let good = self.answers.iter().filter(|(_, a)| matches!(a, Some(Ok(_)))).count();
        let answered = self.answers.iter().filter(|(_, a)| a.is_some()).count();
        if answered == asked {
            return true;
        }
        if self.filter.as_mut().is_some_and(|f| f.done(&self.answers)) {
            return true;
        }
        match self.mode {
            Mode::None => true,
            Mode::First => good >= 1,
            Mode::All => false,
            Mode::Majority => {
                let need = asked / 2 + 1;
                // Satisfied, or too many faults for it ever to be.
                good >= need || asked - (answered - good) < need
            }
        }
    }

    /// The call's end: every member's answer as it stands.
    pub fn into_outcome(self, timed_out: bool) -> Outcome {
        Outcome { answers: self.answers, timed_out }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: u64) -> Vec<EndpointId> {
        (1..=n).map(EndpointId).collect()
    }
    fn ok() -> Answer {
        Ok(Bytes::from_static(b"v"))
    }

    #[test]
    fn each_mode_ends_when_it_should() {
        let mut t = Tally::new(Mode::First, None, ids(3));
        assert!(!t.done());
        assert!(t.answer(EndpointId(2), Err(Fault::Left)));
        assert!(!t.done(), "a fault is not a first answer");
        assert!(t.answer(EndpointId(3), ok()));
        assert!(t.done());

        let mut t = Tally::new(Mode::All, None, ids(3));
        t.answer(EndpointId(1), ok());
        t.answer(EndpointId(2), Err(Fault::Busy));
        assert!(!t.done());
        t.answer(EndpointId(3), ok());
        assert!(t.done());

        let mut t = Tally::new(Mode::Majority, None, ids(4));
        t.answer(EndpointId(1), ok());
        t.answer(EndpointId(2), ok());
        assert!(!t.done(), "2 of 4 is no majority");
        t.answer(EndpointId(4), ok());
        assert!(t.done());

        let mut t = Tally::new(Mode::Majority, None, ids(3));
        t.answer(EndpointId(1), Err(Fault::Left));
        assert!(!t.done());
        t.answer(EndpointId(3), Err(Fault::NoSuchMethod));
        assert!(t.done(), "two faults of three: a majority can no longer answer");

        assert!(Tally::new(Mode::None, None, ids(3)).done());
        assert!(Tally::new(Mode::All, None, []).done(), "nobody to wait for");
    }

    #[test]
    fn answers_count_once_and_only_from_those_asked() {
        let mut t = Tally::new(Mode::All, None, [EndpointId(5), EndpointId(2), EndpointId(5)]);
        assert_eq!(t.waiting().collect::<Vec<_>>(), [EndpointId(2), EndpointId(5)]);
        assert!(!t.answer(EndpointId(9), ok()));
        assert!(t.answer(EndpointId(5), ok()));
        assert!(!t.answer(EndpointId(5), Err(Fault::Left)), "a second answer is a duplicate");
        assert_eq!(t.waiting().collect::<Vec<_>>(), [EndpointId(2)]);
        let o = Tally::new(Mode::All, None, ids(1)).into_outcome(true);
        assert_eq!(o, Outcome { answers: vec![(EndpointId(1), None)], timed_out: true });
    }

    #[test]
    fn a_filter_ends_the_call_early() {
        let two_good =
            |a: &[(EndpointId, Option<Answer>)]| a.iter().filter(|(_, x)| matches!(x, Some(Ok(_)))).count() >= 2;
        let mut t = Tally::new(Mode::All, Some(Box::new(two_good)), ids(5));
        t.answer(EndpointId(1), ok());
        assert!(!t.done());
        t.answer(EndpointId(4), ok());
        assert!(t.done());
        assert_eq!(t.into_outcome(false).values().map(|(m, _)| m).collect::<Vec<_>>(), [EndpointId(1), EndpointId(4)]);
    }
}
