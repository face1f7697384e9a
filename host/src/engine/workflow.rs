//! The durable workflow: `run`, a Wasm function, is the transaction's logic,
//! and the host journals every call it makes through `steps`.
//!
//! A workflow is stored as a transaction of mode `workflow` whose op `00 run`
//! holds the pinned workflow module and the input, and whose steps are added
//! as they are first called: step `NN` is an `action` op (and a `compensate`
//! op when `run` gave one) on the branch function it named, pinned to that
//! module's version at the time. The journal (`JournalEntry`, in order) holds
//! every call's answer.
//!
//! Driving it (`Engine::run_workflow`) means running `run` from the start in
//! a fresh instance and answering its calls: from the journal while it lasts
//! (a call that differs from its entry is non-determinism: the instance is
//! dropped and the run is retried later, the journal untouched), then for
//! real, journaling each answer. A step's op is stored, with the journal so
//! far, before it runs, so that an abort or a crash never loses a step that
//! may have committed; its output is journaled afterwards, and if a crash
//! comes first, the barrier finds the step done on replay and the output
//! kept with its commit is used. A sleep that is not over, a signal not yet
//! sent and a step to be retried later park the workflow: the state is
//! written with the lease released, and the instance dropped.
//!
//! The state machine (`step`) is saga's with one forward op, `run`: its
//! success ends the workflow, its `err` (or `retry_limit` exceeded by traps)
//! turns it `aborting`, and then the completed steps are compensated, last
//! completed first.

use super::driver::{Driving, Stop};
use super::saga::{self, Effect, Event, Outcome, Rules};
use super::{BranchCall, Engine, RetryPolicy, RunEnd, history};
use crate::model::{
    BranchId, BranchOp, JournalEntry, Millis, Op, OpStatus, Status, StepAnswer, StepCall, StepRequest, Target,
    TransactionState,
};

/// Advances a workflow by one event.
pub fn step(state: &mut TransactionState, event: Event, now: Millis, policy: &RetryPolicy) -> Effect {
    saga::run(state, event, now, policy, &Rules { timeout_in: Some(Status::Submitted), decide, forward: is_run })
}

fn is_run(op: Op) -> bool {
    op == Op::Run
}

fn decide(state: &mut TransactionState, now: Millis) -> Effect {
    match state.transaction.status {
        Status::Prepared | Status::Submitted => match state.op(&BranchId::local(), Op::Run) {
            Some(run) if run.status == OpStatus::Succeeded => saga::finish(state, Status::Succeeded, now),
            Some(run) => Effect::Invoke { branch_id: BranchId::local(), op: Op::Run, attempt: run.attempts + 1 },
            // No `run` op: nothing to run (refused at submit; a stored one is corrupt).
            None => saga::finish(state, Status::Failed, now),
        },
        Status::Aborting => {
            // Steps complete in call order, so the last one stored is the
            // last completed.
            let next = state.ops.iter().rev().find(|o| {
                o.op == Op::Compensate
                    && o.status != OpStatus::Succeeded
                    && state.op(&o.branch_id, Op::Action).is_some_and(|a| a.status == OpStatus::Succeeded)
            });
            match next {
                Some(o) => {
                    Effect::Invoke { branch_id: o.branch_id.clone(), op: Op::Compensate, attempt: o.attempts + 1 }
                }
                None => saga::finish(state, Status::Failed, now),
            }
        }
        status @ (Status::Succeeded | Status::Failed) => Effect::Finished { status },
    }
}

/// What a workflow's `run` returned, from its journal's last entry (`None`
/// while it has not returned).
pub fn returned(journal: &[JournalEntry]) -> Option<Result<&[u8], &str>> {
    match journal.last() {
        Some(JournalEntry { call: StepCall::End, answer: StepAnswer::Ok { output }, .. }) => {
            Ok(output.as_slice()).into()
        }
        Some(JournalEntry { call: StepCall::End, answer: StepAnswer::Failure { message }, .. }) => {
            Some(Err(message.as_str()))
        }
        _ => None,
    }
}

