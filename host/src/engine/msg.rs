//! The two-phase message as a pure state machine, beside the other modes:
//! the same [`Event`]s and [`Effect`]s, its own decisions.
//!
//! Rules (DTM's msg, see `reference/dtm.md` §2.4, with the host running the
//! local transaction and the back-check itself):
//! - the message is `prepared` (stored, or riding in the local commit when
//!   the local function's database is the store's) until its local function,
//!   branch `00` op `msg`, commits; it runs in one local transaction with the
//!   barrier row `(gid, 00, msg)`;
//! - the local function gets **one** attempt. If that attempt's outcome is
//!   unknown (an error, a `retry`, or a restart: a message resumed by another
//!   driver, `epoch > 1`, counts as attempted), the next attempt is the
//!   back-check (DTM's query-prepared): the executor writes the barrier row
//!   `(gid, 00, msg)` with reason `rollback` unless the local transaction's
//!   row is there. Found → the local transaction committed: `succeeded`.
//!   Written → it never committed and now never will (a late one finds the
//!   row taken): `failure`, and the message fails;
//! - a `failure` of the local function fails the message; no branch runs;
//! - once the local transaction committed the message is `submitted`: after
//!   `delay` seconds from creation, its branches run in order (or all at once
//!   when `concurrent`), each retried until it succeeds; a branch's `failure`
//!   is an error, retried and visible, never a rollback. A message never rolls
//!   back, so `timeout_to_fail` and `retry_limit` do not apply.

use crate::model::{BranchId, Millis, Op, OpStatus, Status, TransactionState};

use super::retry::RetryPolicy;
use super::saga::{self, Effect, Event, Rules};

/// Advances a message by one event. The caller persists `state` after every call.
pub fn step(state: &mut TransactionState, event: Event, now: Millis, policy: &RetryPolicy) -> Effect {
    resumed_elsewhere(state);
    saga::run(state, event, now, policy, &Rules { timeout_in: None, decide, forward: |op| op == Op::Msg })
}

/// Every op that may run now: the local function until it committed, then
/// (after the delay) every branch not yet delivered, or only the first of
/// them unless `concurrent`.
pub fn ready(state: &TransactionState) -> Vec<(BranchId, Op, u32)> {
    if state.transaction.status.is_final() {
        return Vec::new();
    }
    match state.ops.iter().find(|o| o.op == Op::Msg) {
        Some(local) if local.status != OpStatus::Succeeded => {
            return if state.transaction.status == Status::Prepared {
                vec![(local.branch_id.clone(), Op::Msg, local.attempts + 1)]
            } else {
                Vec::new()
            };
        }
        _ => {}
    }
    let pending = state.ops.iter().filter(|o| o.op == Op::Action && o.status != OpStatus::Succeeded);
    let take = if state.transaction.options.concurrent { usize::MAX } else { 1 };
    pending.take(take).map(|o| (o.branch_id.clone(), Op::Action, o.attempts + 1)).collect()
}

/// A prepared message that another driver takes over (a claim bumped the
/// epoch) may have run its local function already, with no record of it:
/// its next attempt must be the back-check, never a second run.
fn resumed_elsewhere(state: &mut TransactionState) {
    if state.transaction.status != Status::Prepared || state.transaction.epoch <= 1 {
        return;
    }
    if let Some(local) = state.ops.iter_mut().find(|o| o.op == Op::Msg && o.status == OpStatus::Prepared)
        && local.attempts == 0
    {
        local.attempts = 1;
    }
}

