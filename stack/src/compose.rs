//! Composition: a static, monomorphised stack (`Compose`, `static_stack!`) and a dynamic one
//! (`Stack`, built in code or from a spec string through the registry).
//!
//! Both keep the layer contract: a layer's output is queued and handed on after it returns
//! (no layer is re-entered), and each direction between two neighbours is FIFO. Both are
//! themselves a `Layer`, so the endpoint runs either.

use crate::event::{Dn, Up};

/// An event handed to a layer, at `trace` level (`tracing`): compiled into debug builds, and
/// into release builds only with the `trace` feature, so that the data path of a release
/// build pays nothing for it, not even the check of a disabled event.
macro_rules! boundary {
    ($layer:expr, $at:expr, $dir:literal, $ev:expr) => {
        #[cfg(any(debug_assertions, feature = "trace"))]
        tracing::trace!(layer = $layer.name(), at = $at, dir = $dir, ev = ?$ev);
    };
}
use crate::ids::View;
use crate::layer::{Cx, Dump, Layer, Missing};
use crate::props::Props;
use crate::time::{Time, earliest};
use std::collections::VecDeque;

/// The empty stack: events pass straight through (the `bare` stack: frame and CRC only),
/// with no presence bit of its own.
#[derive(Default, Debug, Clone, Copy)]
pub struct Bare;

impl Layer for Bare {
    fn name(&self) -> &'static str {
        "bare"
    }
    fn max_header(&self, _: &View) -> usize {
        0
    }
    fn handle_dn(&mut self, ev: Dn, cx: &mut Cx<'_>) {
        cx.pass_dn(ev)
    }
    fn handle_up(&mut self, ev: Up, cx: &mut Cx<'_>) {
        cx.pass_up(ev)
    }
    fn dump(&self, _: &mut Vec<Dump>) {}
    fn check(&self, below: Props) -> Result<Props, Missing> {
        Ok(below)
    }
}

/// `top` stacked on `rest`, resolved at compile time so calls between layers can inline.
pub struct Compose<T, R> {
    top: T,
    rest: R,
    to_rest: VecDeque<Dn>,
    to_top: VecDeque<Up>,
}

impl<T: Layer, R: Layer> Compose<T, R> {
    /// `top` over `rest` (`rest` may itself be a `Compose`: see `static_stack!`).
    pub fn new(top: T, rest: R) -> Self {
        Compose { top, rest, to_rest: VecDeque::new(), to_top: VecDeque::new() }
    }

    /// The top layer.
    pub fn top(&self) -> &T {
        &self.top
    }
    /// The layers below the top one.
    pub fn rest(&self) -> &R {
        &self.rest
    }

    /// Runs `f` on the top half, whose output down goes into the rest's queue and whose
    /// room is what the rest's headers leave.
    fn with_top(&mut self, cx: &mut Cx<'_>, f: impl FnOnce(&mut T, &mut Cx<'_>)) {
        let below = self.rest.max_header(cx.view);
        f(&mut self.top, &mut cx.with_dn(&mut self.to_rest).above(below))
    }

    /// Hands queued events between the two halves until both queues are empty.
    fn pump(&mut self, cx: &mut Cx<'_>) {
        loop {
            if let Some(ev) = self.to_rest.pop_front() {
                self.rest.handle_dn(ev, &mut cx.with_up(&mut self.to_top));
            } else if !self.to_top.is_empty() {
                let below = self.rest.max_header(cx.view);
                self.top.handle_ups(&mut self.to_top, &mut cx.with_dn(&mut self.to_rest).above(below));
            } else {
                return;
            }
        }
    }
}

