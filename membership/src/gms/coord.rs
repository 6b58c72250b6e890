//! The coordinator's side of a view change: when to start one, the flush (Block, reports,
//! cut, flushed), and building and sending the next view.

use super::wire::{Ctl, Install, Kind, Primary, Side};
use super::{Change, Gms, MEMO, MergeOut, Report};
use thoth_stack::{Cx, EndpointId, Rank, View, ViewId};

impl Gms {
    pub(super) fn on_suspect_report(&mut self, ranks: Vec<Rank>, cx: &mut Cx<'_>) {
        if self.am_coord(cx) {
            for r in ranks {
                if self.rank_ok(r) {
                    self.start_verify(r, cx);
                }
            }
        }
    }

    pub(super) fn on_leave_request(&mut self, from: Rank, cx: &mut Cx<'_>) {
        if self.am_coord(cx) {
            self.leavers.insert(from);
            self.maybe_change(cx);
        }
    }

    /// Starts a view change if there is a reason for one and none is under way.
    pub(super) fn maybe_change(&mut self, cx: &mut Cx<'_>) {
        if !self.am_coord(cx) || self.change.is_some() || self.merging.is_some() || self.exited {
            return;
        }
        let failed = self.failed.iter().any(|&f| f);
        let merge_due = !self.sides.is_empty() && self.merge_at.is_none();
        if failed || !self.leavers.is_empty() || !self.joiners.is_empty() || merge_due {
            self.start_change(None, cx);
        }
    }

    /// Begins a flush over every member not failed (`side_of`: as a side of a merge).
    pub(super) fn start_change(&mut self, side_of: Option<EndpointId>, cx: &mut Cx<'_>) {
        self.change_since.get_or_insert(cx.now);
        self.start_attempt(side_of, false, cx);
    }

    /// One attempt of a flush (`stalled`: an earlier attempt's cut was out of this
    /// coordinator's own reach).
    fn start_attempt(&mut self, side_of: Option<EndpointId>, stalled: bool, cx: &mut Cx<'_>) {
        self.attempts += 1;
        self.n.changes += 1;
        let n = self.failed.len();
        let ranks = (0..n).map(|i| Rank(i as u16));
        let participants: Vec<Rank> = ranks.clone().filter(|r| !self.failed[r.index()]).collect();
        let failed: Vec<Rank> = ranks.filter(|r| self.failed[r.index()]).collect();
        let leavers = if side_of.is_some() {
            Vec::new()
        } else {
            self.leavers.iter().copied().filter(|r| !self.failed[r.index()]).collect()
        };
        let attempt = self.attempts;
        for &p in &participants {
            self.ctl(p, Ctl::Block { attempt, failed: failed.clone() }, cx);
        }
        self.change = Some(Change {
            attempt,
            failed,
            participants,
            leavers,
            side_of,
            reports: vec![None; n],
            cut: None,
            flushed: vec![false; n],
            deadline: cx.now + self.cfg.flush,
            resend_at: cx.now + self.cfg.resend,
            stalled,
        });
    }

    /// Block again to the participants that have not reported, Cut again to those that have
    /// not flushed.
    pub(super) fn resend(&mut self, cx: &mut Cx<'_>) {
        let Some(ch) = self.change.as_mut() else { return };
        ch.resend_at = cx.now + self.cfg.resend;
        let mut out = Vec::new();
        for &p in ch.participants.iter().filter(|&&p| p != cx.rank) {
            if ch.reports[p.index()].is_none() {
                out.push((p, Ctl::Block { attempt: ch.attempt, failed: ch.failed.clone() }));
            } else if let Some(cut) = ch.cut.as_ref().filter(|_| !ch.flushed[p.index()]) {
                out.push((p, Ctl::Cut { attempt: ch.attempt, cut: cut.clone() }));
            }
        }
        self.n.resent += out.len() as u64;
        for (p, c) in out {
            self.ctl(p, c, cx);
        }
    }

