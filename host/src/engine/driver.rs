//! The drive loop: one transaction, in memory, from its lease to its end or
//! its next sleep.
//!
//! What is written, and when (the state machine decides everything else):
//!
//! - **Create**: before any op of the transaction may commit. With the op's
//!   database co-located it rides in that op's commit; otherwise the create
//!   was written at submit, or is written before the op.
//! - **Progress of a succeeded op**: rides in the op's commit when
//!   co-located; otherwise it is not written at all: after a crash the op
//!   runs again and the barrier makes it a no-op. The ops changed since the
//!   last write are kept as `dirty` and go with the next one.
//! - **A decision**: the switch to compensation (or cancel), and a TCC's
//!   decision to confirm, are durable before any op carrying them out commits
//!   (riding in that op's commit, or the deciding op's, when co-located), so
//!   that a restarted driver never runs a forward op again after a
//!   compensation, nor cancels what it began to confirm.
//! - **A sleep** (a retry later) and **the end**: the state and the lease's
//!   release in one write, the end riding in the last op's commit when
//!   co-located.
//! - **The lease**: kept alive by these writes; a driver whose lease would
//!   lapse before its next write renews it first, and one that finds itself
//!   fenced stops.

use std::collections::BTreeSet;

use tokio::sync::OwnedSemaphorePermit;
use tracing::Instrument;

use super::saga::{self, Effect, Event, Outcome};
use super::{BranchCall, Carried, Engine, Live, control, duration_ms, history};
use crate::model::{BranchId, JournalEntry, Millis, Op, Status, TransactionState};
use crate::store::{Lease, Progress, StoreError};

/// A transaction being driven.
pub(super) struct Driving {
    pub lease: Lease,
    pub state: TransactionState,
    /// The store holds the transaction.
    pub(super) stored: bool,
    /// Its status as the store holds it.
    durable_status: Status,
    /// When the stored lease runs out.
    durable_lease: Option<Millis>,
    /// Ops changed since the last write.
    pub(super) dirty: BTreeSet<(BranchId, Op)>,
    /// A workflow's journal, once loaded (see `workflow`).
    pub(super) journal: Option<Vec<JournalEntry>>,
    /// How many of its entries the store holds.
    pub(super) journal_stored: usize,
}

impl Driving {
    pub fn new(lease: Lease, state: TransactionState, stored: bool) -> Self {
        let durable_status = state.transaction.status;
        let durable_lease = state.transaction.lease_expires;
        Self {
            lease,
            state,
            stored,
            durable_status,
            durable_lease,
            dirty: BTreeSet::new(),
            journal: None,
            journal_stored: 0,
        }
    }

    /// The write that brings the store up to `state` (`release` gives the lease up).
    fn progress(&self, state: &TransactionState, dirty: &BTreeSet<(BranchId, Op)>, release: bool) -> Progress {
        if !self.stored {
            let mut state = state.clone();
            if release {
                state.transaction.lease_owner = None;
                state.transaction.lease_expires = None;
            }
            return Progress::Create(state);
        }
        let ops = state.ops.iter().filter(|o| dirty.contains(&(o.branch_id.clone(), o.op))).cloned().collect();
        let journal = self.journal.as_ref().map(|j| j[self.journal_stored.min(j.len())..].to_vec()).unwrap_or_default();
        Progress::Save { lease: self.lease.clone(), transaction: state.transaction.clone(), ops, journal, release }
    }

    /// The fenced save of the state as it is (never the create).
    pub(super) fn save_progress(&self, release: bool) -> Progress {
        debug_assert!(self.stored, "a save of a transaction not stored yet");
        self.progress(&self.state, &self.dirty, release)
    }

    /// [`Driving::save_progress`] was written (with the lease released).
    pub(super) fn mark_written(&mut self) {
        self.written(self.state.transaction.status);
        self.durable_lease = None;
    }

    fn written(&mut self, status: Status) {
        self.stored = true;
        self.durable_status = status;
        self.durable_lease = self.state.transaction.lease_expires;
        self.dirty.clear();
        self.journal_stored = self.journal.as_ref().map_or(0, Vec::len);
    }
}

/// Why the loop stopped before an end.
pub(super) enum Stop {
    Fenced,
    GidTaken,
    Store(StoreError),
    ShuttingDown,
}