impl<T: Layer, R: Layer> Layer for Compose<T, R> {
    fn name(&self) -> &'static str {
        "stack"
    }
    fn max_header(&self, view: &View) -> usize {
        self.top.max_header(view) + self.rest.max_header(view)
    }
    fn cast_room(&self) -> usize {
        self.top.cast_room().min(self.rest.cast_room())
    }
    fn init(&mut self, cx: &mut Cx<'_>) {
        // Every layer is started before any event reaches it.
        self.with_top(cx, |top, cx| top.init(cx));
        self.rest.init(&mut cx.with_up(&mut self.to_top));
        self.pump(cx);
    }
    fn end_turn(&mut self, cx: &mut Cx<'_>) {
        // Top first, so that what the top sends at the end of the turn is in the rest's
        // batch before the rest ends its turn.
        self.with_top(cx, |top, cx| top.end_turn(cx));
        self.pump(cx);
        self.rest.end_turn(&mut cx.with_up(&mut self.to_top));
        self.pump(cx);
    }
    fn handle_dn(&mut self, ev: Dn, cx: &mut Cx<'_>) {
        self.with_top(cx, |top, cx| top.handle_dn(ev, cx));
        self.pump(cx);
    }
    fn handle_dns(&mut self, evs: &mut VecDeque<Dn>, cx: &mut Cx<'_>) {
        self.with_top(cx, |top, cx| top.handle_dns(evs, cx));
        self.pump(cx);
    }
    fn handle_up(&mut self, ev: Up, cx: &mut Cx<'_>) {
        self.rest.handle_up(ev, &mut cx.with_up(&mut self.to_top));
        self.pump(cx);
    }
    fn poll_timeout(&self) -> Option<Time> {
        earliest(self.top.poll_timeout(), self.rest.poll_timeout())
    }
    fn handle_timeout(&mut self, cx: &mut Cx<'_>) {
        if self.top.poll_timeout().is_some_and(|t| t <= cx.now) {
            self.with_top(cx, |top, cx| top.handle_timeout(cx));
        }
        if self.rest.poll_timeout().is_some_and(|t| t <= cx.now) {
            self.rest.handle_timeout(&mut cx.with_up(&mut self.to_top));
        }
        self.pump(cx);
    }
    fn dump(&self, out: &mut Vec<Dump>) {
        self.top.dump(out);
        self.rest.dump(out);
    }
    fn check(&self, below: Props) -> Result<Props, Missing> {
        let mid = self.rest.check(below)?;
        self.top.check(mid)
    }
}

/// A static stack, top first: `static_stack![a, b, c]` is `a` over `b` over `c`.
#[macro_export]
macro_rules! static_stack {
    () => { $crate::compose::Bare };
    ($one:expr $(,)?) => { $one };
    ($top:expr, $($rest:expr),+ $(,)?) => {
        $crate::compose::Compose::new($top, $crate::static_stack!($($rest),+))
    };
}

/// A stack of boxed layers chosen at run time, top first.
///
/// Each layer has its own input queues, which its neighbours' contexts write into directly,
/// and runs on everything queued for it at once: a datagram's messages climb the stack as a
/// batch, one layer at a time, and an event is moved twice per layer (into the queue, out of
/// it) with no routing in between.
pub struct Stack {
    layers: Vec<Box<dyn Layer>>,
    /// `ups[i]`: events for layer `i` from the layer below it (or the stack's caller).
    ups: Vec<VecDeque<Up>>,
    /// `dns[i]`: events for layer `i` from the layer above it (or the stack's caller).
    dns: Vec<VecDeque<Dn>>,
}

/// Builds a `Stack` in code, top layer first.
#[derive(Default)]
pub struct StackBuilder {
    layers: Vec<Box<dyn Layer>>,
}

impl StackBuilder {
    /// Adds a layer below the ones added so far.
    pub fn push(mut self, layer: impl Layer + 'static) -> Self {
        self.layers.push(Box::new(layer));
        self
    }
    /// Adds a layer already boxed (as the registry builds them) below the ones added so far.
    pub fn push_boxed(mut self, layer: Box<dyn Layer>) -> Self {
        self.layers.push(layer);
        self
    }
    /// Checks the stack is well formed on its own (nothing below it).
    pub fn build(self) -> Result<Stack, Missing> {
        let n = self.layers.len();
        let s = Stack {
            layers: self.layers,
            ups: (0..n).map(|_| VecDeque::new()).collect(),
            dns: (0..n).map(|_| VecDeque::new()).collect(),
        };
        s.check(Props::NONE)?;
        Ok(s)
    }
}

impl Stack {
    /// An empty builder: push layers top first, then `build`.
    pub fn builder() -> StackBuilder {
        StackBuilder::default()
    }

    /// The layer names, top first, as a spec string (`bare` for no layers).
    pub fn spec(&self) -> String {
        if self.layers.is_empty() {
            return "bare".into();
        }
        self.layers.iter().map(|l| l.name()).collect::<Vec<_>>().join(":")
    }