    /// A failure during a flush: start it over without the failed members.
    pub(super) fn restart_change(&mut self, cx: &mut Cx<'_>) {
        if let Some(ch) = self.change.take() {
            self.n.restarts += 1;
            self.start_attempt(ch.side_of, ch.stalled, cx);
        }
    }

    pub(super) fn on_report(&mut self, from: Rank, attempt: u32, rep: Report, cx: &mut Cx<'_>) {
        let n = self.failed.len();
        let Some(ch) = self.change.as_mut().filter(|c| c.attempt == attempt && c.participants.contains(&from)) else {
            return;
        };
        if rep.delivered.len() != n {
            self.n.bad += 1;
            return;
        }
        ch.reports[from.index()] = Some(rep);
        if ch.cut.is_some() || ch.participants.iter().any(|p| ch.reports[p.index()].is_none()) {
            return;
        }
        if ch.stalled {
            let blamed = Self::blame(ch, cx.rank);
            if !blamed.is_empty() {
                self.n.blamed += blamed.len() as u64;
                for r in blamed {
                    self.failed[r.index()] = true;
                }
                return self.restart_change(cx);
            }
        }
        let Some(ch) = self.change.as_mut() else { return };
        // A participant's own casts: all it issued (the reliable layer's digest counts them
        // as numbered, and they all come back to it). A failed rank's: the most anyone has.
        let cut: Vec<u64> = (0..n)
            .map(|s| match &ch.reports[s] {
                Some(r) if ch.participants.contains(&Rank(s as u16)) => r.delivered[s],
                _ => ch
                    .participants
                    .iter()
                    .filter_map(|p| ch.reports[p.index()].as_ref())
                    .map(|r| r.delivered[s])
                    .max()
                    .unwrap_or(0),
            })
            .collect();
        ch.cut = Some(cut.clone());
        let (attempt, participants) = (ch.attempt, ch.participants.clone());
        for p in participants {
            self.ctl(p, Ctl::Cut { attempt, cut: cut.clone() }, cx);
        }
        if self.cfg.test_install_before_flushed {
            self.complete_change(cx); // planted bug (tests only): no wait for Flushed
        }
    }

    pub(super) fn on_flushed(&mut self, from: Rank, attempt: u32, cx: &mut Cx<'_>) {
        let Some(ch) = self.change.as_mut().filter(|c| c.attempt == attempt && c.cut.is_some()) else { return };
        ch.flushed[from.index()] = true;
        if ch.participants.iter().all(|p| ch.flushed[p.index()]) {
            self.complete_change(cx);
        }
    }

    /// In a stalled attempt, with every report in: the participants whose counts do not fit
    /// a cut this coordinator has itself reached — one whose own casts it has not all
    /// delivered; one that delivered more, or less, of a failed member's casts than it did
    /// (more breaks agreement, less has had a `flush_ms` to be fetched already); one short of
    /// another participant's casts that this coordinator has. Whoever is left has delivered
    /// the next cut already.
    fn blame(ch: &super::Change, me: Rank) -> Vec<Rank> {
        let of = |p: Rank| ch.reports[p.index()].as_ref().map(|r| &r.delivered);
        let Some(mine) = of(me) else { return Vec::new() };
        let failed: Vec<usize> = (0..mine.len()).filter(|&s| !ch.participants.contains(&Rank(s as u16))).collect();
        let own = |s: Rank| of(s).map_or(0, |d| d[s.index()]).min(mine[s.index()]);
        ch.participants
            .iter()
            .copied()
            .filter(|&p| p != me)
            .filter(|&p| {
                let Some(theirs) = of(p) else { return true };
                mine[p.index()] < theirs[p.index()]
                    || failed.iter().any(|&f| theirs[f] != mine[f])
                    || ch.participants.iter().any(|&s| theirs[s.index()] < own(s))
            })
            .collect()
    }

