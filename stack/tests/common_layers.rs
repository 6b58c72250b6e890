//! Layers used only by the tests: each does something observable, so composition and the
//! endpoint can be checked end to end.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use thoth_stack::*;

/// Shared log of (layer, direction) calls, to check call order.
pub type Log = Arc<Mutex<Vec<String>>>;

/// Pushes a one-byte tag on every message going down and checks it coming up.
pub struct Tag {
    pub name: &'static str,
    pub tag: u8,
    pub log: Log,
    pub mismatches: u64,
    pub requires: Props,
    pub provides: Props,
}

impl Tag {
    pub fn new(name: &'static str, tag: u8, log: &Log) -> Tag {
        Tag { name, tag, log: log.clone(), mismatches: 0, requires: Props::NONE, provides: Props::NONE }
    }
    pub fn needs(mut self, p: Props) -> Tag {
        self.requires = p;
        self
    }
    pub fn gives(mut self, p: Props) -> Tag {
        self.provides = p;
        self
    }
}

impl Layer for Tag {
    fn name(&self) -> &'static str {
        self.name
    }
    fn requires(&self) -> Props {
        self.requires
    }
    fn provides(&self) -> Props {
        self.provides
    }
    fn handle_dn(&mut self, ev: Dn, cx: &mut Cx<'_>) {
        self.log.lock().unwrap().push(format!("{}:dn", self.name));
        match ev {
            Dn::Cast(mut m) => {
                m.push(&self.tag);
                cx.dn(Dn::Cast(m))
            }
            Dn::Send(r, mut m) => {
                m.push(&self.tag);
                cx.dn(Dn::Send(r, m))
            }
            other => cx.dn(other),
        }
    }
    fn handle_up(&mut self, ev: Up, cx: &mut Cx<'_>) {
        self.log.lock().unwrap().push(format!("{}:up", self.name));
        match ev {
            Up::Cast { from, mut msg } => match msg.pop::<u8>() {
                Ok(t) if t == self.tag => cx.up(Up::Cast { from, msg }),
                _ => self.mismatches += 1,
            },
            Up::Send { from, mut msg } => match msg.pop::<u8>() {
                Ok(t) if t == self.tag => cx.up(Up::Send { from, msg }),
                _ => self.mismatches += 1,
            },
            other => cx.up(other),
        }
    }
    fn dump(&self, out: &mut Vec<Dump>) {
        out.push(Dump { layer: self.name, counters: vec![("mismatches", self.mismatches)], ..Dump::default() });
    }
}

/// Turns each cast into two casts going down (so one input yields several outputs) and,
/// every `period`, casts a heartbeat byte unreliably.
pub struct Twice {
    pub period: Duration,
    pub next: Option<Time>,
    pub beats: u64,
}

impl Layer for Twice {
    fn name(&self) -> &'static str {
        "twice"
    }
    fn handle_dn(&mut self, ev: Dn, cx: &mut Cx<'_>) {
        if self.next.is_none() {
            self.next = Some(cx.now + self.period);
        }
        if let Dn::Cast(m) = ev {
            cx.dn(Dn::Cast(m.clone()));
            cx.dn(Dn::Cast(m));
        } else {
            cx.dn(ev)
        }
    }
    fn handle_up(&mut self, ev: Up, cx: &mut Cx<'_>) {
        cx.up(ev)
    }
    fn poll_timeout(&self) -> Option<Time> {
        self.next
    }
    fn handle_timeout(&mut self, cx: &mut Cx<'_>) {
        self.beats += 1;
        self.next = Some(cx.now + self.period);
        cx.dn(Dn::CastUnrel(Msg::new(Bytes::from_static(b"beat"))));
    }
    fn dump(&self, out: &mut Vec<Dump>) {
        out.push(Dump { layer: "twice", counters: vec![("beats", self.beats)], ..Dump::default() });
    }
}
