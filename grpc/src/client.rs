//! `Node`: an `Rpc` run by the UDP driver thread, with the call types Electra has, for any
//! number of application threads at once, and handlers that serve requests on worker
//! threads.
//!
//! **Calls.** `call` blocks until the call ends (its mode, filter or timeout: the machine
//! ends every call by its timeout); `call_then` returns at once and runs an answer handler
//! when the call ends (on the node's event thread: keep it short); `promise` returns a
//! `Promise` to wait on later, and one node's promises complete in the order their calls were
//! made (a promise whose call ended waits for the promises made before it). A call the
//! machine refuses, or that cannot be handed over, fails at once; a node that stops fails
//! every call still waiting (`CallError::Stopped`).
//!
//! **Serving.** `serve(method, handler)` runs `handler` for each request of `method` on one of
//! the node's worker threads, so a slow handler holds up neither the stack nor other calls'
//! replies; `serve_inline` runs a quick one on the event thread, a thread hop less. The handler answers through the request's `Responder`, at once or later from any
//! thread (a deferred reply); a responder dropped without an answer answers that the handler
//! failed. A request for a method nobody serves is answered `Fault::NoSuchMethod`.
//!
//! **Bounds.** Every wait is bounded: `call` by the call's timeout (and a second more, in
//! case the node stops), `Promise::wait` likewise, `shutdown` by the driver's own bound and
//! one turn of the event thread; handlers still running at shutdown are not waited for.
//!
//! Tested in `grpc/tests/node.rs` (members in one process over loopback: every call type,
//! promise order, many threads calling at once, deferred replies, unknown methods).

use crate::call::{Answer, Fault, Outcome, Request};
use crate::machine::{CallId, Caller, Rpc, RpcCmd, RpcConfig, RpcError, RpcEvent};
use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, RwLock};
use std::thread::{self, JoinHandle};
use std::time::Duration;
use thoth_stack::udp::{self, Handle, HandleError, Sockets};
use thoth_stack::{Bytes, Endpoint, EndpointId, Event, Layer};

/// Why a call did not end with an outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallError {
    /// The driver did not take it (its queue full past its block timeout, or stopped).
    Handle(HandleError),
    /// The machine refused it.
    Refused(RpcError),
    /// The node stopped before the call ended.
    Stopped,
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Handle(e) => write!(f, "the driver did not take the call: {e}"),
            CallError::Refused(e) => write!(f, "refused: {e}"),
            CallError::Stopped => f.write_str("the node stopped before the call ended"),
        }
    }
}

impl std::error::Error for CallError {}

/// What a call ends with.
pub type CallResult = Result<Outcome, CallError>;

/// A call's outcome, to wait for later.
pub struct Promise {
    rx: mpsc::Receiver<CallResult>,
    /// How long `wait` waits: the call's timeout and a second more.
    bound: Duration,
}

impl Promise {
    /// Waits for the call to end (and the calls promised before it).
    pub fn wait(self) -> CallResult {
        self.rx.recv_timeout(self.bound).unwrap_or(Err(CallError::Stopped))
    }
    /// The outcome if the promise is complete now.
    pub fn try_wait(&self) -> Option<CallResult> {
        self.rx.try_recv().ok()
    }
}

/// A request for a handler: what to run, and how to answer.
pub struct Incoming {
    /// The member that called.
    pub caller: EndpointId,
    /// The method's number, as served.
    pub method: u64,
    /// The call's arguments, as the caller encoded them.
    pub args: Bytes,
    /// Answers the call (dropping it answers that the handler failed).
    pub responder: Responder,
}

/// Answers one request, once, from any thread.
pub struct Responder {
    handle: Handle<RpcCmd, RpcEvent>,
    to: Caller,
    /// A one-way call wants no answer.
    wanted: bool,
}

impl Responder {
    /// Answers with a value, or with `Fault::Failed` and the text (nothing goes for a
    /// one-way call).
    pub fn reply(mut self, result: Result<Bytes, String>) {
        self.send(result.map_err(Fault::Failed));
    }
    fn send(&mut self, result: Answer) {
        if std::mem::take(&mut self.wanted) {
            // Stopped: nobody is left to answer.
            let _ = self.handle.command(RpcCmd::Reply { to: self.to, result });
        }
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.send(Err(Fault::Failed("the handler dropped the request without an answer".into())));
    }
}