/// A wait shorter than this is waited for with the instance alive; a
/// longer one parks the workflow.
const SHORT_WAIT_MS: i64 = 1_000;

/// The most entries a workflow's journal may hold: past it, `run` is
/// stopped as if it trapped (a loop of `steps` calls would otherwise grow
/// the journal without end).
pub const MAX_JOURNAL_ENTRIES: usize = 10_000;

/// When a parked workflow must be looked at again: at `wake` (none: only a
/// signal wakes it), or earlier when its `timeout_to_fail` runs out then.
fn wake_at(state: &TransactionState, wake: Option<Millis>) -> Option<Millis> {
    let t = &state.transaction;
    let timeout = t.options.timeout_to_fail.map(|secs| t.created_at.plus_ms(secs.saturating_mul(1000)));
    match (wake, timeout) {
        (Some(w), Some(t)) => Some(w.min(t)),
        (w, t) => w.or(t),
    }
}

/// What to do with a `steps` call past the journal's end.
enum Next {
    /// Answer it (journaled already), and go on.
    Answer(StepAnswer),
    /// Wait until then with the instance alive, then answer.
    WaitThen(Millis, StepAnswer),
    /// The workflow is parked: written, released; drop the instance.
    Parked,
    /// Stop this run with this outcome for `run` (the instance is dropped).
    Stop(Outcome),
}

