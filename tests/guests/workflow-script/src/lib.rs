//! A purpose-built test workflow (WIT world `workflow`) whose behaviour is
//! spelled out by its input, so that end-to-end tests of the host's workflow
//! runtime (journal, replay, compensation, timers, signals) need no other
//! workflow module. Built by `cargo xtask examples` to
//! `target/examples/workflow-script-rust.wasm`.
//!
//! `run` takes `{"module": "bank", "script": [op, ...]}`, runs the ops in
//! order and returns a JSON array with one result per op:
//!
//! | op | does | result |
//! |---|---|---|
//! | `{"call": "fn", "module"?: "m", "compensate"?: "fn2", "payload"?: any, "tolerate"?: bool}` | the step `m/fn` (`m` defaults to `module`), compensated by `m/fn2`, with `payload` (default `null`) as JSON | its output as JSON, or as a string if it is not JSON (empty output reads as `null`, as in the SDK) |
//! | `{"sleep": ms}` | a durable timer | `null` |
//! | `{"signal": "name"}` | waits for the next signal `name` | its payload as JSON, or as a string if it is not JSON |
//! | `{"now": null}` | the journaled clock | milliseconds since the Unix epoch |
//! | `{"random": null}` | a journaled random number | the number |
//! | `{"fail": "message"}` | fails the workflow with `message` | — |
//! | `{"log": "text"}` | a log line at `info` level | `null` |
//!
//! A step that refuses (`failure`) or that the host gave up retrying
//! (`retry`) fails the workflow with `step {i} ({fn}) failed: {message}`
//! (`i` the op's 1-based position), unless the op says `"tolerate": true`:
//! then its result is `{"failure": message}` or `{"retry": message}` and the
//! script goes on. When the workflow fails, the host compensates the
//! completed steps.
//!
//! The whole script is parsed before the first op runs: an unknown or
//! malformed op (`script op {i}: ...`) or input fails the workflow without
//! running a step. Nothing here traps on bad input.
//!
//! # Layout
//!
//! - [`op`]: an op, parsed from its JSON.
//! - [`execute`]: runs a script over any [`Steps`], the host's or a test
//!   double; the export runs it over [`Host`].

mod op;

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value as Json, json};
use wasmtx_workflow::{Host, Steps, Workflow, log};

use crate::op::{Call, Op};

/// The workflow's input.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    /// The module steps run in unless they name one.
    module: String,
    /// The ops, each an object parsed by [`Op::parse`].
    script: Vec<Json>,
}

/// The component's `run`: the script over the host's steps.
///
/// `execute` is given the steps themselves rather than this [`Workflow`]
/// because `{"signal": ..}` must read payloads that are not JSON, which
/// `Workflow::await_signal` cannot (it decodes JSON and discards the bytes
/// on failure); the SDK hands `run` no other way to its steps.
fn run_on_host(_: &Workflow, input: Input) -> Result<Vec<Json>, String> {
    execute(&Host, input)
}

// Every step names the module the input gives, so this default is never used.
wasmtx_workflow::export_workflow!(run_on_host, default_module = "workflow-script");

/// Runs `input`'s script over `steps` and returns one result per op, or
/// the message the workflow fails with.
fn execute(steps: &dyn Steps, input: Input) -> Result<Vec<Json>, String> {
    let ops = input.script.iter().enumerate().map(|(i, op)| Op::parse(i + 1, op)).collect::<Result<Vec<_>, _>>()?;
    let wf = Workflow::new(input.module, steps);
    let mut results = Vec::with_capacity(ops.len());
    for (i, op) in ops.into_iter().enumerate() {
        let result = match op {
            Op::Call(call) => step(&wf, i + 1, call)?,
            Op::Sleep(millis) => {
                wf.sleep(Duration::from_millis(millis));
                Json::Null
            }
            Op::Signal(name) => json_or_text(&steps.await_signal(&name)),
            Op::Now => wf.now_millis().into(),
            Op::Random => wf.random().into(),
            Op::Fail(message) => return Err(message),
            Op::Log(text) => {
                // A replay may write this line again.
                log::info(&text);
                Json::Null
            }
        };
        results.push(result);
    }
    Ok(results)
}

