//! Tests of the business databases and the barrier. Every test in
//! `on_both_backends!` runs once on a fresh SQLite file and once on a fresh
//! Postgres database; those of them that need no parameters (MySQL writes
//! `?`, not `$1`) also run on a fresh MySQL/MariaDB database through
//! `also_on_mysql!`. Backend-specific behaviour has its own module below.
//! These tests must not depend on each other or on a shared database.

use std::time::Duration;

use super::*;
use crate::model::{BranchId, Gid, Op};
use crate::test_db::{fresh_postgres, fresh_sqlite};

/// Generates `mod sqlite` and `mod postgres`, each with one `#[tokio::test]`
/// per named `async fn name(db: Database)` of this module.
macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::sqlite_db().await).await
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::postgres_db().await).await
                }
            )+
        }
    };
}

on_both_backends!(
    every_value_kind_round_trips_through_a_table,
    parameters_bind_by_their_dollar_number,
    a_parameter_without_a_value_is_an_error_not_a_null,
    execute_reports_rows_affected,
    an_empty_result_still_names_its_columns,
    a_unique_violation_carries_the_database_code,
    rollback_discards_writes,
    dropping_without_commit_discards_writes,
    a_null_parameter_takes_the_type_of_its_column_and_the_statement_can_change_kinds,
    transaction_control_from_the_guest_is_refused_and_the_transaction_goes_on,
    a_failed_statement_never_lets_commit_report_lost_writes_as_committed,
    a_first_action_proceeds_and_writes_its_row,
    a_duplicate_action_is_a_duplicate_and_the_business_code_does_not_run_again,
    a_duplicate_compensate_is_a_duplicate,
    a_compensate_before_its_action_is_null_and_the_late_action_is_a_duplicate,
    a_tcc_cancel_before_its_try_is_null_and_the_late_try_is_a_duplicate,
    an_action_rolled_back_by_a_business_failure_leaves_no_row_so_its_compensate_is_null,
    a_transfer_debited_by_its_action_is_credited_back_exactly_once,
    barrier_rows_of_other_gids_branches_and_barrier_ids_do_not_collide,
    a_compensate_racing_an_inflight_action_waits_for_it_and_then_proceeds,
    eight_concurrent_transactions_all_commit,
    a_message_back_check_finds_a_committed_local_transaction_and_blocks_one_that_never_was,
    a_step_output_recorded_by_a_committed_branch_is_read_back_and_survives_its_replay,
    a_step_output_recorded_by_a_rolled_back_branch_is_not_kept,
    guest_sql_can_neither_read_nor_write_nor_drop_the_step_outputs,
);

/// Generates `mod mysql`: one `#[tokio::test]` per named `async fn name(db:
/// Database)` of this module, each on a fresh MySQL database (see [`on_mysql`]).
macro_rules! also_on_mysql {
    ($($name:ident),+ $(,)?) => {
        mod mysql {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::on_mysql(super::$name).await
                }
            )+
        }
    };
}

also_on_mysql!(
    transaction_control_from_the_guest_is_refused_and_the_transaction_goes_on,
    a_failed_statement_never_lets_commit_report_lost_writes_as_committed,
    a_first_action_proceeds_and_writes_its_row,
    a_duplicate_action_is_a_duplicate_and_the_business_code_does_not_run_again,
    a_duplicate_compensate_is_a_duplicate,
    a_compensate_before_its_action_is_null_and_the_late_action_is_a_duplicate,
    a_tcc_cancel_before_its_try_is_null_and_the_late_try_is_a_duplicate,
    an_action_rolled_back_by_a_business_failure_leaves_no_row_so_its_compensate_is_null,
    a_transfer_debited_by_its_action_is_credited_back_exactly_once,
    barrier_rows_of_other_gids_branches_and_barrier_ids_do_not_collide,
    a_compensate_racing_an_inflight_action_waits_for_it_and_then_proceeds,
    a_message_back_check_finds_a_committed_local_transaction_and_blocks_one_that_never_was,
    a_step_output_recorded_by_a_committed_branch_is_read_back_and_survives_its_replay,
    a_step_output_recorded_by_a_rolled_back_branch_is_not_kept,
);

async fn connect(url: &str) -> Result<Database, DatabaseError> {
    Database::connect(url, &DbLimits::default()).await
}

async fn sqlite_db() -> Database {
    connect(&fresh_sqlite()).await.expect("connect to a fresh SQLite file")
}

async fn postgres_db() -> Database {
    connect(&fresh_postgres().await).await.expect("connect to a fresh Postgres database")
}

/// The MySQL/MariaDB server of the MySQL tests: `WASMTX_TEST_MYSQL`, by
/// default the local one `cargo xtask test` starts. Unreachable fails the test.
fn mysql_server() -> String {
    std::env::var("WASMTX_TEST_MYSQL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".to_owned())
}

/// Runs `test` on a fresh MySQL database (created by connecting), then drops
/// it, its host database `wasmtx_<db>` and its guest accounts, whether the
/// test passed or not.
async fn on_mysql<F, Fut>(test: F)
where
    F: FnOnce(Database) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    on_mysql_with(&DbLimits::default(), |db, _| test(db)).await
}

/// [`on_mysql`] with `limits`; the test also gets the database's URL.
async fn on_mysql_with<F, Fut>(limits: &DbLimits, test: F)
where
    F: FnOnce(Database, String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let name = format!("wasmtx_t_{}", &uuid::Uuid::new_v4().simple().to_string()[..16]);
    let url = format!("{}/{name}", mysql_server());
    let db = match Database::connect(&url, limits).await {
        Ok(db) => db,
        Err(e) => {
            drop_mysql(&name).await;
            panic!("tests need MySQL at {url}: {e}");
        }
    };
    let outcome = tokio::spawn(test(db.clone(), url)).await;
    db.close().await;
    drop_mysql(&name).await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

async fn drop_mysql(name: &str) {
    use sqlx::{Connection as _, Executor as _};
    let mut conn = sqlx::MySqlConnection::connect(&mysql_server()).await.expect("connect to MySQL to clean up");
    let user: Option<String> = sqlx::query_scalar(&format!("SELECT guest_user FROM `wasmtx_{name}`.host"))
        .fetch_optional(&mut conn)
        .await
        .ok()
        .flatten();
    if let Some(user) = user {
        let hosts: Vec<String> = sqlx::query_scalar("SELECT CAST(host AS CHAR) FROM mysql.user WHERE user = ?")
            .bind(&user)
            .fetch_all(&mut conn)
            .await
            .expect("list the guest accounts");
        for host in hosts {
            conn.execute(format!("DROP USER IF EXISTS '{user}'@'{host}'").as_str())
                .await
                .expect("drop a guest account");
        }
    }
    // A prepared XA branch a failed test left would hold its tables' locks.
    let prepared: Vec<(i64, i64, i64, String)> =
        sqlx::query_as("XA RECOVER FORMAT='SQL'").fetch_all(&mut conn).await.expect("list prepared XA transactions");
    let ours = format!(",X'{}'", hex::encode(name));
    for (_, _, _, xid) in prepared.into_iter().filter(|p| p.3.ends_with(&ours)) {
        conn.execute(format!("XA ROLLBACK {xid}").as_str()).await.expect("roll back a prepared XA branch");
    }
    for db in [name.to_owned(), format!("wasmtx_{name}")] {
        conn.execute(format!("DROP DATABASE IF EXISTS `{db}`").as_str()).await.expect("drop a test database");
    }
    let _ = conn.close().await;
}

fn key(gid: &str, branch: &str, op: Op, barrier_id: &str) -> BarrierKey {
    BarrierKey {
        trans_type: "saga".to_owned(),
        gid: Gid::parse(gid).unwrap(),
        branch_id: BranchId::from_trusted(branch),
        op,
        barrier_id: barrier_id.to_owned(),
    }
}

/// Runs `statements` in one committed transaction.
async fn setup(db: &Database, statements: &[&str]) {
    let mut tx = db.begin().await.expect("begin");
    for sql in statements {
        tx.execute(sql, &[]).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    tx.commit().await.expect("commit setup");
}

/// A single value from a query in its own transaction.
async fn scalar(db: &Database, sql: &str, params: &[Value]) -> Value {
    let mut tx = db.begin().await.expect("begin");
    let rows = tx.query(sql, params).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    tx.commit().await.expect("commit");
    assert_eq!(rows.values.len(), 1, "{sql} returned {rows:?}");
    rows.values[0][0].clone()
}

async fn count(db: &Database, table: &str) -> i64 {
    match scalar(db, &format!("SELECT count(*) FROM {table}"), &[]).await {
        Value::Int(n) => n,
        other => panic!("count(*) gave {other:?}"),
    }
}

fn bytes_type(db: &Database) -> &'static str {
    if db.kind() == "postgres" { "BYTEA" } else { "BLOB" }
}

// ------------------------------------------------------------ values and errors

async fn every_value_kind_round_trips_through_a_table(db: Database) {
    setup(
        &db,
        &[&format!(
            "CREATE TABLE kinds (id BIGINT PRIMARY KEY, b BOOLEAN, i BIGINT, f DOUBLE PRECISION, t TEXT, x {}, n BIGINT)",
            bytes_type(&db)
        )],
    )
    .await;
    let mut tx = db.begin().await.unwrap();
    let inserted = tx
        .execute(
            "INSERT INTO kinds (id, b, i, f, t, x, n) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                Value::Int(1),
                Value::Boolean(true),
                Value::Int(i64::MIN),
                Value::Float(-1.25e300),
                Value::Text("héllo, 世界 ✓".to_owned()),
                Value::Bytes(vec![0, 255, 1, 0]),
                Value::Null,
            ],
        )
        .await
        .unwrap();
    assert_eq!(inserted, 1);
    let rows = tx.query("SELECT id, b, i, f, t, x, n FROM kinds WHERE id = $1", &[Value::Int(1)]).await.unwrap();
    tx.commit().await.unwrap();

    assert_eq!(rows.columns, ["id", "b", "i", "f", "t", "x", "n"]);
    // SQLite has no boolean storage class: a boolean is stored as the integer 1.
    let boolean = if db.kind() == "postgres" { Value::Boolean(true) } else { Value::Int(1) };
    assert_eq!(
        rows.values,
        vec![vec![
            Value::Int(1),
            boolean,
            Value::Int(i64::MIN),
            Value::Float(-1.25e300),
            Value::Text("héllo, 世界 ✓".to_owned()),
            Value::Bytes(vec![0, 255, 1, 0]),
            Value::Null,
        ]]
    );
}

async fn parameters_bind_by_their_dollar_number(db: Database) {
    let mut tx = db.begin().await.unwrap();
    let rows = tx
        .query("SELECT $2 AS second, $1 AS first, $1 AS again", &[Value::Text("a".to_owned()), Value::Int(2)])
        .await
        .unwrap();
    assert_eq!(rows.columns, ["second", "first", "again"]);
    assert_eq!(rows.values, vec![vec![Value::Int(2), Value::Text("a".to_owned()), Value::Text("a".to_owned())]]);
}

async fn a_parameter_without_a_value_is_an_error_not_a_null(db: Database) {
    setup(&db, &["CREATE TABLE t (id BIGINT PRIMARY KEY, v BIGINT)"]).await;
    let mut tx = db.begin().await.unwrap();
    let missing = tx.execute("INSERT INTO t (id, v) VALUES ($1, $2)", &[Value::Int(1)]).await;
    assert!(missing.is_err(), "{missing:?}");
    if db.kind() == "postgres" {
        return; // the transaction is now aborted, as after any failed statement
    }
    let rows = tx.query("SELECT count(*) FROM t", &[]).await.unwrap();
    assert_eq!(rows.values, vec![vec![Value::Int(0)]]);
}

async fn execute_reports_rows_affected(db: Database) {
    setup(&db, &["CREATE TABLE t (id BIGINT PRIMARY KEY, v BIGINT NOT NULL)"]).await;
    let mut tx = db.begin().await.unwrap();
    for id in 1..=3 {
        assert_eq!(tx.execute("INSERT INTO t (id, v) VALUES ($1, 0)", &[Value::Int(id)]).await.unwrap(), 1);
    }
    assert_eq!(tx.execute("UPDATE t SET v = v + 1 WHERE id > $1", &[Value::Int(1)]).await.unwrap(), 2);
    assert_eq!(tx.execute("DELETE FROM t WHERE id = $1", &[Value::Int(42)]).await.unwrap(), 0);
    tx.commit().await.unwrap();
}

