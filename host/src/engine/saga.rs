//! The saga protocol as a pure state machine: [`step`] takes the stored state
//! and an [`Event`], updates the state in place and returns the one
//! [`Effect`] the driver must perform next. No I/O, no clock: `now` is passed in.
//!
//! Rules (DTM's, see `reference/dtm.md` §2.1):
//! - actions run one at a time in branch order;
//! - an action's `failure` (or exhausting `retry_limit`, or `timeout_to_fail`)
//!   turns the transaction `aborting`, with the reason kept;
//! - while aborting, compensations run in reverse order for every branch up to
//!   and including the last one whose action was attempted; the barrier makes a
//!   compensation of an action that never committed a no-op;
//! - compensations are retried until they succeed (a `failure` from a
//!   compensation is treated like an error, never final);
//! - `retry` keeps the base interval, every other error backs off exponentially.

use crate::model::{BranchId, Millis, Op, OpStatus, Status, TransactionState};

use super::retry::RetryPolicy;

/// What happened since the last step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The driver (re)took the transaction: decide what to do.
    Resume,
    /// A branch op finished.
    Outcome { branch_id: BranchId, op: Op, outcome: Outcome },
}

/// How a branch op invocation ended, as the protocol sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    /// Business refusal (WIT `failure`, HTTP 409).
    Failed(String),
    /// The branch asked to be called again (WIT `retry`, HTTP 425): keep the interval.
    Retry(String),
    /// Trap, deadline, database or host error: back off.
    Error(String),
}

/// The one thing the driver must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Run this op; `attempt` is 1-based.
    Invoke { branch_id: BranchId, op: Op, attempt: u32 },
    /// Nothing to do before `until`: persist and let the scheduler come back.
    Sleep { until: Millis },
    /// The transaction has reached a final status.
    Finished { status: Status },
}

/// Advances the saga by one event. The caller persists `state` after every call.
pub fn step(state: &mut TransactionState, event: Event, now: Millis, policy: &RetryPolicy) -> Effect {
    run(state, event, now, policy, &Rules { timeout_in: Some(Status::Submitted), decide, forward: Op::is_forward })
}

/// What tells one mode from another; the rest of a step is shared.
pub(super) struct Rules {
    /// The status in which `timeout_to_fail` still rolls the transaction back
    /// (once the mode has decided to commit, it only goes forward); `None`
    /// when it never applies.
    pub timeout_in: Option<Status>,
    /// The next effect for the state as it is.
    pub decide: fn(&mut TransactionState, Millis) -> Effect,
    /// Whether an op's `failure` (or exhausting `retry_limit`) rolls the
    /// transaction back; every other op is retried until it succeeds.
    pub forward: fn(Op) -> bool,
}

/// One step of any mode: record the event, check the timeout, decide.
///
/// Shared rules: a forward op (`action`, `try`) that answers `failure`, or
/// exhausts `retry_limit`, turns the transaction `aborting`; an op that
/// settles a decision (`compensate`, `confirm`, `cancel`, ...) is retried
/// until it succeeds, a `failure` from it counting as an error.
pub(super) fn run(
    state: &mut TransactionState,
    event: Event,
    now: Millis,
    policy: &RetryPolicy,
    rules: &Rules,
) -> Effect {
    let options = &state.transaction.options;
    let policy = policy.with_interval_secs(options.retry_interval).with_cap_secs(options.max_retry_interval);
    state.transaction.updated_at = now;
    match event {
        Event::Resume => {
            if let Some(due) = state.transaction.next_due
                && due > now
                && !state.transaction.status.is_final()
            {
                return Effect::Sleep { until: due };
            }
        }
        Event::Outcome { branch_id, op, outcome } => {
            if let Some(sleep) = apply(state, &branch_id, op, outcome, now, &policy, (rules.forward)(op)) {
                return sleep;
            }
        }
    }
    if let Some(status) = rules.timeout_in {
        check_timeout(state, status, now);
    }
    (rules.decide)(state, now)
}

