//! Operators' controls as a pure function over a transaction's state: what
//! `abort`, `force-stop` and `retry-now` change, and when they are refused.
//! The engine applies them at a step boundary of the driver (or to a claimed,
//! idle transaction) and drives on from there.

use crate::model::{BranchId, HistoryEntry, Millis, Mode, Op, OpStatus, Status, TransactionState};

/// Whether `state` is a message prepared by a client (DTM's two-phase
/// message): its local transaction is the client's, and its `00 msg` op is
/// the client's back-check URL.
pub fn client_message(state: &TransactionState) -> bool {
    state.transaction.mode == Mode::Msg
        && state.op(&BranchId::local(), Op::Msg).is_some_and(|o| o.target.url().is_some())
}

/// What an operator asks of one transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Roll back: a saga not finished, a TCC not decided. Compensations (or
    /// cancels) run as after a refused forward op.
    Abort,
    /// Mark it failed now, running nothing more, compensations included.
    ForceStop,
    /// Run the next attempt now instead of at its retry time.
    RetryNow,
    /// A DTM client's `submit` of a message it prepared (its local
    /// transaction committed, so the message is sent), or of a TCC or XA
    /// whose first phase it ran (the decision to confirm or commit).
    Submit,
    /// A DTM client's `registerBranch`: the ops of [`Request::register`]
    /// join a TCC or XA it drives, while `prepared`.
    Register,
}

impl Control {
    pub fn as_str(self) -> &'static str {
        match self {
            Control::Abort => "abort",
            Control::ForceStop => "force-stop",
            Control::RetryNow => "retry-now",
            Control::Submit => "submit",
            Control::Register => "register",
        }
    }
}

/// Who asks, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub control: Control,
    pub actor: String,
    pub reason: Option<String>,
    /// The ops a [`Control::Register`] adds (empty for every other control).
    pub register: Vec<crate::model::BranchOp>,
}

/// Whether `state` is a TCC or XA whose first phase its client runs (DTM's
/// client-driven TCC and XA): it has no forward op (`try`, `action`), only the
/// ops the client registered.
pub fn client_two_phase(state: &TransactionState) -> bool {
    matches!(state.transaction.mode, Mode::Tcc | Mode::Xa) && !state.ops.iter().any(|o| o.op.is_forward())
}

