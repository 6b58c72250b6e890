//! State transfer to joiners and the hold on casts around it.

use super::Gms;
use super::wire::{Ctl, Hdr};
use std::collections::BTreeSet;
use thoth_stack::{Bytes, Cx, Dn, Msg, Rank, Up};

impl Gms {
    /// The application's state, dumped at the start of the view: streamed to each joiner.
    pub(super) fn on_state(&mut self, state: Bytes, cx: &mut Cx<'_>) {
        if !self.awaiting_state {
            self.n.bad += 1;
            return;
        }
        self.awaiting_state = false;
        let joiners: Vec<Rank> = self.xfer.iter().flatten().copied().filter(|j| !self.failed[j.index()]).collect();
        let chunk = self.cfg.chunk;
        for j in joiners {
            let mut at = 0;
            loop {
                let end = (at + chunk).min(state.len());
                let last = end == state.len();
                let mut m = Msg::new(state.slice(at..end));
                m.push(&Hdr::Chunk { last });
                cx.dn(Dn::Send(j, m));
                self.n.state_bytes += (end - at) as u64;
                at = end;
                if last {
                    break;
                }
            }
        }
        self.maybe_go(cx);
    }

    pub(super) fn on_chunk(&mut self, from: Rank, chunk: Bytes, last: bool, cx: &mut Cx<'_>) {
        if !self.loading || from != Rank(0) {
            self.n.bad += 1;
            return;
        }
        cx.up(Up::State { chunk, last });
        if last {
            self.loading = false;
            self.ctl(Rank(0), Ctl::StateOk, cx);
        }
    }

    pub(super) fn on_state_ok(&mut self, from: Rank, cx: &mut Cx<'_>) {
        if let Some(x) = self.xfer.as_mut() {
            x.remove(&from);
        }
        self.maybe_go(cx);
    }

    /// Every joiner has the state (or failed): release everyone's casts.
    fn maybe_go(&mut self, cx: &mut Cx<'_>) {
        let pending = |x: &BTreeSet<Rank>, failed: &[bool]| x.iter().any(|r| !failed[r.index()]);
        if self.awaiting_state || self.xfer.as_ref().is_none_or(|x| pending(x, &self.failed)) {
            return;
        }
        self.xfer = Some(BTreeSet::new());
        let others: Vec<Rank> = cx.view.ranks().filter(|&r| r != cx.rank && !self.failed[r.index()]).collect();
        for r in others {
            self.ctl(r, Ctl::Go, cx);
        }
        self.release_casts(cx);
    }

    pub(super) fn on_go(&mut self, from: Rank, cx: &mut Cx<'_>) {
        if from == Rank(0) && !self.loading {
            self.release_casts(cx);
        }
    }

    fn release_casts(&mut self, cx: &mut Cx<'_>) {
        self.hold = false;
        // Not once this member answered a flush (or is leaving): its digest has counted what
        // it sent, and a cast beyond it would be delivered by none but this member (an
        // ordering layer delivers it at the cut). They die with the stack, as `on_dn` says.
        let answered = self.flush.as_ref().is_some_and(|f| f.answered);
        while let Some(mut m) = self.held_dn.pop_front().filter(|_| !answered && self.leaving.is_none()) {
            self.issued += 1;
            m.push(&Hdr::NoHdr);
            cx.dn(Dn::Cast(m));
        }
        self.show_flow(cx);
    }
}
