//! The driver, with an injected clock and a scripted executor, on a real
//! SQLite store: what it writes and when (co-located or not), how it backs
//! off on the clock it is given, and that a zombie owner stops when fenced.

use std::collections::VecDeque;
use std::sync::Mutex;

use super::*;
use crate::model::{OpStatus, Status, TransactionState};
use crate::test_db::fresh_sqlite;

const T0: Millis = Millis(1_700_000_000_000);

/// Answers each call with the next scripted outcome (then `Succeeded`) and
/// records the calls. When `colocated`, it plays a database that shares the
/// store: a succeeded op's progress is written to the store as its commit
/// would write it.
struct Script {
    outcomes: Mutex<VecDeque<Outcome>>,
    calls: Mutex<Vec<(String, Op, u32)>>,
    colocated: bool,
    store: Mutex<Option<Store>>,
    /// Progress writes that rode in an op's commit.
    carried: Mutex<Vec<Progress>>,
    /// The transaction's stored status as each op began.
    seen: Mutex<Vec<Option<Status>>>,
}

impl Script {
    fn new(outcomes: Vec<Outcome>, colocated: bool) -> Arc<Self> {
        Arc::new(Self {
            outcomes: Mutex::new(outcomes.into()),
            calls: Mutex::default(),
            colocated,
            store: Mutex::default(),
            carried: Mutex::default(),
            seen: Mutex::default(),
        })
    }

    fn calls(&self) -> Vec<(String, Op, u32)> {
        self.calls.lock().unwrap().clone()
    }

    fn carried(&self) -> Vec<Progress> {
        self.carried.lock().unwrap().clone()
    }
}

impl BranchExecutor for Script {
    fn execute(&self, call: BranchCall) -> BoxFuture<'_, BranchResult> {
        self.calls.lock().unwrap().push((call.branch_id.to_string(), call.op, call.attempt));
        let outcome = self.outcomes.lock().unwrap().pop_front().unwrap_or(Outcome::Succeeded);
        let store = self.store.lock().unwrap().clone();
        Box::pin(async move {
            let seen = match &store {
                Some(store) => store.load(&call.gid).await.unwrap().map(|s| s.transaction.status),
                None => None,
            };
            self.seen.lock().unwrap().push(seen);
            let (Some(progress), Outcome::Succeeded, Some(store)) = (call.progress, &outcome, store) else {
                return BranchResult::of(outcome);
            };
            assert!(self.colocated, "progress is offered only to co-located ops");
            let carried = match store.write(&progress).await {
                Ok(()) => Carried::Written,
                Err(StoreError::Fenced { .. }) => Carried::Fenced,
                Err(StoreError::GidTaken { .. }) => Carried::GidTaken,
                Err(e) => panic!("{e}"),
            };
            if carried == Carried::Written {
                self.carried.lock().unwrap().push(progress);
            }
            BranchResult { outcome, progress: carried, output: Vec::new() }
        })
    }

    fn colocated(&self, _target: &Target) -> bool {
        self.colocated
    }
}

fn saga(gid: &str, branches: usize) -> TransactionState {
    super::fixture::saga(gid, branches, T0)
}

async fn engine(script: Arc<Script>, clock: ManualClock) -> Engine {
    let store = Store::connect(&fresh_sqlite()).await.expect("store");
    *script.store.lock().unwrap() = Some(store.clone());
    let config = EngineConfig {
        node: "node-a".to_owned(),
        poll: Duration::from_millis(10),
        retry: RetryPolicy { base_ms: 1_000, cap_ms: 60_000 },
        ..EngineConfig::default()
    };
    Engine::new(store, script, Arc::new(clock), config)
}

async fn run(engine: &Engine, state: TransactionState, wait: bool) -> TransactionState {
    let gid = state.transaction.gid.clone();
    let submitted = engine.submit(state, wait).await.unwrap();
    assert!(submitted.created);
    engine.wait(&gid, submitted.live, Duration::from_secs(5)).await.unwrap().expect("a state")
}