/// Applies `request` to `state` at `now`, or says why it does not apply.
/// Returns the history entry that records it.
pub fn apply(state: &mut TransactionState, request: &Request, now: Millis) -> Result<HistoryEntry, String> {
    let client_message = client_message(state);
    let client_two_phase = client_two_phase(state);
    if request.control == Control::Register {
        let tx = &state.transaction;
        if !client_two_phase || tx.status != Status::Prepared {
            return Err(format!("no trans with gid: {} status: prepared found", tx.gid));
        }
        if let Some(taken) = request.register.iter().find(|o| state.op(&o.branch_id, o.op).is_some()) {
            return Err(format!("branch {} {} is registered already", taken.branch_id, taken.op));
        }
        state.ops.extend(request.register.iter().cloned());
        let tx = &mut state.transaction;
        tx.updated_at = now;
        return Ok(HistoryEntry {
            actor: Some(request.actor.clone()),
            detail: request.register.first().map(|o| format!("branch {}", o.branch_id)),
            outcome: Some(tx.status.to_string()),
            ..HistoryEntry::new(&tx.gid, now, request.control.as_str())
        });
    }
    if request.control == Control::Submit {
        if !(client_message || client_two_phase) || state.transaction.status != Status::Prepared {
            return Err(format!(
                "transaction {} is not a prepared message of a client; current status '{}', cannot submit",
                state.transaction.gid, state.transaction.status
            ));
        }
        if let Some(local) = state.op_mut(&BranchId::local(), Op::Msg) {
            local.status = OpStatus::Succeeded;
            local.updated_at = now;
        }
    }
    let tx = &mut state.transaction;
    if tx.status.is_final() {
        return Err(format!("transaction {} has already {}", tx.gid, tx.status));
    }
    let asked = match &request.reason {
        Some(reason) => format!("{} by {}: {reason}", past(request.control), request.actor),
        None => format!("{} by {}", past(request.control), request.actor),
    };
    match request.control {
        Control::Abort => {
            if tx.status == Status::Aborting {
                return Err(format!("transaction {} is already aborting", tx.gid));
            }
            if client_message && tx.status == Status::Prepared {
                // The client's local transaction did not commit: nothing was
                // sent, nothing is to undo.
                tx.status = Status::Failed;
                tx.rollback_reason = Some(asked);
                tx.finished_at = Some(now);
                tx.next_due = None;
                tx.attempts = 0;
                tx.last_error = None;
                tx.updated_at = now;
                return Ok(HistoryEntry {
                    actor: Some(request.actor.clone()),
                    detail: request.reason.clone(),
                    outcome: Some(tx.status.to_string()),
                    ..HistoryEntry::new(&tx.gid, now, request.control.as_str())
                });
            }
            if tx.mode == Mode::Msg {
                // Its local function decides; an unknown outcome needs the
                // back-check, which an abort would skip.
                return Err(format!(
                    "transaction {} is a message: it fails only if its local function refuses or never commits, \
                     and is always delivered once it committed",
                    tx.gid
                ));
            }
            if !matches!(tx.mode, Mode::Saga | Mode::Workflow) && tx.status == Status::Submitted {
                return Err(format!(
                    "transaction {} has decided to {} every branch; a decided {} only goes forward",
                    tx.gid,
                    if tx.mode == Mode::Xa { "commit" } else { "confirm" },
                    tx.mode.as_str().to_uppercase()
                ));
            }
            tx.status = Status::Aborting;
            tx.rollback_reason = Some(asked);
            tx.next_due = Some(now);
        }
        Control::ForceStop => {
            tx.status = Status::Failed;
            let left = match tx.mode {
                // Not an effect to compensate: locks to release (`branch::sweep_prepared`).
                Mode::Xa => "nothing was compensated; branches left prepared are rolled back by the host",
                Mode::Saga | Mode::Tcc | Mode::Msg | Mode::Workflow => "nothing was compensated",
            };
            tx.rollback_reason = Some(format!("{asked} ({left})"));
            tx.finished_at = Some(now);
            tx.next_due = None;
        }
        Control::RetryNow => tx.next_due = Some(now),
        Control::Submit => {
            tx.status = Status::Submitted;
            tx.next_due = Some(now);
        }
        Control::Register => {}
    }
    tx.attempts = 0;
    tx.last_error = None;
    tx.updated_at = now;
    Ok(HistoryEntry {
        actor: Some(request.actor.clone()),
        detail: request.reason.clone(),
        outcome: Some(tx.status.to_string()),
        ..HistoryEntry::new(&tx.gid, now, request.control.as_str())
    })
}

/// The ops `request` may change (to be written with the state): a
/// message's `00 msg` for a submit, the registered ops for a register.
pub fn changed_ops(request: &Request) -> Vec<(BranchId, Op)> {
    match request.control {
        Control::Submit => vec![(BranchId::local(), Op::Msg)],
        Control::Register => request.register.iter().map(|o| (o.branch_id.clone(), o.op)).collect(),
        Control::Abort | Control::ForceStop | Control::RetryNow => Vec::new(),
    }
}