/// Runs the call op at 1-based position `n`: its output, its tolerated
/// refusal, or the workflow's error.
fn step(wf: &Workflow, n: usize, call: Call) -> Result<Json, String> {
    let mut step = wf.step(call.function.as_str());
    if let Some(module) = call.module {
        step = step.on_module(module);
    }
    if let Some(compensate) = call.compensate {
        step = step.compensate_with(compensate);
    }
    // Encoded the way `Step::call` encodes; raw so that an output that is
    // not JSON is a result, not a payload error.
    let payload = serde_json::to_vec(&call.payload)
        .map_err(|e| format!("step {n} ({}): cannot encode the payload: {e}", call.function))?;
    match step.call_raw(&payload) {
        Ok(output) => Ok(json_or_text(&output)),
        Err(e) if call.tolerate && e.is_failure() => Ok(json!({ "failure": e.message() })),
        Err(e) if call.tolerate && e.is_retry() => Ok(json!({ "retry": e.message() })),
        Err(e) => Err(format!("step {n} ({}) failed: {}", call.function, e.message())),
    }
}

/// `bytes` as JSON if they are JSON (empty or blank reads as `null`, as
/// branch payloads do), else as a string (invalid UTF-8 replaced).
fn json_or_text(bytes: &[u8]) -> Json {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Json::Null;
    }
    serde_json::from_slice(bytes).unwrap_or_else(|_| Json::String(String::from_utf8_lossy(bytes).into_owned()))
}

// The host is a test double here; the real journal, replay and compensation
// are the host's to test end to end with this guest.
#[cfg(test)]
mod tests {
    use wasmtx_workflow::testing::{Entry, FakeHost, Replay};
    use wasmtx_workflow::{BranchError, Target};

    use super::*;

    /// Runs `input` the way the component's `run` does (bytes in, JSON
    /// out), over `steps`.
    fn run(steps: &dyn Steps, input: Json) -> Result<Json, String> {
        let input = input.to_string().into_bytes();
        let output = wasmtx_workflow::run("unused", steps, |_: &Workflow, input| execute(steps, input), &input)?;
        Ok(serde_json::from_slice(&output).expect("the output is JSON"))
    }

    fn bank() -> FakeHost {
        FakeHost::new()
            .answer("bank", "debit", Ok(json!({"balance": 70})))
            .answer("bank", "credit", Err(BranchError::failure("account carol does not exist")))
            .answer("bank", "flaky", Err(BranchError::retry("locked")))
    }

