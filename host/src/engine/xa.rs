//! XA as a pure state machine, beside the saga and TCC: the same [`Event`]s
//! and [`Effect`]s, TCC's two-phase decisions ([`tcc::two_phase`]) with XA's
//! ops.
//!
//! Rules (DTM's XA, see `reference/dtm.md` §2.3, with the host running the
//! first phase instead of the client):
//! - the transaction is `prepared` while each branch's `action` runs, one at a
//!   time in branch order, in a local transaction that the host ends with
//!   `PREPARE TRANSACTION` (MariaDB: `XA PREPARE`) instead of a commit;
//! - when every action has prepared the transaction is `submitted`: the
//!   decision to commit. That status is durable before any `commit` (`COMMIT
//!   PREPARED`) runs: XA never carries progress in a branch's commit, so the
//!   driver writes it first. A restart after it only commits;
//! - commits run in branch order and are retried until they succeed;
//! - an action's `failure`, exhausting `retry_limit`, `timeout_to_fail` while
//!   still `prepared`, or an operator's abort turns it `aborting`: every
//!   branch whose action was attempted is rolled back (`ROLLBACK PREPARED`
//!   when it prepared; the barrier's null rollback otherwise), last to first,
//!   retried until each succeeds.
//!
//! What the database does for each op is the executor's business
//! (`branch`, `database`); this file only decides which op comes next.

use crate::model::{Millis, Op, Status, TransactionState};

use super::retry::RetryPolicy;
use super::saga::{self, Effect, Event, Rules};
use super::tcc::{Phases, two_phase};

const XA: Phases = Phases { forward: Op::Action, commit: Op::Commit, undo: Op::Rollback };

/// Advances an XA transaction by one event. The caller persists `state` after every call.
pub fn step(state: &mut TransactionState, event: Event, now: Millis, policy: &RetryPolicy) -> Effect {
    saga::run(state, event, now, policy, &Rules { timeout_in: Some(Status::Prepared), decide, forward: Op::is_forward })
}

