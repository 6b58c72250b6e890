//! A replica's state as a whole: its snapshot (version, applied results, the semantics
//! object's dump) for state transfer and checkpoints, a restore from a checkpoint, the
//! offers of a newer checkpoint at a restart and of each side's state at a merge, and the
//! operations that wait meanwhile (or, at a primary, for its updates). See the module doc
//! of `object` for the rules; tested in `grpc/tests/objects.rs`.

use super::applied::Applied;
use super::{Deferred, ObjConfig, ObjError, ObjEvent, Purpose, RESTORE, Replica, Semantics, capability};
use crate::call::{Fault, Mode, Order, Target};
use crate::machine::Rpc;
use thoth_stack::{Bytes, EndpointId, Layer, Machine, Time, View};

impl<S: Semantics, L: Layer> Replica<S, L> {
    /// A member of the object over `rpc` that starts from `checkpoint` (one `checkpoint`
    /// made, kept in a store: `durable`), so a group that stopped entirely restarts with its
    /// last state. The first member to start forms the group with its checkpoint; each
    /// that joins it later gets the group's state by transfer and, if its own checkpoint is
    /// newer (more state changes), offers it to the group, where every replica takes it in
    /// the one order (writes the group ran in between from an older state are then
    /// discarded: start the member with the newest checkpoint first, or every member before
    /// writing). For an endpoint that joins (`Config::joining`): members of a fixed first
    /// view would each keep their own.
    pub fn restore(rpc: Rpc<L>, obj: S, cfg: ObjConfig, checkpoint: &[u8]) -> Result<Replica<S, L>, String> {
        let mut r = Replica::new(rpc, obj, cfg);
        r.load(checkpoint)?;
        r.restored = Some((r.version, Bytes::copy_from_slice(checkpoint)));
        Ok(r)
    }

    /// This replica's whole state (its version, the applied results, the semantics object's
    /// dump), for a store (`durable`): what `restore` starts from. Cheap to skip when
    /// `version` has not moved since the last one.
    pub fn checkpoint(&self) -> Bytes {
        Bytes::from(self.snapshot())
    }

    /// State changes applied so far (see the field).
    pub fn version(&self) -> u64 {
        self.version
    }

    pub(super) fn snapshot(&self) -> Vec<u8> {
        let mut v = self.version.to_le_bytes().to_vec();
        self.applied.encode(&mut v);
        v.extend_from_slice(&self.obj.dump());
        v
    }

    /// Replaces the whole state with a `snapshot`.
    pub(super) fn load(&mut self, snapshot: &[u8]) -> Result<(), String> {
        let (version, mut r) = Self::version_of(snapshot)?;
        let applied = Applied::decode(&mut r)?;
        self.obj.undump(r)?;
        self.applied = applied;
        self.version = version;
        Ok(())
    }

    pub(super) fn version_of(snapshot: &[u8]) -> Result<(u64, &[u8]), String> {
        let (v, rest) = snapshot.split_first_chunk::<8>().ok_or("a snapshot cut short")?;
        Ok((u64::from_le_bytes(*v), rest))
    }

    /// Offers a state to the group: a checkpoint newer than the group's (see `restore`), or
    /// this member's side's state at a merge. `primary`: whether it comes from a primary
    /// view's history.
    pub(super) fn offer_restore(&mut self, now: Time, primary: bool, snapshot: &[u8]) {
        self.stats.offered += 1;
        let mut offer = Vec::with_capacity(1 + snapshot.len());
        offer.push(u8::from(primary));
        offer.extend_from_slice(snapshot);
        let args = capability::wrap(self.cfg.cap.as_ref(), &offer);
        let req = self.request(Target::Group, RESTORE, args, Mode::All, Order::Abcast);
        // As flow control lets it (a joiner's first casts may wait for credit); this
        // member's own operations wait behind it.
        self.queued.push_back((req, Purpose::Restore));
        self.send_queued(now);
    }

    /// Takes a state `from` offered if it ranks above this replica's: from a primary view's
    /// history first, then newer, then (two histories that forked, each as long: either
    /// will do, but every replica must pick the same) the greater bytes. Every replica
    /// takes the offers in the one order, so all end with the highest.
    pub(super) fn take_offer(&mut self, now: Time, from: EndpointId, offer: &[u8]) -> Result<Bytes, Fault> {
        let (&p, snapshot) = offer.split_first().ok_or(Fault::Failed("an empty offer".into()))?;
        let (version, _) = Self::version_of(snapshot).map_err(Fault::Failed)?;
        let theirs = (p != 0, version);
        let ours = (self.primary, self.version);
        if theirs > ours || (theirs == ours && snapshot > &self.snapshot()[..]) {
            self.load(snapshot).map_err(Fault::Failed)?;
            self.primary = p != 0;
            self.stats.restored += 1;
        }
        if self.merging.remove(&from) && self.merging.is_empty() {
            self.merged(now);
        }
        Ok(Bytes::new())
    }

    /// A view came: a merge starts (every member offers its side's state, operations wait
    /// until this replica has had every member's), or one under way loses members.
    pub(super) fn on_view(&mut self, now: Time, v: &View) {
        if v.subgroups.len() > 1 && v.len() > 1 {
            self.merging = v.members.iter().copied().collect();
            let snapshot = self.snapshot();
            self.offer_restore(now, self.primary, &snapshot);
        } else if !self.merging.is_empty() {
            self.merging.retain(|m| v.rank_of(*m).is_some());
            if self.merging.is_empty() {
                self.merged(now);
            }
        } else {
            self.primary = v.primary;
        }
    }

    /// The merge ended: what waited runs, in the order it came.
    pub(super) fn merged(&mut self, now: Time) {
        self.primary = self.rpc.view().primary;
        while self.merging.is_empty()
            && let Some(d) = self.deferred.pop_front()
        {
            self.resume(now, d);
        }
    }

    /// Runs what waited (for a merge, or for the primary's updates).
    pub(super) fn resume(&mut self, now: Time, d: Deferred) {
        match d {
            Deferred::Request { caller, method, args, reply } => self.serve(now, caller, method, &args, reply),
            Deferred::Own(cmd) => {
                let id = cmd.id();
                if let Err(why) = self.run(now, cmd)
                    && let Some(id) = id
                {
                    self.events.push_back(ObjEvent::Done { id, result: Err(ObjError::Refused(why)) });
                }
            }
        }
    }

    /// `PrimaryBackup`: a read at the primary waits for the updates in flight now.
    pub(super) fn hold_read(&mut self, d: Deferred) {
        self.reads.push_back((self.last_update, d));
    }

    /// Runs the reads whose updates are all through.
    pub(super) fn release_reads(&mut self, now: Time) {
        while let Some(&(need, _)) = self.reads.front()
            && self.in_flight.first().is_none_or(|&u| u > need)
        {
            let (_, d) = self.reads.pop_front().expect("a read");
            self.resume(now, d);
        }
    }
}
