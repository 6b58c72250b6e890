//! `Active` and `Cached` batches: writes handed over together go as one call, which every
//! replica applies write after write; each write ends with its own result. Tested in
//! `grpc/tests/objects.rs` (a batch's results and places; batches in the chaos runs).

use super::applied::{put_blob, put_result, take_blob, take_result, take_u64};
use super::{
    BATCH, BATCH_BYTES, ObjCmd, ObjError, ObjEvent, Purpose, Replica, Semantics, Strategy, WRITES, capability,
};
use crate::call::{Fault, Mode, Order, Outcome, Target};
use crate::machine::{CallId, RpcError};
use std::collections::VecDeque;
use thoth_stack::{Bytes, Layer, Machine, Time};

impl<S: Semantics, L: Layer> Replica<S, L> {
    /// `Active` and `Cached`: the writes at the front of `cmds` as one call, which every
    /// replica applies in the one order, each write after the other (so a batch is
    /// linearized as its writes one after another); at most `BATCH` writes or
    /// `BATCH_BYTES`. How many it took (none where a batch does not apply: another
    /// strategy, one member, a merge, a view that is not primary, an id pending).
    pub(super) fn batch(&mut self, now: Time, cmds: &mut VecDeque<ObjCmd>) -> Result<usize, RpcError> {
        let batched = matches!(self.cfg.strategy, Strategy::Active | Strategy::Cached)
            && !self.cfg.test_fifo_writes
            && self.rpc.view().len() > 1
            && self.rpc.view().primary
            && self.merging.is_empty();
        // The writes at the front that go together: distinct ids, none pending.
        let (mut ids, mut bytes) = (Vec::new(), 0);
        for cmd in cmds.iter().take(if batched { BATCH } else { 0 }) {
            let ObjCmd::Write { id, op } = cmd else { break };
            if (!ids.is_empty() && bytes + op.len() > BATCH_BYTES) || self.pending(*id) || ids.contains(id) {
                break;
            }
            bytes += op.len();
            ids.push(*id);
        }
        if ids.len() < 2 {
            return Ok(0);
        }
        let mut payload = Vec::with_capacity(8 + bytes + 8 * ids.len());
        payload.extend_from_slice(&(ids.len() as u64).to_le_bytes());
        for cmd in cmds.drain(..ids.len()) {
            if let ObjCmd::Write { op, .. } = cmd {
                put_blob(&mut payload, &op);
            }
        }
        self.stats.remote += ids.len() as u64;
        let args = capability::wrap(self.cfg.cap.as_ref(), &payload);
        let req = self.request(Target::Group, WRITES, args, Mode::All, Order::Abcast);
        let n = ids.len();
        self.send(now, req, Purpose::Batch { ids }).map(|()| n)
    }

    /// Applies a batch's writes in order (a count, then each after its length); their
    /// results, a count and each as `applied` writes one.
    pub(super) fn apply_batch(&mut self, mut r: &[u8]) -> Result<Bytes, Fault> {
        let n = take_u64(&mut r).map_err(Fault::Failed)?;
        let mut ops = Vec::new();
        while (ops.len() as u64) < n.min(BATCH as u64)
            && let Ok(op) = take_blob(&mut r)
        {
            ops.push(op);
        }
        if ops.len() as u64 != n || !r.is_empty() {
            self.stats.bad += 1;
            return Err(Fault::Failed("a batch that does not decode".into()));
        }
        let mut out = n.to_le_bytes().to_vec();
        for op in ops {
            self.stats.applied += 1;
            self.version += 1;
            put_result(&mut out, &self.obj.apply(op));
        }
        Ok(Bytes::from(out))
    }

    /// A batch's outcome as each write's result.
    pub(super) fn batch_ended(&mut self, ids: Vec<CallId>, outcome: &Outcome) {
        let results: Vec<Result<Bytes, ObjError>> = match outcome.values().next() {
            Some((_, v)) => match Self::batch_results(v, ids.len()) {
                Ok(rs) => rs,
                Err(why) => vec![Err(ObjError::Failed(why)); ids.len()],
            },
            None => vec![Self::result(outcome); ids.len()],
        };
        for (id, result) in ids.into_iter().zip(results) {
            let result = self.unless_cut_off(result);
            self.events.push_back(ObjEvent::Done { id, result });
        }
    }

    pub(super) fn batch_results(mut r: &[u8], n: usize) -> Result<Vec<Result<Bytes, ObjError>>, String> {
        if take_u64(&mut r)? != n as u64 {
            return Err("a batch's results do not match its writes".into());
        }
        (0..n).map(|_| take_result(&mut r).map(|o| o.map_err(ObjError::Failed))).collect()
    }
}