async fn an_empty_result_still_names_its_columns(db: Database) {
    setup(&db, &["CREATE TABLE t (id BIGINT PRIMARY KEY, label TEXT)"]).await;
    let mut tx = db.begin().await.unwrap();
    let rows = tx.query("SELECT id, label FROM t WHERE id = $1", &[Value::Int(7)]).await.unwrap();
    assert_eq!(rows, Rows { columns: vec!["id".to_owned(), "label".to_owned()], values: vec![] });
}

async fn a_unique_violation_carries_the_database_code(db: Database) {
    setup(&db, &["CREATE TABLE users (id BIGINT PRIMARY KEY, email TEXT UNIQUE)"]).await;
    let mut tx = db.begin().await.unwrap();
    let insert = "INSERT INTO users (id, email) VALUES ($1, $2)";
    tx.execute(insert, &[Value::Int(1), Value::Text("a@example.com".to_owned())]).await.unwrap();
    let err = tx.execute(insert, &[Value::Int(2), Value::Text("a@example.com".to_owned())]).await.unwrap_err();
    let expected = if db.kind() == "postgres" { "23505" } else { "2067" };
    assert_eq!(err.code.as_deref(), Some(expected), "{err}");
    assert!(err.message.to_lowercase().contains("unique"), "{err}");
}

async fn rollback_discards_writes(db: Database) {
    setup(&db, &["CREATE TABLE t (id BIGINT PRIMARY KEY)"]).await;
    let mut tx = db.begin().await.unwrap();
    tx.execute("INSERT INTO t (id) VALUES ($1)", &[Value::Int(1)]).await.unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(count(&db, "t").await, 0);
}

async fn dropping_without_commit_discards_writes(db: Database) {
    setup(&db, &["CREATE TABLE t (id BIGINT PRIMARY KEY)"]).await;
    {
        let mut tx = db.begin().await.unwrap();
        tx.execute("INSERT INTO t (id) VALUES ($1)", &[Value::Int(1)]).await.unwrap();
    }
    assert_eq!(count(&db, "t").await, 0);
}

async fn a_null_parameter_takes_the_type_of_its_column_and_the_statement_can_change_kinds(db: Database) {
    // INTEGER is INT4 on Postgres: an INT8-typed NULL, or a statement prepared
    // for an inferred INT4 and then bound with an INT8, would both fail.
    setup(&db, &["CREATE TABLE t (id BIGINT PRIMARY KEY, n INTEGER, s VARCHAR(10))"]).await;
    let mut tx = db.begin().await.unwrap();
    let insert = "INSERT INTO t (id, n, s) VALUES ($1, $2, $3)";
    let text = |s: &str| Value::Text(s.to_owned());
    tx.execute(insert, &[Value::Int(1), Value::Null, Value::Null]).await.unwrap();
    tx.execute(insert, &[Value::Int(2), Value::Int(5), text("five")]).await.unwrap();
    tx.execute(insert, &[Value::Int(3), Value::Null, text("none")]).await.unwrap();
    tx.execute(insert, &[Value::Int(4), Value::Int(6), Value::Null]).await.unwrap();
    let rows = tx.query("SELECT n, s FROM t ORDER BY id", &[]).await.unwrap();
    assert_eq!(
        rows.values,
        vec![
            vec![Value::Null, Value::Null],
            vec![Value::Int(5), text("five")],
            vec![Value::Null, text("none")],
            vec![Value::Int(6), Value::Null],
        ]
    );
    tx.commit().await.unwrap();
}

async fn transaction_control_from_the_guest_is_refused_and_the_transaction_goes_on(db: Database) {
    setup(&db, &["CREATE TABLE t (id BIGINT PRIMARY KEY)"]).await;
    let mut tx = db.begin().await.unwrap();
    tx.execute("INSERT INTO t (id) VALUES (1)", &[]).await.unwrap();
    for sql in ["COMMIT", "rollback", "/* done */ END", "BEGIN", ";COMMIT"] {
        let err = tx.execute(sql, &[]).await.unwrap_err();
        assert!(err.message.contains("is not allowed"), "{sql}: {err}");
        assert!(tx.query(sql, &[]).await.is_err(), "{sql} through query");
    }
    tx.execute("SAVEPOINT s", &[]).await.unwrap();
    tx.execute("INSERT INTO t (id) VALUES (2)", &[]).await.unwrap();
    tx.execute("ROLLBACK TO SAVEPOINT s", &[]).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(scalar(&db, "SELECT max(id) FROM t", &[]).await, Value::Int(1));
}

/// SQLite undoes only the failed statement, so the earlier write commits.
/// Postgres aborts the whole transaction, where COMMIT would quietly roll back:
/// `commit` must say so instead of reporting success.
async fn a_failed_statement_never_lets_commit_report_lost_writes_as_committed(db: Database) {
    setup(&db, &["CREATE TABLE t (id BIGINT PRIMARY KEY)"]).await;
    let mut tx = db.begin().await.unwrap();
    tx.execute("INSERT INTO t (id) VALUES (1)", &[]).await.unwrap();
    assert!(tx.execute("INSERT INTO t (id) VALUES (1)", &[]).await.is_err());
    let committed = tx.commit().await;
    if db.kind() == "postgres" {
        let err = committed.unwrap_err();
        assert_eq!(err.code.as_deref(), Some("25P02"), "{err}");
        assert!(err.message.contains("not committed"), "{err}");
        assert_eq!(count(&db, "t").await, 0);
    } else {
        committed.unwrap();
        assert_eq!(count(&db, "t").await, 1);
    }
}

// ------------------------------------------------------------ barrier

const GID: &str = "gid-1";

/// Runs one branch op the way the host does: enter the barrier; on `Proceed`
/// add `delta` to account 1's balance (or fail the business code when `fail`);
/// commit unless the business code failed.
async fn run_op(db: &Database, gid: &str, branch: &str, op: Op, delta: i64, fail: bool) -> BarrierVerdict {
    let (tx, verdict) = db.begin_branch(key(gid, branch, op, "01")).await.unwrap();
    if let Some(mut tx) = tx {
        // Inline, not a parameter: MySQL writes `?` where the others write `$1`.
        tx.execute(&format!("UPDATE account SET balance = balance + {delta} WHERE id = 1"), &[]).await.unwrap();
        if fail {
            tx.rollback().await.unwrap();
        } else {
            tx.commit().await.unwrap();
        }
    }
    verdict
}

async fn with_account(db: &Database, balance: i64) {
    setup(
        db,
        &[
            "CREATE TABLE account (id BIGINT PRIMARY KEY, balance BIGINT NOT NULL)",
            &format!("INSERT INTO account (id, balance) VALUES (1, {balance})"),
        ],
    )
    .await;
}

async fn balance(db: &Database) -> i64 {
    match scalar(db, "SELECT balance FROM account WHERE id = 1", &[]).await {
        Value::Int(n) => n,
        other => panic!("balance is {other:?}"),
    }
}

/// The barrier rows of a branch as `(op, reason)`, sorted.
async fn barrier_rows(db: &Database, gid: &str, branch: &str) -> Vec<(String, String)> {
    db.barrier_rows(gid, branch).await
}

fn pair(op: &str, reason: &str) -> (String, String) {
    (op.to_owned(), reason.to_owned())
}

async fn a_first_action_proceeds_and_writes_its_row(db: Database) {
    with_account(&db, 100).await;
    assert_eq!(run_op(&db, GID, "01", Op::Action, -10, false).await, BarrierVerdict::Proceed);
    assert_eq!(balance(&db).await, 90);
    assert_eq!(barrier_rows(&db, GID, "01").await, [pair("action", "action")]);
}

async fn a_duplicate_action_is_a_duplicate_and_the_business_code_does_not_run_again(db: Database) {
    with_account(&db, 100).await;
    assert_eq!(run_op(&db, GID, "01", Op::Action, -10, false).await, BarrierVerdict::Proceed);
    assert_eq!(run_op(&db, GID, "01", Op::Action, -10, false).await, BarrierVerdict::Duplicate);
    assert_eq!(balance(&db).await, 90);
}

async fn a_duplicate_compensate_is_a_duplicate(db: Database) {
    with_account(&db, 100).await;
    assert_eq!(run_op(&db, GID, "01", Op::Action, -10, false).await, BarrierVerdict::Proceed);
    assert_eq!(run_op(&db, GID, "01", Op::Compensate, 10, false).await, BarrierVerdict::Proceed);
    assert_eq!(run_op(&db, GID, "01", Op::Compensate, 10, false).await, BarrierVerdict::Duplicate);
    assert_eq!(balance(&db).await, 100);
    assert_eq!(barrier_rows(&db, GID, "01").await, [pair("action", "action"), pair("compensate", "compensate")]);
}

async fn a_compensate_before_its_action_is_null_and_the_late_action_is_a_duplicate(db: Database) {
    with_account(&db, 100).await;
    assert_eq!(run_op(&db, GID, "01", Op::Compensate, 10, false).await, BarrierVerdict::NullCompensation);
    // The compensate wrote the action's row (reason "compensate"): the late action hangs no more.
    assert_eq!(barrier_rows(&db, GID, "01").await, [pair("action", "compensate"), pair("compensate", "compensate")]);
    assert_eq!(run_op(&db, GID, "01", Op::Action, -10, false).await, BarrierVerdict::Duplicate);
    assert_eq!(run_op(&db, GID, "01", Op::Compensate, 10, false).await, BarrierVerdict::Duplicate);
    assert_eq!(balance(&db).await, 100);
}

async fn a_tcc_cancel_before_its_try_is_null_and_the_late_try_is_a_duplicate(db: Database) {
    with_account(&db, 100).await;
    assert_eq!(run_op(&db, GID, "01", Op::Cancel, 10, false).await, BarrierVerdict::NullCompensation);
    assert_eq!(run_op(&db, GID, "01", Op::Try, -10, false).await, BarrierVerdict::Duplicate);
    // Confirm has no origin: it is never a null compensation.
    assert_eq!(run_op(&db, "gid-2", "01", Op::Confirm, 0, false).await, BarrierVerdict::Proceed);
    assert_eq!(balance(&db).await, 100);
}

async fn an_action_rolled_back_by_a_business_failure_leaves_no_row_so_its_compensate_is_null(db: Database) {
    with_account(&db, 100).await;
    assert_eq!(run_op(&db, GID, "01", Op::Action, -10, true).await, BarrierVerdict::Proceed);
    assert_eq!(barrier_rows(&db, GID, "01").await, []);
    assert_eq!(balance(&db).await, 100);
    assert_eq!(run_op(&db, GID, "01", Op::Compensate, 10, false).await, BarrierVerdict::NullCompensation);
    assert_eq!(balance(&db).await, 100);
}

async fn a_transfer_debited_by_its_action_is_credited_back_exactly_once(db: Database) {
    with_account(&db, 100).await;
    assert_eq!(run_op(&db, GID, "01", Op::Action, -30, false).await, BarrierVerdict::Proceed);
    assert_eq!(balance(&db).await, 70);
    assert_eq!(run_op(&db, GID, "01", Op::Action, -30, false).await, BarrierVerdict::Duplicate);
    assert_eq!(balance(&db).await, 70);
    assert_eq!(run_op(&db, GID, "01", Op::Compensate, 30, false).await, BarrierVerdict::Proceed);
    assert_eq!(balance(&db).await, 100);
    assert_eq!(run_op(&db, GID, "01", Op::Compensate, 30, false).await, BarrierVerdict::Duplicate);
    assert_eq!(balance(&db).await, 100);
}

