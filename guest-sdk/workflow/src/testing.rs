//! Test doubles of the host's `steps`, for native unit tests of workflows.
//!
//! - [`FakeHost`] answers steps as a test tells it to, keeps a fake clock, a
//!   seeded random sequence and queued signals, and records every call in a
//!   journal of [`Entry`]s, the way the real host journals them.
//! - [`Replay`] answers from such a journal only, and panics as soon as the
//!   workflow asks for something else than the journal holds at that place:
//!   running a workflow once over a `FakeHost` and again over a `Replay` of
//!   its journal checks that it is deterministic, which the host's replay
//!   after a crash relies on.
//!
//! Both panic where the real host would suspend or refuse (an unanswered
//! step, a signal never sent, a mismatch): in a test that is a failure with a
//! message, which is what it should be. Neither is for use inside a component.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};

use serde::Serialize;
use wasmtx_guest::BranchError;

use crate::{Steps, Target};

/// One journaled host call and its answer: what the host records for each
/// call of `steps`, in order, and what a replay is answered from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// `call`: the step asked for and its outcome (`ok` output or error).
    Call { action: Target, compensate: Option<Target>, payload: Vec<u8>, outcome: Result<Vec<u8>, BranchError> },
    /// `now`: the time it returned, in milliseconds since the Unix epoch.
    Now(u64),
    /// `random`: the number it returned.
    Random(u64),
    /// `sleep`: the milliseconds asked for.
    Sleep(u64),
    /// `await-signal`: the signal's name and the payload it returned.
    Signal { name: String, payload: Vec<u8> },
}

impl Entry {
    /// The request this entry answers, as a person reads it.
    fn request(&self) -> String {
        match self {
            Entry::Call { action, compensate, payload, .. } => describe_call(action, compensate.as_ref(), payload),
            Entry::Now(_) => "now()".to_owned(),
            Entry::Random(_) => "random()".to_owned(),
            Entry::Sleep(millis) => format!("sleep({millis})"),
            Entry::Signal { name, .. } => format!("await-signal({name:?})"),
        }
    }
}

fn describe_call(action: &Target, compensate: Option<&Target>, payload: &[u8]) -> String {
    let compensate = compensate.map_or_else(|| "none".to_owned(), Target::to_string);
    format!("call({action}, compensate {compensate}, payload {})", String::from_utf8_lossy(payload))
}

type Answer = Box<dyn FnMut(&[u8]) -> Result<Vec<u8>, BranchError>>;

/// A stand-in for the host that a test scripts: which steps answer what,
/// the clock, random numbers and signals. It journals every call.
///
/// ```
/// use serde_json::json;
/// use wasmtx_guest::BranchError;
/// use wasmtx_workflow::testing::FakeHost;
/// use wasmtx_workflow::{Target, Workflow};
///
/// let host = FakeHost::new()
///     .answer("bank", "trans-out", Ok(json!(null)))
///     .answer("bank", "trans-in", Err(BranchError::failure("account carol does not exist")));
/// let wf = Workflow::new("bank", &host);
/// let t = json!({"from": "alice", "to": "carol", "amount": 30});
/// wf.step("trans-out").compensate_with("trans-out-revert").call::<()>(&t).unwrap();
/// assert!(wf.step("trans-in").compensate_with("trans-in-revert").call::<()>(&t).is_err());
/// // Were the workflow to fail now, the host would undo the one completed step.
/// assert_eq!(host.compensations(), [(Target::new("bank", "trans-out-revert"), t.to_string().into_bytes())]);
/// ```
pub struct FakeHost {
    answers: RefCell<HashMap<Target, Answer>>,
    signals: RefCell<VecDeque<(String, Vec<u8>)>>,
    now: Cell<u64>,
    random: Cell<u64>,
    journal: RefCell<Vec<Entry>>,
}

impl Default for FakeHost {
    fn default() -> Self {
        FakeHost::new()
    }
}

impl FakeHost {
    /// No step answers yet; the clock reads 0 (the Unix epoch); random
    /// numbers come from seed 0; no signal is waiting.
    pub fn new() -> Self {
        FakeHost {
            answers: RefCell::new(HashMap::new()),
            signals: RefCell::new(VecDeque::new()),
            now: Cell::new(0),
            random: Cell::new(0),
            journal: RefCell::new(Vec::new()),
        }
    }

