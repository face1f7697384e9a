//! TCC (try, confirm, cancel) as a pure state machine, beside the saga: the
//! same [`Event`]s and [`Effect`]s, the same recording of outcomes
//! ([`saga::run`]), its own decisions.
//!
//! Rules (DTM's TCC, see `reference/dtm.md` §2.2, with the host running the
//! tries instead of the client):
//! - the transaction is `prepared` while tries run, one at a time in branch
//!   order;
//! - when every try has succeeded it is `submitted`: the decision to confirm.
//!   That status is durable before any confirm commits (the driver writes it
//!   first, or it rides in the commit of the last try or the first confirm), so
//!   a restart after it never cancels;
//! - confirms run in branch order, and are retried until they succeed;
//! - a try's `failure`, exhausting `retry_limit`, or `timeout_to_fail` while
//!   still `prepared` turns it `aborting`: every branch whose try was attempted
//!   is cancelled, last to first, and cancels are retried until they succeed.
//!   A cancel of a try that never committed is a no-op (the barrier's null
//!   compensation), and a try arriving after its cancel does nothing.

use crate::model::{Millis, Op, OpStatus, Status, TransactionState};

use super::retry::RetryPolicy;
use super::saga::{self, Effect, Event, Rules};

/// Advances a TCC transaction by one event. The caller persists `state` after every call.
pub fn step(state: &mut TransactionState, event: Event, now: Millis, policy: &RetryPolicy) -> Effect {
    saga::run(state, event, now, policy, &Rules { timeout_in: Some(Status::Prepared), decide, forward: Op::is_forward })
}

fn decide(state: &mut TransactionState, now: Millis) -> Effect {
    two_phase(state, now, &TCC)
}

/// The ops of a mode that decides after a first phase (TCC, XA): the forward
/// op, which may be refused; the op that carries out the decision to commit;
/// and the op that undoes a forward op.
pub(super) struct Phases {
    pub forward: Op,
    pub commit: Op,
    pub undo: Op,
}

const TCC: Phases = Phases { forward: Op::Try, commit: Op::Confirm, undo: Op::Cancel };

/// The next effect of a two-phase mode: forward ops in order while
/// `prepared`; once all succeeded, the decision (`submitted`) and the commit
/// ops in order; while `aborting`, the undo of every attempted branch, last
/// to first. A client-driven one (no forward ops: its client ran them) waits
/// while `prepared`, and then confirms (TCC, last branch first, as DTM does)
/// or commits (XA, in order), or undoes every branch, last first.
pub(super) fn two_phase(state: &mut TransactionState, now: Millis, phases: &Phases) -> Effect {
    // A DTM client runs the first phase itself and registers the other ops:
    // while it does, wait for its submit or abort (or the timeout); an abort
    // undoes every registered branch.
    let client_driven = !state.ops.iter().any(|o| o.op == phases.forward);
    if client_driven && state.transaction.status == Status::Prepared {
        let t = &state.transaction;
        let timeout = t.options.timeout_to_fail.map(|secs| t.created_at.plus_ms(secs.saturating_mul(1000)));
        let until = timeout.unwrap_or(now.plus_ms(24 * 3_600_000));
        state.transaction.next_due = Some(until);
        return Effect::Sleep { until };
    }
    if client_driven && state.transaction.status == Status::Submitted && phases.commit == Op::Confirm {
        // DTM confirms a client's TCC from the last registered branch to the first.
        let next = state.ops.iter().rev().find(|o| o.op == phases.commit && o.status != OpStatus::Succeeded);
        return match next {
            Some(o) => Effect::Invoke { branch_id: o.branch_id.clone(), op: phases.commit, attempt: o.attempts + 1 },
            None => saga::finish(state, Status::Succeeded, now),
        };
    }
    if client_driven && state.transaction.status == Status::Aborting {
        let next = state.ops.iter().rev().find(|o| o.op == phases.undo && o.status != OpStatus::Succeeded);
        return match next {
            Some(o) => Effect::Invoke { branch_id: o.branch_id.clone(), op: phases.undo, attempt: o.attempts + 1 },
            None => saga::finish(state, Status::Failed, now),
        };
    }
    if state.transaction.status == Status::Prepared {
        match first_unfinished(state, phases.forward) {
            Some(effect) => return effect,
            // Every forward op succeeded: the decision is to commit.
            None => state.transaction.status = Status::Submitted,
        }
    }
    match state.transaction.status {
        // (Prepared only when it has just been submitted above.)
        Status::Prepared | Status::Submitted => {
            first_unfinished(state, phases.commit).unwrap_or_else(|| saga::finish(state, Status::Succeeded, now))
        }
        Status::Aborting => saga::undo_next(state, phases.forward, phases.undo, now),
        status @ (Status::Succeeded | Status::Failed) => Effect::Finished { status },
    }
}