#[tokio::test]
async fn a_submitted_saga_runs_to_the_end_and_is_persisted() {
    let script = Script::new(vec![], false);
    let engine = engine(script.clone(), ManualClock::new(T0)).await;
    let state = run(&engine, saga("g1", 2), false).await;
    assert_eq!(state.transaction.status, Status::Succeeded);
    assert_eq!(state.transaction.lease_owner, None, "the lease is released");
    assert_eq!(script.calls(), [("01".to_owned(), Op::Action, 1), ("02".to_owned(), Op::Action, 1)]);
    let stored = engine.store().load(&state.transaction.gid).await.unwrap().unwrap();
    assert_eq!(stored.transaction.status, Status::Succeeded);
    assert_eq!(stored.transaction.lease_owner, None);
    assert_eq!(stored.ops[2].status, OpStatus::Succeeded, "the end writes every op changed since the create");
}

#[tokio::test]
async fn not_co_located_intermediate_progress_is_not_written_only_the_create_and_the_end() {
    let script = Script::new(vec![], false);
    let engine = engine(script.clone(), ManualClock::new(T0)).await;
    run(&engine, saga("g1", 2), true).await;
    let seen = script.seen.lock().unwrap().clone();
    assert_eq!(seen, [Some(Status::Submitted), Some(Status::Submitted)], "stored before the first op, not between");
}

#[tokio::test]
async fn co_located_with_wait_the_create_and_the_end_ride_in_the_two_branch_commits() {
    let script = Script::new(vec![], true);
    let engine = engine(script.clone(), ManualClock::new(T0)).await;
    let state = run(&engine, saga("g1", 2), true).await;
    assert_eq!(state.transaction.status, Status::Succeeded);
    assert_eq!(script.seen.lock().unwrap()[0], None, "nothing is stored before the first branch commits");
    let carried = script.carried();
    assert_eq!(carried.len(), 2, "two commits in all: {carried:?}");
    let Progress::Create(created) = &carried[0] else { panic!("branch 1 carries the create: {carried:?}") };
    assert_eq!(created.ops[0].status, OpStatus::Succeeded, "with branch 1 already done");
    let Progress::Save { transaction, release, .. } = &carried[1] else { panic!("{carried:?}") };
    assert_eq!((transaction.status, *release), (Status::Succeeded, true), "branch 2 carries the end and the release");
    let stored = engine.store().load(&state.transaction.gid).await.unwrap().unwrap();
    assert_eq!(stored.transaction.status, Status::Succeeded);
    assert_eq!(stored.transaction.lease_owner, None);
    assert!(stored.ops.iter().filter(|o| o.op == Op::Action).all(|o| o.status == OpStatus::Succeeded));
}

#[tokio::test]
async fn co_located_without_wait_the_create_is_stored_first() {
    let script = Script::new(vec![], true);
    let engine = engine(script.clone(), ManualClock::new(T0)).await;
    run(&engine, saga("g1", 2), false).await;
    assert_eq!(script.seen.lock().unwrap()[0], Some(Status::Submitted));
    assert!(script.carried().iter().all(|p| matches!(p, Progress::Save { .. })), "no create rides along");
}

#[tokio::test]
async fn the_switch_to_compensation_is_durable_before_any_compensation_runs() {
    for colocated in [false, true] {
        let script = Script::new(vec![Outcome::Succeeded, Outcome::Failed("no".into())], colocated);
        let engine = engine(script.clone(), ManualClock::new(T0)).await;
        let state = run(&engine, saga("g1", 2), false).await;
        assert_eq!(state.transaction.status, Status::Failed);
        let calls = script.calls();
        assert_eq!(calls[2], ("02".to_owned(), Op::Compensate, 1));
        if colocated {
            // It rides in the first compensation's commit.
            let first = script
                .carried()
                .into_iter()
                .find(|p| matches!(p, Progress::Save { ops, .. } if ops.iter().any(|o| o.op == Op::Compensate)));
            let Some(Progress::Save { transaction, .. }) = first else { panic!("no compensation commit") };
            assert_eq!(transaction.status, Status::Aborting);
        } else {
            assert_eq!(script.seen.lock().unwrap()[2], Some(Status::Aborting), "stored before the compensation ran");
        }
    }
}