    /// Every call of `module/function` answers `outcome`: `Ok` with the
    /// output (encoded as JSON) or the branch's error. Replaces an earlier
    /// answer for the same function.
    pub fn answer(self, module: &str, function: &str, outcome: Result<serde_json::Value, BranchError>) -> Self {
        let outcome = outcome.map(|value| value.to_string().into_bytes());
        self.answer_with(module, function, move |_| outcome.clone())
    }

    /// Every call of `module/function` answers what `answer` returns for its
    /// payload: for outputs that depend on the input, or change from call to
    /// call.
    pub fn answer_with(
        self,
        module: &str,
        function: &str,
        answer: impl FnMut(&[u8]) -> Result<Vec<u8>, BranchError> + 'static,
    ) -> Self {
        self.answers.borrow_mut().insert(Target::new(module, function), Box::new(answer));
        self
    }

    /// The clock starts at `millis` since the Unix epoch; each `sleep` moves
    /// it on by the time slept.
    pub fn at(self, millis: u64) -> Self {
        self.now.set(millis);
        self
    }

    /// Random numbers come from `seed`: the same seed, the same numbers.
    pub fn random_seed(self, seed: u64) -> Self {
        self.random.set(seed);
        self
    }

    /// Queues a signal: the next `await_signal(name)` gets `payload` as JSON.
    pub fn signal(self, name: &str, payload: impl Serialize) -> Self {
        let payload = serde_json::to_vec(&payload).expect("a signal payload for FakeHost encodes as JSON");
        self.signals.borrow_mut().push_back((name.to_owned(), payload));
        self
    }

    /// Every call the workflow made, in order, with its answer.
    pub fn journal(&self) -> Vec<Entry> {
        self.journal.borrow().clone()
    }

    /// The functions the workflow called as steps, in order.
    pub fn calls(&self) -> Vec<Target> {
        let journal = self.journal.borrow();
        let actions = journal.iter().filter_map(|entry| match entry {
            Entry::Call { action, .. } => Some(action.clone()),
            _ => None,
        });
        actions.collect()
    }

    /// What the host would run if the workflow failed now: the compensation
    /// of every completed step (outcome `ok`) that has one, with that step's
    /// payload, the last completed first.
    pub fn compensations(&self) -> Vec<(Target, Vec<u8>)> {
        let journal = self.journal.borrow();
        let completed = journal.iter().rev().filter_map(|entry| match entry {
            Entry::Call { compensate: Some(compensate), payload, outcome: Ok(_), .. } => {
                Some((compensate.clone(), payload.clone()))
            }
            _ => None,
        });
        completed.collect()
    }

    fn record(&self, entry: Entry) {
        self.journal.borrow_mut().push(entry);
    }
}

impl Steps for FakeHost {
    fn call(&self, action: &Target, compensate: Option<&Target>, payload: &[u8]) -> Result<Vec<u8>, BranchError> {
        let outcome = match self.answers.borrow_mut().get_mut(action) {
            Some(answer) => answer(payload),
            None => panic!(
                "FakeHost has no answer for {}: give one with FakeHost::answer",
                describe_call(action, compensate, payload)
            ),
        };
        self.record(Entry::Call {
            action: action.clone(),
            compensate: compensate.cloned(),
            payload: payload.to_vec(),
            outcome: outcome.clone(),
        });
        outcome
    }

    fn now(&self) -> u64 {
        let now = self.now.get();
        self.record(Entry::Now(now));
        now
    }

    fn random(&self) -> u64 {
        // SplitMix64: a full-period sequence from any seed, in four lines.
        let state = self.random.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        self.random.set(state);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        let number = z ^ (z >> 31);
        self.record(Entry::Random(number));
        number
    }

    fn sleep(&self, millis: u64) {
        self.now.set(self.now.get().saturating_add(millis));
        self.record(Entry::Sleep(millis));
    }