impl Engine {
    /// Runs the workflow `d` from the start, answering from its journal and
    /// then for real, until `run` ends (the event for op `00 run`) or the
    /// workflow parks (`None`: state written, lease released).
    pub(super) async fn run_workflow(&self, d: &mut Driving, attempt: u32) -> Result<Option<Event>, Stop> {
        let gid = d.lease.gid.clone();
        let local = BranchId::local();
        let Some(run_op) = d.state.op(&local, Op::Run).cloned() else {
            return Err(Stop::Store(crate::store::StoreError::Corrupt(format!(
                "{gid}: a workflow without its run op"
            ))));
        };
        if d.journal.is_none() {
            let journal =
                if d.stored { self.inner.store.journal(&gid).await.map_err(Stop::Store)? } else { Vec::new() };
            d.journal_stored = journal.len();
            d.journal = Some(journal);
        }
        if !d.stored {
            // Nothing a step does may commit before the workflow is stored.
            self.persist(d, false).await?;
        }
        let event = |outcome| Some(Event::Outcome { branch_id: BranchId::local(), op: Op::Run, outcome });
        let started = self.now();
        let mut run = match self.inner.executor.start_workflow(&run_op.target, &gid, run_op.payload.clone()).await {
            Ok(run) => run,
            Err(m) => return Ok(event(Outcome::Error(m))),
        };
        let lease_ms = super::duration_ms(self.inner.config.lease);
        let mut cursor = 0usize;
        while let Some(question) = run.next().await {
            // Every write below renews the lease.
            d.state.transaction.lease_expires = Some(self.now().plus_ms(lease_ms));
            let journal = d.journal.as_deref().unwrap_or_default();
            let calls = journal[..cursor].iter().filter(|e| matches!(e.call, StepCall::Call { .. })).count();
            let call = question.request.clone().journaled(BranchId::from_index(calls));
            if cursor >= MAX_JOURNAL_ENTRIES {
                let m = format!(
                    "journal limit exceeded: run made more than {MAX_JOURNAL_ENTRIES} steps calls; a workflow that \
                     loops for ever should end and start a new one"
                );
                return Ok(event(Outcome::Error(m)));
            }
            if let Some(entry) = journal.get(cursor) {
                if call != entry.call {
                    let m = format!(
                        "non-determinism: call {} of run is {}, but the journal holds {} there (the code or its \
                         input changed under a running workflow, or it depends on something not journaled); the \
                         journal is kept and run will be retried",
                        cursor + 1,
                        call.describe(),
                        entry.call.describe()
                    );
                    tracing::error!(%gid, "{m}");
                    return Ok(event(Outcome::Error(m)));
                }
                // A sleep still running is waited for again.
                if let StepAnswer::Until { deadline } = entry.answer
                    && deadline > self.now()
                {
                    let answer = entry.answer.clone();
                    match self.wait_or_park(d, deadline).await? {
                        true => (question.answer)(answer),
                        false => return Ok(None),
                    }
                    cursor += 1;
                    continue;
                }
                (question.answer)(entry.answer.clone());
                cursor += 1;
                continue;
            }
            // Past the journal, between two real calls: an operator's
            // control, or the engine's shutdown, goes first (the instance is
            // dropped; the journal so far is kept).
            if self.controls().contains_key(&gid) {
                return Ok(Some(Event::Resume));
            }
            if *self.inner.shutdown.borrow() {
                self.persist(d, true).await?;
                return Err(Stop::ShuttingDown);
            }
            match self.answer_new(d, call, question.request).await? {
                Next::Answer(answer) => (question.answer)(answer),
                Next::WaitThen(until, answer) => match self.wait_or_park(d, until).await? {
                    true => (question.answer)(answer),
                    false => return Ok(None),
                },
                Next::Parked => return Ok(None),
                Next::Stop(outcome) => return Ok(event(outcome)),
            }
            cursor += 1;
        }
        let end = run.end().await;
        let journal = d.journal.as_deref().unwrap_or_default();
        let answer = match &end {
            RunEnd::Returned(Ok(output)) => StepAnswer::Ok { output: output.clone() },
            RunEnd::Returned(Err(message)) => StepAnswer::Failure { message: message.clone() },
            RunEnd::Trapped(m) => {
                let took = u64::try_from(self.now().0 - started.0).unwrap_or_default();
                let outcome = Outcome::Error(m.clone());
                self.record(history::attempt(&gid, self.now(), &local, Op::Run, attempt, &outcome, took));
                return Ok(event(outcome));
            }
        };
        match journal.get(cursor) {
            None => {
                let at = self.now();
                let seq = u32::try_from(cursor + 1).unwrap_or(u32::MAX);
                d.journal.get_or_insert_default().push(JournalEntry { seq, call: StepCall::End, answer, at });
            }
            Some(entry) if entry.call == StepCall::End && entry.answer == answer => {}
            Some(entry) => {
                let m = format!(
                    "non-determinism: run returned after {cursor} calls, but the journal holds {} there; the journal \
                     is kept and run will be retried",
                    entry.call.describe()
                );
                tracing::error!(%gid, "{m}");
                return Ok(event(Outcome::Error(m)));
            }
        }
        let outcome = match end {
            RunEnd::Returned(Ok(_)) => Outcome::Succeeded,
            RunEnd::Returned(Err(m)) => Outcome::Failed(m),
            RunEnd::Trapped(m) => Outcome::Error(m),
        };
        let took = u64::try_from(self.now().0 - started.0).unwrap_or_default();
        self.record(history::attempt(&gid, self.now(), &local, Op::Run, attempt, &outcome, took));
        Ok(event(outcome))
    }

    /// Waits until `until` with the instance alive when that is soon (true:
    /// answer now), or parks the workflow until then (false).
    async fn wait_or_park(&self, d: &mut Driving, until: Millis) -> Result<bool, Stop> {
        let left = until.0 - self.now().0;
        if left <= SHORT_WAIT_MS {
            if d.journal.as_ref().is_some_and(|j| j.len() > d.journal_stored) {
                // The deadline is durable before it is waited for.
                self.persist(d, false).await?;
            }
            tokio::time::sleep(std::time::Duration::from_millis(u64::try_from(left.max(0)).unwrap_or(0))).await;
            return Ok(true);
        }
        d.state.transaction.next_due = wake_at(&d.state, Some(until));
        d.state.transaction.updated_at = self.now();
        self.persist(d, true).await?;
        Ok(false)
    }

