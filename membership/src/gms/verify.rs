//! Verifying a suspicion before anyone is excluded: ping the suspect a few times; any
//! message from it clears the suspicion (see `Gms::alive`); silence makes it failed, which
//! the coordinator acts on (or is told of, and verifies itself).

use super::wire::Ctl;
use super::{Gms, Verify};
use thoth_stack::{Cx, Rank};

impl Gms {
    pub(super) fn start_verify(&mut self, r: Rank, cx: &mut Cx<'_>) {
        if r == cx.rank || self.failed[r.index()] || self.verify.contains_key(&r) || Self::provisional(cx) {
            return;
        }
        self.nonce = self.nonce.wrapping_add(1);
        self.verify.insert(r, Verify { nonce: self.nonce, tries: 0, next: cx.now });
        self.verify_timeout(cx);
    }

    pub(super) fn verify_timeout(&mut self, cx: &mut Cx<'_>) {
        let now = cx.now;
        let due: Vec<Rank> = self.verify.iter().filter(|(_, v)| v.next <= now).map(|(r, _)| *r).collect();
        let mut confirmed = Vec::new();
        for r in due {
            let Some(v) = self.verify.get_mut(&r) else { continue };
            if v.tries >= self.cfg.verify_tries {
                self.verify.remove(&r);
                confirmed.push(r);
            } else {
                v.tries += 1;
                v.next = now + self.cfg.verify;
                let nonce = v.nonce;
                self.ctl_unrel(r, Ctl::Ping(nonce), cx);
            }
        }
        if !confirmed.is_empty() {
            self.confirm_failed(confirmed, cx);
        }
    }

    /// Verified failures: the coordinator excludes them (restarting a flush under way);
    /// another member tells the coordinator — which may now be this member.
    pub(super) fn confirm_failed(&mut self, ranks: Vec<Rank>, cx: &mut Cx<'_>) {
        let old = self.coord();
        for &r in &ranks {
            self.failed[r.index()] = true;
            self.n.verified += 1;
        }
        if self.am_coord(cx) {
            let affected = self.change.as_ref().is_some_and(|c| c.participants.iter().any(|p| ranks.contains(p)));
            if affected {
                self.restart_change(cx);
            } else {
                self.maybe_change(cx);
            }
        } else {
            let c = self.coord();
            self.ctl(c, Ctl::Suspect(ranks), cx);
            if c != old && self.leaving.is_some() {
                self.ctl(c, Ctl::Leave, cx);
            }
        }
    }
}
