//! Tests of Redis business databases against the Redis on this machine
//! (`WASMTX_TEST_REDIS`, default `redis://127.0.0.1:6379/0`): the barrier's
//! cases, the optimistic local transaction, key confinement, step outputs
//! and limits. Every test binds a database of its own name, so its keys
//! (prefix `<name>:`, host keys `wasmtx:<name>:`) are its own.
//! A Redis that cannot be reached fails the test: nothing skips.

use std::time::Duration;

use super::*;
use crate::model::{BranchId, Gid, Op};

fn redis_url() -> String {
    std::env::var("WASMTX_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".to_owned())
}

async fn fresh_redis_with(limits: &DbLimits) -> (Database, String) {
    let name = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let db = Database::connect_named(&redis_url(), Some(&DatabaseName::parse(&name).unwrap()), limits)
        .await
        .unwrap_or_else(|e| panic!("tests need Redis at {}: {e}", redis_url()));
    (db, name)
}

async fn fresh_redis() -> Database {
    fresh_redis_with(&DbLimits::default()).await.0
}

fn rdb(db: &Database) -> &super::redis::RedisDb {
    match &db.kind {
        Kind::Redis(r) => r,
        _ => panic!("not a Redis database"),
    }
}

fn key(gid: &str, branch: &str, op: Op) -> BarrierKey {
    BarrierKey {
        trans_type: "saga".to_owned(),
        gid: Gid::parse(gid).unwrap(),
        branch_id: BranchId::from_trusted(branch),
        op,
        barrier_id: "01".to_owned(),
    }
}

async fn kv(tx: &mut LocalTx, op: KvOp) -> KvAnswer {
    tx.kv(op).await.unwrap()
}

fn incr(key: &str, delta: i64) -> KvOp {
    KvOp::IncrBy { key: key.into(), delta }
}

async fn set_balance(db: &Database, n: i64) {
    let mut tx = db.begin().await.unwrap();
    let set = KvOp::Set {
        key: "balance".into(),
        value: n.to_string().into_bytes(),
        ttl_ms: None,
        condition: SetCondition::Always,
    };
    kv(&mut tx, set).await;
    tx.commit().await.unwrap();
}

async fn balance(db: &Database) -> i64 {
    let raw: Option<String> = rdb(db).raw(::redis::cmd("GET").arg(rdb(db).data_key("balance"))).await;
    raw.expect("balance").parse().unwrap()
}

/// One branch op as the host runs it: barrier, then add `delta` to the
/// balance, commit unless `fail`.
async fn run_op(db: &Database, gid: &str, op: Op, delta: i64, fail: bool) -> BarrierVerdict {
    let (tx, verdict) = db.begin_branch(key(gid, "01", op)).await.unwrap();
    if let Some(mut tx) = tx {
        kv(&mut tx, incr("balance", delta)).await;
        if fail { tx.rollback().await.unwrap() } else { tx.commit().await.unwrap() }
    }
    verdict
}

fn pair(op: &str, reason: &str) -> (String, String) {
    (op.to_owned(), reason.to_owned())
}

#[tokio::test]
async fn an_action_runs_once_and_its_compensation_once() {
    let db = fresh_redis().await;
    set_balance(&db, 100).await;
    assert_eq!(run_op(&db, "g1", Op::Action, -30, false).await, BarrierVerdict::Proceed);
    assert_eq!(db.barrier_rows("g1", "01").await, [pair("action", "action")]);
    assert_eq!(run_op(&db, "g1", Op::Action, -30, false).await, BarrierVerdict::Duplicate);
    assert_eq!(balance(&db).await, 70);
    assert_eq!(run_op(&db, "g1", Op::Compensate, 30, false).await, BarrierVerdict::Proceed);
    assert_eq!(run_op(&db, "g1", Op::Compensate, 30, false).await, BarrierVerdict::Duplicate);
    assert_eq!(balance(&db).await, 100);
    assert_eq!(db.barrier_rows("g1", "01").await, [pair("action", "action"), pair("compensate", "compensate")]);
}

#[tokio::test]
async fn a_compensation_before_its_action_is_null_and_the_late_action_does_not_hang() {
    let db = fresh_redis().await;
    set_balance(&db, 100).await;
    assert_eq!(run_op(&db, "g1", Op::Compensate, 30, false).await, BarrierVerdict::NullCompensation);
    assert_eq!(db.barrier_rows("g1", "01").await, [pair("action", "compensate"), pair("compensate", "compensate")]);
    assert_eq!(run_op(&db, "g1", Op::Action, -30, false).await, BarrierVerdict::Duplicate);
    // TCC: a cancel before its try, then the late try.
    assert_eq!(run_op(&db, "g2", Op::Cancel, 30, false).await, BarrierVerdict::NullCompensation);
    assert_eq!(run_op(&db, "g2", Op::Try, -30, false).await, BarrierVerdict::Duplicate);
    assert_eq!(balance(&db).await, 100);
}