    /// Answers a call past the journal's end for real, journaling it.
    async fn answer_new(&self, d: &mut Driving, call: StepCall, request: StepRequest) -> Result<Next, Stop> {
        let now = self.now();
        let journal_len = d.journal.as_ref().map_or(0, Vec::len);
        let seq = u32::try_from(journal_len + 1).unwrap_or(u32::MAX);
        let push = |d: &mut Driving, call: StepCall, answer: StepAnswer| {
            d.journal.get_or_insert_default().push(JournalEntry { seq, call, answer: answer.clone(), at: now });
            answer
        };
        match request {
            StepRequest::Now => {
                let value = u64::try_from(now.0).unwrap_or_default();
                Ok(Next::Answer(push(d, call, StepAnswer::Value { value })))
            }
            StepRequest::Random => {
                let value = uuid::Uuid::new_v4().as_u64_pair().0;
                Ok(Next::Answer(push(d, call, StepAnswer::Value { value })))
            }
            StepRequest::Sleep { millis } => {
                let deadline = now.plus_ms(millis);
                let answer = push(d, call, StepAnswer::Until { deadline });
                Ok(Next::WaitThen(deadline, answer))
            }
            StepRequest::Signal { name } => {
                let gid = d.lease.gid.clone();
                let journal = d.journal.as_deref().unwrap_or_default();
                let seen =
                    journal.iter().filter(|e| matches!(&e.call, StepCall::Signal { name: n } if *n == name)).count();
                loop {
                    let signals = self.inner.store.signals(&gid, &name).await.map_err(Stop::Store)?;
                    if let Some(payload) = signals.into_iter().nth(seen) {
                        return Ok(Next::Answer(push(d, call, StepAnswer::Signal { payload })));
                    }
                    // None yet: park, unless one arrives while we do
                    // (only a signal, or its timeout, wakes it).
                    let parked = (wake_at(&d.state, None), None);
                    let driving = (d.state.transaction.next_due, d.state.transaction.lease_expires);
                    (d.state.transaction.next_due, d.state.transaction.lease_expires) = parked;
                    d.state.transaction.updated_at = now;
                    let progress = d.save_progress(true);
                    // Still ours unless parked.
                    (d.state.transaction.next_due, d.state.transaction.lease_expires) = driving;
                    let seen_u32 = u32::try_from(seen).unwrap_or(u32::MAX);
                    match self.inner.store.park(&progress, &name, seen_u32).await {
                        Ok(crate::store::Parked::Parked) => {
                            (d.state.transaction.next_due, d.state.transaction.lease_expires) = parked;
                            d.mark_written();
                            tracing::debug!(%gid, signal = %name, "workflow waits for a signal");
                            return Ok(Next::Parked);
                        }
                        Ok(crate::store::Parked::SignalWaiting) => continue,
                        Err(crate::store::StoreError::Fenced { .. }) => return Err(Stop::Fenced),
                        Err(e) => return Err(Stop::Store(e)),
                    }
                }
            }
            StepRequest::Call { action, compensate, payload } => {
                let StepCall::Call { branch_id, .. } = &call else { unreachable!("a call is journaled as a call") };
                let branch_id = branch_id.clone();
                let action_op = match d.state.op(&branch_id, Op::Action) {
                    Some(op) if op.target.module.as_str() == action.module && op.target.function == action.function => {
                        op.clone()
                    }
                    Some(op) => {
                        return Ok(Next::Stop(Outcome::Error(format!(
                            "non-determinism: step {branch_id} calls {}.{}, but it was first run as {}.{}; run will \
                             be retried",
                            action.module, action.function, op.target.module, op.target.function
                        ))));
                    }
                    None => {
                        let targets = self.step_targets(&action, compensate.as_ref()).await;
                        let (action_target, compensate_target) = match targets {
                            Ok(t) => t,
                            Err(message) => {
                                return Ok(Next::Answer(push(d, call, StepAnswer::Failure { message })));
                            }
                        };
                        let op = BranchOp::new(branch_id.clone(), Op::Action, action_target, payload.clone(), now);
                        d.state.ops.push(op.clone());
                        d.dirty.insert((branch_id.clone(), Op::Action));
                        if let Some(target) = compensate_target {
                            d.state.ops.push(BranchOp::new(
                                branch_id.clone(),
                                Op::Compensate,
                                target,
                                payload.clone(),
                                now,
                            ));
                            d.dirty.insert((branch_id.clone(), Op::Compensate));
                        }
                        op
                    }
                };
                if action_op.status == OpStatus::Failed {
                    // Decided before (its answer not journaled): answer the same.
                    let message = action_op.last_error.clone().unwrap_or_else(|| "the step failed".to_owned());
                    return Ok(Next::Answer(push(d, call, StepAnswer::Failure { message })));
                }
                // Not run yet, or run without its answer journaled (a crash
                // came between): run it; the barrier makes a done step a
                // no-op that answers with the output kept with its commit.
                // The step and the journal so far are durable before the step may commit.
                d.state.transaction.updated_at = now;
                self.persist(d, false).await?;
                self.run_step(d, call, action_op, seq).await
            }
        }
    }