    #[test]
    fn a_second_step_that_refuses_fails_the_workflow_and_leaves_the_first_to_undo() {
        let host = bank();
        let script = json!({"module": "bank", "script": [
            {"call": "debit", "compensate": "debit-revert", "payload": {"amount": 30}},
            {"call": "credit", "compensate": "credit-revert", "payload": {"amount": 30}},
            {"log": "never reached"},
        ]});
        assert_eq!(run(&host, script), Err("step 2 (credit) failed: account carol does not exist".to_owned()));
        assert_eq!(host.calls(), [Target::new("bank", "debit"), Target::new("bank", "credit")]);
        assert_eq!(host.compensations(), [(Target::new("bank", "debit-revert"), br#"{"amount":30}"#.to_vec())]);
    }

    #[test]
    fn a_retry_the_host_gave_up_on_fails_the_workflow_too() {
        let script = json!({"module": "bank", "script": [{"call": "flaky"}]});
        assert_eq!(run(&bank(), script), Err("step 1 (flaky) failed: locked".to_owned()));
    }

    #[test]
    fn tolerated_refusals_are_results_and_the_script_goes_on() {
        let host = bank();
        let script = json!({"module": "bank", "script": [
            {"call": "credit", "compensate": "credit-revert", "tolerate": true},
            {"call": "flaky", "tolerate": true},
            {"call": "debit", "tolerate": true},
        ]});
        let results = json!([{"failure": "account carol does not exist"}, {"retry": "locked"}, {"balance": 70}]);
        assert_eq!(run(&host, script), Ok(results));
        assert_eq!(host.compensations(), [], "refused steps did not complete; debit has no compensation");
    }

    #[test]
    fn outputs_are_json_or_text_and_payloads_default_to_null() {
        let host = FakeHost::new()
            .answer_with("bank", "echo", |payload| Ok(payload.to_vec()))
            .answer_with("bank", "text", |_| Ok(b"plain words".to_vec()))
            .answer_with("bank", "empty", |_| Ok(Vec::new()))
            .answer_with("ledger", "post", |_| Ok(b"7".to_vec()));
        let script = json!({"module": "bank", "script": [
            {"call": "echo", "payload": {"n": [1, 2]}},
            {"call": "echo"},
            {"call": "text"},
            {"call": "empty"},
            {"call": "post", "module": "ledger", "compensate": "void", "payload": "x"},
        ]});
        assert_eq!(run(&host, script), Ok(json!([{"n": [1, 2]}, null, "plain words", null, 7])));
        let payloads: Vec<Vec<u8>> = host
            .journal()
            .into_iter()
            .map(|entry| match entry {
                Entry::Call { payload, .. } => payload,
                other => panic!("not a call: {other:?}"),
            })
            .collect();
        assert_eq!(payloads[..2], [br#"{"n":[1,2]}"#.to_vec(), b"null".to_vec()]);
        assert_eq!(
            host.compensations(),
            [(Target::new("ledger", "void"), br#""x""#.to_vec())],
            "a step on another module is compensated in that module"
        );
    }

    #[test]
    fn signals_are_read_as_json_or_text_in_order() {
        let host = FakeHost::new().signal("approval", json!({"by": "carol"})).signal("approval", "yes");
        let script = json!({"module": "bank", "script": [{"signal": "approval"}, {"signal": "approval"}]});
        assert_eq!(run(&host, script), Ok(json!([{"by": "carol"}, "yes"])));

        // FakeHost encodes every signal as JSON; a journal can hold any bytes.
        let replay = Replay::new(vec![
            Entry::Signal { name: "go".into(), payload: b"not json".to_vec() },
            Entry::Signal { name: "go".into(), payload: Vec::new() },
        ]);
        let script = json!({"module": "bank", "script": [{"signal": "go"}, {"signal": "go"}]});
        assert_eq!(run(&replay, script), Ok(json!(["not json", null])));
    }

    #[test]
    fn sleep_now_random_and_log_go_through_the_host() {
        let host = FakeHost::new().at(1_000).random_seed(3);
        let script = json!({"module": "bank", "script": [
            {"now": null}, {"sleep": 1500}, {"now": null}, {"random": null}, {"log": "hello"},
        ]});
        let results = run(&host, script).unwrap();
        let journal = host.journal();
        let Entry::Random(number) = journal[3] else { panic!("not a random number: {:?}", journal[3]) };
        assert_eq!(results, json!([1_000, null, 2_500, number, null]));
        assert_eq!(journal, [Entry::Now(1_000), Entry::Sleep(1500), Entry::Now(2_500), Entry::Random(number)]);
    }

    #[test]
    fn fail_ends_the_workflow_with_its_message_after_the_steps_before_it() {
        let host = bank();
        let script = json!({"module": "bank", "script": [
            {"call": "debit", "compensate": "debit-revert"},
            {"fail": "changed my mind"},
            {"call": "debit"},
        ]});
        assert_eq!(run(&host, script), Err("changed my mind".to_owned()));
        assert_eq!(host.calls(), [Target::new("bank", "debit")]);
        assert_eq!(host.compensations(), [(Target::new("bank", "debit-revert"), b"null".to_vec())]);
    }

    #[test]
    fn an_unknown_op_fails_the_workflow_before_any_step_runs() {
        let host = bank();
        let script = json!({"module": "bank", "script": [{"call": "debit"}, {"jump": 3}]});
        let e = run(&host, script).unwrap_err();
        assert!(e.starts_with("script op 2: unknown op with keys [\"jump\"]; an op is one of call, "), "{e}");
        assert!(host.journal().is_empty());
    }

    #[test]
    fn malformed_input_is_an_error_not_a_trap() {
        let cases = [
            (json!({"script": []}), "invalid input: missing field `module`"),
            (json!({"module": "bank"}), "invalid input: missing field `script`"),
            (
                json!({"module": "bank", "script": {"call": "debit"}}),
                "invalid input: invalid type: map, expected a sequence",
            ),
            (json!({"module": "bank", "script": [], "extra": 1}), "invalid input: unknown field `extra`"),
            (json!(null), "invalid input: invalid type: null, expected struct Input"),
        ];
        for (input, message) in cases {
            let e = run(&FakeHost::new(), input.clone()).unwrap_err();
            assert!(e.starts_with(message), "{input}: {e}");
        }
        assert_eq!(run(&FakeHost::new(), json!({"module": "bank", "script": []})), Ok(json!([])));
    }

    #[test]
    fn a_replay_of_the_journal_gives_the_same_results() {
        let host = bank().at(5).signal("go", json!([1])).answer_with("bank", "echo", |payload| Ok(payload.to_vec()));
        let script = json!({"module": "bank", "script": [
            {"random": null},
            {"call": "echo", "compensate": "echo", "payload": {"k": "v"}},
            {"call": "credit", "tolerate": true},
            {"sleep": 10},
            {"signal": "go"},
            {"now": null},
            {"call": "credit"},
        ]});
        let first = run(&host, script.clone());
        assert_eq!(first, Err("step 7 (credit) failed: account carol does not exist".to_owned()));
        let replay = Replay::new(host.journal());
        assert_eq!(run(&replay, script), first);
        assert_eq!(replay.remaining(), 0);
    }
}
