//! A member's side of a view: the start of a view, deliveries gated by the flush, Block /
//! Report / Cut / Flushed, accepting an `Install`, and leaving.

use super::wire::{Ctl, Install, Primary};
use super::{Flush, Gms, MEMO};
use thoth_stack::{Bytes, Cx, Dn, Msg, Rank, Up};

/// Memo key: this member asked to leave.
const LEAVING: &str = "gms-leaving";

impl Gms {
    /// The start of a real view: where it came from (the memo), Ready to the coordinator,
    /// the coordinator's duties, and holding casts while joiners load the state.
    pub(super) fn start_view(&mut self, cx: &mut Cx<'_>) {
        let info = cx
            .kept(MEMO)
            .and_then(|b| Install::from_bytes(&b).ok())
            .filter(|i| i.view.id == cx.view.id)
            .unwrap_or_else(|| Install {
                view: cx.view.clone(),
                sides: Vec::new(),
                joiners: Vec::new(),
                last_primary: vec![Primary { id: cx.view.id, members: cx.view.members.clone() }],
            });
        self.ready[cx.rank.index()] = true;
        let joiners: Vec<Rank> = info.joiners.iter().filter_map(|&j| cx.view.rank_of(j)).collect();
        if self.am_coord(cx) {
            if !info.sides.is_empty() || !info.joiners.is_empty() {
                self.resend_at = Some(cx.now + self.cfg.hello);
                self.ready_until = Some(cx.now + self.cfg.ready);
            }
            self.next_beacon = Some(cx.now);
        } else {
            self.ctl(Rank(0), Ctl::Ready, cx);
        }
        if !joiners.is_empty() {
            self.hold = true;
            self.loading = joiners.contains(&cx.rank);
            if self.am_coord(cx) {
                self.xfer = Some(joiners.into_iter().collect());
                self.awaiting_state = true;
                cx.up(Up::DumpState);
            }
        }
        self.info = Some(info);
        // A leave asked for in an earlier view that had not completed yet.
        if cx.kept(LEAVING).is_some() {
            self.on_leave(cx);
        }
    }

    /// Any message from `r` proves it alive: a suspicion of it is cleared, and the
    /// coordinator of a new view knows it installed the view. So is a failure this member
    /// verified on its own (a cut, since healed) that no flush it took part in has named
    /// (`frozen`): kept, it would make this member refuse the Block of a coordinator that
    /// is alive and well, stalling that flush until `flush_ms` excludes this member.
    pub(super) fn alive(&mut self, r: Rank) {
        if self.verify.remove(&r).is_some() {
            self.n.cleared += 1;
        }
        let i = r.index();
        if self.failed.get(i) == Some(&true) && self.frozen.get(i) == Some(&false) {
            self.failed[i] = false;
            self.n.cleared += 1;
        }
        if let Some(x) = self.ready.get_mut(r.index()) {
            *x = true;
        }
    }

    /// How many casts of `r` may be delivered in this view for now.
    fn limit(&self, r: Rank) -> u64 {
        let i = r.index();
        match self.flush.as_ref().and_then(|f| f.cut.as_ref()) {
            Some(cut) => cut[i],
            None if self.frozen[i] => self.delivered[i],
            None => u64::MAX,
        }
    }

    pub(super) fn on_cast(&mut self, from: Rank, msg: Msg, cx: &mut Cx<'_>) {
        let i = from.index();
        if !self.held_up[i].is_empty() || self.delivered[i] >= self.limit(from) {
            self.n.held_beyond_cut += 1;
            self.held_up[i].push_back(msg);
            return;
        }
        self.delivered[i] += 1;
        cx.up(Up::Cast { from, msg });
        self.check_flushed(cx);
    }

    /// Delivers what was held and is now within the limits.
    fn release(&mut self, cx: &mut Cx<'_>) {
        for i in 0..self.held_up.len() {
            let r = Rank(i as u16);
            while self.delivered[i] < self.limit(r) {
                let Some(msg) = self.held_up[i].pop_front() else { break };
                self.delivered[i] += 1;
                cx.up(Up::Cast { from: r, msg });
            }
        }
        self.check_flushed(cx);
    }

    pub(super) fn on_block(&mut self, c: Rank, attempt: u32, failed: Vec<Rank>, cx: &mut Cx<'_>) {
        if !self.accepts_block(c, attempt, &failed, cx) {
            self.n.refused_blocks += 1;
            return;
        }
        for &r in &failed {
            self.failed[r.index()] = true;
            self.frozen[r.index()] = true;
        }
        // A new attempt: this member follows it, whatever it committed to before.
        self.committed = None;
        let first = self.flush.is_none();
        let answered = self.flush.as_ref().is_some_and(|f| f.answered);
        // The application's time to answer runs from the first Block of this view change: a
        // restarted flush keeps the deadline (dropping it would leave this member blocked,
        // unanswered, for good if the application never answers).
        let block_until = match &self.flush {
            Some(f) => f.block_until,
            None if !self.cfg.block.is_zero() => Some(cx.now + self.cfg.block),
            None => None,
        };
        self.flush = Some(Flush { coord: c, attempt, answered, block_until, cut: None, flushed: false });
        // Only the ranks the coordinator excludes: this member's own verified suspicions may
        // be wrong (a one-way cut), and the layers below drop everything from a rank named
        // failed, so naming one the cut still counts as a participant would stall the flush.
        cx.dn(Dn::Failed(failed));
        if first {
            cx.up(Up::Block);
            if self.cfg.block.is_zero() {
                self.answer_block(cx);
            }
        } else if answered {
            self.report(cx);
        }
    }