#[tokio::test]
async fn an_action_rolled_back_leaves_no_key_so_its_compensation_is_null() {
    let db = fresh_redis().await;
    set_balance(&db, 100).await;
    assert_eq!(run_op(&db, "g1", Op::Action, -30, true).await, BarrierVerdict::Proceed);
    assert_eq!(db.barrier_rows("g1", "01").await, []);
    assert_eq!(balance(&db).await, 100);
    assert_eq!(run_op(&db, "g1", Op::Compensate, 30, false).await, BarrierVerdict::NullCompensation);
    assert_eq!(balance(&db).await, 100);
}

#[tokio::test]
async fn a_compensation_racing_an_uncommitted_action_wins_and_the_action_commits_nothing() {
    let db = fresh_redis().await;
    set_balance(&db, 100).await;
    let (tx, verdict) = db.begin_branch(key("g1", "01", Op::Action)).await.unwrap();
    assert_eq!(verdict, BarrierVerdict::Proceed);
    let mut tx = tx.unwrap();
    assert_eq!(kv(&mut tx, incr("balance", -30)).await, KvAnswer::Int(70));
    // The compensation finds no action key: null, and it blocks the action.
    assert_eq!(run_op(&db, "g1", Op::Compensate, 30, false).await, BarrierVerdict::NullCompensation);
    let e = tx.commit().await.unwrap_err();
    assert!(e.message.contains("changed before it committed"), "{e:?}");
    assert_eq!(balance(&db).await, 100, "the action's debit never landed");
    assert_eq!(run_op(&db, "g1", Op::Action, -30, false).await, BarrierVerdict::Duplicate, "its retry is a duplicate");
    assert_eq!(balance(&db).await, 100);
}

#[tokio::test]
async fn a_key_changed_under_a_branch_makes_its_commit_fail_with_nothing_written() {
    let db = fresh_redis().await;
    set_balance(&db, 100).await;
    let (tx, _) = db.begin_branch(key("g1", "01", Op::Action)).await.unwrap();
    let mut tx = tx.unwrap();
    kv(&mut tx, incr("balance", -30)).await;
    kv(&mut tx, incr("other", 1)).await;
    set_balance(&db, 500).await;
    let e = tx.commit().await.unwrap_err();
    assert!(e.message.contains("changed before it committed"), "{e:?}");
    assert_eq!(balance(&db).await, 500);
    let other: Option<String> = rdb(&db).raw(::redis::cmd("GET").arg(rdb(&db).data_key("other"))).await;
    assert_eq!(other, None, "no write of the failed commit landed");
    assert_eq!(db.barrier_rows("g1", "01").await, [], "nor its barrier key");
    assert_eq!(run_op(&db, "g1", Op::Action, -30, false).await, BarrierVerdict::Proceed, "it runs again");
    assert_eq!(balance(&db).await, 470);
}