    /// Runs one step's action (one attempt) and answers with its outcome,
    /// or parks the workflow for its retry.
    async fn run_step(&self, d: &mut Driving, call: StepCall, op: BranchOp, seq: u32) -> Result<Next, Stop> {
        let options = d.state.transaction.options.clone();
        let attempt = op.attempts + 1;
        let started = self.now();
        let result = self
            .inner
            .executor
            .execute(BranchCall {
                gid: d.lease.gid.clone(),
                mode: d.state.transaction.mode,
                branch_id: op.branch_id.clone(),
                op: Op::Action,
                target: op.target.clone(),
                payload: op.payload.clone(),
                attempt,
                headers: options.branch_headers.clone(),
                timeout: options.request_timeout.map(std::time::Duration::from_secs),
                progress: None,
            })
            .await;
        let now = self.now();
        let took = u64::try_from(now.0 - started.0).unwrap_or_default();
        self.record(history::attempt(&d.lease.gid, now, &op.branch_id, Op::Action, attempt, &result.outcome, took));
        if result.outcome == Outcome::Succeeded {
            crash_point(&op.branch_id);
        }
        let policy = self
            .inner
            .config
            .retry
            .with_interval_secs(options.retry_interval)
            .with_cap_secs(options.max_retry_interval);
        let key = (op.branch_id.clone(), Op::Action);
        d.dirty.insert(key);
        let tx = &mut d.state.transaction;
        let Some(stored) = d.state.ops.iter_mut().find(|o| o.branch_id == op.branch_id && o.op == Op::Action) else {
            return Err(Stop::Store(crate::store::StoreError::Corrupt(format!(
                "{}: step {} vanished",
                tx.gid, op.branch_id
            ))));
        };
        stored.attempts = attempt;
        stored.updated_at = now;
        tx.updated_at = now;
        let answer = match result.outcome {
            Outcome::Succeeded => {
                stored.status = OpStatus::Succeeded;
                stored.last_error = None;
                tx.attempts = 0;
                tx.last_error = None;
                StepAnswer::Ok { output: result.output }
            }
            Outcome::Failed(message) => {
                stored.status = OpStatus::Failed;
                stored.last_error = Some(message.clone());
                tx.attempts = 0;
                tx.last_error = None;
                StepAnswer::Failure { message }
            }
            Outcome::Retry(message) | Outcome::Error(message)
                if options.retry_limit.is_some_and(|limit| attempt > limit) =>
            {
                let limit = options.retry_limit.unwrap_or_default();
                let message = format!("retry limit of {limit} exceeded after {attempt} attempts: {message}");
                stored.status = OpStatus::Failed;
                stored.last_error = Some(message.clone());
                tx.attempts = 0;
                tx.last_error = None;
                StepAnswer::Retry { message }
            }
            outcome @ (Outcome::Retry(_) | Outcome::Error(_)) => {
                let (message, wait) = match outcome {
                    Outcome::Retry(m) => (m, policy.base_ms),
                    Outcome::Error(m) => (m, policy.backoff_ms(attempt)),
                    _ => unreachable!("matched above"),
                };
                tracing::warn!(gid = %tx.gid, branch_id = %op.branch_id, attempt, error = %message, "workflow step did not succeed");
                stored.last_error = Some(message.clone());
                tx.attempts = attempt;
                tx.last_error = Some(format!("{} {}: {message}", op.branch_id, Op::Action));
                // Parked until the retry; the replay then runs the step again.
                tx.next_due = Some(now.plus_ms(wait));
                self.persist(d, true).await?;
                return Ok(Next::Parked);
            }
        };
        d.journal.get_or_insert_default().push(JournalEntry { seq, call, answer: answer.clone(), at: now });
        Ok(Next::Answer(answer))
    }