fn past(control: Control) -> &'static str {
    match control {
        Control::Abort => "aborted",
        Control::ForceStop => "force-stopped",
        Control::RetryNow => "retried now",
        Control::Submit => "submitted",
        Control::Register => "registered a branch",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::fixture::{self, invoke, outcome};
    use crate::engine::retry::RetryPolicy;
    use crate::engine::saga::{self, Effect, Event, Outcome};
    use crate::model::Op;

    const T0: Millis = Millis(1_000_000);

    fn request(control: Control, reason: Option<&str>) -> Request {
        Request { control, actor: "ops".to_owned(), reason: reason.map(str::to_owned), register: Vec::new() }
    }

    #[test]
    fn abort_rolls_a_running_saga_back_from_where_it_is() {
        let p = RetryPolicy::default();
        let mut s = fixture::saga("g1", 3, T0);
        saga::step(&mut s, Event::Resume, T0, &p);
        let event = outcome(0, Op::Action, Outcome::Succeeded);
        assert_eq!(saga::step(&mut s, event, T0, &p), invoke(1, Op::Action, 1));
        let entry = apply(&mut s, &request(Control::Abort, Some("wrong amount")), T0.plus_ms(5)).unwrap();
        assert_eq!(s.transaction.status, Status::Aborting);
        assert_eq!(s.transaction.rollback_reason.as_deref(), Some("aborted by ops: wrong amount"));
        assert_eq!(
            (entry.kind.as_str(), entry.actor.as_deref(), entry.detail.as_deref()),
            ("abort", Some("ops"), Some("wrong amount"))
        );
        // Branch 2's action was about to run, never attempted: only branch 1 is compensated.
        assert_eq!(saga::step(&mut s, Event::Resume, T0.plus_ms(5), &p), invoke(0, Op::Compensate, 1));
    }

    #[test]
    fn a_decided_tcc_cannot_be_aborted_but_an_undecided_one_cancels() {
        let p = RetryPolicy::default();
        let mut s = fixture::tcc("t1", 1, T0);
        let undecided = s.clone();
        crate::engine::tcc::step(&mut s, Event::Resume, T0, &p);
        let event = outcome(0, Op::Try, Outcome::Succeeded);
        crate::engine::tcc::step(&mut s, event, T0, &p);
        assert_eq!(s.transaction.status, Status::Submitted);
        let refused = apply(&mut s, &request(Control::Abort, None), T0).unwrap_err();
        assert!(refused.contains("decided to confirm"), "{refused}");
        assert_eq!(s.transaction.status, Status::Submitted, "a refusal changes nothing");

        let mut s = undecided;
        apply(&mut s, &request(Control::Abort, None), T0).unwrap();
        assert_eq!(s.transaction.rollback_reason.as_deref(), Some("aborted by ops"));
        // Nothing was tried, so nothing is cancelled.
        assert_eq!(
            crate::engine::tcc::step(&mut s, Event::Resume, T0, &p),
            Effect::Finished { status: Status::Failed }
        );
    }

    #[test]
    fn force_stop_ends_at_once_without_compensation() {
        let p = RetryPolicy::default();
        let mut s = fixture::saga("g1", 2, T0);
        saga::step(&mut s, Event::Resume, T0, &p);
        let event = outcome(0, Op::Action, Outcome::Error("down".into()));
        assert!(matches!(saga::step(&mut s, event, T0, &p), Effect::Sleep { .. }));
        apply(&mut s, &request(Control::ForceStop, Some("bad data")), T0).unwrap();
        assert_eq!(
            s.transaction.rollback_reason.as_deref(),
            Some("force-stopped by ops: bad data (nothing was compensated)")
        );
        assert_eq!(s.transaction.last_error, None);
        assert_eq!(saga::step(&mut s, Event::Resume, T0, &p), Effect::Finished { status: Status::Failed });
        assert!(apply(&mut s, &request(Control::RetryNow, None), T0).unwrap_err().contains("has already failed"));
    }

    #[test]
    fn retry_now_runs_the_next_attempt_before_its_time() {
        let p = RetryPolicy { base_ms: 60_000, cap_ms: 60_000 };
        let mut s = fixture::saga("g1", 1, T0);
        saga::step(&mut s, Event::Resume, T0, &p);
        let event = outcome(0, Op::Action, Outcome::Retry("busy".into()));
        assert_eq!(saga::step(&mut s, event, T0, &p), Effect::Sleep { until: T0.plus_ms(60_000) });
        let now = T0.plus_ms(10);
        apply(&mut s, &request(Control::RetryNow, None), now).unwrap();
        assert_eq!(saga::step(&mut s, Event::Resume, now, &p), invoke(0, Op::Action, 2));
    }
}