fn decide(state: &mut TransactionState, now: Millis) -> Effect {
    match state.transaction.status {
        Status::Prepared => {
            let committed = state.ops.iter().any(|o| o.op == Op::Msg && o.status == OpStatus::Succeeded);
            if !committed {
                return match ready(state).into_iter().next() {
                    Some((branch_id, op, attempt)) => Effect::Invoke { branch_id, op, attempt },
                    None => saga::finish(state, Status::Failed, now),
                };
            }
            state.transaction.status = Status::Submitted;
        }
        // The local function refused, or never committed: nothing to undo.
        Status::Aborting => return saga::finish(state, Status::Failed, now),
        Status::Submitted => {}
        status @ (Status::Succeeded | Status::Failed) => return Effect::Finished { status },
    }
    if let Some(secs) = state.transaction.options.delay {
        let until = state.transaction.created_at.plus_ms(secs.saturating_mul(1000));
        if now < until {
            state.transaction.next_due = Some(until);
            return Effect::Sleep { until };
        }
    }
    match ready(state).into_iter().next() {
        Some((branch_id, op, attempt)) => Effect::Invoke { branch_id, op, attempt },
        None => saga::finish(state, Status::Succeeded, now),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::fixture::{invoke, outcome};
    use crate::engine::saga::Outcome;
    use crate::model::Options;

    const T0: Millis = Millis(1_000_000);

    fn msg(branches: usize, options: Options) -> TransactionState {
        let mut s = crate::engine::fixture::msg("m1", branches, T0);
        s.transaction.options = options;
        s
    }

    fn local(attempt: u32) -> Effect {
        Effect::Invoke { branch_id: BranchId::local(), op: Op::Msg, attempt }
    }

    fn local_outcome(o: Outcome) -> Event {
        Event::Outcome { branch_id: BranchId::local(), op: Op::Msg, outcome: o }
    }

    #[test]
    fn the_local_function_commits_then_every_branch_is_delivered_in_order() {
        let p = RetryPolicy::default();
        let mut s = msg(2, Options::default());
        assert_eq!(s.transaction.status, Status::Prepared);
        assert_eq!(step(&mut s, Event::Resume, T0, &p), local(1));
        assert_eq!(step(&mut s, local_outcome(Outcome::Succeeded), T0, &p), invoke(0, Op::Action, 1));
        assert_eq!(s.transaction.status, Status::Submitted);
        assert_eq!(step(&mut s, outcome(0, Op::Action, Outcome::Succeeded), T0, &p), invoke(1, Op::Action, 1));
        assert_eq!(
            step(&mut s, outcome(1, Op::Action, Outcome::Succeeded), T0, &p),
            Effect::Finished { status: Status::Succeeded }
        );
    }

    #[test]
    fn a_refusing_local_function_fails_the_message_and_no_branch_runs() {
        let p = RetryPolicy::default();
        let mut s = msg(2, Options::default());
        step(&mut s, Event::Resume, T0, &p);
        assert_eq!(
            step(&mut s, local_outcome(Outcome::Failed("insufficient funds".into())), T0, &p),
            Effect::Finished { status: Status::Failed }
        );
        assert_eq!(s.transaction.rollback_reason.as_deref(), Some("insufficient funds"));
        assert!(s.ops.iter().filter(|o| o.op == Op::Action).all(|o| o.attempts == 0), "no branch ran");
    }

    #[test]
    fn an_unknown_local_outcome_is_resolved_by_the_back_check_never_by_a_second_run() {
        let p = RetryPolicy { base_ms: 100, cap_ms: 1_000 };
        let mut s = msg(1, Options::default());
        step(&mut s, Event::Resume, T0, &p);
        let e = step(&mut s, local_outcome(Outcome::Error("connection reset".into())), T0, &p);
        assert!(matches!(e, Effect::Sleep { .. }), "{e:?}");
        assert_eq!(step(&mut s, Event::Resume, T0.plus_ms(1_000), &p), local(2), "attempt 2 is the back-check");
        assert_eq!(
            step(&mut s, local_outcome(Outcome::Failed("never committed".into())), T0.plus_ms(1_000), &p),
            Effect::Finished { status: Status::Failed }
        );

        // A restart: another driver (epoch 2) finds it prepared, never attempted.
        let mut s = msg(1, Options::default());
        s.transaction.epoch = 2;
        assert_eq!(step(&mut s, Event::Resume, T0, &p), local(2), "resumed: back-check first");
        assert_eq!(step(&mut s, local_outcome(Outcome::Succeeded), T0, &p), invoke(0, Op::Action, 1), "committed");
        // The creating driver (epoch 1) runs it.
        let mut s = msg(1, Options::default());
        s.transaction.epoch = 1;
        assert_eq!(step(&mut s, Event::Resume, T0, &p), local(1));
    }

    #[test]
    fn deliveries_are_retried_forever_even_on_failure_and_with_a_retry_limit() {
        let p = RetryPolicy { base_ms: 100, cap_ms: 1_000 };
        let mut s = msg(1, Options { retry_limit: Some(1), ..Options::default() });
        step(&mut s, Event::Resume, T0, &p);
        step(&mut s, local_outcome(Outcome::Succeeded), T0, &p);
        for attempt in 1..=4 {
            let e = step(&mut s, outcome(0, Op::Action, Outcome::Failed("no such account".into())), T0, &p);
            assert!(matches!(e, Effect::Sleep { .. }), "attempt {attempt}: {e:?}");
            assert_eq!(s.transaction.status, Status::Submitted);
        }
        assert_eq!(
            s.transaction.last_error.as_deref(),
            Some("01 action: delivery refused (no such account); deliveries are retried until they succeed")
        );
        assert_eq!(step(&mut s, Event::Resume, T0.plus_ms(60_000), &p), invoke(0, Op::Action, 5));
    }

    #[test]
    fn delay_holds_the_branches_back_from_creation_and_timeout_never_fails_a_message() {
        let p = RetryPolicy::default();
        let mut s = msg(1, Options { delay: Some(10), timeout_to_fail: Some(1), ..Options::default() });
        step(&mut s, Event::Resume, T0, &p);
        let until = T0.plus_ms(10_000);
        assert_eq!(step(&mut s, local_outcome(Outcome::Succeeded), T0.plus_ms(5_000), &p), Effect::Sleep { until });
        assert_eq!(s.transaction.next_due, Some(until));
        assert_eq!(s.transaction.status, Status::Submitted);
        assert_eq!(step(&mut s, Event::Resume, T0.plus_ms(9_999), &p), Effect::Sleep { until });
        assert_eq!(step(&mut s, Event::Resume, until, &p), invoke(0, Op::Action, 1));
    }

    #[test]
    fn concurrent_delivers_every_branch_at_once() {
        let p = RetryPolicy::default();
        let mut s = msg(3, Options { concurrent: true, ..Options::default() });
        assert_eq!(ready(&s), [(BranchId::local(), Op::Msg, 1)], "the local function alone first");
        step(&mut s, Event::Resume, T0, &p);
        step(&mut s, local_outcome(Outcome::Succeeded), T0, &p);
        let ids: Vec<_> = ready(&s).into_iter().map(|(b, op, _)| format!("{b} {op}")).collect();
        assert_eq!(ids, ["01 action", "02 action", "03 action"]);
        let sequential = msg(3, Options::default());
        assert_eq!(ready(&sequential).len(), 1);
    }
}