impl Engine {
    /// Drives `d` until it sleeps, finishes, is fenced or the engine shuts
    /// down, and tells waiters how it went.
    pub(super) async fn drive(&self, mut d: Driving, _permit: OwnedSemaphorePermit) {
        let gid = d.lease.gid.clone();
        let tx = &d.state.transaction;
        let span = crate::telemetry::transaction_span(&gid, tx.mode.as_str(), &tx.options.branch_headers);
        let outcome = self.drive_loop(&mut d).instrument(span.clone()).await;
        span.record("status", d.state.transaction.status.as_str());
        // Controls that came too late for this driver: their callers look at the store.
        let _late = ControlsDropper { engine: self, gid: gid.clone() };
        match outcome {
            Ok(()) => {
                let update = if d.state.transaction.status.is_final() {
                    // The end's write gave the lease up.
                    let mut state = d.state.clone();
                    state.transaction.lease_owner = None;
                    state.transaction.lease_expires = None;
                    Live::Final(state)
                } else {
                    Live::Stopped
                };
                self.publish(&gid, update);
            }
            Err(Stop::GidTaken) => match self.inner.store.load(&gid).await {
                Ok(Some(existing)) => {
                    let t = &existing.transaction;
                    let leased = t.lease_owner.is_some() && t.lease_expires.is_some_and(|until| until > self.now());
                    let (unfinished, existing_gid) = (!t.status.is_final() && !leased, t.gid.clone());
                    self.publish(&gid, Live::Existing(existing));
                    if unfinished {
                        self.spawn_claim(existing_gid);
                    }
                }
                _ => self.publish(&gid, Live::Stopped),
            },
            Err(stop) => {
                match &stop {
                    Stop::Fenced => tracing::info!(%gid, "another owner took the transaction over; stopping here"),
                    Stop::Store(e) => {
                        tracing::warn!(%gid, error = %e, "store unavailable; the transaction will be resumed later");
                        // Its lease is still ours, so no poll would take it
                        // before the lease lapses: take it back as soon as the
                        // store answers again.
                        self.spawn_reclaim(gid.clone());
                    }
                    Stop::ShuttingDown => tracing::debug!(%gid, "stopped for shutdown"),
                    Stop::GidTaken => {}
                }
                self.publish(&gid, Live::Stopped);
            }
        }
    }

