//! [`StepError`]: why a step (or a signal) gave the workflow no usable answer,
//! shaped by what the workflow does next: give up (`?`, and the host
//! compensates), or handle a refusal and carry on another way.

use std::fmt;

use wasmtx_guest::BranchError;

/// Why a step did not give the workflow the value it asked for.
///
/// Displayed, it names the step (`bank/trans-out failed: insufficient funds in
/// alice`), so `?` in `run` gives the transaction a message that says where it
/// failed. Every variant is deterministic: a replay of the same journal meets
/// the same error at the same place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StepError {
    /// The branch function refused (`failure`): a business answer. The step
    /// did not complete, so it will not be compensated.
    Failure { step: String, message: String },
    /// The branch function kept asking to be retried (`retry`) until the host
    /// gave up. Its local transaction was rolled back each time: the step did
    /// not complete and will not be compensated.
    Retry { step: String, message: String },
    /// The step's input could not be encoded, or its output (or a signal's
    /// payload) is not the JSON the workflow asked for. An output that does
    /// not decode belongs to a step that *did* complete: failing the workflow
    /// compensates it.
    Payload { step: String, message: String },
}

impl StepError {
    /// What failed: `bank/trans-out`, or `signal "approval"`.
    pub fn step(&self) -> &str {
        match self {
            StepError::Failure { step, .. } | StepError::Retry { step, .. } | StepError::Payload { step, .. } => step,
        }
    }

    /// The message, without the step's name.
    pub fn message(&self) -> &str {
        match self {
            StepError::Failure { message, .. }
            | StepError::Retry { message, .. }
            | StepError::Payload { message, .. } => message,
        }
    }

    /// `true` for [`StepError::Failure`]: the branch function refused.
    pub fn is_failure(&self) -> bool {
        matches!(self, StepError::Failure { .. })
    }

    /// `true` for [`StepError::Retry`]: the host gave up retrying.
    pub fn is_retry(&self) -> bool {
        matches!(self, StepError::Retry { .. })
    }

    /// The step's answer, named after the step.
    pub(crate) fn from_branch(step: impl fmt::Display, e: BranchError) -> Self {
        let step = step.to_string();
        match e {
            BranchError::Failure(message) => StepError::Failure { step, message },
            BranchError::Retry(message) => StepError::Retry { step, message },
        }
    }

    pub(crate) fn payload(step: impl fmt::Display, message: String) -> Self {
        StepError::Payload { step: step.to_string(), message }
    }
}

impl fmt::Display for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StepError::Failure { step, message } => write!(f, "{step} failed: {message}"),
            StepError::Retry { step, message } => {
                write!(f, "{step} still asked to be retried when the host gave up: {message}")
            }
            StepError::Payload { step, message } => write!(f, "{step}: {message}"),
        }
    }
}

impl std::error::Error for StepError {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Target;

    #[test]
    fn branch_answers_become_failure_or_retry_named_after_the_step() {
        let target = Target::new("bank", "trans-out");
        let e = StepError::from_branch(&target, BranchError::failure("insufficient funds in alice"));
        assert!(e.is_failure() && !e.is_retry());
        assert_eq!(e.to_string(), "bank/trans-out failed: insufficient funds in alice");
        assert_eq!((e.step(), e.message()), ("bank/trans-out", "insufficient funds in alice"));

        let e = StepError::from_branch(&target, BranchError::retry("locked"));
        assert!(e.is_retry() && !e.is_failure());
        assert_eq!(e.to_string(), "bank/trans-out still asked to be retried when the host gave up: locked");
    }

    #[test]
    fn payload_errors_name_the_step() {
        let e = StepError::payload("signal \"approval\"", "invalid payload: expected a boolean".into());
        assert_eq!(e.to_string(), "signal \"approval\": invalid payload: expected a boolean");
        assert!(!e.is_failure() && !e.is_retry());
    }
}
