//! [`Workflow`] and its [`Step`] builder: typed, JSON-encoded calls over
//! [`Steps`].
//!
//! This is where payloads are encoded and answers decoded, so it is where the
//! determinism that replay needs is kept: encoding a value twice gives the
//! same bytes (serde_json writes struct fields in declaration order), and
//! nothing here reads a clock, a random source or the environment.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{StepError, Steps, Target};

/// What a workflow's `run` gets: the way to do anything durable.
///
/// Steps name a function; the module is the workflow's default module (set by
/// [`export_workflow!`](crate::export_workflow)) unless the step says
/// [`Step::on_module`].
///
/// ```
/// use wasmtx_workflow::testing::FakeHost;
/// use wasmtx_workflow::{StepError, Workflow};
///
/// let host = FakeHost::new().answer("bank", "balance", Ok(serde_json::json!({"id": "alice", "balance": 70})));
/// let wf = Workflow::new("bank", &host);
/// let balance: serde_json::Value = wf.step("balance").call(&serde_json::json!({"id": "alice"}))?;
/// assert_eq!(balance["balance"], 70);
/// # Ok::<(), StepError>(())
/// ```
pub struct Workflow<'h> {
    module: String,
    steps: &'h dyn Steps,
}

impl<'h> Workflow<'h> {
    /// A workflow whose steps run in `module` by default, over `steps` (the
    /// host's [`Host`](crate::Host), or a test double).
    pub fn new(module: impl Into<String>, steps: &'h dyn Steps) -> Self {
        Workflow { module: module.into(), steps }
    }

    /// The module a step runs in unless it names another.
    pub fn module(&self) -> &str {
        &self.module
    }

    /// The same workflow with another default module, for a run of steps in
    /// one other module.
    pub fn with_module(&self, module: impl Into<String>) -> Workflow<'h> {
        Workflow { module: module.into(), steps: self.steps }
    }

    /// A step that calls `function` (in the default module): set its
    /// compensation or module, then [`Step::call`] it.
    pub fn step(&self, function: impl Into<String>) -> Step<'h> {
        Step { steps: self.steps, module: self.module.clone(), function: function.into(), compensation: None }
    }

    /// The wall clock, as journaled: on replay, the time this call saw then.
    pub fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.now_millis())
    }

    /// [`Workflow::now`] in milliseconds since the Unix epoch.
    pub fn now_millis(&self) -> u64 {
        self.steps.now()
    }

    /// A random number, as journaled: on replay, the number drawn then.
    pub fn random(&self) -> u64 {
        self.steps.random()
    }

    /// A durable timer: returns once `duration` has passed since this call
    /// was first made, even across a restart of the host. Rounded up to whole
    /// milliseconds.
    pub fn sleep(&self, duration: Duration) {
        self.steps.sleep(millis_rounded_up(duration));
    }

    /// The payload of the next signal called `name`, decoded from JSON (an
    /// empty payload reads as `null`). Waits, durably, until one arrives.
    pub fn await_signal<T: DeserializeOwned>(&self, name: &str) -> Result<T, StepError> {
        let payload = self.steps.await_signal(name);
        decode(&payload)
            .map_err(|e| StepError::payload(format_args!("signal {name:?}"), format!("invalid payload: {e}")))
    }
}

/// How a step is undone, resolved when the step is called (so that
/// [`Step::on_module`] and [`Step::compensate_with`] may come in any order).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Compensation {
    /// A function in the step's own module.
    InModule(String),
    Target(Target),
}

/// One step being built: `wf.step("trans-out").compensate_with("trans-out-revert").call(&t)?`.
///
/// Nothing reaches the host until [`Step::call`] (or [`Step::call_raw`]).
#[must_use = "a step does nothing until it is called with `.call(&input)`"]
pub struct Step<'h> {
    steps: &'h dyn Steps,
    module: String,
    function: String,
    compensation: Option<Compensation>,
}

