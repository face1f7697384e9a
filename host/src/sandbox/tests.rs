//! Sandbox tests with a purpose-built guest (`tests/guests/misbehave`, built
//! by `cargo xtask examples`): limits hold, traps stay contained, guest errors
//! stay results, and the `db` import runs in the transaction it is given.

use std::time::{Duration, Instant};

use super::*;
use crate::database::{Database, Value};
use crate::test_db::fresh_sqlite;

fn guest(name: &str) -> Vec<u8> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = std::env::var_os("CARGO_TARGET_DIR").map(std::path::PathBuf::from).unwrap_or(root.join("target"));
    let path = target.join("examples").join(format!("{name}.wasm"));
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; build the test guests with `cargo xtask examples`", path.display()))
}

fn sandbox() -> Sandbox {
    Sandbox::new(Limits { deadline: Duration::from_millis(300), memory_bytes: 32 << 20, ..Limits::default() })
        .expect("sandbox")
}

fn call(function: &str, payload: &[u8]) -> Invocation {
    Invocation {
        function: function.to_owned(),
        gid: "g1".to_owned(),
        branch_id: "01".to_owned(),
        op: Op::Compensate,
        attempt: 3,
        headers: vec![],
        payload: payload.to_vec(),
        module: "misbehave".to_owned(),
    }
}

async fn invoke(s: &Sandbox, c: &Compiled, function: &str, payload: &[u8]) -> Result<Vec<u8>, InvokeError> {
    s.invoke(c, call(function, payload), None).await.0
}

#[test]
fn uploads_that_are_not_components_are_refused_with_the_reason() {
    let s = sandbox();
    assert!(matches!(s.compile(b"hello"), Err(CompileError::NotWasm)));
    assert!(matches!(s.compile(b"\0asm\x01\0\0\0"), Err(CompileError::CoreModule)));
    let empty_component = b"\0asm\x0d\0\x01\0";
    match s.compile(empty_component) {
        Err(CompileError::WorldMismatch(m)) => assert!(m.contains("handler"), "{m}"),
        other => panic!("expected a world mismatch, got {:?}", other.err()),
    }
    let mut truncated = guest("misbehave-rust");
    truncated.truncate(100);
    assert!(matches!(s.compile(&truncated), Err(CompileError::Invalid(_))));
}

#[tokio::test]
async fn a_module_lists_its_functions_and_echoes_its_payload() {
    let s = sandbox();
    let c = s.compile(&guest("misbehave-rust")).unwrap();
    let functions = s.functions(&c).await.unwrap();
    assert!(functions.contains(&"echo".to_owned()) && functions.contains(&"spin".to_owned()), "{functions:?}");
    assert_eq!(invoke(&s, &c, "echo", b"{\"a\":1}").await.unwrap(), b"{\"a\":1}");
    let ctx = String::from_utf8(invoke(&s, &c, "context", b"").await.unwrap()).unwrap();
    assert_eq!(ctx, r#"{"gid":"g1","branch_id":"01","op":"Op::Compensate","attempt":3}"#);
}

#[tokio::test]
async fn guest_errors_are_results_not_traps() {
    let s = sandbox();
    let c = s.compile(&guest("misbehave-rust")).unwrap();
    assert_eq!(invoke(&s, &c, "fail", b"no funds").await, Err(InvokeError::Failure("no funds".into())));
    assert_eq!(invoke(&s, &c, "retry", b"busy").await, Err(InvokeError::Retry("busy".into())));
}

#[tokio::test]
async fn an_endless_loop_hits_the_deadline_and_the_next_call_works() {
    let s = sandbox();
    let c = s.compile(&guest("misbehave-rust")).unwrap();
    let started = Instant::now();
    match invoke(&s, &c, "spin", b"").await {
        Err(InvokeError::Trap(m)) => assert!(m.contains("deadline exceeded"), "{m}"),
        other => panic!("expected a deadline trap, got {other:?}"),
    }
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(300) && took < Duration::from_secs(5), "took {took:?}");
    assert_eq!(invoke(&s, &c, "echo", b"ok").await.unwrap(), b"ok");
}

#[tokio::test]
async fn unbounded_allocation_hits_the_memory_limit() {
    let s = sandbox();
    let c = s.compile(&guest("misbehave-rust")).unwrap();
    match invoke(&s, &c, "grow", b"").await {
        Err(InvokeError::Trap(m)) => assert!(m.contains("memory limit exceeded") && m.contains("32 MiB"), "{m}"),
        other => panic!("expected a memory trap, got {other:?}"),
    }
    assert_eq!(invoke(&s, &c, "echo", b"still here").await.unwrap(), b"still here");
}

#[tokio::test]
async fn a_panicking_guest_is_a_trap() {
    let s = sandbox();
    let c = s.compile(&guest("misbehave-rust")).unwrap();
    match invoke(&s, &c, "trap", b"").await {
        Err(InvokeError::Trap(m)) => assert!(m.starts_with("guest trapped"), "{m}"),
        other => panic!("expected a trap, got {other:?}"),
    }
}