/// Records an outcome. Returns a `Sleep` when the op must be retried later.
/// A `forward` op's failure rolls the transaction back; any other op's is an
/// error, retried.
fn apply(
    state: &mut TransactionState,
    branch_id: &BranchId,
    op: Op,
    outcome: Outcome,
    now: Millis,
    policy: &RetryPolicy,
    forward: bool,
) -> Option<Effect> {
    let retry_limit = state.transaction.options.retry_limit;
    let tx = &mut state.transaction;
    let Some(branch_op) = state.ops.iter_mut().find(|o| &o.branch_id == branch_id && o.op == op) else {
        // An outcome for an op we do not have cannot be recorded; deciding
        // afresh is the safe answer.
        return None;
    };
    branch_op.attempts = branch_op.attempts.saturating_add(1);
    branch_op.updated_at = now;

    let outcome = match (forward, outcome) {
        (false, Outcome::Failed(m)) => {
            // A message's branch is a delivery.
            let (what, whats) = match op.settles() {
                Some(what) => (what, format!("{what}s")),
                None => ("delivery", "deliveries".to_owned()),
            };
            Outcome::Error(format!("{what} refused ({m}); {whats} are retried until they succeed"))
        }
        (_, o) => o,
    };
    match outcome {
        Outcome::Succeeded => {
            branch_op.status = OpStatus::Succeeded;
            branch_op.last_error = None;
            tx.attempts = 0;
            tx.last_error = None;
            None
        }
        Outcome::Failed(message) => {
            branch_op.status = OpStatus::Failed;
            branch_op.last_error = Some(message.clone());
            tx.status = Status::Aborting;
            tx.rollback_reason = Some(message);
            tx.attempts = 0;
            tx.last_error = None;
            tx.next_due = Some(now);
            None
        }
        Outcome::Retry(message) | Outcome::Error(message)
            if forward && retry_limit.is_some_and(|limit| branch_op.attempts > limit) =>
        {
            let limit = retry_limit.unwrap_or_default();
            branch_op.status = OpStatus::Failed;
            branch_op.last_error = Some(message.clone());
            tx.status = Status::Aborting;
            tx.rollback_reason =
                Some(format!("retry limit of {limit} exceeded after {} attempts: {message}", branch_op.attempts));
            tx.attempts = 0;
            tx.last_error = None;
            tx.next_due = Some(now);
            None
        }
        Outcome::Retry(message) => {
            let until = now.plus_ms(policy.base_ms);
            Some(sleep_after_error(tx, branch_op, message, until))
        }
        Outcome::Error(message) => {
            let until = now.plus_ms(policy.backoff_ms(branch_op.attempts));
            Some(sleep_after_error(tx, branch_op, message, until))
        }
    }
}

fn sleep_after_error(
    tx: &mut crate::model::Transaction,
    branch_op: &mut crate::model::BranchOp,
    message: String,
    until: Millis,
) -> Effect {
    branch_op.last_error = Some(message.clone());
    tx.attempts = branch_op.attempts;
    tx.last_error = Some(format!("{} {}: {message}", branch_op.branch_id, branch_op.op));
    tx.next_due = Some(until);
    Effect::Sleep { until }
}

fn check_timeout(state: &mut TransactionState, applies_in: Status, now: Millis) {
    let tx = &mut state.transaction;
    if tx.status != applies_in {
        return;
    }
    if let Some(secs) = tx.options.timeout_to_fail
        && now >= tx.created_at.plus_ms(secs.saturating_mul(1000))
    {
        tx.status = Status::Aborting;
        tx.rollback_reason = Some(format!("timeout after {secs} seconds"));
        tx.next_due = Some(now);
    }
}

fn decide(state: &mut TransactionState, now: Millis) -> Effect {
    if state.transaction.options.concurrent {
        return match ready(state).into_iter().next() {
            Some((branch_id, op, attempt)) => Effect::Invoke { branch_id, op, attempt },
            None if state.transaction.status == Status::Aborting => finish(state, Status::Failed, now),
            None if !state.transaction.status.is_final() => finish(state, Status::Succeeded, now),
            None => Effect::Finished { status: state.transaction.status },
        };
    }
    match state.transaction.status {
        Status::Prepared | Status::Submitted => {
            let next = state.ops.iter().find(|o| o.op == Op::Action && o.status != OpStatus::Succeeded);
            match next {
                Some(o) => Effect::Invoke { branch_id: o.branch_id.clone(), op: Op::Action, attempt: o.attempts + 1 },
                None => finish(state, Status::Succeeded, now),
            }
        }
        Status::Aborting => undo_next(state, Op::Action, Op::Compensate, now),
        status @ (Status::Succeeded | Status::Failed) => Effect::Finished { status },
    }
}