impl Step<'_> {
    /// Runs the step in `module` instead of the workflow's default module.
    pub fn on_module(mut self, module: impl Into<String>) -> Self {
        self.module = module.into();
        self
    }

    /// If the workflow fails after this step completed, the host runs
    /// `function` of the step's module with the step's payload.
    pub fn compensate_with(mut self, function: impl Into<String>) -> Self {
        self.compensation = Some(Compensation::InModule(function.into()));
        self
    }

    /// Like [`Step::compensate_with`], with a function of another module.
    pub fn compensate_on(mut self, module: impl Into<String>, function: impl Into<String>) -> Self {
        self.compensation = Some(Compensation::Target(Target::new(module, function)));
        self
    }

    /// The function this step runs.
    pub fn action(&self) -> Target {
        Target::new(self.module.clone(), self.function.clone())
    }

    /// The function that undoes it, if any.
    pub fn compensation(&self) -> Option<Target> {
        match &self.compensation {
            None => None,
            Some(Compensation::InModule(function)) => Some(Target::new(self.module.clone(), function.clone())),
            Some(Compensation::Target(target)) => Some(target.clone()),
        }
    }

    /// Runs the step with `input` encoded as JSON and decodes its output
    /// (an empty output reads as `null`, so `()` accepts it).
    ///
    /// When the output is not wanted, say so with its type:
    /// `wf.step("trans-out").call::<()>(&t)?` or `let () = ...?`.
    pub fn call<Out: DeserializeOwned>(self, input: &impl Serialize) -> Result<Out, StepError> {
        let action = self.action();
        let payload = serde_json::to_vec(input)
            .map_err(|e| StepError::payload(&action, format!("cannot encode the input: {e}")))?;
        let output = self.call_raw(&payload)?;
        decode(&output).map_err(|e| StepError::payload(&action, format!("invalid output: {e}")))
    }

    /// Runs the step with `payload` as it is, and returns the output as it is.
    pub fn call_raw(self, payload: &[u8]) -> Result<Vec<u8>, StepError> {
        let action = self.action();
        let compensation = self.compensation();
        self.steps.call(&action, compensation.as_ref(), payload).map_err(|e| StepError::from_branch(&action, e))
    }
}

/// JSON; empty (or blank) means `null`, as for branch payloads.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, serde_json::Error> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) { b"null" } else { bytes };
    serde_json::from_slice(bytes)
}

