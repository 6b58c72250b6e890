//! Out of the view: a new endpoint finding its group, coordinators' beacons, joins, and
//! merging partitions (leader and sides).

use super::wire::{Gossip, Kind, Side};
use super::{Discovery, Gms, MAX_PENDING, MEMO, SideReady};
use thoth_stack::{Cx, EndpointId, View, ViewId};

impl Gms {
    pub(super) fn start_discovery(&mut self, cx: &mut Cx<'_>) {
        let now = cx.now;
        self.disc = Some(Discovery {
            next_hello: now,
            form_at: now + self.cfg.discover,
            give_up: now + self.cfg.discover * 3,
            others: Default::default(),
            best: None,
            best_since: now,
        });
    }

    pub(super) fn discovery_timeout(&mut self, cx: &mut Cx<'_>) {
        let now = cx.now;
        let Some(d) = self.disc.as_mut() else { return };
        if d.next_hello <= now {
            d.next_hello = now + self.cfg.hello;
            // A coordinator that has not answered for a while may be gone: look again.
            if d.best.is_some() && now.since(d.best_since) > self.cfg.discover {
                d.best = None;
            }
            let best = d.best.map(|(_, c)| c);
            self.gossip(None, Kind::Hello, cx);
            if let Some(c) = best {
                self.gossip(Some(c), Kind::Join, cx);
            }
        }
        let Some(d) = self.disc.as_mut() else { return };
        if d.form_at <= now && d.best.is_none() {
            let lowest = d.others.iter().all(|o| *o > self.me);
            if lowest || now >= d.give_up {
                return self.form(cx);
            }
            d.form_at = now + self.cfg.hello;
        } else if d.form_at <= now {
            d.form_at = now + self.cfg.hello;
        }
    }

    /// Nobody to join: this endpoint forms the group's first view, alone.
    fn form(&mut self, cx: &mut Cx<'_>) {
        self.disc = None;
        let id = ViewId { ltime: 1, coord: self.me };
        let view = View { id, members: vec![self.me], primary: true, subgroups: Vec::new() };
        let inst = super::wire::Install {
            view: view.clone(),
            sides: Vec::new(),
            joiners: Vec::new(),
            last_primary: vec![super::wire::Primary { id, members: vec![self.me] }],
            keys: cx.key_table(&view),
        };
        cx.keep(MEMO, inst.to_bytes());
        self.install(&inst, cx);
    }

    pub(super) fn on_gossip(&mut self, from: EndpointId, g: Gossip, cx: &mut Cx<'_>) {
        if from == self.me {
            return;
        }
        let provisional = Self::provisional(cx);
        match g.kind {
            Kind::Hello if provisional => {
                if let Some(d) = self.disc.as_mut() {
                    d.others.insert(from);
                }
            }
            Kind::Hello => {
                if self.am_coord(cx) {
                    self.gossip(Some(from), Kind::Beacon { members: cx.view.members.clone() }, cx);
                }
            }
            Kind::Beacon { members } if provisional => {
                let cand = (members.len(), from);
                if let Some(d) = self.disc.as_mut() {
                    let better = match d.best {
                        None => true,
                        Some((n, c)) => cand.0 > n || (cand.0 == n && from <= c),
                    };
                    if better {
                        let fresh = d.best.map(|(_, c)| c) != Some(from);
                        d.best = Some(cand);
                        d.best_since = cx.now;
                        if fresh {
                            self.gossip(Some(from), Kind::Join, cx);
                        }
                    }
                }
            }
            Kind::Beacon { members } if g.view == cx.view.id && from == g.view.coord && members != cx.view.members => {
                self.disown(cx)
            }
            Kind::Beacon { .. } => self.on_beacon(from, g.view, cx),
            Kind::Join => self.on_join(from, cx),
            Kind::MergeReady { members, attempt, last_primary } => {
                let side = Side { view: g.view, coord: from, attempt };
                self.on_merge_ready(SideReady { side, members, last_primary, at: cx.now }, cx);
            }
            Kind::Install(inst) => self.on_install(*inst, cx),
        }
    }