    /// The flush ran out of time. Participants that never reported count as failed, and so
    /// do those that did not flush when this coordinator did (or when this attempt measured
    /// them against it already); the flush starts over without them. If this coordinator is
    /// itself short of its cut, the next attempt is stalled (see the module doc).
    pub(super) fn change_timeout(&mut self, cx: &mut Cx<'_>) {
        let Some(ch) = self.change.as_ref() else { return };
        let me = cx.rank.index();
        let me_late = ch.reports[me].is_none() || (ch.cut.is_some() && !ch.flushed[me]);
        // Planted bug (tests only): the flush as it was, counting above the reliable layer,
        // with no way out when the coordinator itself cannot reach the cut.
        let old = self.cfg.test_count_in_gms;
        let judge_late = !me_late || ch.stalled || old;
        let slow: Vec<Rank> = ch
            .participants
            .iter()
            .copied()
            .filter(|p| {
                *p != cx.rank
                    && (ch.reports[p.index()].is_none() || (judge_late && ch.cut.is_some() && !ch.flushed[p.index()]))
            })
            .collect();
        if slow.is_empty() && (!me_late || old) {
            // Nothing late (it cannot be: the change completes once every flush is in), or the
            // planted bug waiting on itself: wait again.
            if let Some(ch) = self.change.as_mut() {
                ch.deadline = cx.now + self.cfg.flush;
            }
            return;
        }
        for r in slow {
            self.failed[r.index()] = true;
        }
        if me_late && !old {
            self.n.stalls += 1;
            if let Some(ch) = self.change.as_mut() {
                ch.stalled = true;
            }
        }
        self.restart_change(cx);
    }

    fn complete_change(&mut self, cx: &mut Cx<'_>) {
        let Some(ch) = self.change.take() else { return };
        if let Some(leader) = ch.side_of {
            self.merging = Some(MergeOut {
                leader,
                attempt: ch.attempt,
                participants: ch.participants,
                resend: cx.now,
                deadline: cx.now + self.cfg.merge,
            });
            return self.merging_timeout(cx);
        }
        let stay: Vec<Rank> = ch.participants.iter().copied().filter(|p| !ch.leavers.contains(p)).collect();
        let leavers: Vec<EndpointId> = ch.leavers.iter().filter_map(|&r| cx.view.member(r)).collect();
        for r in &ch.leavers {
            self.leavers.remove(r);
        }
        let sides = core::mem::take(&mut self.sides);
        let joiners = core::mem::take(&mut self.joiners);
        self.install_next(ch.attempt, &stay, &leavers, sides, joiners, cx);
    }

