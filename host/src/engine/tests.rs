//! The driver, with an injected clock and a scripted executor, on a real
//! SQLite store: it persists every step, backs off on the clock it is given,
//! and a zombie owner stops when fenced.

use std::collections::VecDeque;
use std::sync::Mutex;

use super::*;
use crate::model::{OpStatus, Status, TransactionState};
use crate::test_db::fresh_sqlite;

const T0: Millis = Millis(1_700_000_000_000);

/// Answers each call with the next scripted outcome (then `Succeeded`), and records the calls.
#[derive(Default)]
struct Script {
    outcomes: Mutex<VecDeque<Outcome>>,
    calls: Mutex<Vec<(String, Op, u32)>>,
}

impl Script {
    fn new(outcomes: Vec<Outcome>) -> Arc<Self> {
        Arc::new(Self { outcomes: Mutex::new(outcomes.into()), calls: Mutex::default() })
    }

    fn calls(&self) -> Vec<(String, Op, u32)> {
        self.calls.lock().unwrap().clone()
    }
}

impl BranchExecutor for Script {
    fn execute(&self, call: BranchCall) -> BoxFuture<'_, Outcome> {
        self.calls.lock().unwrap().push((call.branch_id.to_string(), call.op, call.attempt));
        let outcome = self.outcomes.lock().unwrap().pop_front().unwrap_or(Outcome::Succeeded);
        Box::pin(async move { outcome })
    }
}

fn saga(gid: &str, branches: usize) -> TransactionState {
    super::fixture::saga(gid, branches, T0)
}

async fn engine(script: Arc<Script>, clock: ManualClock) -> Engine {
    let store = Store::connect(&fresh_sqlite()).await.expect("store");
    let config = EngineConfig {
        node: "node-a".to_owned(),
        poll: Duration::from_millis(10),
        retry: RetryPolicy { base_ms: 1_000, cap_ms: 60_000 },
        ..EngineConfig::default()
    };
    Engine::new(store, script, Arc::new(clock), config)
}

#[tokio::test]
async fn a_submitted_saga_runs_to_the_end_and_is_persisted() {
    let script = Script::new(vec![]);
    let engine = engine(script.clone(), ManualClock::new(T0)).await;
    let (_, created) = engine.submit(saga("g1", 2)).await.unwrap();
    assert!(created);
    let state = engine.wait(&Gid::parse("g1").unwrap(), Duration::from_secs(5)).await.unwrap().unwrap();
    assert_eq!(state.transaction.status, Status::Succeeded);
    assert_eq!(state.transaction.lease_owner, None, "the lease is released");
    assert_eq!(script.calls(), [("01".to_owned(), Op::Action, 1), ("02".to_owned(), Op::Action, 1)]);
}

#[tokio::test]
async fn an_error_waits_for_the_backoff_on_the_injected_clock() {
    let script = Script::new(vec![Outcome::Error("down".into())]);
    let clock = ManualClock::new(T0);
    let engine = engine(script.clone(), clock.clone()).await;
    let poller = engine.start().await.unwrap();
    engine.submit(saga("g2", 1)).await.unwrap();
    let gid = Gid::parse("g2").unwrap();

    // The first attempt fails; with the clock standing still nothing runs again.
    let state = engine.wait(&gid, Duration::from_millis(300)).await.unwrap().unwrap();
    assert_eq!(state.transaction.status, Status::Submitted);
    assert_eq!(state.transaction.next_due, Some(T0.plus_ms(1_000)));
    assert_eq!(state.transaction.last_error.as_deref(), Some("01 action: down"));
    assert_eq!(script.calls().len(), 1);

    clock.advance_ms(999);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(script.calls().len(), 1, "not due yet");

    clock.advance_ms(1);
    let state = engine.wait(&gid, Duration::from_secs(5)).await.unwrap().unwrap();
    assert_eq!(state.transaction.status, Status::Succeeded);
    assert_eq!(script.calls(), [("01".to_owned(), Op::Action, 1), ("01".to_owned(), Op::Action, 2)]);
    engine.shutdown(Duration::from_secs(1)).await;
    poller.abort();
}

#[tokio::test]
async fn resubmitting_a_gid_runs_nothing_again() {
    let script = Script::new(vec![]);
    let engine = engine(script.clone(), ManualClock::new(T0)).await;
    engine.submit(saga("g3", 1)).await.unwrap();
    let gid = Gid::parse("g3").unwrap();
    engine.wait(&gid, Duration::from_secs(5)).await.unwrap();
    let (state, created) = engine.submit(saga("g3", 1)).await.unwrap();
    assert!(!created);
    assert_eq!(state.transaction.status, Status::Succeeded);
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
    fn execute(&self, _call: BranchCall) -> BoxFuture<'_, Outcome> {
        Box::pin(async move {
            *self.calls.lock().unwrap() += 1;
            self.entered.notify_one();
            self.release.notified().await;
            Outcome::Succeeded
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
    engine.submit(saga("g4", 2)).await.unwrap();
    let gid = Gid::parse("g4").unwrap();

    // Node A is inside branch 01 when its lease runs out and node B claims the transaction.
    paused.entered.notified().await;
    let later = T0.plus_ms(31_000);
    assert!(store.claim(&gid, "node-b", later, later.plus_ms(30_000)).await.unwrap().is_some());
    paused.release.notify_one();

    // A's write of the outcome is refused, and A runs nothing more.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(*paused.calls.lock().unwrap(), 1, "the zombie must not go on to branch 02");
    let stored = store.load(&gid).await.unwrap().unwrap();
    assert_eq!(stored.transaction.lease_owner.as_deref(), Some("node-b"));
    assert_eq!(stored.ops[0].status, OpStatus::Prepared, "the zombie's write did not land");
}