    fn await_signal(&self, name: &str) -> Vec<u8> {
        let mut signals = self.signals.borrow_mut();
        let Some(index) = signals.iter().position(|(n, _)| n == name) else {
            panic!("the workflow waits for signal {name:?}, which the test never sent: queue it with FakeHost::signal")
        };
        let (name, payload) = signals.remove(index).expect("the index was just found");
        drop(signals);
        self.record(Entry::Signal { name, payload: payload.clone() });
        payload
    }
}

/// The host's replay, as a test double: answers every call from a journal,
/// in order, and runs nothing.
///
/// Each call must be the one the journal holds at that place (same kind,
/// same targets and payload, same sleep, same signal name); anything else
/// panics with "non-deterministic workflow", as the real host traps. Asking
/// for more than the journal holds panics too.
///
/// ```
/// use serde_json::json;
/// use wasmtx_workflow::testing::{FakeHost, Replay};
/// use wasmtx_workflow::Workflow;
///
/// fn greet(wf: &Workflow) -> String {
///     let n = wf.random() % 3;
///     wf.step("greet").call(&json!({ "n": n })).unwrap()
/// }
///
/// let host = FakeHost::new().answer("m", "greet", Ok(json!("hello")));
/// let first = greet(&Workflow::new("m", &host));
/// let replay = Replay::new(host.journal());
/// assert_eq!(greet(&Workflow::new("m", &replay)), first);
/// assert_eq!(replay.remaining(), 0);
/// ```
pub struct Replay {
    journal: Vec<Entry>,
    next: Cell<usize>,
}

impl Replay {
    pub fn new(journal: Vec<Entry>) -> Self {
        Replay { journal, next: Cell::new(0) }
    }

    /// How many entries the workflow has not asked for (yet).
    pub fn remaining(&self) -> usize {
        self.journal.len() - self.next.get()
    }

    /// The next entry, which must answer `request`: `answer` reads it, or
    /// returns `None` if it is of another kind or for another request.
    fn next<T>(&self, request: impl FnOnce() -> String, answer: impl FnOnce(&Entry) -> Option<T>) -> T {
        let index = self.next.get();
        let Some(entry) = self.journal.get(index) else {
            panic!(
                "the workflow asked for {} as call {}, past the end of the journal ({} entries)",
                request(),
                index + 1,
                self.journal.len()
            )
        };
        match answer(entry) {
            Some(value) => {
                self.next.set(index + 1);
                value
            }
            None => panic!(
                "non-deterministic workflow: call {} is {}, the journal holds {}",
                index + 1,
                request(),
                entry.request()
            ),
        }
    }
}

impl Steps for Replay {
    fn call(&self, action: &Target, compensate: Option<&Target>, payload: &[u8]) -> Result<Vec<u8>, BranchError> {
        self.next(
            || describe_call(action, compensate, payload),
            |entry| match entry {
                Entry::Call { action: a, compensate: c, payload: p, outcome }
                    if a == action && c.as_ref() == compensate && p == payload =>
                {
                    Some(outcome.clone())
                }
                _ => None,
            },
        )
    }

    fn now(&self) -> u64 {
        self.next(|| "now()".to_owned(), |entry| if let Entry::Now(t) = entry { Some(*t) } else { None })
    }

    fn random(&self) -> u64 {
        self.next(|| "random()".to_owned(), |entry| if let Entry::Random(n) = entry { Some(*n) } else { None })
    }

    fn sleep(&self, millis: u64) {
        self.next(|| format!("sleep({millis})"), |entry| (*entry == Entry::Sleep(millis)).then_some(()))
    }