#[tokio::test]
async fn a_tcc_decision_is_durable_before_any_op_carries_it_out() {
    for colocated in [false, true] {
        // Confirm: both tries succeed, then both confirms.
        let script = Script::new(vec![], colocated);
        let confirming = engine(script.clone(), ManualClock::new(T0)).await;
        let state = run(&confirming, super::fixture::tcc("t1", 2, T0), false).await;
        assert_eq!(state.transaction.status, Status::Succeeded);
        let ops: Vec<_> = script.calls().into_iter().map(|(b, op, _)| format!("{b} {op}")).collect();
        assert_eq!(ops, ["01 try", "02 try", "01 confirm", "02 confirm"]);
        if colocated {
            // It rides in the last try's commit, with that try's success.
            let last_try = script
                .carried()
                .into_iter()
                .find(|p| matches!(p, Progress::Save { ops, .. } if ops.iter().any(|o| o.branch_id.to_string() == "02" && o.op == Op::Try)));
            let Some(Progress::Save { transaction, .. }) = last_try else { panic!("no commit of the last try") };
            assert_eq!(transaction.status, Status::Submitted);
        } else {
            let seen = script.seen.lock().unwrap().clone();
            assert_eq!(seen[2], Some(Status::Submitted), "the decision was stored before the first confirm ran");
        }
        let stored = confirming.store().load(&state.transaction.gid).await.unwrap().unwrap();
        assert_eq!(stored.transaction.status, Status::Succeeded);

        // Cancel: the second try is refused; the switch is stored before the first cancel.
        let script = Script::new(vec![Outcome::Succeeded, Outcome::Failed("no".into())], colocated);
        let cancelling = engine(script.clone(), ManualClock::new(T0)).await;
        let state = run(&cancelling, super::fixture::tcc("t2", 2, T0), false).await;
        assert_eq!(state.transaction.status, Status::Failed);
        let ops: Vec<_> = script.calls().into_iter().map(|(b, op, _)| format!("{b} {op}")).collect();
        assert_eq!(ops, ["01 try", "02 try", "02 cancel", "01 cancel"]);
        if !colocated {
            assert_eq!(script.seen.lock().unwrap()[2], Some(Status::Aborting));
        }
    }
}

#[tokio::test]
async fn an_xa_never_carries_progress_and_stores_each_decision_before_phase_2() {
    for wait in [false, true] {
        // Even on a co-located database: an action ends prepared, not committed.
        let script = Script::new(vec![], true);
        let committing = engine(script.clone(), ManualClock::new(T0)).await;
        let state = run(&committing, super::fixture::xa("x1", 2, T0), wait).await;
        assert_eq!(state.transaction.status, Status::Succeeded);
        let ops: Vec<_> = script.calls().into_iter().map(|(b, op, _)| format!("{b} {op}")).collect();
        assert_eq!(ops, ["01 action", "02 action", "01 commit", "02 commit"]);
        assert!(script.carried().is_empty(), "no XA op carries progress");
        let seen = script.seen.lock().unwrap().clone();
        assert_eq!(seen[0], Some(Status::Prepared), "the create is stored before the first action (wait {wait})");
        assert_eq!(seen[2], Some(Status::Submitted), "the decision is stored before the first commit");

        let script = Script::new(vec![Outcome::Succeeded, Outcome::Failed("no".into())], true);
        let rolling_back = engine(script.clone(), ManualClock::new(T0)).await;
        let state = run(&rolling_back, super::fixture::xa("x2", 2, T0), wait).await;
        assert_eq!(state.transaction.status, Status::Failed);
        let ops: Vec<_> = script.calls().into_iter().map(|(b, op, _)| format!("{b} {op}")).collect();
        assert_eq!(ops, ["01 action", "02 action", "02 rollback", "01 rollback"]);
        assert_eq!(script.seen.lock().unwrap()[2], Some(Status::Aborting), "stored before the first rollback");
    }
}

#[tokio::test]
async fn a_deferred_create_that_finds_its_gid_taken_answers_with_the_stored_transaction() {
    let script = Script::new(vec![], true);
    let engine = engine(script.clone(), ManualClock::new(T0)).await;
    let mut stored = saga("g1", 1);
    stored.transaction.status = Status::Failed;
    stored.transaction.next_due = None;
    engine.store().create_transaction(&stored).await.unwrap();
    let submitted = engine.submit(saga("g1", 1), true).await.unwrap();
    let state = engine.wait(&stored.transaction.gid, submitted.live, Duration::from_secs(5)).await.unwrap().unwrap();
    assert_eq!(state.transaction.status, Status::Failed, "the stored one, not a new run");
}