fn decide(state: &mut TransactionState, now: Millis) -> Effect {
    two_phase(state, now, &XA)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::fixture::{invoke, outcome};
    use crate::engine::saga::Outcome;
    use crate::model::Options;

    const T0: Millis = Millis(1_000_000);

    fn xa(branches: usize, options: Options) -> TransactionState {
        let mut s = crate::engine::fixture::xa("x1", branches, T0);
        s.transaction.options = options;
        s
    }

    fn statuses(s: &TransactionState) -> Vec<String> {
        s.ops.iter().map(|o| format!("{} {} {}", o.branch_id, o.op, o.status)).collect()
    }

    #[test]
    fn every_action_prepares_then_every_branch_commits() {
        let p = RetryPolicy::default();
        let mut s = xa(2, Options::default());
        assert_eq!(step(&mut s, Event::Resume, T0, &p), invoke(0, Op::Action, 1));
        assert_eq!(step(&mut s, outcome(0, Op::Action, Outcome::Succeeded), T0, &p), invoke(1, Op::Action, 1));
        assert_eq!(s.transaction.status, Status::Prepared, "undecided until the last branch prepared");
        assert_eq!(step(&mut s, outcome(1, Op::Action, Outcome::Succeeded), T0, &p), invoke(0, Op::Commit, 1));
        assert_eq!(s.transaction.status, Status::Submitted, "the decision to commit");
        assert_eq!(step(&mut s, outcome(0, Op::Commit, Outcome::Succeeded), T0, &p), invoke(1, Op::Commit, 1));
        assert_eq!(
            step(&mut s, outcome(1, Op::Commit, Outcome::Succeeded), T0, &p),
            Effect::Finished { status: Status::Succeeded }
        );
        assert_eq!(
            statuses(&s),
            [
                "01 action succeeded",
                "01 commit succeeded",
                "01 rollback prepared",
                "02 action succeeded",
                "02 commit succeeded",
                "02 rollback prepared"
            ]
        );
    }

    #[test]
    fn a_refused_action_rolls_back_every_attempted_branch_last_to_first() {
        let p = RetryPolicy::default();
        let mut s = xa(3, Options::default());
        step(&mut s, Event::Resume, T0, &p);
        step(&mut s, outcome(0, Op::Action, Outcome::Succeeded), T0, &p);
        assert_eq!(
            step(&mut s, outcome(1, Op::Action, Outcome::Failed("insufficient funds".into())), T0, &p),
            invoke(1, Op::Rollback, 1),
            "the refused branch is rolled back too: it may have prepared before a lost answer"
        );
        assert_eq!(s.transaction.status, Status::Aborting);
        assert_eq!(step(&mut s, outcome(1, Op::Rollback, Outcome::Succeeded), T0, &p), invoke(0, Op::Rollback, 1));
        assert_eq!(
            step(&mut s, outcome(0, Op::Rollback, Outcome::Succeeded), T0, &p),
            Effect::Finished { status: Status::Failed }
        );
        assert_eq!(
            statuses(&s),
            [
                "01 action succeeded",
                "01 commit prepared",
                "01 rollback succeeded",
                "02 action failed",
                "02 commit prepared",
                "02 rollback succeeded",
                "03 action prepared",
                "03 commit prepared",
                "03 rollback prepared"
            ],
            "branch 3 never ran, so it is never rolled back; nothing is committed"
        );
    }

    #[test]
    fn commits_and_rollbacks_are_retried_never_refused_for_good() {
        let p = RetryPolicy { base_ms: 100, cap_ms: 10_000 };
        let mut s = xa(1, Options { retry_limit: Some(1), ..Options::default() });
        step(&mut s, Event::Resume, T0, &p);
        step(&mut s, outcome(0, Op::Action, Outcome::Succeeded), T0, &p);
        for attempt in 1..=3 {
            let e = step(&mut s, outcome(0, Op::Commit, Outcome::Error("connection refused".into())), T0, &p);
            assert!(matches!(e, Effect::Sleep { .. }), "attempt {attempt}: {e:?}");
            assert_eq!(s.transaction.status, Status::Submitted, "retry_limit does not apply to a commit");
        }
        assert_eq!(step(&mut s, Event::Resume, T0.plus_ms(60_000), &p), invoke(0, Op::Commit, 4));

        let mut s = xa(1, Options::default());
        step(&mut s, Event::Resume, T0, &p);
        step(&mut s, outcome(0, Op::Action, Outcome::Failed("no".into())), T0, &p);
        let e = step(&mut s, outcome(0, Op::Rollback, Outcome::Failed("odd".into())), T0, &p);
        assert_eq!(e, Effect::Sleep { until: T0.plus_ms(100) });
        assert!(s.transaction.last_error.as_deref().unwrap().contains("rollback refused (odd)"));
    }

    #[test]
    fn timeout_to_fail_rolls_back_an_undecided_xa_but_never_a_decided_one() {
        let p = RetryPolicy { base_ms: 100, cap_ms: 10_000 };
        let later = T0.plus_ms(5_000);

        let mut s = xa(2, Options { timeout_to_fail: Some(5), ..Options::default() });
        step(&mut s, Event::Resume, T0, &p);
        step(&mut s, outcome(0, Op::Action, Outcome::Succeeded), T0, &p);
        step(&mut s, outcome(1, Op::Action, Outcome::Retry("locked".into())), T0, &p);
        assert_eq!(step(&mut s, Event::Resume, later, &p), invoke(1, Op::Rollback, 1));
        assert_eq!(s.transaction.rollback_reason.as_deref(), Some("timeout after 5 seconds"));

        let mut s = xa(2, Options { timeout_to_fail: Some(5), ..Options::default() });
        step(&mut s, Event::Resume, T0, &p);
        step(&mut s, outcome(0, Op::Action, Outcome::Succeeded), T0, &p);
        step(&mut s, outcome(1, Op::Action, Outcome::Succeeded), T0, &p);
        step(&mut s, outcome(0, Op::Commit, Outcome::Error("down".into())), T0, &p);
        assert_eq!(step(&mut s, Event::Resume, later, &p), invoke(0, Op::Commit, 2), "decided: commits go on");
        assert_eq!(s.transaction.status, Status::Submitted);
    }

    #[test]
    fn a_restart_at_every_point_continues_from_the_stored_state() {
        // Every crash point between the decision and its effects: whatever was
        // stored last, a restart picks the op a running driver would have.
        // (A restart while `prepared` re-runs a prepared action: the executor
        // finds it prepared and answers success without running it again.)
        let p = RetryPolicy::default();
        let mut running = xa(3, Options::default());
        let mut effects = vec![step(&mut running, Event::Resume, T0, &p)];
        let mut snapshots = vec![running.clone()];
        while let Some(Effect::Invoke { branch_id, op, .. }) = effects.last().cloned() {
            let next = step(&mut running, Event::Outcome { branch_id, op, outcome: Outcome::Succeeded }, T0, &p);
            snapshots.push(running.clone());
            effects.push(next);
        }
        assert_eq!(effects.len(), 7, "three actions, three commits, the end: {effects:?}");
        for (i, snapshot) in snapshots.iter().enumerate() {
            let mut restarted = snapshot.clone();
            assert_eq!(step(&mut restarted, Event::Resume, T0, &p), effects[i], "restart after step {i}");
            if snapshot.transaction.status == Status::Submitted {
                assert!(
                    !matches!(effects[i], Effect::Invoke { op: Op::Action | Op::Rollback, .. }),
                    "after the decision only commits run: {:?}",
                    effects[i]
                );
            }
        }

        let mut aborting = xa(2, Options::default());
        step(&mut aborting, Event::Resume, T0, &p);
        step(&mut aborting, outcome(0, Op::Action, Outcome::Succeeded), T0, &p);
        step(&mut aborting, outcome(1, Op::Action, Outcome::Failed("no".into())), T0, &p);
        step(&mut aborting, outcome(1, Op::Rollback, Outcome::Succeeded), T0, &p);
        let mut restarted = aborting.clone();
        assert_eq!(step(&mut restarted, Event::Resume, T0, &p), invoke(0, Op::Rollback, 1), "never a commit");
    }
}