    /// The pinned targets of a new step (and its compensation), or why it cannot run.
    async fn step_targets(
        &self,
        action: &crate::model::StepTarget,
        compensate: Option<&crate::model::StepTarget>,
    ) -> Result<(Target, Option<Target>), String> {
        let action = self.inner.executor.resolve(action).await?;
        let compensate = match compensate {
            Some(c) => Some(self.inner.executor.resolve(c).await?),
            None => None,
        };
        Ok((action, compensate))
    }
}

/// For the end-to-end tests, in debug builds only: with
/// `WASMTX_TEST_CRASH_AFTER_STEP=<branch id>:<marker file>`, the process
/// aborts right after that step committed, before its answer is journaled,
/// once (the marker file says it happened).
fn crash_point(branch_id: &BranchId) {
    if !cfg!(debug_assertions) {
        return;
    }
    let Ok(setting) = std::env::var("WASMTX_TEST_CRASH_AFTER_STEP") else { return };
    let Some((step, marker)) = setting.split_once(':') else { return };
    if step == branch_id.as_str() && std::fs::File::create_new(marker).is_ok() {
        tracing::error!(%branch_id, "WASMTX_TEST_CRASH_AFTER_STEP: aborting after the step committed");
        std::process::abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::fixture;

    const T0: Millis = Millis(1_000_000);

    fn run_outcome(outcome: Outcome) -> Event {
        Event::Outcome { branch_id: BranchId::local(), op: Op::Run, outcome }
    }

    fn policy() -> RetryPolicy {
        RetryPolicy::default()
    }

    fn with_steps(state: &mut TransactionState, statuses: &[(OpStatus, bool)]) {
        for (i, (status, compensated)) in statuses.iter().enumerate() {
            let id = BranchId::from_index(i);
            let target = state.ops[0].target.clone();
            let mut action = BranchOp::new(id.clone(), Op::Action, target.clone(), Vec::new(), T0);
            action.status = *status;
            state.ops.push(action);
            if *compensated {
                state.ops.push(BranchOp::new(id, Op::Compensate, target, Vec::new(), T0));
            }
        }
    }

    #[test]
    fn runs_run_until_it_succeeds_then_finishes() {
        let mut s = fixture::workflow("wf", T0);
        let effect = step(&mut s, Event::Resume, T0, &policy());
        assert_eq!(effect, Effect::Invoke { branch_id: BranchId::local(), op: Op::Run, attempt: 1 });
        let effect = step(&mut s, run_outcome(Outcome::Succeeded), T0, &policy());
        assert_eq!(effect, Effect::Finished { status: Status::Succeeded });
        assert_eq!(s.transaction.status, Status::Succeeded);
    }

    #[test]
    fn a_trap_backs_off_and_runs_again() {
        let mut s = fixture::workflow("wf", T0);
        let effect = step(&mut s, run_outcome(Outcome::Error("trap".into())), T0, &policy());
        let Effect::Sleep { until } = effect else { panic!("{effect:?}") };
        assert!(until > T0);
        assert_eq!(s.transaction.status, Status::Submitted);
        let effect = step(&mut s, Event::Resume, until, &policy());
        assert_eq!(effect, Effect::Invoke { branch_id: BranchId::local(), op: Op::Run, attempt: 2 });
    }

    #[test]
    fn an_error_from_run_compensates_completed_steps_last_first() {
        let mut s = fixture::workflow("wf", T0);
        // 01 done (compensable), 02 done without compensation, 03 done, 04 failed.
        with_steps(
            &mut s,
            &[
                (OpStatus::Succeeded, true),
                (OpStatus::Succeeded, false),
                (OpStatus::Succeeded, true),
                (OpStatus::Failed, true),
            ],
        );
        let effect = step(&mut s, run_outcome(Outcome::Failed("no".into())), T0, &policy());
        assert_eq!(s.transaction.status, Status::Aborting);
        assert_eq!(s.transaction.rollback_reason.as_deref(), Some("no"));
        assert_eq!(effect, fixture::invoke(2, Op::Compensate, 1));
        let effect = step(&mut s, fixture::outcome(2, Op::Compensate, Outcome::Succeeded), T0, &policy());
        assert_eq!(effect, fixture::invoke(0, Op::Compensate, 1));
        let effect = step(&mut s, fixture::outcome(0, Op::Compensate, Outcome::Error("db".into())), T0, &policy());
        let Effect::Sleep { until } = effect else { panic!("{effect:?}") };
        let effect = step(&mut s, Event::Resume, until, &policy());
        assert_eq!(effect, fixture::invoke(0, Op::Compensate, 2));
        let effect = step(&mut s, fixture::outcome(0, Op::Compensate, Outcome::Succeeded), until, &policy());
        assert_eq!(effect, Effect::Finished { status: Status::Failed });
    }

    #[test]
    fn a_restart_after_every_step_decides_the_same() {
        let mut s = fixture::workflow("wf", T0);
        with_steps(&mut s, &[(OpStatus::Succeeded, true), (OpStatus::Succeeded, true)]);
        step(&mut s, run_outcome(Outcome::Failed("no".into())), T0, &policy());
        let mut restarted = s.clone();
        assert_eq!(step(&mut restarted, Event::Resume, T0, &policy()), fixture::invoke(1, Op::Compensate, 1));
        step(&mut s, fixture::outcome(1, Op::Compensate, Outcome::Succeeded), T0, &policy());
        let mut restarted = s.clone();
        assert_eq!(step(&mut restarted, Event::Resume, T0, &policy()), fixture::invoke(0, Op::Compensate, 1));
    }

    #[test]
    fn a_parked_workflow_wakes_by_its_timeout_at_the_latest() {
        let mut s = fixture::workflow("wf", T0);
        assert_eq!(wake_at(&s, None), None);
        assert_eq!(wake_at(&s, Some(Millis(T0.0 + 5))), Some(Millis(T0.0 + 5)));
        s.transaction.options.timeout_to_fail = Some(2);
        assert_eq!(wake_at(&s, None), Some(Millis(T0.0 + 2000)));
        assert_eq!(wake_at(&s, Some(Millis(T0.0 + 5))), Some(Millis(T0.0 + 5)));
        assert_eq!(wake_at(&s, Some(Millis(T0.0 + 9000))), Some(Millis(T0.0 + 2000)));
    }

    #[test]
    fn the_journal_tells_what_run_returned() {
        let entry = |call, answer| JournalEntry { seq: 1, call, answer, at: T0 };
        assert_eq!(returned(&[]), None);
        assert_eq!(returned(&[entry(StepCall::Now, StepAnswer::Value { value: 1 })]), None);
        let ok = [entry(StepCall::End, StepAnswer::Ok { output: b"{}".to_vec() })];
        assert_eq!(returned(&ok), Some(Ok(&b"{}"[..])));
        let err = [entry(StepCall::End, StepAnswer::Failure { message: "no".into() })];
        assert_eq!(returned(&err), Some(Err("no")));
    }
}