    /// Number of layers.
    pub fn len(&self) -> usize {
        self.layers.len()
    }
    /// Whether the stack has no layers (events pass straight through, as with `Bare`).
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    /// Runs `f` on layer `i`, whose output goes into its neighbours' queues (or, at the top
    /// and the bottom, into `cx`'s), and whose room is what the headers below it leave.
    fn with_layer(&mut self, i: usize, cx: &mut Cx<'_>, f: impl FnOnce(&mut dyn Layer, &mut Cx<'_>)) {
        let n = self.layers.len();
        let below: usize = self.layers[i + 1..].iter().map(|l| l.max_header(cx.view)).sum();
        let layer = &mut *self.layers[i];
        match (i.checked_sub(1), i + 1 < n) {
            (Some(above), true) => f(layer, &mut cx.redirect(&mut self.ups[above], &mut self.dns[i + 1]).above(below)),
            (Some(above), false) => f(layer, &mut cx.with_up(&mut self.ups[above])),
            (None, true) => f(layer, &mut cx.with_dn(&mut self.dns[i + 1]).above(below)),
            (None, false) => f(layer, cx),
        }
    }

    /// Runs layer `i` on everything queued for it (a layer never writes into its own queues).
    /// This is the layer boundary: each event handed to a layer is traced here (`boundary!`).
    fn drain(&mut self, i: usize, cx: &mut Cx<'_>) {
        let mut dns = std::mem::take(&mut self.dns[i]);
        let mut ups = std::mem::take(&mut self.ups[i]);
        self.with_layer(i, cx, |layer, cx| {
            while let Some(ev) = dns.pop_front() {
                boundary!(layer, i, "dn", &ev);
                layer.handle_dn(ev, cx);
            }
            #[cfg(any(debug_assertions, feature = "trace"))]
            for ev in &ups {
                boundary!(layer, i, "up", ev);
            }
            layer.handle_ups(&mut ups, cx);
        });
        // Put back, keeping their allocations.
        self.dns[i] = dns;
        self.ups[i] = ups;
    }

    /// Runs the layers until nothing is queued: sweeps up then down, so that a batch climbs
    /// (or descends) the whole stack in one sweep.
    fn run(&mut self, cx: &mut Cx<'_>) {
        let busy = |s: &Stack, i: usize| !s.ups[i].is_empty() || !s.dns[i].is_empty();
        loop {
            let mut ran = false;
            for i in (0..self.layers.len()).rev().chain(0..self.layers.len()) {
                if busy(self, i) {
                    self.drain(i, cx);
                    ran = true;
                }
            }
            if !ran {
                return;
            }
        }
    }
}

impl Layer for Stack {
    fn name(&self) -> &'static str {
        "stack"
    }
    fn max_header(&self, view: &View) -> usize {
        self.layers.iter().map(|l| l.max_header(view)).sum()
    }
    fn cast_room(&self) -> usize {
        self.layers.iter().map(|l| l.cast_room()).min().unwrap_or(usize::MAX)
    }
    fn init(&mut self, cx: &mut Cx<'_>) {
        // Every layer is started before any event reaches it.
        for i in 0..self.layers.len() {
            self.with_layer(i, cx, |l, cx| l.init(cx));
        }
        self.run(cx);
    }
    fn end_turn(&mut self, cx: &mut Cx<'_>) {
        // Top first, each once what the layers above it sent has reached it.
        for i in 0..self.layers.len() {
            self.with_layer(i, cx, |l, cx| l.end_turn(cx));
            self.run(cx);
        }
    }
    fn handle_dn(&mut self, ev: Dn, cx: &mut Cx<'_>) {
        match self.dns.first_mut() {
            Some(top) => top.push_back(ev),
            None => return cx.pass_dn(ev),
        }
        self.run(cx);
    }
    fn handle_dns(&mut self, evs: &mut VecDeque<Dn>, cx: &mut Cx<'_>) {
        match self.dns.first_mut() {
            Some(top) => top.append(evs),
            None => evs.drain(..).for_each(|ev| cx.pass_dn(ev)),
        }
        self.run(cx);
    }
    fn handle_up(&mut self, ev: Up, cx: &mut Cx<'_>) {
        match self.ups.last_mut() {
            Some(bottom) => bottom.push_back(ev),
            None => return cx.pass_up(ev),
        }
        self.run(cx);
    }
    fn poll_timeout(&self) -> Option<Time> {
        self.layers.iter().fold(None, |t, l| earliest(t, l.poll_timeout()))
    }
    fn handle_timeout(&mut self, cx: &mut Cx<'_>) {
        for i in 0..self.layers.len() {
            if self.layers[i].poll_timeout().is_some_and(|t| t <= cx.now) {
                self.with_layer(i, cx, |l, cx| l.handle_timeout(cx));
            }
        }
        self.run(cx);
    }
    fn dump(&self, out: &mut Vec<Dump>) {
        for l in &self.layers {
            l.dump(out);
        }
    }
    fn check(&self, below: Props) -> Result<Props, Missing> {
        self.layers.iter().rev().try_fold(below, |p, l| l.check(p))
    }
}
