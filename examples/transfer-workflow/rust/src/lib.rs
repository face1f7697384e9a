//! A bank transfer as a durable workflow: the saga of the transfer example,
//! written as code instead of a list of branches.
//!
//! `run` takes `{"from":"alice","to":"bob","amount":30}` and calls two
//! functions of the module uploaded as `bank` (any of the
//! `examples/transfer` modules), each with the same payload:
//!
//! 1. `trans-out`, compensated by `trans-out-revert`;
//! 2. `trans-in`, compensated by `trans-in-revert`.
//!
//! It returns `{"moved":30}`. If `trans-out` refuses (`insufficient funds in
//! alice`), nothing was done and the workflow fails with `bank/trans-out
//! failed: insufficient funds in alice`. If `trans-in` refuses (`account bob
//! does not exist`), the workflow fails and the host runs `trans-out-revert`,
//! which gives `alice` her money back. The amount and the accounts are
//! checked by the bank's functions, not here: one place, one message.
//!
//! There is nothing to keep deterministic beyond the input: no clock, no
//! random number, no branching on anything but step outcomes.

use serde::{Deserialize, Serialize};
use wasmtx_workflow::{StepError, Workflow, log};

/// The workflow's input, and the payload of every step.
#[derive(Debug, Deserialize, Serialize)]
struct Transfer {
    from: String,
    to: String,
    amount: i64,
}

#[derive(Debug, Serialize)]
struct Moved {
    moved: i64,
}

fn transfer(wf: &Workflow, t: Transfer) -> Result<Moved, StepError> {
    wf.step("trans-out").compensate_with("trans-out-revert").call::<()>(&t)?;
    wf.step("trans-in").compensate_with("trans-in-revert").call::<()>(&t)?;
    // A replay after a crash may write this line again.
    log::info!("moved {} from {} to {}", t.amount, t.from, t.to);
    Ok(Moved { moved: t.amount })
}

wasmtx_workflow::export_workflow!(transfer, default_module = "bank");

// The bank is a test double here; the end-to-end behaviour (real steps,
// journal, compensation) is the host's to test.
#[cfg(test)]
mod tests {
    use serde_json::json;
    use wasmtx_workflow::testing::{FakeHost, Replay};
    use wasmtx_workflow::{BranchError, Target};

    use super::*;

    const INPUT: &[u8] = br#"{"from":"alice","to":"bob","amount":30}"#;

    fn run(host: &dyn wasmtx_workflow::Steps, input: &[u8]) -> Result<String, String> {
        wasmtx_workflow::run("bank", host, transfer, input).map(|out| String::from_utf8(out).expect("JSON is UTF-8"))
    }

    fn bank() -> FakeHost {
        FakeHost::new().answer("bank", "trans-out", Ok(json!(null))).answer("bank", "trans-in", Ok(json!(null)))
    }

    fn bank_targets(functions: &[&str]) -> Vec<Target> {
        functions.iter().map(|f| Target::new("bank", *f)).collect()
    }

    #[test]
    fn moves_the_amount_out_then_in_with_their_compensations() {
        let host = bank();
        assert_eq!(run(&host, INPUT), Ok(r#"{"moved":30}"#.to_owned()));
        assert_eq!(host.calls(), bank_targets(&["trans-out", "trans-in"]));
        let undo: Vec<Target> = host.compensations().into_iter().map(|(target, _)| target).collect();
        assert_eq!(undo, bank_targets(&["trans-in-revert", "trans-out-revert"]), "what a later failure would undo");
        for (_, payload) in host.compensations() {
            assert_eq!(payload, INPUT, "every step gets the transfer as it came in");
        }
    }

    #[test]
    fn a_refused_credit_fails_the_workflow_and_leaves_only_the_debit_to_undo() {
        let host = bank().answer("bank", "trans-in", Err(BranchError::failure("account bob does not exist")));
        assert_eq!(run(&host, INPUT), Err("bank/trans-in failed: account bob does not exist".to_owned()));
        assert_eq!(host.compensations(), [(Target::new("bank", "trans-out-revert"), INPUT.to_vec())]);
    }

    #[test]
    fn a_refused_debit_fails_the_workflow_before_the_credit() {
        let host = bank().answer("bank", "trans-out", Err(BranchError::failure("insufficient funds in alice")));
        assert_eq!(run(&host, INPUT), Err("bank/trans-out failed: insufficient funds in alice".to_owned()));
        assert_eq!(host.calls(), bank_targets(&["trans-out"]));
        assert!(host.compensations().is_empty());
    }

    #[test]
    fn a_replay_of_the_journal_makes_the_same_calls_and_answers_the_same() {
        for host in [bank(), bank().answer("bank", "trans-in", Err(BranchError::failure("account bob does not exist")))]
        {
            let first = run(&host, INPUT);
            let replay = Replay::new(host.journal());
            assert_eq!(run(&replay, INPUT), first);
            assert_eq!(replay.remaining(), 0);
        }
    }

    #[test]
    fn an_input_that_is_not_a_transfer_runs_no_step() {
        let host = FakeHost::new();
        let e = run(&host, br#"{"from":"alice","to":"bob"}"#).unwrap_err();
        assert!(e.starts_with("invalid input: missing field `amount`"), "{e}");
        assert!(host.journal().is_empty());
    }
}