#[tokio::test]
async fn concurrent_increments_of_one_key_all_land_once_each_when_conflicts_are_retried() {
    let db = fresh_redis().await;
    set_balance(&db, 0).await;
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let db = db.clone();
            tokio::spawn(async move {
                let mut conflicts = 0;
                loop {
                    let (tx, verdict) = db.begin_branch(key(&format!("c{i}"), "01", Op::Action)).await.unwrap();
                    let Some(mut tx) = tx else { return (verdict, conflicts) };
                    tx.kv(incr("balance", 1)).await.unwrap();
                    tokio::task::yield_now().await;
                    match tx.commit().await {
                        Ok(()) => return (verdict, conflicts),
                        Err(e) if e.message.contains("changed before it committed") => conflicts += 1,
                        Err(e) => panic!("{e:?}"),
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        let (verdict, _) = task.await.unwrap();
        assert_eq!(verdict, BarrierVerdict::Proceed);
    }
    assert_eq!(balance(&db).await, 8);
}

#[tokio::test]
async fn a_message_back_check_finds_a_committed_local_transaction_and_blocks_one_that_never_was() {
    let db = fresh_redis().await;
    set_balance(&db, 100).await;
    let local = |gid: &str| BarrierKey { trans_type: "msg".to_owned(), ..key(gid, "00", Op::Msg) };
    let deadline = || Instant::now() + Duration::from_secs(10);
    let (tx, _) = db.begin_branch(local("m-1")).await.unwrap();
    let mut tx = tx.unwrap();
    kv(&mut tx, incr("balance", -10)).await;
    tx.commit().await.unwrap();
    assert!(db.query_prepared(local("m-1"), deadline()).await.unwrap());
    assert!(!db.query_prepared(local("m-2"), deadline()).await.unwrap());
    let (tx, verdict) = db.begin_branch(local("m-2")).await.unwrap();
    assert!(tx.is_none());
    assert_eq!(verdict, BarrierVerdict::Duplicate, "the late local transaction cannot commit");
    assert_eq!(balance(&db).await, 90);
}

#[tokio::test]
async fn guest_keys_stay_under_the_prefix_and_cannot_reach_the_barrier() {
    let (db, name) = fresh_redis_with(&DbLimits::default()).await;
    assert_eq!(run_op(&db, "g1", Op::Action, 5, false).await, BarrierVerdict::Proceed);
    let barrier_key = format!("wasmtx:{name}:b:g1:01:action:01");
    let mut tx = db.begin().await.unwrap();
    // Whatever the guest names, it is a key under its prefix.
    for sneaky in [barrier_key.clone(), format!("../{barrier_key}"), String::new()] {
        assert_eq!(kv(&mut tx, KvOp::Get { key: sneaky.clone() }).await, KvAnswer::Value(None), "{sneaky:?}");
        assert_eq!(kv(&mut tx, KvOp::Delete { key: sneaky.clone() }).await, KvAnswer::Done(false));
        kv(&mut tx, KvOp::Set { key: sneaky, value: b"x".to_vec(), ttl_ms: None, condition: SetCondition::Always })
            .await;
    }
    tx.commit().await.unwrap();
    let barrier: Option<String> = rdb(&db).raw(::redis::cmd("GET").arg(&barrier_key)).await;
    assert_eq!(barrier.as_deref(), Some("action"), "the barrier key is untouched");
    let landed: Option<String> = rdb(&db).raw(::redis::cmd("GET").arg(format!("{name}:{barrier_key}"))).await;
    assert_eq!(landed.as_deref(), Some("x"), "the guest's write landed under its prefix");
    assert_eq!(run_op(&db, "g1", Op::Action, 5, false).await, BarrierVerdict::Duplicate);
}

#[tokio::test]
async fn a_step_output_commits_with_the_branch_and_only_then() {
    let db = fresh_redis().await;
    let step = |gid: &str| BarrierKey { trans_type: "workflow".to_owned(), ..key(gid, "01", Op::Action) };
    let work = |k: BarrierKey, commit: bool| -> TxWork<()> {
        Box::new(move |mut tx: LocalTx| {
            Box::pin(async move {
                tx.record_output(&k, b"out").await.unwrap();
                tx.kv(incr("steps", 1)).await.unwrap();
                (Some(tx), if commit { Decision::Commit(()) } else { Decision::Rollback(()) })
            })
        })
    };
    let deadline = || Instant::now() + Duration::from_secs(10);
    let ran = db.run_branch(step("w1"), deadline(), None, work(step("w1"), false)).await.unwrap();
    assert_eq!(ran, BranchRun::Ran(Decision::Rollback(())));
    assert_eq!(db.step_output(&step("w1").gid, &step("w1").branch_id).await.unwrap(), None);
    let ran = db.run_branch(step("w1"), deadline(), None, work(step("w1"), true)).await.unwrap();
    assert_eq!(ran, BranchRun::Ran(Decision::Commit(())));
    assert_eq!(db.step_output(&step("w1").gid, &step("w1").branch_id).await.unwrap(), Some(b"out".to_vec()));
    let again = db.run_branch(step("w1"), deadline(), None, work(step("w1"), true)).await.unwrap();
    assert_eq!(again, BranchRun::Skipped(BarrierVerdict::Duplicate));
}

#[tokio::test]
async fn hashes_sorted_sets_and_expiry_land_as_redis_would_leave_them() {
    let db = fresh_redis().await;
    let r = rdb(&db);
    let mut tx = db.begin().await.unwrap();
    let set_ttl =
        KvOp::Set { key: "s".into(), value: b"v".to_vec(), ttl_ms: Some(60_000), condition: SetCondition::Always };
    kv(&mut tx, set_ttl).await;
    kv(&mut tx, KvOp::HSet { key: "h".into(), field: "a".into(), value: b"1".to_vec() }).await;
    kv(&mut tx, KvOp::HIncrBy { key: "h".into(), field: "b".into(), delta: 5 }).await;
    kv(&mut tx, KvOp::ZAdd { key: "z".into(), member: "m".into(), score: 1.5 }).await;
    tx.commit().await.unwrap();
    let ttl: i64 = r.raw(::redis::cmd("PTTL").arg(r.data_key("s"))).await;
    assert!((1..=60_000).contains(&ttl), "{ttl}");
    let h: Vec<(String, String)> = r.raw(::redis::cmd("HGETALL").arg(r.data_key("h"))).await;
    assert_eq!(h, [("a".to_owned(), "1".to_owned()), ("b".to_owned(), "5".to_owned())]);
    let score: f64 = r.raw(::redis::cmd("ZSCORE").arg(r.data_key("z")).arg("m")).await;
    assert_eq!(score, 1.5);
    // An increment keeps the expiry; kinds are checked against what is stored.
    let mut tx = db.begin().await.unwrap();
    kv(&mut tx, incr("n", 1)).await;
    let e = tx.kv(incr("h", 1)).await.unwrap_err();
    assert_eq!(e.code.as_deref(), Some("WRONGTYPE"));
    assert_eq!(
        kv(&mut tx, KvOp::HGet { key: "h".into(), field: "b".into() }).await,
        KvAnswer::Value(Some(b"5".to_vec()))
    );
    kv(&mut tx, KvOp::Set { key: "s".into(), value: b"w".to_vec(), ttl_ms: None, condition: SetCondition::IfPresent })
        .await;
    tx.commit().await.unwrap();
    let ttl: i64 = r.raw(::redis::cmd("PTTL").arg(r.data_key("s"))).await;
    assert_eq!(ttl, -1, "SET without a ttl drops the expiry, as Redis does");
}

#[tokio::test]
async fn a_key_larger_than_what_an_invocation_may_read_is_refused() {
    let limits = DbLimits { max_rows: 10, ..DbLimits::default() };
    let (db, _) = fresh_redis_with(&limits).await;
    let r = rdb(&db);
    let mut fields = ::redis::cmd("HSET");
    fields.arg(r.data_key("big"));
    for i in 0..20 {
        fields.arg(format!("f{i}")).arg(i);
    }
    let _: i64 = r.raw(&fields).await;
    let mut tx = db.begin().await.unwrap();
    let e = tx.kv(KvOp::HGetAll { key: "big".into() }).await.unwrap_err();
    assert_eq!(e.code.as_deref(), Some("LIMIT"), "{e:?}");
    let long = "k".repeat(kv::MAX_NAME_BYTES + 1);
    assert_eq!(tx.kv(KvOp::Get { key: long }).await.unwrap_err().code.as_deref(), Some("LIMIT"));
    tx.rollback().await.unwrap();
}

#[tokio::test]
async fn sql_calls_on_redis_and_kv_calls_on_sql_are_refused_with_the_interface_to_use() {
    let db = fresh_redis().await;
    let mut tx = db.begin().await.unwrap();
    let e = tx.execute("SELECT 1", &[]).await.unwrap_err();
    assert!(e.message.contains("`kv` interface"), "{e:?}");
    tx.rollback().await.unwrap();
    let sqlite = Database::connect(&crate::test_db::fresh_sqlite(), &DbLimits::default()).await.unwrap();
    let mut tx = sqlite.begin().await.unwrap();
    let e = tx.kv(KvOp::Get { key: "a".into() }).await.unwrap_err();
    assert!(e.message.contains("`db` interface"), "{e:?}");
    tx.rollback().await.unwrap();
    assert!(db.xa_refusal().is_some_and(|r| r.contains("Redis")));
}

#[tokio::test]
async fn two_bindings_whose_keys_overlap_on_one_redis_are_refused() {
    let urls: BTreeMap<DatabaseName, String> = [
        (DatabaseName::parse("a").unwrap(), format!("{}?prefix=shop:", redis_url())),
        (DatabaseName::parse("b").unwrap(), format!("{}?prefix=shop:eu:", redis_url())),
    ]
    .into();
    let e = Databases::connect(&urls, &DbLimits::default()).await.unwrap_err();
    assert!(e.to_string().contains("overlap"), "{e}");
    let urls: BTreeMap<DatabaseName, String> =
        [(DatabaseName::parse("a").unwrap(), redis_url()), (DatabaseName::parse("b").unwrap(), redis_url())].into();
    let dbs = Databases::connect(&urls, &DbLimits::default()).await.expect("a: and b: do not overlap");
    assert_eq!(dbs.kinds().iter().map(|(_, k)| *k).collect::<Vec<_>>(), ["redis", "redis"]);
}
