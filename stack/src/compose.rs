//! Composition: a static, monomorphised stack (`Compose`, `static_stack!`) and a dynamic one
//! (`Stack`, built in code or from a spec string through the registry).
//!
//! Both keep the layer contract: a layer's output is queued and handed on after it returns
//! (no layer is re-entered), and each direction between two neighbours is FIFO. Both are
//! themselves a `Layer`, so the endpoint runs either.

use crate::event::{Dn, Up};
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
    pub fn new(top: T, rest: R) -> Self {
        Compose { top, rest, to_rest: VecDeque::new(), to_top: VecDeque::new() }
    }

    pub fn top(&self) -> &T {
        &self.top
    }
    pub fn rest(&self) -> &R {
        &self.rest
    }

    /// Hands queued events between the two halves until both queues are empty.
    fn pump(&mut self, cx: &mut Cx<'_>) {
        loop {
            if let Some(ev) = self.to_rest.pop_front() {
                self.rest.handle_dn(ev, &mut cx.with_up(&mut self.to_top));
            } else if let Some(ev) = self.to_top.pop_front() {
                self.top.handle_up(ev, &mut cx.with_dn(&mut self.to_rest));
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
    fn init(&mut self, cx: &mut Cx<'_>) {
        // Every layer is started before any event reaches it.
        self.top.init(&mut cx.with_dn(&mut self.to_rest));
        self.rest.init(&mut cx.with_up(&mut self.to_top));
        self.pump(cx);
    }
    fn end_turn(&mut self, cx: &mut Cx<'_>) {
        // Top first, so that what the top sends at the end of the turn is in the rest's
        // batch before the rest ends its turn.
        self.top.end_turn(&mut cx.with_dn(&mut self.to_rest));
        self.pump(cx);
        self.rest.end_turn(&mut cx.with_up(&mut self.to_top));
        self.pump(cx);
    }
    fn handle_dn(&mut self, ev: Dn, cx: &mut Cx<'_>) {
        self.top.handle_dn(ev, &mut cx.with_dn(&mut self.to_rest));
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
            self.top.handle_timeout(&mut cx.with_dn(&mut self.to_rest));
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
pub struct Stack {
    layers: Vec<Box<dyn Layer>>,
    /// Events waiting for a layer: (index of the layer that takes it, event).
    pending: VecDeque<(usize, Ev)>,
    up: VecDeque<Up>,
    dn: VecDeque<Dn>,
}

enum Ev {
    Up(Up),
    Dn(Dn),
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
    pub fn push_boxed(mut self, layer: Box<dyn Layer>) -> Self {
        self.layers.push(layer);
        self
    }
    /// Checks the stack is well formed on its own (nothing below it).
    pub fn build(self) -> Result<Stack, Missing> {
        let s = Stack { layers: self.layers, pending: VecDeque::new(), up: VecDeque::new(), dn: VecDeque::new() };
        s.check(Props::NONE)?;
        Ok(s)
    }
}

impl Stack {
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

    pub fn len(&self) -> usize {
        self.layers.len()
    }
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    /// Runs layer `i` on `ev` and routes what it emits.
    fn step(&mut self, i: usize, ev: Ev, cx: &mut Cx<'_>) {
        {
            let mut inner = cx.redirect(&mut self.up, &mut self.dn);
            let layer = &mut self.layers[i];
            match ev {
                Ev::Up(e) => layer.handle_up(e, &mut inner),
                Ev::Dn(e) => layer.handle_dn(e, &mut inner),
            }
        }
        self.route(i, cx);
    }

    /// Runs `f` on layer `i` and queues what it emits.
    fn call(&mut self, i: usize, cx: &mut Cx<'_>, f: fn(&mut dyn Layer, &mut Cx<'_>)) {
        f(&mut *self.layers[i], &mut cx.redirect(&mut self.up, &mut self.dn));
        self.route(i, cx);
    }

    fn route(&mut self, i: usize, cx: &mut Cx<'_>) {
        for e in self.dn.drain(..) {
            if i + 1 < self.layers.len() {
                self.pending.push_back((i + 1, Ev::Dn(e)));
            } else {
                cx.pass_dn(e);
            }
        }
        for e in self.up.drain(..) {
            if i > 0 {
                self.pending.push_back((i - 1, Ev::Up(e)));
            } else {
                cx.pass_up(e);
            }
        }
    }

    fn run(&mut self, cx: &mut Cx<'_>) {
        while let Some((i, ev)) = self.pending.pop_front() {
            self.step(i, ev, cx);
        }
    }
}

impl Layer for Stack {
    fn name(&self) -> &'static str {
        "stack"
    }
    fn init(&mut self, cx: &mut Cx<'_>) {
        // Every layer is started before any event reaches it.
        for i in 0..self.layers.len() {
            self.call(i, cx, |l, cx| l.init(cx));
        }
        self.run(cx);
    }
    fn end_turn(&mut self, cx: &mut Cx<'_>) {
        // Top first, each once what the layers above it sent has reached it.
        for i in 0..self.layers.len() {
            self.call(i, cx, |l, cx| l.end_turn(cx));
            self.run(cx);
        }
    }
    fn handle_dn(&mut self, ev: Dn, cx: &mut Cx<'_>) {
        if self.layers.is_empty() {
            return cx.pass_dn(ev);
        }
        self.step(0, Ev::Dn(ev), cx);
        self.run(cx);
    }
    fn handle_up(&mut self, ev: Up, cx: &mut Cx<'_>) {
        let Some(bottom) = self.layers.len().checked_sub(1) else {
            return cx.pass_up(ev);
        };
        self.step(bottom, Ev::Up(ev), cx);
        self.run(cx);
    }
    fn poll_timeout(&self) -> Option<Time> {
        self.layers.iter().fold(None, |t, l| earliest(t, l.poll_timeout()))
    }
    fn handle_timeout(&mut self, cx: &mut Cx<'_>) {
        for i in 0..self.layers.len() {
            if self.layers[i].poll_timeout().is_some_and(|t| t <= cx.now) {
                self.call(i, cx, |l, cx| l.handle_timeout(cx));
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