type Handler = Arc<dyn Fn(Incoming) + Send + Sync>;

/// Where a served method's handler runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Lane {
    /// On the worker threads, as they are free: concurrently, in no order.
    Workers,
    /// On the ordered lane's thread, one at a time, in the order the requests were delivered.
    Ordered,
    /// On the event thread itself.
    Inline,
}

/// A served method: its handler, and where it runs.
#[derive(Clone)]
struct Service {
    handler: Handler,
    lane: Lane,
}

type Job = (Handler, Incoming);

/// The queues of the threads that run handlers (held by the event thread: they end with it).
struct Lanes {
    workers: mpsc::Sender<Job>,
    ordered: mpsc::Sender<Job>,
}
type Then = Box<dyn FnOnce(CallResult) + Send>;

enum Waiter {
    Sync(mpsc::Sender<CallResult>),
    Then(Then),
    /// Completed in call order, through `Calls::promised`.
    Promise,
}

#[derive(Default)]
struct Calls {
    waiting: BTreeMap<CallId, Waiter>,
    /// Promises in call order, with their result once in.
    promised: VecDeque<(CallId, mpsc::Sender<CallResult>, Option<CallResult>)>,
}

impl Calls {
    /// Forgets call `id` (it never went).
    fn withdraw(&mut self, id: CallId) {
        self.waiting.remove(&id);
        self.promised.retain(|p| p.0 != id);
        self.flush_promises();
    }

    /// Completes the promises whose calls, and every call promised before them, ended.
    fn flush_promises(&mut self) {
        while self.promised.front().is_some_and(|p| p.2.is_some()) {
            let (_, tx, r) = self.promised.pop_front().expect("looked at");
            let _ = tx.send(r.expect("looked at"));
        }
    }

    /// Completes call `id`; returns an answer handler to run, with its result, outside the
    /// lock.
    fn complete(&mut self, id: CallId, r: CallResult) -> Option<(Then, CallResult)> {
        match self.waiting.remove(&id)? {
            Waiter::Sync(tx) => {
                let _ = tx.send(r);
                None
            }
            Waiter::Then(f) => Some((f, r)),
            Waiter::Promise => {
                if let Some(p) = self.promised.iter_mut().find(|p| p.0 == id) {
                    p.2 = Some(r);
                }
                self.flush_promises();
                None
            }
        }
    }
}

struct Inner {
    handle: Handle<RpcCmd, RpcEvent>,
    next_id: AtomicU64,
    calls: Mutex<Calls>,
    services: RwLock<BTreeMap<u64, Service>>,
    events: mpsc::Sender<Event>,
    stop: AtomicBool,
}

/// A member running Group RPC on a driver thread.
pub struct Node {
    inner: Arc<Inner>,
    events: Mutex<mpsc::Receiver<Event>>,
    pump: Option<JoinHandle<()>>,
}

/// How long the event thread waits for events before it looks whether to stop.
const LOOK_EVERY: Duration = Duration::from_millis(20);