#[tokio::test]
async fn an_error_waits_for_the_backoff_on_the_injected_clock() {
    let script = Script::new(vec![Outcome::Error("down".into())], false);
    let clock = ManualClock::new(T0);
    let engine = engine(script.clone(), clock.clone()).await;
    let poller = engine.start().await.unwrap();
    let submitted = engine.submit(saga("g2", 1), false).await.unwrap();
    let gid = Gid::parse("g2").unwrap();

    // The first attempt fails; with the clock standing still nothing runs again.
    let state = engine.wait(&gid, submitted.live, Duration::from_millis(300)).await.unwrap().unwrap();
    assert_eq!(state.transaction.status, Status::Submitted);
    assert_eq!(state.transaction.next_due, Some(T0.plus_ms(1_000)));
    assert_eq!(state.transaction.last_error.as_deref(), Some("01 action: down"));
    assert_eq!(script.calls().len(), 1);

    clock.advance_ms(999);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(script.calls().len(), 1, "not due yet");

    clock.advance_ms(1);
    let state = engine.wait(&gid, None, Duration::from_secs(5)).await.unwrap().unwrap();
    assert_eq!(state.transaction.status, Status::Succeeded);
    assert_eq!(script.calls(), [("01".to_owned(), Op::Action, 1), ("01".to_owned(), Op::Action, 2)]);
    engine.shutdown(Duration::from_secs(1)).await;
    poller.abort();
}

#[tokio::test]
async fn resubmitting_a_gid_runs_nothing_again() {
    let script = Script::new(vec![], false);
    let engine = engine(script.clone(), ManualClock::new(T0)).await;
    run(&engine, saga("g3", 1), false).await;
    let again = engine.submit(saga("g3", 1), false).await.unwrap();
    assert!(!again.created);
    assert_eq!(again.state.transaction.status, Status::Succeeded);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(script.calls().len(), 1);
}

/// Blocks every call until released, so a test can act while a branch runs.
struct Paused {
    entered: tokio::sync::Notify,
    release: tokio::sync::Notify,
    calls: Mutex<u32>,
}

impl BranchExecutor for Paused {
    fn execute(&self, _call: BranchCall) -> BoxFuture<'_, BranchResult> {
        Box::pin(async move {
            *self.calls.lock().unwrap() += 1;
            self.entered.notify_one();
            self.release.notified().await;
            BranchResult::of(Outcome::Succeeded)
        })
    }
}

#[tokio::test]
async fn a_zombie_owner_is_fenced_once_another_node_claims_the_transaction() {
    let paused = Arc::new(Paused { entered: Default::default(), release: Default::default(), calls: Mutex::new(0) });
    let clock = ManualClock::new(T0);
    let store = Store::connect(&fresh_sqlite()).await.expect("store");
    let config = EngineConfig { node: "node-a".to_owned(), ..EngineConfig::default() };
    let engine = Engine::new(store.clone(), paused.clone(), Arc::new(clock.clone()), config);
    engine.submit(saga("g4", 2), false).await.unwrap();
    let gid = Gid::parse("g4").unwrap();

    // Node A stalls inside branch 01 past its lease, and node B claims the transaction.
    paused.entered.notified().await;
    clock.advance_ms(31_000);
    let later = clock.now();
    assert!(store.claim(&gid, "node-b", later, later.plus_ms(30_000)).await.unwrap().is_some());
    paused.release.notify_one();

    // Before starting branch 02 A must renew its lapsed lease: that write is
    // refused, and A runs nothing more.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(*paused.calls.lock().unwrap(), 1, "the zombie must not go on to branch 02");
    let stored = store.load(&gid).await.unwrap().unwrap();
    assert_eq!(stored.transaction.lease_owner.as_deref(), Some("node-b"));
    assert_eq!(stored.ops[0].status, OpStatus::Prepared, "the zombie's write did not land");
}