    /// Builds the next view from this view's `stay` ranks, merge sides and joiners, sends it
    /// to everyone concerned, and installs it here.
    pub(super) fn install_next(
        &mut self,
        attempt: u32,
        stay: &[Rank],
        leavers: &[EndpointId],
        sides: Vec<super::SideReady>,
        joiners: Vec<EndpointId>,
        cx: &mut Cx<'_>,
    ) {
        let mut members: Vec<EndpointId> = stay.iter().filter_map(|&r| cx.view.member(r)).collect();
        let own = members.clone();
        let mut subgroups = vec![own.clone()];
        let mut ltime = cx.view.id.ltime;
        let mut last = self.info.as_ref().map(|i| i.last_primary.clone()).unwrap_or_default();
        let mut from = vec![Side { view: cx.view.id, coord: self.me, attempt }];
        for s in &sides {
            let fresh: Vec<EndpointId> = s.members.iter().copied().filter(|m| !members.contains(m)).collect();
            members.extend(&fresh);
            subgroups.push(fresh);
            ltime = ltime.max(s.side.view.ltime);
            for p in &s.last_primary {
                if !last.iter().any(|q| q.id == p.id) {
                    last.push(p.clone());
                }
            }
            from.push(s.side);
        }
        // A member that has not loaded the state yet gets it again.
        let mut new: Vec<EndpointId> = self
            .info
            .as_ref()
            .map(|i| i.joiners.iter().copied().filter(|j| own.contains(j) && self.loading_of(*j, cx)).collect())
            .unwrap_or_default();
        for j in joiners {
            if !members.contains(&j) {
                members.push(j);
                new.push(j);
            }
        }
        if members.is_empty() {
            return self.exit(cx);
        }
        // One past the largest, plus this coordinator's rank: a coordinator of rank `k` took
        // over from ranks below it, any of which may have installed a view that some members
        // never heard of (a leaving coordinator's `Install` lost on its way, or it crashed
        // just after sending it). Such a view is `(ltime + 1 + i, members[0])` for its rank
        // `i < k`; without the offset the next coordinator could make a view with that same
        // id and other members, and a member in the one would take the other's traffic.
        let id = ViewId { ltime: ltime + 1 + self.coord().index() as u64, coord: members[0] };
        // A majority of the last primary view of every history the sides come from. Taking
        // only the latest of them (by view id) is not enough: ids of histories that split
        // while not primary do not order them, and a primary view that followed an "older"
        // one elsewhere holds a majority of it, which this view then cannot.
        let primary = if self.cfg.primary {
            let holds = |p: &Primary| p.members.iter().filter(|m| members.contains(m)).count() * 2 > p.members.len();
            (!last.is_empty() && last.iter().all(holds)) || self.cfg.test_always_primary
        } else {
            true
        };
        if sides.is_empty() {
            subgroups.clear();
        } else {
            self.n.merges += 1;
        }
        let view = View { id, members, primary, subgroups };
        let last_primary = if primary {
            vec![Primary { id, members: view.members.clone() }]
        } else {
            // Bounded (hostile sides): the newest histories are kept.
            last.sort_by_key(|p| core::cmp::Reverse(p.id));
            last.truncate(super::wire::MAX_PRIMARIES);
            last
        };
        let keys = cx.key_table(&view);
        let inst = Install { view, sides: from, joiners: new, last_primary, keys };
        for &m in inst.view.members.iter().chain(leavers) {
            if m != self.me {
                self.gossip(Some(m), Kind::Install(Box::new(inst.clone())), cx);
            }
        }
        cx.keep(MEMO, inst.to_bytes());
        if inst.view.members.contains(&self.me) {
            self.install(&inst, cx);
        } else {
            // A leaving coordinator: the new coordinator resends the view to members that
            // missed it, but only once it has it itself; keep sending it there until its
            // beacon shows it installed (or `leave_ms` runs out), then exit.
            self.handoff = Some((inst, cx.now + self.cfg.hello));
        }
    }

    /// A leaving coordinator resends the view it installed to that view's coordinator.
    pub(super) fn handoff_timeout(&mut self, cx: &mut Cx<'_>) {
        let Some((inst, at)) = self.handoff.as_mut() else { return };
        if *at <= cx.now {
            *at = cx.now + self.cfg.hello;
            let (to, inst) = (inst.view.members[0], Box::new(inst.clone()));
            self.gossip(Some(to), Kind::Install(inst), cx);
        }
    }

    /// Whether joiner `j` of this view is still waiting for the state (only the
    /// coordinator knows; others report nothing of it).
    fn loading_of(&self, j: EndpointId, cx: &Cx<'_>) -> bool {
        self.hold && cx.view.rank_of(j).is_some_and(|r| self.xfer.as_ref().is_none_or(|x| x.contains(&r)))
    }

    /// The coordinator of a new view resends it to members not heard from, and excludes
    /// those still silent after `ready_ms`.
    pub(super) fn ready_timeout(&mut self, cx: &mut Cx<'_>) {
        let now = cx.now;
        let missing: Vec<Rank> = cx.view.ranks().filter(|r| !self.ready[r.index()]).collect();
        if missing.is_empty() {
            self.resend_at = None;
            self.ready_until = None;
            return;
        }
        if self.ready_until.is_some_and(|t| t <= now) {
            self.ready_until = None;
            self.resend_at = None;
            for r in missing {
                self.failed[r.index()] = true;
            }
            return self.maybe_change(cx);
        }
        if self.resend_at.is_some_and(|t| t <= now) {
            self.resend_at = Some(now + self.cfg.hello);
            if let Some(inst) = self.info.clone() {
                for r in missing {
                    let to = cx.view.member(r);
                    self.gossip(to, Kind::Install(Box::new(inst.clone())), cx);
                }
            }
        }
    }
}