/// For a concurrent saga, every op that may run now, last branch first while
/// aborting: actions whose prerequisites have all succeeded; once aborting,
/// the compensation of each attempted branch that every branch depending on
/// it has finished compensating (or never attempted). Empty when nothing is
/// left to do (the end) — never while an op that may run is pending.
pub fn ready(state: &TransactionState) -> Vec<(BranchId, Op, u32)> {
    let options = &state.transaction.options;
    let op = |index: usize, op: Op| state.op(&BranchId::from_index(index), op);
    let branches = state.ops.iter().filter(|o| o.op == Op::Action).count();
    let succeeded = |index: usize, kind: Op| op(index, kind).is_some_and(|o| o.status == OpStatus::Succeeded);
    let attempted =
        |index: usize| op(index, Op::Action).is_some_and(|o| o.status != OpStatus::Prepared || o.attempts > 0);
    let invoke = |index: usize, kind: Op| op(index, kind).map(|o| (o.branch_id.clone(), kind, o.attempts + 1));
    match state.transaction.status {
        Status::Prepared | Status::Submitted => (0..branches)
            .filter(|&i| !succeeded(i, Op::Action))
            .filter(|&i| options.prerequisites(i).iter().all(|&p| succeeded(p, Op::Action)))
            .filter_map(|i| invoke(i, Op::Action))
            .collect(),
        Status::Aborting => (0..branches)
            .rev()
            .filter(|&i| attempted(i) && !succeeded(i, Op::Compensate))
            .filter(|&i| {
                // Every branch that depends on `i` is compensated or never ran.
                (0..branches)
                    .filter(|&j| options.prerequisites(j).contains(&i))
                    .all(|j| !attempted(j) || succeeded(j, Op::Compensate))
            })
            .filter_map(|i| invoke(i, Op::Compensate))
            .collect(),
        Status::Succeeded | Status::Failed => Vec::new(),
    }
}

/// Refuses `orders` that name a branch out of range, a branch depending on
/// itself, or a cycle; `branches` is how many the saga has.
pub fn check_orders(orders: &std::collections::BTreeMap<String, Vec<usize>>, branches: usize) -> Result<(), String> {
    let mut edges = vec![Vec::new(); branches];
    for (key, prerequisites) in orders {
        let index =
            key.parse::<usize>().ok().filter(|&i| i < branches).ok_or_else(|| {
                format!("orders: {key:?} is not a branch index (0 to {})", branches.saturating_sub(1))
            })?;
        for &p in prerequisites {
            if p >= branches {
                return Err(format!("orders: branch {index} waits for {p}, which is not a branch index"));
            }
            if p == index {
                return Err(format!("orders: branch {index} waits for itself"));
            }
            edges[index].push(p);
        }
    }
    // Depth-first search for a cycle: 0 unseen, 1 on the path, 2 done.
    fn visit(i: usize, edges: &[Vec<usize>], mark: &mut [u8]) -> Result<(), usize> {
        match mark[i] {
            1 => return Err(i),
            2 => return Ok(()),
            _ => {}
        }
        mark[i] = 1;
        for &p in &edges[i] {
            visit(p, edges, mark)?;
        }
        mark[i] = 2;
        Ok(())
    }
    let mut mark = vec![0u8; branches];
    for i in 0..branches {
        visit(i, &edges, &mut mark)
            .map_err(|at| format!("orders: branches wait for each other in a cycle (through branch {at})"))?;
    }
    Ok(())
}

/// While aborting: the `undo` op of the last branch whose `forward` op was
/// attempted and that is not undone yet; when none is left, the end (`failed`).
pub(super) fn undo_next(state: &mut TransactionState, forward: Op, undo: Op, now: Millis) -> Effect {
    let attempted: Vec<&BranchId> = state
        .ops
        .iter()
        .filter(|o| o.op == forward && (o.status != OpStatus::Prepared || o.attempts > 0))
        .map(|o| &o.branch_id)
        .collect();
    let next = state
        .ops
        .iter()
        .rev()
        .find(|o| o.op == undo && o.status != OpStatus::Succeeded && attempted.contains(&&o.branch_id));
    match next {
        Some(o) => Effect::Invoke { branch_id: o.branch_id.clone(), op: undo, attempt: o.attempts + 1 },
        None => finish(state, Status::Failed, now),
    }
}

