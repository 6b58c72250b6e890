//! A member's side of a view: the start of a view, Block / digest / Report / Cut / Flushed
//! (the reliable layer below counts and gates the deliveries), accepting an `Install`, and
//! leaving.

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
                keys: Bytes::new(),
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

    /// A cast for the application. The reliable layer below has already gated it by the
    /// flush; this member's own casts coming back may complete what its report waits for.
    pub(super) fn on_cast(&mut self, from: Rank, msg: Msg, cx: &mut Cx<'_>) {
        self.delivered[from.index()] += 1;
        cx.up(Up::Cast { from, msg });
        if from == cx.rank {
            self.report(cx);
        }
        self.check_flushed(cx);
    }

    pub(super) fn on_block(&mut self, c: Rank, attempt: u32, failed: Vec<Rank>, cx: &mut Cx<'_>) {
        if let Some(f) = self.flush.as_mut().filter(|f| f.coord == c && f.attempt == attempt) {
            // A repeat: the coordinator has not had our answer.
            f.heard = cx.now;
            let (coord, report) = (f.coord, f.report.clone());
            return self.repeat(coord, report, cx);
        }
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
        self.flush = Some(Flush {
            coord: c,
            attempt,
            answered,
            block_until,
            asked: None,
            report: None,
            heard: cx.now,
            began: self.flush.as_ref().map_or(cx.now, |f| f.began),
            cut: None,
            reached: false,
            flushed: false,
        });
        // The view change through every layer, in the contract's order: Block (once), then
        // Failed (each attempt). Only the ranks the coordinator excludes: this member's own
        // verified suspicions may be wrong (a one-way cut), and the layers below drop
        // everything from a rank named failed, so naming one the cut still counts as a
        // participant would stall the flush.
        if first {
            cx.dn(Dn::Block);
            cx.up(Up::Block);
        }
        cx.dn(Dn::Failed(failed.clone()));
        cx.up(Up::Failed(failed));
        if first {
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

    /// The application stopped casting (or its time ran out): the layers below let go of
    /// what they hold for this view (`Dn::BlockOk`), and the report follows.
    pub(super) fn answer_block(&mut self, cx: &mut Cx<'_>) {
        let Some(f) = self.flush.as_mut() else { return };
        f.block_until = None;
        if !f.answered {
            f.answered = true;
            self.show_flow(cx);
            cx.dn(Dn::BlockOk);
            self.report(cx);
        }
    }

    /// Asks the reliable layer for its digest, the report of this attempt, once the
    /// application has stopped casting. The digest follows every cast this member issued
    /// down the stack (each direction is FIFO, and nothing between here and the reliable
    /// layer holds a cast past `Dn::BlockOk`), and the reliable layer counts its own casts
    /// as numbered, so the own count is final; waiting here for them to come back up would
    /// wait on an ordering layer that holds them until the cut.
    pub(super) fn report(&mut self, cx: &mut Cx<'_>) {
        let own_back = self.delivered[cx.rank.index()];
        let Some(f) = self.flush.as_mut() else { return };
        if !f.answered || f.asked.is_some() {
            return;
        }
        if self.cfg.test_count_in_gms {
            if own_back < self.issued {
                return; // counted here, its own casts must be back first
            }
            // Planted bug (tests only): this layer's own counts, above the layers that drop
            // what they cannot parse.
            f.asked = Some(0);
            let c = Ctl::Report { attempt: f.attempt, delivered: self.delivered.clone() };
            f.report = Some(c.clone());
            let coord = f.coord;
            return self.ctl(coord, c, cx);
        }
        self.asks += 1;
        f.asked = Some(self.asks);
        cx.dn(Dn::GetDigest);
    }

    /// The reliable layer's digest: the report, if it answers this attempt's request.
    pub(super) fn on_digest(&mut self, d: Vec<u64>, cx: &mut Cx<'_>) {
        self.answers += 1;
        let n = self.delivered.len();
        let Some(f) = self.flush.as_mut().filter(|f| f.asked == Some(self.answers)) else { return };
        if d.len() != n {
            self.n.bad += 1;
            return;
        }
        let c = Ctl::Report { attempt: f.attempt, delivered: d };
        f.report = Some(c.clone());
        let coord = f.coord;
        self.ctl(coord, c, cx);
    }

    /// The coordinator repeated its Block or Cut: answer again with what was answered.
    fn repeat(&mut self, coord: Rank, report: Option<Ctl>, cx: &mut Cx<'_>) {
        self.n.repeats += 1;
        let flushed = self.flush.as_ref().filter(|f| f.flushed).map(|f| f.attempt);
        match flushed {
            Some(attempt) => self.ctl(coord, Ctl::Flushed { attempt }, cx),
            None => {
                if let Some(r) = report {
                    self.ctl(coord, r, cx);
                }
            }
        }
    }

    /// Nothing of this flush for two `flush_ms`: its coordinator, alive or not, goes on
    /// without this member. Every other member counts as failed here, so this member
    /// installs a view of its own (the beacons merge it back).
    pub(super) fn dropped(&mut self, cx: &mut Cx<'_>) {
        self.n.dropped += 1;
        self.flush = None;
        self.committed = None;
        for r in 0..self.failed.len() {
            if r != cx.rank.index() {
                self.failed[r] = true;
                self.frozen[r] = true;
            }
        }
        self.change = None;
        self.maybe_change(cx);
    }

    pub(super) fn on_cut(&mut self, from: Rank, attempt: u32, cut: Vec<u64>, cx: &mut Cx<'_>) {
        let ok = cut.len() == self.delivered.len()
            && self.flush.as_ref().is_some_and(|f| f.coord == from && f.attempt == attempt);
        if !ok {
            self.n.bad += 1;
            return;
        }
        let Some(f) = self.flush.as_mut() else { return };
        f.heard = cx.now;
        if f.cut.as_ref() == Some(&cut) {
            // A repeat: answered again once flushed.
            return self.repeat(from, None, cx);
        }
        // The first cut of this attempt, or one that differs from it: one of the two was
        // forged, and the coordinator repeats its own until it hears `Flushed`, so the last
        // one holds.
        if f.cut.is_some() {
            self.n.bad += 1;
        }
        f.cut = Some(cut.clone());
        f.reached = false;
        f.flushed = false;
        cx.dn(Dn::Cut(cut));
        self.check_flushed(cx);
    }

    /// The reliable layer delivered up to the cut of this attempt.
    pub(super) fn on_cut_reached(&mut self, cut: Vec<u64>, cx: &mut Cx<'_>) {
        if let Some(f) = self.flush.as_mut().filter(|f| f.cut.as_ref() == Some(&cut)) {
            f.reached = true;
        }
        self.check_flushed(cx);
    }

    /// Once the reliable layer reached the cut, tell the coordinator, and commit.
    fn check_flushed(&mut self, cx: &mut Cx<'_>) {
        let Some(f) = self.flush.as_ref() else { return };
        let Some(cut) = f.cut.as_ref() else { return };
        // Planted bugs (tests only): flushed as soon as the cut is here; or counted here.
        let reached = (f.reached || self.cfg.test_flushed_before_cut)
            && !(self.cfg.test_count_in_gms && self.delivered.iter().zip(cut).any(|(d, c)| d < c));
        if f.flushed || !f.answered || !reached {
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
            self.install(&inst, cx);
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