/// The first `op` in branch order that has not succeeded, to be invoked.
fn first_unfinished(state: &TransactionState, op: Op) -> Option<Effect> {
    state.ops.iter().find(|o| o.op == op && o.status != OpStatus::Succeeded).map(|o| Effect::Invoke {
        branch_id: o.branch_id.clone(),
        op,
        attempt: o.attempts + 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::fixture::{invoke, outcome};
    use crate::engine::saga::Outcome;
    use crate::model::Options;

    const T0: Millis = Millis(1_000_000);

    fn tcc(branches: usize, options: Options) -> TransactionState {
        let mut s = crate::engine::fixture::tcc("g1", branches, T0);
        s.transaction.options = options;
        s
    }

    /// Op statuses as `branch op status`, in stored order.
    fn statuses(s: &TransactionState) -> Vec<String> {
        s.ops.iter().map(|o| format!("{} {} {}", o.branch_id, o.op, o.status)).collect()
    }

    #[test]
    fn a_client_driven_tcc_waits_for_its_client_then_confirms_or_cancels_every_branch() {
        let p = RetryPolicy::default();
        let options = Options { timeout_to_fail: Some(35), ..Options::default() };
        let mut s = tcc(2, options);
        s.ops.retain(|o| o.op != Op::Try);
        let effect = step(&mut s, Event::Resume, T0, &p);
        assert_eq!(effect, Effect::Sleep { until: Millis(T0.0 + 35_000) }, "its client runs the tries");
        assert_eq!(s.transaction.next_due, Some(Millis(T0.0 + 35_000)));
        let mut submitted = s.clone();
        // (A submit or an abort makes it due at once.)
        submitted.transaction.status = Status::Submitted;
        submitted.transaction.next_due = Some(T0);
        assert_eq!(step(&mut submitted, Event::Resume, T0, &p), invoke(1, Op::Confirm, 1), "last first, as DTM");
        step(&mut submitted, outcome(1, Op::Confirm, Outcome::Succeeded), T0, &p);
        assert_eq!(step(&mut submitted, Event::Resume, T0, &p), invoke(0, Op::Confirm, 1));
        let mut aborted = s.clone();
        aborted.transaction.status = Status::Aborting;
        aborted.transaction.next_due = Some(T0);
        assert_eq!(step(&mut aborted, Event::Resume, T0, &p), invoke(1, Op::Cancel, 1), "every branch, last first");
        step(&mut aborted, outcome(1, Op::Cancel, Outcome::Succeeded), T0, &p);
        assert_eq!(step(&mut aborted, Event::Resume, T0, &p), invoke(0, Op::Cancel, 1));
        // Not submitted in time: cancelled.
        let late = Millis(T0.0 + 35_000);
        assert_eq!(step(&mut s, Event::Resume, late, &p), invoke(1, Op::Cancel, 1));
        assert_eq!(s.transaction.status, Status::Aborting);
    }

    #[test]
    fn every_try_then_every_confirm_in_order() {
        let p = RetryPolicy::default();
        let mut s = tcc(2, Options::default());
        assert_eq!(s.transaction.status, Status::Prepared);
        assert_eq!(step(&mut s, Event::Resume, T0, &p), invoke(0, Op::Try, 1));
        assert_eq!(step(&mut s, outcome(0, Op::Try, Outcome::Succeeded), T0, &p), invoke(1, Op::Try, 1));
        assert_eq!(s.transaction.status, Status::Prepared, "undecided until the last try");
        assert_eq!(step(&mut s, outcome(1, Op::Try, Outcome::Succeeded), T0, &p), invoke(0, Op::Confirm, 1));
        assert_eq!(s.transaction.status, Status::Submitted, "the decision is taken with the last try");
        assert_eq!(step(&mut s, outcome(0, Op::Confirm, Outcome::Succeeded), T0, &p), invoke(1, Op::Confirm, 1));
        assert_eq!(
            step(&mut s, outcome(1, Op::Confirm, Outcome::Succeeded), T0, &p),
            Effect::Finished { status: Status::Succeeded }
        );
        assert_eq!(
            statuses(&s),
            [
                "01 try succeeded",
                "01 confirm succeeded",
                "01 cancel prepared",
                "02 try succeeded",
                "02 confirm succeeded",
                "02 cancel prepared"
            ]
        );
    }

    #[test]
    fn a_refused_try_cancels_every_attempted_branch_last_to_first() {
        let p = RetryPolicy::default();
        let mut s = tcc(3, Options::default());
        step(&mut s, Event::Resume, T0, &p);
        step(&mut s, outcome(0, Op::Try, Outcome::Succeeded), T0, &p);
        assert_eq!(
            step(&mut s, outcome(1, Op::Try, Outcome::Failed("account carol does not exist".into())), T0, &p),
            invoke(1, Op::Cancel, 1),
            "the refused try's own branch is cancelled too: the barrier makes it a null cancel"
        );
        assert_eq!(s.transaction.status, Status::Aborting);
        assert_eq!(s.transaction.rollback_reason.as_deref(), Some("account carol does not exist"));
        assert_eq!(step(&mut s, outcome(1, Op::Cancel, Outcome::Succeeded), T0, &p), invoke(0, Op::Cancel, 1));
        assert_eq!(
            step(&mut s, outcome(0, Op::Cancel, Outcome::Succeeded), T0, &p),
            Effect::Finished { status: Status::Failed }
        );
        assert_eq!(
            statuses(&s),
            [
                "01 try succeeded",
                "01 confirm prepared",
                "01 cancel succeeded",
                "02 try failed",
                "02 confirm prepared",
                "02 cancel succeeded",
                "03 try prepared",
                "03 confirm prepared",
                "03 cancel prepared"
            ],
            "branch 3 never tried, so it is never cancelled; nothing is confirmed"
        );
    }

    #[test]
    fn confirms_and_cancels_are_retried_never_refused_for_good() {
        let p = RetryPolicy { base_ms: 100, cap_ms: 10_000 };
        let mut s = tcc(1, Options { retry_limit: Some(1), ..Options::default() });
        step(&mut s, Event::Resume, T0, &p);
        step(&mut s, outcome(0, Op::Try, Outcome::Succeeded), T0, &p);
        for attempt in 1..=3 {
            let e = step(&mut s, outcome(0, Op::Confirm, Outcome::Failed("ledger closed".into())), T0, &p);
            assert!(matches!(e, Effect::Sleep { .. }), "attempt {attempt}: {e:?}");
            assert_eq!(s.transaction.status, Status::Submitted, "retry_limit does not apply to a confirm");
        }
        assert_eq!(
            s.transaction.last_error.as_deref(),
            Some("01 confirm: confirm refused (ledger closed); confirms are retried until they succeed")
        );
        assert_eq!(step(&mut s, Event::Resume, T0.plus_ms(60_000), &p), invoke(0, Op::Confirm, 4));

        let mut s = tcc(1, Options::default());
        step(&mut s, Event::Resume, T0, &p);
        step(&mut s, outcome(0, Op::Try, Outcome::Failed("no".into())), T0, &p);
        let e = step(&mut s, outcome(0, Op::Cancel, Outcome::Failed("locked".into())), T0, &p);
        assert_eq!(e, Effect::Sleep { until: T0.plus_ms(100) });
        assert_eq!(s.transaction.status, Status::Aborting);
        assert!(s.transaction.last_error.as_deref().unwrap().contains("cancel refused (locked)"));
    }

    #[test]
    fn retry_limit_on_a_try_rolls_back() {
        let p = RetryPolicy::default();
        let mut s = tcc(1, Options { retry_limit: Some(2), ..Options::default() });
        step(&mut s, Event::Resume, T0, &p);
        for _ in 0..2 {
            let e = step(&mut s, outcome(0, Op::Try, Outcome::Retry("busy".into())), T0, &p);
            assert!(matches!(e, Effect::Sleep { .. }), "{e:?}");
        }
        assert_eq!(step(&mut s, outcome(0, Op::Try, Outcome::Retry("busy".into())), T0, &p), invoke(0, Op::Cancel, 1));
        assert_eq!(s.transaction.rollback_reason.as_deref(), Some("retry limit of 2 exceeded after 3 attempts: busy"));
    }

    #[test]
    fn timeout_to_fail_cancels_an_undecided_tcc_but_never_a_decided_one() {
        let p = RetryPolicy { base_ms: 100, cap_ms: 10_000 };
        let later = T0.plus_ms(5_000);

        let mut s = tcc(2, Options { timeout_to_fail: Some(5), ..Options::default() });
        step(&mut s, Event::Resume, T0, &p);
        step(&mut s, outcome(0, Op::Try, Outcome::Succeeded), T0, &p);
        step(&mut s, outcome(1, Op::Try, Outcome::Error("down".into())), T0, &p);
        assert_eq!(step(&mut s, Event::Resume, later, &p), invoke(1, Op::Cancel, 1));
        assert_eq!(s.transaction.rollback_reason.as_deref(), Some("timeout after 5 seconds"));

        let mut s = tcc(2, Options { timeout_to_fail: Some(5), ..Options::default() });
        step(&mut s, Event::Resume, T0, &p);
        step(&mut s, outcome(0, Op::Try, Outcome::Succeeded), T0, &p);
        step(&mut s, outcome(1, Op::Try, Outcome::Succeeded), T0, &p);
        step(&mut s, outcome(0, Op::Confirm, Outcome::Error("down".into())), T0, &p);
        assert_eq!(step(&mut s, Event::Resume, later, &p), invoke(0, Op::Confirm, 2), "decided: confirms go on");
        assert_eq!(s.transaction.status, Status::Submitted);
    }

    #[test]
    fn a_restart_at_every_point_continues_from_the_stored_state() {
        // Whatever the driver last stored, a restart (Resume) picks the same
        // next op a running driver would have: no try after the decision, no
        // confirm after a cancel, no second confirm of a confirmed branch.
        let p = RetryPolicy::default();
        let mut running = tcc(2, Options::default());
        let mut effects = vec![step(&mut running, Event::Resume, T0, &p)];
        let mut snapshots = vec![running.clone()];
        while let Some(Effect::Invoke { branch_id, op, .. }) = effects.last().cloned() {
            let next = step(&mut running, Event::Outcome { branch_id, op, outcome: Outcome::Succeeded }, T0, &p);
            snapshots.push(running.clone());
            effects.push(next);
        }
        assert_eq!(effects.len(), 5, "two tries, two confirms, the end: {effects:?}");
        for (i, snapshot) in snapshots.iter().enumerate() {
            let mut restarted = snapshot.clone();
            assert_eq!(step(&mut restarted, Event::Resume, T0, &p), effects[i], "restart after step {i}");
        }

        let mut aborting = tcc(2, Options::default());
        step(&mut aborting, Event::Resume, T0, &p);
        step(&mut aborting, outcome(0, Op::Try, Outcome::Succeeded), T0, &p);
        step(&mut aborting, outcome(1, Op::Try, Outcome::Failed("no".into())), T0, &p);
        step(&mut aborting, outcome(1, Op::Cancel, Outcome::Succeeded), T0, &p);
        let mut restarted = aborting.clone();
        assert_eq!(step(&mut restarted, Event::Resume, T0, &p), invoke(0, Op::Cancel, 1));
    }
}