#[tokio::test]
async fn db_calls_run_in_the_transaction_handed_in_and_it_comes_back_open() {
    let s = sandbox();
    let c = s.compile(&guest("misbehave-rust")).unwrap();
    let db = Database::connect(&fresh_sqlite(), &crate::database::DbLimits::default()).await.unwrap();
    let tx = db.begin().await.unwrap();
    let (r, tx) = s.invoke(&c, call("sql", b"CREATE TABLE t (x INTEGER)"), Some(tx)).await;
    assert_eq!(r.unwrap(), b"0");
    let (r, tx) = s.invoke(&c, call("sql", b"INSERT INTO t VALUES (1), (2)"), tx).await;
    assert_eq!(r.unwrap(), b"2");
    tx.expect("transaction handed back").commit().await.unwrap();

    let mut check = db.begin().await.unwrap();
    let rows = check.query("SELECT count(*) AS n FROM t", &[]).await.unwrap();
    assert_eq!(rows.values, vec![vec![Value::Int(2)]]);

    // A failing statement reaches the guest as a db-error with its code.
    let (r, _) = s.invoke(&c, call("sql", b"INSERT INTO missing VALUES (1)"), Some(check)).await;
    match r {
        Err(InvokeError::Retry(m)) => assert!(m.contains("no such table"), "{m}"),
        other => panic!("expected the guest's retry with the db error, got {other:?}"),
    }
}

#[tokio::test]
async fn without_a_database_db_calls_fail_cleanly() {
    let s = sandbox();
    let c = s.compile(&guest("misbehave-rust")).unwrap();
    match invoke(&s, &c, "sql", b"SELECT 1").await {
        Err(InvokeError::Retry(m)) => assert!(m.contains("no database"), "{m}"),
        other => panic!("expected a db error, got {other:?}"),
    }
}

async fn count(s: &Sandbox, runner: &Runner) -> String {
    String::from_utf8(s.run(runner, call("count", b""), None).await.0.expect("count")).unwrap()
}

#[tokio::test]
async fn a_fresh_runner_never_shares_an_instance() {
    let s = sandbox();
    let runner = Runner::fresh(s.compile(&guest("misbehave-rust")).unwrap());
    for _ in 0..3 {
        assert_eq!(count(&s, &runner).await, "1");
    }
}

#[tokio::test]
async fn a_reused_instance_serves_at_most_its_bound_then_is_replaced() {
    let s = sandbox();
    let pool = Arc::new(s.instance_pool(s.compile(&guest("misbehave-rust")).unwrap(), 3, 4));
    let runner = Runner::reused(pool.clone());
    let mut seen = Vec::new();
    for _ in 0..5 {
        seen.push(count(&s, &runner).await);
    }
    assert_eq!(seen, ["1", "2", "3", "1", "2"]);
    assert_eq!(pool.idle(), 1);
}

#[tokio::test]
async fn a_reused_instance_that_traps_is_discarded() {
    let s = sandbox();
    let pool = Arc::new(s.instance_pool(s.compile(&guest("misbehave-rust")).unwrap(), 100, 4));
    let runner = Runner::reused(pool.clone());
    assert_eq!(count(&s, &runner).await, "1");
    assert_eq!(count(&s, &runner).await, "2");
    assert!(matches!(s.run(&runner, call("trap", b""), None).await.0, Err(InvokeError::Trap(_))));
    assert_eq!(pool.idle(), 0, "the trapped instance is gone");
    assert_eq!(count(&s, &runner).await, "1", "a new instance replaced it");
    // Guest errors are answers, not traps: the same instance serves on.
    assert!(matches!(s.run(&runner, call("fail", b"no"), None).await.0, Err(InvokeError::Failure(_))));
    assert_eq!(count(&s, &runner).await, "2");
}

#[tokio::test]
async fn a_reused_instance_gets_a_new_deadline_and_transaction_each_call() {
    let s = sandbox();
    let pool = Arc::new(s.instance_pool(s.compile(&guest("misbehave-rust")).unwrap(), 100, 4));
    let runner = Runner::reused(pool);
    let db = Database::connect(&fresh_sqlite(), &crate::database::DbLimits::default()).await.unwrap();
    let tx = db.begin().await.unwrap();
    let (r, tx) = s.run(&runner, call("sql", b"CREATE TABLE t (x INTEGER)"), Some(tx)).await;
    assert_eq!(r.unwrap(), b"0");
    tx.unwrap().commit().await.unwrap();
    // Sleep past one deadline's worth of time: the next call must still get a full budget.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let tx = db.begin().await.unwrap();
    let (r, tx) = s.run(&runner, call("sql", b"INSERT INTO t VALUES (7)"), Some(tx)).await;
    assert_eq!(r.unwrap(), b"1");
    tx.unwrap().rollback().await.unwrap();
    let (r, _) = s.run(&runner, call("sql", b"SELECT 1"), None).await;
    assert!(matches!(r, Err(InvokeError::Retry(m)) if m.contains("no database")), "the old transaction is not kept");
}