    fn await_signal(&self, name: &str) -> Vec<u8> {
        self.next(
            || format!("await-signal({name:?})"),
            |entry| match entry {
                Entry::Signal { name: n, payload } if n == name => Some(payload.clone()),
                _ => None,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::{StepError, Workflow};

    /// A workflow that uses every kind of call.
    fn everything(wf: &Workflow) -> Result<String, StepError> {
        let started = wf.now_millis();
        let id = wf.random();
        wf.step("reserve").compensate_with("release").call::<()>(&json!({ "id": id }))?;
        wf.sleep(Duration::from_millis(500));
        let approval: String = wf.await_signal("approval")?;
        let charged: i64 = wf.step("charge").on_module("payments").call(&json!({ "id": id }))?;
        Ok(format!("{approval} {charged} after {}ms", wf.now_millis() - started))
    }

    fn host() -> FakeHost {
        FakeHost::new()
            .at(1000)
            .random_seed(42)
            .answer("shop", "reserve", Ok(json!(null)))
            .answer("payments", "charge", Ok(json!(25)))
            .signal("approval", "yes")
    }

    #[test]
    fn a_replay_of_the_journal_gives_the_same_answers_and_runs_nothing() {
        let host = host();
        let first = everything(&Workflow::new("shop", &host));
        assert_eq!(first, Ok("yes 25 after 500ms".to_owned()));
        assert_eq!(host.journal().len(), 7);
        let replay = Replay::new(host.journal());
        assert_eq!(everything(&Workflow::new("shop", &replay)), first);
        assert_eq!(replay.remaining(), 0);
    }

    #[test]
    #[should_panic(expected = "non-deterministic workflow: call 3 is call(shop/reserve, compensate shop/release, \
                               payload {\"id\":1}), the journal holds call(shop/reserve, compensate shop/release, \
                               payload {\"id\":")]
    fn a_replay_that_sends_another_payload_is_refused() {
        let host = host();
        everything(&Workflow::new("shop", &host)).unwrap();
        let mut journal = host.journal();
        // The number drawn on the first run was something else than 1.
        journal[1] = Entry::Random(1);
        everything(&Workflow::new("shop", &Replay::new(journal))).unwrap();
    }

    #[test]
    #[should_panic(expected = "non-deterministic workflow: call 1 is random(), the journal holds now()")]
    fn a_replay_that_asks_in_another_order_is_refused() {
        let host = host();
        everything(&Workflow::new("shop", &host)).unwrap();
        Replay::new(host.journal()).random();
    }

    #[test]
    #[should_panic(expected = "the workflow asked for now() as call 1, past the end of the journal (0 entries)")]
    fn a_replay_past_the_journal_is_refused() {
        Replay::new(Vec::new()).now();
    }

    #[test]
    fn only_completed_steps_are_compensated_last_first() {
        let host = FakeHost::new().answer("bank", "a", Ok(json!(null))).answer("bank", "b", Ok(json!(null))).answer(
            "bank",
            "c",
            Err(BranchError::failure("no")),
        );
        let wf = Workflow::new("bank", &host);
        wf.step("a").compensate_with("undo-a").call::<()>(&1).unwrap();
        wf.step("b").call::<()>(&2).unwrap();
        wf.step("a").compensate_on("ledger", "undo-a-again").call::<()>(&3).unwrap();
        wf.step("c").compensate_with("undo-c").call::<()>(&4).unwrap_err();
        assert_eq!(
            host.compensations(),
            [(Target::new("ledger", "undo-a-again"), b"3".to_vec()), (Target::new("bank", "undo-a"), b"1".to_vec())]
        );
        let calls: Vec<String> = host.calls().iter().map(Target::to_string).collect();
        assert_eq!(calls, ["bank/a", "bank/b", "bank/a", "bank/c"]);
    }

    #[test]
    #[should_panic(expected = "FakeHost has no answer for call(bank/trans-out, compensate none, payload 7)")]
    fn an_unanswered_step_is_a_test_error() {
        let host = FakeHost::new();
        Workflow::new("bank", &host).step("trans-out").call::<()>(&7).unwrap();
    }

    #[test]
    #[should_panic(expected = "the workflow waits for signal \"approval\", which the test never sent")]
    fn a_signal_never_sent_is_a_test_error() {
        let host = FakeHost::new().signal("other", 1);
        let _ = Workflow::new("bank", &host).await_signal::<i64>("approval");
    }

    #[test]
    fn answers_may_depend_on_the_payload_and_change_between_calls() {
        let mut calls = 0;
        let host = FakeHost::new().answer_with("bank", "flaky", move |payload| {
            calls += 1;
            if calls == 1 { Err(BranchError::retry("locked")) } else { Ok(payload.to_vec()) }
        });
        let wf = Workflow::new("bank", &host);
        assert!(wf.step("flaky").call::<i64>(&5).unwrap_err().is_retry());
        assert_eq!(wf.step("flaky").call::<i64>(&5), Ok(5));
    }
}