#[tokio::test]
async fn a_control_reaches_a_running_driver_at_its_next_step() {
    let paused = Arc::new(Paused { entered: Default::default(), release: Default::default(), calls: Mutex::new(0) });
    let store = Store::connect(&fresh_sqlite()).await.expect("store");
    let config = EngineConfig { node: "node-a".to_owned(), ..EngineConfig::default() };
    let engine = Engine::new(store.clone(), paused.clone(), Arc::new(ManualClock::new(T0)), config);
    let submitted = engine.submit(saga("g5", 3), false).await.unwrap();
    let gid = Gid::parse("g5").unwrap();

    // Abort while branch 01's action is in flight: the driver finishes that
    // op, then rolls back from there instead of going on to branch 02.
    paused.entered.notified().await;
    let request =
        control::Request { control: control::Control::Abort, actor: "ops".into(), reason: None, register: Vec::new() };
    let asked = tokio::spawn({
        let engine = engine.clone();
        let gid = gid.clone();
        async move { engine.control(&gid, request).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!asked.is_finished(), "the answer waits for the op in flight");
    paused.release.notify_one();
    let after = asked.await.unwrap().expect("applied");
    assert_eq!(after.transaction.status, Status::Aborting);
    assert_eq!(after.transaction.rollback_reason.as_deref(), Some("aborted by ops"));
    // Branch 01's compensation runs next (and is held like every call).
    paused.entered.notified().await;
    paused.release.notify_one();
    let state = engine.wait(&gid, submitted.live, Duration::from_secs(5)).await.unwrap().unwrap();
    assert_eq!(state.transaction.status, Status::Failed);
    assert_eq!(*paused.calls.lock().unwrap(), 2, "01 action, 01 compensate; nothing of 02 or 03");
    engine.flush_history(Duration::from_secs(5)).await;
    let kinds: Vec<String> = store
        .history(&gid, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| format!("{} {}", e.kind, e.outcome.unwrap_or_default()))
        .collect();
    assert_eq!(kinds, ["attempt succeeded", "abort aborting", "status aborting", "attempt succeeded", "status failed"]);
}

/// Co-located; holds its first call until released, then commits the
/// progress it carries (as a branch commit would) and succeeds.
struct HeldColocated {
    store: Store,
    release: tokio::sync::Notify,
}

impl BranchExecutor for HeldColocated {
    fn execute(&self, call: BranchCall) -> BoxFuture<'_, BranchResult> {
        Box::pin(async move {
            if call.branch_id.as_str() == "01" {
                self.release.notified().await;
            }
            let progress = call.progress.expect("co-located ops carry progress");
            self.store.write(&progress).await.expect("the carried progress commits");
            BranchResult { outcome: Outcome::Succeeded, progress: Carried::Written, output: Vec::new() }
        })
    }

    fn colocated(&self, _target: &Target) -> bool {
        true
    }
}

/// A `202` promises the transaction is stored. When the create rides in
/// branch 1's commit, a wait that times out before that commit goes on
/// until it (and then answers), instead of answering for a transaction a
/// crash could still erase.
#[tokio::test]
async fn a_timed_out_wait_answers_only_once_the_riding_create_is_stored() {
    let store = Store::connect(&fresh_sqlite()).await.expect("store");
    let held = Arc::new(HeldColocated { store: store.clone(), release: Default::default() });
    let config = EngineConfig { node: "node-a".to_owned(), ..EngineConfig::default() };
    let engine = Engine::new(store.clone(), held.clone(), Arc::new(ManualClock::new(T0)), config);
    let gid = Gid::parse("g9").unwrap();
    let submitted = engine.submit(saga("g9", 2), true).await.unwrap();
    let waiting = {
        let (engine, gid) = (engine.clone(), gid.clone());
        tokio::spawn(async move { engine.wait(&gid, submitted.live, Duration::from_millis(50)).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "no answer while the transaction is not stored");
    assert!(store.load(&gid).await.unwrap().is_none());
    held.release.notify_one();
    let answered = waiting.await.unwrap().unwrap().expect("a state");
    assert!(store.load(&gid).await.unwrap().is_some(), "stored when answered ({:?})", answered.transaction.status);
}