pub(super) fn finish(state: &mut TransactionState, status: Status, now: Millis) -> Effect {
    let tx = &mut state.transaction;
    tx.status = status;
    tx.finished_at = Some(now);
    tx.next_due = None;
    tx.attempts = 0;
    tx.last_error = None;
    Effect::Finished { status }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::fixture::{invoke, outcome};
    use crate::model::Options;

    const T0: Millis = Millis(1_000_000);

    fn saga(branches: usize, options: Options) -> TransactionState {
        let mut s = crate::engine::fixture::saga("g1", branches, T0);
        s.transaction.options = options;
        s
    }

    fn statuses(s: &TransactionState) -> Vec<&'static str> {
        s.ops.iter().map(|o| o.status.as_str()).collect()
    }

    #[test]
    fn saga_runs_actions_in_order_then_succeeds() {
        let p = RetryPolicy::default();
        let mut s = saga(2, Options::default());
        assert_eq!(step(&mut s, Event::Resume, T0, &p), invoke(0, Op::Action, 1));
        assert_eq!(step(&mut s, outcome(0, Op::Action, Outcome::Succeeded), T0, &p), invoke(1, Op::Action, 1));
        assert_eq!(
            step(&mut s, outcome(1, Op::Action, Outcome::Succeeded), T0, &p),
            Effect::Finished { status: Status::Succeeded }
        );
        assert_eq!(s.transaction.status, Status::Succeeded);
        assert_eq!(s.transaction.finished_at, Some(T0));
        assert_eq!(s.transaction.next_due, None);
        assert_eq!(statuses(&s), ["succeeded", "prepared", "succeeded", "prepared"]);
    }

    #[test]
    fn saga_compensates_in_reverse_order_including_the_failed_action() {
        let p = RetryPolicy::default();
        let mut s = saga(3, Options::default());
        step(&mut s, Event::Resume, T0, &p);
        step(&mut s, outcome(0, Op::Action, Outcome::Succeeded), T0, &p);
        assert_eq!(
            step(&mut s, outcome(1, Op::Action, Outcome::Failed("account bob does not exist".into())), T0, &p),
            invoke(1, Op::Compensate, 1)
        );
        assert_eq!(s.transaction.status, Status::Aborting);
        assert_eq!(s.transaction.rollback_reason.as_deref(), Some("account bob does not exist"));
        assert_eq!(step(&mut s, outcome(1, Op::Compensate, Outcome::Succeeded), T0, &p), invoke(0, Op::Compensate, 1));
        assert_eq!(
            step(&mut s, outcome(0, Op::Compensate, Outcome::Succeeded), T0, &p),
            Effect::Finished { status: Status::Failed }
        );
        // Branch 3's action never ran, so it is not compensated.
        assert_eq!(statuses(&s), ["succeeded", "succeeded", "failed", "succeeded", "prepared", "prepared"]);
    }

    #[test]
    fn a_refused_first_action_is_still_compensated() {
        let p = RetryPolicy::default();
        let mut s = saga(2, Options::default());
        step(&mut s, Event::Resume, T0, &p);
        assert_eq!(
            step(&mut s, outcome(0, Op::Action, Outcome::Failed("insufficient funds".into())), T0, &p),
            invoke(0, Op::Compensate, 1)
        );
    }

    #[test]
    fn guest_retry_keeps_the_base_interval_and_errors_back_off() {
        let p = RetryPolicy { base_ms: 100, cap_ms: 10_000 };
        let mut s = saga(1, Options::default());
        step(&mut s, Event::Resume, T0, &p);
        let e = step(&mut s, outcome(0, Op::Action, Outcome::Retry("busy".into())), T0, &p);
        assert_eq!(e, Effect::Sleep { until: T0.plus_ms(100) });
        let e = step(&mut s, outcome(0, Op::Action, Outcome::Error("trap".into())), T0, &p);
        assert_eq!(e, Effect::Sleep { until: T0.plus_ms(200) }, "second failure: base doubled");
        let e = step(&mut s, outcome(0, Op::Action, Outcome::Error("trap".into())), T0, &p);
        assert_eq!(e, Effect::Sleep { until: T0.plus_ms(400) });
        assert_eq!(s.transaction.attempts, 3);
        assert_eq!(s.transaction.last_error.as_deref(), Some("01 action: trap"));
        assert_eq!(s.transaction.status, Status::Submitted);
    }

    #[test]
    fn resume_before_the_retry_time_sleeps_and_after_it_invokes_the_next_attempt() {
        let p = RetryPolicy { base_ms: 100, cap_ms: 10_000 };
        let mut s = saga(1, Options::default());
        step(&mut s, Event::Resume, T0, &p);
        step(&mut s, outcome(0, Op::Action, Outcome::Error("trap".into())), T0, &p);
        assert_eq!(step(&mut s, Event::Resume, T0.plus_ms(50), &p), Effect::Sleep { until: T0.plus_ms(100) });
        assert_eq!(step(&mut s, Event::Resume, T0.plus_ms(100), &p), invoke(0, Op::Action, 2));
    }

    #[test]
    fn a_success_after_errors_clears_the_error() {
        let p = RetryPolicy::default();
        let mut s = saga(1, Options::default());
        step(&mut s, Event::Resume, T0, &p);
        step(&mut s, outcome(0, Op::Action, Outcome::Error("trap".into())), T0, &p);
        let e = step(&mut s, outcome(0, Op::Action, Outcome::Succeeded), T0, &p);
        assert_eq!(e, Effect::Finished { status: Status::Succeeded });
        assert_eq!(s.transaction.last_error, None);
        assert_eq!(s.ops[0].attempts, 2);
    }

    #[test]
    fn retry_limit_turns_a_stuck_action_into_a_rollback() {
        let p = RetryPolicy::default();
        let mut s = saga(1, Options { retry_limit: Some(1), ..Options::default() });
        step(&mut s, Event::Resume, T0, &p);
        assert!(matches!(
            step(&mut s, outcome(0, Op::Action, Outcome::Error("trap".into())), T0, &p),
            Effect::Sleep { .. }
        ));
        assert_eq!(
            step(&mut s, outcome(0, Op::Action, Outcome::Error("trap".into())), T0, &p),
            invoke(0, Op::Compensate, 1)
        );
        assert_eq!(s.transaction.rollback_reason.as_deref(), Some("retry limit of 1 exceeded after 2 attempts: trap"));
    }

    #[test]
    fn a_refused_compensation_is_retried_not_final() {
        let p = RetryPolicy { base_ms: 100, cap_ms: 10_000 };
        let mut s = saga(1, Options::default());
        step(&mut s, Event::Resume, T0, &p);
        step(&mut s, outcome(0, Op::Action, Outcome::Failed("no".into())), T0, &p);
        let e = step(&mut s, outcome(0, Op::Compensate, Outcome::Failed("cannot".into())), T0, &p);
        assert_eq!(e, Effect::Sleep { until: T0.plus_ms(100) });
        assert_eq!(s.transaction.status, Status::Aborting);
        assert!(s.transaction.last_error.as_deref().unwrap().contains("compensation refused (cannot)"));
    }

    #[test]
    fn timeout_to_fail_aborts_and_compensates_the_attempted_frontier() {
        let p = RetryPolicy { base_ms: 100, cap_ms: 10_000 };
        let mut s = saga(2, Options { timeout_to_fail: Some(5), ..Options::default() });
        step(&mut s, Event::Resume, T0, &p);
        step(&mut s, outcome(0, Op::Action, Outcome::Succeeded), T0, &p);
        step(&mut s, outcome(1, Op::Action, Outcome::Error("down".into())), T0, &p);
        let later = T0.plus_ms(5_000);
        assert_eq!(step(&mut s, Event::Resume, later, &p), invoke(1, Op::Compensate, 1));
        assert_eq!(s.transaction.rollback_reason.as_deref(), Some("timeout after 5 seconds"));
    }

    #[test]
    fn a_final_transaction_stays_final() {
        let p = RetryPolicy::default();
        let mut s = saga(1, Options::default());
        s.transaction.status = Status::Failed;
        assert_eq!(step(&mut s, Event::Resume, T0, &p), Effect::Finished { status: Status::Failed });
    }

    fn concurrent(branches: usize, orders: &[(usize, &[usize])]) -> TransactionState {
        let orders = orders.iter().map(|(i, p)| (i.to_string(), p.to_vec())).collect();
        saga(branches, Options { concurrent: true, orders, ..Options::default() })
    }

    fn ready_ops(s: &TransactionState) -> Vec<String> {
        ready(s).into_iter().map(|(b, op, _)| format!("{b} {op}")).collect()
    }

    #[test]
    fn a_concurrent_saga_runs_what_is_ready_and_waits_for_prerequisites() {
        let p = RetryPolicy::default();
        // Branch 3 (index 2) waits for the other two.
        let mut s = concurrent(3, &[(2, &[0, 1])]);
        assert_eq!(ready_ops(&s), ["01 action", "02 action"]);
        assert_eq!(step(&mut s, Event::Resume, T0, &p), invoke(0, Op::Action, 1));
        step(&mut s, outcome(0, Op::Action, Outcome::Succeeded), T0, &p);
        assert_eq!(ready_ops(&s), ["02 action"], "03 still waits for 02");
        step(&mut s, outcome(1, Op::Action, Outcome::Succeeded), T0, &p);
        assert_eq!(ready_ops(&s), ["03 action"]);
        let end = step(&mut s, outcome(2, Op::Action, Outcome::Succeeded), T0, &p);
        assert_eq!(end, Effect::Finished { status: Status::Succeeded });
        assert!(ready(&s).is_empty());
    }

    #[test]
    fn a_concurrent_saga_compensates_in_reverse_dependency_order() {
        let p = RetryPolicy::default();
        // 02 depends on 01; 03 is independent and fails.
        let mut s = concurrent(3, &[(1, &[0])]);
        step(&mut s, outcome(0, Op::Action, Outcome::Succeeded), T0, &p);
        step(&mut s, outcome(1, Op::Action, Outcome::Succeeded), T0, &p);
        step(&mut s, outcome(2, Op::Action, Outcome::Failed("no".into())), T0, &p);
        assert_eq!(s.transaction.status, Status::Aborting);
        // 01's compensation waits until 02 (which depends on it) is compensated.
        assert_eq!(ready_ops(&s), ["03 compensate", "02 compensate"]);
        step(&mut s, outcome(1, Op::Compensate, Outcome::Succeeded), T0, &p);
        assert_eq!(ready_ops(&s), ["03 compensate", "01 compensate"]);
        step(&mut s, outcome(2, Op::Compensate, Outcome::Succeeded), T0, &p);
        let end = step(&mut s, outcome(0, Op::Compensate, Outcome::Succeeded), T0, &p);
        assert_eq!(end, Effect::Finished { status: Status::Failed });
    }

    #[test]
    fn a_failed_prerequisite_keeps_its_dependents_from_running_at_all() {
        let p = RetryPolicy::default();
        let mut s = concurrent(2, &[(1, &[0])]);
        assert_eq!(ready_ops(&s), ["01 action"]);
        step(&mut s, outcome(0, Op::Action, Outcome::Failed("insufficient funds".into())), T0, &p);
        assert_eq!(ready_ops(&s), ["01 compensate"], "02 never ran, so only 01 is compensated");
        let end = step(&mut s, outcome(0, Op::Compensate, Outcome::Succeeded), T0, &p);
        assert_eq!(end, Effect::Finished { status: Status::Failed });
        assert_eq!(statuses(&s), ["failed", "succeeded", "prepared", "prepared"]);
    }

    #[test]
    fn orders_naming_no_branch_or_forming_a_cycle_are_refused() {
        let orders = |pairs: &[(&str, &[usize])]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_vec())).collect();
        assert_eq!(check_orders(&orders(&[("2", &[0, 1]), ("1", &[0])]), 3), Ok(()));
        assert!(check_orders(&orders(&[("3", &[0])]), 3).unwrap_err().contains("\"3\" is not a branch index"));
        assert!(check_orders(&orders(&[("x", &[0])]), 3).unwrap_err().contains("is not a branch index"));
        assert!(check_orders(&orders(&[("1", &[5])]), 3).unwrap_err().contains("waits for 5"));
        assert!(check_orders(&orders(&[("1", &[1])]), 3).unwrap_err().contains("waits for itself"));
        let cycle = check_orders(&orders(&[("0", &[2]), ("1", &[0]), ("2", &[1])]), 3).unwrap_err();
        assert!(cycle.contains("cycle"), "{cycle}");
    }
}