/// Whole milliseconds, rounded up so that a positive duration never becomes
/// 0; saturates at `u64::MAX`.
fn millis_rounded_up(duration: Duration) -> u64 {
    let millis = duration.as_nanos().div_ceil(1_000_000);
    u64::try_from(millis).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;
    use wasmtx_guest::BranchError;

    use super::*;
    use crate::testing::{Entry, FakeHost};

    #[derive(Serialize)]
    struct Transfer<'a> {
        from: &'a str,
        to: &'a str,
        amount: i64,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Balance {
        id: String,
        balance: i64,
    }

    const T: Transfer<'static> = Transfer { from: "alice", to: "bob", amount: 30 };

    #[test]
    fn a_step_runs_in_the_default_module_and_is_compensated_there() {
        let host = FakeHost::new();
        let wf = Workflow::new("bank", &host);
        let step = wf.step("trans-out").compensate_with("trans-out-revert");
        assert_eq!(step.action(), Target::new("bank", "trans-out"));
        assert_eq!(step.compensation(), Some(Target::new("bank", "trans-out-revert")));
        assert_eq!(wf.step("balance").compensation(), None);
    }

    #[test]
    fn the_compensation_follows_the_module_whatever_the_order() {
        let host = FakeHost::new();
        let wf = Workflow::new("bank", &host);
        let before = wf.step("trans-in").compensate_with("trans-in-revert").on_module("other-bank");
        let after = wf.step("trans-in").on_module("other-bank").compensate_with("trans-in-revert");
        for step in [before, after] {
            assert_eq!(step.action(), Target::new("other-bank", "trans-in"));
            assert_eq!(step.compensation(), Some(Target::new("other-bank", "trans-in-revert")));
        }
        let elsewhere = wf.step("trans-out").compensate_on("ledger", "void");
        assert_eq!(elsewhere.compensation(), Some(Target::new("ledger", "void")));
        assert_eq!(wf.with_module("ledger").step("post").action(), Target::new("ledger", "post"));
        assert_eq!(wf.module(), "bank", "with_module leaves the workflow as it was");
    }

    #[test]
    fn input_is_sent_as_json_with_both_targets_and_output_decoded() {
        let host = FakeHost::new().answer("bank", "balance", Ok(json!({"id": "alice", "balance": 70})));
        let wf = Workflow::new("bank", &host);
        let balance: Balance = wf.step("balance").compensate_with("noop").call(&json!({"id": "alice"})).unwrap();
        assert_eq!(balance, Balance { id: "alice".into(), balance: 70 });
        assert_eq!(
            host.journal(),
            [Entry::Call {
                action: Target::new("bank", "balance"),
                compensate: Some(Target::new("bank", "noop")),
                payload: br#"{"id":"alice"}"#.to_vec(),
                outcome: Ok(br#"{"balance":70,"id":"alice"}"#.to_vec()),
            }]
        );
    }

    #[test]
    fn encoding_the_same_input_twice_gives_the_same_bytes() {
        let host = FakeHost::new().answer("bank", "trans-out", Ok(json!(null)));
        let wf = Workflow::new("bank", &host);
        wf.step("trans-out").call::<()>(&T).unwrap();
        wf.step("trans-out").call::<()>(&T).unwrap();
        let payloads: Vec<Vec<u8>> = host
            .journal()
            .into_iter()
            .map(|e| match e {
                Entry::Call { payload, .. } => payload,
                other => panic!("not a call: {other:?}"),
            })
            .collect();
        assert_eq!(payloads, vec![br#"{"from":"alice","to":"bob","amount":30}"#.to_vec(); 2]);
    }

    #[test]
    fn unit_output_accepts_null_and_empty() {
        let host =
            FakeHost::new().answer("bank", "null", Ok(json!(null))).answer_with("bank", "empty", |_| Ok(Vec::new()));
        let wf = Workflow::new("bank", &host);
        let () = wf.step("null").call(&T).unwrap();
        let () = wf.step("empty").call(&T).unwrap();
        let nothing: Option<i64> = wf.step("empty").call(&T).unwrap();
        assert_eq!(nothing, None);
    }

    #[test]
    fn branch_errors_become_step_errors_naming_the_step() {
        let host = FakeHost::new()
            .answer("bank", "trans-out", Err(BranchError::failure("insufficient funds in alice")))
            .answer("bank", "flaky", Err(BranchError::retry("locked")));
        let wf = Workflow::new("bank", &host);
        assert_eq!(
            wf.step("trans-out").call::<()>(&T),
            Err(StepError::Failure { step: "bank/trans-out".into(), message: "insufficient funds in alice".into() })
        );
        assert_eq!(
            wf.step("flaky").call::<()>(&T),
            Err(StepError::Retry { step: "bank/flaky".into(), message: "locked".into() })
        );
    }

    #[test]
    fn an_output_of_the_wrong_shape_is_a_payload_error_of_that_step() {
        let host = FakeHost::new().answer("bank", "balance", Ok(json!({"id": "alice"})));
        let wf = Workflow::new("bank", &host);
        let e = wf.step("balance").call::<Balance>(&json!({"id": "alice"})).unwrap_err();
        assert!(matches!(e, StepError::Payload { .. }), "{e:?}");
        assert!(e.to_string().starts_with("bank/balance: invalid output: missing field `balance`"), "{e}");
        assert_eq!(host.journal().len(), 1, "the step itself ran and completed");
    }

    #[test]
    fn an_input_that_cannot_be_encoded_never_reaches_the_host() {
        let host = FakeHost::new();
        let wf = Workflow::new("bank", &host);
        // serde_json refuses maps whose keys are not strings.
        let input = std::collections::BTreeMap::from([((1, 2), "pair")]);
        let e = wf.step("trans-out").call::<()>(&input).unwrap_err();
        assert!(e.to_string().starts_with("bank/trans-out: cannot encode the input: "), "{e}");
        assert!(host.journal().is_empty());
    }

    #[test]
    fn raw_calls_pass_bytes_through() {
        let host = FakeHost::new().answer_with("bank", "echo", |payload| Ok(payload.to_vec()));
        let wf = Workflow::new("bank", &host);
        assert_eq!(wf.step("echo").call_raw(b"\x00\xff").unwrap(), b"\x00\xff");
    }

    #[test]
    fn clock_random_and_sleep_go_through_the_host() {
        let host = FakeHost::new().at(1_700_000_000_123).random_seed(7);
        let wf = Workflow::new("bank", &host);
        assert_eq!(wf.now_millis(), 1_700_000_000_123);
        wf.sleep(Duration::from_secs(2));
        assert_eq!(wf.now(), UNIX_EPOCH + Duration::from_millis(1_700_000_002_123), "a fake sleep moves the clock");
        let (a, b) = (wf.random(), wf.random());
        assert_ne!(a, b);
        assert_eq!(
            host.journal(),
            [
                Entry::Now(1_700_000_000_123),
                Entry::Sleep(2000),
                Entry::Now(1_700_000_002_123),
                Entry::Random(a),
                Entry::Random(b),
            ]
        );
        assert_eq!(FakeHost::new().random_seed(7).random(), a, "the fake's numbers depend on the seed only");
    }

    #[test]
    fn sleep_rounds_up_to_whole_milliseconds() {
        assert_eq!(millis_rounded_up(Duration::ZERO), 0);
        assert_eq!(millis_rounded_up(Duration::from_nanos(1)), 1);
        assert_eq!(millis_rounded_up(Duration::from_micros(1500)), 2);
        assert_eq!(millis_rounded_up(Duration::from_millis(2000)), 2000);
        assert_eq!(millis_rounded_up(Duration::MAX), u64::MAX);
    }

    #[test]
    fn signals_are_decoded_in_the_order_they_were_sent() {
        let host = FakeHost::new()
            .signal("approval", json!({"by": "carol"}))
            .signal("other", json!(1))
            .signal("approval", json!({"by": "dave"}));
        let wf = Workflow::new("bank", &host);
        let first: serde_json::Value = wf.await_signal("approval").unwrap();
        let second: serde_json::Value = wf.await_signal("approval").unwrap();
        assert_eq!((first["by"].as_str(), second["by"].as_str()), (Some("carol"), Some("dave")));
        let e = wf.await_signal::<bool>("other").unwrap_err();
        assert_eq!(e.step(), "signal \"other\"");
        assert!(e.to_string().starts_with("signal \"other\": invalid payload: invalid type: integer `1`"), "{e}");
    }
}