impl Node {
    /// Starts `endpoint` (whose id must be `sockets.id()`) under the driver thread with
    /// Group RPC on top, `workers` threads for the handlers.
    pub fn start<L: Layer + 'static>(
        sockets: Sockets,
        endpoint: Endpoint<L>,
        peers: &[SocketAddr],
        cfg: RpcConfig,
        workers: usize,
    ) -> io::Result<Node> {
        let handle = udp::spawn(sockets, Rpc::new(endpoint, cfg), peers)?;
        let (jobs_tx, jobs_rx) = mpsc::channel::<Job>();
        let jobs_rx = Arc::new(Mutex::new(jobs_rx));
        let (ordered_tx, ordered_rx) = mpsc::channel::<Job>();
        // Ends when the node drops the sending side.
        thread::Builder::new().name("thoth-rpc-ordered".into()).spawn(move || {
            for (h, inc) in ordered_rx {
                h(inc);
            }
        })?;
        for k in 0..workers.max(1) {
            let rx = jobs_rx.clone();
            thread::Builder::new().name(format!("thoth-rpc-worker-{k}")).spawn(move || {
                // Ends when the node drops the sending side. The queue's lock is let go of
                // before the handler runs.
                loop {
                    let job = rx.lock().expect("job queue").recv();
                    let Ok((h, inc)) = job else { return };
                    h(inc);
                }
            })?;
        }
        let (ev_tx, ev_rx) = mpsc::channel();
        let inner = Arc::new(Inner {
            handle,
            next_id: AtomicU64::new(1),
            calls: Mutex::new(Calls::default()),
            services: RwLock::new(BTreeMap::new()),
            events: ev_tx,
            stop: AtomicBool::new(false),
        });
        let pumped = inner.clone();
        // The event thread owns the handlers' queues: their threads end when it does.
        let lanes = Lanes { workers: jobs_tx, ordered: ordered_tx };
        let pump = thread::Builder::new().name("thoth-rpc-events".into()).spawn(move || pumped.pump(lanes))?;
        Ok(Node { inner, events: Mutex::new(ev_rx), pump: Some(pump) })
    }

    /// This member's endpoint id.
    pub fn me(&self) -> EndpointId {
        self.inner.handle.me()
    }
    /// The members of the current view.
    pub fn members(&self) -> Vec<EndpointId> {
        self.inner.handle.members()
    }

    /// Serves `method` with `handler` on the worker threads (replacing an earlier one):
    /// requests run concurrently, in no order, a slow one holding up no other.
    pub fn serve(&self, method: u64, handler: impl Fn(Incoming) + Send + Sync + 'static) {
        self.serve_on(method, Arc::new(handler), Lane::Workers);
    }

    /// Serves `method` with `handler` on the node's ordered lane: one request at a time, in
    /// the order the stack delivered them, with those of every other method served so (a
    /// replicated state machine: each member applies `abcast` calls in one order). A slow
    /// handler holds up the lane, not the node's other events; it can answer later through
    /// its `Responder` and return at once.
    pub fn serve_ordered(&self, method: u64, handler: impl Fn(Incoming) + Send + Sync + 'static) {
        self.serve_on(method, Arc::new(handler), Lane::Ordered);
    }

    /// Serves `method` with `handler` on the node's event thread, as JGroups runs handlers
    /// on its delivery thread: a hop less per call, in delivery order, for a handler that
    /// returns at once (one that blocks holds up every event of the node meanwhile).
    pub fn serve_inline(&self, method: u64, handler: impl Fn(Incoming) + Send + Sync + 'static) {
        self.serve_on(method, Arc::new(handler), Lane::Inline);
    }

    fn serve_on(&self, method: u64, handler: Handler, lane: Lane) {
        self.inner.services.write().expect("services").insert(method, Service { handler, lane });
    }

    /// Calls and waits for the outcome.
    pub fn call(&self, req: Request) -> CallResult {
        let (tx, rx) = mpsc::channel();
        let bound = req.timeout + Duration::from_secs(1);
        self.start_call(req, Waiter::Sync(tx))?;
        rx.recv_timeout(bound).unwrap_or(Err(CallError::Stopped))
    }

    /// Calls; `then` runs with the outcome when the call ends (on the event thread).
    pub fn call_then(&self, req: Request, then: impl FnOnce(CallResult) + Send + 'static) -> Result<(), CallError> {
        self.start_call(req, Waiter::Then(Box::new(then)))
    }

    /// Calls; the promise completes when the call, and every call promised before it, ended.
    pub fn promise(&self, req: Request) -> Result<Promise, CallError> {
        let (tx, rx) = mpsc::channel();
        let bound = req.timeout + Duration::from_secs(1);
        let id = {
            // Filed in call order under the lock that `complete` takes.
            let mut calls = self.inner.calls.lock().expect("calls");
            let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
            calls.promised.push_back((id, tx, None));
            calls.waiting.insert(id, Waiter::Promise);
            id
        };
        self.send_call(id, req)?;
        Ok(Promise { rx, bound })
    }

    /// The endpoint's other events (views, blocks, state transfer, exit), waiting up to
    /// `timeout`.
    pub fn next_event(&self, timeout: Duration) -> Option<Event> {
        self.events.lock().expect("events").recv_timeout(timeout).ok()
    }

    /// Stops the event thread and the driver; calls still waiting fail with `Stopped`.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.inner.stop.store(true, Ordering::SeqCst);
        self.inner.handle.clone().shutdown();
        if let Some(p) = self.pump.take() {
            let _ = p.join();
        }
        // The workers end with the event thread (handlers running are not waited for).
    }

    fn start_call(&self, req: Request, w: Waiter) -> Result<(), CallError> {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        self.inner.calls.lock().expect("calls").waiting.insert(id, w);
        self.send_call(id, req)
    }

    fn send_call(&self, id: CallId, req: Request) -> Result<(), CallError> {
        self.inner.handle.command(RpcCmd::Call { id, req }).map_err(|e| {
            // Not handed over: withdrawn, its error returned here only.
            self.inner.calls.lock().expect("calls").withdraw(id);
            CallError::Handle(e)
        })
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if self.pump.is_some() {
            self.stop();
        }
    }
}