    /// This view's own coordinator beacons this view's id with other members: the view this
    /// member installed is not the one its coordinator did (a forged `Install` for the flush
    /// it committed to can make that: the right id, other members). The two would take each
    /// other's traffic for good — the coordinator's datagrams keep this member's failure
    /// detector content while the coordinator ignores it — so the member leaves for a view
    /// of its own, alone, from which merging brings it back as from a partition.
    fn disown(&mut self, cx: &mut Cx<'_>) {
        self.n.disowned += 1;
        self.install_next(0, &[cx.rank], &[], Vec::new(), Vec::new(), cx);
    }

    fn on_join(&mut self, from: EndpointId, cx: &mut Cx<'_>) {
        if !self.am_coord(cx) || cx.view.members.contains(&from) || self.joiners.contains(&from) {
            return;
        }
        if self.joiners.len() >= MAX_PENDING {
            self.n.dropped_pending += 1;
            return;
        }
        self.n.joins += 1;
        self.joiners.push(from);
        self.maybe_change(cx);
    }

    pub(super) fn beacon(&mut self, cx: &mut Cx<'_>) {
        if self.am_coord(cx) {
            self.next_beacon = Some(cx.now + self.cfg.beacon);
            self.gossip(None, Kind::Beacon { members: cx.view.members.clone() }, cx);
        } else {
            self.next_beacon = None;
        }
    }

    /// Another view's coordinator: the one with the lower id leads the merge; the other
    /// flushes its view as a side and asks to be merged.
    fn on_beacon(&mut self, from: EndpointId, view: ViewId, cx: &mut Cx<'_>) {
        // A leaving coordinator: the view without it has reached its coordinator.
        if self.handoff.as_ref().is_some_and(|(i, _)| from == i.view.members[0] && view >= i.view.id) {
            self.handoff = None;
            return self.exit(cx);
        }
        if !self.am_coord(cx) || view == cx.view.id || cx.view.members.contains(&from) {
            return;
        }
        if from < self.me && self.change.is_none() && self.merging.is_none() && self.sides.is_empty() {
            self.start_change(Some(from), cx);
        }
    }

    fn on_merge_ready(&mut self, s: SideReady, cx: &mut Cx<'_>) {
        let leads = self.am_coord(cx)
            && s.side.coord > self.me
            && self.merging.is_none()
            && self.change.as_ref().is_none_or(|c| c.side_of.is_none())
            && !cx.view.members.contains(&s.side.coord);
        if !leads {
            return;
        }
        let now = cx.now;
        self.sides.retain(|x| x.side.coord != s.side.coord && now.since(x.at) < self.cfg.merge);
        if self.sides.len() >= MAX_PENDING {
            self.n.dropped_pending += 1;
            return;
        }
        self.sides.push(s);
        if self.change.is_none() && self.merge_at.is_none() {
            self.merge_at = Some(now + self.cfg.merge_window);
        }
    }

    /// A side resends `MergeReady` until the leader's view arrives; past `merge_ms` it
    /// installs a view of its own side again, so its members are not blocked for good.
    pub(super) fn merging_timeout(&mut self, cx: &mut Cx<'_>) {
        let now = cx.now;
        let Some(m) = self.merging.as_mut() else { return };
        if m.deadline <= now {
            let m = self.merging.take().expect("checked above");
            return self.install_next(m.attempt, &m.participants, &[], Vec::new(), Vec::new(), cx);
        }
        if m.resend <= now {
            m.resend = now + self.cfg.hello;
            let (leader, attempt) = (m.leader, m.attempt);
            let members: Vec<EndpointId> = m.participants.iter().filter_map(|&r| cx.view.member(r)).collect();
            let last_primary = self.info.as_ref().map(|i| i.last_primary.clone()).unwrap_or_default();
            self.gossip(Some(leader), Kind::MergeReady { members, attempt, last_primary }, cx);
        }
    }
}