    async fn drive_loop(&self, d: &mut Driving) -> Result<(), Stop> {
        let lease_ms = duration_ms(self.inner.config.lease);
        let retry = self.inner.config.retry;
        let mut event = Event::Resume;
        loop {
            let now = self.now();
            if let Event::Outcome { branch_id, op, .. } = &event {
                d.dirty.insert((branch_id.clone(), *op));
            }
            let before = d.state.transaction.status;
            let mut effect = super::step(&mut d.state, event, now, &retry);
            if self.apply_controls(d, now) {
                // What comes next is decided afresh (a step is pure in the state).
                effect = super::step(&mut d.state, Event::Resume, now, &retry);
            }
            self.note_status(d, before, now);
            d.state.transaction.lease_expires = Some(now.plus_ms(lease_ms));
            self.publish(&d.lease.gid, Live::Running { state: d.state.clone(), stored: d.stored });

            match effect {
                Effect::Invoke { branch_id, op, attempt } => {
                    if *self.inner.shutdown.borrow() {
                        self.persist(d, true).await?;
                        return Err(Stop::ShuttingDown);
                    }
                    let Some(branch_op) = d.state.op(&branch_id, op).cloned() else {
                        let gid = &d.lease.gid;
                        return Err(Stop::Store(StoreError::Corrupt(format!(
                            "{gid}: no {op} op for branch {branch_id}"
                        ))));
                    };
                    if d.state.transaction.options.concurrent {
                        self.run_wave(d, now, lease_ms).await?;
                        event = Event::Resume;
                        continue;
                    }
                    if op == Op::Run {
                        match self.run_workflow(d, attempt).await? {
                            Some(next) => {
                                event = next;
                                continue;
                            }
                            // Parked (a sleep, a signal, a step's retry): written and released.
                            None => return Ok(()),
                        }
                    }
                    let colocated = self.carries_progress(d.state.transaction.mode, &branch_op.target);
                    let after = colocated.then(|| self.after_success(d, &branch_id, op, now));
                    if after.is_none() {
                        // The store must hold the create, and the decision
                        // this op carries out (the switch to compensation or
                        // cancel, the decision to confirm), before this op may
                        // commit; and a lease that would lapse before the op
                        // ends is renewed first.
                        self.write_before(d, op.settles().is_some(), now, lease_ms).await?;
                    }
                    let call = BranchCall {
                        gid: d.lease.gid.clone(),
                        mode: d.state.transaction.mode,
                        branch_id: branch_id.clone(),
                        op,
                        target: branch_op.target,
                        payload: branch_op.payload,
                        attempt,
                        headers: d.state.transaction.options.branch_headers.clone(),
                        timeout: d.state.transaction.options.request_timeout.map(std::time::Duration::from_secs),
                        progress: after.as_ref().map(|(_, progress, _)| progress.clone()),
                    };
                    let result = self.inner.executor.execute(call).await;
                    let ended = self.now();
                    let took = u64::try_from(ended.0 - now.0).unwrap_or_default();
                    let attempted = match (&result.progress, &after) {
                        (Carried::Written, Some(_)) => Outcome::Succeeded,
                        _ => result.outcome.clone(),
                    };
                    self.record(history::attempt(&d.lease.gid, ended, &branch_id, op, attempt, &attempted, took));
                    match (result.progress, after) {
                        (Carried::Written, Some((after, _, finished))) => {
                            // The op's commit held its success and the state
                            // after it: go on from exactly that state.
                            let before = d.state.transaction.status;
                            d.state = after;
                            self.note_status(d, before, ended);
                            d.written(d.state.transaction.status);
                            if finished {
                                d.durable_lease = None;
                            }
                            event = Event::Resume;
                            continue;
                        }
                        (Carried::Fenced, _) => return Err(Stop::Fenced),
                        (Carried::GidTaken, _) => return Err(Stop::GidTaken),
                        _ => {}
                    }
                    if let saga::Outcome::Error(m) | saga::Outcome::Retry(m) = &result.outcome {
                        tracing::warn!(gid = %d.lease.gid, %branch_id, %op, attempt, error = %m, "branch op did not succeed");
                    }
                    event = Event::Outcome { branch_id, op, outcome: result.outcome };
                }
                Effect::Sleep { .. } => {
                    self.persist(d, true).await?;
                    return Ok(());
                }
                Effect::Finished { status } => {
                    let released =
                        d.stored && d.durable_status == status && d.durable_lease.is_none() && d.dirty.is_empty();
                    if !released {
                        self.persist(d, true).await?;
                    }
                    tracing::debug!(gid = %d.lease.gid, %status, "transaction finished");
                    return Ok(());
                }
            }
        }
    }

    /// The state once `branch_id`/`op` has succeeded, the write that brings
    /// the store to it (to carry with the op's commit), and whether that is
    /// the end (the write then releases the lease).
    fn after_success(
        &self,
        d: &Driving,
        branch_id: &BranchId,
        op: Op,
        now: Millis,
    ) -> (TransactionState, Progress, bool) {
        let mut after = d.state.clone();
        let event = Event::Outcome { branch_id: branch_id.clone(), op, outcome: saga::Outcome::Succeeded };
        let finished = matches!(super::step(&mut after, event, now, &self.inner.config.retry), Effect::Finished { .. });
        after.transaction.lease_expires = Some(now.plus_ms(duration_ms(self.inner.config.lease)));
        let mut dirty = d.dirty.clone();
        dirty.insert((branch_id.clone(), op));
        let progress = d.progress(&after, &dirty, finished);
        (after, progress, finished)
    }

    /// Writes the state now (the create if it was not stored yet), giving the
    /// lease up with `release`.
    pub(super) async fn persist(&self, d: &mut Driving, release: bool) -> Result<(), Stop> {
        let progress = d.progress(&d.state, &d.dirty, release);
        match self.inner.store.write(&progress).await {
            Ok(()) => {
                d.written(d.state.transaction.status);
                if release {
                    d.durable_lease = None;
                }
                Ok(())
            }
            Err(StoreError::Fenced { .. }) => Err(Stop::Fenced),
            Err(StoreError::GidTaken { .. }) => Err(Stop::GidTaken),
            Err(e) => Err(Stop::Store(e)),
        }
    }
}