async fn barrier_rows_of_other_gids_branches_and_barrier_ids_do_not_collide(db: Database) {
    with_account(&db, 0).await;
    assert_eq!(run_op(&db, GID, "01", Op::Action, 1, false).await, BarrierVerdict::Proceed);
    assert_eq!(run_op(&db, GID, "02", Op::Action, 1, false).await, BarrierVerdict::Proceed);
    assert_eq!(run_op(&db, "gid-2", "01", Op::Action, 1, false).await, BarrierVerdict::Proceed);
    let (tx, verdict) = db.begin_branch(key(GID, "01", Op::Action, "02")).await.unwrap();
    assert_eq!(verdict, BarrierVerdict::Proceed);
    tx.unwrap().commit().await.unwrap();
    assert_eq!(balance(&db).await, 3);
}

async fn a_compensate_racing_an_inflight_action_waits_for_it_and_then_proceeds(db: Database) {
    with_account(&db, 100).await;
    let (tx, verdict) = db.begin_branch(key(GID, "01", Op::Action, "01")).await.unwrap();
    assert_eq!(verdict, BarrierVerdict::Proceed);
    let mut tx = tx.unwrap();
    tx.execute("UPDATE account SET balance = balance - 10 WHERE id = 1", &[]).await.unwrap();

    let racer = tokio::spawn({
        let db = db.clone();
        async move { run_op(&db, GID, "01", Op::Compensate, 10, false).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!racer.is_finished(), "the compensate must wait for the in-flight action");
    tx.commit().await.unwrap();

    assert_eq!(racer.await.unwrap(), BarrierVerdict::Proceed);
    assert_eq!(balance(&db).await, 100);
}

async fn a_message_back_check_finds_a_committed_local_transaction_and_blocks_one_that_never_was(db: Database) {
    with_account(&db, 100).await;
    let local = |gid: &str| BarrierKey { trans_type: "msg".to_owned(), ..key(gid, "00", Op::Msg, "01") };
    let deadline = || Instant::now() + Duration::from_secs(10);
    // Committed: found.
    assert_eq!(run_op(&db, "m-1", "00", Op::Msg, -10, false).await, BarrierVerdict::Proceed);
    assert!(db.query_prepared(local("m-1"), deadline()).await.unwrap());
    assert!(db.query_prepared(local("m-1"), deadline()).await.unwrap(), "asking again changes nothing");
    // Never committed: not found, and a late local transaction cannot commit.
    assert!(!db.query_prepared(local("m-2"), deadline()).await.unwrap());
    assert!(!db.query_prepared(local("m-2"), deadline()).await.unwrap());
    assert_eq!(run_op(&db, "m-2", "00", Op::Msg, -10, false).await, BarrierVerdict::Duplicate, "too late");
    assert_eq!(balance(&db).await, 90, "only m-1's local transaction applied");
    assert_eq!(barrier_rows(&db, "m-2", "00").await, [pair("msg", "rollback")]);
}

async fn eight_concurrent_transactions_all_commit(db: Database) {
    setup(&db, &["CREATE TABLE t (id BIGINT PRIMARY KEY, note TEXT)"]).await;
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let db = db.clone();
            tokio::spawn(async move {
                let mut tx = db.begin().await?;
                tx.execute("INSERT INTO t (id, note) VALUES ($1, $2)", &[Value::Int(i), Value::Text(format!("n{i}"))])
                    .await?;
                tokio::task::yield_now().await;
                tx.commit().await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().expect("every concurrent transaction commits");
    }
    assert_eq!(count(&db, "t").await, 8);
}

// ------------------------------------------------------------ step outputs

/// The barrier key of a workflow step: op `action` of a `workflow` transaction.
fn step_key(gid: &str, branch: &str) -> BarrierKey {
    BarrierKey { trans_type: "workflow".to_owned(), ..key(gid, branch, Op::Action, "01") }
}

/// A workflow step's work: records `output` for `key`'s branch, adds 1 to
/// account 1, and commits or rolls back.
fn step_work(key: BarrierKey, output: Vec<u8>, commit: bool) -> TxWork<()> {
    Box::new(move |mut tx: LocalTx| {
        Box::pin(async move {
            tx.record_output(&key, &output).await.expect("record the step's output");
            tx.execute("UPDATE account SET balance = balance + 1 WHERE id = 1", &[]).await.expect("business write");
            (Some(tx), if commit { Decision::Commit(()) } else { Decision::Rollback(()) })
        })
    })
}

async fn run_step(db: &Database, key: &BarrierKey, output: &[u8], commit: bool) -> BranchRun<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    db.run_branch(key.clone(), deadline, None, step_work(key.clone(), output.to_vec(), commit))
        .await
        .expect("run the step")
}

async fn step_output_of(db: &Database, key: &BarrierKey) -> Option<Vec<u8>> {
    db.step_output(&key.gid, &key.branch_id).await.expect("read the step's output")
}

async fn a_step_output_recorded_by_a_committed_branch_is_read_back_and_survives_its_replay(db: Database) {
    with_account(&db, 0).await;
    let step = step_key("wf-1", "01");
    assert_eq!(step_output_of(&db, &step).await, None, "nothing recorded yet");
    let output = b"{\"charged\": 42}\x00\xff".to_vec();
    assert_eq!(run_step(&db, &step, &output, true).await, BranchRun::Ran(Decision::Commit(())));
    assert_eq!(step_output_of(&db, &step).await, Some(output.clone()));
    assert_eq!(barrier_rows(&db, "wf-1", "01").await, [pair("action", "action")]);

    // The replay after a crash: the barrier skips the guest, the output stays the first run's.
    let replay = run_step(&db, &step, b"second run", true).await;
    assert_eq!(replay, BranchRun::Skipped(BarrierVerdict::Duplicate));
    assert_eq!(step_output_of(&db, &step).await, Some(output));
    assert_eq!(balance(&db).await, 1, "the business code ran once");

    // Other branches and gids are apart; an empty output is an output, not a missing one.
    let (other_branch, other_gid) = (step_key("wf-1", "02"), step_key("wf-2", "01"));
    assert_eq!(step_output_of(&db, &other_branch).await, None);
    assert_eq!(run_step(&db, &other_gid, b"", true).await, BranchRun::Ran(Decision::Commit(())));
    assert_eq!(step_output_of(&db, &other_gid).await, Some(Vec::new()));

    // An interactive branch transaction records through the same call.
    let interactive = step_key("wf-3", "01");
    let (tx, verdict) = db.begin_branch(interactive.clone()).await.unwrap();
    assert_eq!(verdict, BarrierVerdict::Proceed);
    let mut tx = tx.unwrap();
    tx.record_output(&interactive, b"interactive").await.unwrap();
    if db.kind() != "sqlite" {
        // (On SQLite the read is a job on the writer, which waits for the transaction.)
        assert_eq!(step_output_of(&db, &interactive).await, None, "not before the commit");
    }
    tx.commit().await.unwrap();
    assert_eq!(step_output_of(&db, &interactive).await, Some(b"interactive".to_vec()));
}

async fn a_step_output_recorded_by_a_rolled_back_branch_is_not_kept(db: Database) {
    with_account(&db, 0).await;
    let step = step_key("wf-1", "01");
    assert_eq!(run_step(&db, &step, b"lost", false).await, BranchRun::Ran(Decision::Rollback(())));
    assert_eq!(step_output_of(&db, &step).await, None);
    assert_eq!(barrier_rows(&db, "wf-1", "01").await, []);
    assert_eq!(balance(&db).await, 0);

    // Dropping an interactive transaction rolls its output back too.
    {
        let mut tx = db.begin_branch(step.clone()).await.unwrap().0.unwrap();
        tx.record_output(&step, b"dropped").await.unwrap();
    }
    assert_eq!(step_output_of(&db, &step).await, None);

    // The retry that commits is the one whose output is kept.
    assert_eq!(run_step(&db, &step, b"kept", true).await, BranchRun::Ran(Decision::Commit(())));
    assert_eq!(step_output_of(&db, &step).await, Some(b"kept".to_vec()));
    assert_eq!(balance(&db).await, 1);
}

async fn guest_sql_can_neither_read_nor_write_nor_drop_the_step_outputs(db: Database) {
    with_account(&db, 0).await;
    let step = step_key("wf-1", "01");
    assert_eq!(run_step(&db, &step, b"secret", true).await, BranchRun::Ran(Decision::Commit(())));
    let tables: &[&str] = if db.kind() == "postgres" {
        &["wasmtx.step_output", "\"wasmtx\".\"step_output\""]
    } else {
        &["wasmtx_step_output", "main.wasmtx_step_output", "\"WASMTX_STEP_OUTPUT\""]
    };
    let bytes = || Value::Bytes(b"forged".to_vec());
    let text = |s: &str| Value::Text(s.to_owned());
    for table in tables {
        let mut attempts: Vec<(String, Vec<Value>, bool)> = vec![
            (format!("SELECT output FROM {table}"), vec![], true),
            (format!("SELECT count(*) FROM {table} WHERE gid = $1"), vec![text("wf-1")], true),
            (
                format!("INSERT INTO {table} (gid, branch_id, output) VALUES ($1, $2, $3)"),
                vec![text("wf-9"), text("01"), bytes()],
                false,
            ),
            (format!("UPDATE {table} SET output = $1"), vec![bytes()], false),
            (format!("DELETE FROM {table}"), vec![], false),
            (format!("DROP TABLE {table}"), vec![], false),
        ];
        // SQLite names the schema on the index, not on its table.
        if !(db.kind() == "sqlite" && table.contains('.')) {
            attempts.push((format!("CREATE INDEX guest_idx ON {table} (output)"), vec![], false));
        }
        for (sql, params, rows) in attempts {
            // A fresh transaction each time: on Postgres a refusal aborts it.
            let mut tx = db.begin().await.unwrap();
            let refused = if rows {
                tx.query(&sql, &params).await.map(|_| ()).unwrap_err()
            } else {
                tx.execute(&sql, &params).await.map(|_| ()).unwrap_err()
            };
            if db.kind() == "postgres" {
                assert_eq!(refused.code.as_deref(), Some("42501"), "{sql}: {refused}");
            } else {
                assert!(refused.message.contains("belongs to the host"), "{sql}: {refused}");
            }
            tx.rollback().await.unwrap();
        }
    }
    // Inside a branch transaction too (the work's own LocalTx, not the interactive one).
    let probe = step_key("wf-2", "01");
    let sql = format!("SELECT output FROM {}", tables[0]);
    let work: TxWork<Result<Rows, DbError>> = Box::new(move |mut tx: LocalTx| {
        Box::pin(async move {
            let read = tx.query(&sql, &[]).await;
            (Some(tx), Decision::Rollback(read))
        })
    });
    let run = db.run_branch(probe, Instant::now() + Duration::from_secs(10), None, work).await.unwrap();
    let BranchRun::Ran(Decision::Rollback(read)) = run else { panic!("{run:?}") };
    assert!(read.is_err(), "{read:?}");

    assert_eq!(step_output_of(&db, &step).await, Some(b"secret".to_vec()), "untouched");
    assert_eq!(step_output_of(&db, &step_key("wf-9", "01")).await, None, "nothing forged");
}

// ------------------------------------------------------------ connecting

#[tokio::test]
async fn an_unknown_scheme_is_a_config_error() {
    let err = connect("mongodb://localhost/x").await.unwrap_err();
    assert!(matches!(&err, DatabaseError::Config(m) if m.contains("\"mongodb\"")), "{err}");
}

#[tokio::test]
async fn connect_creates_the_sqlite_file_and_its_directories() {
    let base = std::env::temp_dir().join(format!("wasmtx-test-{}", uuid::Uuid::new_v4().simple()));
    let path = base.join("a").join("b").join("business.sqlite");
    let db = connect(&format!("sqlite:{}", path.display())).await.unwrap();
    assert_eq!(db.kind(), "sqlite");
    assert!(path.exists());
    assert_eq!(barrier_rows(&db, GID, "01").await, []);
    db.close().await;
    drop(db);
    // Reconnecting finds the existing barrier table.
    let again = connect(&format!("sqlite:{}", path.display())).await.unwrap();
    assert_eq!(barrier_rows(&again, GID, "01").await, []);
}

#[tokio::test]
async fn an_in_memory_sqlite_database_keeps_its_data_between_transactions() {
    let db = connect("sqlite::memory:").await.unwrap();
    setup(&db, &["CREATE TABLE t (id INTEGER)", "INSERT INTO t VALUES (1)"]).await;
    assert_eq!(count(&db, "t").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_processes_connecting_at_once_to_a_fresh_postgres_all_succeed() {
    let url = fresh_postgres().await;
    let connects: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { connect(&url).await })
        })
        .collect();
    for connect in connects {
        let db = connect.await.unwrap().expect("every concurrent connect succeeds");
        assert_eq!(db.kind(), "postgres");
        assert_eq!(barrier_rows(&db, GID, "01").await, []);
    }
}

// ------------------------------------------------------------ SQLite only

mod sqlite_only {
    use super::*;

    #[tokio::test]
    async fn values_decode_by_storage_class_not_by_declared_type() {
        let db = sqlite_db().await;
        setup(&db, &["CREATE TABLE m (id INTEGER PRIMARY KEY, v)"]).await;
        let mut tx = db.begin().await.unwrap();
        for (id, v) in [(1, "1"), (2, "1.5"), (3, "'x'"), (4, "X'00FF'"), (5, "NULL")] {
            tx.execute(&format!("INSERT INTO m (id, v) VALUES ({id}, {v})"), &[]).await.unwrap();
        }
        let rows = tx.query("SELECT v FROM m ORDER BY id", &[]).await.unwrap();
        assert_eq!(
            rows.values,
            vec![
                vec![Value::Int(1)],
                vec![Value::Float(1.5)],
                vec![Value::Text("x".to_owned())],
                vec![Value::Bytes(vec![0, 255])],
                vec![Value::Null],
            ]
        );
    }

    #[tokio::test]
    async fn question_mark_parameters_bind_too() {
        let db = sqlite_db().await;
        let mut tx = db.begin().await.unwrap();
        let rows = tx.query("SELECT ?2, ?1", &[Value::Int(1), Value::Int(2)]).await.unwrap();
        assert_eq!(rows.values, vec![vec![Value::Int(2), Value::Int(1)]]);
        let rows = tx.query("SELECT ?, ?", &[Value::Int(1), Value::Int(2)]).await.unwrap();
        assert_eq!(rows.values, vec![vec![Value::Int(1), Value::Int(2)]]);
    }

    #[tokio::test]
    async fn parameter_zero_is_refused_and_the_connection_survives() {
        let db = sqlite_db().await;
        let mut tx = db.begin().await.unwrap();
        let err = tx.query("SELECT $0", &[Value::Int(1)]).await.unwrap_err();
        assert!(err.message.contains("$0"), "{err}");
        let rows = tx.query("SELECT $1", &[Value::Int(1)]).await.unwrap();
        assert_eq!(rows.values, vec![vec![Value::Int(1)]]);
    }

    /// SQLite's own tokenizer finds the second statement: the string is
    /// refused before any of it runs, and the transaction goes on.
    #[tokio::test]
    async fn a_commit_hidden_in_a_multi_statement_string_is_refused_and_nothing_of_it_runs() {
        let db = sqlite_db().await;
        with_account(&db, 100).await;
        let (tx, verdict) = db.begin_branch(key(GID, "01", Op::Action, "01")).await.unwrap();
        assert_eq!(verdict, BarrierVerdict::Proceed);
        let mut tx = tx.unwrap();
        let hidden = tx.execute("UPDATE account SET balance = balance - 10 WHERE id = 1; COMMIT", &[]).await;
        assert!(hidden.as_ref().is_err_and(|e| e.message.contains("one statement per call")), "{hidden:?}");
        tx.execute("UPDATE account SET balance = balance - 1 WHERE id = 1", &[]).await.unwrap();
        tx.commit().await.unwrap();

        assert_eq!(balance(&db).await, 99, "only the single statement ran");
        assert_eq!(barrier_rows(&db, GID, "01").await, [pair("action", "action")]);
    }

    /// A trigger's `RAISE(ROLLBACK)` ends the transaction inside SQLite, behind
    /// the host's back. Guests may not create one (it would end other jobs'
    /// work in the same batch), but a schema made outside wasmtx may hold one.
    /// Committing anyway fails; rolling back succeeds; and the file's single
    /// writer stays usable either way.
    #[tokio::test]
    async fn a_transaction_sqlite_rolled_back_by_itself_cannot_commit_and_the_database_stays_usable() {
        let db = sqlite_db().await;
        with_account(&db, 5).await;
        let trigger = "CREATE TRIGGER no_overdraft BEFORE UPDATE ON account WHEN NEW.balance < 0 \
                       BEGIN SELECT RAISE(ROLLBACK, 'insufficient funds'); END";
        let mut tx = db.begin().await.unwrap();
        let refused = tx.execute(trigger, &[]).await.unwrap_err();
        assert!(refused.message.contains("ROLLBACK at byte"), "{refused}");
        tx.rollback().await.unwrap();
        let Kind::Sqlite(file) = &db.kind else { unreachable!("an SQLite database") };
        file.file().write(move |w| w.conn().execute_batch(trigger)).await.unwrap().unwrap();
        let overdraw = "UPDATE account SET balance = balance - 10 WHERE id = 1";

        // A guest that ignores the error and returns ok.
        let mut tx = db.begin_branch(key(GID, "01", Op::Action, "01")).await.unwrap().0.unwrap();
        let err = tx.execute(overdraw, &[]).await.unwrap_err();
        assert!(err.message.contains("insufficient funds"), "{err}");
        let later = tx.execute("UPDATE account SET balance = 1", &[]).await.unwrap_err();
        assert!(later.message.contains("not committed"), "{later}");
        let err = tx.commit().await.unwrap_err();
        assert!(err.message.contains("not committed"), "{err}");

        // A guest that returns the failure: the host rolls back.
        let mut tx = db.begin_branch(key(GID, "01", Op::Action, "01")).await.unwrap().0.unwrap();
        assert!(tx.execute(overdraw, &[]).await.is_err());
        tx.rollback().await.unwrap();

        assert_eq!(balance(&db).await, 5);
        assert_eq!(barrier_rows(&db, GID, "01").await, []);
        assert_eq!(run_op(&db, GID, "01", Op::Action, -5, false).await, BarrierVerdict::Proceed);
        assert_eq!(balance(&db).await, 0);
    }

    /// A step output recorded after a statement ended the transaction behind
    /// the host's back would commit on its own: it is refused instead.
    #[tokio::test]
    async fn a_step_output_is_not_recorded_once_sqlite_ended_the_transaction_itself() {
        let db = sqlite_db().await;
        with_account(&db, 5).await;
        let trigger = "CREATE TRIGGER no_overdraft BEFORE UPDATE ON account WHEN NEW.balance < 0 \
                       BEGIN SELECT RAISE(ROLLBACK, 'insufficient funds'); END";
        let Kind::Sqlite(file) = &db.kind else { unreachable!("an SQLite database") };
        file.file().write(move |w| w.conn().execute_batch(trigger)).await.unwrap().unwrap();
        let step = step_key("wf-1", "01");
        let work: TxWork<Result<(), DbError>> = Box::new({
            let step = step.clone();
            move |mut tx: LocalTx| {
                Box::pin(async move {
                    let overdraw = tx.execute("UPDATE account SET balance = balance - 10 WHERE id = 1", &[]).await;
                    assert!(overdraw.is_err());
                    let recorded = tx.record_output(&step, b"too late").await;
                    (Some(tx), Decision::Rollback(recorded))
                })
            }
        });
        let run = db.run_branch(step.clone(), Instant::now() + Duration::from_secs(10), None, work).await.unwrap();
        let BranchRun::Ran(Decision::Rollback(recorded)) = run else { panic!("{run:?}") };
        assert!(recorded.is_err_and(|e| e.message.contains("not committed")));
        assert_eq!(step_output_of(&db, &step).await, None);
        assert_eq!(barrier_rows(&db, "wf-1", "01").await, []);
    }

    /// Two handles on one file share its single writer: the second waits its
    /// turn instead of failing.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_handles_on_one_file_queue_on_its_writer() {
        let url = fresh_sqlite();
        let a = connect(&url).await.unwrap();
        let b = connect(&url).await.unwrap();
        setup(&a, &["CREATE TABLE t (id INTEGER PRIMARY KEY)"]).await;
        let mut first = a.begin().await.unwrap();
        first.execute("INSERT INTO t (id) VALUES (1)", &[]).await.unwrap();
        let second = tokio::spawn(async move {
            let mut tx = b.begin().await?;
            tx.execute("INSERT INTO t (id) VALUES (2)", &[]).await?;
            tx.commit().await
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        first.commit().await.unwrap();
        second.await.unwrap().expect("the second writer waits, then commits");
        assert_eq!(count(&a, "t").await, 2);
    }
}

// ------------------------------------------------------------ Postgres only

mod postgres_only {
    use super::*;

    /// The commit seal is the backstop behind the statement check: a COMMIT
    /// that slipped past it, with or without a forged seal, fails and
    /// commits nothing of the branch; the host's own commit still works.
    #[tokio::test]
    async fn a_commit_the_host_did_not_seal_fails_and_commits_nothing() {
        let db = postgres_db().await;
        with_account(&db, 100).await;
        for forged in ["", "SELECT set_config('wasmtx.sealed', 'forged', true); "] {
            let work: TxWork<String> = Box::new(move |mut tx: LocalTx| {
                Box::pin(async move {
                    tx.execute("UPDATE account SET balance = balance - 10 WHERE id = 1", &[]).await.unwrap();
                    let TxInner::Postgres(pg) = &mut tx.inner else { unreachable!("a Postgres transaction") };
                    let err = pg.unchecked(&format!("{forged}COMMIT")).await.unwrap_err();
                    (Some(tx), Decision::Rollback(err.message))
                })
            });
            let deadline = Instant::now() + Duration::from_secs(5);
            let run = db.run_branch(key(GID, "01", Op::Action, "01"), deadline, None, work).await.unwrap();
            let BranchRun::Ran(Decision::Rollback(message)) = run else { panic!("{run:?}") };
            assert!(message.contains("may not commit its own transaction"), "{forged}: {message}");
            assert_eq!(balance(&db).await, 100, "{forged}");
            assert_eq!(barrier_rows(&db, GID, "01").await, [], "{forged}");
        }
        assert_eq!(run_op(&db, GID, "01", Op::Action, -10, false).await, BarrierVerdict::Proceed);
        assert_eq!(balance(&db).await, 90);
    }

    /// A guest runs as the role that may execute `wasmtx.record_output`, but
    /// without the host key the function refuses, and writes nothing.
    #[tokio::test]
    async fn recording_a_step_output_without_the_host_key_is_refused() {
        let db = postgres_db().await;
        with_account(&db, 0).await;
        for forged_key in ["wrong", ""] {
            let mut tx = db.begin().await.unwrap();
            // `execute`: `query` would refuse the function's void result type before it ran.
            let refused = tx
                .execute(
                    "SELECT wasmtx.record_output($1, 'wf-1', '01', $2)",
                    &[Value::Text(forged_key.to_owned()), Value::Bytes(b"forged".to_vec())],
                )
                .await
                .unwrap_err();
            assert_eq!(refused.code.as_deref(), Some("42501"), "{refused}");
            assert!(refused.message.contains("reserved for the host"), "{refused}");
            tx.rollback().await.unwrap();
        }
        let mut tx = db.begin().await.unwrap();
        let null_key = tx.execute("SELECT wasmtx.record_output(NULL, 'wf-1', '01', '\\x00'::bytea)", &[]).await;
        assert!(null_key.is_err_and(|e| e.code.as_deref() == Some("42501")));
        tx.rollback().await.unwrap();
        let mut tx = db.begin().await.unwrap();
        let key_read = tx.query("SELECT key FROM wasmtx.host", &[]).await.unwrap_err();
        assert_eq!(key_read.code.as_deref(), Some("42501"), "{key_read}");
        tx.rollback().await.unwrap();
        assert_eq!(step_output_of(&db, &step_key("wf-1", "01")).await, None);
    }

    /// A database the previous version set up (no step outputs) gets the
    /// table and function when a host connects, and keeps its barrier rows.
    #[tokio::test]
    async fn a_database_set_up_by_version_2_gets_the_step_outputs_on_connect() {
        use sqlx::Connection as _;
        let url = fresh_postgres().await;
        let db = connect(&url).await.unwrap();
        with_account(&db, 0).await;
        assert_eq!(run_op(&db, GID, "01", Op::Action, 1, false).await, BarrierVerdict::Proceed);
        db.close().await;
        let mut owner = sqlx::PgConnection::connect(&url).await.unwrap();
        for sql in [
            "DROP FUNCTION wasmtx.record_output(text, text, text, bytea)",
            "DROP TABLE wasmtx.step_output",
            "UPDATE wasmtx.host SET version = 2",
        ] {
            sqlx::query(sql).execute(&mut owner).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
        }

        let db = connect(&url).await.unwrap();
        let version: i32 = sqlx::query_scalar("SELECT version FROM wasmtx.host").fetch_one(&mut owner).await.unwrap();
        assert_eq!(version, 3);
        assert_eq!(barrier_rows(&db, GID, "01").await, [pair("action", "action")]);
        let step = step_key("wf-1", "01");
        assert_eq!(run_step(&db, &step, b"after the upgrade", true).await, BranchRun::Ran(Decision::Commit(())));
        assert_eq!(step_output_of(&db, &step).await, Some(b"after the upgrade".to_vec()));
        let mut tx = db.begin().await.unwrap();
        let refused = tx.query("SELECT output FROM wasmtx.step_output", &[]).await.unwrap_err();
        assert_eq!(refused.code.as_deref(), Some("42501"), "the guest role has no privilege: {refused}");
        let _ = owner.close().await;
    }

    #[tokio::test]
    async fn numeric_values_come_back_as_the_exact_text_postgres_prints() {
        let db = postgres_db().await;
        let mut tx = db.begin().await.unwrap();
        let rows = tx
            .query(
                "SELECT v::numeric AS n, v::numeric::text AS t FROM unnest($1::text[]) AS v",
                &[Value::Text(
                    "{0,0.00,-1.5,1.50,123456789.123456789,0.0001,0.00000001,10000,-10000.0001,1e20,\
                     12345678901234567890.5,-0.000,99999999,0.1234567,NaN}"
                        .to_owned(),
                )],
            )
            .await
            .unwrap();
        assert_eq!(rows.values.len(), 15);
        for row in rows.values {
            let [n, Value::Text(t)] = row.as_slice() else { panic!("{row:?}") };
            assert_eq!(n, &Value::Text(t.clone()));
        }
    }

    #[tokio::test]
    async fn text_like_uuid_json_enum_and_domain_columns_come_back_as_text() {
        let db = postgres_db().await;
        setup(&db, &["CREATE TYPE mood AS ENUM ('happy', 'sad')", "CREATE DOMAIN positive AS INT4 CHECK (VALUE > 0)"])
            .await;
        let row = {
            let mut tx = db.begin().await.unwrap();
            tx.query(
                "SELECT 'a'::varchar AS v, 'b'::char(2) AS c, \
                 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid AS u, '{\"k\": [1, 2]}'::jsonb AS jb, \
                 '{\"k\":1}'::json AS j, 'sad'::mood AS m, 5::positive AS p, 'pg_class'::name AS nm, \
                 2.5::real AS r, 7::int2 AS s",
                &[],
            )
            .await
            .unwrap()
        };
        let text = |s: &str| Value::Text(s.to_owned());
        assert_eq!(
            row.values,
            vec![vec![
                text("a"),
                text("b "),
                text("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
                text("{\"k\": [1, 2]}"),
                text("{\"k\":1}"),
                text("sad"),
                Value::Int(5),
                text("pg_class"),
                Value::Float(2.5),
                Value::Int(7),
            ]]
        );
    }

    /// The column check happens before the statement runs, so the insert has no effect.
    #[tokio::test]
    async fn a_column_type_without_a_guest_value_is_refused_before_the_statement_runs() {
        let db = postgres_db().await;
        setup(&db, &["CREATE TABLE ev (id BIGINT PRIMARY KEY, at TIMESTAMPTZ NOT NULL DEFAULT now())"]).await;
        let mut tx = db.begin().await.unwrap();
        let err = tx.query("INSERT INTO ev (id) VALUES ($1) RETURNING at", &[Value::Int(1)]).await.unwrap_err();
        assert!(err.message.contains("`at`") && err.message.contains("TIMESTAMPTZ"), "{err}");
        let rows = tx.query("SELECT count(*) AS n, now()::text IS NOT NULL AS ok FROM ev", &[]).await.unwrap();
        assert_eq!(rows.values, vec![vec![Value::Int(0), Value::Boolean(true)]]);
        tx.commit().await.unwrap();
    }

    #[tokio::test]
    async fn a_null_parameter_takes_its_type_from_the_context() {
        let db = postgres_db().await;
        let mut tx = db.begin().await.unwrap();
        let rows = tx
            .query(
                "SELECT $1 AS bare, coalesce($2, 7) AS int, $3::bytea AS cast",
                &[Value::Null, Value::Null, Value::Null],
            )
            .await
            .unwrap();
        assert_eq!(rows.columns, ["bare", "int", "cast"]);
        assert_eq!(rows.values, vec![vec![Value::Null, Value::Int(7), Value::Null]]);
    }

    #[tokio::test]
    async fn a_savepoint_lets_a_guest_recover_from_an_expected_error() {
        let db = postgres_db().await;
        setup(&db, &["CREATE TABLE t (id BIGINT PRIMARY KEY)"]).await;
        let mut tx = db.begin().await.unwrap();
        tx.execute("INSERT INTO t (id) VALUES (1)", &[]).await.unwrap();
        tx.execute("SAVEPOINT before_dup", &[]).await.unwrap();
        let dup = tx.execute("INSERT INTO t (id) VALUES (1)", &[]).await.unwrap_err();
        assert_eq!(dup.code.as_deref(), Some("23505"));
        tx.execute("ROLLBACK TO SAVEPOINT before_dup", &[]).await.unwrap();
        tx.execute("INSERT INTO t (id) VALUES (2)", &[]).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(count(&db, "t").await, 2);
    }

    /// An XA action's work: add `delta` to account 1 (the host prepares instead of committing).
    fn xa_work(delta: i64) -> TxWork<()> {
        Box::new(move |mut tx: LocalTx| {
            Box::pin(async move {
                tx.execute("UPDATE account SET balance = balance + $1 WHERE id = 1", &[Value::Int(delta)])
                    .await
                    .unwrap();
                (Some(tx), Decision::Commit(()))
            })
        })
    }

    async fn xa_prepared(db: &Database) -> Vec<String> {
        let mut tx = db.begin().await.unwrap();
        let rows = tx
            .query("SELECT gid FROM pg_prepared_xacts WHERE database = current_database() ORDER BY gid", &[])
            .await
            .unwrap();
        tx.rollback().await.unwrap();
        rows.values.into_iter().map(|r| format!("{:?}", r[0])).collect()
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(10)
    }

    /// Phase 1 prepares (invisible until phase 2), a repeated action finds
    /// its branch prepared and does not run again, and a repeated commit
    /// finds the earlier one by the barrier row.
    #[tokio::test]
    async fn an_xa_action_prepares_once_and_commits_once() {
        let db = postgres_db().await;
        with_account(&db, 100).await;
        let action = key("xa-1", "01", Op::Action, "01");
        let run = db.run_branch_prepared(action.clone(), soon(), xa_work(-30)).await.unwrap();
        assert_eq!(run, BranchRun::Ran(Decision::Commit(())));
        assert_eq!(xa_prepared(&db).await, [r#"Text("wasmtx:xa-1:01")"#]);
        assert_eq!(balance(&db).await, 100, "prepared, not committed");
        let again = db.run_branch_prepared(action.clone(), soon(), xa_work(-30)).await.unwrap();
        assert_eq!(again, BranchRun::Skipped(BarrierVerdict::Duplicate), "found prepared: not run again");

        let commit = key("xa-1", "01", Op::Commit, "01");
        db.finish_prepared(commit.clone(), soon()).await.unwrap();
        assert_eq!(balance(&db).await, 70);
        assert!(xa_prepared(&db).await.is_empty());
        db.finish_prepared(commit, soon()).await.expect("a second commit finds the first");
        let late = db.run_branch_prepared(action, soon(), xa_work(-30)).await.unwrap();
        assert_eq!(late, BranchRun::Skipped(BarrierVerdict::Duplicate), "committed: its barrier row is there");
        assert_eq!(balance(&db).await, 70);
    }

    /// A rollback undoes a prepared branch, a repeated one is a no-op, and an
    /// action arriving after its rollback (a stale owner's) does nothing.
    #[tokio::test]
    async fn an_xa_rollback_releases_the_branch_and_blocks_a_late_action() {
        let db = postgres_db().await;
        with_account(&db, 100).await;
        let action = key("xa-2", "01", Op::Action, "01");
        db.run_branch_prepared(action.clone(), soon(), xa_work(-30)).await.unwrap();
        let rollback = key("xa-2", "01", Op::Rollback, "01");
        db.finish_prepared(rollback.clone(), soon()).await.unwrap();
        assert!(xa_prepared(&db).await.is_empty());
        db.finish_prepared(rollback, soon()).await.unwrap();
        let late = db.run_branch_prepared(action, soon(), xa_work(-30)).await.unwrap();
        assert!(matches!(late, BranchRun::Skipped(_)), "{late:?}");
        assert!(xa_prepared(&db).await.is_empty(), "the late action prepared nothing");
        assert_eq!(balance(&db).await, 100);

        // A rollback before its action ever ran is null, and blocks it too.
        let null = key("xa-3", "01", Op::Rollback, "01");
        db.finish_prepared(null, soon()).await.unwrap();
        let late = db.run_branch_prepared(key("xa-3", "01", Op::Action, "01"), soon(), xa_work(-1)).await.unwrap();
        assert!(matches!(late, BranchRun::Skipped(_)), "{late:?}");
        assert_eq!(balance(&db).await, 100);
    }

    /// A commit whose prepared transaction vanished without committing (rolled
    /// back by hand) is an error that says so, never a silent success.
    #[tokio::test]
    async fn an_xa_commit_of_a_branch_that_vanished_is_an_error() {
        let db = postgres_db().await;
        with_account(&db, 100).await;
        db.run_branch_prepared(key("xa-4", "01", Op::Action, "01"), soon(), xa_work(-30)).await.unwrap();
        let (gid, branch) = (Gid::parse("xa-4").unwrap(), BranchId::from_index(0));
        assert!(db.resolve_prepared(&gid, &branch, false).await.unwrap());
        assert!(!db.resolve_prepared(&gid, &branch, false).await.unwrap(), "gone");
        let e = db.finish_prepared(key("xa-4", "01", Op::Commit, "01"), soon()).await.unwrap_err();
        assert!(e.message.contains("is gone and was never committed"), "{e}");
        assert_eq!(balance(&db).await, 100);
    }

    /// An earlier guest's temporary table on the pooled connection does not
    /// stop an XA action from preparing (Postgres refuses to prepare a
    /// transaction that touched temporary objects, cleanup included).
    #[tokio::test]
    async fn an_xa_action_prepares_on_a_connection_an_earlier_guest_left_temporary_tables_on() {
        let url = fresh_postgres().await;
        let db = Database::connect(&url, &DbLimits { postgres_connections: 1, ..DbLimits::default() }).await.unwrap();
        with_account(&db, 100).await;
        let mut tx = db.begin().await.unwrap();
        tx.execute("CREATE TEMP TABLE scratch (x BIGINT)", &[]).await.unwrap();
        tx.commit().await.unwrap();
        let run = db.run_branch_prepared(key("xa-6", "01", Op::Action, "01"), soon(), xa_work(-1)).await.unwrap();
        assert_eq!(run, BranchRun::Ran(Decision::Commit(())));
        db.finish_prepared(key("xa-6", "01", Op::Commit, "01"), soon()).await.unwrap();
        assert_eq!(balance(&db).await, 99);
    }

    /// Prepared branches are listed by age, as (gid, branch), and only this host's.
    #[tokio::test]
    async fn prepared_branches_are_listed_once_old_enough() {
        let db = postgres_db().await;
        with_account(&db, 100).await;
        db.run_branch_prepared(key("xa-5", "02", Op::Action, "01"), soon(), xa_work(1)).await.unwrap();
        assert!(db.prepared_branches(Duration::from_secs(3600)).await.unwrap().is_empty(), "too young");
        let listed = db.prepared_branches(Duration::ZERO).await.unwrap();
        assert_eq!(listed, [(Gid::parse("xa-5").unwrap(), BranchId::from_index(1))]);
        assert!(db.xa_refusal().is_none(), "the test server has prepared transactions on");
        db.finish_prepared(key("xa-5", "02", Op::Rollback, "01"), soon()).await.unwrap();
    }
}

#[test]
fn xids_round_trip_and_refuse_what_the_host_did_not_make() {
    let (gid, branch) = (Gid::parse("a:b.c-1").unwrap(), BranchId::from_index(11));
    assert_eq!(xid(&gid, &branch), "wasmtx:a:b.c-1:12");
    assert_eq!(parse_xid("wasmtx:a:b.c-1:12"), Some((gid, branch)));
    for other in ["other:g:01", "wasmtx:g", "wasmtx:g:1", "wasmtx:g:00", "wasmtx::01", "wasmtx:g h:01"] {
        assert_eq!(parse_xid(other), None, "{other}");
    }
}

#[tokio::test]
async fn sqlite_refuses_xa() {
    let db = sqlite_db().await;
    assert!(db.xa_refusal().unwrap().contains("SQLite"));
    let e = db.finish_prepared(key("x", "01", Op::Commit, "01"), Instant::now() + Duration::from_secs(1)).await;
    assert!(e.unwrap_err().message.contains("SQLite"));
}

// ------------------------------------------------------------ MySQL only

mod mysql_only {
    use super::*;

    fn text(s: &str) -> Value {
        Value::Text(s.to_owned())
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(10)
    }

    /// The host's database, quoted (`wasmtx_<db>`).
    fn host_schema(db: &Database) -> String {
        let Kind::Mysql(my) = &db.kind else { unreachable!("a MySQL database") };
        my.schema().to_owned()
    }

    /// Runs `work` as a branch op of `gid` (op action) and returns what it returned, rolled back.
    async fn in_branch<T: Send + 'static>(
        db: &Database,
        gid: &str,
        work: impl FnOnce(LocalTx) -> BoxFuture<'static, (LocalTx, T)> + Send + 'static,
    ) -> T {
        let work: TxWork<T> = Box::new(move |tx: LocalTx| {
            Box::pin(async move {
                let (tx, value) = work(tx).await;
                (Some(tx), Decision::Rollback(value))
            })
        });
        match db.run_branch(key(gid, "01", Op::Action, "01"), soon(), None, work).await {
            Ok(BranchRun::Ran(Decision::Rollback(value))) => value,
            other => panic!("the branch did not run: {:?}", other.map(|_| ())),
        }
    }

    fn my(tx: &mut LocalTx) -> &mut crate::database::mysql::MyTx {
        let TxInner::Mysql(my) = &mut tx.inner else { unreachable!("a MySQL transaction") };
        my
    }

    #[tokio::test]
    async fn every_value_kind_round_trips_through_a_table() {
        on_mysql(|db| async move {
            setup(
                &db,
                &["CREATE TABLE kinds (id BIGINT PRIMARY KEY, b BOOLEAN, i BIGINT, f DOUBLE, r FLOAT, t TEXT, \
                   v VARCHAR(20), x BLOB, vb VARBINARY(8), d DECIMAL(12, 3), u BIGINT UNSIGNED, s SMALLINT, \
                   dt DATE, ts DATETIME(6), tm TIME, n BIGINT)"],
            )
            .await;
            let mut tx = db.begin().await.unwrap();
            let inserted = tx
                .execute(
                    "INSERT INTO kinds VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 18446744073709551615, -7, \
                     '2024-02-29', '2024-02-29 23:59:58.000125', '-838:59:59', ?)",
                    &[
                        Value::Int(1),
                        Value::Boolean(true),
                        Value::Int(i64::MIN),
                        Value::Float(-1.25e300),
                        Value::Float(2.5),
                        text("héllo, 世界 ✓"),
                        text("short"),
                        Value::Bytes(vec![0, 255, 1, 0]),
                        Value::Bytes(b"ab".to_vec()),
                        text("-12345.678"),
                        Value::Null,
                    ],
                )
                .await
                .unwrap();
            assert_eq!(inserted, 1);
            let rows = tx.query("SELECT * FROM kinds WHERE id = ?", &[Value::Int(1)]).await.unwrap();
            tx.commit().await.unwrap();
            assert_eq!(
                rows.columns,
                ["id", "b", "i", "f", "r", "t", "v", "x", "vb", "d", "u", "s", "dt", "ts", "tm", "n"]
            );
            assert_eq!(
                rows.values,
                vec![vec![
                    Value::Int(1),
                    Value::Int(1),
                    Value::Int(i64::MIN),
                    Value::Float(-1.25e300),
                    Value::Float(2.5),
                    text("héllo, 世界 ✓"),
                    text("short"),
                    Value::Bytes(vec![0, 255, 1, 0]),
                    Value::Bytes(b"ab".to_vec()),
                    text("-12345.678"),
                    text("18446744073709551615"),
                    Value::Int(-7),
                    text("2024-02-29"),
                    text("2024-02-29 23:59:58.000125"),
                    text("-838:59:59"),
                    Value::Null,
                ]]
            );
        })
        .await;
    }

    #[tokio::test]
    async fn question_marks_bind_in_order_and_a_statement_can_change_kinds() {
        on_mysql(|db| async move {
            setup(&db, &["CREATE TABLE t (id BIGINT PRIMARY KEY, n INTEGER, s VARCHAR(10))"]).await;
            let mut tx = db.begin().await.unwrap();
            let insert = "INSERT INTO t (id, n, s) VALUES (?, ?, ?)";
            tx.execute(insert, &[Value::Int(1), Value::Null, Value::Null]).await.unwrap();
            tx.execute(insert, &[Value::Int(2), Value::Int(5), text("five")]).await.unwrap();
            tx.execute(insert, &[Value::Int(3), text("6"), Value::Null]).await.unwrap();
            let rows = tx.query("SELECT n, s FROM t ORDER BY id", &[]).await.unwrap();
            assert_eq!(
                rows.values,
                vec![
                    vec![Value::Null, Value::Null],
                    vec![Value::Int(5), text("five")],
                    vec![Value::Int(6), Value::Null]
                ]
            );
            let empty = tx.query("SELECT id, s AS label FROM t WHERE id = ?", &[Value::Int(42)]).await.unwrap();
            assert_eq!(empty, Rows { columns: vec!["id".to_owned(), "label".to_owned()], values: vec![] });
            let missing = tx.execute(insert, &[Value::Int(9)]).await;
            assert!(missing.is_err(), "a placeholder without a value: {missing:?}");
            tx.commit().await.unwrap();
            assert_eq!(count(&db, "t").await, 3);
        })
        .await;
    }

    #[tokio::test]
    async fn a_unique_violation_carries_the_sqlstate_and_rollback_discards_writes() {
        on_mysql(|db| async move {
            setup(&db, &["CREATE TABLE users (id BIGINT PRIMARY KEY, email VARCHAR(100) UNIQUE)"]).await;
            let mut tx = db.begin().await.unwrap();
            let insert = "INSERT INTO users (id, email) VALUES (?, ?)";
            tx.execute(insert, &[Value::Int(1), text("a@example.com")]).await.unwrap();
            let err = tx.execute(insert, &[Value::Int(2), text("a@example.com")]).await.unwrap_err();
            assert_eq!(err.code.as_deref(), Some("23000"), "{err}");
            assert!(err.message.contains("Duplicate"), "{err}");
            tx.rollback().await.unwrap();
            {
                let mut dropped = db.begin().await.unwrap();
                dropped.execute(insert, &[Value::Int(3), text("c@example.com")]).await.unwrap();
            }
            assert_eq!(count(&db, "users").await, 0);
        })
        .await;
    }

    #[tokio::test]
    async fn query_results_stop_at_the_invocations_row_limit() {
        let limits = DbLimits { max_rows: 3, ..DbLimits::default() };
        on_mysql_with(&limits, |db, _| async move {
            let rows = in_branch(&db, "g-1", |mut tx| {
                Box::pin(async move {
                    let two = tx.query("SELECT 1 UNION ALL SELECT 2", &[]).await;
                    let two_more = tx.query("SELECT 1 UNION ALL SELECT 2", &[]).await;
                    (tx, (two.map(|r| r.values.len()), two_more.map(|r| r.values.len())))
                })
            })
            .await;
            assert_eq!(rows.0, Ok(2));
            assert!(rows.1.as_ref().is_err_and(|e| e.message.contains("limit of rows")), "{:?}", rows.1);
        })
        .await;
    }

    /// Nothing a guest runs names the host's database without being refused
    /// by the server (the guest account has no privilege there), in a direct
    /// call and in a branch.
    #[tokio::test]
    async fn guest_sql_can_neither_read_nor_write_the_host_tables() {
        on_mysql(|db| async move {
            with_account(&db, 0).await;
            let step = step_key("wf-1", "01");
            assert_eq!(run_step(&db, &step, b"secret", true).await, BranchRun::Ran(Decision::Commit(())));
            let s = host_schema(&db);
            let attempts = [
                (format!("SELECT * FROM {s}.barrier"), true),
                (format!("SELECT `key` FROM {s}.host"), true),
                (format!("SELECT output FROM {s}.step_output"), true),
                (
                    format!(
                        "INSERT INTO {s}.barrier (gid, branch_id, op, barrier_id) VALUES ('g', '01', 'action', '01')"
                    ),
                    false,
                ),
                (format!("DELETE FROM {s}.barrier"), false),
                (format!("UPDATE {s}.step_output SET output = 'forged'"), false),
                (format!("DROP TABLE {s}.barrier"), false),
            ];
            for (sql, rows) in &attempts {
                let mut tx = db.begin().await.unwrap();
                let refused = if *rows {
                    tx.query(sql, &[]).await.map(|_| ()).unwrap_err()
                } else {
                    tx.execute(sql, &[]).await.map(|_| ()).unwrap_err()
                };
                assert_eq!(refused.code.as_deref(), Some("42000"), "{sql}: {refused}");
                assert!(refused.message.contains("denied"), "{sql}: {refused}");
                tx.rollback().await.unwrap();
            }
            let sql = format!("DELETE FROM {s}.barrier");
            let in_branch = in_branch(&db, "g-2", move |mut tx| {
                Box::pin(async move {
                    let r = tx.execute(&sql, &[]).await;
                    (tx, r)
                })
            })
            .await;
            assert!(in_branch.is_err_and(|e| e.code.as_deref() == Some("42000")));
            assert_eq!(barrier_rows(&db, "wf-1", "01").await, [pair("action", "action")], "untouched");
            assert_eq!(step_output_of(&db, &step).await, Some(b"secret".to_vec()), "untouched");
        })
        .await;
    }

    /// In a branch only statements that keep the transaction run; the
    /// refused ones leave it going, and it commits what the guest wrote.
    #[tokio::test]
    async fn a_branch_cannot_commit_begin_set_autocommit_lock_or_create_tables() {
        on_mysql(|db| async move {
            with_account(&db, 100).await;
            let work: TxWork<()> = Box::new(|mut tx: LocalTx| {
                Box::pin(async move {
                    tx.execute("UPDATE account SET balance = balance - 10 WHERE id = 1", &[]).await.unwrap();
                    for sql in [
                        "COMMIT",
                        "START TRANSACTION",
                        "BEGIN",
                        "SET autocommit = 1",
                        "SET SESSION max_statement_time = 0",
                        "LOCK TABLES account WRITE",
                        "CREATE TABLE t2 (id INT)",
                        "DROP TABLE account",
                        "TRUNCATE account",
                        "/*! COMMIT */",
                        "ROLLBACK",
                    ] {
                        let err = tx.execute(sql, &[]).await.unwrap_err();
                        assert!(err.message.contains("not allowed"), "{sql}: {err}");
                        assert!(tx.query(sql, &[]).await.is_err(), "{sql} through query");
                    }
                    let hidden = tx.execute("UPDATE account SET balance = 0 WHERE id = 1; COMMIT", &[]).await;
                    assert!(hidden.is_err(), "two statements at once: {hidden:?}");
                    tx.execute("SAVEPOINT s", &[]).await.unwrap();
                    tx.execute("UPDATE account SET balance = balance - 50 WHERE id = 1", &[]).await.unwrap();
                    tx.execute("ROLLBACK TO SAVEPOINT s", &[]).await.unwrap();
                    (Some(tx), Decision::Commit(()))
                })
            });
            let run = db.run_branch(key(GID, "01", Op::Action, "01"), soon(), None, work).await.unwrap();
            assert_eq!(run, BranchRun::Ran(Decision::Commit(())));
            assert_eq!(balance(&db).await, 90);
            assert_eq!(barrier_rows(&db, GID, "01").await, [pair("action", "action")]);
        })
        .await;
    }

    /// A direct call may create tables; MySQL commits before DDL, so what
    /// came before it stays even if the call then rolls back.
    #[tokio::test]
    async fn ddl_in_a_direct_call_commits_what_came_before_it() {
        on_mysql(|db| async move {
            with_account(&db, 100).await;
            let work: TxWork<()> = Box::new(|mut tx: LocalTx| {
                Box::pin(async move {
                    tx.execute("UPDATE account SET balance = 1 WHERE id = 1", &[]).await.unwrap();
                    tx.execute("CREATE TABLE later (id BIGINT PRIMARY KEY)", &[]).await.unwrap();
                    tx.execute("INSERT INTO later (id) VALUES (1)", &[]).await.unwrap();
                    tx.execute("UPDATE account SET balance = 2 WHERE id = 1", &[]).await.unwrap();
                    let refused = tx.execute("DROP DATABASE mysql", &[]).await.unwrap_err();
                    assert!(refused.message.contains("not allowed"), "{refused}");
                    (Some(tx), Decision::Rollback(()))
                })
            });
            assert_eq!(db.run_local(soon(), work).await.unwrap(), Decision::Rollback(()));
            assert_eq!(balance(&db).await, 1, "committed by the CREATE TABLE");
            assert_eq!(count(&db, "later").await, 0, "rolled back after it");
        })
        .await;
    }

    /// Files on the server are out of reach: the check refuses `LOAD DATA`
    /// and `INTO OUTFILE`, and the guest account lacks the FILE privilege
    /// that would let them run had the check missed them.
    #[tokio::test]
    async fn guest_sql_cannot_read_or_write_server_files() {
        on_mysql(|db| async move {
            setup(&db, &["CREATE TABLE t (line TEXT)"]).await;
            let outfile = format!("/tmp/wasmtx-{}.txt", uuid::Uuid::new_v4().simple());
            let attempts = [
                "LOAD DATA INFILE '/etc/passwd' INTO TABLE t".to_owned(),
                format!("SELECT 1 INTO OUTFILE '{outfile}'"),
                format!("SELECT 1 INTO DUMPFILE '{outfile}'"),
                format!("SELECT * FROM t INTO OUTFILE '{outfile}'"),
            ];
            for sql in attempts {
                let work: TxWork<(DbError, DbError)> = Box::new(move |mut tx: LocalTx| {
                    Box::pin(async move {
                        let refused = tx.execute(&sql, &[]).await.unwrap_err();
                        let server = my(&mut tx).unchecked(&sql, &[]).await.unwrap_err();
                        (Some(tx), Decision::Rollback((refused, server)))
                    })
                });
                let (refused, server) = db.run_local(soon(), work).await.unwrap().into_inner();
                assert!(refused.message.contains("not allowed"), "{refused}");
                assert!(server.message.contains("denied"), "the server refuses it too: {server}");
            }
            assert_eq!(count(&db, "t").await, 0);
            assert!(!std::path::Path::new(&outfile).exists());
        })
        .await;
    }

    /// The host procedures are callable by the guest account but refuse
    /// anyone without the host key; a guest cannot even name them (`CALL`
    /// is not allowed).
    #[tokio::test]
    async fn the_host_procedures_refuse_a_wrong_key() {
        on_mysql(|db| async move {
            with_account(&db, 0).await;
            let s = host_schema(&db);
            let work: TxWork<()> = Box::new(move |mut tx: LocalTx| {
                Box::pin(async move {
                    let call = format!("CALL {s}.enter(?, 'saga', 'g-1', '01', 'action', NULL, '01', 'x')");
                    let refused = tx.execute(&call, &[text("wrong")]).await.unwrap_err();
                    assert!(refused.message.contains("not allowed"), "{refused}");
                    for forged in [text("wrong"), text(""), Value::Null] {
                        let e = my(&mut tx).unchecked(&call, std::slice::from_ref(&forged)).await.unwrap_err();
                        assert_eq!(e.code.as_deref(), Some("42000"), "{forged:?}: {e}");
                        assert!(e.message.contains("reserved for the host"), "{e}");
                        let record = format!("CALL {s}.record_output(?, 'wf-1', '01', 'forged')");
                        let e = my(&mut tx).unchecked(&record, &[forged]).await.unwrap_err();
                        assert!(e.message.contains("reserved for the host"), "{e}");
                    }
                    (Some(tx), Decision::Commit(()))
                })
            });
            db.run_local(soon(), work).await.unwrap();
            assert_eq!(barrier_rows(&db, "g-1", "01").await, []);
            assert_eq!(step_output_of(&db, &step_key("wf-1", "01")).await, None);
        })
        .await;
    }

    /// Should the transaction end behind the host's back (a hole in the
    /// check, or InnoDB rolling it back), the host's commit finds it is no
    /// longer the transaction that entered the barrier, and commits nothing.
    #[tokio::test]
    async fn a_transaction_that_ended_behind_the_hosts_back_is_not_committed() {
        on_mysql(|db| async move {
            with_account(&db, 100).await;
            for end in ["ROLLBACK", "COMMIT"] {
                let work: TxWork<()> = Box::new(move |mut tx: LocalTx| {
                    Box::pin(async move {
                        tx.execute("UPDATE account SET balance = balance - 10 WHERE id = 1", &[]).await.unwrap();
                        my(&mut tx).unchecked(end, &[]).await.unwrap();
                        tx.execute("UPDATE account SET balance = balance - 1 WHERE id = 1", &[]).await.unwrap();
                        (Some(tx), Decision::Commit(()))
                    })
                });
                let err = db.run_branch(key("g-9", "01", Op::Action, "01"), soon(), None, work).await.unwrap_err();
                assert!(err.to_string().contains("ended early"), "{end}: {err}");
            }
            // The slipped COMMIT committed the first try's first update with its
            // barrier row; nothing after it, and nothing of the ROLLBACK try.
            assert_eq!(balance(&db).await, 90);
            assert_eq!(run_op(&db, "g-9", "01", Op::Action, -1, false).await, BarrierVerdict::Duplicate);
        })
        .await;
    }

    /// InnoDB rolls the whole transaction back on a deadlock: the victim's
    /// later statements are refused and its commit says nothing was committed,
    /// instead of committing what ran after the rollback.
    #[tokio::test]
    async fn a_deadlock_victim_cannot_commit_what_survived_it() {
        on_mysql(|db| async move {
            setup(
                &db,
                &["CREATE TABLE t (id BIGINT PRIMARY KEY, v BIGINT NOT NULL)", "INSERT INTO t VALUES (1, 0), (2, 0)"],
            )
            .await;
            let mut a = db.begin().await.unwrap();
            let mut b = db.begin().await.unwrap();
            a.execute("UPDATE t SET v = 1 WHERE id = 1", &[]).await.unwrap();
            b.execute("UPDATE t SET v = 2 WHERE id = 2", &[]).await.unwrap();
            let waiting = tokio::spawn(async move {
                let r = a.execute("UPDATE t SET v = 1 WHERE id = 2", &[]).await;
                (a, r)
            });
            tokio::time::sleep(Duration::from_millis(200)).await;
            let second = b.execute("UPDATE t SET v = 2 WHERE id = 1", &[]).await;
            let (a, first) = waiting.await.unwrap();
            // One of the two is the victim (1213, SQLSTATE 40001); the other goes on.
            let (mut victim, mut survivor) = match (&first, &second) {
                (Err(e), Ok(_)) => {
                    assert_eq!(e.code.as_deref(), Some("40001"), "{e}");
                    (a, b)
                }
                (Ok(_), Err(e)) => {
                    assert_eq!(e.code.as_deref(), Some("40001"), "{e}");
                    (b, a)
                }
                other => panic!("expected one deadlock victim: {other:?}"),
            };
            let later = victim.execute("UPDATE t SET v = 9 WHERE id = 1", &[]).await.unwrap_err();
            assert!(later.message.contains("rolled the whole transaction back"), "{later}");
            let refused = victim.commit().await.unwrap_err();
            assert!(refused.message.contains("not committed"), "{refused}");
            survivor.execute("UPDATE t SET v = v + 10", &[]).await.unwrap();
            survivor.commit().await.unwrap();
            let mut tx = db.begin().await.unwrap();
            let rows = tx.query("SELECT v FROM t ORDER BY id", &[]).await.unwrap();
            tx.commit().await.unwrap();
            assert!(
                rows.values.iter().all(|r| matches!(r[0], Value::Int(n) if n > 9)),
                "only the survivor's: {rows:?}"
            );
        })
        .await;
    }

    /// The deadline stops a long statement (`max_statement_time`, then
    /// `KILL QUERY` from the host), and the database stays usable.
    #[tokio::test]
    async fn the_deadline_stops_a_long_query_and_the_database_stays_usable() {
        let limits = DbLimits { postgres_connections: 1, ..DbLimits::default() };
        on_mysql_with(&limits, |db, _| async move {
            with_account(&db, 100).await;
            let work: TxWork<Result<Rows, DbError>> = Box::new(|mut tx: LocalTx| {
                Box::pin(async move {
                    tx.execute("UPDATE account SET balance = 0 WHERE id = 1", &[]).await.unwrap();
                    let slept = tx.query("SELECT SLEEP(5)", &[]).await;
                    (Some(tx), Decision::Commit(slept))
                })
            });
            let started = Instant::now();
            let deadline = started + Duration::from_millis(500);
            let run = db.run_branch(key(GID, "01", Op::Action, "01"), deadline, None, work).await;
            assert!(started.elapsed() < Duration::from_secs(2), "stopped after {:?}", started.elapsed());
            // The host's timeout fires first (the statement's own limit counts
            // from BEGIN, the sleep starts later) and nothing is committed.
            let err = run.unwrap_err();
            assert!(err.to_string().contains("deadline exceeded"), "{err}");
            assert_eq!(balance(&db).await, 100);
            assert_eq!(barrier_rows(&db, GID, "01").await, []);
            // The server stops the sleep (`KILL QUERY`) instead of running it out.
            let mut admin = {
                use sqlx::Connection as _;
                sqlx::MySqlConnection::connect(&mysql_server()).await.unwrap()
            };
            let mut stopped = false;
            for _ in 0..20 {
                let n: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO = 'SELECT SLEEP(5)'",
                )
                .fetch_one(&mut admin)
                .await
                .unwrap();
                if n == 0 {
                    stopped = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            assert!(stopped, "the guest's SLEEP(5) still runs on the server");
            assert_eq!(run_op(&db, GID, "02", Op::Action, -1, false).await, BarrierVerdict::Proceed);
            let long = Instant::now() + Duration::from_secs(10);
            let work: TxWork<Result<Rows, DbError>> = Box::new(|mut tx: LocalTx| {
                Box::pin(async move {
                    let slept = tx.query("SELECT SLEEP(1) AS s", &[]).await;
                    (Some(tx), Decision::Rollback(slept))
                })
            });
            let run = db.run_branch(key(GID, "03", Op::Action, "01"), long, None, work).await.unwrap();
            assert_eq!(
                run,
                BranchRun::Ran(Decision::Rollback(Ok(Rows {
                    columns: vec!["s".to_owned()],
                    values: vec![vec![Value::Int(0)]]
                }))),
                "a later branch gets its whole deadline again"
            );
        })
        .await;
    }

    /// What one guest leaves on a pooled connection (user variables, named
    /// locks, an open transaction) is gone for the next.
    #[tokio::test]
    async fn a_pooled_connection_carries_nothing_from_one_guest_to_the_next() {
        let limits = DbLimits { postgres_connections: 1, ..DbLimits::default() };
        on_mysql_with(&limits, |db, _| async move {
            let mut tx = db.begin().await.unwrap();
            tx.query("SELECT @secret := 'from the first guest', GET_LOCK('held', 0)", &[]).await.unwrap();
            tx.commit().await.unwrap();
            let mut tx = db.begin().await.unwrap();
            let rows = tx.query("SELECT @secret AS s, IS_USED_LOCK('held') AS l", &[]).await.unwrap();
            assert_eq!(rows.values, vec![vec![Value::Null, Value::Null]]);
            tx.commit().await.unwrap();
        })
        .await;
    }

    /// Connecting again (another host, a restart) finds everything set up;
    /// `mariadb://` names the same database.
    #[tokio::test]
    async fn reconnecting_keeps_the_barrier_and_mariadb_urls_work() {
        on_mysql_with(&DbLimits::default(), |db, url| async move {
            with_account(&db, 100).await;
            assert_eq!(run_op(&db, GID, "01", Op::Action, -10, false).await, BarrierVerdict::Proceed);
            let again = connect(&url.replacen("mysql://", "mariadb://", 1)).await.unwrap();
            assert_eq!(again.kind(), "mysql");
            assert_eq!(run_op(&again, GID, "01", Op::Action, -10, false).await, BarrierVerdict::Duplicate);
            assert_eq!(balance(&again).await, 90);
            assert_eq!(again.xa_refusal(), None, "MariaDB runs XA branches");
            again.close().await;
        })
        .await;
    }

    /// An XA action's work on MySQL: add `delta` to account 1 (the host
    /// prepares instead of committing).
    fn xa_work(delta: i64) -> TxWork<()> {
        xa_work_on(1, delta)
    }

    /// [`xa_work`] on account `id` (a prepared branch keeps its row locked).
    fn xa_work_on(id: i64, delta: i64) -> TxWork<()> {
        Box::new(move |mut tx: LocalTx| {
            Box::pin(async move {
                let sql = format!("UPDATE account SET balance = balance + {delta} WHERE id = {id}");
                tx.execute(&sql, &[]).await.unwrap();
                (Some(tx), Decision::Commit(()))
            })
        })
    }

    /// The server's prepared XA transactions of database `db` (its URL's
    /// last path segment), as `gtrid`, read by an admin connection.
    async fn xa_recover(url: &str) -> Vec<String> {
        use sqlx::Connection as _;
        let name = url.rsplit('/').next().unwrap();
        let mut admin = sqlx::MySqlConnection::connect(&mysql_server()).await.unwrap();
        let rows: Vec<(i64, i64, i64, Vec<u8>)> = sqlx::query_as("XA RECOVER").fetch_all(&mut admin).await.unwrap();
        let _ = admin.close().await;
        rows.into_iter()
            .filter_map(|(_, g, _, data)| {
                let (gtrid, bqual) = data.split_at(g as usize);
                (bqual == name.as_bytes()).then(|| String::from_utf8(gtrid.to_vec()).unwrap())
            })
            .collect()
    }

    /// Phase 1 prepares (invisible until phase 2), a repeated action finds
    /// its branch prepared and does not run again, and a repeated commit
    /// finds the earlier one by the barrier row.
    #[tokio::test]
    async fn an_xa_action_prepares_once_and_commits_once() {
        on_mysql_with(&DbLimits::default(), |db, url| async move {
            with_account(&db, 100).await;
            assert_eq!(db.xa_refusal(), None);
            let action = key("xa-1", "01", Op::Action, "01");
            let run = db.run_branch_prepared(action.clone(), soon(), xa_work(-30)).await.unwrap();
            assert_eq!(run, BranchRun::Ran(Decision::Commit(())));
            assert_eq!(xa_recover(&url).await, ["wasmtx:xa-1:01"]);
            assert_eq!(balance(&db).await, 100, "prepared, not committed");
            let again = db.run_branch_prepared(action.clone(), soon(), xa_work(-30)).await.unwrap();
            assert_eq!(again, BranchRun::Skipped(BarrierVerdict::Duplicate), "found prepared: not run again");

            let commit = key("xa-1", "01", Op::Commit, "01");
            db.finish_prepared(commit.clone(), soon()).await.unwrap();
            assert_eq!(balance(&db).await, 70);
            assert!(xa_recover(&url).await.is_empty());
            db.finish_prepared(commit, soon()).await.expect("a second commit finds the first");
            let late = db.run_branch_prepared(action, soon(), xa_work(-30)).await.unwrap();
            assert_eq!(late, BranchRun::Skipped(BarrierVerdict::Duplicate), "committed: its barrier row is there");
            assert!(xa_recover(&url).await.is_empty(), "a skipped action prepares nothing");
            assert_eq!(balance(&db).await, 70);
        })
        .await;
    }

    /// A rollback undoes a prepared branch, a repeated one is a no-op, and an
    /// action arriving after its rollback (a stale owner's) does nothing.
    #[tokio::test]
    async fn an_xa_rollback_releases_the_branch_and_blocks_a_late_action() {
        on_mysql_with(&DbLimits::default(), |db, url| async move {
            with_account(&db, 100).await;
            let action = key("xa-2", "01", Op::Action, "01");
            db.run_branch_prepared(action.clone(), soon(), xa_work(-30)).await.unwrap();
            let rollback = key("xa-2", "01", Op::Rollback, "01");
            db.finish_prepared(rollback.clone(), soon()).await.unwrap();
            assert!(xa_recover(&url).await.is_empty());
            db.finish_prepared(rollback, soon()).await.expect("a second rollback is a no-op");
            let late = db.run_branch_prepared(action, soon(), xa_work(-30)).await.unwrap();
            assert!(matches!(late, BranchRun::Skipped(_)), "{late:?}");
            assert!(xa_recover(&url).await.is_empty(), "the late action prepared nothing");
            assert_eq!(balance(&db).await, 100);
            assert_eq!(
                barrier_rows(&db, "xa-2", "01").await,
                [pair("action", "rollback"), pair("rollback", "rollback")]
            );

            // A rollback before its action ever ran is null, and blocks it too.
            db.finish_prepared(key("xa-3", "01", Op::Rollback, "01"), soon()).await.unwrap();
            let late = db.run_branch_prepared(key("xa-3", "01", Op::Action, "01"), soon(), xa_work(-1)).await.unwrap();
            assert!(matches!(late, BranchRun::Skipped(_)), "{late:?}");
            assert_eq!(balance(&db).await, 100);
        })
        .await;
    }

    /// A work that decides to roll back ends its XA transaction cleanly
    /// (nothing prepared, the connection reusable); a commit whose prepared
    /// transaction vanished without committing is an error that says so.
    #[tokio::test]
    async fn an_xa_action_that_rolls_back_prepares_nothing_and_a_vanished_branch_cannot_commit() {
        let limits = DbLimits { postgres_connections: 1, ..DbLimits::default() };
        on_mysql_with(&limits, |db, url| async move {
            with_account(&db, 100).await;
            let refuse: TxWork<()> = Box::new(|mut tx: LocalTx| {
                Box::pin(async move {
                    tx.execute("UPDATE account SET balance = 0 WHERE id = 1", &[]).await.unwrap();
                    (Some(tx), Decision::Rollback(()))
                })
            });
            let run = db.run_branch_prepared(key("xa-4", "01", Op::Action, "01"), soon(), refuse).await.unwrap();
            assert_eq!(run, BranchRun::Ran(Decision::Rollback(())));
            assert!(xa_recover(&url).await.is_empty());
            assert_eq!(balance(&db).await, 100, "on the one pooled connection, after the XA rollback");

            db.run_branch_prepared(key("xa-5", "01", Op::Action, "01"), soon(), xa_work(-30)).await.unwrap();
            let (gid, branch) = (Gid::parse("xa-5").unwrap(), BranchId::from_index(0));
            assert!(db.resolve_prepared(&gid, &branch, false).await.unwrap());
            assert!(!db.resolve_prepared(&gid, &branch, false).await.unwrap(), "gone");
            let e = db.finish_prepared(key("xa-5", "01", Op::Commit, "01"), soon()).await.unwrap_err();
            assert!(e.message.contains("is gone and was never committed"), "{e}");
            assert_eq!(balance(&db).await, 100);
        })
        .await;
    }

    /// A prepared branch outlives the host that prepared it: after every
    /// connection closed, another host lists it (by the prepare time the
    /// `xa` row keeps, or from when it first saw it when that is missing)
    /// and resolves it; a long gid's hashed xid is named all the same.
    #[tokio::test]
    async fn a_prepared_branch_survives_its_host_and_is_listed_and_resolved_by_the_next() {
        on_mysql_with(&DbLimits::default(), |db, url| async move {
            with_account(&db, 100).await;
            setup(&db, &["INSERT INTO account (id, balance) VALUES (2, 100)"]).await;
            let long = format!("xa-{}", "l".repeat(100));
            db.run_branch_prepared(key("xa-6", "02", Op::Action, "01"), soon(), xa_work(-30)).await.unwrap();
            db.run_branch_prepared(key(&long, "01", Op::Action, "01"), soon(), xa_work_on(2, -5)).await.unwrap();
            db.close().await;
            let prepared = xa_recover(&url).await;
            assert_eq!(prepared.len(), 2, "{prepared:?}");
            assert!(prepared.contains(&"wasmtx:xa-6:02".to_owned()), "{prepared:?}");
            assert!(prepared.iter().all(|x| x.len() <= 64), "{prepared:?}");

            let next = connect(&url).await.unwrap();
            assert!(next.prepared_branches(Duration::from_secs(3600)).await.unwrap().is_empty(), "too young");
            let mut listed = next.prepared_branches(Duration::ZERO).await.unwrap();
            listed.sort();
            let six = (Gid::parse("xa-6").unwrap(), BranchId::from_index(1));
            let hashed = (Gid::parse(&long).unwrap(), BranchId::from_index(0));
            assert_eq!(listed, [six.clone(), hashed.clone()]);

            // Without its stamp a branch counts from when this host first saw it.
            let mut admin = {
                use sqlx::Connection as _;
                sqlx::MySqlConnection::connect(&mysql_server()).await.unwrap()
            };
            let Kind::Mysql(my) = &next.kind else { unreachable!("a MySQL database") };
            sqlx::query(&format!("UPDATE {}.xa SET prepared_at = NULL", my.schema()))
                .execute(&mut admin)
                .await
                .unwrap();
            assert_eq!(next.prepared_branches(Duration::from_millis(300)).await.unwrap(), []);
            tokio::time::sleep(Duration::from_millis(400)).await;
            assert_eq!(next.prepared_branches(Duration::from_millis(300)).await.unwrap().len(), 2);

            assert!(next.resolve_prepared(&six.0, &six.1, true).await.unwrap());
            assert!(!next.resolve_prepared(&six.0, &six.1, true).await.unwrap(), "finished before");
            assert!(next.resolve_prepared(&hashed.0, &hashed.1, false).await.unwrap());
            assert!(xa_recover(&url).await.is_empty());
            assert!(next.prepared_branches(Duration::ZERO).await.unwrap().is_empty());
            assert_eq!(balance(&next).await, 70);
            assert_eq!(scalar(&next, "SELECT balance FROM account WHERE id = 2", &[]).await, Value::Int(100));
            let _ = sqlx::Connection::close(admin).await;
            next.close().await;
        })
        .await;
    }

    /// Phase 2 right after phase 1 commits, however soon the server notices
    /// that the connection that prepared is gone.
    #[tokio::test]
    async fn a_commit_right_after_the_prepare_commits() {
        on_mysql(|db| async move {
            with_account(&db, 100).await;
            for i in 1..=5 {
                let gid = format!("xa-7-{i}");
                db.run_branch_prepared(key(&gid, "01", Op::Action, "01"), soon(), xa_work(-1)).await.unwrap();
                db.finish_prepared(key(&gid, "01", Op::Commit, "01"), soon()).await.unwrap();
            }
            assert_eq!(balance(&db).await, 95);
        })
        .await;
    }
}