    fn accepts_block(&self, c: Rank, attempt: u32, failed: &[Rank], cx: &Cx<'_>) -> bool {
        if Self::provisional(cx) || failed.iter().any(|r| !self.rank_ok(*r)) || failed.contains(&cx.rank) {
            return false;
        }
        // `c` must be the coordinator once its failures are added to ours.
        let gone = |r: usize| self.failed[r] || failed.contains(&Rank(r as u16));
        if self.failed[c.index()] || (0..c.index()).any(|r| !gone(r)) {
            return false;
        }
        let cid = cx.view.member(c).unwrap_or_default();
        if let Some((cc, ca)) = self.committed {
            let theirs_failed = cx.view.rank_of(cc).is_some_and(|r| self.failed[r.index()]);
            if (cc != cid && !theirs_failed) || (cc == cid && attempt <= ca) {
                return false;
            }
        }
        match &self.flush {
            Some(f) if f.coord == c => attempt > f.attempt,
            Some(f) => c > f.coord || self.failed[f.coord.index()],
            None => true,
        }
    }

    /// The application stopped casting (or its time ran out): report to the coordinator.
    pub(super) fn answer_block(&mut self, cx: &mut Cx<'_>) {
        let Some(f) = self.flush.as_mut() else { return };
        f.block_until = None;
        if !f.answered {
            f.answered = true;
            self.show_flow(cx);
            self.report(cx);
        }
    }

    fn report(&mut self, cx: &mut Cx<'_>) {
        let Some(f) = self.flush.as_ref() else { return };
        let c = Ctl::Report { attempt: f.attempt, issued: self.issued, delivered: self.delivered.clone() };
        self.ctl(f.coord, c, cx);
    }

    pub(super) fn on_cut(&mut self, from: Rank, attempt: u32, cut: Vec<u64>, cx: &mut Cx<'_>) {
        let ok = cut.len() == self.delivered.len()
            && self.flush.as_ref().is_some_and(|f| f.coord == from && f.attempt == attempt && f.cut.is_none());
        if !ok {
            self.n.bad += 1;
            return;
        }
        if let Some(f) = self.flush.as_mut() {
            f.cut = Some(cut);
        }
        self.release(cx);
    }

    /// Once every count reached the cut, tell the coordinator, and commit.
    fn check_flushed(&mut self, cx: &mut Cx<'_>) {
        let Some(f) = self.flush.as_ref() else { return };
        let Some(cut) = f.cut.as_ref() else { return };
        let short = self.delivered.iter().zip(cut).any(|(d, c)| d < c) && !self.cfg.test_flushed_before_cut;
        if f.flushed || !f.answered || short {
            return;
        }
        let (coord, attempt) = (f.coord, f.attempt);
        if let Some(f) = self.flush.as_mut() {
            f.flushed = true;
        }
        self.committed = Some((cx.view.member(coord).unwrap_or_default(), attempt));
        self.ctl(coord, Ctl::Flushed { attempt }, cx);
    }

    /// An `Install` by gossip: taken only if it names the flush this member committed to
    /// (or, for a new endpoint, lists it as a joiner).
    pub(super) fn on_install(&mut self, inst: Install, cx: &mut Cx<'_>) {
        let me = self.me;
        let ok = if Self::provisional(cx) {
            inst.joiners.contains(&me) && inst.view.members.contains(&me)
        } else {
            // Planted bug (tests only): the flush this member is in, flushed or not.
            let current = self
                .flush
                .as_ref()
                .filter(|_| self.cfg.test_install_before_flushed)
                .map(|f| (cx.view.member(f.coord).unwrap_or_default(), f.attempt));
            inst.view.id > cx.view.id
                && inst.sides.iter().any(|s| {
                    s.view == cx.view.id
                        && (Some((s.coord, s.attempt)) == self.committed || Some((s.coord, s.attempt)) == current)
                })
        };
        if !ok {
            if inst.view.id != cx.view.id {
                self.n.refused_installs += 1;
            }
            return;
        }
        cx.keep(MEMO, inst.to_bytes());
        if inst.view.members.contains(&me) {
            self.disc = None;
            cx.up(Up::Install(inst.view));
        } else if self.leaving.is_some() {
            self.exit(cx);
        } else {
            self.n.refused_installs += 1;
        }
    }

    pub(super) fn on_leave(&mut self, cx: &mut Cx<'_>) {
        if Self::provisional(cx) || cx.view.len() == 1 {
            return self.exit(cx);
        }
        if self.leaving.is_none() {
            cx.keep(LEAVING, Bytes::new());
            self.leaving = Some(cx.now + self.cfg.leave);
            let c = self.coord();
            self.ctl(c, Ctl::Leave, cx);
        }
    }
}