impl Engine {
    /// Writes what must be durable before an op commits: the create, the
    /// decision a settling op carries out, a lease about to lapse.
    async fn write_before(&self, d: &mut Driving, settling: bool, now: Millis, lease_ms: u64) -> Result<(), Stop> {
        let must_write = !d.stored || (settling && d.durable_status != d.state.transaction.status);
        let half_lease = i64::try_from(lease_ms / 2).unwrap_or(i64::MAX);
        let lapsing = d.durable_lease.is_none_or(|until| until.0 - now.0 < half_lease);
        if must_write || (d.stored && lapsing) {
            self.persist(d, false).await?;
        }
        Ok(())
    }

    /// A concurrent saga: runs every op that may run now (at most
    /// `max_parallel_ops`) at once and records their outcomes in branch
    /// order. Progress is never carried in these ops' commits (they would
    /// each carry a state the others change); the write rules are those of
    /// ops whose database is not the store's.
    async fn run_wave(&self, d: &mut Driving, now: Millis, lease_ms: u64) -> Result<(), Stop> {
        let mut wave = super::ready(&d.state);
        wave.truncate(self.inner.config.max_parallel_ops.max(1));
        let settling = wave.iter().any(|(_, op, _)| op.settles().is_some());
        self.write_before(d, settling, now, lease_ms).await?;
        let options = &d.state.transaction.options;
        let calls = wave.iter().filter_map(|(branch_id, op, attempt)| {
            let branch_op = d.state.op(branch_id, *op)?;
            Some(self.inner.executor.execute(BranchCall {
                gid: d.lease.gid.clone(),
                mode: d.state.transaction.mode,
                branch_id: branch_id.clone(),
                op: *op,
                target: branch_op.target.clone(),
                payload: branch_op.payload.clone(),
                attempt: *attempt,
                headers: options.branch_headers.clone(),
                timeout: options.request_timeout.map(std::time::Duration::from_secs),
                progress: None,
            }))
        });
        let results = futures_util::future::join_all(calls).await;
        let ended = self.now();
        let took = u64::try_from(ended.0 - now.0).unwrap_or_default();
        let retry = self.inner.config.retry;
        for ((branch_id, op, attempt), result) in wave.into_iter().zip(results) {
            self.record(history::attempt(&d.lease.gid, ended, &branch_id, op, attempt, &result.outcome, took));
            if let Outcome::Error(m) | Outcome::Retry(m) = &result.outcome {
                tracing::warn!(gid = %d.lease.gid, %branch_id, %op, attempt, error = %m, "branch op did not succeed");
            }
            d.dirty.insert((branch_id.clone(), op));
            let before = d.state.transaction.status;
            super::step(&mut d.state, Event::Outcome { branch_id, op, outcome: result.outcome }, ended, &retry);
            self.note_status(d, before, ended);
        }
        Ok(())
    }

    /// Applies the controls waiting for this transaction, answering each;
    /// true if any changed the state.
    fn apply_controls(&self, d: &mut Driving, now: Millis) -> bool {
        let Some(requests) = self.controls().remove(&d.lease.gid) else { return false };
        let mut changed = false;
        for (request, answer) in requests {
            let result = control::apply(&mut d.state, &request, now);
            if result.is_ok() {
                d.dirty.extend(control::changed_ops(&request));
            }
            if let Ok(entry) = &result {
                self.record(entry.clone());
                changed = true;
            }
            // The caller may have given up waiting; the control stands.
            let _ = answer.send(result.map(|_| d.state.clone()));
        }
        changed
    }

    /// Records a status change since `before`.
    pub(super) fn note_status(&self, d: &Driving, before: Status, at: Millis) {
        let tx = &d.state.transaction;
        if tx.status != before {
            let reason = if matches!(tx.status, Status::Aborting | Status::Failed) {
                tx.rollback_reason.as_deref()
            } else {
                None
            };
            self.record(history::status(&tx.gid, at, before, tx.status, reason));
            if tx.status.is_final() {
                crate::metrics::transaction_finished(tx.mode.as_str(), tx.status.as_str());
            }
        }
    }
}

/// Drops the controls still waiting for a driver that has stopped, once
/// it is no longer live (their callers then ask the store).
struct ControlsDropper<'a> {
    engine: &'a Engine,
    gid: crate::model::Gid,
}

impl Drop for ControlsDropper<'_> {
    fn drop(&mut self) {
        self.engine.controls().remove(&self.gid);
    }
}