impl Inner {
    /// The event thread: ends calls, hands requests to their lanes, passes the rest on.
    fn pump(&self, lanes: Lanes) {
        let mut evs = Vec::new();
        while !self.stop.load(Ordering::SeqCst) && !self.handle.is_stopped() {
            self.handle.recv_many(&mut evs, LOOK_EVERY);
            for ev in evs.drain(..) {
                match ev {
                    RpcEvent::Done { id, outcome } => self.end(id, Ok(outcome)),
                    RpcEvent::Refused { id, why } => self.end(id, Err(CallError::Refused(why))),
                    RpcEvent::Request { caller, method, args, reply } => {
                        self.dispatch(&lanes, caller, method, args, reply)
                    }
                    RpcEvent::Endpoint(e) => {
                        let _ = self.events.send(e);
                    }
                }
            }
        }
        // Nothing will end what is still waiting.
        let ids: Vec<CallId> = self.calls.lock().expect("calls").waiting.keys().copied().collect();
        for id in ids {
            self.end(id, Err(CallError::Stopped));
        }
    }

    fn end(&self, id: CallId, r: CallResult) {
        let then = self.calls.lock().expect("calls").complete(id, r);
        if let Some((f, r)) = then {
            f(r);
        }
    }

    fn dispatch(&self, lanes: &Lanes, caller: Caller, method: u64, args: Bytes, reply: bool) {
        let mut responder = Responder { handle: self.handle.clone(), to: caller, wanted: reply };
        let service = self.services.read().expect("services").get(&method).cloned();
        let Some(s) = service else { return responder.send(Err(Fault::NoSuchMethod)) };
        let inc = Incoming { caller: caller.member, method, args, responder };
        // A lane's thread gone (they never end first): dropped, its responder answers a
        // failure.
        let _ = match s.lane {
            Lane::Inline => return (s.handler)(inc),
            Lane::Workers => lanes.workers.send((s.handler, inc)),
            Lane::Ordered => lanes.ordered.send((s.handler, inc)),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn promised(c: &mut Calls, id: CallId) -> mpsc::Receiver<CallResult> {
        let (tx, rx) = mpsc::channel();
        c.promised.push_back((id, tx, None));
        c.waiting.insert(id, Waiter::Promise);
        rx
    }

    /// Promises complete in call order, whatever order their calls end in; one withdrawn
    /// (never sent) holds up none behind it.
    #[test]
    fn promises_complete_in_call_order() {
        let mut c = Calls::default();
        let (a, b, d) = (promised(&mut c, 1), promised(&mut c, 2), promised(&mut c, 3));
        assert!(c.complete(3, Err(CallError::Stopped)).is_none());
        assert!(c.complete(2, Err(CallError::Stopped)).is_none());
        assert!(b.try_recv().is_err() && d.try_recv().is_err(), "wait for call 1");
        c.withdraw(1);
        assert!(a.try_recv().is_err(), "a withdrawn call's promise never completes");
        assert_eq!((b.try_recv(), d.try_recv()), (Ok(Err(CallError::Stopped)), Ok(Err(CallError::Stopped))));
        assert!(c.waiting.is_empty() && c.promised.is_empty());
    }
}
